package gateway

// Attacks on the file channel found in the second review (issue 9), now
// regression tests: each failed on the code it was written against (its
// comment says how) and checks the fixed behaviour.

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/securejingle/securejingle/filexfer"
)

// TestFileReview2TamperKeepsPrefix: anyone on the transport path can put
// bytes into the stream without the key: the hostile server forges IBB
// <data/> from the peer's full JID, a XEP-0065 proxy writes into the
// connection it relays, a host that reaches our SOCKS5 port with the
// DST.ADDR is the connection we take (§14.8.8 "its bytes fail the stream
// AEAD and the transfer resumes"). On the reviewed code one altered
// chunk ended the transfer with security-error, deleted every verified
// byte and was never resumed, so one injected byte cost the whole
// transfer, where a cut costs one chunk: the verified prefix is
// authenticated chunk by chunk under the key of the protected offer and
// stays valid. Expected: a critical alert, then a resume from the last
// verified chunk, which completes with nothing before it sent again.
func TestFileReview2TamperKeepsPrefix(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	cs := filexfer.SecurityDefaultChunkSize
	data := randBytes(t, 4*cs+99)
	src := writeFile(t, t.TempDir(), "x.bin", data)
	var mu sync.Mutex
	var conns []*faultyConn
	reg.cut = func(c net.Conn, n int) io.ReadWriteCloser {
		fc := &faultyConn{Conn: c, flip: -1}
		mu.Lock()
		if len(conns) == 0 {
			fc.flip = int64(filexfer.StreamHeaderLen) + 2*int64(cs+filexfer.StreamTagLen) + 7 // in the third chunk
		}
		conns = append(conns, fc)
		mu.Unlock()
		return fc
	}
	alert := alertsOf(t, b)
	out, in := sendAndAccept(t, a, b, []string{src})
	alert("file-integrity")
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("one altered chunk on the transport: receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	got, err := os.ReadFile(in.Files[0].Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the resumed file differs (%v)", err)
	}
	if !in.Resumed || in.ResumedFrom != 2*uint64(cs) {
		t.Fatalf("resumed %v from %d, want from %d", in.Resumed, in.ResumedFrom, 2*cs)
	}
	mu.Lock()
	defer mu.Unlock()
	p := filexfer.StreamParams{ChunkSize: uint32(cs), Size: uint64(len(data))}
	if len(conns) != 2 || uint64(conns[1].count()) != p.WireSize(2*uint64(cs)) {
		t.Fatalf("%d attempts; the resume must send exactly WireSize(offset)", len(conns))
	}
	leftovers(t, b.cfg.DownloadDir, 1)
}
