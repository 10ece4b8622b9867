package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
)

// fileFake adds api.FileBackend to the fake backend.
type fileFake struct {
	*fakeBackend
	fmu     sync.Mutex
	xfers   map[string]api.TransferInfo
	sentTo  []string
	sent    []api.SendFilesOptions
	accepts map[string]string // id -> dir
	actions []string          // "decline id", "cancel id", "resume id"
	fileErr error             // returned by the next action
}

func (f *fileFake) takeFileErr() error {
	err := f.fileErr
	f.fileErr = nil
	return err
}

func (f *fileFake) setFileErr(err error) {
	f.fmu.Lock()
	f.fileErr = err
	f.fmu.Unlock()
}

func (f *fileFake) Transfers() ([]api.TransferInfo, error) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	var out []api.TransferInfo
	for _, t := range f.xfers {
		out = append(out, t)
	}
	return out, f.takeFileErr()
}

func (f *fileFake) Transfer(id string) (api.TransferInfo, error) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	t, ok := f.xfers[id]
	if !ok {
		return api.TransferInfo{}, fmt.Errorf("%w: no transfer %s", api.ErrNotFound, id)
	}
	return t, nil
}

func (f *fileFake) SendFiles(_ context.Context, to string, o api.SendFilesOptions) (api.TransferInfo, error) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	if err := f.takeFileErr(); err != nil {
		return api.TransferInfo{}, err
	}
	f.sentTo, f.sent = append(f.sentTo, to), append(f.sent, o)
	t := api.TransferInfo{ID: fmt.Sprintf("f%d", len(f.sent)), Direction: api.TransferOutgoing, Peer: to, State: api.TransferOffered,
		Created: time.Unix(1700000000, 0).UTC()}
	for _, p := range o.Paths {
		t.Files = append(t.Files, api.FileInfo{Name: filepath.Base(p), Path: p, State: api.TransferOffered})
	}
	f.xfers[t.ID] = t
	return t, nil
}

func (f *fileFake) act(what, id, state string) (api.TransferInfo, error) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	if err := f.takeFileErr(); err != nil {
		return api.TransferInfo{}, err
	}
	t, ok := f.xfers[id]
	if !ok {
		return api.TransferInfo{}, fmt.Errorf("%w: no transfer %s", api.ErrNotFound, id)
	}
	f.actions = append(f.actions, what+" "+id)
	t.State = state
	f.xfers[id] = t
	return t, nil
}

func (f *fileFake) AcceptTransfer(_ context.Context, id, dir string) (api.TransferInfo, error) {
	f.fmu.Lock()
	f.accepts[id] = dir
	f.fmu.Unlock()
	return f.act("accept", id, api.TransferConnecting)
}

func (f *fileFake) DeclineTransfer(_ context.Context, id string) (api.TransferInfo, error) {
	return f.act("decline", id, api.TransferDeclined)
}

func (f *fileFake) CancelTransfer(_ context.Context, id string) (api.TransferInfo, error) {
	return f.act("cancel", id, api.TransferCancelled)
}

func (f *fileFake) ResumeTransfer(_ context.Context, id string) (api.TransferInfo, error) {
	return f.act("resume", id, api.TransferConnecting)
}

// startFileServer serves a fake with file support.
func startFileServer(t *testing.T) (*testServer, *fileFake) {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "api.sock")
	l, err := api.Listen(socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	ff := &fileFake{fakeBackend: newFake(), xfers: map[string]api.TransferInfo{}, accepts: map[string]string{}}
	ts := &testServer{fake: ff.fakeBackend, socket: socket, done: make(chan error, 1)}
	ts.srv = api.NewServer(ff, nil)
	go func() { ts.done <- ts.srv.Serve(l) }()
	t.Cleanup(func() { ts.shutdown(t) })
	if ts.client, err = api.Dial(socket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.client.Close() })
	return ts, ff
}

