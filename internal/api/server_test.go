package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
)

// fakeBackend is a hand-written api.Backend for handler tests.
type fakeBackend struct {
	mu         sync.Mutex
	status     api.Status
	peers      []api.Peer
	chats      []api.ChatRequest
	sent       []api.SentMessage
	iqs        []api.IQRequest
	trusts     []api.TrustRequest
	deviceReqs []api.DevicesRequest
	err        error // returned by the next call that can fail
	iqResp     api.IQResponse
	verify     api.VerifyInfo
	subs       map[int]chan api.Event
	nextSub    int
	backlog    []api.Event   // given to every subscriber, after the one asked for
	afters     []string      // the after argument of every Subscribe
	block      chan struct{} // if set, SendChat and SendIQ wait for it to close
}

func newFake() *fakeBackend {
	return &fakeBackend{
		status: api.Status{Account: "alice@example.test", JID: "alice@example.test/laptop", Device: 7, Connected: true, DroppedEvents: 3},
		subs:   map[int]chan api.Event{},
	}
}

func (f *fakeBackend) takeErr() error {
	err := f.err
	f.err = nil
	return err
}

func (f *fakeBackend) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeBackend) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeBackend) Peers() ([]api.Peer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peers, f.takeErr()
}

// wait blocks while f.block is open.
func (f *fakeBackend) wait() {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
}

func (f *fakeBackend) SendChat(_ context.Context, to, body string) (api.SentMessage, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return api.SentMessage{}, err
	}
	f.chats = append(f.chats, api.ChatRequest{To: to, Body: body})
	m := api.SentMessage{ID: "m" + strconv.Itoa(len(f.chats)), To: to, State: api.DeliverySent, Devices: []api.DeviceDelivery{{Device: 7}}}
	f.sent = append(f.sent, m)
	return m, nil
}

func (f *fakeBackend) Messages() ([]api.SentMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent, f.takeErr()
}

func (f *fakeBackend) SendIQ(_ context.Context, req api.IQRequest) (api.IQResponse, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return api.IQResponse{}, err
	}
	f.iqs = append(f.iqs, req)
	return f.iqResp, nil
}

func (f *fakeBackend) Subscribe(n int, after string) ([]api.Event, <-chan api.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afters = append(f.afters, after)
	var backlog []api.Event
	for _, ev := range f.backlog {
		if ev.ID == after {
			backlog = nil
			continue
		}
		backlog = append(backlog, ev)
	}
	id := f.nextSub
	f.nextSub++
	c := make(chan api.Event, n)
	f.subs[id] = c
	var once sync.Once
	return backlog, c, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, id)
			f.mu.Unlock()
			close(c)
		})
	}
}

func (f *fakeBackend) publish(ev api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.subs {
		c <- ev
	}
}

func (f *fakeBackend) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeBackend) Verify(jid string) (api.VerifyInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return api.VerifyInfo{}, err
	}
	v := f.verify
	v.JID = jid
	return v, nil
}

func (f *fakeBackend) Devices() (api.DevicesInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return api.DevicesInfo{}, err
	}
	return api.DevicesInfo{Account: "alice@example.org", Version: 1, ThisDevice: 7, Certified: true,
		Devices: []api.OwnDevice{{ID: 7, This: true}}}, nil
}

func (f *fakeBackend) ChangeDevices(_ context.Context, req api.DevicesRequest) (api.DevicesInfo, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return api.DevicesInfo{}, err
	}
	f.deviceReqs = append(f.deviceReqs, req)
	return api.DevicesInfo{Account: "alice@example.org", Version: 2, ThisDevice: 7, Certified: true}, nil
}

func (f *fakeBackend) Trust(req api.TrustRequest) (api.TrustResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return api.TrustResult{}, err
	}
	f.trusts = append(f.trusts, req)
	return api.TrustResult{JID: req.JID, Trust: "verified", Method: req.Method}, nil
}

