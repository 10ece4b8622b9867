package gateway

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
)

// upTest is a front in front of alice's gateway, whose plain client
// sends files to bob (behind his own gateway, accepting every file).
type upTest struct {
	srv   *localxmpp.Server
	a, b  *testGateway
	fa    *testFront
	ac    *plainClient
	wire  *wireLog
	spool string // alice's FrontSpoolDir
	bDir  string // bob's download directory
}

func startUpTest(t *testing.T, real bool, aliceSetup func(*Gateway)) *upTest {
	return startUpTestIdle(t, real, 0, aliceSetup)
}

// startUpTestIdle is startUpTest with the upgrades' idle timeout set
// (0: the default).
func startUpTestIdle(t *testing.T, real bool, idle time.Duration, aliceSetup func(*Gateway)) *upTest {
	t.Helper()
	return startUpTestWith(t, real, idle, aliceSetup, true)
}

// startUpTestWith is startUpTestIdle; bob accepts every file when
// accepts is set, else they wait for his decision.
func startUpTestWith(t *testing.T, real bool, idle time.Duration, aliceSetup func(*Gateway), accepts bool) *upTest {
	t.Helper()
	spool := filepath.Join(t.TempDir(), "spool")
	var bDir string
	srv, a, b, _ := filePairWith(t, real, withSetup(func(g *Gateway) { g.cfg.FrontSpoolDir = spool }, aliceSetup), func(g *Gateway) {
		bDir = g.cfg.DownloadDir
		g.cfg.FileAccepter = func(TransferInfo) (string, bool) { return "", accepts }
	})
	wire := recordWire(srv)
	a.Front().upIdle = idle // before the listener serves a client
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	return &upTest{srv: srv, a: a, b: b, fa: fa, ac: ac, wire: wire, spool: spool, bDir: bDir}
}

// bobJID is where the client sends: bob's gateway's resource, which it
// saw online.
var bobPhone = "bob@" + testDomain + "/phone"

// ibbSender is a plain client's XEP-0234 sender over XEP-0261 IBB, step
// by step.
type ibbSender struct {
	t     *testing.T
	c     *plainClient
	to    string
	sid   string // Jingle
	ibb   string // IBB
	block int
	n     int // IQ counter
	seq   int
}

func (s *ibbSender) id() string { s.n++; return s.sid + "-" + strconv.Itoa(s.n) }

// iq sends an IQ set with payload and returns the answer.
func (s *ibbSender) iq(payload string) *Stanza {
	s.t.Helper()
	id := s.id()
	s.c.send(s.t, `<iq type="set" id="`+id+`" to="`+s.to+`">`+payload+`</iq>`)
	return s.c.wait(s.t, "the answer to "+id, func(st *Stanza) bool {
		return st.Kind == "iq" && st.ID == id && (st.Type == "result" || st.Type == "error")
	})
}

// offer sends the session-initiate of name (size bytes, the sha-256
// hash if given) and returns the answer.
func (s *ibbSender) offer(name string, size int, hash []byte) *Stanza {
	s.t.Helper()
	h := ""
	if hash != nil {
		h = `<hash xmlns="urn:xmpp:hashes:2" algo="sha-256">` + base64.StdEncoding.EncodeToString(hash) + `</hash>`
	}
	return s.iq(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="` + s.sid + `" initiator="alice@` + testDomain + `/client">` +
		`<content creator="initiator" name="f" senders="initiator"><description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file>` +
		`<name>` + name + `</name><size>` + strconv.Itoa(size) + `</size>` + h + `</file></description>` +
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="` + strconv.Itoa(s.block) + `" sid="` + s.ibb + `"/></content></jingle>`)
}

// jingleFrom waits for the front's Jingle IQ set of action in the
// session, answers it and returns it.
func (s *ibbSender) jingleFrom(action jingle.Action) *jingle.Jingle {
	s.t.Helper()
	st := s.c.wait(s.t, string(action), func(st *Stanza) bool {
		if st.Kind != "iq" || st.Type != "set" || st.Child(nsJingle, "jingle") == nil {
			return false
		}
		j, err := jingle.Parse(st.Child(nsJingle, "jingle").Raw)
		return err == nil && j.SID == s.sid && j.Action == action
	})
	if st.From.String() != s.to {
		s.t.Errorf("%s from %s, want %s", action, st.From, s.to)
	}
	s.c.send(s.t, `<iq type="result" id="`+st.ID+`" to="`+st.From.String()+`"/>`)
	j, _ := jingle.Parse(st.Child(nsJingle, "jingle").Raw)
	return j
}

func (s *ibbSender) open() *Stanza {
	return s.iq(`<open xmlns="http://jabber.org/protocol/ibb" block-size="` + strconv.Itoa(s.block) + `" sid="` + s.ibb + `" stanza="iq"/>`)
}

