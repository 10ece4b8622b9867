package filexfer

import (
	"encoding/base64"
	"mime"
	"strings"
	"time"

	"github.com/securejingle/securejingle/jingle"
)

// Description is the XEP-0234 <description
// xmlns='urn:xmpp:jingle:apps:file-transfer:5'/> of a content: exactly one
// file (XEP-0234 §5: several files are several contents). Offer and
// request use the same element; the senders of the content tell them
// apart ([FileContent.Request]). Its zero value is not a valid element.
// Like every element type of the package it is a plain value: safe for
// concurrent reads, not for concurrent mutation.
type Description struct {
	File File
	// Other holds children of other namespaces, verbatim.
	Other []jingle.Raw
}

// File is the XEP-0234 <file/> of a description or a checksum. Every field
// is optional; the zero value is an empty <file/>. Like every element type
// of the package it is safe for concurrent reads, not for concurrent
// mutation.
type File struct {
	// Date is the last modification time (<date/>, XEP-0082 DateTime);
	// the zero time means absent.
	Date time.Time
	// Desc is the human-readable description (<desc/>), at most
	// MaxFileDescLen bytes, verbatim.
	Desc string
	// MediaType is the MIME type (<media-type/>), at most MaxMediaTypeLen
	// bytes, verbatim.
	MediaType string
	// MediaTypeCamel records that the media type arrived as <mediaType/>,
	// the spelling Conversations sends; the element is written back the
	// same way.
	MediaTypeCamel bool
	// Name is the file name as the peer wrote it (<name/>), at most
	// MaxFileNameLen bytes. It is kept verbatim, path separators and all:
	// sanitizing it is the receiver's job.
	Name string
	// Size is the size in bytes (<size/>) when HasSize is set, at most
	// MaxOfferedSize.
	Size    uint64
	HasSize bool
	// Range is the XEP-0234 <range/>: its presence in an offer says the
	// sender can send ranges, in a request or a resumed offer it selects
	// the bytes to send.
	Range *Range
	// Hashes are the XEP-0300 <hash/> children, one per algorithm.
	Hashes []Hash
	// HashesUsed are the algorithms of the XEP-0300 <hash-used/> children:
	// the hash will follow in a checksum session-info (XEP-0234 §8.2).
	HashesUsed []string
	// Other holds children of other namespaces verbatim, such as the
	// OMEMO <encrypted/> key that Conversations put here before JET.
	Other []jingle.Raw
}

// Range is the XEP-0234 <range offset length/>; the zero value is an empty
// <range/> (the sender can send ranges).
type Range struct {
	// Offset is the first byte; 0 is the default, and offset='0' reads as
	// an absent offset.
	Offset uint64
	// Length is the number of bytes, 0 meaning "to the end of the file"
	// (the attribute must not be 0 when present).
	Length uint64
	// Hashes of the range's bytes (XEP-0234 §8.2, a checksum for a range).
	Hashes []Hash
}

// Hash is a XEP-0300 <hash xmlns='urn:xmpp:hashes:2' algo/>. The zero
// value is not a valid element.
type Hash struct {
	// Algo is the algorithm name from the IANA Hash Function Textual
	// Names registry (XEP-0300), lower case: sha-256, sha-512, ...
	Algo string
	// Value is the digest, of the algorithm's size for the algorithms
	// this package knows ([DigestSize]); base64 in the element.
	Value []byte
}

// hashSizes are the XEP-0300 algorithms this package knows, with their
// digest sizes.
var hashSizes = map[string]int{
	"md5": 16, "sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64,
	"sha3-224": 28, "sha3-256": 32, "sha3-384": 48, "sha3-512": 64,
	"blake2b-256": 32, "blake2b-512": 64,
}

// acceptableHashes are the algorithms securejingle verifies a received
// file with, strongest first: nothing weaker than sha-256 (docs/protocol.md).
var acceptableHashes = []string{"sha-512", "sha3-512", "blake2b-512", "sha-384", "sha-256", "sha3-256", "blake2b-256"}

// DigestSize returns the digest size of a XEP-0300 algorithm this package
// knows.
func DigestSize(algo string) (int, bool) {
	n, ok := hashSizes[algo]
	return n, ok
}

