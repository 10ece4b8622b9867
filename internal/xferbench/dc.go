package xferbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/filexfer"
)

// dcStall bounds a run of the data channel rows that makes no progress,
// and the connection of the pairs.
const dcStall = 60 * time.Second

// DCBench holds the two connected pairs of the data channel rows: our
// filexfer.DataChannel transports, and two raw pion PeerConnections on
// the same pion settings (filexfer.DataChannelConfig.SettingEngine with
// LoopbackOnly) and certificates of the same kind. Both pairs stay up for
// all runs; each run opens a fresh channel, so that connection set-up is
// not timed. Close ends them.
type DCBench struct {
	size   int64
	data   []byte
	digest []byte
	dir    string

	ours   [2]*filexfer.DataChannel
	stop   chan struct{}
	wg     sync.WaitGroup
	rawTx  *webrtc.PeerConnection
	rawRx  *webrtc.PeerConnection
	rawMu  sync.Mutex
	rawIn  map[string]chan datachannel.ReadWriteCloser
	labels atomic.Int64
}

// DataChannel connects the pairs of the data channel rows for transfers
// of size random bytes (kept in memory), the file row writing into dir.
func DataChannel(ctx context.Context, size int64, dir string) (*DCBench, error) {
	b := &DCBench{size: size, data: make([]byte, size), dir: dir, stop: make(chan struct{}),
		rawIn: map[string]chan datachannel.ReadWriteCloser{}}
	rand.Read(b.data)
	sum := sha256.Sum256(b.data)
	b.digest = sum[:]
	ctx, cancel := context.WithTimeout(ctx, dcStall)
	defer cancel()
	if err := b.connectOurs(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("data channel pair: %w", err)
	}
	if err := b.connectRaw(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("raw pion pair: %w", err)
	}
	// One untimed run of each pair first: SCTP's congestion window grows
	// over an association's life, and the first timed run must not pay
	// for it alone.
	for _, run := range []func(context.Context) (time.Duration, error){b.rawOnce, b.pipeOnce} {
		if _, err := run(ctx); err != nil {
			b.Close()
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	return b, nil
}

// Comparisons returns the two rows: our DataChannelConn carrying raw
// bytes (the transport alone), and filexfer's encrypted stream over it
// into a Receiver writing to disk (a file end to end), each next to a raw
// pion detached data channel with the same messages
// (filexfer.DataChannelMessageSize) and flow control
// (filexfer.DataChannelQueueHigh / DataChannelQueueLow). Every run of
// either side opens a channel, sends, waits until SCTP has acknowledged
// every byte, closes, and stops the clock when the receiver reads the
// end. The target is 90% of raw, in the ratio of the medians.
func (b *DCBench) Comparisons() []Comparison {
	raw := Case{Name: "raw pion data channel", Run: b.rawOnce}
	return []Comparison{
		{What: "data channel pipe", Bytes: b.size, MinRatio: 0.9, CPU: true, Baseline: raw,
			Ours: Case{Name: "filexfer DataChannelConn", Run: b.pipeOnce}},
		{What: "file over data channel, end to end", Bytes: b.size, MinRatio: 0.9, CPU: true, Baseline: raw,
			Ours: Case{Name: "filexfer stream+Receiver", Run: b.fileOnce}},
	}
}

// Close ends both pairs.
func (b *DCBench) Close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	for _, d := range b.ours {
		if d != nil {
			d.Close()
		}
	}
	b.wg.Wait()
	for _, pc := range []*webrtc.PeerConnection{b.rawTx, b.rawRx} {
		if pc != nil {
			pc.Close()
		}
	}
}

// label returns a fresh channel label.
func (b *DCBench) label(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, b.labels.Add(1))
}

