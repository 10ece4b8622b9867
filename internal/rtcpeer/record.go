package rtcpeer

// Receiving: every remote track is read to its end; Opus payloads are
// recorded to Ogg (RFC 7845) and reassembled VP8 frames to IVF.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// oggPageSlack covers the Ogg page headers and lacing of one packet of at
// most MaxOpusPacketBytes, and the two header pages.
const oggPageSlack = 1024

// sink consumes the RTP packets of one remote track; it runs on the
// track's goroutine only.
type sink interface {
	push(*rtp.Packet)
	close()
}

// onTrack reads a received track to its end. Nothing it receives is
// counted or recorded, and no file is opened, before [Peer.Admit]: SRTP is
// up as soon as DTLS is, before the caller's binding check. Until then at
// most [MaxHeldPackets] packets are held; after [Peer.Reject] they and
// the later ones are discarded.
func (p *Peer) onTrack(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	mime := strings.ToLower(tr.Codec().MimeType)
	ssrc := uint32(tr.SSRC())
	p.readSourceRTCP(r, tr.Kind(), ssrc, tr.RID())
	if p.cfg.OnTrack != nil {
		p.goroutine(func() { p.handOver(tr) })
		return
	}
	p.goroutine(func() {
		var s sink
		made := false
		deliver := func(pkts ...*rtp.Packet) {
			if len(pkts) == 0 {
				return
			}
			if !made {
				made = true
				s = p.newSink(mime, ssrc)
			}
			if s == nil {
				return
			}
			for _, pkt := range pkts {
				s.push(pkt)
			}
		}
		defer func() {
			if s != nil {
				s.close()
			}
		}()
		var held []*rtp.Packet
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				if p.gate() == gateOpen {
					deliver(held...) // admitted after the last packet
				}
				return
			}
			switch p.gate() {
			case gateHold:
				if len(held) < p.holdLimit {
					held = append(held, pkt)
				}
			case gateOpen:
				deliver(held...)
				held = nil
				deliver(pkt)
			case gateShut:
				held = nil
			}
		}
	})
}

// handOver gives a received track to Config.OnTrack once it is admitted;
// until then its packets are read and discarded, after Reject or Quiesce
// all of them.
func (p *Peer) handOver(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		switch p.gate() {
		case gateOpen:
			p.cfg.OnTrack(p.playCtx, tr)
			return
		case gateShut:
			if p.playCtx.Err() != nil {
				return
			}
		}
		if _, _, err := tr.Read(buf); err != nil {
			return
		}
	}
}

// newSink makes the sink of an admitted track; nil for a codec that is
// not recorded, or once the Peer is closing or rejected.
func (p *Peer) newSink(mime string, ssrc uint32) sink {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.rejected || p.quiet {
		return nil
	}
	switch mime {
	case strings.ToLower(webrtc.MimeTypeOpus):
		return p.newAudioSink(ssrc)
	case strings.ToLower(webrtc.MimeTypeVP8):
		return p.newVideoSink()
	}
	p.log.Info("rtcpeer: received a track of a codec that is not recorded", "codec", mime)
	return nil
}

// gateState is what a received track does with its packets.
type gateState int

const (
	gateHold gateState = iota // the caller's check is pending: hold
	gateOpen                  // admitted: count and record
	gateShut                  // rejected or quiesced: discard
)

func (p *Peer) gate() gateState {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.rejected || p.quiet:
		return gateShut
	case p.admitted:
		return gateOpen
	}
	return gateHold
}

// Admit lets received media in: call it once the peer is known to be who
// it should be (dtls.Binding.Check on [Peer.RemoteCertificate]), as for
// [Peer.StartPlayback]. The packets held so far are counted and recorded
// first, then the live ones. Admit after [Peer.Reject] does nothing.
func (p *Peer) Admit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.rejected {
		p.admitted = true
	}
}

// Reject shuts received media out for good: the peer is not who it should
// be. Held packets are discarded, nothing more is recorded, and
// [Peer.Close] deletes every recording file (also those of media admitted
// before).
func (p *Peer) Reject() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rejected, p.admitted = true, false
}

// deleteRejected deletes the recordings of a rejected Peer; its goroutines
// have ended.
func (p *Peer) deleteRejected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.rejected {
		return
	}
	for _, f := range p.recordings {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.log.Warn("rtcpeer: recording of a rejected peer not deleted: delete it by hand", "file", f, "err", err)
		}
	}
	p.recordings = nil
}

