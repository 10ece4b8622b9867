package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// The review's action matrix: a hand-played sender (alice, whose own
// Jingle handler is replaced by one that answers every request with an
// empty result, or refuses transport-replace) sends every Jingle action
// to bob's incoming transfer in each of its states. Bob must not crash,
// and the transfer must stay in a state that fits.

type reviewState int

const (
	rsPending reviewState = iota
	rsConnecting
	rsTransferring
	rsFailed
)

func (s reviewState) String() string {
	return [...]string{"pending", "connecting", "transferring", "failed"}[s]
}

// reviewLimitWriter passes n bytes, then blocks until release is closed and
// fails.
type reviewLimitWriter struct {
	w       io.Writer
	n       int
	release chan struct{}
}

func (l *reviewLimitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		k := l.n
		if k > 0 {
			l.w.Write(p[:k])
		}
		l.n = 0
		<-l.release
		return k, io.ErrClosedPipe
	}
	l.n -= len(p)
	return l.w.Write(p)
}

type reviewSetup struct {
	a, b     *testGateway
	sid      string
	data     []byte
	key      []byte
	sendPipe io.ReadWriteCloser
	release  chan struct{}
}

func (s *reviewSetup) send(t *testing.T, j *jingle.Jingle) error {
	t.Helper()
	raw, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.a.SendProtectedIQ(testCtx(t), jidOf("bob@"+testDomain+"/phone"), "set", raw, false)
	return err
}

