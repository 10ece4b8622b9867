package c2sfront

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

// Stanza bounds.
const (
	// MaxStanzaSize bounds one stanza from the local client (the same bound
	// as internal/localxmpp's parser, which reads it).
	MaxStanzaSize = 256 << 10
	// readSlack covers TLS framing and the decoder's read-ahead.
	readSlack = 64 << 10
	// writeTimeout bounds a stream error write to a stuck client.
	writeTimeout = time.Second
)

// Session is one bound local client connection.
type Session struct {
	xs   *xmpp.Session
	conn *budgetConn
	jid  jid.JID
	r    xml.TokenReader
	// ended is set once a stream error was written.
	ended atomic.Bool
	// sm is the XEP-0198 state (sm.go).
	sm smState
}

func newSession(xs *xmpp.Session, conn *budgetConn, j jid.JID, r xml.TokenReader) *Session {
	s := &Session{xs: xs, conn: conn, jid: j, r: r}
	s.sm.kick = make(chan struct{}, 1)
	s.sm.done = make(chan struct{})
	return s
}

// JID is the full JID bound to the session.
func (s *Session) JID() jid.JID { return s.jid }

// XMPP is the underlying mellium session (for sending). Every stanza
// written through it is counted for the client's stream management
// acknowledgements, as through Send.
func (s *Session) XMPP() *xmpp.Session { return s.xs }

// Send writes st to the client; ctx bounds the write. If ctx ends before
// the write completes, the write fails and no later write can succeed
// (TLS cannot go on after a partial record): the handler should end the
// session.
func (s *Session) Send(ctx context.Context, st localxmpp.Stanza) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Not mellium's own ctx handling: it sets a past write deadline and
	// resets it at once, and a write woken in between goes back to
	// waiting, so a client that stopped reading kept Send blocked past
	// ctx. This deadline stays.
	stop := context.AfterFunc(ctx, func() { s.conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	err := s.xs.Send(context.Background(), st.TokenReader())
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// ErrClosed is returned by Next when the client closed its stream.
var ErrClosed = errors.New("c2sfront: local client closed the stream")

// Next reads the next stanza from the client. Bad input (malformed XML,
// including a repeated attribute, a stanza over MaxStanzaSize, a
// non-stanza element, a 'from' naming anything but this session's bare or
// full JID) ends the stream with a stream error,
// which Next also returns (as a stream.Error); nothing of that stanza is
// returned. When the client closes its stream Next returns ErrClosed.
//
// Stream management elements (XEP-0198) are handled inside Next and never
// returned. Once the client enabled it, a stanza Next returned counts as
// handled (in the 'h' the front acknowledges) when Next is called again:
// the handler is done with it.
func (s *Session) Next() (localxmpp.Stanza, error) {
	s.sm.handledOne()
	for {
		s.conn.left.Store(MaxStanzaSize + readSlack)
		tok, err := s.r.Token()
		if err != nil {
			return localxmpp.Stanza{}, s.fail(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			continue // whitespace keepalive
		case xml.StartElement:
			if t.Name.Space == nsSM {
				if !uniqueAttrs(t.Attr) {
					return localxmpp.Stanza{}, s.streamError(stream.NotWellFormed)
				}
				if err := s.smRead(t); err != nil {
					return localxmpp.Stanza{}, err
				}
				continue
			}
			if t.Name.Space != stanza.NSClient || (t.Name.Local != "message" && t.Name.Local != "presence" && t.Name.Local != "iq") {
				return localxmpp.Stanza{}, s.streamError(stream.UnsupportedStanzaType)
			}
			if !uniqueAttrs(t.Attr) {
				return localxmpp.Stanza{}, s.streamError(stream.NotWellFormed)
			}
			st, err := localxmpp.StanzaFromTokens(&t, attrCheck{s.r})
			if err != nil {
				return localxmpp.Stanza{}, s.fail(err)
			}
			if !st.From.Equal(jid.JID{}) && !st.From.Equal(s.jid) && !st.From.Equal(s.jid.Bare()) {
				return localxmpp.Stanza{}, s.streamError(stream.InvalidFrom)
			}
			s.sm.pending = s.sm.enabled.Load()
			return st, nil
		default:
			return localxmpp.Stanza{}, s.streamError(stream.BadFormat)
		}
	}
}

// errDupAttr reports an element with a repeated attribute.
var errDupAttr = errors.New("c2sfront: repeated attribute")

// uniqueAttrs reports whether no two of attrs share an expanded name. XML
// forbids a repeated attribute (and, with namespaces, two prefixes of one
// namespace on one local name), but encoding/xml does not check it: a
// stanza with two 'from' or 'to' attributes would be checked on the first
// and read by others (a last-wins parser) on the second.
func uniqueAttrs(attrs []xml.Attr) bool {
	if len(attrs) <= 8 {
		for i := range attrs {
			for j := i + 1; j < len(attrs); j++ {
				if attrs[i].Name == attrs[j].Name {
					return false
				}
			}
		}
		return true
	}
	seen := make(map[xml.Name]struct{}, len(attrs))
	for _, a := range attrs {
		if _, ok := seen[a.Name]; ok {
			return false
		}
		seen[a.Name] = struct{}{}
	}
	return true
}

// attrCheck fails on a start element with a repeated attribute.
type attrCheck struct{ r xml.TokenReader }

func (c attrCheck) Token() (xml.Token, error) {
	tok, err := c.r.Token()
	if se, ok := tok.(xml.StartElement); ok && !uniqueAttrs(se.Attr) {
		return nil, errDupAttr
	}
	return tok, err
}

func (s *Session) fail(err error) error {
	var se stream.Error
	var syn *xml.SyntaxError
	switch {
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ErrClosed
	case errors.As(err, &se):
		return ErrClosed // the client sent a stream error
	case s.conn.left.Load() <= 0 || errors.Is(err, errBudget):
		return s.streamError(stream.PolicyViolation)
	case errors.As(err, &syn), errors.Is(err, errDupAttr):
		return s.streamError(stream.NotWellFormed)
	default:
		var ne net.Error
		if errors.As(err, &ne) {
			return ErrClosed
		}
		// localxmpp's size and depth bounds, or another parse failure.
		return s.streamError(stream.PolicyViolation)
	}
}

func (s *Session) streamError(e stream.Error) error {
	s.End(e, "")
	return e
}

// End ends the stream with the stream error e, with text (if not empty) as
// its human-readable <text/> (RFC 6120 §4.9.2), and closes the connection.
// The write is bounded by a short deadline; End is safe to call from any
// goroutine, and more than once (later calls only close).
func (s *Session) End(e stream.Error, text string) { s.end(e, "", text) }

// end is End with app, if not empty, as the application-specific
// condition element (RFC 6120 §4.9.4), written as it is.
func (s *Session) end(e stream.Error, app, text string) {
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	b := streamErrorXML(e, app, text)
	if s.ended.CompareAndSwap(false, true) {
		io.WriteString(s.xs.Conn(), b)
	}
	s.conn.Close()
}

// streamErrorXML is the stream error e with text and app (see end),
// and the end of the stream.
func streamErrorXML(e stream.Error, app, text string) string {
	var b strings.Builder
	b.WriteString("<stream:error><" + e.Err + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
	if text != "" {
		b.WriteString("<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>")
		xml.EscapeText(&b, []byte(text))
		b.WriteString("</text>")
	}
	b.WriteString(app)
	b.WriteString("</stream:error></stream:stream>")
	return b.String()
}

// Close closes the connection without a stream error (for example once the
// upstream session of a composer ended); a blocked Next or Send returns.
func (s *Session) Close() error { return s.conn.Close() }
