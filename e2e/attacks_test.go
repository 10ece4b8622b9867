package e2e

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// One test per attack of the protocol brief. Each starts from honest
// engines and plays the hostile server (or a hostile peer) against them.

// trustedEngine is a test engine with a pinning trust store whose events
// are recorded.
type trustedEngine struct {
	*testEngine
	events *[]trust.Event
}

func newTrustedEngine(t testing.TB, jid string, clk *testClock) trustedEngine {
	t.Helper()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	return newTrustedEngineWith(t, jid, clk, signer, store.NewMemory())
}

func newTrustedEngineWith(t testing.TB, jid string, clk *testClock, signer identity.Signer, st store.Store) trustedEngine {
	t.Helper()
	var events []trust.Event
	tr := &PinningTrust{Store: trust.New(st, clk.now), OnEvent: func(ev trust.Event) { events = append(events, ev) }}
	e, err := newCertified(t, Config{JID: jid, Signer: signer, Store: st, Now: clk.now, Trust: tr})
	if err != nil {
		t.Fatal(err)
	}
	return trustedEngine{&testEngine{e, st}, &events}
}

func TestAttackKeySubstitution(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	introduce(t, a.testEngine, b.testEngine) // pins both keys (TOFU)
	// Mallory builds a bundle for Bob's JID and device with her own key.
	m := newTestEngine(t, "bob@example.net", clk)
	forged := *m.Bundle()
	forged.Device = b.Device()
	// Certified by Mallory's own account key, on a device list she signed.
	c, err := signDeviceCert(m.cfg.Signer, "bob@example.net", b.Device(), m.DeviceKey(), clk.now(), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged.CertIssued, forged.CertExpires, forged.CertSignature = c.Issued, c.Expires, c.Signature
	if forged.List, err = signDeviceList(m.cfg.Signer, "bob@example.net", 99, []ListedDevice{{b.Device(), m.DeviceKey()}}, clk.now()); err != nil {
		t.Fatal(err)
	}
	if err := forged.sign(m.devKey); err != nil {
		t.Fatal(err)
	}
	if err := forged.Verify("bob@example.net"); err != nil {
		t.Fatalf("forged bundle should be self-consistent: %v", err)
	}
	err = a.AddBundle("bob@example.net", &forged)
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("substituted key accepted: %v", err)
	}
	last := (*a.events)[len(*a.events)-1]
	if last.Kind != trust.EventKeyChanged || !bytes.Equal(last.New, m.Identity()) {
		t.Fatalf("no key-change event: %+v", last)
	}
	// And the real bundle with a swapped identity key but Bob's signature
	// fails verification outright.
	swapped := *b.Bundle()
	swapped.Identity = m.Identity()
	if err := swapped.Verify("bob@example.net"); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("bundle with swapped key verified: %v", err)
	}
	// The substituted key is never used: the session stays with Bob's
	// pinned key (so the server's trick yields an alert, not a cut), and
	// the stored bundle is still Bob's.
	stored, err := a.PeerBundle(dev(b.testEngine))
	if err != nil || !bytes.Equal(stored.Identity, b.DeviceKey()) {
		t.Fatalf("stored bundle after the attempt: %v", err)
	}
	recv(t, a.testEngine, b.testEngine, send(t, a.testEngine, b.testEngine, "to the real bob"), "to the real bob")
	// The user re-verifies Bob's real key (say, by fingerprint): the
	// pending change is settled.
	rec, err := trust.New(a.store, clk.now).Verify(b.JID(), b.Identity(), "fingerprint")
	if err != nil || rec.Level != trust.Verified || rec.PendingKey != nil {
		t.Fatalf("after verification: %+v, %v", rec, err)
	}
	recv(t, a.testEngine, b.testEngine, send(t, a.testEngine, b.testEngine, "still bob"), "still bob")
}