func (s *ibbSender) data(b []byte) *Stanza {
	st := s.iq(`<data xmlns="http://jabber.org/protocol/ibb" seq="` + strconv.Itoa(s.seq) + `" sid="` + s.ibb + `">` + base64.StdEncoding.EncodeToString(b) + `</data>`)
	s.seq = (s.seq + 1) & 0xffff
	return st
}

func (s *ibbSender) close() *Stanza {
	return s.iq(`<close xmlns="http://jabber.org/protocol/ibb" sid="` + s.ibb + `"/>`)
}

// start offers name and waits for the accept; ok false when the offer
// was answered with an error.
func (u *upTest) start(t *testing.T, sid, name string, size int, hash []byte) (*ibbSender, *Stanza) {
	t.Helper()
	s := &ibbSender{t: t, c: u.ac, to: bobPhone, sid: sid, ibb: "ibb-" + sid, block: 4096}
	ans := s.offer(name, size, hash)
	if ans.Type != "result" {
		return s, ans
	}
	acc := s.jingleFrom(jingle.ActionSessionAccept)
	if len(acc.Contents) != 1 {
		t.Fatalf("accept %+v", acc)
	}
	return s, ans
}

// send sends data in the session, every block answered with a result.
func (s *ibbSender) send(data []byte) {
	s.t.Helper()
	if st := s.open(); st.Type != "result" {
		s.t.Fatalf("open: %s", stanzaText(st))
	}
	for off := 0; off < len(data); off += s.block {
		if st := s.data(data[off:min(off+s.block, len(data))]); st.Type != "result" {
			s.t.Fatalf("data at %d: %s", off, stanzaText(st))
		}
	}
	if st := s.close(); st.Type != "result" {
		s.t.Fatalf("close: %s", stanzaText(st))
	}
}

// spoolEmpty waits until the spool directory holds nothing.
func (u *upTest) spoolEmpty(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		es, err := os.ReadDir(u.spool)
		if (err == nil || os.IsNotExist(err)) && len(es) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool directory still holds %v", es)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noneOnWire checks that nothing of a client's file crossed the server.
func (u *upTest) noneOnWire(t *testing.T, name string, data []byte) {
	t.Helper()
	var probes []string
	for off := 0; off+24 <= len(data); off += 4096 {
		probes = append(probes, base64.StdEncoding.EncodeToString(data[off:off+24]))
	}
	for _, st := range u.wire.all() {
		raw := string(st.Raw)
		if strings.Contains(raw, name) || strings.Contains(raw, filexfer.IBBNamespace) || strings.Contains(raw, filexfer.NSFileTransfer) ||
			strings.Contains(raw, filexfer.NSS5B) || strings.Contains(raw, filexfer.NSIBB) {
			t.Errorf("the server saw the file's metadata or a bytestream: %.300s", raw)
		}
		for _, p := range probes {
			if strings.Contains(raw, p) {
				t.Errorf("the server saw the file's bytes: %.300s", raw)
			}
		}
	}
}

func isNotice(text string) func(*Stanza) bool { return isAlertFrom(text) }

// TestFrontUploadEncrypted: a plain client sends files (0 bytes, 1 byte,
// 1 MiB) with Jingle and IBB to bob, who runs securejingle: the front
// takes the bytes, the client gets success, bob's daemon stores each
// file with the same sha-256, the client is told of the delivery, the
// spool is empty, and the server saw neither the name nor the bytes nor
// a bytestream.
func TestFrontUploadEncrypted(t *testing.T) {
	u := startUpTest(t, false, nil)
	for _, size := range []int{0, 1, 1 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			data := make([]byte, size)
			rand.Read(data)
			sum := sha256.Sum256(data)
			name := "report-" + strconv.Itoa(size) + ".bin"
			s, ans := u.start(t, "up"+strconv.Itoa(size), name, size, sum[:])
			if ans.Type != "result" {
				t.Fatalf("offer answered %s", stanzaText(ans))
			}
			s.send(data)
			term := s.jingleFrom(jingle.ActionSessionTerminate)
			if term.Reason == nil || term.Reason.Condition != jingle.ReasonSuccess {
				t.Fatalf("terminate %+v", term.Reason)
			}
			got := u.b.waitTransfer(t, "", "bob's completed file", func(in TransferInfo) bool {
				return in.State == TransferCompleted && len(in.Files) == 1 && in.Files[0].Name == name
			})
			if want := "sha-256:" + hex.EncodeToString(sum[:]); got.Files[0].Hash != want {
				t.Errorf("bob's hash %s, want %s", got.Files[0].Hash, want)
			}
			b, err := os.ReadFile(got.Files[0].Path)
			if err != nil || !bytes.Equal(b, data) {
				t.Errorf("bob's file: %v, %d bytes", err, len(b))
			}
			u.ac.wait(t, "the delivery notice", isNotice("received the file \""+name+"\""))
			u.spoolEmpty(t)
			u.noneOnWire(t, name, data)
		})
	}
}

