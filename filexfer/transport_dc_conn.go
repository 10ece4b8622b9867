package filexfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/sctp"
	"github.com/pion/webrtc/v4"
)

// Open opens the data channel of content (its label is the content name)
// once the transport is connected and bound, for the byte sender of that
// file: the one that writes. The channel is reliable and ordered. It
// returns the transport's error if it ends first, and ctx's error when
// ctx ends first (the channel, if opened meanwhile, is closed). Each
// content name is opened or accepted once.
func (d *DataChannel) Open(ctx context.Context, content string) (*DataChannelConn, error) {
	if err := d.claim(content); err != nil {
		return nil, err
	}
	conn, err := d.open(ctx, content)
	if err != nil {
		d.release(content)
	}
	return conn, err
}

func (d *DataChannel) open(ctx context.Context, content string) (*DataChannelConn, error) {
	if err := d.Connected(ctx); err != nil {
		return nil, err
	}
	ordered := true
	dc, err := d.pc.CreateDataChannel(content, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, fmt.Errorf("filexfer: data channel %q: %w", content, err)
	}
	type result struct {
		raw datachannel.ReadWriteCloserDeadliner
		err error
	}
	opened := make(chan result, 1)
	dc.OnOpen(func() {
		raw, err := dc.DetachWithDeadline()
		opened <- result{raw, err}
	})
	select {
	case r := <-opened:
		if r.err != nil {
			dc.Close()
			return nil, fmt.Errorf("filexfer: data channel %q: %w", content, r.err)
		}
		c := newDataChannelConn(d, dc, r.raw, true)
		go c.watch()
		return c, nil
	case <-d.done:
		dc.Close()
		return nil, d.Err()
	case <-ctx.Done():
		go func() {
			// OnOpen may still come; close what it brings.
			select {
			case r := <-opened:
				if r.raw != nil {
					r.raw.Close()
				}
			case <-d.done:
			}
		}()
		dc.Close()
		return nil, ctx.Err()
	}
}

// Accept waits for the data channel of content that the peer, the byte
// sender of that file, opens, and returns it once the transport is bound.
// A channel that is not reliable and ordered is refused with an error
// matching [ErrDataChannelProtocol]. It returns the transport's error if
// it ends first, and ctx's error when ctx ends first (a channel that
// arrives later is closed).
func (d *DataChannel) Accept(ctx context.Context, content string) (*DataChannelConn, error) {
	if err := d.claim(content); err != nil {
		return nil, err
	}
	d.mu.Lock()
	var ch chan incomingChannel
	in, ok := d.incoming[content]
	if ok {
		delete(d.incoming, content)
	} else {
		ch = make(chan incomingChannel, 1)
		d.waiters[content] = ch
	}
	d.mu.Unlock()
	if !ok {
		select {
		case in = <-ch:
		case <-d.done:
			return nil, d.Err()
		case <-ctx.Done():
			d.mu.Lock()
			delete(d.waiters, content)
			d.mu.Unlock()
			select {
			case in = <-ch: // it came meanwhile
				in.raw.Close()
			default:
			}
			return nil, ctx.Err()
		}
	}
	if err := d.Connected(ctx); err != nil {
		in.raw.Close()
		return nil, err
	}
	if err := checkReliable(in.dc); err != nil {
		in.raw.Close()
		return nil, err
	}
	return newDataChannelConn(d, in.dc, in.raw, false), nil
}

// checkReliable refuses a channel that may lose or reorder bytes.
func checkReliable(dc *webrtc.DataChannel) error {
	if !dc.Ordered() || dc.MaxRetransmits() != nil || dc.MaxPacketLifeTime() != nil {
		return fmt.Errorf("%w: data channel %q is not reliable and ordered", ErrDataChannelProtocol, dc.Label())
	}
	return nil
}

