package store

import (
	"errors"
	"fmt"
)

// Errors returned by the implementations in this package, in addition to
// [ErrNotFound].
var (
	// ErrReadOnly is returned by Put and Delete inside a [Store.View]
	// transaction.
	ErrReadOnly = errors.New("store: write in a read-only transaction")
	// ErrClosed is returned by Update and View after Close.
	ErrClosed = errors.New("store: store is closed")
	// ErrLocked is returned by [OpenBolt] when another process (or another
	// open handle in this process) holds the database file lock.
	ErrLocked = errors.New("store: database is locked by another opener")
)

// MaxKeySize is the largest bucket name or key, in bytes, that the
// implementations in this package accept (bbolt's limit, applied to all of
// them so that they behave alike).
const MaxKeySize = 32768

// maxValueSize is bbolt's value limit, applied to all implementations.
const maxValueSize = (1 << 31) - 2

var (
	errTxDone      = errors.New("store: transaction used after its function returned")
	errEmptyBucket = errors.New("store: empty bucket name")
	errEmptyKey    = errors.New("store: empty key")
	errTooLarge    = errors.New("store: bucket name, key or value too large")
)

// checkPut validates the arguments of Put the same way for every
// implementation.
func checkPut(bucket, key string, value []byte) error {
	switch {
	case bucket == "":
		return errEmptyBucket
	case key == "":
		return errEmptyKey
	case len(bucket) > MaxKeySize || len(key) > MaxKeySize || int64(len(value)) > maxValueSize:
		return fmt.Errorf("%w (bucket %d, key %d, value %d bytes)", errTooLarge, len(bucket), len(key), len(value))
	}
	return nil
}

// clone returns a non-nil copy of b, so that an empty value stays
// distinguishable from an absent one.
func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}
