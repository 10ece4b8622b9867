package webapp_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"

	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
)

// rttBrowserFlags let Chromium gather host candidates on loopback
// interfaces, so that the direct call between two of its pages stays on
// 127.0.0.1 (the relayed call's pages then offer them to their daemons
// too, which take loopback candidates only).
var rttBrowserFlags = map[string]any{"allow-loopback-in-peer-connection": true}

// remoteReport is one kind's remote-inbound-rtp in getStats(): what the
// other end's receiver reports say of the media this page sends.
type remoteReport struct {
	RTT      *float64 `json:"rtt"`      // s, the latest
	TotalRTT float64  `json:"totalRtt"` // s, the sum of every measurement
	RTTCount int64    `json:"rttCount"` // measurements so far
}

// rttSampler turns one page's remote-inbound-rtp into round-trip
// measurements: read returns them per kind.
type rttSampler struct {
	name string
	read func() map[string]remoteReport
	last map[string]remoteReport
}

// poll returns the measurements (ms) made since the last poll: per kind
// the mean of the new ones (usually one).
func (s *rttSampler) poll() []float64 {
	var out []float64
	now := s.read()
	for kind, r := range now {
		was := s.last[kind]
		if n := r.RTTCount - was.RTTCount; n > 0 {
			out = append(out, (r.TotalRTT-was.TotalRTT)/float64(n)*1000)
		}
	}
	s.last = now
	return out
}

// relayedSampler samples the active call of a web app tab (call.js
// callStats).
func relayedSampler(t testing.TB, tab *webtest.Tab) *rttSampler {
	return &rttSampler{name: tab.User.Name + " (relayed)", read: func() map[string]remoteReport {
		var s struct {
			Remote map[string]remoteReport `json:"remote"`
		}
		if err := json.Unmarshal(tab.Eval(`import("/views/call.js").then(m => m.callStats())`), &s); err != nil {
			t.Fatal(err)
		}
		return s.Remote
	}}
}

