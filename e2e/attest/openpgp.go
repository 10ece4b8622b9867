package attest

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// OpenPGPVerifier checks "openpgp" attestations: an ASCII-armored OpenPGP
// detached signature (RFC 9580 section 5.2, as made by
// `gpg --armor --detach-sign`) over the statement's canonical bytes.
//
// A signature by a key in Keyring that verifies is [Verified] when one of
// the key's valid user ids names the statement's JID: the user id is
// "xmpp:JID", or its email part is "<JID>" or "<xmpp:JID>" (domainpart
// case-insensitive; see docs/protocol.md, section 9.5). A key whose user
// ids name only other identities gives [Mismatch] ("signed by a key for
// carol@example.org, not bob@example.org"); an expired (or not yet valid)
// key or signature gives [Expired] with the date. A signature by a key not
// in Keyring is [Untrusted] (it cannot be checked, and the issuer key id
// is reported); anything else, including a signature made with a weak
// hash (MD5, SHA-1, RIPEMD-160) or by a revoked key, is [Failed]. Exactly
// one signature packet is accepted.
//
// The zero value has an empty keyring, so every well-formed signature is
// [Untrusted]. An OpenPGPVerifier is safe for concurrent use as long as
// its fields are not modified.
type OpenPGPVerifier struct {
	Keyring openpgp.EntityList
	// Now is the time of the check (key and signature expiry, user id
	// revocation); nil means time.Now.
	Now func() time.Time
}

// NewOpenPGPVerifier returns a verifier trusting the keys in the given
// ASCII-armored public key blocks (as written by `gpg --armor --export`).
// Secret keys are refused, so a verifier never holds secret key material.
func NewOpenPGPVerifier(armoredPublicKeys ...[]byte) (*OpenPGPVerifier, error) {
	v := &OpenPGPVerifier{}
	for i, b := range armoredPublicKeys {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("attest: OpenPGP public key block %d: %w", i, err)
		}
		for _, e := range el {
			if e.PrivateKey != nil {
				return nil, fmt.Errorf("attest: OpenPGP key block %d holds a secret key", i)
			}
		}
		v.Keyring = append(v.Keyring, el...)
	}
	return v, nil
}

// Type returns [TypeOpenPGP].
func (*OpenPGPVerifier) Type() string { return TypeOpenPGP }

// weakOpenPGPHashes are refused for statement signatures.
var weakOpenPGPHashes = map[crypto.Hash]bool{
	crypto.MD5:       true,
	crypto.SHA1:      true,
	crypto.RIPEMD160: true,
}

const (
	pgpArmorBegin = "-----BEGIN PGP SIGNATURE-----"
	pgpArmorEnd   = "-----END PGP SIGNATURE-----"
	// xmppURIPrefix starts an RFC 5122 XMPP URI naming a JID in a user id.
	xmppURIPrefix = "xmpp:"
)

