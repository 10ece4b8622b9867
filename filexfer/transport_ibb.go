package filexfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/ibb"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// XEP-0261 in-band bytestreams: XEP-0047 streams on mellium's ibb package,
// behind a filter that lets through only what a transfer expects. Every
// <open/>, <data/> and <close/> IQ of the session goes to
// [IBBStreams.HandleIQ]; one for a sid that no Open or Expect call
// registered, from another full JID than the negotiated peer, with a
// block over the negotiated size, or over the message carrier, is
// answered with an error and never reaches mellium (whose handler would
// otherwise accept any stream from anyone and wait for a reader). A
// receiving stream gets its own mellium ibb.Handler, dropped when the
// stream ends. The sending half is ours: mellium's cuts every stream into
// 768-byte blocks (the chunk of its base64 encoder), each waiting for its
// acknowledgement, which caps it near 2 MB/s on loopback; ours sends
// blocks of the negotiated block size.

// IBBNamespace is the XEP-0047 namespace of the <open/>, <data/> and
// <close/> IQ payloads.
const IBBNamespace = ibb.NS

// Implementation limits of the in-band bytestreams.
const (
	// IBBReadBuffer bounds the received bytes an IBB stream buffers for
	// its reader; a sender that gets that far ahead is answered with
	// wait/resource-constraint, which fails its transfer (it can resume).
	IBBReadBuffer = 4 << 20
	// IBBBlockTimeout bounds the wait for the peer's acknowledgement of
	// one block (and of the close): the IQ carrier is acknowledged block
	// by block.
	IBBBlockTimeout = 30 * time.Second
	// maxIBBPayload bounds an <open/>, <data/> or <close/> payload: the
	// base64 of the largest block plus room for the element.
	maxIBBPayload = (IBBMaxBlockSize+2)/3*4 + 1024
)

// IBBRole says which way the bytes of a stream go. XEP-0047 streams are
// bidirectional; a file transfer uses one direction, and a Pipe of the
// other role refuses the calls of the unused half. The zero value is not
// a role.
type IBBRole int

const (
	// IBBSend: we write, the peer reads. Read returns an error.
	IBBSend IBBRole = iota + 1
	// IBBReceive: the peer writes, we read. Write returns an error.
	IBBReceive
)

// ErrIBBRole is returned by a Read on a sending stream and a Write on a
// receiving one.
var ErrIBBRole = errors.New("filexfer: IBB stream used in the wrong direction")

// IBBStreams carries the in-band bytestreams of one XMPP session. The
// caller routes every IQ-set whose payload is in [IBBNamespace] to
// [IBBStreams.HandleIQ] and sends the answer it returns. It is safe for
// concurrent use; the zero value is not usable, use [NewIBBStreams].
type IBBStreams struct {
	sess *xmpp.Session

	mu      sync.Mutex
	streams map[string]*ibbStream // by sid
}

// NewIBBStreams returns the in-band bytestreams of s, which must be a
// client session of our full JID.
func NewIBBStreams(s *xmpp.Session) *IBBStreams {
	return &IBBStreams{sess: s, streams: map[string]*ibbStream{}}
}

type ibbState int

const (
	ibbExpecting ibbState = iota // Expect waits for the peer's <open/>
	ibbOpen                      // the stream is up
	ibbClosed                    // closed by either side
)

// ibbStream is one registered stream; mu serializes everything that
// enters its mellium handler.
type ibbStream struct {
	sid       string
	peer      jid.JID
	blockSize uint16 // the largest block we accept or send
	role      IBBRole

	mu       sync.Mutex
	state    ibbState
	opened   chan struct{}  // closed when the stream is open (Expect)
	h        *ibb.Handler   // IBBReceive: mellium's side of the stream
	l        *ibb.Listener  // IBBReceive, Expect: where mellium hands the peer's open
	accepted chan *ibb.Conn // IBBReceive, Expect: the conn of the peer's open
	conn     *ibb.Conn      // IBBReceive: set once open
	early    []ibbEarly     // IBBReceive, Open: blocks (and a close) that came before OpenIQ returned
	peerGone bool           // IBBSend: the peer sent <close/>
	lClosed  bool           // l is closed (mellium's Close panics on a second call)
}

// closeListener closes the stream's mellium listener, once. st.mu is
// held, or st is not shared yet.
func (st *ibbStream) closeListener() {
	if st.l != nil && !st.lClosed {
		st.lClosed = true
		st.l.Close()
	}
}

