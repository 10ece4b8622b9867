package gateway

// The XEP-0261 in-band bytestream transport of the file channel, on
// filexfer.IBBStreams: the XEP-0047 IQs of the session are routed to its
// filter (only a sid a transfer registered, only from the bound device's
// full JID, blocks no larger than negotiated). The byte sender opens the
// stream, the receiver expects it. The IQs travel outside the envelope:
// they carry nothing but our stream's ciphertext.

import (
	"context"
	"fmt"
	"io"

	"mellium.im/xmpp"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// ibbBlockSize is the block size we offer: securejingle's preferred
// minimum (mellium's ibb writes 768-byte blocks in any case).
const ibbBlockSize = filexfer.IBBMinPreferredBlockSize

// ibbTransport is the fileTransport of in-band bytestreams.
type ibbTransport struct{ x *transfer }

func (ibbTransport) kind() filexfer.TransportKind { return filexfer.TransportIBB }

func (t ibbTransport) offer(_ context.Context, e *transportEnv) (jingle.Raw, error) {
	tr := &filexfer.IBBTransport{SID: newTransferID(), BlockSize: ibbBlockSize}
	if !e.sender {
		t.expect(e, tr.SID, tr.BlockSize) // before the peer can open it
	}
	return tr.Raw()
}

func (t ibbTransport) accept(_ context.Context, e *transportEnv, theirs jingle.Raw) (jingle.Raw, error) {
	p, ok, err := filexfer.ParseIBBTransport(theirs)
	if err != nil || !ok {
		return jingle.Raw{}, fmt.Errorf("%w: not an IBB transport: %v", filexfer.ErrTransport, err)
	}
	if p.Stanza == "message" {
		return jingle.Raw{}, fmt.Errorf("%w: IBB over messages is not used (stanza='message')", filexfer.ErrTransport)
	}
	// XEP-0261: the responder may answer with a block size of its own.
	tr := &filexfer.IBBTransport{SID: p.SID, BlockSize: max(p.BlockSize, filexfer.IBBMinPreferredBlockSize)}
	if !e.sender {
		t.expect(e, tr.SID, tr.BlockSize)
	}
	return tr.Raw()
}

// ibbWait is a stream the receiver expects: registered before the
// element that names it goes out, so that the sender's open never comes
// first.
type ibbWait struct {
	sid     string
	content string
	cancel  context.CancelFunc // stops the wait: the stream is unregistered
	done    chan struct{}
	pipe    io.ReadWriteCloser
	err     error
}

// drop stops w and closes its stream if it came.
func (w *ibbWait) drop() {
	w.cancel()
	<-w.done // at once: Expect returns on the cancel
	if w.pipe != nil {
		w.pipe.Close()
	}
}

// expect starts waiting for the peer's open of sid, in place of an
// earlier wait of the content that was not taken (a replaced transport).
func (t ibbTransport) expect(e *transportEnv, sid string, bs uint16) {
	x := t.x
	ctx, cancel := context.WithTimeout(x.ctx, 2*fileConnectTimeout)
	w := &ibbWait{sid: sid, content: e.content, cancel: cancel, done: make(chan struct{})}
	x.mu.Lock()
	var old []*ibbWait
	keep := x.ibbWaits[:0]
	for _, c := range x.ibbWaits {
		if c.content == e.content {
			old = append(old, c)
		} else {
			keep = append(keep, c)
		}
	}
	x.ibbWaits = append(keep, w)
	x.mu.Unlock()
	for _, c := range old {
		c.drop()
	}
	m, err := x.g.ibbStreams()
	var reg *filexfer.IBBExpected
	if err == nil {
		// Registered here, before the caller sends the element that
		// names the sid: the peer's open may follow at once.
		reg, err = m.Register(e.peer, sid, bs, filexfer.IBBReceive)
	}
	if err != nil {
		cancel()
		w.err = err
		close(w.done)
		return
	}
	go func() {
		defer cancel()
		defer close(w.done)
		w.pipe, w.err = reg.Wait(ctx)
	}()
}

func (t ibbTransport) connect(ctx context.Context, e *transportEnv, ours, theirs jingle.Raw) (io.ReadWriteCloser, error) {
	o, _, err := filexfer.ParseIBBTransport(ours)
	if err != nil {
		return nil, err
	}
	p, ok, err := filexfer.ParseIBBTransport(theirs)
	if err != nil || !ok || p.SID != o.SID {
		return nil, fmt.Errorf("%w: the peer's IBB transport names another stream", filexfer.ErrTransport)
	}
	if e.sender {
		m, err := t.x.g.ibbStreams()
		if err != nil {
			return nil, err
		}
		return m.Open(ctx, e.peer, o.SID, min(o.BlockSize, p.BlockSize), filexfer.IBBSend)
	}
	x := t.x
	var w *ibbWait
	x.mu.Lock()
	for k, c := range x.ibbWaits {
		if c.sid == o.SID {
			w = c
			x.ibbWaits = append(x.ibbWaits[:k], x.ibbWaits[k+1:]...)
			break
		}
	}
	x.mu.Unlock()
	if w == nil {
		return nil, fmt.Errorf("%w: no IBB stream %s is expected", filexfer.ErrTransport, o.SID)
	}
	select {
	case <-w.done:
		return w.pipe, w.err
	case <-ctx.Done():
		// The attempt stopped (or timed out): the stream is
		// unregistered now, not when the wait runs out.
		w.drop()
		return nil, ctx.Err()
	}
}

// closeIBBWaits closes the streams expected and never taken.
func (x *transfer) closeIBBWaits() {
	x.mu.Lock()
	ws := x.ibbWaits
	x.ibbWaits = nil
	x.mu.Unlock()
	for _, w := range ws {
		w.drop()
	}
}

// ibbState is the in-band bytestreams of the current XMPP session.
type ibbState struct {
	sess    *xmpp.Session
	streams *filexfer.IBBStreams
}

// ibbStreams returns the in-band bytestreams of the current session.
func (g *Gateway) ibbStreams() (*filexfer.IBBStreams, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sess == nil {
		return nil, ErrOffline
	}
	if g.ibb.sess != g.sess {
		g.ibb = ibbState{sess: g.sess, streams: filexfer.NewIBBStreams(g.sess)}
	}
	return g.ibb.streams, nil
}

// handleIBB answers a XEP-0047 IQ (on the read loop) through the filter;
// with no stream of ours registered it is item-not-found.
func (g *Gateway) handleIBB(st *Stanza, c Child) []byte {
	m, err := g.ibbStreams()
	if err != nil {
		return iqError(st, "cancel", "item-not-found")
	}
	typ := stanza.SetIQ
	if st.Type != "set" {
		typ = stanza.IQType(st.Type)
	}
	resp, ok := m.HandleIQ(stanza.IQ{ID: st.ID, From: st.From, To: st.To, Type: typ}, c.Raw)
	if !ok {
		return nil
	}
	return resp
}
