package filexfer

// Classification of file-transfer signaling for policy (docs/protocol.md,
// file transfer, policy classes): is the file protected by securejingle's
// stream encryption with a key that the engine delivered, or does it
// travel in a form the server (or whoever holds a foreign key) can read?

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// Class is the protection class of a file-transfer content. The zero
// value is unclassified.
type Class uint8

// File classes.
const (
	// ClassOurs: our security element with our key (type
	// urn:x-securejingle:1, a securejingle suite), delivered inside the
	// engine's end-to-end envelope from a certified device. Our stream
	// encryption runs on whatever transport carries the bytes. Policy
	// sees it as protection e2e-bound.
	ClassOurs Class = iota + 1
	// ClassCleartext: anything else: plain IBB or SOCKS5, a data channel
	// without our key (DTLS alone), JET with a key in a foreign envelope
	// (OMEMO: not delivered through the engine), Conversations' pre-JET
	// OMEMO key in the file element, or any file signaling that arrived
	// outside the envelope (the server saw it, our key included). Policy
	// sees it as protection cleartext.
	ClassCleartext
)

var classNames = []string{"unclassified", "ours", "cleartext"}

// String returns "ours", "cleartext" or "unclassified".
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Protection returns the policy protection of the class: e2e-bound for
// ClassOurs, cleartext for ClassCleartext, unspecified otherwise (which
// the default policy flags).
func (c Class) Protection() policy.Protection {
	switch c {
	case ClassOurs:
		return policy.ProtectionE2EBound
	case ClassCleartext:
		return policy.ProtectionCleartext
	}
	return 0
}

// Cause says why a content is cleartext. The zero value, CauseNone, goes
// with ClassOurs.
type Cause uint8

// Causes of ClassCleartext.
const (
	CauseNone Cause = iota
	// CauseUnprotected: the Jingle element arrived outside the engine's
	// end-to-end envelope.
	CauseUnprotected
	// CauseUncertified: inside an envelope, but from a device the peer's
	// account key does not certify.
	CauseUncertified
	// CauseNoSecurity: no security element: the transport (IBB, SOCKS5,
	// a data channel) carries the file's bytes as they are.
	CauseNoSecurity
	// CauseForeignEnvelope: a JET security element of another type (OMEMO):
	// the key was not delivered through the engine.
	CauseForeignEnvelope
	// CauseLegacyOMEMO: no JET, but Conversations' older OMEMO-encrypted
	// key inside the <file/> element.
	CauseLegacyOMEMO
	// CauseSessionCleartext: a transport-replace, accept or other update
	// of a content whose offer was not ours.
	CauseSessionCleartext
	// CauseSecurityChanged: an update carries a security element other
	// than the one the session was set up with.
	CauseSecurityChanged
)

var causeNames = []string{"none", "unprotected", "uncertified", "no-security", "foreign-envelope",
	"legacy-omemo", "session-cleartext", "security-changed"}

// String returns the cause as a short name such as "foreign-envelope".
func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// Arrival says how a Jingle element reached the engine. The zero value is
// an element that arrived in clear. It is a plain value.
type Arrival struct {
	// Protected is set when the element arrived inside the engine's
	// end-to-end envelope.
	Protected bool
	// Certified is set when the sending device is certified by the
	// peer's account key.
	Certified bool
}

// Signaling returns the policy signaling value of the arrival.
func (a Arrival) Signaling() policy.Signaling {
	if a.Protected {
		return policy.SignalingProtected
	}
	return policy.SignalingUnprotected
}

// ContentClass is the classification of one file-transfer content; the
// zero value is unclassified. It is a plain value.
type ContentClass struct {
	Creator   jingle.Creator
	Name      string
	Request   bool          // the content asks for a file (XEP-0234 §6.2)
	Transport TransportKind // "" when the element carries none
	Class     Class
	Cause     Cause
	// Suite is our stream suite for ClassOurs ("" otherwise).
	Suite string
	// Why explains the class in a sentence for the alert's detail.
	Why string
}

