package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/securejingle/securejingle/internal/api"
)

// callFake adds api.CallBackend to the fake backend.
type callFake struct {
	*fakeBackend
	cmu     sync.Mutex
	calls   map[string]api.CallInfo
	placed  []api.CallOptions
	placeTo []string
	answers map[string]api.CallOptions
	ended   []string // "decline id" or "hangup id"
	callErr error    // returned by the next action
}

func (f *callFake) takeCallErr() error {
	err := f.callErr
	f.callErr = nil
	return err
}

func (f *callFake) setCallErr(err error) {
	f.cmu.Lock()
	f.callErr = err
	f.cmu.Unlock()
}

func (f *callFake) Calls() ([]api.CallInfo, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	var out []api.CallInfo
	for _, c := range f.calls {
		out = append(out, c)
	}
	return out, f.takeCallErr()
}

func (f *callFake) Call(id string) (api.CallInfo, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	c, ok := f.calls[id]
	if !ok {
		return api.CallInfo{}, fmt.Errorf("%w: no call %s", api.ErrNotFound, id)
	}
	return c, nil
}

func (f *callFake) PlaceCall(_ context.Context, to string, o api.CallOptions) (api.CallInfo, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if err := f.takeCallErr(); err != nil {
		return api.CallInfo{}, err
	}
	f.placed = append(f.placed, o)
	f.placeTo = append(f.placeTo, to)
	c := api.CallInfo{ID: fmt.Sprintf("c%d", len(f.placed)), Direction: api.CallOutgoing, Peer: to, State: api.CallProposed,
		Binding: api.BindingPending, Created: time.Unix(1700000000, 0).UTC()}
	if o.Audio {
		c.Media = append(c.Media, api.MediaAudio)
	}
	if o.Video {
		c.Media = append(c.Media, api.MediaVideo)
	}
	f.calls[c.ID] = c
	if o.LocalOffer != "" {
		c.LocalAnswer = "answer to " + o.LocalOffer
	}
	return c, nil
}

func (f *callFake) AnswerCall(_ context.Context, id string, o api.CallOptions) (api.CallInfo, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if err := f.takeCallErr(); err != nil {
		return api.CallInfo{}, err
	}
	f.answers[id] = o
	c := f.calls[id]
	c.State = api.CallConnecting
	f.calls[id] = c
	return c, nil
}

func (f *callFake) end(what, id string) (api.CallInfo, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if err := f.takeCallErr(); err != nil {
		return api.CallInfo{}, err
	}
	c, ok := f.calls[id]
	if !ok {
		return api.CallInfo{}, fmt.Errorf("%w: no call %s", api.ErrNotFound, id)
	}
	f.ended = append(f.ended, what+" "+id)
	c.State = api.CallEnded
	f.calls[id] = c
	return c, nil
}

func (f *callFake) DeclineCall(_ context.Context, id string) (api.CallInfo, error) {
	return f.end("decline", id)
}

func (f *callFake) HangUp(_ context.Context, id string) (api.CallInfo, error) {
	return f.end("hangup", id)
}

// startCallServer serves a fake with call support.
func startCallServer(t *testing.T) (*testServer, *callFake) {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "api.sock")
	l, err := api.Listen(socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf := &callFake{fakeBackend: newFake(), calls: map[string]api.CallInfo{}, answers: map[string]api.CallOptions{}}
	ts := &testServer{fake: cf.fakeBackend, socket: socket, done: make(chan error, 1)}
	ts.srv = api.NewServer(cf, nil)
	go func() { ts.done <- ts.srv.Serve(l) }()
	t.Cleanup(func() { ts.shutdown(t) })
	if ts.client, err = api.Dial(socket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.client.Close() })
	return ts, cf
}

