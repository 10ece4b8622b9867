package store

import (
	"slices"
)

// reader is the read side that a buffered transaction falls back to for keys
// it has not written. Get returns a copy or ErrNotFound; ForEach iterates in
// key order and passes values that the callee may not keep.
type reader interface {
	Get(bucket, key string) ([]byte, error)
	ForEach(bucket string, fn func(key string, v []byte) error) error
}

// pending is one buffered write: a value, or a deletion.
type pending struct {
	value   []byte
	deleted bool
}

// bufTx is a read-write [Tx] that buffers its writes in memory on top of a
// base reader. Reads see the buffered writes first. The owner applies the
// buffer (apply) only when the transaction is to commit.
//
// A bufTx is used by one goroutine; it is invalid once done is set.
type bufTx struct {
	base   reader
	writes map[string]map[string]pending
	done   bool
	// beforeWrite, if set, runs before every Put or Delete; an error from it
	// fails the write (used by Faulty).
	beforeWrite func() error
}

func newBufTx(base reader) *bufTx {
	return &bufTx{base: base, writes: make(map[string]map[string]pending)}
}

func (t *bufTx) Get(bucket, key string) ([]byte, error) {
	if t.done {
		return nil, errTxDone
	}
	if w, ok := t.writes[bucket][key]; ok {
		if w.deleted {
			return nil, ErrNotFound
		}
		return clone(w.value), nil
	}
	return t.base.Get(bucket, key)
}

func (t *bufTx) Put(bucket, key string, value []byte) error {
	if t.done {
		return errTxDone
	}
	if err := checkPut(bucket, key, value); err != nil {
		return err
	}
	if t.beforeWrite != nil {
		if err := t.beforeWrite(); err != nil {
			return err
		}
	}
	b := t.writes[bucket]
	if b == nil {
		b = make(map[string]pending)
		t.writes[bucket] = b
	}
	b[key] = pending{value: clone(value)}
	return nil
}

func (t *bufTx) Delete(bucket, key string) error {
	if t.done {
		return errTxDone
	}
	if bucket == "" || key == "" {
		return nil // nothing can be stored there
	}
	if t.beforeWrite != nil {
		if err := t.beforeWrite(); err != nil {
			return err
		}
	}
	b := t.writes[bucket]
	if b == nil {
		b = make(map[string]pending)
		t.writes[bucket] = b
	}
	b[key] = pending{deleted: true}
	return nil
}

// ForEach iterates over a snapshot of the bucket taken when it is called
// (base merged with the buffered writes), so fn may write to the bucket.
func (t *bufTx) ForEach(bucket string, fn func(key string, v []byte) error) error {
	if t.done {
		return errTxDone
	}
	pend := t.writes[bucket]
	if len(pend) == 0 {
		// Writes made by fn go to t.writes, never to base, so iterating
		// base directly is already a snapshot.
		return t.base.ForEach(bucket, func(k string, v []byte) error {
			return fn(k, clone(v))
		})
	}
	keys := make([]string, 0, len(pend))
	for k := range pend {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	snap := make([]pending, len(keys))
	for i, k := range keys {
		snap[i] = pend[k]
	}
	i := 0
	// emitUntil emits buffered entries with keys < limit (all if last).
	emitUntil := func(limit string, last bool) error {
		for ; i < len(keys) && (last || keys[i] < limit); i++ {
			if snap[i].deleted {
				continue
			}
			if err := fn(keys[i], clone(snap[i].value)); err != nil {
				return err
			}
		}
		return nil
	}
	err := t.base.ForEach(bucket, func(k string, v []byte) error {
		if err := emitUntil(k, false); err != nil {
			return err
		}
		if i < len(keys) && keys[i] == k {
			// Overridden by a buffered write.
			w := snap[i]
			i++
			if w.deleted {
				return nil
			}
			return fn(k, clone(w.value))
		}
		return fn(k, clone(v))
	})
	if err != nil {
		return err
	}
	return emitUntil("", true)
}

// each calls fn for every buffered write in bucket and key order.
func (t *bufTx) each(fn func(bucket, key string, w pending) error) error {
	buckets := make([]string, 0, len(t.writes))
	for b := range t.writes {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	for _, b := range buckets {
		m := t.writes[b]
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := fn(b, k, m[k]); err != nil {
				return err
			}
		}
	}
	return nil
}
