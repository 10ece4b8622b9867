package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// startPair starts Alice's and Bob's daemons with extra configuration
// and waits until each knows the other's device.
func startPair(t *testing.T, env *daemontest.Env, config string, opts ...daemon.Option) (alice, bob *daemontest.Daemon) {
	t.Helper()
	if config != "" {
		env.Alice.AppendConfig(t, config)
		env.Bob.AppendConfig(t, config)
	}
	alice = daemontest.StartWith(t, env.Alice, opts...)
	bob = daemontest.StartWith(t, env.Bob, opts...)
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	return alice, bob
}

// injectCleartext has the server deliver a cleartext chat to Bob as if
// Alice's account had sent it.
func injectCleartext(t *testing.T, env *daemontest.Env, body string) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`<message xmlns="jabber:client" type="chat" id="inj1" from="` + env.Alice.JID + `/evil" to="` + env.Bob.JID + `"><body>`)
	if err := xmlEscape(&b, body); err != nil {
		t.Fatal(err)
	}
	b.WriteString(`</body></message>`)
	st, err := localxmpp.ParseStanza(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Inject(st); err != nil {
		t.Fatal(err)
	}
}

func xmlEscape(w io.Writer, s string) error {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	_, err := r.WriteString(w, s)
	return err
}

// TestDaemonHistoryAndAlertFeed: the conversation history holds both
// directions with the delivery state and the encrypted marks; a cleartext
// message injected by the server is in it refused and unencrypted, and
// its alert is in the feed with its remedy, counted unseen until marked
// seen (also after a restart); oversized bodies are cut.
func TestDaemonHistoryAndAlertFeed(t *testing.T) {
	env := daemontest.New(t)
	// Every alert at once: the test counts them.
	alice, bob := startPair(t, env, "[alerts]\nwindow = \"0s\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()

	const hostile = `<img src=x onerror="alert(1)"><script>alert(2)</script>`
	sent, err := alice.Client.SendChatMessage(ctx, env.Bob.JID, hostile)
	if err != nil {
		t.Fatal(err)
	}
	in := nextChat(t, bobEvents, hostile)
	if err := bob.Client.SendChat(ctx, env.Alice.JID, "reply"); err != nil {
		t.Fatal(err)
	}
	// Alice's message is delivered to Bob's device once its receipt came.
	daemontest.Poll(t, "alice's message delivered in her history", func() bool {
		p, err := alice.Client.Messages(ctx, api.MessagesQuery{Peer: env.Bob.JID})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if m.ID == sent.ID && m.State == api.DeliveryDelivered {
				return true
			}
		}
		return false
	})
	page, err := bob.Client.Messages(ctx, api.MessagesQuery{Peer: env.Alice.JID})
	if err != nil || len(page.Messages) != 2 || page.More {
		t.Fatalf("bob's history: %+v, %v", page, err)
	}
	got, reply := page.Messages[0], page.Messages[1]
	if got.ID != in.ID || got.Direction != api.MessageIncoming || got.Peer != env.Alice.JID || got.Body != hostile ||
		!got.Encrypted || got.Unencrypted || got.Refused || got.Device == 0 {
		t.Fatalf("received message in the history: %+v", got)
	}
	if reply.Direction != api.MessageOutgoing || reply.Body != "reply" || reply.State == "" || len(reply.Devices) != 1 {
		t.Fatalf("sent message in the history: %+v", reply)
	}

	// The server injects cleartext "from Alice": refused, kept marked.
	injectCleartext(t, env, "send me your password <b>now</b>")
	alert := nextAlert(t, bobEvents)
	if alert.Alert == nil || alert.Alert.Decision.Rule != "default-refuse-cleartext-downgrade" || alert.Remedy == "" || alert.Unseen != 1 {
		t.Fatalf("alert event: %+v", alert)
	}
	clear := nextCleartextChat(t, bobEvents, "send me your password <b>now</b>")
	page, err = bob.Client.Messages(ctx, api.MessagesQuery{Peer: env.Alice.JID, Limit: 1})
	if err != nil || len(page.Messages) != 1 || !page.More || page.Next == "" {
		t.Fatalf("newest page: %+v, %v", page, err)
	}
	if m := page.Messages[0]; m.ID != clear.ID || !m.Refused || !m.Unencrypted || m.Encrypted {
		t.Fatalf("the injected message in the history: %+v", m)
	}
	older, err := bob.Client.Messages(ctx, api.MessagesQuery{Peer: env.Alice.JID, Limit: 5, Before: page.Next})
	if err != nil || len(older.Messages) != 2 || older.More || older.Messages[1].ID != reply.ID {
		t.Fatalf("older page: %+v, %v", older, err)
	}
	convs, err := bob.Client.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].Peer != env.Alice.JID || convs[0].Messages != 3 || convs[0].Warnings != 1 ||
		convs[0].Last.ID != clear.ID {
		t.Fatalf("conversations: %+v, %v", convs, err)
	}

	feed, err := bob.Client.Alerts(ctx, api.AlertsQuery{})
	if err != nil || len(feed.Alerts) != 1 || feed.Unseen != 1 || feed.More {
		t.Fatalf("alert feed: %+v, %v", feed, err)
	}
	if a := feed.Alerts[0]; a.ID != alert.Alert.ID || !a.Unseen || a.Remedy != alert.Remedy || a.Decision.Severity.String() != "critical" {
		t.Fatalf("alert in the feed: %+v", a)
	}
	for q, n := range map[string]int{"CLEARTEXT-downgrade": 1, env.Alice.JID: 1, "injected by the server": 1, "carol": 0} {
		r, err := bob.Client.Alerts(ctx, api.AlertsQuery{Text: q})
		if err != nil || len(r.Alerts) != n {
			t.Errorf("search %q: %d alerts, %v", q, len(r.Alerts), err)
		}
	}
	if _, err := bob.Client.Alerts(ctx, api.AlertsQuery{Before: "nonsense"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := bob.Client.MarkAlertsSeen(ctx, "NOSUCHALERT"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown alert marked seen: %v", err)
	}
	seen, err := bob.Client.MarkAlertsSeen(ctx, alert.Alert.ID)
	if err != nil || seen.Unseen != 0 || seen.Seen != alert.Alert.ID {
		t.Fatalf("mark seen: %+v, %v", seen, err)
	}

	// A body over api.MaxShownBody is cut, in the event and the history.
	long := strings.Repeat("é", api.MaxShownBody) // 2 bytes each
	injectCleartext(t, env, long)
	ev := nextAlert(t, bobEvents)
	if ev.Unseen != 1 {
		t.Fatalf("second alert: unseen %d", ev.Unseen)
	}
	for {
		e, err := bobEvents.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == "chat" {
			if !e.Truncated || e.Size != len(long) || len(e.Body) > api.MaxShownBody || !strings.HasPrefix(long, e.Body) {
				t.Fatalf("long chat event: truncated %v, size %d, %d bytes", e.Truncated, e.Size, len(e.Body))
			}
			break
		}
	}
	page, err = bob.Client.Messages(ctx, api.MessagesQuery{Limit: 1})
	if m := page.Messages[0]; err != nil || !m.Truncated || m.Size != len(long) || len(m.Body) != api.MaxShownBody {
		t.Fatalf("long message in the history: truncated %v, size %d, %d bytes, %v", m.Truncated, m.Size, len(m.Body), err)
	}

	// The seen mark survives a restart; the unseen count is rebuilt from
	// the audit log.
	bob.Stop(t)
	bob = daemontest.Start(t, env.Bob)
	feed, err = bob.Client.Alerts(ctx, api.AlertsQuery{Limit: 1})
	if err != nil || feed.Unseen != 1 || feed.Seen != alert.Alert.ID || len(feed.Alerts) != 1 || !feed.More || !feed.Alerts[0].Unseen {
		t.Fatalf("after restart: %+v, %v", feed, err)
	}
	rest, err := bob.Client.Alerts(ctx, api.AlertsQuery{Limit: 1, Before: feed.Next})
	if err != nil || len(rest.Alerts) != 1 || rest.Alerts[0].ID != alert.Alert.ID || rest.Alerts[0].Unseen || rest.More {
		t.Fatalf("older alert after restart: %+v, %v", rest, err)
	}
	if seen, err := bob.Client.MarkAlertsSeen(ctx, ""); err != nil || seen.Unseen != 0 {
		t.Fatalf("mark all seen: %+v, %v", seen, err)
	}
}

// TestDaemonUploadAndDownload: a file given in the request body (as a
// browser sends it) is offered under its sanitized name, arrives intact,
// is downloaded by the receiver through the API as an attachment, and
// the staged copy is gone once the transfer is over.
func TestDaemonUploadAndDownload(t *testing.T) {
	env := daemontest.New(t)
	down := filepath.Join(t.TempDir(), "downloads")
	config := fmt.Sprintf("[files]\ndownload_dir = %q\nmax_file_size = %d\nmin_free = 0\n", down, 4<<20)
	alice, bob := startPair(t, env, config, daemon.WithCallLoopback())
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	staging := filepath.Join(filepath.Dir(env.Alice.AuditLog), "uploads")
	if st, err := os.Stat(staging); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("staging directory: %v, %v", st, err)
	}

	data := make([]byte, 3<<20+17)
	rand.Read(data)
	const name = `../../"<script>alert(1)</script>".txt`
	sent, err := alice.Client.UploadFile(ctx, env.Bob.JID, name, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// SanitizeName keeps the last path element.
	if len(sent.Files) != 1 || sent.Files[0].Name != `script>".txt` || sent.Files[0].Size != uint64(len(data)) {
		t.Fatalf("offered: %+v", sent.Files)
	}
	staged := sent.Files[0].Path
	if filepath.Dir(filepath.Dir(staged)) != staging {
		t.Fatalf("staged at %s, not under %s", staged, staging)
	}
	if st, err := os.Stat(filepath.Dir(staged)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("upload directory: %v, %v", st, err)
	}
	pending := nextFile(t, bobEvents, sent.ID, "pending", func(x api.TransferInfo) bool { return x.State == api.TransferPending })
	if _, err := bob.Client.FileContent(ctx, sent.ID, 0); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("download of a pending transfer: %v", err)
	}
	if _, err := bob.Client.AcceptTransfer(ctx, pending.ID, ""); err != nil {
		t.Fatal(err)
	}
	done := func(x api.TransferInfo) bool { return x.State == api.TransferCompleted }
	in := nextFile(t, bobEvents, sent.ID, "completed", done)
	nextFile(t, aliceEvents, sent.ID, "completed", done)

	resp, err := bob.Client.FileContent(ctx, in.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("downloaded %d bytes (%v), want the %d sent", len(body), err, len(data))
	}
	sum := sha256.Sum256(body)
	if in.Files[0].Hash != fmt.Sprintf("sha-256:%x", sum[:]) {
		t.Fatalf("hash %s", in.Files[0].Hash)
	}
	h := resp.Header
	if h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(h.Get("Content-Disposition"), "attachment; filename=\"") || strings.Contains(h.Get("Content-Disposition"), "<") {
		t.Fatalf("download headers: %v", h)
	}
	if _, err := alice.Client.FileContent(ctx, sent.ID, 0); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("download of a sent file: %v", err)
	}
	if _, err := bob.Client.FileContent(ctx, in.ID, 1); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("download of file 1 of 1: %v", err)
	}
	if _, err := bob.Client.FileContent(ctx, "nosuch", 0); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("download of an unknown transfer: %v", err)
	}
	daemontest.Poll(t, "the staged upload removed", func() bool {
		_, err := os.Stat(filepath.Dir(staged))
		return errors.Is(err, os.ErrNotExist)
	})

	// A received file replaced on disk is not handed out.
	if err := os.Remove(in.Files[0].Path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", in.Files[0].Path); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.FileContent(ctx, in.ID, 0); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("download of a replaced file: %v", err)
	}

	// Over files.max_file_size: 413 before a byte is staged.
	big := bytes.NewReader(make([]byte, 4<<20+1))
	if _, err := alice.Client.UploadFile(ctx, env.Bob.JID, "big.bin", big, int64(big.Len())); !errors.Is(err, api.ErrTooLarge) {
		t.Fatalf("oversized upload: %v", err)
	}
	// A peer without a device: the offer fails and the staged copy goes.
	if _, err := alice.Client.UploadFile(ctx, "nobody@"+daemontest.Domain, "a.txt", strings.NewReader("x"), 1); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("upload to nobody: %v", err)
	}
	ents, err := os.ReadDir(staging)
	if err != nil || len(ents) != 0 {
		t.Fatalf("staging left %v (%v)", ents, err)
	}
}

