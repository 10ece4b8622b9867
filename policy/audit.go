package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// ErrTornTail is wrapped by the error [ReadAudit] returns, alongside the
// intact alerts, when the file ends in an incomplete record: the remains of
// a write interrupted by a crash, which was never acknowledged.
var ErrTornTail = errors.New("policy: audit log ends in a torn record")

// Audit log defaults.
const (
	DefaultAuditMaxSize = 16 << 20
	DefaultAuditKeep    = 5
)

// AuditLog is a [Sink] that appends alerts to a JSON-lines file, one alert
// per line. Send returns only after the line has been written and fsync'd,
// so every alert acknowledged before a crash survives it intact. When a line
// would take the file past the size limit the file is rotated: path.1 becomes
// path.2 and so on up to the number kept, and path becomes path.1. The zero
// value is not usable; open one with [OpenAuditLog]. An AuditLog is safe for
// concurrent use.
type AuditLog struct {
	path    string
	maxSize int64
	keep    int

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
}

// AuditOption configures an [AuditLog]; see [WithMaxSize] and [WithKeep].
type AuditOption func(*AuditLog)

// WithMaxSize sets the size in bytes at which the log rotates (default
// [DefaultAuditMaxSize]). A single line larger than this gets a file to
// itself.
func WithMaxSize(n int64) AuditOption { return func(l *AuditLog) { l.maxSize = n } }

// WithKeep sets how many rotated files are kept (default [DefaultAuditKeep]);
// 0 keeps none.
func WithKeep(n int) AuditOption { return func(l *AuditLog) { l.keep = max(n, 0) } }

// OpenAuditLog opens or creates the log at path with mode 0600. If the file
// ends in a torn record left by a crash, the torn bytes (never acknowledged)
// are cut off so that new lines start clean.
func OpenAuditLog(path string, opts ...AuditOption) (*AuditLog, error) {
	l := &AuditLog{path: path, maxSize: DefaultAuditMaxSize, keep: DefaultAuditKeep}
	for _, o := range opts {
		o(l)
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *AuditLog) open() error {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("policy: audit log: %w", err)
	}
	size, err := repairTail(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("policy: audit log %s: %w", l.path, err)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, size
	return nil
}

// repairTail truncates f after its last newline and returns the new size.
func repairTail(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	end := size
	for end > 0 {
		start := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = start + int64(i) + 1
			break
		}
		end = start
	}
	// A last line that is terminated but not JSON (zeros after a power
	// loss, say) would become damage in the middle once we append: drop it.
	// Valid JSON is kept even if this version cannot decode it.
	if end > 0 && end <= chunk {
		last := make([]byte, end)
		if _, err := f.ReadAt(last, 0); err != nil && err != io.EOF {
			return 0, err
		}
		last = last[:end-1]
		start := bytes.LastIndexByte(last, '\n') + 1
		if !json.Valid(last[start:]) {
			end = int64(start)
		}
	} else if end > chunk {
		last := make([]byte, chunk)
		if _, err := f.ReadAt(last, end-chunk); err != nil && err != io.EOF {
			return 0, err
		}
		last = last[:chunk-1]
		if i := bytes.LastIndexByte(last, '\n'); i >= 0 {
			if !json.Valid(last[i+1:]) {
				end = end - chunk + int64(i) + 1
			}
		}
	}
	if end == size {
		return size, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return end, f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("policy: audit log: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("policy: audit log: sync %s: %w", dir, err)
	}
	return nil
}

// Send appends a as one line and fsyncs it. ctx is not consulted: an
// audit write, once started, completes.
func (l *AuditLog) Send(_ context.Context, a Alert) error {
	line, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("policy: audit log: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("policy: audit log: %w", os.ErrClosed)
	}
	if l.f == nil { // a failed rotation left no file open
		if err := l.open(); err != nil {
			return err
		}
	}
	if l.size > 0 && l.size+int64(len(line)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		// A partial line would glue onto the next one: cut it off.
		if _, terr := repairTail(l.f); terr == nil {
			l.size -= int64(n)
		}
		return fmt.Errorf("policy: audit log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("policy: audit log: fsync: %w", err)
	}
	return nil
}

func (l *AuditLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("policy: audit log: %w", err)
	}
	l.f = nil
	name := func(i int) string { return l.path + "." + strconv.Itoa(i) }
	var err error
	if l.keep == 0 {
		err = os.Remove(l.path)
	} else {
		for i := l.keep - 1; i >= 1 && err == nil; i-- {
			if e := os.Rename(name(i), name(i+1)); e != nil && !errors.Is(e, os.ErrNotExist) {
				err = e
			}
		}
		if err == nil {
			err = os.Rename(l.path, name(1))
		}
	}
	if err != nil {
		err = fmt.Errorf("policy: audit log: rotate: %w", err)
	}
	// Reopen in any case so the log keeps working.
	return errors.Join(err, l.open())
}

// Close closes the file. Later Sends fail.
func (l *AuditLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// AuditLineError reports a record in the middle of an audit file that does
// not parse: damage that a crash alone cannot cause. It is a plain value.
type AuditLineError struct {
	Line int
	Err  error
}

// Error formats the line number and the decoding error.
func (e *AuditLineError) Error() string {
	return fmt.Sprintf("policy: audit line %d: %v", e.Line, e.Err)
}

// Unwrap returns the decoding error.
func (e *AuditLineError) Unwrap() error { return e.Err }

// ReadAudit reads the alerts of one audit file (not its rotated siblings).
// A last line that is unterminated or does not parse is the trace of a
// crash during a write that was never acknowledged: ReadAudit ignores it and
// returns the other alerts together with an error wrapping [ErrTornTail].
// A bad line elsewhere yields an *[AuditLineError] and the alerts before it.
func ReadAudit(path string) ([]Alert, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: audit log: %w", err)
	}
	return parseAudit(data)
}

func parseAudit(data []byte) ([]Alert, error) {
	var out []Alert
	for lineNo := 1; len(data) > 0; lineNo++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return out, fmt.Errorf("%w: line %d: %d bytes without a newline", ErrTornTail, lineNo, len(data))
		}
		line := data[:i]
		data = data[i+1:]
		var a Alert
		if err := decodeStrict(line, &a); err != nil {
			if len(data) == 0 {
				return out, fmt.Errorf("%w: line %d: %v", ErrTornTail, lineNo, err)
			}
			return out, &AuditLineError{Line: lineNo, Err: err}
		}
		out = append(out, a)
	}
	return out, nil
}

func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the record")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the record")
	}
	return nil
}

// Path returns the path of the current log file.
func (l *AuditLog) Path() string { return l.path }
