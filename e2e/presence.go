package e2e

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/xml"
	"fmt"
	"strconv"

	"github.com/securejingle/securejingle/e2e/identity"
)

// A PresenceElement is the compact element a device adds to every presence
// it sends: it says the device supports securejingle, gives its device id,
// its identity key and the hash of its current bundle, and binds them to the
// owner's bare JID with a self-signature. It stays under 250 bytes.
//
//	<e2e xmlns='urn:x-securejingle:1' d='3735928559' k='…' h='…' s='…'/>
type PresenceElement struct {
	Device     uint32
	Identity   ed25519.PublicKey
	BundleHash [32]byte
	Signature  []byte // namespace identity.NamespacePresence
}

func presenceSigned(jid string, device uint32, ik ed25519.PublicKey, h [32]byte) []byte {
	var b builder
	b.raw([]byte(labelPresence))
	b.str16(jid)
	b.u32(device)
	b.raw(ik)
	b.raw(h[:])
	return b
}

// NewPresenceElement signs a presence element for bundle bu.
func NewPresenceElement(signer identity.Signer, bu *Bundle) (*PresenceElement, error) {
	p := &PresenceElement{Device: bu.Device, Identity: bu.Identity, BundleHash: bu.Hash()}
	sig, err := signer.Sign(identity.NamespacePresence, presenceSigned(bu.JID, p.Device, p.Identity, p.BundleHash))
	if err != nil {
		return nil, fmt.Errorf("e2e: signing presence: %w", err)
	}
	p.Signature = sig
	return p, nil
}

// Verify checks the self-signature for the bare JID the presence came from.
func (p *PresenceElement) Verify(from string) error {
	if err := checkBareJID(from); err != nil {
		return err
	}
	if identity.Verify(p.Identity, identity.NamespacePresence, presenceSigned(from, p.Device, p.Identity, p.BundleHash), p.Signature) != nil {
		return fmt.Errorf("%w: bad presence signature", ErrBadBundle)
	}
	return nil
}

// Matches reports whether bu is the bundle this presence points at: same
// device, same identity key, same hash.
func (p *PresenceElement) Matches(bu *Bundle) bool {
	h := bu.Hash()
	return bu.Device == p.Device &&
		subtle.ConstantTimeCompare(bu.Identity, p.Identity) == 1 &&
		subtle.ConstantTimeCompare(h[:], p.BundleHash[:]) == 1
}

type xmlPresence struct {
	XMLName xml.Name `xml:"urn:x-securejingle:1 e2e"`
	Device  string   `xml:"d,attr"`
	Key     string   `xml:"k,attr"`
	Hash    string   `xml:"h,attr"`
	Sig     string   `xml:"s,attr"`
}

// MarshalXML encodes the element.
func (p *PresenceElement) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return e.Encode(xmlPresence{
		Device: strconv.FormatUint(uint64(p.Device), 10),
		Key:    b64.EncodeToString(p.Identity),
		Hash:   b64.EncodeToString(p.BundleHash[:]),
		Sig:    b64.EncodeToString(p.Signature),
	})
}

var presenceShape = &shape{attrs: []string{"d", "k", "h", "s"}}

// ParsePresenceElement parses an <e2e/> element strictly; it does not verify
// the signature.
func ParsePresenceElement(data []byte) (*PresenceElement, error) {
	var x xmlPresence
	if err := strictUnmarshal(data, &x, presenceShape); err != nil {
		return nil, err
	}
	dev, err := parseDecimal(x.Device, 32, "device")
	if err != nil || dev == 0 {
		return nil, malformed("presence device %q", x.Device)
	}
	p := &PresenceElement{Device: uint32(dev)}
	if p.Identity, err = decodeFixed(x.Key, ed25519.PublicKeySize, "presence key"); err != nil {
		return nil, err
	}
	h, err := decodeFixed(x.Hash, 32, "presence bundle hash")
	if err != nil {
		return nil, err
	}
	copy(p.BundleHash[:], h)
	if p.Signature, err = decodeFixed(x.Sig, identity.SignatureSize, "presence signature"); err != nil {
		return nil, err
	}
	return p, nil
}