// collectRTT polls the samplers until n measurements were made after the
// warm-up (the first seconds of a call, while the encoders ramp up), and
// returns them (ms). It fails after webtest.HangGuard.
func collectRTT(t testing.TB, n int, warm time.Duration, samplers ...*rttSampler) []float64 {
	t.Helper()
	start := time.Now()
	deadline := start.Add(warm + webtest.HangGuard)
	var got []float64
	for len(got) < n {
		for _, s := range samplers {
			m := s.poll()
			if time.Since(start) > warm {
				got = append(got, m...)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d round-trip measurements in getStats (remote-inbound-rtp) after %v: %v", len(got), n, time.Since(start), got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return got
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// connectBrowserCall: alice calls bob from her page with video (fake
// camera and microphone), bob's page rings in another view and he
// accepts; it returns both tabs once both views show the call
// connected, bound and relayed.
func connectBrowserCall(t testing.TB, env *webtest.Env) (alice, bob *webtest.Tab) {
	t.Helper()
	alice, bob = env.Login(env.Alice), env.Login(env.Bob)
	alice.Go("call", url.Values{"jid": {env.Bob.JID}})
	bob.Go("contacts", nil)
	alice.Click(`section.view-call [data-jid] [data-action="call-video"]`)
	bob.Wait("ringing in another view", `!!document.querySelector(".ring [data-action='accept']")`)
	if got := bob.Text(".ring"); !strings.Contains(got, env.Alice.JID) {
		t.Errorf("the ringer shows %q", got)
	}
	bob.Screenshot("ringing")
	bob.Click(`.ring [data-action="accept"]`)
	for _, tab := range []*webtest.Tab{alice, bob} {
		tab.Wait("connected, bound and relayed", `(p => p && p.dataset.state === "connected" &&
			p.querySelector("[data-field=binding]").textContent.includes("passed") &&
			p.querySelector("[data-field=local-srtp]").textContent.startsWith("SRTP_"))(document.querySelector(".call"))`)
	}
	return alice, bob
}

// directPeerJS is the plain RTCPeerConnection of a direct call page
// (window.direct): fake camera and microphone, host candidates on
// loopback only, no trickle.
const directPeerJS = `window.direct = {
  async open() {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    this.pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    s.getTracks().forEach((t) => this.pc.addTrack(t, s));
  },
  async local(desc) {
    await this.pc.setLocalDescription(desc);
    const pc = this.pc;
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((r) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()));
    }
    const sdp = pc.localDescription.sdp.split(/(?<=\n)/).filter((l) => !l.startsWith('a=candidate:') ||
      /^a=candidate:\S+ \d+ udp \d+ (127\.0\.0\.1|::1) \d+ typ host/i.test(l)).join('');
    if (!/a=candidate:/.test(sdp)) throw new Error('no loopback host candidate: ' + pc.localDescription.sdp);
    return sdp;
  },
  async offer() { await this.open(); return this.local(await this.pc.createOffer()); },
  async answer(sdp) {
    await this.open();
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    return this.local(await this.pc.createAnswer());
  },
  async accept(sdp) { await this.pc.setRemoteDescription({ type: 'answer', sdp }); return true; },
  async stats() {
    const out = { remote: {}, framesDecoded: 0 };
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === 'remote-inbound-rtp') out.remote[s.kind] = { rtt: s.roundTripTime ?? null, totalRtt: s.totalRoundTripTime || 0, rttCount: s.roundTripTimeMeasurements || 0 };
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded += s.framesDecoded || 0;
    });
    return out;
  },
  close() { this.pc.getSenders().forEach((s) => s.track && s.track.stop()); this.pc.close(); return true; },
}; true`

// directStats is what window.direct.stats() returns.
type directStats struct {
	Remote        map[string]remoteReport `json:"remote"`
	FramesDecoded int64                   `json:"framesDecoded"`
}

func directStatsOf(t testing.TB, tab *webtest.Tab) directStats {
	var s directStats
	if err := json.Unmarshal(tab.Eval(`window.direct.stats()`), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// directCall connects two pages of origin (plain pages of the web app,
// not logged in: a secure context on 127.0.0.1) by a direct
// RTCPeerConnection with audio and video, the signaling relayed by the
// test; it returns both once each decodes the other's video.
func directCall(t testing.TB, env *webtest.Env, u *webtest.User) (a, b *webtest.Tab) {
	t.Helper()
	a, b = env.NewTab(u), env.NewTab(u)
	for _, tab := range []*webtest.Tab{a, b} {
		tab.Open(u.Origin + "/")
		tab.Eval(directPeerJS)
	}
	offer := a.EvalString(`window.direct.offer()`)
	answer := b.EvalString(`window.direct.answer(` + webtest.JSString(offer) + `)`)
	a.Eval(`window.direct.accept(` + webtest.JSString(answer) + `)`)
	deadline := time.Now().Add(webtest.HangGuard)
	for _, tab := range []*webtest.Tab{a, b} {
		for directStatsOf(t, tab).FramesDecoded < 30 {
			if time.Now().After(deadline) {
				t.Fatalf("the direct call decodes no video: %+v", directStatsOf(t, tab))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return a, b
}

func directSampler(t testing.TB, tab *webtest.Tab, name string) *rttSampler {
	return &rttSampler{name: name + " (direct)", read: func() map[string]remoteReport { return directStatsOf(t, tab).Remote }}
}

// rttWarmUp is how long the first measurements of a call are not taken.
const rttWarmUp = 3 * time.Second

// relayDelay is the one-way delay of the simulated network between the
// two daemons in TestBrowserCallRTTEndToEnd.
const relayDelay = 15 * time.Millisecond

// vnetBuild serialises building vnet routers and nets (pion/transport
// v5.1.4 numbers their MAC addresses from a global counter without a
// lock).
var vnetBuild sync.Mutex

// delayedCallNets returns daemon options that put alice's and bob's call
// media (the daemon-to-daemon leg; the browsers' local legs stay on
// loopback) on a simulated network that delays every datagram by delay.
func delayedCallNets(t testing.TB, delay time.Duration) (alice, bob []daemon.Option) {
	t.Helper()
	vnetBuild.Lock()
	defer vnetBuild.Unlock()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", MinDelay: delay, LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	var opts [2][]daemon.Option
	for i := range opts {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{fmt.Sprintf("10.0.0.%d", i+2)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AddNet(n); err != nil {
			t.Fatal(err)
		}
		opts[i] = []daemon.Option{daemon.WithCallNet(n)}
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return opts[0], opts[1]
}

// TestBrowserCallRTTEndToEnd: with a 15 ms one-way delay between the two
// daemons, the round-trip time each browser's getStats() reports for the
// media it sends (remote-inbound-rtp, from the other browser's receiver
// reports, which the daemons relay end to end) is at least the 30 ms the
// daemon-to-daemon leg adds: it spans browser → daemon → daemon →
// browser and back, not the page's loopback leg to its daemon.
func TestBrowserCallRTTEndToEnd(t *testing.T) {
	a, b := delayedCallNets(t, relayDelay)
	env := webtest.New(t, webtest.Options{AliceDaemon: a, BobDaemon: b, Browser: rttBrowserFlags})
	alice, bob := connectBrowserCall(t, env)
	for _, tab := range []*webtest.Tab{alice, bob} {
		waitMedia(t, tab)
	}
	for _, tab := range []*webtest.Tab{alice, bob} {
		rtts := collectRTT(t, 3, rttWarmUp, relayedSampler(t, tab))
		t.Logf("%s: browser round trips %.1f ms", tab.User.Name, rtts)
		for _, rtt := range rtts {
			if rtt < float64(2*relayDelay/time.Millisecond) {
				t.Errorf("%s: getStats reports a round trip of %.2f ms, under the %v the daemon-to-daemon leg adds: the browser measures its local leg only", tab.User.Name, rtt, 2*relayDelay)
			}
		}
	}
}

// BenchmarkBrowserCallRTT: the round-trip time of the media path as
// Chromium's getStats() reports it (remote-inbound-rtp, from RTCP
// receiver reports: median of b.N measurements after a warm-up, over
// both pages and both kinds), in the same run for (a) a direct
// RTCPeerConnection between two pages on loopback and (b) the relayed
// call browser → daemon → daemon → browser on the embedded server, whose
// daemons relay RTCP reports end to end. added-ms is the difference.
// Each measurement takes about a second (the browsers' RTCP interval):
// run it with -benchtime 20x.
func BenchmarkBrowserCallRTT(b *testing.B) {
	env := webtest.New(b, webtest.Options{Daemon: []daemon.Option{daemon.WithCallLoopback()}, Browser: rttBrowserFlags})
	da, db := directCall(b, env, env.Alice)
	direct := collectRTT(b, b.N, rttWarmUp, directSampler(b, da, "a"), directSampler(b, db, "b"))
	da.Eval(`window.direct.close()`)
	db.Eval(`window.direct.close()`)

	alice, bob := connectBrowserCall(b, env)
	for _, tab := range []*webtest.Tab{alice, bob} {
		waitMedia(b, tab)
	}
	relayed := collectRTT(b, b.N, rttWarmUp, relayedSampler(b, alice), relayedSampler(b, bob))
	b.StopTimer()
	d, r := median(direct), median(relayed)
	b.Logf("direct %.2f ms %.2f, relayed %.2f ms %.2f", d, direct, r, relayed)
	b.ReportMetric(d, "direct-rtt-ms")
	b.ReportMetric(r, "relayed-rtt-ms")
	b.ReportMetric(r-d, "added-ms")
	b.ReportMetric(0, "ns/op")
}
