package store

import (
	"errors"
	"sync"
)

// ErrInjected is the error of every fault injected by [Faulty].
var ErrInjected = errors.New("store: injected fault")

// Faulty wraps a [Store] and injects write failures, for crash-safety tests
// of code that uses a Store.
//
// Every Update runs its fn against a transaction that reads through to an
// inner Update transaction but buffers all writes. When fn returns nil and
// no fault is due, the buffered writes are replayed into the inner
// transaction, which then commits; when a fault is due, the inner
// transaction is rolled back and Update returns [ErrInjected], so none of
// fn's writes become visible, whatever the inner store.
//
// Faults are scheduled by the sequence number of Update calls: the first
// Update after NewFaulty is number 1, and [Faulty.Updates] tells how many
// have run. View and Close pass through.
//
// A Faulty is safe for concurrent use. It must be created with [NewFaulty].
type Faulty struct {
	inner Store

	mu           sync.Mutex
	seq          int          // Updates started so far
	commitFaults map[int]bool // Update seq -> fail at commit
	writeFaults  map[int]int  // Update seq -> writes allowed before failing
	injected     int
}

// NewFaulty returns a Faulty wrapping s with no faults scheduled.
func NewFaulty(s Store) *Faulty {
	return &Faulty{
		inner:        s,
		commitFaults: make(map[int]bool),
		writeFaults:  make(map[int]int),
	}
}

// FailCommit makes the n-th future Update (n = 1 is the next one) fail at
// commit: its fn runs to completion, then its writes are discarded and
// Update returns [ErrInjected] (unless fn itself returned an error, which is
// returned instead). It panics if n < 1.
func (f *Faulty) FailCommit(n int) {
	if n < 1 {
		panic("store: Faulty.FailCommit: n < 1")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commitFaults[f.seq+n] = true
}

// FailAfterWrites makes every write (Put or Delete) after the first k in the
// n-th future Update return [ErrInjected]. That Update then fails with
// ErrInjected and discards its writes even if fn ignores the error and
// returns nil, as a full disk would. It panics if n < 1 or k < 0.
func (f *Faulty) FailAfterWrites(n, k int) {
	if n < 1 || k < 0 {
		panic("store: Faulty.FailAfterWrites: n < 1 or k < 0")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeFaults[f.seq+n] = k
}

// Reset cancels all scheduled faults. The counters are kept.
func (f *Faulty) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.commitFaults)
	clear(f.writeFaults)
}

// Updates returns the number of Update transactions started so far.
func (f *Faulty) Updates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq
}

// Injected returns the number of Update transactions failed by a fault.
func (f *Faulty) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// Update implements [Store.Update], injecting the faults scheduled for it.
func (f *Faulty) Update(fn func(Tx) error) error {
	return f.inner.Update(func(itx Tx) error {
		// Numbered inside the inner transaction, so numbers follow the
		// serial order in which Updates run.
		f.mu.Lock()
		f.seq++
		seq := f.seq
		commitFault := f.commitFaults[seq]
		limit, writeFault := f.writeFaults[seq]
		delete(f.commitFaults, seq)
		delete(f.writeFaults, seq)
		f.mu.Unlock()

		tx := newBufTx(itx)
		writes, failed := 0, false
		if writeFault {
			tx.beforeWrite = func() error {
				if writes >= limit {
					failed = true
					return ErrInjected
				}
				writes++
				return nil
			}
		}
		if err := runTx(fn, tx, &tx.done); err != nil {
			if failed {
				f.countInjected()
			}
			return err
		}
		if failed || commitFault {
			f.countInjected()
			return ErrInjected
		}
		return tx.each(func(bucket, key string, w pending) error {
			if w.deleted {
				return itx.Delete(bucket, key)
			}
			return itx.Put(bucket, key, w.value)
		})
	})
}

func (f *Faulty) countInjected() {
	f.mu.Lock()
	f.injected++
	f.mu.Unlock()
}

// View implements [Store.View] by calling the inner store.
func (f *Faulty) View(fn func(Tx) error) error { return f.inner.View(fn) }

// Close implements [Store.Close] by closing the inner store.
func (f *Faulty) Close() error { return f.inner.Close() }
