package filexfer

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/pionpair"
)

// dcStreamOver sends data as filexfer's encrypted stream of content from
// sender to receiver over the data channel, into a Receiver in dir, and
// returns the Receiver (done, not finished).
func dcStreamOver(tb testing.TB, sender, receiver *DataChannel, content string, data []byte, dir string) *Receiver {
	tb.Helper()
	ctx := dcCtx(tb)
	key := dcRandom(tb, SecurityKeyLen)
	p := StreamParams{Key: key, Cipher: CipherAES256GCM, ChunkSize: SecurityDefaultChunkSize, SID: "sid-1", Content: content, Sender: SenderInitiator, Size: uint64(len(data))}
	r, err := NewReceiver(p, dir, content+".bin", ReceiverOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := receiver.Accept(ctx, content)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- r.Receive(ctx, c, nil)
	}()
	c, err := sender.Open(ctx, content)
	if err != nil {
		tb.Fatal(err)
	}
	if err := SendStream(ctx, c, bytes.NewReader(data), p, 0, StreamOptions{}); err != nil {
		tb.Fatal(err)
	}
	if err := c.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	return r
}

// TestDataChannelStream: filexfer's encrypted stream over the data
// channel arrives, verifies and hashes to the source's sha-256.
func TestDataChannelStream(t *testing.T) {
	dcNoLeaks(t)
	a, b := dcPair(t, nil, nil)
	for _, n := range []int{0, 1, SecurityDefaultChunkSize, SecurityDefaultChunkSize + 1, 3<<20 + 5} {
		data := dcRandom(t, n)
		r := dcStreamOver(t, a, b, fmt.Sprintf("c%d", n), data, t.TempDir())
		sum := sha256.Sum256(data)
		if _, err := r.Finish(Hash{Algo: "sha-256", Value: sum[:]}); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
}

// dcBenchSize is the payload of one benchmark leg.
const dcBenchSize = 16 << 20

// BenchmarkDataChannel compares, in one run and interleaved so that they
// share the machine's load, a raw pion detached data channel (64 KiB
// messages, flow control on BufferedAmount with the thresholds of pion's
// flow-control example: 1 MiB high, 512 KiB low) with our
// DataChannelConn carrying raw bytes and carrying filexfer's encrypted
// stream into a Receiver on disk, all on loopback with the same
// SettingEngine settings. Each iteration moves dcBenchSize bytes over
// each of the three, in an order that rotates; the metrics are their MB/s, ours as a percentage
// of raw (the target is at least 90%), and the CPU time each spends per
// byte, which does not depend on the machine's load.
func BenchmarkDataChannel(b *testing.B) {
	data := dcRandom(b, dcBenchSize)
	tx, rx := rawPionPair(b)
	x, y := dcPair(b, nil, nil)
	dir := b.TempDir()
	var raw, bytesT, stream time.Duration
	var rawCPU, bytesCPU, streamCPU time.Duration
	leg := func(d, cpu *time.Duration, f func()) {
		t0, c0 := time.Now(), dcCPUTime(b)
		f()
		*d += time.Since(t0)
		*cpu += dcCPUTime(b) - c0
	}
	b.ResetTimer()
	for i := range b.N {
		label := fmt.Sprintf("f%d", i)
		legs := []func(){
			func() { leg(&raw, &rawCPU, func() { rawPionTransfer(b, tx, rx, label, data) }) },
			func() { leg(&bytesT, &bytesCPU, func() { dcDiscardTransfer(b, x, y, "b"+label, data) }) },
			func() { leg(&stream, &streamCPU, func() { dcStreamOver(b, x, y, "s"+label, data, dir).Abort() }) },
		}
		for k := range legs {
			legs[(i+k)%len(legs)]() // rotate the order: no leg always goes first
		}
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * dcBenchSize / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(raw), "raw-MB/s")
	b.ReportMetric(mbps(bytesT), "bytes-MB/s")
	b.ReportMetric(mbps(stream), "stream-MB/s")
	b.ReportMetric(100*raw.Seconds()/bytesT.Seconds(), "bytes/raw-%")
	b.ReportMetric(100*raw.Seconds()/stream.Seconds(), "stream/raw-%")
	// CPU time per byte does not depend on what else the machine runs:
	// where the pipe is CPU-bound (SCTP in pion is), it is the ceiling.
	nsPerB := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) / dcBenchSize }
	b.ReportMetric(nsPerB(rawCPU), "raw-cpu-ns/B")
	b.ReportMetric(nsPerB(bytesCPU), "bytes-cpu-ns/B")
	b.ReportMetric(nsPerB(streamCPU), "stream-cpu-ns/B")
	b.ReportMetric(0, "ns/op")
}

