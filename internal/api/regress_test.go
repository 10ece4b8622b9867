package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
)

// hangGuard only stops a hung test; it asserts no speed.
const hangGuard = 30 * time.Second

// within runs f, failing the test if it does not return before the hang
// guard.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(hangGuard):
		t.Fatalf("%s hung", what)
		return nil
	}
}

// Finding 6: with the identity agent frozen, POST /v1/chat hung far past
// the documented 30 s. The API now answers 504 when its send timeout runs
// out even if the backend never returns, and /v1/iq the same.
func TestRegressChatBoundedWhenBackendBlocks(t *testing.T) {
	ts := startServer(t, api.WithSendTimeout(50*time.Millisecond))
	block := make(chan struct{})
	ts.fake.mu.Lock()
	ts.fake.block = block
	ts.fake.mu.Unlock()
	defer close(block)
	ctx := context.Background()
	err := within(t, "chat", func() error { return ts.client.SendChat(ctx, "bob@example.test", "hi") })
	var se *api.StatusError
	if !errors.Is(err, api.ErrTimeout) || !errors.As(err, &se) || se.Code != http.StatusGatewayTimeout || se.Reason != "timeout" {
		t.Fatalf("blocked chat: %v, want 504", err)
	}
	err = within(t, "iq", func() error {
		_, err := ts.client.SendIQ(ctx, api.IQRequest{To: "bob@example.test/phone", Type: "get", Payload: `<ping xmlns="urn:xmpp:ping"/>`})
		return err
	})
	if !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("blocked iq: %v, want 504", err)
	}
}

// Sends still running in the backend after their request timed out are
// bounded: beyond MaxSendsInProgress the API answers 503 busy at once.
func TestSendsInProgressBounded(t *testing.T) {
	ts := startServer(t, api.WithSendTimeout(20*time.Millisecond))
	block := make(chan struct{})
	ts.fake.mu.Lock()
	ts.fake.block = block
	ts.fake.mu.Unlock()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range api.MaxSendsInProgress {
		wg.Go(func() {
			if err := ts.client.SendChat(ctx, "bob@example.test", "hi"); !errors.Is(err, api.ErrTimeout) && !errors.Is(err, api.ErrBusy) {
				t.Errorf("blocked chat: %v", err)
			}
		})
	}
	wg.Wait()
	// Every slot is held by a send still blocked in the backend.
	if err := ts.client.SendChat(ctx, "bob@example.test", "hi"); !errors.Is(err, api.ErrBusy) || !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("chat with every slot taken: %v, want ErrBusy (503)", err)
	}
	close(block)
	waitFor(t, "slots freed", func() bool { return ts.client.SendChat(ctx, "bob@example.test", "hi") == nil })
}

// Finding 6: signer faults came back as undocumented 500s. Each has its
// documented status and reason, which the client unwraps; so has a
// tampered IQ response (finding 7).
func TestRegressSignerAndIntegrityStatuses(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	cause := errors.New("identity: the agent at /run/a.sock did not answer within 10s")
	for _, c := range []struct {
		err    error
		code   int
		reason string
		class  error
	}{
		{fmt.Errorf("%w: %w", api.ErrSignerTimeout, cause), http.StatusGatewayTimeout, "signer-timeout", api.ErrTimeout},
		{fmt.Errorf("%w: %w", api.ErrSignerUnavailable, cause), http.StatusServiceUnavailable, "signer-unavailable", api.ErrUnavailable},
		{fmt.Errorf("%w: %w", api.ErrIntegrity, cause), http.StatusBadGateway, "integrity", api.ErrUpstream},
		{fmt.Errorf("%w: offline", api.ErrUnavailable), http.StatusServiceUnavailable, "unavailable", api.ErrUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError, "internal", nil},
	} {
		ts.fake.setErr(c.err)
		err := ts.client.SendChat(ctx, "bob@example.test", "hi")
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != c.code || se.Reason != c.reason {
			t.Errorf("%v: got %v, want %d %s", c.err, err, c.code, c.reason)
			continue
		}
		if c.class != nil && !errors.Is(err, c.class) {
			t.Errorf("%v: %v does not unwrap to %v", c.err, err, c.class)
		}
		if se.Message != c.err.Error() {
			t.Errorf("message %q, want the backend's %q", se.Message, c.err)
		}
	}
	// The specific sentinels unwrap too.
	ts.fake.setErr(fmt.Errorf("%w: %w", api.ErrSignerTimeout, cause))
	if err := ts.client.SendChat(ctx, "bob@example.test", "hi"); !errors.Is(err, api.ErrSignerTimeout) {
		t.Fatalf("client error %v does not unwrap to ErrSignerTimeout", err)
	}
}

// Finding 7: the event stream had no backlog, so events from before a
// client connected (pins at start-up, alerts) were invisible. The backlog
// is replayed after the ready marker, marked replayed, with ids; a client
// resuming with Last-Event-ID gets only what followed.
func TestRegressEventBacklog(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	old := []api.Event{
		{ID: "r1-1", Kind: "trust", Time: time.Unix(1700000000, 0).UTC(), From: "bob@example.test", Device: 9, Detail: "first use: pinned SHA256:x"},
		{ID: "r1-2", Kind: "alert", Time: time.Unix(1700000001, 0).UTC(), From: "mallory@example.test", Detail: "refused"},
	}
	ts.fake.mu.Lock()
	ts.fake.backlog = old
	ts.fake.mu.Unlock()
	stream, err := ts.client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	for i, want := range old {
		got, err := stream.Next()
		want.Replayed = true
		if err != nil || got != want {
			t.Fatalf("backlog event %d: %+v %v, want %+v", i, got, err, want)
		}
	}
	live := api.Event{ID: "r1-3", Kind: "chat", Time: time.Unix(1700000002, 0).UTC(), From: "bob@example.test", Body: "hi", Encrypted: true}
	ts.fake.publish(live)
	if got, err := stream.Next(); err != nil || got != live {
		t.Fatalf("live event: %+v %v", got, err)
	}

	resumed, err := ts.client.EventsAfter(ctx, "r1-1")
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	if got, err := resumed.Next(); err != nil || got.ID != "r1-2" || !got.Replayed {
		t.Fatalf("resumed after r1-1: %+v %v", got, err)
	}
	ts.fake.mu.Lock()
	afters := ts.fake.afters
	ts.fake.mu.Unlock()
	if len(afters) < 2 || afters[len(afters)-1] != "r1-1" {
		t.Fatalf("Last-Event-ID not passed on: %q", afters)
	}
	for _, bad := range []string{"a b", "r1-1/../x", strings.Repeat("a", 65)} {
		if code := ts.eventsStatus(t, bad); code != http.StatusBadRequest {
			t.Errorf("Last-Event-ID %q: status %d, want 400", bad, code)
		}
	}
}

// eventsStatus opens GET /v1/events with a Last-Event-ID header and
// returns the status.
func (ts *testServer) eventsStatus(t *testing.T, last string) int {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ts.socket)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "http://x/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", last)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
