package filexfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/coturntest"
	"github.com/securejingle/securejingle/jingle"
)

// dcHangGuard bounds every wait of these tests; it guards against a hung
// test and asserts nothing about speed.
const dcHangGuard = 60 * time.Second

// dcNoLeaks fails the test if goroutines it started outlive it (checked
// after every other cleanup, with a hang guard).
func dcNoLeaks(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				var b strings.Builder
				pprof.Lookup("goroutine").WriteTo(&b, 1)
				t.Fatalf("%d goroutines left, %d before the test:\n%s", runtime.NumGoroutine(), base, b.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func dcCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), dcHangGuard)
	t.Cleanup(cancel)
	return ctx
}

// dcWire sends a transport through its XML form, as the protected Jingle
// stanza carries it.
func dcWire(t testing.TB, tr *DataChannelTransport) *DataChannelTransport {
	t.Helper()
	r, err := tr.Raw()
	if err != nil {
		t.Fatalf("Raw: %v", err)
	}
	out, ok, err := ParseDataChannelTransport(r)
	if err != nil || !ok {
		t.Fatalf("ParseDataChannelTransport: %v %v", ok, err)
	}
	return out
}

// dcTrickle carries one side's local candidates to a peer set later.
type dcTrickle struct {
	t    testing.TB
	mu   sync.Mutex
	to   *DataChannel
	held []*DataChannelTransport
}

func (s *dcTrickle) candidate(tr *DataChannelTransport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.to == nil {
		s.held = append(s.held, tr)
		return
	}
	s.to.AddRemoteCandidates(tr) // an error after the peer ended is no concern here
}

// deliver sets the peer and hands it what was held (the transport-infos
// sent once the session-initiate or session-accept is acknowledged).
func (s *dcTrickle) deliver(to *DataChannel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.to = to
	for _, tr := range s.held {
		to.AddRemoteCandidates(dcWire(s.t, tr))
	}
	s.held = nil
}