// OfferClass is the classification of a Jingle element with file-transfer
// contents: every content, and the worst class among them. The zero value
// is unclassified (protection unspecified, which the default policy
// flags). It is a plain value: safe for concurrent reads.
type OfferClass struct {
	Contents  []ContentClass
	Class     Class // ClassCleartext when any content is
	Signaling policy.Signaling
	Why       string // the first cleartext content's reason, or a summary
}

// Protection returns the policy protection of the element.
func (o OfferClass) Protection() policy.Protection { return o.Class.Protection() }

// Apply sets the kind (file-transfer), protection and signaling of f from
// o; the gateway fills in the peer.
func (o OfferClass) Apply(f *policy.Facts) {
	f.Kind, f.Protection, f.Signaling = policy.KindFileTransfer, o.Protection(), o.Signaling
}

// ErrNoFileContent is returned when an element given to [ClassifyOffer]
// has no file-transfer content.
var ErrNoFileContent = errors.New("filexfer: no file-transfer content")

// ErrUnknownContent is returned by [ClassifyUpdate] for a content the
// session does not have.
var ErrUnknownContent = errors.New("filexfer: unknown content")

// ClassifyContent classifies an offered or requested content (of a
// session-initiate or content-add) that arrived as a says. The content
// must carry a XEP-0234 description; its error matches
// [ErrMalformedElement] for malformed elements and [ErrNoFileContent] for
// a content that is not a file transfer.
//
// In a request the requester supplies the key, as in XEP-0391's example
// of an encrypted request; in an offer the sender does.
func ClassifyContent(c *jingle.Content, a Arrival) (ContentClass, error) {
	fc, err := ParseContent(c)
	if err != nil {
		return ContentClass{}, err
	}
	if fc.Description == nil {
		return ContentClass{}, fmt.Errorf("%w: content %q has no file-transfer:5 description", ErrNoFileContent, truncate(c.Name))
	}
	cc := ContentClass{Creator: fc.Creator, Name: fc.Name, Request: fc.Request, Transport: fc.Transport}
	cc.Class, cc.Cause, cc.Suite, cc.Why = classifySecurity(fc, a)
	return cc, nil
}

// classifySecurity decides the class of a content from its security
// element and how it arrived.
func classifySecurity(fc *FileContent, a Arrival) (Class, Cause, string, string) {
	s := fc.Security
	switch {
	case !a.Protected:
		why := "the file signaling arrived outside the end-to-end envelope, through the server"
		if s != nil && s.Ours() {
			why += ", with securejingle's key in clear"
		}
		return ClassCleartext, CauseUnprotected, "", why
	case !a.Certified:
		return ClassCleartext, CauseUncertified, "", "the file signaling came from a device the contact's account key does not certify"
	case s == nil:
		if legacyOMEMO(fc.Description) {
			return ClassCleartext, CauseLegacyOMEMO, "", "the file key is OMEMO-encrypted in the file element (Conversations before JET), not delivered through securejingle"
		}
		return ClassCleartext, CauseNoSecurity, "", "no securejingle key: " + plainTransport(fc.Transport)
	case !s.Ours():
		return ClassCleartext, CauseForeignEnvelope, "", "JET with a key in a foreign envelope (type " + truncate(s.Type) + envelopeName(s.Type) + "), not delivered through securejingle"
	}
	return ClassOurs, CauseNone, s.Suite(), "securejingle stream encryption (" + s.Suite() + ") with the key inside the end-to-end envelope"
}

func legacyOMEMO(d *Description) bool {
	if d == nil {
		return false
	}
	for _, r := range d.File.Other {
		if r.XMLName.Space == OMEMOEnvelope || r.XMLName.Local == "encrypted" {
			return true
		}
	}
	return false
}

func envelopeName(typ string) string {
	if normalizeURI(typ) == OMEMOEnvelope {
		return ", OMEMO"
	}
	return ""
}