// Verify checks data as an armored detached signature over st.Bytes().
// The signer is reported as the primary key fingerprint (upper-case hex)
// followed by the primary user id, and Names lists the JIDs its user ids
// name.
func (v *OpenPGPVerifier) Verify(st Statement, data []byte) Result {
	res := Result{Type: TypeOpenPGP, Status: Failed}
	msg, err := st.marshal()
	if err != nil {
		res.Detail = "invalid statement"
		return res
	}
	body, sig, err := parseArmoredSignature(data)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	if weakOpenPGPHashes[sig.Hash] || !sig.Hash.Available() {
		res.Detail = "signature uses a weak or unsupported hash"
		return res
	}
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		res.Detail = "not a document signature"
		return res
	}
	if sig.IssuerKeyId == nil {
		res.Detail = "signature names no issuer"
		return res
	}
	var keyring openpgp.EntityList
	if v != nil {
		keyring = v.Keyring
	}
	issuer := fmt.Sprintf("issuer key ID %016X", *sig.IssuerKeyId)
	if len(sig.IssuerFingerprint) > 0 {
		issuer += ", fingerprint " + strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint))
	}
	if len(keyring.KeysByIdUsage(*sig.IssuerKeyId, packet.KeyFlagSign)) == 0 {
		res.Status = Untrusted
		res.Detail = issuer + " is not in the keyring; signature not checked"
		return res
	}
	now := time.Now
	if v != nil && v.Now != nil {
		now = v.Now
	}
	signer, err := openpgp.CheckDetachedSignature(keyring, bytes.NewReader(msg), bytes.NewReader(body), &packet.Config{Time: now})
	if signer == nil || (err != nil && !errors.Is(err, pgperrors.ErrKeyExpired) && !errors.Is(err, pgperrors.ErrSignatureExpired)) {
		if errors.Is(err, pgperrors.ErrKeyRevoked) {
			res.Detail = "signing key is revoked"
		} else {
			res.Detail = "bad signature (" + issuer + ")"
		}
		return res
	}
	// The signature verifies: the signer is named from here on.
	t := now()
	res.Signer = strings.ToUpper(hex.EncodeToString(signer.PrimaryKey.Fingerprint))
	if id := signer.PrimaryIdentity(); id != nil {
		res.Signer += " " + id.Name
	}
	res.Names = pgpNames(signer, t)
	res.NamesJID = matchNames(res.Names, st.JID)
	var notBefore time.Time
	res.Expires, notBefore = pgpKeyValidity(signer, *sig.IssuerKeyId)
	nameNote := ""
	if !res.NamesJID {
		nameNote = "; " + mismatchDetail("a key", res.Names, st.JID)
	}
	switch {
	case errors.Is(err, pgperrors.ErrKeyExpired) && t.Before(notBefore):
		res.Status = Expired
		res.Detail = "signing key is not valid before " + notBefore.UTC().Format(dateFormat) + nameNote
	case errors.Is(err, pgperrors.ErrKeyExpired):
		res.Status = Expired
		res.Detail = "signing key expired on " + res.Expires.UTC().Format(dateFormat) + nameNote
	case errors.Is(err, pgperrors.ErrSignatureExpired) && sig.SigExpired(t) && sig.SigLifetimeSecs != nil && t.After(sig.CreationTime):
		res.Status = Expired
		end := sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs) * time.Second)
		res.Detail = "signature expired on " + end.UTC().Format(dateFormat) + nameNote
	case errors.Is(err, pgperrors.ErrSignatureExpired) && sig.SigExpired(t):
		res.Status = Expired
		res.Detail = "signature is dated in the future (" + sig.CreationTime.UTC().Format(dateFormat) + ")" + nameNote
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		res.Status = Expired
		res.Detail = "a self-signature of the signing key has expired; refresh the key (gpg --export) and check again" + nameNote
	case !res.NamesJID:
		res.Status = Mismatch
		res.Detail = mismatchDetail("a key", res.Names, st.JID)
	default:
		res.Status = Verified
	}
	return res
}

// pgpNames returns the JIDs the user ids of e name, in user id order: a
// user id that is exactly "xmpp:JID", or whose email part (the text
// between a last '<' and a final '>') is "JID" or "xmpp:JID". Revoked
// user ids, and those whose self-signature has expired, name nobody. At
// most MaxResultNames names are returned.
func pgpNames(e *openpgp.Entity, now time.Time) []string {
	ids := make([]string, 0, len(e.Identities))
	for name := range e.Identities {
		ids = append(ids, name)
	}
	sort.Strings(ids) // map order is random
	var names []string
	for _, name := range ids {
		id := e.Identities[name]
		if id == nil || id.UserId == nil || id.Revoked(now) || id.SelfSignature == nil || id.SelfSignature.SigExpired(now) {
			continue
		}
		if n, ok := uidJID(id.UserId.Id); ok {
			names = appendName(names, n)
		}
	}
	return names
}