// recordingFailed records the first error that stopped a recording.
func (p *Peer) recordingFailed(path string, err error) {
	p.log.Warn("rtcpeer: recording stopped", "file", path, "err", err)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recErr == nil {
		p.recErr = fmt.Errorf("rtcpeer: recording %s: %w", filepath.Base(path), err)
	}
}

// openRecording creates the next free recording file of a kind; nil
// without RecordDir or beyond MaxRecordingsPerKind. p.mu is held.
func (p *Peer) openRecording(kind int, name, ext string) *limitFile {
	if p.cfg.RecordDir == "" {
		return nil
	}
	for n := p.recCount[kind]; n < MaxRecordingsPerKind; n++ {
		path := filepath.Join(p.cfg.RecordDir, fmt.Sprintf("%s-%s-%d.%s", p.cfg.Name, name, n, ext))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			if p.recErr == nil {
				p.recErr = fmt.Errorf("rtcpeer: recording: %w", err)
			}
			p.log.Warn("rtcpeer: recording not opened", "err", err)
			return nil
		}
		p.recCount[kind] = n + 1
		p.recordings = append(p.recordings, path)
		return &limitFile{f: f, path: path, limit: p.cfg.MaxRecordingBytes}
	}
	p.log.Warn("rtcpeer: too many tracks of one kind: not recorded", "kind", name)
	return nil
}

// audioSink counts the Opus payloads of a track that arrive in order and
// records them.
type audioSink struct {
	p       *Peer
	ssrc    uint32
	file    *limitFile // nil: not recording
	w       *oggwriter.Writer
	t       *oggwriter.Track
	last    uint16
	started bool
}

func (p *Peer) newAudioSink(ssrc uint32) *audioSink {
	s := &audioSink{p: p, ssrc: ssrc, file: p.openRecording(0, "audio", "ogg")}
	if s.file == nil {
		return s
	}
	var err error
	s.w, err = oggwriter.NewWriter(s.file, oggwriter.WithSeekableOutput(s.file),
		oggwriter.WithSampleRate(opusClockRate), oggwriter.WithChannelCount(opusChannels))
	if err == nil {
		s.t, err = s.w.NewTrack(ssrc)
	}
	if err != nil {
		if p.recErr == nil {
			p.recErr = fmt.Errorf("rtcpeer: recording %s: %w", filepath.Base(s.file.path), err)
		}
		s.file.f.Close()
		s.file, s.w, s.t = nil, nil, nil
	}
	return s
}

func (s *audioSink) push(pkt *rtp.Packet) {
	// Opus has no retransmission here: a packet older than the newest one
	// is a duplicate or too late to play.
	if s.started && int16(pkt.SequenceNumber-s.last) <= 0 {
		return
	}
	s.started, s.last = true, pkt.SequenceNumber
	if len(pkt.Payload) > MaxOpusPacketBytes || opusSamples(pkt.Payload) == 0 {
		return // padding, or not Opus
	}
	s.p.audioPayloads.Add(1)
	if s.t == nil {
		return
	}
	if s.file.pos+int64(len(pkt.Payload))+oggPageSlack > s.file.limit {
		s.stop(ErrRecordingLimit)
		return
	}
	pkt.SSRC = s.ssrc // the Ogg track is bound to the first SSRC
	if err := s.t.WriteRTP(pkt); err != nil {
		s.stop(err)
	}
}

// stop ends the recording at the last whole packet.
func (s *audioSink) stop(err error) {
	s.p.recordingFailed(s.file.path, err)
	s.close()
}

func (s *audioSink) close() {
	if s.w == nil {
		return
	}
	if err := s.w.Close(); err != nil {
		s.p.recordingFailed(s.file.path, err)
	}
	s.w, s.t = nil, nil
}

// videoSink reassembles the VP8 frames of a track (waiting a while for
// late and retransmitted packets), counts them and records them.
type videoSink struct {
	p     *Peer
	asm   *vp8Assembler
	file  *limitFile // nil: not recording
	w     *ivfwriter.IVFWriter
	keyed bool // a key frame was seen: frames count from there
	done  bool // recording stopped
}

func (p *Peer) newVideoSink() *videoSink {
	s := &videoSink{p: p, file: p.openRecording(1, "video", "ivf")}
	s.asm = newVP8Assembler(s.frame)
	return s
}

