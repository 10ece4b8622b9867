package gateway

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/pion/webrtc/v4"
)

// legPair connects two media legs of a bare gateway over loopback: a
// offers with ma, b answers with mb.
func legPair(t *testing.T, ma, mb CallMedia) (a, b *mediaPeer) {
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
	poll(t, "half the packets received", func() bool { return b.stats().packetsReceived >= testAudioPackets/2 })
	if n, files, ents := b.stats().audio, b.files(), dirEntries(t, rec); n != 0 || len(files) != 0 || len(ents) != 0 {
		t.Fatalf("before the binding check: %d packets recorded, files %v, directory %v", n, files, ents)
	}
	b.admit()
	poll(t, "every packet recorded", func() bool { return b.stats().audio >= testAudioPackets })
	b.close()
	files := b.files()
	if len(files) != 1 {
		t.Fatalf("recordings %v", files)
	}
	sameMedia(t, "audio", src, files[0])
	// Named from the leg's own random prefix, readable by its owner only.
	if !regexp.MustCompile(`^call-[0-9a-f]{16}-audio-0\.ogg$`).MatchString(filepath.Base(files[0])) {
		t.Fatalf("recording name %s", files[0])
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recording %v %v", fi.Mode(), err)
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
				poll(t, "packets recorded", func() bool { return b.stats().audio >= 10 })
				if len(dirEntries(t, rec)) != 1 {
					t.Fatalf("directory %v", dirEntries(t, rec))
				}
			} else {
				poll(t, "packets received", func() bool { return b.stats().packetsReceived >= 10 })
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
