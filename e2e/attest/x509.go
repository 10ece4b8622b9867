package attest

import (
	"bytes"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// X509Verifier checks "x509-cms" attestations: a CMS SignedData (RFC 5652)
// detached signature over the statement's canonical bytes, as made by
// `openssl cms -sign -binary -outform DER`, whose signer certificate chains
// to one of the configured roots.
//
// Only the roots given to [NewX509Verifier] are trusted, never the system
// TLS roots. The chain is checked at the current time (see [WithClock]) and
// must allow S/MIME use: the leaf and every CA must permit the
// emailProtection extended key usage (or any, or carry no EKU), and a leaf
// with a key usage extension must allow digitalSignature or
// contentCommitment. The content and signature digests must be SHA-256,
// SHA-384 or SHA-512; SHA-1 and MD5 are refused. Exactly one signer is
// accepted.
//
// A signature that verifies but whose chain ends at an unknown root (or when
// no roots are configured) is [Untrusted]; a bad signature or any other
// chain problem (expired, wrong usage) is [Failed]. Attached content
// (`openssl cms -sign -nodetach`) is accepted only if it is byte for byte
// the statement.
//
// The zero value trusts no roots. An X509Verifier is immutable and safe for
// concurrent use.
type X509Verifier struct {
	roots *x509.CertPool
	now   func() time.Time
}

// An X509Option configures an [X509Verifier].
type X509Option func(*X509Verifier)

// WithClock makes the verifier check certificate validity at now() instead
// of the current time. It panics if now is nil.
func WithClock(now func() time.Time) X509Option {
	if now == nil {
		panic("attest: nil clock")
	}
	return func(v *X509Verifier) { v.now = now }
}

// NewX509Verifier returns a verifier trusting only roots. A nil roots pool
// is allowed: every valid signature is then [Untrusted].
func NewX509Verifier(roots *x509.CertPool, opts ...X509Option) *X509Verifier {
	v := &X509Verifier{roots: roots, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Type returns [TypeX509CMS].
func (*X509Verifier) Type() string { return TypeX509CMS }

// Accepted CMS digest algorithms.
var cmsDigests = []asn1.ObjectIdentifier{
	pkcs7.OIDDigestAlgorithmSHA256,
	pkcs7.OIDDigestAlgorithmSHA384,
	pkcs7.OIDDigestAlgorithmSHA512,
}

// Refused CMS signature algorithms (they imply a weak digest).
var cmsWeakSignatureAlgs = []asn1.ObjectIdentifier{
	pkcs7.OIDEncryptionAlgorithmRSAMD5,
	pkcs7.OIDEncryptionAlgorithmRSASHA1,
	pkcs7.OIDDigestAlgorithmECDSASHA1,
	pkcs7.OIDDigestAlgorithmDSASHA1,
	pkcs7.OIDDigestAlgorithmDSA,
}

// Verify checks data (DER, or PEM of type "CMS" or "PKCS7") as a detached
// CMS signature over st.Bytes(). The signer is reported as the leaf
// certificate subject followed by its email addresses.
func (v *X509Verifier) Verify(st Statement, data []byte) Result {
	res := Result{Type: TypeX509CMS, Status: Failed}
	msg, err := st.marshal()
	if err != nil {
		res.Detail = "invalid statement"
		return res
	}
	der, err := cmsDER(data)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	if !strictDER(der, 0) {
		res.Detail = "CMS is not DER"
		return res
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		res.Detail = "malformed CMS"
		return res
	}
	if len(p7.Signers) != 1 {
		res.Detail = "want exactly one CMS signer"
		return res
	}
	si := p7.Signers[0]
	if !oidIn(si.DigestAlgorithm.Algorithm, cmsDigests) || oidIn(si.DigestEncryptionAlgorithm.Algorithm, cmsWeakSignatureAlgs) {
		res.Detail = "CMS signature uses a weak or unsupported digest"
		return res
	}
	if !nullOrAbsent(si.DigestAlgorithm) || !nullOrAbsent(si.DigestEncryptionAlgorithm) {
		res.Detail = "CMS algorithm parameters are not NULL or absent"
		return res
	}
	if si.Version != 1 {
		res.Detail = "unsupported CMS SignerInfo version"
		return res
	}
	if err := checkSignedDataFraming(der, si.DigestAlgorithm.Algorithm); err != nil {
		res.Detail = err.Error()
		return res
	}
	if len(si.AuthenticatedAttributes) > 0 {
		var ct asn1.ObjectIdentifier
		if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeContentType, &ct); err != nil || !ct.Equal(pkcs7.OIDData) {
			res.Detail = "CMS content type is not id-data"
			return res
		}
	}
	if len(p7.Content) > 0 && subtle.ConstantTimeCompare(p7.Content, msg) != 1 {
		res.Detail = "CMS carries attached content that is not the statement"
		return res
	}
	p7.Content = msg
	if err := p7.Verify(); err != nil { // signature only: a nil trust store skips the chain
		res.Detail = "bad signature"
		return res
	}
	leaf := p7.GetOnlySigner()
	if leaf == nil {
		res.Detail = "no certificate for the signer"
		return res
	}
	// The signer is named only once the signature verifies and the
	// chain is trusted or merely unknown: a failure names nobody.
	signer := leaf.Subject.String()
	if len(leaf.EmailAddresses) > 0 {
		signer += " <" + strings.Join(leaf.EmailAddresses, ", ") + ">"
	}
	signer = sanitize(signer)
	if v == nil || v.roots == nil {
		res.Status = Untrusted
		res.Signer = signer
		res.Detail = "no X.509 trust anchors configured"
		return res
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		res.Detail = "signer certificate key usage does not allow signing"
		return res
	}
	inter := x509.NewCertPool()
	for _, c := range p7.Certificates {
		if c != leaf {
			inter.AddCert(c)
		}
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   v.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknown):
		res.Status = Untrusted
		res.Signer = signer
		res.Detail = "signature is valid but the signer does not chain to a configured root"
		return res
	case err != nil:
		res.Detail = sanitize("certificate chain of " + signer + " rejected: " + err.Error())
		return res
	}
	res.Status = Verified
	res.Signer = signer
	if !emailNamesJID(leaf.EmailAddresses, st.JID) {
		res.Detail = "no email address of the signer certificate is " + st.JID
	}
	return res
}

// cmsDER returns the DER bytes of data, decoding a single PEM block of type
// CMS or PKCS7 if data is PEM.
func cmsDER(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return data, nil
	}
	block, rest := pem.Decode(trimmed)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 || len(block.Headers) != 0 ||
		(block.Type != "CMS" && block.Type != "PKCS7") {
		return nil, errors.New("malformed PEM: want one CMS or PKCS7 block")
	}
	return block.Bytes, nil
}

