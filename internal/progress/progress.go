// Package progress draws the progress of byte transfers for the command
// line: bytes done of the total, the percentage, a smoothed rate and the
// time left, for one or several files.
//
// On a terminal a [Bar] keeps one line per file and redraws them in place
// (ANSI cursor-up and erase-line); elsewhere (a pipe, a log file) it
// prints plain lines: at most one per file per [Options.PlainEvery] while
// the file moves, and always its final line. Names are shown with control
// characters replaced, since they may come from a peer.
//
// The clock and the writer are injected, so the output is deterministic
// under test.
package progress

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// Defaults of [Options].
const (
	// DefaultPlainEvery is the least interval between two plain lines of
	// one file.
	DefaultPlainEvery = time.Second
	// DefaultRedrawEvery is the least interval between two redraws on a
	// terminal (the final state is always drawn).
	DefaultRedrawEvery = 100 * time.Millisecond
	// DefaultWidth is the line width on a terminal of unknown width.
	DefaultWidth = 80
	// RateHalfLife is the half-life of the rate average: a change of
	// speed shows half within this time.
	RateHalfLife = 2 * time.Second
	// minWidth is the least width a line is laid out for.
	minWidth = 40
	// maxNameLen bounds the name kept for a file, in bytes.
	maxNameLen = 255
)

// Options configure a [Bar]. The zero Options draw plain lines with the
// real clock.
type Options struct {
	// Terminal redraws the lines in place; false prints plain lines.
	Terminal bool
	// Width is the terminal's width in columns (default [DefaultWidth]).
	Width int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PlainEvery is the least interval between plain lines of a file
	// (default [DefaultPlainEvery]).
	PlainEvery time.Duration
	// RedrawEvery is the least interval between terminal redraws
	// (default [DefaultRedrawEvery]).
	RedrawEvery time.Duration
}

// A Bar shows the progress of files. Create it with [New]. It is safe for
// concurrent use; the zero Bar is not usable.
type Bar struct {
	w    io.Writer
	opts Options

	mu       sync.Mutex
	items    []*Item
	drawn    int       // lines of the block on the screen (terminal)
	lastDraw time.Time // last terminal redraw
	err      error     // first write error; later writes are skipped
}

// New returns a bar writing to w.
func New(w io.Writer, o Options) *Bar {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Width <= 0 {
		o.Width = DefaultWidth
	}
	o.Width = max(o.Width, minWidth)
	if o.PlainEvery <= 0 {
		o.PlainEvery = DefaultPlainEvery
	}
	if o.RedrawEvery <= 0 {
		o.RedrawEvery = DefaultRedrawEvery
	}
	return &Bar{w: w, opts: o}
}

// Err returns the first error writing to the bar's writer.
func (b *Bar) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// An Item is one file of a [Bar]. Its methods are safe for concurrent use.
// The zero Item is not usable: get one from [Bar.Add].
type Item struct {
	b     *Bar
	name  string
	total uint64

	// Guarded by b.mu.
	done      uint64
	start     time.Time // first Set (or Add)
	lastT     time.Time // last rate sample
	lastDone  uint64
	rate      float64 // bytes/s, smoothed; -1 until the first sample
	finished  bool
	failed    bool
	note      string
	end       time.Time
	lastPlain time.Time // last plain line
	plainAny  bool      // a plain line was printed
}

// Add adds a file named name of total bytes, at 0 bytes done.
func (b *Bar) Add(name string, total uint64) *Item {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	it := &Item{b: b, name: cleanName(name), total: total, start: now, lastT: now, rate: -1}
	b.items = append(b.items, it)
	if b.opts.Terminal {
		b.redrawLocked(now, true)
	}
	return it
}

// Set records that done bytes of the file are through. done only grows:
// a smaller value (a resumed transfer counting again) restarts the rate.
func (it *Item) Set(done uint64) {
	b := it.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if it.finished {
		return
	}
	now := b.opts.Now()
	it.sample(now, done)
	if b.opts.Terminal {
		b.redrawLocked(now, false)
		return
	}
	if !it.plainAny || now.Sub(it.lastPlain) >= b.opts.PlainEvery {
		it.lastPlain, it.plainAny = now, true
		b.printLocked(it.plainLine() + "\n")
	}
}

