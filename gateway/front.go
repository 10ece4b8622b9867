package gateway

import (
	"bytes"
	"context"
	"encoding/xml"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/c2sfront"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/policy"
)

// Gateway mode (docs/protocol.md §22): the composer between the local c2s
// listener (internal/c2sfront), where the user's own unmodified XMPP
// clients log in, and the account. Each bound client resource gets an
// upstream session of its own on the real server (same account, same
// resource, the account's real credentials); the stanzas the gateway does
// not own are copied both ways unchanged, and chat, presence and alerts
// are intercepted as §22.3 to §22.6 describe.

// Front protocol and implementation constants.
const (
	// FrontAlertResource is the resource of the JID alerts come from in
	// the local clients (the account's bare JID with this resource). A
	// client may not bind it, and stanzas from it arriving from the
	// server are dropped, so that the server cannot pose as the gateway.
	FrontAlertResource = "securejingle"
	// nsFront is the namespace of the hint element on chat the front
	// delivers decrypted: <protected xmlns='…:front' trust='…' device='…'/>.
	nsFront = e2e.NS + ":front"

	// frontQueueBytes bounds the bytes of the stanzas waiting for one
	// client (with frontQueue: 256 stanzas of up to 512 KiB would be
	// 128 MiB).
	frontQueueBytes = 4 << 20
	// frontQueue bounds the stanzas waiting to be written to one client;
	// a client that falls that far behind is disconnected, never waited
	// for.
	frontQueue = 256
	// frontReserve and frontReserveBytes are the part of a client's
	// queue that only stanzas the gateway makes (decrypted chat, alerts)
	// may use: a flood of the server's stanzas, which wait, never leaves
	// them no room (they cannot wait, and a full queue disconnects).
	frontReserve      = 64
	frontReserveBytes = 1 << 20
	// frontWriteTimeout bounds one write to a client.
	frontWriteTimeout = 10 * time.Second
	// frontLoginTimeout bounds the upstream login of a client session.
	frontLoginTimeout = 30 * time.Second
	// frontLookupTimeout bounds the handling of one message of a
	// client, in practice the PEP lookup of the keys of a contact with
	// no known device (a server that withholds the answer makes the
	// message bounce, never go in clear).
	frontLookupTimeout = 5 * time.Second
	// frontCloseTimeout bounds the goodbye (</stream:stream>) upstream.
	frontCloseTimeout = time.Second
	// ruleFrontNoDevice is the built-in refusal of cleartext chat to a
	// contact that advertises securejingle (§22.3).
	ruleFrontNoDevice = "front-no-usable-device"
)

// Front is the gateway-mode composer of a [Gateway]. Create it with
// [Gateway.Front] and pass [Front.Handle] to c2sfront.New. Its methods are
// safe for concurrent use.
type Front struct {
	g   *Gateway
	log *slog.Logger

	mu      sync.Mutex
	clients map[*frontClient]struct{}
	closed  bool
	// passed are the chat messages with a body that clients sent
	// upstream without our encryption (policy allowed or flagged them),
	// so that the gateway's own session does not alert again on their
	// sent carbons; consumed once, bounded, expiring.
	passed map[[32]byte]time.Time
	// up are the upgrades of the clients' plain file offers
	// (front_files_up.go); upIdle shortens their idle timeout (tests).
	up     frontUploads
	upIdle time.Duration
	// calls are the clients' calls the front terminates (front_call.go).
	calls frontCalls
}

// Close ends every local client's stream (system-shutdown) and its
// upstream session, and refuses new ones, waiting at most about a second
// (frontCloseTimeout). The handlers return soon after.
func (f *Front) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range f.snapshot() {
		// The client's writer writes the stream error (never another
		// goroutine in the middle of its write); a writer that does
		// not within frontCloseTimeout, or a client still logging in,
		// is closed without it.
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.end("The securejingle gateway is shutting down.")
			c.closeSoon()
		}()
	}
	wg.Wait()
}

// Front returns the gateway's composer for local clients (one per
// gateway; every call returns the same). From then on, chat the gateway
// decrypts and every alert are also delivered to the connected clients.
func (g *Gateway) Front() *Front {
	f := &Front{g: g, log: g.log.With("component", "front"), clients: map[*frontClient]struct{}{}}
	if !g.front.CompareAndSwap(nil, f) {
		return g.front.Load()
	}
	// Spool directories an earlier run left (a crash) go at once
	// (front_files_up.go).
	f.up.mu.Lock()
	f.up.cleanSpool(g)
	f.up.mu.Unlock()
	// Received files are offered to the clients (front_files_down.go);
	// subscribed before any client can connect.
	events, unsub := g.Subscribe(256)
	go f.watchReceived(events, unsub)
	return f
}

