package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// clock is a hand-driven clock.
type clock struct{ t time.Time }

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestPlainLines: without a terminal, at most one line per PlainEvery
// while the file moves, and always the final one.
func TestPlainLines(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	b := New(&out, Options{Now: c.now})
	it := b.Add("movie.mkv", 10_000_000)
	if out.Len() != 0 {
		t.Fatalf("Add printed %q", out.String())
	}
	// Ten updates a tenth of a second apart: the first prints, the next
	// nine fall within the second.
	for i := 1; i <= 10; i++ {
		c.advance(100 * time.Millisecond)
		it.Set(uint64(i) * 100_000)
	}
	if got := lines(out.String()); len(got) != 1 {
		t.Fatalf("%d lines within a second, want 1: %q", len(got), got)
	}
	c.advance(100 * time.Millisecond)
	it.Set(1_100_000)
	got := lines(out.String())
	if len(got) != 2 {
		t.Fatalf("%d lines after a second, want 2: %q", len(got), got)
	}
	// 1 MB/s steady: 8.9 MB left is 9 s.
	if want := "movie.mkv: 11% 1.1 MB of 10.0 MB, 1.0 MB/s, ETA 9s"; got[1] != want {
		t.Errorf("progress line\n got %q\nwant %q", got[1], want)
	}
	c.advance(900 * time.Millisecond)
	it.Finish(false, "sha-256 verified")
	got = lines(out.String())
	if len(got) != 3 {
		t.Fatalf("%d lines after Finish, want 3: %q", len(got), got)
	}
	if want := "movie.mkv: 100% 10.0 MB in 2s, 5.0 MB/s, sha-256 verified"; got[2] != want {
		t.Errorf("final line\n got %q\nwant %q", got[2], want)
	}
	// Nothing after the end.
	it.Set(5)
	it.Finish(true, "late")
	if n := len(lines(out.String())); n != 3 {
		t.Errorf("%d lines after a second Finish, want 3", n)
	}
}

// TestPlainFailed: a failed file's line says where it stopped and why.
func TestPlainFailed(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	b := New(&out, Options{Now: c.now})
	it := b.Add("a.bin", 1000)
	c.advance(time.Second)
	it.Set(250)
	c.advance(time.Second)
	it.Finish(true, "declined by bob@example.org")
	got := lines(out.String())
	if want := "a.bin: failed at 25% (250 B of 1.0 kB): declined by bob@example.org"; len(got) != 2 || got[1] != want {
		t.Errorf("lines %q, want the last to be %q", got, want)
	}
}

// TestRateSmoothing: the rate follows a change of speed gradually, by
// half within RateHalfLife, and the ETA follows the rate.
func TestRateSmoothing(t *testing.T) {
	c := newClock()
	b := New(&bytes.Buffer{}, Options{Now: c.now})
	it := b.Add("f", 100_000_000)
	var done uint64
	step := func(d time.Duration, n uint64) {
		c.advance(d)
		done += n
		it.Set(done)
	}
	for range 10 {
		step(time.Second, 1_000_000) // 1 MB/s
	}
	if r := it.Stats().Rate; r < 999_999 || r > 1_000_001 {
		t.Fatalf("steady rate %f, want 1e6", r)
	}
	// Jump to 3 MB/s for one half-life: halfway, 2 MB/s.
	step(RateHalfLife, 3_000_000*uint64(RateHalfLife/time.Second))
	s := it.Stats()
	if s.Rate < 1_999_000 || s.Rate > 2_001_000 {
		t.Errorf("rate one half-life after the jump %f, want 2e6", s.Rate)
	}
	left := float64(s.Total-s.Done) / s.Rate
	if want := time.Duration(left+0.999999) * time.Second; s.ETA != want {
		t.Errorf("ETA %v, want %v", s.ETA, want)
	}
	// Irregular updates at a steady speed keep the rate.
	for _, d := range []time.Duration{10 * time.Millisecond, 3 * time.Second, 250 * time.Millisecond} {
		for range 20 {
			step(d, uint64(3e6*d.Seconds()))
		}
	}
	if r := it.Stats().Rate; r < 2_990_000 || r > 3_010_000 {
		t.Errorf("rate after irregular steady updates %f, want 3e6", r)
	}
	// A smaller count (the transfer resumed from an earlier offset)
	// restarts the rate instead of going negative.
	c.advance(time.Second)
	it.Set(1000)
	c.advance(time.Second)
	it.Set(501_000)
	if r := it.Stats().Rate; r != 500_000 {
		t.Errorf("rate after a restart %f, want 5e5", r)
	}
}

