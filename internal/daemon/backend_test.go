package daemon

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
)

// offlineBackend is a backend whose gateway never connects: enough for
// everything that reads or changes local state.
func offlineBackend(t *testing.T) (*backend, *hub) {
	t.Helper()
	st := store.NewMemory()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	ts := trust.New(st, nil)
	h := newHub()
	b := &backend{trust: ts, st: st, hub: h, log: Logger(t), seen: map[string]bool{}, signer: newSignerHealth(signer, "file")}
	eng, err := e2e.New(e2e.Config{JID: "alice@example.test", Signer: signer, Store: st,
		Trust: &e2e.PinningTrust{Store: ts, OnEvent: b.trustEvent}})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{JID: jid.MustParse("alice@example.test/laptop"), Password: "x", Engine: eng, Trust: ts})
	if err != nil {
		t.Fatal(err)
	}
	b.gw, b.eng = gw, eng
	return b, h
}

// Logger returns a silent logger.
func Logger(*testing.T) *slog.Logger { return slog.New(slog.DiscardHandler) }

// peerEngine makes a device of bob sharing st, so that a second call with
// the same store gives the same device id under a new key.
func peerEngine(t *testing.T, st store.Store) *e2e.Engine {
	t.Helper()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := e2e.New(e2e.Config{JID: "bob@example.test", Signer: signer, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.CertifyThisDevice(nil); err != nil {
		t.Fatal(err)
	}
	return eng
}

// sameDevice returns a fresh store holding only the device id kept in st
// (the engine's "e2e/self" bucket), to make the same device with a new key.
func sameDevice(t *testing.T, st store.Store) store.Store {
	t.Helper()
	out := store.NewMemory()
	var id []byte
	if err := st.View(func(tx store.Tx) error {
		var err error
		id, err = tx.Get("e2e/self", "device")
		return err
	}); err != nil {
		t.Fatalf("test setup: reading the device id: %v", err)
	}
	if err := out.Update(func(tx store.Tx) error { return tx.Put("e2e/self", "device", id) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackendOffline(t *testing.T) {
	b, h := offlineBackend(t)
	_, events, stop := h.subscribe(16, "")
	defer stop()
	st := b.Status()
	if st.Connected || st.Account != "alice@example.test" || st.Device != b.eng.Device() {
		t.Fatalf("status %+v", st)
	}
	if _, err := b.SendChat(context.Background(), "bob@example.test", "x"); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("offline chat: %v", err)
	}
	if _, err := b.SendIQ(context.Background(), api.IQRequest{To: "bob@example.test/phone", Type: "get", Payload: "<a xmlns='x'/>"}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("offline IQ: %v", err)
	}

	bobStore := store.NewMemory()
	bob := peerEngine(t, bobStore)
	if err := b.eng.AddBundle("bob@example.test", bob.Bundle()); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Kind != "trust" || ev.From != "bob@example.test" ||
		ev.Detail != gateway.TrustEventDetail(trust.Event{Kind: trust.EventFirstUse, JID: "bob@example.test", New: bob.Identity()}) {
		t.Fatalf("first use event %+v", ev)
	}
	peers, err := b.Peers()
	if err != nil || len(peers) != 1 || len(peers[0].Devices) != 1 {
		t.Fatalf("peers %+v %v", peers, err)
	}
	if p := peers[0]; p.Trust != "tofu" || p.Fingerprint != identity.Fingerprint(bob.Identity()) || p.FirstSeen == nil || p.VerifiedAt != nil {
		t.Fatalf("peer %+v", p)
	}
	if d := peers[0].Devices[0]; d.ID != bob.Device() || !d.Accepted || !d.Bundle || d.Session {
		t.Fatalf("device %+v", d)
	}
	v, err := b.Verify("bob@example.test")
	if err != nil || len(v.Devices) != 0 || v.Key != api.EncodeKey(bob.Identity()) || v.Trust != "tofu" || v.PendingKey != "" {
		t.Fatalf("verify %+v %v", v, err)
	}
	if _, err := b.Verify("carol@example.test"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	if v, err := b.Verify("alice@example.test"); err != nil || v.Key != api.EncodeKey(b.eng.Identity()) || v.Method != "self" {
		t.Fatalf("own account: %+v %v", v, err)
	}

	// Bob's account comes back with another key: it is refused and pending.
	bob2 := peerEngine(t, sameDevice(t, bobStore))
	if bob2.Device() != bob.Device() {
		t.Fatal("test setup: device id not kept")
	}
	if err := b.eng.AddBundle("bob@example.test", bob2.Bundle()); !errors.Is(err, e2e.ErrUntrusted) {
		t.Fatalf("changed key stored: %v", err)
	}
	peers, _ = b.Peers()
	if p := peers[0]; p.Trust != "changed" || p.PendingFingerprint != identity.Fingerprint(bob2.Identity()) || p.ChangedAt == nil ||
		p.Fingerprint != identity.Fingerprint(bob.Identity()) || !p.Devices[0].Accepted {
		t.Fatalf("changed account %+v", p)
	}
	if v, err := b.Verify("bob@example.test"); err != nil || v.PendingKey != api.EncodeKey(bob2.Identity()) || v.Key != api.EncodeKey(bob.Identity()) {
		t.Fatalf("verify of a changed account %+v %v", v, err)
	}
	req := api.TrustRequest{JID: "bob@example.test", Action: "verify", Method: "sas"}
	req.Key = api.EncodeKey(make([]byte, 32))
	if _, err := b.Trust(req); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("random key: %v", err)
	}
	// The user verifies the new key: it becomes the pinned one.
	req.Key = api.EncodeKey(bob2.Identity())
	res, err := b.Trust(req)
	if err != nil || res.Trust != "verified" || res.Fingerprint != identity.Fingerprint(bob2.Identity()) {
		t.Fatalf("verify new key: %+v %v", res, err)
	}
	if err := b.eng.AddBundle("bob@example.test", bob2.Bundle()); err != nil {
		t.Fatalf("verified key's bundle refused: %v", err)
	}
	if p, _ := b.Peers(); p[0].Trust != "verified" || p[0].Method != "sas" || p[0].VerifiedAt == nil || p[0].PendingFingerprint != "" {
		t.Fatalf("verified account %+v", p[0])
	}
	// Distrust and accept.
	for len(events) > 0 {
		<-events
	}
	res, err = b.Trust(api.TrustRequest{JID: "bob@example.test", Action: "distrust"})
	if err != nil || res.Trust != "distrusted" {
		t.Fatalf("distrust %+v %v", res, err)
	}
	if ev := <-events; ev.Kind != "trust" || ev.Detail != gateway.TrustEventDetail(trust.Event{Kind: trust.EventDistrusted, JID: "bob@example.test", New: bob2.Identity()}) {
		t.Fatalf("distrust event %+v", ev)
	}
	if p, _ := b.Peers(); p[0].Trust != "distrusted" || p[0].Devices[0].Accepted {
		t.Fatalf("distrusted account %+v", p[0])
	}
	res, err = b.Trust(api.TrustRequest{JID: "bob@example.test", Action: "accept"})
	if err != nil || res.Trust != "tofu" {
		t.Fatalf("accept %+v %v", res, err)
	}
	for _, r := range []api.TrustRequest{
		{JID: "carol@example.test", Action: "distrust"},
		{JID: "carol@example.test", Action: "accept"},
		{JID: "carol@example.test", Action: "verify", Key: api.EncodeKey(bob.Identity()), Method: "sas"},
	} {
		if _, err := b.Trust(r); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("%+v: %v", r, err)
		}
	}
	if _, err := b.Trust(api.TrustRequest{JID: "alice@example.test", Action: "distrust"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("trusting ourselves: %v", err)
	}
}
