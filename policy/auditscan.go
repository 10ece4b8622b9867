package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of [ScanAudit].
const (
	// MaxAuditLine is the longest audit line a scan decodes; longer ones
	// are skipped (and counted).
	MaxAuditLine = 1 << 20
	// DefaultAuditScanBudget is how many bytes one scan reads at most when
	// the query sets no budget of its own.
	DefaultAuditScanBudget = 64 << 20
	// MaxAuditQuery bounds the search text of a query, in bytes.
	MaxAuditQuery = 256
	// auditBlock is the size of the blocks read backwards.
	auditBlock = 64 << 10
	// segmentKeyLen is the length of a segment key in hex digits.
	segmentKeyLen = 32
	// maxRotated bounds the rotated files a scan looks at (path.1 ...).
	maxRotated = 1000
)

// ErrBadCursor is wrapped by the error [ParseAuditCursor] returns.
var ErrBadCursor = errors.New("policy: bad audit cursor")

// An AuditCursor is a position in an audit log and its rotated files, for
// reading further back: the scan goes on with the line that ends at
// Offset in the file whose first line hashes to Segment. Files keep their
// contents when the log rotates (only their names change), so a cursor
// stays valid across rotations until its file is deleted. The zero
// cursor is the newest end of the log.
type AuditCursor struct {
	Segment string // 32 hex digits: the first 16 bytes of SHA-256 of the file's first line
	Offset  int64  // the scan reads the bytes before this offset
}

// IsZero reports whether c is the newest end of the log.
func (c AuditCursor) IsZero() bool { return c == AuditCursor{} }

// String encodes c as "<segment>-<offset>", or "" for the zero cursor.
func (c AuditCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return c.Segment + "-" + strconv.FormatInt(c.Offset, 10)
}

// ParseAuditCursor parses the form String returns; "" is the zero cursor.
// Errors wrap [ErrBadCursor].
func ParseAuditCursor(s string) (AuditCursor, error) {
	if s == "" {
		return AuditCursor{}, nil
	}
	seg, off, ok := strings.Cut(s, "-")
	if !ok || len(seg) != segmentKeyLen || len(off) == 0 || len(off) > 19 {
		return AuditCursor{}, fmt.Errorf("%w: want the next value of an earlier answer", ErrBadCursor)
	}
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return AuditCursor{}, fmt.Errorf("%w: want the next value of an earlier answer", ErrBadCursor)
		}
	}
	if off[0] == '0' && off != "0" {
		return AuditCursor{}, fmt.Errorf("%w: want the next value of an earlier answer", ErrBadCursor)
	}
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil || n < 0 || strings.ContainsAny(off, "+-") {
		return AuditCursor{}, fmt.Errorf("%w: want the next value of an earlier answer", ErrBadCursor)
	}
	return AuditCursor{Segment: seg, Offset: n}, nil
}

// AuditQuery selects alerts for [ScanAudit].
type AuditQuery struct {
	// Text, when not empty, keeps the alerts whose rule, peer, message or
	// detail contains it, ignoring case (at most [MaxAuditQuery] bytes).
	Text string
	// Before continues an earlier scan from its Next cursor; the zero
	// cursor starts at the newest alert.
	Before AuditCursor
	// Limit is the number of alerts wanted; the scan stops once it has
	// them. 0 returns none (and reads nothing).
	Limit int
	// Budget bounds the bytes read; 0 means [DefaultAuditScanBudget]. A
	// scan that runs out returns what it found with More set.
	Budget int64
}

// AuditPage is the result of [ScanAudit].
type AuditPage struct {
	// Alerts are the matching alerts, newest first.
	Alerts []Alert
	// Next is where to continue (the Before of the next query) when More
	// is set.
	Next AuditCursor
	// More reports that older lines were not read: the limit was reached
	// or the budget ran out.
	More bool
	// Scanned is the number of bytes read; Skipped the lines that were
	// too long or did not decode.
	Scanned int64
	Skipped int
}

// ScanAudit reads the audit log at path and its rotated files (path.1,
// path.2, ..., up to the first one missing) backwards, newest alert
// first, and returns the alerts that match q. It reads in blocks from the
// end and decodes only lines that can match, so a page costs what it
// reads, not the size of the log: a page without search text reads about
// Limit lines. A torn last line (a write in progress, or a crash) is
// skipped. It may run while an [AuditLog] appends and rotates: a file
// renamed during the scan is recognised by its first line and not read
// twice.
func ScanAudit(path string, q AuditQuery) (AuditPage, error) {
	var page AuditPage
	if len(q.Text) > MaxAuditQuery {
		return page, fmt.Errorf("policy: audit search text longer than %d bytes", MaxAuditQuery)
	}
	if q.Limit <= 0 {
		return page, nil
	}
	budget := q.Budget
	if budget <= 0 {
		budget = DefaultAuditScanBudget
	}
	m := newAuditMatcher(q.Text)
	seen := map[string]bool{}
	started := q.Before.IsZero()
	for i := 0; i <= maxRotated; i++ {
		name := path
		if i > 0 {
			name = path + "." + strconv.Itoa(i)
		}
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			if i == 0 {
				continue // rotated away just now, or never written
			}
			break
		}
		if err != nil {
			return page, fmt.Errorf("policy: audit log: %w", err)
		}
		done, err := func() (bool, error) {
			defer f.Close()
			seg, size, err := segmentKey(f)
			if err != nil || seg == "" || seen[seg] {
				return false, err
			}
			seen[seg] = true
			end := size
			if !started {
				if seg != q.Before.Segment {
					return false, nil
				}
				started = true
				end = min(q.Before.Offset, size)
			}
			return scanBack(f, seg, end, end == size, m, q.Limit, &budget, &page)
		}()
		if err != nil {
			return page, err
		}
		if done {
			return page, nil
		}
	}
	// Every file was read to its start (or the cursor's file is gone).
	page.More, page.Next = false, AuditCursor{}
	return page, nil
}

