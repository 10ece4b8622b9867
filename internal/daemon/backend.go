package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
)

// maxSeen bounds the JIDs remembered from events.
const maxSeen = 4096

// backend implements api.Backend on a gateway. It is safe for concurrent
// use.
type backend struct {
	gw    *gateway.Gateway
	eng   *e2e.Engine
	trust *trust.Store
	st    store.Store
	hub   *hub
	log   *slog.Logger
	// statement is this device's identity statement; attest checks the
	// attestations of peers' bundles. Both are set before serving.
	statement string
	attest    *attest.Registry
	// warnings are problems found at startup that do not stop the
	// daemon (see warn); set before serving.
	warnings []string

	mu   sync.Mutex
	seen map[string]bool // bare JIDs seen in events
}

var _ api.Backend = (*backend)(nil)

func (b *backend) account() string { return b.eng.JID() }

func (b *backend) connected() bool {
	select {
	case <-b.gw.Ready():
		return true
	default:
		return false
	}
}

// Status implements api.Backend.
func (b *backend) Status() api.Status {
	ik := b.eng.Identity()
	return api.Status{
		Account:           b.account(),
		JID:               b.gw.JID().String(),
		Device:            b.eng.Device(),
		Fingerprint:       identity.Fingerprint(ik),
		FingerprintBlocks: attest.FingerprintBlocks(ik),
		Connected:         b.connected(),
		DroppedEvents:     b.gw.DroppedEvents() + b.hub.dropped.Load(),
		Statement:         b.statement,
		Warnings:          b.warnings,
	}
}

// pump forwards gateway events to the hub until ctx is done.
func (b *backend) pump(ctx context.Context, ch <-chan gateway.Event, stop func()) {
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-ch:
			if ev.From != "" && ev.Kind != gateway.EventConnected && ev.Kind != gateway.EventDisconnected {
				b.remember(ev.From)
			}
			b.hub.publish(apiEvent(ev))
		}
	}
}

func (b *backend) remember(from string) {
	j, err := jid.Parse(from)
	if err != nil {
		return
	}
	bare := j.Bare().String()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) < maxSeen {
		b.seen[bare] = true
	}
}

func apiEvent(ev gateway.Event) api.Event {
	out := api.Event{
		Kind: string(ev.Kind), Time: ev.Time, From: ev.From, To: ev.To,
		Body: ev.Body, Encrypted: ev.Encrypted, Payload: string(ev.Payload), Detail: ev.Detail,
		Refused: ev.Refused,
	}
	if ev.Alert != nil {
		a := *ev.Alert
		out.Alert = &a
	}
	if ev.Peer != nil {
		out.Device, out.Established = ev.Peer.ID, ev.Peer.Established
	}
	return out
}

// trustEvent turns a trust store event into an API event. It runs inside
// a store transaction: it must not block.
func (b *backend) trustEvent(ev trust.Event) {
	detail := ev.Kind.String()
	switch ev.Kind {
	case trust.EventFirstUse:
		detail = "first use: pinned " + identity.Fingerprint(ev.New)
		b.log.Info("trust: pinned new device", "peer", ev.JID, "device", ev.Device, "fingerprint", identity.Fingerprint(ev.New))
	case trust.EventKeyChanged:
		detail = fmt.Sprintf("key changed: pinned %s, presented %s", identity.Fingerprint(ev.Old), identity.Fingerprint(ev.New))
		b.log.Warn("trust: device presented a different identity key", "peer", ev.JID, "device", ev.Device,
			"pinned", identity.Fingerprint(ev.Old), "presented", identity.Fingerprint(ev.New))
	}
	b.remember(ev.JID)
	b.hub.publish(api.Event{Kind: "trust", Time: time.Now(), From: ev.JID, Device: ev.Device, Detail: detail})
}

// Subscribe implements api.Backend.
func (b *backend) Subscribe(n int) (<-chan api.Event, func()) { return b.hub.subscribe(n) }

// knownJIDs returns every bare JID with a stored bundle or seen in events.
func (b *backend) knownJIDs() ([]string, error) {
	set := map[string]bool{b.account(): true}
	devs, err := b.eng.Peers()
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		set[d.JID] = true
	}
	b.mu.Lock()
	for j := range b.seen {
		set[j] = true
	}
	b.mu.Unlock()
	out := make([]string, 0, len(set))
	for j := range set {
		out = append(out, j)
	}
	sort.Strings(out)
	return out, nil
}

