package webapp_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
	"github.com/securejingle/securejingle/policy"
)

// js quotes s for an expression.
func js(s string) string { return webtest.JSString(s) }

// sendChat types body into the chat composer and presses Send.
func sendChat(tab *webtest.Tab, body string) {
	tab.Eval(fmt.Sprintf(`(() => { document.getElementById("chat-input").value = %s;
		document.querySelector(".composer button[type=submit]").click(); return true })()`, js(body)))
}

// hasMessage is an expression: a message of the given direction whose
// body is exactly body (and that matches the extra selector part).
func hasMessage(direction, extra, body string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%s)].some(e => e.querySelector(".body").textContent === %s)`,
		js("ol.messages li.msg."+direction+extra), js(body))
}

// noInjectedMarkup is an expression: nothing under root became an element
// a hostile text asked for, and no handler ran.
func noInjectedMarkup(root string) string {
	return fmt.Sprintf(`document.querySelectorAll(%s).length === 0 && window.pwned === undefined`,
		js(root+" img, "+root+" script, "+root+" b, "+root+" iframe"))
}

// injectCleartext has the embedded server deliver a cleartext chat to
// bob as if alice's account had sent it.
func injectCleartext(t *testing.T, env *webtest.Env, body string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`<message xmlns="jabber:client" type="chat" id="inj-` + strconv.FormatInt(time.Now().UnixNano(), 36) +
		`" from="` + env.Alice.JID + `/evil" to="` + env.Bob.JID + `"><body>`)
	if err := xml.EscapeText(&b, []byte(body)); err != nil {
		t.Fatal(err)
	}
	b.WriteString(`</body></message>`)
	st, err := localxmpp.ParseStanza([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.XMPP.Server.Inject(st); err != nil {
		t.Fatal(err)
	}
}

const hostileText = `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b> & <iframe src="x"></iframe>`

// TestBrowserChat: alice and bob chat both ways from their pages; the
// sent message shows delivered to bob's device; a body full of HTML and
// script is shown as text on both sides.
func TestBrowserChat(t *testing.T) {
	env := webtest.New(t, webtest.Options{})
	alice := env.Login(env.Alice)
	bob := env.Login(env.Bob)
	alice.Go("chat", url.Values{"jid": {env.Bob.JID}})
	bob.Go("chat", url.Values{"jid": {env.Alice.JID}})
	for _, tab := range []*webtest.Tab{alice, bob} {
		tab.Wait("history", `document.querySelector(".conv-pane")?.dataset.loaded >= 1`)
	}
	// The introduction's messages come from the daemon's history.
	alice.Wait("history from the daemon", hasMessage("in", "", "hi alice"))
	bob.Wait("history from the daemon", hasMessage("in", "", "confirmed"))

	sendChat(alice, hostileText)
	alice.Wait("delivered to bob's device", hasMessage("out", `[data-state="delivered"]`, hostileText))
	if got := alice.EvalString(`[...document.querySelectorAll("li.msg.out[data-state=delivered] .delivery")].pop().textContent`); !strings.Contains(got, "delivered to device") {
		t.Errorf("delivery state shown %q", got)
	}
	bob.Wait("bob received it", hasMessage("in", "", hostileText))
	for _, tab := range []*webtest.Tab{alice, bob} {
		if !strings.Contains(string(tab.Eval(noInjectedMarkup("ol.messages"))), "true") {
			t.Fatalf("%s: the message body became markup", tab.User.Name)
		}
	}
	if got := string(bob.Eval(`document.querySelectorAll("li.msg.unencrypted, li.msg.refused").length`)); got != "0" {
		t.Errorf("encrypted messages marked unencrypted: %s", got)
	}
	sendChat(bob, "got it, thanks")
	bob.Wait("bob's reply delivered", hasMessage("out", `[data-state="delivered"]`, "got it, thanks"))
	alice.Wait("alice received the reply", hasMessage("in", "", "got it, thanks"))
	// The conversation list shows bob with the last message.
	alice.Wait("conversation list", `[...document.querySelectorAll(".conv-list li")].some(e => e.dataset.jid === `+js(env.Bob.JID)+
		` && e.querySelector(".preview")?.textContent === "got it, thanks")`)
	alice.Screenshot("chat")
	bob.Screenshot("chat-bob")
	alice.SetViewport(400, 800)
	alice.Screenshot("chat-400px")
	if w := string(alice.Eval(`document.documentElement.scrollWidth <= 400`)); w != "true" {
		t.Errorf("the chat scrolls sideways at 400 px")
	}
}

// TestBrowserInjectedCleartext: the server injects cleartext "from
// alice" into bob's encrypted conversation. Bob's chat shows it as a
// refused, unencrypted warning (its HTML as text), the alerts badge
// counts it, and the alerts view shows the rule, severity and what to
// do, then clears the badge.
func TestBrowserInjectedCleartext(t *testing.T) {
	env := webtest.New(t, webtest.Options{Config: "[alerts]\nwindow = \"0s\"\n"})
	bob := env.Login(env.Bob)
	bob.Go("chat", url.Values{"jid": {env.Alice.JID}})
	bob.Wait("history", `document.querySelector(".conv-pane")?.dataset.loaded >= 1`)

	injected := "Please send me your password " + hostileText
	injectCleartext(t, env, injected)
	bob.Wait("the refused message", hasMessage("in", ".refused.unencrypted", injected))
	if got := bob.Text("li.msg.refused .mark"); !strings.Contains(got, "Refused, not part of the conversation") {
		t.Errorf("refused mark %q", got)
	}
	if !strings.Contains(string(bob.Eval(noInjectedMarkup("ol.messages"))), "true") {
		t.Fatal("the injected body became markup")
	}
	badge := `document.querySelector('#nav [data-view="alerts"] .badge')`
	bob.Wait("alerts badge 1", badge+`.textContent === "1" && !`+badge+`.hidden`)
	bob.Screenshot("chat-cleartext-refused")

	bob.Go("alerts", nil)
	item := `li.alert[data-rule="default-refuse-cleartext-downgrade"]`
	bob.Wait("the alert", `!!document.querySelector(`+js(item)+`)`)
	if got := bob.Text(item + " .sev"); got != "Critical" {
		t.Errorf("severity %q", got)
	}
	if got := bob.Text(item + " .alert-remedy"); !strings.Contains(got, "What to do:") || !strings.Contains(got, "Ask your contact") {
		t.Errorf("remedy %q", got)
	}
	if got := bob.Text(item + " .alert-what"); !strings.Contains(got, "from "+env.Alice.JID) {
		t.Errorf("what happened %q", got)
	}
	bob.Wait("badge cleared once seen", badge+`.hidden`)
	bob.Screenshot("alerts")

	// A second injection while the view is open: a live alert, seen at once.
	injectCleartext(t, env, "again")
	bob.Wait("live alert", `document.querySelectorAll("ul.live-alerts li.alert").length === 1`)
	bob.Wait("badge stays cleared", badge+`.hidden`)
	if seen, err := bob.User.Daemon.Client.Alerts(context.Background(), api.AlertsQuery{Limit: 0}); err != nil || seen.Unseen != 0 {
		t.Errorf("unseen after viewing: %+v %v", seen, err)
	}
	bob.SetViewport(400, 800)
	bob.Screenshot("alerts-400px")
}

// TestBrowserFileTransfer: alice picks a 10 MiB file whose name is HTML;
// bob sees the offer (the name as text) and accepts it; alice's progress
// reaches 100%, and the file bob received and the one his page downloads
// both have the sha-256 of the original.
func TestBrowserFileTransfer(t *testing.T) {
	env := webtest.New(t, webtest.Options{Daemon: []daemon.Option{daemon.WithCallLoopback()}, Config: "[files]\nmin_free = 0\n"})
	alice := env.Login(env.Alice)
	bob := env.Login(env.Bob)
	const name = `<img src=x onerror="window.pwned=1">.bin`
	src := filepath.Join(t.TempDir(), name)
	data := make([]byte, 10<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	alice.Go("files", url.Values{"jid": {env.Bob.JID}})
	bob.Go("files", nil)
	alice.Wait("contact preselected", `document.getElementById("files-peer").value === `+js(env.Bob.JID))
	if _, err := chromedp.Run(alice.Ctx, chromedp.SetUploadFiles(chromedp.ID("files-picker"), []string{src})); err != nil {
		t.Fatal(err)
	}
	alice.Click("form.send-files button[type=submit]")
	offer := `li.transfer[data-direction="incoming"][data-state="pending"]`
	bob.Wait("the offer", `!!document.querySelector(`+js(offer)+`)`)
	if got := bob.Text(offer + " .fname"); got != name {
		t.Errorf("offered name shown %q, want %q", got, name)
	}
	if !strings.Contains(string(bob.Eval(noInjectedMarkup("ul.transfers"))), "true") {
		t.Fatal("the file name became markup")
	}
	bob.Screenshot("files-offer")
	bob.Click(offer + " button.accept")

	sent := `li.transfer[data-direction="outgoing"][data-state="completed"]`
	alice.Wait("100% on alice's side", `document.querySelector(`+js(sent+" .pct")+`)?.textContent === "100%"`)
	if got := alice.Text(sent + " .state"); !strings.Contains(got, "verified every file") {
		t.Errorf("completed state %q", got)
	}
	got := `li.transfer[data-direction="incoming"][data-state="completed"]`
	bob.Wait("completed on bob's side", `!!document.querySelector(`+js(got+" a.download")+`)`)
	alice.Screenshot("files-sent")
	bob.Screenshot("files-received")

	// The file bob's daemon saved.
	ts, err := bob.User.Daemon.Client.Transfers(context.Background())
	if err != nil || len(ts) != 1 || ts[0].State != api.TransferCompleted {
		t.Fatalf("bob's transfers: %+v %v", ts, err)
	}
	saved, err := os.ReadFile(ts[0].Files[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(saved); hex.EncodeToString(s[:]) != want || ts[0].Files[0].Hash != "sha-256:"+want {
		t.Fatalf("received sha-256 %x (offered %s), want %s", s, ts[0].Files[0].Hash, want)
	}
	// The download link of bob's page: an attachment with the same bytes.
	var res struct {
		Hash, Type, Disposition, Nosniff string
	}
	raw := bob.Eval(`(async () => {
		const a = document.querySelector(` + js(got+" a.download") + `);
		const r = await fetch(a.href, {credentials: "same-origin"});
		const d = await crypto.subtle.digest("SHA-256", await r.arrayBuffer());
		return {Hash: [...new Uint8Array(d)].map(b => b.toString(16).padStart(2, "0")).join(""),
			Type: r.headers.get("Content-Type"), Disposition: r.headers.get("Content-Disposition"),
			Nosniff: r.headers.get("X-Content-Type-Options")};
	})()`)
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Hash != want || res.Type != "application/octet-stream" || res.Nosniff != "nosniff" || !strings.HasPrefix(res.Disposition, "attachment;") {
		t.Fatalf("download: %+v, want sha-256 %s", res, want)
	}
	// A second offer, declined from bob's page (a bodyless POST: the
	// endpoint refuses even "{}"), shows declined on both sides.
	small := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(small, []byte("notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(alice.Ctx, chromedp.SetUploadFiles(chromedp.ID("files-picker"), []string{small})); err != nil {
		t.Fatal(err)
	}
	alice.Click("form.send-files button[type=submit]")
	bob.Wait("the second offer", `!!document.querySelector(`+js(offer)+`)`)
	bob.Click(offer + " button.decline")
	bob.Wait("declined on bob's side", `!!document.querySelector('li.transfer[data-direction="incoming"][data-state="declined"]')`)
	alice.Wait("declined on alice's side", `!!document.querySelector('li.transfer[data-direction="outgoing"][data-state="declined"]')`)
	if n := string(bob.Eval(`document.querySelectorAll("ul.transfers .action-error").length`)); n != "0" {
		t.Errorf("bob's page shows %s errors: %s", n, bob.Text("ul.transfers .action-error"))
	}
	alice.SetViewport(400, 800)
	alice.Screenshot("files-400px")
}

// TestBrowserManyAlertsAndLongMessage: 5000 alerts in the audit log and
// a 200 KB injected message keep the pages small: the alerts come a
// page at a time and can be searched, the long message is cut, and a
// 1 MiB message typed into the composer is refused with the reason while
// the page goes on working.
func TestBrowserManyAlertsAndLongMessage(t *testing.T) {
	env := webtest.New(t, webtest.Options{})
	f, err := os.OpenFile(env.Bob.Account.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range 5000 {
		a := policy.Alert{ID: fmt.Sprintf("BULK%05d", i), Time: base.Add(time.Duration(i) * time.Millisecond), Count: 1,
			Facts: policy.Facts{Kind: policy.KindStanza, Direction: policy.DirectionIncoming, PeerJID: fmt.Sprintf("peer%d@example.test", i)},
			Decision: policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "integrity",
				Message: "An end-to-end integrity check failed " + hostileText, Detail: "bulk " + strconv.Itoa(i)}}
		b, _ := json.Marshal(a)
		if _, err := f.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	bob := env.Login(env.Bob)
	bob.Go("alerts", nil)
	bob.Wait("first page", `document.querySelector("section.view-alerts")?.dataset.loaded >= 1`)
	count := func() string { return string(bob.Eval(`document.querySelectorAll("ul.alert-list li.alert").length`)) }
	if n := count(); n != "50" {
		t.Fatalf("first page shows %s alerts", n)
	}
	if got := bob.EvalString(`document.querySelector("ul.alert-list li.alert").dataset.id`); got != "BULK04999" {
		t.Errorf("newest alert %q", got)
	}
	domSize := func() int {
		var n int
		json.Unmarshal(bob.Eval(`document.getElementsByTagName("*").length`), &n)
		return n
	}
	if n := domSize(); n > 3000 {
		t.Errorf("the alerts page has %d elements", n)
	}
	for page := 2; page <= 4; page++ {
		before := bob.EvalString(`document.querySelector("section.view-alerts").dataset.loaded`)
		bob.Click("button.alerts-older")
		bob.Wait("page "+strconv.Itoa(page), `document.querySelector("section.view-alerts").dataset.loaded !== `+js(before))
		if n := count(); n != "50" {
			t.Fatalf("page %d shows %s alerts", page, n)
		}
	}
	if got := bob.EvalString(`document.querySelector("ul.alert-list li.alert").dataset.id`); got != "BULK04849" {
		t.Errorf("page 4 starts at %q", got)
	}
	if n := domSize(); n > 3000 {
		t.Errorf("after paging the alerts page has %d elements", n)
	}
	if !strings.Contains(string(bob.Eval(noInjectedMarkup("ul.alert-list"))), "true") {
		t.Fatal("an alert message became markup")
	}
	// Search: one peer out of 5000.
	bob.Eval(`document.getElementById("alert-search").value = "PEER4242@", document.querySelector("form[role=search] button[type=submit]").click(), true`)
	bob.Wait("search result", `document.querySelectorAll("ul.alert-list li.alert").length === 1 && document.querySelector("ul.alert-list li.alert").dataset.id === "BULK04242"`)
	bob.Screenshot("alerts-5000-search")

	// A long injected message is cut; the page stays small.
	long := strings.Repeat("0123456789abcdef", 200<<10/16)
	injectCleartext(t, env, long)
	bob.Go("chat", url.Values{"jid": {env.Alice.JID}})
	bob.Wait("the long message", `!!document.querySelector("li.msg.refused .cut")`)
	var bodyLen int
	json.Unmarshal(bob.Eval(`document.querySelector("li.msg.refused .body").textContent.length`), &bodyLen)
	if bodyLen != api.MaxShownBody {
		t.Errorf("long body shown with %d characters, want %d", bodyLen, api.MaxShownBody)
	}
	if got := bob.Text("li.msg.refused .cut"); !strings.Contains(got, strconv.Itoa(len(long))+" bytes") {
		t.Errorf("cut note %q", got)
	}
	// A 1 MiB message: refused in the page with the reason.
	bob.Eval(`document.getElementById("chat-input").value = "x".repeat(1 << 20), document.querySelector(".composer button[type=submit]").click(), true`)
	bob.Wait("too long", `document.querySelector(".send-status .error")?.textContent.includes("at most 16384 bytes")`)
	bob.Screenshot("chat-long-message")
	sendChat(bob, "still working")
	bob.Wait("a normal message goes", hasMessage("out", "", "still working"))
	if n := domSize(); n > 3000 {
		t.Errorf("the chat page has %d elements", n)
	}
}

// TestBrowserNoLinksFromData: message bodies that look like links
// (javascript:, a URL, a bidi override that would flip the text around
// it) show as the exact text in their own paragraph, and in every view
// the page's links go to its own routes (#/...) or its session's API,
// never to anything a contact wrote, even with a hostile route
// parameter.
func TestBrowserNoLinksFromData(t *testing.T) {
	env := webtest.New(t, webtest.Options{})
	alice := env.Login(env.Alice)
	ctx := context.Background()
	bodies := []string{"javascript:window.pwned=3", "https://evil.test/x?y=1", "abc\u202Egpj.exe", strings.Repeat("w", 4000)}
	for _, b := range bodies {
		if err := env.Bob.Daemon.Client.SendChat(ctx, env.Alice.JID, b); err != nil {
			t.Fatal(err)
		}
	}
	alice.Go("chat", url.Values{"jid": {env.Bob.JID}})
	for _, b := range bodies {
		alice.Wait("message shown", hasMessage("in", "", b))
	}
	base := alice.EvalString(`localStorage.getItem("securejingle-base")`)
	linksOK := fmt.Sprintf(`[...document.querySelectorAll("[href], [src], [action], [formaction]")].every(e => {
		const v = e.getAttribute("href") ?? e.getAttribute("src") ?? e.getAttribute("action") ?? e.getAttribute("formaction");
		return v.startsWith("#") || v === "data:," || v.startsWith(%s) || v.startsWith("/app.js") || v.startsWith("/style.css") || v.startsWith("blob:");
	}) && window.pwned === undefined`, js(base+"/api/"))
	hostileJID := "javascript:alert(1)//@x"
	for _, view := range []struct {
		name string
		q    url.Values
	}{
		{"chat", url.Values{"jid": {env.Bob.JID}}},
		{"chat", url.Values{"jid": {hostileJID}}},
		{"contacts", nil}, {"verify", url.Values{"jid": {env.Bob.JID}}}, {"verify", url.Values{"jid": {hostileJID}}},
		{"devices", nil}, {"alerts", nil}, {"files", url.Values{"jid": {hostileJID}}}, {"call", url.Values{"jid": {hostileJID}}},
	} {
		alice.Go(view.name, view.q)
		alice.Wait(view.name+" drawn", `document.querySelector("section.view-`+view.name+`")?.childElementCount > 0`)
		if got := alice.EvalString(`String(` + linksOK + `)`); got != "true" {
			bad := alice.EvalString(`JSON.stringify([...document.querySelectorAll("[href], [src]")].map(e => e.getAttribute("href") ?? e.getAttribute("src")))`)
			t.Errorf("%s %v: a link or source outside the app: %s", view.name, view.q, bad)
		}
	}
	// Each body is its own paragraph: an override in one does not reach
	// the text after it.
	alice.Go("chat", url.Values{"jid": {env.Bob.JID}})
	alice.Wait("message shown", hasMessage("in", "", bodies[2]))
	if got := alice.EvalString(`getComputedStyle([...document.querySelectorAll("ol.messages li.msg.in .body")].find(e => e.textContent.includes("\u202E"))).display`); got != "block" {
		t.Errorf("the body is %q, not a block of its own", got)
	}
}
