package filexfer

// The typed XML elements of file transfer (this file and elements_*.go):
// XEP-0234 file-transfer:5 descriptions, checksum and received
// session-info payloads, XEP-0300 hashes, the XEP-0391 JET security
// element with securejingle's key, and the XEP-0260 (SOCKS5), XEP-0261
// (IBB) and XEP-0343 (WebRTC data channel) transports. They are read from
// and written to the [jingle.Raw] values that jingle.Content.Other and
// jingle.Jingle.Info carry, with the strict reader and canonical writer
// of package jingle ([jingle.Raw.Children], [jingle.NewRaw]); the jingle
// rules for Raw apply to what they write.

import (
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/securejingle/securejingle/jingle"
)

// Namespaces and URIs (specification constants).
const (
	NSFileTransfer       = "urn:xmpp:jingle:apps:file-transfer:5"        // XEP-0234 v0.19
	NSFileTransferErrors = "urn:xmpp:jingle:apps:file-transfer:errors:0" // XEP-0234 §9 (reason payloads)
	NSHashes             = "urn:xmpp:hashes:2"                           // XEP-0300
	NSJET                = "urn:xmpp:jingle:jet:0"                       // XEP-0391
	NSS5B                = "urn:xmpp:jingle:transports:s5b:1"            // XEP-0260
	NSIBB                = "urn:xmpp:jingle:transports:ibb:1"            // XEP-0261
	NSDataChannel        = jingle.NSDataChan                             // XEP-0343 (webrtc-datachannel:1)

	// SecurityType is the JET envelope type of securejingle: the
	// transfer key travels in clear inside the <security/> element, which
	// itself only ever travels inside the end-to-end protected Jingle
	// stanza (docs/protocol.md, file transfer).
	SecurityType = "urn:x-securejingle:1"
	// NSFileKey is the namespace of the <key/> child of a <security/>
	// element of type [SecurityType].
	NSFileKey = "urn:x-securejingle:1:file"

	// CipherAES256GCM and CipherChaCha20Poly1305 are the stream suites of
	// securejingle, named in the cipher attribute of the security element.
	// AES-256-GCM is the default and preferred one.
	CipherAES256GCM        = "urn:x-securejingle:1:file:aes-256-gcm"
	CipherChaCha20Poly1305 = "urn:x-securejingle:1:file:chacha20-poly1305"

	// OMEMOEnvelope is the JET type Conversations uses (its legacy OMEMO
	// namespace): the key is OMEMO-encrypted, which securejingle cannot
	// and does not open.
	OMEMOEnvelope = "eu.siacs.conversations.axolotl"
)

// Implementation limits: every length and count a peer controls is
// bounded at parse time.
const (
	MaxFileNameLen   = 1024                 // bytes of <name/> (kept verbatim; sanitizing is the receiver's)
	MaxFileDescLen   = 4096                 // bytes of <desc/>
	MaxMediaTypeLen  = 255                  // bytes of <media-type/> (RFC 6838 §4.2: 127 + "/" + 127)
	MaxDateLen       = 64                   // bytes of <date/>
	MaxOfferedSize   = 1<<63 - 1            // <size/>, <range offset length/>: what fits a file offset (int64)
	MaxHashes        = 8                    // <hash/> or <hash-used/> elements per file, range or checksum
	MaxHashLen       = 128                  // decoded bytes of a hash of an algorithm this package does not know
	MaxAlgoLen       = 32                   // bytes of an algo name
	MaxS5BCandidates = 32                   // <candidate/> per s5b transport
	MaxSIDLen        = jingle.MaxIDLen      // transport sid, cid, content names
	MaxJIDLen        = 1024                 // the jid attribute of a SOCKS5 candidate
	MaxHostLen       = 253                  // a DNS name (RFC 1035 §2.3.4) or an IP literal
	MaxExtensions    = jingle.MaxExtensions // elements of other namespaces kept verbatim, per element
	MaxURILen        = 256                  // cipher and type URIs of a security element

	// SecurityKeyLen is the length of the transfer key in our <key/>.
	SecurityKeyLen = 32
	// SecurityMinChunkSize and SecurityMaxChunkSize bound the chunk-size
	// attribute of our <key/> (plaintext bytes per chunk);
	// SecurityDefaultChunkSize applies when it is absent.
	SecurityMinChunkSize     = 1 << 10
	SecurityMaxChunkSize     = 1 << 22
	SecurityDefaultChunkSize = 64 << 10

	// IBBMaxBlockSize is the largest block-size XEP-0261/XEP-0047 allow (a
	// 16-bit value); IBBMinPreferredBlockSize is the smallest securejingle
	// offers or accepts without a transport-replace (smaller blocks make
	// the stanza overhead dominate). Parsing accepts 1..IBBMaxBlockSize.
	IBBMaxBlockSize          = 65535
	IBBMinPreferredBlockSize = 4096
)

