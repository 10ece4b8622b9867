package gateway

// The XEP-0343 data channel transport of the file channel: one
// filexfer.DataChannel (a PeerConnection with a fresh DTLS certificate,
// bound to the fingerprint of the protected Jingle) per session, one
// reliable ordered channel per content, labelled with the content name.
// Every content of a session carries the same transport element; the
// candidates trickle in transport-info of the first content that used
// it. A transport-replace to the data channel starts a fresh one.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// maxHeldCandidates bounds our local candidates held before the
// description is acknowledged.
const maxHeldCandidates = 2 * jingle.MaxCandidates

// dcTransport is the fileTransport of the data channel; its state lives
// in the transfer (x.dc).
type dcTransport struct{ x *transfer }

// dcState is the data channel of a transfer.
type dcState struct {
	d       *filexfer.DataChannel
	content string // the content whose transport-info carries the candidates
	env     *transportEnv
	local   jingle.Raw // our transport element
	remote  jingle.Raw // the peer's, once applied
	offerer bool       // we called Offer (SetAnswer still to come)
	applied bool       // the peer's description is set

	mu    sync.Mutex
	held  []*filexfer.DataChannelTransport
	ready bool // our description was acknowledged: send candidates at once
	out   chan *filexfer.DataChannelTransport
	stop  chan struct{}
	wg    sync.WaitGroup
}

func (dcTransport) kind() filexfer.TransportKind { return filexfer.TransportDataChannel }

// fresh makes a new data channel for the transfer, closing the old one.
func (t dcTransport) fresh(e *transportEnv) (*dcState, error) {
	x := t.x
	g := x.g
	s := &dcState{content: e.content, env: e, out: make(chan *filexfer.DataChannelTransport, maxHeldCandidates), stop: make(chan struct{})}
	cfg := filexfer.DataChannelConfig{SID: x.id, Peer: x.peer, Device: x.dev, ICEServers: g.cfg.ICEServers,
		RelayOnly: g.cfg.RelayOnly, LoopbackOnly: g.cfg.CallLoopbackOnly || g.callHooks.loopback,
		OnCandidate: s.candidate}
	d, err := filexfer.NewDataChannel(cfg)
	if err != nil {
		return nil, err
	}
	s.d = d
	s.wg.Add(2)
	go s.sendLoop()
	go s.recvLoop()
	x.mu.Lock()
	old := x.dc
	x.dc = s
	x.mu.Unlock()
	if old != nil {
		old.close()
	}
	return s, nil
}

// current returns the transfer's data channel.
func (t dcTransport) current() *dcState {
	t.x.mu.Lock()
	defer t.x.mu.Unlock()
	return t.x.dc
}

func (t dcTransport) offer(ctx context.Context, e *transportEnv) (jingle.Raw, error) {
	if s := t.current(); s != nil && s.offerer && !s.applied && s.d.Err() == nil {
		return s.local, nil // another content of the same session-initiate
	}
	s, err := t.fresh(e)
	if err != nil {
		return jingle.Raw{}, err
	}
	tr, err := s.d.Offer()
	if err == nil {
		s.local, err = tr.Raw()
	}
	if err != nil {
		return jingle.Raw{}, err
	}
	s.offerer = true
	return s.local, nil
}

func (t dcTransport) accept(ctx context.Context, e *transportEnv, theirs jingle.Raw) (jingle.Raw, error) {
	if s := t.current(); s != nil && !s.offerer && s.d.Err() == nil && s.remote.Equal(theirs) {
		return s.local, nil // another content of the same session-initiate
	}
	remote, ok, err := filexfer.ParseDataChannelTransport(theirs)
	if err != nil || !ok {
		return jingle.Raw{}, fmt.Errorf("%w: not a data channel transport: %v", filexfer.ErrDataChannelProtocol, err)
	}
	s, err := t.fresh(e)
	if err != nil {
		return jingle.Raw{}, err
	}
	tr, err := s.d.Answer(remote)
	if err == nil {
		s.local, err = tr.Raw()
	}
	if err != nil {
		return jingle.Raw{}, err
	}
	s.remote, s.applied = theirs, true
	return s.local, nil
}

func (t dcTransport) connect(ctx context.Context, e *transportEnv, ours, theirs jingle.Raw) (io.ReadWriteCloser, error) {
	s := t.current()
	if s == nil {
		return nil, errors.New("gateway: no data channel was negotiated")
	}
	if s.offerer && !s.applied {
		remote, ok, err := filexfer.ParseDataChannelTransport(theirs)
		if err != nil || !ok {
			return nil, fmt.Errorf("%w: the answer is not a data channel transport: %v", filexfer.ErrDataChannelProtocol, err)
		}
		if err := s.d.SetAnswer(remote); err != nil {
			return nil, err
		}
		s.remote, s.applied = theirs, true
	}
	s.acknowledged()
	if err := s.d.Connected(ctx); err != nil {
		return nil, err
	}
	if e.sender {
		return s.d.Open(ctx, e.content)
	}
	return s.d.Accept(ctx, e.content)
}

// candidate takes a local candidate from pion (must not block).
func (s *dcState) candidate(tr *filexfer.DataChannelTransport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready {
		if len(s.held) < maxHeldCandidates {
			s.held = append(s.held, tr)
		}
		return
	}
	select {
	case s.out <- tr:
	default:
	}
}

// acknowledged: our description reached the peer; held candidates go.
func (s *dcState) acknowledged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return
	}
	s.ready = true
	for _, tr := range s.held {
		select {
		case s.out <- tr:
		default:
		}
	}
	s.held = nil
}

// sendLoop sends our candidates as transport-info, one at a time.
func (s *dcState) sendLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case tr := <-s.out:
			r, err := tr.Raw()
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), fileSendTimeout)
			if err := s.env.sendInfo(ctx, r); err != nil {
				s.env.g.log.Info("data channel candidate not sent", "transfer", s.env.sid, "err", err)
			}
			cancel()
		}
	}
}

// recvLoop applies the peer's trickled candidates.
func (s *dcState) recvLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case r := <-s.env.info:
			tr, ok, err := filexfer.ParseDataChannelTransport(r)
			if err != nil || !ok {
				continue
			}
			if err := s.d.AddRemoteCandidates(tr); err != nil {
				s.env.g.log.Info("data channel candidate refused", "transfer", s.env.sid, "err", err)
			}
		}
	}
}

func (s *dcState) close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.d.Close()
	s.wg.Wait()
}
