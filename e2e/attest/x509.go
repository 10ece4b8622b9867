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
	"unicode/utf8"

	"github.com/smallstep/pkcs7"
)

// X509Verifier checks "x509-cms" attestations: a CMS SignedData (RFC 5652)
// detached signature over the statement's canonical bytes, as made by
// `openssl cms -sign -binary -outform DER`, whose signer certificate chains
// to one of the configured roots and names the statement's JID.
//
// Only the roots given to [NewX509Verifier] are trusted, never the system
// TLS roots. The chain is checked at the current time (see [WithClock]) and
// must allow S/MIME use: the leaf and every CA must permit the
// emailProtection extended key usage (or any, or carry no EKU), and a leaf
// with a key usage extension must allow digitalSignature or
// contentCommitment. The content and signature digests must be SHA-256,
// SHA-384 or SHA-512; SHA-1 and MD5 are refused. Exactly one signer is
// accepted. A signing time attribute is not used: validity is checked at
// the time of the check.
//
// The leaf names the JID when a subjectAltName id-on-xmppAddr (RFC 6120
// section 13.7.1.4) or rfc822Name is that bare JID (domainpart
// case-insensitive; see docs/protocol.md, section 9.4).
//
// Results: [Verified] for a trusted chain whose leaf names the JID;
// [Mismatch] for a trusted chain whose leaf names only other identities
// ("signed by a certificate for carol@example.org, not bob@example.org");
// [Expired] when a certificate of the chain is expired or not yet valid;
// [Untrusted] for a valid signature whose chain ends at an unknown root
// (or when no roots are configured); [Failed] for a bad signature or any
// other chain problem (wrong usage). Attached content (`openssl cms -sign
// -nodetach`) is accepted only if it is byte for byte the statement.
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
// certificate subject followed by its email addresses, and Names lists the
// leaf's id-on-xmppAddr and rfc822Name values.
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
	leaf := p7.GetOnlySigner()
	if leaf == nil {
		res.Detail = "no certificate for the signer"
		return res
	}
	if !cmsSignatureValid(p7, leaf) {
		res.Detail = "bad signature"
		return res
	}
	names, err := certNames(leaf)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	// The signer is named only once the signature verifies: a failure
	// names nobody.
	signer := leaf.Subject.String()
	if len(leaf.EmailAddresses) > 0 {
		signer += " <" + strings.Join(leaf.EmailAddresses, ", ") + ">"
	}
	signer = sanitize(signer)
	now := time.Now()
	if v != nil {
		now = v.now()
	}
	known := func(s Status, detail string) Result {
		return Result{Type: TypeX509CMS, Status: s, Signer: signer, Detail: detail,
			Names: names, NamesJID: matchNames(names, st.JID), Expires: leaf.NotAfter}
	}
	nameNote := func() string {
		if matchNames(names, st.JID) {
			return ""
		}
		return "; " + mismatchDetail("a certificate", names, st.JID)
	}
	if v == nil || v.roots == nil {
		if !validAt(leaf, now) {
			return known(Expired, validityDetail(leaf, now)+"; no X.509 trust anchors configured"+nameNote())
		}
		return known(Untrusted, "no X.509 trust anchors configured"+nameNote())
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
	verifyAt := func(t time.Time) error {
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         v.roots,
			Intermediates: inter,
			CurrentTime:   t,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		})
		return err
	}
	err = verifyAt(now)
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return known(Untrusted, "signature is valid but the signer does not chain to a configured root"+nameNote())
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert != nil:
		// Tell an expired certificate of a trusted chain from one that
		// would not be trusted anyway: check again at a time when the
		// certificate that failed was valid.
		detail := validityDetail(invalid.Cert, now)
		again := verifyAt(validTime(invalid.Cert, now))
		var again2 x509.CertificateInvalidError
		switch {
		case again == nil:
		case errors.As(again, &unknown):
			detail += "; it does not chain to a configured root either"
		case errors.As(again, &again2) && again2.Reason == x509.Expired:
		default:
			res.Detail = sanitize("certificate chain of " + signer + " rejected: " + again.Error())
			return res
		}
		return known(Expired, detail+nameNote())
	case err != nil:
		res.Detail = sanitize("certificate chain of " + signer + " rejected: " + err.Error())
		return res
	}
	if !matchNames(names, st.JID) {
		return known(Mismatch, mismatchDetail("a certificate", names, st.JID))
	}
	return known(Verified, "")
}

