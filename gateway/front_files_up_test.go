package gateway

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	t.Helper()
	spool := filepath.Join(t.TempDir(), "spool")
	var bDir string
	srv, a, b, _ := filePairWith(t, real, withSetup(func(g *Gateway) { g.cfg.FrontSpoolDir = spool }, aliceSetup), func(g *Gateway) {
		bDir = g.cfg.DownloadDir
		g.cfg.FileAccepter = func(TransferInfo) (string, bool) { return "", true }
	})
	wire := recordWire(srv)
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
		if strings.Contains(raw, name) || strings.Contains(raw, filexfer.IBBNamespace) || strings.Contains(raw, filexfer.NSFileTransfer) {
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
