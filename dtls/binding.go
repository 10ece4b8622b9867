package dtls

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// ErrBindingMismatch is matched by a [*MismatchError]: the certificate the
// peer presented in DTLS is not the one whose fingerprint its certified
// device sent in the protected stanza. Terminate the session with reason
// security-error.
var ErrBindingMismatch = errors.New("dtls: peer certificate does not match the protected fingerprint")

// ErrNoPeerCertificate means there is no peer certificate to check yet:
// DTLS has not reached the point where the peer presented one, or there is
// no DTLS transport. It is not a mismatch; check again once DTLS is
// connected, and treat a connected transport without one as a failure.
var ErrNoPeerCertificate = errors.New("dtls: no peer certificate")

// MismatchError reports a failed binding check: who and which session it
// was, the fingerprint from the protected stanza and the one computed over
// the certificate the peer presented. It matches [ErrBindingMismatch].
// It is a plain value, safe for concurrent reads.
type MismatchError struct {
	SID      string
	Peer     string
	Device   uint32
	Expected Fingerprint // from the protected session-initiate/accept
	Got      Fingerprint // over the certificate the peer presented
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: session %q, peer %s device %d: expected %s %s, got %s",
		ErrBindingMismatch, e.SID, e.Peer, e.Device, e.Expected.Hash, e.Expected, e.Got)
}

// Unwrap returns [ErrBindingMismatch].
func (e *MismatchError) Unwrap() error { return ErrBindingMismatch }

// Binding ties a Jingle session to the DTLS certificate its peer must
// present: Expected is the fingerprint that arrived inside the protected
// session-initiate or session-accept for session SID from device Device of
// account Peer (a bare JID). Never fill Expected from SDP or from a
// cleartext stanza: the check is only as good as where Expected came from.
//
// The zero value refuses every certificate. A Binding is a plain value,
// safe for concurrent use.
type Binding struct {
	SID      string
	Peer     string
	Device   uint32
	Expected Fingerprint
}

// Check hashes peerCertDER, the DER encoding of the certificate the peer
// presented in the DTLS handshake, with the function named by b.Expected
// and compares the digest with b.Expected.Value in constant time.
//
// It returns nil on a match, a [*MismatchError] (matching
// [ErrBindingMismatch]) on a mismatch, an error matching
// [ErrNoPeerCertificate] when peerCertDER is empty, and a
// [*FingerprintError] when b.Expected is not a usable fingerprint.
func (b Binding) Check(peerCertDER []byte) error {
	if err := b.Expected.validate(); err != nil {
		return fmt.Errorf("dtls: binding for session %q: expected fingerprint: %w", b.SID, err)
	}
	if len(peerCertDER) == 0 {
		return fmt.Errorf("dtls: binding for session %q: %w", b.SID, ErrNoPeerCertificate)
	}
	got, err := Sum(b.Expected.Hash, peerCertDER)
	if err != nil { // unreachable after validate
		return err
	}
	if subtle.ConstantTimeCompare(got.Value, b.Expected.Value) != 1 {
		return &MismatchError{SID: b.SID, Peer: b.Peer, Device: b.Device, Expected: b.Expected, Got: got}
	}
	return nil
}

// CheckTransport runs [Binding.Check] on the certificate the peer presented
// on t (t.GetRemoteCertificate). Call it once t is connected. A nil t gives
// an error matching [ErrNoPeerCertificate].
func (b Binding) CheckTransport(t *webrtc.DTLSTransport) error {
	if t == nil {
		return fmt.Errorf("dtls: binding for session %q: no DTLS transport: %w", b.SID, ErrNoPeerCertificate)
	}
	return b.Check(t.GetRemoteCertificate())
}

// CheckPeerConnection runs [Binding.CheckTransport] on the DTLS transport of
// pc. A pion PeerConnection has a single DTLS transport, shared by media
// (BUNDLE) and SCTP.
func (b Binding) CheckPeerConnection(pc *webrtc.PeerConnection) error {
	if pc == nil || pc.SCTP() == nil {
		return b.CheckTransport(nil)
	}
	return b.CheckTransport(pc.SCTP().Transport())
}
