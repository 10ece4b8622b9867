package c2sfront

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"
)

// XEP-0198 stream management on the local stream (docs/protocol.md
// §22.1). The local stream and the upstream session are two streams,
// so the front is the client's stream management peer: it counts what it
// handles and what it writes, answers <r/> and asks with <r/> itself. It
// does not offer resumption: the stream is on loopback, and a client
// that reconnects logs in and binds again.
//
// The stanzas written to the client are counted on the written bytes
// (stanzaCounter), whoever writes them: the composer writes through
// Session.XMPP, and a stanza it writes that the count missed would make
// the client's correct <a/> a handled-count-too-high.

// Specification constants (XEP-0198).
const (
	nsSM = "urn:xmpp:sm:3"
	// nsStanzas qualifies the condition inside <failed/> (XEP-0198 §3).
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Implementation constants.
const (
	// smRequestDelay is how long after a stanza written to the client the
	// front asks for an acknowledgement (<r/>): one request covers a burst,
	// and at most one is unanswered at a time.
	smRequestDelay = 500 * time.Millisecond
	// smWriteTimeout bounds one write of a stream management element,
	// with the wait for the write before it: a client that reads nothing
	// that long is disconnected.
	smWriteTimeout = 10 * time.Second
)

// smState is the stream management state of one Session. Next (the
// reader) enables it and counts the client's stanzas; the stanzaCounter
// counts what is written; smWriter writes every element of the
// protocol, so that the reader never waits for a write.
type smState struct {
	enabled atomic.Bool   // <enable/> was read
	handled atomic.Uint32 // the client's stanzas handled since <enable/>, mod 2^32
	pending bool          // Next returned a stanza not counted yet (Next only)
	started bool          // smWriter was started (Next only)
	// uncounted is set when the connection's writes cannot be counted
	// (never: bind needs TLS); <enable/> then gets <failed/>.
	uncounted bool

	kick chan struct{} // something for smWriter to look at (capacity 1)
	done chan struct{} // closed when the session ends
	wg   sync.WaitGroup

	mu       sync.Mutex
	counting bool   // <enabled/> was written: the stanzas written after it count
	sent     uint32 // stanzas written since <enabled/>, mod 2^32
	unacked  uint64 // of those, the ones the client has not acknowledged
	asked    bool   // the front's <r/> is unanswered
	// What smWriter is to write. A request that arrives while the answer
	// to an earlier one of its kind is still unwritten is answered by
	// that one: a flood of <r/> costs one flag, and the <a/> written
	// counts every stanza handled before it is written.
	wantEnabled, wantFailed, wantAck bool
}

func (sm *smState) signal() {
	select {
	case sm.kick <- struct{}{}:
	default:
	}
}

// wrote counts a stanza written to the client.
func (sm *smState) wrote() {
	sm.mu.Lock()
	c := sm.counting
	if c {
		sm.sent++
		sm.unacked++
	}
	sm.mu.Unlock()
	if c {
		sm.signal()
	}
}

// ack applies the client's <a h='h'/>. It reports false when h
// acknowledges more stanzas than are unacknowledged (XEP-0198 §4, the
// difference taken modulo 2^32), with the count written (mod 2^32). It is
// exact while fewer than 2^32 stanzas are unacknowledged; beyond, no h
// can tell.
func (sm *smState) ack(h uint32) (sent uint32, ok bool) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	acked := sm.sent - uint32(sm.unacked)
	d := h - acked
	if uint64(d) > sm.unacked {
		return sm.sent, false
	}
	sm.unacked -= uint64(d)
	sm.asked = false
	if sm.unacked > 0 {
		sm.signal() // smWriter may ask again
	}
	return sm.sent, true
}

// stanzaCounter counts the stanzas written to a bound client: the
// elements named message, presence or iq (any prefix) directly inside
// the stream. Encoders write nothing else with those names there.
type stanzaCounter struct {
	mu sync.Mutex // the scanner sees the bytes in the order they are written
	f  wsFilter
}

func newStanzaCounter(sm *smState) *stanzaCounter {
	c := &stanzaCounter{}
	c.f.depth = 1 // bound: inside the stream, between two elements
	c.f.child = func(name []byte) {
		if isStanzaName(name) {
			sm.wrote()
		}
	}
	return c
}

func (c *stanzaCounter) write(w io.Writer, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Counted before the write: once the bytes are on the wire the
	// client may acknowledge them (XEP-0198 lets it send <a/> at any
	// time), and the count must not be behind. A write that fails leaves
	// the connection unusable, and its stanzas count as unacknowledged.
	c.f.scan(p)
	return w.Write(p)
}

