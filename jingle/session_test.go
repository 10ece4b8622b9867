package jingle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

const (
	jidI = "romeo@example.org/orchard"
	jidR = "juliet@example.org/balcony"
	sid  = "s1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func rtp(name string, creator Creator, ufrag string) Content {
	return Content{Creator: creator, Name: name, Senders: SendersBoth,
		Description: &Description{Media: "audio", PayloadTypes: []PayloadType{{ID: 111, Name: "opus", Clockrate: 48000, Channels: 2}}},
		Transport:   &Transport{Ufrag: ufrag, Pwd: ufrag + "0123456789abcdefghijkl"},
	}
}

func jg(a Action, cs ...Content) *Jingle {
	j := &Jingle{Action: a, SID: sid, Contents: cs}
	if a == ActionSessionTerminate {
		j.Reason = &Reason{Condition: ReasonSuccess}
	}
	return j
}

// ref names a content without application or transport (content-accept,
// -reject, -remove).
func ref(name string, creator Creator) Content { return Content{Creator: creator, Name: name} }

func trickle(name string, creator Creator, ufrag string) Content {
	c := Content{Creator: creator, Name: name, Transport: &Transport{Ufrag: ufrag, Pwd: ufrag + "0123456789abcdefghijkl",
		Candidates: []Candidate{{Component: 1, Foundation: "1", ID: "c1", IP: "127.0.0.1", Port: 5000, Priority: 1, Protocol: "udp", Type: "host"}}}}
	return c
}

func modify(name string, creator Creator, s Senders) Content {
	return Content{Creator: creator, Name: name, Senders: s}
}

func newPair(t *testing.T, contents ...Content) (initiator, responder *Session) {
	t.Helper()
	if len(contents) == 0 {
		contents = []Content{rtp("audio", CreatorInitiator, "ufI1")}
	}
	init := jg(ActionSessionInitiate, contents...)
	init.Initiator = jidI
	i, err := NewInitiator(jidI, jidR, init, t0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResponder(jidR, jidI, init, t0)
	if err != nil {
		t.Fatal(err)
	}
	return i, r
}

// step sends j from one side and delivers it to the other, as two peers
// would; both sides must agree.
type step struct {
	from Creator
	j    *Jingle
}

func run(t *testing.T, i, r *Session, steps ...step) (Event, error) {
	t.Helper()
	var ev Event
	for n, st := range steps {
		snd, rcv, fromJID := i, r, jidI
		if st.from == CreatorResponder {
			snd, rcv, fromJID = r, i, jidR
		}
		evS, errS := snd.Send(st.j)
		evR, errR := rcv.Receive(fromJID, st.j)
		if (errS == nil) != (errR == nil) {
			t.Fatalf("step %d %s from %s: sender says %v, receiver says %v", n, st.j.Action, st.from, errS, errR)
		}
		if errS != nil {
			if n != len(steps)-1 {
				t.Fatalf("step %d %s from %s: %v", n, st.j.Action, st.from, errS)
			}
			return Event{}, errR
		}
		if evS.State != evR.State {
			t.Fatalf("step %d: states differ: %s %s", n, evS.State, evR.State)
		}
		ev = evR
	}
	return ev, nil
}

func wantActionError(t *testing.T, err error, cond string, jc ErrorCondition) {
	t.Helper()
	var ae *ActionError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an *ActionError %s/%s", err, cond, jc)
	}
	if ae.Condition != cond || ae.Jingle != jc {
		t.Fatalf("got %s/%s (%v), want %s/%s", ae.Condition, ae.Jingle, ae, cond, jc)
	}
	if !strings.HasPrefix(ae.Error(), "jingle: ") {
		t.Errorf("message %q", ae.Error())
	}
	p := string(ae.Payload())
	if !strings.Contains(p, "<"+cond+" ") || jc != "" && !strings.Contains(p, "<"+string(jc)+" ") {
		t.Errorf("payload %s", p)
	}
}

var (
	keyAudio = ContentKey{CreatorInitiator, "audio"}
	keyVideo = ContentKey{CreatorInitiator, "video"}
	keyRVid  = ContentKey{CreatorResponder, "rvideo"}
)

