package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/securejingle/securejingle/internal/demo"
)

func init() {
	register(command{
		name:    "demo",
		summary: "run the demonstration and print a report",
		run:     runDemo,
	})
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "log engine events (slog) to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return demo.Run(ctx, stdout, log)
}
