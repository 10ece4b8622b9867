// Package demo runs the securejingle demonstration behind
// `securejingle demo` and prints a readable report.
//
// It starts the embedded loopback XMPP server and two gateways, Alice and
// Bob, whose identity keys live in an ssh-agent-protocol agent. They find
// each other through presence, pin and verify each other's keys, chat
// encrypted, exchange protected IQs, and watch a hostile server's tampering
// and a plain client's cleartext message get caught. The embedded server is
// for the demo and tests; production uses a standard XMPP server.
package demo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh/agent"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/xmppx"
)

const domain = "demo.example"

// report collects the demo's steps.
type report struct {
	w      io.Writer
	failed int
	steps  int
}

func (r *report) section(title string) { fmt.Fprintf(r.w, "\n== %s\n", title) }

// check records one step: ok with a detail line, or a failure.
func (r *report) check(name string, err error, detail string, args ...any) {
	r.steps++
	if err != nil {
		r.failed++
		fmt.Fprintf(r.w, "  FAIL  %s: %v\n", name, err)
		return
	}
	fmt.Fprintf(r.w, "  ok    %s", name)
	if detail != "" {
		fmt.Fprintf(r.w, ": "+detail, args...)
	}
	fmt.Fprintln(r.w)
}

// participant is one demo account with its gateway.
type participant struct {
	name   string
	jid    jid.JID
	gw     *gateway.Gateway
	trust  *trust.Store
	st     store.Store
	events <-chan gateway.Event
	// answer, when set, is the media this participant's gateway answers
	// incoming calls with.
	answer atomic.Pointer[gateway.CallMedia]
}

// wait returns the first event matching ok within a generous bound.
// sasOf is the short authentication string p shows for the account of
// the session s: p's own account statement and the account key p holds
// for the peer.
func sasOf(p *participant, s e2e.SessionInfo) (string, error) {
	e := p.gw.Engine()
	return attest.SAS(attest.Statement{JID: e.JID(), Key: e.Identity()}, attest.Statement{JID: s.Peer.JID, Key: s.Identity})
}

func (p *participant) wait(ok func(gateway.Event) bool) (gateway.Event, error) {
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-p.events:
			if ok(ev) {
				return ev, nil
			}
		case <-deadline:
			return gateway.Event{}, fmt.Errorf("%s: timed out waiting", p.name)
		}
	}
}

// wire records the sizes of stanzas the server routes, for the report.
type wire struct {
	mu     sync.Mutex
	last   map[string]int    // "from>to" -> bytes of the last encrypted chat message
	lastID map[string]string // "from>to" -> its stanza id
	// sizes of encrypted chat messages "from>to" since the mark (reset).
	sizes  map[string][]int
	tamper func(st localxmpp.Stanza) localxmpp.Stanza
}

func (w *wire) hook(ctx localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ctx.Generated && st.Name == "message" && bytes.Contains(st.Raw, []byte("<c xmlns=")) {
		k := st.From.Bare().String() + ">" + st.To.Bare().String()
		w.last[k], w.lastID[k] = len(st.Raw), st.ID
		w.sizes[k] = append(w.sizes[k], len(st.Raw))
	}
	if w.tamper != nil && !ctx.Generated {
		st = w.tamper(st)
	}
	return []localxmpp.Stanza{st}
}

func (w *wire) size(from, to jid.JID) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[from.Bare().String()+">"+to.Bare().String()]
}

func (w *wire) setTamper(f func(localxmpp.Stanza) localxmpp.Stanza) {
	w.mu.Lock()
	w.tamper = f
	w.mu.Unlock()
}