// connectOurs connects two filexfer.DataChannels on loopback, their
// candidates trickled to each other in process.
func (b *DCBench) connectOurs(ctx context.Context) error {
	var trickle [2]chan *filexfer.DataChannelTransport
	for i, name := range []string{"alice@bench.test", "bob@bench.test"} {
		ch := make(chan *filexfer.DataChannelTransport, 64)
		trickle[i] = ch
		d, err := filexfer.NewDataChannel(filexfer.DataChannelConfig{SID: "bench", Peer: name, LoopbackOnly: true, StallTimeout: dcStall,
			OnCandidate: func(t *filexfer.DataChannelTransport) {
				select {
				case ch <- t:
				default: // more than the pair can have: pion finds the path anyway
				}
			}})
		if err != nil {
			return err
		}
		b.ours[i] = d
	}
	offer, err := b.ours[0].Offer()
	if err != nil {
		return err
	}
	answer, err := b.ours[1].Answer(offer)
	if err != nil {
		return err
	}
	if err := b.ours[0].SetAnswer(answer); err != nil {
		return err
	}
	for i := range trickle {
		b.wg.Add(1)
		go func(in <-chan *filexfer.DataChannelTransport, to *filexfer.DataChannel) {
			defer b.wg.Done()
			for {
				select {
				case t := <-in:
					to.AddRemoteCandidates(t)
				case <-b.stop:
					return
				}
			}
		}(trickle[i], b.ours[1-i])
	}
	for _, d := range b.ours {
		if err := d.Connected(ctx); err != nil {
			return err
		}
	}
	return nil
}

// connectRaw connects two pion PeerConnections with a complete
// (non-trickle) offer and answer.
func (b *DCBench) connectRaw(ctx context.Context) error {
	cfg := filexfer.DataChannelConfig{LoopbackOnly: true}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(cfg.SettingEngine()))
	var pcs [2]*webrtc.PeerConnection
	for i := range pcs {
		cert, err := dtls.NewCertificate()
		if err != nil {
			return err
		}
		pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert.WebRTC()},
			BundlePolicy: webrtc.BundlePolicyMaxBundle})
		if err != nil {
			return err
		}
		pcs[i] = pc
	}
	b.rawTx, b.rawRx = pcs[0], pcs[1]
	connected := make(chan struct{})
	var once sync.Once
	b.rawRx.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	b.rawRx.OnDataChannel(b.rawIncoming)
	if _, err := b.rawTx.CreateDataChannel("warm-up", nil); err != nil {
		return err
	}
	offer, err := localDescription(ctx, b.rawTx, true)
	if err != nil {
		return err
	}
	if err := b.rawRx.SetRemoteDescription(offer); err != nil {
		return err
	}
	answer, err := localDescription(ctx, b.rawRx, false)
	if err != nil {
		return err
	}
	if err := b.rawTx.SetRemoteDescription(answer); err != nil {
		return err
	}
	select {
	case <-connected:
		return nil
	case <-ctx.Done():
		return errors.New("not connected in time")
	}
}

// localDescription creates and sets an offer (or an answer) and returns
// it once ICE gathering is complete.
func localDescription(ctx context.Context, pc *webrtc.PeerConnection, offer bool) (webrtc.SessionDescription, error) {
	var sd webrtc.SessionDescription
	var err error
	if offer {
		sd, err = pc.CreateOffer(nil)
	} else {
		sd, err = pc.CreateAnswer(nil)
	}
	if err != nil {
		return sd, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		return sd, err
	}
	select {
	case <-gathered:
		return *pc.LocalDescription(), nil
	case <-ctx.Done():
		return sd, errors.New("ICE gathering did not complete")
	}
}

// rawIncoming hands a channel the raw sender opened to the run waiting
// for its label (pion's goroutine).
func (b *DCBench) rawIncoming(dc *webrtc.DataChannel) {
	b.rawMu.Lock()
	ch := b.rawIn[dc.Label()]
	b.rawMu.Unlock()
	if ch == nil {
		return // the warm-up channel
	}
	dc.OnOpen(func() {
		raw, err := dc.Detach()
		if err != nil {
			close(ch)
			return
		}
		ch <- raw
	})
}

