package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/extdisco"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// offsetClock is a clock tests move forward; it is safe for concurrent use.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// extdiscoServer answers XEP-0215 requests to the embedded server's domain
// from a hook: services and credentials come from the test, requests are
// counted, and answers can be held back until released.
type extdiscoServer struct {
	srv *localxmpp.Server

	mu          sync.Mutex
	services    func() []byte // the <services/> answer; nil: pass on (service-unavailable)
	credentials func() []byte // the <credentials/> answer
	hold        chan struct{} // when not nil, answers wait for it to close
	requests    map[string]int
	lastCreds   []byte // the last credentials request
}

func newExtdiscoServer(srv *localxmpp.Server) *extdiscoServer {
	x := &extdiscoServer{srv: srv, requests: map[string]int{}}
	srv.SetHook(x.hook)
	return x
}

func (x *extdiscoServer) hook(ctx localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
	if ctx.Generated || st.Name != "iq" || st.Type != "get" || st.To.String() != testDomain || !bytes.Contains(st.Raw, []byte(extdisco.NS)) {
		return []localxmpp.Stanza{st}
	}
	kind := "services"
	if bytes.Contains(st.Raw, []byte("<credentials")) {
		kind = "credentials"
	}
	x.mu.Lock()
	x.requests[kind]++
	answer := x.services
	if kind == "credentials" {
		answer = x.credentials
		x.lastCreds = st.Raw
	}
	hold := x.hold
	x.mu.Unlock()
	if answer == nil {
		return []localxmpp.Stanza{st}
	}
	payload := answer()
	reply := func() {
		if hold != nil {
			<-hold
		}
		raw := fmt.Appendf(nil, `<iq type="result" id=%q from=%q to=%q>%s</iq>`, st.ID, testDomain, st.From.String(), payload)
		if r, err := localxmpp.ParseStanza(raw); err == nil {
			x.srv.Inject(r)
		}
	}
	go reply()
	return nil
}

func (x *extdiscoServer) count(kind string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.requests[kind]
}

func (x *extdiscoServer) set(f func(*extdiscoServer)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	f(x)
}

func marshalServices(t testing.TB, svcs ...extdisco.Service) func() []byte {
	b, err := extdisco.MarshalServices("", svcs)
	if err != nil {
		t.Fatal(err)
	}
	return func() []byte { return b }
}