// ibbEarly is a data block that arrived while our open was in flight.
type ibbEarly struct {
	iq      stanza.IQ
	payload []byte
}

// maxIBBEarly bounds the early blocks: the peer waits for each
// acknowledgement, so one is the most an honest peer sends.
const maxIBBEarly = 4

func (m *IBBStreams) register(peer jid.JID, sid string, blockSize uint16, role IBBRole, state ibbState) (*ibbStream, error) {
	if sid == "" || len(sid) > MaxSIDLen || !isToken(sid) {
		return nil, fmt.Errorf("filexfer: IBB sid %q is empty, too long or has whitespace", truncate(sid))
	}
	if blockSize == 0 {
		return nil, errors.New("filexfer: IBB block size 0")
	}
	if role != IBBSend && role != IBBReceive {
		return nil, errors.New("filexfer: IBB role must be IBBSend or IBBReceive")
	}
	if peer.Resourcepart() == "" {
		return nil, fmt.Errorf("filexfer: IBB peer %s is not a full JID", peer)
	}
	st := &ibbStream{sid: sid, peer: peer, blockSize: blockSize, role: role, state: state, opened: make(chan struct{})}
	if role == IBBReceive {
		st.h = &ibb.Handler{}
		if state == ibbExpecting {
			// The listener is in place before HandleIQ can find the
			// stream: the peer's open may come at once, and mellium's
			// handler refuses (and races on) an open it has no
			// listener for.
			st.l = st.h.Listen(m.sess)
			st.accepted = make(chan *ibb.Conn, 1)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.streams[sid]; dup {
		st.closeListener()
		return nil, fmt.Errorf("filexfer: an IBB stream with sid %q is already open", truncate(sid))
	}
	m.streams[sid] = st
	return st, nil
}

// Len returns the number of streams registered: expected, opening or
// open.
func (m *IBBStreams) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}

func (m *IBBStreams) unregister(st *ibbStream) {
	m.mu.Lock()
	if m.streams[st.sid] == st {
		delete(m.streams, st.sid)
	}
	m.mu.Unlock()
}

// Open opens an in-band bytestream to peer (a full JID) with the sid and
// block size negotiated in the Jingle transport, sending the XEP-0047
// <open stanza='iq'/> (XEP-0261 has the initiator open, whichever way the
// file goes). ctx bounds the open exchange only. A sending stream fails
// here when the peer refuses the open; mellium's receiving side does not
// report it, and a refused receiving stream simply sees no data.
func (m *IBBStreams) Open(ctx context.Context, peer jid.JID, sid string, blockSize uint16, role IBBRole) (Pipe, error) {
	st, err := m.register(peer, sid, blockSize, role, ibbOpen)
	if err != nil {
		return nil, err
	}
	close(st.opened)
	// st.mu is not held across the round trip: the session's reader must
	// stay free to answer other IQs meanwhile.
	if role == IBBSend {
		q := []byte(`<open xmlns="` + ibb.NS + `" block-size="` + strconv.Itoa(int(blockSize)) + `" sid="` + xmlAttr(sid) + `" stanza="iq"/>`)
		if err := m.sess.UnmarshalIQElement(ctx, xml.NewDecoder(bytes.NewReader(q)), stanza.IQ{To: peer, Type: stanza.SetIQ}, nil); err != nil {
			m.unregister(st)
			return nil, fmt.Errorf("filexfer: IBB open to %s: %w", peer, err)
		}
		return newIBBPipe(m, st), nil
	}
	c, err := st.h.OpenIQ(ctx, stanza.IQ{To: peer}, m.sess, true, blockSize, sid)
	if err != nil {
		m.unregister(st)
		return nil, fmt.Errorf("filexfer: IBB open to %s: %w", peer, err)
	}
	c.SetReadBuffer(IBBReadBuffer)
	st.mu.Lock()
	st.conn = c
	for _, e := range st.early {
		st.deliver(e.iq, e.payload) // acknowledged already
	}
	st.early = nil
	st.mu.Unlock()
	return newIBBPipe(m, st), nil
}

// Expect waits for peer (a full JID) to open the in-band bytestream sid,
// with a block size of at most blockSize (the one negotiated in the
// Jingle transport; a larger one is refused with resource-constraint, as
// XEP-0047 §2.1 has it; a smaller one is used). ctx bounds the wait; when
// it ends, a later open for the sid is refused. It is [IBBStreams.Register]
// and Wait in one call: a caller that must know the stream is registered
// before it names the sid to the peer uses those.
func (m *IBBStreams) Expect(ctx context.Context, peer jid.JID, sid string, blockSize uint16, role IBBRole) (Pipe, error) {
	e, err := m.Register(peer, sid, blockSize, role)
	if err != nil {
		return nil, err
	}
	return e.Wait(ctx)
}

// IBBExpected is a stream registered by [IBBStreams.Register]: the
// peer's open for its sid is let through from the moment Register
// returns. Its Wait must be called once; until then, and until Wait's
// ctx ends, the registration holds.
type IBBExpected struct {
	m  *IBBStreams
	st *ibbStream
}

// Register registers the in-band bytestream sid that peer (a full JID) is
// to open, with a block size of at most blockSize, and returns at once:
// the peer's open is accepted from then on, so the caller registers
// before the element that names the sid goes out (the open can arrive
// as soon as the peer reads it). Wait takes the stream.
func (m *IBBStreams) Register(peer jid.JID, sid string, blockSize uint16, role IBBRole) (*IBBExpected, error) {
	st, err := m.register(peer, sid, blockSize, role, ibbExpecting)
	if err != nil {
		return nil, err
	}
	if role == IBBReceive {
		go func() {
			// mellium hands the opened stream to Accept; the filter
			// lets at most one open through, and only while this
			// goroutine waits.
			c, err := st.l.Accept()
			if err == nil {
				st.accepted <- c.(*ibb.Conn)
			}
		}()
	}
	return &IBBExpected{m: m, st: st}, nil
}

// Wait waits for the peer's open of the registered stream and returns
// it. ctx bounds the wait; when it ends, the stream is unregistered and
// a later open for the sid is refused.
func (e *IBBExpected) Wait(ctx context.Context) (Pipe, error) {
	m, st := e.m, e.st
	select {
	case <-st.opened:
	case <-ctx.Done():
		st.mu.Lock()
		if st.state == ibbExpecting {
			st.state = ibbClosed
			st.closeListener() // ends the Accept goroutine
			st.mu.Unlock()
			m.unregister(st)
			return nil, ctx.Err()
		}
		st.mu.Unlock() // the open went through as ctx ended: take it
	}
	if st.role == IBBReceive {
		st.mu.Lock()
		ok := st.conn != nil
		st.mu.Unlock()
		if !ok {
			m.unregister(st)
			return nil, transportErr("ibb", "the peer's open of "+strconv.Quote(st.sid)+" was not taken", nil)
		}
	}
	return newIBBPipe(m, st), nil
}

// ibbAcceptWait bounds the wait, within the handling of an open that
// mellium answered with a result, for the Accept goroutine to pass the
// stream on: mellium hands the conn to Accept before its handler returns,
// so the wait is a goroutine switch, but it runs on the session's reader
// and so is bounded all the same. An open mellium refused is not waited
// for at all.
var ibbAcceptWait = time.Second

// ibbPayload is what the filter reads of an <open/>, <data/> or <close/>.
type ibbPayload struct {
	start     xml.StartElement
	sid       string
	blockSize uint64 // open
	stanza    string // open
	seq       uint64 // data
	b64, pads int    // data: base64 characters (no whitespace), of them '='
}

// decodedLen is the length of the data block once base64-decoded (for a
// well-formed block; mellium refuses the others).
func (p *ibbPayload) decodedLen() int { return p.b64/4*3 - p.pads }

// HandleIQ answers an IQ-set whose payload (the one child element, as
// bytes) is in [IBBNamespace] and returns the answer stanza to send; it
// returns false, and nothing, for a payload of another namespace. iq
// gives the IQ's id, from and to (our full JID). It never blocks for
// long: a data block is handed to the stream's buffer and acknowledged.
func (m *IBBStreams) HandleIQ(iq stanza.IQ, payload []byte) ([]byte, bool) {
	p, err := parseIBBPayload(payload)
	if errors.Is(err, errNotIBB) {
		return nil, false
	}
	if err != nil {
		return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": err.Error()}})), true
	}
	m.mu.Lock()
	st := m.streams[p.sid]
	m.mu.Unlock()
	if st == nil || !iq.From.Equal(st.peer) || iq.Type != stanza.SetIQ {
		return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})), true
	}
	if !iq.To.Equal(m.sess.LocalAddr()) {
		// mellium's handler finds the stream's listener by our JID.
		return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})), true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	switch p.start.Name.Local {
	case "open":
		switch {
		case st.state != ibbExpecting:
			return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable})), true
		case p.stanza != "" && p.stanza != "iq":
			return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented, Text: map[string]string{"": "only the iq carrier"}})), true
		case p.blockSize > uint64(st.blockSize):
			return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.ResourceConstraint})), true
		}
		st.blockSize = uint16(p.blockSize)
		st.state = ibbOpen
		if st.role == IBBSend {
			close(st.opened)
			return ibbAnswer(iq.Result(nil)), true
		}
		// mellium answers and hands the conn to the waiting Accept;
		// it is set up here, before the open's answer goes out and
		// so before any data block can reach it, and Wait takes it
		// once opened is closed.
		resp := st.deliver(iq, payload)
		var c *ibb.Conn
		if answerIsResult(resp) {
			select {
			case c = <-st.accepted:
			case <-time.After(ibbAcceptWait):
			}
		}
		if c == nil {
			// mellium refused the open (or, in theory, did not pass
			// it on in time): the stream is over, and Wait says so at
			// once. The peer has the refusal.
			st.state = ibbClosed
			st.closeListener() // ends the Accept goroutine
		} else {
			c.SetReadBuffer(IBBReadBuffer)
			st.conn = c
		}
		close(st.opened)
		return resp, true
	case "data":
		switch {
		case st.state != ibbOpen || st.role != IBBReceive:
			return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable})), true
		case p.decodedLen() > int(st.blockSize):
			return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": "block larger than the block-size"}})), true
		case st.conn == nil && st.l == nil:
			// Our open is still in flight (mellium registers the stream
			// only once its answer is in): keep the block for then.
			if len(st.early) == maxIBBEarly {
				return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})), true
			}
			st.early = append(st.early, ibbEarly{iq, append([]byte(nil), payload...)})
			return ibbAnswer(iq.Result(nil)), true
		}
	case "close":
		if st.state != ibbOpen {
			return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})), true
		}
		if st.role == IBBSend {
			// The receiver gave up; our next block gets an error
			// answer.
			st.peerGone = true
			st.state = ibbClosed
			return ibbAnswer(iq.Result(nil)), true
		}
		st.state = ibbClosed
		if st.conn == nil && st.l == nil {
			// Our open is still in flight and mellium has no stream
			// yet: the close is kept behind the early blocks and
			// delivered once it has (a close handed to mellium now
			// would be lost, and the reader would wait for ever). At
			// most one: the state is closed from here on.
			st.early = append(st.early, ibbEarly{iq, append([]byte(nil), payload...)})
			return ibbAnswer(iq.Result(nil)), true
		}
	}
	return st.deliver(iq, payload), true
}