// dcPeer makes one side, closed in the test's cleanup.
func dcPeer(t testing.TB, name string, tr *dcTrickle, change func(*DataChannelConfig)) *DataChannel {
	t.Helper()
	cfg := DataChannelConfig{SID: "sid-" + name, Peer: name + "@example.org", Device: 7, LoopbackOnly: true, OnCandidate: tr.candidate}
	if change != nil {
		change(&cfg)
	}
	d, err := NewDataChannel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// dcPair connects an initiator and a responder through in-process
// signaling, every transport going through its XML form.
func dcPair(t testing.TB, changeA, changeB func(*DataChannelConfig)) (a, b *DataChannel) {
	t.Helper()
	a, b = dcPairWith(t, changeA, changeB, nil)
	ctx := dcCtx(t)
	for _, d := range []*DataChannel{a, b} {
		if err := d.Connected(ctx); err != nil {
			t.Fatalf("%s: %v", d.cfg.SID, err)
		}
	}
	return a, b
}

// dcTransfer sends payload over the channel content from sender to
// receiver and returns what arrived.
func dcTransfer(t testing.TB, sender, receiver *DataChannel, content string, payload []byte) []byte {
	t.Helper()
	ctx := dcCtx(t)
	type result struct {
		got []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := receiver.Accept(ctx, content)
		if err != nil {
			done <- result{nil, err}
			return
		}
		got, err := io.ReadAll(c)
		c.Close()
		done <- result{got, err}
	}()
	c, err := sender.Open(ctx, content)
	if err != nil {
		t.Fatalf("Open %q: %v", content, err)
	}
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("Write %q: %v", content, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close %q: %v", content, err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("receiving %q: %v", content, r.err)
	}
	return r.got
}

func dcRandom(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDataChannelBytes: every size arrives byte for byte, from the
// initiator and from the responder, several channels at once on one
// transport.
func TestDataChannelBytes(t *testing.T) {
	dcNoLeaks(t)
	a, b := dcPair(t, nil, nil)
	sizes := []int{0, 1, DataChannelMessageSize - 1, DataChannelMessageSize, DataChannelMessageSize + 1, DataChannelMaxMessageSize + 3, 5<<20 + 17}
	var wg sync.WaitGroup
	for _, dir := range []struct {
		name     string
		from, to *DataChannel
	}{{"initiator", a, b}, {"responder", b, a}} {
		for _, n := range sizes {
			content := fmt.Sprintf("%s-%d", dir.name, n)
			payload := dcRandom(t, n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := dcTransfer(t, dir.from, dir.to, content, payload)
				if !bytes.Equal(got, payload) {
					t.Errorf("%s: got %d bytes, sent %d, or different bytes", content, len(got), len(payload))
				}
			}()
		}
	}
	wg.Wait()
}

// TestDataChannelSmallWrites: many small writes are coalesced into
// messages and arrive in order.
func TestDataChannelSmallWrites(t *testing.T) {
	dcNoLeaks(t)
	a, b := dcPair(t, nil, nil)
	ctx := dcCtx(t)
	payload := dcRandom(t, 300_001)
	got := make(chan []byte, 1)
	go func() {
		c, err := b.Accept(ctx, "f")
		if err != nil {
			t.Error(err)
			got <- nil
			return
		}
		var out []byte
		buf := make([]byte, 7) // reads smaller than a message
		for {
			n, err := c.Read(buf)
			out = append(out, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Error(err)
				break
			}
		}
		got <- out
	}()
	c, err := a.Open(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	for p := payload; len(p) > 0; {
		k := min(len(p), 1000)
		if _, err := c.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if out := <-got; !bytes.Equal(out, payload) {
		t.Fatalf("got %d bytes, want %d", len(out), len(payload))
	}
}

// dcMITM runs a man in the middle: alice's offer reaches mallory, who
// answers with his own certificate; the answer alice gets carries
// bob's fingerprint, as the protected session-accept from bob's
// certified device does. It returns alice's error.
func dcMITM(t *testing.T, changeA func(*DataChannelConfig)) error {
	ta, tm := &dcTrickle{t: t}, &dcTrickle{t: t}
	alice := dcPeer(t, "alice", ta, changeA)
	mallory := dcPeer(t, "mallory", tm, func(c *DataChannelConfig) { c.InsecureSkipPionFingerprintCheck = true })
	bob := dcPeer(t, "bob", &dcTrickle{t: t}, nil)
	offer, err := alice.Offer()
	if err != nil {
		t.Fatal(err)
	}
	answer, err := mallory.Answer(dcWire(t, offer))
	if err != nil {
		t.Fatal(err)
	}
	ta.deliver(mallory)
	forged := dcWire(t, answer)
	forged.ICE.Fingerprint.Value = bob.Fingerprint().String()
	if err := alice.SetAnswer(forged); err != nil {
		t.Fatal(err)
	}
	tm.deliver(alice)
	ctx := dcCtx(t)
	err = alice.Connected(ctx)
	// Mallory's channel never reaches alice's application.
	if _, oerr := alice.Open(ctx, "f"); oerr == nil || !errors.Is(oerr, dtls.ErrBindingMismatch) {
		t.Errorf("Open after a mismatch: %v", oerr)
	}
	if alice.pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
		// The close runs in the background; Close waits for it.
		alice.Close()
	}
	if !errors.Is(alice.Err(), dtls.ErrBindingMismatch) {
		t.Errorf("Err after a mismatch: %v", alice.Err())
	}
	return err
}

// TestDataChannelMITM: a man in the middle with another certificate is
// refused with a *dtls.MismatchError naming bob's fingerprint as the
// expected one, whether pion's own fingerprint check runs (it refuses
// first; ours names the mismatch) or not (ours alone refuses).
func TestDataChannelMITM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*DataChannelConfig)
	}{
		{"pion check on", nil},
		{"our check alone", func(c *DataChannelConfig) { c.InsecureSkipPionFingerprintCheck = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dcNoLeaks(t)
			err := dcMITM(t, tc.change)
			var me *dtls.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Connected: %v, want a *dtls.MismatchError", err)
			}
			if me.SID != "sid-alice" || me.Peer != "alice@example.org" || me.Device != 7 || me.Got.Equal(me.Expected) {
				t.Fatalf("mismatch %+v", me)
			}
		})
	}
}

// TestDataChannelNeverConnects: a peer that answers and then never
// connects ends the transport with ErrDataChannelTimeout; Open and Accept
// waiting meanwhile get the same error.
func TestDataChannelNeverConnects(t *testing.T) {
	dcNoLeaks(t)
	ta := &dcTrickle{t: t}
	a := dcPeer(t, "alice", ta, func(c *DataChannelConfig) { c.ConnectTimeout = time.Second })
	b := dcPeer(t, "bob", &dcTrickle{t: t}, nil)
	offer, err := a.Offer()
	if err != nil {
		t.Fatal(err)
	}
	answer, err := b.Answer(dcWire(t, offer))
	if err != nil {
		t.Fatal(err)
	}
	b.Close() // gone before it could connect
	if err := a.SetAnswer(dcWire(t, answer)); err != nil {
		t.Fatal(err)
	}
	ctx := dcCtx(t)
	errs := make(chan error, 2)
	go func() { _, err := a.Open(ctx, "f1"); errs <- err }()
	go func() { _, err := a.Accept(ctx, "f2"); errs <- err }()
	if err := a.Connected(ctx); !errors.Is(err, ErrDataChannelTimeout) {
		t.Fatalf("Connected: %v, want ErrDataChannelTimeout", err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrDataChannelTimeout) {
			t.Fatalf("Open/Accept: %v, want ErrDataChannelTimeout", err)
		}
	}
}

