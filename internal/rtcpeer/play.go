package rtcpeer

// Playback: files into the local tracks, paced in real time.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// defaultFramePeriod is the duration given to the last frame of an IVF
// file whose timebase is not a frame rate and that has a single frame.
const defaultFramePeriod = time.Second / 30

// StartPlayback starts playing AudioFile and VideoFile into their tracks
// as soon as the connection is (or already is) connected, each from its
// start, in real time. Call it once the peer is known to be who it should
// be (dtls.Binding.Check on [Peer.RemoteCertificate]): nothing is sent
// before. Playback ends at the end of the files (unless Config.Loop) or
// when the Peer closes; [Peer.PlaybackDone] tells when. Later calls do
// nothing.
func (p *Peer) StartPlayback() {
	p.mu.Lock()
	if p.playing {
		p.mu.Unlock()
		return
	}
	p.playing = true
	p.mu.Unlock()
	started := p.goroutine(func() {
		defer p.playDoneOnce.Do(func() { close(p.playDone) })
		select {
		case <-p.connected:
		case <-p.playCtx.Done():
			return
		}
		var wg sync.WaitGroup
		for _, play := range []struct {
			track *webrtc.TrackLocalStaticSample
			f     func(context.Context) error
		}{{p.audio, p.playAudio}, {p.video, p.playVideo}} {
			if play.track == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := play.f(p.playCtx); err != nil {
					p.log.Warn("rtcpeer: playback stopped", "err", err)
					p.mu.Lock()
					if p.playErr == nil {
						p.playErr = err
					}
					p.mu.Unlock()
				}
			}()
		}
		wg.Wait()
	})
	if !started {
		p.playDoneOnce.Do(func() { close(p.playDone) })
	}
}

// PlaybackDone returns a channel closed when playback has ended: every
// file played to its end, or the Peer closed. It is not closed before
// [Peer.StartPlayback] (or Close) is called.
func (p *Peer) PlaybackDone() <-chan struct{} { return p.playDone }

// sleepUntil waits until t or until ctx ends; it reports whether t came.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		if !timer.Stop() {
			<-timer.C
		}
		return false
	case <-timer.C:
		return true
	}
}

// playAudio sends the Opus packets of AudioFile, each at its time: the
// sum of the durations of the packets before it, as their TOC bytes give
// them (what the Ogg granule positions count).
func (p *Peer) playAudio(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	start := time.Now()
	var at time.Duration
	for {
		o, err := openOgg(p.cfg.AudioFile)
		if err != nil {
			return err
		}
		for {
			pkt, err := o.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				o.Close()
				return err
			}
			d := opusDuration(pkt)
			if d == 0 {
				o.Close()
				return o.bad(-1, "audio packet with an invalid Opus TOC byte", nil)
			}
			if !sleepUntil(ctx, timer, start.Add(at)) {
				o.Close()
				return nil
			}
			// A write fails while ICE has no path (before a restart
			// recovers it); playback keeps its clock and goes on.
			if err := p.audio.WriteSample(media.Sample{Data: pkt, Duration: d}); err != nil {
				p.log.Debug("rtcpeer: audio sample not sent", "err", err)
			}
			p.audioSent.Add(1)
			at += d
		}
		o.Close()
		if !p.cfg.Loop {
			return nil
		}
	}
}

// playVideo sends the frames of VideoFile, each at its timestamp.
func (p *Peer) playVideo(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	start := time.Now()
	var base time.Duration // play time of the current pass's first frame
	for {
		end, err := p.playIVFOnce(ctx, timer, start.Add(base))
		if err != nil || end < 0 || !p.cfg.Loop {
			return err
		}
		base += end
	}
}

// playIVFOnce plays VideoFile once with its first frame at t0. It returns
// the play time of the whole pass (the last frame's time plus its
// duration), or -1 when ctx ended.
func (p *Peer) playIVFOnce(ctx context.Context, timer *time.Timer, t0 time.Time) (time.Duration, error) {
	x, err := openIVF(p.cfg.VideoFile)
	if err != nil {
		return 0, err
	}
	defer x.Close()
	f, err := os.Open(p.cfg.VideoFile)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return 0, x.bad(0, "bad IVF header", err)
	}
	cur, err := x.next()
	if errors.Is(err, io.EOF) {
		return 0, x.bad(x.offset, "no frames", nil)
	}
	if err != nil {
		return 0, err
	}
	var dur time.Duration
	for {
		// The index reads a frame's header before ivfreader allocates
		// the frame: the size is checked first.
		nxt, nerr := x.next()
		if nerr != nil && !errors.Is(nerr, io.EOF) {
			return 0, nerr
		}
		frame, _, err := r.ParseNextFrame()
		if err != nil {
			return 0, x.bad(-1, "bad IVF frame", err)
		}
		if len(frame) != cur.size {
			return 0, x.bad(-1, "file changed while playing", nil)
		}
		switch {
		case nerr == nil:
			dur = nxt.at - cur.at
		case dur > 0: // the last frame lasts as long as the one before
		case x.period > 0:
			dur = x.period
		default:
			dur = defaultFramePeriod
		}
		if !sleepUntil(ctx, timer, t0.Add(cur.at)) {
			return -1, nil
		}
		if err := p.video.WriteSample(media.Sample{Data: frame, Duration: dur}); err != nil {
			p.log.Debug("rtcpeer: video frame not sent", "err", err)
		}
		p.videoSent.Add(1)
		if nerr != nil {
			return cur.at + dur, nil
		}
		cur = nxt
	}
}
