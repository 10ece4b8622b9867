package xferbench

import (
	"context"
	"testing"
)

// TestDataChannel runs each case of the data channel rows once on 4 MiB:
// the raw pion baseline, our pipe and the file end to end complete, every
// byte arrives and the file's hash verifies.
func TestDataChannel(t *testing.T) {
	ctx := context.Background()
	b, err := DataChannel(ctx, 4<<20, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cs := b.Comparisons()
	if len(cs) != 2 {
		t.Fatalf("%d comparisons, want 2", len(cs))
	}
	for _, c := range []Case{cs[0].Baseline, cs[0].Ours, cs[1].Ours} {
		if _, err := c.Run(ctx); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
}

// BenchmarkDataChannel: the data channel rows of `securejingle bench`,
// 64 MiB per run, b.N runs of each case interleaved with the raw pion
// baseline; the metrics are the medians and the ratio of the medians.
func BenchmarkDataChannel(b *testing.B) {
	ctx := context.Background()
	const size = 64 << 20
	d, err := DataChannel(ctx, size, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ResetTimer()
	for i, c := range d.Comparisons() {
		r := Measure(ctx, c, b.N)
		if r.Note != "" {
			b.Fatal(r.Note)
		}
		name := []string{"pipe", "file"}[i]
		b.ReportMetric(r.BaseMBps, name+"-raw-MB/s")
		b.ReportMetric(r.OursMBps, name+"-ours-MB/s")
		b.ReportMetric(100*r.Ratio, name+"-ours/raw-%")
		b.ReportMetric(r.BaseCPU, name+"-raw-cpu-ns/B")
		b.ReportMetric(r.OursCPU, name+"-ours-cpu-ns/B")
	}
	b.ReportMetric(0, "ns/op")
}
