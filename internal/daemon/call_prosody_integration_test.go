package daemon_test

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/coturntest"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// Test media of the Prosody calls: 0.8 s of audio and of video, each
// video frame one RTP packet (at most 1000 bytes), so that the packets a
// side received count the frames.
var prosodyMedia = mediagen.Options{Duration: 800 * time.Millisecond, MaxFrameBytes: 1000}

// prosodyCall is what a call between two daemons on a real Prosody left.
type prosodyCall struct {
	alice, bob api.CallInfo // as they ended
}

// callOverProsody runs a call on env (set up by daemontest.NewProsody):
// both daemons get calls (a [calls] table body, without record_dir and
// the rule, which callOverProsody adds) and their daemon options; alice
// calls bob through her API with audio and video files, bob's
// [[calls.auto_answer]] rule answers with his own files and records. It
// waits until each side received every packet the other played, lets
// alice hang up, and checks the binding, the SRTP profile and that each
// recording holds exactly what the other side played.
func callOverProsody(t *testing.T, env *daemontest.Env, calls string, aliceOpts, bobOpts []daemon.Option) prosodyCall {
	t.Helper()
	dir := t.TempDir()
	type files struct {
		ogg, ivf, rec string
		media         mediagen.Files
	}
	side := map[string]*files{}
	for _, who := range []string{"alice", "bob"} {
		f := &files{ogg: filepath.Join(dir, who+".ogg"), ivf: filepath.Join(dir, who+".ivf"), rec: mkdirIn(t, dir, who+"-rec")}
		o := prosodyMedia
		o.Seed = uint64(len(side) + 1) // each side its own payloads
		f.media = daemontest.Media(t, f.ogg, f.ivf, o)
		side[who] = f
	}
	env.Alice.AppendConfig(t, "[calls]\n"+calls)
	env.Bob.AppendConfig(t, fmt.Sprintf(`[calls]
record_dir = %q
%s
[[calls.auto_answer]]
peer = %q
min_trust = "tofu"
audio_file = %q
video_file = %q
record = true
`, side["bob"].rec, calls, env.Alice.JID, side["bob"].ogg, side["bob"].ivf))
	alice := daemontest.StartWith(t, env.Alice, aliceOpts...)
	bob := daemontest.StartWith(t, env.Bob, bobOpts...)
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	bobDev := daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	aliceDev := daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()

	placed, err := alice.Client.PlaceCall(ctx, api.CallRequest{To: env.Bob.JID, CallMedia: api.CallMedia{
		AudioFile: side["alice"].ogg, VideoFile: side["alice"].ivf, RecordDir: side["alice"].rec}})
	if err != nil {
		t.Fatal(err)
	}
	if !placed.HasMedia(api.MediaAudio) || !placed.HasMedia(api.MediaVideo) {
		t.Fatalf("placed %+v, want audio and video", placed)
	}
	ac := nextCall(t, aliceEvents, placed.ID, "alice: binding passed", func(c api.CallInfo) bool { return c.Binding == api.BindingPassed })
	bc := nextCall(t, bobEvents, "", "bob: binding passed", func(c api.CallInfo) bool {
		return c.Direction == api.CallIncoming && c.Binding == api.BindingPassed
	})
	if ac.PeerDevice != bobDev || bc.PeerDevice != aliceDev || bc.Peer != env.Alice.JID {
		t.Fatalf("bound devices: alice's call %+v, bob's %+v; want %d and %d", ac, bc, bobDev, aliceDev)
	}
	if ac.PeerFingerprint == "" || ac.PeerFingerprint != bc.LocalFingerprint || bc.PeerFingerprint != ac.LocalFingerprint {
		t.Fatalf("fingerprints: alice local %s peer %s, bob local %s peer %s", ac.LocalFingerprint, ac.PeerFingerprint, bc.LocalFingerprint, bc.PeerFingerprint)
	}
	for _, c := range []api.CallInfo{ac, bc} {
		if c.SRTPProfile != "SRTP_AEAD_AES_256_GCM" {
			t.Fatalf("%s call: SRTP profile %q, want SRTP_AEAD_AES_256_GCM", c.Direction, c.SRTPProfile)
		}
	}
	// Every video frame is one RTP packet: once each side counted as many
	// packets as the other played, both recordings are complete.
	want := uint64(side["alice"].media.Packets + side["alice"].media.Frames)
	daemontest.Poll(t, "all media both ways", func() bool {
		a, err := alice.Client.Call(ctx, placed.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bob.Client.Call(ctx, bc.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []api.CallInfo{a, b} {
			if c.State == api.CallEnded {
				t.Fatalf("%s call ended (%s: %s)", c.Direction, c.EndReason, c.Detail)
			}
		}
		return a.PacketsReceived >= want && b.PacketsReceived >= want
	})
	aEnd, err := alice.Client.HangUp(ctx, placed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if aEnd.State != api.CallEnded {
		aEnd = nextCall(t, aliceEvents, placed.ID, "alice: ended", func(c api.CallInfo) bool { return c.State == api.CallEnded })
	}
	bEnd := nextCall(t, bobEvents, bc.ID, "bob: ended", func(c api.CallInfo) bool { return c.State == api.CallEnded })
	for _, c := range []api.CallInfo{aEnd, bEnd} {
		if c.EndReason != "success" || c.Binding != api.BindingPassed || c.PacketsSent < want || c.BytesSent == 0 {
			t.Fatalf("%s call ended %+v", c.Direction, c)
		}
	}
	for _, r := range []struct {
		who  string
		call api.CallInfo
		dir  string
		from *files
	}{{"alice", aEnd, side["alice"].rec, side["bob"]}, {"bob", bEnd, side["bob"].rec, side["alice"]}} {
		ogg, ivf := recordingIn(t, r.call, r.dir, ".ogg"), recordingIn(t, r.call, r.dir, ".ivf")
		daemontest.CheckRecording(t, r.who+"'s audio recording", r.from.ogg, ogg, r.from.media.Packets)
		daemontest.CheckRecording(t, r.who+"'s video recording", r.from.ivf, ivf, r.from.media.Frames)
	}
	return prosodyCall{alice: aEnd, bob: bEnd}
}

func mkdirIn(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordingIn returns the one recording of call c with extension ext,
// which must be in dir.
func recordingIn(t *testing.T, c api.CallInfo, dir, ext string) string {
	t.Helper()
	var found []string
	for _, r := range c.Recordings {
		if filepath.Ext(r) == ext {
			found = append(found, r)
		}
	}
	if len(found) != 1 || filepath.Dir(found[0]) != dir {
		t.Fatalf("%s call: recordings %q, want one %s file in %s", c.Direction, c.Recordings, ext, dir)
	}
	return found[0]
}

// TestIntegrationCallProsody: two daemons on a real Prosody. Alice calls
// bob through her control API, bob's daemon answers by its auto-answer
// rule, audio and video flow both ways and are recorded byte for byte,
// the DTLS binding check passed on both sides and SRTP is
// AEAD_AES_256_GCM. Prosody logs every stanza that crossed the users'
// streams: the call's signaling went through it, and none of the
// candidate addresses, the DTLS fingerprints or the codec names is in
// any of it in clear.
func TestIntegrationCallProsody(t *testing.T) {
	p := prosodytest.Start(t, prosodytest.WithHostile())
	h := p.Hostile(t)
	env := daemontest.NewProsody(t, p)
	nets := daemontest.CallNets(t, 2) // the media: host candidates 10.0.0.2 and 10.0.0.3
	c := callOverProsody(t, env, "",
		[]daemon.Option{daemon.WithCallNet(nets[0])}, []daemon.Option{daemon.WithCallNet(nets[1])})

	log := h.Log(t)
	// Not vacuous: the call's signaling (protected IQs both ways) and
	// its JMI (protected messages) crossed the server.
	seen := map[string]int{}
	for _, e := range log {
		if e.Dir == "out" && (e.Name == "iq" || e.Name == "message") {
			seen[e.Name+" to "+bareOf(e.To)]++
		}
	}
	for _, k := range []string{"iq to " + env.Alice.JID, "iq to " + env.Bob.JID, "message to " + env.Bob.JID} {
		if seen[k] == 0 {
			t.Fatalf("no %s in Prosody's stanza log (%v)", k, seen)
		}
	}
	// The candidate addresses, both DTLS fingerprints (as signaled, in
	// lower case, without colons), codec names and the Jingle and JMI
	// namespaces.
	secrets := []string{"10.0.0.2", "10.0.0.3", "opus", "vp8", "vp9", "h264", "av1", "rtx", "ulpfec", "rtpmap",
		"urn:xmpp:jingle:1", "urn:xmpp:jingle:apps:rtp:1", "urn:xmpp:jingle:transports:ice-udp:1",
		"urn:xmpp:jingle:apps:dtls:0", "urn:xmpp:jingle-message:0"}
	for _, fp := range []string{c.alice.LocalFingerprint, c.bob.LocalFingerprint} {
		secrets = append(secrets, fp, strings.ReplaceAll(fp, ":", ""))
	}
	for _, e := range log {
		for _, s := range secrets {
			if inClear(t, e.XML, s) {
				t.Errorf("Prosody saw %q in clear (%s %s %s -> %s):\n%s", s, e.Dir, e.Name, e.From, e.To, e.XML)
			}
		}
	}
}

// inClear reports whether s occurs, ignoring case and as whole words
// (not inside a longer run of letters and digits, such as a random id),
// in an attribute value, a namespace or the text of the stanza x. Text
// that is base64 of at least 48 bytes is ciphertext and skipped.
func inClear(t *testing.T, x, s string) bool {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(x))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("stanza in Prosody's log: %v\n%s", err, x)
		}
		var texts []string
		switch tok := tok.(type) {
		case xml.StartElement:
			texts = append(texts, tok.Name.Space)
			for _, a := range tok.Attr {
				texts = append(texts, a.Value)
			}
		case xml.CharData:
			text := strings.TrimSpace(string(tok))
			if b, err := base64.StdEncoding.DecodeString(text); err == nil && len(b) >= 48 {
				continue
			}
			texts = append(texts, text)
		}
		for _, text := range texts {
			if containsWord(text, s) {
				return true
			}
		}
	}
}

// containsWord reports whether s occurs in text, ignoring case, with no
// letter or digit right before or after it.
func containsWord(text, s string) bool {
	text, s = strings.ToLower(text), strings.ToLower(s)
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := 0; i+len(s) <= len(text); i++ {
		j := strings.Index(text[i:], s)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(s)
		if !(j > 0 && alnum(text[j-1]) && alnum(s[0])) && !(end < len(text) && alnum(text[end]) && alnum(s[len(s)-1])) {
			return true
		}
		i = j
	}
	return false
}

// TestInClear: the leak check finds what is in clear and ignores
// ciphertext and ids that merely contain the letters.
func TestInClear(t *testing.T) {
	cipher := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("vp8 opus 10.0.0.2 ", 4)))
	for _, c := range []struct {
		x, s string
		want bool
	}{
		{`<p xmlns='urn:x:1'>` + cipher + `</p>`, "opus", false},
		{`<message id='xvp8q2'><body>hi</body></message>`, "vp8", false},
		{`<message><body>a=rtpmap:111 OPUS/48000/2</body></message>`, "opus", true},
		{`<payload-type name='VP8' id='96'/>`, "vp8", true},
		{`<candidate ip='10.0.0.2' port='5000'/>`, "10.0.0.2", true},
		{`<candidate ip='10.0.0.23'/>`, "10.0.0.2", false},
		{`<fingerprint>ab:cd:ef</fingerprint>`, "AB:CD:EF", true},
		{`<description xmlns='urn:xmpp:jingle:apps:rtp:1'/>`, "urn:xmpp:jingle:apps:rtp:1", true},
		{`<x><y/></x>`, "x", false},
	} {
		if got := inClear(t, c.x, c.s); got != c.want {
			t.Errorf("inClear(%s, %q) = %v, want %v", c.x, c.s, got, c.want)
		}
	}
}

