package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// demoFileSize is the size of the file alice sends bob.
const demoFileSize = 32 << 20

// fileInClear are strings that would betray a file transfer to the server:
// the file-transfer and transport namespaces, the file's name.
var fileInClear = [][]byte{[]byte("urn:xmpp:jingle"), []byte("file-transfer"), []byte("holiday-video"), []byte("<security"), []byte("streamhost")}

// demoFile sends a file from alice to bob, whose gateway accepts it into
// dir, and shows the hash match, the throughput and what the server saw.
func demoFile(ctx context.Context, r *report, wr *wire, dir string, alice, bob *participant) error {
	src := filepath.Join(dir, "holiday-video.webm")
	if err := writeRandomFile(src, demoFileSize); err != nil {
		return err
	}
	want, err := sha256File(src)
	if err != nil {
		return err
	}
	inbox := filepath.Join(dir, "bob-downloads")
	if err := mkdir(inbox); err != nil {
		return err
	}
	var seen [][]byte
	wr.setTamper(func(st localxmpp.Stanza) localxmpp.Stanza {
		seen = append(seen, bytes.Clone(st.Raw))
		return st
	})
	defer wr.setTamper(nil)
	info, err := alice.gw.SendFiles(ctx, bob.jid.Bare(), []string{src}, gateway.SendOptions{Desc: "the demo's file"})
	if err != nil {
		return err
	}
	// Bob accepts when the offer arrives (the daemon's auto-accept rules
	// do this for the user; here the demo does).
	if _, err := bob.waitFor(20*time.Second, func(ev gateway.Event) bool {
		return ev.Kind == gateway.EventFile && ev.File != nil && ev.File.ID == info.ID && ev.File.State == gateway.TransferPending
	}); err != nil {
		return fmt.Errorf("bob saw no offer: %w", err)
	}
	start := time.Now()
	if err := bob.gw.AcceptTransfer(ctx, info.ID, inbox); err != nil {
		return err
	}
	done := func(p *participant) (gateway.TransferInfo, error) {
		ev, err := p.waitFor(60*time.Second, func(ev gateway.Event) bool {
			return ev.Kind == gateway.EventFile && ev.File != nil && ev.File.ID == info.ID && transferOver(ev.File.State)
		})
		if err != nil {
			return gateway.TransferInfo{}, err
		}
		t := *ev.File
		if t.State != gateway.TransferCompleted {
			return t, fmt.Errorf("%s: transfer %s: %s", p.name, t.State, t.Detail)
		}
		return t, nil
	}
	bi, err := done(bob)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	ai, err := done(alice)
	if err != nil {
		return err
	}
	r.check("alice offers a file; the XEP-0234 session and the file key travel inside envelopes to bob's certified device", nil,
		"transfer %s over %s, suite %s, bob's device %d", short(info.ID), ai.Transport, ai.Suite, ai.PeerDevice)
	if len(bi.Files) != 1 {
		return fmt.Errorf("bob's transfer has %d files", len(bi.Files))
	}
	got, err := sha256File(bi.Files[0].Path)
	var mismatch error
	if err == nil && got != want {
		mismatch = fmt.Errorf("received sha-256 %s, sent %s", got[:16], want[:16])
	}
	r.check("the received file's sha-256 equals the source's", errwrap(err, mismatch), "%s… (%d MiB) saved as %s", want[:16], demoFileSize>>20, filepath.Base(bi.Files[0].Path))
	rate := "?"
	if d := bi.Ended.Sub(bi.Started); !bi.Started.IsZero() && d > 0 {
		rate = fmt.Sprintf("%.0f MB/s", float64(demoFileSize)/d.Seconds()/1e6)
	}
	r.check("throughput", nil, "%s from the first byte to the verified file; %v from accept to the end, with the transport set-up, on loopback", rate, elapsed.Round(time.Millisecond))
	var leak error
	for _, st := range seen {
		st = base64Run.ReplaceAll(st, nil)
		for _, w := range fileInClear {
			if bytes.Contains(bytes.ToLower(st), bytes.ToLower(w)) {
				leak = fmt.Errorf("the server saw %q in clear", w)
			}
		}
	}
	r.check("the server saw no file name, size, hash, key or transport address", leak, "%d stanzas routed for the transfer", len(seen))
	return nil
}

// transferOver reports whether a transfer state is final.
func transferOver(s gateway.TransferState) bool {
	switch s {
	case gateway.TransferCompleted, gateway.TransferFailed, gateway.TransferCancelled, gateway.TransferDeclined:
		return true
	}
	return false
}

// errwrap returns the first non-nil error.
func errwrap(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// writeRandomFile writes n random bytes to path.
func writeRandomFile(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sha256File returns the hex sha-256 of a file.
func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