func oneGateway(t *testing.T, clock *offsetClock) (*localxmpp.Server, *testGateway) {
	t.Helper()
	srv := startServer(t)
	if err := srv.AddUser("alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	opt := gwOptions{}
	if clock != nil {
		opt.now = clock.now
	}
	return srv, startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", opt)
}

// TestExternalServices: a restricted TURN server listed without
// credentials gets them from a credentials request; the answer is cached
// until a minute before the credentials expire, then fetched again.
func TestExternalServices(t *testing.T) {
	clock := new(offsetClock)
	srv, a := oneGateway(t, clock)
	x := newExtdiscoServer(srv)
	expires := clock.now().Add(time.Hour).Truncate(time.Second)
	x.set(func(x *extdiscoServer) {
		x.services = marshalServices(t,
			extdisco.Service{Type: "stun", Host: "192.0.2.1", Port: 3478, Transport: "udp"},
			extdisco.Service{Type: "turn", Host: "192.0.2.1", Port: 3478, Transport: "udp", Restricted: true},
			extdisco.Service{Type: "ftp", Host: "192.0.2.1", Port: 21},
		)
		x.credentials = func() []byte {
			b, _ := extdisco.MarshalCredentials([]extdisco.Service{{Type: "turn", Host: "192.0.2.1", Port: 3478, Username: "u", Password: "p", Expires: expires}})
			return b
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := a.ExternalServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []webrtc.ICEServer{
		{URLs: []string{"stun:192.0.2.1:3478"}},
		{URLs: []string{"turn:192.0.2.1:3478?transport=udp"}, Username: "u", Credential: "p", CredentialType: webrtc.ICECredentialTypePassword},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("servers\n got %+v\nwant %+v", got, want)
	}
	x.mu.Lock()
	lastCreds := x.lastCreds
	x.mu.Unlock()
	i, j := bytes.Index(lastCreds, []byte("<credentials")), bytes.Index(lastCreds, []byte("</credentials>"))
	if i < 0 || j < i {
		t.Fatalf("credentials request %s", lastCreds)
	}
	asked, err := extdisco.ParseCredentials(lastCreds[i : j+len("</credentials>")])
	if err != nil || len(asked) != 1 || asked[0] != (extdisco.Service{Type: "turn", Host: "192.0.2.1", Port: 3478}) {
		t.Fatalf("credentials request %s: %+v, %v", lastCreds, asked, err)
	}
	if s, c := x.count("services"), x.count("credentials"); s != 1 || c != 1 {
		t.Fatalf("%d services and %d credentials requests, want 1 and 1", s, c)
	}

	// The caller owns the result.
	got[0].URLs[0] = "changed"
	clock.advance(58 * time.Minute)
	again, err := a.ExternalServices(ctx)
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("cached answer %+v, %v", again, err)
	}
	if n := x.count("services"); n != 1 {
		t.Fatalf("%d services requests within the cache lifetime", n)
	}

	// A minute before the credentials expire they are fetched anew.
	clock.advance(time.Minute)
	if _, err := a.ExternalServices(ctx); err != nil {
		t.Fatal(err)
	}
	if s, c := x.count("services"), x.count("credentials"); s != 2 || c != 2 {
		t.Fatalf("after expiry: %d services and %d credentials requests, want 2 and 2", s, c)
	}
}

// TestExternalServicesNoExpiry: without expiring credentials the answer is
// kept for five minutes.
func TestExternalServicesNoExpiry(t *testing.T) {
	clock := new(offsetClock)
	srv, a := oneGateway(t, clock)
	x := newExtdiscoServer(srv)
	x.set(func(x *extdiscoServer) {
		x.services = marshalServices(t, extdisco.Service{Type: "turn", Host: "turn.example.test", Username: "u", Password: "p"})
	})
	ctx := context.Background()
	for range 3 {
		if _, err := a.ExternalServices(ctx); err != nil {
			t.Fatal(err)
		}
		clock.advance(time.Minute)
	}
	if n := x.count("services"); n != 1 {
		t.Fatalf("%d requests in 3 minutes", n)
	}
	clock.advance(3 * time.Minute)
	got, err := a.ExternalServices(ctx)
	if err != nil || len(got) != 1 || got[0].URLs[0] != "turn:turn.example.test:3478?transport=udp" {
		t.Fatalf("%+v, %v", got, err)
	}
	if n := x.count("services"); n != 2 {
		t.Fatalf("%d requests after 6 minutes, want 2", n)
	}
	if n := x.count("credentials"); n != 0 {
		t.Fatalf("%d credentials requests for a service that has them", n)
	}
}

// TestExternalServicesUnsupported: a server without XEP-0215 (the embedded
// one answers service-unavailable) gives ErrNoExternalServices, and so does
// one listing nothing usable; both answers are cached.
func TestExternalServicesUnsupported(t *testing.T) {
	clock := new(offsetClock)
	srv, a := oneGateway(t, clock)
	x := newExtdiscoServer(srv)
	ctx := context.Background()
	for range 2 {
		if _, err := a.ExternalServices(ctx); !errors.Is(err, ErrNoExternalServices) {
			t.Fatalf("unsupported server: %v", err)
		}
	}
	if n := x.count("services"); n != 1 {
		t.Fatalf("%d requests, want the negative answer cached", n)
	}

	clock.advance(extdiscoTTL)
	x.set(func(x *extdiscoServer) {
		x.services = marshalServices(t,
			extdisco.Service{Type: "stun", Host: "h", Transport: "tcp"}, // pion: UDP only
			extdisco.Service{Type: "turn", Host: "h", Restricted: true}, // no credentials to be had
			extdisco.Service{Type: "ftp", Host: "h", Username: "u", Password: "p"},
		)
		x.credentials = func() []byte { return []byte(`<credentials xmlns="urn:xmpp:extdisco:2"/>`) }
	})
	servers, err := a.ExternalServices(ctx)
	if !errors.Is(err, ErrNoExternalServices) || servers != nil {
		t.Fatalf("nothing usable: %+v, %v", servers, err)
	}
	if n := x.count("credentials"); n != 1 {
		t.Fatalf("%d credentials requests", n)
	}
}

// TestExternalServicesMalformed: a malformed answer is an error that is not
// cached.
func TestExternalServicesMalformed(t *testing.T) {
	srv, a := oneGateway(t, nil)
	x := newExtdiscoServer(srv)
	x.set(func(x *extdiscoServer) {
		x.services = func() []byte {
			return []byte(`<services xmlns="urn:xmpp:extdisco:2"><service type="turn" host="h?transport=tcp" username="u" password="p"/></services>`)
		}
	})
	ctx := context.Background()
	for range 2 {
		if _, err := a.ExternalServices(ctx); !errors.Is(err, extdisco.ErrMalformed) {
			t.Fatalf("malformed answer: %v", err)
		}
	}
	if n := x.count("services"); n != 2 {
		t.Fatalf("%d requests, want 2 (no caching of malformed answers)", n)
	}
	x.set(func(x *extdiscoServer) {
		x.services = func() []byte { return []byte(`<query xmlns="jabber:iq:version"/>`) }
	})
	if _, err := a.ExternalServices(ctx); !errors.Is(err, extdisco.ErrMalformed) {
		t.Fatalf("answer without <services/>: %v", err)
	}
}

// TestExternalServicesConcurrent: concurrent callers share one discovery;
// one that gives up gets its context's error and does not disturb the
// others.
func TestExternalServicesConcurrent(t *testing.T) {
	srv, a := oneGateway(t, nil)
	x := newExtdiscoServer(srv)
	release := make(chan struct{})
	x.set(func(x *extdiscoServer) {
		x.services = marshalServices(t, extdisco.Service{Type: "stun", Host: "192.0.2.7"})
		x.hold = release
	})
	const callers = 8
	var wg sync.WaitGroup
	results := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			got, err := a.ExternalServices(ctx)
			if err == nil && (len(got) != 1 || got[0].URLs[0] != "stun:192.0.2.7:3478") {
				err = fmt.Errorf("servers %+v", got)
			}
			results <- err
		})
	}
	// A caller that gives up while the discovery is held back.
	impatient, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := a.ExternalServices(impatient)
		errc <- err
	}()
	for i := 0; x.count("services") == 0; i++ {
		if i > 2000 { // a hang guard
			t.Fatal("no discovery started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("impatient caller: %v", err)
	}
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := x.count("services"); n != 1 {
		t.Fatalf("%d discoveries for %d concurrent callers", n, callers)
	}
}

// TestExternalServicesOffline: without a session there is nothing to ask,
// and the failure is not cached.
func TestExternalServicesOffline(t *testing.T) {
	srv, a := oneGateway(t, nil)
	x := newExtdiscoServer(srv)
	x.set(func(x *extdiscoServer) {
		x.services = marshalServices(t, extdisco.Service{Type: "stun", Host: "192.0.2.7"})
	})
	a.stop()
	<-a.done
	if _, err := a.ExternalServices(context.Background()); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline: %v", err)
	}
	if n := x.count("services"); n != 0 {
		t.Fatalf("%d requests while offline", n)
	}
}