// segmentKey returns the key of f's first line and f's size; "" for an
// empty file.
func segmentKey(f *os.File) (string, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("policy: audit log: %w", err)
	}
	if st.Size() == 0 {
		return "", 0, nil
	}
	buf := make([]byte, min(st.Size(), 4096))
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", 0, fmt.Errorf("policy: audit log: %w", err)
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i]
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:segmentKeyLen/2]), st.Size(), nil
}

// scanBack reads f's bytes before end backwards, line by line, adding the
// alerts that match to page. tail says end is the file's size, where an
// unterminated line is a write in progress or a crash's remains. It
// reports whether the scan is over (limit reached or budget spent).
func scanBack(f *os.File, seg string, end int64, tail bool, m *auditMatcher, limit int, budget *int64, page *AuditPage) (bool, error) {
	pos := end     // bytes before pos are not read yet
	lineEnd := end // the start of the last line handled: where a cursor resumes
	var acc []byte // bytes [pos, lineEnd) of lines not handled yet
	skipping := false
	block := make([]byte, auditBlock)
	// handle takes one complete line (without its newline) that starts
	// at start; it reports whether the scan is over.
	handle := func(line []byte, start int64) bool {
		lineEnd = start
		if a, ok, bad := m.match(line); bad {
			page.Skipped++
		} else if ok {
			page.Alerts = append(page.Alerts, a)
			if len(page.Alerts) >= limit {
				return true
			}
		}
		return false
	}
	for pos > 0 {
		if *budget <= 0 {
			page.More, page.Next = true, AuditCursor{Segment: seg, Offset: lineEnd}
			return true, nil
		}
		n := min(int64(auditBlock), pos)
		pos -= n
		if _, err := f.ReadAt(block[:n], pos); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("policy: audit log: %w", err)
		}
		*budget -= n
		page.Scanned += n
		acc = append(append(make([]byte, 0, int(n)+len(acc)), block[:n]...), acc...)
		if tail {
			// Drop what follows the last newline: not a complete line.
			i := bytes.LastIndexByte(acc, '\n')
			if i < 0 {
				acc = nil
				lineEnd = pos
				continue
			}
			acc = acc[:i+1]
			lineEnd = pos + int64(i) + 1
			tail = false
		}
		for len(acc) > 0 {
			i := bytes.LastIndexByte(acc[:len(acc)-1], '\n')
			if i < 0 {
				break
			}
			line := acc[i+1 : len(acc)-1]
			start := pos + int64(i) + 1
			if skipping {
				skipping = false
				page.Skipped++
				lineEnd = start
			} else if handle(line, start) {
				page.More, page.Next = true, AuditCursor{Segment: seg, Offset: lineEnd}
				return true, nil
			}
			acc = acc[:i+1]
		}
		if len(acc) > MaxAuditLine {
			// Keep only the newline that ends this overlong line; its
			// start is still to be found.
			acc = acc[len(acc)-1:]
			skipping = true
		}
	}
	if len(acc) > 0 {
		if skipping {
			page.Skipped++
		} else if handle(acc[:len(acc)-1], 0) {
			page.More, page.Next = true, AuditCursor{Segment: seg, Offset: 0}
			// Nothing older in this file, but older files may follow.
			return true, nil
		}
	}
	return false, nil
}

// auditMatcher decides which lines a query keeps.
type auditMatcher struct {
	needle string // lower case; "" keeps every alert
	// raw: needle appears unchanged in the JSON encoding of a field that
	// contains it, so a line without it (case-folded) cannot match.
	raw  bool
	fold []byte // reused buffer for case folding a line
}

func newAuditMatcher(text string) *auditMatcher {
	m := &auditMatcher{needle: strings.ToLower(strings.ToValidUTF8(text, "\uFFFD"))}
	m.raw = m.needle != "" && !strings.ContainsFunc(m.needle, func(r rune) bool {
		// json.Marshal escapes these inside strings.
		return r < 0x20 || r == '"' || r == '\\' || r == '<' || r == '>' || r == '&' ||
			r == '\u2028' || r == '\u2029' || r == utf8.RuneError
	})
	return m
}

// match decodes line if it can match and reports whether it does; bad
// is set for a line that does not decode.
func (m *auditMatcher) match(line []byte) (a Alert, ok, bad bool) {
	if len(line) > MaxAuditLine {
		return a, false, true
	}
	if m.raw && !bytes.Contains(m.lower(line), []byte(m.needle)) {
		return a, false, false
	}
	if err := json.Unmarshal(line, &a); err != nil {
		return a, false, true
	}
	if m.needle == "" {
		return a, true, false
	}
	for _, s := range [...]string{a.Decision.Rule, a.Facts.PeerJID, a.Decision.Message, a.Decision.Detail} {
		if strings.Contains(strings.ToLower(s), m.needle) {
			return a, true, false
		}
	}
	return a, false, false
}

// lower returns line in lower case, as strings.ToLower would, reusing a
// buffer for ASCII lines.
func (m *auditMatcher) lower(line []byte) []byte {
	for _, c := range line {
		if c >= utf8.RuneSelf {
			return bytes.ToLower(line)
		}
	}
	m.fold = append(m.fold[:0], line...)
	for i, c := range m.fold {
		if 'A' <= c && c <= 'Z' {
			m.fold[i] = c + 'a' - 'A'
		}
	}
	return m.fold
}