// TestDataChannelRefusesUnreliable: a channel the peer opens unordered
// or with limited retransmissions is refused.
func TestDataChannelRefusesUnreliable(t *testing.T) {
	dcNoLeaks(t)
	a, b := dcPair(t, nil, nil)
	ctx := dcCtx(t)
	unordered, retransmits := false, uint16(0)
	for label, init := range map[string]*webrtc.DataChannelInit{
		"unordered": {Ordered: &unordered},
		"lossy":     {MaxRetransmits: &retransmits},
	} {
		if _, err := a.pc.CreateDataChannel(label, init); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Accept(ctx, label); !errors.Is(err, ErrDataChannelProtocol) {
			t.Fatalf("%s: Accept: %v, want ErrDataChannelProtocol", label, err)
		}
	}
}

// TestDataChannelHostileMessages: a text message and a message over our
// max-message-size are protocol errors for the reader.
func TestDataChannelHostileMessages(t *testing.T) {
	dcNoLeaks(t)
	for _, tc := range []struct {
		name string
		send func(*DataChannelConn) error
	}{
		{"text", func(c *DataChannelConn) error { _, err := c.raw.WriteDataChannel([]byte("hi"), true); return err }},
		{"too large", func(c *DataChannelConn) error {
			_, err := c.raw.Write(make([]byte, DataChannelMaxMessageSize+1))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Bob's answer, as alice's pion sees it, admits larger
			// messages than bob reads.
			a, b := dcPairWith(t, nil, nil, func(_, answer *DataChannelTransport) { answer.MaxMessageSize = 4 << 20 })
			ctx := dcCtx(t)
			c, err := a.Open(ctx, "f")
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			r, err := b.Accept(ctx, "f")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(r); !errors.Is(err, ErrDataChannelProtocol) {
				t.Fatalf("read: %v, want ErrDataChannelProtocol", err)
			}
		})
	}
}

// dcPairWith sets up an initiator and a responder like dcPair without
// waiting for the connection; see is shown both descriptions as they
// arrive and may change them.
func dcPairWith(t testing.TB, changeA, changeB func(*DataChannelConfig), see func(offer, answer *DataChannelTransport)) (a, b *DataChannel) {
	t.Helper()
	ta, tb := &dcTrickle{t: t}, &dcTrickle{t: t}
	a = dcPeer(t, "alice", ta, changeA)
	b = dcPeer(t, "bob", tb, changeB)
	offer, err := a.Offer()
	if err != nil {
		t.Fatal(err)
	}
	offer = dcWire(t, offer)
	answer, err := b.Answer(offer)
	if err != nil {
		t.Fatal(err)
	}
	ta.deliver(b)
	answer = dcWire(t, answer)
	if see != nil {
		see(offer, answer)
	}
	if err := a.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	tb.deliver(a)
	return a, b
}

// TestDataChannelOutOfOrder: methods called out of order, twice, or
// after Close fail with typed errors, and a transport without
// fingerprint is refused before pion sees it.
func TestDataChannelOutOfOrder(t *testing.T) {
	dcNoLeaks(t)
	a := dcPeer(t, "alice", &dcTrickle{t: t}, nil)
	if err := a.SetAnswer(&DataChannelTransport{}); !errors.Is(err, ErrDataChannelState) {
		t.Fatalf("SetAnswer before Offer: %v", err)
	}
	offer, err := a.Offer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Offer(); !errors.Is(err, ErrDataChannelState) {
		t.Fatalf("second Offer: %v", err)
	}
	if _, err := a.Answer(offer); !errors.Is(err, ErrDataChannelState) {
		t.Fatalf("Answer on the initiator: %v", err)
	}
	b := dcPeer(t, "bob", &dcTrickle{t: t}, nil)
	bare := dcWire(t, offer)
	bare.ICE.Fingerprint = nil
	if _, err := b.Answer(bare); !errors.Is(err, ErrDataChannelProtocol) {
		t.Fatalf("Answer without fingerprint: %v", err)
	}
	a.Close()
	if _, err := a.Open(dcCtx(t), "f"); !errors.Is(err, ErrDataChannelClosed) {
		t.Fatalf("Open after Close: %v", err)
	}
}