// Acceptable reports whether h may verify a received file: sha-256 or a
// stronger algorithm of [AcceptableHashAlgos], with a value of its size.
func (h Hash) Acceptable() bool {
	for _, a := range acceptableHashes {
		if h.Algo == a {
			return len(h.Value) == hashSizes[a]
		}
	}
	return false
}

// AcceptableHashAlgos returns the algorithms [Hash.Acceptable] admits,
// strongest first.
func AcceptableHashAlgos() []string { return append([]string(nil), acceptableHashes...) }

// StrongestHash returns the strongest acceptable hash among hs, or false
// when none is (a sha-1-only offer, say: the receiver refuses it).
func StrongestHash(hs []Hash) (Hash, bool) {
	for _, a := range acceptableHashes {
		for _, h := range hs {
			if h.Algo == a && h.Acceptable() {
				return h, true
			}
		}
	}
	return Hash{}, false
}

// Checksum is the XEP-0234 §8.2 <checksum creator name/> session-info
// payload: the hashes of a content's file (or of a range of it), sent by
// the sender after the bytes. Conversations omits creator. The zero value
// is not a valid element.
type Checksum struct {
	Creator jingle.Creator // "" when absent
	Name    string         // the content name (required)
	File    File
}

// Received is the XEP-0234 §8.1 <received creator name/> session-info
// payload: the receiver got the content's file. Conversations omits
// creator. The zero value is not a valid element.
type Received struct {
	Creator jingle.Creator // "" when absent
	Name    string         // the content name (required)
}

// ParseDescription reads a XEP-0234 description from r (an element of
// jingle.Content.Other). It returns false when r is not a file-transfer:5
// description, and an error matching [ErrMalformedElement] when it is one
// but malformed or over the limits.
func ParseDescription(r jingle.Raw) (*Description, bool, error) {
	if !is(r, NSFileTransfer, "description") {
		return nil, false, nil
	}
	p := &reader{}
	d := p.description(r, "description")
	if p.err != nil {
		return nil, true, p.err
	}
	return d, true, nil
}

// ParseChecksum reads a checksum session-info payload (an element of
// jingle.Jingle.Info). It returns false when r is not one.
func ParseChecksum(r jingle.Raw) (*Checksum, bool, error) {
	if !is(r, NSFileTransfer, "checksum") {
		return nil, false, nil
	}
	p := &reader{}
	e := p.open(r, "checksum")
	c := &Checksum{}
	c.Creator = jingle.Creator(e.enum("creator", false, string(jingle.CreatorInitiator), string(jingle.CreatorResponder)))
	c.Name = e.str("name", true, MaxSIDLen)
	e.done()
	e.noText()
	seen := false
	for _, k := range e.kids {
		if !is(k, NSFileTransfer, "file") {
			e.unknown(k)
			break
		}
		if !e.once(k, &seen) {
			break
		}
		if f := p.file(k, e.kidPath(k)); f != nil {
			c.File = *f
		}
	}
	if p.err == nil && !seen {
		p.fail("checksum/file", "required element missing")
	}
	if p.err == nil && len(c.File.Hashes) == 0 && (c.File.Range == nil || len(c.File.Range.Hashes) == 0) {
		p.fail("checksum/file", "a checksum without a hash")
	}
	if p.err != nil {
		return nil, true, p.err
	}
	return c, true, nil
}

// ParseReceived reads a received session-info payload. It returns false
// when r is not one.
func ParseReceived(r jingle.Raw) (*Received, bool, error) {
	if !is(r, NSFileTransfer, "received") {
		return nil, false, nil
	}
	p := &reader{}
	e := p.open(r, "received")
	v := &Received{}
	v.Creator = jingle.Creator(e.enum("creator", false, string(jingle.CreatorInitiator), string(jingle.CreatorResponder)))
	v.Name = e.str("name", true, MaxSIDLen)
	e.leaf()
	if p.err != nil {
		return nil, true, p.err
	}
	return v, true, nil
}

