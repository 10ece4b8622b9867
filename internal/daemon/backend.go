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
	"github.com/securejingle/securejingle/policy"
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
	// signer reports the identity key backend's health.
	signer *signerHealth
	// statement is the account statement; attest checks the
	// attestations of peers' bundles. Both are set before serving.
	statement string
	attest    *attest.Registry
	// warnings are problems found at startup that do not stop the
	// daemon (see warn); set before serving.
	warnings []string

	// files is the gateway's file transfer, nil while the daemon has
	// none; fileCfg is the [files] configuration. Both are set before
	// serving. fs is the daemon's own transfer bookkeeping.
	files   fileGateway
	fileCfg fileSettings
	fs      fileState

	// feed is the alert feed on the audit log, history the conversation
	// history, staging the browser uploads; set before serving (nil: the
	// endpoints are 503).
	feed    *alertFeed
	history *history
	staging *staging
	// verified remembers the received files whose bytes were checked
	// against their hash for a download, so an unchanged file is not
	// hashed again for every download.
	verified verifiedFiles

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
		Certified:         b.eng.Certified(),
		DroppedEvents:     b.gw.DroppedEvents() + b.hub.dropped.Load(),
		Signer:            b.signer.status(),
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
			if t, ok := fileFromEvent(ev); ok {
				b.fileEvent(t)
				continue
			}
			out := apiEvent(ev)
			if ev.Call != nil {
				c := b.apiCall(*ev.Call)
				out.Call = &c
			}
			if out.Alert != nil {
				out.Remedy = policy.Remedy(*out.Alert)
				if b.feed != nil {
					out.Unseen = b.feed.note(out.Alert.ID)
				}
			}
			out = b.hub.publish(out)
			b.record(out)
		}
	}
}

