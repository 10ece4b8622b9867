package gateway

// Fuzzing of the call channel's entry points as the gateway chains them
// (review of issue 8): a protected Jingle request goes through Parse,
// Validate, the session machine, classifyOffer, the candidate filter and
// the SDP translation that pion is handed; a JMI element through ParseJMI
// and the proposal machine (tie-break included).

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

var reviewJingleEl = regexp.MustCompile(`(?s)<jingle .*?</jingle>`)
var reviewJMIEl = regexp.MustCompile(`(?s)<(propose|proceed|ringing|accept|reject|retract|finish) [^>]*xmlns=['"]urn:xmpp:jingle-message:0['"].*?(/>|</(propose|proceed|ringing|accept|reject|retract|finish)>)`)

func reviewSeeds(f *testing.F, re *regexp.Regexp) {
	var files []string
	for _, g := range []string{"../jingle/testdata/conversations/*.xml", "/work/shared/testdata/xep-examples/xep0166-*.xml",
		"/work/shared/testdata/xep-examples/xep0167-*.xml", "/work/shared/testdata/xep-examples/xep0176-*.xml",
		"/work/shared/testdata/xep-examples/xep0320-*.xml", "/work/shared/testdata/xep-examples/xep0353-*.xml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, m := range re.FindAll(b, -1) {
			f.Add(m)
		}
	}
}

// FuzzReviewCallJingle: whatever arrives in a protected Jingle IQ, the
// checks the gateway runs before and after queueing it never panic.
func FuzzReviewCallJingle(f *testing.F) {
	reviewSeeds(f, reviewJingleEl)
	t0 := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, prot, why := unprotectedJingleFacts(b)
		_, _, _ = kind, prot, why
		j, err := jingle.Parse(b)
		if err != nil {
			return
		}
		if j.Validate() != nil {
			return
		}
		cl := classifyOffer(j, policy.SignalingProtected)
		_ = cl
		for i := range j.Contents {
			if tr := j.Contents[i].Transport; tr != nil {
				for _, c := range tr.Candidates {
					_ = candidateAddrErr(c.IP, func(netip.Addr) bool { return false })
					_ = jingle.CandidateToSDP(c)
				}
			}
		}
		for _, as := range []jingle.Creator{jingle.CreatorInitiator, jingle.CreatorResponder} {
			s, err := jingle.JingleToSDPAs(j.Contents, j.Groups, 1, as)
			if err == nil {
				var sd sdp.SessionDescription
				_ = sd.UnmarshalString(s)
				_ = withCredentials(s, "abcd", "abcdefghijklmnopqrstuv")
				_ = sdpMids(s)
			}
		}
		if j.Action == jingle.ActionSessionInitiate {
			sess, err := jingle.NewResponder("bob@x/b", "alice@x/a", j, t0)
			if err == nil {
				for _, a := range []jingle.Action{jingle.ActionTransportInfo, jingle.ActionSessionInfo, jingle.ActionSessionTerminate} {
					k := *j
					k.Action = a
					sess.Receive("alice@x/a", &k)
				}
			}
		} else {
			init := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: j.SID, Initiator: "alice@x/a", Contents: j.Contents, Groups: j.Groups}
			if sess, err := jingle.NewInitiator("alice@x/a", "bob@x/b", init, t0); err == nil {
				sess.Receive("bob@x/b", j)
				sess.Receive("bob@x/b", j)
			}
		}
	})
}

// FuzzReviewCallJMI: a JMI element from a certified device, through the
// proposal machines of both sides and the tie-break.
func FuzzReviewCallJMI(f *testing.F) {
	reviewSeeds(f, reviewJMIEl)
	t0 := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := jingle.ParseJMI(b)
		if err != nil {
			return
		}
		_ = m.Media()
		m.DeviceID()
		prop := &jingle.JMI{Kind: jingle.JMIPropose, ID: "zzz", Descriptions: []jingle.Description{{Media: "audio"}}}
		if out, err := jingle.NewOutgoingProposal("alice@x/a", "bob@x", prop, t0); err == nil {
			out.TieBreak("bob@x/b", m)
			out.Receive("bob@x/b", m)
			out.Receive("bob@x/b", m)
		}
		if m.Kind == jingle.JMIPropose {
			if in, err := jingle.NewIncomingProposal("bob@x/b", "alice@x/a", m, t0); err == nil {
				in.Receive("alice@x/a", m)
				in.Receive("bob@x/c", m)
				in.Migrate("alice@x/a", m)
			}
		}
		if x, err := m.Marshal(); err == nil {
			jingle.ParseJMI(x)
		}
	})
}