// Raw returns d as an element for jingle.Content.Other. Like
// jingle.Jingle.Marshal it refuses, with an *[ElementError], a value that
// would not parse back to itself.
func (d *Description) Raw() (jingle.Raw, error) {
	f, err := d.File.raw()
	if err != nil {
		return jingle.Raw{}, err
	}
	r, err := build("description", name(NSFileTransfer, "description"), nil, "", append([]jingle.Raw{f}, d.Other...)...)
	if err != nil {
		return jingle.Raw{}, err
	}
	return checked("description", d, r, ParseDescription)
}

// Raw returns c as a session-info payload for jingle.Jingle.Info; it
// refuses a value that would not parse back to itself.
func (c *Checksum) Raw() (jingle.Raw, error) {
	f, err := c.File.raw()
	if err != nil {
		return jingle.Raw{}, err
	}
	r, err := build("checksum", name(NSFileTransfer, "checksum"), attrs("creator", string(c.Creator), "name", c.Name), "", f)
	if err != nil {
		return jingle.Raw{}, err
	}
	return checked("checksum", c, r, ParseChecksum)
}

// Raw returns v as a session-info payload for jingle.Jingle.Info; it
// refuses a value that would not parse back to itself.
func (v *Received) Raw() (jingle.Raw, error) {
	r, err := build("received", name(NSFileTransfer, "received"), attrs("creator", string(v.Creator), "name", v.Name), "")
	if err != nil {
		return jingle.Raw{}, err
	}
	return checked("received", v, r, ParseReceived)
}

func (p *reader) description(r jingle.Raw, path string) *Description {
	e := p.open(r, path)
	d := &Description{}
	e.done()
	e.noText()
	var seen bool
	var nRaw int
	for _, k := range e.kids {
		switch {
		case is(k, NSFileTransfer, "file"):
			if !e.once(k, &seen) {
				return nil
			}
			if f := p.file(k, e.kidPath(k)); f != nil {
				d.File = *f
			}
		case k.XMLName.Space == NSFileTransfer:
			e.unknown(k)
		default:
			e.foreign(k, &nRaw, &d.Other)
		}
		if p.err != nil {
			return nil
		}
	}
	if !seen {
		p.fail(path+"/file", "required element missing (XEP-0234 §5: one <file/> per description)")
		return nil
	}
	return d
}

func (p *reader) file(r jingle.Raw, path string) *File {
	e := p.open(r, path)
	f := &File{}
	e.done()
	e.noText()
	var seenDate, seenDesc, seenMT, seenName, seenSize, seenRange bool
	var nRaw int
	for _, k := range e.kids {
		kp := e.kidPath(k)
		switch {
		case is(k, NSFileTransfer, "date"):
			if e.once(k, &seenDate) {
				f.Date = p.date(k, kp)
			}
		case is(k, NSFileTransfer, "desc"):
			if e.once(k, &seenDesc) {
				f.Desc = p.nonEmpty(k, kp, MaxFileDescLen)
			}
		case is(k, NSFileTransfer, "media-type"), is(k, NSFileTransfer, "mediaType"):
			if e.once(k, &seenMT) {
				f.MediaType = p.mediaType(k, kp)
				f.MediaTypeCamel = k.XMLName.Local == "mediaType"
			}
		case is(k, NSFileTransfer, "name"):
			if e.once(k, &seenName) {
				f.Name = p.nonEmpty(k, kp, MaxFileNameLen)
			}
		case is(k, NSFileTransfer, "size"):
			if e.once(k, &seenSize) {
				f.Size = p.number(k, kp, 0, MaxOfferedSize)
				f.HasSize = true
			}
		case is(k, NSFileTransfer, "range"):
			if e.once(k, &seenRange) {
				f.Range = p.rangeEl(k, kp)
			}
		case is(k, NSHashes, "hash"), is(k, NSHashes, "hash-used"):
			// Counted together below.
		case k.XMLName.Space == NSFileTransfer || k.XMLName.Space == NSHashes:
			e.unknown(k)
		default:
			e.foreign(k, &nRaw, &f.Other)
		}
		if p.err != nil {
			return nil
		}
	}
	f.Hashes = p.hashes(e, "hash")
	f.HashesUsed = p.hashesUsed(e)
	if p.err != nil {
		return nil
	}
	if f.Range != nil && f.HasSize {
		if f.Range.Offset > f.Size {
			p.fail(path+"/range@offset", "beyond the size of the file")
		} else if f.Range.Length > f.Size-f.Range.Offset {
			p.fail(path+"/range@length", "beyond the end of the file")
		}
	}
	if p.err != nil {
		return nil
	}
	return f
}

