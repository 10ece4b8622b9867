package srtp

import (
	"errors"
	"fmt"
	"sync/atomic"

	piondtls "github.com/pion/dtls/v3"
	pionsrtp "github.com/pion/srtp/v3"
)

// ErrContextInUse is returned when a [Context] is given to a second
// [Protector], [Unprotector] or [Relay] (or twice to one Relay). A context
// has one owner for its whole life: two owners would keep two views of its
// per-SSRC packet indices, and two encrypting owners could encrypt two
// packets under one index, that is under one nonce.
var ErrContextInUse = errors.New("srtp: context already in use")

// Context is the SRTP cryptographic context of one direction of one call
// leg: the session keys derived from one master key and salt under one of
// the [Allowed] profiles, with replay protection for SRTP and SRTCP
// (windows of [ReplayWindowSRTP] and [ReplayWindowSRTCP]).
//
// A Context can only be made by [NewContext] or [ContextsFromDTLS], so a
// [Protector], [Unprotector] or [Relay] never works with a NULL cipher,
// with encryption switched off or without replay protection. It is used
// by exactly one of them, for its whole life: either to encrypt or to
// decrypt, never both (a pion/srtp context is one-way), and never by two
// (the first claim wins; later ones get [ErrContextInUse]).
//
// The zero value is not usable. A Context is safe for concurrent use only
// in that claiming it is atomic; its owner serialises the packets.
type Context struct {
	s *contextState // shared by copies, so that a copy cannot be claimed again
}

type contextState struct {
	pion    *pionsrtp.Context
	profile piondtls.SRTPProtectionProfile
	claimed atomic.Bool
}

// contextOptions are the pion/srtp options of every Context: replay
// protection on decryption. Encryption of SRTP and SRTCP is pion's
// default and is never switched off.
func contextOptions() []pionsrtp.ContextOption {
	return []pionsrtp.ContextOption{
		pionsrtp.SRTPReplayProtection(ReplayWindowSRTP),
		pionsrtp.SRTCPReplayProtection(ReplayWindowSRTCP),
		pionsrtp.SRTPEncryption(),
		pionsrtp.SRTCPEncryption(),
	}
}

// NewContext creates the Context for master key and salt under profile p,
// with replay protection on. A profile that is not [Allowed] gives
// [ErrProfileNotAllowed]; a key or salt of the wrong length for p gives an
// error.
func NewContext(key, salt []byte, p piondtls.SRTPProtectionProfile) (*Context, error) {
	pp, ok := PionProfile(p)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrProfileNotAllowed, ProfileName(p))
	}
	c, err := pionsrtp.CreateContext(key, salt, pp, contextOptions()...)
	if err != nil {
		return nil, fmt.Errorf("srtp: creating a %s context: %w", ProfileName(p), err)
	}
	return &Context{&contextState{pion: c, profile: p}}, nil
}

// ContextsFromDTLS derives the SRTP contexts of one call leg from a
// completed pion/dtls connection (RFC 5764 §4.2): local encrypts what this
// side sends, remote decrypts what the peer sends. isClient says whether
// this side was the DTLS client. A selected profile that is not [Allowed]
// gives [ErrProfileNotAllowed].
func ContextsFromDTLS(conn *piondtls.Conn, isClient bool) (local, remote *Context, err error) {
	p, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, nil, fmt.Errorf("%w: DTLS selected no SRTP profile", ErrProfileNotAllowed)
	}
	pp, ok := PionProfile(p)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrProfileNotAllowed, ProfileName(p))
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return nil, nil, errors.New("srtp: the DTLS connection has not completed its handshake")
	}
	cfg := pionsrtp.Config{Profile: pp}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, isClient); err != nil {
		return nil, nil, fmt.Errorf("srtp: exporting SRTP keys from DTLS: %w", err)
	}
	defer func() {
		clear(cfg.Keys.LocalMasterKey)
		clear(cfg.Keys.RemoteMasterKey)
	}()
	if local, err = NewContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, p); err != nil {
		return nil, nil, err
	}
	if remote, err = NewContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, p); err != nil {
		return nil, nil, err
	}
	return local, remote, nil
}

// Profile returns the protection profile of c.
func (c *Context) Profile() piondtls.SRTPProtectionProfile {
	if c == nil || c.s == nil {
		return 0
	}
	return c.s.profile
}

// valid reports whether c was made by NewContext.
func (c *Context) valid() bool { return c != nil && c.s != nil && c.s.pion != nil }

// claim makes the caller c's one owner and returns the pion context, or
// fails with ErrContextInUse.
func (c *Context) claim() (*pionsrtp.Context, error) {
	if !c.s.claimed.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w (%s)", ErrContextInUse, ProfileName(c.s.profile))
	}
	return c.s.pion, nil
}

// release undoes a claim that the caller could not complete.
func (c *Context) release() { c.s.claimed.Store(false) }