// testServer serves a fake on a Unix socket in a temporary directory.
type testServer struct {
	fake   *fakeBackend
	srv    *api.Server
	socket string
	client *api.Client
	done   chan error
}

func startServer(t *testing.T, opts ...api.Option) *testServer {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "api.sock")
	l, err := api.Listen(socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{fake: newFake(), socket: socket, done: make(chan error, 1)}
	ts.srv = api.NewServer(ts.fake, nil, opts...)
	go func() { ts.done <- ts.srv.Serve(l) }()
	t.Cleanup(func() { ts.shutdown(t) })
	if ts.client, err = api.Dial(socket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.client.Close() })
	return ts
}

func (ts *testServer) shutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
		ts.done <- nil
	case <-ctx.Done():
		t.Error("Serve did not return")
	}
}

// raw sends a hand-made request and returns the status and error message.
func (ts *testServer) raw(t *testing.T, method, path, contentType, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ts.socket)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error string `json:"error"`
	}
	if resp.StatusCode/100 != 2 {
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" {
			t.Errorf("%s %s: status %d with a non-JSON error body %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, eb.Error
}

func TestStatusAndPeers(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	st, err := ts.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, ts.fake.Status()) {
		t.Fatalf("status %+v", st)
	}
	ps, err := ts.client.Peers(ctx)
	if err != nil || ps == nil || len(ps) != 0 {
		t.Fatalf("empty peers: %v %v", ps, err)
	}
	ts.fake.peers = []api.Peer{{JID: "bob@example.test", Resources: []api.Resource{{Resource: "phone", Device: 9}},
		Trust: "tofu", Devices: []api.Device{{ID: 9, Accepted: true, Session: true, Established: true, Suite: "S"}}}}
	ps, err = ts.client.Peers(ctx)
	if err != nil || len(ps) != 1 || ps[0].Devices[0].ID != 9 || !ps[0].Devices[0].Established {
		t.Fatalf("peers %+v %v", ps, err)
	}
	ts.fake.setErr(errors.New("disk on fire"))
	if _, err := ts.client.Peers(ctx); err == nil {
		t.Fatal("backend error not reported")
	} else if se := (*api.StatusError)(nil); !errors.As(err, &se) || se.Code != http.StatusInternalServerError {
		t.Fatalf("want a 500, got %v", err)
	}
	if code, _ := ts.raw(t, "GET", "/v1/status?x=1", "", ""); code != http.StatusBadRequest {
		t.Fatalf("unknown query parameter: %d", code)
	}
}

func TestChat(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	if err := ts.client.SendChat(ctx, "bob@example.test", "hello"); err != nil {
		t.Fatal(err)
	}
	if len(ts.fake.chats) != 1 || ts.fake.chats[0] != (api.ChatRequest{To: "bob@example.test", Body: "hello"}) {
		t.Fatalf("backend got %+v", ts.fake.chats)
	}
	for _, tc := range []struct{ to, body string }{
		{"", "x"},
		{"bob@example.test/phone", "x"}, // chat goes to every device: a bare JID
		{"bob@@example.test", "x"},
		{"bob@example.test", ""},
		{"bob@example.test", "bell\x07"},
		{"bob@example.test", strings.Repeat("x", api.MaxChatBody+1)},
	} {
		if err := ts.client.SendChat(ctx, tc.to, tc.body); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("to %q body %.20q: want ErrInvalid, got %v", tc.to, tc.body, err)
		}
	}
	for _, want := range []error{api.ErrConflict, api.ErrUnavailable, api.ErrTimeout, api.ErrNotFound, api.ErrUpstream} {
		ts.fake.setErr(fmt.Errorf("%w: detail", want))
		if err := ts.client.SendChat(ctx, "bob@example.test", "x"); !errors.Is(err, want) {
			t.Errorf("backend %v: client got %v", want, err)
		}
	}
	if len(ts.fake.chats) != 1 {
		t.Fatalf("failed sends reached the backend: %+v", ts.fake.chats)
	}
}