// nonEmpty reads the text of a leaf element, verbatim, which must not be
// empty.
func (p *reader) nonEmpty(r jingle.Raw, path string, max int) string {
	e := p.open(r, path)
	v := e.textLeaf(max)
	if p.err == nil && v == "" {
		p.fail(path, "empty element")
	}
	return v
}

func (p *reader) number(r jingle.Raw, path string, min, max uint64) uint64 {
	e := p.open(r, path)
	v := strings.TrimSpace(e.textLeaf(32))
	if p.err != nil {
		return 0
	}
	n, why := decimal(v, min, max)
	if why != "" {
		p.fail(path, why)
	}
	return n
}

func (p *reader) date(r jingle.Raw, path string) time.Time {
	e := p.open(r, path)
	v := strings.TrimSpace(e.textLeaf(MaxDateLen))
	if p.err != nil {
		return time.Time{}
	}
	// XEP-0082 §3.2 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD, the profile of
	// RFC 3339 with an upper-case T and Z.
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || strings.ContainsAny(v, "tz ") || t.IsZero() {
		p.fail(path, "not a XEP-0082 DateTime")
		return time.Time{}
	}
	return t
}

func (p *reader) mediaType(r jingle.Raw, path string) string {
	v := p.nonEmpty(r, path, MaxMediaTypeLen)
	if p.err != nil {
		return ""
	}
	if _, _, err := mime.ParseMediaType(v); err != nil || !strings.Contains(v, "/") || v != strings.TrimSpace(v) {
		p.fail(path, "not a MIME type (RFC 6838)")
		return ""
	}
	return v
}

func (p *reader) rangeEl(r jingle.Raw, path string) *Range {
	e := p.open(r, path)
	rg := &Range{}
	rg.Offset, _ = e.uint("offset", false, 0, MaxOfferedSize)
	rg.Length, _ = e.uint("length", false, 1, MaxOfferedSize)
	e.done()
	e.noText()
	if p.err == nil && rg.Length > MaxOfferedSize-rg.Offset {
		p.fail(path+"@length", "offset plus length overflow the largest file size")
	}
	for _, k := range e.kids {
		if !is(k, NSHashes, "hash") {
			e.unknown(k)
			break
		}
	}
	rg.Hashes = p.hashes(e, "hash")
	if p.err != nil {
		return nil
	}
	return rg
}

// hashes reads the <hash/> children of e: at most MaxHashes, one per
// algorithm.
func (p *reader) hashes(e *elt, local string) []Hash {
	var out []Hash
	n := 0
	for _, k := range e.kids {
		if !is(k, NSHashes, local) {
			continue
		}
		if !e.count(k, &n, MaxHashes) {
			return nil
		}
		h := p.hash(k, e.kidPath(k))
		if p.err != nil {
			return nil
		}
		for _, o := range out {
			if o.Algo == h.Algo {
				p.fail(e.kidPath(k)+"@algo", "duplicate hash algorithm "+h.Algo)
				return nil
			}
		}
		out = append(out, h)
	}
	return out
}

func (p *reader) hashesUsed(e *elt) []string {
	var out []string
	n := 0
	for _, k := range e.kids {
		if !is(k, NSHashes, "hash-used") {
			continue
		}
		if !e.count(k, &n, MaxHashes) {
			return nil
		}
		he := p.open(k, e.kidPath(k))
		algo := p.algo(he)
		he.leaf()
		if p.err != nil {
			return nil
		}
		for _, o := range out {
			if o == algo {
				p.fail(e.kidPath(k)+"@algo", "duplicate hash algorithm "+algo)
				return nil
			}
		}
		out = append(out, algo)
	}
	return out
}

func (p *reader) algo(e *elt) string {
	a := e.str("algo", true, MaxAlgoLen)
	if a == "" {
		return ""
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			e.p.fail(e.field("algo"), "not a lower-case hash function name (XEP-0300)")
			return ""
		}
	}
	return a
}

