package e2e

import (
	"crypto/ed25519"
	"time"
)

const (
	roleInitiator = 1
	roleResponder = 2
)

// session is the persistent state of one session with one peer device.
type session struct {
	suite     SuiteID
	role      uint8
	peerIK    ed25519.PublicKey // the peer's device key
	peerAK    ed25519.PublicKey // the peer's account identity key
	th        [32]byte          // TH2 once complete (TH1 while the initiator waits)
	th1       [32]byte          // TH1, which every first message's signature covers
	initID    [32]byte          // replay id of the first message
	created   time.Time
	initBlock []byte          // initiator, until the response: attached to every message
	respBlock []byte          // responder, until chain 0 is acknowledged
	pending   *initiatorState // initiator, until the response
	r         *ratchetState
}

// established reports whether both sides have proven, live in this
// session, possession of their identity keys: the initiator has verified
// the response, or the responder has seen the initiator acknowledge it.
func (s *session) established() bool {
	return s.pending == nil && (s.role == roleInitiator || len(s.respBlock) == 0)
}

const sessionEncodingVersion = 2

func (s *session) marshal() []byte {
	b := make(builder, 0, 400+len(s.initBlock)+len(s.respBlock)+40*len(s.r.skipped))
	b.u8(sessionEncodingVersion)
	b.u16(uint16(s.suite))
	b.u8(s.role)
	b.raw(s.peerIK)
	b.raw(s.peerAK)
	b.raw(s.th[:])
	b.raw(s.th1[:])
	b.raw(s.initID[:])
	b.u64(uint64(s.created.Unix()))
	b.vbytes(s.initBlock)
	b.vbytes(s.respBlock)
	if s.pending != nil {
		b.u8(1)
		b.raw(s.pending.th1[:])
		b.raw(s.pending.rootSeed[:])
		b.vbytes(s.pending.ephemeral)
	} else {
		b.u8(0)
	}
	s.r.marshal(&b)
	return b
}

func parseSession(data []byte) (*session, error) {
	r := reader{b: data}
	if r.u8("session version") != sessionEncodingVersion {
		return nil, malformed("session version")
	}
	s := &session{}
	s.suite = SuiteID(r.u16("suite"))
	s.role = r.u8("role")
	s.peerIK = ed25519.PublicKey(r.fixed(ed25519.PublicKeySize, "peer key"))
	s.peerAK = ed25519.PublicKey(r.fixed(ed25519.PublicKeySize, "peer account key"))
	copy(s.th[:], r.fixed(32, "transcript"))
	copy(s.th1[:], r.fixed(32, "transcript 1"))
	copy(s.initID[:], r.fixed(32, "init id"))
	s.created = time.Unix(int64(r.u64("created")), 0)
	s.initBlock = r.vbytes("init block", maxInitBlockSize)
	s.respBlock = r.vbytes("resp block", maxRespBlockSize)
	switch r.u8("pending") {
	case 0:
	case 1:
		p := &initiatorState{}
		copy(p.th1[:], r.fixed(32, "th1"))
		copy(p.rootSeed[:], r.fixed(32, "root seed"))
		p.ephemeral = r.vbytes("ephemeral", 4096)
		s.pending = p
	default:
		r.fail("pending flag")
	}
	s.r = readRatchet(&r)
	if err := r.done(); err != nil {
		return nil, err
	}
	if LookupSuite(s.suite) == nil || (s.role != roleInitiator && s.role != roleResponder) {
		return nil, malformed("session suite or role")
	}
	return s, nil
}
