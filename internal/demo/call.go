package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// inClear are strings that would betray call signaling a server can read:
// Jingle and JMI namespaces, ICE and DTLS attribute names, codec names.
var inClear = [][]byte{[]byte("urn:xmpp:jingle"), []byte("candidate"), []byte("fingerprint"), []byte("opus"), []byte("VP8")}

var base64Run = regexp.MustCompile(`[A-Za-z0-9+/=]{16,}`)

// demoCall places a short audio and video call from alice to bob, whose
// gateway answers it, and shows what each side saw and recorded.
func demoCall(ctx context.Context, r *report, wr *wire, dir string, alice, bob *participant) error {
	media := func(who string, seed uint64) (gateway.CallMedia, mediagen.Files, error) {
		rec := filepath.Join(dir, who+"-recordings")
		if err := mkdir(rec); err != nil {
			return gateway.CallMedia{}, mediagen.Files{}, err
		}
		f, err := mediagen.WriteFiles(filepath.Join(dir, who+".ogg"), filepath.Join(dir, who+".ivf"), time.Second, seed)
		return gateway.CallMedia{Audio: true, Video: true, AudioFile: f.Ogg, VideoFile: f.IVF, RecordDir: rec}, f, err
	}
	am, af, err := media("alice", 1)
	if err != nil {
		return err
	}
	bm, bf, err := media("bob", 2)
	if err != nil {
		return err
	}
	bob.answer.Store(&bm)
	defer bob.answer.Store(nil)
	// Everything the server routes during the call, to show it saw none
	// of the call's signaling.
	var seen [][]byte
	wr.setTamper(func(st localxmpp.Stanza) localxmpp.Stanza {
		seen = append(seen, bytes.Clone(st.Raw))
		return st
	})
	am.Duration = 1500 * time.Millisecond
	start := time.Now()
	info, err := alice.gw.PlaceCall(ctx, bob.jid.Bare(), am)
	if err != nil {
		wr.setTamper(nil)
		return err
	}
	ended := func(p *participant) (gateway.CallInfo, error) {
		var connected time.Duration
		ev, err := p.waitFor(30*time.Second, func(ev gateway.Event) bool {
			if ev.Kind != gateway.EventCall || ev.Call == nil || ev.Call.ID != info.ID {
				return false
			}
			if ev.Call.State == gateway.CallConnected && connected == 0 {
				connected = time.Since(start)
			}
			return ev.Call.State == gateway.CallEnded
		})
		if err != nil {
			return gateway.CallInfo{}, err
		}
		c := *ev.Call
		if c.Binding != gateway.BindingPassed {
			return c, fmt.Errorf("%s: DTLS binding check %s: %s", p.name, c.Binding, c.Detail)
		}
		return c, nil
	}
	ai, err1 := ended(alice)
	bi, err2 := ended(bob)
	wr.setTamper(nil)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	r.check("alice calls bob; bob's gateway answers; the JMI and the whole Jingle session travel inside envelopes", nil,
		"call %s, bob's account %s, binding with bob's device %d", short(info.ID), trustWord(ai), ai.PeerDevice)
	r.check("DTLS binding checked on both sides against the fingerprint from the protected offer and answer", nil,
		"alice saw %s, bob saw %s; %s", shortFP(ai.PeerFingerprint), shortFP(bi.PeerFingerprint), ai.SRTPProfile)
	r.check("media both ways", nil, "alice sent %d bytes, received %d; bob sent %d, received %d", ai.BytesSent, ai.BytesReceived, bi.BytesSent, bi.BytesReceived)
	cmp := func(src mediagen.Files, recs []string) (string, error) {
		var out []string
		for _, rec := range recs {
			var m rtcpeer.Match
			var err error
			switch filepath.Ext(rec) {
			case ".ogg":
				m, err = rtcpeer.ComparePayloads(src.Ogg, rec)
				out = append(out, fmt.Sprintf("%d/%d Opus packets", m.Matched, m.Source))
			case ".ivf":
				m, err = rtcpeer.CompareFrames(src.IVF, rec)
				out = append(out, fmt.Sprintf("%d/%d VP8 frames", m.Matched, m.Source))
			default:
				continue
			}
			if err == nil && m.Missing > 0 {
				err = fmt.Errorf("%s misses %d of %d payloads", filepath.Base(rec), m.Missing, m.Source)
			}
			if err != nil {
				return "", err
			}
		}
		if len(out) != 2 {
			return "", fmt.Errorf("%d recordings, want audio and video", len(recs))
		}
		return strings.Join(out, ", "), nil
	}
	bobGot, err1 := cmp(af, bi.Recordings)
	aliceGot, err2 := cmp(bf, ai.Recordings)
	r.check("recordings equal the sources, payload by payload", errors.Join(err1, err2), "bob recorded %s of alice's; alice recorded %s of bob's", bobGot, aliceGot)
	var leak error
	for _, st := range seen {
		// Ciphertext is base64: a long run of its alphabet can contain
		// any short word by chance, and is not signaling in clear.
		st = base64Run.ReplaceAll(st, nil)
		for _, w := range inClear {
			if bytes.Contains(bytes.ToLower(st), bytes.ToLower(w)) {
				leak = fmt.Errorf("the server saw %q in clear", w)
			}
		}
	}
	r.check("the server saw no codec, candidate address or fingerprint", leak, "%d stanzas routed during the call, all signaling inside <p/> or <c/>", len(seen))
	return nil
}

func trustWord(c gateway.CallInfo) string {
	if c.Verified {
		return "verified"
	}
	return c.Trust
}

func short(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

func shortFP(s string) string {
	if len(s) > 23 {
		return s[:23] + "…"
	}
	return s
}

func mkdir(path string) error { return os.MkdirAll(path, 0o700) }

// waitFor returns the first event matching ok within d.
func (p *participant) waitFor(d time.Duration, ok func(gateway.Event) bool) (gateway.Event, error) {
	deadline := time.After(d)
	for {
		select {
		case ev := <-p.events:
			if ok(ev) {
				return ev, nil
			}
		case <-deadline:
			return gateway.Event{}, fmt.Errorf("%s: timed out waiting", p.name)
		}
	}
}
