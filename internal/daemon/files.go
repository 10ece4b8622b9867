package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
)

// The daemon reaches the gateway's file transfer through fileGateway, a
// narrow interface with the gateway's method names and types of its own
// that mirror the gateway's (TransferInfo, FileInfo, SendOptions), so
// that the daemon, the API and the command line are built and tested
// before and apart from the transfer engine. An adapter over
// *gateway.Gateway implements it.

// transferState mirrors gateway.TransferState; the values are the API's.
type transferState string

// transferFile mirrors gateway.FileInfo.
type transferFile struct {
	Name      string
	Size      uint64
	MediaType string
	Desc      string
	Date      time.Time
	Hash      string
	Path      string
	Done      uint64
	State     transferState
}

// transfer mirrors gateway.TransferInfo.
type transfer struct {
	ID          string
	Direction   string
	Peer        string
	PeerFull    string
	PeerDevice  uint32
	Trust       string
	Verified    bool
	Stranger    bool // the peer is not on the roster
	Files       []transferFile
	State       transferState
	Transport   string
	Suite       string
	BytesDone   uint64
	BytesTotal  uint64
	Rate        float64
	Resumed     bool
	ResumedFrom uint64
	Resumable   bool // failed, but its session lives: it may still be resumed
	Created     time.Time
	Started     time.Time
	Ended       time.Time
	Detail      string
}

// total is the sum of the files' sizes.
func (t transfer) total() uint64 {
	var n uint64
	for _, f := range t.Files {
		n += f.Size
	}
	return max(n, t.BytesTotal)
}

// ended reports whether t is over.
func (t transfer) ended() bool { return api.TransferEnded(string(t.State)) }

// over reports whether t is over for good: ended, and not a failed
// transfer that can still be resumed (and bring its bytes).
func (t transfer) over() bool { return t.ended() && !(t.State == api.TransferFailed && t.Resumable) }

// sendOptions mirrors gateway.SendOptions.
type sendOptions struct {
	Transports []string
	Desc       string
}

// fileGateway is the gateway's file API as the daemon uses it. Errors
// wrap the sentinels below (the adapter over the gateway maps the
// gateway's errors to them).
type fileGateway interface {
	SendFiles(ctx context.Context, to jid.JID, paths []string, o sendOptions) (transfer, error)
	AcceptTransfer(ctx context.Context, id, dir string) error
	DeclineTransfer(ctx context.Context, id string) error
	CancelTransfer(ctx context.Context, id string) error
	ResumeTransfer(ctx context.Context, id string) error
	Transfers() []transfer
	Transfer(id string) (transfer, bool)
}

// Errors of a fileGateway, mirroring the gateway's.
var (
	errUnknownTransfer = errors.New("daemon: unknown transfer")
	errTransferState   = errors.New("daemon: the transfer's state does not allow this")
	errFileTooLarge    = errors.New("daemon: file too large")
	errQuota           = errors.New("daemon: over the download quota")
	errNoSpace         = errors.New("daemon: not enough free space")
	errTransferRefused = errors.New("daemon: transfer refused by the channel policy")
)

// fileSettings is the [files] configuration the backend applies.
type fileSettings struct {
	download      string // absolute download directory
	maxFileSize   uint64
	quota         uint64 // 0: none
	minFree       uint64 // free space left in a receiving directory; 0: none
	transports    []string
	acceptTimeout time.Duration
	rules         []autoAccept
}

// fileState is the daemon's own bookkeeping of transfers: where accepted
// incoming transfers go (for the quota), and the timers that decline
// offers nobody decided on. Guarded by mu.
type fileState struct {
	mu      sync.Mutex
	dirs    map[string]receiving   // incoming transfer id -> where it goes
	timers  map[string]*time.Timer // pending transfer id -> accept timeout
	stopped bool
}

// receiving is where an accepted incoming transfer goes, and its size.
type receiving struct {
	dir         string
	total, done uint64 // done follows the transfer's events
}