// Run runs the demo and writes the report to w. It returns an error if any
// step failed.
func Run(ctx context.Context, w io.Writer, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "securejingle-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &report{w: w}
	fmt.Fprintln(w, "securejingle demo: two gateways on an embedded loopback XMPP server")

	// --- identity keys in an agent
	r.section("Identity keys in an agent")
	sock := filepath.Join(dir, "agent.sock")
	keyring := agent.NewKeyring()
	var pubs []ed25519.PublicKey
	for range 3 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "demo"}); err != nil {
			return err
		}
		pubs = append(pubs, pub)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	go identity.Serve(ctx, l, keyring)
	r.check("agent serving the identity keys over the ssh-agent protocol", nil, "the gateways only ever ask it for signatures")

	// --- server
	r.section("Embedded XMPP server")
	srv, err := localxmpp.New(domain, localxmpp.WithLogger(log))
	if err != nil {
		return err
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		return err
	}
	defer srv.Close()
	wr := &wire{last: map[string]int{}, lastID: map[string]string{}, sizes: map[string][]int{}}
	srv.SetHook(wr.hook)
	aliceJID, bobJID := jid.MustParse("alice@"+domain), jid.MustParse("bob@"+domain)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			return err
		}
	}
	err = srv.Subscribe(aliceJID, bobJID)
	r.check("server listening, accounts alice and bob on each other's roster", err, "%s (TLS, self-signed, loopback only)", srv.Addr())

	startAs := func(name, resource string, signer identity.Signer, ac *access.Controller, addDevice bool) (*participant, error) {
		bare := name + "@" + domain
		inner, err := store.OpenBolt(filepath.Join(dir, name+"-"+resource+".db"))
		if err != nil {
			return nil, err
		}
		go func() { <-ctx.Done(); inner.Close() }()
		// State at rest is sealed under a key the account's agent derives.
		st, err := store.Sealed(inner, identity.StoreKeyFunc(signer, bare))
		if err != nil {
			return nil, err
		}
		p := &participant{name: name, jid: jid.MustParse(bare + "/" + resource), st: st, trust: trust.New(st, nil)}
		ecfg := e2e.Config{JID: bare, Signer: signer, Store: st, Trust: &e2e.PinningTrust{Store: p.trust}}
		if ac != nil {
			ecfg.Access = ac
		}
		eng, err := e2e.New(ecfg)
		if err != nil {
			return nil, err
		}
		p.gw, err = gateway.New(gateway.Config{JID: p.jid, Password: name + "-password", Addr: srv.Addr().String(), TLS: srv.ClientTLSConfig(),
			AllowPlain: true, Engine: eng, Trust: p.trust, Access: ac, Logger: log.With("gateway", name+"/"+resource), AddThisDevice: addDevice,
			CallLoopbackOnly: true, CallAnswerer: func(gateway.CallInfo) (gateway.CallMedia, bool) {
				if m := p.answer.Load(); m != nil {
					return *m, true
				}
				return gateway.CallMedia{}, false
			}})
		if err != nil {
			return nil, err
		}
		p.events, _ = p.gw.Subscribe(256)
		go p.gw.Run(ctx)
		select {
		case <-p.gw.Ready():
		case <-time.After(20 * time.Second):
			return nil, errors.New("login timed out")
		}
		return p, nil
	}
	start := func(name string, pub ed25519.PublicKey, ac *access.Controller) (*participant, error) {
		signer, closer, err := identity.DialAgentKey(sock, pub)
		if err != nil {
			return nil, err
		}
		go func() { <-ctx.Done(); closer.Close() }()
		return startAs(name, "demo", signer, ac, false)
	}
	// Bob admits strangers (opportunistic encryption), rate limited.
	acfg := access.DefaultConfig()
	acfg.Mode = access.Anyone
	bobAccess, err := access.New(acfg, nil)
	if err != nil {
		return err
	}
	alice, err := start("alice", pubs[0], nil)
	if err != nil {
		return fmt.Errorf("starting alice: %w", err)
	}
	bob, err := start("bob", pubs[1], bobAccess)
	if err != nil {
		return fmt.Errorf("starting bob: %w", err)
	}
	r.check("gateways logged in (STARTTLS, SASL, resource binding)", nil, "%s and %s", alice.jid, bob.jid)

	// --- presence discovery and pinning
	r.section("Presence discovery and key pinning")
	for _, pair := range [][2]*participant{{alice, bob}, {bob, alice}} {
		me, them := pair[0], pair[1]
		var devs []e2e.Device
		for i := 0; i < 2000 && len(devs) == 0; i++ {
			devs, _ = me.gw.Engine().Devices(them.jid.Bare().String())
			if len(devs) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		var rec trust.Record
		if len(devs) == 0 {
			err = errors.New("no device discovered")
		} else {
			rec, err = me.trust.Lookup(devs[0].JID)
		}
		pres, _ := xml.Marshal(them.gw.Engine().Presence())
		r.check(fmt.Sprintf("%s saw %s's signed presence (%d bytes), fetched the bundle, pinned the key", me.name, them.name, len(pres)), err,
			"trust %v, %s", rec.Level, identity.Fingerprint(them.gw.Engine().Identity()))
	}

	// --- encrypted chat
	r.section("Encrypted chat")
	line := "Are we still on for lunch at noon tomorrow?"
	sendChat := func(from, to *participant, body string) error {
		if err := from.gw.SendChat(ctx, to.jid.Bare(), body); err != nil {
			return err
		}
		ev, err := to.wait(func(ev gateway.Event) bool { return ev.Kind == gateway.EventChat && ev.Body == body })
		if err == nil && !ev.Encrypted {
			err = errors.New("arrived unencrypted")
		}
		return err
	}
	err = sendChat(alice, bob, "Hi Bob, this first message carries the post-quantum handshake.")
	r.check("alice -> bob, first message (0-RTT handshake)", err, "%d bytes on the wire", wr.size(alice.jid, bob.jid))
	err = sendChat(bob, alice, "Hi Alice, reply received: we are mutually authenticated.")
	r.check("bob -> alice, reply completes mutual authentication", err, "%d bytes", wr.size(bob.jid, alice.jid))
	ab := alice.jid.Bare().String() + ">" + bobJID.String()
	for i := 0; i < 12 && err == nil; i++ {
		if i == 4 { // past the handshake: measure from here
			wr.mu.Lock()
			wr.sizes[ab] = nil
			wr.mu.Unlock()
		}
		if err = sendChat(alice, bob, line); err == nil {
			err = sendChat(bob, alice, "Yes, see you there.")
		}
	}
	if err == nil {
		err = sendChat(alice, bob, line)
	}
	// The same message in clear: same id, same addresses, a body.
	wr.mu.Lock()
	id := wr.lastID[alice.jid.Bare().String()+">"+bobJID.String()]
	wr.mu.Unlock()
	clearSize := len(fmt.Sprintf(`<message id='%s' type='chat' to='%s' from='%s'><body>%s</body></message>`, id, bobJID, alice.jid, line))
	// Every alice->bob chat message since the mark carried the same line:
	// the smallest have the short header of steady state, the largest the
	// full header of the first message after a DH ratchet step.
	wr.mu.Lock()
	sizes := slices.Clone(wr.sizes[ab])
	wr.mu.Unlock()
	if len(sizes) == 0 && err == nil {
		err = errors.New("no encrypted chat message seen on the wire")
	}
	steady, step := 0, 0
	if len(sizes) > 0 {
		steady, step = slices.Min(sizes), slices.Max(sizes)
	}
	r.check("steady-state chat", err, "a %d-byte line: %d bytes encrypted on the wire vs %d in clear (+%d); +%d for the message after a DH ratchet step (%d messages measured)",
		len(line), steady, clearSize, steady-clearSize, step-clearSize, len(sizes))

	// --- verification
	r.section("Key verification")
	da, db := e2e.Device{JID: bobJID.String(), ID: bob.gw.Engine().Device()}, e2e.Device{JID: aliceJID.String(), ID: alice.gw.Engine().Device()}
	ia, err1 := alice.gw.Engine().Session(da)
	ib, err2 := bob.gw.Engine().Session(db)
	err = errors.Join(err1, err2)
	// Each side computes the SAS from its own account statement and the
	// account key it holds for the other.
	var sasA, sasB string
	if err == nil {
		sasA, err1 = sasOf(alice, ia)
		sasB, err2 = sasOf(bob, ib)
		err = errors.Join(err1, err2)
	}
	if err == nil && sasA != sasB {
		err = errors.New("short authentication strings differ")
	}
	r.check("both read the same short authentication string", err, "%s", sasA)
	var rec trust.Record
	if err == nil {
		rec, err = alice.trust.Verify(da.JID, ia.Identity, trust.MethodSAS)
	}
	r.check("alice marks bob's account key verified", err, "trust %v by %s; fingerprint %s", rec.Level, rec.Method, attest.FingerprintBlocks(ia.Identity))

	// --- a call
	r.section("A secure call")
	if err := demoCall(ctx, r, wr, dir, alice, bob); err != nil {
		r.check("call", err, "")
	}

	// --- a file
	r.section("An encrypted file")
	if err := demoFile(ctx, r, wr, dir, alice, bob); err != nil {
		r.check("file transfer", err, "")
	}

	// --- protected stanzas
	r.section("Protected stanzas")
	bob.gw.HandleIQ(xml.Name{Space: "urn:example:demo", Local: "time"}, func(req gateway.InnerIQ) ([]byte, error) {
		return []byte(`<time xmlns="urn:example:demo">` + time.Now().UTC().Format(time.RFC3339) + `</time>`), nil
	})
	bobFull := bob.jid
	resp, peer, err := alice.gw.SendProtectedIQ(ctx, bobFull, "get", []byte(`<time xmlns="urn:example:demo"/>`), e2e.Encrypt)
	who := ""
	if peer != nil {
		who = peer.JID
	}
	r.check("encrypted IQ to bob, answered inside the envelope", err, "%s from %s", resp, who)
	_, _, err = alice.gw.SendProtectedIQ(ctx, bobFull, "get", []byte(`<time xmlns="urn:example:demo"/>`), e2e.AuthOnly)
	r.check("authenticate-only IQ (the server may read it, not change it)", err, "")

	// --- opportunistic encryption
	r.section("Opportunistic encryption with a stranger")
	carol, err := start("carol", pubs[2], nil)
	if err != nil {
		return fmt.Errorf("starting carol: %w", err)
	}
	n, err := carol.gw.DiscoverBundles(ctx, bobJID)
	if err == nil && n != 1 {
		err = fmt.Errorf("%d bundles found", n)
	}
	r.check("carol (not on bob's roster) found bob's bundle in PEP", err, "bob publishes it to anyone because his access control admits strangers")
	if err == nil {
		err = carol.gw.SendChat(ctx, bobJID, "Hello Bob, we have never met.")
	}
	if err == nil {
		var ev gateway.Event
		ev, err = bob.wait(func(ev gateway.Event) bool {
			return ev.Kind == gateway.EventChat && ev.From == carol.jid.Bare().String()
		})
		if err == nil && (!ev.Encrypted || ev.Peer == nil || !ev.Peer.NewSession) {
			err = errors.New("not an encrypted first message")
		}
	}
	r.check("carol's first message carried her bundle inline; bob's access control let it through", err,
		"bob tracks %d stranger(s), rate limited", bobAccess.Stats().Strangers)

	// --- account and devices
	r.section("One identity per account, certified devices")
	devs := func(p *participant, of string) int {
		ds, _ := p.gw.Engine().Devices(of)
		return len(ds)
	}
	waitFor := func(cond func() bool) error {
		for i := 0; i < 2000; i++ {
			if cond() {
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		return errors.New("timed out")
	}
	bl, err := bob.gw.Engine().DeviceList(bobJID.String())
	if err == nil && (bl == nil || !bob.gw.Engine().Certified()) {
		err = errors.New("bob's device is not on his device list")
	}
	if err == nil {
		r.check("bob's first device founded his account's device list at login", nil, "version %d, signed by his account key in the agent", bl.Version)
	} else {
		r.check("bob's first device founded his account's device list", err, "")
	}
	bobSigner, closer, err := identity.DialAgentKey(sock, pubs[1])
	var tablet *participant
	if err == nil {
		go func() { <-ctx.Done(); closer.Close() }()
		tablet, err = startAs("bob", "tablet", bobSigner, bobAccess, true)
	}
	if err == nil {
		err = waitFor(func() bool { return devs(alice, bobJID.String()) == 2 })
	}
	if err == nil {
		rec, _ = alice.trust.Lookup(bobJID.String())
		r.check("bob's tablet joined with the account key in its agent: alice uses it at once", nil,
			"device %d; still %v by %s: bob was verified once, for every device", tablet.gw.Engine().Device(), rec.Level, rec.Method)
	} else {
		r.check("bob's tablet joined his account", err, "")
	}
	// A phantom: the server (or anyone with bob's password) logs in one
	// more resource under bob's account, with a key of its own.
	phantomKey, err := identity.GenerateMemorySigner()
	var phantom *participant
	if err == nil {
		phantom, err = startAs("bob", "phantom", phantomKey, bobAccess, true)
	}
	if err == nil {
		var ev gateway.Event
		ev, err = alice.wait(func(ev gateway.Event) bool { return ev.Kind == gateway.EventKeyChanged && ev.From == bobJID.String() })
		if err == nil && devs(alice, bobJID.String()) != 2 {
			err = errors.New("alice stored the phantom device")
		}
		r.check("a phantom device logged in under bob's account: alice never uses it and is told", err, "%s", ev.Detail)
	} else {
		r.check("a phantom device logged in under bob's account", err, "")
	}
	if phantom != nil {
		if err := sendChat(alice, bob, "only bob's real devices can read this"); err != nil {
			r.check("alice's next message", err, "")
		}
	}
	// Bob revokes the tablet from his first device.
	if tablet != nil {
		var nl *e2e.DeviceList
		nl, err = bob.gw.RemoveDevice(ctx, tablet.gw.Engine().Device())
		if err == nil {
			err = waitFor(func() bool { return devs(alice, bobJID.String()) == 1 })
		}
		r.check("bob removed the tablet from his device list: alice stopped using it", err, "list version %d", func() uint64 {
			if nl != nil {
				return nl.Version
			}
			return 0
		}())
	}

	// --- hostile server
	r.section("A hostile server")
	envRE := regexp.MustCompile(`<env>([^<]+)</env>`)
	wr.setTamper(func(st localxmpp.Stanza) localxmpp.Stanza {
		m := envRE.FindSubmatch(st.Raw)
		if st.Name != "iq" || st.Type != "get" || m == nil {
			return st
		}
		env, err := base64.RawStdEncoding.DecodeString(string(m[1]))
		if err != nil {
			return st
		}
		env = bytes.Replace(env, []byte("urn:example:demo"), []byte("urn:example:evil"), 1)
		raw := envRE.ReplaceAll(st.Raw, []byte("<env>"+base64.RawStdEncoding.EncodeToString(env)+"</env>"))
		if out, err := localxmpp.ParseStanza(raw); err == nil {
			return out
		}
		return st
	})
	_, _, err = alice.gw.SendProtectedIQ(ctx, bobFull, "get", []byte(`<time xmlns="urn:example:demo"/>`), e2e.AuthOnly)
	if err == nil {
		err = errors.New("the rewritten stanza was accepted")
	} else {
		var ev gateway.Event
		ev, err = bob.wait(func(ev gateway.Event) bool {
			return ev.Kind == gateway.EventAlert && ev.Alert != nil && ev.Alert.Decision.Rule == "integrity"
		})
		if err == nil {
			r.check("server rewrote an authenticate-only IQ: bob refused it and raised an alert", nil, "%s", ev.Detail)
		}
	}
	if err != nil {
		r.check("server rewrote an authenticate-only IQ", err, "")
	}
	wr.setTamper(nil)

	// --- cleartext attempt
	r.section("A cleartext client")
	plain, err := xmppx.Login(ctx, srv.Addr().String(), jid.MustParse("alice@"+domain+"/old-client"), "alice-password", srv.ClientTLSConfig(), true)
	if err == nil {
		go plain.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
		msg := stanza.Message{To: bobJID, Type: stanza.ChatMessage}
		err = plain.Send(ctx, msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData("sent by an old client, in clear")), xml.StartElement{Name: xml.Name{Local: "body"}})))
	}
	if err == nil {
		var ev gateway.Event
		ev, err = bob.wait(func(ev gateway.Event) bool {
			return ev.Kind == gateway.EventAlert && strings.Contains(ev.Detail, "cleartext")
		})
		r.check("a plain client sent bob cleartext during the secured session: bob was alerted", err, "%s", ev.Detail)
	} else {
		r.check("a plain client sent bob cleartext", err, "")
	}
	if plain != nil {
		plain.Close()
	}

	fmt.Fprintf(w, "\n%d steps, %d failed\n", r.steps, r.failed)
	if r.failed > 0 {
		return fmt.Errorf("%d of %d demo steps failed", r.failed, r.steps)
	}
	return nil
}