func (s *videoSink) push(pkt *rtp.Packet) { s.asm.push(pkt) }

func (s *videoSink) frame(ts uint32, data []byte) {
	key := data[0]&1 == 0 // RFC 6386 §9.1: P bit clear
	if !s.keyed && !key {
		return // nothing decodes before the first key frame
	}
	s.keyed = true
	s.p.videoFrames.Add(1)
	if s.file == nil || s.done {
		return
	}
	if s.w == nil {
		if !s.open(data) {
			return
		}
	}
	if s.file.pos+ivfFrameHeaderLen+int64(len(data)) > s.file.limit {
		s.stop(ErrRecordingLimit)
		return
	}
	// ivfwriter takes RTP: hand it the whole frame as one packet behind
	// a VP8 payload descriptor with only S set (RFC 7741 §4.2).
	pkt := &rtp.Packet{
		Header:  rtp.Header{Version: 2, Marker: true, Timestamp: ts},
		Payload: append([]byte{0x10}, data...),
	}
	if err := s.w.WriteRTP(pkt); err != nil {
		s.stop(err)
	}
}

// open starts the IVF file with the dimensions of the first key frame, in
// a 90 kHz timebase with the RTP timestamps as frame timestamps.
func (s *videoSink) open(key []byte) bool {
	width, height := vp8Size(key)
	w, err := ivfwriter.NewWith(s.file, ivfwriter.WithCodec(webrtc.MimeTypeVP8),
		ivfwriter.WithWidthAndHeight(width, height), ivfwriter.WithDirectPTS(), ivfwriter.WithFrameRate(1, vp8ClockRate))
	if err != nil {
		s.stop(err)
		return false
	}
	s.w = w
	return true
}

// vp8Size reads the dimensions of a VP8 key frame (RFC 6386 §9.1), or
// returns 640x480 when the frame has no key frame header.
func vp8Size(f []byte) (width, height uint16) {
	if len(f) >= 10 && f[0]&1 == 0 && f[3] == 0x9d && f[4] == 0x01 && f[5] == 0x2a {
		width = binary.LittleEndian.Uint16(f[6:8]) & 0x3fff
		height = binary.LittleEndian.Uint16(f[8:10]) & 0x3fff
	}
	if width == 0 || height == 0 {
		return 640, 480
	}
	return width, height
}

func (s *videoSink) stop(err error) {
	s.p.recordingFailed(s.file.path, err)
	s.done = true
	s.finish()
}

func (s *videoSink) close() {
	s.asm.flush()
	s.finish()
}

// finish closes the IVF file, writing a header when no frame came so that
// it is a valid empty IVF file.
func (s *videoSink) finish() {
	if s.file == nil || s.file.f == nil {
		return
	}
	if s.w == nil {
		w, err := ivfwriter.NewWith(s.file, ivfwriter.WithCodec(webrtc.MimeTypeVP8),
			ivfwriter.WithDirectPTS(), ivfwriter.WithFrameRate(1, vp8ClockRate))
		if err == nil {
			s.w = w
		}
	}
	if s.w != nil {
		if err := s.w.Close(); err != nil {
			s.p.recordingFailed(s.file.path, err)
		}
	}
	s.file.Close()
	s.done = true
}

// limitFile is a recording file that refuses to grow beyond limit. It is
// the io.Writer, io.Seeker and io.WriterAt the pion writers are given.
type limitFile struct {
	f     *os.File
	path  string
	pos   int64
	limit int64
}

func (l *limitFile) Write(b []byte) (int, error) {
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.pos+int64(len(b)) > l.limit {
		return 0, ErrRecordingLimit
	}
	n, err := l.f.Write(b)
	l.pos += int64(n)
	return n, err
}

func (l *limitFile) WriteAt(b []byte, off int64) (int, error) {
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if off+int64(len(b)) > l.limit {
		return 0, ErrRecordingLimit
	}
	return l.f.WriteAt(b, off)
}

func (l *limitFile) Seek(off int64, whence int) (int64, error) {
	if l.f == nil {
		return 0, os.ErrClosed
	}
	pos, err := l.f.Seek(off, whence)
	if err == nil {
		l.pos = pos
	}
	return pos, err
}

// Close closes the file once.
func (l *limitFile) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

var (
	_ io.WriteSeeker = (*limitFile)(nil)
	_ io.WriterAt    = (*limitFile)(nil)
)
