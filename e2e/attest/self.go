package attest

import (
	"crypto/subtle"
	"errors"

	"github.com/securejingle/securejingle/e2e/identity"
)

// SelfVerifier checks "self" attestations: the account key's own SSHSIG
// signature (namespace identity.NamespaceStatement) over the statement. It
// proves possession of the key for that JID, not who holds it.
//
// The zero value is ready to use and safe for concurrent use.
type SelfVerifier struct{}

// Type returns [TypeSelf].
func (SelfVerifier) Type() string { return TypeSelf }

// Verify checks data as a raw 64-byte Ed25519 signature by st.Key.
func (SelfVerifier) Verify(st Statement, data []byte) Result {
	res := Result{Type: TypeSelf, Status: Failed}
	msg, err := st.marshal()
	if err != nil {
		res.Detail = "invalid statement"
		return res
	}
	if err := identity.Verify(st.Key, identity.NamespaceStatement, msg, data); err != nil {
		res.Detail = "bad signature"
		return res
	}
	// The key signed the statement, which names the JID: the key claims
	// exactly that JID (and proves nothing more).
	res.Status = Verified
	res.Signer = identity.Fingerprint(st.Key)
	res.Names = []string{st.JID}
	res.NamesJID = true
	return res
}

// SignSelf returns the "self" attestation of st made with signer, whose
// public key must be st.Key.
func SignSelf(signer identity.Signer, st Statement) (Attestation, error) {
	msg, err := st.marshal()
	if err != nil {
		return Attestation{}, err
	}
	if subtle.ConstantTimeCompare(signer.PublicKey(), st.Key) != 1 {
		return Attestation{}, errors.New("attest: signer key is not the statement key")
	}
	sig, err := signer.Sign(identity.NamespaceStatement, msg)
	if err != nil {
		return Attestation{}, err
	}
	return Attestation{Type: TypeSelf, Data: sig}, nil
}