// TestStats: percent, ETA and the special cases of empty files and no
// rate yet.
func TestStats(t *testing.T) {
	c := newClock()
	b := New(&bytes.Buffer{}, Options{Now: c.now})
	it := b.Add("x", 200)
	s := it.Stats()
	if s.Percent != 0 || s.ETA != -1 || s.Rate != 0 {
		t.Errorf("fresh: %+v", s)
	}
	c.advance(time.Second)
	it.Set(50)
	if s := it.Stats(); s.Percent != 25 || s.ETA != 3*time.Second || s.Rate != 50 {
		t.Errorf("quarter: %+v", s)
	}
	empty := b.Add("empty", 0)
	if s := empty.Stats(); s.Percent != 0 || s.ETA != 0 {
		t.Errorf("empty, before the end: %+v", s)
	}
	empty.Finish(false, "")
	if s := empty.Stats(); s.Percent != 100 {
		t.Errorf("empty, finished: %+v", s)
	}
	// Finish fills a completed file.
	c.advance(time.Second)
	it.Finish(false, "")
	if s := it.Stats(); s.Done != 200 || s.Percent != 100 || s.Elapsed != 2*time.Second {
		t.Errorf("finished: %+v", s)
	}
}

// TestTerminalRedraw: on a terminal the block of lines is redrawn in
// place, no more often than RedrawEvery, and always at the end.
func TestTerminalRedraw(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	b := New(&out, Options{Terminal: true, Width: 100, Now: c.now})
	a := b.Add("a.txt", 1000)
	first := out.String()
	if !strings.HasPrefix(first, "\r\x1b[K") || strings.Contains(first, "\x1b[1A") || strings.Count(first, "\n") != 1 {
		t.Fatalf("first draw %q", first)
	}
	out.Reset()
	bb := b.Add("b.txt", 2000)
	// Two lines now: up one, then both redrawn.
	if got := out.String(); !strings.HasPrefix(got, "\x1b[1A") || strings.Count(got, "\r\x1b[K") != 2 {
		t.Fatalf("second Add drew %q", got)
	}
	out.Reset()
	c.advance(10 * time.Millisecond)
	a.Set(10)
	if out.Len() != 0 {
		t.Errorf("redrawn within RedrawEvery: %q", out.String())
	}
	c.advance(DefaultRedrawEvery)
	a.Set(500)
	got := out.String()
	if !strings.HasPrefix(got, "\x1b[2A") || strings.Count(got, "\n") != 2 {
		t.Fatalf("redraw %q", got)
	}
	for _, want := range []string{"a.txt  [", "50%", "500 B / 1.0 kB", "ETA "} {
		if !strings.Contains(got, want) {
			t.Errorf("redraw %q lacks %q", got, want)
		}
	}
	out.Reset()
	bb.Finish(true, "peer cancelled")
	if got := out.String(); !strings.Contains(got, "failed: peer cancelled") {
		t.Errorf("final draw %q", got)
	}
	out.Reset()
	b.Println("note")
	if got := out.String(); !strings.HasPrefix(got, "\x1b[2A\r\x1b[Jnote\n\r\x1b[K") {
		t.Errorf("Println drew %q", got)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")[1:] {
		l = strings.TrimPrefix(l, "\r\x1b[K")
		if n := len([]rune(l)); n >= 100 {
			t.Errorf("line of %d columns on a 100-column terminal: %q", n, l)
		}
	}
}

// TestHostileName: control characters in a name never reach the
// terminal, and a long name is cut to the width.
func TestHostileName(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	b := New(&out, Options{Terminal: true, Width: 60, Now: c.now})
	b.Add("evil\x1b[2J\rname\n"+strings.Repeat("x", 500), 10)
	got := strings.TrimPrefix(strings.TrimSuffix(out.String(), "\n"), "\r\x1b[K")
	if strings.ContainsAny(got, "\x1b\r\n") {
		t.Errorf("control characters drawn: %q", got)
	}
	if n := len([]rune(got)); n > 59 {
		t.Errorf("line of %d columns on a 60-column terminal", n)
	}
}

type failWriter struct{ n int }

var errWrite = errors.New("write failed")

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errWrite
}

// TestWriteError: the first write error is kept and later writes skipped.
func TestWriteError(t *testing.T) {
	w := &failWriter{}
	c := newClock()
	b := New(w, Options{Now: c.now})
	it := b.Add("f", 10)
	it.Set(1)
	it.Finish(false, "")
	if !errors.Is(b.Err(), errWrite) || w.n != 1 {
		t.Errorf("Err %v after %d writes", b.Err(), w.n)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0s"}, {1499 * time.Millisecond, "1s"}, {59 * time.Second, "59s"}, {187 * time.Second, "3:07"}, {3723 * time.Second, "1:02:03"}, {-time.Second, "0s"}} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
	for _, c := range []struct {
		n    uint64
		want string
	}{{0, "0 B"}, {999, "999 B"}, {1000, "1.0 kB"}, {1_048_576, "1.0 MB"}, {2_500_000_000, "2.5 GB"}, {3_400_000_000_000, "3.4 TB"}} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
