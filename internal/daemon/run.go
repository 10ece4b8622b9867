package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/pion/transport/v5/vnet"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/webapp"
)

// shutdownTimeout bounds the API server's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// gatewayEventBuffer is the buffer of the daemon's own gateway
// subscription, which feeds the API's event hub.
const gatewayEventBuffer = 1024

// Option adjusts [Run] for tests.
type Option func(*runOptions)

type runOptions struct {
	minBackoff, maxBackoff time.Duration
	heartbeat              time.Duration
	ready                  func(socket string)
	callNet                *vnet.Net
	callLoopback           bool
	frontReady             func(addrs []string, fingerprint string)
}

// WithBackoff sets the gateway's reconnect delays.
func WithBackoff(min, max time.Duration) Option {
	return func(o *runOptions) { o.minBackoff, o.maxBackoff = min, max }
}

// WithHeartbeat sets the event stream heartbeat interval.
func WithHeartbeat(d time.Duration) Option {
	return func(o *runOptions) { o.heartbeat = d }
}

// WithReady registers f, called once the API socket accepts connections.
func WithReady(f func(socket string)) Option {
	return func(o *runOptions) { o.ready = f }
}

// WithCallNet runs the media of calls on a virtual network (tests only).
func WithCallNet(n *vnet.Net) Option {
	return func(o *runOptions) { o.callNet = n }
}

// WithCallLoopback runs calls and file data channels on loopback only
// and takes the peer's loopback candidates (a TURN server on 127.0.0.1,
// two daemons on one machine; in tests only: a peer's loopback candidate
// is refused otherwise).
func WithCallLoopback() Option {
	return func(o *runOptions) { o.callLoopback = true }
}

// WithFrontReady registers f, called once the gateway-mode front listens,
// with its addresses and its certificate's SHA-256 fingerprint.
func WithFrontReady(f func(addrs []string, fingerprint string)) Option {
	return func(o *runOptions) { o.frontReady = f }
}