// deliver runs a payload through the stream's mellium handler and returns
// what it answered. st.mu is held.
func (st *ibbStream) deliver(iq stanza.IQ, payload []byte) []byte {
	d := xml.NewDecoder(bytes.NewReader(payload))
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s
			break
		}
	}
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	rw := struct {
		xml.TokenReader
		xmlstream.Encoder
	}{d, enc}
	if err := st.h.HandleIQ(iq, rw, &start); err != nil {
		return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError}))
	}
	enc.Flush()
	if out.Len() == 0 {
		return ibbAnswer(iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError}))
	}
	return out.Bytes()
}

// answerIsResult reports whether an encoded IQ answer is of type result.
func answerIsResult(b []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(xml.StartElement); ok {
			for _, a := range s.Attr {
				if a.Name.Space == "" && a.Name.Local == "type" {
					return a.Value == string(stanza.ResultIQ)
				}
			}
			return false
		}
	}
}

// ibbAnswer encodes an answer stanza.
func ibbAnswer(r xml.TokenReader) []byte {
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	if _, err := xmlstream.Copy(enc, r); err != nil {
		panic("filexfer: encoding an IBB answer: " + err.Error()) // built here, always encodes
	}
	enc.Flush()
	return out.Bytes()
}

var errNotIBB = errors.New("not an IBB payload")