// failedCleanly checks that an upgrade ended with a session-terminate of
// reason why, a notice with text, nothing at bob and no spooled file.
func (u *upTest) failedCleanly(t *testing.T, s *ibbSender, why jingle.ReasonCondition, text string) {
	t.Helper()
	term := s.jingleFrom(jingle.ActionSessionTerminate)
	if term.Reason == nil || term.Reason.Condition != why {
		t.Errorf("terminate %+v, want %s", term.Reason, why)
	}
	u.ac.wait(t, "the notice", isNotice(text))
	u.spoolEmpty(t)
	if xs := u.b.Transfers(); len(xs) != 0 {
		t.Errorf("bob got a transfer: %+v", xs)
	}
	if xs := u.a.Transfers(); len(xs) != 0 {
		t.Errorf("alice's gateway sent a transfer: %+v", xs)
	}
	// Later bytes of the stream are answered here, never sent upstream.
	if st := s.data([]byte("late")); st.Type != "error" {
		t.Errorf("late data answered %s", stanzaText(st))
	}
	u.noneOnWire(t, "upfail", nil)
}

// TestFrontUploadFailures: a lying hash, more bytes than offered, a gap
// in the IBB sequence, and a client that stops sending each end the
// upgrade with a session-terminate and a notice; nothing reaches bob and
// no spooled file is left.
func TestFrontUploadFailures(t *testing.T) {
	u := startUpTestIdle(t, false, 500*time.Millisecond, nil)
	data := bytes.Repeat([]byte("upfail bytes "), 1000)
	sum := sha256.Sum256(data)
	other := sha256.Sum256([]byte("something else"))
	t.Run("lying-hash", func(t *testing.T) {
		s, ans := u.start(t, "lie", "upfail-lie.txt", len(data), other[:])
		if ans.Type != "result" {
			t.Fatalf("offer %s", stanzaText(ans))
		}
		s.send(data)
		u.failedCleanly(t, s, jingle.ReasonSecurityError, "hash does not match")
	})
	t.Run("oversize", func(t *testing.T) {
		s, _ := u.start(t, "big", "upfail-big.txt", 10, nil)
		s.open()
		if st := s.data(data[:11]); st.Type != "error" {
			t.Fatalf("11 of 10 bytes answered %s", stanzaText(st))
		}
		u.failedCleanly(t, s, jingle.ReasonFailedTransport, "more bytes than the 10 it offered")
	})
	t.Run("seq-gap", func(t *testing.T) {
		s, _ := u.start(t, "gap", "upfail-gap.txt", len(data), sum[:])
		s.open()
		s.data(data[:100])
		s.seq++ // seq 1 is skipped
		if st := s.data(data[100:200]); st.Type != "error" {
			t.Fatalf("a gap answered %s", stanzaText(st))
		}
		u.failedCleanly(t, s, jingle.ReasonFailedTransport, "a bytestream block is missing")
	})
	t.Run("bad-base64", func(t *testing.T) {
		s, _ := u.start(t, "b64", "upfail-b64.txt", len(data), sum[:])
		s.open()
		if st := s.iq(`<data xmlns="http://jabber.org/protocol/ibb" seq="0" sid="ibb-b64">not base64!</data>`); st.Type != "error" {
			t.Fatalf("bad base64 answered %s", stanzaText(st))
		}
		u.failedCleanly(t, s, jingle.ReasonFailedTransport, "not valid base64")
	})
	t.Run("block-too-large", func(t *testing.T) {
		s, _ := u.start(t, "blk", "upfail-blk.txt", len(data), sum[:])
		s.open()
		s.block = 5000 // over the 4096 it offered and the front accepted
		if st := s.data(data[:5000]); st.Type != "error" {
			t.Fatalf("an oversize block answered %s", stanzaText(st))
		}
		u.failedCleanly(t, s, jingle.ReasonFailedTransport, "more than the 4096 accepted")
	})
	t.Run("data-before-open", func(t *testing.T) {
		s, _ := u.start(t, "early", "upfail-early.txt", len(data), sum[:])
		if st := s.data(data[:10]); st.Type != "error" {
			t.Fatalf("data before the open answered %s", stanzaText(st))
		}
		u.failedCleanly(t, s, jingle.ReasonFailedTransport, "outside an open bytestream")
	})
	t.Run("short-close", func(t *testing.T) {
		s, _ := u.start(t, "short", "upfail-short.txt", len(data), sum[:])
		s.open()
		s.data(data[:10])
		if st := s.close(); st.Type != "error" {
			t.Fatalf("a short close answered %s", stanzaText(st))
		}
		u.failedCleanly(t, s, jingle.ReasonFailedTransport, "sent 10 of the")
	})
	t.Run("idle", func(t *testing.T) {
		s, _ := u.start(t, "idle", "upfail-idle.txt", len(data), sum[:])
		s.open()
		s.data(data[:100])
		u.failedCleanly(t, s, jingle.ReasonTimeout, "your client sent nothing for")
	})
}

