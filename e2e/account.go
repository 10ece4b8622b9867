package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// Account and device management of the engine (docs/protocol.md §5.6).

// ErrNotListed is returned by [Engine.RemoveDevice] for a device that is not
// on the account's device list.
var ErrNotListed = errors.New("e2e: device is not on the account's device list")

// loadDeviceKey reads this device's key from the store or creates it.
func (e *Engine) loadDeviceKey(tx store.Tx) error {
	v, err := tx.Get(bucketSelf, "device-key")
	switch {
	case err == nil && len(v) == ed25519.SeedSize:
		e.devKey = identity.NewMemorySigner(ed25519.NewKeyFromSeed(v))
		clear(v)
		return nil
	case err == nil:
		return malformed("stored device key")
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	e.devKey = identity.NewMemorySigner(ed25519.NewKeyFromSeed(seed))
	err = tx.Put(bucketSelf, "device-key", seed)
	clear(seed)
	return err
}

// loadCert reads this device's certificate, if any, and keeps it when it
// still certifies the current device key under the current account key.
func (e *Engine) loadCert() error {
	return e.cfg.Store.View(func(tx store.Tx) error {
		v, err := tx.Get(bucketSelf, "bundle")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		bu, err := ParseBundle(v)
		if err != nil {
			return err
		}
		c := bu.Cert()
		if equalKeys(c.Account, e.cfg.Signer.PublicKey()) && equalKeys(c.DeviceKey, e.devKey.PublicKey()) &&
			identity.Verify(c.Account, identity.NamespaceDevice, c.signedBytes(), c.Signature) == nil {
			e.mu.Lock()
			e.cert = c
			e.mu.Unlock()
		}
		return nil
	})
}

// RenewCertificate has the account signer certify this device again when
// there is no certificate for the current account key, or less than half
// of Config.CertLifetime remains. It reports whether it signed; the bundle
// is re-signed by the next [Engine.Refresh]. It is the only routine
// operation that uses the agent: call it off any message-processing path.
func (e *Engine) RenewCertificate() (bool, error) {
	now := e.cfg.Now()
	e.mu.Lock()
	c := e.cert
	e.mu.Unlock()
	if c != nil && equalKeys(c.Account, e.cfg.Signer.PublicKey()) && now.Before(c.Expires.Add(-e.cfg.CertLifetime/2)) {
		return false, nil
	}
	nc, err := signDeviceCert(e.cfg.Signer, e.cfg.JID, e.device, e.devKey.PublicKey(), now, e.cfg.CertLifetime)
	if err != nil {
		return false, err
	}
	e.mu.Lock()
	e.cert = nc
	e.mu.Unlock()
	return true, nil
}

func (e *Engine) sameCert(bu *Bundle, c *DeviceCert) bool {
	return equalKeys(bu.Account, c.Account) && bu.CertIssued.Equal(c.Issued) && bu.CertExpires.Equal(c.Expires) &&
		equalKeys(bu.CertSignature, c.Signature)
}

func sameList(a, b *DeviceList) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.equal(b)
}

