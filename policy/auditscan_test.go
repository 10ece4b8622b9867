package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writeAudit appends n alerts numbered from first with an AuditLog of
// the given size limit, keeping many rotated files.
func writeAudit(t testing.TB, path string, first, n int, maxSize int64) {
	t.Helper()
	l, err := OpenAuditLog(path, WithMaxSize(maxSize), WithKeep(100))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := first; i < first+n; i++ {
		a := testAlert(i)
		if i%3 == 0 {
			a.Facts.PeerJID = "Carol@Example.ORG"
			a.Decision.Rule = "integrity"
			a.Decision.Detail = "detail <b>" + strconv.Itoa(i) + "</b>"
		}
		if err := l.Send(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
}

// scanAll pages through the log with limit and returns the ids, newest
// first.
func scanAll(t *testing.T, path string, q AuditQuery) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("scan does not end")
		}
		p, err := ScanAudit(path, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Alerts {
			ids = append(ids, a.ID)
		}
		if !p.More {
			if !p.Next.IsZero() {
				t.Fatalf("no more, but next %v", p.Next)
			}
			return ids
		}
		if p.Next.IsZero() {
			t.Fatal("more without a cursor")
		}
		q.Before = p.Next
	}
}

func seqIDs(from, to int, keep func(int) bool) []string {
	var out []string
	for i := to; i >= from; i-- {
		if keep == nil || keep(i) {
			out = append(out, "seq-"+strconv.Itoa(i))
		}
	}
	return out
}

// TestScanAuditPages: paging through a rotated log returns every alert,
// newest first, once, whatever the page size.
func TestScanAuditPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAudit(t, path, 0, 250, 4096) // many rotated files
	if _, err := os.Stat(path + ".3"); err != nil {
		t.Fatalf("the log did not rotate: %v", err)
	}
	want := seqIDs(0, 249, nil)
	for _, limit := range []int{1, 7, 50, 1000} {
		got := scanAll(t, path, AuditQuery{Limit: limit})
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("limit %d: got %d alerts %v", limit, len(got), got)
		}
	}
}

// TestScanAuditSearch: the text matches rule, peer, message and detail
// ignoring case, also text that JSON escapes.
func TestScanAuditSearch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAudit(t, path, 0, 90, 2048)
	every3 := seqIDs(0, 89, func(i int) bool { return i%3 == 0 })
	for _, q := range []string{"carol@example.org", "CAROL", "integrity", "<b>", "</B>"} {
		got := scanAll(t, path, AuditQuery{Text: q, Limit: 4})
		if strings.Join(got, ",") != strings.Join(every3, ",") {
			t.Fatalf("%q: got %v", q, got)
		}
	}
	if got := scanAll(t, path, AuditQuery{Text: "<b>42</b>", Limit: 4}); len(got) != 1 || got[0] != "seq-42" {
		t.Fatalf("detail search: %v", got)
	}
	if got := scanAll(t, path, AuditQuery{Text: "nobody@nowhere", Limit: 4}); len(got) != 0 {
		t.Fatalf("no match: %v", got)
	}
	// The id is not searched: only rule, peer, message and detail.
	if got := scanAll(t, path, AuditQuery{Text: "seq-1", Limit: 4}); len(got) != 0 {
		t.Fatalf("id matched: %v", got)
	}
	if _, err := ScanAudit(path, AuditQuery{Text: strings.Repeat("x", MaxAuditQuery+1), Limit: 1}); err == nil {
		t.Fatal("overlong search text accepted")
	}
}

// TestScanAuditCursorSurvivesRotation: a cursor taken before the log
// rotates goes on with the next older alert after it.
func TestScanAuditCursorSurvivesRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAudit(t, path, 0, 60, 2048)
	p, err := ScanAudit(path, AuditQuery{Limit: 25})
	if err != nil || !p.More || p.Alerts[24].ID != "seq-35" {
		t.Fatalf("first page %v, %v", p.Next, err)
	}
	writeAudit(t, path, 60, 40, 2048) // rotates several times
	var got []string
	q := AuditQuery{Limit: 10, Before: p.Next}
	for {
		p, err := ScanAudit(path, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Alerts {
			got = append(got, a.ID)
		}
		if !p.More {
			break
		}
		q.Before = p.Next
	}
	if want := seqIDs(0, 34, nil); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after rotation: %v", got)
	}
}