// media writes a header-only Ogg Opus file, a VP8 IVF file and a VP9 IVF
// file into dir.
func media(t *testing.T, dir string) (ogg, ivf, vp9 string) {
	t.Helper()
	ogg, ivf, vp9 = filepath.Join(dir, "in.ogg"), filepath.Join(dir, "in.ivf"), filepath.Join(dir, "vp9.ivf")
	ow, err := oggwriter.New(ogg, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	for path, mime := range map[string]string{ivf: webrtc.MimeTypeVP8, vp9: webrtc.MimeTypeVP9} {
		iw, err := ivfwriter.New(path, ivfwriter.WithCodec(mime))
		if err != nil {
			t.Fatal(err)
		}
		if err := iw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ogg, ivf, vp9
}

func ptr[T any](v T) *T { return &v }

func TestPlaceCall(t *testing.T) {
	ts, cf := startCallServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	ogg, ivf, vp9 := media(t, dir)
	rec := filepath.Join(dir, "rec")
	if err := os.Mkdir(rec, 0o700); err != nil {
		t.Fatal(err)
	}

	// Audio only by default; video when a video file is given.
	info, err := ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{AudioFile: ogg}})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "c1" || info.State != api.CallProposed || !reflect.DeepEqual(info.Media, []string{"audio"}) {
		t.Fatalf("placed %+v", info)
	}
	want := api.CallOptions{Audio: true, AudioFile: ogg}
	if cf.placed[0] != want || cf.placeTo[0] != "bob@example.test" {
		t.Fatalf("backend got %+v to %s, want %+v", cf.placed[0], cf.placeTo[0], want)
	}
	_, err = ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test",
		CallMedia: api.CallMedia{AudioFile: ogg, VideoFile: ivf, RecordDir: rec, Duration: "1m30s"}})
	if err != nil {
		t.Fatal(err)
	}
	want = api.CallOptions{Audio: true, Video: true, AudioFile: ogg, VideoFile: ivf, RecordDir: rec, Duration: 90 * time.Second}
	if cf.placed[1] != want {
		t.Fatalf("backend got %+v, want %+v", cf.placed[1], want)
	}
	// Receive-only video, no audio.
	if _, err := ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test",
		CallMedia: api.CallMedia{Audio: ptr(false), Video: ptr(true)}}); err != nil {
		t.Fatal(err)
	}
	if want := (api.CallOptions{Video: true}); cf.placed[2] != want {
		t.Fatalf("backend got %+v, want %+v", cf.placed[2], want)
	}

	// Relative paths are the daemon's working directory's.
	t.Chdir(dir)
	if _, err := ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test",
		CallMedia: api.CallMedia{AudioFile: "in.ogg", RecordDir: "rec"}}); err != nil {
		t.Fatal(err)
	}
	if got := cf.placed[3]; got.AudioFile != ogg || got.RecordDir != rec {
		t.Fatalf("relative paths resolved to %q and %q, want %q and %q", got.AudioFile, got.RecordDir, ogg, rec)
	}

	// The Location header names the call.
	code, _, hdr := rawHeader(t, ts, "POST", "/v1/calls", `{"to":"bob@example.test"}`)
	if code != http.StatusCreated || hdr.Get("Location") != "/v1/calls/c5" {
		t.Fatalf("POST /v1/calls: %d, Location %q", code, hdr.Get("Location"))
	}

	notOgg := filepath.Join(dir, "in.mp3")
	if err := os.WriteFile(notOgg, []byte("ID3\x03\x00\x00\x00\x00\x00\x00 not ogg"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := "/" + strings.Repeat("x", api.MaxPathLen)
	for _, tc := range []struct {
		name  string
		req   api.CallRequest
		field string // the MediaError field, "" for another invalid request
	}{
		{"no JID", api.CallRequest{}, ""},
		{"full JID", api.CallRequest{To: "bob@example.test/phone"}, ""},
		{"missing audio", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{AudioFile: filepath.Join(dir, "nope.ogg")}}, "audio_file"},
		{"audio is a directory", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{AudioFile: rec}}, "audio_file"},
		{"audio not ogg", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{AudioFile: notOgg}}, "audio_file"},
		{"video not ivf", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{VideoFile: ogg}}, "video_file"},
		{"video not vp8", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{VideoFile: vp9}}, "video_file"},
		{"record dir missing", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{RecordDir: filepath.Join(dir, "nope")}}, "record_dir"},
		{"record dir is a file", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{RecordDir: ogg}}, "record_dir"},
		{"path too long", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{AudioFile: long}}, "audio_file"},
		{"control character", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{RecordDir: dir + "/\x1b[2J"}}, "record_dir"},
		{"audio false with file", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{Audio: ptr(false), AudioFile: ogg}}, ""},
		{"video false with file", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{Video: ptr(false), VideoFile: ivf}}, ""},
		{"no media", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{Audio: ptr(false)}}, ""},
		{"bad duration", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{Duration: "10"}}, ""},
		{"negative duration", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{Duration: "-1s"}}, ""},
		{"long duration", api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{Duration: "25h"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ts.client.PlaceCall(ctx, tc.req)
			var se *api.StatusError
			if !errors.Is(err, api.ErrInvalid) || !errors.As(err, &se) || se.Code != http.StatusBadRequest || se.Reason != "invalid" {
				t.Fatalf("want 400 invalid, got %v", err)
			}
			if tc.field != "" && !strings.HasPrefix(se.Message, "api: "+tc.field+": ") {
				t.Fatalf("message %q does not name %s", se.Message, tc.field)
			}
			if strings.ContainsRune(se.Message, 0x1b) {
				t.Fatalf("message %q echoes a control character", se.Message)
			}
		})
	}
	if len(cf.placed) != 5 {
		t.Fatalf("invalid requests reached the backend: %d calls", len(cf.placed))
	}
	code, msg := ts.raw(t, "POST", "/v1/calls", "application/json", `{"to":"bob@example.test","record":true}`)
	if code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %s", code, msg)
	}
}

