package c2sfront

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"

	"mellium.im/xmpp"
)

// mellium.im/xmpp v0.22's receiving side of stream negotiation reads the
// token after the stream header (and after each negotiated feature) and
// fails unless it is a start element, so whitespace between top-level
// elements, which RFC 6120 §11.7 allows, ends the negotiation. Real
// clients send it: go-sendxmpp (go-xmpp) writes "\n" after every stream
// header and every negotiation element, and got "</stream:stream>" in
// answer to its STARTTLS. The listener therefore drops whitespace that
// sits directly inside the stream (depth 1) while the stream is being
// negotiated, before mellium's decoder sees it; once the client is bound
// the filter is switched off and Session.Next skips such whitespace
// itself. Whitespace inside an element is never touched.

// wsFilter tracks the XML nesting of the bytes read through it and drops
// whitespace at depth 1. Its parser knows start tags, end tags, empty-
// element tags, quoted attribute values, processing instructions,
// comments, CDATA sections and other <!...> declarations; a stream header (a start tag named "stream" or
// "*:stream" before or directly inside the stream) resets the depth to 1,
// as a stream restart does; deeper, such a tag is an ordinary element. It is not
// an XML validator: anything it does not know passes through unchanged
// for mellium's decoder to reject. The same scanner, with child set,
// follows what is written to a bound client, where it counts the stanzas
// for stream management (stanzaCounter, sm.go).
type wsFilter struct {
	on    atomic.Bool
	depth int
	state wsState
	quote byte   // the open quote inside a tag, 0 if none
	kind  byte   // in a tag: 0 start, '/' end, '?' PI, '!' declaration
	name  []byte // the start tag's name so far (bounded)
	slash bool   // the last non-space byte in a start tag was '/'
	named bool   // the tag's name is complete
	prevQ bool   // in a PI: the previous byte was '?'
	decl  byte   // in a '!' tag: 0 undecided, 'C'/'D' a comment/CDATA start so far, 'c' comment, 'd' CDATA, 'x' other
	pre   int    // in a '!' tag: bytes of "[CDATA[" matched
	run   int    // in a comment or CDATA: the trailing '-' or ']' count
	nest  int    // in another declaration: the depth of '<' inside it
	// child, if set, is called with the tag name (bounded, as name) of
	// each element directly inside the stream once it is complete; top
	// is the name of the one open.
	child func(name []byte)
	top   []byte
}

type wsState uint8

const (
	wsText wsState = iota // character data
	wsLT                  // just read '<'
	wsTag                 // inside a tag
)

// maxTagName bounds the bytes of a tag name the filter keeps.
const maxTagName = 64

