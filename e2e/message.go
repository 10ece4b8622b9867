package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// Entry kinds (low bits) and flags of a recipient entry. See
// docs/protocol.md, "Message format".
const (
	kindShort = 0 // ratchet message, short header
	kindFull  = 1 // ratchet message, full header
	kindInit  = 2 // first message: init block + full header
	kindResp  = 3 // responder's first chain: response block + full header
	kindMask  = 0x03
	flagOwn   = 0x80 // entry for a device of the sender's own account
)

// mode selects what a protected payload gets.
type mode uint8

const (
	modeChat     mode = iota + 1 // compact chat: payload is the body text
	modeStanza                   // encrypted stanza envelope
	modeAuthOnly                 // authenticated, readable stanza envelope
)

func (m mode) label() string {
	switch m {
	case modeChat:
		return labelADChat
	case modeStanza:
		return labelADStanza
	case modeAuthOnly:
		return labelADAuthOnly
	}
	panic("e2e: bad mode")
}

// A Context binds a protected payload to the stanza that carries it. All
// of it goes into the associated data of every entry, so a server that
// re-routes (other From/To), re-types (other kind or type) or moves the
// payload to another element breaks authentication.
type Context struct {
	From       string // bare JID of the sender (stanza 'from')
	To         string // bare JID of the addressee (stanza 'to')
	StanzaKind string // "message", "iq" or "presence"
	StanzaType string // the stanza's 'type' attribute, "" if absent
	// StanzaID is the stanza's 'id'. It is bound for IQs only, so a server
	// cannot swap the responses of two outstanding requests; message ids
	// are not bound (servers and archives may rewrite them).
	StanzaID string
	// PeerOnRoster tells access control, when opening a first message from
	// From, whether From is on our roster.
	PeerOnRoster bool
}

func (c *Context) check() error {
	if err := checkBareJID(c.From); err != nil {
		return err
	}
	if err := checkBareJID(c.To); err != nil {
		return err
	}
	switch c.StanzaKind {
	case "message", "iq", "presence":
	default:
		return malformed("stanza kind %q", c.StanzaKind)
	}
	if len(c.StanzaType) > 32 {
		return malformed("stanza type")
	}
	if c.StanzaKind == "iq" && (c.StanzaID == "" || len(c.StanzaID) > 256) {
		return malformed("IQ id %q", c.StanzaID)
	}
	return nil
}

func (c *Context) ad(m mode, sender uint32, recipient Device, kind byte, prefix []byte) []byte {
	b := make(builder, 0, 64+len(c.From)+len(c.To)+len(recipient.JID)+len(prefix))
	b.raw([]byte(m.label()))
	b.str16(c.From)
	b.str16(c.To)
	b.str16(c.StanzaKind)
	b.str16(c.StanzaType)
	if c.StanzaKind == "iq" {
		b.str16(c.StanzaID)
	}
	b.u32(sender)
	b.str16(recipient.JID)
	b.u32(recipient.ID)
	b.u8(kind)
	b.vbytes(prefix)
	return b
}

// Peer describes the authenticated sender of an opened payload.
type Peer struct {
	Device
	Identity    []byte  // the account identity key (Ed25519)
	DeviceKey   []byte  // the sending device's key (Ed25519)
	Suite       SuiteID // session suite
	NewSession  bool    // this message started the session
	Established bool    // mutual authentication is complete
	// Skipped is the number of earlier messages of this sender that this
	// message showed to be missing: their counters were skipped and their
	// keys stored, so they can still be read if they arrive late.
	Skipped int
	// Late is set when this message was read with a stored key: it
	// arrived after a later one and fills one earlier gap.
	Late bool
}

// sealOptions controls one seal.
type sealOptions struct {
	inlineBundle bool // put our bundle in first messages (strangers)
}

