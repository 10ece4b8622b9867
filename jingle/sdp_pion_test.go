package jingle

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// newLoopbackPC makes a pion PeerConnection that gathers only UDP4 host
// candidates on 127.0.0.1.
func newLoopbackPC(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(string) bool { return true })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// addMedia adds a sendrecv audio transceiver, a video track (so the
// section has ssrc and msid lines) and optionally a data channel.
func addMedia(t testing.TB, pc *webrtc.PeerConnection, dataChannel bool) {
	t.Helper()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(tr); err != nil {
		t.Fatal(err)
	}
	if dataChannel {
		if _, err := pc.CreateDataChannel("dc", nil); err != nil {
			t.Fatal(err)
		}
	}
}

// gathered sets d as pc's local description and returns it with every
// candidate in it.
func gathered(t testing.TB, pc *webrtc.PeerConnection, d webrtc.SessionDescription) string {
	t.Helper()
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	<-done
	return pc.LocalDescription().SDP
}

// viaJingle translates an SDP of author to Jingle and back.
func viaJingle(t testing.TB, text string, author Creator) string {
	t.Helper()
	contents, groups, err := SDPToJingleAs(text, author)
	if err != nil {
		t.Fatalf("SDPToJingleAs: %v\n%s", err, text)
	}
	out, err := JingleToSDPAs(contents, groups, 4242, author)
	if err != nil {
		t.Fatalf("JingleToSDPAs: %v", err)
	}
	return out
}

// semMedia is what the translation must keep of one media section.
type semMedia struct {
	Media, Proto, Mid, Direction       string
	Formats                            []string
	RTPMap, FMTP, FB, ExtMap, SSRC     []string
	SSRCGroup, MSID, Candidates, Crypt []string
	Ufrag, Pwd, Fingerprint, Setup     string
	Mux, RSize, AllowMixed             bool
	SCTPPort, MaxMessageSize           string
}

type semSession struct {
	Groups []string
	Media  []semMedia
}

// semantic parses text with pion/sdp and extracts what the Jingle
// mapping carries, resolving session-level defaults and normalizing
// spelling (fmtp parameter order, candidate extensions).
func semantic(t testing.TB, text string) semSession {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(text); err != nil {
		t.Fatalf("pion/sdp cannot parse: %v\n%s", err, text)
	}
	var s semSession
	var sessUfrag, sessPwd, sessFP, sessSetup string
	sessMixed := false
	for _, a := range sd.Attributes {
		switch a.Key {
		case "group":
			s.Groups = append(s.Groups, a.Value)
		case "ice-ufrag":
			sessUfrag = a.Value
		case "ice-pwd":
			sessPwd = a.Value
		case "fingerprint":
			sessFP = strings.ToLower(a.Value)
		case "setup":
			sessSetup = a.Value
		case "extmap-allow-mixed":
			sessMixed = true
		}
	}
	for _, md := range sd.MediaDescriptions {
		m := semMedia{
			Media: md.MediaName.Media, Proto: strings.Join(md.MediaName.Protos, "/"),
			Formats: md.MediaName.Formats, Direction: "sendrecv",
			Ufrag: sessUfrag, Pwd: sessPwd, Fingerprint: sessFP, Setup: sessSetup, AllowMixed: sessMixed,
		}
		if md.MediaName.Media == "application" {
			m.AllowMixed = false
		}
		for _, a := range md.Attributes {
			switch a.Key {
			case "mid":
				m.Mid = a.Value
			case "sendrecv", "sendonly", "recvonly", "inactive":
				m.Direction = a.Key
			case "rtpmap":
				m.RTPMap = append(m.RTPMap, strings.TrimSuffix(a.Value, "/1"))
			case "fmtp":
				pt, params, _ := strings.Cut(a.Value, " ")
				ps := strings.Split(params, ";")
				for i := range ps {
					ps[i] = strings.TrimSpace(ps[i])
				}
				sort.Strings(ps)
				m.FMTP = append(m.FMTP, pt+" "+strings.Join(ps, ";"))
			case "rtcp-fb":
				m.FB = append(m.FB, a.Value)
			case "extmap":
				m.ExtMap = append(m.ExtMap, a.Value)
			case "ssrc":
				m.SSRC = append(m.SSRC, a.Value)
			case "ssrc-group":
				m.SSRCGroup = append(m.SSRCGroup, a.Value)
			case "msid":
				m.MSID = append(m.MSID, a.Value)
			case "crypto":
				m.Crypt = append(m.Crypt, a.Value)
			case "candidate":
				c, err := CandidateFromSDP("x", a.Value)
				if err != nil {
					continue // TCP: not carried
				}
				m.Candidates = append(m.Candidates, CandidateToSDP(c))
			case "ice-ufrag":
				m.Ufrag = a.Value
			case "ice-pwd":
				m.Pwd = a.Value
			case "fingerprint":
				m.Fingerprint = strings.ToLower(a.Value)
			case "setup":
				m.Setup = a.Value
			case "rtcp-mux":
				m.Mux = true
			case "rtcp-rsize":
				m.RSize = true
			case "extmap-allow-mixed":
				m.AllowMixed = true
			case "sctp-port":
				m.SCTPPort = a.Value
			case "max-message-size":
				m.MaxMessageSize = a.Value
			}
		}
		for _, l := range [][]string{m.RTPMap, m.FMTP, m.FB, m.ExtMap, m.SSRC, m.SSRCGroup, m.MSID, m.Candidates, m.Crypt} {
			sort.Strings(l)
		}
		s.Media = append(s.Media, m)
	}
	return s
}