func oidIn(oid asn1.ObjectIdentifier, set []asn1.ObjectIdentifier) bool {
	for _, o := range set {
		if oid.Equal(o) {
			return true
		}
	}
	return false
}

func emailNamesJID(emails []string, jid string) bool {
	cj, err := canonicalJID(jid)
	if err != nil {
		return false
	}
	for _, e := range emails {
		if strings.EqualFold(e, cj) {
			return true
		}
	}
	return false
}

// maxDERDepth bounds the nesting that strictDER walks.
const maxDERDepth = 32

// strictDER reports whether b is exactly one DER element whose constructed
// contents are, recursively, DER elements with minimal definite lengths.
// The CMS parser would otherwise accept BER and trailing or missing bytes
// in unsigned framing, making attestations malleable.
func strictDER(b []byte, depth int) bool {
	if depth > maxDERDepth {
		return false
	}
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil || len(rest) != 0 {
		return false
	}
	if !v.IsCompound {
		return true
	}
	for inner := v.Bytes; len(inner) > 0; {
		var c asn1.RawValue
		r, err := asn1.Unmarshal(inner, &c)
		if err != nil || !strictDER(c.FullBytes, depth+1) {
			return false
		}
		inner = r
	}
	return true
}

// checkSignedDataFraming checks the parts of a SignedData (RFC 5652
// section 5.1) that no signature covers and that the CMS library reads
// leniently: exactly the fields of a version 1 SignedData in order
// (id-data content, signers named by issuer and serial, no attribute
// certificates), an encapsulated content that is absent or one OCTET
// STRING, and a digestAlgorithms set naming exactly the signer's digest.
// Without this, flipping those fields would give a different attestation
// that still verifies.
func checkSignedDataFraming(der []byte, digest asn1.ObjectIdentifier) error {
	bad := errors.New("malformed CMS SignedData framing")
	ci, err := derChildren(der)
	if err != nil || len(ci) != 2 {
		return bad
	}
	var ct asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(ci[0].FullBytes, &ct); err != nil || len(rest) != 0 || !ct.Equal(pkcs7.OIDSignedData) {
		return errors.New("CMS is not SignedData")
	}
	if !isContext(ci[1], 0, true) {
		return bad
	}
	wrapped, err := derChildren(ci[1].FullBytes)
	if err != nil || len(wrapped) != 1 || wrapped[0].Class != asn1.ClassUniversal || wrapped[0].Tag != asn1.TagSequence {
		return bad
	}
	f, err := derChildren(wrapped[0].FullBytes)
	if err != nil || len(f) < 4 || len(f) > 6 {
		return bad
	}
	var version int
	if rest, err := asn1.Unmarshal(f[0].FullBytes, &version); err != nil || len(rest) != 0 || version != 1 {
		return errors.New("unsupported CMS SignedData version")
	}
	var algs []pkix.AlgorithmIdentifier
	if rest, err := asn1.UnmarshalWithParams(f[1].FullBytes, &algs, "set"); err != nil || len(rest) != 0 ||
		len(algs) != 1 || !algs[0].Algorithm.Equal(digest) || !nullOrAbsent(algs[0]) {
		return errors.New("CMS digest algorithms do not match the signer")
	}
	if err := checkEncapContent(f[2]); err != nil {
		return err
	}
	i := 3
	if i < len(f)-1 && isContext(f[i], 0, true) { // certificates
		i++
	}
	if i < len(f)-1 && isContext(f[i], 1, true) { // crls
		i++
	}
	if i != len(f)-1 || f[i].Class != asn1.ClassUniversal || f[i].Tag != asn1.TagSet || !f[i].IsCompound {
		return bad
	}
	return nil
}