// claim reserves a content name for one Open or Accept.
func (d *DataChannel) claim(content string) error {
	if content == "" || len(content) > MaxSIDLen {
		return fmt.Errorf("filexfer: data channel label: the content name must be 1 to %d bytes", MaxSIDLen)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	if d.labels[content] {
		return fmt.Errorf("%w: content %q already has a data channel", ErrDataChannelState, content)
	}
	d.labels[content] = true
	return nil
}

func (d *DataChannel) release(content string) {
	d.mu.Lock()
	delete(d.labels, content)
	d.mu.Unlock()
}

// incomingChannel is a channel the peer opened, detached.
type incomingChannel struct {
	dc  *webrtc.DataChannel
	raw datachannel.ReadWriteCloserDeadliner
}

// remoteChannel takes a channel the peer opened (pion's goroutine). At
// most maxPendingChannels may wait unclaimed (opening or open) and at
// most MaxDataChannelChannels are taken over the transport's lifetime; a
// channel beyond either bound, or a second one of a label, is closed.
func (d *DataChannel) remoteChannel(dc *webrtc.DataChannel) {
	d.mu.Lock()
	d.nChannels++
	over := d.err != nil || d.nChannels > MaxDataChannelChannels || d.nOpening+len(d.incoming) >= maxPendingChannels
	if !over {
		d.nOpening++
	}
	d.mu.Unlock()
	if over {
		dc.Close()
		return
	}
	dc.OnOpen(func() {
		raw, err := dc.DetachWithDeadline()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.nOpening--
		if err != nil {
			dc.Close()
			return
		}
		in := incomingChannel{dc, raw}
		label := dc.Label()
		_, dup := d.incoming[label]
		switch ch, waiting := d.waiters[label]; {
		case d.err != nil, dup:
			raw.Close()
		case waiting:
			delete(d.waiters, label)
			ch <- in
		default:
			d.incoming[label] = in
		}
	})
}

// DataChannelConn is the data channel of one file as a byte pipe in one
// direction: the byte sender's ([DataChannel.Open]) writes and closes, the
// receiver's ([DataChannel.Accept]) reads until io.EOF. Read on the
// sender's side and Write on the receiver's fail with
// [ErrDataChannelState]. A receiver that stops early sends a one-byte
// give-up message and drains until the sender closes, which fails the
// sender's writes with [ErrDataChannelClosed]; anything else the
// receiver sends is [ErrDataChannelProtocol].
//
// Writes are cut into messages no larger than the peer's
// max-message-size and wait while more than an implementation bound
// (about 1 MiB) is queued and unacknowledged, so memory stays bounded
// whatever the source's speed; reads take one message at a time into a
// buffer of [DataChannelMaxMessageSize].
//
// Read may be called concurrently with Close and Abort; Write and Close
// must not be called concurrently with each other. Closing the
// [DataChannel] ends every DataChannelConn. The zero value is not usable.
type DataChannelConn struct {
	d      *DataChannel
	dc     *webrtc.DataChannel
	raw    datachannel.ReadWriteCloserDeadliner
	sender bool
	size   int
	stall  time.Duration

	low      chan struct{} // OnBufferedAmountLow, coalesced
	aborted  chan struct{}
	abort    sync.Once
	peerGone chan struct{} // sender: the receiver closed or broke the channel
	peerErr  error         // why, set before peerGone is closed

	wmu    sync.Mutex
	wbuf   []byte
	werr   error
	closed bool

	eofMu sync.Mutex
	eof   bool // Read reached the sender's close

	rmu        sync.Mutex
	rbuf       []byte
	rpos, rend int
	rerr       error
}

func newDataChannelConn(d *DataChannel, dc *webrtc.DataChannel, raw datachannel.ReadWriteCloserDeadliner, sender bool) *DataChannelConn {
	d.mu.Lock()
	size := d.sendSize
	d.mu.Unlock()
	c := &DataChannelConn{d: d, dc: dc, raw: raw, sender: sender, size: size, stall: d.cfg.StallTimeout,
		low: make(chan struct{}, 1), aborted: make(chan struct{}), peerGone: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(DataChannelQueueLow)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	return c
}

// dcGiveUp is the one-byte message a receiver sends on a file channel
// to tell the sender it stops reading: the sender then closes its side.
// A receiver never closes a channel first (an SCTP stream reset while the
// sender still writes makes pion take the sender's next bytes for a new
// channel without DCEP open, which stops its acceptance of channels on
// the whole transport); it asks, and drains until the sender's close.
const dcGiveUp = 0x00

// watch reads the sender's side, where nothing but the receiver's
// give-up message may arrive: that and the end of the stream (the
// receiver's answer to our close) end the sender's writes, anything else
// breaks the protocol. It ends with the channel, at the latest when the
// DataChannel closes.
func (c *DataChannelConn) watch() {
	var buf [64]byte
	n, isString, err := c.raw.ReadDataChannel(buf[:])
	switch {
	case err == nil && n == 1 && buf[0] == dcGiveUp && !isString:
		c.peerErr = fmt.Errorf("%w: data channel %q: the receiver stopped reading", ErrDataChannelClosed, c.dc.Label())
	case err == nil || errors.Is(err, io.ErrShortBuffer):
		c.peerErr = fmt.Errorf("%w: data channel %q: the receiver sent %d bytes on a file channel", ErrDataChannelProtocol, c.dc.Label(), n)
	case errors.Is(err, io.EOF):
		c.peerErr = fmt.Errorf("%w: data channel %q: the receiver closed the channel", ErrDataChannelClosed, c.dc.Label())
	default:
		c.peerErr = c.ioErr(err)
	}
	close(c.peerGone)
	if err == nil || errors.Is(err, io.ErrShortBuffer) {
		c.closeWhenSent() // our close ends the receiver's drain
	}
}

// closeWhenSent closes the sender's side once what is queued has been
// acknowledged (at most the stall timeout): a stream reset with data
// still queued behind it can reach the receiver's SCTP after the reset
// and open a phantom stream there that blocks pion's acceptance of
// channels, so this side resets only an idle stream, as Close does.
func (c *DataChannelConn) closeWhenSent() {
	// Writes see peerGone and return; none may queue behind the check.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline := time.Now().Add(c.stall)
	for c.dc.BufferedAmount() > 0 && time.Now().Before(deadline) {
		select {
		case <-c.d.done:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	c.Abort()
}

// giveUp is the receiver's abort: it sends dcGiveUp and drains the
// channel until the sender closes it (at most the stall timeout), then
// closes our side.
func (c *DataChannelConn) giveUp() {
	c.abort.Do(func() {
		close(c.aborted)
		c.raw.Write([]byte{dcGiveUp}) // best effort: the drain ends by its deadline otherwise
		go func() {
			buf := make([]byte, DataChannelMaxMessageSize)
			c.raw.SetReadDeadline(time.Now().Add(c.stall))
			for {
				_, _, err := c.raw.ReadDataChannel(buf)
				if errors.Is(err, io.EOF) {
					return // the sender closed; pion answered with our reset
				}
				if err != nil {
					break
				}
			}
			c.raw.SetReadDeadline(time.Time{}) // ends pion's deadline timer
			c.raw.Close()
		}()
	})
}

// Label returns the channel's label, the content name.
func (c *DataChannelConn) Label() string { return c.dc.Label() }

// MessageSize returns the size of the messages Write sends.
func (c *DataChannelConn) MessageSize() int { return c.size }

// Write queues p for sending. Up to one message may stay in memory until
// the next Write or Close. It blocks while the channel's send queue is
// full, and fails with [ErrDataChannelStalled] when the peer acknowledges
// nothing for the stall timeout, or with the transport's error.
func (c *DataChannelConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.sender {
		return 0, fmt.Errorf("%w: write on the receiving side of data channel %q", ErrDataChannelState, c.dc.Label())
	}
	if c.werr != nil {
		return 0, c.werr
	}
	if c.closed {
		return 0, fmt.Errorf("%w: write after close", ErrDataChannelClosed)
	}
	n := len(p)
	for len(p) > 0 {
		if len(c.wbuf) == 0 && len(p) >= c.size {
			// A whole message straight from p: pion copies it.
			if err := c.send(p[:c.size]); err != nil {
				return n - len(p), err
			}
			p = p[c.size:]
			continue
		}
		if c.wbuf == nil {
			c.wbuf = make([]byte, 0, c.size)
		}
		k := min(len(p), c.size-len(c.wbuf))
		c.wbuf = append(c.wbuf, p[:k]...)
		p = p[k:]
		if len(c.wbuf) == c.size {
			if err := c.send(c.wbuf); err != nil {
				return n - len(p) - k, err
			}
			c.wbuf = c.wbuf[:0]
		}
	}
	return n, nil
}

// Flush sends the message Write holds, if any.
func (c *DataChannelConn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flush()
}

func (c *DataChannelConn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.wbuf) > 0 {
		if err := c.send(c.wbuf); err != nil {
			return err
		}
		c.wbuf = c.wbuf[:0]
	}
	return nil
}

// send sends one message once the queue has room. Called with c.wmu held.
func (c *DataChannelConn) send(msg []byte) error {
	select {
	case <-c.peerGone:
		c.werr = c.peerErr
		return c.werr
	default:
	}
	if err := c.waitQueue(DataChannelQueueHigh); err != nil {
		c.werr = err
		return err
	}
	if _, err := c.raw.Write(msg); err != nil {
		if errors.Is(err, sctp.ErrStreamClosed) {
			// The receiver's reset reached SCTP before our watcher.
			err = fmt.Errorf("%w: data channel %q: the receiver closed the channel", ErrDataChannelClosed, c.dc.Label())
		} else {
			err = c.ioErr(err)
		}
		c.werr = err
		return err
	}
	return nil
}

// waitQueue waits until at most limit bytes are queued. Called with c.wmu
// held.
func (c *DataChannelConn) waitQueue(limit int) error {
	if int(c.dc.BufferedAmount()) <= limit {
		return nil
	}
	t := time.NewTimer(c.stall)
	defer t.Stop()
	for int(c.dc.BufferedAmount()) > limit {
		select {
		case <-c.low:
			t.Reset(c.stall)
		case <-t.C:
			return fmt.Errorf("%w: data channel %q: the peer acknowledged nothing for %v", ErrDataChannelStalled, c.dc.Label(), c.stall)
		case <-c.aborted:
			return fmt.Errorf("%w: data channel %q aborted", ErrDataChannelClosed, c.dc.Label())
		case <-c.peerGone:
			// Before our close: the receiver gave up early.
			return c.peerErr
		case <-c.d.done:
			return c.d.Err()
		}
	}
	return nil
}

// Close on the sender's side sends what Write holds, waits (at most the
// stall timeout without progress) until the peer has acknowledged every
// byte, and closes the channel: the receiver reads io.EOF after the last
// byte. It fails with [ErrDataChannelClosed] when the receiver stopped
// first. On the receiver's side, after io.EOF, it closes the channel;
// before, it is [DataChannelConn.Abort]: the sender's writes then fail.
// Close does not close the [DataChannel].
func (c *DataChannelConn) Close() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.sender {
		if err = c.flush(); err == nil {
			select {
			case <-c.peerGone:
				err = c.peerErr // closed before our close: it did not take everything
			default:
			}
		}
		if err == nil {
			c.dc.SetBufferedAmountLowThreshold(0)
			err = c.waitQueue(0)
		}
	}
	if !c.sender && !c.sawEOF() {
		c.giveUp()
		return nil
	}
	if cerr := c.raw.Close(); err == nil && cerr != nil {
		err = c.ioErr(cerr)
	}
	if err != nil {
		c.Abort()
	}
	return err
}

// sawEOF reports whether Read reached the sender's close.
func (c *DataChannelConn) sawEOF() bool {
	c.eofMu.Lock()
	defer c.eofMu.Unlock()
	return c.eof
}

// Abort ends the channel at once and unblocks pending writes. On the
// sender's side it drops what is queued and closes the channel. On the
// receiver's side it asks the sender to stop and discards what still
// arrives until the sender closes (at most the stall timeout); a pending
// Read returns with the next message or the end.
func (c *DataChannelConn) Abort() {
	if !c.sender {
		c.giveUp()
		return
	}
	c.abort.Do(func() {
		close(c.aborted)
		c.raw.SetReadDeadline(time.Now())
		c.raw.Close()
	})
}

// Read reads the bytes of the peer's messages in order. It returns io.EOF
// after the last byte once the peer closed the channel, the transport's
// error when it failed, and an error matching [ErrDataChannelProtocol]
// for a text message or a message over [DataChannelMaxMessageSize]
// (after which the channel is aborted).
func (c *DataChannelConn) Read(p []byte) (int, error) {
	if c.sender {
		return 0, fmt.Errorf("%w: read on the sending side of data channel %q", ErrDataChannelState, c.dc.Label())
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for c.rpos == c.rend {
		if c.rerr != nil {
			return 0, c.rerr
		}
		select {
		case <-c.aborted:
			c.rerr = fmt.Errorf("%w: data channel %q aborted", ErrDataChannelClosed, c.dc.Label())
			return 0, c.rerr
		default:
		}
		buf := p
		if len(p) < DataChannelMaxMessageSize {
			if c.rbuf == nil {
				c.rbuf = make([]byte, DataChannelMaxMessageSize)
			}
			buf = c.rbuf
		}
		n, isString, err := c.raw.ReadDataChannel(buf)
		switch {
		case errors.Is(err, io.ErrShortBuffer):
			c.rerr = fmt.Errorf("%w: data channel %q: a message of at least %d bytes, over our max-message-size %d", ErrDataChannelProtocol, c.dc.Label(), n, DataChannelMaxMessageSize)
			c.Abort()
		case err != nil:
			c.rerr = c.ioErr(err)
			if c.rerr == io.EOF {
				c.eofMu.Lock()
				c.eof = true
				c.eofMu.Unlock()
			}
		case isString:
			c.rerr = fmt.Errorf("%w: data channel %q: a text message on a file channel", ErrDataChannelProtocol, c.dc.Label())
			c.Abort()
		case len(p) >= DataChannelMaxMessageSize:
			return n, nil // read in place
		default:
			c.rpos, c.rend = 0, n
		}
	}
	n := copy(p, c.rbuf[c.rpos:c.rend])
	c.rpos += n
	return n, nil
}

// ioErr maps an error of pion's channel to ours: io.EOF stays io.EOF
// unless the transport failed, which then names the cause.
func (c *DataChannelConn) ioErr(err error) error {
	select {
	case <-c.d.done:
		return c.d.Err()
	case <-c.aborted:
		return fmt.Errorf("%w: data channel %q aborted", ErrDataChannelClosed, c.dc.Label())
	default:
	}
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return fmt.Errorf("%w: data channel %q: %v", ErrDataChannelFailed, c.dc.Label(), err)
}
