package e2e

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// Store buckets used by the engine.
const (
	bucketSelf       = "e2e/self"         // device id, current bundle
	bucketPrekeys    = "e2e/prekeys"      // prekey id -> private prekey
	bucketOwnBundles = "e2e/own-bundles"  // bundle hash -> own bundle still in use
	bucketPeers      = "e2e/peers"        // jid/device -> latest verified peer bundle
	bucketSessions   = "e2e/sessions"     // jid/device -> session
	bucketReplay     = "e2e/replay"       // first-message id -> expiry
	bucketShadows    = "e2e/shadows"      // jid/device -> receive-only session of a crossed first message
	bucketDevLists   = "e2e/device-lists" // jid -> newest verified device list of the account (own included)
	bucketCertExp    = "e2e/cert-expiry"  // jid/device -> u64 expiry of the stored bundle's device certificate
)

// Engine errors callers branch on.
var (
	// ErrNoSession is returned when a message needs a session that does not
	// exist (a ratchet message from an unknown device).
	ErrNoSession = errors.New("e2e: no session with device")
	// ErrNotForUs is returned when a message has no entry for this device.
	ErrNotForUs = errors.New("e2e: message not encrypted for this device")
	// ErrNoDevices is returned when there is no usable recipient device.
	ErrNoDevices = errors.New("e2e: no usable recipient device")
	// ErrUntrusted is returned when a peer's account identity key is not
	// usable: it differs from the pinned one and the user has not accepted
	// it, or the user distrusted the account.
	ErrUntrusted = errors.New("e2e: peer identity key not trusted")
	// ErrAccessDenied is returned when access control refuses a stranger's
	// first message.
	ErrAccessDenied = errors.New("e2e: access denied")
)

// NeedBundleError is returned when a first message names a sender bundle
// that is neither stored nor inline: fetch the bundle (by IQ or PEP), give
// it to [Engine.AddBundle] and open the message again. Nothing is lost.
type NeedBundleError struct {
	JID    string
	Device uint32
}

func (e *NeedBundleError) Error() string {
	return fmt.Sprintf("e2e: need bundle of %s device %d", e.JID, e.Device)
}

// A Device names one device of one account.
type Device struct {
	JID string // bare JID
	ID  uint32
}

func (d Device) key() string { return d.JID + "/" + strconv.FormatUint(uint64(d.ID), 10) }

// Trust is the engine's view of the trust store: it pins one account
// identity key per bare JID inside the engine's transactions. Package trust
// implements it (through [PinningTrust]).
type Trust interface {
	// Check pins key as the account key of jid on first use and reports
	// whether it may be used. A key that differs from the pinned one must
	// not be usable until the user acts; Check then returns false and
	// records the event. The pinned key stays usable while a change is
	// pending.
	Check(tx store.Tx, jid string, key ed25519.PublicKey) (usable bool, err error)
}

// Access decides whether a stranger may start a session with us and caps
// the handshakes in flight. *access.Controller implements it.
type Access interface {
	Allow(requester string, onRoster bool) access.Decision
	// BeginHandshake reserves a pending-handshake slot; done releases it.
	BeginHandshake(peer string) (done func(), err error)
}