func plainTransport(t TransportKind) string {
	switch t {
	case TransportIBB:
		return "plain in-band bytestream (IBB), readable by the servers"
	case TransportS5B:
		return "plain SOCKS5 bytestream, readable by any proxy and on the network"
	case TransportDataChannel:
		return "a data channel protected only by DTLS, not by securejingle's stream encryption"
	case "":
		return "no transport"
	}
	return "an unknown transport without securejingle's stream encryption"
}

// ClassifyOffer classifies every file-transfer content of a
// session-initiate or content-add (contents of other applications, such
// as RTP, are left to their own classification). The element's class is
// the worst of its contents'. The error matches [ErrMalformedElement] or
// [ErrNoFileContent].
func ClassifyOffer(j *jingle.Jingle, a Arrival) (OfferClass, error) {
	o := OfferClass{Signaling: a.Signaling()}
	for i := range j.Contents {
		c := &j.Contents[i]
		cc, err := ClassifyContent(c, a)
		if errors.Is(err, ErrNoFileContent) {
			continue
		}
		if err != nil {
			return OfferClass{}, err
		}
		o.add(cc)
	}
	if len(o.Contents) == 0 {
		return OfferClass{}, fmt.Errorf("%w in %s", ErrNoFileContent, j.Action)
	}
	return o, nil
}

func (o *OfferClass) add(cc ContentClass) {
	o.Contents = append(o.Contents, cc)
	switch {
	case cc.Class == ClassCleartext && o.Class != ClassCleartext:
		o.Class, o.Why = ClassCleartext, "content "+cc.Name+": "+cc.Why
	case o.Class == 0:
		o.Class, o.Why = cc.Class, cc.Why
	}
}

// ClassifyUpdate classifies the contents of an element that changes a
// file-transfer session already set up (session-accept, content-accept,
// transport-replace, transport-accept, transport-info): established
// returns the security element the content's offer carried (nil when it
// had none), and false for a content the session does not have
// ([ErrUnknownContent]). A content stays ClassOurs when its offer was ours,
// the update arrived protected from a certified device, and it carries
// either no security element or the very same one (same suite and key,
// compared in constant time); a transport-replace to IBB or SOCKS5 of
// such a content is therefore ours: the stream encryption runs on every
// transport.
func ClassifyUpdate(j *jingle.Jingle, a Arrival, established func(creator jingle.Creator, name string) (*Security, bool)) (OfferClass, error) {
	o := OfferClass{Signaling: a.Signaling()}
	for i := range j.Contents {
		c := &j.Contents[i]
		fc, err := ParseContent(c)
		if err != nil {
			return OfferClass{}, err
		}
		if fc.ForeignDescription {
			continue
		}
		prior, ok := established(c.Creator, c.Name)
		if !ok {
			return OfferClass{}, fmt.Errorf("%w: %s %q", ErrUnknownContent, c.Creator, truncate(c.Name))
		}
		cc := ContentClass{Creator: fc.Creator, Name: fc.Name, Request: fc.Request, Transport: fc.Transport}
		switch {
		case prior == nil || !prior.Ours():
			cc.Class, cc.Cause, cc.Why = ClassCleartext, CauseSessionCleartext, "the session was not set up with securejingle's key"
		case fc.Security != nil && !sameSecurity(prior, fc.Security):
			cc.Class, cc.Cause, cc.Why = ClassCleartext, CauseSecurityChanged, "the update carries another security element than the session's offer"
		default:
			sec := fc.Security
			fc.Security = prior
			cc.Class, cc.Cause, cc.Suite, cc.Why = classifySecurity(fc, a)
			fc.Security = sec
		}
		o.add(cc)
	}
	if len(o.Contents) == 0 {
		return OfferClass{}, fmt.Errorf("%w in %s", ErrNoFileContent, j.Action)
	}
	return o, nil
}

// sameSecurity compares two of our security elements: suite, chunk size
// and key (in constant time).
func sameSecurity(a, b *Security) bool {
	if !b.Ours() || a.Suite() != b.Suite() || a.Chunk() != b.Chunk() || len(a.Key) != len(b.Key) {
		return false
	}
	return subtle.ConstantTimeCompare(a.Key, b.Key) == 1
}