// Peers implements api.Backend.
func (b *backend) Peers() ([]api.Peer, error) {
	jids, err := b.knownJIDs()
	if err != nil {
		return nil, err
	}
	out := []api.Peer{}
	for _, j := range jids {
		p, err := b.peer(j)
		if err != nil {
			return nil, err
		}
		if p.Self && len(p.Devices) == 0 && len(p.Resources) <= 1 {
			continue // only this device
		}
		out = append(out, p)
	}
	return out, nil
}

func (b *backend) peer(bare string) (api.Peer, error) {
	p := api.Peer{JID: bare, Self: bare == b.account(), Resources: []api.Resource{}, Devices: []api.Device{}}
	for r, d := range b.gw.Contacts(bare) {
		p.Resources = append(p.Resources, api.Resource{Resource: r, Device: d})
	}
	sort.Slice(p.Resources, func(i, k int) bool { return p.Resources[i].Resource < p.Resources[k].Resource })
	ids := map[uint32]bool{}
	ds, err := b.eng.Devices(bare)
	if err != nil {
		return p, err
	}
	for _, d := range ds {
		ids[d.ID] = true
	}
	recs, err := b.trust.Devices(bare)
	if err != nil && !errors.Is(err, trust.ErrInvalidJID) {
		return p, err
	}
	for _, r := range recs {
		ids[r.Device] = true
	}
	delete(ids, 0)
	if p.Self {
		delete(ids, b.eng.Device())
	}
	for id := range ids {
		p.Devices = append(p.Devices, b.device(bare, id))
	}
	sort.Slice(p.Devices, func(i, k int) bool { return p.Devices[i].ID < p.Devices[k].ID })
	return p, nil
}

func (b *backend) device(bare string, id uint32) api.Device {
	d := e2e.Device{JID: bare, ID: id}
	out := api.Device{ID: id, Trust: trust.Unknown.String()}
	var key ed25519.PublicKey
	if bu, err := b.eng.PeerBundle(d); err == nil {
		out.Bundle, key = true, bu.Identity
	}
	if rec, err := b.trust.Lookup(bare, id); err == nil {
		out.Trust, out.Method = rec.Level.String(), rec.Method
		key = rec.Key
		if rec.PendingKey != nil {
			out.PendingFingerprint = identity.Fingerprint(rec.PendingKey)
		}
	}
	if len(key) == ed25519.PublicKeySize {
		out.Fingerprint, out.FingerprintBlocks = identity.Fingerprint(key), attest.FingerprintBlocks(key)
	}
	if info, err := b.eng.Session(d); err == nil {
		out.Session, out.Established = true, info.Established
		if su := e2e.LookupSuite(info.Suite); su != nil {
			out.Suite = su.Name
		} else {
			out.Suite = info.Suite.String()
		}
	}
	return out
}

// mapErr gives gateway and engine errors their API class.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gateway.ErrOffline):
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	case errors.Is(err, gateway.ErrNoE2E), errors.Is(err, e2e.ErrNoDevices), errors.Is(err, e2e.ErrUntrusted):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", api.ErrTimeout, err)
	}
	var iqErr *gateway.IQError
	if errors.As(err, &iqErr) {
		return fmt.Errorf("%w: %v", api.ErrUpstream, err)
	}
	return err
}

// SendChat implements api.Backend.
func (b *backend) SendChat(ctx context.Context, to, body string) error {
	j, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	if !b.connected() {
		return fmt.Errorf("%w: %v", api.ErrUnavailable, gateway.ErrOffline)
	}
	if err := b.gw.SendChat(ctx, j, body); err != nil {
		return mapErr(err)
	}
	b.log.Debug("chat sent", "to", to)
	return nil
}

