// Package xferbench measures file transfer throughput next to the raw
// library or tool it is compared with, in the same run, and prints the
// table of `securejingle bench` (docs/protocol.md, file transfer,
// performance). Each Comparison runs ours and the baseline alternately,
// so that both see the same machine load, and reports medians.
package xferbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A Case is one measured job: it moves Bytes bytes and returns how long
// the part that counts took (set-up excluded), or an error. A case that
// cannot run here (a tool is missing) returns an error wrapping ErrSkip.
type Case struct {
	Name string
	Run  func(ctx context.Context) (time.Duration, error)
}

// ErrSkip marks a case that cannot run on this machine; its message says
// why.
var ErrSkip = fmt.Errorf("skipped")

// A Comparison is ours next to its baseline. The target is met when ours
// reaches MinRatio of the baseline's rate (0: no ratio target) and, when
// MinMBps is set, that absolute rate.
type Comparison struct {
	What     string
	Bytes    int64 // bytes moved by each run of either case
	Ours     Case
	Baseline Case
	MinRatio float64
	MinMBps  float64
	// CPU: both cases run in this process alone, so the process's CPU
	// time over a run is theirs and is reported per byte.
	CPU bool
}

// Row is the result of a Comparison. Rates and CPU times are medians
// over the runs; Min and Max give the spread of the rates.
type Row struct {
	What           string
	Ours, Baseline string // case names
	Runs           int    // runs of each case that completed
	// OursMBps and BaseMBps are the median rates, 0 when not measured.
	OursMBps, BaseMBps float64
	OursMin, OursMax   float64
	BaseMin, BaseMax   float64
	// OursCPU and BaseCPU are the median CPU times per byte in ns, 0
	// when not measured.
	OursCPU, BaseCPU float64
	Ratio            float64 // OursMBps / BaseMBps (ratio of medians); 0 without a baseline
	Met              bool
	Note             string // why the baseline was skipped, or an error
}

// mbps is the rate of n bytes in d, in MB/s (10^6 bytes).
func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds() / 1e6
}

// median returns the median of xs (the mean of the middle two for an
// even count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// series collects the runs of one case.
type series struct {
	rates, cpu []float64
	err        error
}

// run runs cs once (unless an earlier run failed) and records its rate
// and, with cpu, the process's CPU time per byte.
func (s *series) run(ctx context.Context, cs Case, n int64, cpu bool) {
	if cs.Run == nil || s.err != nil {
		return
	}
	c0, cpuOK := processCPU()
	d, err := cs.Run(ctx)
	c1, _ := processCPU()
	if err != nil {
		s.err = err
		return
	}
	s.rates = append(s.rates, mbps(n, d))
	if cpu && cpuOK && n > 0 {
		s.cpu = append(s.cpu, float64((c1-c0).Nanoseconds())/float64(n))
	}
}

// Measure runs c's two cases alternately (baseline, ours, baseline,
// ours, ...), runs times each, and reports the median of each.
func Measure(ctx context.Context, c Comparison, runs int) Row {
	row := Row{What: c.What, Ours: c.Ours.Name, Baseline: c.Baseline.Name}
	runs = max(runs, 1)
	var base, ours series
	for i := 0; i < runs; i++ {
		base.run(ctx, c.Baseline, c.Bytes, c.CPU)
		ours.run(ctx, c.Ours, c.Bytes, c.CPU)
	}
	row.Runs = len(ours.rates)
	row.OursMBps, row.BaseMBps = median(ours.rates), median(base.rates)
	if len(ours.rates) > 0 {
		row.OursMin, row.OursMax = slices.Min(ours.rates), slices.Max(ours.rates)
	}
	if len(base.rates) > 0 {
		row.BaseMin, row.BaseMax = slices.Min(base.rates), slices.Max(base.rates)
	}
	row.OursCPU, row.BaseCPU = median(ours.cpu), median(base.cpu)
	var notes []string
	if ours.err != nil {
		notes = append(notes, "ours: "+ours.err.Error())
	}
	if base.err != nil {
		notes = append(notes, "baseline: "+base.err.Error())
	}
	row.Note = strings.Join(notes, "; ")
	if row.BaseMBps > 0 && row.OursMBps > 0 {
		row.Ratio = row.OursMBps / row.BaseMBps
	}
	row.Met = ours.err == nil && row.OursMBps > 0
	if c.MinRatio > 0 && row.BaseMBps > 0 && row.Ratio < c.MinRatio {
		row.Met = false
	}
	if c.MinMBps > 0 && row.OursMBps < c.MinMBps {
		row.Met = false
	}
	return row
}

// Print writes rows as a table: median MB/s with the range of the runs,
// and the median CPU time per byte where it was measured.
func Print(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tours\tMB/s (min-max)\tcpu ns/B\tbaseline\tMB/s (min-max)\tcpu ns/B\tratio\ttarget\tnote")
	rate := func(m, lo, hi float64) string {
		if m <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f (%.0f-%.0f)", m, lo, hi)
	}
	cpu := func(ns float64) string {
		if ns <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", ns)
	}
	for _, r := range rows {
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		met := "met"
		if !r.Met {
			met = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.What, r.Ours, rate(r.OursMBps, r.OursMin, r.OursMax), cpu(r.OursCPU),
			r.Baseline, rate(r.BaseMBps, r.BaseMin, r.BaseMax), cpu(r.BaseCPU), ratio, met, r.Note)
	}
	tw.Flush()
}