func isStanzaName(name []byte) bool {
	if i := bytes.LastIndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	switch string(name) {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// smFeature lists stream management (<sm xmlns='urn:xmpp:sm:3'/>) with
// resource binding, after SASL (XEP-0198 §2). Enabling comes after bind,
// on the bound stream (Session.Next); what reaches this negotiation is a
// stream management element before bind: <enable/> gets <failed/> with
// unexpected-request (§3), <resume/> gets <failed/> with item-not-found
// (nothing is resumable here, §5), both leaving the client free to bind;
// anything else (<r/>, <a/>) ends the stream with unsupported-stanza-type.
// mellium negotiates a namespace once per stream, so a second element
// before bind ends it too (a policy-violation, closed without a stream
// error).
func smFeature() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsSM, Local: "sm"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(_ context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			if err := e.EncodeToken(start); err != nil {
				return false, err
			}
			return false, e.EncodeToken(start.End())
		},
		Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, interface{}, error) {
			return false, nil, d.Skip()
		},
		Negotiate: func(_ context.Context, session *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			r := session.TokenReader()
			defer r.Close()
			d := xml.NewTokenDecoder(r)
			tok, err := d.Token()
			if err != nil {
				return 0, nil, err
			}
			start, ok := tok.(xml.StartElement)
			if !ok {
				return 0, nil, stream.BadFormat
			}
			if err := d.Skip(); err != nil {
				return 0, nil, err
			}
			var cond string
			switch start.Name.Local {
			case "enable":
				cond = "unexpected-request"
			case "resume":
				cond = "item-not-found"
			default:
				// mellium goes on after an optional feature's error:
				// the stream is ended here (within the negotiation's
				// deadline), and the next read fails.
				io.WriteString(session.Conn(), streamErrorXML(stream.UnsupportedStanzaType, "", ""))
				session.Conn().Close()
				return 0, nil, stream.UnsupportedStanzaType
			}
			w := session.TokenWriter()
			defer w.Close()
			if err := encodeTokens(w, smFailed(cond)); err != nil {
				return 0, nil, err
			}
			return 0, nil, w.Flush()
		},
	}
}

