package xferbench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/securejingle/securejingle/filexfer"
)

// SOCKS5File compares a file of size bytes sent end to end over a SOCKS5
// bytestream on loopback — read from dir, encrypted by filexfer.SendStream
// into a connection from filexfer.DialS5B, taken by an
// filexfer.S5BListener, verified, hashed and written to a temporary file in
// dir by a filexfer.Receiver — with scp of the same file to a throwaway
// OpenSSH server on 127.0.0.1 (see [SCP]). Both write to the page cache
// and neither syncs within the timed part (the Receiver's Finish, with
// its fsync, runs after the clock stops). The target is an absolute
// 500 MB/s. The returned cleanup removes the source file.
func SOCKS5File(ctx context.Context, size int64, dir string) (Comparison, func(), error) {
	src, digest, err := sourceFile(dir, size)
	if err != nil {
		return Comparison{}, func() {}, err
	}
	scp := SCP(src, dir)
	cleanup := func() {
		scp.Close()
		os.Remove(src)
	}
	return Comparison{
		What: "file over SOCKS5 loopback, end to end", Bytes: size, MinMBps: 500,
		Ours: Case{Name: "filexfer S5B", Run: func(ctx context.Context) (time.Duration, error) {
			return s5bOnce(ctx, src, digest, size, dir)
		}},
		Baseline: Case{Name: "scp to local sshd", Run: scp.Run},
	}, cleanup, nil
}

// sourceFile writes size random bytes to a new file in dir and returns
// its path and sha-256.
func sourceFile(dir string, size int64) (string, []byte, error) {
	f, err := os.CreateTemp(dir, ".bench-src-*")
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		rand.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", nil, err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", nil, err
	}
	return f.Name(), h.Sum(nil), nil
}

// s5bOnce runs one transfer of the file at src and returns the time from
// the SOCKS5 dial to the verified end of the stream.
func s5bOnce(ctx context.Context, src string, digest []byte, size int64, dir string) (time.Duration, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	p := streamParams(size)
	l, err := filexfer.ListenS5B([]string{"127.0.0.1:0"})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	r, err := filexfer.NewReceiver(p, dir, "bench-s5b", filexfer.ReceiverOptions{})
	if err != nil {
		return 0, err
	}
	defer r.Abort()
	dst := filexfer.DstAddr("bench-sid", "a@bench.test/1", "b@bench.test/2")

	start := time.Now()
	recvd := make(chan error, 1)
	go func() {
		c, err := l.Accept(ctx, dst)
		if err != nil {
			recvd <- err
			return
		}
		defer c.Close()
		recvd <- r.Receive(ctx, c, nil)
	}()
	c, err := filexfer.DialS5B(ctx, l.Addrs()[0].String(), dst)
	if err != nil {
		return 0, err
	}
	err = filexfer.SendStream(ctx, c, f, p, 0, filexfer.StreamOptions{})
	c.Close()
	if err != nil {
		<-recvd
		return 0, err
	}
	if err := <-recvd; err != nil {
		return 0, err
	}
	d := time.Since(start)
	path, err := r.Finish(filexfer.Hash{Algo: "sha-256", Value: digest})
	if err != nil {
		return 0, fmt.Errorf("received file: %w", err)
	}
	os.Remove(path)
	return d, nil
}

// errNoSSHD wraps ErrSkip when OpenSSH's server or client is missing.
var errNoSSHD = fmt.Errorf("%w: OpenSSH server not available", ErrSkip)

// scpTarget is the destination file of the scp runs.
func scpTarget(dir string) string { return filepath.Join(dir, ".bench-scp-dst") }

// removeIfExists removes path, ignoring a missing file.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