func writeFile(t *testing.T, path string, n int) string {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSendFiles(t *testing.T) {
	ts, ff := startFileServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	a, b := writeFile(t, filepath.Join(dir, "a.txt"), 10), writeFile(t, filepath.Join(dir, "b.bin"), 0)

	info, err := ts.client.SendFiles(ctx, api.SendFilesRequest{To: "bob@example.test", Paths: []string{a, b},
		Transports: []string{api.TransportIBB, api.TransportS5BDirect}, Desc: "holiday"})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "f1" || info.State != api.TransferOffered || len(info.Files) != 2 {
		t.Fatalf("send answer %+v", info)
	}
	want := api.SendFilesOptions{Paths: []string{a, b}, Transports: []string{api.TransportIBB, api.TransportS5BDirect}, Desc: "holiday"}
	if !reflect.DeepEqual(ff.sent[0], want) || ff.sentTo[0] != "bob@example.test" {
		t.Fatalf("backend got %q %+v, want %+v", ff.sentTo[0], ff.sent[0], want)
	}
	_, _, hdr := rawHeader(t, ts, "POST", "/v1/files", fmt.Sprintf(`{"to":"bob@example.test","paths":[%q]}`, a))
	if loc := hdr.Get("Location"); loc != "/v1/files/f2" {
		t.Fatalf("Location %q", loc)
	}

	// Bad requests, each 400 and naming the field.
	long := strings.Repeat("x", api.MaxFileDescLen+1)
	many := make([]string, api.MaxSendFiles+1)
	for i := range many {
		many[i] = a
	}
	for _, tc := range []struct {
		name  string
		req   api.SendFilesRequest
		field string
	}{
		{"no to", api.SendFilesRequest{Paths: []string{a}}, "to"},
		{"full JID", api.SendFilesRequest{To: "bob@example.test/phone", Paths: []string{a}}, "to"},
		{"no paths", api.SendFilesRequest{To: "bob@example.test"}, "paths"},
		{"too many", api.SendFilesRequest{To: "bob@example.test", Paths: many}, "paths"},
		{"missing file", api.SendFilesRequest{To: "bob@example.test", Paths: []string{filepath.Join(dir, "none")}}, "paths[0]"},
		{"a directory", api.SendFilesRequest{To: "bob@example.test", Paths: []string{a, dir}}, "paths[1]"},
		{"control character", api.SendFilesRequest{To: "bob@example.test", Paths: []string{a + "\n"}}, "paths[0]"},
		{"empty path", api.SendFilesRequest{To: "bob@example.test", Paths: []string{""}}, "paths[0]"},
		{"unknown transport", api.SendFilesRequest{To: "bob@example.test", Paths: []string{a}, Transports: []string{"carrier-pigeon"}}, "transports[0]"},
		{"repeated transport", api.SendFilesRequest{To: "bob@example.test", Paths: []string{a}, Transports: []string{"ibb", "ibb"}}, "transports[1]"},
		{"long desc", api.SendFilesRequest{To: "bob@example.test", Paths: []string{a}, Desc: long}, "desc"},
	} {
		_, err := ts.client.SendFiles(ctx, tc.req)
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusBadRequest || !strings.Contains(se.Message, tc.field) {
			t.Errorf("%s: %v, want 400 naming %s", tc.name, err, tc.field)
		}
	}
	if len(ff.sent) != 2 {
		t.Fatalf("bad requests reached the backend: %d sends", len(ff.sent))
	}
	if code, msg := ts.raw(t, "POST", "/v1/files", "application/json", `{"to":"bob@example.test","paths":["/x"],"color":"red"}`); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %s", code, msg)
	}
}