// TestFrontUploadClientGone: a client that disconnects mid-way leaves no
// spooled file and no transfer.
func TestFrontUploadClientGone(t *testing.T) {
	u := startUpTest(t, false, nil)
	data := bytes.Repeat([]byte("x"), 50000)
	sum := sha256.Sum256(data)
	s, _ := u.start(t, "gone", "gone.bin", len(data), sum[:])
	s.open()
	s.data(data[:4096])
	if es, _ := os.ReadDir(u.spool); len(es) != 1 {
		t.Fatalf("spool holds %d entries while receiving, want 1", len(es))
	}
	u.ac.sess.Conn().Close()
	u.spoolEmpty(t)
	if xs := u.a.Transfers(); len(xs) != 0 {
		t.Errorf("alice's gateway sent a transfer: %+v", xs)
	}
}

// TestFrontUploadServerCannotInject: IBB data and Jingle the server sends
// the client in the name of the contact, with the upgrade's sids, are
// answered upstream with an error and reach neither the spool nor the
// client: only the client's own stream feeds an upgrade.
func TestFrontUploadServerCannotInject(t *testing.T) {
	u := startUpTest(t, false, nil)
	data := []byte("the client's own bytes")
	sum := sha256.Sum256(data)
	s, _ := u.start(t, "inj", "inj.txt", len(data), sum[:])
	if st := s.open(); st.Type != "result" {
		t.Fatalf("open %s", stanzaText(st))
	}
	for i, raw := range []string{
		`<iq type="set" id="forged1" from="` + bobPhone + `" to="alice@` + testDomain + `/client"><data xmlns="http://jabber.org/protocol/ibb" seq="0" sid="ibb-inj">` + base64.StdEncoding.EncodeToString([]byte("forged")) + `</data></iq>`,
		`<message id="forged2" from="` + bobPhone + `" to="alice@` + testDomain + `/client"><data xmlns="http://jabber.org/protocol/ibb" seq="0" sid="ibb-inj">` + base64.StdEncoding.EncodeToString([]byte("forged")) + `</data></message>`,
		`<iq type="set" id="forged3" from="` + bobPhone + `" to="alice@` + testDomain + `/client"><jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="inj"><reason><cancel/></reason></jingle></iq>`,
	} {
		st, err := localxmpp.ParseStanza([]byte(raw))
		if err != nil {
			t.Fatal(i, err)
		}
		if err := u.srv.Inject(st); err != nil {
			t.Fatal(i, err)
		}
	}
	marker, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + testDomain + `" to="alice@` + testDomain + `/client"><body>marker</body></message>`))
	if err := u.srv.Inject(marker); err != nil {
		t.Fatal(err)
	}
	u.ac.wait(t, "the marker", chatWith("marker"))
	for _, st := range u.ac.seen {
		if strings.HasPrefix(st.ID, "forged") {
			t.Errorf("the client got the server's %s", stanzaText(st))
		}
	}
	// The client's seq 0 is still the first block: nothing was fed.
	if st := s.data(data); st.Type != "result" {
		t.Fatalf("data %s", stanzaText(st))
	}
	if st := s.close(); st.Type != "result" {
		t.Fatalf("close %s", stanzaText(st))
	}
	if term := s.jingleFrom(jingle.ActionSessionTerminate); term.Reason == nil || term.Reason.Condition != jingle.ReasonSuccess {
		t.Fatalf("terminate %+v", term.Reason)
	}
	got := u.b.waitTransfer(t, "", "bob's file", inState(TransferCompleted))
	if b, err := os.ReadFile(got.Files[0].Path); err != nil || !bytes.Equal(b, data) {
		t.Errorf("bob got %q, %v", b, err)
	}
}

// TestFrontUploadNoSecurejingle: the same offer to a contact without
// securejingle is still refused as a plain transfer (§22.10), with the
// error and the alert, and nothing is spooled or sent upstream.
func TestFrontUploadNoSecurejingle(t *testing.T) {
	u := startUpTest(t, false, nil)
	carol := carolOn(t, u.srv)
	_ = carol
	s := &ibbSender{t: t, c: u.ac, to: "carol@" + testDomain + "/plain", sid: "plain1", ibb: "ibb-plain1", block: 4096}
	ans := s.offer("upfail-carol.txt", 5, nil)
	if ans.Type != "error" || !strings.Contains(stanzaText(ans), "policy-violation") || !strings.Contains(stanzaText(ans), "in clear") {
		t.Fatalf("offer to carol answered %s", stanzaText(ans))
	}
	u.ac.wait(t, "the alert", isAlertFrom("carol@"+testDomain))
	if es, _ := os.ReadDir(u.spool); len(es) != 0 {
		t.Errorf("spooled %v", es)
	}
	u.noneOnWire(t, "upfail-carol", nil)
}