// cmsSignatureValid reports whether the signature of p7's only signer,
// whose certificate is leaf, verifies over p7.Content. Only the signature
// is checked here: the CMS library would also refuse a signing time
// attribute outside the certificate's validity, before checking the
// signature, which would make an expired certificate look like a bad
// signature. Validity is checked by the caller, at the time of the check.
func cmsSignatureValid(p7 *pkcs7.PKCS7, leaf *x509.Certificate) bool {
	wide := *leaf
	wide.NotBefore = time.Time{}
	wide.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	certs := p7.Certificates
	p7.Certificates = make([]*x509.Certificate, len(certs))
	for i, c := range certs {
		p7.Certificates[i] = c
		if c == leaf {
			p7.Certificates[i] = &wide
		}
	}
	err := p7.Verify() // signature only: a nil trust store skips the chain
	p7.Certificates = certs
	return err == nil
}

// validAt reports whether c is valid at t.
func validAt(c *x509.Certificate, t time.Time) bool {
	return !t.Before(c.NotBefore) && !t.After(c.NotAfter)
}

// validTime returns a time at which c is valid, close to t.
func validTime(c *x509.Certificate, t time.Time) time.Time {
	if t.Before(c.NotBefore) {
		return c.NotBefore
	}
	if t.After(c.NotAfter) {
		return c.NotAfter
	}
	return t
}

// validityDetail says how c is outside its validity period at t.
func validityDetail(c *x509.Certificate, t time.Time) string {
	what := "signer certificate"
	if len(c.Subject.String()) > 0 {
		what = "certificate " + c.Subject.String()
	}
	if t.Before(c.NotBefore) {
		return what + " is not valid before " + c.NotBefore.UTC().Format(dateFormat)
	}
	return what + " expired on " + c.NotAfter.UTC().Format(dateFormat)
}

// OIDs of the names a signer certificate can give for a JID.
var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXMPPAddr       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5} // id-on-xmppAddr, RFC 6120 section 13.7.1.4
)

// certNames returns the identities c claims that can name a JID: the
// id-on-xmppAddr otherNames of its subjectAltName, then its rfc822Names.
// The subjectAltName is parsed strictly: a malformed GeneralNames, or an
// id-on-xmppAddr that is not exactly one UTF8String of valid UTF-8, is an
// error. Other otherName types are skipped. At most MaxResultNames names
// are returned.
func certNames(c *x509.Certificate) ([]string, error) {
	bad := errors.New("malformed subjectAltName in the signer certificate")
	var names []string
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var gns []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &gns); err != nil || len(rest) != 0 {
			return nil, bad
		}
		for _, gn := range gns {
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue // not an otherName: the x509 parser checked it
			}
			if !gn.IsCompound {
				return nil, bad
			}
			var typ asn1.ObjectIdentifier
			rest, err := asn1.Unmarshal(gn.Bytes, &typ)
			if err != nil {
				return nil, bad
			}
			var val asn1.RawValue
			if r, err := asn1.Unmarshal(rest, &val); err != nil || len(r) != 0 || !isContext(val, 0, true) {
				return nil, bad
			}
			if !typ.Equal(oidXMPPAddr) {
				continue
			}
			var u asn1.RawValue
			if r, err := asn1.Unmarshal(val.Bytes, &u); err != nil || len(r) != 0 ||
				u.Class != asn1.ClassUniversal || u.Tag != asn1.TagUTF8String || u.IsCompound || !utf8.Valid(u.Bytes) {
				return nil, errors.New("malformed id-on-xmppAddr in the signer certificate: want one UTF8String")
			}
			names = appendName(names, string(u.Bytes))
		}
	}
	for _, e := range c.EmailAddresses {
		names = appendName(names, e)
	}
	return names, nil
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
