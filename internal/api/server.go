package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Implementation limits.
const (
	// MaxRequestBody bounds every request body except POST /v1/iq.
	MaxRequestBody = 64 << 10
	// MaxIQRequestBody bounds the body of POST /v1/iq.
	MaxIQRequestBody = 512 << 10
	// MaxChatBody bounds a chat message body, in bytes.
	MaxChatBody = 16 << 10
	// MaxIQPayload bounds an IQ payload, in bytes.
	MaxIQPayload = 256 << 10
	// DefaultHeartbeat is how often an idle event stream gets a comment
	// line, so that clients and proxies see a live connection.
	DefaultHeartbeat = 15 * time.Second
	// eventBuffer is the buffer of each event subscription; a client that
	// falls further behind loses events, which are counted.
	eventBuffer = 256
	// DefaultSendTimeout bounds POST /v1/chat and POST /v1/iq: the answer
	// comes by then even when the backend is still blocked (a frozen
	// identity agent, say).
	DefaultSendTimeout = 30 * time.Second
	// MaxSendsInProgress bounds the sends still running in the backend,
	// including those whose request already timed out; more are refused
	// with [ErrBusy].
	MaxSendsInProgress = 64
	// maxEventIDLen bounds a Last-Event-ID header.
	maxEventIDLen = 64
	// writeTimeout bounds one write to an event stream client.
	writeTimeout = 10 * time.Second
)

// A Server serves the API for one [Backend]. Create it with [NewServer];
// it is safe for concurrent use. The zero Server is not usable.
type Server struct {
	b           Backend
	log         *slog.Logger
	heartbeat   time.Duration
	sendTimeout time.Duration
	sends       chan struct{} // a slot per send in progress
	checks      chan struct{} // a slot per download checking its file
	metrics     *metrics
	srv         *http.Server
	local       []localRoute // served on the socket only
	web         http.Handler // the API without the local routes

	done     chan struct{} // closed by Shutdown: ends event streams
	doneOnce sync.Once

	mu       sync.Mutex
	shut     bool
	pumpStop func()        // ends the metrics subscription
	pumpDone chan struct{} // closed when the metrics pump returned
}

// An Option configures a [Server].
type Option func(*Server)

// WithHeartbeat sets the interval of event stream heartbeats (default
// [DefaultHeartbeat]); d must be positive.
func WithHeartbeat(d time.Duration) Option {
	if d <= 0 {
		panic("api: heartbeat interval must be positive")
	}
	return func(s *Server) { s.heartbeat = d }
}

// A localRoute is an endpoint of the Unix socket only.
type localRoute struct {
	pattern string
	h       http.Handler
}

// WithLocalRoute serves h at pattern (a [http.ServeMux] pattern) on the
// Unix socket only: [Server.Serve] and [Server.Handler] have it,
// [Server.WebHandler] does not. The web app's login tokens come from
// such a route, so a web session can never mint more.
func WithLocalRoute(pattern string, h http.Handler) Option {
	return func(s *Server) { s.local = append(s.local, localRoute{pattern, h}) }
}

// WithSendTimeout sets the bound of POST /v1/chat and POST /v1/iq
// (default [DefaultSendTimeout]); d must be positive.
func WithSendTimeout(d time.Duration) Option {
	if d <= 0 {
		panic("api: send timeout must be positive")
	}
	return func(s *Server) { s.sendTimeout = d }
}

