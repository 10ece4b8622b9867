// Package attest implements key authentication mechanisms for securejingle
// account identity keys: the ways a user can convince themselves that an
// Ed25519 account key really belongs to a contact's account. The account
// key certifies every device of the account, so a contact is verified
// once, not once per device.
//
// Every mechanism authenticates the same thing, an account [Statement]: a
// small, stable UTF-8 text binding a bare JID to an account identity key. Its canonical bytes ([Statement.Bytes]) are what external tools sign,
// for example
//
//	securejingle keys statement > st.txt
//	gpg --armor --detach-sign st.txt
//	openssl cms -sign -binary -in st.txt -signer me.pem -inkey me.key -outform DER -out st.p7s
//
// An [Attestation] is a typed signature over those bytes. The mechanisms that
// this package understands are
//
//   - "self": the account key's own SSHSIG signature under the namespace
//     identity.NamespaceStatement ([SelfVerifier]);
//   - "openpgp": an ASCII-armored OpenPGP detached signature (RFC 9580),
//     checked against a user-supplied keyring ([OpenPGPVerifier]);
//   - "x509-cms": a detached CMS SignedData (RFC 5652), checked against
//     user-configured X.509 roots and never the system TLS roots
//     ([X509Verifier]).
//
// A trusted signer vouches only for the identities its certificate or key
// names: an attestation is [Verified] only when the signer names the
// statement's JID (an id-on-xmppAddr or email subjectAltName, an OpenPGP
// user id "Name <JID>" or "Name <xmpp:JID>"); a trusted signer naming
// someone else gives [Mismatch], an expired one [Expired].
//
// The set is open: a [Registry] dispatches on the type token, and an
// attestation of a type no registered [Verifier] understands is kept and
// shown to the user as text (armored text as is, anything else as a PEM
// block) with status [Unsupported]; it is never an error and never dropped.
//
// Manual verification needs no third party: [SAS] derives a short
// authentication string from the two accounts' statements that both users
// read aloud (the same on both ends at any time), [FingerprintBlocks]
// formats the account key fingerprint for reading aloud, and a [VerifyURI]
// (an RFC 5122 xmpp: URI) carries the key in a QR code drawn by
// [RenderQR].
//
// See docs/protocol.md, "Key authentication".
package attest
