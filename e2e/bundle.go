package e2e

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
)

// b64 is the one base64 alphabet of the protocol: standard, unpadded,
// strict (non-canonical trailing bits are rejected).
var b64 = base64.RawStdEncoding.Strict()

// ErrBadBundle is returned when a bundle or presence element fails
// verification (bad signature, wrong owner, expired prekey).
var ErrBadBundle = errors.New("e2e: bundle verification failed")

// A Prekey is a signed, rotating HPKE public key of one device. A first
// message to the device is encrypted to it (see [Initiate]).
type Prekey struct {
	ID        uint32
	KEM       uint16 // HPKE KEM id
	Public    []byte // HPKE SerializePublicKey output
	Expires   time.Time
	Signature []byte // identity signature, namespace identity.NamespacePrekey
}

// An Attestation is a third-party or native statement about an identity key
// (see package attest). Unknown types are kept and shown, never dropped.
type Attestation = attest.Attestation

// A Bundle is everything a peer needs to start a session with one device:
// its device key and the account's certificate of it, its suites in
// preference order, its signed prekeys, its attestations and the newest
// device list the device knows, signed as a whole by the device key.
//
// A Bundle obtained from [ParseBundle] or [ParseBundleXML] must be checked
// with [Bundle.Verify] before use.
type Bundle struct {
	JID    string // bare JID of the owner
	Device uint32
	// Identity is the device key: it signs the bundle, its prekeys, the
	// presence element and the device's handshakes.
	Identity ed25519.PublicKey
	// Account is the account identity key that certified the device
	// (CertIssued, CertExpires, CertSignature form the [DeviceCert]).
	Account       ed25519.PublicKey
	CertIssued    time.Time
	CertExpires   time.Time
	CertSignature []byte
	// List is the newest device list of the account the device had when
	// it signed the bundle, or nil.
	List *DeviceList
	// Issued is when the device signed this bundle (whole seconds). A peer
	// never replaces a stored bundle by an older one of the same key, so a
	// server cannot roll a device back to an old suite list or prekey.
	Issued       time.Time
	Suites       []SuiteID
	Prekeys      []Prekey
	Attestations []Attestation
	Signature    []byte // namespace identity.NamespaceBundle
}

func (p *Prekey) signedBytes(jid string, device uint32) []byte {
	var b builder
	b.raw([]byte(labelPrekey))
	b.str16(jid)
	b.u32(device)
	b.u32(p.ID)
	b.u16(p.KEM)
	b.bytes16(p.Public)
	b.u64(uint64(p.Expires.Unix()))
	return b
}

// body returns the canonical bytes covered by the bundle signature.
func (bu *Bundle) body() []byte {
	var b builder
	b.raw([]byte(labelBundle))
	b.str16(bu.JID)
	b.u32(bu.Device)
	b.raw(bu.Identity)
	b.raw(bu.Account)
	b.u64(uint64(bu.CertIssued.Unix()))
	b.u64(uint64(bu.CertExpires.Unix()))
	b.raw(bu.CertSignature)
	b.u64(uint64(bu.Issued.Unix()))
	appendSuites(&b, bu.Suites)
	b.u8(uint8(len(bu.Prekeys)))
	for i := range bu.Prekeys {
		p := &bu.Prekeys[i]
		b.u32(p.ID)
		b.u16(p.KEM)
		b.bytes16(p.Public)
		b.u64(uint64(p.Expires.Unix()))
		b.raw(p.Signature)
	}
	b.u8(uint8(len(bu.Attestations)))
	for _, a := range bu.Attestations {
		b.str16(a.Type)
		b.bytes16(a.Data)
	}
	if bu.List != nil {
		b.vbytes(bu.List.Marshal())
	} else {
		b.vbytes(nil)
	}
	return b
}

// Cert returns the device certificate the bundle carries.
func (bu *Bundle) Cert() *DeviceCert {
	return &DeviceCert{JID: bu.JID, Device: bu.Device, DeviceKey: bu.Identity, Account: bu.Account,
		Issued: bu.CertIssued, Expires: bu.CertExpires, Signature: bu.CertSignature}
}

