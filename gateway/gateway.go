// Package gateway connects a securejingle engine to an XMPP account: it
// logs in (STARTTLS or direct TLS, SASL SCRAM or PLAIN over TLS, resource
// binding), advertises support in presence, disco and caps, fetches, pins
// and serves key bundles, relays encrypted chat, and wraps and unwraps
// arbitrary protected stanzas, which it dispatches as if they had arrived
// in place. In gateway mode ([Front], front.go) it also serves the user's
// own unmodified XMPP clients, securing their chat on its way through.
// It is the only package that knows all the others.
//
// See docs/protocol.md for the wire formats.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/jid"

	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/internal/xmppx"
	"github.com/securejingle/securejingle/policy"
)

// Config configures a [Gateway]. JID, Password and Engine are required.
type Config struct {
	JID      jid.JID // account; a resource part is used as the resource
	Password string
	// Addr is the server's host:port. Empty means the JID's domain is
	// looked up the usual way (SRV records).
	Addr string
	// DirectTLS dials TLS directly (XEP-0368) instead of STARTTLS.
	DirectTLS bool
	// TLS configures certificate verification: RootCAs to trust a test CA,
	// or VerifyConnection to pin a certificate. Nil verifies against the
	// system roots with the JID's domain as server name.
	TLS *tls.Config
	// AllowPlain permits SASL PLAIN (always over TLS) when the server offers
	// no SCRAM mechanism.
	AllowPlain bool

	Engine *e2e.Engine
	Trust  *trust.Store       // for trust lookups; nil disables filtering
	Access *access.Controller // gates bundle requests from strangers; nil: roster only
	Logger *slog.Logger

	// Policy classifies channel attempts; nil means policy.Default().
	Policy *policy.Policy
	// AlertSinks receive alerts besides the event stream and the user's
	// own JID (for example the audit log, metrics and a command hook).
	AlertSinks []policy.Sink
	// AlertWindow is the de-duplication window of alerts (default 60 s;
	// negative: no de-duplication).
	AlertWindow time.Duration
	// NoUserAlerts disables alert messages to the user's own JID.
	NoUserAlerts bool
	// Now is the clock for alerts and delivery tracking; nil means
	// time.Now.
	Now func() time.Time
	// WithheldGrace is how long a gap in a contact device's message
	// counters may stay open before the missing messages are reported as
	// not delivered (default DefaultWithheldGrace).
	WithheldGrace time.Duration
	// NoReceipts stops this device from sending end-to-end delivery
	// receipts for the chat messages it decrypts.
	NoReceipts bool

	// MinBackoff and MaxBackoff bound reconnect delays (defaults 500 ms and
	// 1 min); each delay gets ±50% jitter.
	MinBackoff, MaxBackoff time.Duration

	// WriteTimeout bounds one stanza write to the server (default 1 min):
	// a server that stops reading would otherwise hold every sender behind
	// the session's write lock until TCP gives up (many minutes). A write
	// that takes longer closes the connection; the gateway reconnects.
	WriteTimeout time.Duration

	// AddThisDevice lets this device put itself on the account's existing
	// device list at login (signing through the account key's agent).
	// Without it, a device that is not on the list reports that it must be
	// added (`securejingle devices add`); the first device of an account
	// always founds the list.
	AddThisDevice bool

	// CallAnswerer decides about an incoming call when it rings: answer
	// true answers it with the media returned. Nil, or answer false, lets
	// it ring until AnswerCall or DeclineCall or the ring timeout.
	CallAnswerer func(CallInfo) (m CallMedia, answer bool)
	// ICEServers are the STUN/TURN servers for calls.
	ICEServers []webrtc.ICEServer
	// UseServerICE adds the STUN/TURN services the XMPP server announces
	// (XEP-0215) to ICEServers.
	UseServerICE bool
	// RelayOnly makes calls use TURN relay candidates only (hides the
	// addresses of this host from the peer).
	RelayOnly bool
	// CallLoopbackOnly gathers only loopback UDP host candidates for
	// calls and file data channels: for two gateways on one machine (the
	// demo), so that no address of another interface is signaled or
	// used.
	CallLoopbackOnly bool
	// CallNet is a virtual network for the media of calls (tests only);
	// nil uses the host's network.
	CallNet *vnet.Net
	// RingTimeout is how long an incoming call rings, and an outgoing
	// proposal waits for an answer, before it ends with reason timeout
	// (default DefaultRingTimeout).
	RingTimeout time.Duration

	// File transfer (file*.go). DownloadDir is where accepted files are
	// saved when AcceptTransfer or FileAccepter names no directory.
	DownloadDir string
	// MaxFileSize is the largest file sent or accepted, in bytes
	// (0: DefaultMaxFileSize); an offer with a larger file is declined.
	MaxFileSize uint64
	// FileQuota bounds the bytes of the incoming transfers pending or
	// running at once (0: no quota); an offer over it is declined.
	FileQuota uint64
	// FileMinFree is the free space, in bytes, that must remain in the
	// receiving directory once a file is written (its size is reserved
	// at accept); an accept that would leave less fails with ErrNoSpace.
	// 0: none.
	FileMinFree uint64
	// FileTransports is the order of transports tried (names of
	// TransportDataChannel, TransportS5BDirect, TransportS5BProxy,
	// TransportIBB); empty: all, in that order.
	FileTransports []string
	// FrontSpoolDir is where gateway mode spools the files of local
	// clients' plain offers before it sends them encrypted (§22.10);
	// empty: os.TempDir(). Each file gets a directory of its own
	// (mode 0700), removed when its transfer ends; in a directory set
	// here, those left by an earlier run are removed at first use.
	FrontSpoolDir string
	// Proxy65 lists XEP-0065 SOCKS5 proxies for the s5b-proxy transport:
	// a JID is asked for its streamhost; "host:port" is used as given,
	// host being the proxy's JID too (a component such as
	// proxy.example.org:7777). Empty: the proxies of the account's server
	// (disco#items), found on first use and cached for five minutes.
	Proxy65 []string
	// FileAccepter decides about an incoming offer when it arrives: ok
	// accepts it into dir ("" for DownloadDir). Nil, or ok false, leaves
	// it pending for AcceptTransfer or DeclineTransfer.
	FileAccepter func(TransferInfo) (dir string, ok bool)
	// CallOutageTimeout is how long a connected call may lose its media
	// path (CallReconnecting, ICE restarts) before it ends with reason
	// connectivity-error (default DefaultCallOutage).
	CallOutageTimeout time.Duration
}