// Run runs the daemon for cfg until ctx is cancelled: it opens the store,
// the identity key, the trust store, access control and the engine,
// listens on the API socket, and runs the gateway, which reconnects after
// failures by itself. On cancellation it shuts the API server down, lets
// the gateway close its stream and closes the store; it then returns nil.
// Errors while starting are returned at once.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger, opts ...Option) (err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var o runOptions
	for _, f := range opts {
		f(&o)
	}
	pol, err := cfg.LoadPolicy()
	if err != nil {
		return err
	}
	if cfg.HasPolicy() {
		logger.Info("channel policy loaded", "file", cfg.Policy.File, "rules", len(pol.Rules()))
	} else {
		logger.Info("channel policy: built-in defaults")
	}
	window, err := cfg.Alerts.alertWindow()
	if err != nil {
		return &FieldError{Key: "alerts.window", Msg: err.Error()}
	}

	account, err := jid.Parse(cfg.Account.JID)
	if err != nil {
		return fmt.Errorf("daemon: account.jid: %w", err)
	}
	password, err := cfg.Account.password(ctx)
	if err != nil {
		return err
	}
	tlsCfg, err := cfg.Account.tlsConfig()
	if err != nil {
		return err
	}
	acfg, err := cfg.Access.config()
	if err != nil {
		return err
	}
	ac, err := access.New(acfg, nil)
	if err != nil {
		return fmt.Errorf("daemon: access: %w", err)
	}

	signer, signerCloser, err := openSigner(cfg.Keys)
	if agentUnreachable(cfg.Keys, err) {
		return lockedError(cfg.Store.Path, cfg.Keys, err)
	}
	if err != nil {
		return err
	}
	defer signerCloser.Close()

	st, err := openStore(cfg.Store.Path, account.Bare().String(), cfg.Keys, signer)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("daemon: closing store: %w", cerr)
		}
	}()

	ts := trust.New(st, nil)
	b := &backend{trust: ts, st: st, hub: newHub(), log: logger, seen: map[string]bool{},
		signer: newSignerHealth(signer, cfg.Keys.Backend)}
	eng, err := e2e.New(e2e.Config{
		JID:    account.Bare().String(),
		Signer: signer,
		Store:  st,
		Trust:  &e2e.PinningTrust{Store: ts, OnEvent: b.trustEvent},
		Access: ac,
	})
	if err != nil {
		return fmt.Errorf("daemon: engine: %w", err)
	}
	// The account statement names the bare JID and the account key, no
	// device; the gateway, started below, announces the re-signed bundle
	// at login.
	stmt := attest.Statement{JID: eng.JID(), Key: eng.Identity()}
	if err := stmt.Validate(); err != nil {
		return fmt.Errorf("daemon: account statement: %w", err)
	}
	b.statement = string(stmt.Bytes())
	if b.attest, err = cfg.Trust.Registry(); err != nil {
		return err
	}
	atts, warnings, err := ownAttestations(cfg.Keys, b.attest, signer, stmt)
	if err != nil {
		return err
	}
	if err := eng.SetAttestations(atts); err != nil {
		return fmt.Errorf("daemon: publishing attestations: %w", err)
	}
	b.warn(warnings...)
	logger.Info("attestations published", "count", len(atts), "openpgp_keys", len(cfg.Trust.OpenPGPKeys),
		"x509_roots", cfg.Trust.X509Roots != "")
	// The API server exists before the gateway so that the policy
	// counter can join its /metrics registry; it calls into b only once
	// it serves, after b.gw is set.
	var apiOpts []api.Option
	if o.heartbeat > 0 {
		apiOpts = append(apiOpts, api.WithHeartbeat(o.heartbeat))
	}
	// The login endpoint of the web app exists on the Unix socket only;
	// web is set before the socket serves.
	var web *webapp.Server
	apiOpts = append(apiOpts, api.WithLocalRoute("POST "+api.WebLoginPath, webLogin(&web)))
	srv := api.NewServer(b, logger.With("component", "api"), apiOpts...)
	sinks, closeSinks, err := cfg.alertSinks(srv.Registerer(), logger)
	if err != nil {
		return err
	}
	// Deferred before the gateway runs, so it runs after the gateway has
	// stopped and flushed its pending alert summaries into the sinks.
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer scancel()
		if cerr := closeSinks(sctx); cerr != nil {
			logger.Warn("closing alert sinks", "err", cerr)
		}
	}()
	rules, err := cfg.Calls.autoAnswerRules()
	if err != nil {
		return err
	}
	ring, err := cfg.Calls.ringTimeout()
	if err != nil {
		return &FieldError{Key: "calls.ring_timeout", Msg: err.Error()}
	}
	outage, err := cfg.Calls.outageTimeout()
	if err != nil {
		return &FieldError{Key: "calls.outage_timeout", Msg: err.Error()}
	}
	if b.fileCfg, err = cfg.fileSettings(); err != nil {
		return err
	}
	if err := cfg.makeDirs(); err != nil {
		return err
	}
	b.feed = openAlertFeed(cfg.AuditLogPath(), logger)
	b.history = newHistory()
	if b.staging, err = openStaging(filepath.Join(filepath.Dir(cfg.Store.Path), uploadDirName)); err != nil {
		return err
	}
	defer b.staging.clear()
	defer b.fs.stop()
	gcfg := gateway.Config{
		JID: account, Password: password, Addr: cfg.Account.Server, DirectTLS: cfg.Account.DirectTLS,
		TLS: tlsCfg, AllowPlain: cfg.Account.AllowPlain,
		Engine: eng, Trust: ts, Access: ac, Logger: logger,
		Policy: pol, AlertSinks: sinks, AlertWindow: window,
		NoUserAlerts: cfg.Alerts.NotifyUser != nil && !*cfg.Alerts.NotifyUser,
		MinBackoff:   o.minBackoff, MaxBackoff: o.maxBackoff,
		AddThisDevice:     cfg.Account.AddThisDevice,
		CallAnswerer:      b.answerer(rules),
		ICEServers:        cfg.Calls.iceServers(),
		UseServerICE:      cfg.Calls.useServerServices(),
		RelayOnly:         cfg.Calls.RelayOnly,
		CallNet:           o.callNet,
		CallLoopbackOnly:  o.callLoopback,
		RingTimeout:       ring,
		CallOutageTimeout: outage,
		// Gateway mode's spooled client files (§22.10), beside the
		// web app's staged uploads.
		FrontSpoolDir: filepath.Join(filepath.Dir(cfg.Store.Path), frontSpoolDirName),
	}
	b.fileConfig(&gcfg, cfg.Files.Proxy65)
	gw, err := gateway.New(gcfg)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	b.gw, b.eng = gw, eng
	b.attachFiles(gw)

	socket := cfg.socket()
	l, err := api.Listen(socket, logger)
	if err != nil {
		return err
	}
	if cfg.Web.enabled() {
		cfg.Web.warnRemote(logger)
		web, err = webapp.New(webapp.Config{Listen: cfg.Web.listen(), API: srv.WebHandler(),
			Account: account.Bare().String(), Logger: logger.With("component", "web")})
		if err != nil {
			l.Close()
			return &FieldError{Key: "web.listen", Msg: err.Error() + " (or set [web] enabled = false)"}
		}
	}

	var front *frontServer
	if cfg.Front.Enabled {
		if front, err = startFront(cfg, account, gw, logger.With("component", "front")); err != nil {
			l.Close()
			if web != nil {
				web.Close()
			}
			return err
		}
		// Closed after the gateway stopped: local sessions end last.
		defer front.close()
		if o.frontReady != nil {
			o.frontReady(front.addrs, front.srv.Fingerprint())
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gwEvents, unsubscribe := gw.Subscribe(gatewayEventBuffer)
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		b.pump(ctx, gwEvents, unsubscribe)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	webErr := make(chan error, 1)
	if web != nil {
		go func() { webErr <- web.Serve() }()
		logger.Info("web app serving", "url", web.Origin(), "login", "securejingle ui")
	}
	logger.Info("daemon started", "account", account.String(), "device", eng.Device(), "api", socket)
	if o.ready != nil {
		o.ready(socket)
	}

	gwDone := make(chan error, 1)
	go func() { gwDone <- gw.Run(ctx) }()

	var runErr error
	serveReturned := false
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		runErr = fmt.Errorf("daemon: API server: %w", runErr)
		serveReturned = true
		cancel()
	case runErr = <-webErr:
		runErr = fmt.Errorf("daemon: web app: %w", runErr)
		cancel()
	}
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	// The API's shutdown ends the event streams, the web app's among them.
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("API shutdown", "err", err)
	}
	if web != nil {
		if err := web.Shutdown(sctx); err != nil {
			logger.Warn("web app shutdown", "err", err)
		}
	}
	if !serveReturned {
		<-serveErr
	}
	cancel()
	if err := <-gwDone; err != nil && runErr == nil {
		runErr = err
	}
	<-pumpDone
	logger.Info("daemon stopped")
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	return runErr
}

// webLogin answers POST [api.WebLoginPath] with a login link of *web, or
// says how to turn the web app on.
func webLogin(web **webapp.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *web == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{
				"error":  "the web app is off ([web] enabled = false in the daemon's configuration): set enabled = true and restart the daemon",
				"reason": "unavailable"})
			return
		}
		(*web).TokenHandler().ServeHTTP(w, r)
	})
}
