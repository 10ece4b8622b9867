// Package store is the persistence interface of the end-to-end engine.
//
// The engine keeps sessions, prekeys, trust records and replay caches in a
// [Store]: a small transactional key-value interface. Every ratchet step is
// written in one [Store.Update] transaction, so a crash or a failed write at
// any point either keeps the old state or the new one, never half of each.
//
// [OpenBolt] and [NewMemory] keep values as given; [Sealed] wraps a Store so
// that values are encrypted and names hidden at rest under a key that is
// never stored (the daemon derives it from the account key in the agent).
package store

import "errors"

// ErrNotFound is returned by [Tx.Get] when the key is absent.
var ErrNotFound = errors.New("store: not found")

// A Store is a transactional key-value store with named buckets.
//
// Implementations must be safe for concurrent use; transactions are
// serialisable (Update transactions run one at a time).
type Store interface {
	// Update runs fn in a read-write transaction. If fn returns an error or
	// the commit fails, nothing fn wrote is visible afterwards. When Update
	// returns nil, everything fn wrote is durable.
	Update(fn func(Tx) error) error
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// A Tx is a transaction. It is only valid inside the function it was passed
// to, and must not be used concurrently.
type Tx interface {
	// Get returns a copy of the value stored under key in bucket, or
	// ErrNotFound.
	Get(bucket, key string) ([]byte, error)
	// Put stores a copy of value under key in bucket, creating the bucket.
	// It fails in a read-only transaction.
	Put(bucket, key string, value []byte) error
	// Delete removes key from bucket. Deleting an absent key is not an error.
	Delete(bucket, key string) error
	// ForEach calls fn for every key in bucket, in key order. fn must not
	// keep v past its return.
	ForEach(bucket string, fn func(key string, v []byte) error) error
}