// TestFrontUploadBounds: an offer over max_file_size, one without a
// size, and a third upload of one client at once are refused before
// anything is spooled; a hashless offer is checked against the
// XEP-0234 checksum the client sends after the bytes.
func TestFrontUploadBounds(t *testing.T) {
	u := startUpTest(t, false, func(g *Gateway) { g.cfg.MaxFileSize = 1000 })
	if _, ans := u.start(t, "huge", "huge.bin", 1001, nil); ans.Type != "error" || !strings.Contains(stanzaText(ans), "the limit is 1000") {
		t.Errorf("oversize offer answered %s", stanzaText(ans))
	}
	nosize := &ibbSender{t: t, c: u.ac, to: bobPhone, sid: "nosize", ibb: "ibb-nosize", block: 4096}
	ans := nosize.iq(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="nosize" initiator="alice@` + testDomain + `/client">` +
		`<content creator="initiator" name="f" senders="initiator"><description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file><name>n.bin</name></file></description>` +
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="4096" sid="ibb-nosize"/></content></jingle>`)
	if ans.Type != "error" || !strings.Contains(stanzaText(ans), "size") {
		t.Errorf("sizeless offer answered %s", stanzaText(ans))
	}
	s1, a1 := u.start(t, "one", "one.bin", 10, nil)
	s2, a2 := u.start(t, "two", "two.bin", 10, nil)
	if a1.Type != "result" || a2.Type != "result" {
		t.Fatalf("two offers answered %s, %s", stanzaText(a1), stanzaText(a2))
	}
	if _, a3 := u.start(t, "three", "three.bin", 10, nil); a3.Type != "error" || !strings.Contains(stanzaText(a3), "too many") {
		t.Errorf("a third upload answered %s", stanzaText(a3))
	}
	if es, _ := os.ReadDir(u.spool); len(es) != 2 {
		t.Errorf("spool holds %d entries, want 2", len(es))
	}
	// The first: no hash in the offer, a matching checksum after the
	// bytes; the second: a checksum that does not match.
	data := []byte("0123456789")
	sum := sha256.Sum256(data)
	bad := sha256.Sum256([]byte("9876543210"))
	checksum := func(s *ibbSender, h []byte) {
		st := s.iq(`<jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="` + s.sid + `"><checksum xmlns="urn:xmpp:jingle:apps:file-transfer:5" creator="initiator" name="f"><file>` +
			`<hash xmlns="urn:xmpp:hashes:2" algo="sha-256">` + base64.StdEncoding.EncodeToString(h) + `</hash></file></checksum></jingle>`)
		if st.Type != "result" {
			t.Errorf("checksum answered %s", stanzaText(st))
		}
	}
	s1.send(data)
	checksum(s1, sum[:])
	if term := s1.jingleFrom(jingle.ActionSessionTerminate); term.Reason == nil || term.Reason.Condition != jingle.ReasonSuccess {
		t.Errorf("terminate %+v", term.Reason)
	}
	s2.send(data)
	checksum(s2, bad[:])
	if term := s2.jingleFrom(jingle.ActionSessionTerminate); term.Reason == nil || term.Reason.Condition != jingle.ReasonSecurityError {
		t.Errorf("terminate %+v", term.Reason)
	}
	u.b.waitTransfer(t, "", "bob's one.bin", func(in TransferInfo) bool {
		return in.State == TransferCompleted && in.Files[0].Name == "one.bin"
	})
	u.spoolEmpty(t)
	for _, x := range u.b.Transfers() {
		if x.Files[0].Name != "one.bin" {
			t.Errorf("bob got %s", x.Files[0].Name)
		}
	}
}

// downClient is bob's plain client behind bob's front.
func startDownTest(t *testing.T) (*testGateway, *testGateway, *plainClient) {
	t.Helper()
	_, a, b, _ := filePair(t, nil, func(g *Gateway) {
		g.cfg.FileAccepter = func(TransferInfo) (string, bool) { return "", true }
	})
	fb := startFront(t, b)
	bc := fb.login(t, "bob@"+testDomain+"/client")
	return a, b, bc
}

