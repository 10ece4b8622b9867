package gateway

import (
	"bytes"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/securejingle/securejingle/filexfer"
)

// rewriteConn is the sender's end of a pipe that rewrites the stream by
// Write calls: SendStream writes the header, then one sealed chunk per
// Write. unit i is the header for i = 0 and chunk i-1 after it.
type rewriteConn struct {
	net.Conn
	mu     sync.Mutex
	units  [][]byte
	chunks int // units of the whole attempt: header + chunks
	mode   string
	sent   bool
}

func (c *rewriteConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.units = append(c.units, bytes.Clone(p))
	if len(c.units) < c.chunks {
		return len(p), nil // held back until the attempt is complete
	}
	u := c.units
	switch c.mode {
	case "drop": // chunk 1 never arrives
		u = append(u[:2:2], u[3:]...)
	case "reorder": // chunks 1 and 2 swapped
		u[2], u[3] = u[3], u[2]
	case "truncate": // the final chunk never arrives, the stream ends
		u = u[:len(u)-1]
	}
	for _, b := range u {
		if _, err := c.Conn.Write(b); err != nil {
			return 0, err
		}
	}
	c.sent = true
	if c.mode == "append" {
		// Someone on the way adds the final chunk again after the
		// sender's stream; the receiver reads a byte of it and stops
		// reading (net.Pipe: this write returns when it closes).
		c.Conn.Write(u[len(u)-1])
	}
	if c.mode == "truncate" {
		c.Conn.Close()
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

// TestFileStreamFaults: a dropped, reordered, appended or truncated chunk
// on the transport, end to end through two gateways. Tampering is
// alerted (critical) and resumed from the last verified chunk; an
// appended chunk after a verified end is alerted and the file kept; a
// truncated stream is resumed.
func TestFileStreamFaults(t *testing.T) {
	cs := filexfer.SecurityDefaultChunkSize
	data := randBytes(t, 4*cs+77) // 5 chunks
	for _, c := range []struct {
		mode, rule  string
		state       TransferState
		files       int
		detail      string
		wantResumed bool
	}{
		{"drop", "file-integrity", TransferCompleted, 1, "", true},
		{"reorder", "file-integrity", TransferCompleted, 1, "", true},
		{"append", "file-integrity", TransferCompleted, 1, "", false},
		{"truncate", "", TransferCompleted, 1, "", true},
	} {
		t.Run(c.mode, func(t *testing.T) {
			_, a, b, reg := filePair(t, nil, nil)
			src := writeFile(t, t.TempDir(), "x.bin", data)
			var once sync.Once
			reg.cut = func(conn net.Conn, n int) io.ReadWriteCloser {
				var out io.ReadWriteCloser = conn
				once.Do(func() { out = &rewriteConn{Conn: conn, chunks: 6, mode: c.mode} })
				return out
			}
			alert := alertsOf(t, b)
			out, in := sendAndAccept(t, a, b, []string{src})
			if in.State != c.state || !strings.Contains(in.Detail, c.detail) {
				t.Fatalf("receiver %s (%s), want %s", in.State, in.Detail, c.state)
			}
			if in.Resumed != c.wantResumed {
				t.Fatalf("resumed %v from %d", in.Resumed, in.ResumedFrom)
			}
			if c.rule != "" {
				ev := alert(c.rule)
				if c.mode == "append" && !strings.Contains(ev.Alert.Decision.Message, "kept") {
					t.Fatalf("alert %q", ev.Alert.Decision.Message)
				}
			}
			if c.state == TransferCompleted {
				got, err := os.ReadFile(in.Files[0].Path)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("received file differs (%v)", err)
				}
				if out.State != TransferCompleted {
					t.Fatalf("sender %s (%s)", out.State, out.Detail)
				}
			}
			leftovers(t, b.cfg.DownloadDir, c.files)
		})
	}
}