func setupReview(t *testing.T, st reviewState) *reviewSetup {
	t.Helper()
	_, a, b, reg := filePair(t, nil, nil)
	a.HandleIQ(jingleName, func(req InnerIQ) ([]byte, error) {
		if bytes.Contains(req.Payload, []byte("transport-replace")) {
			return nil, jingleError("feature-not-implemented", "")
		}
		return nil, nil
	})
	s := &reviewSetup{a: a, b: b, sid: newTransferID(), key: bytes.Repeat([]byte{7}, 32), release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
	})
	cs := filexfer.SecurityDefaultChunkSize
	s.data = randBytes(t, 3*cs)
	h := sha256.Sum256(s.data)
	f := filexfer.File{Name: "x.bin", Size: uint64(len(s.data)), HasSize: true, Hashes: []filexfer.Hash{{Algo: "sha-256", Value: h[:]}}}
	if err := s.send(t, mustJingle(t, rawOfferFile(t, s.sid, f, 7))); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, s.sid, "pending", inState(TransferPending))
	if st == rsPending {
		return s
	}
	if err := b.AcceptTransfer(testCtx(t), s.sid, ""); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, s.sid, "connecting", inState(TransferConnecting))
	if st == rsConnecting {
		return s
	}
	ours, _ := (&filexfer.IBBTransport{SID: "ibb-" + s.sid, BlockSize: 8192}).Raw()
	pipe, err := memTransport{reg}.connect(testCtx(t), &transportEnv{sid: s.sid, content: "f", sender: true}, ours, ours)
	if err != nil {
		t.Fatal(err)
	}
	s.sendPipe = pipe
	p := filexfer.StreamParams{Key: s.key, Cipher: filexfer.CipherAES256GCM, ChunkSize: uint32(cs), SID: s.sid, Content: "f",
		Sender: filexfer.SenderInitiator, Size: uint64(len(s.data))}
	lw := &reviewLimitWriter{w: pipe, n: filexfer.StreamHeaderLen + cs + filexfer.StreamTagLen, release: s.release}
	go filexfer.SendStream(context.Background(), lw, bytes.NewReader(s.data), p, 0, filexfer.StreamOptions{})
	b.waitTransfer(t, s.sid, "transferring", inState(TransferTransferring))
	for i := 0; ; i++ { // progress events are spaced: poll
		if in, _ := b.Transfer(s.sid); in.BytesDone > 0 {
			break
		}
		if i > 1000 {
			t.Fatal("no chunk verified")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st == rsTransferring {
		return s
	}
	pipe.Close() // cut: bob's resume is refused by alice: failed, resumable
	b.waitTransfer(t, s.sid, "failed", inState(TransferFailed))
	return s
}

func mustJingle(t *testing.T, raw []byte) *jingle.Jingle {
	t.Helper()
	j, err := jingle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestReviewActionMatrix(t *testing.T) {
	ibb := func(sid string) jingle.Raw {
		r, _ := (&filexfer.IBBTransport{SID: sid, BlockSize: 8192}).Raw()
		return r
	}
	content := func(other ...jingle.Raw) []jingle.Content {
		return []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f", Senders: jingle.SendersInitiator, Other: other}}
	}
	rangeDesc := func(off uint64) jingle.Raw {
		r, _ := (&filexfer.Description{File: filexfer.File{Name: "x.bin", Size: 3 * filexfer.SecurityDefaultChunkSize, HasSize: true, Range: &filexfer.Range{Offset: off}}}).Raw()
		return r
	}
	checksum := func(v []byte) jingle.Raw {
		r, _ := (&filexfer.Checksum{Creator: jingle.CreatorInitiator, Name: "f", File: filexfer.File{Hashes: []filexfer.Hash{{Algo: "sha-256", Value: v}}}}).Raw()
		return r
	}
	received, _ := (&filexfer.Received{Creator: jingle.CreatorInitiator, Name: "f"}).Raw()
	actions := map[string]func(s *reviewSetup) *jingle.Jingle{
		"transport-replace": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: s.sid, Contents: content(ibb("r-" + s.sid))}
		},
		"transport-replace-range": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: s.sid, Contents: content(rangeDesc(filexfer.SecurityDefaultChunkSize), ibb("r-"+s.sid))}
		},
		"transport-accept": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionTransportAccept, SID: s.sid, Contents: content(ibb("a-" + s.sid))}
		},
		"transport-reject": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionTransportReject, SID: s.sid, Contents: content(ibb("a-" + s.sid))}
		},
		"transport-info": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: s.sid, Contents: content(ibb("ibb-" + s.sid))}
		},
		"session-accept": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: s.sid, Responder: "alice@" + testDomain + "/laptop", Contents: content(ibb("ibb-" + s.sid))}
		},
		"checksum-wrong": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionSessionInfo, SID: s.sid, Info: []jingle.Raw{checksum(bytes.Repeat([]byte{1}, 32))}}
		},
		"checksum-right": func(s *reviewSetup) *jingle.Jingle {
			h := sha256.Sum256(s.data)
			return &jingle.Jingle{Action: jingle.ActionSessionInfo, SID: s.sid, Info: []jingle.Raw{checksum(h[:])}}
		},
		"received": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionSessionInfo, SID: s.sid, Info: []jingle.Raw{received}}
		},
		"content-remove": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionContentRemove, SID: s.sid, Contents: content()}
		},
		"terminate-success": func(s *reviewSetup) *jingle.Jingle {
			return &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: s.sid, Reason: &jingle.Reason{Condition: jingle.ReasonSuccess}}
		},
	}
	for _, st := range []reviewState{rsPending, rsConnecting, rsTransferring, rsFailed} {
		for name, act := range actions {
			t.Run(st.String()+"/"+name, func(t *testing.T) {
				s := setupReview(t, st)
				err := s.send(t, act(s))
				ping, _ := (&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: s.sid}).Marshal()
				s.a.SendProtectedIQ(testCtx(t), jidOf("bob@"+testDomain+"/phone"), "set", ping, false)
				in, _ := s.b.Transfer(s.sid)
				t.Logf("%s in %s: answer %v; now %s (%s)", name, st, err, in.State, in.Detail)
				if st == rsPending && in.State != TransferPending && !strings.HasPrefix(name, "terminate") {
					t.Errorf("%s moved a pending offer to %s", name, in.State)
				}
				if in.State == TransferCompleted {
					es, _ := os.ReadDir(s.b.cfg.DownloadDir)
					for _, e := range es {
						got, _ := os.ReadFile(s.b.cfg.DownloadDir + "/" + e.Name())
						if !bytes.Equal(got, s.data) {
							t.Errorf("completed with a wrong file %s", e.Name())
						}
					}
				}
			})
		}
	}
}