// SendIQ implements api.Backend.
func (b *backend) SendIQ(ctx context.Context, req api.IQRequest) (api.IQResponse, error) {
	j, err := jid.Parse(req.To)
	if err != nil {
		return api.IQResponse{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	if !b.connected() {
		return api.IQResponse{}, fmt.Errorf("%w: %v", api.ErrUnavailable, gateway.ErrOffline)
	}
	if d, ok := b.gw.Contacts(j.Bare().String())[j.Resourcepart()]; !ok || d == 0 {
		return api.IQResponse{}, fmt.Errorf("%w: %s is not an available securejingle device", api.ErrNotFound, req.To)
	}
	payload, peer, err := b.gw.SendProtectedIQ(ctx, j, req.Type, []byte(req.Payload), req.AuthOnly)
	var pe *gateway.ProtectedError
	switch {
	case errors.As(err, &pe):
		resp := api.IQResponse{Type: "error", Payload: string(pe.Payload)}
		if peer != nil {
			resp.From, resp.Device = peer.JID, peer.ID
		}
		return resp, nil
	case err != nil:
		return api.IQResponse{}, mapErr(err)
	}
	return api.IQResponse{Type: "result", From: peer.JID, Device: peer.ID, Payload: string(payload)}, nil
}

// deviceKey returns the identity key to show for a device: ours, the
// stored bundle's, or the pinned one.
func (b *backend) deviceKey(bare string, id uint32) (ed25519.PublicKey, trust.Record, error) {
	if bare == b.account() && id == b.eng.Device() {
		return b.eng.Identity(), trust.Record{Level: trust.Verified, Method: "self"}, nil
	}
	rec, rerr := b.trust.Lookup(bare, id)
	if rerr != nil && !errors.Is(rerr, trust.ErrUnknown) {
		return nil, rec, rerr
	}
	if bu, err := b.eng.PeerBundle(e2e.Device{JID: bare, ID: id}); err == nil {
		return bu.Identity, rec, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, rec, err
	}
	if rerr == nil {
		return rec.Key, rec, nil
	}
	return nil, rec, fmt.Errorf("%w: no key known for %s device %d", api.ErrNotFound, bare, id)
}

// Verify implements api.Backend.
func (b *backend) Verify(bare string, id uint32) (api.VerifyInfo, error) {
	key, rec, err := b.deviceKey(bare, id)
	if err != nil {
		return api.VerifyInfo{}, err
	}
	qr, err := verifyURI(bare, id, key)
	if err != nil {
		return api.VerifyInfo{}, err
	}
	info := api.VerifyInfo{
		JID: bare, Device: id, Key: api.EncodeKey(key),
		Fingerprint: identity.Fingerprint(key), FingerprintBlocks: attest.FingerprintBlocks(key),
		QR: qr, Trust: rec.Level.String(),
	}
	if s, err := b.eng.Session(e2e.Device{JID: bare, ID: id}); err == nil {
		info.SAS, info.Established = attest.SAS(s.Transcript[:]), s.Established
	}
	if info.Attestations, err = b.attestations(bare, id); err != nil {
		return api.VerifyInfo{}, err
	}
	return info, nil
}

// attestations checks the attestations of a device's bundle against the
// statement made from that bundle: this device's own bundle, or the
// stored bundle of a peer device (none: an empty list).
func (b *backend) attestations(bare string, id uint32) ([]api.AttestationResult, error) {
	out := []api.AttestationResult{}
	var bu *e2e.Bundle
	if bare == b.account() && id == b.eng.Device() {
		bu = b.eng.Bundle()
	} else {
		var err error
		bu, err = b.eng.PeerBundle(e2e.Device{JID: bare, ID: id})
		if errors.Is(err, store.ErrNotFound) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
	}
	if bu == nil || len(bu.Attestations) == 0 {
		return out, nil
	}
	st := attest.Statement{JID: bu.JID, Device: bu.Device, Key: bu.Identity}
	for _, r := range b.attest.Verify(st, bu.Attestations) {
		out = append(out, api.AttestationResult{Type: r.Type, Status: r.Status.String(), Signer: r.Signer, Detail: r.Detail})
	}
	return out, nil
}

// verifyURI returns the verification URI, turning attest's panic on a JID
// it cannot encode into an error.
func verifyURI(bare string, id uint32, key ed25519.PublicKey) (s string, err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("%w: %s cannot be put in a verification URI", api.ErrInvalid, bare)
		}
	}()
	return attest.VerifyURI{JID: bare, Device: id, Key: key}.String(), nil
}