// parseIBBPayload reads the attributes the filter needs; mellium parses
// the payload again. Anything that is not an open, data or close of
// IBBNamespace with exactly the XEP-0047 attributes is refused.
func parseIBBPayload(b []byte) (*ibbPayload, error) {
	if len(b) > maxIBBPayload {
		return nil, errors.New("IBB payload too large")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	p := &ibbPayload{}
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("IBB payload: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth > 0 {
				return nil, errors.New("IBB payload with a child element")
			}
			if p.start.Name.Local != "" {
				return nil, errors.New("IBB payload: more than one element")
			}
			if t.Name.Space != ibb.NS {
				return nil, errNotIBB
			}
			p.start = t.Copy()
			depth++
			if err := p.attrs(t); err != nil {
				return nil, err
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 || p.start.Name.Local != "data" {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, errors.New("IBB payload: unexpected text")
				}
				continue
			}
			for _, c := range t {
				switch c {
				case ' ', '\t', '\r', '\n':
				case '=':
					p.b64++
					p.pads++
				default:
					if p.pads > 0 {
						// '=' only ends the last quad: N good quads
						// and then padding would pass the block-size
						// check as fewer bytes than mellium decodes.
						return nil, errors.New("IBB data: base64 padding before the end")
					}
					p.b64++
				}
			}
		case xml.ProcInst, xml.Directive:
			return nil, errors.New("IBB payload: processing instruction or directive")
		}
	}
	if p.start.Name.Local == "" {
		return nil, errors.New("IBB payload: no element")
	}
	if p.start.Name.Local == "data" && (p.b64%4 != 0 || p.pads > 2) {
		return nil, errors.New("IBB data: not base64 (length not a multiple of 4, or more than two '=')")
	}
	return p, nil
}

