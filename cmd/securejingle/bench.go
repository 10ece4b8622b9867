package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/securejingle/securejingle/internal/xferbench"
)

func init() {
	register(command{
		name:    "bench",
		summary: "measure file transfer throughput next to raw AES-GCM (and other baselines) and print a table",
		run:     runBench,
	})
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizeMiB := fs.Int64("size", 256, "MiB moved by each run of the AEAD rows")
	runs := fs.Int("runs", 3, "runs of each case; the best one counts")
	dir := fs.String("dir", os.TempDir(), "directory for the receive rows' temporary files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sizeMiB <= 0 || *sizeMiB > 16<<10 {
		return fmt.Errorf("bench: -size must be 1..16384 MiB")
	}
	size := *sizeMiB << 20
	cs := []xferbench.Comparison{xferbench.ChunkSeal(size), xferbench.ChunkReceive(size, *dir)}
	var rows []xferbench.Row
	missed := false
	for _, c := range cs {
		fmt.Fprintf(stderr, "bench: %s (%d MiB, %d runs)...\n", c.What, c.Bytes>>20, *runs)
		r := xferbench.Measure(ctx, c, *runs)
		missed = missed || !r.Met
		rows = append(rows, r)
	}
	xferbench.Print(stdout, rows)
	if missed {
		return fmt.Errorf("bench: a target was missed (see the table)")
	}
	return nil
}
