package rtcpeer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

func dirNames(t *testing.T, dir string) []string {
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

// TestGatedUntilAdmit: what a peer receives before Admit (the caller's
// binding check passed) is neither counted nor recorded, and no file is
// opened; after Admit the held packets and the later ones are recorded,
// complete.
func TestGatedUntilAdmit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, time.Second, 11)
	rec := filepath.Join(dir, "rec")
	if err := os.Mkdir(rec, 0o700); err != nil {
		t.Fatal(err)
	}
	a := newPeer(t, Config{LoopbackOnly: true, Audio: true, AudioFile: src.Ogg})
	b := newPeer(t, Config{Name: "held", LoopbackOnly: true, Audio: true, RecordDir: rec})
	connectHeld(t, a, b)
	a.StartPlayback()
	eventually(t, "half the packets received", func() bool { return b.Stats().PacketsReceived >= uint64(src.Packets/2) })
	if s, ents := b.Stats(), dirNames(t, rec); s.AudioPayloads != 0 || len(s.Recordings) != 0 || len(ents) != 0 {
		t.Fatalf("before Admit: %d payloads counted, recordings %v, directory %v", s.AudioPayloads, s.Recordings, ents)
	}
	b.Admit()
	waitClosed(t, "playback ends", a.PlaybackDone())
	eventually(t, "all packets recorded", func() bool { return b.Stats().AudioPayloads == uint64(src.Packets) })
	b.Close()
	if r := b.Recordings(); len(r) != 1 {
		t.Fatalf("recordings %v", r)
	} else if m, err := ComparePayloads(src.Ogg, r[0]); err != nil || m.Missing != 0 {
		t.Fatalf("%+v %v", m, err)
	}
}

// TestHoldBounded: at most holdLimit packets are held before Admit; the
// recording is the held start and what came after.
func TestHoldBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, time.Second, 12)
	a := newPeer(t, Config{LoopbackOnly: true, Audio: true, AudioFile: src.Ogg})
	b := newPeer(t, Config{Name: "bounded", LoopbackOnly: true, Audio: true, RecordDir: dir})
	const hold = 8
	b.holdLimit = hold // before any track: no goroutine reads it yet
	connectHeld(t, a, b)
	a.StartPlayback()
	eventually(t, "20 packets received", func() bool { return b.Stats().PacketsReceived >= 20 })
	b.Admit()
	waitClosed(t, "playback ends", a.PlaybackDone())
	eventually(t, "all packets received", func() bool { return b.Stats().PacketsReceived >= uint64(src.Packets) })
	b.Close()
	rec := b.Recordings()[0]
	// At least 19 packets came before Admit: hold of them were kept.
	if m, err := ComparePayloads(src.Ogg, rec); err != nil || m.Matched <= hold || m.Missing < 19-hold {
		t.Fatalf("%+v %v: want the %d held and those after Admit", m, err, hold)
	}
	start := filepath.Join(dir, "start.ogg")
	f, err := os.Create(start)
	if err != nil {
		t.Fatal(err)
	}
	if err := mediagen.WriteOgg(f, mediagen.OpusPackets(src.Packets, 12)[:hold], 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m, err := ComparePayloads(rec, start); err != nil || m.Matched != hold {
		t.Fatalf("the recording does not start with the %d held packets: %+v %v", hold, m, err)
	}
}