// offerTo waits for the front's session-initiate to the client, answers
// it and returns it with the offered file.
func offerTo(t *testing.T, c *plainClient) (*Stanza, *jingle.Jingle, *filexfer.FileContent) {
	t.Helper()
	st := c.wait(t, "the offer", func(st *Stanza) bool {
		if st.Kind != "iq" || st.Type != "set" || st.Child(nsJingle, "jingle") == nil {
			return false
		}
		j, err := jingle.Parse(st.Child(nsJingle, "jingle").Raw)
		return err == nil && j.Action == jingle.ActionSessionInitiate
	})
	c.send(t, `<iq type="result" id="`+st.ID+`" to="`+st.From.String()+`"/>`)
	j, _ := jingle.Parse(st.Child(nsJingle, "jingle").Raw)
	fc, err := filexfer.ParseContent(&j.Contents[0])
	if err != nil || fc.Description == nil || fc.IBB == nil {
		t.Fatalf("offer %s: %v", stanzaText(st), err)
	}
	return st, j, fc
}

// The files go to bob's daemon's own resource: bob's client behind his
// front advertises the same device, and a transfer bound to the
// client's resource is answered from the daemon's (a known limit,
// docs/protocol.md §22.10.1).

// TestFrontDownload: a file alice's daemon sends bob encrypted, which
// bob's daemon stores, is offered to bob's plain client as Jingle over
// IBB from alice's full JID, with its name, size and sha-256; accepted,
// its bytes arrive block by block, then success.
func TestFrontDownload(t *testing.T) {
	a, _, bc := startDownTest(t)
	data := make([]byte, 100<<10)
	rand.Read(data)
	sum := sha256.Sum256(data)
	src := writeFile(t, t.TempDir(), "photo.jpg", data)
	if _, err := a.SendFiles(testCtx(t), jid.MustParse(bobPhone), []string{src}, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	st, j, fc := offerTo(t, bc)
	if st.From.String() != "alice@"+testDomain+"/laptop" || j.Initiator != st.From.String() {
		t.Errorf("offer from %s (initiator %s), want alice's full JID", st.From, j.Initiator)
	}
	file := fc.Description.File
	h, ok := filexfer.StrongestHash(file.Hashes)
	if file.Name != "photo.jpg" || file.Size != uint64(len(data)) || !ok || !bytes.Equal(h.Value, sum[:]) {
		t.Fatalf("offered %+v", file)
	}
	tr, _ := fc.IBB.Raw()
	acc, _ := (&jingle.Jingle{Action: jingle.ActionSessionAccept, SID: j.SID, Responder: "bob@" + testDomain + "/client",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: j.Contents[0].Name, Senders: jingle.SendersInitiator, Other: []jingle.Raw{tr}}}}).Marshal()
	bc.send(t, `<iq type="set" id="acc1" to="`+st.From.String()+`">`+string(acc)+`</iq>`)
	bc.wait(t, "the accept's result", func(s *Stanza) bool { return s.ID == "acc1" && s.Type == "result" })
	var got []byte
	for done := false; !done; {
		s := bc.wait(t, "IBB", func(s *Stanza) bool {
			return s.Kind == "iq" && s.Type == "set" && s.From.String() == st.From.String() &&
				(s.Child(filexfer.IBBNamespace, "open") != nil || s.Child(filexfer.IBBNamespace, "data") != nil || s.Child(filexfer.IBBNamespace, "close") != nil)
		})
		if d := s.Child(filexfer.IBBNamespace, "data"); d != nil {
			var el struct {
				Text string `xml:",chardata"`
			}
			xml.Unmarshal(d.Raw, &el)
			b, err := base64.StdEncoding.DecodeString(el.Text)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b...)
		}
		done = s.Child(filexfer.IBBNamespace, "close") != nil
		bc.send(t, `<iq type="result" id="`+s.ID+`" to="`+s.From.String()+`"/>`)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
	term := bc.wait(t, "the terminate", func(s *Stanza) bool {
		if s.Kind != "iq" || s.Child(nsJingle, "jingle") == nil {
			return false
		}
		j2, err := jingle.Parse(s.Child(nsJingle, "jingle").Raw)
		return err == nil && j2.SID == j.SID && j2.Action == jingle.ActionSessionTerminate
	})
	j2, _ := jingle.Parse(term.Child(nsJingle, "jingle").Raw)
	if j2.Reason == nil || j2.Reason.Condition != jingle.ReasonSuccess {
		t.Errorf("terminate %+v", j2.Reason)
	}
}