// sample adds a rate sample.
func (it *Item) sample(now time.Time, done uint64) {
	if done < it.lastDone {
		it.lastDone, it.lastT, it.rate, it.start = done, now, -1, now
	}
	it.done = done
	dt := now.Sub(it.lastT)
	if dt <= 0 {
		return
	}
	inst := float64(done-it.lastDone) / dt.Seconds()
	if it.rate < 0 {
		it.rate = inst
	} else {
		// An exponential average whose weight follows the time the
		// sample covers, so irregular updates average correctly.
		a := 1 - math.Exp2(-dt.Seconds()/RateHalfLife.Seconds())
		it.rate += a * (inst - it.rate)
	}
	it.lastT, it.lastDone = now, done
}

// Finish ends the file: completed when failed is false, otherwise failed
// with note saying why. The final line is always printed. Later calls do
// nothing.
func (it *Item) Finish(failed bool, note string) {
	b := it.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if it.finished {
		return
	}
	now := b.opts.Now()
	if !failed && it.done < it.total {
		it.sample(now, it.total)
	}
	it.finished, it.failed, it.note, it.end = true, failed, cleanName(note), now
	if b.opts.Terminal {
		b.redrawLocked(now, true)
		return
	}
	b.printLocked(it.plainLine() + "\n")
}

// Println prints a line above the block of progress lines.
func (b *Bar) Println(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.opts.Terminal {
		b.printLocked(s + "\n")
		return
	}
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA\r\x1b[J", b.drawn)
	}
	sb.WriteString(s)
	sb.WriteString("\n")
	b.drawn = 0
	b.printLocked(sb.String())
	b.redrawLocked(b.opts.Now(), true)
}

// redrawLocked redraws the block, at most every RedrawEvery unless force.
func (b *Bar) redrawLocked(now time.Time, force bool) {
	if !force && b.drawn == len(b.items) && now.Sub(b.lastDraw) < b.opts.RedrawEvery {
		return
	}
	b.lastDraw = now
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.drawn)
	}
	for _, it := range b.items {
		sb.WriteString("\r\x1b[K")
		sb.WriteString(it.termLine(b.opts.Width))
		sb.WriteString("\n")
	}
	b.drawn = len(b.items)
	b.printLocked(sb.String())
}

func (b *Bar) printLocked(s string) {
	if b.err != nil {
		return
	}
	_, b.err = io.WriteString(b.w, s)
}

// Stats is an item's progress as the lines show it.
type Stats struct {
	Done, Total uint64
	// Percent is 0 to 100; a file of 0 bytes is at 100 once finished.
	Percent float64
	// Rate is the smoothed rate in bytes per second; 0 before the first
	// sample.
	Rate float64
	// ETA is the time left at the current rate; -1 when unknown.
	ETA time.Duration
	// Elapsed runs from Add (or a restart) to now or to Finish.
	Elapsed time.Duration
}

// Stats returns the item's progress now.
func (it *Item) Stats() Stats {
	b := it.b
	b.mu.Lock()
	defer b.mu.Unlock()
	return it.statsLocked(b.opts.Now())
}

func (it *Item) statsLocked(now time.Time) Stats {
	s := Stats{Done: it.done, Total: it.total, Rate: max(it.rate, 0), ETA: -1}
	switch {
	case it.total > 0:
		s.Percent = min(100, 100*float64(it.done)/float64(it.total))
	case it.finished && !it.failed:
		s.Percent = 100
	}
	end := now
	if it.finished {
		end = it.end
	}
	s.Elapsed = end.Sub(it.start)
	switch {
	case it.done >= it.total:
		s.ETA = 0
	case s.Rate > 0:
		secs := float64(it.total-it.done) / s.Rate
		if secs < float64(math.MaxInt64/int64(time.Second)) {
			s.ETA = time.Duration(math.Ceil(secs)) * time.Second
		}
	}
	return s
}

// average is the mean rate over the item's elapsed time.
func (s Stats) average() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Done) / s.Elapsed.Seconds()
}