// Config configures an [Engine]. JID, Signer and Store are required.
type Config struct {
	JID string // own bare JID
	// Signer holds the account identity key (in an agent). The engine asks
	// it to sign only device certificates and device lists: at creation,
	// on [Engine.RenewCertificate] and when devices are added or removed,
	// never while processing a message.
	Signer identity.Signer
	Store  store.Store
	// Suites in preference order; nil means DefaultSuites. Unknown ids are
	// rejected here (this is our own list).
	Suites []SuiteID
	// Trust pins peer keys; nil pins nothing and trusts every verified
	// bundle (for tests only).
	Trust Trust
	// Access gates first messages from strangers; nil allows all.
	Access Access
	// Attestations published in the bundle.
	Attestations []Attestation
	// PrekeyLifetime is how long a prekey is offered; it is rotated at half
	// of it and its private key kept a further lifetime for late first
	// messages. Zero means 14 days.
	PrekeyLifetime time.Duration
	// CertLifetime is the validity of this device's certificate; it is
	// renewed when less than half of it remains. Zero means 180 days.
	CertLifetime time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// An Engine is one device's end-to-end engine: its identity, prekeys,
// bundle, sessions with peer devices, and the seal/open operations on top.
// It is safe for concurrent use; operations on the store are serialised by
// the store's transactions.
type Engine struct {
	cfg    Config
	device uint32
	devKey identity.Signer // the device key, in memory
	mu     sync.Mutex      // guards bundle, presence, eph, cert
	bundle *Bundle
	pres   *PresenceElement
	cert   *DeviceCert
	// Parsed private keys, to skip re-expanding them (ML-KEM key expansion
	// dominates a handshake otherwise). The store stays authoritative: a
	// cached prekey is used only while its record exists.
	prekeys sync.Map // uint32 -> hpke.PrivateKey
	lists   sync.Map // jid -> cachedList: parsed device lists, checked against the store
	// peerCerts: device key -> SHA-256 of the stored bundle whose
	// certificate signature verified, used only while the stored bytes
	// hash the same.
	certMu    sync.Mutex
	peerCerts map[string][sha256.Size]byte
	eph       map[[32]byte]hpke.PrivateKey // init id -> initiator ephemeral
	// Responder handshakes not yet acknowledged by the initiator, holding
	// a slot of cfg.Access (in memory only: a restart frees the slots).
	pendingHS map[Device]pendingHandshake
}

type pendingHandshake struct {
	done    func()
	started time.Time
}

// handshakeTimeout frees a pending-handshake slot whose initiator never
// acknowledged our response.
const handshakeTimeout = 10 * time.Minute

// holdHandshake records a responder handshake's access slot.
func (e *Engine) holdHandshake(d Device, done func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pendingHS == nil {
		e.pendingHS = map[Device]pendingHandshake{}
	}
	if old, ok := e.pendingHS[d]; ok {
		old.done()
	}
	e.pendingHS[d] = pendingHandshake{done, e.cfg.Now()}
}

// releaseHandshake frees the slot of d, if any.
func (e *Engine) releaseHandshake(d Device) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.pendingHS[d]; ok {
		p.done()
		delete(e.pendingHS, d)
	}
}

// expireHandshakes frees slots older than handshakeTimeout.
func (e *Engine) expireHandshakes() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for d, p := range e.pendingHS {
		if e.cfg.Now().Sub(p.started) > handshakeTimeout {
			p.done()
			delete(e.pendingHS, d)
		}
	}
}

const maxEphCache = 256

func (e *Engine) cacheEphemeral(id [32]byte, k hpke.PrivateKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.eph == nil || len(e.eph) >= maxEphCache {
		e.eph = map[[32]byte]hpke.PrivateKey{}
	}
	e.eph[id] = k
}

// ephemeral returns the initiator ephemeral key of a pending session.
func (e *Engine) ephemeral(s *session) (hpke.PrivateKey, error) {
	e.mu.Lock()
	k := e.eph[s.initID]
	e.mu.Unlock()
	if k != nil {
		return k, nil
	}
	kem, _, _ := LookupSuite(s.suite).hpke()
	return kem.NewPrivateKey(s.pending.ephemeral)
}

func (e *Engine) forgetEphemeral(id [32]byte) {
	e.mu.Lock()
	delete(e.eph, id)
	e.mu.Unlock()
}