func TestStrictRequests(t *testing.T) {
	ts := startServer(t)
	const js = "application/json"
	for _, tc := range []struct {
		name, method, path, ct, body string
		code                         int
	}{
		{"ok", "POST", "/v1/chat", js, `{"to":"bob@example.test","body":"hi"}`, http.StatusAccepted},
		{"unknown field", "POST", "/v1/chat", js, `{"to":"bob@example.test","body":"hi","urgent":true}`, http.StatusBadRequest},
		{"trailing data", "POST", "/v1/chat", js, `{"to":"bob@example.test","body":"hi"} {}`, http.StatusBadRequest},
		{"trailing garbage", "POST", "/v1/chat", js, `{"to":"bob@example.test","body":"hi"}x`, http.StatusBadRequest},
		{"not an object", "POST", "/v1/chat", js, `["bob"]`, http.StatusBadRequest},
		{"wrong type", "POST", "/v1/chat", js, `{"to":1,"body":"hi"}`, http.StatusBadRequest},
		{"empty", "POST", "/v1/chat", js, ``, http.StatusBadRequest},
		{"content type", "POST", "/v1/chat", "text/plain", `{"to":"bob@example.test","body":"hi"}`, http.StatusUnsupportedMediaType},
		{"too large", "POST", "/v1/chat", js, `{"to":"bob@example.test","body":"` + strings.Repeat("x", api.MaxRequestBody) + `"}`, http.StatusRequestEntityTooLarge},
		{"method", "GET", "/v1/chat", "", "", http.StatusMethodNotAllowed},
		{"no endpoint", "GET", "/v2/status", "", "", http.StatusNotFound},
		{"iq too large", "POST", "/v1/iq", js, `{"to":"bob@example.test/phone","type":"get","payload":"` + strings.Repeat("x", api.MaxIQRequestBody) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := ts.raw(t, tc.method, tc.path, tc.ct, tc.body)
			if code != tc.code {
				t.Fatalf("status %d (%s), want %d", code, msg, tc.code)
			}
		})
	}
}

func TestIQ(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	ts.fake.iqResp = api.IQResponse{Type: "result", From: "bob@example.test", Device: 9, Payload: `<pong xmlns="urn:x"/>`}
	req := api.IQRequest{To: "bob@example.test/phone", Type: "get", Payload: `<ping xmlns="urn:x"><a>1</a></ping>`}
	resp, err := ts.client.SendIQ(ctx, req)
	if err != nil || resp != ts.fake.iqResp {
		t.Fatalf("resp %+v, %v", resp, err)
	}
	if len(ts.fake.iqs) != 1 || ts.fake.iqs[0] != req {
		t.Fatalf("backend got %+v", ts.fake.iqs)
	}
	bad := []api.IQRequest{
		{To: "bob@example.test", Type: "get", Payload: `<ping xmlns="urn:x"/>`},          // bare JID
		{To: "bob@example.test/phone", Type: "result", Payload: `<ping xmlns="urn:x"/>`}, // not a request
		{To: "bob@example.test/phone", Type: "get", Payload: ``},
		{To: "bob@example.test/phone", Type: "get", Payload: `<ping/>`}, // no namespace
		{To: "bob@example.test/phone", Type: "get", Payload: `<ping xmlns="urn:x"/><ping xmlns="urn:x"/>`},
		{To: "bob@example.test/phone", Type: "get", Payload: `<ping xmlns="urn:x">`},
		{To: "bob@example.test/phone", Type: "get", Payload: `<ping xmlns="urn:x"></pong>`},
		{To: "bob@example.test/phone", Type: "get", Payload: `text<ping xmlns="urn:x"/>`},
		{To: "bob@example.test/phone", Type: "get", Payload: `<?xml version="1.0"?><ping xmlns="urn:x"/>`},
		{To: "bob@example.test/phone", Type: "get", Payload: `<!DOCTYPE x><ping xmlns="urn:x"/>`},
		{To: "bob@example.test/phone", Type: "get", Payload: `<x:ping xmlns:x="urn:x"/>`},
	}
	for _, r := range bad {
		if _, err := ts.client.SendIQ(ctx, r); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: want ErrInvalid, got %v", r, err)
		}
	}
	if len(ts.fake.iqs) != 1 {
		t.Fatalf("invalid requests reached the backend")
	}
}