// dcSignaled records every candidate a side signals.
type dcSignaled struct {
	mu    sync.Mutex
	cands []jingle.Candidate
}

func (s *dcSignaled) add(tr *DataChannelTransport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cands = append(s.cands, tr.ICE.Candidates...)
}

// TestDataChannelRelayOnly: both sides relay-only through a real coturn
// on loopback. The bytes arrive, the selected pair is relay–relay on both
// sides, and every candidate either side signaled (in its description or
// trickled) is a relayed address whose related address is 0.0.0.0 port 0.
func TestDataChannelRelayOnly(t *testing.T) {
	dcNoLeaks(t)
	turn := coturntest.Start(t)
	var sigA, sigB dcSignaled
	relay := func(s *dcSignaled) func(*DataChannelConfig) {
		return func(c *DataChannelConfig) {
			c.RelayOnly = true
			c.ICEServers = []webrtc.ICEServer{turn.ICEServer("securejingle", 10*time.Minute)}
			next := c.OnCandidate
			c.OnCandidate = func(tr *DataChannelTransport) { s.add(tr); next(tr) }
		}
	}
	a, b := dcPairWith(t, relay(&sigA), relay(&sigB), func(offer, answer *DataChannelTransport) {
		sigA.add(offer)
		sigB.add(answer)
	})
	ctx := dcCtx(t)
	for _, d := range []*DataChannel{a, b} {
		if err := d.Connected(ctx); err != nil {
			t.Fatalf("%s: %v", d.cfg.SID, err)
		}
	}
	payload := dcRandom(t, 1<<20)
	if got := dcTransfer(t, a, b, "f", payload); !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, want %d", len(got), len(payload))
	}
	for name, d := range map[string]*DataChannel{"alice": a, "bob": b} {
		pair, err := d.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s: selected pair %s, want relay–relay", name, pair)
		}
	}
	for name, s := range map[string]*dcSignaled{"alice": &sigA, "bob": &sigB} {
		if len(s.cands) == 0 {
			t.Errorf("%s signaled no candidate", name)
		}
		for _, c := range s.cands {
			if c.Type != "relay" || c.RelAddr != "0.0.0.0" || c.RelPort != 0 {
				t.Errorf("%s signaled %+v", name, c)
			}
		}
	}
}

// TestDataChannelOneWay: a receiver that stops early fails the sender's
// writes and leaves the transport able to carry the next file (a stream
// reset under the sender's writes would stop pion's acceptance of
// channels); the receiver writing anything else on a file channel is a
// protocol error for the sender; each side's wrong direction is refused.
func TestDataChannelOneWay(t *testing.T) {
	dcNoLeaks(t)
	a, b := dcPair(t, nil, nil)
	ctx := dcCtx(t)

	w, err := a.Open(ctx, "early")
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Accept(ctx, "early")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Read(make([]byte, 1)); !errors.Is(err, ErrDataChannelState) {
		t.Fatalf("Read on the sender: %v", err)
	}
	if _, err := r.Write([]byte{1}); !errors.Is(err, ErrDataChannelState) {
		t.Fatalf("Write on the receiver: %v", err)
	}
	chunk := make([]byte, DataChannelMessageSize)
	if _, err := w.Write(chunk); err != nil { // in flight when the receiver stops
		t.Fatal(err)
	}
	r.Close()
	var werr error
	for i := 0; werr == nil && i < 10_000; i++ {
		_, werr = w.Write(chunk)
	}
	if werr == nil {
		werr = w.Close()
	}
	if !errors.Is(werr, ErrDataChannelClosed) {
		t.Fatalf("writing after the receiver stopped: %v", werr)
	}
	payload := dcRandom(t, 1<<20)
	if got := dcTransfer(t, a, b, "next", payload); !bytes.Equal(got, payload) {
		t.Fatalf("the next file after an early stop: %d bytes, want %d", len(got), len(payload))
	}

	w2, err := a.Open(ctx, "backwards")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.Accept(ctx, "backwards")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.raw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	werr = nil
	for i := 0; werr == nil && i < 10_000; i++ {
		_, werr = w2.Write(chunk)
	}
	if !errors.Is(werr, ErrDataChannelProtocol) {
		t.Fatalf("the receiver wrote: sender's write: %v", werr)
	}
}