// rawHeader is ts.raw with the response headers.
func rawHeader(t *testing.T, ts *testServer, method, path, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := unixClient(ts.socket)
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, "", resp.Header
}

func TestCallErrors(t *testing.T) {
	ts, cf := startCallServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		err    error
		code   int
		reason string
	}{
		{fmt.Errorf("%w: bob has no certified device", api.ErrConflict), http.StatusConflict, "conflict"},
		{fmt.Errorf("%w: the call policy refuses calls from strangers", api.ErrPolicyRefused), http.StatusForbidden, "policy-refused"},
		{fmt.Errorf("%w: not connected", api.ErrUnavailable), http.StatusServiceUnavailable, "unavailable"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "internal"},
	} {
		cf.setCallErr(tc.err)
		_, err := ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test"})
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != tc.code || se.Reason != tc.reason {
			t.Errorf("backend %v: got %v, want %d %s", tc.err, err, tc.code, tc.reason)
		}
	}
	cf.setCallErr(fmt.Errorf("%w: the call policy refuses it", api.ErrPolicyRefused))
	if _, err := ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test"}); !errors.Is(err, api.ErrForbidden) || !errors.Is(err, api.ErrPolicyRefused) {
		t.Fatalf("policy refusal: %v does not unwrap to ErrForbidden and ErrPolicyRefused", err)
	}

	// Unknown and malformed ids.
	for _, f := range []func(string) error{
		func(id string) error { _, err := ts.client.Call(ctx, id); return err },
		func(id string) error { _, err := ts.client.AnswerCall(ctx, id, api.CallMedia{}); return err },
		func(id string) error { _, err := ts.client.DeclineCall(ctx, id); return err },
		func(id string) error { _, err := ts.client.HangUp(ctx, id); return err },
	} {
		if err := f("nope"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("unknown call: %v, want 404", err)
		}
		if err := f(strings.Repeat("x", api.MaxCallIDLen+1)); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("long id: %v, want 400", err)
		}
		if err := f("a b"); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("id with a space: %v, want 400", err)
		}
	}
	if code, msg := ts.raw(t, "GET", "/v1/calls/c1/answer", "", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET answer: %d %s", code, msg)
	}
	if code, msg := ts.raw(t, "GET", "/v1/calls?x=1", "", ""); code != http.StatusBadRequest {
		t.Fatalf("unknown query parameter: %d %s", code, msg)
	}
}