func diffSemantic(t testing.TB, want, got semSession) {
	t.Helper()
	if !slices.Equal(want.Groups, got.Groups) {
		t.Errorf("groups: want %q got %q", want.Groups, got.Groups)
	}
	if len(want.Media) != len(got.Media) {
		t.Fatalf("media sections: want %d got %d", len(want.Media), len(got.Media))
	}
	for i := range want.Media {
		w, g := fmt.Sprintf("%+v", want.Media[i]), fmt.Sprintf("%+v", got.Media[i])
		if w != g {
			t.Errorf("media %d:\nwant %s\ngot  %s", i, w, g)
		}
	}
}

// TestPionRoundTrip: pion offers and answers survive SDP -> Jingle -> SDP
// with the same media, mids, payloads, fmtp, feedback, extmaps, sources,
// ICE, fingerprint, setup, direction and bundle, and pion accepts the
// result as a remote description.
func TestPionRoundTrip(t *testing.T) {
	for _, dc := range []bool{false, true} {
		t.Run(fmt.Sprintf("datachannel=%v", dc), func(t *testing.T) {
			a, b := newLoopbackPC(t), newLoopbackPC(t)
			addMedia(t, a, dc)
			addMedia(t, b, false)
			offer, err := a.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			offerSDP := gathered(t, a, offer)
			if n := len(semantic(t, offerSDP).Media[0].Candidates); n == 0 {
				t.Fatal("pion gathered no candidate: nothing to compare")
			}
			offer2 := viaJingle(t, offerSDP, CreatorInitiator)
			diffSemantic(t, semantic(t, offerSDP), semantic(t, offer2))
			if err := b.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer2}); err != nil {
				t.Fatalf("pion refuses the translated offer: %v\n%s", err, offer2)
			}
			answer, err := b.CreateAnswer(nil)
			if err != nil {
				t.Fatal(err)
			}
			answerSDP := gathered(t, b, answer)
			answer2 := viaJingle(t, answerSDP, CreatorResponder)
			diffSemantic(t, semantic(t, answerSDP), semantic(t, answer2))
			if err := a.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer2}); err != nil {
				t.Fatalf("pion refuses the translated answer: %v\n%s", err, answer2)
			}
		})
	}
}

// TestPionDirections: recvonly and sendonly transceivers keep their
// direction through Jingle on both sides of the offer/answer.
func TestPionDirections(t *testing.T) {
	a, b := newLoopbackPC(t), newLoopbackPC(t)
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	offerSDP := gathered(t, a, offer)
	contents, _, err := SDPToJingle(offerSDP)
	if err != nil {
		t.Fatal(err)
	}
	if contents[0].Senders != SendersInitiator || contents[1].Senders != SendersResponder {
		t.Fatalf("offer senders %q %q, want initiator responder", contents[0].Senders, contents[1].Senders)
	}
	offer2 := viaJingle(t, offerSDP, CreatorInitiator)
	diffSemantic(t, semantic(t, offerSDP), semantic(t, offer2))
	if err := b.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer2}); err != nil {
		t.Fatal(err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	answerSDP := gathered(t, b, answer)
	contents, _, err = SDPToJingleAs(answerSDP, CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	// b answers the sendonly audio with recvonly (initiator sends) and
	// the recvonly video with inactive (b has no video track).
	if contents[0].Senders != SendersInitiator {
		t.Fatalf("answer audio senders %q, want initiator", contents[0].Senders)
	}
	answer2 := viaJingle(t, answerSDP, CreatorResponder)
	diffSemantic(t, semantic(t, answerSDP), semantic(t, answer2))
	if err := a.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer2}); err != nil {
		t.Fatal(err)
	}
}

