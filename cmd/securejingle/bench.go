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
	runs := fs.Int("runs", 3, "runs of each case of the AEAD and SOCKS5 rows; the median counts")
	dir := fs.String("dir", os.TempDir(), "directory for the receive rows' temporary files")
	fileMiB := fs.Int64("file-size", 1024, "MiB of the end-to-end SOCKS5 file row and its scp baseline (0: leave the row out)")
	dcMiB := fs.Int64("dc-size", 64, "MiB of each run of the data channel rows (0: leave them out)")
	dcRuns := fs.Int("dc-runs", 11, "runs of each case of the data channel rows; the median counts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sizeMiB <= 0 || *sizeMiB > 16<<10 {
		return fmt.Errorf("bench: -size must be 1..16384 MiB")
	}
	if *fileMiB < 0 || *fileMiB > 16<<10 {
		return fmt.Errorf("bench: -file-size must be 0..16384 MiB")
	}
	if *dcMiB < 0 || *dcMiB > 4<<10 {
		return fmt.Errorf("bench: -dc-size must be 0..4096 MiB (the data is held in memory)")
	}
	if *runs < 1 || *dcRuns < 1 {
		return fmt.Errorf("bench: -runs and -dc-runs must be at least 1")
	}
	size := *sizeMiB << 20
	cs := []xferbench.Comparison{xferbench.ChunkSeal(size), xferbench.ChunkReceive(size, *dir)}
	if *fileMiB > 0 {
		fmt.Fprintf(stderr, "bench: writing a %d MiB source file in %s...\n", *fileMiB, *dir)
		c, cleanup, err := xferbench.SOCKS5File(ctx, *fileMiB<<20, *dir)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer cleanup()
		cs = append(cs, c)
	}
	var rows []xferbench.Row
	missed := false
	measure := func(c xferbench.Comparison, runs int) {
		fmt.Fprintf(stderr, "bench: %s (%d MiB, %d runs)...\n", c.What, c.Bytes>>20, runs)
		r := xferbench.Measure(ctx, c, runs)
		missed = missed || !r.Met
		rows = append(rows, r)
	}
	for _, c := range cs {
		measure(c, *runs)
	}
	if *dcMiB > 0 {
		fmt.Fprintf(stderr, "bench: connecting the data channel pairs...\n")
		b, err := xferbench.DataChannel(ctx, *dcMiB<<20, *dir)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer b.Close()
		for _, c := range b.Comparisons() {
			measure(c, *dcRuns)
		}
	}
	xferbench.Print(stdout, rows)
	if missed {
		return fmt.Errorf("bench: a target was missed (see the table)")
	}
	return nil
}