// A Gateway runs one account. Create it with [New] and run it with
// [Gateway.Run]. Its methods are safe for concurrent use.
type Gateway struct {
	cfg Config
	log *slog.Logger
	eng *e2e.Engine

	mu       sync.Mutex
	sess     *xmpp.Session
	ready    chan struct{} // closed when a session is up; replaced on disconnect
	contacts map[string]*contact
	roster   map[string]string // bare JID -> subscription

	events   *bus
	iqs      map[xml.Name]InnerIQHandler
	inbox    chan *Stanza
	stopped  chan struct{} // closed when Run's context ends
	features []string
	// listsSynced: accounts whose device list was fetched since login.
	listsSynced map[string]bool
	// lastRepublish: when our own list was last put back into PEP.
	lastRepublish time.Time
	policy        *policy.Policy
	notifier      *policy.Notifier
	alertQ        alertQueue        // alerts of the read loop and the worker
	userAlerts    *policy.AsyncSink // the own-JID alert queue; closed when Run returns

	runCtx       context.Context // Run's context, for background fetches
	fetches      *fetchState
	fetchTimeout time.Duration         // fetchTimeout; tests lengthen it
	sent         *sentLog              // delivery state of sent chat messages
	receipts     receiptQueue          // receipts owed, sent by receiptLoop
	gaps         gapTracker            // missing messages of contact devices
	calls        *callTable            // the call channel (call*.go)
	files        *fileTable            // the file channel (file*.go)
	ibb          ibbState              // in-band bytestreams of the current session (under mu)
	s5b          s5bState              // SOCKS5 listener and proxies of the file channel
	fileHooks    fileTestHooks         // tests only
	front        atomic.Pointer[Front] // gateway mode (front.go), nil without local clients
	callHooks    callTestHooks         // tests only
}