func (p *reader) hash(r jingle.Raw, path string) Hash {
	e := p.open(r, path)
	h := Hash{Algo: p.algo(e)}
	text := e.textLeaf(4 * MaxHashLen)
	if p.err != nil {
		return Hash{}
	}
	v, why := decodeBase64(strings.TrimSpace(text))
	if why != "" {
		p.fail(path, why)
		return Hash{}
	}
	if n, ok := hashSizes[h.Algo]; ok {
		if len(v) != n {
			p.fail(path, "a "+h.Algo+" digest is "+u64(uint64(n))+" bytes, not "+u64(uint64(len(v))))
			return Hash{}
		}
	} else if len(v) == 0 || len(v) > MaxHashLen {
		p.fail(path, "digest of an unknown algorithm not 1 to "+u64(MaxHashLen)+" bytes")
		return Hash{}
	}
	h.Value = v
	return h
}

// decodeBase64 decodes standard padded base64 (RFC 4648 §4) strictly:
// no whitespace inside, no non-zero padding bits.
func decodeBase64(s string) ([]byte, string) {
	if s == "" {
		return nil, "empty value"
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return nil, "whitespace inside base64"
	}
	v, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, "not strict padded base64 (RFC 4648 §4)"
	}
	return v, ""
}

// raw serializes f as a <file/>.
func (f *File) raw() (jingle.Raw, error) {
	var kids []jingle.Raw
	add := func(r jingle.Raw, err error) error {
		if err != nil {
			return err
		}
		kids = append(kids, r)
		return nil
	}
	if !f.Date.IsZero() {
		if err := add(textEl(NSFileTransfer, "date", f.Date.Format(time.RFC3339Nano))); err != nil {
			return jingle.Raw{}, err
		}
	}
	if f.Desc != "" {
		if err := add(textEl(NSFileTransfer, "desc", f.Desc)); err != nil {
			return jingle.Raw{}, err
		}
	}
	if f.MediaType != "" {
		local := "media-type"
		if f.MediaTypeCamel {
			local = "mediaType"
		}
		if err := add(textEl(NSFileTransfer, local, f.MediaType)); err != nil {
			return jingle.Raw{}, err
		}
	}
	if f.Name != "" {
		if err := add(textEl(NSFileTransfer, "name", f.Name)); err != nil {
			return jingle.Raw{}, err
		}
	}
	if f.Range != nil {
		hs, err := hashRaws(f.Range.Hashes)
		if err != nil {
			return jingle.Raw{}, err
		}
		var as []string
		if f.Range.Offset != 0 {
			as = append(as, "offset", u64(f.Range.Offset))
		}
		if f.Range.Length != 0 {
			as = append(as, "length", u64(f.Range.Length))
		}
		if err := add(build("range", name(NSFileTransfer, "range"), attrs(as...), "", hs...)); err != nil {
			return jingle.Raw{}, err
		}
	}
	if f.HasSize {
		if err := add(textEl(NSFileTransfer, "size", u64(f.Size))); err != nil {
			return jingle.Raw{}, err
		}
	}
	hs, err := hashRaws(f.Hashes)
	if err != nil {
		return jingle.Raw{}, err
	}
	kids = append(kids, hs...)
	for _, a := range f.HashesUsed {
		if err := add(build("hash-used", name(NSHashes, "hash-used"), attrs("algo", a), "")); err != nil {
			return jingle.Raw{}, err
		}
	}
	kids = append(kids, f.Other...)
	return build("file", name(NSFileTransfer, "file"), nil, "", kids...)
}

func hashRaws(hs []Hash) ([]jingle.Raw, error) {
	var out []jingle.Raw
	for _, h := range hs {
		r, err := h.Raw()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Raw returns h as a XEP-0300 <hash/> element. It does not check the
// value; the element that holds it does when it is serialized.
func (h Hash) Raw() (jingle.Raw, error) {
	return build("hash", name(NSHashes, "hash"), attrs("algo", h.Algo), base64.StdEncoding.EncodeToString(h.Value))
}
