package filexfer

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
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