// TestScanAuditBudget: a scan that runs out of budget says so and the
// next one goes on where it stopped, missing nothing.
func TestScanAuditBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAudit(t, path, 0, 3000, 1<<30) // one file, ~1 MB
	st, _ := os.Stat(path)
	p, err := ScanAudit(path, AuditQuery{Text: "seq", Limit: 1, Budget: 1})
	if err != nil || len(p.Alerts) != 0 || !p.More || p.Scanned != auditBlock {
		t.Fatalf("budget 1: %d alerts, more %v, scanned %d, %v", len(p.Alerts), p.More, p.Scanned, err)
	}
	// A rare match found through several budget-limited scans.
	got := scanAll(t, path, AuditQuery{Text: "<b>3</b>", Limit: 5, Budget: 100 << 10})
	if len(got) != 1 || got[0] != "seq-3" {
		t.Fatalf("rare match: %v", got)
	}
	p, err = ScanAudit(path, AuditQuery{Text: "<b>3</b>", Limit: 5})
	if err != nil || len(p.Alerts) != 1 || p.More || p.Scanned != st.Size() {
		t.Fatalf("full budget: %d alerts, more %v, scanned %d of %d, %v", len(p.Alerts), p.More, p.Scanned, st.Size(), err)
	}
	// Without text, a page reads only about as many blocks as its lines take.
	p, err = ScanAudit(path, AuditQuery{Limit: 10})
	if err != nil || len(p.Alerts) != 10 || p.Scanned != auditBlock {
		t.Fatalf("first page scanned %d bytes, %v", p.Scanned, err)
	}
}

// TestScanAuditDamage: a torn last line, a line that is not JSON and an
// overlong line are skipped; the alerts around them are found.
func TestScanAuditDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var b bytes.Buffer
	line := func(i int) {
		j, _ := json.Marshal(testAlert(i))
		b.Write(append(j, '\n'))
	}
	line(0)
	b.WriteString("not json\n")
	line(1)
	b.WriteString(`{"id":"long","x":"` + strings.Repeat("a", MaxAuditLine+auditBlock) + "\"}\n")
	line(2)
	b.WriteString(`{"id":"torn","ti`)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ScanAudit(path, AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range p.Alerts {
		got = append(got, a.ID)
	}
	if strings.Join(got, ",") != "seq-2,seq-1,seq-0" || p.Skipped != 2 || p.More {
		t.Fatalf("got %v, skipped %d, more %v", got, p.Skipped, p.More)
	}
}

func TestParseAuditCursor(t *testing.T) {
	good := AuditCursor{Segment: strings.Repeat("0a", 16), Offset: 1234}
	c, err := ParseAuditCursor(good.String())
	if err != nil || c != good {
		t.Fatalf("round trip: %v, %v", c, err)
	}
	if c, err := ParseAuditCursor(""); err != nil || !c.IsZero() {
		t.Fatalf("empty: %v, %v", c, err)
	}
	seg := strings.Repeat("0a", 16)
	for _, s := range []string{"x", seg, seg + "-", seg + "-01", seg + "-+1", seg + "--1", seg + "-1a",
		strings.ToUpper(seg) + "-1", seg[:30] + "-1", seg + "-99999999999999999999", seg + "-1-2"} {
		if _, err := ParseAuditCursor(s); !errors.Is(err, ErrBadCursor) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// BenchmarkScanAudit100k measures a page and a search that matches
// nothing (so reads everything) over 100k alerts in 16 MiB files.
func BenchmarkScanAudit100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	var buf bytes.Buffer
	for i := range 100_000 {
		a := testAlert(i)
		a.Decision.Message = "Your conversation is end-to-end encrypted, but this message was not, so it was not delivered: it may be a downgrade attempt or text injected by the server."
		j, _ := json.Marshal(a)
		buf.Write(append(j, '\n'))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d alerts, %d bytes", 100_000, buf.Len())
	b.Run("page", func(b *testing.B) {
		for b.Loop() {
			if p, err := ScanAudit(path, AuditQuery{Limit: 100}); err != nil || len(p.Alerts) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("search-nothing", func(b *testing.B) {
		for b.Loop() {
			if p, err := ScanAudit(path, AuditQuery{Text: "mallory", Limit: 100}); err != nil || len(p.Alerts) != 0 || p.More {
				b.Fatal(err)
			}
		}
	})
	b.Run("search-match", func(b *testing.B) {
		for b.Loop() {
			if p, err := ScanAudit(path, AuditQuery{Text: "BOB@example", Limit: 100}); err != nil || len(p.Alerts) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-bytes-contains", func(b *testing.B) {
		// The raw library floor: one pass of bytes.Contains over the data.
		data, _ := os.ReadFile(path)
		for b.Loop() {
			if bytes.Contains(bytes.ToLower(data), []byte("mallory")) {
				b.Fatal("found")
			}
		}
	})
}
