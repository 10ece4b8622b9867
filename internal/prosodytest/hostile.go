package prosodytest

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// hostileLua is the server half of [Hostile]; see the comment at its top for
// the wire protocol.
//
//go:embed prosody/mod_securejingle_hostile.lua
var hostileLua []byte

const (
	hostileModule  = "securejingle_hostile"
	hostileLogName = "hostile.jsonl"
	// nsHostile is the namespace of the control IQs.
	nsHostile = "urn:securejingle:prosodytest:hostile:0"
	// hostileTimeout bounds one control command or one wait of a [Hostile]
	// helper: a hang guard, never a timing assertion.
	hostileTimeout = 30 * time.Second
	// hostilePoll is how often the stanza log is re-read while waiting.
	hostilePoll = 20 * time.Millisecond
)

// HostileControl is the localpart of the account that commands the hostile
// module. [Start] with [WithHostile] creates it; tests must not use it.
const HostileControl = "hostile-control"

// Names of the elements that [Hostile.StripSupport], [Hostile.SwapPresenceKey]
// and [Hostile.StripContent] act on, in the namespace the caller gives
// (e2e.NS: the protocol version is the caller's business).
const (
	SupportElement = "e2e" // the signed support element in presence
	ContentElement = "c"   // the encrypted content of a message
)

// Carbon and forwarding namespaces (XEP-0280, XEP-0297).
const (
	nsCarbons = "urn:xmpp:carbons:2"
	nsForward = "urn:xmpp:forward:0"
)

// ErrHostileCommand is wrapped by every error the hostile module returns for a
// command it refused (a bad argument, an unknown rule).
var ErrHostileCommand = errors.New("prosodytest: hostile module refused the command")

// WithHostile loads mod_securejingle_hostile (internal/prosodytest/prosody)
// into the server and logs a control account in, so that the test can make
// the real server attack its users through [Server.Hostile]. The module also
// writes every stanza that crosses a user's c2s stream to a log that
// [Hostile.Log] reads. Never use it for anything but tests.
func WithHostile() Option {
	return func(o *options) error {
		o.hostile = true
		return nil
	}
}