// Clients returns the full JIDs of the connected local clients.
func (f *Front) Clients() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for c := range f.clients {
		out = append(out, c.jid.String())
	}
	return out
}

// alertJID is the JID alerts come from in the clients.
func (f *Front) alertJID() string { return f.g.bare() + "/" + FrontAlertResource }

// frontClient is one bound local client and its upstream session.
type frontClient struct {
	f     *Front
	local *c2sfront.Session
	jid   jid.JID
	up    *xmpp.Session // set once logged in, before the goroutines start
	upSet atomic.Bool   // up is set (close may run before it is)

	out    chan []byte   // stanzas for the client
	queued atomic.Int64  // bytes in out (and being written)
	space  chan struct{} // the writer finished one: forward may look again
	endc   chan string   // a reason to end the client's stream with
	done   chan struct{}
	once   sync.Once
	bg     sync.WaitGroup // the upstream goodbye
	// carbons is set while the client has XEP-0280 carbons enabled.
	carbons atomic.Bool
	// caps augments the client's caps (front_caps.go); set with up.
	caps *capsRewriter
	// rescueNoticed is when (Unix ns) the client was last told of an
	// encrypted message the engine could not be given.
	rescueNoticed atomic.Int64
	// rooms are the group chat rooms the client joined (notePresence).
	rooms boundedSet
	// mamQueries are the archive queries the client sent (noteMAMQuery):
	// results of no such query are forged.
	mamQueries boundedSet
	// plainSessions are the client's plain Jingle sessions policy let
	// through (front_call.go, plainSession).
	plainSessions boundedSet
	// life ends when the client's session does (close): it bounds the
	// calls the front terminates for the client (front_call.go).
	life    context.Context
	endLife context.CancelFunc
}

// Handle serves one bound local client (a c2sfront.Handler): it logs in
// upstream as the same full JID and relays until either side ends, then
// closes both.
func (f *Front) Handle(s *c2sfront.Session) {
	g := f.g
	res := s.JID().Resourcepart()
	if res == FrontAlertResource || res == g.cfg.JID.Resourcepart() || res == g.JID().Resourcepart() {
		f.log.Warn("local client refused: it asked for the gateway's own resource", "resource", res)
		s.End(stream.Conflict, "The resource "+res+" is used by the securejingle gateway itself: set another resource in the client.")
		return
	}
	// Registered before the upstream login, so that chat and alerts
	// arriving meanwhile wait in its queue.
	c := &frontClient{f: f, local: s, jid: s.JID(),
		out: make(chan []byte, frontQueue), space: make(chan struct{}, 1), endc: make(chan string, 1), done: make(chan struct{})}
	c.life, c.endLife = context.WithCancel(context.Background())
	defer c.endLife() // also when the client never got served (its calls end)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		s.End(stream.SystemShutdown, "The securejingle gateway is shutting down.")
		return
	}
	f.clients[c] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.clients, c)
		f.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), frontLoginTimeout)
	up, err := g.dialAs(ctx, s.JID())
	cancel()
	if err != nil {
		text := loginFailure(err)
		f.log.Warn("local client: upstream login failed", "jid", s.JID().String(), "err", err)
		// A message first: most clients show it, fewer the stream
		// error's text.
		sendBounded(s.XMPP(), tokens(f.notice(s.JID(), text)), frontWriteTimeout)
		s.End(stream.RemoteConnectionFailed, text)
		return
	}
	if !up.LocalAddr().Equal(s.JID()) {
		f.log.Warn("local client: the server bound another resource upstream", "want", s.JID().String(), "got", up.LocalAddr().String())
		closeUpstream(up)
		s.End(stream.Conflict, "The server bound another resource ("+up.LocalAddr().Resourcepart()+") for this login: set another resource in the client.")
		return
	}
	c.up = up
	c.caps = newCapsRewriter(c.jid, g.ownInfo(), capsAugmentFeatures(), 0, func(b []byte) { c.upSend(tokens(b)) })
	defer c.caps.stop()
	c.upSet.Store(true)
	select {
	case <-c.done: // disconnected while logging in (a full queue)
		closeUpstream(up)
		return
	default:
	}
	f.log.Info("local client connected upstream", "jid", c.jid.String())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.writer() }()
	go func() { defer wg.Done(); c.readServer() }()
	c.readClient()
	c.close()
	wg.Wait()
	c.bg.Wait()
	f.log.Info("local client gone", "jid", c.jid.String())
}

// loginFailure is what the client is told when the upstream login failed:
// the cause and the fix. (mellium's SASL failure type is internal: the
// condition is recognised in the error's text, for this message only.)
func loginFailure(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "not-authorized"):
		return "securejingle could not log in to your server: it refused the account's password. Fix [account] password (or password_command) in the daemon's configuration and restart it."
	case strings.Contains(msg, "dial"):
		return "securejingle could not reach your server: " + policy.BoundDetail(msg) + ". Check [account] server and your network."
	}
	return "securejingle could not log in to your server: " + policy.BoundDetail(msg) + "."
}

