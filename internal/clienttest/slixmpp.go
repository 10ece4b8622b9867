package clienttest

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/integration"
)

//go:embed slixmpp_client.py
var slixmppScript []byte

// pythonCandidates are tried in order for a python3 that can import
// slixmpp: Debian's own interpreter first (a pyenv or venv python3 earlier
// in PATH does not see Debian's python3-slixmpp), then PATH's.
var pythonCandidates = []string{"/usr/bin/python3", "python3"}

// findSlixmpp returns a python3 that imports slixmpp, or skips the test
// (fails it under SECUREJINGLE_INTEGRATION=1).
func findSlixmpp(t testing.TB) string {
	t.Helper()
	for _, c := range pythonCandidates {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = exec.CommandContext(ctx, p, "-c", "import slixmpp").Run()
		cancel()
		if err == nil {
			return p
		}
	}
	if integration.Required() {
		t.Fatal(`no python3 that can import slixmpp (Debian package "python3-slixmpp"; make deps installs it)`)
	}
	t.Skip(`no python3 that can import slixmpp (Debian package "python3-slixmpp")`)
	return ""
}

// slixEvent is one line the script writes.
type slixEvent struct {
	Ev     string `json:"ev"`
	JID    string `json:"jid"`
	From   string `json:"from"`
	To     string `json:"to"`
	Type   string `json:"type"`
	Body   string `json:"body"`
	XML    string `json:"xml"`
	What   string `json:"what"`
	Detail string `json:"detail"`
	ID     string `json:"id"`
}

// Slixmpp is a running slixmpp client (Debian's python3-slixmpp) logged in
// to an endpoint. It trusts only the endpoint's certificate and checks the
// JID's domain against it. Its methods may be called from the test's
// goroutine only (t.Fatal).
type Slixmpp struct {
	t      testing.TB
	proc   *process
	mu     sync.Mutex // guards in
	in     *bufio.Writer
	ev     *events[slixEvent]
	Bound  string // the full JID the server bound
	closer func() error
}