// writeHostileModule writes the embedded module into dir/plugins and returns
// that directory for Prosody's plugin_paths.
func writeHostileModule(dir string) (string, error) {
	plugins := filepath.Join(dir, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		return "", fmt.Errorf("prosodytest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "mod_"+hostileModule+".lua"), hostileLua, 0o644); err != nil {
		return "", fmt.Errorf("prosodytest: %w", err)
	}
	return plugins, nil
}

// Hostile commands the hostile module of a server started with
// [WithHostile]. Rules it installs apply to every stanza the server handles
// after the call returns (a command is applied before it is acknowledged),
// until removed with [Rule.Remove] or [Hostile.Reset]. Traffic of the control
// account is never touched or logged.
//
// Every method takes the test first and calls t.Fatal when the server
// refuses the command or does not answer within 30 s, so call them from the
// test's own goroutine. JIDs follow one matching rule everywhere: the zero
// JID matches anything, a bare JID matches that account and all of its
// resources, a full JID matches only itself.
//
// Two ways to get a phantom device: [Hostile.Phantom] (the server invents a
// resource, its presence and its IQ answers), or simply [Server.Login] with
// the account's password and a new resource (a real second session, as a
// server operator or a password thief could do).
type Hostile struct {
	srv     *Server
	sess    *xmpp.Session
	logPath string
}

// startHostile creates the control account and logs it in for the rest of
// the test.
func (s *Server) startHostile(t testing.TB, logPath string) {
	t.Helper()
	pw := randomID() + randomID()
	s.AddUser(t, HostileControl, pw)
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	sess := Dial(t, ctx, s, HostileControl, pw, "control")
	served := make(chan error, 1)
	go func() {
		served <- sess.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
	}()
	// Registered after Dial's cleanup, so it runs first: stop, then wait.
	t.Cleanup(func() {
		closeSession(sess)
		<-served
	})
	s.hostile = &Hostile{srv: s, sess: sess, logPath: logPath}
}

// Hostile returns the attacker controls of a server started with
// [WithHostile]; without that option it fails the test.
func (s *Server) Hostile(t testing.TB) *Hostile {
	t.Helper()
	if s.hostile == nil {
		t.Fatal("prosodytest: Hostile needs a server started with WithHostile()")
	}
	return s.hostile
}

// command is a control command: op plus its arguments, as JSON.
type command map[string]any

type commandIQ struct {
	XMLName xml.Name `xml:"urn:securejingle:prosodytest:hostile:0 command"`
	JSON    string   `xml:",chardata"`
}

type commandResult struct {
	Rule      string `json:"rule"`
	Hits      int    `json:"hits"`
	Delivered int    `json:"delivered"`
}

// do sends cmd and returns the module's answer; it never fails the test.
func (h *Hostile) do(ctx context.Context, cmd command) (commandResult, error) {
	var res commandResult
	body, err := json.Marshal(cmd)
	if err != nil {
		return res, fmt.Errorf("prosodytest: encoding hostile command: %w", err)
	}
	r, err := h.sess.EncodeIQElement(ctx, commandIQ{JSON: string(body)}, stanza.IQ{Type: stanza.SetIQ, To: jid.MustParse(h.srv.domain)})
	if err != nil {
		return res, fmt.Errorf("prosodytest: hostile %s: %w", cmd["op"], err)
	}
	defer r.Close()
	tok, err := r.Token()
	if err != nil {
		return res, fmt.Errorf("prosodytest: hostile %s: reading reply: %w", cmd["op"], err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return res, fmt.Errorf("prosodytest: hostile %s: reply is not an element", cmd["op"])
	}
	if _, err := stanza.UnmarshalIQError(r, start); err != nil {
		var se stanza.Error
		if errors.As(err, &se) {
			return res, fmt.Errorf("%w: %s: %s (%s)", ErrHostileCommand, cmd["op"], se.Text[""], se.Condition)
		}
		return res, fmt.Errorf("prosodytest: hostile %s: %w", cmd["op"], err)
	}
	var out struct {
		XMLName xml.Name `xml:"urn:securejingle:prosodytest:hostile:0 result"`
		JSON    string   `xml:",chardata"`
	}
	d := xml.NewTokenDecoder(xmlstream.Inner(r))
	for {
		tok, err := d.Token()
		if err != nil {
			return res, fmt.Errorf("prosodytest: hostile %s: reply without a result: %w", cmd["op"], err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if err := d.DecodeElement(&out, &se); err != nil {
				return res, fmt.Errorf("prosodytest: hostile %s: %w", cmd["op"], err)
			}
			break
		}
	}
	if err := json.Unmarshal([]byte(out.JSON), &res); err != nil {
		return res, fmt.Errorf("prosodytest: hostile %s: bad result %q: %w", cmd["op"], out.JSON, err)
	}
	return res, nil
}

// must sends cmd, failing t on any error.
func (h *Hostile) must(t testing.TB, cmd command) commandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	res, err := h.do(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (h *Hostile) rule(t testing.TB, cmd command) Rule {
	t.Helper()
	res := h.must(t, cmd)
	if res.Rule == "" {
		t.Fatalf("prosodytest: hostile %s: no rule id in the result", cmd["op"])
	}
	return Rule{h: h, ID: res.Rule}
}

// jidArg renders a JID argument; the zero JID is "" (match anything).
func jidArg(j jid.JID) string {
	if j.Equal(jid.JID{}) {
		return ""
	}
	return j.String()
}

// Rule is an installed rewrite, reroute or answer rule.
type Rule struct {
	h *Hostile
	// ID names the rule in the stanza log ([LogEntry.Rules]).
	ID string
}

// Hits returns how many stanzas the rule has changed, dropped, rerouted or
// answered so far.
func (r Rule) Hits(t testing.TB) int {
	t.Helper()
	return r.h.must(t, command{"op": "hits", "rule": r.ID}).Hits
}

// WaitHits polls until the rule has at least n hits, failing t after 30 s.
// Use it when the test has no stanza of its own to wait for (a dropped
// stanza, a stripped presence the client does not report).
func (r Rule) WaitHits(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(hostileTimeout)
	for {
		got := r.Hits(t)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prosodytest: hostile rule %s: %d hits after %v, want %d", r.ID, got, hostileTimeout, n)
		}
		time.Sleep(hostilePoll)
	}
}

// Remove uninstalls the rule; stanzas handled afterwards are left alone.
func (r Rule) Remove(t testing.TB) {
	t.Helper()
	r.h.must(t, command{"op": "remove", "rule": r.ID})
}

// Reset removes every rule.
func (h *Hostile) Reset(t testing.TB) {
	t.Helper()
	h.must(t, command{"op": "reset"})
}

// Match selects stanzas for [Rewrite]. Zero fields match anything.
type Match struct {
	// Stanza is "message", "presence", "iq" or "" for any.
	Stanza string
	// From is matched against the stanza's from attribute.
	From jid.JID
	// To is matched against the session the stanza is delivered to (a
	// presence broadcast reaches each session with its own full JID).
	To jid.JID
}

// Rewrite changes stanzas on their last hop, as they are written to the
// receiving user's session (so also presence sent in answer to a probe,
// carbon copies and offline messages on delivery). Rules apply in the order
// they were installed, each to the output of the previous one.
type Rewrite struct {
	Match
	// Remove lists elements to remove: children of the stanza, or elements
	// at any depth when Deep (for example inside a carbon copy).
	Remove []xml.Name
	Deep   bool
	// Add lists elements (raw XML, each with its own xmlns) appended to the
	// stanza, only when something in Remove was found unless AddAlways.
	Add       []string
	AddAlways bool
	// Drop withholds matching stanzas instead (logged as "drop").
	Drop bool
}

// Rewrite installs a rewrite rule. A hit is counted for each stanza that it
// actually changed or dropped.
func (h *Hostile) Rewrite(t testing.TB, rw Rewrite) Rule {
	t.Helper()
	remove := make([]map[string]string, 0, len(rw.Remove))
	for _, n := range rw.Remove {
		remove = append(remove, map[string]string{"name": n.Local, "ns": n.Space})
	}
	return h.rule(t, command{
		"op": "rewrite", "stanza": rw.Stanza, "from": jidArg(rw.From), "to": jidArg(rw.To),
		"remove": remove, "deep": rw.Deep, "add": nonNil(rw.Add), "add_always": rw.AddAlways, "drop": rw.Drop,
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// StripSupport removes the signed support element <e2e xmlns=ns/> from every
// presence from `from` (a bare JID: all its resources) before any user sees
// it. Attack (e): the contact now looks like a client without securejingle.
func (h *Hostile) StripSupport(t testing.TB, from jid.JID, ns string) Rule {
	t.Helper()
	return h.Rewrite(t, Rewrite{
		Match:  Match{Stanza: "presence", From: from},
		Remove: []xml.Name{{Space: ns, Local: SupportElement}},
	})
}

// SwapPresenceKey replaces the support element <e2e xmlns=ns/> in every
// presence from `from` that carries one with e2eXML (raw XML of the
// attacker's element, for example one built with another key). Attack (b).
func (h *Hostile) SwapPresenceKey(t testing.TB, from jid.JID, ns, e2eXML string) Rule {
	t.Helper()
	return h.Rewrite(t, Rewrite{
		Match:  Match{Stanza: "presence", From: from},
		Remove: []xml.Name{{Space: ns, Local: SupportElement}},
		Add:    []string{e2eXML},
	})
}

// StripContent removes the encrypted content element <c xmlns=ns/> from
// every message from `from`, also inside carbon copies, so that only the
// fallback body (if any) arrives. Attack (f).
func (h *Hostile) StripContent(t testing.TB, from jid.JID, ns string) Rule {
	t.Helper()
	return h.Rewrite(t, Rewrite{
		Match:  Match{Stanza: "message", From: from},
		Remove: []xml.Name{{Space: ns, Local: ContentElement}},
		Deep:   true,
	})
}

// Withhold drops every stanza that m matches, on its last hop.
func (h *Hostile) Withhold(t testing.TB, m Match) Rule {
	t.Helper()
	return h.Rewrite(t, Rewrite{Match: m, Drop: true})
}

// Reroute sends messages elsewhere. Attack (d).
type Reroute struct {
	// From and To select messages by their from and to attributes (To is
	// required; a bare JID also matches messages to its full JIDs).
	From, To jid.JID
	// NewTo receives them instead: the one session of a full JID or every
	// session of a bare JID.
	NewTo jid.JID
	// RewriteTo also changes the to attribute to NewTo and lets the server
	// route the message (offline storage, carbons); otherwise it is written
	// unchanged, still addressed to the original recipient, to NewTo's
	// sessions.
	RewriteTo bool
}

// Reroute installs a reroute rule; the original recipient gets nothing.
func (h *Hostile) Reroute(t testing.TB, r Reroute) Rule {
	t.Helper()
	return h.rule(t, command{
		"op": "reroute", "from": jidArg(r.From), "to": jidArg(r.To), "new_to": jidArg(r.NewTo), "rewrite_to": r.RewriteTo,
	})
}

// Answer makes the server answer IQ requests itself.
type Answer struct {
	// To is the exact address the request is sent to: a full JID (with or
	// without a real session behind it) or a bare JID (PEP, roster).
	To jid.JID
	// From optionally restricts whose requests are answered.
	From jid.JID
	// Child is the request's payload element, for example
	// {e2e.NS, "bundle"} or {"http://jabber.org/protocol/pubsub", "pubsub"}.
	Child xml.Name
	// Result lists the children of the result (raw XML), or Error names a
	// defined condition to answer with instead ("item-not-found").
	Result []string
	Error  stanza.Condition
}

// Answer installs an answer rule: matching requests never reach their
// addressee; the requester gets the forged answer from a.To.
func (h *Hostile) Answer(t testing.TB, a Answer) Rule {
	t.Helper()
	return h.rule(t, command{
		"op": "answer", "to": jidArg(a.To), "from": jidArg(a.From),
		"child":  map[string]string{"name": a.Child.Local, "ns": a.Child.Space},
		"result": nonNil(a.Result), "error": string(a.Error),
	})
}

// Inject writes the stanza stanzaXML (raw XML of a jabber:client message,
// presence or iq, with whatever from the attacker likes) straight to the
// sessions of `to`: one full JID, or every session of a bare JID. A stanza
// without a to attribute gets each session's full JID. It returns how many
// sessions got it and fails t when none did.
func (h *Hostile) Inject(t testing.TB, to jid.JID, stanzaXML string) int {
	t.Helper()
	n := h.must(t, command{"op": "inject", "to": jidArg(to), "xml": stanzaXML}).Delivered
	if n == 0 {
		t.Fatalf("prosodytest: hostile inject: %s has no session to deliver to", to)
	}
	return n
}

// Route hands stanzaXML (which must have a to attribute) to the server's
// router as if the server itself had sent it: it is then delivered, stored
// offline or copied by carbons like any stanza.
func (h *Hostile) Route(t testing.TB, stanzaXML string) {
	t.Helper()
	h.must(t, command{"op": "inject", "xml": stanzaXML, "route": true})
}

// Replay writes a stanza seen earlier (an "out" entry of the stanza log,
// that is, exactly what a session was sent) again to the session that got
// it. Attack (c). Use [Hostile.Inject] with e.XML to replay it elsewhere.
func (h *Hostile) Replay(t testing.TB, e LogEntry) int {
	t.Helper()
	if e.Dir != "out" {
		t.Fatalf("prosodytest: hostile replay of a %q log entry: replay what a session was sent (dir \"out\")", e.Dir)
	}
	to, err := jid.Parse(e.Session)
	if err != nil {
		t.Fatalf("prosodytest: hostile replay: log entry %d: bad session %q: %v", e.Seq, e.Session, err)
	}
	return h.Inject(t, to, e.XML)
}

// Phantom describes a device the server invents. Attack (a).
type Phantom struct {
	// JID is the phantom's full JID: a new resource of a contact's account,
	// or of the victim's own account.
	JID jid.JID
	// To receives the phantom's presence: a bare JID (all its sessions) or
	// one full JID.
	To jid.JID
	// Presence lists the children of its available presence (raw XML), for
	// example an attacker-signed <e2e/> element.
	Presence []string
	// Answers are installed for requests addressed to JID (for example
	// {Child: {e2e.NS, "bundle"}, Result: []string{bundleXML}}); their To
	// is ignored. Other requests to the phantom get service-unavailable, as
	// for any full JID without a session.
	Answers []Answer
}

// PhantomDevice is an injected phantom; see [Hostile.Phantom].
type PhantomDevice struct {
	h     *Hostile
	p     Phantom
	Rules []Rule // the answer rules, in the order of Phantom.Answers
}

// Phantom installs p's answers, then sends its available presence to p.To.
// The answers are in force before the presence is delivered, so a client
// that reacts to the presence with a request reaches the phantom.
func (h *Hostile) Phantom(t testing.TB, p Phantom) *PhantomDevice {
	t.Helper()
	if p.JID.Resourcepart() == "" {
		t.Fatalf("prosodytest: phantom %s needs a resource", p.JID)
	}
	d := &PhantomDevice{h: h, p: p}
	for _, a := range p.Answers {
		a.To = p.JID
		d.Rules = append(d.Rules, h.Answer(t, a))
	}
	h.Inject(t, p.To, "<presence from='"+escape(p.JID.String())+"'>"+strings.Join(p.Presence, "")+"</presence>")
	return d
}

// Leave sends the phantom's unavailable presence to the same recipients and
// removes its answer rules.
func (d *PhantomDevice) Leave(t testing.TB) {
	t.Helper()
	for _, r := range d.Rules {
		r.Remove(t)
	}
	d.h.Inject(t, d.p.To, "<presence type='unavailable' from='"+escape(d.p.JID.String())+"'/>")
}

// Carbon is a forged carbon copy (XEP-0280). Attack (g).
type Carbon struct {
	// Account is the victim: every session of this bare JID gets the copy,
	// which, like Prosody's own, has no from attribute (meaning the
	// account itself).
	Account jid.JID
	// From and To are the forwarded message's addresses: for a "sent" copy,
	// From is a resource of Account and To the contact.
	From, To jid.JID
	// Body is the forwarded message's cleartext body; Extra lists more
	// children of it (raw XML).
	Body  string
	Extra []string
	// Received makes a "received" copy instead of a "sent" one.
	Received bool
}

// ForgeCarbon delivers a forged carbon copy to c.Account's sessions and
// returns how many got it.
func (h *Hostile) ForgeCarbon(t testing.TB, c Carbon) int {
	t.Helper()
	dir := "sent"
	if c.Received {
		dir = "received"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<message type='chat'><%s xmlns='%s'><forwarded xmlns='%s'>", dir, nsCarbons, nsForward)
	fmt.Fprintf(&b, "<message xmlns='jabber:client' type='chat' id='%s' from='%s' to='%s'>", randomID(), escape(c.From.String()), escape(c.To.String()))
	if c.Body != "" {
		fmt.Fprintf(&b, "<body>%s</body>", escape(c.Body))
	}
	b.WriteString(strings.Join(c.Extra, ""))
	fmt.Fprintf(&b, "</message></forwarded></%s></message>", dir)
	return h.Inject(t, c.Account.Bare(), b.String())
}

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("prosodytest: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// escape escapes s for XML text or a quoted attribute value.
func escape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// LogEntry is one stanza in the hostile module's log.
type LogEntry struct {
	Seq int `json:"seq"`
	// Dir is "in" (sent by a client, before routing; From is empty, Session
	// is the sender), "out" (written to Session, after any rewrite) or
	// "drop" (withheld from Session by a rule).
	Dir     string `json:"dir"`
	Session string `json:"session"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	ID      string `json:"id"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Rules lists the IDs of the rules that changed or dropped the stanza,
	// separated by spaces.
	Rules string `json:"rules"`
	XML   string `json:"xml"`
}

// Log returns every stanza logged so far, in order. An "out" entry is
// written before the stanza reaches the socket, so once a client has
// received a stanza its entry is in the log.
func (h *Hostile) Log(t testing.TB) []LogEntry {
	t.Helper()
	entries, err := readLog(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func readLog(path string) ([]LogEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prosodytest: hostile log: %w", err)
	}
	lines := bytes.Split(b, []byte("\n"))
	// The last piece is empty or a line still being written.
	lines = lines[:len(lines)-1]
	out := make([]LogEntry, 0, len(lines))
	for i, line := range lines {
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("prosodytest: hostile log %s line %d: %w", path, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// WaitLog polls the log until an entry satisfies ok and returns the first
// such entry, failing t after 30 s.
func (h *Hostile) WaitLog(t testing.TB, what string, ok func(LogEntry) bool) LogEntry {
	t.Helper()
	deadline := time.Now().Add(hostileTimeout)
	for {
		for _, e := range h.Log(t) {
			if ok(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prosodytest: hostile log: no %s after %v", what, hostileTimeout)
		}
		time.Sleep(hostilePoll)
	}
}
