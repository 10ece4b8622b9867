package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/internal/api"
)

// Files from and to a browser: an upload is streamed into a private
// staging directory under the state directory and offered from there;
// a completed received file is handed out as it was saved.

// uploadDirName is the staging directory in the state directory.
const uploadDirName = "uploads"

// frontSpoolDirName is the directory in the state directory where gateway
// mode spools local clients' files before sending them encrypted.
const frontSpoolDirName = "front-spool"

// stagedPrefix starts the name of each upload's own directory.
const stagedPrefix = "up-"

var _ api.UploadBackend = (*backend)(nil)

// staging keeps the uploads: each in a directory of its own under dir
// (mode 0700) holding the file under its sanitized name, which is the
// name the offer carries. A staged file is removed when its transfer is
// over, when the offer fails, and at the daemon's start and stop. It is
// safe for concurrent use.
type staging struct {
	dir string

	mu       sync.Mutex
	reserved uint64            // bytes of uploads being copied or staged
	sizes    map[string]uint64 // staged directory -> bytes reserved for it
	unsent   map[string]bool   // staged directories not offered yet
	byXfer   map[string]string // transfer id -> staged directory
}

// openStaging creates dir (0700) and removes what an earlier run left
// in it.
func openStaging(dir string) (*staging, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: upload staging directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: upload staging directory: %w", err)
	}
	s := &staging{dir: dir, sizes: map[string]uint64{}, unsent: map[string]bool{}, byXfer: map[string]string{}}
	s.clear()
	return s, nil
}

// clear removes every staged upload.
func (s *staging) clear() {
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), stagedPrefix) {
			os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved = 0
	clear(s.sizes)
	clear(s.unsent)
	clear(s.byXfer)
}

