package gateway

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// legPair connects two media legs of a bare gateway over loopback: a
// offers with ma, b answers with mb (set up by bSetup before it connects).
func legPair(t *testing.T, ma, mb CallMedia, bSetup ...func(*mediaPeer)) (a, b *mediaPeer) {
	t.Helper()
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	up := func() (func(webrtc.PeerConnectionState), chan struct{}) {
		c := make(chan struct{})
		closed := false
		return func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected && !closed {
				closed = true
				close(c)
			}
		}, c
	}
	aUp, aC := up()
	bUp, bC := up()
	nop := func(string, string) {}
	a = must(g.newMediaPeer(ma, peerOptions{loopback: true}, nop, aUp))
	t.Cleanup(a.close)
	b = must(g.newMediaPeer(mb, peerOptions{loopback: true}, nop, bUp))
	t.Cleanup(b.close)
	for _, f := range bSetup {
		f(b)
	}
	gathered := func(p *mediaPeer) string {
		<-webrtc.GatheringCompletePromise(p.pc)
		return p.pc.LocalDescription().SDP
	}
	must(a.offer())
	must(b.answer(gathered(a)))
	if err := a.setAnswer(gathered(b)); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, c := range []chan struct{}{aC, bC} {
		select {
		case <-c:
		case <-ctx.Done():
			t.Fatal("the media legs did not connect")
		}
	}
	return a, b
}

// play starts a's playback and returns a channel closed when it ends.
func play(t *testing.T, a *mediaPeer) <-chan struct{} {
	done := make(chan struct{})
	a.startPlayback(testCtx(t), func() { close(done) })
	return done
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestCallMediaGatedUntilBinding: what a leg receives before admit (our
// binding check passed) is neither recorded nor written to a file; after
// admit the held packets and the later ones are recorded, complete.
func TestCallMediaGatedUntilBinding(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "a.ogg")
	writeTestOpus(t, src, testAudioPackets)
	rec := mkdir(t, dir, "rec")
	a, b := legPair(t, CallMedia{Audio: true, AudioFile: src}, CallMedia{Audio: true, RecordDir: rec})
	play(t, a)
	poll(t, "half the packets received", func() bool { return b.count.recvPkts.Load() >= testAudioPackets/2 })
	if n, files, ents := b.recAudio.Load(), b.files(), dirEntries(t, rec); n != 0 || len(files) != 0 || len(ents) != 0 {
		t.Fatalf("before the binding check: %d packets recorded, files %v, directory %v", n, files, ents)
	}
	b.admit()
	poll(t, "every packet recorded", func() bool { return b.recAudio.Load() >= testAudioPackets })
	b.close()
	files := b.files()
	if len(files) != 1 {
		t.Fatalf("recordings %v", files)
	}
	sameMedia(t, "audio", src, files[0])
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recording %v %v", fi.Mode(), err)
	}
}

// TestCallMediaHoldBounded: a leg holds at most holdLimit packets while
// the binding check is pending; later ones are discarded, so the
// recording is the held start and what came after admit.
func TestCallMediaHoldBounded(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "a.ogg")
	writeTestOpus(t, src, testAudioPackets)
	rec := mkdir(t, dir, "rec")
	const hold = 8
	a, b := legPair(t, CallMedia{Audio: true, AudioFile: src}, CallMedia{Audio: true, RecordDir: rec},
		func(b *mediaPeer) { b.holdLimit = hold })
	done := play(t, a)
	poll(t, "20 packets received", func() bool { return b.count.recvPkts.Load() >= 20 })
	b.admit()
	<-done
	poll(t, "every packet received", func() bool { return b.count.recvPkts.Load() >= testAudioPackets })
	b.close()
	rec0 := b.files()[0]
	// At least 19 packets came before admit: hold of them were kept.
	if m, err := compareMedia(src, rec0); err != nil || m.Matched <= hold || m.Missing < 19-hold {
		t.Fatalf("%d of %d packets recorded (%v); want the %d held and those after admit", m.Matched, m.Source, err, hold)
	}
	// The held ones are the first.
	start := filepath.Join(dir, "start.ogg")
	f := must(os.Create(start))
	if err := mediagen.WriteOgg(f, mediagen.OpusPackets(testAudioPackets, mediaSeed(src))[:hold], 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m, err := rtcpeer.ComparePayloads(rec0, start); err != nil || m.Matched != hold {
		t.Fatalf("the recording does not start with the %d held packets: %+v %v", hold, m, err)
	}
}

// TestCallMediaRejectDeletes: a leg whose binding check failed keeps
// nothing: no file for held packets, and the files of a leg admitted
// before are deleted.
func TestCallMediaRejectDeletes(t *testing.T) {
	for _, admitFirst := range []bool{false, true} {
		name := "pending"
		if admitFirst {
			name = "admitted"
		}
		t.Run(name, func(t *testing.T) {
			noLeaks(t)
			dir := t.TempDir()
			src := filepath.Join(dir, "a.ogg")
			writeTestOpus(t, src, testAudioPackets)
			rec := mkdir(t, dir, "rec")
			a, b := legPair(t, CallMedia{Audio: true, AudioFile: src}, CallMedia{Audio: true, RecordDir: rec})
			play(t, a)
			if admitFirst {
				b.admit()
				poll(t, "packets recorded", func() bool { return b.recAudio.Load() >= 10 })
				if len(dirEntries(t, rec)) != 1 {
					t.Fatalf("directory %v", dirEntries(t, rec))
				}
			} else {
				poll(t, "packets received", func() bool { return b.count.recvPkts.Load() >= 10 })
			}
			b.reject()
			b.admit() // too late: a rejected leg stays shut
			b.close()
			if files, ents := b.files(), dirEntries(t, rec); len(files) != 0 || len(ents) != 0 {
				t.Fatalf("after a failed binding: files %v, directory %v", files, ents)
			}
		})
	}
}

// TestCallRecordingNames: recordings are named from a random prefix of
// the leg (never the peer's session id; two legs differ), created 0600,
// and never open an existing file or a planted link.
func TestCallRecordingNames(t *testing.T) {
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	nop := func(string, string) {}
	onState := func(webrtc.PeerConnectionState) {}
	p1 := must(g.newMediaPeer(CallMedia{Audio: true}, peerOptions{loopback: true}, nop, onState))
	defer p1.close()
	p2 := must(g.newMediaPeer(CallMedia{Audio: true}, peerOptions{loopback: true}, nop, onState))
	defer p2.close()
	if !regexp.MustCompile(`^call-[0-9a-f]{16}$`).MatchString(p1.name) || p1.name == p2.name {
		t.Fatalf("recording names %q %q", p1.name, p2.name)
	}

	dir := t.TempDir()
	for _, mime := range []string{webrtc.MimeTypeOpus, webrtc.MimeTypeVP8} {
		path := filepath.Join(dir, "new-"+filepath.Base(mime))
		w, err := newRecorder(path, mime)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v", mime, err, fi.Mode())
		}

		existing := filepath.Join(dir, "existing-"+filepath.Base(mime))
		if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, "target-"+filepath.Base(mime))
		if err := os.WriteFile(target, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "link-"+filepath.Base(mime))
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{existing, link} {
			if w, err := newRecorder(p, mime); !errors.Is(err, fs.ErrExist) {
				if w != nil {
					w.Close()
				}
				t.Fatalf("%s over %s: %v; want ErrExist", mime, p, err)
			}
		}
		for _, p := range []string{existing, target} {
			if b, err := os.ReadFile(p); err != nil || string(b) != "keep me" {
				t.Fatalf("%s: %q %v: overwritten", p, b, err)
			}
		}
	}
}