// notice is a chat message from the alert JID to the client at to.
func (f *Front) notice(to jid.JID, text string) []byte {
	return build("message", map[string]string{"type": "chat", "id": randomID(), "from": f.alertJID(), "to": to.String()},
		element(nsClient, "body", text), element(nsAlert, "alert", ""))
}

// sendBounded writes b on s; a write blocked longer than timeout closes
// the connection.
func sendBounded(s *xmpp.Session, r xml.TokenReader, timeout time.Duration) error {
	return boundedSend(s, r, timeout, func() {})
}

// closeUpstream says goodbye to the server, bounded, and closes the
// connection.
func closeUpstream(up *xmpp.Session) {
	t := time.AfterFunc(frontCloseTimeout, func() { up.Conn().Close() })
	up.Close()
	t.Stop()
	up.Conn().Close()
}

// close ends both sides; it may be called more than once and from any
// goroutine.
func (c *frontClient) close() {
	c.once.Do(func() {
		close(c.done)
		c.endLife()
		c.local.Close()
		if c.upSet.Load() {
			// The goodbye upstream may wait (bounded): never in the
			// caller, which may be the gateway's worker.
			c.bg.Add(1)
			go func() {
				defer c.bg.Done()
				closeUpstream(c.up)
			}()
		}
	})
}

// closeSoon gives the writer a moment to write the stream error end
// asked for, then closes.
func (c *frontClient) closeSoon() {
	t := time.NewTimer(frontCloseTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.close()
	}
}

// end asks the writer to end the client's stream with a stream error
// whose text is reason (a system-shutdown: the upstream went away).
func (c *frontClient) end(reason string) {
	select {
	case c.endc <- reason:
	default:
	}
}

// forward hands a stanza of the server to the client's writer, waiting
// while the queue is full: the client's upstream session then stops
// being read (backpressure to the server, which may drop that session),
// and a client that stops reading is ended by its write deadline. Only
// this client's goroutines wait.
func (c *frontClient) forward(b []byte) {
	n := int64(len(b))
	for {
		// Over the budget less the reserve, wait for the writer (one
		// stanza always fits an empty queue, whatever its size).
		if q := c.queued.Load(); q == 0 || (q+n <= frontQueueBytes-frontReserveBytes && len(c.out) < frontQueue-frontReserve) {
			break
		}
		select {
		case <-c.space:
		case <-c.done:
			return
		}
	}
	c.queued.Add(n)
	select {
	case c.out <- b:
	case <-c.done:
	}
}

// enqueue hands b, a stanza the gateway made (decrypted chat, an alert),
// to the client's writer without waiting: the callers are the gateway's
// worker and alert delivery, which serve every client. A client whose
// queue is full is disconnected.
func (c *frontClient) enqueue(b []byte) {
	n := int64(len(b))
	if q := c.queued.Load(); q != 0 && q+n > frontQueueBytes {
		c.overflow()
		return
	}
	c.queued.Add(n)
	select {
	case c.out <- b:
	case <-c.done:
	default:
		c.overflow()
	}
}

func (c *frontClient) overflow() {
	c.f.log.Warn("local client does not read its stanzas; disconnecting it", "jid", c.jid.String(), "queued", len(c.out), "bytes", c.queued.Load())
	c.close()
}

func (c *frontClient) writer() {
	for {
		select {
		case b := <-c.out:
			err := sendBounded(c.local.XMPP(), tokens(b), frontWriteTimeout)
			c.queued.Add(-int64(len(b)))
			select {
			case c.space <- struct{}{}:
			default:
			}
			if err != nil {
				c.close()
				return
			}
		case reason := <-c.endc:
			c.local.End(stream.SystemShutdown, reason)
			c.close()
			return
		case <-c.done:
			return
		}
	}
}

// upSend writes a stanza of the client to the server.
func (c *frontClient) upSend(r xml.TokenReader) error {
	return boundedSend(c.up, r, c.f.g.cfg.WriteTimeout, func() {
		c.f.log.Warn("server connection of a local client: a write did not finish; closing it", "jid", c.jid.String())
	})
}

// readClient reads the client's stanzas until its stream ends.
func (c *frontClient) readClient() {
	for {
		st, err := c.local.Next()
		if err != nil {
			return // Next ended the stream on bad input
		}
		if err := c.fromClient(st); err != nil {
			return
		}
	}
}