// Marshal returns the canonical binary encoding of the signed bundle.
func (bu *Bundle) Marshal() []byte {
	return append(bu.body(), bu.Signature...)
}

// Hash returns the bundle hash carried in presence: SHA-256 over a label and
// the canonical encoding.
func (bu *Bundle) Hash() [32]byte {
	h := sha256.New()
	h.Write([]byte(labelBundleHash))
	h.Write(bu.Marshal())
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ParseBundle parses the canonical binary encoding strictly. It does not
// verify signatures.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, malformed("bundle of %d bytes, at most %d", len(data), MaxBundleSize)
	}
	r := reader{b: data}
	if string(r.fixed(len(labelBundle), "label")) != labelBundle {
		return nil, malformed("bundle label")
	}
	bu := &Bundle{}
	bu.JID = string(r.bytes16("jid"))
	bu.Device = r.u32("device")
	bu.Identity = ed25519.PublicKey(r.fixed(ed25519.PublicKeySize, "device key"))
	bu.Account = ed25519.PublicKey(r.fixed(ed25519.PublicKeySize, "account key"))
	bu.CertIssued = time.Unix(int64(r.u64("certificate issued")), 0).UTC()
	bu.CertExpires = time.Unix(int64(r.u64("certificate expires")), 0).UTC()
	bu.CertSignature = r.fixed(identity.SignatureSize, "certificate signature")
	bu.Issued = time.Unix(int64(r.u64("issued")), 0).UTC()
	bu.Suites = readSuites(&r)
	n := int(r.u8("prekey count"))
	if n > maxPrekeys {
		r.fail("prekey count")
	}
	for i := 0; i < n && r.err == nil; i++ {
		var p Prekey
		p.ID = r.u32("prekey id")
		p.KEM = r.u16("prekey kem")
		p.Public = r.bytes16("prekey")
		p.Expires = time.Unix(int64(r.u64("prekey expiry")), 0).UTC()
		p.Signature = r.fixed(identity.SignatureSize, "prekey signature")
		bu.Prekeys = append(bu.Prekeys, p)
	}
	n = int(r.u8("attestation count"))
	if n > maxAttestations {
		r.fail("attestation count")
	}
	for i := 0; i < n && r.err == nil; i++ {
		var a Attestation
		a.Type = string(r.bytes16("attestation type"))
		a.Data = r.bytes16("attestation")
		bu.Attestations = append(bu.Attestations, a)
	}
	if l := r.vbytes("device list", maxDeviceListSize); r.err == nil && len(l) > 0 {
		var err error
		if bu.List, err = ParseDeviceList(l); err != nil {
			return nil, err
		}
	}
	bu.Signature = r.fixed(identity.SignatureSize, "bundle signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := bu.check(); err != nil {
		return nil, err
	}
	return bu, nil
}

// check validates field shapes (not signatures).
func (bu *Bundle) check() error {
	if err := checkBareJID(bu.JID); err != nil {
		return err
	}
	if len(bu.Identity) != ed25519.PublicKeySize || len(bu.Account) != ed25519.PublicKeySize {
		return malformed("device or account key length")
	}
	if len(bu.CertSignature) != identity.SignatureSize || bu.CertIssued.Unix() <= 0 || !bu.CertExpires.After(bu.CertIssued) {
		return malformed("device certificate")
	}
	if bu.List != nil {
		if err := bu.List.check(); err != nil {
			return err
		}
	}
	if bu.Device == 0 {
		return malformed("device id 0")
	}
	if bu.Issued.Unix() < 0 { // as the XML form: 0..2^63-1
		return malformed("bundle issued %d", bu.Issued.Unix())
	}
	if err := validSuiteList(bu.Suites); err != nil {
		return err
	}
	if len(bu.Prekeys) == 0 || len(bu.Prekeys) > maxPrekeys {
		return malformed("prekey count %d", len(bu.Prekeys))
	}
	for i, p := range bu.Prekeys {
		if len(p.Signature) != identity.SignatureSize || p.Expires.Unix() <= 0 {
			return malformed("prekey %d", i)
		}
		if err := checkPrekeyPublic(p.KEM, p.Public); err != nil {
			return err
		}
		for _, q := range bu.Prekeys[:i] {
			if q.ID == p.ID {
				return malformed("duplicate prekey id %d", p.ID)
			}
		}
	}
	if len(bu.Attestations) > maxAttestations {
		return malformed("attestation count")
	}
	for _, a := range bu.Attestations {
		if !attest.ValidType(a.Type) || len(a.Data) > maxAttestationSize {
			return malformed("attestation %q", a.Type)
		}
	}
	if len(bu.Signature) != identity.SignatureSize {
		return malformed("bundle signature length")
	}
	return bu.checkSize() // last: every field above is bounded (limits.go)
}

