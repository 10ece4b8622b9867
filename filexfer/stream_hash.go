package filexfer

import "hash"

// hashPipe feeds a hash from its own goroutine, so that hashing the
// plaintext (sha-256: about as costly as the AEAD, the socket and the
// file together) overlaps with the rest of the stream on another core.
// Buffers go round: buf takes a free one, feed hands it to the hashing
// goroutine, which writes it into the hash in order and frees it. wait
// ends the goroutine once everything fed is hashed; the hash is the
// caller's again after it.
type hashPipe struct {
	h    hash.Hash
	work chan []byte
	free chan []byte
	done chan struct{}
}

// hashPipeDepth is how many chunk buffers a pipe circulates: enough to
// keep both goroutines busy, few enough that a 4 MiB chunk size costs
// 8 MiB.
func hashPipeDepth(chunk int) int {
	if chunk > 1<<20 {
		return 2
	}
	return 4
}

// newHashPipe starts a pipe into h with buffers of size bytes.
func newHashPipe(h hash.Hash, size int) *hashPipe {
	d := hashPipeDepth(size)
	p := &hashPipe{h: h, work: make(chan []byte, d), free: make(chan []byte, d), done: make(chan struct{})}
	for range d {
		p.free <- make([]byte, size)
	}
	go p.run()
	return p
}

func (p *hashPipe) run() {
	defer close(p.done)
	for b := range p.work {
		p.h.Write(b)
		p.free <- b[:cap(b)]
	}
}

// buf returns a free buffer of the pipe's size.
func (p *hashPipe) buf() []byte { return <-p.free }

// feed hashes b (a buffer from buf, resliced) after everything fed before;
// b is not the caller's until buf returns it again.
func (p *hashPipe) feed(b []byte) { p.work <- b }

// release returns a buffer from buf that is not to be hashed.
func (p *hashPipe) release(b []byte) { p.free <- b[:cap(b)] }

// wait returns once everything fed is hashed.
func (p *hashPipe) wait() {
	close(p.work)
	<-p.done
}