// termLine is the item's line on a terminal, at most width columns:
//
//	name  [=====>      ]  45%  12.3 MB / 27.1 MB  5.2 MB/s  ETA 0:03
func (it *Item) termLine(width int) string {
	s := it.statsLocked(it.b.opts.Now())
	var tail string
	switch {
	case it.failed:
		tail = fmt.Sprintf("%3.0f%%  %s / %s  failed", math.Floor(s.Percent), Bytes(s.Done), Bytes(s.Total))
		if it.note != "" {
			tail += ": " + it.note
		}
	case it.finished:
		tail = fmt.Sprintf("100%%  %s  in %s  %s/s", Bytes(s.Total), Duration(s.Elapsed), Bytes(uint64(s.average())))
		if it.note != "" {
			tail += "  " + it.note
		}
	default:
		tail = fmt.Sprintf("%3.0f%%  %s / %s  %s/s  ETA %s", math.Floor(s.Percent), Bytes(s.Done), Bytes(s.Total),
			Bytes(uint64(s.Rate)), eta(s.ETA))
	}
	name := it.name
	nameCols := min(utf8.RuneCountInString(name), max(12, width/3))
	name = fit(name, nameCols)
	barCols := width - nameCols - utf8.RuneCountInString(tail) - 6
	line := name + "  "
	if barCols >= 10 && !it.failed {
		line += "[" + bar(s.Percent, barCols) + "]  "
	}
	return fit(line+tail, width-1)
}

// plainLine is the item's line when not on a terminal.
func (it *Item) plainLine() string {
	s := it.statsLocked(it.b.opts.Now())
	switch {
	case it.failed:
		l := fmt.Sprintf("%s: failed at %.0f%% (%s of %s)", it.name, math.Floor(s.Percent), Bytes(s.Done), Bytes(s.Total))
		if it.note != "" {
			l += ": " + it.note
		}
		return l
	case it.finished:
		l := fmt.Sprintf("%s: 100%% %s in %s, %s/s", it.name, Bytes(s.Total), Duration(s.Elapsed), Bytes(uint64(s.average())))
		if it.note != "" {
			l += ", " + it.note
		}
		return l
	}
	return fmt.Sprintf("%s: %.0f%% %s of %s, %s/s, ETA %s", it.name, math.Floor(s.Percent), Bytes(s.Done), Bytes(s.Total),
		Bytes(uint64(s.Rate)), eta(s.ETA))
}

// bar is a bar of cols columns filled to percent.
func bar(percent float64, cols int) string {
	full := int(percent / 100 * float64(cols))
	full = min(max(full, 0), cols)
	if full == cols {
		return strings.Repeat("=", cols)
	}
	if full == 0 {
		return strings.Repeat(" ", cols)
	}
	return strings.Repeat("=", full-1) + ">" + strings.Repeat(" ", cols-full)
}

// fit cuts s to cols runes, marking a cut with "…".
func fit(s string, cols int) string {
	if cols <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= cols {
		return s
	}
	r := []rune(s)
	return string(r[:cols-1]) + "…"
}

// cleanName replaces control characters, which could move the cursor or
// forge lines, and bounds the length.
func cleanName(s string) string {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return '\uFFFD'
		}
		return r
	}, s)
}

func eta(d time.Duration) string {
	if d < 0 {
		return "--:--"
	}
	return Duration(d)
}

// Duration formats d as "42s", "3:07" or "1:02:03", rounded to seconds.
func Duration(d time.Duration) string {
	secs := int64(d.Round(time.Second) / time.Second)
	if secs < 0 {
		secs = 0
	}
	switch {
	case secs < 60:
		return fmt.Sprintf("%ds", secs)
	case secs < 3600:
		return fmt.Sprintf("%d:%02d", secs/60, secs%60)
	}
	return fmt.Sprintf("%d:%02d:%02d", secs/3600, secs/60%60, secs%60)
}

// Bytes formats n with a decimal unit: "999 B", "12.3 kB", "4.5 MB",
// "1.2 GB", "3.4 TB".
func Bytes(n uint64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n < 1e12:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	}
	return fmt.Sprintf("%.1f TB", float64(n)/1e12)
}

// Terminal reports whether w is a terminal, and its width in columns (0
// when unknown).
func Terminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return true, 0
	}
	return true, cols
}