// Verify checks the bundle's shape, its signature and every prekey
// signature against the bundle's device key, the device certificate's
// signature under the bundle's account key, the embedded device list's
// signature under the same account key, and that all of it belongs to
// owner (a bare JID). Whether the account key is the right one for owner
// is the trust store's question; whether the certificate is still valid
// and the device on the newest list is the engine's ([Engine.AddBundle]).
func (bu *Bundle) Verify(owner string) error {
	if err := bu.check(); err != nil {
		return err
	}
	if bu.JID != owner {
		return fmt.Errorf("%w: bundle of %q served for %q", ErrBadBundle, bu.JID, owner)
	}
	if identity.Verify(bu.Identity, identity.NamespaceBundle, bu.body(), bu.Signature) != nil {
		return fmt.Errorf("%w: bad bundle signature", ErrBadBundle)
	}
	for i := range bu.Prekeys {
		p := &bu.Prekeys[i]
		if identity.Verify(bu.Identity, identity.NamespacePrekey, p.signedBytes(bu.JID, bu.Device), p.Signature) != nil {
			return fmt.Errorf("%w: bad signature on prekey %d", ErrBadBundle, p.ID)
		}
	}
	if identity.Verify(bu.Account, identity.NamespaceDevice, bu.Cert().signedBytes(), bu.CertSignature) != nil {
		return uncertified(Device{bu.JID, bu.Device}, "is not certified by the account key it names")
	}
	if bu.List != nil {
		if err := bu.List.Verify(owner); err != nil {
			return err
		}
		if !equalKeys(bu.List.Account, bu.Account) {
			return fmt.Errorf("%w: device list signed by another account key than the certificate", ErrBadBundle)
		}
	}
	return nil
}