func TestVerifyAndTrust(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	ts.fake.verify = api.VerifyInfo{Fingerprint: "SHA256:x", SAS: "12345 67890", Devices: []api.VerifyDevice{{ID: 9, Established: true}}, QR: "xmpp:bob@example.test?sj-verify;k=x"}
	v, err := ts.client.Verify(ctx, "bob@example.test")
	if err != nil || v.JID != "bob@example.test" || v.SAS != "12345 67890" || len(v.Devices) != 1 || !v.Devices[0].Established {
		t.Fatalf("verify %+v %v", v, err)
	}
	// Verification is per account: a device parameter is refused.
	for _, q := range []string{"", "?device=9", "?jid=bob@example.test&device=9",
		"?jid=bob@example.test/phone", "?jid=bob@example.test&x=1", "?jid=bob@example.test&jid=bob@example.test"} {
		if code, msg := ts.raw(t, "GET", "/v1/verify"+q, "", ""); code != http.StatusBadRequest {
			t.Errorf("verify%s: status %d (%s)", q, code, msg)
		}
	}
	key := api.EncodeKey(make([]byte, 32))
	res, err := ts.client.Trust(ctx, api.TrustRequest{JID: "bob@example.test", Action: "verify", Key: key})
	if err != nil || res.Trust != "verified" || res.Method != "fingerprint" {
		t.Fatalf("trust %+v %v (method must default to fingerprint)", res, err)
	}
	for _, r := range []api.TrustRequest{
		{JID: "bob@example.test", Action: "verify"},                        // no key
		{JID: "bob@example.test", Action: "verify", Key: key[:len(key)-1]}, // not strict base64
		{JID: "bob@example.test", Action: "verify", Key: api.EncodeKey(make([]byte, 31))},
		{JID: "bob@example.test", Action: "verify", Key: key, Method: "By Phone"},
		{JID: "bob@example.test", Action: "trust"},
		{JID: "bob@example.test", Action: "distrust", Key: key},
		{JID: "bob@example.test", Action: "accept", Method: "sas"},
		{JID: "bob", Action: "accept", Key: "***"},
	} {
		if _, err := ts.client.Trust(ctx, r); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: want ErrInvalid, got %v", r, err)
		}
	}
	ts.fake.setErr(fmt.Errorf("%w: key mismatch", api.ErrConflict))
	if _, err := ts.client.Trust(ctx, api.TrustRequest{JID: "bob@example.test", Action: "accept"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("want ErrConflict, got %v", err)
	}
}

// waitFor polls cond; the bound is a hang guard, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEvents(t *testing.T) {
	ts := startServer(t, api.WithHeartbeat(time.Millisecond))
	ctx := context.Background()
	waitFor(t, "metrics subscription", func() bool { return ts.fake.subscribers() == 1 })
	base := ts.fake.subscribers()
	stream, err := ts.client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ts.fake.subscribers() != base+1 {
		t.Fatal("Events returned before the daemon subscribed")
	}
	sent := []api.Event{
		{Kind: "chat", Time: time.Unix(1700000000, 0).UTC(), From: "bob@example.test", Device: 9, Body: "line one\nline two", Encrypted: true, Established: true},
		{Kind: "alert", Time: time.Unix(1700000001, 0).UTC(), From: "mallory@example.test", Detail: "cleartext </script> \u2028"},
		{Kind: "stanza", Time: time.Unix(1700000002, 0).UTC(), Payload: `<x xmlns="urn:x"/>`},
	}
	for _, ev := range sent {
		ts.fake.publish(ev)
	}
	for i, want := range sent {
		got, err := stream.Next()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("event %d: got %+v, want %+v", i, got, want)
		}
	}
	// The client going away ends the subscription.
	stream.Close()
	waitFor(t, "subscription ended after client disconnect", func() bool { return ts.fake.subscribers() == base })

	// Shutdown ends open streams.
	stream, err = ts.client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts.shutdown(t)
	for {
		if _, err := stream.Next(); err != nil {
			break
		}
	}
	if n := ts.fake.subscribers(); n != 0 {
		t.Fatalf("%d subscriptions left after shutdown", n)
	}
}