// errNoFiles is returned while the daemon runs without file transfer.
var errNoFiles = fmt.Errorf("%w: file transfer is not available in this daemon (the gateway has no file support)", api.ErrUnavailable)

var _ api.FileBackend = (*backend)(nil)

// mapFileErr gives file errors their API class.
func mapFileErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errUnknownTransfer):
		return fmt.Errorf("%w: %v (securejingle files lists the transfers)", api.ErrNotFound, err)
	case errors.Is(err, errTransferRefused):
		return fmt.Errorf("%w: %v (`securejingle policy check -config FILE` lists the rules; change policy.file to allow it)", api.ErrPolicyRefused, err)
	case errors.Is(err, errQuota), errors.Is(err, errNoSpace):
		return fmt.Errorf("%w: %v", api.ErrQuota, err)
	case errors.Is(err, errFileTooLarge):
		return fmt.Errorf("%w: %v", api.ErrTooLarge, err)
	case errors.Is(err, errTransferState), errors.Is(err, gateway.ErrPeerNotCertified):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	}
	return mapErr(err)
}

// apiTransfer converts a transfer for the API, with the fingerprint of
// the peer's pinned account key.
func (b *backend) apiTransfer(t transfer) api.TransferInfo {
	out := api.TransferInfo{
		ID: t.ID, Direction: t.Direction, Peer: t.Peer, PeerFull: t.PeerFull, PeerDevice: t.PeerDevice,
		Trust: t.Trust, Verified: t.Verified, Files: make([]api.FileInfo, 0, len(t.Files)), State: string(t.State),
		Transport: t.Transport, Suite: t.Suite, BytesDone: t.BytesDone, BytesTotal: t.BytesTotal, Rate: t.Rate,
		Resumed: t.Resumed, ResumedFrom: t.ResumedFrom, Created: t.Created, Started: t.Started, Ended: t.Ended,
		Detail: t.Detail,
	}
	for _, f := range t.Files {
		out.Files = append(out.Files, api.FileInfo{Name: f.Name, Size: f.Size, MediaType: f.MediaType, Desc: f.Desc,
			Date: f.Date, Hash: f.Hash, Path: f.Path, Done: f.Done, State: string(f.State)})
	}
	if key, _, err := b.accountKey(t.Peer); err == nil {
		out.AccountFingerprint = identity.Fingerprint(key)
	}
	return out
}

// Transfers implements api.FileBackend.
func (b *backend) Transfers() ([]api.TransferInfo, error) {
	if b.files == nil {
		return nil, errNoFiles
	}
	ts := b.files.Transfers()
	out := make([]api.TransferInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, b.apiTransfer(t))
	}
	return out, nil
}

// Transfer implements api.FileBackend.
func (b *backend) Transfer(id string) (api.TransferInfo, error) {
	if b.files == nil {
		return api.TransferInfo{}, errNoFiles
	}
	t, ok := b.files.Transfer(id)
	if !ok {
		return api.TransferInfo{}, fmt.Errorf("%w: no transfer %q (securejingle files lists the transfers)", api.ErrNotFound, id)
	}
	return b.apiTransfer(t), nil
}

// SendFiles implements api.FileBackend.
func (b *backend) SendFiles(ctx context.Context, to string, o api.SendFilesOptions) (api.TransferInfo, error) {
	if b.files == nil {
		return api.TransferInfo{}, errNoFiles
	}
	j, err := jid.Parse(to)
	if err != nil {
		return api.TransferInfo{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	for i, p := range o.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return api.TransferInfo{}, &api.FileError{Field: fmt.Sprintf("paths[%d]", i), Path: p, Problem: err.Error()}
		}
		if uint64(fi.Size()) > b.fileCfg.maxFileSize {
			return api.TransferInfo{}, fmt.Errorf("%w: %s is %d bytes, more than files.max_file_size (%d): raise it in the daemon's configuration, or split the file",
				api.ErrTooLarge, p, fi.Size(), b.fileCfg.maxFileSize)
		}
	}
	transports := o.Transports
	if len(transports) == 0 {
		transports = b.fileCfg.transports
	}
	t, err := b.files.SendFiles(ctx, j, slices.Clone(o.Paths), sendOptions{Transports: slices.Clone(transports), Desc: o.Desc})
	if err != nil {
		return api.TransferInfo{}, mapFileErr(err)
	}
	b.log.Info("files offered", "transfer", t.ID, "to", to, "files", len(o.Paths), "bytes", t.total())
	return b.apiTransfer(t), nil
}