// seal protects payload for every target device in one store transaction:
// either every session advances and the blob is returned, or nothing
// changes. Targets with no session get a first message, which needs their
// stored bundle.
func (e *Engine) seal(m mode, c *Context, targets []Device, payload []byte, opt sealOptions) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.From != e.cfg.JID {
		return nil, fmt.Errorf("e2e: sealing as %q, not own JID", c.From)
	}
	if len(targets) == 0 {
		return nil, ErrNoDevices
	}
	if len(targets) > maxEntries {
		return nil, fmt.Errorf("e2e: %d recipient devices, at most %d", len(targets), maxEntries)
	}
	if len(payload) > maxPayload {
		return nil, fmt.Errorf("e2e: payload of %d bytes, at most %d", len(payload), maxPayload)
	}
	var out builder
	out.u32(e.device)
	err := e.update(func(tx store.Tx) error {
		for _, d := range targets {
			if d.JID == e.cfg.JID && d.ID == e.device {
				continue
			}
			if d.JID != c.To && d.JID != c.From {
				return fmt.Errorf("e2e: device of %s is neither sender nor addressee", d.JID)
			}
			s, err := loadSession(tx, d)
			switch {
			case errors.Is(err, ErrNoSession):
				s, err = e.startSession(tx, d, opt.inlineBundle)
			case err == nil && e.stale(tx, d, s):
				s, err = e.startSession(tx, d, opt.inlineBundle)
			case err == nil:
				// The user may have distrusted the account since, or
				// the account removed the device.
				err = e.checkDevice(tx, d, s.peerIK, s.peerAK)
			}
			if err != nil {
				return fmt.Errorf("%w (device %s)", err, d.key())
			}
			kind, body, err := e.sealEntry(m, c, d, s, payload)
			if err != nil {
				return err
			}
			if err := tx.Put(bucketSessions, d.key(), s.marshal()); err != nil {
				return err
			}
			out.u32(d.ID)
			out.u8(kind)
			out.vbytes(body)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 4 {
		return nil, ErrNoDevices
	}
	return out, nil
}

// stale reports whether our unanswered first message to d should be given
// up for a new one: the peer published a different bundle since (its
// prekey may be gone), or no answer came for two prekey lifetimes.
func (e *Engine) stale(tx store.Tx, d Device, s *session) bool {
	if s.pending == nil {
		return false
	}
	if e.cfg.Now().Sub(s.created) > 2*e.cfg.PrekeyLifetime {
		return true
	}
	v, err := tx.Get(bucketPeers, d.key())
	if err != nil {
		return false
	}
	bu, err := ParseBundle(v)
	if err != nil {
		return false
	}
	r := reader{b: s.initBlock}
	ib := readInitBlock(&r)
	return r.err == nil && !equalKeys(hashSlice(bu.Hash()), ib.respBundle[:])
}

// startSession runs the initiator side of the handshake with a stored
// bundle.
func (e *Engine) startSession(tx store.Tx, d Device, inline bool) (*session, error) {
	v, err := tx.Get(bucketPeers, d.key())
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no bundle for %s", ErrNoSession, d.key())
	}
	if err != nil {
		return nil, err
	}
	peer, err := ParseBundle(v)
	if err != nil {
		return nil, err
	}
	if err := peer.Cert().Verify(e.cfg.Now()); err != nil {
		return nil, err
	}
	if err := e.checkDevice(tx, d, peer.Identity, peer.Account); err != nil {
		return nil, err
	}
	own := e.Bundle()
	sid, ok := bestMutual(peer.Suites, own.Suites)
	if !ok {
		return nil, fmt.Errorf("e2e: no common suite with %s", d.key())
	}
	su := LookupSuite(sid)
	pk, err := peer.prekeyFor(su, e.cfg.Now())
	if err != nil {
		return nil, err
	}
	self := &party{e.cfg.JID, e.device, own.Identity, own.Account, own.Hash(), own.Suites}
	them := &party{peer.JID, peer.Device, peer.Identity, peer.Account, peer.Hash(), peer.Suites}
	var inl []byte
	if inline {
		inl = own.Marshal()
	}
	ib, st, rs, eph, err := initiate(su, self, them, pk, inl)
	if err != nil {
		return nil, err
	}
	e.cacheEphemeral(initID(ib.enc), eph)
	var b builder
	ib.marshal(&b)
	return &session{suite: sid, role: roleInitiator, peerIK: peer.Identity, peerAK: peer.Account, th: st.th1, th1: st.th1,
		initID: initID(ib.enc), created: e.cfg.Now(), initBlock: b, pending: st, r: rs}, nil
}

// sealEntry encrypts (or authenticates) payload for one device, advancing s.
func (e *Engine) sealEntry(m mode, c *Context, d Device, s *session, payload []byte) (byte, []byte, error) {
	h, mk, err := s.r.sendHeader()
	if err != nil {
		return 0, nil, err
	}
	var kind byte = kindShort
	var prefix builder
	switch {
	case s.pending != nil:
		kind = kindInit
		prefix.raw(s.initBlock)
	case s.role == roleResponder && s.r.sIdx == 0 && !s.r.sAcked:
		kind = kindResp
		prefix.raw(s.respBlock)
	case h.full:
		kind = kindFull
	}
	h.full = kind != kindShort
	h.marshal(&prefix)
	if d.JID == c.From {
		kind |= flagOwn
	}
	ad := c.ad(m, e.device, d, kind, prefix)
	su := LookupSuite(s.suite)
	body := []byte(prefix)
	if m == modeAuthOnly {
		ad = append(ad, payload...)
		body = seal(su, mk, ad, nil, body)
	} else {
		body = seal(su, mk, ad, payload, body)
	}
	clear(mk[:])
	if kind&kindMask == kindInit {
		// Each first message is signed whole by our device key: the
		// responder's prekey alone cannot forge one.
		sig, err := signFirst(e.devKey, s.th1, ad, body[len(prefix):])
		if err != nil {
			return 0, nil, err
		}
		body = append(body, sig...)
	}
	return kind, body, nil
}

// entry is one parsed recipient entry.
type entry struct {
	device uint32
	kind   byte
	body   []byte
}

func parseEntries(blob []byte) (uint32, []entry, error) {
	r := reader{b: blob}
	sender := r.u32("sender device")
	var es []entry
	for r.err == nil && len(r.b) > 0 {
		if len(es) == maxEntries {
			return 0, nil, malformed("more than %d entries", maxEntries)
		}
		var en entry
		en.device = r.u32("recipient device")
		en.kind = r.u8("entry kind")
		en.body = r.vbytes("entry", maxPayload+64<<10)
		if en.kind&^(kindMask|flagOwn) != 0 {
			r.fail("entry kind")
		}
		es = append(es, en)
	}
	if err := r.done(); err != nil {
		return 0, nil, err
	}
	if len(es) == 0 {
		return 0, nil, malformed("no entries")
	}
	return sender, es, nil
}

// open finds this device's entry in blob and opens it. For auth-only mode,
// clear is the authenticated payload carried beside the blob. The session
// state advances in the same transaction that authenticated the message;
// if that transaction fails nothing is returned and the message can be
// opened again.
func (e *Engine) open(m mode, c *Context, blob, clear []byte) ([]byte, *Peer, error) {
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	sender, es, err := parseEntries(blob)
	if err != nil {
		return nil, nil, err
	}
	own := c.From == e.cfg.JID
	if !own && c.To != e.cfg.JID {
		return nil, nil, fmt.Errorf("%w: addressed to %s", ErrNotForUs, c.To)
	}
	var mine *entry
	for i := range es {
		if es[i].device == e.device && (es[i].kind&flagOwn != 0) == own {
			if mine != nil {
				return nil, nil, malformed("two entries for one device")
			}
			mine = &es[i]
		}
	}
	if mine == nil {
		return nil, nil, ErrNotForUs
	}
	from := Device{c.From, sender}
	if own && sender == e.device {
		return nil, nil, malformed("message from own device id")
	}
	var pt []byte
	var peer *Peer
	var slot func() // access slot taken by a new responder handshake
	err = e.update(func(tx store.Tx) error {
		var err error
		pt, peer, err = e.openEntry(tx, m, c, from, mine, clear, &slot)
		return err
	})
	if err != nil {
		if slot != nil {
			slot()
		}
		return nil, nil, e.recordUntrusted(err)
	}
	if slot != nil {
		e.holdHandshake(from, slot)
	} else if peer.Established {
		e.releaseHandshake(from)
	}
	return pt, peer, nil
}

func (e *Engine) openEntry(tx store.Tx, m mode, c *Context, from Device, en *entry, clearPayload []byte, slot *func()) ([]byte, *Peer, error) {
	r := reader{b: en.body}
	kind := en.kind & kindMask
	var ib *initBlock
	var rb *respBlock
	switch kind {
	case kindInit:
		ib = readInitBlock(&r)
	case kindResp:
		rb = readRespBlock(&r)
	}
	h := readHeader(&r, kind != kindShort)
	if r.err != nil {
		return nil, nil, r.err
	}
	prefixLen := len(en.body) - len(r.b)
	prefix, ct := en.body[:prefixLen], r.b
	var firstSig []byte
	if ib != nil {
		// A first message acknowledges nothing: the initiator has
		// received nothing yet. An ack here would let a forger mark the
		// session established.
		if h.ack != 0 {
			return nil, nil, malformed("acknowledgement in a first message")
		}
		if len(ct) < identity.SignatureSize {
			return nil, nil, malformed("first message without signature")
		}
		ct, firstSig = ct[:len(ct)-identity.SignatureSize], ct[len(ct)-identity.SignatureSize:]
	}
	me := Device{e.cfg.JID, e.device}
	ad := c.ad(m, from.ID, me, en.kind, prefix)

	s, err := loadSession(tx, from)
	if err != nil && !errors.Is(err, ErrNoSession) {
		return nil, nil, err
	}
	bucket := bucketSessions
	newSession := false
	var acc *accepted
	if ib != nil && (s == nil || !equalKeys(s.initID[:], hashSlice(initID(ib.enc)))) {
		if sh, err := loadShadow(tx, from); err == nil && equalKeys(sh.initID[:], hashSlice(initID(ib.enc))) {
			// More first messages of a handshake we keep receive-only.
			s, bucket = sh, bucketShadows
		} else {
			// A session that both sides have confirmed is never replaced
			// by a first message (a device that loses its state gets a
			// new device id): a late one, typically the loser of crossed
			// first messages that a server held back, is read on a
			// receive-only shadow. A pending session of ours is replaced
			// unless our first message wins the tie-break.
			keep := s != nil && (s.established() || (s.pending != nil && e.winsTie(from)))
			acc, err = e.acceptInit(tx, c, from, ib, h.pub, slot, keep)
			if err != nil {
				return nil, nil, err
			}
			ns := acc.s
			newSession = true
			if keep {
				s, bucket = ns, bucketShadows
			} else {
				s = ns
				if err := tx.Delete(bucketShadows, from.key()); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	if s == nil {
		return nil, nil, ErrNoSession
	}
	if !newSession {
		// The user may have distrusted the account since the session
		// began, or the account removed the device. (A new session's keys
		// are checked once its first message has authenticated, below: a
		// forged one must not change trust state.)
		if err := e.checkDevice(tx, from, s.peerIK, s.peerAK); err != nil {
			return nil, nil, err
		}
	}
	if ib != nil && s.role != roleResponder || rb != nil && s.role != roleInitiator {
		return nil, nil, fmt.Errorf("%w: handshake message for the wrong role", ErrHandshake)
	}
	// The initiator's first chain is keyed from the prekey alone: whoever
	// holds the prekey can derive its keys. An honest initiator sends only
	// signed first messages (kind 2) on it and rotates once answered, so an
	// unsigned entry on chain 0 is a forgery (key-compromise
	// impersonation), skipped keys included.
	if ib == nil && s.role == roleResponder && h.idx == 0 {
		return nil, nil, fmt.Errorf("%w: unsigned message on the initiator's first chain", ErrHandshake)
	}
	work := *s
	work.r = s.r.clone()
	su := LookupSuite(work.suite)
	if rb != nil && work.pending != nil {
		eph, err := e.ephemeral(&work)
		if err != nil {
			return nil, nil, err
		}
		t2, err := complete(su, work.pending, eph, rb, work.peerIK, h.pub, work.r)
		if err != nil {
			return nil, nil, err
		}
		e.forgetEphemeral(work.initID)
		work.th, work.pending, work.initBlock = t2, nil, nil
	}
	mk, err := work.r.recvKey(h)
	if err != nil {
		return nil, nil, err
	}
	var pt []byte
	if m == modeAuthOnly {
		ad = append(ad, clearPayload...)
		if _, err := open(su, mk, ad, ct); err != nil {
			return nil, nil, err
		}
		pt = clearPayload
	} else if pt, err = open(su, mk, ad, ct); err != nil {
		return nil, nil, err
	}
	if ib != nil {
		// The AEAD opened (cheap, and proof of the prekey only); now the
		// initiator's device key must have signed this very message.
		if err := verifyFirst(work.peerIK, work.th1, ad, ct, firstSig); err != nil {
			return nil, nil, err
		}
	}
	if newSession {
		// The first message authenticated under the initiator's device
		// key: only now may the trust store hear of its account key, and
		// only now do we sign our response.
		var older *olderBundleError
		if acc.inline != nil {
			err := e.storeBundle(tx, from.JID, acc.inline)
			switch {
			case errors.As(err, &older):
				// A genuine but late first message whose inline bundle
				// the device has since replaced: read it, keep the newer
				// bundle (never roll back), and check the device as the
				// stored bundle has it.
				if err := e.checkDevice(tx, from, work.peerIK, work.peerAK); err != nil {
					return nil, nil, err
				}
			case err != nil:
				return nil, nil, err
			}
		} else if err := e.checkDevice(tx, from, work.peerIK, work.peerAK); err != nil {
			return nil, nil, err
		}
		rb, t2, err := acc.fin.finish(work.r)
		if err != nil {
			return nil, nil, err
		}
		if err := signResp(e.devKey, rb, t2); err != nil {
			return nil, nil, err
		}
		var b builder
		rb.marshal(&b)
		work.respBlock, work.th = b, t2
	}
	if work.r.sAcked {
		work.respBlock = nil
	}
	if err := tx.Put(bucket, from.key(), work.marshal()); err != nil {
		return nil, nil, err
	}

	return pt, &Peer{Device: from, Identity: work.peerAK, DeviceKey: work.peerIK, Suite: work.suite, NewSession: newSession, Established: work.established(),
		Skipped: work.r.last.skipped, Late: work.r.last.late}, nil
}

func hashSlice(h [32]byte) []byte { return h[:] }

// winsTie reports whether our pending first message to peer beats the
// peer's crossing first message.
func (e *Engine) winsTie(peer Device) bool {
	if e.cfg.JID != peer.JID {
		return e.cfg.JID < peer.JID
	}
	return e.device < peer.ID
}

// accepted is a responder session built from a first message that has not
// authenticated yet: the caller opens the message, checks the initiator's
// signature, then the sender's certification (storing an inline bundle)
// and only then signs rb.
type accepted struct {
	s      *session   // TH2 and our sending chain are not set yet
	fin    *responder // completes the handshake once authenticated
	inline *Bundle    // the sender's bundle, if it came inline and is not stored yet
}

// acceptInit runs the responder side for a first message: replay check,
// access control, sender bundle, suite negotiation, key agreement.
func (e *Engine) acceptInit(tx store.Tx, c *Context, from Device, ib *initBlock, ratchetPub [32]byte, slot *func(), shadow bool) (*accepted, error) {
	id := initID(ib.enc)
	if _, err := tx.Get(bucketReplay, string(id[:])); err == nil {
		return nil, fmt.Errorf("%w: first message already used", ErrReplay)
	}
	if e.cfg.Access != nil && from.JID != e.cfg.JID {
		if d := e.cfg.Access.Allow(from.JID, c.PeerOnRoster); !d.Allowed {
			return nil, fmt.Errorf("%w: %v", ErrAccessDenied, d.Reason)
		}
		// Strangers' unfinished handshakes are capped; roster contacts and
		// receive-only shadows hold no slot.
		if !c.PeerOnRoster && !shadow {
			e.expireHandshakes()
			done, err := e.cfg.Access.BeginHandshake(from.JID)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrAccessDenied, err)
			}
			*slot = done
		}
	}
	peer, inline, err := e.senderBundle(tx, from, ib)
	if err != nil {
		return nil, err
	}
	own, err := ownBundle(tx, ib.respBundle)
	if err != nil {
		return nil, err
	}
	su := LookupSuite(ib.suite)
	if su == nil || !slices.Contains(e.cfg.Suites, ib.suite) {
		// Only suites we offer now: an older bundle a server keeps
		// serving cannot revive a suite we dropped.
		return nil, fmt.Errorf("%w: suite %v not offered", ErrHandshake, ib.suite)
	}
	prekey, expires, err := e.loadPrekey(tx, ib.prekeyID, su.KEM)
	if err != nil {
		return nil, err
	}
	self := &party{e.cfg.JID, e.device, own.Identity, own.Account, ib.respBundle, own.Suites}
	ini := &party{from.JID, from.ID, peer.Identity, peer.Account, ib.initBundle, peer.Suites}
	if !equalKeys(hashSlice(peer.Hash()), ib.initBundle[:]) {
		return nil, fmt.Errorf("%w: initiator bundle hash mismatch", ErrHandshake)
	}
	rs, t1, fin, err := respond(ib, self, ini, ratchetPub, prekey)
	if err != nil {
		return nil, err
	}
	// Remember the first message as long as its prekey exists (and at
	// least until the prekey's expiry plus one lifetime).
	var exp builder
	exp.u64(uint64(expires.Add(e.cfg.PrekeyLifetime).Unix()))
	exp.u32(ib.prekeyID)
	if err := tx.Put(bucketReplay, string(id[:]), exp); err != nil {
		return nil, err
	}
	s := &session{suite: su.ID, role: roleResponder, peerIK: peer.Identity, peerAK: peer.Account, th1: t1, initID: id,
		created: e.cfg.Now(), r: rs}
	a := &accepted{s: s, fin: fin}
	if inline {
		a.inline = peer
	}
	return a, nil
}

// senderBundle finds the initiator's bundle named by the first message:
// stored (inline false), or inline (verified, inline true: the caller
// stores it once the message authenticated), or a NeedBundleError.
func (e *Engine) senderBundle(tx store.Tx, from Device, ib *initBlock) (*Bundle, bool, error) {
	if v, err := tx.Get(bucketPeers, from.key()); err == nil {
		bu, err := ParseBundle(v)
		if err == nil && equalKeys(hashSlice(bu.Hash()), ib.initBundle[:]) {
			return bu, false, nil
		}
	}
	if len(ib.inlineBundle) == 0 {
		return nil, false, &NeedBundleError{from.JID, from.ID}
	}
	bu, err := ParseBundle(ib.inlineBundle)
	if err != nil {
		return nil, false, err
	}
	if from.JID == e.cfg.JID && !equalKeys(bu.Account, e.cfg.Signer.PublicKey()) {
		// A "device of ours" under another account key: refused before
		// any signature check or key agreement (own devices skip access
		// control, so this must be cheap).
		return nil, false, &untrustedError{jid: from.JID, key: bu.Account, own: true}
	}
	if err := bu.Verify(from.JID); err != nil {
		return nil, false, err
	}
	if bu.Device != from.ID || !equalKeys(hashSlice(bu.Hash()), ib.initBundle[:]) {
		return nil, false, fmt.Errorf("%w: inline bundle does not match", ErrHandshake)
	}
	return bu, true, nil
}

// pruneReplay drops replay-cache entries that are past their expiry and
// whose prekey is gone: such a first message can no longer be opened, so
// it can no longer be replayed. (Keying the entry to its prekey keeps it
// even when the prekey lifetime was raised after it was written.)
func (e *Engine) pruneReplay(tx store.Tx) error {
	now := uint64(e.cfg.Now().Unix())
	_, err := deleteWhere(tx, bucketReplay, func(_ string, v []byte) bool {
		if len(v) != 12 {
			return true
		}
		if binary.BigEndian.Uint64(v) >= now {
			return false
		}
		_, err := tx.Get(bucketPrekeys, prekeyKey(binary.BigEndian.Uint32(v[8:])))
		return err != nil
	})
	return err
}