// TestRejectDeletes: a rejected peer keeps nothing: no file for held
// packets, and the files of media admitted before are deleted by Close.
func TestRejectDeletes(t *testing.T) {
	for _, admitFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "held", true: "admitted"}[admitFirst], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := testMedia(t, dir, time.Second, 13)
			rec := filepath.Join(dir, "rec")
			if err := os.Mkdir(rec, 0o700); err != nil {
				t.Fatal(err)
			}
			a := newPeer(t, Config{LoopbackOnly: true, Audio: true, AudioFile: src.Ogg})
			b := newPeer(t, Config{Name: "rej", LoopbackOnly: true, Audio: true, RecordDir: rec})
			connectHeld(t, a, b)
			a.StartPlayback()
			if admitFirst {
				b.Admit()
				eventually(t, "packets recorded", func() bool { return b.Stats().AudioPayloads >= 10 })
				if n := dirNames(t, rec); len(n) != 1 {
					t.Fatalf("directory %v", n)
				}
			} else {
				eventually(t, "packets received", func() bool { return b.Stats().PacketsReceived >= 10 })
			}
			b.Reject()
			b.Admit() // too late: a rejected peer stays shut
			b.Close()
			if r, n := b.Recordings(), dirNames(t, rec); len(r) != 0 || len(n) != 0 {
				t.Fatalf("after Reject: recordings %v, directory %v", r, n)
			}
		})
	}
}

// TestRecordingNeverOverwrites: a recording is created 0600 under the
// next free name; it neither overwrites an existing file nor follows a
// link planted at its name.
func TestRecordingNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	p := newPeer(t, Config{Name: "x", Audio: true, RecordDir: dir})
	existing, link, target := filepath.Join(dir, "x-audio-0.ogg"), filepath.Join(dir, "x-audio-1.ogg"), filepath.Join(dir, "target")
	for _, f := range []string{existing, target} {
		if err := os.WriteFile(f, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	f := p.openRecording(0, "audio", "ogg")
	p.mu.Unlock()
	if f == nil {
		t.Fatal("no recording opened")
	}
	f.Close()
	if f.path != filepath.Join(dir, "x-audio-2.ogg") {
		t.Fatalf("recording %s", f.path)
	}
	if fi, err := os.Stat(f.path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v", f.path, err, fi.Mode())
	}
	for _, f := range []string{existing, target} {
		if b, err := os.ReadFile(f); err != nil || string(b) != "keep me" {
			t.Fatalf("%s: %q %v: overwritten", f, b, err)
		}
	}
}

// TestQuiesce: Quiesce stops playback, recording and the counters while
// DTLS stays up; the recording written so far is kept after Close.
func TestQuiesce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, 20*time.Second, 12)
	rec := filepath.Join(dir, "rec")
	if err := os.Mkdir(rec, 0o700); err != nil {
		t.Fatal(err)
	}
	a := newPeer(t, Config{LoopbackOnly: true, Audio: true, AudioFile: src.Ogg})
	b := newPeer(t, Config{Name: "quiet", LoopbackOnly: true, Audio: true, RecordDir: rec})
	connect(t, a, b)
	a.StartPlayback()
	eventually(t, "some packets recorded", func() bool { return b.Stats().AudioPayloads >= 10 })
	b.Quiesce()
	frozen := b.Stats()
	sent := a.Stats().PacketsSent
	eventually(t, "a sends on", func() bool { return a.Stats().PacketsSent >= sent+25 })
	if s := b.Stats(); s.PacketsReceived != frozen.PacketsReceived || s.AudioPayloads != frozen.AudioPayloads {
		t.Fatalf("b counted after Quiesce: %+v, then %+v", frozen, s)
	}
	a.Quiesce()
	waitClosed(t, "a's playback stops", a.PlaybackDone())
	sentA := a.Stats()
	select {
	case <-a.Done():
		t.Fatal("Quiesce closed the peer")
	default:
	}
	if st := a.State(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("a after Quiesce: %s", st)
	}
	if a.Stats().PacketsSent != sentA.PacketsSent || sentA.PlaybackError != nil {
		t.Fatalf("a after Quiesce: %+v", a.Stats())
	}
	a.Close()
	b.Close()
	r := b.Recordings()
	if len(r) != 1 {
		t.Fatalf("recordings %v", r)
	}
	if fi, err := os.Stat(r[0]); err != nil || fi.Size() == 0 {
		t.Fatalf("the recording written before Quiesce: %v %v", fi, err)
	}
}