// release removes a staged directory and frees its reservation.
func (s *staging) release(dir string) {
	os.RemoveAll(dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved -= s.sizes[dir]
	delete(s.sizes, dir)
	delete(s.unsent, dir)
}

// transferOver removes the staged file of transfer id, if it has one.
func (s *staging) transferOver(id string) {
	s.mu.Lock()
	dir, ok := s.byXfer[id]
	delete(s.byXfer, id)
	s.mu.Unlock()
	if ok {
		s.release(dir)
	}
}

// stagedDir returns the staged directory of path, if path is a staged
// file not yet offered.
func (s *staging) stagedDir(path string) (string, bool) {
	dir := filepath.Dir(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	return dir, filepath.Dir(dir) == s.dir && s.unsent[dir]
}

// StageUpload implements api.UploadBackend.
func (b *backend) StageUpload(ctx context.Context, name string, size int64, body io.Reader) (string, error) {
	if b.files == nil || b.staging == nil {
		return "", errNoFiles
	}
	s, limit := b.staging, b.fileCfg.maxFileSize
	switch {
	case size < 0:
		return "", fmt.Errorf("%w: the upload must give its size (Content-Length)", api.ErrInvalid)
	case uint64(size) > limit:
		return "", fmt.Errorf("%w: the file is %d bytes, more than files.max_file_size (%d): raise it in the daemon's configuration, or split the file",
			api.ErrTooLarge, size, limit)
	}
	// Reserve the bytes first, so that uploads at the same time each
	// count the others.
	want := uint64(size)
	if err := b.reserveStaging(want); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(s.dir, stagedPrefix+"*")
	if err != nil {
		b.unreserveStaging(want)
		return "", fmt.Errorf("daemon: upload staging: %w", err)
	}
	s.mu.Lock()
	s.sizes[dir] = want
	s.mu.Unlock()
	path := filepath.Join(dir, filexfer.SanitizeName(name))
	if err := copyUpload(ctx, path, body, size); err != nil {
		s.release(dir)
		return "", err
	}
	s.mu.Lock()
	s.unsent[dir] = true
	s.mu.Unlock()
	return path, nil
}

// reserveStaging reserves n bytes of the staging directory's file
// system, keeping files.min_free free. Errors wrap api.ErrQuota.
func (b *backend) reserveStaging(n uint64) error {
	s := b.staging
	s.mu.Lock()
	defer s.mu.Unlock()
	free, known, err := filexfer.FreeSpace(s.dir)
	if err != nil {
		return fmt.Errorf("daemon: upload staging: %w", err)
	}
	if known {
		need := s.reserved + n + b.fileCfg.minFree
		if need < n || free < need {
			return fmt.Errorf("%w: not enough free space in %s for the upload: %d bytes free, %d bytes of uploads under way, files.min_free is %d: free space there, or send a smaller file",
				api.ErrQuota, s.dir, free, s.reserved, b.fileCfg.minFree)
		}
	}
	s.reserved += n
	return nil
}

func (b *backend) unreserveStaging(n uint64) {
	b.staging.mu.Lock()
	b.staging.reserved -= n
	b.staging.mu.Unlock()
}

// copyUpload writes the size bytes of body to a new file at path
// (0600). Errors wrap api.ErrQuota (the disk is full), api.ErrTooLarge
// (a body over a limit of the HTTP layer) or, for a body of another
// length, api.ErrInvalid.
func copyUpload(ctx context.Context, path string, body io.Reader, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("daemon: upload staging: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, body}, size+1))
	cerr := f.Close()
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: the disk of the upload staging directory is full: free space there", api.ErrQuota)
	case errors.As(err, &tooBig):
		return fmt.Errorf("%w: the upload is larger than the web server takes (%d bytes)", api.ErrTooLarge, tooBig.Limit)
	case err != nil:
		return fmt.Errorf("%w: the upload stopped after %d of %d bytes (%v): send it again", api.ErrInvalid, n, size, err)
	case n != size:
		return fmt.Errorf("%w: the upload brought %d bytes, not the %d its Content-Length gave", api.ErrInvalid, n, size)
	case cerr != nil:
		return fmt.Errorf("daemon: upload staging: %w", cerr)
	}
	return nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// SendStaged implements api.UploadBackend.
func (b *backend) SendStaged(ctx context.Context, to, path, desc string) (api.TransferInfo, error) {
	if b.files == nil || b.staging == nil {
		return api.TransferInfo{}, errNoFiles
	}
	s := b.staging
	dir, ok := s.stagedDir(path)
	if !ok {
		return api.TransferInfo{}, fmt.Errorf("%w: %s is not a staged upload", api.ErrInvalid, path)
	}
	s.mu.Lock()
	delete(s.unsent, dir)
	s.mu.Unlock()
	info, err := b.SendFiles(ctx, to, api.SendFilesOptions{Paths: []string{path}, Desc: desc})
	if err != nil {
		s.release(dir)
		return api.TransferInfo{}, err
	}
	s.mu.Lock()
	s.byXfer[info.ID] = dir
	s.mu.Unlock()
	// The transfer may have ended before it was recorded here.
	if t, ok := b.files.Transfer(info.ID); !ok || t.over() {
		s.transferOver(info.ID)
	}
	return info, nil
}

// OpenReceived implements api.UploadBackend.
func (b *backend) OpenReceived(ctx context.Context, id string, index int) (*os.File, api.FileInfo, error) {
	if b.files == nil {
		return nil, api.FileInfo{}, errNoFiles
	}
	t, ok := b.files.Transfer(id)
	switch {
	case !ok:
		return nil, api.FileInfo{}, fmt.Errorf("%w: no transfer %q (GET /v1/files lists the transfers)", api.ErrNotFound, id)
	case t.Direction != api.TransferIncoming:
		return nil, api.FileInfo{}, fmt.Errorf("%w: transfer %s is one you sent: only received files are downloaded", api.ErrConflict, id)
	case index >= len(t.Files):
		return nil, api.FileInfo{}, fmt.Errorf("%w: transfer %s has %d files, no file %d", api.ErrNotFound, id, len(t.Files), index)
	}
	tf := t.Files[index]
	if tf.State != api.TransferCompleted || tf.Path == "" {
		return nil, api.FileInfo{}, fmt.Errorf("%w: %s is not complete (%s): it can be downloaded once it arrived and matched its hash",
			api.ErrConflict, tf.Name, tf.State)
	}
	f, err := openSaved(ctx, tf, &b.verified)
	if err != nil {
		return nil, api.FileInfo{}, err
	}
	return f, api.FileInfo{Name: tf.Name, Size: tf.Size, MediaType: tf.MediaType, Hash: tf.Hash, Path: tf.Path,
		Done: tf.Done, State: string(tf.State)}, nil
}

// openSaved opens a received file that must still be the file that was
// saved and verified: the same regular file (not a symlink or another
// file put in its place), of its size, whose bytes still hash to the
// hash verified at completion. The bytes are hashed again from the open
// file before anything is handed out (at most the file's size, which
// files.max_file_size bounds): a file rewritten in place, whatever its
// times say, is refused. A file whose identity (device, inode, size,
// modification and change times, see fileIdentOf) is the one it had when
// its bytes last matched is not hashed again: writing to a file, even
// with its modification time put back, sets its change time, which only
// the clock's owner can set.
func openSaved(ctx context.Context, tf transferFile, seen *verifiedFiles) (*os.File, error) {
	path, size := tf.Path, tf.Size
	changed := func(why string) error {
		seen.forget(path)
		return fmt.Errorf("%w: %s %s since it was received and verified: it is not handed out; ask the sender for the file again",
			api.ErrConflict, path, why)
	}
	want, err := parseFileHash(tf.Hash)
	if err != nil {
		return nil, fmt.Errorf("%w: %s has no hash to check it against (%v): it is not handed out", api.ErrConflict, path, err)
	}
	lst, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, changed("was moved or deleted")
	} else if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if !lst.Mode().IsRegular() {
		return nil, changed("was replaced by something other than a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	st, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("daemon: %w", err)
	case !os.SameFile(lst, st):
		f.Close()
		return nil, changed("was replaced")
	case uint64(st.Size()) != size:
		f.Close()
		return nil, changed("changed size")
	}
	before, identOK := fileIdentOf(st, tf.Hash)
	if identOK && seen.has(path, before) {
		return f, nil
	}
	start := time.Now()
	switch err := verifySaved(ctx, f, size, want); {
	case errors.Is(err, filexfer.ErrHashMismatch), errors.Is(err, filexfer.ErrTruncated):
		f.Close()
		return nil, changed("was changed (its " + want.Algo + " no longer matches)")
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("daemon: checking %s: %w", path, err)
	}
	// Remembered only if nothing changed the file while it was hashed,
	// and its last change is well before the hash began: file times
	// have a coarse clock, and a write in the same tick as the last
	// change would keep both times.
	if st2, err := f.Stat(); err == nil && identOK {
		if after, ok := fileIdentOf(st2, tf.Hash); ok && after == before && start.Sub(time.Unix(0, before.ctime)) > verifiedSettle {
			seen.put(path, before)
		}
	}
	return f, nil
}

// verifiedSettle is how long before a hash began a file's last change
// must be for the result to be remembered (a variable for tests).
var verifiedSettle = 2 * time.Second

// verifySaved hashes a saved file (a variable for tests).
var verifySaved = filexfer.VerifySaved

// maxVerifiedFiles bounds the files verifiedFiles remembers.
const maxVerifiedFiles = 4096

// fileIdent is what a saved file was when its bytes matched hash.
type fileIdent struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns
	hash         string
}

// verifiedFiles remembers, by path, the identity of received files whose
// bytes last matched their hash. The zero value is ready to use.
type verifiedFiles struct {
	mu sync.Mutex
	m  map[string]fileIdent
}

func (v *verifiedFiles) has(path string, id fileIdent) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	got, ok := v.m[path]
	return ok && got == id
}

func (v *verifiedFiles) put(path string, id fileIdent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string]fileIdent{}
	}
	if _, ok := v.m[path]; !ok && len(v.m) >= maxVerifiedFiles {
		for k := range v.m { // any one: it is only hashed again
			delete(v.m, k)
			break
		}
	}
	v.m[path] = id
}

func (v *verifiedFiles) forget(path string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, path)
}

// parseFileHash parses a file's hash as the gateway reports it,
// "algo:hex".
func parseFileHash(s string) (filexfer.Hash, error) {
	algo, hx, ok := strings.Cut(s, ":")
	if !ok || algo == "" {
		return filexfer.Hash{}, errors.New("no hash recorded")
	}
	v, err := hex.DecodeString(hx)
	if err != nil || len(v) == 0 {
		return filexfer.Hash{}, fmt.Errorf("hash %q is not algo:hex", s)
	}
	if _, ok := filexfer.NewHash(algo); !ok {
		return filexfer.Hash{}, fmt.Errorf("hash algorithm %q is not one this daemon computes", algo)
	}
	return filexfer.Hash{Algo: algo, Value: v}, nil
}