func TestAttackDowngrade(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	// 1. Stripping the PQ suites from Bob's bundle breaks its signature.
	stripped := *b.Bundle()
	stripped.Suites = []SuiteID{SuiteX25519AES}
	if err := stripped.Verify(b.JID()); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("stripped bundle verified: %v", err)
	}
	// 2. A first message that chooses a worse suite than the best mutual
	// one (what a hostile initiator library, or a bug, would do) is refused.
	el := forgeFirstMessage(t, a, b, SuiteX25519AES)
	if _, _, err := b.OpenChat(chatCtx(a, b), el); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("downgraded first message: %v, want ErrDowngrade", err)
	}
	// 3. The initiator's offer is its bundle's suite list, named by hash
	// in the signed transcript: pointing the first message at another
	// bundle breaks the signature or the hash check.
	el = forgeFirstMessageWith(t, a, b, SuiteXWingAES, func(ib *initBlock) { ib.initBundle[0] ^= 1 })
	if _, _, err := b.OpenChat(chatCtx(a, b), el); err == nil {
		t.Fatal("first message naming another initiator bundle opened")
	}
}

// forgeFirstMessage builds a first message from a to b choosing suite sid,
// bypassing the engine's negotiation.
func forgeFirstMessage(t *testing.T, a, b *testEngine, sid SuiteID) *ChatElement {
	return forgeFirstMessageWith(t, a, b, sid, nil)
}

func forgeFirstMessageWith(t *testing.T, a, b *testEngine, sid SuiteID, edit func(*initBlock)) *ChatElement {
	t.Helper()
	su := LookupSuite(sid)
	own, peer := a.Bundle(), b.Bundle()
	pk, err := peer.prekeyFor(su, clkNow(a))
	if err != nil {
		t.Fatal(err)
	}
	self := &party{own.JID, own.Device, own.Identity, own.Account, own.Hash(), own.Suites}
	them := &party{peer.JID, peer.Device, peer.Identity, peer.Account, peer.Hash(), peer.Suites}
	ib, st, rs, _, err := initiate(su, self, them, pk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(ib)
	}
	s := &session{suite: sid, role: roleInitiator, peerIK: peer.Identity, peerAK: peer.Account, th1: st.th1, r: rs, pending: &initiatorState{}}
	var blk builder
	ib.marshal(&blk)
	s.initBlock = blk
	c := chatCtx(a, b)
	kind, body, err := a.sealEntry(modeChat, &c, dev(b), s, []byte("forged"))
	if err != nil {
		t.Fatal(err)
	}
	var out builder
	out.u32(a.Device())
	out.u32(b.Device())
	out.u8(kind)
	out.vbytes(body)
	return &ChatElement{Blob: out}
}

func clkNow(e *testEngine) time.Time { return e.cfg.Now() }

func TestAttackReplayAndReorderBeyondWindow(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "hello"), "hello")
	recv(t, b, a, send(t, b, a, "hi"), "hi")
	// Alice sends MaxSkip+2 messages; the server holds back all but the
	// last one, which is too far ahead to accept.
	var msgs []*ChatElement
	for i := 0; i < MaxSkip+2; i++ {
		msgs = append(msgs, send(t, a, b, fmt.Sprint(i)))
	}
	last := msgs[len(msgs)-1]
	if _, _, err := b.OpenChat(chatCtx(a, b), last); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("message beyond the window: %v, want ErrTooFarAhead", err)
	}
	// The refusal changed nothing: delivering in order from the start
	// works, and once the gap is within the window, reordering is fine.
	recv(t, a, b, msgs[0], "0")
	recv(t, a, b, last, fmt.Sprint(len(msgs)-1))
	recv(t, a, b, msgs[500], "500")
	if _, _, err := b.OpenChat(chatCtx(a, b), msgs[500]); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed delayed message: %v, want ErrReplay", err)
	}
}

func TestAttackTruncationAndTampering(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "x"), "x")
	recv(t, b, a, send(t, b, a, "y"), "y")
	el := send(t, a, b, "the real message")
	for cut := 1; cut < len(el.Blob); cut++ {
		short := &ChatElement{Blob: el.Blob[:len(el.Blob)-cut]}
		if _, _, err := b.OpenChat(chatCtx(a, b), short); err == nil {
			t.Fatalf("message truncated by %d bytes opened", cut)
		}
	}
	for i := range el.Blob {
		bad := &ChatElement{Blob: bytes.Clone(el.Blob)}
		bad.Blob[i] ^= 0x40
		if _, _, err := b.OpenChat(chatCtx(a, b), bad); err == nil {
			t.Fatalf("message with byte %d flipped opened", i)
		}
	}
	// Nothing above consumed the message: the genuine one still opens.
	recv(t, a, b, el, "the real message")
}

