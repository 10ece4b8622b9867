package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestRun runs the whole demo: every step must pass, and the report must
// show each part of the story.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), &out, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"0 failed", "short authentication string", "pinned the key", "steady-state chat", "answered inside the envelope", "refused it and raised an alert", "bob was alerted", "carol's first message carried her bundle inline"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Errorf("report has a failed step:\n%s", out.String())
	}
}