// ErrMalformedElement is matched (with errors.Is) by every error the
// element parsers of this package return for input that is not a
// well-formed, bounded element of the expected shape, and by the errors of
// the Raw methods for values that would not serialize to one. A Jingle
// responder answers such a request with bad-request (XEP-0166 §6.3.2).
var ErrMalformedElement = errors.New("filexfer: malformed element")

// ElementError says which part of an element was rejected and why. It
// matches [ErrMalformedElement] with errors.Is, and the cause from package
// jingle (a *jingle.ParseError or *jingle.MarshalError), if any, with
// errors.As. It is an immutable value once returned.
type ElementError struct {
	// Field locates the rejected part as a slash-separated element path,
	// with "@name" for an attribute, e.g. "description/file/size" or
	// "transport/candidate@port".
	Field string
	// Reason is a short human-readable explanation.
	Reason string
	// Err is the underlying error from package jingle, or nil.
	Err error
}

// Error returns "filexfer: malformed element: <field>: <reason>".
func (e *ElementError) Error() string {
	return fmt.Sprintf("filexfer: malformed element: %s: %s", e.Field, e.Reason)
}

// Unwrap returns [ErrMalformedElement] and the cause, if any.
func (e *ElementError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrMalformedElement, e.Err}
	}
	return []error{ErrMalformedElement}
}

// reader carries the first error of one parse; every method is a no-op
// once it is set.
type reader struct {
	err *ElementError
}

func (p *reader) fail(field, reason string) {
	if p.err == nil {
		p.err = &ElementError{Field: field, Reason: reason}
	}
}

func (p *reader) failErr(field string, err error) {
	if p.err == nil {
		var pe *jingle.ParseError
		reason := err.Error()
		if errors.As(err, &pe) {
			reason = pe.Field + ": " + pe.Reason
		}
		p.err = &ElementError{Field: field, Reason: reason, Err: err}
	}
}

// elt is one element being read: its attributes (tracked so that an
// unknown one is reported), children and direct character data.
type elt struct {
	p    *reader
	r    jingle.Raw
	path string
	kids []jingle.Raw
	text string
	used []bool
}

// open reads the content of r for parsing at path.
func (p *reader) open(r jingle.Raw, path string) *elt {
	e := &elt{p: p, r: r, path: path, used: make([]bool, len(r.Attrs))}
	if p.err != nil {
		return e
	}
	kids, text, err := r.Children()
	if err != nil {
		p.failErr(path, err)
		return e
	}
	e.kids, e.text = kids, text
	return e
}

func (e *elt) field(attr string) string { return e.path + "@" + attr }

func (e *elt) kidPath(k jingle.Raw) string { return e.path + "/" + k.XMLName.Local }

func (e *elt) get(local string) (string, bool) {
	for i, a := range e.r.Attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			e.used[i] = true
			return a.Value, true
		}
	}
	return "", false
}

// str reads a string attribute of at most max bytes; a present attribute
// must not be empty.
func (e *elt) str(local string, required bool, max int) string {
	v, ok := e.get(local)
	if !ok {
		if required {
			e.p.fail(e.field(local), "required attribute missing")
		}
		return ""
	}
	if v == "" {
		e.p.fail(e.field(local), "empty value")
		return ""
	}
	if len(v) > max {
		e.p.fail(e.field(local), "longer than "+strconv.Itoa(max)+" bytes")
		return ""
	}
	return v
}

