// Package webapp serves the local web app of the daemon: the embedded
// page (assets/), the login that exchanges a one-time token for a session
// cookie, and the daemon's control API under /api/ behind that session.
//
// Every request must name the served host:port in its Host header (DNS
// rebinding); every request but GET and HEAD must carry exactly the served
// origin in Origin; /api and /logout are served under the session's base
// path ("/s/" and a secret of the session, the session cookie's Path, so
// that browsers never send the cookie to another port of the host); every
// such request needs the session cookie, every one but GET and HEAD also
// the session's CSRF token in X-SecureJingle-CSRF, and a browser's
// Sec-Fetch-Site, when sent, must be same-origin. Every response carries a
// strict Content-Security-Policy and its companions.
package webapp

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/securejingle/securejingle/internal/api"
)

//go:embed assets
var assetFS embed.FS

// assets is the tree served at /.
var assets = mustSub(assetFS, "assets")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// Names on the wire.
const (
	// CookiePrefix starts the name of the session cookie, which ends with
	// the served port: browsers send a cookie to every port of a host, and
	// two daemons on one machine must not overwrite each other's.
	CookiePrefix = "securejingle_session_"
	// CSRFHeader carries the session's CSRF token on every /api request
	// that is not a GET or HEAD.
	CSRFHeader = "X-SecureJingle-CSRF"
	// basePrefix starts a session's base path, which ends with a secret
	// of the session: the page reaches /api and /logout under it, and
	// the session cookie's Path is it.
	basePrefix = "/s/"
	// MaxConns bounds the connections served at once on each listening
	// address (127.0.0.1 and ::1: see [Server.Origin]): the port is open
	// to every local user, and each connection costs the daemon a file
	// descriptor. Beyond it connections wait in the listen queue. A
	// browser opens at most six per origin.
	MaxConns = 64
	// DefaultListen is the default listen address.
	DefaultListen = "127.0.0.1:7480"
	// MaxHeaderBytes bounds a request's header. Go keeps a header of
	// many short lines at about 13 times its size, and every local user
	// may hold MaxConns connections on each listening address with a
	// header just under the bound: at 64 KiB each costs about 1 MiB
	// (128 connections, about 120 MiB), at 1 MiB it cost about 15 MiB
	// (1.9 GiB; review rvweb5 F2, TestHeldHeaderMemory). Cookies are
	// not isolated by port, so a page on another port of the app's host
	// name can set more than this (Chromium keeps 180 of 4 KiB) and keep
	// the user out (431) until they clear the host's cookies; such a
	// page needs the random host name of this start, which the server
	// does not tell.
	MaxHeaderBytes = 64 << 10
	// maxLoginBody bounds the body of POST /login.
	maxLoginBody = 1 << 10
)

// ContentSecurityPolicy is sent on every response. Trusted Types with no
// policy make the browser refuse every string given to an HTML or script
// sink (innerHTML, document.write, a script's src...): the page builds
// its DOM from nodes and text only (dom.js), and a mistake that would be
// an injection is a TypeError instead. worker-src 'none' (it would fall
// back to script-src 'self'): the app registers no service worker, and
// nothing on its origin may, since a worker outlives the page and answers
// the origin's later navigations.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self'; media-src 'self' blob: mediastream:; " +
	"worker-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// Config configures a [Server].