func TestAttackRerouteAndRetype(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "x"), "x")
	recv(t, b, a, send(t, b, a, "y"), "y")
	el := send(t, a, b, "for bob, as chat")
	cases := map[string]Context{
		"other sender":    {From: "mallory@example.org", To: b.JID(), StanzaKind: "message", StanzaType: "chat"},
		"retyped":         {From: a.JID(), To: b.JID(), StanzaKind: "message", StanzaType: "groupchat"},
		"untyped":         {From: a.JID(), To: b.JID(), StanzaKind: "message"},
		"as iq":           {From: a.JID(), To: b.JID(), StanzaKind: "iq", StanzaType: "set", StanzaID: "iq1"},
		"other addressee": {From: a.JID(), To: "carol@example.net", StanzaKind: "message", StanzaType: "chat"},
	}
	for name, c := range cases {
		if _, _, err := b.OpenChat(c, el); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	// Moving the blob into a protected-stanza element changes the
	// domain-separation label: refused.
	if _, _, err := b.Unprotect(chatCtx(a, b), &ProtectedElement{Blob: el.Blob}); !errors.Is(err, ErrDecrypt) {
		t.Errorf("chat blob as stanza: %v, want ErrDecrypt", err)
	}
	recv(t, a, b, el, "for bob, as chat")
	// Re-routing to Bob's other device or to Carol: not for them.
	c2 := newTestEngine(t, "carol@example.net", clk)
	introduce(t, a, c2)
	if _, _, err := c2.OpenChat(Context{From: a.JID(), To: c2.JID(), StanzaKind: "message", StanzaType: "chat"}, el); !errors.Is(err, ErrNotForUs) {
		t.Errorf("re-routed to carol: %v, want ErrNotForUs", err)
	}
}