// throughXML serializes j, parses it back and validates it: what a peer
// receives.
func throughXML(t testing.TB, j *Jingle) *Jingle {
	t.Helper()
	b, err := j.Marshal()
	if err != nil {
		t.Fatalf("Marshal %s: %v", j.Action, err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse %s: %v\n%s", j.Action, err, b)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("Validate %s: %v\n%s", j.Action, err, b)
	}
	return got
}

// TestPionCallThroughJingle: two pion peers whose whole signaling passes
// through Jingle structs — offer and answer as contents, every trickled
// candidate as a Jingle Candidate — connect over loopback.
func TestPionCallThroughJingle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard, not a speed check
	defer cancel()
	a, b := newLoopbackPC(t), newLoopbackPC(t)
	// No data channel: its content has no application description until
	// the caller adds one (e.g. a file transfer), and Validate wants one.
	addMedia(t, a, false)
	addMedia(t, b, false)

	type trickle struct {
		mid  string
		cand Candidate
	}
	// trickleOut turns pc's candidates into Jingle candidates.
	trickleOut := func(pc *webrtc.PeerConnection) <-chan trickle {
		ch := make(chan trickle, 64)
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				close(ch)
				return
			}
			init := c.ToJSON()
			mid := "0"
			if init.SDPMid != nil && *init.SDPMid != "" {
				mid = *init.SDPMid
			}
			jc, err := CandidateFromSDP(mid, init.Candidate)
			if err != nil {
				t.Errorf("CandidateFromSDP(%q): %v", init.Candidate, err)
				return
			}
			// A transport-info, through XML.
			ti := throughXML(t, &Jingle{Action: ActionTransportInfo, SID: "sid1", Contents: []Content{{
				Creator: CreatorInitiator, Name: mid, Transport: &Transport{Candidates: []Candidate{jc}}}}})
			ch <- trickle{ti.Contents[0].Name, ti.Contents[0].Transport.Candidates[0]}
		})
		return ch
	}
	trickleIn := func(pc *webrtc.PeerConnection, ch <-chan trickle) {
		for tr := range ch {
			line := CandidateToSDP(tr.cand)
			if line == "" {
				t.Errorf("CandidateToSDP refused %+v", tr.cand)
				continue
			}
			mid := tr.mid
			if err := pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: line, SDPMid: &mid}); err != nil {
				t.Errorf("AddICECandidate(%q): %v", line, err)
			}
		}
	}
	aOut, bOut := trickleOut(a), trickleOut(b)

	connected := func(pc *webrtc.PeerConnection) <-chan struct{} {
		ch := make(chan struct{})
		var once bool
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected && !once {
				once = true
				close(ch)
			}
		})
		return ch
	}
	aUp, bUp := connected(a), connected(b)

	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	// session-initiate: the offer as Jingle, without candidates (they trickle).
	initContents, groups, err := SDPToJingle(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	initiate := throughXML(t, &Jingle{Action: ActionSessionInitiate, SID: "sid1", Initiator: "a@example.org/x", Contents: initContents, Groups: groups})
	offerSDP, err := JingleToSDP(initiate.Contents, initiate.Groups, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		t.Fatal(err)
	}
	go trickleIn(b, aOut)
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	acceptContents, groups, err := SDPToJingleAs(answer.SDP, CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	if f := acceptContents[0].Transport.Fingerprint; f == nil || f.Setup != SetupActive {
		t.Fatalf("answer fingerprint %+v, want setup active", f)
	}
	accept := throughXML(t, &Jingle{Action: ActionSessionAccept, SID: "sid1", Responder: "b@example.org/y", Contents: acceptContents, Groups: groups})
	answerSDP, err := JingleToSDPAs(accept.Contents, accept.Groups, 2, CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answerSDP}); err != nil {
		t.Fatal(err)
	}
	go trickleIn(a, bOut)
	for _, up := range []<-chan struct{}{aUp, bUp} {
		select {
		case <-up:
		case <-ctx.Done():
			t.Fatalf("not connected: a %s/%s, b %s/%s", a.ICEConnectionState(), a.ConnectionState(), b.ICEConnectionState(), b.ConnectionState())
		}
	}
}