// readAll reads r until io.EOF into a buffer of a whole message and
// returns the byte count.
func readAll(r io.Reader) (int64, error) {
	buf := make([]byte, filexfer.DataChannelMaxMessageSize)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// rawOnce sends the data over a new detached channel of the raw pair
// with filexfer's message size and flow control, waits until SCTP has
// acknowledged every byte (as filexfer's DataChannelConn.Close does),
// closes the channel, and returns the time until the receiver read the
// end.
func (b *DCBench) rawOnce(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, dcStall)
	defer cancel()
	label := b.label("raw")
	in := make(chan datachannel.ReadWriteCloser, 1)
	b.rawMu.Lock()
	b.rawIn[label] = in
	b.rawMu.Unlock()
	defer func() {
		b.rawMu.Lock()
		delete(b.rawIn, label)
		b.rawMu.Unlock()
	}()

	start := time.Now()
	type result struct {
		n   int64
		err error
	}
	read := make(chan result, 1)
	go func() {
		select {
		case r, ok := <-in:
			if !ok {
				read <- result{0, errors.New("raw pion: the receiver could not detach the channel")}
				return
			}
			n, err := readAll(r)
			read <- result{n, err}
			r.Close()
		case <-ctx.Done():
			read <- result{0, ctx.Err()}
		}
	}()
	ordered := true
	dc, err := b.rawTx.CreateDataChannel(label, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return 0, err
	}
	opened := make(chan datachannel.ReadWriteCloser, 1)
	dc.OnOpen(func() {
		raw, err := dc.Detach()
		if err != nil {
			raw = nil
		}
		opened <- raw
	})
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(filexfer.DataChannelQueueLow)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	var w datachannel.ReadWriteCloser
	select {
	case w = <-opened:
		if w == nil {
			return 0, errors.New("raw pion: the sender could not detach the channel")
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer w.Close()
	waitQueue := func(limit uint64) error {
		for dc.BufferedAmount() > limit {
			select {
			case <-low:
			case <-ctx.Done():
				return errors.New("raw pion: stalled")
			}
		}
		return nil
	}
	for p := b.data; len(p) > 0; {
		if err := waitQueue(filexfer.DataChannelQueueHigh); err != nil {
			return 0, err
		}
		k := min(len(p), filexfer.DataChannelMessageSize)
		if _, err := w.Write(p[:k]); err != nil {
			return 0, err
		}
		p = p[k:]
	}
	dc.SetBufferedAmountLowThreshold(0)
	if err := waitQueue(0); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	r := <-read
	d := time.Since(start)
	if r.err != nil {
		return 0, fmt.Errorf("raw pion: %w", r.err)
	}
	if r.n != b.size {
		return 0, fmt.Errorf("raw pion: %d bytes arrived, %d sent", r.n, b.size)
	}
	return d, nil
}

// pipeOnce sends the data as raw bytes over a new channel of our pair.
func (b *DCBench) pipeOnce(ctx context.Context) (time.Duration, error) {
	var n int64
	d, err := b.oursOnce(ctx, "pipe", func(c *filexfer.DataChannelConn) error {
		var err error
		n, err = readAll(c)
		return err
	}, func(c *filexfer.DataChannelConn) error {
		_, err := c.Write(b.data)
		return err
	})
	if err == nil && n != b.size {
		err = fmt.Errorf("%d bytes arrived, %d sent", n, b.size)
	}
	return d, err
}

// fileOnce sends the data as filexfer's encrypted stream over a new
// channel of our pair into a Receiver in dir; the received file's hash
// is checked after the clock stops.
func (b *DCBench) fileOnce(ctx context.Context) (time.Duration, error) {
	p := streamParams(b.size)
	r, err := filexfer.NewReceiver(p, b.dir, "bench-dc", filexfer.ReceiverOptions{})
	if err != nil {
		return 0, err
	}
	defer r.Abort()
	d, err := b.oursOnce(ctx, "file", func(c *filexfer.DataChannelConn) error {
		return r.Receive(ctx, c, nil)
	}, func(c *filexfer.DataChannelConn) error {
		return filexfer.SendStream(ctx, c, bytes.NewReader(b.data), p, 0, filexfer.StreamOptions{})
	})
	if err != nil {
		return 0, err
	}
	path, err := r.Finish(filexfer.Hash{Algo: "sha-256", Value: b.digest})
	if err != nil {
		return 0, fmt.Errorf("received file: %w", err)
	}
	os.Remove(path)
	return d, nil
}

// oursOnce opens a new channel of our pair, runs send on the sender's
// side and closes it, runs receive on the receiver's, and returns the
// time until receive returned.
func (b *DCBench) oursOnce(ctx context.Context, prefix string, receive, send func(*filexfer.DataChannelConn) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, dcStall)
	defer cancel()
	label := b.label(prefix)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		c, err := b.ours[1].Accept(ctx, label)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- receive(c)
	}()
	c, err := b.ours[0].Open(ctx, label)
	if err != nil {
		cancel()
		<-done
		return 0, err
	}
	err = send(c)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.Abort()
		cancel()
		<-done
		return 0, err
	}
	if err := <-done; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