func (p *ibbPayload) attrs(t xml.StartElement) error {
	var want []string
	switch t.Name.Local {
	case "open":
		want = []string{"sid", "block-size", "stanza"}
	case "data":
		want = []string{"sid", "seq"}
	case "close":
		want = []string{"sid"}
	default:
		return fmt.Errorf("unknown IBB element %q", truncate(t.Name.Local))
	}
	seen := map[string]bool{}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		known := a.Name.Space == ""
		if known {
			known = false
			for _, w := range want {
				known = known || w == a.Name.Local
			}
		}
		if !known || seen[a.Name.Local] {
			return fmt.Errorf("IBB %s: unknown or repeated attribute %q", t.Name.Local, truncate(a.Name.Local))
		}
		seen[a.Name.Local] = true
		var why string
		switch a.Name.Local {
		case "sid":
			if a.Value == "" || len(a.Value) > MaxSIDLen || !isToken(a.Value) {
				why = "bad sid"
			}
			p.sid = a.Value
		case "block-size":
			p.blockSize, why = decimal(a.Value, 1, IBBMaxBlockSize)
		case "seq":
			p.seq, why = decimal(a.Value, 0, 65535)
		case "stanza":
			p.stanza = a.Value
		}
		if why != "" {
			return fmt.Errorf("IBB %s@%s: %s", t.Name.Local, a.Name.Local, why)
		}
	}
	for _, w := range want {
		if !seen[w] && w != "stanza" {
			return fmt.Errorf("IBB %s: attribute %s missing", t.Name.Local, w)
		}
	}
	return nil
}

// ibbClose returns a <close sid/> payload.
func ibbClose(sid string) []byte {
	var b bytes.Buffer
	b.WriteString(`<close xmlns="` + ibb.NS + `" sid="` + xmlAttr(sid) + `"/>`)
	return b.Bytes()
}

// xmlAttr escapes s for an attribute value.
func xmlAttr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// ibbPipe is the Pipe of one stream.
type ibbPipe struct {
	m  *IBBStreams
	st *ibbStream

	wmu  sync.Mutex    // IBBSend: one writer at a time; Close waits for it
	buf  *bufio.Writer // IBBSend: fills blocks of the block size
	seq  uint16        // IBBSend: the next block's seq (wraps, XEP-0047 §2.2)
	werr error         // IBBSend: the first write error, sticky

	closeOnce sync.Once
	closeErr  error
}

func newIBBPipe(m *IBBStreams, st *ibbStream) *ibbPipe {
	p := &ibbPipe{m: m, st: st}
	if st.role == IBBSend {
		p.buf = bufio.NewWriterSize(ibbBlocks{p}, int(st.blockSize))
	}
	return p
}

