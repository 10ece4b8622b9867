package xferbench

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"time"

	"github.com/securejingle/securejingle/filexfer"
)

// streamParams returns the parameters of a size-byte benchmark stream.
func streamParams(size int64) filexfer.StreamParams {
	key := make([]byte, filexfer.SecurityKeyLen)
	rand.Read(key)
	return filexfer.StreamParams{Key: key, Cipher: filexfer.CipherAES256GCM, ChunkSize: filexfer.SecurityDefaultChunkSize,
		SID: "bench", Content: "bench", Sender: filexfer.SenderInitiator, Size: uint64(size)}
}

// rawGCM returns a raw AES-256-GCM and a nonce.
func rawGCM() (cipher.AEAD, []byte) {
	key := make([]byte, 32)
	rand.Read(key)
	b, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(b)
	return g, make([]byte, g.NonceSize())
}

// ChunkSeal compares the stream encryption of size bytes (filexfer.SendStream,
// default 64 KiB chunks, to io.Discard) with raw AES-256-GCM sealing the
// same bytes in chunks of the same size: the target is 80% of raw.
func ChunkSeal(size int64) Comparison {
	data := make([]byte, size)
	rand.Read(data)
	cs := int(filexfer.SecurityDefaultChunkSize)
	return Comparison{
		What: "chunk AEAD seal", Bytes: size, MinRatio: 0.8, CPU: true,
		Ours: Case{Name: "filexfer stream", Run: func(ctx context.Context) (time.Duration, error) {
			p := streamParams(size)
			start := time.Now()
			err := filexfer.SendStream(ctx, io.Discard, bytes.NewReader(data), p, 0, filexfer.StreamOptions{})
			return time.Since(start), err
		}},
		Baseline: Case{Name: "raw AES-256-GCM", Run: func(context.Context) (time.Duration, error) {
			g, nonce := rawGCM()
			buf := make([]byte, cs+g.Overhead())
			start := time.Now()
			for off := 0; off < len(data); off += cs {
				n := copy(buf[:cs], data[off:])
				g.Seal(buf[:0], nonce, buf[:n], nil)
			}
			return time.Since(start), nil
		}},
	}
}

// ChunkReceive compares a filexfer.Receiver (chunk AEAD open, sha-256, write
// to a temporary file in dir) with the same three steps done raw: AES-256-GCM
// open, sha-256 and a write per chunk.
func ChunkReceive(size int64, dir string) Comparison {
	data := make([]byte, size)
	rand.Read(data)
	p := streamParams(size)
	var wire bytes.Buffer
	filexfer.SendStream(context.Background(), &wire, bytes.NewReader(data), p, 0, filexfer.StreamOptions{})
	cs := int(filexfer.SecurityDefaultChunkSize)
	return Comparison{
		What: "chunk AEAD receive to file", Bytes: size, MinRatio: 0.8, CPU: true,
		Ours: Case{Name: "filexfer Receiver", Run: func(ctx context.Context) (time.Duration, error) {
			r, err := filexfer.NewReceiver(p, dir, "bench", filexfer.ReceiverOptions{})
			if err != nil {
				return 0, err
			}
			defer r.Abort()
			start := time.Now()
			err = r.Receive(ctx, bytes.NewReader(wire.Bytes()), nil)
			return time.Since(start), err
		}},
		Baseline: Case{Name: "raw open+sha-256+write", Run: func(context.Context) (time.Duration, error) {
			g, nonce := rawGCM()
			sealed := make([][]byte, 0, len(data)/cs+1)
			for off := 0; off < len(data); off += cs {
				sealed = append(sealed, g.Seal(nil, nonce, data[off:min(off+cs, len(data))], nil))
			}
			f, err := os.CreateTemp(dir, ".bench-raw-*")
			if err != nil {
				return 0, err
			}
			defer os.Remove(f.Name())
			defer f.Close()
			h := sha256.New()
			start := time.Now()
			var off int64
			for _, ct := range sealed {
				pt, err := g.Open(ct[:0], nonce, ct, nil)
				if err != nil {
					return 0, err
				}
				h.Write(pt)
				f.WriteAt(pt, off)
				off += int64(len(pt))
			}
			return time.Since(start), nil
		}},
	}
}
