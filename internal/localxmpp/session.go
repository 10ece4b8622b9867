package localxmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

const nsClient = stanza.NSClient

var errReadLimit = errors.New("localxmpp: read limit exceeded")

// limitConn counts bytes read from the raw connection and refuses to read
// past a budget that the session resets at every stanza boundary, so that
// neither the TLS layer nor the XML decoder can be made to buffer an
// unbounded amount of input.
type limitConn struct {
	net.Conn
	n     atomic.Int64
	limit atomic.Int64
	over  atomic.Bool
}

func (c *limitConn) Read(p []byte) (int, error) {
	if c.n.Load() > c.limit.Load() {
		c.over.Store(true)
		return 0, errReadLimit
	}
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// budget allows b more bytes from now on.
func (c *limitConn) budget(b int64) { c.limit.Store(c.n.Load() + b) }

// session is one client connection. Fields marked "mu" are guarded by
// Server.mu; the output queue has its own lock so that enqueueing never
// blocks on the network.
type session struct {
	srv  *Server
	conn *limitConn

	// Set during negotiation (single goroutine), read-only afterwards.
	authUser string
	jid      jid.JID
	bound    bool

	// mu
	available       bool
	priority        int
	presence        *element
	carbons         bool
	rosterRequested bool

	qmu     sync.Mutex
	q       [][]byte
	closing bool   // no more stanzas accepted; writer finishes and closes
	tail    []byte // written after the queue when closing
	wake    chan struct{}
	done    chan struct{} // closed when the writer exits
	out     io.Writer
}

func randomID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("localxmpp: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

func (s *Server) handleConn(c net.Conn) {
	lc := &limitConn{Conn: c}
	lc.budget(maxNegotiationBytes)
	sess := &session{srv: s, conn: lc, wake: make(chan struct{}, 1), done: make(chan struct{})}
	log := s.log.With("remote", c.RemoteAddr().String())

	var cur *xmpp.Session
	domain := s.domain.Domainpart()
	perm := func(n *sasl.Negotiator) bool {
		if cur == nil || cur.LocalAddr().Domainpart() != domain || n.TLSState() == nil {
			return false
		}
		user, pass, ident := n.Credentials()
		j, err := jid.New(string(user), domain, "")
		if err != nil || j.Localpart() == "" {
			return false
		}
		if len(ident) != 0 && string(ident) != j.Localpart() && string(ident) != j.String() {
			return false
		}
		if !s.checkPassword(j.Localpart(), pass) {
			log.Info("authentication failed", "user", j.Localpart())
			return false
		}
		sess.authUser = j.Localpart()
		return true
	}
	bind := func(_ jid.JID, res string) (jid.JID, error) {
		// mellium passes the 'from' of the client's stream header here, which
		// the client chose; the account comes from SASL only.
		if sess.authUser == "" {
			return jid.JID{}, stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized}
		}
		if res == "" {
			res = randomID()
		}
		j, err := jid.New(sess.authUser, domain, res)
		if err != nil {
			return jid.JID{}, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		if err := s.bindSession(sess, j); err != nil {
			return jid.JID{}, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}
		}
		return j, nil
	}
	features := []xmpp.StreamFeature{
		xmpp.StartTLS(s.tlsConfig),
		xmpp.SASLServer(perm, sasl.Plain),
		xmpp.BindCustom(bind),
	}
	neg := xmpp.NewNegotiator(func(x *xmpp.Session, _ *xmpp.StreamConfig) xmpp.StreamConfig {
		if x != nil {
			cur = x
		}
		return xmpp.StreamConfig{Features: features}
	})
	// A plain deadline rather than a context: mellium arms a goroutine per
	// context that may still fire SetDeadline(past) after negotiation
	// returns if the context is canceled then, failing later I/O at random.
	lc.SetDeadline(time.Now().Add(negotiationTimeout))
	xs, err := xmpp.ReceiveSession(context.Background(), lc, 0, neg)
	lc.SetDeadline(time.Time{})
	if err != nil || !sess.bound {
		log.Debug("negotiation failed", "err", err, "bound", sess.bound)
		if xs != nil {
			var se stream.Error
			if errors.As(err, &se) {
				writeStreamError(xs.Conn(), se)
			} else if err == nil {
				// Bind failed: mellium reports Ready even after a bind error.
				writeClose(xs.Conn())
			}
		}
		s.mu.Lock()
		var b batch
		s.unbindLocked(&b, sess)
		s.mu.Unlock()
		s.flush(b)
		return
	}
	log = log.With("jid", sess.jid.String())
	log.Info("session bound")

	sess.qmu.Lock()
	replaced := sess.closing // replaced by a newer session before we started
	sess.out = xs.Conn()
	sess.qmu.Unlock()
	go sess.writer() // when replaced, it writes the conflict error and ends
	var serr *stream.Error
	if !replaced {
		serr = s.readLoop(sess, xs)
		if serr != nil {
			log.Info("closing session with stream error", "cond", serr.Err)
		} else {
			log.Info("session ended")
		}
	}

	s.mu.Lock()
	var b batch
	s.unbindLocked(&b, sess)
	s.mu.Unlock()
	s.flush(b)
	sess.close(serr)
	<-sess.done
}

// bindSession registers sess as j, replacing (with a conflict stream error)
// an older session bound to the same full JID.
func (s *Server) bindSession(sess *session, j jid.JID) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	u := s.users[j.Localpart()]
	if u == nil {
		s.mu.Unlock()
		return ErrNoUser
	}
	var b batch
	if old := u.sessions[j.Resourcepart()]; old != nil {
		s.unbindLocked(&b, old)
		b.kills = append(b.kills, old)
	}
	sess.jid = j
	sess.bound = true
	u.sessions[j.Resourcepart()] = sess
	s.mu.Unlock()
	s.flush(b)
	return nil
}