// token reads an attribute that must not contain whitespace or control
// characters.
func (e *elt) token(local string, required bool, max int) string {
	v := e.str(local, required, max)
	if v != "" && !isToken(v) {
		e.p.fail(e.field(local), "contains whitespace or control characters")
		return ""
	}
	return v
}

// uint reads a canonical decimal attribute in [min, max].
func (e *elt) uint(local string, required bool, min, max uint64) (uint64, bool) {
	v, ok := e.get(local)
	if !ok {
		if required {
			e.p.fail(e.field(local), "required attribute missing")
		}
		return 0, false
	}
	n, err := decimal(v, min, max)
	if err != "" {
		e.p.fail(e.field(local), err)
		return 0, false
	}
	return n, true
}

func (e *elt) enum(local string, required bool, allowed ...string) string {
	v, ok := e.get(local)
	if !ok {
		if required {
			e.p.fail(e.field(local), "required attribute missing")
		}
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.p.fail(e.field(local), "unknown value "+strconv.Quote(truncate(v)))
	return ""
}

// done reports the first attribute nobody consumed.
func (e *elt) done() {
	for i, u := range e.used {
		if !u {
			a := e.r.Attrs[i]
			name := a.Name.Local
			if a.Name.Space != "" {
				name = "{" + a.Name.Space + "}" + name
			}
			e.p.fail(e.field(name), "unknown attribute")
			return
		}
	}
}

// noText refuses character data other than whitespace.
func (e *elt) noText() {
	if strings.TrimSpace(e.text) != "" {
		e.p.fail(e.path, "unexpected text")
	}
}

// leaf refuses any content; the caller has consumed the attributes.
func (e *elt) leaf() {
	e.noText()
	if len(e.kids) > 0 {
		e.p.fail(e.kidPath(e.kids[0]), "unexpected child element")
	}
	e.done()
}

// textLeaf returns the character data of an element that may have no
// attributes and no children, of at most max bytes.
func (e *elt) textLeaf(max int) string {
	if len(e.kids) > 0 {
		e.p.fail(e.kidPath(e.kids[0]), "unexpected child element")
	}
	e.done()
	if len(e.text) > max {
		e.p.fail(e.path, "longer than "+strconv.Itoa(max)+" bytes")
		return ""
	}
	return e.text
}

func (e *elt) count(k jingle.Raw, n *int, max int) bool {
	*n++
	if *n > max {
		e.p.fail(e.kidPath(k), "more than "+strconv.Itoa(max)+" elements")
		return false
	}
	return true
}

func (e *elt) once(k jingle.Raw, seen *bool) bool {
	if *seen {
		e.p.fail(e.kidPath(k), "duplicate element")
		return false
	}
	*seen = true
	return true
}

func (e *elt) unknown(k jingle.Raw) {
	e.p.fail(e.kidPath(k), "unknown element "+fmtName(k.XMLName))
}

// ownNamespaces are the namespaces this package reads. Inside an element
// of another namespace kept verbatim they are refused, so that a key, a
// hash or a candidate can never ride along unparsed where code reading the
// typed fields would not look.
var ownNamespaces = map[string]bool{
	NSFileTransfer: true, NSHashes: true, NSJET: true, NSFileKey: true,
	NSS5B: true, NSIBB: true, NSDataChannel: true,
}

// foreign keeps k, a child of another namespace, verbatim in dst (at most
// MaxExtensions), after checking that nothing inside it is of a namespace
// this package reads.
func (e *elt) foreign(k jingle.Raw, n *int, dst *[]jingle.Raw) {
	if ownNamespaces[k.XMLName.Space] {
		e.unknown(k)
		return
	}
	if !e.count(k, n, MaxExtensions) {
		return
	}
	e.p.noOwn(k, e.kidPath(k), 0)
	if e.p.err == nil {
		*dst = append(*dst, k)
	}
}

func (p *reader) noOwn(r jingle.Raw, path string, depth int) {
	if depth > 2*jingle.MaxDepth {
		p.fail(path, "nested too deeply")
		return
	}
	kids, _, err := r.Children()
	if err != nil {
		p.failErr(path, err)
		return
	}
	for _, k := range kids {
		kp := path + "/" + k.XMLName.Local
		if ownNamespaces[k.XMLName.Space] {
			p.fail(kp, "element "+fmtName(k.XMLName)+" is not allowed inside an element of another namespace")
			return
		}
		p.noOwn(k, kp, depth+1)
		if p.err != nil {
			return
		}
	}
}

// decimal parses a canonical decimal (digits only, no sign, no leading
// zero except "0") in [min, max]; it returns a reason on failure.
func decimal(s string, min, max uint64) (uint64, string) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, "not a canonical decimal number"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, "not a canonical decimal number"
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, "out of range [" + strconv.FormatUint(min, 10) + ", " + strconv.FormatUint(max, 10) + "]"
	}
	if n < min || n > max {
		return 0, "out of range [" + strconv.FormatUint(min, 10) + ", " + strconv.FormatUint(max, 10) + "]"
	}
	return n, ""
}

func isToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func fmtName(n xml.Name) string { return "{" + n.Space + "}" + n.Local }

func name(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

func is(r jingle.Raw, space, local string) bool {
	return r.XMLName.Space == space && r.XMLName.Local == local
}

// attrs builds an attribute list from name/value pairs, leaving out empty
// values.
func attrs(kv ...string) []xml.Attr {
	var as []xml.Attr
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			as = append(as, xml.Attr{Name: xml.Name{Local: kv[i]}, Value: kv[i+1]})
		}
	}
	return as
}

// build is jingle.NewRaw with the error as an *ElementError.
func build(field string, n xml.Name, as []xml.Attr, text string, kids ...jingle.Raw) (jingle.Raw, error) {
	r, err := jingle.NewRaw(n, as, text, kids...)
	if err != nil {
		return jingle.Raw{}, &ElementError{Field: field, Reason: "cannot serialize", Err: err}
	}
	return r, nil
}

// textEl builds <local xmlns=space>text</local>.
func textEl(space, local, text string) (jingle.Raw, error) {
	return build(local, name(space, local), nil, text)
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// sameValue compares a value as it was serialized (want) with the value
// parsed back (got), identifying what the serialization does not
// distinguish: nil and empty slices, instants written in another zone
// spelling, and the spelling of the inner XML of a Raw.
func sameValue(want, got reflect.Value) bool {
	switch want.Kind() {
	case reflect.Pointer:
		if want.IsNil() || got.IsNil() {
			return want.IsNil() == got.IsNil()
		}
		return sameValue(want.Elem(), got.Elem())
	case reflect.Slice:
		if want.Len() != got.Len() {
			return false
		}
		for i := range want.Len() {
			if !sameValue(want.Index(i), got.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		switch want.Type() {
		case rawType:
			return want.Interface().(jingle.Raw).Equal(got.Interface().(jingle.Raw))
		case timeType:
			w, g := want.Interface().(time.Time), got.Interface().(time.Time)
			return w.Equal(g)
		}
		for i := range want.NumField() {
			if !want.Type().Field(i).IsExported() {
				continue
			}
			if !sameValue(want.Field(i), got.Field(i)) {
				return false
			}
		}
		return true
	default:
		return want.Equal(got)
	}
}

var (
	rawType  = reflect.TypeFor[jingle.Raw]()
	timeType = reflect.TypeFor[time.Time]()
)

// checked parses r, which was built from v, back with parse and checks
// that it gives v again: the Raw methods never return what the parsers
// would refuse or read as something else.
func checked[T any](field string, v *T, r jingle.Raw, parse func(jingle.Raw) (*T, bool, error)) (jingle.Raw, error) {
	back, ok, err := parse(r)
	if err != nil {
		var ee *ElementError
		if errors.As(err, &ee) {
			return jingle.Raw{}, &ElementError{Field: ee.Field, Reason: "the value does not serialize to a valid element: " + ee.Reason, Err: ee.Err}
		}
		return jingle.Raw{}, &ElementError{Field: field, Reason: "the value does not serialize to a valid element", Err: err}
	}
	if !ok || !sameValue(reflect.ValueOf(v).Elem(), reflect.ValueOf(back).Elem()) {
		return jingle.Raw{}, &ElementError{Field: field, Reason: "the value does not survive serialization: parsing the output gives a different value " +
			"(a field the element cannot carry, or a Raw in a namespace this package reads)"}
	}
	return r, nil
}