// fileActionErr maps the error of an action on transfer id: acting on a
// transfer that ended is a conflict, not an unknown transfer.
func (b *backend) fileActionErr(id string, err error) error {
	if errors.Is(err, errUnknownTransfer) {
		if t, ok := b.files.Transfer(id); ok && t.ended() {
			return fmt.Errorf("%w: transfer %s already ended (%s)", api.ErrConflict, id, t.State)
		}
	}
	return mapFileErr(err)
}

// AcceptTransfer implements api.FileBackend: dir "" is the download
// directory. The quota of the receiving directory is checked first.
func (b *backend) AcceptTransfer(ctx context.Context, id, dir string) (api.TransferInfo, error) {
	if b.files == nil {
		return api.TransferInfo{}, errNoFiles
	}
	t, ok := b.files.Transfer(id)
	if !ok {
		return api.TransferInfo{}, fmt.Errorf("%w: no transfer %q (securejingle files lists the transfers)", api.ErrNotFound, id)
	}
	if dir == "" {
		dir = b.fileCfg.download
	}
	prev, had := b.fs.record(id)
	if err := b.reserveIncoming(t, dir); err != nil {
		return api.TransferInfo{}, mapFileErr(err)
	}
	if err := b.files.AcceptTransfer(ctx, id, dir); err != nil {
		// A refused accept (the transfer is under way already, or it
		// failed here) leaves the bookkeeping as it was: a transfer
		// that an earlier accept took keeps its share of the quota.
		b.fs.restore(id, prev, had)
		return api.TransferInfo{}, b.fileActionErr(id, err)
	}
	b.fs.stopTimer(id)
	b.log.Info("transfer accepted", "transfer", id, "peer", t.Peer, "dir", dir)
	return b.Transfer(id)
}

// DeclineTransfer implements api.FileBackend.
func (b *backend) DeclineTransfer(ctx context.Context, id string) (api.TransferInfo, error) {
	if b.files == nil {
		return api.TransferInfo{}, errNoFiles
	}
	if err := b.files.DeclineTransfer(ctx, id); err != nil {
		return api.TransferInfo{}, b.fileActionErr(id, err)
	}
	b.fs.stopTimer(id)
	b.log.Info("transfer declined", "transfer", id)
	return b.Transfer(id)
}

// CancelTransfer implements api.FileBackend.
func (b *backend) CancelTransfer(ctx context.Context, id string) (api.TransferInfo, error) {
	if b.files == nil {
		return api.TransferInfo{}, errNoFiles
	}
	if err := b.files.CancelTransfer(ctx, id); err != nil {
		return api.TransferInfo{}, b.fileActionErr(id, err)
	}
	b.fs.stopTimer(id)
	b.log.Info("transfer cancelled", "transfer", id)
	return b.Transfer(id)
}

// ResumeTransfer implements api.FileBackend.
func (b *backend) ResumeTransfer(ctx context.Context, id string) (api.TransferInfo, error) {
	if b.files == nil {
		return api.TransferInfo{}, errNoFiles
	}
	if err := b.files.ResumeTransfer(ctx, id); err != nil {
		return api.TransferInfo{}, mapFileErr(err)
	}
	b.log.Info("transfer resumed", "transfer", id)
	return b.Transfer(id)
}