// StartSlixmpp runs the slixmpp client against ep and returns once it is
// online (logged in, initial presence sent, roster fetched). It fails the
// test if it cannot log in within WaitLimit.
func StartSlixmpp(t testing.TB, ep Endpoint) *Slixmpp {
	t.Helper()
	c, err := TrySlixmpp(t, ep)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TrySlixmpp is [StartSlixmpp] returning an error when the client does not
// come online (a refused login, a refused certificate); the client is then
// stopped. It still fails the test on a harness problem.
func TrySlixmpp(t testing.TB, ep Endpoint) (*Slixmpp, error) {
	t.Helper()
	return trySlixmpp(t, ep, false)
}

// StartSlixmppSM is [StartSlixmpp] with slixmpp's XEP-0198 plugin
// (stream management; it asks for an ack after every stanza it sends,
// and asks for resumption). It fails the test unless the endpoint
// enables stream management.
func StartSlixmppSM(t testing.TB, ep Endpoint) *Slixmpp {
	t.Helper()
	c, err := trySlixmpp(t, ep, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := waitCtx(t)
	defer cancel()
	e, err := c.ev.wait(ctx, func(e slixEvent) bool { return e.Ev == "sm_enabled" || e.Ev == "sm_failed" })
	if err != nil || e.Ev != "sm_enabled" {
		t.Fatalf("clienttest: slixmpp %s: stream management not enabled: %v %+v", ep.JID, err, e)
	}
	return c
}

// RequestAck makes the client send an ack request (<r/>). (slixmpp's
// own request goes out just before each stanza it sends, so its last
// stanza is acknowledged only with the next one, or after this.)
func (c *Slixmpp) RequestAck() {
	c.t.Helper()
	c.command(map[string]string{"op": "smrequest"})
}

// WaitAcked waits until the server acknowledged (XEP-0198) the stanza
// with id; the client must have been started with [StartSlixmppSM].
func (c *Slixmpp) WaitAcked(id string) {
	c.t.Helper()
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	if _, err := c.ev.wait(ctx, func(e slixEvent) bool { return e.Ev == "acked" && e.ID == id }); err != nil {
		c.t.Fatalf("clienttest: slixmpp: %q not acknowledged: %v", id, err)
	}
}

// WaitSMAnswer waits until the client answered a request of the server
// (<r/>) with an <a/> whose h is at least min, and returns that h.
func (c *Slixmpp) WaitSMAnswer(min uint32) uint32 {
	c.t.Helper()
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	var h uint32
	_, err := c.ev.wait(ctx, func(e slixEvent) bool {
		if e.Ev != "sm_answer" {
			return false
		}
		_, err := fmt.Sscan(e.Detail, &h)
		return err == nil && h >= min
	})
	if err != nil {
		c.t.Fatalf("clienttest: slixmpp: no answer to the server's <r/> with h >= %d: %v", min, err)
	}
	return h
}

// SMState returns the client's stream management counts: the stanzas
// it handled, the h of the last ack it got, and the stanzas it sent
// (mod 2^32).
func (c *Slixmpp) SMState() (handled, lastAck, sent uint32) {
	c.t.Helper()
	id := randomID()
	c.command(map[string]string{"op": "smstate", "id": id})
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	e, err := c.ev.wait(ctx, func(e slixEvent) bool { return e.Ev == "smstate" && e.ID == id })
	if err != nil {
		c.t.Fatalf("clienttest: slixmpp: smstate: %v", err)
	}
	if _, err := fmt.Sscan(e.Detail, &handled, &lastAck, &sent); err != nil {
		c.t.Fatalf("clienttest: slixmpp: smstate %q", e.Detail)
	}
	return handled, lastAck, sent
}

func trySlixmpp(t testing.TB, ep Endpoint, sm bool) (*Slixmpp, error) {
	t.Helper()
	py := findSlixmpp(t)
	host, port, err := ep.check()
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t, "slix")
	ca, err := ep.writeCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "slixmpp_client.py")
	if err := os.WriteFile(script, slixmppScript, 0o600); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	env := append(baseEnv(dir),
		"SJ_JID="+ep.JID.String(), "SJ_PASSWORD="+ep.Password,
		"SJ_HOST="+host, "SJ_PORT="+port, "SJ_CAFILE="+ca,
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	if sm {
		env = append(env, "SJ_SM=1")
	}
	c := &Slixmpp{t: t, ev: newEvents[slixEvent]()}
	c.proc, c.in, c.closer = startProcess(t, "slixmpp "+ep.JID.String(), py, []string{"-I", script}, dir, env, true, func(line string) {
		var e slixEvent
		if json.Unmarshal([]byte(line), &e) != nil || e.Ev == "" {
			return // slixmpp's own log lines go to stderr; ignore strays
		}
		c.ev.add(e)
	}, nil)
	go func() { <-c.proc.done; c.ev.close() }()
	ctx, cancel := waitCtx(t)
	defer cancel()
	e, err := c.ev.wait(ctx, func(e slixEvent) bool {
		return e.Ev == "online" || e.Ev == "error" && e.What != "roster" || e.Ev == "closed"
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("clienttest: slixmpp %s did not come online: %w", ep.JID, err)
	}
	if e.Ev != "online" {
		c.Close()
		return nil, fmt.Errorf("clienttest: slixmpp %s did not come online: %s %s %s", ep.JID, e.Ev, e.What, e.Detail)
	}
	c.Bound = e.JID
	return c, nil
}

// command writes one JSON command line to the script.
func (c *Slixmpp) command(cmd map[string]string) {
	c.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.in.Write(append(b, '\n')); err == nil {
		err = c.in.Flush()
	}
	if err != nil {
		c.t.Fatalf("clienttest: slixmpp: writing a command: %v", err)
	}
}

// Send sends a chat message with the given id (the client picks one if
// id is "") and waits until the library has written it.
func (c *Slixmpp) Send(to, body, id string) {
	c.t.Helper()
	if id == "" {
		id = randomID()
	}
	c.command(map[string]string{"op": "send", "to": to, "body": body, "type": "chat", "id": id})
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	if _, err := c.ev.wait(ctx, func(e slixEvent) bool { return e.Ev == "sent" && e.ID == id }); err != nil {
		c.t.Fatalf("clienttest: slixmpp: sending %q: %v", id, err)
	}
}

// IBB opens a XEP-0047 in-band bytestream with sid to the full JID to
// (slixmpp's xep_0047 plugin, as an application sends a file with it),
// sends data on it and closes it, and returns how that ended: Type
// "result", or "error" with the IQ error in XML and its condition and
// text in Detail.
func (c *Slixmpp) IBB(to, data, sid string) (typ, detail, xml string) {
	c.t.Helper()
	c.command(map[string]string{"op": "ibb", "to": to, "data": data, "id": sid})
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	e, err := c.ev.wait(ctx, func(e slixEvent) bool { return e.Ev == "ibb" && e.ID == sid })
	if err != nil {
		c.t.Fatalf("clienttest: slixmpp: IBB stream %q: %v", sid, err)
	}
	return e.Type, e.Detail, e.XML
}

// JingleIBB sends data as the file name to the full JID to in a XEP-0234
// Jingle session over XEP-0261 IBB (the offer with the data's sha-256,
// written by hand: slixmpp has no Jingle; the bytes with slixmpp's
// xep_0047), answering the peer's Jingle requests, and returns how the
// session ended: typ "result" with the session-terminate's reason as
// detail, or "error" with the error and its stanza.
func (c *Slixmpp) JingleIBB(to, name, data, sid string) (typ, detail, xml string) {
	c.t.Helper()
	c.command(map[string]string{"op": "jingleibb", "to": to, "name": name, "data": data, "id": sid})
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	e, err := c.ev.wait(ctx, func(e slixEvent) bool { return e.Ev == "jingle" && e.ID == sid })
	if err != nil {
		c.t.Fatalf("clienttest: slixmpp: Jingle session %q: %v", sid, err)
	}
	return e.Type, e.Detail, e.XML
}

// WaitMessage waits for a received message that match accepts (every one
// since the start counts) and returns it.
func (c *Slixmpp) WaitMessage(match func(Message) bool) Message {
	c.t.Helper()
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	e, err := c.ev.wait(ctx, func(e slixEvent) bool { return e.Ev == "message" && match(e.message()) })
	if err != nil {
		c.t.Fatalf("clienttest: slixmpp: no matching message: %v; received: %v", err, c.Messages())
	}
	return e.message()
}

// WaitPresence waits for an available presence from who: a bare JID
// (then any of its resources) or a full JID, and returns the sender's
// full JID.
func (c *Slixmpp) WaitPresence(who string) string {
	c.t.Helper()
	ctx, cancel := waitCtx(c.t)
	defer cancel()
	full := bareOf(who) != who
	e, err := c.ev.wait(ctx, func(e slixEvent) bool {
		if e.Ev != "presence" || (e.Type != "available" && e.Type != "") {
			return false
		}
		if full {
			return e.From == who
		}
		return bareOf(e.From) == who && e.From != who
	})
	if err != nil {
		c.t.Fatalf("clienttest: slixmpp: no available presence from %s: %v", who, err)
	}
	return e.From
}

// Messages returns every message received so far.
func (c *Slixmpp) Messages() []Message {
	list, _, _ := c.ev.snapshot()
	var ms []Message
	for _, e := range list {
		if e.Ev == "message" {
			ms = append(ms, e.message())
		}
	}
	return ms
}

// Close asks the client to disconnect and waits for it to exit (it is
// killed after a grace period); the test's cleanup does the same.
func (c *Slixmpp) Close() {
	c.proc.stop(c.closer)
}

func (e slixEvent) message() Message {
	return Message{From: e.From, To: e.To, Type: e.Type, Body: e.Body, XML: e.XML}
}