// loadDeviceList returns the newest stored list of jid, or nil.
func loadDeviceList(tx store.Tx, jid string) (*DeviceList, error) {
	v, err := tx.Get(bucketDevLists, jid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseDeviceList(v)
}

// cachedList is a parsed device list with the stored bytes it came from.
type cachedList struct {
	raw []byte
	l   *DeviceList
}

// cachedDeviceList is loadDeviceList for the per-message path: the stored
// bytes are read in tx as always, and parsed again only when they differ
// from the last ones seen for jid. (Lists are public; the cache holds at
// most one entry per account with a stored list.)
func (e *Engine) cachedDeviceList(tx store.Tx, jid string) (*DeviceList, error) {
	v, err := tx.Get(bucketDevLists, jid)
	if errors.Is(err, store.ErrNotFound) {
		e.lists.Delete(jid)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c, ok := e.lists.Load(jid); ok && subtle.ConstantTimeCompare(c.(cachedList).raw, v) == 1 {
		return c.(cachedList).l, nil
	}
	l, err := ParseDeviceList(v)
	if err != nil {
		return nil, err
	}
	e.lists.Store(jid, cachedList{raw: v, l: l})
	return l, nil
}

// checkAccount decides whether account may be used as jid's account key:
// for the own JID it must be our own key; for anyone else the trust store
// decides (pinning it on first use).
func (e *Engine) checkAccount(tx store.Tx, jid string, account ed25519.PublicKey) error {
	if jid == e.cfg.JID {
		if !equalKeys(account, e.cfg.Signer.PublicKey()) {
			return &untrustedError{jid: jid, key: account, own: true}
		}
		return nil
	}
	if err := e.restorePin(tx, jid, account); err != nil {
		return err
	}
	return e.checkTrust(tx, jid, account)
}

// checkListed reports whether device d with device key dk is on the newest
// device list of its account (whose key must be account).
func (e *Engine) checkListed(tx store.Tx, d Device, dk, account ed25519.PublicKey) error {
	l, err := e.cachedDeviceList(tx, d.JID)
	if err != nil {
		return err
	}
	if l == nil {
		return uncertified(d, "comes with no device list of %s", d.JID)
	}
	if !equalKeys(l.Account, account) {
		return uncertified(d, "is certified by another key than the one on %s's device list", d.JID)
	}
	if !l.Lists(d.ID, dk) {
		if _, ok := l.Lookup(d.ID); ok {
			return uncertified(d, "has another device key than the one on %s's device list (version %d)", d.JID, l.Version)
		}
		return uncertified(d, "is not on %s's device list (version %d)", d.JID, l.Version)
	}
	return nil
}

// checkDevice is the per-use check of a device with a session or bundle:
// its account key is usable, it is still listed and the certificate of its
// stored bundle has not expired.
func (e *Engine) checkDevice(tx store.Tx, d Device, dk, account ed25519.PublicKey) error {
	if err := e.checkAccount(tx, d.JID, account); err != nil {
		return err
	}
	if err := e.checkListed(tx, d, dk, account); err != nil {
		return err
	}
	if v, err := tx.Get(bucketCertExp, d.key()); err == nil && len(v) == 8 {
		if exp := time.Unix(int64(binary.BigEndian.Uint64(v)), 0); !e.cfg.Now().Before(exp) {
			return uncertified(d, "has a certificate that expired on %v: its device renews it when it comes online", exp.UTC().Format(time.DateOnly))
		}
	}
	return nil
}

// mergeList stores l as owner's device list when it is newer than the
// stored one, and revokes every device the new list drops: its bundle,
// session and shadow are deleted, so nothing is encrypted to it or accepted
// from it again. It returns the revoked devices.
func (e *Engine) mergeList(tx store.Tx, owner string, l *DeviceList) ([]Device, error) {
	if err := l.Verify(owner); err != nil {
		return nil, err
	}
	if l.Version > maxListVersion {
		return nil, fmt.Errorf("%w: device list of %s at version %d, above %d", ErrBadBundle, owner, l.Version, uint64(maxListVersion))
	}
	if err := e.checkAccount(tx, owner, l.Account); err != nil {
		return nil, err
	}
	old, err := loadDeviceList(tx, owner)
	if err != nil {
		return nil, err
	}
	if t, ok := loadTombstone(tx, owner); ok && old == nil && t.version != 0 && equalKeys(t.account, l.Account) {
		// Pruned earlier: a list older than the one we held then must
		// not come back (it may list a revoked device).
		if l.Version < t.version {
			return nil, nil
		}
		t.version = 0
		if err := tx.Put(bucketTombstones, owner, t.marshal()); err != nil {
			return nil, err
		}
	}
	if old != nil && equalKeys(old.Account, l.Account) {
		switch {
		case l.Version > old.Version && l.Version-old.Version > maxListJump:
			// One stray signature at a huge version would make its
			// devices irrevocable: versions climb one by one.
			return nil, fmt.Errorf("%w: device list of %s jumps from version %d to %d", ErrBadBundle, owner, old.Version, l.Version)
		case l.Version < old.Version:
			return nil, nil // older: what we hold already supersedes it
		case l.Version == old.Version:
			if !old.equal(l) {
				return nil, fmt.Errorf("%w: %s version %d", ErrDeviceListConflict, owner, l.Version)
			}
			return nil, nil
		}
	}
	if err := tx.Put(bucketDevLists, owner, l.Marshal()); err != nil {
		return nil, err
	}
	var revoked []Device
	prefix := owner + "/"
	drop, err := deleteWhere(tx, bucketPeers, func(k string, v []byte) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		bu, err := ParseBundle(v)
		return err != nil || !l.Lists(bu.Device, bu.Identity)
	})
	if err != nil {
		return nil, err
	}
	for _, k := range drop {
		for _, b := range []string{bucketSessions, bucketShadows, bucketCertExp} {
			if err := tx.Delete(b, k); err != nil {
				return nil, err
			}
		}
		if d, ok := parseDeviceKey(k); ok {
			revoked = append(revoked, d)
		}
	}
	return revoked, nil
}

// AddDeviceList verifies a device list of owner (fetched from PEP, served
// by IQ or received otherwise) and stores it when it is newer than the one
// held. Its account key must be the pinned one (or, for the own JID, our
// own). Devices the new list drops are revoked and returned. An older list
// is ignored (nil, nil); a different list with the same version is
// [ErrDeviceListConflict]. For the own JID, this device's own state follows
// the new list: if the list no longer holds it, [Engine.Certified] turns
// false.
func (e *Engine) AddDeviceList(owner string, l *DeviceList) ([]Device, error) {
	var revoked []Device
	err := e.recordUntrusted(e.update(func(tx store.Tx) error {
		var err error
		revoked, err = e.mergeList(tx, owner, l)
		return err
	}))
	if err != nil {
		return nil, err
	}
	if owner == e.cfg.JID {
		if err := e.Refresh(); err != nil {
			return revoked, err
		}
	}
	return revoked, nil
}

// DeviceList returns the newest verified device list held for jid (the own
// JID included), or nil when none is known.
func (e *Engine) DeviceList(jid string) (*DeviceList, error) {
	var l *DeviceList
	err := e.cfg.Store.View(func(tx store.Tx) error {
		var err error
		l, err = loadDeviceList(tx, jid)
		return err
	})
	return l, err
}

// Certified reports whether this device is on its account's newest device
// list, so peers accept it.
func (e *Engine) Certified() bool {
	l, err := e.DeviceList(e.cfg.JID)
	return err == nil && l != nil && l.Lists(e.device, e.devKey.PublicKey())
}

// CertifyThisDevice adds this device to the account's device list: it signs,
// through the account signer, a new list with a version above both the
// stored one and known (the newest list fetched from the server, may be
// nil), holding known's devices plus this one. The caller publishes the
// returned list (PEP) and announces the re-signed bundle.
func (e *Engine) CertifyThisDevice(known *DeviceList) (*DeviceList, error) {
	return e.changeOwnList(known, func(devs []ListedDevice) ([]ListedDevice, error) {
		devs = slices.DeleteFunc(devs, func(d ListedDevice) bool { return d.ID == e.device })
		return append(devs, ListedDevice{e.device, e.devKey.PublicKey()}), nil
	})
}

// RemoveDevice revokes device id of the own account: it signs a new list
// without it (see [Engine.CertifyThisDevice] for known and publishing).
// Peers that receive the new list stop encrypting to the device and stop
// accepting it. This device cannot remove itself.
func (e *Engine) RemoveDevice(id uint32, known *DeviceList) (*DeviceList, error) {
	if id == e.device {
		return nil, errors.New("e2e: a device cannot remove itself from the account: remove it from another device")
	}
	return e.changeOwnList(known, func(devs []ListedDevice) ([]ListedDevice, error) {
		n := len(devs)
		devs = slices.DeleteFunc(devs, func(d ListedDevice) bool { return d.ID == id })
		if len(devs) == n {
			return nil, fmt.Errorf("%w: device %d", ErrNotListed, id)
		}
		return devs, nil
	})
}

func (e *Engine) changeOwnList(known *DeviceList, edit func([]ListedDevice) ([]ListedDevice, error)) (*DeviceList, error) {
	var knownVersion uint64
	if known != nil {
		// Only a list that verifies under our own key counts: whatever
		// else the server holds (a list of another key, a forgery, an
		// older one) must neither block the change nor slip a device in.
		if _, err := e.AddDeviceList(e.cfg.JID, known); err == nil || errors.Is(err, ErrDeviceListConflict) {
			knownVersion = known.Version
		}
	}
	cur, err := e.DeviceList(e.cfg.JID)
	if err != nil {
		return nil, err
	}
	var devs []ListedDevice
	version := knownVersion + 1
	if cur != nil && equalKeys(cur.Account, e.cfg.Signer.PublicKey()) {
		devs = slices.Clone(cur.Devices)
		version = max(version, cur.Version+1)
	}
	if version == 0 {
		return nil, errors.New("e2e: device list version exhausted")
	}
	if devs, err = edit(devs); err != nil {
		return nil, err
	}
	if len(devs) > MaxDevices {
		return nil, fmt.Errorf("e2e: an account has at most %d devices: remove one first", MaxDevices)
	}
	l, err := signDeviceList(e.cfg.Signer, e.cfg.JID, version, devs, e.cfg.Now())
	if err != nil {
		return nil, err
	}
	if _, err := e.AddDeviceList(e.cfg.JID, l); err != nil {
		return nil, err
	}
	return l, nil
}

// CheckDevice reports whether device d may be used now: its bundle is
// stored (so it was certified), its account key is usable and it is on the
// account's newest list. The error says why not.
func (e *Engine) CheckDevice(d Device) error {
	return e.recordUntrusted(e.update(func(tx store.Tx) error {
		v, err := tx.Get(bucketPeers, d.key())
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: no bundle for %s", ErrNoSession, d.key())
		}
		if err != nil {
			return err
		}
		bu, err := e.verifiedPeerBundle(d, v)
		if err != nil {
			return err
		}
		if err := bu.Cert().checkValidity(e.cfg.Now()); err != nil {
			return err
		}
		return e.checkDevice(tx, d, bu.Identity, bu.Account)
	}))
}