// reserveIncoming checks an incoming transfer against max_file_size and
// the quota of dir and, when it fits, records it as going to dir. Check
// and record are under one hold of fs.mu, so that offers decided at the
// same time (each on its transfer's goroutine) each count the others.
// Errors wrap errFileTooLarge or errQuota and say the fix.
func (b *backend) reserveIncoming(t transfer, dir string) error {
	b.fs.mu.Lock()
	defer b.fs.mu.Unlock()
	if err := b.checkIncomingLocked(t, dir); err != nil {
		return err
	}
	b.fs.noteDirLocked(t.ID, dir, t.total())
	return nil
}

// checkIncomingLocked is the check of reserveIncoming; fs.mu is held.
func (b *backend) checkIncomingLocked(t transfer, dir string) error {
	for _, f := range t.Files {
		if f.Size > b.fileCfg.maxFileSize {
			return fmt.Errorf("%w: %s is %d bytes, more than files.max_file_size (%d): raise it in the daemon's configuration, or ask the sender to split it",
				errFileTooLarge, f.Name, f.Size, b.fileCfg.maxFileSize)
		}
	}
	if b.fileCfg.quota == 0 {
		return nil
	}
	used, err := b.dirUsageLocked(dir, t.ID)
	if err != nil {
		return fmt.Errorf("daemon: measuring %s for files.quota: %w", dir, err)
	}
	if need := t.total(); used+need > b.fileCfg.quota || used+need < used {
		return fmt.Errorf("%w: %s holds %d bytes (with transfers under way); %d more would pass files.quota (%d): free space there, accept into another directory (-dir), or raise the quota",
			errQuota, dir, used, need, b.fileCfg.quota)
	}
	return nil
}

// maxDirEntries bounds the entries read to measure a directory.
const maxDirEntries = 1 << 16

// dirUsageLocked is what dir holds for the quota: its regular files, and
// what the incoming transfers accepted into it (except skip) still
// bring. fs.mu is held.
func (b *backend) dirUsageLocked(dir, skip string) (uint64, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ents, err := f.ReadDir(maxDirEntries)
	if err != nil && len(ents) == 0 && !errors.Is(err, io.EOF) {
		return 0, err
	}
	var used uint64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			used += uint64(fi.Size())
		}
	}
	// Only the daemon's own bookkeeping: the accepter runs inside the
	// gateway and must not call back into it.
	clean := filepath.Clean(dir)
	for id, r := range b.fs.dirs {
		if id != skip && filepath.Clean(r.dir) == clean {
			used += r.total - min(r.done, r.total)
		}
	}
	return used, nil
}

// accepter returns the FileAccepter for the auto-accept rules: the
// first rule whose peer pattern matches, whose minimum trust the
// sender's account key meets, whose max_size the offer fits, and
// (unless its roster_only is false) whose sender is on the roster
// accepts into its directory, if the size limit and the quota allow;
// otherwise the offer waits for the user. It calls nothing of the
// gateway, so the gateway may call it holding its own locks.
func (b *backend) accepter() func(transfer) (string, bool) {
	if len(b.fileCfg.rules) == 0 {
		return nil
	}
	return func(t transfer) (string, bool) {
		level := b.trustLevel(t.Peer)
		total := t.total()
		for i, r := range b.fileCfg.rules {
			if !r.peer.Match(t.Peer) || !trustAtLeast(level, r.minTrust) || (r.maxSize > 0 && total > r.maxSize) || (r.rosterOnly && t.Stranger) {
				continue
			}
			if err := b.reserveIncoming(t, r.dir); err != nil {
				b.log.Warn("incoming files wait for the user: an auto-accept rule matched but the files do not fit",
					"transfer", t.ID, "peer", t.Peer, "rule", i, "err", err)
				return "", false
			}
			b.log.Info("files auto-accepted", "transfer", t.ID, "peer", t.Peer, "rule", i, "pattern", r.peer.String(),
				"trust", level, "bytes", total, "dir", r.dir)
			return r.dir, true
		}
		b.log.Info("incoming files wait for the user: no auto-accept rule took them", "transfer", t.ID, "peer", t.Peer,
			"trust", level, "bytes", total)
		return "", false
	}
}