// readServer reads the upstream session's stanzas until it ends.
func (c *frontClient) readServer() {
	r := c.up.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			select {
			case <-c.done:
			default:
				c.f.log.Info("server closed the session of a local client", "jid", c.jid.String(), "err", err)
				c.end("The server ended this session (" + policy.BoundDetail(err.Error()) + "); log in again.")
				c.closeSoon()
			}
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace keepalive
		}
		raw, err := readRaw(r, &start, maxStanza)
		if err != nil {
			c.end("A stanza from the server could not be read (" + policy.BoundDetail(err.Error()) + "); log in again.")
			c.closeSoon()
			return
		}
		st, err := parseStanza(raw)
		if err != nil {
			continue // not a stanza: nothing for the client
		}
		c.fromServer(st, raw)
	}
}

// fromClient applies the interception rules to a stanza of the client.
// An error ends the session.
func (c *frontClient) fromClient(st localxmpp.Stanza) error {
	switch st.Name {
	case "message":
		return c.clientMessage(st)
	case "presence":
		return c.clientPresence(st)
	case "iq":
		if st.Type == "set" {
			m, err := parseStanzaIn(st.Raw, nsClient)
			if err != nil {
				return err
			}
			c.noteCarbons(m)
			c.noteMAMQuery(m)
			if c.clientFileStanza(m) {
				return nil // a plain transfer, refused (front_files.go)
			}
			if c.clientJingle(m) {
				return nil // a call the front terminates (front_call.go)
			}
		}
		if st.Type == "result" || st.Type == "error" {
			m, err := parseStanzaIn(st.Raw, nsClient)
			if err != nil {
				return err
			}
			if c.uploadAnswer(m) {
				return nil // the answer to an IQ of an upgrade (front_files_up.go)
			}
			if c.clientIQAnswer(m) {
				return nil // the answer to a request of a call the front terminates
			}
			up, consumed := c.caps.clientResult(m)
			if up != nil {
				return c.upSend(tokens(up))
			}
			if consumed {
				return nil // the answer to the caps rewriter's own question
			}
		}
	}
	return c.upSend(st.TokenReader())
}

// clientPresence adds the engine's presence element to the client's
// broadcast available presence, then lets the caps rewriter augment the
// caps (it may hold the presence while it asks the client for its
// disco#info, and sends it itself later).
func (c *frontClient) clientPresence(st localxmpp.Stanza) error {
	m, err := parseStanzaIn(st.Raw, nsClient)
	if err != nil {
		return err
	}
	c.notePresence(m)
	if m.Type == "" && m.To.Equal(jid.JID{}) {
		capPriority(m)
		if pres, err := xml.Marshal(c.f.g.eng.Presence()); err == nil {
			m.Children = append(m.Children, Child{Name: xml.Name{Space: e2e.NS, Local: "e2e"}, Raw: pres},
				// The device's own resource is the daemon's: peers send
				// its sessions there (§22.5).
				Child{Name: xml.Name{Space: nsFront, Local: "client"}, Raw: element(nsFront, "client", "")})
		}
	}
	up, query := c.caps.clientPresence(m)
	if query != nil {
		c.forward(query)
	}
	if up == nil {
		return nil // held for the client's answer
	}
	return c.upSend(tokens(up))
}

// capPriority lowers a positive <priority/> of the client's broadcast
// presence m to 0, the gateway's own: with a higher one the server would
// route messages to the bare JID to the client only, and the engine
// would get them only as carbons, if at all (RFC 6121 §8.5.2.1.1).
func capPriority(m *Stanza) {
	for i, ch := range m.Children {
		if ch.Name != (xml.Name{Space: nsClient, Local: "priority"}) {
			continue
		}
		var v string
		if xml.Unmarshal(ch.Raw, &v) != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n > 0 {
			m.Children[i].Raw = element(nsClient, "priority", "0")
		}
	}
}

// noteCarbons follows the client's XEP-0280 enable and disable requests
// (which go on to the server too): the front's own sent carbons go only
// to clients that asked for carbons.
func (c *frontClient) noteCarbons(m *Stanza) {
	switch {
	case m.Child(nsCarbons, "enable") != nil:
		c.carbons.Store(true)
	case m.Child(nsCarbons, "disable") != nil:
		c.carbons.Store(false)
	}
}

// appendChild inserts child before the end tag of the stanza raw (of
// element kind), or turns an empty-element tag into a start and end tag.
func appendChild(raw []byte, kind string, child []byte) []byte {
	end := "</" + kind + ">"
	out := make([]byte, 0, len(raw)+len(child)+len(end))
	switch {
	case bytes.HasSuffix(raw, []byte(end)):
		out = append(out, raw[:len(raw)-len(end)]...)
	case bytes.HasSuffix(raw, []byte("/>")):
		out = append(out, raw[:len(raw)-2]...)
		out = append(out, '>')
	default:
		return raw
	}
	out = append(out, child...)
	return append(out, end...)
}