// maxVerifiedBundles bounds [Engine.verifiedPeerBundle]'s cache; at the
// bound it starts over (a peer churning devices cannot grow it). An entry
// is a key and a hash, so the bound is a few hundred KiB.
const maxVerifiedBundles = 4096

// verifiedPeerBundle parses v, d's stored bundle, and verifies its device
// certificate's signature, for [Engine.CheckDevice] on every message: when
// the SHA-256 of v is the one of the bytes last verified for d, the
// Ed25519 verification does not run again (its result is a function of
// those bytes). Only the hash is kept, never the bundle: a stranger's
// bundles cost the cache 32 bytes each, whatever their size. The
// certificate's times are left to the caller, checked on every call.
func (e *Engine) verifiedPeerBundle(d Device, v []byte) (*Bundle, error) {
	bu, err := ParseBundle(v)
	if err != nil {
		return nil, err
	}
	k, sum := d.key(), sha256.Sum256(v)
	e.certMu.Lock()
	c, ok := e.peerCerts[k]
	e.certMu.Unlock()
	if ok && subtle.ConstantTimeCompare(c[:], sum[:]) == 1 {
		return bu, nil
	}
	if err := bu.Cert().verifySignature(); err != nil {
		return nil, err
	}
	e.certMu.Lock()
	if e.peerCerts == nil || len(e.peerCerts) >= maxVerifiedBundles {
		e.peerCerts = map[string][sha256.Size]byte{}
	}
	e.peerCerts[k] = sum
	e.certMu.Unlock()
	return bu, nil
}

// olderBundleError is ErrBadBundle for a bundle older than the stored one
// of the same device key (rollback refused).
type olderBundleError struct{ err error }

func (e *olderBundleError) Error() string { return e.err.Error() }
func (e *olderBundleError) Unwrap() error { return e.err }

// CanSeal reports whether a message to device d could be sealed now: the
// device passes [Engine.CheckDevice], and either a session with it exists
// or its stored bundle offers an unexpired prekey of a suite both sides
// support. Callers choosing targets skip devices that fail (and say so),
// so one stale device does not block a message to all the others.
func (e *Engine) CanSeal(d Device) error {
	if err := e.CheckDevice(d); err != nil {
		return err
	}
	if _, err := e.Session(d); err == nil {
		return nil
	}
	bu, err := e.PeerBundle(d)
	if err != nil {
		return err
	}
	own := e.Bundle()
	sid, ok := bestMutual(bu.Suites, own.Suites)
	if !ok {
		return fmt.Errorf("e2e: no common suite with %s", d.key())
	}
	_, err = bu.prekeyFor(LookupSuite(sid), e.cfg.Now())
	return err
}