func TestAttackTamperedAuthOnly(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "x"), "x")
	c := Context{From: a.JID(), To: b.JID(), StanzaKind: "iq", StanzaType: "set", StanzaID: "iq1"}
	content := []byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='a73sjjvkla37jfea'/>`)
	p, err := a.Protect(c, []Device{dev(b)}, content, AuthOnly)
	if err != nil {
		t.Fatal(err)
	}
	// The server can read it...
	if !bytes.Contains(p.Envelope, []byte("session-initiate")) {
		t.Fatal("auth-only payload not readable")
	}
	// ...but not change it.
	bad := *p
	bad.Envelope = bytes.Replace(p.Envelope, []byte("session-initiate"), []byte("session-terminate"), 1)
	if _, _, err := b.Unprotect(c, &bad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered auth-only envelope: %v, want ErrDecrypt", err)
	}
	ev, peer, err := b.Unprotect(c, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Content, content) || peer.JID != a.JID() {
		t.Fatalf("content %q from %v", ev.Content, peer)
	}
}

func TestAttackChangedIdentityKey(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	introduce(t, a.testEngine, b.testEngine)
	recv(t, a.testEngine, b.testEngine, send(t, a.testEngine, b.testEngine, "x"), "x")
	// Bob's device comes back with a new identity key and no state (or an
	// attacker claims his device): its first message is refused.
	signer, _ := identity.GenerateMemorySigner()
	st := store.NewMemory()
	st.Update(func(tx store.Tx) error {
		var d builder
		d.u32(b.Device())
		return tx.Put(bucketSelf, "device", d)
	})
	b2 := newTrustedEngineWith(t, "bob@example.net", clk, signer, st)
	if b2.Device() != b.Device() {
		t.Fatal("device id not reused")
	}
	introduce(t, b2.testEngine) // nothing
	if err := b2.AddBundle(a.JID(), a.Bundle()); err != nil {
		t.Fatal(err)
	}
	el, err := b2.SealChat(chatCtx(b2.testEngine, a.testEngine), []Device{dev(a.testEngine)}, "new key", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.OpenChat(chatCtx(b2.testEngine, a.testEngine), el); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("first message under a changed key: %v, want ErrUntrusted", err)
	}
	rec, err := trust.New(a.store, clk.now).Lookup(b.JID())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Level != trust.Changed || !bytes.Equal(rec.PendingKey, ed25519.PublicKey(signer.PublicKey())) {
		t.Fatalf("trust record after key change: %+v", rec)
	}
}

// TestSimultaneousFirstMessages: both sides start a session at once. The
// tie-break keeps one session; nothing either side sent is lost, and a
// later redelivery of the losing first message breaks nothing.
func TestSimultaneousFirstMessages(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	a1, a2 := send(t, a, b, "from alice 1"), send(t, a, b, "from alice 2")
	b1, b2 := send(t, b, a, "from bob 1"), send(t, b, a, "from bob 2")
	// They cross on the wire.
	recv(t, a, b, a1, "from alice 1")
	recv(t, b, a, b1, "from bob 1")
	recv(t, a, b, a2, "from alice 2")
	recv(t, b, a, b2, "from bob 2")
	// The conversation converges on one session, both ways.
	for i := 0; i < 6; i++ {
		recv(t, a, b, send(t, a, b, fmt.Sprint("a", i)), fmt.Sprint("a", i))
		recv(t, b, a, send(t, b, a, fmt.Sprint("b", i)), fmt.Sprint("b", i))
	}
	ia, _ := a.Session(dev(b))
	ib, _ := b.Session(dev(a))
	if ia.Transcript != ib.Transcript || !ia.Established || !ib.Established || ia.Initiator == ib.Initiator {
		t.Fatalf("did not converge: %+v / %+v", ia, ib)
	}
	// A server redelivering the crossed first messages changes nothing.
	for _, el := range []*ChatElement{a1, b1} {
		_, _, errA := a.OpenChat(chatCtx(b, a), el)
		_, _, errB := b.OpenChat(chatCtx(a, b), el)
		if errA == nil && errB == nil {
			t.Fatal("redelivered first message accepted")
		}
	}
	recv(t, a, b, send(t, a, b, "still fine"), "still fine")
	recv(t, b, a, send(t, b, a, "yes"), "yes")
}

// TestDistrustStopsSession: distrusting a device ends sending to it and
// accepting from it at once, for an existing session too.
func TestDistrustStopsSession(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	introduce(t, a.testEngine, b.testEngine)
	recv(t, a.testEngine, b.testEngine, send(t, a.testEngine, b.testEngine, "x"), "x")
	pending := send(t, b.testEngine, a.testEngine, "y")
	if _, _, err := trust.New(a.store, clk.now).Distrust(b.JID()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SealChat(chatCtx(a.testEngine, b.testEngine), []Device{dev(b.testEngine)}, "z", false); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("seal to a distrusted device: %v", err)
	}
	if _, _, err := a.OpenChat(chatCtx(b.testEngine, a.testEngine), pending); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("open from a distrusted device: %v", err)
	}
}

// TestAttackSwappedIQResponses: the IQ id is bound, so a server cannot
// hand the response of one request to another.
func TestAttackSwappedIQResponses(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "x"), "x")
	c1 := Context{From: b.JID(), To: a.JID(), StanzaKind: "iq", StanzaType: "result", StanzaID: "req-1"}
	r1, err := b.Protect(c1, []Device{dev(a)}, []byte(`<balance xmlns="urn:example">10</balance>`), Encrypt)
	if err != nil {
		t.Fatal(err)
	}
	c2 := c1
	c2.StanzaID = "req-2"
	if _, _, err := a.Unprotect(c2, r1); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("response delivered under another IQ id: %v", err)
	}
	if _, _, err := a.Unprotect(c1, r1); err != nil {
		t.Fatal(err)
	}
}

// TestAttackBundleRollback: a server cannot serve an older bundle of a
// device (an old suite list or prekey) once a newer one is stored.
func TestAttackBundleRollback(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	old := b.Bundle()
	clk.t = clk.t.Add(10 * 24 * time.Hour) // Bob rotates his prekeys
	if err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	if b.Bundle().Hash() == old.Hash() || !b.Bundle().Issued.After(old.Issued) {
		t.Fatal("refresh did not issue a newer bundle")
	}
	if err := a.AddBundle(b.JID(), b.Bundle()); err != nil {
		t.Fatal(err)
	}
	if err := a.AddBundle(b.JID(), old); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("older bundle accepted: %v", err)
	}
	stored, err := a.PeerBundle(dev(b))
	if err != nil || stored.Hash() != b.Bundle().Hash() {
		t.Fatal("stored bundle rolled back")
	}
}