// TestFileErrors: backend errors get the status codes of the calls
// endpoints, plus 413 for size and quota.
func TestFileErrors(t *testing.T) {
	ts, ff := startFileServer(t)
	ctx := context.Background()
	a := writeFile(t, filepath.Join(t.TempDir(), "a"), 1)
	for _, tc := range []struct {
		err    error
		code   int
		reason string
		is     error
	}{
		{fmt.Errorf("%w: bob has no certified device", api.ErrConflict), http.StatusConflict, "conflict", api.ErrConflict},
		{fmt.Errorf("%w: cleartext IBB refused", api.ErrPolicyRefused), http.StatusForbidden, "policy-refused", api.ErrPolicyRefused},
		{fmt.Errorf("%w: 5 GB is over max_file_size", api.ErrTooLarge), http.StatusRequestEntityTooLarge, "too-large", api.ErrTooLarge},
		{fmt.Errorf("%w: 2 GB would pass the quota", api.ErrQuota), http.StatusRequestEntityTooLarge, "quota", api.ErrQuota},
		{fmt.Errorf("%w: not connected", api.ErrUnavailable), http.StatusServiceUnavailable, "unavailable", api.ErrUnavailable},
	} {
		ff.setFileErr(tc.err)
		_, err := ts.client.SendFiles(ctx, api.SendFilesRequest{To: "bob@example.test", Paths: []string{a}})
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != tc.code || se.Reason != tc.reason || !errors.Is(err, tc.is) {
			t.Errorf("backend %v: got %v, want %d %s", tc.err, err, tc.code, tc.reason)
		}
	}
	// A quota error is also a size error.
	ff.setFileErr(fmt.Errorf("%w: full", api.ErrQuota))
	if _, err := ts.client.SendFiles(ctx, api.SendFilesRequest{To: "bob@example.test", Paths: []string{a}}); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("quota error %v is not ErrTooLarge", err)
	}

	for _, f := range []func(string) error{
		func(id string) error { _, err := ts.client.Transfer(ctx, id); return err },
		func(id string) error { _, err := ts.client.AcceptTransfer(ctx, id, ""); return err },
		func(id string) error { _, err := ts.client.DeclineTransfer(ctx, id); return err },
		func(id string) error { _, err := ts.client.CancelTransfer(ctx, id); return err },
		func(id string) error { _, err := ts.client.ResumeTransfer(ctx, id); return err },
	} {
		if err := f("nope"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("unknown transfer: %v, want 404", err)
		}
		if err := f(strings.Repeat("x", api.MaxTransferIDLen+1)); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("long id: %v, want 400", err)
		}
		if err := f("a b"); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("id with a space: %v, want 400", err)
		}
	}
	if code, msg := ts.raw(t, "GET", "/v1/files/f1/accept", "", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET accept: %d %s", code, msg)
	}
	if code, msg := ts.raw(t, "GET", "/v1/files?x=1", "", ""); code != http.StatusBadRequest {
		t.Fatalf("unknown query parameter: %d %s", code, msg)
	}
}