// dcDiscardTransfer is dcTransfer reading as rawPionTransfer does: into
// a buffer of a whole message, counting the bytes.
func dcDiscardTransfer(tb testing.TB, sender, receiver *DataChannel, content string, data []byte) {
	tb.Helper()
	ctx := dcCtx(tb)
	read := make(chan int, 1)
	go func() {
		n := 0
		defer func() { read <- n }()
		c, err := receiver.Accept(ctx, content)
		if err != nil {
			tb.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, DataChannelMaxMessageSize)
		for {
			k, err := c.Read(buf)
			n += k
			if err != nil {
				if err != io.EOF {
					tb.Error(err)
				}
				return
			}
		}
	}()
	c, err := sender.Open(ctx, content)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := c.Close(); err != nil {
		tb.Fatal(err)
	}
	if n := <-read; n != len(data) {
		tb.Fatalf("%d bytes arrived, %d sent", n, len(data))
	}
}

// dcCPUTime returns the process's user and system CPU time so far.
func dcCPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawPionPair connects two plain pion peers with detached data channels.
func rawPionPair(tb testing.TB) (tx, rx *pionpair.Peer) {
	tb.Helper()
	detach := func(se *webrtc.SettingEngine) {
		se.DetachDataChannels()
		se.SetSCTPMaxMessageSize(DataChannelMaxMessageSize)
	}
	tx, rx = pionpair.New(tb, "tx", detach), pionpair.New(tb, "rx", detach)
	if _, err := tx.PC.CreateDataChannel("warm-up", nil); err != nil {
		tb.Fatal(err)
	}
	pionpair.Signal(tb, tx, rx, nil)
	pionpair.WaitConnected(tb, tx, rx)
	return tx, rx
}

// rawPionTransfer sends data over a new detached channel of tx and reads
// it from rx, the way pion's examples do.
func rawPionTransfer(tb testing.TB, tx, rx *pionpair.Peer, label string, data []byte) {
	tb.Helper()
	got := make(chan datachannel.ReadWriteCloser, 1)
	rx.PC.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != label {
			return
		}
		dc.OnOpen(func() {
			raw, err := dc.Detach()
			if err != nil {
				tb.Error(err)
			}
			got <- raw
		})
	})
	ordered := true
	dc, err := tx.PC.CreateDataChannel(label, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		tb.Fatal(err)
	}
	opened := make(chan datachannel.ReadWriteCloser, 1)
	dc.OnOpen(func() {
		raw, err := dc.Detach()
		if err != nil {
			tb.Error(err)
		}
		opened <- raw
	})
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(512 << 10)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	w := <-opened
	read := make(chan int, 1)
	go func() {
		r := <-got
		n := 0
		buf := make([]byte, DataChannelMaxMessageSize)
		for n < len(data) {
			k, err := r.Read(buf)
			if err != nil {
				tb.Error(err)
				break
			}
			n += k
		}
		r.Close()
		read <- n
	}()
	ctx := dcCtx(tb)
	for p := data; len(p) > 0; {
		k := min(len(p), DataChannelMessageSize)
		for dc.BufferedAmount() > 1<<20 {
			select {
			case <-low:
			case <-ctx.Done():
				tb.Fatal("raw pion: stalled")
			}
		}
		if _, err := w.Write(p[:k]); err != nil {
			tb.Fatal(err)
		}
		p = p[k:]
	}
	if n := <-read; n != len(data) {
		tb.Fatalf("raw pion: %d bytes arrived", n)
	}
	w.Close()
}