func encodeTokens(w xmlstream.TokenWriter, toks []xml.Token) error {
	for _, t := range toks {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	return nil
}

func smElement(local string, attr ...xml.Attr) []xml.Token {
	start := xml.StartElement{Name: xml.Name{Space: nsSM, Local: local}, Attr: attr}
	return []xml.Token{start, start.End()}
}

// smFailed is <failed xmlns='urn:xmpp:sm:3'><cond xmlns='…stanzas'/></failed>.
func smFailed(cond string) []xml.Token {
	start := xml.StartElement{Name: xml.Name{Space: nsSM, Local: "failed"}}
	c := xml.StartElement{Name: xml.Name{Space: nsStanzas, Local: cond}}
	return []xml.Token{start, c, c.End(), start.End()}
}

// smRead handles a stream management element of the bound client (start
// read, its namespace urn:xmpp:sm:3) and reports the stream error that
// ended the stream, if one did. The element must be empty; <enable/> may
// come once (a second gets <failed/> with unexpected-request, the
// counts going on), <resume/> gets the same <failed/> (resumption comes
// before bind, and is not offered); <r/> and <a/> need SM enabled, and
// <a/> an 'h' of at most the unacknowledged count. Any other element of
// the namespace is unsupported-stanza-type.
func (s *Session) smRead(start xml.StartElement) error {
	tok, err := s.r.Token()
	if err != nil {
		return s.fail(err)
	}
	if _, ok := tok.(xml.EndElement); !ok {
		return s.streamError(stream.BadFormat)
	}
	sm := &s.sm
	switch start.Name.Local {
	case "enable":
		s.smStart()
		if !sm.uncounted && sm.enabled.CompareAndSwap(false, true) {
			sm.mu.Lock()
			sm.wantEnabled = true
			sm.mu.Unlock()
		} else {
			sm.mu.Lock()
			sm.wantFailed = true
			sm.mu.Unlock()
		}
	case "resume":
		s.smStart()
		sm.mu.Lock()
		sm.wantFailed = true
		sm.mu.Unlock()
	case "r":
		if !sm.enabled.Load() {
			return s.streamError(stream.UnsupportedStanzaType)
		}
		sm.mu.Lock()
		sm.wantAck = true
		sm.mu.Unlock()
	case "a":
		if !sm.enabled.Load() {
			return s.streamError(stream.UnsupportedStanzaType)
		}
		var hv string
		var found bool
		for _, a := range start.Attr {
			if a.Name.Space == "" && a.Name.Local == "h" {
				hv, found = a.Value, true
			}
		}
		h, err := strconv.ParseUint(hv, 10, 32)
		if !found || err != nil {
			return s.streamError(stream.BadFormat)
		}
		if sent, ok := sm.ack(uint32(h)); !ok {
			s.end(stream.UndefinedCondition,
				"<handled-count-too-high xmlns='"+nsSM+"' h='"+strconv.FormatUint(h, 10)+"' send-count='"+strconv.FormatUint(uint64(sent), 10)+"'/>",
				"You acknowledged "+strconv.FormatUint(h, 10)+" stanzas, but the front sent you "+strconv.FormatUint(uint64(sent), 10)+" (counted modulo 2^32).")
			return stream.UndefinedCondition
		}
		return nil
	default:
		return s.streamError(stream.UnsupportedStanzaType)
	}
	sm.signal()
	return nil
}

// smStart starts smWriter once (from Next).
func (s *Session) smStart() {
	if !s.sm.started {
		s.sm.started = true
		s.sm.wg.Add(1)
		go s.smWriter()
	}
}

// smWriter writes the stream management elements to the client until
// the session ends or a write fails (it then closes the connection):
// <enabled/>, <failed/>, <a/> in answer to <r/>, and the front's own
// <r/> smRequestDelay after a stanza it wrote while none is unanswered.
func (s *Session) smWriter() {
	defer s.sm.wg.Done()
	sm := &s.sm
	timer := time.NewTimer(smRequestDelay)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		req := false
		select {
		case <-sm.kick:
		case <-timer.C:
			armed = false
			sm.mu.Lock()
			req = sm.counting && sm.unacked > 0 && !sm.asked
			sm.asked = sm.asked || req
			sm.mu.Unlock()
		case <-sm.done:
			return
		}
		sm.mu.Lock()
		enabled, failed, ack := sm.wantEnabled, sm.wantFailed, sm.wantAck
		sm.wantEnabled, sm.wantFailed, sm.wantAck = false, false, false
		sm.mu.Unlock()
		var err error
		if enabled {
			// Counting starts with the first byte written after
			// <enabled/>: the session's write lock is held until then.
			err = s.smWrite(smElement("enabled"), func() {
				sm.mu.Lock()
				sm.counting = true
				sm.mu.Unlock()
			})
		}
		if failed && err == nil {
			err = s.smWrite(smFailed("unexpected-request"), nil)
		}
		if ack && err == nil {
			h := strconv.FormatUint(uint64(sm.handled.Load()), 10)
			err = s.smWrite(smElement("a", xml.Attr{Name: xml.Name{Local: "h"}, Value: h}), nil)
		}
		if req && err == nil {
			err = s.smWrite(smElement("r"), nil)
		}
		if err != nil {
			s.conn.Close()
			return
		}
		sm.mu.Lock()
		later := !armed && sm.counting && sm.unacked > 0 && !sm.asked
		sm.mu.Unlock()
		if later {
			timer.Reset(smRequestDelay)
			armed = true
		}
	}
}

// smWrite writes toks to the client under the session's write lock,
// calls after (if not nil) once they are flushed, still under the lock,
// and is bounded by smWriteTimeout; a write that does not finish in
// time fails, and so do the writes after it.
func (s *Session) smWrite(toks []xml.Token, after func()) error {
	t := time.AfterFunc(smWriteTimeout, func() { s.conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer t.Stop()
	w := s.xs.TokenWriter()
	defer w.Close()
	if err := encodeTokens(w, toks); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if after != nil {
		after()
	}
	return nil
}

// handledOne counts the stanza Next returned last, if any, as handled
// (called when Next is called again: the handler is done with it).
func (sm *smState) handledOne() {
	if sm.pending {
		sm.pending = false
		sm.handled.Add(1)
	}
}

// Unacked reports how many of the stanzas written to the client since it
// enabled stream management it has not acknowledged, and whether it
// enabled it (XEP-0198 §4). It is safe to call from any goroutine. Once
// the connection is closed the count no longer changes: the stanzas the
// client may not have received (or received and did not acknowledge
// before its stream ended).
func (s *Session) Unacked() (n uint64, enabled bool) {
	if !s.sm.enabled.Load() {
		return 0, false
	}
	s.sm.mu.Lock()
	defer s.sm.mu.Unlock()
	return s.sm.unacked, true
}

// smStop ends smWriter (a write under way fails within writeTimeout) and
// waits for it; called once the handler has returned.
func (s *Session) smStop() {
	close(s.sm.done)
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	s.sm.wg.Wait()
}
