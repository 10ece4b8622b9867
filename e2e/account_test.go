package e2e

import (
	"bytes"

	"crypto/hpke"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// Tests of the account and device model (docs/protocol.md §5.6) and of the
// review findings it fixes (phantom devices, first-message KCI).

// newDevice creates another device of e's account: same account signer,
// certified onto e's list, and e learns the new list.
func newDevice(t *testing.T, e *testEngine, clk *testClock) *testEngine {
	t.Helper()
	st := store.NewMemory()
	d, err := newCertified(t, Config{JID: e.JID(), Signer: e.cfg.Signer, Store: st, Now: clk.now}, e.Engine)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddDeviceList(e.JID(), mustList(t, d)); err != nil {
		t.Fatal(err)
	}
	return &testEngine{d, st}
}

func TestAccountOneIdentityManyDevices(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	b2 := newDevice(t, b.testEngine, clk)
	if !bytes.Equal(b.Identity(), b2.Identity()) || bytes.Equal(b.DeviceKey(), b2.DeviceKey()) {
		t.Fatal("devices of one account must share the account key and have their own device keys")
	}
	introduce(t, a.testEngine, b.testEngine, b2)
	// One trust record for bob, however many devices: one first-use event.
	firstUse := 0
	for _, ev := range *a.events {
		if ev.Kind == trust.EventFirstUse && ev.JID == "bob@example.net" {
			firstUse++
		}
	}
	if firstUse != 1 {
		t.Fatalf("%d first-use events for bob's two devices, want 1", firstUse)
	}
	devs, err := a.Devices("bob@example.net")
	if err != nil || len(devs) != 2 {
		t.Fatalf("alice sees %v (%v), want bob's two devices", devs, err)
	}
	el, err := a.SealChat(chatCtx(a.testEngine, b.testEngine), devs, "to both", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*testEngine{b.testEngine, b2} {
		_, p, err := d.OpenChat(chatCtx(a.testEngine, b.testEngine), el)
		if err != nil {
			t.Fatalf("device %d: %v", d.Device(), err)
		}
		if !bytes.Equal(p.Identity, a.Identity()) || !bytes.Equal(p.DeviceKey, a.DeviceKey()) {
			t.Fatal("peer keys not reported")
		}
		if p.Established {
			t.Fatal("a first message must show as not yet confirmed")
		}
	}
}

// TestRegressPhantomDeviceForContact: finding 3. The server (or a password
// thief) logs in a new resource under bob's account with a key of its own.
// It can sign a bundle, a certificate and a device list with a key it
// made, but not with bob's pinned account key: it is never used, and the
// error names it.
func TestRegressPhantomDeviceForContact(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	introduce(t, a.testEngine, b.testEngine)
	// Alice verified bob's fingerprint.
	if _, err := trust.New(a.store, clk.now).Verify("bob@example.net", b.Identity(), trust.MethodFingerprint); err != nil {
		t.Fatal(err)
	}
	phantom := newTestEngine(t, "bob@example.net", clk) // its own "account" key
	err := a.AddBundle("bob@example.net", phantom.Bundle())
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("phantom device of a contact accepted: %v", err)
	}
	devs, _ := a.Devices("bob@example.net")
	if len(devs) != 1 || devs[0].ID != b.Device() {
		t.Fatalf("alice would encrypt to %v, want only bob's real device", devs)
	}
	// The record stays verified for the real key; the phantom key is only
	// pending, never usable.
	rec, err := trust.New(a.store, clk.now).Lookup("bob@example.net")
	if err != nil || !rec.Accepts(b.Identity()) || rec.Accepts(phantom.Identity()) {
		t.Fatalf("trust after phantom: %+v %v", rec, err)
	}
	// A first message from the phantom (inline bundle) is refused too.
	if err := phantom.AddBundle(a.JID(), a.Bundle()); err != nil {
		t.Fatal(err)
	}
	el, err := phantom.SealChat(chatCtx(phantom, a.testEngine), []Device{dev(a.testEngine)}, "hi, it's bob", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.OpenChat(chatCtx(phantom, a.testEngine), el); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("first message from a phantom device: %v", err)
	}
}

// TestRegressPhantomCertifiedButUnlisted: a device with a certificate from
// bob's real account key but not on bob's newest list (removed, or a
// certificate obtained once) is refused with an error that names it.
func TestRegressPhantomCertifiedButUnlisted(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	introduce(t, a.testEngine, b.testEngine)
	// A device that holds a certificate from bob's key but was never
	// listed: build it with bob's signer, without certifying it onto a
	// list, and strip its own list.
	st := store.NewMemory()
	rogue, err := New(Config{JID: "bob@example.net", Signer: b.cfg.Signer, Store: st, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	bu := rogue.Bundle()
	if bu.List != nil {
		t.Fatal("an uncertified device must not embed a list")
	}
	err = a.AddBundle("bob@example.net", bu)
	var ue *UncertifiedDeviceError
	if !errors.As(err, &ue) || ue.Device.ID != rogue.Device() || !errors.Is(err, ErrUncertified) {
		t.Fatalf("unlisted device: %v", err)
	}
	// It may even embed an older list of bob's that names its id with
	// another key: still refused.
	if rogue.Certified() {
		t.Fatal("rogue device reports itself certified")
	}
}

// TestRegressPhantomOwnDevice: finding 3 for the own account: a device of
// our own JID under another account key is never accepted (carbons and
// own-device copies included), whatever the trust store says.
func TestRegressPhantomOwnDevice(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	phantom := newTestEngine(t, "alice@example.org", clk)
	err := a.AddBundle("alice@example.org", phantom.Bundle())
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("phantom own device accepted: %v", err)
	}
	// Its own-device copy of a message (as a carbon would bring) is refused.
	if err := phantom.AddBundle(a.JID(), a.Bundle()); err == nil {
		t.Fatal("the phantom should not accept alice's real device either")
	}
	own := Context{From: a.JID(), To: "bob@example.net", StanzaKind: "message", StanzaType: "chat"}
	phantom.cfg.Trust = nil
	if _, err := phantom.SealChat(own, []Device{dev(a.testEngine)}, "sent by me", true); err == nil {
		// The phantom cannot even build a session to a device whose
		// account key is not its own.
		t.Fatal("phantom sealed to alice's real device")
	}
	// A real second device works.
	a2 := newDevice(t, a.testEngine, clk)
	if err := a.AddBundle(a.JID(), a2.Bundle()); err != nil {
		t.Fatalf("real own device refused: %v", err)
	}
}

// TestDeviceRevocation: bob removes a device; alice, on receiving the new
// list, deletes its bundle and session and neither encrypts to it nor
// accepts it again.
func TestDeviceRevocation(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	b2 := newDevice(t, b, clk)
	introduce(t, a, b, b2)
	recv(t, b2, a, send(t, b2, a, "from the old phone"), "from the old phone")
	pending := send(t, b2, a, "sent before removal")
	l, err := b.RemoveDevice(b2.Device(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Lists(b2.Device(), b2.DeviceKey()) || !l.Lists(b.Device(), b.DeviceKey()) {
		t.Fatalf("new list %+v", l.Devices)
	}
	revoked, err := a.AddDeviceList("bob@example.net", l)
	if err != nil || len(revoked) != 1 || revoked[0].ID != b2.Device() {
		t.Fatalf("revoked %v, %v", revoked, err)
	}
	devs, _ := a.Devices("bob@example.net")
	if len(devs) != 1 || devs[0].ID != b.Device() {
		t.Fatalf("after revocation alice sees %v", devs)
	}
	if _, err := a.SealChat(chatCtx(a, b), []Device{dev(b2)}, "x", false); err == nil {
		t.Fatal("sealed to a revoked device")
	}
	if _, _, err := a.OpenChat(chatCtx(b2, a), pending); err == nil {
		t.Fatal("accepted a message from a revoked device")
	}
	// The server re-serves the revoked device's old bundle (which embeds
	// the old list): refused, and the older list does not come back.
	err = a.AddBundle("bob@example.net", b2.Bundle())
	if !errors.Is(err, ErrUncertified) {
		t.Fatalf("revoked device's old bundle: %v", err)
	}
	cur, _ := a.DeviceList("bob@example.net")
	if cur.Version != l.Version {
		t.Fatalf("device list rolled back to version %d", cur.Version)
	}
	// A device cannot remove itself.
	if _, err := b.RemoveDevice(b.Device(), nil); err == nil {
		t.Fatal("device removed itself")
	}
}

func TestDeviceListRollbackAndConflict(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	v1 := mustList(t, b.Engine)
	b2 := newDevice(t, b, clk)
	v2 := mustList(t, b2.Engine)
	if v2.Version <= v1.Version {
		t.Fatalf("versions %d then %d", v1.Version, v2.Version)
	}
	if _, err := a.AddDeviceList("bob@example.net", v2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddDeviceList("bob@example.net", v1); err != nil {
		t.Fatalf("an older list must be ignored, not an error: %v", err)
	}
	if cur, _ := a.DeviceList("bob@example.net"); cur.Version != v2.Version {
		t.Fatal("older list replaced the newer one")
	}
	// Same version, other content: both signed by bob's key. Refused.
	other, err := signDeviceList(b.cfg.Signer, "bob@example.net", v2.Version, []ListedDevice{{b.Device(), b.DeviceKey()}}, clk.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddDeviceList("bob@example.net", other); !errors.Is(err, ErrDeviceListConflict) {
		t.Fatalf("equivocating list: %v", err)
	}
	// A list for the wrong JID or with a flipped bit is refused.
	if _, err := a.AddDeviceList("carol@example.com", v2); err == nil {
		t.Fatal("bob's list accepted for carol")
	}
	raw := v2.Marshal()
	raw[len(raw)-1] ^= 1
	bad, err := ParseDeviceList(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddDeviceList("bob@example.net", bad); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("tampered list: %v", err)
	}
}

func TestDeviceCertificateExpiry(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	stale := b.Bundle()
	clk.t = clk.t.Add(181 * 24 * time.Hour)
	if err := a.AddBundle("bob@example.net", stale); !errors.Is(err, ErrUncertified) {
		t.Fatalf("bundle with an expired certificate: %v", err)
	}
	// Bob's device renews its certificate (through the agent) and re-signs.
	renewed, err := b.RenewCertificate()
	if err != nil || !renewed {
		t.Fatalf("renew: %v %v", renewed, err)
	}
	if err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := a.AddBundle("bob@example.net", b.Bundle()); err != nil {
		t.Fatalf("renewed bundle: %v", err)
	}
	if renewed, _ := b.RenewCertificate(); renewed {
		t.Fatal("renewed a fresh certificate")
	}
}

// countingSigner counts signatures.
type countingSigner struct {
	identity.Signer
	n atomic.Int64
}

func (c *countingSigner) Sign(ns string, m []byte) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.Sign(ns, m)
}

// TestRegressFirstMessageKCI: finding 4. Someone who read bob's store (his
// prekey private key) replaces the content of alice's first message: they
// can derive chain 0, but the message's signature by alice's device key no
// longer matches. And an ack in a first-message header is refused.
func TestRegressFirstMessageKCI(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	el := send(t, a, b, "meet at noon")
	forged := kciReplace(t, a, b, el, []byte("meet at midnight"))
	if _, _, err := b.OpenChat(chatCtx(a, b), forged); !errors.Is(err, ErrHandshake) {
		t.Fatalf("first message re-encrypted with the stolen prekey: %v", err)
	}
	// The genuine message still opens (nothing was stored by the forgery).
	recv(t, a, b, el, "meet at noon")

	// An ack in the header of a first message is malformed.
	a2 := newTestEngine(t, "alice@example.org", clk)
	b3 := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a2, b3)
	acked := forgeFirstMessageWithHeader(t, a2, b3, func(h *header) { h.ack = 1 })
	if _, _, err := b3.OpenChat(chatCtx(a2, b3), acked); !errors.Is(err, ErrMalformed) {
		t.Fatalf("first message with an ack: %v", err)
	}
}

// TestRegressResponderSignsAfterAEAD: finding 5. A forged first message
// costs the responder no signature.
func TestRegressResponderSignsAfterAEAD(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	cs := &countingSigner{Signer: b.devKey}
	b.devKey = cs
	el := send(t, a, b, "hello")
	blob := bytes.Clone(el.Blob)
	blob[len(blob)-70] ^= 1 // inside the ciphertext, before the signature
	if _, _, err := b.OpenChat(chatCtx(a, b), &ChatElement{Blob: blob}); err == nil {
		t.Fatal("tampered first message accepted")
	}
	if cs.n.Load() != 0 {
		t.Fatalf("responder signed %d times for a forged first message", cs.n.Load())
	}
	recv(t, a, b, el, "hello")
	if cs.n.Load() != 1 {
		t.Fatalf("responder signed %d times for a genuine first message, want 1", cs.n.Load())
	}
}

// TestIncomingNeverUsesAgent: the account signer (the agent) is not used
// while processing messages, handshakes included.
func TestIncomingNeverUsesAgent(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	ca, cb := &countingSigner{Signer: a.cfg.Signer}, &countingSigner{Signer: b.cfg.Signer}
	a.cfg.Signer, b.cfg.Signer = ca, cb
	recv(t, a, b, send(t, a, b, "1"), "1")
	recv(t, b, a, send(t, b, a, "2"), "2")
	if err := a.Refresh(); err != nil {
		t.Fatal(err)
	}
	if ca.n.Load()+cb.n.Load() != 0 {
		t.Fatalf("the agent signed %d times during messaging", ca.n.Load()+cb.n.Load())
	}
}

// kciReplace re-encrypts the first message el from a to b with new content,
// as an attacker holding b's prekey private key can, keeping a's signature.
func kciReplace(t *testing.T, a, b *testEngine, el *ChatElement, content []byte) *ChatElement {
	t.Helper()
	_, es, _ := parseEntries(el.Blob)
	r := reader{b: es[0].body}
	readInitBlock(&r)
	n := readHeader(&r, true).n
	sender, en, _, prefix, mk, su := stolenChain0(t, a, b, el, n)
	sig := en.body[len(en.body)-identity.SignatureSize:]
	c := chatCtx(a, b)
	ad := c.ad(modeChat, sender, dev(b), en.kind, prefix)
	body := seal(su, mk, ad, content, bytes.Clone(prefix))
	body = append(body, sig...)
	var out builder
	out.u32(sender)
	out.u32(en.device)
	out.u8(en.kind)
	out.vbytes(body)
	return &ChatElement{Blob: out}
}

// stolenChain0 is what someone holding b's prekey private key learns from
// a's first message el to b: the entry, its init block and header, and
// message key n of a's first chain (derived from K1 alone).
func stolenChain0(t *testing.T, a, b *testEngine, el *ChatElement, n uint32) (sender uint32, en entry, h header, prefix []byte, mk [32]byte, su *Suite) {
	t.Helper()
	sender, es, err := parseEntries(el.Blob)
	if err != nil || len(es) != 1 {
		t.Fatal(err)
	}
	en = es[0]
	r := reader{b: en.body}
	ib := readInitBlock(&r)
	h = readHeader(&r, true)
	if r.err != nil {
		t.Fatal(r.err)
	}
	prefix = en.body[:len(en.body)-len(r.b)]
	var priv hpke.PrivateKey
	if err := b.store.View(func(tx store.Tx) error {
		k, _, err := b.loadPrekey(tx, ib.prekeyID, LookupSuite(ib.suite).KEM)
		priv = k
		return err
	}); err != nil {
		t.Fatal(err)
	}
	own, peer := a.Bundle(), b.Bundle()
	ini := &party{own.JID, own.Device, own.Identity, own.Account, ib.initBundle, own.Suites}
	res := &party{peer.JID, peer.Device, peer.Identity, peer.Account, ib.respBundle, peer.Suites}
	su = LookupSuite(ib.suite)
	t0 := th0(su.ID, ini, res, ib.prekeyID)
	t1 := th1(t0, ib.enc, ib.ephemeral, h.pub)
	_, kdf, aead := su.hpke()
	recip, err := hpke.NewRecipient(ib.enc, priv, kdf, aead, hpkeInfo(t0))
	if err != nil {
		t.Fatal(err)
	}
	k1, err := export(recip, labelK1)
	if err != nil {
		t.Fatal(err)
	}
	ck := deriveKey(k1, t1, labelChain0)
	for i := uint32(0); i <= n; i++ {
		ck, mk = kdfCK(ck)
	}
	return sender, en, h, prefix, mk, su
}

// forgeFirstMessageWithHeader builds a's genuine first message to b with
// an edited header (signed by a's device key, so only the edit is wrong).
func forgeFirstMessageWithHeader(t *testing.T, a, b *testEngine, edit func(*header)) *ChatElement {
	t.Helper()
	su := LookupSuite(SuiteXWingAES)
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
	var prefix builder
	ib.marshal(&prefix)
	h, mk, err := rs.sendHeader()
	if err != nil {
		t.Fatal(err)
	}
	edit(&h)
	h.full = true
	h.marshal(&prefix)
	c := chatCtx(a, b)
	ad := c.ad(modeChat, a.Device(), dev(b), kindInit, prefix)
	body := seal(su, mk, ad, []byte("acked"), bytes.Clone(prefix))
	sig, err := signFirst(a.devKey, st.th1, ad, body[len(prefix):])
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, sig...)
	var out builder
	out.u32(a.Device())
	out.u32(b.Device())
	out.u8(kindInit)
	out.vbytes(body)
	return &ChatElement{Blob: out}
}

// TestRegressInlineBundleRollback: finding 5. A late first message whose
// inline bundle is older than the one stored for that device is read, but
// the stored bundle is never rolled back to it.
func TestRegressInlineBundleRollback(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	if err := a.AddBundle(b.JID(), b.Bundle()); err != nil {
		t.Fatal(err)
	}
	// Alice (a stranger to bob) sends with her bundle inline; the server
	// holds the message back.
	el, err := a.SealChat(chatCtx(a, b), []Device{dev(b)}, "late", true)
	if err != nil {
		t.Fatal(err)
	}
	old := a.Bundle()
	// Alice re-signs her bundle (new attestations) and bob learns it.
	clk.t = clk.t.Add(time.Hour)
	if err := a.SetAttestations([]Attestation{{Type: "self", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	newer := a.Bundle()
	if !newer.Issued.After(old.Issued) {
		t.Fatal("re-signed bundle is not newer")
	}
	if err := b.AddBundle(a.JID(), newer); err != nil {
		t.Fatal(err)
	}
	// The held-back first message arrives.
	recv(t, a, b, el, "late")
	stored, err := b.PeerBundle(dev(a))
	if err != nil || !stored.Issued.Equal(newer.Issued) {
		t.Fatalf("stored bundle issued %v, want the newer %v (rolled back by an inline bundle)", stored.Issued, newer.Issued)
	}
	// Storing the old one directly is refused.
	if err := b.AddBundle(a.JID(), old); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("older bundle: %v", err)
	}
}

// TestCertificateExpiryOnEveryUse: an established session stops being
// used, both ways, once the peer device's certificate expires, and works
// again when the device renews it.
func TestCertificateExpiryOnEveryUse(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "1"), "1")
	recv(t, b, a, send(t, b, a, "2"), "2")
	pending := send(t, b, a, "sent before expiry")
	clk.t = clk.t.Add(181 * 24 * time.Hour)
	if _, err := a.SealChat(chatCtx(a, b), []Device{dev(b)}, "x", false); !errors.Is(err, ErrUncertified) {
		t.Fatalf("seal to a device whose certificate expired: %v", err)
	}
	if _, _, err := a.OpenChat(chatCtx(b, a), pending); !errors.Is(err, ErrUncertified) {
		t.Fatalf("open from a device whose certificate expired: %v", err)
	}
	for _, e := range []*testEngine{a, b} { // both certificates expired: both renew
		if _, err := e.RenewCertificate(); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(); err != nil {
			t.Fatal(err)
		}
	}
	introduce(t, a, b)
	recv(t, b, a, pending, "sent before expiry")
	recv(t, a, b, send(t, a, b, "3"), "3")
}

// chain0Forge builds, as someone holding b's prekey private key can, an
// entry of kind 1 (no init block, no signature) on a's first chain.
func chain0Forge(t *testing.T, a, b *testEngine, el *ChatElement, n, ack uint32, content []byte) *ChatElement {
	t.Helper()
	sender, en, h0, _, mk, su := stolenChain0(t, a, b, el, n)
	h := header{idx: 0, ack: ack, n: n, full: true, pub: h0.pub}
	var prefix builder
	h.marshal(&prefix)
	c := chatCtx(a, b)
	ad := c.ad(modeChat, sender, dev(b), kindFull, prefix)
	body := seal(su, mk, ad, content, bytes.Clone(prefix))
	var out builder
	out.u32(sender)
	out.u32(en.device)
	out.u8(kindFull)
	out.vbytes(body)
	return &ChatElement{Blob: out}
}

// TestRegressKCIUnsignedChain0: the review of the KCI fix. With the
// prekey, an attacker can derive chain 0; an unsigned (kind 1) entry on it
// must not be accepted, nor confirm the session, nor fill a skipped key.
func TestRegressKCIUnsignedChain0(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	el := send(t, a, b, "meet at noon")
	recv(t, a, b, el, "meet at noon")
	forged := chain0Forge(t, a, b, el, 1, 1, []byte("meet at midnight"))
	if got, _, err := b.OpenChat(chatCtx(a, b), forged); !errors.Is(err, ErrHandshake) {
		t.Fatalf("forged chain-0 entry: %q, %v", got, err)
	}
	if info, _ := b.Session(dev(a)); info.Established {
		t.Fatal("a forgery confirmed the session")
	}

	a2 := newTestEngine(t, "alice@example.org", clk)
	b2 := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a2, b2)
	el1 := send(t, a2, b2, "one")
	_ = send(t, a2, b2, "two (withheld)")
	el3 := send(t, a2, b2, "three")
	recv(t, a2, b2, el1, "one")
	recv(t, a2, b2, el3, "three")
	recv(t, b2, a2, send(t, b2, a2, "ok"), "ok")
	recv(t, a2, b2, send(t, a2, b2, "four"), "four")
	if got, _, err := b2.OpenChat(chatCtx(a2, b2), chain0Forge(t, a2, b2, el1, 1, 0, []byte("forged two"))); err == nil {
		t.Fatalf("forged entry in a skipped chain-0 slot accepted: %q", got)
	}
}

// TestRegressDistrustNotLiftedByForeignKey: the review of trust per
// account. A distrusted account stays distrusted when some device presents
// another account key (the server, or the distrusted peer itself).
func TestRegressDistrustNotLiftedByForeignKey(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	introduce(t, a.testEngine, b.testEngine)
	recv(t, a.testEngine, b.testEngine, send(t, a.testEngine, b.testEngine, "x"), "x")
	ts := trust.New(a.store, clk.now)
	if _, _, err := ts.Distrust(b.JID()); err != nil {
		t.Fatal(err)
	}
	m := newTestEngine(t, "bob@example.net", clk)
	if err := a.AddBundle("bob@example.net", m.Bundle()); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("foreign key for a distrusted account: %v", err)
	}
	if rec, _ := ts.Lookup(b.JID()); rec.Level != trust.Distrusted {
		t.Fatalf("record after a foreign key: %v, want distrusted", rec.Level)
	}
	if _, err := a.SealChat(chatCtx(a.testEngine, b.testEngine), []Device{dev(b.testEngine)}, "after distrust", false); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("sealed to the distrusted account again: %v", err)
	}
}

