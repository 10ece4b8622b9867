package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// boltLockTimeout bounds the wait for bbolt's file lock, so that a second
// opener fails with [ErrLocked] instead of hanging.
const boltLockTimeout = time.Second

// boltFileMode is the permission of a newly created database file.
const boltFileMode = 0o600

// boltStore is the [Store] returned by [OpenBolt].
type boltStore struct {
	db *bolt.DB
}

// OpenBolt opens (creating if needed) the bbolt database at path.
//
// A new file is created with mode 0600 and its directory is synced. The file
// is locked for the lifetime of the Store; if another process or handle
// holds the lock, OpenBolt gives up after about a second with an error
// wrapping [ErrLocked]. Every Update commit is fsynced (bbolt's default), so
// when Update returns nil the transaction survives a crash or power loss,
// and a crash during a commit leaves the previous state.
//
// Update transactions run one at a time; View transactions run concurrently
// with each other and with an Update (MVCC snapshots). Buckets are created
// on demand by Put; Get and ForEach on a missing bucket behave as on an empty
// one. Values are copied in and out, so callers never see bbolt's mmap.
// ForEach iterates over a snapshot in an Update, so fn may write to the
// bucket it iterates over.
//
// Do not start a transaction from inside another one on the same goroutine:
// bbolt can deadlock (for example an Update inside a View).
func OpenBolt(path string) (Store, error) {
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	db, err := bolt.Open(path, boltFileMode, &bolt.Options{Timeout: boltLockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	return &boltStore{db: db}, nil
}

// syncDir fsyncs a directory so that a newly created entry in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Update implements [Store.Update].
func (s *boltStore) Update(fn func(Tx) error) (err error) {
	btx, err := s.db.Begin(true)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	finished := false
	defer func() {
		if !finished {
			_ = btx.Rollback() // fn panicked
		}
	}()
	tx := &boltTx{tx: btx}
	err = runTx(fn, tx, &tx.done)
	finished = true
	if err != nil {
		_ = btx.Rollback()
		return err
	}
	if !tx.wrote {
		// Nothing to make durable: a commit would still write and sync
		// the meta page (an fdatasync per read-mostly transaction, such
		// as checking a device before every message).
		_ = btx.Rollback()
		return nil
	}
	if err := btx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// View implements [Store.View].
func (s *boltStore) View(fn func(Tx) error) error {
	btx, err := s.db.Begin(false)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	tx := &boltTx{tx: btx}
	return runTx(fn, tx, &tx.done)
}

// Close implements [Store.Close]. It waits for running transactions.
func (s *boltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// boltTx adapts a bbolt transaction to [Tx].
type boltTx struct {
	tx    *bolt.Tx
	done  bool
	wrote bool // a Put or Delete ran: the transaction has something to commit
}

func (t *boltTx) Get(bucket, key string) ([]byte, error) {
	if t.done {
		return nil, errTxDone
	}
	b := t.tx.Bucket([]byte(bucket))
	if b == nil || key == "" {
		return nil, ErrNotFound
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, ErrNotFound
	}
	return clone(v), nil
}

func (t *boltTx) Put(bucket, key string, value []byte) error {
	if t.done {
		return errTxDone
	}
	if !t.tx.Writable() {
		return ErrReadOnly
	}
	if err := checkPut(bucket, key, value); err != nil {
		return err
	}
	t.wrote = true
	b, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("store: bucket %q: %w", bucket, err)
	}
	// bbolt keeps a reference to value until commit; clone also turns nil
	// into a non-nil empty slice, which bbolt would otherwise read back as
	// absent.
	if err := b.Put([]byte(key), clone(value)); err != nil {
		return fmt.Errorf("store: put: %w", err)
	}
	return nil
}

func (t *boltTx) Delete(bucket, key string) error {
	if t.done {
		return errTxDone
	}
	if !t.tx.Writable() {
		return ErrReadOnly
	}
	b := t.tx.Bucket([]byte(bucket))
	if b == nil || key == "" {
		return nil
	}
	t.wrote = true
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	return nil
}

func (t *boltTx) ForEach(bucket string, fn func(key string, v []byte) error) error {
	if t.done {
		return errTxDone
	}
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	if !t.tx.Writable() {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return nil // nested bucket; this package never creates one
			}
			return fn(string(k), clone(v))
		})
	}
	// bbolt forbids modifying a bucket while iterating over it; take a
	// snapshot so that fn may write.
	type kv struct {
		k string
		v []byte
	}
	var snap []kv
	if err := b.ForEach(func(k, v []byte) error {
		if v != nil {
			snap = append(snap, kv{string(k), clone(v)})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, e := range snap {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}