// uidJID extracts the JID a user id names, if any (see pgpNames).
func uidJID(uid string) (string, bool) {
	if j, ok := strings.CutPrefix(uid, xmppURIPrefix); ok && !strings.ContainsAny(j, "<> ") {
		return j, true
	}
	inner, ok := strings.CutSuffix(uid, ">")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(inner, '<')
	if i < 0 {
		return "", false
	}
	addr := strings.TrimPrefix(inner[i+1:], xmppURIPrefix)
	if addr == "" {
		return "", false
	}
	return addr, true
}

// pgpKeyValidity returns when the key of e with id keyID (the primary key
// or a subkey) and, for a subkey, the primary key stop being valid (the
// earlier of the two; zero if neither expires), and when the key starts
// being valid.
func pgpKeyValidity(e *openpgp.Entity, keyID uint64) (expires, notBefore time.Time) {
	life := func(created time.Time, sig *packet.Signature) {
		if created.After(notBefore) {
			notBefore = created
		}
		if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
			return
		}
		end := created.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
		if expires.IsZero() || end.Before(expires) {
			expires = end
		}
	}
	primarySig, _ := e.PrimarySelfSignature()
	life(e.PrimaryKey.CreationTime, primarySig)
	if e.PrimaryKey.KeyId != keyID {
		for _, sk := range e.Subkeys {
			if sk.PublicKey != nil && sk.PublicKey.KeyId == keyID {
				life(sk.PublicKey.CreationTime, sk.Sig)
				break
			}
		}
	}
	return expires, notBefore
}

// parseArmoredSignature strictly decodes one armored signature block
// holding exactly one signature packet.
func parseArmoredSignature(data []byte) (body []byte, sig *packet.Signature, err error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte(pgpArmorBegin)) || !bytes.HasSuffix(trimmed, []byte(pgpArmorEnd)) ||
		bytes.Count(trimmed, []byte(pgpArmorBegin)) != 1 {
		return nil, nil, errors.New("not a single ASCII-armored OpenPGP signature")
	}
	block, err := armor.Decode(bytes.NewReader(trimmed))
	if err != nil || block.Type != openpgp.SignatureType {
		return nil, nil, errors.New("malformed OpenPGP armor")
	}
	body, err = io.ReadAll(io.LimitReader(block.Body, MaxAttestationSize+1))
	if err != nil || len(body) > MaxAttestationSize {
		return nil, nil, errors.New("malformed OpenPGP armor")
	}
	if !exactPacketFraming(body) {
		return nil, nil, errors.New("OpenPGP packet length does not match its body")
	}
	pr := packet.NewReader(bytes.NewReader(body))
	p, err := pr.Next()
	if err != nil {
		return nil, nil, errors.New("malformed OpenPGP signature packet")
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, nil, errors.New("not an OpenPGP signature packet")
	}
	if _, err := pr.Next(); err != io.EOF {
		return nil, nil, errors.New("want exactly one OpenPGP signature packet")
	}
	return body, sig, nil
}

// exactPacketFraming reports whether b is exactly one OpenPGP packet with a
// definite length (RFC 9580 section 4.2) that covers the rest of b. The
// packet parser tolerates a declared length longer than the data, which
// would make the signature malleable.
func exactPacketFraming(b []byte) bool {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return false
	}
	var hdr, n int
	if b[0]&0x40 == 0 { // legacy format
		switch b[0] & 3 {
		case 0:
			hdr, n = 2, int(b[1])
		case 1:
			if len(b) < 3 {
				return false
			}
			hdr, n = 3, int(b[1])<<8|int(b[2])
		case 2:
			if len(b) < 5 {
				return false
			}
			hdr, n = 5, int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4])
		default:
			return false
		}
	} else { // OpenPGP format
		switch l := int(b[1]); {
		case l < 192:
			hdr, n = 2, l
		case l < 224:
			if len(b) < 3 {
				return false
			}
			hdr, n = 3, (l-192)<<8+int(b[2])+192
		case l == 255:
			if len(b) < 6 {
				return false
			}
			hdr, n = 6, int(b[2])<<24|int(b[3])<<16|int(b[4])<<8|int(b[5])
		default: // partial body lengths are not allowed for signatures
			return false
		}
	}
	return n >= 0 && hdr+n == len(b)
}
