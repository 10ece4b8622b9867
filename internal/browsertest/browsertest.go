// Package browsertest runs a real headless Chromium for tests, driven with
// chromedp: a fresh profile per browser, pages served by the test on
// 127.0.0.1, everything stopped and removed when the test ends.
//
// Like every integration test of the project it needs the real program:
// it skips unless SECUREJINGLE_INTEGRATION=1 (make check sets it) and, with
// that set, fails when Debian's chromium is not installed.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/securejingle/securejingle/internal/integration"
)

// Flags are the command-line flags every browser gets: headless, as root
// (no sandbox), no GPU, no QUIC, and nothing that reaches the network on
// its own (first-run, background networking, component updates, sync).
// Host candidates are real loopback addresses, not mDNS names, and media
// devices are fakes that need no permission prompt.
var Flags = map[string]any{
	"headless":                         true,
	"no-sandbox":                       true,
	"disable-gpu":                      true,
	"disable-quic":                     true,
	"no-first-run":                     true,
	"no-default-browser-check":         true,
	"disable-background-networking":    true,
	"disable-component-update":         true,
	"disable-sync":                     true,
	"disable-features":                 "WebRtcHideLocalIpsWithMdns",
	"use-fake-device-for-media-stream": true,
	"use-fake-ui-for-media-stream":     true,
	"mute-audio":                       true,
	"hide-scrollbars":                  true,
}

// Browser is one headless Chromium with its own profile. Its zero value
// is not usable: use [Start]. Tabs made with [Browser.NewTab] may be used
// from different goroutines, one goroutine per tab.
type Browser struct {
	t      testing.TB
	ctx    context.Context // the browser's first tab
	output *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start starts Chromium with [Flags] plus extra (added or overriding) and
// a fresh --user-data-dir under t.TempDir(). The browser is stopped when
// the test ends; a test that fails logs the browser's output.
func Start(t testing.TB, extra map[string]any) *Browser {
	t.Helper()
	if !integration.Required() {
		t.Skipf("browser test: set %s=1 (make check does) to run it against Debian's chromium", integration.Env)
	}
	path := integration.Tool(t, "chromium", "chromium")
	out := &lockedBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(out),
	}
	for k, v := range Flags {
		if _, ok := extra[k]; !ok {
			opts = append(opts, chromedp.Flag(k, v))
		}
	}
	for k, v := range extra {
		opts = append(opts, chromedp.Flag(k, v))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx, output: out}
	t.Cleanup(func() {
		cancel()
		acancel() // waits for the process to exit before the profile is removed
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out.String())
	}
	return b
}

// Tab returns the browser's first tab, ready for chromedp.Run.
func (b *Browser) Tab() context.Context { return b.ctx }

// NewTab opens another tab, closed when the test ends.
func (b *Browser) NewTab() context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// Output returns what the browser printed so far.
func (b *Browser) Output() string { return b.output.String() }

// Serve serves h on a fresh 127.0.0.1 port until the test ends and
// returns its base URL (http://127.0.0.1:port).
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &httptest.Server{Listener: l, Config: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	s.Start()
	t.Cleanup(s.Close)
	return s.URL
}

// BlankPage serves an empty HTML page on 127.0.0.1 and returns its URL: a
// secure context (loopback) for WebRTC and media APIs.
func BlankPage(t testing.TB) string {
	t.Helper()
	return Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><html><head><title>securejingle test</title></head><body></body></html>"))
	}))
}

// Open navigates tab to url.
func Open(t testing.TB, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
}

// ErrTimeout is returned by [Eval] when the script did not settle in time.
var ErrTimeout = errors.New("browsertest: script timed out")

// Eval runs the JavaScript expression js in tab, awaits it if it is a
// promise, and decodes its JSON value into a T. timeout guards against a
// hung script (it is not a speed check); 0 means 30 s. A thrown exception
// comes back as the error (a *chromedp.ExceptionError).
func Eval[T any](tab context.Context, js string, timeout time.Duration) (T, error) {
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil && ctx.Err() != nil {
		return v, errors.Join(ErrTimeout, err)
	}
	return v, err
}