func keyEqual(a, b ed25519.PublicKey) bool {
	return len(a) == ed25519.PublicKeySize && len(b) == ed25519.PublicKeySize && subtle.ConstantTimeCompare(a, b) == 1
}

// Trust implements api.Backend.
func (b *backend) Trust(req api.TrustRequest) (api.TrustResult, error) {
	if req.JID == b.account() && req.Device == b.eng.Device() {
		return api.TrustResult{}, fmt.Errorf("%w: that is this device", api.ErrInvalid)
	}
	var key ed25519.PublicKey
	if req.Key != "" {
		k, err := api.DecodeKey(req.Key)
		if err != nil {
			return api.TrustResult{}, err
		}
		key = k
	}
	rec, rerr := b.trust.Lookup(req.JID, req.Device)
	if rerr != nil && !errors.Is(rerr, trust.ErrUnknown) {
		return api.TrustResult{}, rerr
	}
	bu, berr := b.eng.PeerBundle(e2e.Device{JID: req.JID, ID: req.Device})
	if berr != nil && !errors.Is(berr, store.ErrNotFound) {
		return api.TrustResult{}, berr
	}
	if rerr != nil && berr != nil {
		return api.TrustResult{}, fmt.Errorf("%w: %s device %d is not known", api.ErrNotFound, req.JID, req.Device)
	}
	var err error
	switch req.Action {
	case api.ActionVerify:
		// The key must be one the daemon holds for the device: the stored
		// bundle's, or the new key of a device whose key changed.
		ok := berr == nil && keyEqual(key, bu.Identity) ||
			rerr == nil && rec.Level == trust.Changed && keyEqual(key, rec.PendingKey)
		if !ok {
			return api.TrustResult{}, fmt.Errorf("%w: the key is not the stored key of %s device %d", api.ErrConflict, req.JID, req.Device)
		}
		rec, err = b.trust.Verify(req.JID, req.Device, key, req.Method)
	case api.ActionAccept:
		if rerr != nil {
			return api.TrustResult{}, fmt.Errorf("%w: %s device %d has no trust record", api.ErrNotFound, req.JID, req.Device)
		}
		if key == nil {
			key = rec.Key
			if rec.Level == trust.Changed {
				key = rec.PendingKey
			}
		}
		rec, err = b.trust.Accept(req.JID, req.Device, key)
	case api.ActionDistrust:
		rec, err = b.trust.Distrust(req.JID, req.Device)
	default:
		return api.TrustResult{}, fmt.Errorf("%w: unknown action %q", api.ErrInvalid, req.Action)
	}
	switch {
	case errors.Is(err, trust.ErrKeyMismatch):
		return api.TrustResult{}, fmt.Errorf("%w: %v", api.ErrConflict, err)
	case errors.Is(err, trust.ErrUnknown):
		return api.TrustResult{}, fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, trust.ErrInvalidMethod), errors.Is(err, trust.ErrInvalidJID), errors.Is(err, trust.ErrInvalidKey):
		return api.TrustResult{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	case err != nil:
		return api.TrustResult{}, err
	}
	b.log.Info("trust decision", "peer", req.JID, "device", req.Device, "action", req.Action,
		"level", rec.Level.String(), "method", rec.Method, "fingerprint", identity.Fingerprint(rec.Key))
	if req.Action != api.ActionDistrust && (berr != nil || !keyEqual(bu.Identity, rec.Key)) {
		// The bundle for the now accepted key was refused while the key was
		// pending: fetch it again.
		go b.refetch(req.JID)
	}
	b.hub.publish(api.Event{Kind: "trust", Time: time.Now(), From: req.JID, Device: req.Device,
		Detail: req.Action + ": " + rec.Level.String()})
	return api.TrustResult{JID: req.JID, Device: req.Device, Trust: rec.Level.String(), Method: rec.Method,
		Fingerprint: identity.Fingerprint(rec.Key)}, nil
}

func (b *backend) refetch(bare string) {
	j, err := jid.Parse(bare)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := b.gw.DiscoverBundles(ctx, j)
	b.log.Info("refetched bundles after a trust decision", "peer", bare, "stored", n, "err", err)
}