func accept() step {
	return step{CreatorResponder, jg(ActionSessionAccept, rtp("audio", CreatorInitiator, "ufR1"))}
}

// TestSessionTransitions runs both parties through every action, legal
// and illegal, and checks that they agree on the outcome.
func TestSessionTransitions(t *testing.T) {
	const (
		unexpected = CondUnexpectedRequest
		notFound   = CondItemNotFound
		bad        = CondBadRequest
	)
	tests := []struct {
		name  string
		steps []step
		cond  string         // "" = success
		jc    ErrorCondition // with cond
		check func(t *testing.T, ev Event, i, r *Session)
	}{
		{"accept", []step{accept()}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if ev.State != StateActive || i.State() != StateActive || r.State() != StateActive || len(ev.Accepted) != 1 {
				t.Errorf("event %+v", ev)
			}
			if u, _ := i.Credentials(CreatorResponder, keyAudio); u != "ufR1" {
				t.Errorf("responder ufrag %q", u)
			}
			if c := i.Contents(); len(c) != 1 || c[0].Transport.Ufrag != "ufR1" {
				t.Errorf("contents after accept %+v", c)
			}
		}},
		{"accept by initiator", []step{{CreatorInitiator, jg(ActionSessionAccept, rtp("audio", CreatorInitiator, "ufI1"))}}, unexpected, ErrOutOfOrder, nil},
		{"accept twice", []step{accept(), accept()}, unexpected, ErrOutOfOrder, nil},
		{"accept unknown content", []step{{CreatorResponder, jg(ActionSessionAccept, rtp("other", CreatorInitiator, "ufR1"))}}, bad, "", nil},
		{"accept leaves a content out", []step{
			{CreatorInitiator, jg(ActionContentAdd, rtp("video", CreatorInitiator, "ufI1"))}, // pending, accepted by session-accept below? no: left out
			{CreatorResponder, jg(ActionSessionAccept, rtp("video", CreatorInitiator, "ufR1"))},
		}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if len(ev.Removed) != 1 || ev.Removed[0] != keyAudio || len(ev.Accepted) != 1 || ev.Accepted[0] != keyVideo {
				t.Errorf("event %+v", ev)
			}
			if _, ok := i.Status(keyAudio); ok {
				t.Error("audio still there")
			}
		}},
		{"initiate again", []step{{CreatorInitiator, jg(ActionSessionInitiate, rtp("audio", CreatorInitiator, "ufI1"))}}, unexpected, ErrOutOfOrder, nil},
		{"initiate again after accept", []step{accept(), {CreatorResponder, jg(ActionSessionInitiate, rtp("x", CreatorInitiator, "ufI1"))}}, unexpected, ErrOutOfOrder, nil},
		{"terminate pending", []step{{CreatorResponder, jg(ActionSessionTerminate)}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if ev.State != StateEnded || ev.Reason.Condition != ReasonSuccess {
				t.Errorf("event %+v", ev)
			}
			if _, byPeer := i.Reason(); !byPeer {
				t.Error("initiator should see the peer end it")
			}
			if _, byPeer := r.Reason(); byPeer {
				t.Error("responder ended it itself")
			}
		}},
		{"anything after terminate", []step{accept(), {CreatorInitiator, jg(ActionSessionTerminate)}, {CreatorResponder, jg(ActionSessionInfo)}}, notFound, ErrUnknownSession, nil},
		{"terminate twice", []step{{CreatorInitiator, jg(ActionSessionTerminate)}, {CreatorResponder, jg(ActionSessionTerminate)}}, notFound, ErrUnknownSession, nil},
		{"terminate without reason", []step{{CreatorInitiator, &Jingle{Action: ActionSessionTerminate, SID: sid}}}, bad, "", nil},
		{"session-info ping", []step{{CreatorResponder, jg(ActionSessionInfo)}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if !ev.Ping || ev.State != StatePending {
				t.Errorf("event %+v", ev)
			}
		}},
		{"ringing", []step{{CreatorResponder, NewSessionInfo(sid, RTPInfo{Kind: InfoRinging})}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if ev.Ping {
				t.Error("ringing is not a ping")
			}
		}},
		{"trickle before accept", []step{{CreatorResponder, jg(ActionTransportInfo, trickle("audio", CreatorInitiator, "ufR1"))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if len(ev.ICERestart) != 0 {
				t.Errorf("first credentials are no restart: %+v", ev)
			}
		}},
		{"trickle same ufrag", []step{accept(), {CreatorInitiator, jg(ActionTransportInfo, trickle("audio", CreatorInitiator, "ufI1"))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if len(ev.ICERestart) != 0 {
				t.Errorf("event %+v", ev)
			}
		}},
		{"ICE restart", []step{accept(), {CreatorResponder, jg(ActionTransportInfo, trickle("audio", CreatorInitiator, "ufR2"))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if len(ev.ICERestart) != 1 || ev.ICERestart[0] != keyAudio {
				t.Errorf("event %+v", ev)
			}
			if u, _ := i.Credentials(CreatorResponder, keyAudio); u != "ufR2" {
				t.Errorf("ufrag %q", u)
			}
		}},
		{"ICE restart without candidates", []step{accept(), {CreatorInitiator, jg(ActionTransportInfo, Content{Creator: CreatorInitiator, Name: "audio",
			Transport: &Transport{Ufrag: "ufI2", Pwd: "ufI20123456789abcdefghijkl"}})}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if len(ev.ICERestart) != 1 {
				t.Errorf("event %+v", ev)
			}
		}},
		{"trickle unknown content", []step{{CreatorInitiator, jg(ActionTransportInfo, trickle("nope", CreatorInitiator, "ufI1"))}}, bad, "", nil},
		{"trickle wrong creator", []step{{CreatorInitiator, jg(ActionTransportInfo, trickle("audio", CreatorResponder, "ufI1"))}}, bad, "", nil},
		{"content-add and accept", []step{accept(),
			{CreatorResponder, jg(ActionContentAdd, rtp("rvideo", CreatorResponder, "ufR1"))},
			{CreatorInitiator, jg(ActionContentAccept, rtp("rvideo", CreatorResponder, "ufI1"))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if s, _ := i.Status(keyRVid); s != ContentActive || len(ev.Accepted) != 1 {
				t.Errorf("status %v event %+v", s, ev)
			}
		}},
		{"content-add pending", []step{accept(), {CreatorInitiator, jg(ActionContentAdd, rtp("video", CreatorInitiator, "ufI1"))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if s, _ := r.Status(keyVideo); s != ContentAdding || len(ev.Added) != 1 {
				t.Errorf("status %v event %+v", s, ev)
			}
		}},
		{"content-add wrong creator", []step{accept(), {CreatorResponder, jg(ActionContentAdd, rtp("video", CreatorInitiator, "ufR1"))}}, bad, "", nil},
		{"content-add existing", []step{accept(), {CreatorInitiator, jg(ActionContentAdd, rtp("audio", CreatorInitiator, "ufI1"))}}, bad, "", nil},
		{"content-accept of own add", []step{accept(),
			{CreatorResponder, jg(ActionContentAdd, rtp("rvideo", CreatorResponder, "ufR1"))},
			{CreatorResponder, jg(ActionContentAccept, ref("rvideo", CreatorResponder))}}, unexpected, ErrOutOfOrder, nil},
		{"content-accept of nothing pending", []step{accept(), {CreatorInitiator, jg(ActionContentAccept, ref("audio", CreatorInitiator))}}, unexpected, ErrOutOfOrder, nil},
		{"content-reject", []step{accept(),
			{CreatorInitiator, jg(ActionContentAdd, rtp("video", CreatorInitiator, "ufI1"))},
			{CreatorResponder, jg(ActionContentReject, ref("video", CreatorInitiator))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if len(ev.Removed) != 1 || ev.Empty {
				t.Errorf("event %+v", ev)
			}
			if _, ok := r.Status(keyVideo); ok {
				t.Error("rejected content kept")
			}
		}},
		{"content-remove last", []step{accept(), {CreatorResponder, jg(ActionContentRemove, ref("audio", CreatorInitiator))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if !ev.Empty || len(i.Contents()) != 0 || ev.State != StateActive {
				t.Errorf("event %+v", ev)
			}
		}},
		{"content-remove in pending", []step{{CreatorInitiator, jg(ActionContentRemove, ref("audio", CreatorInitiator))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if !ev.Empty {
				t.Errorf("event %+v", ev)
			}
		}},
		{"content-remove unknown", []step{accept(), {CreatorResponder, jg(ActionContentRemove, ref("x", CreatorInitiator))}}, bad, "", nil},
		{"content-modify", []step{accept(), {CreatorResponder, jg(ActionContentModify, modify("audio", CreatorInitiator, SendersInitiator))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if c := i.Contents(); c[0].Senders != SendersInitiator || len(ev.Modified) != 1 {
				t.Errorf("senders %q event %+v", c[0].Senders, ev)
			}
		}},
		{"content-modify of pending add", []step{accept(),
			{CreatorInitiator, jg(ActionContentAdd, rtp("video", CreatorInitiator, "ufI1"))},
			{CreatorInitiator, jg(ActionContentModify, modify("video", CreatorInitiator, SendersNone))}}, unexpected, ErrOutOfOrder, nil},
		{"content-modify without senders", []step{accept(), {CreatorInitiator, jg(ActionContentModify, ref("audio", CreatorInitiator))}}, bad, "", nil},
		{"transport-replace and accept", []step{accept(),
			{CreatorInitiator, jg(ActionTransportReplace, trickle("audio", CreatorInitiator, "ufI3"))},
			{CreatorResponder, jg(ActionTransportAccept, trickle("audio", CreatorInitiator, "ufR3"))}}, "", "", func(t *testing.T, ev Event, i, r *Session) {
			if c := i.Contents(); c[0].Transport.Ufrag != "ufR3" {
				t.Errorf("transport %+v", c[0].Transport)
			}
		}},
		{"transport-reject", []step{accept(),
			{CreatorInitiator, jg(ActionTransportReplace, trickle("audio", CreatorInitiator, "ufI3"))},
			{CreatorResponder, jg(ActionTransportReject, trickle("audio", CreatorInitiator, "ufR3"))},
			{CreatorResponder, jg(ActionTransportAccept, trickle("audio", CreatorInitiator, "ufR3"))}}, unexpected, ErrOutOfOrder, nil},
		{"transport-accept by replacer", []step{accept(),
			{CreatorInitiator, jg(ActionTransportReplace, trickle("audio", CreatorInitiator, "ufI3"))},
			{CreatorInitiator, jg(ActionTransportAccept, trickle("audio", CreatorInitiator, "ufI3"))}}, unexpected, ErrOutOfOrder, nil},
		{"transport-replace twice", []step{accept(),
			{CreatorInitiator, jg(ActionTransportReplace, trickle("audio", CreatorInitiator, "ufI3"))},
			{CreatorInitiator, jg(ActionTransportReplace, trickle("audio", CreatorInitiator, "ufI4"))}}, unexpected, ErrOutOfOrder, nil},
		{"description-info", []step{accept(), {CreatorInitiator, jg(ActionDescriptionInfo, rtp("audio", CreatorInitiator, "ufI1"))}}, "", "", nil},
		{"description-info unknown", []step{accept(), {CreatorInitiator, jg(ActionDescriptionInfo, rtp("x", CreatorInitiator, "ufI1"))}}, bad, "", nil},
		{"security-info", []step{{CreatorResponder, jg(ActionSecurityInfo, ref("audio", CreatorInitiator))}}, "", "", nil},
		{"unknown action", []step{{CreatorInitiator, &Jingle{Action: "session-dance", SID: sid}}}, bad, "", nil},
		{"wrong sid", []step{{CreatorInitiator, &Jingle{Action: ActionSessionInfo, SID: "other"}}}, notFound, ErrUnknownSession, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i, r := newPair(t)
			ev, err := run(t, i, r, tc.steps...)
			if tc.cond != "" {
				wantActionError(t, err, tc.cond, tc.jc)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, ev, i, r)
			}
		})
	}
}

// TestSimultaneousActions: crossing content-adds and transport-replaces
// in an existing session go to the initiator (XEP-0166 §7.2.16).
func TestSimultaneousActions(t *testing.T) {
	i, r := newPair(t)
	if _, err := run(t, i, r, accept()); err != nil {
		t.Fatal(err)
	}
	iAdd := jg(ActionContentAdd, rtp("video", CreatorInitiator, "ufI1"))
	rAdd := jg(ActionContentAdd, rtp("rvideo", CreatorResponder, "ufR1"))
	if _, err := i.Send(iAdd); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Send(rAdd); err != nil {
		t.Fatal(err)
	}
	// Each receives the other's.
	_, err := i.Receive(jidR, rAdd)
	wantActionError(t, err, CondConflict, ErrTieBreak)
	ev, err := r.Receive(jidI, iAdd)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Dropped) != 1 || ev.Dropped[0] != keyRVid || len(ev.Added) != 1 {
		t.Fatalf("responder event %+v", ev)
	}
	if _, ok := r.Status(keyRVid); ok {
		t.Fatal("the overruled content-add is still pending")
	}
	if _, err := run(t, i, r, step{CreatorResponder, jg(ActionContentAccept, rtp("video", CreatorInitiator, "ufR1"))}); err != nil {
		t.Fatal(err)
	}

	iRep := jg(ActionTransportReplace, trickle("audio", CreatorInitiator, "ufI5"))
	rRep := jg(ActionTransportReplace, trickle("audio", CreatorInitiator, "ufR5"))
	if _, err := i.Send(iRep); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Send(rRep); err != nil {
		t.Fatal(err)
	}
	_, err = i.Receive(jidR, rRep)
	wantActionError(t, err, CondConflict, ErrTieBreak)
	ev, err = r.Receive(jidI, iRep)
	if err != nil || len(ev.Dropped) != 1 {
		t.Fatalf("responder: %+v %v", ev, err)
	}
	if _, err := run(t, i, r, step{CreatorResponder, jg(ActionTransportAccept, trickle("audio", CreatorInitiator, "ufR6"))}); err != nil {
		t.Fatal(err)
	}
}

func TestSessionWrongSender(t *testing.T) {
	i, _ := newPair(t)
	_, err := i.Receive("mallory@example.org/x", jg(ActionSessionAccept, rtp("audio", CreatorInitiator, "ufR1")))
	wantActionError(t, err, CondItemNotFound, ErrUnknownSession)
	// Another resource of the peer's account is another party too.
	_, err = i.Receive("juliet@example.org/other", jg(ActionSessionTerminate))
	wantActionError(t, err, CondItemNotFound, ErrUnknownSession)
	if i.State() != StatePending {
		t.Fatal("refused stanzas changed the state")
	}
}

func TestNewSessionErrors(t *testing.T) {
	_, err := NewInitiator(jidI, jidR, jg(ActionSessionAccept, rtp("audio", CreatorInitiator, "ufI1")), t0)
	wantActionError(t, err, CondBadRequest, "")
	_, err = NewResponder(jidR, jidI, jg(ActionSessionInitiate, rtp("audio", CreatorResponder, "ufI1")), t0)
	wantActionError(t, err, CondBadRequest, "")
	_, err = NewResponder(jidR, jidI, jg(ActionSessionInitiate), t0)
	wantActionError(t, err, CondBadRequest, "")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("the validation error is not reachable: %v", err)
	}
	if _, err := NewInitiator(jidI, jidR, jg(ActionSessionInitiate, rtp("audio", CreatorInitiator, "ufI1")), t0, WithPendingTimeout(0)); err == nil {
		t.Error("zero timeout accepted")
	}
	s, err := NewInitiator(jidI, jidR, jg(ActionSessionInitiate, rtp("audio", CreatorInitiator, "ufI1")), t0)
	if err != nil {
		t.Fatal(err)
	}
	if s.SID() != sid || s.Role() != CreatorInitiator || s.PeerRole() != CreatorResponder || s.Peer() != jidR || s.Local() != jidI || !s.Created().Equal(t0) {
		t.Errorf("accessors: %s %s %s %s %s", s.SID(), s.Role(), s.PeerRole(), s.Peer(), s.Local())
	}
}

func TestSessionExpired(t *testing.T) {
	i, r := newPair(t)
	if _, ok := i.Expired(t0.Add(DefaultPendingTimeout - time.Nanosecond)); ok {
		t.Error("expired early")
	}
	if c, ok := i.Expired(t0.Add(DefaultPendingTimeout)); !ok || c != ReasonTimeout {
		t.Errorf("not expired at the timeout: %q %v", c, ok)
	}
	if _, err := run(t, i, r, accept()); err != nil {
		t.Fatal(err)
	}
	if _, ok := i.Expired(t0.Add(time.Hour)); ok {
		t.Error("an active session expired")
	}
	s, err := NewInitiator(jidI, jidR, jg(ActionSessionInitiate, rtp("audio", CreatorInitiator, "ufI1")), t0, WithPendingTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Expired(t0.Add(5 * time.Second)); !ok {
		t.Error("custom timeout ignored")
	}
	s.End(ReasonTimeout)
	if _, ok := s.Expired(t0.Add(time.Hour)); ok || s.State() != StateEnded {
		t.Error("an ended session expired")
	}
	if rs, _ := s.Reason(); rs.Condition != ReasonTimeout {
		t.Errorf("reason %+v", rs)
	}
}

func TestSessionTieBreak(t *testing.T) {
	video := func(name string) Content {
		c := rtp(name, CreatorInitiator, "ufR1")
		c.Description.Media = "video"
		return c
	}
	file := Content{Creator: CreatorInitiator, Name: "f", Other: []Raw{{XMLName: name("urn:xmpp:jingle:apps:file-transfer:5", "description")}},
		Transport: &Transport{Ufrag: "ufR1", Pwd: "ufR10123456789abcdefghijkl"}}
	tests := []struct {
		name      string
		ourSID    string
		theirSID  string
		local     string
		peer      string
		from      string
		theirs    Content
		accepted  bool
		want      TieBreakResult
		wantState State
	}{
		{"ours lower", "a", "b", jidI, jidR, jidR, rtp("audio", CreatorInitiator, "ufR1"), false, TieBreakOurs, StatePending},
		{"theirs lower", "b", "a", jidI, jidR, jidR, rtp("audio", CreatorInitiator, "ufR1"), false, TieBreakTheirs, StateEnded},
		{"video and audio are one application", "a", "b", jidI, jidR, jidR, video("v"), false, TieBreakOurs, StatePending},
		{"octet order", "B", "a", jidI, jidR, jidR, rtp("audio", CreatorInitiator, "ufR1"), false, TieBreakOurs, StatePending},
		{"same sid, our JID lower", "x", "x", jidR, jidI, jidI, rtp("audio", CreatorInitiator, "ufR1"), false, TieBreakOurs, StatePending},
		{"same sid, our JID higher", "x", "x", jidI, jidR, jidR, rtp("audio", CreatorInitiator, "ufR1"), false, TieBreakTheirs, StateEnded},
		{"other application", "a", "b", jidI, jidR, jidR, file, false, TieBreakNone, StatePending},
		{"other peer", "a", "b", jidI, jidR, "juliet@example.org/other", rtp("audio", CreatorInitiator, "ufR1"), false, TieBreakNone, StatePending},
		{"existing session", "a", "b", jidI, jidR, jidR, rtp("audio", CreatorInitiator, "ufR1"), true, TieBreakNone, StateActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ours := &Jingle{Action: ActionSessionInitiate, SID: tc.ourSID, Contents: []Content{rtp("audio", CreatorInitiator, "ufI1")}}
			s, err := NewInitiator(tc.local, tc.peer, ours, t0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.accepted {
				a := &Jingle{Action: ActionSessionAccept, SID: tc.ourSID, Contents: []Content{rtp("audio", CreatorInitiator, "ufR1")}}
				if _, err := s.Receive(tc.peer, a); err != nil {
					t.Fatal(err)
				}
			}
			theirs := &Jingle{Action: ActionSessionInitiate, SID: tc.theirSID, Contents: []Content{tc.theirs}}
			got, aerr := s.TieBreak(tc.from, theirs)
			if got != tc.want || s.State() != tc.wantState {
				t.Fatalf("got %s, state %s; want %s, %s", got, s.State(), tc.want, tc.wantState)
			}
			switch got {
			case TieBreakOurs:
				wantActionError(t, aerr, CondConflict, ErrTieBreak)
			case TieBreakTheirs:
				if r, _ := s.Reason(); r.Condition != ReasonAlternativeSession || r.AlternativeSID != tc.theirSID {
					t.Errorf("reason %+v", r)
				}
			}
			if got != TieBreakOurs && aerr != nil {
				t.Errorf("error %v with %s", aerr, got)
			}
		})
	}
	// The same sid delivered to a session as an ordinary initiate is out
	// of order.
	i, _ := newPair(t)
	_, err := i.Receive(jidR, jg(ActionSessionInitiate, rtp("audio", CreatorInitiator, "ufR1")))
	wantActionError(t, err, CondUnexpectedRequest, ErrOutOfOrder)
}

// TestSessionProperties sends random actions from both sides: nothing
// panics, a refused action changes nothing, ENDED is terminal, and the
// two parties always agree on the state.
func TestSessionProperties(t *testing.T) {
	names := []string{"audio", "video", "x"}
	creators := []Creator{CreatorInitiator, CreatorResponder}
	randContent := func(rng *rand.Rand, a Action) Content {
		n := names[rng.IntN(len(names))]
		cr := creators[rng.IntN(2)]
		uf := fmt.Sprintf("uf%02d", rng.IntN(4))
		switch a {
		case ActionTransportInfo, ActionTransportReplace, ActionTransportAccept, ActionTransportReject:
			return trickle(n, cr, uf)
		case ActionContentModify:
			return modify(n, cr, []Senders{SendersBoth, SendersNone, SendersInitiator, SendersResponder}[rng.IntN(4)])
		case ActionContentAccept, ActionContentReject, ActionContentRemove, ActionSecurityInfo:
			if rng.IntN(2) == 0 {
				return ref(n, cr)
			}
		}
		return rtp(n, cr, uf)
	}
	actions := []Action{ActionContentAccept, ActionContentAdd, ActionContentModify, ActionContentReject, ActionContentRemove,
		ActionDescriptionInfo, ActionSecurityInfo, ActionSessionAccept, ActionSessionInfo, ActionSessionInitiate,
		ActionSessionTerminate, ActionTransportAccept, ActionTransportInfo, ActionTransportReject, ActionTransportReplace}
	okCount := map[Action]int{}
	defer func() { t.Logf("accepted actions: %v", okCount) }()
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x6a696e676c65))
		i, r := newPair(t)
		for n := 0; n < 40; n++ {
			a := actions[rng.IntN(len(actions))]
			for a == ActionSessionTerminate && rng.IntN(10) != 0 {
				a = actions[rng.IntN(len(actions))] // let sessions live a while
			}
			j := &Jingle{Action: a, SID: sid}
			if rng.IntN(20) == 0 {
				j.SID = "other"
			}
			for k := rng.IntN(3); k > 0; k-- {
				c := randContent(rng, a)
				dup := false
				for _, e := range j.Contents {
					dup = dup || e.Name == c.Name
				}
				if !dup {
					j.Contents = append(j.Contents, c)
				}
			}
			if a == ActionSessionTerminate {
				j.Reason = &Reason{Condition: ReasonSuccess}
			}
			from, snd, rcv, fromJID := CreatorInitiator, i, r, jidI
			if rng.IntN(2) == 1 {
				from, snd, rcv, fromJID = CreatorResponder, r, i, jidR
			}
			_ = from
			wasEnded := snd.State() == StateEnded
			beforeS, beforeR := fmt.Sprint(snd.State(), contentsView(snd.Contents())), fmt.Sprint(rcv.State(), contentsView(rcv.Contents()))
			_, errS := snd.Send(j)
			_, errR := rcv.Receive(fromJID, j)
			if errS == nil {
				okCount[a]++
			}
			if (errS == nil) != (errR == nil) {
				t.Fatalf("seed %d step %d %s: sender %v, receiver %v", seed, n, a, errS, errR)
			}
			if errS != nil {
				var ae *ActionError
				if !errors.As(errS, &ae) || !errors.As(errR, &ae) {
					t.Fatalf("seed %d: not *ActionError: %v / %v", seed, errS, errR)
				}
				if fmt.Sprint(snd.State(), contentsView(snd.Contents())) != beforeS || fmt.Sprint(rcv.State(), contentsView(rcv.Contents())) != beforeR {
					t.Fatalf("seed %d step %d: refused %s changed the session", seed, n, a)
				}
			}
			if wasEnded {
				if errS == nil {
					t.Fatalf("seed %d: %s accepted after the end", seed, a)
				}
				wantActionError(t, errS, CondItemNotFound, ErrUnknownSession)
			}
			if a, b := contentsView(i.Contents()), contentsView(r.Contents()); a != b {
				t.Fatalf("seed %d step %d %s: contents differ:\n%s\n%s", seed, n, j.Action, a, b)
			}
			if i.State() != r.State() {
				t.Fatalf("seed %d step %d: states %s / %s", seed, n, i.State(), r.State())
			}
		}
	}
}

// TestSessionWithdrawReplace: a transport-replace whose IQ failed is
// withdrawn; another one may go out, and a late answer to the withdrawn
// one is out of order.
func TestSessionWithdrawReplace(t *testing.T) {
	for _, by := range []Creator{CreatorInitiator, CreatorResponder} {
		t.Run(string(by), func(t *testing.T) {
			i, r := newPair(t)
			if _, err := run(t, i, r, accept()); err != nil {
				t.Fatal(err)
			}
			snd, fromJID := i, jidR
			if by == CreatorResponder {
				snd, fromJID = r, jidI
			}
			rep := jg(ActionTransportReplace, rtp("audio", CreatorInitiator, "ufX1"))
			if _, err := snd.Send(rep); err != nil {
				t.Fatal(err)
			}
			_, err := snd.Send(jg(ActionTransportReplace, rtp("audio", CreatorInitiator, "ufX2")))
			wantActionError(t, err, CondUnexpectedRequest, ErrOutOfOrder)
			if err := snd.WithdrawReplace(rep); err != nil {
				t.Fatal(err)
			}
			if err := snd.WithdrawReplace(rep); err == nil {
				t.Fatal("withdrew a replace twice")
			}
			// The peer's late answer of the withdrawn replace.
			_, err = snd.Receive(fromJID, jg(ActionTransportAccept, rtp("audio", CreatorInitiator, "ufY1")))
			wantActionError(t, err, CondUnexpectedRequest, ErrOutOfOrder)
			// The next replace goes out and is answered as usual.
			if _, err := run(t, i, r, step{by, jg(ActionTransportReplace, rtp("audio", CreatorInitiator, "ufX3"))},
				step{other(by), jg(ActionTransportAccept, rtp("audio", CreatorInitiator, "ufY2"))}); err != nil {
				t.Fatal(err)
			}
		})
	}
	i, _ := newPair(t)
	if err := i.WithdrawReplace(jg(ActionTransportInfo, rtp("audio", CreatorInitiator, "ufX1"))); err == nil {
		t.Fatal("withdrew a transport-info")
	}
	if err := i.WithdrawReplace(jg(ActionTransportReplace, rtp("audio", CreatorInitiator, "ufX1"))); err == nil {
		t.Fatal("withdrew a replace never sent")
	}
}