func bareOf(full string) string {
	bare, _, _ := strings.Cut(full, "/")
	return bare
}

// TestIntegrationCallProsodyRelay: the same call forced through a real
// coturn. Prosody hands both daemons the TURN server with TURN REST API
// credentials (mod_turn_external, XEP-0215); both have relay_only and
// use_server_services. The call connects, the media arrives byte for
// byte, both calls report relay-only, and coturn logged allocations and
// permissions under the usernames Prosody made, with the expiry it was
// configured for. (What candidates the gateways signal is checked in
// gateway's TestIntegrationCallTURN.)
func TestIntegrationCallProsodyRelay(t *testing.T) {
	const (
		user = "securejingle-calls"
		ttl  = 10 * time.Minute
	)
	turn := coturntest.Start(t)
	p := prosodytest.Start(t, prosodytest.WithTURN(prosodytest.TURN{
		Host: turn.Host(), Port: turn.Port(), Secret: turn.Secret(), User: user, TTL: ttl,
	}))
	env := daemontest.NewProsody(t, p)
	before := time.Now()
	// coturn relays on 127.0.0.1: the daemons must take loopback candidates.
	lo := []daemon.Option{daemon.WithCallLoopback()}
	c := callOverProsody(t, env, "relay_only = true\nuse_server_services = true\n", lo, lo)
	after := time.Now()
	if !c.alice.RelayOnly || !c.bob.RelayOnly {
		t.Fatalf("relay-only: alice %v, bob %v", c.alice.RelayOnly, c.bob.RelayOnly)
	}

	log, err := turn.Log()
	if err != nil {
		t.Fatal(err)
	}
	if n := turn.Allocations(); n < 2 {
		t.Errorf("%d allocations in coturn's log, want one per daemon at least\n%s", n, log)
	}
	// coturn accepted only REST API usernames of Prosody's making, with
	// an expiry TTL after the credentials were fetched (during the call).
	re := regexp.MustCompile(`user <([^>]*)>: incoming packet (ALLOCATE|CREATE_PERMISSION) processed, success`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(log), -1) {
		exp, u, ok := strings.Cut(m[1], ":")
		n, err := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || u != user {
			t.Errorf("coturn served user %q, not one Prosody made (EXPIRY:%s)", m[1], user)
			continue
		}
		if lo, hi := before.Add(ttl).Unix()-1, after.Add(ttl).Unix()+1; n < lo || n > hi {
			t.Errorf("username %q expires at %d, not in [%d, %d]", m[1], n, lo, hi)
		}
		seen[m[2]] = true
	}
	if !seen["ALLOCATE"] || !seen["CREATE_PERMISSION"] {
		t.Errorf("coturn's log lacks a successful allocation or permission under Prosody's credentials\n%s", log)
	}
}