// checkEncapContent checks an EncapsulatedContentInfo: id-data and either
// no content or [0] EXPLICIT holding one primitive OCTET STRING.
func checkEncapContent(v asn1.RawValue) error {
	bad := errors.New("malformed CMS encapsulated content")
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagSequence {
		return bad
	}
	e, err := derChildren(v.FullBytes)
	if err != nil || len(e) < 1 || len(e) > 2 {
		return bad
	}
	var ct asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(e[0].FullBytes, &ct); err != nil || len(rest) != 0 || !ct.Equal(pkcs7.OIDData) {
		return errors.New("CMS content type is not id-data")
	}
	if len(e) == 2 {
		if !isContext(e[1], 0, true) {
			return bad
		}
		oct, err := derChildren(e[1].FullBytes)
		if err != nil || len(oct) != 1 || oct[0].Class != asn1.ClassUniversal ||
			oct[0].Tag != asn1.TagOctetString || oct[0].IsCompound {
			return bad
		}
	}
	return nil
}

func isContext(v asn1.RawValue, tag int, compound bool) bool {
	return v.Class == asn1.ClassContextSpecific && v.Tag == tag && v.IsCompound == compound
}

// derChildren returns the elements inside the single constructed DER
// element b.
func derChildren(b []byte) ([]asn1.RawValue, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil || len(rest) != 0 || !v.IsCompound {
		return nil, errors.New("attest: not a constructed DER element")
	}
	var out []asn1.RawValue
	for inner := v.Bytes; len(inner) > 0; {
		var c asn1.RawValue
		r, err := asn1.Unmarshal(inner, &c)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		inner = r
	}
	return out, nil
}

// nullOrAbsent reports whether an algorithm identifier has no parameters
// or DER NULL parameters, the only forms the accepted hash, RSA and ECDSA
// algorithms use (RFC 5754).
func nullOrAbsent(a pkix.AlgorithmIdentifier) bool {
	p := a.Parameters.FullBytes
	return len(p) == 0 || (len(p) == 2 && p[0] == 0x05 && p[1] == 0x00)
}