type Config struct {
	// Listen is the address to listen on, an IP address and port
	// ("127.0.0.1:7480"); port 0 picks a free port.
	Listen string
	// API is the daemon's control API, served under /api/ (a request for
	// /api/v1/x reaches it as /v1/x).
	API http.Handler
	// Account is the bare JID shown by the page.
	Account string
	// Logger logs refused requests; nil logs nowhere.
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// A Server is the web app's HTTP server. Create it with [New].
type Server struct {
	cfg  Config
	log  *slog.Logger
	auth *auth
	// ls are the listeners: the address configured and, for 127.0.0.1
	// or ::1, the same port on the other one (see listen).
	ls   []net.Listener
	host string // the served host:port, as the Host header must name it
	// cookie is the name of the session cookie.
	cookie string
	srv    *http.Server
}

// New listens on cfg.Listen and returns the server; call [Server.Serve].
func New(cfg Config) (*Server, error) {
	if cfg.API == nil {
		return nil, errors.New("webapp: no API handler")
	}
	ap, err := netip.ParseAddrPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("webapp: listen %q: want an IP address and port such as %s", cfg.Listen, DefaultListen)
	}
	// "[::ffff:127.0.0.1]:P" is 127.0.0.1: served under the random name
	// too, not under a fixed origin.
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if ap.Addr().IsUnspecified() {
		return nil, fmt.Errorf("webapp: listen %q: name one address (the Host check needs it), not the unspecified one", cfg.Listen)
	}
	ls, host, err := listen(ap)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, auth: newAuth(cfg.Now), host: host}
	for _, l := range ls {
		s.ls = append(s.ls, netutil.LimitListener(l, MaxConns))
	}
	s.cookie = CookiePrefix + strconv.Itoa(ls[0].Addr().(*net.TCPAddr).Port)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if !s.FixedOrigin() && len(ls) == 1 {
		s.log.Warn("webapp: the other loopback address (127.0.0.1 or ::1) is not available, so the server does not hold the port there: "+
			"if it comes up later (IPv6 enabled after start), another local user can listen there and browsers may connect to them; restart the daemon then",
			"listen", ls[0].Addr().String())
	}
	if s.FixedOrigin() {
		s.log.Warn("webapp: the origin is fixed (listen is not 127.0.0.1 or ::1): while the daemon is stopped, "+
			"another user who binds the port can plant pages that the browser keeps for this origin and that read a later login link",
			"origin", s.Origin())
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// CookieName returns the name of the session cookie.
func (s *Server) CookieName() string { return s.cookie }

// Origin returns the served origin, "http://host:port". On 127.0.0.1 or
// ::1 the host is a random name under .localhost, new at every [New]
// (see listen); Go's resolver does not know it: reach it with
// [DialLocalhost].
func (s *Server) Origin() string { return "http://" + s.host }

// FixedOrigin reports whether the origin is the listen address itself
// (an address other than 127.0.0.1 and ::1), the same at every start.
func (s *Server) FixedOrigin() bool {
	h, _, _ := net.SplitHostPort(s.host)
	return !strings.HasSuffix(h, localhostSuffix)
}

// Host returns the served host:port, which the Host header of every
// request must name.
func (s *Server) Host() string { return s.host }

// Addr returns the address the server listens on (the configured one).
func (s *Server) Addr() net.Addr { return s.ls[0].Addr() }

// Serve serves until [Server.Shutdown]; it then returns nil.
func (s *Server) Serve() error {
	errs := make(chan error, len(s.ls))
	for _, l := range s.ls {
		go func() { errs <- s.srv.Serve(l) }()
	}
	var first error
	for range s.ls {
		err := <-errs
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err != nil && first == nil {
			// One listener failed: stop the others too.
			first = err
			s.srv.Close()
		}
	}
	return first
}

// Shutdown stops the server, waiting for requests in flight until ctx is
// done. Event streams end when the API server shuts down.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close closes the server and its listeners (also of a server that never
// served).
func (s *Server) Close() error {
	err := s.srv.Close()
	for _, l := range s.ls {
		l.Close()
	}
	return err
}

// LoginURL issues a one-time login token and returns the URL that uses
// it, with the token in the fragment (never sent to a server, never in a
// Referer), and when it expires.
func (s *Server) LoginURL() (string, time.Time) {
	tok, exp := s.auth.issueToken()
	return s.Origin() + "/#token=" + tok, exp
}

// TokenHandler answers POST with a fresh [api.WebLogin]. The daemon mounts
// it on the control API's Unix socket only: it must never be reachable
// through /api/.
func (s *Server) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		u, exp := s.LoginURL()
		writeJSON(w, http.StatusOK, api.WebLogin{URL: u, Expires: exp})
	})
}

// Handler returns the server's handler (for tests).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", s.handleLogin)
	mux.Handle(basePrefix, s.withSession(s.sessionMux()))
	// Without the session's base a request has no session: the cookie
	// is sent under the base only.
	notLoggedIn := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusUnauthorized, msgNotLoggedIn)
	}
	mux.HandleFunc("/api/", notLoggedIn)
	mux.HandleFunc("/logout", notLoggedIn)
	mux.HandleFunc("/", s.handleAsset)
	return s.secure(mux)
}

// ReasonLinkReused is the reason of a 401 to the page of a session that
// was ended because its login link was used a second time.
const ReasonLinkReused = "link-reused"

// msgLinkReused is the error of that 401.
const msgLinkReused = "someone else used the login link of this session (or you opened it twice): this session was ended to be safe. " +
	"If it was not you, someone can read your links (terminal, clipboard): run `securejingle ui` again and open the new link at once"

// msgWrongHost is the answer to a request for another host name. It
// names neither the served host nor the one asked for.
const msgWrongHost = "this server does not answer for this host name: open the link `securejingle ui` prints"

