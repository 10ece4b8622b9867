// Package dtls binds the DTLS-SRTP session of a call to the peer's verified
// identity.
//
// Each call uses a fresh ECDSA P-256 certificate ([NewCertificate]) whose
// SHA-256 fingerprint (RFC 8122 §5, carried as the XEP-0320 <fingerprint/>
// element) travels inside the end-to-end protected session-initiate or
// session-accept from a certified device. Once DTLS (RFC 6347, RFC 5764)
// has completed, [Binding.Check] hashes the certificate the peer actually
// presented and compares it in constant time with the fingerprint from the
// protected stanza. That check is ours: pion also compares the certificate
// with the fingerprint of the SDP it was handed, but that SDP is only as
// trustworthy as whoever built it, and a man in the middle who terminates
// DTLS with his own certificate passes pion's check whenever he also
// controls the SDP (for example by rewriting a cleartext Jingle offer).
//
// A mismatch is reported as a [*MismatchError] matching [ErrBindingMismatch];
// the caller terminates the session with reason security-error and raises an
// alert.
package dtls