// New returns a gateway for cfg. It does not connect: call Run.
func New(cfg Config) (*Gateway, error) {
	if cfg.JID.Localpart() == "" || cfg.Engine == nil {
		return nil, errors.New("gateway: Config needs an account JID and an Engine")
	}
	if cfg.JID.Bare().String() != cfg.Engine.JID() {
		return nil, fmt.Errorf("gateway: engine is for %s, account is %s", cfg.Engine.JID(), cfg.JID.Bare())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Minute
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = time.Minute
	}
	g := &Gateway{
		cfg:      cfg,
		log:      cfg.Logger.With("account", cfg.JID.Bare().String()),
		eng:      cfg.Engine,
		ready:    make(chan struct{}),
		contacts: map[string]*contact{},
		roster:   map[string]string{},
		events:   newBus(),
		iqs:      map[xml.Name]InnerIQHandler{},
		inbox:    make(chan *Stanza, 256),
		stopped:  make(chan struct{}),
		runCtx:   context.Background(),
		fetches:  newFetchState(),

		fetchTimeout: fetchTimeout,
		sent:         newSentLog(),
		receipts:     receiptQueue{wake: make(chan struct{}, 1)},
	}
	g.features = []string{nsDiscoInfo, nsCaps, e2e.NS, nsBundlesNode + "+notify", nsDevicesNode + "+notify", nsCarbons}
	g.policy = cfg.Policy
	if g.policy == nil {
		g.policy = policy.Default()
	}
	g.notifier = g.newNotifier()
	g.initCalls()
	g.initFiles() // after initCalls: it routes protected Jingle of file sessions
	return g, nil
}

// Engine returns the gateway's engine.
func (g *Gateway) Engine() *e2e.Engine { return g.eng }

// JID returns the bound full JID, or the configured one before login.
func (g *Gateway) JID() jid.JID {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sess != nil {
		return g.sess.LocalAddr()
	}
	return g.cfg.JID
}

func (g *Gateway) bare() string { return g.cfg.JID.Bare().String() }

// Ready returns a channel closed once the gateway is logged in and has
// announced itself. After a disconnect a new channel is returned.
func (g *Gateway) Ready() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ready
}

// Run connects and serves until ctx is cancelled, reconnecting with
// exponential backoff and jitter after any failure. It returns nil when ctx
// is cancelled, after closing the stream cleanly. Call it once.
func (g *Gateway) Run(ctx context.Context) error {
	g.runCtx = ctx
	defer g.closeS5B()       // after the transfers
	defer g.calls.shutdown() // calls end with ctx; their goroutines are gone when Run returns
	defer g.files.shutdown() // so do transfers
	go func() { <-ctx.Done(); close(g.stopped) }()
	go g.worker(ctx)
	go g.notifier.Run(ctx, time.Second)
	go g.refreshLoop(ctx)
	go g.withheldLoop(ctx)
	var receipts sync.WaitGroup
	receipts.Go(func() { g.receiptLoop(ctx) })
	defer receipts.Wait() // its last Protect is not left to race the store's close
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.notifier.Flush(cctx)
		if g.userAlerts != nil {
			g.userAlerts.Close(cctx) // its goroutine ends with Run
		}
	}()
	delay := g.cfg.MinBackoff
	for {
		start := time.Now()
		err := g.connectAndServe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		g.events.publish(Event{Kind: EventDisconnected, Detail: fmt.Sprint(err)})
		g.log.Warn("disconnected", "err", err)
		if time.Since(start) > 2*g.cfg.MaxBackoff {
			delay = g.cfg.MinBackoff
		}
		wait := delay/2 + rand.N(delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(2*delay, g.cfg.MaxBackoff)
	}
}