// msgNotLoggedIn is the answer to a request without a session.
const msgNotLoggedIn = "not logged in or the session expired: run `securejingle ui` and open the link it prints"

// sessionMux routes the paths under a session's base (the base cut off).
func (s *Server) sessionMux() sessionHandler {
	mux := map[string]sessionHandler{
		"POST /logout":         s.handleLogout,
		"GET /api/session":     s.handleSession,
		"GET /api/qr":          s.handleQR,
		"POST /api/verify-uri": s.handleVerifyURI,
	}
	return func(w http.ResponseWriter, r *http.Request, sess *session) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/api/v1/") {
			s.handleAPI(w, r, sess)
			return
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		if h := mux[method+" "+p]; h != nil {
			h(w, r, sess)
			return
		}
		for k := range mux {
			if _, kp, _ := strings.Cut(k, " "); kp == p {
				m, _, _ := strings.Cut(k, " ")
				w.Header().Set("Allow", m)
				writeError(w, http.StatusMethodNotAllowed, "use "+m+" for "+p)
				return
			}
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+p)
	}
}

// secure sets the security headers and refuses foreign hosts and origins.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		isAPI := r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, basePrefix)
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(self), microphone=(self)")
		hd.Set("X-Frame-Options", "DENY")
		if isAPI || r.URL.Path == "/login" || r.URL.Path == "/logout" {
			hd.Set("Cache-Control", "no-store")
		}
		if r.Host != s.host {
			s.log.Warn("webapp: refused a request for another host", "host", r.Host, "path", logPath(r.URL.Path))
			// The answer does not name the served host: the random name is
			// what keeps every other local user off the origin (listen).
			writeError(w, http.StatusMisdirectedRequest, msgWrongHost)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if o := r.Header.Values("Origin"); len(o) != 1 || o[0] != s.Origin() {
				s.log.Warn("webapp: refused a request from another origin", "origin", r.Header.Get("Origin"), "path", logPath(r.URL.Path))
				writeError(w, http.StatusForbidden, fmt.Sprintf(
					"refused: the request came from %q, not from this app (%s); use the app's own page", r.Header.Get("Origin"), s.Origin()))
				return
			}
		}
		// A page of another origin (another loopback port is the same
		// site, so the SameSite=Strict cookie goes along) may not even
		// GET the API: an EventSource or a download costs the daemon a
		// connection or a file's re-hash. Browsers that send
		// Sec-Fetch-Site say where a request came from; "none" (typed in
		// the address bar) is refused too.
		if v := r.Header.Values("Sec-Fetch-Site"); isAPI && len(v) > 0 && (len(v) != 1 || v[0] != "same-origin") {
			s.log.Warn("webapp: refused an API request from another page", "sec-fetch-site", r.Header.Get("Sec-Fetch-Site"), "path", logPath(r.URL.Path))
			writeError(w, http.StatusForbidden, fmt.Sprintf(
				"refused: the request came from another page (Sec-Fetch-Site %q), not from this app (%s); use the app's own page", r.Header.Get("Sec-Fetch-Site"), s.Origin()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// logPath is p as the log may hold it: the secret of a session's base
// ("/s/<secret>/api/...") is replaced by "…", since the log is readable
// by more than the browser (the journal, a bug report).
func logPath(p string) string {
	rest, ok := strings.CutPrefix(p, basePrefix)
	if !ok {
		return p
	}
	if _, sub, ok := strings.Cut(rest, "/"); ok {
		return basePrefix + "…/" + sub
	}
	return basePrefix + "…"
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// withSession requires the session cookie under the session's base
// path, and except for GET and HEAD the session's CSRF token; h sees the
// request with the base cut off its path.
func (s *Server) withSession(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Every cookie of the name counts: a page on another port of this
		// host can set one of the same name on a longer path, which the
		// browser sends first (RFC 6265 §5.4), to keep the user out. Their
		// number is bounded by MaxHeaderBytes; a malformed value costs no
		// lock.
		// The session is the one whose cookie came and whose base the
		// path names.
		rest, ok := strings.CutPrefix(r.URL.Path, basePrefix)
		key, sub, _ := strings.Cut(rest, "/")
		var sess *session
		reused := false
		for _, c := range r.CookiesNamed(s.cookie) {
			x, re := s.auth.session(c.Value)
			if ok && x != nil && x.checkBase(basePrefix+key) {
				sess = x
				break
			}
			reused = reused || re
		}
		if sess == nil && reused {
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: msgLinkReused, Reason: ReasonLinkReused})
			return
		}
		if sess == nil {
			writeError(w, http.StatusUnauthorized, msgNotLoggedIn)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if v := r.Header.Values(CSRFHeader); len(v) != 1 || !sess.checkCSRF(v[0]) {
				s.log.Warn("webapp: refused a request without the CSRF token", "path", logPath(r.URL.Path))
				writeError(w, http.StatusForbidden, "refused: the request lacks this session's "+CSRFHeader+" header; reload the app's page")
				return
			}
		}
		// The request ends with the session: an event stream or a
		// download does not outlive a logout or the session's end.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(sess.ctx, cancel)
		defer stop()
		r2 := r.WithContext(ctx)
		u := *r.URL
		u.Path, u.RawPath = "/"+sub, ""
		r2.URL = &u
		h(w, r2, sess)
	}
}

type loginRequest struct {
	Token string `json:"token"`
}

// handleLogin exchanges a login token for a session cookie.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := decodeJSON(w, r, maxLoginBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, `the login request must be one JSON object {"token": "..."}`)
		return
	}
	id, sess, err := s.auth.redeem(req.Token)
	if err != nil {
		s.log.Warn("webapp: refused a login", "err", err)
		writeError(w, http.StatusUnauthorized, loginMessage(err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.cookie, Value: id, Path: sess.base + "/",
		MaxAge:   int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	s.log.Info("webapp: logged in", "sessions_max", MaxSessions, "expires", sess.expires)
	writeJSON(w, http.StatusOK, LoginInfo{Base: sess.base})
}

// LoginInfo is the answer of POST /login.
type LoginInfo struct {
	// Base is the session's base path ("/s/" and a secret): the page
	// reaches /api and /logout under it, and keeps it in its origin's
	// localStorage, which no other port can read.
	Base string `json:"base"`
}

// loginMessage is what the person sees for a refused login.
func loginMessage(err error) string {
	switch {
	case errors.Is(err, ErrTokenUsed):
		return "this link was already used (by you in another tab, or by someone who read it): the session it opened was ended to be safe; run `securejingle ui` again for a new one"
	case errors.Is(err, ErrTokenExpired):
		return fmt.Sprintf("this link expired (links work for %v, and only the %d newest): run `securejingle ui` again", TokenTTL, MaxTokens)
	default:
		return "this link is not valid for this daemon (mistyped, or the daemon restarted): run `securejingle ui` again"
	}
}

// handleLogout ends the session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, sess *session) {
	s.auth.endSession(sess)
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: "", Path: sess.base + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// SessionInfo is the answer of GET /api/session.
type SessionInfo struct {
	Account        string    `json:"account"`
	CSRF           string    `json:"csrf"`
	LegFingerprint string    `json:"leg_fingerprint"`
	Expires        time.Time `json:"expires"`
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request, sess *session) {
	info := SessionInfo{Account: s.cfg.Account, CSRF: sess.csrf, Expires: sess.expires, LegFingerprint: sess.legFingerprint}
	writeJSON(w, http.StatusOK, info)
}

// handleAPI passes /api/v1/... (under the session's base) to the control
// API as /v1/..., marked as a web session's (api.WithWebSession) and with
// the session's local call leg certificate (api.WithLegCertificate) and
// lifetime (api.WithCallLifetime): a call the session's page places or
// answers is hung up by the daemon when the session ends.
func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := api.WithCallLifetime(api.WithLegCertificate(r.Context(), sess.leg), sess.ctx)
	r2 := r.Clone(api.WithWebSession(ctx))
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/api")
	r2.URL.RawPath = ""
	r2.RequestURI = ""
	r2.Header.Del("Cookie")
	r2.Header.Del(CSRFHeader)
	s.cfg.API.ServeHTTP(w, r2)
}

// handleAsset serves the embedded files; "/" is index.html. Directories
// are not listed.
func (s *Server) handleAsset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": only GET")
		return
	}
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	if !fs.ValidPath(name) || strings.HasPrefix(name, ".") {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	b, err := fs.ReadFile(assets, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "not found: "+r.URL.Path)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}

type errorBody struct {
	Error string `json:"error"`
	// Reason tells the page a case it shows apart (ReasonLinkReused).
	Reason string `json:"reason,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// walkAssets calls f for every embedded asset (for tests).
func walkAssets(f func(name string, b []byte)) error {
	return fs.WalkDir(assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, p)
		if err == nil {
			f(p, b)
		}
		return err
	})
}