func newWSFilter() *wsFilter {
	f := &wsFilter{}
	f.on.Store(true)
	return f
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// filter removes depth-1 whitespace from p in place and returns the kept
// length.
func (f *wsFilter) filter(p []byte) int {
	n := 0
	for _, c := range p {
		if f.step(c) {
			p[n] = c
			n++
		}
	}
	return n
}

// scan tracks the nesting of p without changing it (the written side,
// see stanzaCounter).
func (f *wsFilter) scan(p []byte) {
	for _, c := range p {
		f.step(c)
	}
}

// step reads one byte and reports whether it is kept (everything but
// whitespace at depth 1).
func (f *wsFilter) step(c byte) bool {
	switch f.state {
	case wsText:
		if c == '<' {
			f.state = wsLT
		} else if f.depth == 1 && isXMLSpace(c) {
			return false
		}
	case wsLT:
		f.state, f.quote, f.slash, f.named, f.prevQ = wsTag, 0, false, false, false
		f.name = f.name[:0]
		f.decl, f.pre, f.run, f.nest = 0, 0, 0, 0
		switch c {
		case '/', '?', '!':
			f.kind = c
		default:
			f.kind = 0
			f.name = append(f.name, c)
		}
	case wsTag:
		f.tagByte(c)
	}
	return true
}

func (f *wsFilter) tagByte(c byte) {
	if f.quote != 0 {
		if c == f.quote {
			f.quote = 0
		}
		return
	}
	switch f.kind {
	case '?':
		if c == '>' && f.prevQ {
			f.state = wsText
		}
		f.prevQ = c == '?'
		return
	case '!':
		f.declByte(c)
		return
	case '/':
		if c == '>' {
			f.state = wsText
			if f.depth == 2 && f.child != nil {
				f.child(f.top)
			}
			if f.depth > 0 {
				f.depth--
			}
		}
		return
	}
	switch {
	case c == '>':
		f.state = wsText
		if f.slash {
			// An empty-element tag.
			if f.depth == 1 && f.child != nil {
				f.child(f.name)
			}
			return
		}
		if f.depth <= 1 && isStreamName(f.name) {
			// A stream header, or a restart: only ever between
			// top-level elements. An element named "stream" nested in
			// a stanza (a contact chooses the payload) is content.
			f.depth = 1
		} else if f.depth++; f.depth == 2 && f.child != nil {
			f.top = append(f.top[:0], f.name...)
		}
	case c == '"' || c == '\'':
		f.quote, f.named, f.slash = c, true, false
	case isXMLSpace(c):
		f.named = true
	default:
		f.named = f.named || c == '/' // "<presence/>" is named "presence"
		if !f.named && len(f.name) < maxTagName {
			f.name = append(f.name, c)
		}
		f.slash = c == '/'
	}
}

// declByte reads a byte of a "<!" construct: a comment ends only at
// "-->" and a CDATA section only at "]]>", whatever '<' and '>' they
// hold; another declaration (<!DOCTYPE ...>) ends at the '>' that closes
// its '<' nesting outside quotes.
func (f *wsFilter) declByte(c byte) {
	const cdata = "[CDATA["
	switch f.decl {
	case 0:
		switch c {
		case '-':
			f.decl = 'C'
			return
		case '[':
			f.decl, f.pre = 'D', 1
			return
		}
		f.decl = 'x'
	case 'C':
		if c == '-' {
			f.decl = 'c'
			return
		}
		f.decl = 'x'
	case 'D':
		if c == cdata[f.pre] {
			if f.pre++; f.pre == len(cdata) {
				f.decl = 'd'
			}
			return
		}
		f.decl = 'x'
	case 'c', 'd':
		end := byte('-')
		if f.decl == 'd' {
			end = ']'
		}
		switch {
		case c == '>' && f.run >= 2:
			f.state = wsText
		case c == end:
			f.run++
		default:
			f.run = 0
		}
		return
	}
	// 'x': another declaration.
	switch c {
	case '"', '\'':
		f.quote = c
	case '<':
		f.nest++
	case '>':
		if f.nest == 0 {
			f.state = wsText
		} else {
			f.nest--
		}
	}
}

// isStreamName reports whether a start tag's name is a stream header's.
func isStreamName(name []byte) bool {
	s := string(name)
	if i := len(s) - len(":stream"); i > 0 && s[i:] == ":stream" {
		return true
	}
	return s == "stream"
}

// read fills p from r with depth-1 whitespace dropped while the filter is
// on; it never returns 0, nil for a non-empty p.
func (f *wsFilter) read(r io.Reader, p []byte) (int, error) {
	for {
		n, err := r.Read(p)
		if !f.on.Load() {
			return n, err
		}
		n = f.filter(p[:n])
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
	}
}

// wsConn is a plain connection read through a wsFilter.
type wsConn struct {
	net.Conn
	f *wsFilter
}

func (c *wsConn) Read(p []byte) (int, error) { return c.f.read(c.Conn, p) }

// wsTLSConn is a TLS connection read through a wsFilter; it keeps
// ConnectionState, which mellium looks for. Once the client is bound, what
// is written to it goes through out, which counts the stanzas
// (stream management, sm.go).
type wsTLSConn struct {
	*tls.Conn
	f *wsFilter
	// out is set before the bound session is handed to the handler,
	// before any concurrent write.
	out *stanzaCounter
}

func (c *wsTLSConn) Read(p []byte) (int, error) { return c.f.read(c.Conn, p) }

func (c *wsTLSConn) Write(p []byte) (int, error) {
	if c.out == nil {
		return c.Conn.Write(p)
	}
	return c.out.write(c.Conn, p)
}

// startTLSFiltered is xmpp.StartTLS(cfg) for the receiving side with the
// filter moved inside TLS: the plain filter is switched off before the
// TLS handshake reads its first byte, and the TLS connection is read
// through a new filter, which *current is set to.
func startTLSFiltered(cfg *tls.Config, plain *wsFilter, current **wsFilter) xmpp.StreamFeature {
	f := xmpp.StartTLS(cfg)
	negotiate := f.Negotiate
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, data any) (xmpp.SessionState, io.ReadWriter, error) {
		plain.on.Store(false)
		mask, rw, err := negotiate(ctx, s, data)
		if err != nil {
			return mask, rw, err
		}
		tc, ok := rw.(*tls.Conn)
		if !ok {
			return mask, rw, err
		}
		wf := newWSFilter()
		*current = wf
		return mask, &wsTLSConn{Conn: tc, f: wf}, nil
	}
	return f
}