func (g *Gateway) connectAndServe(ctx context.Context) error {
	s, err := g.dial(ctx)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.sess = s
	g.mu.Unlock()
	g.log.Info("connected", "jid", s.LocalAddr().String())
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve(xmpp.HandlerFunc(g.handle)) }()

	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = g.announce(setupCtx)
	cancel()
	if err != nil {
		endSession(s, serveErr)
		g.dropSession()
		return fmt.Errorf("gateway: announcing: %w", err)
	}
	g.mu.Lock()
	close(g.ready)
	g.mu.Unlock()
	g.events.publish(Event{Kind: EventConnected, Detail: s.LocalAddr().String()})

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		g.calls.shutdown() // calls say goodbye (session-terminate) while the stream is up
		g.files.shutdown()
		err = endSession(s, serveErr)
	}
	g.dropSession()
	s.Conn().Close()
	return err
}

// refreshInterval is how often the engine rotates due prekeys, prunes its
// caches and stranger state, and frees stale handshake slots.
const refreshInterval = time.Hour

// refreshLoop runs the engine's housekeeping and, when the bundle changed,
// announces the new one (presence and PEP).
func (g *Gateway) refreshLoop(ctx context.Context) {
	t := time.NewTicker(refreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.pruneStrangers()
		before := g.eng.Bundle().Hash()
		// Off the worker: renewing the device certificate is the one
		// routine use of the account key's agent.
		if _, err := g.eng.RenewCertificate(); err != nil {
			g.log.Warn("device certificate not renewed (the old one stays valid until it expires)", "err", err)
		}
		if err := g.eng.Refresh(); err != nil {
			g.log.Warn("engine refresh", "err", err)
			continue
		}
		if g.eng.Bundle().Hash() == before {
			continue
		}
		g.log.Info("bundle changed; announcing it")
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := g.publishBundle(actx); err != nil {
			g.log.Info("bundle not published to PEP", "err", err)
		}
		if payload, err := g.presencePayload(); err == nil {
			g.send(actx, build("presence", nil, payload...))
		}
		cancel()
	}
}

// endSession closes our stream, gives the server a moment to close its
// own, then closes the connection, and returns what Serve returned.
// (mellium's SetCloseDeadline races with Serve, so the wait is timed here.)
func endSession(s *xmpp.Session, serveErr <-chan error) error {
	s.Close()
	select {
	case err := <-serveErr:
		return err
	case <-time.After(2 * time.Second):
		s.Conn().Close()
		return <-serveErr
	}
}

func (g *Gateway) dropSession() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sess = nil
	select {
	case <-g.ready:
		g.ready = make(chan struct{})
	default:
	}
	for _, c := range g.contacts {
		c.resources = map[string]*resource{}
	}
}

func (g *Gateway) dial(ctx context.Context) (*xmpp.Session, error) {
	return g.dialAs(ctx, g.cfg.JID)
}

