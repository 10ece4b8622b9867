package filexfer

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/securejingle/securejingle/jingle"
)

// Security is the XEP-0391 JET <security xmlns='urn:xmpp:jingle:jet:0'
// name cipher type/> of a content. With Type [SecurityType] it carries
// securejingle's transfer key in clear in a <key
// xmlns='urn:x-securejingle:1:file' chunk-size/> child: the element is
// only ever sent inside the end-to-end protected Jingle stanza, which is
// what protects the key. Any other type is a foreign envelope (OMEMO for
// Conversations) whose children are kept verbatim in Envelope: the key is
// then not delivered through the engine, and policy classifies the offer
// as cleartext ([ClassifyContent]).
//
// The zero value is not a valid element. Security holds a secret: its
// String and Format methods never print the key. It is a plain value: safe
// for concurrent reads, not for concurrent mutation.
type Security struct {
	Name   string // name: the content the key applies to (required)
	Cipher string // cipher URI, as sent (see [Security.Suite])
	Type   string // envelope type URI, as sent
	// Key is the transfer key of our envelope: exactly SecurityKeyLen
	// bytes when Type is SecurityType, nil otherwise.
	Key []byte
	// ChunkSize is the chunk-size attribute of our key element: plaintext
	// bytes per chunk of the stream (SecurityMinChunkSize..SecurityMaxChunkSize), 0 when
	// absent (SecurityDefaultChunkSize applies, see [Security.Chunk]).
	ChunkSize uint32
	// Envelope holds the children of a foreign envelope verbatim (an
	// OMEMO <encrypted/>); it is empty for ours.
	Envelope []jingle.Raw
}

// Ours reports whether s is securejingle's envelope (type
// urn:x-securejingle:1, with or without a trailing ":0").
func (s *Security) Ours() bool { return normalizeURI(s.Type) == SecurityType }

// Suite returns the stream suite named by the cipher attribute, without a
// trailing ":0" (both spellings are deployed, see the field notes), when
// it is one of securejingle's ([CipherAES256GCM], [CipherChaCha20Poly1305])
// and "" otherwise.
func (s *Security) Suite() string {
	switch c := normalizeURI(s.Cipher); c {
	case CipherAES256GCM, CipherChaCha20Poly1305:
		return c
	}
	return ""
}

// Chunk returns the plaintext chunk size of the stream: ChunkSize, or
// SecurityDefaultChunkSize when it is absent.
func (s *Security) Chunk() uint32 {
	if s.ChunkSize == 0 {
		return SecurityDefaultChunkSize
	}
	return s.ChunkSize
}

// NormalizeCipher returns a JET cipher or type URI without the trailing
// ":0" that some clients append (urn:xmpp:ciphers:aes-128-gcm-nopadding
// and urn:xmpp:ciphers:aes-128-gcm-nopadding:0 name the same cipher).
func NormalizeCipher(uri string) string { return normalizeURI(uri) }

func normalizeURI(u string) string { return strings.TrimSuffix(u, ":0") }

// String describes s without its key.
func (s Security) String() string {
	key := "none"
	if s.Key != nil {
		key = "redacted"
	}
	return fmt.Sprintf("filexfer.Security{Name:%q Cipher:%q Type:%q Key:%s ChunkSize:%d Envelope:%d elements}",
		s.Name, s.Cipher, s.Type, key, s.ChunkSize, len(s.Envelope))
}

// Format implements fmt.Formatter so that no verb (%v, %+v, %#v, %x, ...)
// prints the key.
func (s Security) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// ParseSecurity reads a JET security element from r (an element of
// jingle.Content.Other). It returns false when r is not one, and an error
// matching [ErrMalformedElement] when it is malformed: missing
// attributes, for our type a cipher that is not one of our suites or
// anything but exactly one well-formed key element, for a foreign type an
// element of our key namespace inside the envelope.
func ParseSecurity(r jingle.Raw) (*Security, bool, error) {
	if !is(r, NSJET, "security") {
		return nil, false, nil
	}
	const path = "security"
	p := &reader{}
	e := p.open(r, path)
	s := &Security{}
	s.Name = e.str("name", true, MaxSIDLen)
	s.Cipher = e.token("cipher", true, MaxURILen)
	s.Type = e.token("type", true, MaxURILen)
	e.done()
	e.noText()
	if p.err != nil {
		return nil, true, p.err
	}
	if s.Ours() {
		if s.Suite() == "" {
			p.fail(e.field("cipher"), "not a securejingle stream suite ("+CipherAES256GCM+" or "+CipherChaCha20Poly1305+")")
		}
		seen := false
		for _, k := range e.kids {
			if !is(k, NSFileKey, "key") {
				p.fail(e.kidPath(k), "element "+fmtName(k.XMLName)+" in a securejingle envelope, which holds only the key")
				break
			}
			if !e.once(k, &seen) {
				break
			}
			s.Key, s.ChunkSize = p.key(k, e.kidPath(k))
		}
		if p.err == nil && !seen {
			p.fail(path+"/key", "required element missing")
		}
	} else {
		var n int
		for _, k := range e.kids {
			if k.XMLName.Space == NSFileKey {
				p.fail(e.kidPath(k), "a securejingle key inside a foreign envelope of type "+truncate(s.Type))
				break
			}
			e.foreign(k, &n, &s.Envelope)
			if p.err != nil {
				break
			}
		}
	}
	if p.err != nil {
		return nil, true, p.err
	}
	return s, true, nil
}

func (p *reader) key(r jingle.Raw, path string) ([]byte, uint32) {
	e := p.open(r, path)
	cs, _ := e.uint("chunk-size", false, SecurityMinChunkSize, SecurityMaxChunkSize)
	text := e.textLeaf(64)
	if p.err != nil {
		return nil, 0
	}
	k, why := decodeBase64(strings.TrimSpace(text))
	if why != "" {
		p.fail(path, why)
		return nil, 0
	}
	if len(k) != SecurityKeyLen {
		clear(k)
		p.fail(path, "the key is "+u64(uint64(len(k)))+" bytes, not "+u64(SecurityKeyLen))
		return nil, 0
	}
	return k, uint32(cs)
}

// Raw returns s as an element for jingle.Content.Other; it refuses, with
// an *[ElementError], a value that would not parse back to itself (a key
// of the wrong length, a key in a foreign envelope, an unknown suite).
func (s *Security) Raw() (jingle.Raw, error) {
	var kids []jingle.Raw
	if s.Key != nil {
		var as []string
		if s.ChunkSize != 0 {
			as = append(as, "chunk-size", u64(uint64(s.ChunkSize)))
		}
		k, err := build("key", name(NSFileKey, "key"), attrs(as...), base64.StdEncoding.EncodeToString(s.Key))
		if err != nil {
			return jingle.Raw{}, err
		}
		kids = append(kids, k)
	}
	kids = append(kids, s.Envelope...)
	r, err := build("security", name(NSJET, "security"), attrs("name", s.Name, "cipher", s.Cipher, "type", s.Type), "", kids...)
	if err != nil {
		return jingle.Raw{}, err
	}
	return checked("security", s, r, ParseSecurity)
}

// NewSecurity returns our security element for the content name with the
// given suite (CipherAES256GCM or CipherChaCha20Poly1305), key
// (SecurityKeyLen bytes, copied) and chunk size (0 for the default).
func NewSecurity(content, suite string, key []byte, chunkSize uint32) *Security {
	return &Security{Name: content, Cipher: suite, Type: SecurityType, Key: append([]byte(nil), key...), ChunkSize: chunkSize}
}