func TestTransferActions(t *testing.T) {
	ts, ff := startFileServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	ff.xfers["in1"] = api.TransferInfo{ID: "in1", Direction: api.TransferIncoming, Peer: "bob@example.test", State: api.TransferPending}
	ff.xfers["in2"] = api.TransferInfo{ID: "in2", Direction: api.TransferIncoming, Peer: "bob@example.test", State: api.TransferPending}
	ff.xfers["out"] = api.TransferInfo{ID: "out", Direction: api.TransferOutgoing, Peer: "bob@example.test", State: api.TransferFailed}

	if info, err := ts.client.AcceptTransfer(ctx, "in1", dir); err != nil || info.State != api.TransferConnecting {
		t.Fatalf("accept: %+v %v", info, err)
	}
	if ff.accepts["in1"] != dir {
		t.Fatalf("accepted into %q, want %q", ff.accepts["in1"], dir)
	}
	// Without a body, or with {}, the download directory.
	if code, msg := ts.raw(t, "POST", "/v1/files/in2/accept", "", ""); code != http.StatusOK {
		t.Fatalf("accept without a body: %d %s", code, msg)
	}
	if d, ok := ff.accepts["in2"]; !ok || d != "" {
		t.Fatalf("accept without a body: dir %q %v", d, ok)
	}
	// A directory that does not exist, and a file, are 400 naming dir.
	for _, d := range []string{filepath.Join(dir, "none"), writeFile(t, filepath.Join(dir, "file"), 1)} {
		_, err := ts.client.AcceptTransfer(ctx, "in1", d)
		var fe *api.StatusError
		if !errors.As(err, &fe) || fe.Code != http.StatusBadRequest || !strings.Contains(fe.Message, "dir") {
			t.Errorf("accept into %s: %v, want 400 naming dir", d, err)
		}
	}
	// Only the receiver accepts or declines.
	if _, err := ts.client.AcceptTransfer(ctx, "out", ""); !errors.Is(err, api.ErrConflict) {
		t.Errorf("accept an outgoing transfer: %v, want 409", err)
	}
	if _, err := ts.client.DeclineTransfer(ctx, "out"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("decline an outgoing transfer: %v, want 409", err)
	}
	if info, err := ts.client.DeclineTransfer(ctx, "in2"); err != nil || info.State != api.TransferDeclined {
		t.Fatalf("decline: %+v %v", info, err)
	}
	if info, err := ts.client.ResumeTransfer(ctx, "out"); err != nil || info.State != api.TransferConnecting {
		t.Fatalf("resume: %+v %v", info, err)
	}
	if info, err := ts.client.CancelTransfer(ctx, "out"); err != nil || info.State != api.TransferCancelled {
		t.Fatalf("cancel: %+v %v", info, err)
	}
	ff.setFileErr(fmt.Errorf("%w: transfer out already ended", api.ErrConflict))
	if _, err := ts.client.CancelTransfer(ctx, "out"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("cancel an ended transfer: %v, want 409", err)
	}
	if want := []string{"accept in1", "accept in2", "decline in2", "resume out", "cancel out"}; !reflect.DeepEqual(ff.actions, want) {
		t.Fatalf("actions %v, want %v", ff.actions, want)
	}
	// Decline, cancel and resume take no body.
	for _, a := range []string{"decline", "cancel", "resume"} {
		if code, msg := ts.raw(t, "POST", "/v1/files/in1/"+a, "application/json", `{}`); code != http.StatusBadRequest {
			t.Errorf("%s with a body: %d %s", a, code, msg)
		}
	}
	if code, msg := ts.raw(t, "POST", "/v1/files/in1/accept", "application/json", `{"folder":"/tmp"}`); code != http.StatusBadRequest {
		t.Fatalf("accept with an unknown field: %d %s", code, msg)
	}

	list, err := ts.client.Transfers(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("transfers: %+v %v", list, err)
	}
	for _, x := range list {
		if x.Files == nil {
			t.Errorf("transfer %s: files null, want []", x.ID)
		}
	}
}

// TestFilesUnsupported: a backend without file support answers 503.
func TestFilesUnsupported(t *testing.T) {
	ts, _ := startFileServer(t)
	list, err := ts.client.Transfers(context.Background())
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("empty transfers: %#v %v", list, err)
	}
	plain := startServer(t)
	if _, err := plain.client.Transfers(context.Background()); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("transfers on a backend without file support: %v", err)
	}
	a := writeFile(t, filepath.Join(t.TempDir(), "a"), 1)
	if _, err := plain.client.SendFiles(context.Background(), api.SendFilesRequest{To: "bob@example.test", Paths: []string{a}}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("send on a backend without file support: %v", err)
	}
}

// TestFileEvents: file events carry the transfer.
func TestFileEvents(t *testing.T) {
	ts, _ := startFileServer(t)
	stream, err := ts.client.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	x := api.TransferInfo{ID: "f1", Direction: api.TransferIncoming, Peer: "bob@example.test", State: api.TransferTransferring,
		Files:     []api.FileInfo{{Name: "a.txt", Size: 100, Done: 50, Hash: "sha-256:00", State: api.TransferTransferring}},
		Transport: api.TransportS5BDirect, BytesDone: 50, BytesTotal: 100, Rate: 12.5, Created: time.Unix(1700000000, 0).UTC()}
	ts.fake.publish(api.Event{ID: "r-1", Kind: "file", File: &x})
	ev, err := stream.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "file" || ev.File == nil || !reflect.DeepEqual(*ev.File, x) {
		t.Fatalf("event %+v (file %+v), want %+v", ev, ev.File, x)
	}
}

func TestTransferEnded(t *testing.T) {
	for s, want := range map[string]bool{api.TransferOffered: false, api.TransferPending: false, api.TransferConnecting: false,
		api.TransferTransferring: false, api.TransferVerifying: false, api.TransferCompleted: true, api.TransferFailed: true,
		api.TransferCancelled: true, api.TransferDeclined: true} {
		if got := api.TransferEnded(s); got != want {
			t.Errorf("TransferEnded(%q) = %v", s, got)
		}
	}
}