// unbindLocked removes sess from its account and broadcasts its
// unavailable presence. Caller holds s.mu.
func (s *Server) unbindLocked(b *batch, sess *session) {
	if !sess.bound {
		return
	}
	u := s.users[sess.jid.Localpart()]
	if u == nil || u.sessions[sess.jid.Resourcepart()] != sess {
		return
	}
	delete(u.sessions, sess.jid.Resourcepart())
	if sess.available {
		sess.available = false
		sess.presence = nil
		p := el(nsClient, "presence", "type", "unavailable", "from", sess.jid.String())
		s.broadcastPresenceLocked(b, u, p)
	}
}

// readLoop reads stanzas until the stream ends. It returns the stream error
// to send, or nil for an orderly close.
func (s *Server) readLoop(sess *session, xs *xmpp.Session) *stream.Error {
	r := xs.TokenReader()
	defer r.Close()
	for {
		sess.conn.budget(maxStanzaSize + readSlack)
		tok, err := r.Token()
		if err != nil {
			return s.readError(sess, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			// Whitespace keepalive (anything else is rejected by mellium's
			// stream reader).
			continue
		case xml.StartElement:
			if t.Name.Space != nsClient || (t.Name.Local != "message" && t.Name.Local != "presence" && t.Name.Local != "iq") {
				e := stream.UnsupportedStanzaType
				return &e
			}
			e, err := readElement(r, t, maxStanzaSize)
			if err != nil {
				return s.readError(sess, err)
			}
			s.fromClient(sess, e)
		default:
			e := stream.BadFormat
			return &e
		}
	}
}

func (s *Server) readError(sess *session, err error) *stream.Error {
	var se stream.Error
	var syn *xml.SyntaxError
	switch {
	case err == io.EOF:
		return nil // client closed its stream
	case errors.As(err, &se):
		s.log.Info("client sent stream error", "jid", sess.jid.String(), "cond", se.Err)
		return nil
	case sess.conn.over.Load() || errors.Is(err, errTooLarge) || errors.Is(err, errTooDeep):
		e := stream.PolicyViolation
		return &e
	case errors.As(err, &syn):
		e := stream.NotWellFormed
		return &e
	case errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil
	default:
		var ne net.Error
		if errors.As(err, &ne) {
			return nil
		}
		e := stream.BadFormat
		return &e
	}
}

// fromClient stamps and routes a stanza read from sess.
func (s *Server) fromClient(sess *session, e *element) {
	e.setAttr("from", sess.jid.String())
	if v, _ := e.attr("to"); v != "" {
		if _, err := jid.Parse(v); err != nil {
			e.setAttr("to", "")
			st := mustStanza(e)
			if r, ok := errorReply(st, e, s.domain, stanza.Modify, stanza.JIDMalformed); ok {
				r.el.setAttr("from", s.domain.String())
				s.dispatchGenerated(mustStanza(r.el))
			}
			return
		}
	}
	st := mustStanza(e)
	for _, o := range s.applyHook(HookContext{Session: sess.jid}, st) {
		s.route(o)
	}
}

// priorityOf parses <priority/> (RFC 6121 §4.7.2.3); missing or invalid
// values count as 0.
func priorityOf(p *element) int {
	c := p.child(nsClient, "priority")
	if c == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(c.text()))
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// enqueue queues raw for sess. It never blocks; if the queue is full the
// session is closed, so that one slow reader cannot hold up the server.
func (sess *session) enqueue(raw []byte) {
	sess.qmu.Lock()
	if sess.closing {
		sess.qmu.Unlock()
		return
	}
	if len(sess.q) >= maxQueue {
		sess.closing = true
		sess.q = nil
		sess.qmu.Unlock()
		sess.srv.log.Warn("output queue overflow; closing session", "jid", sess.jid.String())
		sess.conn.Close()
		sess.signal()
		return
	}
	sess.q = append(sess.q, raw)
	sess.qmu.Unlock()
	sess.signal()
}

func (sess *session) signal() {
	select {
	case sess.wake <- struct{}{}:
	default:
	}
}

// close ends the session: queued stanzas are written, then the stream error
// (if any) and the closing stream tag, then the connection is closed.
func (sess *session) close(serr *stream.Error) {
	sess.qmu.Lock()
	if sess.closing {
		sess.qmu.Unlock()
		return
	}
	sess.closing = true
	var tail bytes.Buffer
	if serr != nil {
		tail.WriteString(streamErrorXML(*serr))
	}
	tail.WriteString("</stream:stream>")
	sess.tail = tail.Bytes()
	sess.qmu.Unlock()
	// Before negotiation has finished there is no writer yet; handleConn
	// starts it and it writes the tail.
	sess.signal()
}

func (sess *session) writer() {
	defer close(sess.done)
	defer sess.conn.Close()
	for {
		sess.qmu.Lock()
		items, closing, tail := sess.q, sess.closing, sess.tail
		sess.q = nil
		sess.qmu.Unlock()
		if len(items) > 0 {
			var buf bytes.Buffer
			for _, it := range items {
				buf.Write(it)
			}
			sess.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := sess.out.Write(buf.Bytes()); err != nil {
				return
			}
			continue
		}
		if closing {
			if tail != nil {
				sess.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
				sess.out.Write(tail)
			}
			return
		}
		<-sess.wake
	}
}

func streamErrorXML(e stream.Error) string {
	return "<stream:error><" + e.Err + " xmlns='" + nsStreams + "'/></stream:error>"
}

func writeStreamError(w io.Writer, e stream.Error) {
	if c, ok := w.(net.Conn); ok {
		c.SetWriteDeadline(time.Now().Add(time.Second))
	}
	io.WriteString(w, streamErrorXML(e)+"</stream:stream>")
}

func writeClose(w io.Writer) {
	if c, ok := w.(net.Conn); ok {
		c.SetWriteDeadline(time.Now().Add(time.Second))
	}
	io.WriteString(w, "</stream:stream>")
}