func TestMetrics(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	waitFor(t, "metrics subscription", func() bool { return ts.fake.subscribers() == 1 })
	if err := ts.client.SendChat(ctx, "bob@example.test", "x"); err != nil {
		t.Fatal(err)
	}
	ts.fake.publish(api.Event{Kind: "chat", Encrypted: true})
	ts.fake.publish(api.Event{Kind: "chat", Encrypted: false})
	ts.fake.publish(api.Event{Kind: "alert"})
	want := []string{
		api.MetricChatSent + " 1",
		api.MetricChatReceived + `{encrypted="true"} 1`,
		api.MetricChatReceived + `{encrypted="false"} 1`,
		api.MetricAlerts + " 1",
		api.MetricEventsDropped + " 3",
		api.MetricConnected + " 1",
	}
	var text string
	waitFor(t, "metrics to count the events", func() bool {
		var err error
		if text, err = ts.client.Metrics(ctx); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !containsLine(text, w) {
				return false
			}
		}
		return true
	})
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "d", "api.sock")
	l, err := api.Listen(socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(socket))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, %v", di.Mode(), err)
	}
	// A live socket is not taken over.
	if _, err := api.Listen(socket, nil); !errors.Is(err, api.ErrSocketInUse) {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	// Closing removes the socket; a stale one left by a crash is replaced.
	l.Close()
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after close: %v", err)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l, err = api.Listen(socket, nil)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l.Close()

	// A directory open to others is refused, and so is a regular file.
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Listen(filepath.Join(open, "api.sock"), nil); err == nil {
		t.Fatal("listened in a directory open to others")
	}
	file := filepath.Join(dir, "d", "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Listen(file, nil); err == nil {
		t.Fatal("replaced a regular file")
	}
	if _, err := api.Dial(file); err == nil {
		t.Fatal("dialled a regular file")
	}
}

func TestDecodeKey(t *testing.T) {
	k := bytes.Repeat([]byte{0xfb}, 32)
	s := api.EncodeKey(k)
	got, err := api.DecodeKey(s)
	if err != nil || !bytes.Equal(got, k) {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", s[:len(s)-1], strings.ReplaceAll(s, "+", "-"), s + "AAAA", " " + s} {
		if _, err := api.DecodeKey(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestChatDeliveryState: POST /v1/chat answers the message's id and
// delivery state, and GET /v1/messages lists the sent messages' states.
func TestChatDeliveryState(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	m, err := ts.client.SendChatMessage(ctx, "bob@example.test", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "m1" || m.To != "bob@example.test" || m.State != api.DeliverySent || len(m.Devices) != 1 || m.Devices[0].Device != 7 {
		t.Fatalf("chat response %+v", m)
	}
	page, err := ts.client.Messages(ctx, api.MessagesQuery{})
	if ms := page.Messages; err != nil || len(ms) != 1 || ms[0].ID != "m1" || ms[0].Direction != api.MessageOutgoing ||
		ms[0].Peer != "bob@example.test" || ms[0].State != api.DeliverySent || page.More {
		t.Fatalf("messages %+v, %v", page, err)
	}
	if code, _ := ts.raw(t, "GET", "/v1/messages", "", ""); code != http.StatusOK {
		t.Fatalf("GET /v1/messages: %d", code)
	}
	if code, _ := ts.raw(t, "GET", "/v1/messages?x=1", "", ""); code != http.StatusBadRequest {
		t.Fatalf("unknown query parameter: %d", code)
	}
}