// fileEvent publishes a transfer change on the event stream and keeps
// the daemon's bookkeeping: a pending offer gets its accept timeout, a
// transfer that is over loses its timer and quota entry. A failed
// transfer that can still be resumed keeps its share of the quota: a
// resume brings its bytes without a new decision.
func (b *backend) fileEvent(t transfer) {
	switch {
	case t.State == api.TransferPending && t.Direction == api.TransferIncoming:
		b.fs.startTimer(t.ID, b.fileCfg.acceptTimeout, func() { b.acceptTimedOut(t.ID) })
	case t.over():
		b.fs.stopTimer(t.ID)
		b.fs.forget(t.ID)
		if b.staging != nil {
			b.staging.transferOver(t.ID)
		}
	case t.ended():
		b.fs.stopTimer(t.ID)
		b.fs.progress(t.ID, t.BytesDone)
	default:
		b.fs.progress(t.ID, t.BytesDone)
	}
	info := b.apiTransfer(t)
	from := t.PeerFull
	if from == "" {
		from = t.Peer
	}
	b.hub.publish(api.Event{Kind: "file", Time: time.Now(), From: from, Detail: t.Detail, File: &info})
}

// acceptTimedOut declines an offer still pending after accept_timeout.
func (b *backend) acceptTimedOut(id string) {
	t, ok := b.files.Transfer(id)
	if !ok || t.State != api.TransferPending {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.files.DeclineTransfer(ctx, id); err != nil {
		b.log.Warn("declining an offer nobody accepted", "transfer", id, "err", err)
		return
	}
	b.log.Info("incoming files declined: not accepted within files.accept_timeout", "transfer", id, "peer", t.Peer,
		"timeout", b.fileCfg.acceptTimeout)
}

// noteDirLocked records that incoming transfer id goes to dir; s.mu is
// held.
func (s *fileState) noteDirLocked(id, dir string, total uint64) {
	if s.dirs == nil {
		s.dirs = map[string]receiving{}
	}
	s.dirs[id] = receiving{dir: dir, total: total}
}

// progress records the bytes done of a tracked transfer.
func (s *fileState) progress(id string, done uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.dirs[id]; ok {
		r.done = done
		s.dirs[id] = r
	}
}

// record returns the quota record of id, if any.
func (s *fileState) record(id string) (receiving, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.dirs[id]
	return r, ok
}

// restore puts back the record of id that record returned (none when
// had is false).
func (s *fileState) restore(id string, r receiving, had bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !had {
		delete(s.dirs, id)
		return
	}
	if s.dirs == nil {
		s.dirs = map[string]receiving{}
	}
	s.dirs[id] = r
}

func (s *fileState) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dirs, id)
}

// startTimer arms f after d for id, once: later calls for the same id
// keep the first timer.
func (s *fileState) startTimer(id string, d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || d <= 0 {
		return
	}
	if s.timers == nil {
		s.timers = map[string]*time.Timer{}
	}
	if _, ok := s.timers[id]; ok {
		return
	}
	s.timers[id] = time.AfterFunc(d, func() {
		s.mu.Lock()
		_, live := s.timers[id]
		delete(s.timers, id)
		stopped := s.stopped
		s.mu.Unlock()
		if live && !stopped {
			f()
		}
	})
}

func (s *fileState) stopTimer(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.timers[id]; ok {
		t.Stop()
		delete(s.timers, id)
	}
}

// stop disarms every timer; later ones are not armed.
func (s *fileState) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for id, t := range s.timers {
		t.Stop()
		delete(s.timers, id)
	}
}