// NewServer returns a server for b. A nil logger logs nowhere.
func NewServer(b Backend, logger *slog.Logger, opts ...Option) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, log: logger, heartbeat: DefaultHeartbeat, sendTimeout: DefaultSendTimeout,
		sends: make(chan struct{}, MaxSendsInProgress), checks: make(chan struct{}, MaxDownloadChecks),
		done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.metrics = newMetrics(b)
	s.web = s.logRequests(jsonMuxErrors(s.routes()))
	mux := s.routes()
	for _, l := range s.local {
		mux.Handle(l.pattern, l.h)
	}
	s.srv = &http.Server{
		Handler:           s.logRequests(jsonMuxErrors(mux)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	s.srv.RegisterOnShutdown(func() { s.doneOnce.Do(func() { close(s.done) }) })
	return s
}

// routes returns a mux with every endpoint of the API but the local
// ones.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	mux.HandleFunc("GET /v1/peers", s.handlePeers)
	mux.HandleFunc("POST /v1/chat", s.handleChat)
	mux.HandleFunc("GET /v1/messages", s.handleMessages)
	mux.HandleFunc("GET /v1/conversations", s.handleConversations)
	mux.HandleFunc("GET /v1/alerts", s.handleAlerts)
	mux.HandleFunc("POST /v1/alerts/seen", s.handleAlertsSeen)
	mux.HandleFunc("POST /v1/iq", s.handleIQ)
	mux.HandleFunc("GET /v1/events", s.handleEvents)
	mux.HandleFunc("GET /v1/verify", s.handleVerify)
	mux.HandleFunc("POST /v1/trust", s.handleTrust)
	mux.HandleFunc("GET /v1/devices", s.handleDevices)
	mux.HandleFunc("POST /v1/devices", s.handleChangeDevices)
	mux.HandleFunc("GET /v1/calls", s.handleCalls)
	mux.HandleFunc("POST /v1/calls", s.handlePlaceCall)
	mux.HandleFunc("GET /v1/calls/{id}", s.handleCall)
	mux.HandleFunc("POST /v1/calls/{id}/answer", s.handleCallAction(true, answerCall))
	mux.HandleFunc("POST /v1/calls/{id}/decline", s.handleCallAction(false, declineCall))
	mux.HandleFunc("POST /v1/calls/{id}/hangup", s.handleCallAction(false, hangUpCall))
	mux.HandleFunc("POST /v1/calls/{id}/mute", s.handleMuteCall)
	mux.HandleFunc("GET /v1/files", s.handleTransfers)
	mux.HandleFunc("POST /v1/files", s.handleSendFiles)
	mux.HandleFunc("POST /v1/files/upload", s.handleUpload)
	mux.HandleFunc("GET /v1/files/{id}", s.handleTransfer)
	mux.HandleFunc("GET /v1/files/{id}/content", s.handleContent)
	mux.HandleFunc("POST /v1/files/{id}/accept", s.handleAcceptTransfer)
	mux.HandleFunc("POST /v1/files/{id}/decline", s.handleTransferAction(actDecline))
	mux.HandleFunc("POST /v1/files/{id}/cancel", s.handleTransferAction(actCancel))
	mux.HandleFunc("POST /v1/files/{id}/resume", s.handleTransferAction(actResume))
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

// Handler returns the HTTP handler of the Unix socket, local routes
// included (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// WebHandler returns the HTTP handler of the API without the routes added
// by [WithLocalRoute]: what the web app serves under /api/.
func (s *Server) WebHandler() http.Handler { return s.web }

// Serve serves the API on l until [Server.Shutdown]; it then returns nil.
// l should come from [Listen]. Serve also starts counting events for the
// metrics.
func (s *Server) Serve(l net.Listener) error {
	s.startPump()
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown ends event streams, stops accepting connections and waits for
// the requests in flight until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.doneOnce.Do(func() { close(s.done) })
	err := s.srv.Shutdown(ctx)
	s.mu.Lock()
	s.shut = true
	stop, done := s.pumpStop, s.pumpDone
	s.pumpStop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return err
}

// startPump counts events for the metrics, once.
func (s *Server) startPump() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut || s.pumpDone != nil {
		return
	}
	// The backlog was counted when it was published.
	_, ch, stop := s.b.Subscribe(eventBuffer, "")
	s.pumpStop, s.pumpDone = stop, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		for ev := range ch {
			s.metrics.observe(ev)
		}
	}(s.pumpDone)
}

// jsonMuxErrors turns the mux's own plain-text answers (404 for an unknown
// path, 405 for a wrong method) into JSON errors.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &codeRecorder{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		code := rec.code
		if code == 0 || code/100 == 2 {
			code = http.StatusNotFound
		}
		writeError(w, code, http.StatusText(code), "")
	})
}

// codeRecorder keeps the status and headers of a response, dropping its body.
type codeRecorder struct {
	header http.Header
	code   int
}

func (c *codeRecorder) Header() http.Header { return c.header }
func (c *codeRecorder) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *codeRecorder) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}

// statusWriter records the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the flusher and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		h.ServeHTTP(sw, r)
		s.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "status", sw.code, "duration", time.Since(start))
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding response: "+err.Error(), "internal")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg, reason string) {
	b, _ := json.Marshal(errorBody{Error: msg, Reason: reason})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// statusOf maps a backend error to an HTTP status; the more specific
// sentinels wrap the ones tested here.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrUpstream):
		return http.StatusBadGateway
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, reason := statusOf(err), reasonOf(err)
	if code == http.StatusInternalServerError {
		s.log.Error("api request failed", "path", r.URL.Path, "err", err)
		reason = "internal"
	}
	writeError(w, code, err.Error(), reason)
}

// decode reads a JSON request body strictly into v: the content type must
// be JSON, the body at most limit bytes, one object with known fields only
// and nothing after it. On failure it writes the error response and
// returns false.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" && ct != "application/json; charset=utf-8" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", "")
		return false
	}
	err := decodeStrict(http.MaxBytesReader(w, r.Body, limit), v)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", limit), "")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error(), "invalid")
		return false
	}
	return true
}

// decodeStrict decodes exactly one JSON value with known fields from r.
func decodeStrict(r io.Reader, v any) error {
	d := json.NewDecoder(r)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return fmt.Errorf("api: bad JSON body: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return errors.New("api: bad JSON body: data after the object")
	}
	return nil
}