func TestAnswerDeclineHangUp(t *testing.T) {
	ts, cf := startCallServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	ogg, ivf, _ := media(t, dir)
	cf.calls["in1"] = api.CallInfo{ID: "in1", Direction: api.CallIncoming, Peer: "bob@example.test", Media: []string{"audio"}, State: api.CallRinging}
	cf.calls["in2"] = api.CallInfo{ID: "in2", Direction: api.CallIncoming, Peer: "bob@example.test", Media: []string{"audio", "video"}, State: api.CallRinging}
	cf.calls["out"] = api.CallInfo{ID: "out", Direction: api.CallOutgoing, Peer: "bob@example.test", Media: []string{"audio"}, State: api.CallRinging}

	// An answer with nothing set takes what the call offers.
	if _, err := ts.client.AnswerCall(ctx, "in2", api.CallMedia{}); err != nil {
		t.Fatal(err)
	}
	if got, want := cf.answers["in2"], (api.CallOptions{Audio: true, Video: true}); got != want {
		t.Fatalf("answer options %+v, want %+v", got, want)
	}
	// Media the call does not offer, and our own call, are conflicts.
	for id, m := range map[string]api.CallMedia{"in1": {VideoFile: ivf}, "out": {}} {
		if _, err := ts.client.AnswerCall(ctx, id, m); !errors.Is(err, api.ErrConflict) {
			t.Errorf("answer %s %+v: %v, want 409", id, m, err)
		}
	}
	if _, err := ts.client.AnswerCall(ctx, "in1", api.CallMedia{AudioFile: filepath.Join(dir, "none.ogg")}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("answer with a missing file: %v", err)
	}
	info, err := ts.client.AnswerCall(ctx, "in1", api.CallMedia{AudioFile: ogg, Duration: "5s"})
	if err != nil || info.State != api.CallConnecting {
		t.Fatalf("answer: %+v %v", info, err)
	}
	if got, want := cf.answers["in1"], (api.CallOptions{Audio: true, AudioFile: ogg, Duration: 5 * time.Second}); got != want {
		t.Fatalf("answer options %+v, want %+v", got, want)
	}
	if code, msg := ts.raw(t, "POST", "/v1/calls/in1/answer", "application/json", `{"record":true}`); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %s", code, msg)
	}

	if info, err := ts.client.DeclineCall(ctx, "in2"); err != nil || info.State != api.CallEnded {
		t.Fatalf("decline: %+v %v", info, err)
	}
	if info, err := ts.client.HangUp(ctx, "out"); err != nil || info.State != api.CallEnded {
		t.Fatalf("hangup: %+v %v", info, err)
	}
	if want := []string{"decline in2", "hangup out"}; !reflect.DeepEqual(cf.ended, want) {
		t.Fatalf("ended %v, want %v", cf.ended, want)
	}
	// Decline and hangup take no body.
	if code, msg := ts.raw(t, "POST", "/v1/calls/in1/hangup", "application/json", `{}`); code != http.StatusBadRequest {
		t.Fatalf("hangup with a body: %d %s", code, msg)
	}

	calls, err := ts.client.Calls(ctx)
	if err != nil || len(calls) != 3 {
		t.Fatalf("calls: %+v %v", calls, err)
	}
	got, err := ts.client.Call(ctx, "in1")
	if err != nil || got.ID != "in1" || got.State != api.CallConnecting {
		t.Fatalf("call in1: %+v %v", got, err)
	}
}

