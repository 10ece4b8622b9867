package store

import (
	"slices"
	"sync"
)

// memory is the in-memory [Store] returned by [NewMemory].
type memory struct {
	// wmu serialises Update transactions. The goroutine holding it is the
	// only one that modifies data, so it may read data without mu.
	wmu sync.Mutex
	// mu guards data and closed: Views hold it for reading, the commit of
	// an Update holds it for writing.
	mu     sync.RWMutex
	data   map[string]map[string][]byte
	closed bool
}

// NewMemory returns an empty in-memory [Store].
//
// Update transactions buffer their writes and apply them only if fn returns
// nil; they run one at a time. View transactions run concurrently with each
// other and with the function of a running Update, and never see its
// uncommitted writes. Values are copied on the way in and on the way out.
// ForEach iterates over a snapshot, so fn may write to the bucket it
// iterates over.
//
// Do not start a transaction from inside another one: a View inside a View
// or an Update inside a View can deadlock, as with bbolt.
//
// Nothing is durable: the data is lost when the process exits.
func NewMemory() Store {
	return &memory{data: make(map[string]map[string][]byte)}
}

// memReader reads committed data. ForEach passes the stored slices; callers
// wrap it and copy.
type memReader struct{ m *memory }

func (r memReader) Get(bucket, key string) ([]byte, error) {
	v, ok := r.m.data[bucket][key]
	if !ok {
		return nil, ErrNotFound
	}
	return clone(v), nil
}

func (r memReader) ForEach(bucket string, fn func(key string, v []byte) error) error {
	b := r.m.data[bucket]
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn(k, b[k]); err != nil {
			return err
		}
	}
	return nil
}

// Update implements [Store.Update].
func (m *memory) Update(fn func(Tx) error) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	tx := newBufTx(memReader{m})
	err := runTx(fn, tx, &tx.done)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	// Cannot fail: every write was validated by Put.
	_ = tx.each(func(bucket, key string, w pending) error {
		b := m.data[bucket]
		if w.deleted {
			delete(b, key)
			return nil
		}
		if b == nil {
			b = make(map[string][]byte)
			m.data[bucket] = b
		}
		b[key] = w.value // owned by tx, which is done
		return nil
	})
	return nil
}

// View implements [Store.View].
func (m *memory) View(fn func(Tx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	tx := &readTx{r: memReader{m}}
	return runTx(fn, tx, &tx.done)
}

// Close implements [Store.Close]. It waits for a running Update.
func (m *memory) Close() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.data = nil
	return nil
}

// runTx runs fn and marks the transaction done when fn returns or panics.
func runTx(fn func(Tx) error, tx Tx, done *bool) error {
	defer func() { *done = true }()
	return fn(tx)
}

// readTx is a read-only [Tx] over a reader.
type readTx struct {
	r    reader
	done bool
}

func (t *readTx) Get(bucket, key string) ([]byte, error) {
	if t.done {
		return nil, errTxDone
	}
	return t.r.Get(bucket, key)
}

func (t *readTx) Put(bucket, key string, value []byte) error {
	if t.done {
		return errTxDone
	}
	return ErrReadOnly
}

func (t *readTx) Delete(bucket, key string) error {
	if t.done {
		return errTxDone
	}
	return ErrReadOnly
}

func (t *readTx) ForEach(bucket string, fn func(key string, v []byte) error) error {
	if t.done {
		return errTxDone
	}
	return t.r.ForEach(bucket, func(k string, v []byte) error {
		return fn(k, clone(v))
	})
}