// prekeyFor returns the unexpired prekey of the bundle usable with suite s.
func (bu *Bundle) prekeyFor(s *Suite, now time.Time) (*Prekey, error) {
	var best *Prekey
	for i := range bu.Prekeys {
		p := &bu.Prekeys[i]
		if p.KEM != s.KEM || !now.Before(p.Expires) {
			continue
		}
		if best == nil || p.Expires.After(best.Expires) {
			best = p
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: no unexpired prekey for %s", ErrBadBundle, s.Name)
	}
	return best, nil
}

// sign fills in prekey and bundle signatures using signer.
func (bu *Bundle) sign(signer identity.Signer) error {
	for i := range bu.Prekeys {
		p := &bu.Prekeys[i]
		sig, err := signer.Sign(identity.NamespacePrekey, p.signedBytes(bu.JID, bu.Device))
		if err != nil {
			return fmt.Errorf("e2e: signing prekey: %w", err)
		}
		p.Signature = sig
	}
	bu.Signature = make([]byte, identity.SignatureSize) // placeholder for check
	if err := bu.check(); err != nil {
		return err
	}
	sig, err := signer.Sign(identity.NamespaceBundle, bu.body())
	if err != nil {
		return fmt.Errorf("e2e: signing bundle: %w", err)
	}
	bu.Signature = sig
	return nil
}

// checkBareJID accepts a bare JID (local@domain or domain), rejecting
// resources, whitespace and control characters. It does not apply PRECIS
// profiles; the gateway passes JIDs as its XMPP library normalised them.
func checkBareJID(j string) error {
	if j == "" || len(j) > 3071 || strings.ContainsAny(j, "/ \t\r\n") {
		return malformed("bare JID %q", j)
	}
	if !utf8.ValidString(j) {
		return malformed("bare JID %q is not UTF-8", j)
	}
	for _, c := range j {
		// Control characters, and what XML 1.0 cannot carry (so every
		// form of a bundle names the same JID).
		if c < 0x20 || c == 0x7f || c > 0xd7ff && c < 0xe000 || c == 0xfffe || c == 0xffff {
			return malformed("bare JID %q", j)
		}
	}
	if i := strings.IndexByte(j, '@'); i == 0 || i == len(j)-1 || strings.Count(j, "@") > 1 {
		return malformed("bare JID %q", j)
	}
	return nil
}

// ---- XML form ----

type xmlPrekey struct {
	ID      string `xml:"id,attr"`
	KEM     string `xml:"kem,attr"`
	Expires string `xml:"expires,attr"`
	Sig     string `xml:"sig,attr"`
	Public  string `xml:",chardata"`
}

type xmlAttestation struct {
	Type string `xml:"type,attr"`
	Data string `xml:",chardata"`
}

type xmlBundle struct {
	XMLName      xml.Name         `xml:"urn:x-securejingle:1 bundle"`
	JID          string           `xml:"jid,attr"`
	Device       string           `xml:"device,attr"`
	Identity     string           `xml:"ik,attr"`
	Account      string           `xml:"ak,attr"`
	CertIssued   string           `xml:"ci,attr"`
	CertExpires  string           `xml:"ce,attr"`
	CertSig      string           `xml:"cs,attr"`
	Issued       string           `xml:"issued,attr"`
	Suites       string           `xml:"suites,attr"`
	Sig          string           `xml:"sig,attr"`
	Prekeys      []xmlPrekey      `xml:"prekey"`
	Attestations []xmlAttestation `xml:"attestation"`
	List         *xmlDeviceList   `xml:"devices"`
}

// MarshalXML encodes the bundle as its <bundle/> element.
func (bu *Bundle) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	x := xmlBundle{
		JID:         bu.JID,
		Device:      strconv.FormatUint(uint64(bu.Device), 10),
		Identity:    b64.EncodeToString(bu.Identity),
		Account:     b64.EncodeToString(bu.Account),
		CertIssued:  strconv.FormatInt(bu.CertIssued.Unix(), 10),
		CertExpires: strconv.FormatInt(bu.CertExpires.Unix(), 10),
		CertSig:     b64.EncodeToString(bu.CertSignature),
		Issued:      strconv.FormatInt(bu.Issued.Unix(), 10),
		Suites:      formatSuites(bu.Suites),
		Sig:         b64.EncodeToString(bu.Signature),
	}
	if bu.List != nil {
		x.List = &xmlDeviceList{Data: b64.EncodeToString(bu.List.Marshal())}
	}
	for _, p := range bu.Prekeys {
		x.Prekeys = append(x.Prekeys, xmlPrekey{strconv.FormatUint(uint64(p.ID), 10), strconv.FormatUint(uint64(p.KEM), 10),
			strconv.FormatInt(p.Expires.Unix(), 10), b64.EncodeToString(p.Signature), b64.EncodeToString(p.Public)})
	}
	for _, a := range bu.Attestations {
		x.Attestations = append(x.Attestations, xmlAttestation{a.Type, b64.EncodeToString(a.Data)})
	}
	return e.Encode(x)
}

var bundleShape = &shape{
	attrs: []string{"jid", "device", "ik", "ak", "ci", "ce", "cs", "issued", "suites", "sig"},
	children: map[string]childShape{
		"prekey":      {&shape{attrs: []string{"id", "kem", "expires", "sig"}, text: true}, maxPrekeys},
		"attestation": {&shape{attrs: []string{"type"}, text: true}, maxAttestations},
		"devices":     {deviceListShape, 1},
	},
}

// MarshalBundleXML returns the <bundle/> element bytes.
func MarshalBundleXML(bu *Bundle) ([]byte, error) { return xml.Marshal(bu) }