// TestCallActionStatus: answer, decline and hangup share their checks:
// an unknown id is 404, a malformed id, a query parameter or a bad body
// 400, and a backend conflict 409; none of the 400s reaches the backend.
func TestCallActionStatus(t *testing.T) {
	ts, cf := startCallServer(t)
	cf.calls["ring"] = api.CallInfo{ID: "ring", Direction: api.CallIncoming, Peer: "bob@example.test", Media: []string{"audio"}, State: api.CallRinging}
	cf.calls["out"] = api.CallInfo{ID: "out", Direction: api.CallOutgoing, Peer: "bob@example.test", Media: []string{"audio"}, State: api.CallRinging}
	conflict := fmt.Errorf("%w: the call no longer rings", api.ErrConflict)
	long := strings.Repeat("x", api.MaxCallIDLen+1)
	for _, ep := range []struct {
		action  string
		body    string // a valid body
		badBody string // a body the endpoint refuses
	}{
		{"answer", `{}`, `{"record":true}`},
		{"decline", "", `{}`},
		{"hangup", "", `{}`},
	} {
		for _, tc := range []struct {
			name       string
			id, query  string
			body       string
			backendErr error
			want       int
		}{
			{"unknown id", "nope", "", ep.body, nil, http.StatusNotFound},
			{"id too long", long, "", ep.body, nil, http.StatusBadRequest},
			{"id with a space", "a%20b", "", ep.body, nil, http.StatusBadRequest},
			{"query parameter", "ring", "?x=1", ep.body, nil, http.StatusBadRequest},
			{"bad body", "ring", "", ep.badBody, nil, http.StatusBadRequest},
			{"backend conflict", "ring", "", ep.body, conflict, http.StatusConflict},
		} {
			t.Run(ep.action+"/"+tc.name, func(t *testing.T) {
				cf.setCallErr(tc.backendErr)
				defer cf.setCallErr(nil)
				path := "/v1/calls/" + tc.id + "/" + ep.action + tc.query
				if code, msg := ts.raw(t, "POST", path, "application/json", tc.body); code != tc.want {
					t.Fatalf("POST %s: %d %s, want %d", path, code, msg, tc.want)
				}
			})
		}
	}
	// Only the callee answers.
	if code, msg := ts.raw(t, "POST", "/v1/calls/out/answer", "application/json", `{}`); code != http.StatusConflict {
		t.Fatalf("answering our own call: %d %s, want 409", code, msg)
	}
	cf.cmu.Lock()
	defer cf.cmu.Unlock()
	if len(cf.ended) != 0 || len(cf.answers) != 0 {
		t.Fatalf("refused requests reached the backend: ended %v, answers %v", cf.ended, cf.answers)
	}
}

// TestCallsEmptyAndUnsupported: an empty list is [], and a backend without
// call support answers 503.
func TestCallsEmptyAndUnsupported(t *testing.T) {
	ts, _ := startCallServer(t)
	calls, err := ts.client.Calls(context.Background())
	if err != nil || calls == nil || len(calls) != 0 {
		t.Fatalf("empty calls: %#v %v", calls, err)
	}
	plain := startServer(t)
	if _, err := plain.client.Calls(context.Background()); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("calls on a backend without call support: %v", err)
	}
	if _, err := plain.client.PlaceCall(context.Background(), api.CallRequest{To: "bob@example.test"}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("place on a backend without call support: %v", err)
	}
}

// TestCallEvents: call events carry the call, live and in the backlog
// after a Last-Event-ID.
func TestCallEvents(t *testing.T) {
	ts, cf := startCallServer(t)
	ctx := context.Background()
	connected := api.CallInfo{ID: "c1", Direction: api.CallOutgoing, Peer: "bob@example.test", Media: []string{"audio"},
		State: api.CallConnected, Trust: "verified", Verified: true, Binding: api.BindingPassed, SRTPProfile: "SRTP_AEAD_AES_256_GCM",
		BytesSent: 1200, BytesReceived: 800, Created: time.Unix(1700000000, 0).UTC(), Connected: time.Unix(1700000002, 0).UTC()}
	ended := connected
	ended.State, ended.EndReason, ended.Ended, ended.Recordings = api.CallEnded, "success", time.Unix(1700000009, 0).UTC(), []string{"/rec/c1-audio.ogg"}
	cf.mu.Lock()
	cf.backlog = []api.Event{
		{ID: "r-1", Kind: "call", Call: &connected},
		{ID: "r-2", Kind: "call", Call: &ended},
	}
	cf.mu.Unlock()
	stream, err := ts.client.EventsAfter(ctx, "r-1")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	ev, err := stream.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "r-2" || !ev.Replayed || ev.Kind != "call" || ev.Call == nil || !reflect.DeepEqual(*ev.Call, ended) {
		t.Fatalf("backlog event %+v (call %+v), want %+v", ev, ev.Call, ended)
	}
	ts.fake.publish(api.Event{ID: "r-3", Kind: "call", Call: &connected})
	ev, err = stream.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Replayed || ev.Call == nil || !reflect.DeepEqual(*ev.Call, connected) {
		t.Fatalf("live event %+v (call %+v)", ev, ev.Call)
	}
}

func unixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
}