// checkQuery rejects query parameters other than allowed, and repeated ones.
func checkQuery(r *http.Request, allowed ...string) error {
	q := r.URL.Query()
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("%w: unknown query parameter %q", ErrInvalid, k)
		}
		if len(vs) != 1 {
			return fmt.Errorf("%w: query parameter %q repeated", ErrInvalid, k)
		}
	}
	return nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.b.Status())
}

// PeersResponse is the answer of GET /v1/peers.
type PeersResponse struct {
	Peers []Peer `json:"peers"`
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	ps, err := s.b.Peers()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ps == nil {
		ps = []Peer{}
	}
	writeJSON(w, http.StatusOK, PeersResponse{Peers: ps})
}

// ChatResponse is the answer of POST /v1/chat (status 202: handed to the
// server, not yet delivered): the message's delivery state, "sent", with
// the devices it was encrypted to. Receipts update it (GET /v1/messages,
// delivery events).
type ChatResponse = SentMessage

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req ChatRequest
	if !decode(w, r, MaxRequestBody, &req) {
		return
	}
	to, err := checkChat(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var m SentMessage
	err = s.bounded(r.Context(), func(ctx context.Context) error {
		sm, err := s.b.SendChat(ctx, to, req.Body)
		if err == nil {
			m = sm
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.chatSent.Inc()
	if m.To == "" {
		m.To = to
	}
	if m.Devices == nil {
		m.Devices = []DeviceDelivery{}
	}
	writeJSON(w, http.StatusAccepted, m)
}

// bounded runs a send in the backend under the send timeout and returns
// by then even if the backend does not: the send goes on in the
// background, holding one of [MaxSendsInProgress] slots until it returns,
// and whatever it sets is not read.
func (s *Server) bounded(rctx context.Context, f func(context.Context) error) error {
	select {
	case s.sends <- struct{}{}:
	default:
		return fmt.Errorf("%w: %d sends are still running (is the identity agent frozen? see signer in /v1/status); try again later",
			ErrBusy, MaxSendsInProgress)
	}
	// The send's context ends with the request: once the answer is
	// written, a send still running has no one to tell.
	ctx, cancel := context.WithTimeout(rctx, s.sendTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() { <-s.sends }()
		done <- f(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // it finished just in time
			return err
		default:
		}
		return fmt.Errorf("%w: the send did not finish within %s; it may still go out. If signer in /v1/status is not ok, fix the identity agent first",
			ErrTimeout, s.sendTimeout)
	}
}

func (s *Server) handleIQ(w http.ResponseWriter, r *http.Request) {
	if fromWeb(r.Context()) {
		// The page never sends raw IQs; whoever drives it (a script
		// injected into it, an extension) gets no generic way to speak
		// for the account to peers.
		s.fail(w, r, fmt.Errorf("%w: the web app cannot send IQs: POST /v1/iq is for programs on the control socket", ErrForbidden))
		return
	}
	var req IQRequest
	if !decode(w, r, MaxIQRequestBody, &req) {
		return
	}
	to, err := checkIQ(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req.To = to
	var resp IQResponse
	err = s.bounded(r.Context(), func(ctx context.Context) (err error) {
		resp, err = s.b.SendIQ(ctx, req)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r, "jid"); err != nil {
		s.fail(w, r, err)
		return
	}
	bare, err := checkBareJID("jid", r.URL.Query().Get("jid"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	info, err := s.b.Verify(bare)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// ParseDevice parses a device id: decimal digits without sign or leading
// zeros, 1 to 2^32-1.
func ParseDevice(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (s[0] == '0') {
		return 0, fmt.Errorf("%w: device must be a decimal id from 1 to 4294967295", ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: device must be a decimal id from 1 to 4294967295", ErrInvalid)
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: device must be a decimal id from 1 to 4294967295", ErrInvalid)
	}
	return uint32(v), nil
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) {
	info, err := s.b.Devices()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) handleChangeDevices(w http.ResponseWriter, r *http.Request) {
	var req DevicesRequest
	if !decode(w, r, MaxRequestBody, &req) {
		return
	}
	switch {
	case req.Action == DevicesAdd && req.Device == 0:
	case req.Action == DevicesRemove && req.Device != 0:
	default:
		s.fail(w, r, fmt.Errorf("%w: action must be %q, or %q with a device id", ErrInvalid, DevicesAdd, DevicesRemove))
		return
	}
	// Signing goes through the agent: bounded like a send.
	var info DevicesInfo
	err := s.bounded(r.Context(), func(ctx context.Context) error {
		i, err := s.b.ChangeDevices(ctx, req)
		if err == nil {
			info = i
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) handleTrust(w http.ResponseWriter, r *http.Request) {
	var req TrustRequest
	if !decode(w, r, MaxRequestBody, &req) {
		return
	}
	req, err := checkTrust(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.b.Trust(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
