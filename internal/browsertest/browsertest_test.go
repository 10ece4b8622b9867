package browsertest

import (
	"errors"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func TestBrowser(t *testing.T) {
	b := Start(t, nil)
	url := BlankPage(t)
	Open(t, b.Tab(), url)
	title, err := Eval[string](b.Tab(), `document.title`, 0)
	if err != nil || title != "securejingle test" {
		t.Fatalf("title %q, %v", title, err)
	}
	n, err := Eval[int](b.Tab(), `Promise.resolve(40 + 2)`, 0)
	if err != nil || n != 42 {
		t.Fatalf("promise: %d, %v", n, err)
	}
	ok, err := Eval[bool](b.Tab(), `typeof RTCPeerConnection === "function" && window.isSecureContext`, 0)
	if err != nil || !ok {
		t.Fatalf("no WebRTC in a secure context: %v %v", ok, err)
	}
	// Fake devices need no permission prompt.
	tracks, err := Eval[int](b.Tab(), `navigator.mediaDevices.getUserMedia({audio: true, video: true}).then(s => s.getTracks().length)`, 0)
	if err != nil || tracks != 2 {
		t.Fatalf("getUserMedia: %d tracks, %v", tracks, err)
	}
	_, err = Eval[int](b.Tab(), `(() => { throw new Error("boom") })()`, 0)
	var ee *chromedp.ExceptionError
	if !errors.As(err, &ee) {
		t.Fatalf("exception: %v", err)
	}
	_, err = Eval[int](b.Tab(), `new Promise(() => {})`, 100*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("hung script: %v", err)
	}
	tab := b.NewTab()
	Open(t, tab, url)
	if _, err := Eval[string](tab, `document.title`, 0); err != nil {
		t.Fatal(err)
	}
}