// TestFrontDownloadDeclined: the client declines the offer; nothing more
// comes in that session, and a late IBB stanza for it is answered here.
func TestFrontDownloadDeclined(t *testing.T) {
	a, _, bc := startDownTest(t)
	src := writeFile(t, t.TempDir(), "no.txt", []byte("not wanted"))
	if _, err := a.SendFiles(testCtx(t), jid.MustParse(bobPhone), []string{src}, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	st, j, fc := offerTo(t, bc)
	bc.send(t, `<iq type="set" id="dec1" to="`+st.From.String()+`"><jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="`+j.SID+`"><reason><decline/></reason></jingle></iq>`)
	bc.wait(t, "the decline's result", func(s *Stanza) bool { return s.ID == "dec1" && s.Type == "result" })
	bc.send(t, `<iq type="set" id="late1" to="`+st.From.String()+`"><close xmlns="http://jabber.org/protocol/ibb" sid="`+fc.IBB.SID+`"/></iq>`)
	if s := bc.wait(t, "the late close's answer", func(s *Stanza) bool { return s.ID == "late1" }); s.Type != "error" {
		t.Errorf("late close answered %s", stanzaText(s))
	}
	for _, s := range bc.seen {
		if s.Child(filexfer.IBBNamespace, "open") != nil {
			t.Errorf("the front opened a stream after the decline: %s", stanzaText(s))
		}
	}
}

// TestFrontUploadDeclined: the client is told success once the gateway
// holds the file (store and forward); bob declining the encrypted offer
// is told to the client afterwards, and the spooled file is removed.
func TestFrontUploadDeclined(t *testing.T) {
	u := startUpTestWith(t, false, 0, nil, false)
	data := []byte("a file bob does not want")
	sum := sha256.Sum256(data)
	s, _ := u.start(t, "decl", "unwanted.txt", len(data), sum[:])
	s.send(data)
	if term := s.jingleFrom(jingle.ActionSessionTerminate); term.Reason == nil || term.Reason.Condition != jingle.ReasonSuccess {
		t.Fatalf("terminate %+v", term.Reason)
	}
	u.ac.wait(t, "the held notice", isNotice("offered it to bob@"+testDomain))
	in := u.b.waitTransfer(t, "", "bob's pending offer", inState(TransferPending))
	if in.Files[0].Name != "unwanted.txt" || in.Files[0].Size != uint64(len(data)) {
		t.Errorf("bob was offered %+v", in.Files)
	}
	if es, _ := os.ReadDir(u.spool); len(es) != 1 {
		t.Errorf("spool holds %d entries while the offer waits, want 1", len(es))
	}
	if err := u.b.DeclineTransfer(testCtx(t), in.ID); err != nil {
		t.Fatal(err)
	}
	u.ac.wait(t, "the decline notice", isNotice("declined the file \"unwanted.txt\""))
	u.spoolEmpty(t)
}

// TestFrontUploadPolicyRefuses: a rule that refuses files to bob refuses
// the client's offer before anything is spooled, with the rule's
// message, and alerts.
func TestFrontUploadPolicyRefuses(t *testing.T) {
	pol := compilePolicy(t, `
[[rule]]
name = "no-files-to-bob"
kind = "file-transfer"
peer = "bob@`+testDomain+`"
action = "refuse"
message = "No files to bob from here."
`)
	u := startUpTest(t, false, func(g *Gateway) { g.policy = pol })
	_, ans := u.start(t, "pol", "upfail-pol.txt", 5, nil)
	if ans.Type != "error" || !strings.Contains(stanzaText(ans), "No files to bob from here.") {
		t.Fatalf("offer answered %s", stanzaText(ans))
	}
	u.ac.wait(t, "the alert", isAlertFrom("No files to bob from here."))
	if es, _ := os.ReadDir(u.spool); len(es) != 0 {
		t.Errorf("spooled %v", es)
	}
	u.noneOnWire(t, "upfail-pol", nil)
}

// TestFrontUploadStaleSpool: the spool directories an earlier run left
// in the daemon's spool directory are removed when the front is made;
// nothing else there is touched.
func TestFrontUploadStaleSpool(t *testing.T) {
	spool := t.TempDir()
	stale := filepath.Join(spool, spoolPrefix+"crashed")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, stale, "half.bin", []byte("half a file"))
	other := writeFile(t, spool, "not-ours.txt", []byte("kept"))
	_, a, _ := pairWith(t, func(g *Gateway) { g.cfg.FrontSpoolDir = spool })
	startFront(t, a)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale spool directory is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file was removed: %v", err)
	}
}

