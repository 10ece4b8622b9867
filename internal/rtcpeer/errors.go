package rtcpeer

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrConfig is matched by every error that rejects a [Config].
	ErrConfig = errors.New("rtcpeer: invalid configuration")
	// ErrClosed is returned by operations on a closed [Peer].
	ErrClosed = errors.New("rtcpeer: peer closed")
	// ErrNotConnected is returned by [Peer.RemoteCertificate] before the
	// DTLS handshake has completed.
	ErrNotConnected = errors.New("rtcpeer: DTLS not connected")
	// ErrLimit is matched when a remote description or candidate exceeds
	// one of the limits in constants.go.
	ErrLimit = errors.New("rtcpeer: limit exceeded")
	// ErrBadMedia is matched by a [*MediaError]: a media file that cannot
	// be played or compared.
	ErrBadMedia = errors.New("rtcpeer: bad media file")
	// ErrPayloadMismatch is returned by [ComparePayloads] and
	// [CompareFrames] when a recording holds a payload that is not the
	// source's next one (in order, allowing for losses).
	ErrPayloadMismatch = errors.New("rtcpeer: recording does not match its source")
	// ErrRecordingLimit is reported (in [Stats.RecordingError]) when a
	// recording reached its size limit and was cut there.
	ErrRecordingLimit = errors.New("rtcpeer: recording size limit reached")
)

// MediaError describes a media file that is malformed or outside the
// limits. It matches [ErrBadMedia]. A plain value, safe to share once
// returned.
type MediaError struct {
	Path   string // the file
	Offset int64  // byte offset of the bad element, -1 if unknown
	Reason string // what is wrong, in words
	Err    error  // the underlying error, if any
}

func (e *MediaError) Error() string {
	s := "rtcpeer: " + e.Path
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at byte %d", e.Offset)
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is [ErrBadMedia].
func (e *MediaError) Is(target error) bool { return target == ErrBadMedia }

// Unwrap returns the underlying error.
func (e *MediaError) Unwrap() error { return e.Err }

func configErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
}
