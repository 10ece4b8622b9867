// Package xferbench measures file transfer throughput next to the raw
// library or tool it is compared with, in the same run, and prints the
// table of `securejingle bench` (docs/protocol.md, file transfer,
// performance). Each Comparison runs ours and the baseline alternately,
// so that both see the same machine load.
package xferbench

import (
	"context"
	"fmt"
	"io"
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
}

// Row is the result of a Comparison.
type Row struct {
	What               string
	Ours, Baseline     string  // case names
	OursMBps, BaseMBps float64 // best of the runs; 0 when not measured
	Ratio              float64 // OursMBps / BaseMBps; 0 without a baseline
	Met                bool
	Note               string // why the baseline was skipped, or an error
}

// mbps is the rate of n bytes in d, in MB/s (10^6 bytes).
func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds() / 1e6
}

// Measure runs c's two cases alternately, runs times each, and keeps the
// best rate of each.
func Measure(ctx context.Context, c Comparison, runs int) Row {
	row := Row{What: c.What, Ours: c.Ours.Name, Baseline: c.Baseline.Name}
	runs = max(runs, 1)
	var baseErr, oursErr error
	for i := 0; i < runs; i++ {
		if c.Baseline.Run != nil && baseErr == nil {
			d, err := c.Baseline.Run(ctx)
			if err != nil {
				baseErr = err
			} else {
				row.BaseMBps = max(row.BaseMBps, mbps(c.Bytes, d))
			}
		}
		if oursErr == nil {
			d, err := c.Ours.Run(ctx)
			if err != nil {
				oursErr = err
			} else {
				row.OursMBps = max(row.OursMBps, mbps(c.Bytes, d))
			}
		}
	}
	var notes []string
	if oursErr != nil {
		notes = append(notes, "ours: "+oursErr.Error())
	}
	if baseErr != nil {
		notes = append(notes, "baseline: "+baseErr.Error())
	}
	row.Note = strings.Join(notes, "; ")
	if row.BaseMBps > 0 && row.OursMBps > 0 {
		row.Ratio = row.OursMBps / row.BaseMBps
	}
	row.Met = oursErr == nil && row.OursMBps > 0
	if c.MinRatio > 0 && row.BaseMBps > 0 && row.Ratio < c.MinRatio {
		row.Met = false
	}
	if c.MinMBps > 0 && row.OursMBps < c.MinMBps {
		row.Met = false
	}
	return row
}

// Print writes rows as a table.
func Print(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tours\tMB/s\tbaseline\tMB/s\tratio\ttarget\tnote")
	for _, r := range rows {
		base, ratio := "-", "-"
		if r.BaseMBps > 0 {
			base = fmt.Sprintf("%.0f", r.BaseMBps)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		met := "met"
		if !r.Met {
			met = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\n", r.What, r.Ours, r.OursMBps, r.Baseline, base, ratio, met, r.Note)
	}
	tw.Flush()
}
