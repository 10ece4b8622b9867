package xferbench

import (
	"context"
	"errors"
	"testing"
)

// TestSOCKS5File runs the SOCKS5 row once on 8 MiB: the transfer
// completes and verifies; the scp baseline runs or is skipped with a
// reason.
func TestSOCKS5File(t *testing.T) {
	ctx := context.Background()
	c, cleanup, err := SOCKS5File(ctx, 8<<20, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if _, err := c.Ours.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Baseline.Run(ctx); err != nil {
		if !errors.Is(err, ErrSkip) {
			t.Fatalf("scp baseline: %v", err)
		}
		t.Logf("scp baseline skipped: %v", err)
	}
}

// BenchmarkSOCKS5File: 256 MiB per op, end to end over SOCKS5 loopback.
func BenchmarkSOCKS5File(b *testing.B) {
	ctx := context.Background()
	const size = 256 << 20
	c, cleanup, err := SOCKS5File(ctx, size, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer cleanup()
	b.SetBytes(size)
	for b.Loop() {
		if _, err := c.Ours.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