// Read reads what the peer sent; io.EOF once it closed the stream.
func (p *ibbPipe) Read(b []byte) (int, error) {
	if p.st.role != IBBReceive {
		return 0, ErrIBBRole
	}
	return p.st.conn.Read(b)
}

// Write sends b in blocks of the block size (a short last block waits
// for more data or Close), each acknowledged by the peer within
// IBBBlockTimeout.
func (p *ibbPipe) Write(b []byte) (int, error) {
	if p.st.role != IBBSend {
		return 0, ErrIBBRole
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.werr != nil {
		return 0, p.werr
	}
	return p.buf.Write(b)
}

// ibbBlocks writes blocks as data IQs; bufio hands it at most one block
// size at a time, or more when a Write is larger (then it is cut here).
type ibbBlocks struct{ p *ibbPipe }

func (w ibbBlocks) Write(b []byte) (int, error) {
	p := w.p
	n := 0
	for len(b) > 0 {
		k := min(len(b), int(p.st.blockSize))
		if err := p.sendBlock(b[:k]); err != nil {
			p.werr = err
			return n, err
		}
		n += k
		b = b[k:]
	}
	return n, nil
}

func (p *ibbPipe) sendBlock(b []byte) error {
	p.st.mu.Lock()
	gone := p.st.peerGone
	p.st.mu.Unlock()
	if gone {
		return transportErr("ibb", "the peer closed the stream", nil)
	}
	start := xml.StartElement{Name: xml.Name{Space: ibb.NS, Local: "data"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "seq"}, Value: strconv.Itoa(int(p.seq))},
		{Name: xml.Name{Local: "sid"}, Value: p.st.sid},
	}}
	text := xml.CharData(base64.StdEncoding.AppendEncode(nil, b))
	ctx, cancel := context.WithTimeout(context.Background(), IBBBlockTimeout)
	defer cancel()
	err := p.m.sess.UnmarshalIQElement(ctx, xmlstream.Wrap(xmlstream.Token(text), start), stanza.IQ{To: p.st.peer, Type: stanza.SetIQ}, nil)
	if err != nil {
		return transportErr("ibb", "block "+strconv.Itoa(int(p.seq))+" not acknowledged", err)
	}
	p.seq++
	return nil
}

// Close ends the stream. On a sending stream it sends the last block and
// <close/>, each acknowledged within IBBBlockTimeout (a Write in flight
// finishes first); the error says whether the peer took everything. On a
// receiving stream it unblocks a pending Read and, unless the peer
// already closed, tells the peer. Close is idempotent.
func (p *ibbPipe) Close() error {
	p.closeOnce.Do(func() {
		st := p.st
		defer p.m.unregister(st)
		if st.role == IBBSend {
			p.wmu.Lock()
			defer p.wmu.Unlock()
			err := p.werr
			if err == nil {
				err = p.buf.Flush()
			}
			st.mu.Lock()
			open := st.state == ibbOpen
			st.state = ibbClosed
			st.mu.Unlock()
			if open {
				if cerr := p.sendClose(); err == nil {
					err = cerr
				}
			}
			if err == nil && !open {
				err = transportErr("ibb", "the peer closed the stream first", nil)
			}
			p.closeErr = err
			return
		}
		st.mu.Lock()
		open := st.state == ibbOpen
		st.state = ibbClosed
		if open {
			// A <close/> of our own through the handler ends mellium's
			// side: Read returns EOF after what is buffered.
			iq := stanza.IQ{ID: "local-close", From: st.peer, To: p.m.sess.LocalAddr(), Type: stanza.SetIQ}
			st.deliver(iq, ibbClose(st.sid))
		}
		st.mu.Unlock()
		if open {
			p.sendClose() // best effort: the peer learns we stopped reading
		}
	})
	return p.closeErr
}

func (p *ibbPipe) sendClose() error {
	ctx, cancel := context.WithTimeout(context.Background(), IBBBlockTimeout)
	defer cancel()
	err := p.m.sess.UnmarshalIQElement(ctx, xml.NewDecoder(bytes.NewReader(ibbClose(p.st.sid))), stanza.IQ{To: p.st.peer, Type: stanza.SetIQ}, nil)
	if err != nil {
		return transportErr("ibb", "close not acknowledged", err)
	}
	return nil
}

// String names the stream for logs.
func (p *ibbPipe) String() string {
	return "ibb " + strconv.Quote(p.st.sid) + " with " + p.st.peer.String()
}