// ParseBundleXML parses a <bundle xmlns='urn:x-securejingle:1'/> element
// strictly. It does not verify signatures.
func ParseBundleXML(data []byte) (*Bundle, error) {
	var x xmlBundle
	if err := strictUnmarshal(data, &x, bundleShape); err != nil {
		return nil, err
	}
	dev, err := parseDecimal(x.Device, 32, "device")
	if err != nil {
		return nil, err
	}
	bu := &Bundle{JID: x.JID, Device: uint32(dev)}
	issued, err := parseDecimal(x.Issued, 63, "issued")
	if err != nil {
		return nil, err
	}
	bu.Issued = time.Unix(int64(issued), 0).UTC()
	if bu.Identity, err = decodeFixed(x.Identity, ed25519.PublicKeySize, "ik"); err != nil {
		return nil, err
	}
	if bu.Account, err = decodeFixed(x.Account, ed25519.PublicKeySize, "ak"); err != nil {
		return nil, err
	}
	ci, err := parseDecimal(x.CertIssued, 63, "ci")
	if err != nil {
		return nil, err
	}
	ce, err := parseDecimal(x.CertExpires, 63, "ce")
	if err != nil {
		return nil, err
	}
	bu.CertIssued, bu.CertExpires = time.Unix(int64(ci), 0).UTC(), time.Unix(int64(ce), 0).UTC()
	if bu.CertSignature, err = decodeFixed(x.CertSig, identity.SignatureSize, "cs"); err != nil {
		return nil, err
	}
	if x.List != nil {
		raw, err := decodeB64(x.List.Data, "device list")
		if err != nil {
			return nil, err
		}
		if len(raw) > maxDeviceListSize {
			return nil, malformed("device list of %d bytes", len(raw))
		}
		if bu.List, err = ParseDeviceList(raw); err != nil {
			return nil, err
		}
	}
	if bu.Suites, err = parseSuites(x.Suites); err != nil {
		return nil, err
	}
	if bu.Signature, err = decodeFixed(x.Sig, identity.SignatureSize, "sig"); err != nil {
		return nil, err
	}
	for _, xp := range x.Prekeys {
		id, err := parseDecimal(xp.ID, 32, "prekey id")
		if err != nil {
			return nil, err
		}
		kem, err := parseDecimal(xp.KEM, 16, "prekey kem")
		if err != nil {
			return nil, err
		}
		exp, err := parseDecimal(xp.Expires, 63, "prekey expiry")
		if err != nil || exp == 0 {
			return nil, malformed("prekey expiry")
		}
		p := Prekey{ID: uint32(id), KEM: uint16(kem), Expires: time.Unix(int64(exp), 0).UTC()}
		if p.Signature, err = decodeFixed(xp.Sig, identity.SignatureSize, "prekey sig"); err != nil {
			return nil, err
		}
		if p.Public, err = decodeB64(xp.Public, "prekey"); err != nil {
			return nil, err
		}
		bu.Prekeys = append(bu.Prekeys, p)
	}
	for _, xa := range x.Attestations {
		a := Attestation{Type: xa.Type}
		if a.Data, err = decodeB64(xa.Data, "attestation"); err != nil {
			return nil, err
		}
		bu.Attestations = append(bu.Attestations, a)
	}
	if err := bu.check(); err != nil {
		return nil, err
	}
	return bu, nil
}

func formatSuites(l []SuiteID) string {
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = strconv.Itoa(int(s))
	}
	return strings.Join(parts, " ")
}

func parseSuites(s string) ([]SuiteID, error) {
	f := strings.Split(s, " ")
	if len(f) > maxSuites {
		return nil, malformed("suite list")
	}
	l := make([]SuiteID, 0, len(f))
	for _, p := range f {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil || strconv.FormatUint(v, 10) != p {
			return nil, malformed("suite %q", p)
		}
		l = append(l, SuiteID(v))
	}
	return l, validSuiteList(l)
}

func decodeB64(s, what string) ([]byte, error) {
	// The decoder skips CR and LF even in strict mode; the protocol has
	// exactly one encoding of each value, without line breaks.
	if strings.ContainsAny(s, "\r\n") {
		return nil, malformed("line break in base64 in %s", what)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, malformed("base64 in %s", what)
	}
	return b, nil
}

func decodeFixed(s string, n int, what string) ([]byte, error) {
	b, err := decodeB64(s, what)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, malformed("%s length %d, want %d", what, len(b), n)
	}
	return b, nil
}