// TestRegressDeviceListVersionBounds: the review. A list far above the
// stored one, or at a huge version, is refused, so one stray signature
// cannot make a device irrevocable.
func TestRegressDeviceListVersionBounds(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	devs := []ListedDevice{{b.Device(), b.DeviceKey()}, {12345, a.DeviceKey()}}
	cur := mustList(t, b.Engine)
	for _, v := range []uint64{cur.Version + maxListJump + 1, maxListVersion + 1, 1<<64 - 1} {
		l, err := signDeviceList(b.cfg.Signer, b.JID(), v, devs, clk.now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.AddDeviceList(b.JID(), l); !errors.Is(err, ErrBadBundle) {
			t.Fatalf("version %d: %v", v, err)
		}
	}
	ok, err := signDeviceList(b.cfg.Signer, b.JID(), cur.Version+1, devs, clk.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddDeviceList(b.JID(), ok); err != nil {
		t.Fatalf("the next version: %v", err)
	}
}

// TestRegressStaleDeviceCannotSeal: the review. A listed device whose
// prekeys expired (offline for weeks) is reported by CanSeal, so a sender
// can leave it out instead of failing the whole message.
func TestRegressStaleDeviceCannotSeal(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	b2 := newDevice(t, b, clk)
	introduce(t, a, b, b2)
	clk.t = clk.t.Add(15 * 24 * time.Hour)
	if err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := a.AddBundle(b.JID(), b.Bundle()); err != nil {
		t.Fatal(err)
	}
	if err := a.CanSeal(dev(b)); err != nil {
		t.Fatalf("fresh device: %v", err)
	}
	if err := a.CanSeal(dev(b2)); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("stale device: %v, want no unexpired prekey", err)
	}
	if _, err := a.SealChat(chatCtx(a, b), []Device{dev(b)}, "hi", false); err != nil {
		t.Fatal(err)
	}
}

// TestRegressPruneKeepsRevocationAndPin: the review. Pruning a stranger's
// state leaves a tombstone: a revoked device's old bundle is still refused
// afterwards, and a new account key at the next contact is a key change,
// not a silent first use.
func TestRegressPruneKeepsRevocationAndPin(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	b2 := newDevice(t, b, clk)
	introduce(t, a.testEngine, b, b2)
	l, err := b.RemoveDevice(b2.Device(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddDeviceList(b.JID(), l); err != nil {
		t.Fatal(err)
	}
	ts := trust.New(a.store, clk.now)
	prune := func() {
		t.Helper()
		for _, later := range []time.Duration{0, 2 * time.Hour} { // the first pass starts idle clocks
			clk.t = clk.t.Add(later)
			if _, err := a.PruneStrangers(PruneConfig{
				Keep:   func(store.Tx, Device) (bool, error) { return false, nil },
				Forget: func(tx store.Tx, jid string) error { return ts.RemoveTx(tx, jid) },
				Idle:   time.Hour,
			}); err != nil {
				t.Fatal(err)
			}
		}
		if ds, _ := a.Devices(b.JID()); len(ds) != 0 {
			t.Fatalf("prune left %v", ds)
		}
	}
	prune()
	if l, _ := a.DeviceList(b.JID()); l != nil {
		t.Fatal("the list survived the prune (the test needs it gone)")
	}
	// The revoked device's old bundle (embedding the old list) comes back.
	if err := a.AddBundle(b.JID(), b2.Bundle()); !errors.Is(err, ErrUncertified) {
		t.Fatalf("revoked device after pruning: %v", err)
	}
	// A current device with the current list is fine.
	if err := a.AddBundle(b.JID(), b.Bundle()); err != nil {
		t.Fatalf("current device after pruning: %v", err)
	}
	// After another prune, a different account key is a key change.
	prune()
	m := newTestEngine(t, "bob@example.net", clk)
	if err := a.AddBundle(b.JID(), m.Bundle()); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("another key after pruning: %v, want a key change", err)
	}
	if rec, _ := ts.Lookup(b.JID()); rec.Level != trust.Changed || !bytes.Equal(rec.Key, b.Identity()) {
		t.Fatalf("record after the new key: %+v", rec)
	}
}

// TestRegressNoTrustEventForRolledBackPin: the review. A bundle whose
// account key was looked at (and would be pinned) but which is refused
// later in the same transaction announces no first use.
func TestRegressNoTrustEventForRolledBackPin(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	st := store.NewMemory()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	unlisted, err := New(Config{JID: "carol@example.com", Signer: signer, Store: st, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddBundle("carol@example.com", unlisted.Bundle()); !errors.Is(err, ErrUncertified) {
		t.Fatalf("unlisted device: %v", err)
	}
	if n := len(*a.events); n != 0 {
		t.Fatalf("%d trust events announced for a refused bundle: %+v", n, *a.events)
	}
	if _, err := trust.New(a.store, clk.now).Lookup("carol@example.com"); !errors.Is(err, trust.ErrUnknown) {
		t.Fatalf("key pinned for a refused bundle: %v", err)
	}
}

// TestRegressOwnPhantomFirstMessage: a first message from "a device
// of our own account" whose inline bundle names another account key is
// refused as untrusted before any verification (own devices skip access
// control, so this must be cheap), and stores nothing.
func TestRegressOwnPhantomFirstMessage(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	phantom := newTestEngine(t, "alice@example.org", clk)
	el := forgeFirstMessageWith(t, phantom, a, SuiteXWingAES, func(ib *initBlock) { ib.inlineBundle = phantom.Bundle().Marshal() })
	cs := &countingSigner{Signer: a.devKey}
	a.devKey = cs
	if _, _, err := a.OpenChat(chatCtx(phantom, a), el); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("own-JID first message under another account key: %v", err)
	}
	if _, err := a.PeerBundle(dev(phantom)); err == nil {
		t.Fatal("the phantom's bundle was stored")
	}
	if cs.n.Load() != 0 {
		t.Fatal("the responder signed for a phantom")
	}
}