// record keeps a published chat, carbon or delivery event in the
// conversation history.
func (b *backend) record(ev api.Event) {
	if b.history == nil {
		return
	}
	switch ev.Kind {
	case string(gateway.EventChat):
		b.history.add(api.Message{ID: ev.ID, Direction: api.MessageIncoming, Peer: ev.From, From: ev.From, Device: ev.Device,
			Time: ev.Time, Body: ev.Body, Truncated: ev.Truncated, Size: ev.Size, Encrypted: ev.Encrypted,
			Unencrypted: ev.Unencrypted, Refused: ev.Refused, Detail: ev.Detail})
	case string(gateway.EventChatSent):
		b.history.add(api.Message{ID: ev.ID, Direction: api.MessageOutgoing, Peer: ev.To, To: ev.To, Device: ev.Device,
			Time: ev.Time, Body: ev.Body, Truncated: ev.Truncated, Size: ev.Size, Encrypted: ev.Encrypted,
			Unencrypted: ev.Unencrypted, Carbon: true, Detail: ev.Detail})
	case string(gateway.EventDelivery):
		if ev.Delivery != nil {
			b.history.delivered(*ev.Delivery)
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
		Refused: ev.Refused, MessageID: ev.MessageID, Count: ev.Count,
		Unencrypted: (ev.Kind == gateway.EventChat || ev.Kind == gateway.EventChatSent) && !ev.Encrypted,
	}
	if body, cut := api.BoundBody(out.Body, api.MaxShownBody); cut {
		out.Size, out.Body, out.Truncated = len(out.Body), body, true
	}
	if ev.Delivery != nil {
		d := apiDelivery(*ev.Delivery)
		out.Delivery = &d
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
	detail := gateway.TrustEventDetail(ev)
	switch ev.Kind {
	case trust.EventFirstUse:
		b.log.Info("trust: pinned the account key of a new contact", "peer", ev.JID, "fingerprint", identity.Fingerprint(ev.New))
	case trust.EventKeyChanged:
		b.log.Warn("trust: a contact presented another account key", "peer", ev.JID,
			"pinned", identity.Fingerprint(ev.Old), "presented", identity.Fingerprint(ev.New))
	}
	b.remember(ev.JID)
	b.hub.publish(api.Event{Kind: "trust", Time: time.Now(), From: ev.JID, Detail: detail})
}

// Subscribe implements api.Backend.
func (b *backend) Subscribe(n int, after string) ([]api.Event, <-chan api.Event, func()) {
	return b.hub.subscribe(n, after)
}

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
	recs, err := b.trust.List()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		set[r.JID] = true
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
	key, rec, err := b.accountKey(bare)
	switch {
	case errors.Is(err, api.ErrNotFound):
	case err != nil:
		return p, err
	default:
		p.Fingerprint, p.FingerprintBlocks = identity.Fingerprint(key), attest.FingerprintBlocks(key)
	}
	p.Trust, p.Method = rec.Level.String(), rec.Method
	if rec.PendingKey != nil {
		p.PendingFingerprint = identity.Fingerprint(rec.PendingKey)
	}
	p.FirstSeen, p.VerifiedAt, p.ChangedAt = timeRef(rec.FirstSeen), timeRef(rec.VerifiedAt), timeRef(rec.ChangedAt)
	ds, err := b.eng.Devices(bare)
	if err != nil {
		return p, err
	}
	for _, d := range ds {
		if d.ID == 0 || p.Self && d.ID == b.eng.Device() {
			continue
		}
		p.Devices = append(p.Devices, b.device(d, rec))
	}
	sort.Slice(p.Devices, func(i, k int) bool { return p.Devices[i].ID < p.Devices[k].ID })
	return p, nil
}

// timeRef returns a pointer to t, or nil for the zero time.
func timeRef(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// device describes a stored device of an account whose trust record is
// rec.
func (b *backend) device(d e2e.Device, rec trust.Record) api.Device {
	out := api.Device{ID: d.ID}
	if bu, err := b.eng.PeerBundle(d); err == nil {
		out.Bundle = true
		out.DeviceKey = identity.Fingerprint(bu.Identity)
		out.CertExpires = timeRef(bu.CertExpires)
		accountOK := rec.Accepts(bu.Account) || d.JID == b.account() && keyEqual(bu.Account, b.eng.Identity())
		l, err := b.eng.DeviceList(d.JID)
		out.Accepted = accountOK && err == nil && l != nil && l.Lists(d.ID, bu.Identity) && time.Now().Before(bu.CertExpires)
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

// mapErr gives gateway, engine and identity key errors their API class.
func mapErr(err error) error {
	if serr := signerError(err); serr != nil {
		return serr
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gateway.ErrBadResponse):
		return fmt.Errorf("%w: %w", api.ErrIntegrity, err)
	case errors.Is(err, gateway.ErrOffline):
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	case errors.Is(err, gateway.ErrNoE2E), errors.Is(err, gateway.ErrUnusableKeys), errors.Is(err, e2e.ErrNoDevices), errors.Is(err, e2e.ErrUntrusted), errors.Is(err, gateway.ErrDeviceNotCertified):
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
func (b *backend) SendChat(ctx context.Context, to, body string) (api.SentMessage, error) {
	j, err := jid.Parse(to)
	if err != nil {
		return api.SentMessage{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	if !b.connected() {
		return api.SentMessage{}, fmt.Errorf("%w: %v", api.ErrUnavailable, gateway.ErrOffline)
	}
	d, err := b.gw.SendChatMessage(ctx, j, body)
	if err != nil {
		return api.SentMessage{}, mapErr(err)
	}
	b.log.Debug("chat sent", "to", to, "id", d.ID)
	m := apiDelivery(d)
	if b.history != nil {
		b.history.add(api.Message{ID: m.ID, Direction: api.MessageOutgoing, Peer: m.To, To: m.To, Time: m.Time, Body: body,
			Encrypted: true, State: m.State, Devices: m.Devices})
	}
	return m, nil
}

var (
	_ api.HistoryBackend = (*backend)(nil)
	_ api.AlertBackend   = (*backend)(nil)
)

// History implements api.HistoryBackend.
func (b *backend) History(q api.MessagesQuery) (api.MessagesResponse, error) {
	if b.history == nil {
		return api.MessagesResponse{}, fmt.Errorf("%w: this daemon keeps no conversation history", api.ErrUnavailable)
	}
	return b.history.page(q)
}

// Conversations implements api.HistoryBackend.
func (b *backend) Conversations() ([]api.Conversation, error) {
	if b.history == nil {
		return nil, fmt.Errorf("%w: this daemon keeps no conversation history", api.ErrUnavailable)
	}
	return b.history.conversations(), nil
}

// errNoFeed is returned while the daemon runs without an alert feed.
var errNoFeed = fmt.Errorf("%w: this daemon has no alert feed", api.ErrUnavailable)

// Alerts implements api.AlertBackend.
func (b *backend) Alerts(q api.AlertsQuery) (api.AlertsResponse, error) {
	if b.feed == nil {
		return api.AlertsResponse{}, errNoFeed
	}
	return b.feed.Alerts(q)
}

// MarkSeen implements api.AlertBackend.
func (b *backend) MarkSeen(id string) (api.SeenResponse, error) {
	if b.feed == nil {
		return api.SeenResponse{}, errNoFeed
	}
	return b.feed.MarkSeen(id)
}

// Messages implements api.Backend.
func (b *backend) Messages() ([]api.SentMessage, error) {
	ds := b.gw.Deliveries()
	out := make([]api.SentMessage, 0, len(ds))
	for _, d := range ds {
		out = append(out, apiDelivery(d))
	}
	return out, nil
}

// apiDelivery converts a gateway delivery state for the API.
func apiDelivery(d gateway.Delivery) api.SentMessage {
	m := api.SentMessage{ID: d.ID, To: d.To, Time: d.Time, State: string(d.State), Devices: make([]api.DeviceDelivery, 0, len(d.Devices))}
	for _, dd := range d.Devices {
		m.Devices = append(m.Devices, api.DeviceDelivery{Device: dd.Device, Delivered: !dd.Delivered.IsZero(), Time: dd.Delivered})
	}
	return m
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

// accountKey returns the account identity key to show for bare and its
// trust record: ours for our own account, else the pinned key (a record
// with Level Unknown and an api.ErrNotFound error when none is known).
func (b *backend) accountKey(bare string) (ed25519.PublicKey, trust.Record, error) {
	if bare == b.account() {
		return b.eng.Identity(), trust.Record{JID: bare, Key: b.eng.Identity(), Level: trust.Verified, Method: "self"}, nil
	}
	rec, err := b.trust.Lookup(bare)
	switch {
	case err == nil:
		return rec.Key, rec, nil
	case errors.Is(err, trust.ErrUnknown), errors.Is(err, trust.ErrInvalidJID):
		return nil, trust.Record{}, fmt.Errorf("%w: no account key known for %s", api.ErrNotFound, bare)
	}
	return nil, trust.Record{}, err
}

// Verify implements api.Backend.
func (b *backend) Verify(bare string) (api.VerifyInfo, error) {
	key, rec, err := b.accountKey(bare)
	if err != nil {
		return api.VerifyInfo{}, err
	}
	ds, err := b.eng.Devices(bare)
	if err != nil {
		return api.VerifyInfo{}, err
	}
	if bare == b.account() {
		ds = append([]e2e.Device{{JID: bare, ID: b.eng.Device()}}, ds...)
	}
	qr, err := verifyURI(bare, key)
	if err != nil {
		return api.VerifyInfo{}, err
	}
	info := api.VerifyInfo{
		JID: bare, Key: api.EncodeKey(key),
		Fingerprint: identity.Fingerprint(key), FingerprintBlocks: attest.FingerprintBlocks(key),
		QR: qr, Trust: rec.Level.String(), Method: rec.Method,
		Devices: []api.VerifyDevice{}, Attestations: []api.AttestationResult{},
	}
	if bare != b.account() {
		if info.SAS, err = b.sas(bare, key); err != nil {
			return api.VerifyInfo{}, err
		}
	}
	if rec.PendingKey != nil {
		info.PendingKey = api.EncodeKey(rec.PendingKey)
		info.PendingFingerprint = identity.Fingerprint(rec.PendingKey)
		info.PendingFingerprintBlocks = attest.FingerprintBlocks(rec.PendingKey)
		if info.PendingSAS, err = b.sas(bare, rec.PendingKey); err != nil {
			return api.VerifyInfo{}, err
		}
	}
	for _, d := range ds {
		if s, err := b.eng.Session(d); err == nil {
			info.Devices = append(info.Devices, api.VerifyDevice{ID: d.ID, Established: s.Established})
		}
		atts, err := b.attestations(d)
		if err != nil {
			return api.VerifyInfo{}, err
		}
		info.Attestations = append(info.Attestations, atts...)
	}
	return info, nil
}

// sas returns the short authentication string of our account and the
// account bare with key: the same string the contact's daemon shows.
func (b *backend) sas(bare string, key ed25519.PublicKey) (string, error) {
	s, err := attest.SAS(attest.Statement{JID: b.account(), Key: b.eng.Identity()}, attest.Statement{JID: bare, Key: key})
	if err != nil {
		return "", fmt.Errorf("%w: no SAS for %s: %w", api.ErrInvalid, bare, err)
	}
	return s, nil
}

// attestations checks the attestations of a device's bundle against the
// statement made from that bundle: this device's own bundle, or the
// stored bundle of a peer device (none: an empty list).
func (b *backend) attestations(d e2e.Device) ([]api.AttestationResult, error) {
	var out []api.AttestationResult
	var bu *e2e.Bundle
	if d.JID == b.account() && d.ID == b.eng.Device() {
		bu = b.eng.Bundle()
	} else {
		var err error
		bu, err = b.eng.PeerBundle(d)
		if errors.Is(err, store.ErrNotFound) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
	}
	if bu == nil || len(bu.Attestations) == 0 {
		return out, nil
	}
	st := attest.Statement{JID: bu.JID, Key: bu.Account}
	for _, r := range b.attest.Verify(st, bu.Attestations) {
		out = append(out, api.AttestationResult{Device: d.ID, Type: r.Type, Status: r.Status.String(), Signer: r.Signer, Detail: r.Detail})
	}
	return out, nil
}

// verifyURI returns the verification URI of an account key, turning
// attest's panic on a JID it cannot encode into an error. The URI names no
// device: the account key certifies them all.
func verifyURI(bare string, key ed25519.PublicKey) (s string, err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("%w: %s cannot be put in a verification URI", api.ErrInvalid, bare)
		}
	}()
	return attest.VerifyURI{JID: bare, Key: key}.String(), nil
}

func keyEqual(a, b ed25519.PublicKey) bool {
	return len(a) == ed25519.PublicKeySize && len(b) == ed25519.PublicKeySize && subtle.ConstantTimeCompare(a, b) == 1
}

// Trust implements api.Backend.
func (b *backend) Trust(req api.TrustRequest) (api.TrustResult, error) {
	if req.JID == b.account() {
		return api.TrustResult{}, fmt.Errorf("%w: that is your own account: its key is this device's identity", api.ErrInvalid)
	}
	var key ed25519.PublicKey
	if req.Key != "" {
		k, err := api.DecodeKey(req.Key)
		if err != nil {
			return api.TrustResult{}, err
		}
		key = k
	}
	before, rerr := b.trust.Lookup(req.JID)
	if rerr != nil && !errors.Is(rerr, trust.ErrUnknown) {
		return api.TrustResult{}, mapTrustErr(rerr)
	}
	if rerr != nil {
		return api.TrustResult{}, fmt.Errorf("%w: no account key known for %s: wait for its presence or bundle", api.ErrNotFound, req.JID)
	}
	var (
		rec trust.Record
		ev  trust.Event
		err error
	)
	switch req.Action {
	case api.ActionVerify:
		// The key must be one the daemon holds for the account: the pinned
		// key, or the new key of an account whose key changed.
		if !keyEqual(key, before.Key) && !(before.Level == trust.Changed && keyEqual(key, before.PendingKey)) {
			return api.TrustResult{}, fmt.Errorf("%w: the key is not the account key held for %s", api.ErrConflict, req.JID)
		}
		rec, err = b.trust.Verify(req.JID, key, req.Method)
	case api.ActionAccept:
		if key == nil {
			key = before.Key
			if before.Level == trust.Changed {
				key = before.PendingKey
			}
		}
		rec, err = b.trust.Accept(req.JID, key)
	case api.ActionDistrust:
		rec, ev, err = b.trust.Distrust(req.JID)
	default:
		return api.TrustResult{}, fmt.Errorf("%w: unknown action %q", api.ErrInvalid, req.Action)
	}
	if err != nil {
		return api.TrustResult{}, mapTrustErr(err)
	}
	b.log.Info("trust decision", "peer", req.JID, "action", req.Action,
		"level", rec.Level.String(), "method", rec.Method, "fingerprint", identity.Fingerprint(rec.Key))
	if req.Action != api.ActionDistrust && (before.Level == trust.Changed || before.Level == trust.Distrusted) {
		// Bundles were refused while the key was pending or distrusted:
		// fetch them again.
		go b.refetch(req.JID)
	}
	detail := fmt.Sprintf("%s: %s's account key %s is now %s", req.Action, req.JID, identity.Fingerprint(rec.Key), rec.Level)
	if ev.Kind != trust.EventNone {
		detail = gateway.TrustEventDetail(ev)
	}
	b.hub.publish(api.Event{Kind: "trust", Time: time.Now(), From: req.JID, Detail: detail})
	return api.TrustResult{JID: req.JID, Trust: rec.Level.String(), Method: rec.Method,
		Fingerprint: identity.Fingerprint(rec.Key)}, nil
}

// mapTrustErr gives trust store errors their API class.
func mapTrustErr(err error) error {
	switch {
	case errors.Is(err, trust.ErrKeyMismatch):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	case errors.Is(err, trust.ErrUnknown):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, trust.ErrInvalidMethod), errors.Is(err, trust.ErrInvalidJID), errors.Is(err, trust.ErrInvalidKey):
		return fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	return err
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

// Devices implements api.Backend.
func (b *backend) Devices() (api.DevicesInfo, error) {
	l, err := b.eng.DeviceList(b.account())
	if err != nil {
		return api.DevicesInfo{}, err
	}
	return b.devicesInfo(l), nil
}

func (b *backend) devicesInfo(l *e2e.DeviceList) api.DevicesInfo {
	info := api.DevicesInfo{Account: b.account(), Fingerprint: identity.Fingerprint(b.eng.Identity()),
		ThisDevice: b.eng.Device(), Certified: b.eng.Certified(), Devices: []api.OwnDevice{}}
	if l != nil {
		info.Version = l.Version
		for _, d := range l.Devices {
			info.Devices = append(info.Devices, api.OwnDevice{ID: d.ID, DeviceKey: identity.Fingerprint(d.Key), This: d.ID == b.eng.Device()})
		}
	}
	return info
}

// ChangeDevices implements api.Backend.
func (b *backend) ChangeDevices(ctx context.Context, req api.DevicesRequest) (api.DevicesInfo, error) {
	if !b.connected() {
		return api.DevicesInfo{}, fmt.Errorf("%w: the device list is published through the server: %v", api.ErrUnavailable, gateway.ErrOffline)
	}
	var l *e2e.DeviceList
	var err error
	switch req.Action {
	case api.DevicesAdd:
		l, err = b.gw.AddThisDevice(ctx)
	case api.DevicesRemove:
		if req.Device == b.eng.Device() {
			return api.DevicesInfo{}, fmt.Errorf("%w: a device cannot remove itself: remove it from another device of the account", api.ErrInvalid)
		}
		l, err = b.gw.RemoveDevice(ctx, req.Device)
	default:
		return api.DevicesInfo{}, fmt.Errorf("%w: unknown action %q", api.ErrInvalid, req.Action)
	}
	if err != nil {
		if errors.Is(err, e2e.ErrNotListed) {
			return api.DevicesInfo{}, fmt.Errorf("%w: %v", api.ErrNotFound, err)
		}
		return api.DevicesInfo{}, mapErr(err)
	}
	dev := req.Device
	if req.Action == api.DevicesAdd {
		dev = b.eng.Device()
	}
	b.log.Info("device list changed", "action", req.Action, "device", dev, "version", l.Version)
	return b.devicesInfo(l), nil
}
