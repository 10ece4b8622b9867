package jingle

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/browsertest"
)

// pageJS sets up window.pc in the test page: an RTCPeerConnection with
// helpers to wait for gathering.
const pageJS = `
window.gathered = (pc) => new Promise((resolve) => {
  if (pc.iceGatheringState === "complete") { resolve(); return; }
  pc.addEventListener("icegatheringstatechange", () => {
    if (pc.iceGatheringState === "complete") resolve();
  });
});
window.pc = new RTCPeerConnection();
true`

func chromiumPage(t *testing.T) *browsertest.Browser {
	t.Helper()
	b := browsertest.Start(t, nil)
	browsertest.Open(t, b.Tab(), browsertest.BlankPage(t))
	if _, err := browsertest.Eval[bool](b.Tab(), pageJS, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestChromiumOffer: Chromium's offer (audio and video transceivers)
// goes through Jingle to a pion answerer; the answer goes through Jingle
// back to Chromium, which accepts it.
func TestChromiumOffer(t *testing.T) {
	setups := map[string]string{
		// Bare transceivers: no track, no permission needed.
		"transceivers": `pc.addTransceiver("audio"); pc.addTransceiver("video");`,
		// Fake camera and microphone: sources with msid.
		"tracks": `const s = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  pc.addTrack(s.getAudioTracks()[0], s); pc.addTrack(s.getVideoTracks()[0], s);`,
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) { chromiumOffer(t, setup) })
	}
}

func chromiumOffer(t *testing.T, setup string) {
	b := chromiumPage(t)
	offer, err := browsertest.Eval[string](b.Tab(), `(async () => {
  `+setup+`
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return pc.localDescription.sdp;
})()`, 0)
	if err != nil {
		t.Fatal(err)
	}
	contents, groups, err := SDPToJingle(offer)
	if err != nil {
		t.Fatalf("Chromium's offer: %v\n%s", err, offer)
	}
	if len(contents) != 2 || contents[0].Description.Media != "audio" || contents[1].Description.Media != "video" {
		t.Fatalf("contents %s", contentsView(contents))
	}
	if strings.Contains(setup, "getUserMedia") {
		if d := contents[1].Description; len(d.Sources) != 2 || len(d.SSRCGroups) != 1 || !sdpHasParamName(d.Sources[0].Parameters, "msid") {
			t.Errorf("video sources %+v groups %+v", d.Sources, d.SSRCGroups)
		}
	}
	offer2, err := JingleToSDP(contents, groups, 11)
	if err != nil {
		t.Fatal(err)
	}
	diffSemantic(t, semantic(t, offer), semantic(t, offer2))

	p := newLoopbackPC(t)
	addMedia(t, p, false)
	if err := p.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer2}); err != nil {
		t.Fatalf("pion refuses Chromium's offer through Jingle: %v\n%s", err, offer2)
	}
	answer, err := p.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	answerSDP := gathered(t, p, answer)
	answer2 := viaJingle(t, answerSDP, CreatorResponder)
	state, err := browsertest.Eval[string](b.Tab(), `(async () => {
  await pc.setRemoteDescription({type: "answer", sdp: `+jsString(answer2)+`});
  return pc.signalingState;
})()`, 0)
	if err != nil {
		t.Fatalf("Chromium refuses pion's answer through Jingle: %v\n%s", err, answer2)
	}
	if state != "stable" {
		t.Fatalf("signaling state %q", state)
	}
}

// TestChromiumAnswer: a pion offer goes through Jingle to Chromium, whose
// answer goes through Jingle back to pion.
func TestChromiumAnswer(t *testing.T) {
	b := chromiumPage(t)
	p := newLoopbackPC(t)
	addMedia(t, p, false)
	offer, err := p.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	offer2 := viaJingle(t, gathered(t, p, offer), CreatorInitiator)
	answer, err := browsertest.Eval[string](b.Tab(), `(async () => {
  await pc.setRemoteDescription({type: "offer", sdp: `+jsString(offer2)+`});
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  return pc.localDescription.sdp;
})()`, 0)
	if err != nil {
		t.Fatalf("Chromium refuses pion's offer through Jingle: %v\n%s", err, offer2)
	}
	contents, groups, err := SDPToJingleAs(answer, CreatorResponder)
	if err != nil {
		t.Fatalf("Chromium's answer: %v\n%s", err, answer)
	}
	if f := contents[0].Transport.Fingerprint; f == nil || f.Setup != SetupActive {
		t.Errorf("Chromium's answer fingerprint %+v", f)
	}
	answer2, err := JingleToSDPAs(contents, groups, 12, CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	diffSemantic(t, semantic(t, answer), semantic(t, answer2))
	if err := p.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer2}); err != nil {
		t.Fatalf("pion refuses Chromium's answer through Jingle: %v\n%s", err, answer2)
	}
	if !strings.Contains(answer2, "a=recvonly") && !strings.Contains(answer2, "a=sendrecv") {
		t.Errorf("no direction in\n%s", answer2)
	}
}

func sdpHasParamName(ps []Parameter, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}