// New opens (or, on first use, creates) the engine state in cfg.Store: the
// device id, prekeys and signed bundle.
func New(cfg Config) (*Engine, error) {
	if err := checkBareJID(cfg.JID); err != nil {
		return nil, fmt.Errorf("e2e: own JID: %w", err)
	}
	if cfg.Signer == nil || cfg.Store == nil {
		return nil, errors.New("e2e: Signer and Store are required")
	}
	if cfg.Suites == nil {
		cfg.Suites = DefaultSuites
	}
	if err := validSuiteList(cfg.Suites); err != nil {
		return nil, err
	}
	for _, s := range cfg.Suites {
		if LookupSuite(s) == nil {
			return nil, fmt.Errorf("e2e: unknown suite %v in own list", s)
		}
	}
	if cfg.PrekeyLifetime == 0 {
		cfg.PrekeyLifetime = 14 * 24 * time.Hour
	}
	if cfg.CertLifetime == 0 {
		cfg.CertLifetime = 180 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg}
	err := cfg.Store.Update(func(tx store.Tx) error {
		if err := e.loadDeviceKey(tx); err != nil {
			return err
		}
		v, err := tx.Get(bucketSelf, "device")
		switch {
		case err == nil && len(v) == 4:
			e.device = binary.BigEndian.Uint32(v)
		case errors.Is(err, store.ErrNotFound):
			var b [4]byte
			for e.device == 0 {
				rand.Read(b[:])
				e.device = binary.BigEndian.Uint32(b[:]) & 0x7fffffff
			}
			return tx.Put(bucketSelf, "device", binary.BigEndian.AppendUint32(nil, e.device))
		case err == nil:
			return malformed("stored device id")
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := e.loadCert(); err != nil {
		return nil, err
	}
	if _, err := e.RenewCertificate(); err != nil {
		return nil, err
	}
	if err := e.Refresh(); err != nil {
		return nil, err
	}
	return e, nil
}

// Device returns this device's id.
func (e *Engine) Device() uint32 { return e.device }

// JID returns the own bare JID.
func (e *Engine) JID() string { return e.cfg.JID }

// Identity returns the account identity public key: what contacts pin,
// verify and see as the fingerprint.
func (e *Engine) Identity() ed25519.PublicKey { return e.cfg.Signer.PublicKey() }

// DeviceKey returns this device's public device key.
func (e *Engine) DeviceKey() ed25519.PublicKey { return e.devKey.PublicKey() }

// Bundle returns the current signed bundle.
func (e *Engine) Bundle() *Bundle {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bundle
}

// Presence returns the signed presence element for the current bundle.
func (e *Engine) Presence() *PresenceElement {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pres
}

// Refresh rotates prekeys that are due, deletes expired ones with their
// replay-cache entries, and re-signs the bundle when anything changed. Call
// it periodically (daily is plenty).
func (e *Engine) Refresh() error {
	e.expireHandshakes()
	now := e.cfg.Now()
	life := e.cfg.PrekeyLifetime
	e.mu.Lock()
	atts := e.cfg.Attestations
	cert := e.cert
	e.mu.Unlock()
	var bu *Bundle
	err := e.update(func(tx store.Tx) error {
		list, err := loadDeviceList(tx, e.cfg.JID)
		if err != nil {
			return err
		}
		live := map[uint16]*Prekey{}
		var prekeys []Prekey
		err = tx.ForEach(bucketPrekeys, func(k string, v []byte) error {
			p, _, err := parsePrivPrekey(k, v)
			if err != nil {
				return err
			}
			if now.Before(p.Expires.Add(-life/2)) && live[p.KEM] == nil {
				pp := p
				live[p.KEM] = &pp
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Private prekeys past their expiry plus a lifetime are gone.
		drop, err := deleteWhere(tx, bucketPrekeys, func(k string, v []byte) bool {
			p, _, err := parsePrivPrekey(k, v)
			return err == nil && now.After(p.Expires.Add(life))
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			e.prekeys.Delete(binary.BigEndian.Uint32([]byte(k)))
		}
		if err := e.pruneReplay(tx); err != nil {
			return err
		}
		if err := e.pruneShadows(tx, now); err != nil {
			return err
		}
		changed := len(drop) > 0
		for _, sid := range e.cfg.Suites {
			su := LookupSuite(sid)
			if live[su.KEM] != nil {
				continue
			}
			p, err := e.newPrekey(tx, su, now.Add(life))
			if err != nil {
				return err
			}
			live[su.KEM] = p
			changed = true
		}
		for _, sid := range e.cfg.Suites {
			if p := live[LookupSuite(sid).KEM]; p != nil {
				prekeys = append(prekeys, *p)
				delete(live, p.KEM)
			}
		}
		cur, err := tx.Get(bucketSelf, "bundle")
		if err == nil && !changed {
			if bu, err = ParseBundle(cur); err != nil {
				return err
			}
			if equalKeys(bu.Identity, e.devKey.PublicKey()) && e.sameCert(bu, cert) && sameList(bu.List, list) &&
				slices.Equal(bu.Suites, e.cfg.Suites) && slices.EqualFunc(bu.Attestations, atts, func(a, b Attestation) bool {
				return a.Type == b.Type && slices.Equal(a.Data, b.Data)
			}) {
				return nil
			}
			err = nil // configuration changed: re-sign below
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		issued := time.Unix(now.Unix(), 0).UTC()
		if prev, err := ParseBundle(cur); err == nil && !issued.After(prev.Issued) {
			issued = prev.Issued.Add(time.Second) // strictly newer than what peers hold
		}
		bu = &Bundle{JID: e.cfg.JID, Device: e.device, Identity: e.devKey.PublicKey(),
			Account: cert.Account, CertIssued: cert.Issued, CertExpires: cert.Expires, CertSignature: cert.Signature,
			List: list, Issued: issued, Suites: e.cfg.Suites, Prekeys: prekeys, Attestations: atts}
		if err := bu.sign(e.devKey); err != nil {
			return err
		}
		raw := bu.Marshal()
		h := bu.Hash()
		if err := tx.Put(bucketSelf, "bundle", raw); err != nil {
			return err
		}
		if err := tx.Put(bucketOwnBundles, string(h[:]), raw); err != nil {
			return err
		}
		return e.pruneOwnBundles(tx)
	})
	if err != nil {
		return err
	}
	pres, err := NewPresenceElement(e.devKey, bu)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.bundle, e.pres = bu, pres
	e.mu.Unlock()
	return nil
}

// SetAttestations replaces the attestations published in the bundle and
// re-signs the bundle if they differ from the current bundle's. The slice
// and its payloads must not be modified afterwards. It is safe to call
// concurrently with every other method.
func (e *Engine) SetAttestations(atts []Attestation) error {
	if len(atts) > maxAttestations {
		return fmt.Errorf("e2e: %d attestations, at most %d", len(atts), maxAttestations)
	}
	for _, a := range atts {
		if !attest.ValidType(a.Type) || len(a.Data) > maxAttestationSize {
			return fmt.Errorf("e2e: attestation %q: invalid type or larger than %d bytes", a.Type, maxAttestationSize)
		}
	}
	e.mu.Lock()
	e.cfg.Attestations = slices.Clone(atts)
	e.mu.Unlock()
	return e.Refresh()
}

// pruneOwnBundles forgets own bundles none of whose prekeys still exist.
func (e *Engine) pruneOwnBundles(tx store.Tx) error {
	_, err := deleteWhere(tx, bucketOwnBundles, func(_ string, v []byte) bool {
		bu, err := ParseBundle(v)
		if err != nil {
			return true
		}
		for _, p := range bu.Prekeys {
			if _, err := tx.Get(bucketPrekeys, prekeyKey(p.ID)); err == nil {
				return false
			}
		}
		return true
	})
	return err
}

// deleteWhere deletes every entry of bucket for which gone is true and
// returns the deleted keys. (Entries are collected first: a store need not
// allow deleting while iterating.)
func deleteWhere(tx store.Tx, bucket string, gone func(k string, v []byte) bool) ([]string, error) {
	var drop []string
	err := tx.ForEach(bucket, func(k string, v []byte) error {
		if gone(k, v) {
			drop = append(drop, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range drop {
		if err := tx.Delete(bucket, k); err != nil {
			return nil, err
		}
	}
	return drop, nil
}

func prekeyKey(id uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	return string(b[:])
}

func (e *Engine) newPrekey(tx store.Tx, su *Suite, expires time.Time) (*Prekey, error) {
	kem, _, _ := su.hpke()
	k, err := kem.GenerateKey()
	if err != nil {
		return nil, err
	}
	priv, err := k.Bytes()
	if err != nil {
		return nil, err
	}
	var id uint32
	for {
		var b [4]byte
		rand.Read(b[:])
		id = binary.BigEndian.Uint32(b[:])
		if _, err := tx.Get(bucketPrekeys, prekeyKey(id)); errors.Is(err, store.ErrNotFound) {
			break
		}
	}
	p := &Prekey{ID: id, KEM: su.KEM, Public: k.PublicKey().Bytes(), Expires: time.Unix(expires.Unix(), 0).UTC()}
	var b builder
	b.u16(p.KEM)
	b.u64(uint64(p.Expires.Unix()))
	b.vbytes(p.Public)
	b.vbytes(priv)
	clear(priv)
	return p, tx.Put(bucketPrekeys, prekeyKey(id), b)
}

func parsePrivPrekey(k string, v []byte) (Prekey, []byte, error) {
	if len(k) != 4 {
		return Prekey{}, nil, malformed("prekey key")
	}
	r := reader{b: v}
	p := Prekey{ID: binary.BigEndian.Uint32([]byte(k))}
	p.KEM = r.u16("kem")
	p.Expires = time.Unix(int64(r.u64("expires")), 0).UTC()
	p.Public = r.vbytes("public", 4096)
	priv := r.vbytes("private", 4096)
	return p, priv, r.done()
}

// AddBundle verifies a peer device's bundle (signatures, owner, device
// certificate) and stores it for later sessions if the device is certified:
// its certificate is valid and chains to the account key the trust store
// accepts for owner, and the device is on the account's newest device list
// (the bundle's own list is merged first, see [Engine.AddDeviceList]). It
// returns an error wrapping ErrUntrusted when the account key is not the
// pinned one, and an [UncertifiedDeviceError] when the device is not
// certified or not listed; the bundle is then not stored.
func (e *Engine) AddBundle(owner string, bu *Bundle) error {
	if err := bu.Verify(owner); err != nil {
		return err
	}
	if bu.JID == e.cfg.JID && bu.Device == e.device {
		return fmt.Errorf("%w: own device id in a foreign bundle", ErrBadBundle)
	}
	return e.recordUntrusted(e.update(func(tx store.Tx) error {
		return e.storeBundle(tx, owner, bu)
	}))
}

// storeBundle is AddBundle's transaction on a verified bundle.
func (e *Engine) storeBundle(tx store.Tx, owner string, bu *Bundle) error {
	d := Device{owner, bu.Device}
	if v, err := tx.Get(bucketPeers, d.key()); err == nil {
		if old, err := ParseBundle(v); err == nil && equalKeys(old.Identity, bu.Identity) && bu.Issued.Before(old.Issued) {
			return &olderBundleError{fmt.Errorf("%w: bundle of %s device %d issued %v, older than the stored one (%v)",
				ErrBadBundle, owner, bu.Device, bu.Issued, old.Issued)}
		}
	}
	if err := bu.Cert().Verify(e.cfg.Now()); err != nil {
		return err
	}
	if err := e.checkAccount(tx, owner, bu.Account); err != nil {
		return err
	}
	if bu.List != nil {
		if _, err := e.mergeList(tx, owner, bu.List); err != nil {
			return err
		}
	}
	if err := e.checkListed(tx, d, bu.Identity, bu.Account); err != nil {
		return err
	}
	if err := tx.Put(bucketCertExp, d.key(), binary.BigEndian.AppendUint64(nil, uint64(bu.CertExpires.Unix()))); err != nil {
		return err
	}
	return tx.Put(bucketPeers, d.key(), bu.Marshal())
}

// PeerBundle returns the stored verified bundle of a peer device.
func (e *Engine) PeerBundle(d Device) (*Bundle, error) {
	var bu *Bundle
	err := e.cfg.Store.View(func(tx store.Tx) error {
		v, err := tx.Get(bucketPeers, d.key())
		if err != nil {
			return err
		}
		bu, err = ParseBundle(v)
		return err
	})
	return bu, err
}

// Devices returns the devices of jid with a stored bundle, in id order
// (never this device). Only certified devices have stored bundles: a device
// removed from its account's list loses its bundle and session.
func (e *Engine) Devices(jid string) ([]Device, error) {
	var out []Device
	prefix := jid + "/"
	err := e.cfg.Store.View(func(tx store.Tx) error {
		return tx.ForEach(bucketPeers, func(k string, v []byte) error {
			if len(k) <= len(prefix) || k[:len(prefix)] != prefix {
				return nil
			}
			id, err := strconv.ParseUint(k[len(prefix):], 10, 32)
			if err != nil {
				return nil
			}
			out = append(out, Device{jid, uint32(id)})
			return nil
		})
	})
	return out, err
}

// Peers returns every peer device with a stored bundle (own other devices
// included), in store order.
func (e *Engine) Peers() ([]Device, error) {
	var out []Device
	err := e.cfg.Store.View(func(tx store.Tx) error {
		return tx.ForEach(bucketPeers, func(k string, v []byte) error {
			i := strings.LastIndexByte(k, '/')
			if i < 0 {
				return nil
			}
			id, err := strconv.ParseUint(k[i+1:], 10, 32)
			if err != nil {
				return nil
			}
			out = append(out, Device{k[:i], uint32(id)})
			return nil
		})
	})
	return out, err
}

// SessionInfo describes an established or pending session.
type SessionInfo struct {
	Peer        Device
	Identity    ed25519.PublicKey // the peer's account identity key
	DeviceKey   ed25519.PublicKey // the peer device's key
	Suite       SuiteID
	Initiator   bool
	Established bool     // the peer proved possession of its identity key live
	Transcript  [32]byte // handshake transcript hash (TH2 once established)
}

// Session returns information on the session with d.
func (e *Engine) Session(d Device) (SessionInfo, error) {
	var info SessionInfo
	err := e.cfg.Store.View(func(tx store.Tx) error {
		s, err := loadSession(tx, d)
		if err != nil {
			return err
		}
		info = SessionInfo{Peer: d, Identity: s.peerAK, DeviceKey: s.peerIK, Suite: s.suite, Initiator: s.role == roleInitiator,
			Established: s.established(), Transcript: s.th}
		return nil
	})
	return info, err
}

func loadSession(tx store.Tx, d Device) (*session, error) {
	v, err := tx.Get(bucketSessions, d.key())
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	return parseSession(v)
}

// pruneShadows drops receive-only shadows older than two prekey
// lifetimes: their first messages can no longer be replayed or arrive.
func (e *Engine) pruneShadows(tx store.Tx, now time.Time) error {
	_, err := deleteWhere(tx, bucketShadows, func(_ string, v []byte) bool {
		sh, err := parseSession(v)
		return err != nil || now.Sub(sh.created) > 2*e.cfg.PrekeyLifetime
	})
	return err
}

func loadShadow(tx store.Tx, d Device) (*session, error) {
	v, err := tx.Get(bucketShadows, d.key())
	if err != nil {
		return nil, err
	}
	return parseSession(v)
}

func initID(enc []byte) [32]byte {
	return hashOf([]byte(labelInitID), enc)
}

// ownBundle returns the own bundle with hash h, if still in use.
func ownBundle(tx store.Tx, h [32]byte) (*Bundle, error) {
	v, err := tx.Get(bucketOwnBundles, string(h[:]))
	if err != nil {
		return nil, fmt.Errorf("%w: first message to an unknown or retired bundle", ErrHandshake)
	}
	return ParseBundle(v)
}

func (e *Engine) loadPrekey(tx store.Tx, id uint32, kemID uint16) (hpke.PrivateKey, time.Time, error) {
	v, err := tx.Get(bucketPrekeys, prekeyKey(id))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: unknown or retired prekey", ErrHandshake)
	}
	p, priv, err := parsePrivPrekey(prekeyKey(id), v)
	if err != nil {
		return nil, time.Time{}, err
	}
	if p.KEM != kemID {
		return nil, time.Time{}, fmt.Errorf("%w: prekey KEM mismatch", ErrHandshake)
	}
	if k, ok := e.prekeys.Load(id); ok && k.(hpke.PrivateKey).KEM().ID() == kemID {
		return k.(hpke.PrivateKey), p.Expires, nil
	}
	kem, err := hpke.NewKEM(p.KEM)
	if err != nil {
		return nil, time.Time{}, err
	}
	k, err := kem.NewPrivateKey(priv)
	clear(priv)
	if err != nil {
		return nil, time.Time{}, err
	}
	e.prekeys.Store(id, k)
	return k, p.Expires, nil
}

func equalKeys(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
