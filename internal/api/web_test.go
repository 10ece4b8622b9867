package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
)

// TestWebEndpointsWithoutSupport: a backend without the alert feed, the
// history or uploads answers those endpoints 503, and GET /v1/messages
// pages the sent messages.
func TestWebEndpointsWithoutSupport(t *testing.T) {
	ts := startServer(t)
	for _, c := range []struct{ method, path, ctype, body string }{
		{"GET", "/v1/alerts", "", ""},
		{"POST", "/v1/alerts/seen", "", ""},
		{"GET", "/v1/conversations", "", ""},
		{"POST", "/v1/files/upload?peer=bob@example.test&name=a", "application/octet-stream", "x"},
		{"GET", "/v1/files/x/content", "", ""},
	} {
		if code, _ := ts.raw(t, c.method, c.path, c.ctype, c.body); code != http.StatusServiceUnavailable {
			t.Errorf("%s %s: %d", c.method, c.path, code)
		}
	}
	for i := range 5 {
		if _, err := ts.client.SendChatMessage(t.Context(), "bob@example.test", "m"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := ts.client.Messages(t.Context(), api.MessagesQuery{Limit: 2})
	if err != nil || len(p.Messages) != 2 || p.Messages[0].ID != "m4" || p.Messages[1].ID != "m5" || !p.More {
		t.Fatalf("newest page: %+v, %v", p, err)
	}
	p, err = ts.client.Messages(t.Context(), api.MessagesQuery{Limit: 2, Before: p.Next})
	if err != nil || len(p.Messages) != 2 || p.Messages[0].ID != "m2" || !p.More {
		t.Fatalf("second page: %+v, %v", p, err)
	}
	p, err = ts.client.Messages(t.Context(), api.MessagesQuery{Limit: 2, Before: p.Next})
	if err != nil || len(p.Messages) != 1 || p.Messages[0].ID != "m1" || p.More || p.Next != "" {
		t.Fatalf("last page: %+v, %v", p, err)
	}
	if p, _ := ts.client.Messages(t.Context(), api.MessagesQuery{Peer: "carol@example.test"}); len(p.Messages) != 0 {
		t.Fatalf("another peer's conversation: %+v", p)
	}
}

// TestWebQueryValidation: the query parameters of the new endpoints are
// parsed strictly.
func TestWebQueryValidation(t *testing.T) {
	ts := startServer(t)
	for _, path := range []string{
		"/v1/messages?limit=0", "/v1/messages?limit=501", "/v1/messages?limit=01", "/v1/messages?limit=%2B1",
		"/v1/messages?limit=x", "/v1/messages?peer=", "/v1/messages?peer=bob@example.test/phone",
		"/v1/messages?before=x", "/v1/messages?before=01", "/v1/messages?before=" + strings.Repeat("1", 21),
		"/v1/messages?peer=a@b&peer=c@d",
	} {
		if code, _ := ts.raw(t, "GET", path, "", ""); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	if code, _ := ts.raw(t, "GET", "/v1/messages?peer=bob@example.test&limit=500&before=3", "", ""); code != http.StatusOK {
		t.Errorf("a good query: %d", code)
	}
}

// TestAlertsQueryValidation: GET /v1/alerts parameters, against a
// backend with a feed.
func TestAlertsQueryValidation(t *testing.T) {
	ts := startFeedServer(t)
	for _, q := range []string{
		"limit=201", "limit=-1", "limit=01", "limit=x", "q=" + url.QueryEscape("a\x01b"), "q=%FF",
		"q=" + strings.Repeat("a", 257), "before=" + strings.Repeat("a", 129), "x=1", "q=a&q=b",
	} {
		if code, _ := ts.raw(t, "GET", "/v1/alerts?"+q, "", ""); code != http.StatusBadRequest {
			t.Errorf("GET /v1/alerts?%s: %d", q, code)
		}
	}
	for _, q := range []string{"", "limit=0", "limit=200", "q=" + url.QueryEscape("<script>é"), "before=abc-1"} {
		if code, body := ts.raw(t, "GET", "/v1/alerts?"+q, "", ""); code != http.StatusOK {
			t.Errorf("GET /v1/alerts?%s: %d %s", q, code, body)
		}
	}
	fb := ts.feed
	if got := fb.last; got.Before != "abc-1" || got.Limit != api.DefaultAlertsLimit {
		t.Fatalf("query handed on: %+v", got)
	}
	if code, _ := ts.raw(t, "POST", "/v1/alerts/seen", "application/json", `{"id":"`+strings.Repeat("A", 65)+`"}`); code != http.StatusBadRequest {
		t.Errorf("overlong seen id: %d", code)
	}
	if code, _ := ts.raw(t, "POST", "/v1/alerts/seen", "application/json", `{"id":"A1","x":1}`); code != http.StatusBadRequest {
		t.Errorf("unknown field: %d", code)
	}
	if code, _ := ts.raw(t, "POST", "/v1/alerts/seen", "", ""); code != http.StatusOK || fb.seen != "" {
		t.Errorf("seen without a body: %d", code)
	}
	if r, err := ts.client.MarkAlertsSeen(t.Context(), "A1"); err != nil || fb.seen != "A1" || r.Seen != "A1" {
		t.Errorf("seen A1: %+v %v", r, err)
	}
}

// feedFake adds api.AlertBackend to the fake backend.
type feedFake struct {
	*fakeBackend
	last api.AlertsQuery
	seen string
}

func (f *feedFake) Alerts(q api.AlertsQuery) (api.AlertsResponse, error) {
	f.last = q
	return api.AlertsResponse{}, nil
}

func (f *feedFake) MarkSeen(id string) (api.SeenResponse, error) {
	f.seen = id
	return api.SeenResponse{Seen: id}, nil
}

type feedServer struct {
	*testServer
	feed *feedFake
}

func startFeedServer(t *testing.T) feedServer {
	ff := &feedFake{fakeBackend: newFake()}
	return feedServer{testServer: startServerFor(t, ff, ff.fakeBackend), feed: ff}
}

// startServerFor serves b, whose fakeBackend part is fake.
func startServerFor(t *testing.T, b api.Backend, fake *fakeBackend) *testServer {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "run", "api.sock")
	l, err := api.Listen(socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{fake: fake, socket: socket, done: make(chan error, 1)}
	ts.srv = api.NewServer(b, nil)
	go func() { ts.done <- ts.srv.Serve(l) }()
	t.Cleanup(func() { ts.shutdown(t) })
	if ts.client, err = api.Dial(socket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.client.Close() })
	return ts
}

func TestContentDisposition(t *testing.T) {
	for name, want := range map[string]string{
		"report.pdf":        `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`,
		`a"b\c%.txt`:        `attachment; filename="a_b_c_.txt"; filename*=UTF-8''a%22b%5Cc%25.txt`,
		"café; x=1.txt":     `attachment; filename="caf_; x=1.txt"; filename*=UTF-8''caf%C3%A9%3B%20x%3D1.txt`,
		"<script>.html\r\n": `attachment; filename="<script>.html__"; filename*=UTF-8''%3Cscript%3E.html%0D%0A`,
		"":                  `attachment; filename="file"; filename*=UTF-8''`,
	} {
		if got := api.ContentDisposition(name); got != want {
			t.Errorf("%q:\n got %s\nwant %s", name, got, want)
		}
	}
}

// slowUploads is the fake backend with an UploadBackend whose
// OpenReceived, the daemon's full-file re-hash, waits for release.
type slowUploads struct {
	*fakeBackend
	entered chan struct{}
	release chan struct{}
}

func (s *slowUploads) StageUpload(context.Context, string, int64, io.Reader) (string, error) {
	return "", api.ErrUnavailable
}

func (s *slowUploads) SendStaged(context.Context, string, string, string) (api.TransferInfo, error) {
	return api.TransferInfo{}, api.ErrUnavailable
}

func (s *slowUploads) OpenReceived(ctx context.Context, id string, index int) (*os.File, api.FileInfo, error) {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, api.FileInfo{}, ctx.Err()
	}
	return nil, api.FileInfo{}, fmt.Errorf("%w: %s changed since it was verified", api.ErrConflict, id)
}

// TestWebDownloadChecksBounded: every download re-hashes its whole file
// first, so at most MaxDownloadChecks run at once; one more is 503 busy
// at once, and a slot is free again when a check ends.
func TestWebDownloadChecksBounded(t *testing.T) {
	ts := startServer(t)
	if err := ts.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-ts.done // the fake's server: serve the same socket with an UploadBackend
	b := &slowUploads{fakeBackend: ts.fake, entered: make(chan struct{}, api.MaxDownloadChecks+1), release: make(chan struct{})}
	l, err := api.Listen(ts.socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = api.NewServer(b, nil)
	go func() { ts.done <- ts.srv.Serve(l) }()

	codes := make(chan int, api.MaxDownloadChecks)
	for i := range api.MaxDownloadChecks {
		go func() {
			code, _ := ts.raw(t, "GET", "/v1/files/t"+strconv.Itoa(i)+"/content", "", "")
			codes <- code
		}()
	}
	for range api.MaxDownloadChecks {
		select {
		case <-b.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the downloads did not reach their check")
		}
	}
	type answer struct {
		code int
		msg  string
	}
	third := make(chan answer, 1)
	go func() {
		code, msg := ts.raw(t, "GET", "/v1/files/t9/content", "", "")
		third <- answer{code, msg}
	}()
	select {
	case a := <-third:
		if a.code != http.StatusServiceUnavailable || !strings.Contains(a.msg, "checking their files") {
			t.Fatalf("download with every check slot taken: %d %q, want 503 busy", a.code, a.msg)
		}
	case <-b.entered:
		close(b.release)
		t.Fatalf("a third download check ran while %d were running", api.MaxDownloadChecks)
	case <-time.After(10 * time.Second):
		t.Fatal("the third download got no answer")
	}
	close(b.release)
	for range api.MaxDownloadChecks {
		if code := <-codes; code != http.StatusConflict {
			t.Fatalf("released download: %d, want the backend's 409", code)
		}
	}
	if code, _ := ts.raw(t, "GET", "/v1/files/t9/content", "", ""); code != http.StatusConflict {
		t.Fatalf("download after the checks ended: %d, want 409 from the backend", code)
	}
}
