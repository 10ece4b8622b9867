//go:build race

package srtp

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts of code that pools buffers (pion/srtp's AES-CM
// keystream) are not meaningful under it.
const raceEnabled = true