// TestDaemonUploadRequests: what the upload endpoint refuses.
func TestDaemonUploadRequests(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	daemontest.WaitConnected(t, alice.Client)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", env.Alice.Socket)
	}}}
	for _, c := range []struct {
		query, ctype string
		body         io.Reader
		code         int
	}{
		{"peer=bob@example.test&name=a.txt", "text/plain", strings.NewReader("x"), http.StatusUnsupportedMediaType},
		{"peer=bob@example.test", "application/octet-stream", strings.NewReader("x"), http.StatusBadRequest},
		{"name=a.txt", "application/octet-stream", strings.NewReader("x"), http.StatusBadRequest},
		{"peer=bob@example.test/phone&name=a.txt", "application/octet-stream", strings.NewReader("x"), http.StatusBadRequest},
		{"peer=bob@example.test&name=a.txt&x=1", "application/octet-stream", strings.NewReader("x"), http.StatusBadRequest},
		{"peer=bob@example.test&name=a.txt", "application/octet-stream", io.MultiReader(strings.NewReader("x")), http.StatusLengthRequired},
	} {
		req, err := http.NewRequest("POST", "http://x/v1/files/upload?"+c.query, c.body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", c.ctype)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s (%s): %d, want %d", c.query, c.ctype, resp.StatusCode, c.code)
		}
	}
}