// TestFrontUploadSOCKS5FallsBackToIBB: a client's offer over SOCKS5 (a
// direct candidate and a proxy one) is accepted with no candidate of the
// front's and none of the client's used: both sides report
// candidate-error, the client replaces the transport with IBB
// (XEP-0260 §2.4), and the file reaches bob encrypted. Nothing of it
// crosses the server.
func TestFrontUploadSOCKS5FallsBackToIBB(t *testing.T) {
	u := startUpTest(t, false, nil)
	data := bytes.Repeat([]byte("socks5 fallback "), 700)
	sum := sha256.Sum256(data)
	const name = "s5b-fallback.bin"
	s := &ibbSender{t: t, c: u.ac, to: bobPhone, sid: "s5b1", ibb: "ibb-after-s5b", block: 4096}
	ans := s.iq(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s5b1" initiator="alice@` + testDomain + `/client">` +
		`<content creator="initiator" name="f" senders="initiator"><description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file>` +
		`<name>` + name + `</name><size>` + strconv.Itoa(len(data)) + `</size><hash xmlns="urn:xmpp:hashes:2" algo="sha-256">` + base64.StdEncoding.EncodeToString(sum[:]) + `</hash></file></description>` +
		`<transport xmlns="urn:xmpp:jingle:transports:s5b:1" sid="socks-sid" mode="tcp">` +
		`<candidate cid="c1" host="127.0.0.1" port="45678" jid="alice@` + testDomain + `/client" priority="8257536" type="direct"/>` +
		`<candidate cid="c2" host="proxy.` + testDomain + `" port="7777" jid="proxy.` + testDomain + `" priority="655360" type="proxy"/>` +
		`</transport></content></jingle>`)
	if ans.Type != "result" {
		t.Fatalf("offer %s", stanzaText(ans))
	}
	acc := s.jingleFrom(jingle.ActionSessionAccept)
	fc, err := filexfer.ParseContent(&acc.Contents[0])
	if err != nil || fc.S5B == nil || len(fc.S5B.Candidates) != 0 || fc.S5B.SID != "socks-sid" {
		t.Fatalf("accept %+v: %v", fc, err)
	}
	info := s.jingleFrom(jingle.ActionTransportInfo)
	if fc, err := filexfer.ParseContent(&info.Contents[0]); err != nil || fc.S5B == nil || !fc.S5B.CandidateError {
		t.Fatalf("the front's transport-info %+v: %v", fc, err)
	}
	if st := s.iq(`<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s5b1"><content creator="initiator" name="f">` +
		`<transport xmlns="urn:xmpp:jingle:transports:s5b:1" sid="socks-sid"><candidate-error/></transport></content></jingle>`); st.Type != "result" {
		t.Fatalf("candidate-error answered %s", stanzaText(st))
	}
	if st := s.iq(`<jingle xmlns="urn:xmpp:jingle:1" action="transport-replace" sid="s5b1"><content creator="initiator" name="f">` +
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="4096" sid="ibb-after-s5b"/></content></jingle>`); st.Type != "result" {
		t.Fatalf("transport-replace answered %s", stanzaText(st))
	}
	ta := s.jingleFrom(jingle.ActionTransportAccept)
	if fc, err := filexfer.ParseContent(&ta.Contents[0]); err != nil || fc.IBB == nil || fc.IBB.SID != "ibb-after-s5b" {
		t.Fatalf("transport-accept %+v: %v", fc, err)
	}
	s.send(data)
	if term := s.jingleFrom(jingle.ActionSessionTerminate); term.Reason == nil || term.Reason.Condition != jingle.ReasonSuccess {
		t.Fatalf("terminate %+v", term.Reason)
	}
	got := u.b.waitTransfer(t, "", "bob's file", func(in TransferInfo) bool {
		return in.State == TransferCompleted && in.Files[0].Name == name
	})
	if b, err := os.ReadFile(got.Files[0].Path); err != nil || !bytes.Equal(b, data) {
		t.Errorf("bob's file: %v", err)
	}
	u.spoolEmpty(t)
	u.noneOnWire(t, name, data) // no SOCKS5 transport either
}

// TestFrontDownloadClientWithoutJingle: a client that answers the offer
// with an error (it has no XEP-0234) is told in a notice where the file
// is; nothing more is sent to it for that file.
func TestFrontDownloadClientWithoutJingle(t *testing.T) {
	a, _, bc := startDownTest(t)
	src := writeFile(t, t.TempDir(), "for-a-plain-client.txt", []byte("hello"))
	if _, err := a.SendFiles(testCtx(t), jid.MustParse(bobPhone), []string{src}, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	st := bc.wait(t, "the offer", func(st *Stanza) bool {
		return st.Kind == "iq" && st.Type == "set" && st.Child(nsJingle, "jingle") != nil
	})
	bc.send(t, `<iq type="error" id="`+st.ID+`" to="`+st.From.String()+`"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`)
	n := bc.wait(t, "the notice", func(s *Stanza) bool {
		return s.Kind == "message" && s.From.String() == "bob@"+testDomain+"/"+FrontAlertResource && strings.Contains(body(s), "for-a-plain-client.txt")
	})
	if !strings.Contains(body(n), "does not take Jingle file offers") || !strings.Contains(body(n), "download directory") {
		t.Errorf("notice %q", body(n))
	}
}