// dialAs logs in to the account's server as origin (the account's JID
// with the resource to bind) with the account's credentials and TLS
// settings.
func (g *Gateway) dialAs(ctx context.Context, origin jid.JID) (*xmpp.Session, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.cfg.TLS != nil {
		tlsCfg = g.cfg.TLS.Clone()
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = g.cfg.JID.Domainpart()
	}
	var conn net.Conn
	var err error
	if g.cfg.Addr != "" {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", g.cfg.Addr)
		if err == nil {
			conn = withQuickAck(conn)
		}
		if err == nil && g.cfg.DirectTLS {
			tc := tls.Client(conn, tlsCfg)
			if err = tc.HandshakeContext(ctx); err != nil {
				conn.Close()
			}
			conn = tc
		}
	} else {
		d := dial.Dialer{NoTLS: !g.cfg.DirectTLS, TLSConfig: tlsCfg}
		conn, err = d.Dial(ctx, "tcp", origin)
		if err == nil {
			conn = withQuickAck(conn) // a TCP connection unless direct TLS
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: dial: %w", err)
	}
	s, err := xmppx.Negotiate(ctx, conn, origin, g.cfg.Password, tlsCfg, g.cfg.DirectTLS, g.cfg.AllowPlain)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return s, nil
}

// Resource returns the resource part of the configured JID.
func (c Config) Resource() string { return c.JID.Resourcepart() }

// send transmits raw stanza bytes on the current session.
func (g *Gateway) send(ctx context.Context, b []byte) error {
	g.mu.Lock()
	s := g.sess
	g.mu.Unlock()
	if s == nil {
		return ErrOffline
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// mellium interrupts the connection's writes when a Send's context
	// ends, from a goroutine that may run only after the Send returned:
	// a caller cancelling its context right after a successful Send (any
	// `defer cancel()`) could then break another goroutine's write in
	// flight ("write: i/o timeout", seen once in five make check runs).
	// Sends are handed a context that never ends; IQs (sendIQ) keep their
	// deadlines, the race needing a cancellation within moments of the
	// write.
	//
	// A write still blocked after WriteTimeout (a server that stopped
	// reading, a full TCP window) closes the connection: closing a TLS
	// connection with a write in flight breaks that write, the read loop
	// ends and the gateway reconnects. The timer also runs while the send
	// waits behind another one's blocked write.
	return boundedSend(s, tokens(b), g.cfg.WriteTimeout, func() {
		g.log.Warn("server connection: a write did not finish; closing the connection to reconnect", "timeout", g.cfg.WriteTimeout)
	})
}

// boundedSend writes the stanza r on s with a context that never ends
// (see send); a write still blocked after timeout calls stuck and closes
// the connection, which breaks the write.
func boundedSend(s *xmpp.Session, r xml.TokenReader, timeout time.Duration, stuck func()) error {
	t := time.AfterFunc(timeout, func() {
		stuck()
		s.Conn().Close()
	})
	err := s.Send(context.Background(), r)
	t.Stop()
	return err
}

// sendIQ sends an IQ and returns the parsed response. It must not be
// called from the serve handler.
func (g *Gateway) sendIQ(ctx context.Context, b []byte) (*Stanza, error) {
	g.mu.Lock()
	s := g.sess
	g.mu.Unlock()
	if s == nil {
		return nil, ErrOffline
	}
	resp, err := s.SendIQ(ctx, tokens(b))
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	tok, err := resp.Token()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, errors.New("gateway: bad IQ response")
	}
	st, err := readStanza(xmlstream.Inner(resp), &start)
	if err != nil {
		return nil, err
	}
	if st.Type == "error" {
		return st, &IQError{st}
	}
	return st, nil
}

// ErrOffline is returned when an operation needs a live session.
var ErrOffline = errors.New("gateway: not connected")

// IQError is an error response to an IQ.
type IQError struct{ Stanza *Stanza }

func (e *IQError) Error() string { return "gateway: IQ error: " + e.Condition() }

// Condition returns the defined condition of the error, such as
// "service-unavailable", or "" if there is none.
func (e *IQError) Condition() string {
	c := e.Stanza.Child(nsClient, "error")
	if c == nil {
		return ""
	}
	var v struct {
		Inner []struct {
			XMLName xml.Name
		} `xml:",any"`
	}
	if xml.Unmarshal(c.Raw, &v) != nil {
		return ""
	}
	for _, el := range v.Inner {
		if el.XMLName.Space == nsStanzas {
			return el.XMLName.Local
		}
	}
	return ""
}

// handle is the serve handler: IQ requests are answered synchronously
// (mellium replies service-unavailable to unanswered ones); everything else
// goes to the worker, which may send.
func (g *Gateway) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	st, err := readStanza(t, start)
	if err != nil {
		g.log.Warn("dropping malformed stanza", "err", err)
		return nil
	}
	if st.Kind == "iq" && (st.Type == "get" || st.Type == "set") {
		if resp := g.handleIQ(st); resp != nil {
			_, err := xmlstream.Copy(t, tokens(resp))
			return err
		}
		return nil
	}
	if st.Kind == "iq" {
		return nil // stray result or error
	}
	select {
	case g.inbox <- st:
	case <-g.stopped: // the worker is gone; do not block the read loop
	}
	return nil
}

// worker processes messages and presence in order (per sender: a stanza
// waiting for a bundle holds back only later ones of its sender), and the
// results of background fetches. It never waits for the network.
func (g *Gateway) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-g.inbox:
			g.dispatch(ctx, st)
		case c := <-g.fetches.done:
			g.completeFetch(c)
		}
	}
}

func randomID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	for i := range b {
		b[i] = alphabet[rand.N(len(alphabet))]
	}
	return string(b)
}
