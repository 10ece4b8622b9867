// Package demo runs the securejingle demonstration behind
// `securejingle demo` and prints a readable report.
//
// This version exercises the end-to-end engine only (issue 2): two devices,
// Alice and Bob, whose identity keys live in an ssh-agent-protocol agent,
// exchange presence elements and bundles, pin each other's keys, run the
// post-quantum hybrid handshake, chat, protect stanzas, and watch a hostile
// server's tampering fail. Stanzas are handed from one engine to the other
// in process: there is no XMPP server in this version yet, and the report
// says so.
package demo

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh/agent"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// A report collects the demo's steps.
type report struct {
	w      io.Writer
	failed int
	steps  int
}

func (r *report) section(title string) {
	fmt.Fprintf(r.w, "\n== %s\n", title)
}

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

// expectErr turns "this must fail with target" into a step error.
func expectErr(err, target error) error {
	if err == nil {
		return errors.New("accepted, but must be refused")
	}
	if !errors.Is(err, target) {
		return fmt.Errorf("refused for the wrong reason: %v", err)
	}
	return nil
}

// device is one demo participant.
type device struct {
	name   string
	eng    *e2e.Engine
	st     store.Store
	trust  *trust.Store
	events []trust.Event
}

// Run runs the demo in a temporary directory and writes the report to w. It
// returns an error if any step failed.
func Run(ctx context.Context, w io.Writer, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "securejingle-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r := &report{w: w}
	fmt.Fprintln(w, "securejingle demo: the end-to-end engine")
	fmt.Fprintln(w, "(engine only: stanzas pass between the two engines in process; the XMPP")
	fmt.Fprintln(w, " gateway, embedded server, calls and file transfer are not built yet)")

	r.section("Identity keys in an agent")
	sock := filepath.Join(dir, "agent.sock")
	keyring := agent.NewKeyring()
	var pubs []ed25519.PublicKey
	for range 2 {
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
	actx, stop := context.WithCancel(ctx)
	defer stop()
	go identity.Serve(actx, l, keyring)
	var signers []identity.Signer
	for _, pub := range pubs {
		s, closer, err := identity.DialAgentKey(sock, pub)
		if err != nil {
			return err
		}
		defer closer.Close()
		signers = append(signers, s)
	}
	r.check("agent serving both identity keys over the ssh-agent protocol", nil, "%s", sock)
	for i, s := range signers {
		r.check(fmt.Sprintf("%s's key", []string{"alice", "bob"}[i]), nil, "%s", identity.Fingerprint(s.PublicKey()))
	}

	mk := func(name, jid string, s identity.Signer) (*device, error) {
		st, err := store.OpenBolt(filepath.Join(dir, name+".db"))
		if err != nil {
			return nil, err
		}
		d := &device{name: name, st: st, trust: trust.New(st, nil)}
		pt := &e2e.PinningTrust{Store: d.trust, OnEvent: func(ev trust.Event) { d.events = append(d.events, ev) }}
		d.eng, err = e2e.New(e2e.Config{JID: jid, Signer: s, Store: st, Trust: pt})
		return d, err
	}
	alice, err := mk("alice", "alice@example.org", signers[0])
	if err != nil {
		return err
	}
	defer alice.st.Close()
	bob, err := mk("bob", "bob@example.net", signers[1])
	if err != nil {
		return err
	}
	defer bob.st.Close()
	log.Info("engines ready", "alice_device", alice.eng.Device(), "bob_device", bob.eng.Device())

	r.section("Presence and bundles")
	for _, pair := range [][2]*device{{alice, bob}, {bob, alice}} {
		from, to := pair[0], pair[1]
		pres, err := xml.Marshal(from.eng.Presence())
		if err != nil {
			return err
		}
		p, err := e2e.ParsePresenceElement(pres)
		if err == nil {
			err = p.Verify(from.eng.JID())
		}
		r.check(fmt.Sprintf("%s's signed presence element verified by %s", from.name, to.name), err, "%d bytes: %s", len(pres), pres)
		bx, err := e2e.MarshalBundleXML(from.eng.Bundle())
		if err != nil {
			return err
		}
		bu, err := e2e.ParseBundleXML(bx)
		if err == nil && !p.Matches(bu) {
			err = errors.New("bundle does not match the presence element")
		}
		if err == nil {
			err = to.eng.AddBundle(from.eng.JID(), bu)
		}
		r.check(fmt.Sprintf("%s fetched %s's bundle, matched it to presence, pinned the key", to.name, from.name), err,
			"%d bytes of XML, suites %v", len(bx), suiteNames(bu))
	}
	r.check("trust events", nil, "alice saw %v, bob saw %v", kinds(alice.events), kinds(bob.events))

	r.section("Handshake and chat")
	chat := func(from, to *device, body string) (*e2e.ChatElement, error) {
		c := e2e.Context{From: from.eng.JID(), To: to.eng.JID(), StanzaKind: "message", StanzaType: "chat"}
		el, err := from.eng.SealChat(c, []e2e.Device{{JID: to.eng.JID(), ID: to.eng.Device()}}, body, false)
		if err != nil {
			return nil, err
		}
		got, _, err := to.eng.OpenChat(c, el)
		if err == nil && got != body {
			err = fmt.Errorf("got %q", got)
		}
		return el, err
	}
	first, err := chat(alice, bob, "Hi Bob, this is the first message (sent before any reply).")
	r.check("alice -> bob first message, carrying the handshake (0-RTT)", err, "%d bytes on the wire", xmlLen(first))
	reply, err := chat(bob, alice, "Hi Alice! Reply received and authenticated.")
	r.check("bob -> alice reply completes mutual authentication", err, "%d bytes", xmlLen(reply))
	ia, err1 := alice.eng.Session(e2e.Device{JID: bob.eng.JID(), ID: bob.eng.Device()})
	ib, err2 := bob.eng.Session(e2e.Device{JID: alice.eng.JID(), ID: alice.eng.Device()})
	err = errors.Join(err1, err2)
	if err == nil && attest.SAS(ia.Transcript[:]) != attest.SAS(ib.Transcript[:]) {
		err = errors.New("short authentication strings differ")
	}
	r.check("both sides compute the same short authentication string", err, "%s (suite %v)", attest.SAS(ia.Transcript[:]), ia.Suite)
	var el *e2e.ChatElement
	for i := 0; i < 6 && err == nil; i++ {
		el, err = chat(alice, bob, "Are we still on for lunch at noon tomorrow?")
		if err == nil {
			_, err = chat(bob, alice, "Yes, see you there.")
		}
	}
	clear := len("<body>Are we still on for lunch at noon tomorrow?</body>")
	enc := xmlLen(el) + len("<store xmlns='urn:xmpp:hints'/>")
	r.check("steady-state chat", err, "a 43-byte line costs %d bytes encrypted (with store hint) vs %d in clear: +%d", enc, clear, enc-clear)

	r.section("Protected stanzas")
	iq := e2e.Context{From: alice.eng.JID(), To: bob.eng.JID(), StanzaKind: "iq", StanzaType: "get", StanzaID: "iq1"}
	content := []byte(`<query xmlns='jabber:iq:version'/>`)
	bobDev := []e2e.Device{{JID: bob.eng.JID(), ID: bob.eng.Device()}}
	p, err := alice.eng.Protect(iq, bobDev, content, e2e.Encrypt)
	if err == nil {
		var ev *e2e.Envelope
		ev, _, err = bob.eng.Unprotect(iq, p)
		if err == nil && string(ev.Content) != string(content) {
			err = fmt.Errorf("content %q", ev.Content)
		}
	}
	r.check("encrypted IQ payload unwrapped by bob", err, "%s", content)
	set := e2e.Context{From: alice.eng.JID(), To: bob.eng.JID(), StanzaKind: "iq", StanzaType: "set", StanzaID: "iq1"}
	jingle := []byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a73sjjvkla37jfea'><ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/></jingle>`)
	ap, err := alice.eng.Protect(set, bobDev, jingle, e2e.AuthOnly)
	r.check("authenticate-only IQ: readable by the server", err, "%d envelope bytes in clear", len(ap.Envelope))

	r.section("A hostile server")
	bad := *ap
	bad.Envelope = []byte(strings.Replace(string(ap.Envelope), "session-info", "session-terminate", 1))
	_, _, err = bob.eng.Unprotect(set, &bad)
	r.check("rewritten auth-only stanza rejected", expectErr(err, e2e.ErrDecrypt), "")
	_, _, err = bob.eng.Unprotect(e2e.Context{From: alice.eng.JID(), To: bob.eng.JID(), StanzaKind: "iq", StanzaType: "get", StanzaID: "iq1"}, ap)
	r.check("re-typed stanza (set -> get) rejected", expectErr(err, e2e.ErrDecrypt), "")
	_, _, err = bob.eng.Unprotect(set, ap)
	r.check("genuine stanza still accepted after the attempts", err, "")
	_, _, err = bob.eng.OpenChat(e2e.Context{From: alice.eng.JID(), To: bob.eng.JID(), StanzaKind: "message", StanzaType: "chat"}, first)
	r.check("replayed first message rejected", expectErr(err, e2e.ErrReplay), "")
	_, _, err = bob.eng.OpenChat(e2e.Context{From: alice.eng.JID(), To: bob.eng.JID(), StanzaKind: "message", StanzaType: "chat"}, el)
	r.check("replayed chat message rejected", expectErr(err, e2e.ErrReplay), "")
	// Mallory substitutes a bundle for Bob's device with her own key.
	ms, err := identity.GenerateMemorySigner()
	if err != nil {
		return err
	}
	mst := store.NewMemory()
	mal, err := e2e.New(e2e.Config{JID: bob.eng.JID(), Signer: ms, Store: mst})
	if err != nil {
		return err
	}
	forged := *mal.Bundle()
	forged.Device = bob.eng.Device()
	err = alice.eng.AddBundle(bob.eng.JID(), &forged)
	if err == nil {
		err = errors.New("accepted")
	} else if !errors.Is(err, e2e.ErrBadBundle) && !errors.Is(err, e2e.ErrUntrusted) {
		err = fmt.Errorf("refused for the wrong reason: %v", err)
	} else {
		err = nil
	}
	r.check("bundle with a substituted identity key for bob's device rejected", err, "")

	fmt.Fprintf(w, "\n%d steps, %d failed\n", r.steps, r.failed)
	if r.failed > 0 {
		return fmt.Errorf("%d of %d demo steps failed", r.failed, r.steps)
	}
	return nil
}

func suiteNames(bu *e2e.Bundle) []string {
	var out []string
	for _, s := range bu.Suites {
		out = append(out, s.String())
	}
	return out
}

func kinds(evs []trust.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%v(%s)", ev.Kind, ev.JID))
	}
	return out
}

func xmlLen(v any) int {
	if v == nil {
		return 0
	}
	b, err := xml.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}
