package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

var update = flag.Bool("update", false, "regenerate testdata/e2e")

// TestGenerateVectors writes testdata/e2e. It is the program that generates
// the vectors (make vectors). Randomness comes from a fixed seed, so a
// regeneration with the same Go version and the same protocol gives the
// same files; the clock is vectorTime.
func TestGenerateVectors(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate " + vectorDir)
	}
	cryptotest.SetGlobalRandom(t, 0x5eC0e)
	g := &vecGen{t: t}
	g.elementVectors()
	g.sessionVectors()

	names := map[string]bool{}
	for _, v := range g.out {
		if names[v.name] {
			t.Fatalf("duplicate case %s", v.name)
		}
		names[v.name] = true
	}
	if err := os.MkdirAll(vectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(g.out, func(a, b *vecOut) int { return strings.Compare(a.name, b.name) })
	for _, v := range g.out {
		if err := os.WriteFile(filepath.Join(vectorDir, v.name+".txt"), v.bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d vectors to %s", len(g.out), vectorDir)
}

// vecOut is one vector being written.
type vecOut struct {
	name   string
	fields []vecField
}

func (v *vecOut) add(key, value string) *vecOut {
	if strings.ContainsAny(value, "\r\n") {
		panic("vector value with a newline: " + key)
	}
	v.fields = append(v.fields, vecField{key, value})
	return v
}

func (v *vecOut) addB64(key string, value []byte) *vecOut {
	return v.add(key, b64.EncodeToString(value))
}

func (v *vecOut) bytes() []byte {
	var b bytes.Buffer
	for _, f := range v.fields {
		if f.value == "" {
			fmt.Fprintf(&b, "%s:\n", f.key)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", f.key, f.value)
		}
	}
	return b.Bytes()
}

type vecGen struct {
	t   *testing.T
	out []*vecOut
}

func (g *vecGen) vector(name, expect, desc string) *vecOut {
	if _, ok := vecClasses[expect]; !ok {
		g.t.Fatalf("%s: unknown class %q", name, expect)
	}
	v := (&vecOut{name: name}).add("case", name).add("expect", expect).add("description", desc)
	g.out = append(g.out, v)
	return v
}

// ---- element vectors ----

func (g *vecGen) element(name, kind, expect, desc string, input []byte) *vecOut {
	return g.vector(name, expect, desc).add("kind", kind).addB64("input", input)
}

func (g *vecGen) elementVectors() {
	t := g.t
	alice := g.newEngine("alice@example.org", vecEngineOpts{})
	bu := alice.e.Bundle()
	bx, err := MarshalBundleXML(bu)
	if err != nil {
		t.Fatal(err)
	}
	const owner = "alice@example.org"
	bundleXML := func(name, expect, desc string, data []byte) *vecOut {
		return g.element("bundle-xml-"+name, "bundle-xml", expect, desc, data).add("owner", owner)
	}
	// Edits of one attribute of the canonical XML.
	attr := func(name, val string) []byte {
		return vecReplaceAttr(t, bx, name, val)
	}
	bundleXML("valid", "success", "the bundle of a default engine (all four suites, a post-quantum and a classic prekey)", bx)
	small := g.newEngine("alice@example.org", vecEngineOpts{suites: []SuiteID{SuiteX25519ChaCha}})
	sx, _ := MarshalBundleXML(small.e.Bundle())
	bundleXML("classic-only", "success", "a bundle offering only the classic X25519 suite", sx)

	// Unknown suites are ignored, not fatal: a bundle signed with them
	// verifies.
	unk := *bu
	unk.Suites = []SuiteID{0x7777, SuiteXWingAES, SuiteX25519AES, 0xfffe}
	if err := unk.sign(alice.e.devKey); err != nil {
		t.Fatal(err)
	}
	ux, _ := MarshalBundleXML(&unk)
	bundleXML("unknown-suites", "success", "suite ids this implementation does not know (0x7777, 0xfffe) are kept and ignored", ux)
	unk2 := *bu
	unk2.Suites = []SuiteID{0x7777}
	unk2.Attestations = []Attestation{{Type: "future-mechanism", Data: []byte("opaque statement")}}
	if err := unk2.sign(alice.e.devKey); err != nil {
		t.Fatal(err)
	}
	ux2, _ := MarshalBundleXML(&unk2)
	bundleXML("unknown-suite-only", "success", "a bundle whose only suite is unknown, with an unknown attestation type: it verifies, no suite is usable", ux2)

	g.element("bundle-xml-owner-mismatch", "bundle-xml", "wrong owner", "a valid bundle of alice served as the bundle of mallory", bx).add("owner", "mallory@example.org")
	g.element("bundle-xml-owner-full-jid", "bundle-xml", "wrong owner", "the owner is given as a full JID", bx).add("owner", "alice@example.org/phone")
	g.element("bundle-xml-owner-other-domain", "bundle-xml", "wrong owner", "same localpart, other domain", bx).add("owner", "alice@example.com")

	sig := vecAttr(t, bx, "sig")
	bundleXML("bad-bundle-signature", "bad signature", "one bit of the bundle signature flipped", attr("sig", vecFlipB64(t, sig, 100)))
	pkSig := vecAttrN(t, bx, "sig", 1)
	bundleXML("bad-prekey-signature", "bad signature", "one bit of the first prekey signature flipped",
		bytes.Replace(bx, []byte(`sig="`+pkSig+`"`), []byte(`sig="`+vecFlipB64(t, pkSig, 7)+`"`), 1))
	mallory := g.newEngine("mallory@example.org", vecEngineOpts{})
	bundleXML("swapped-identity-key", "bad signature", "the identity key replaced by another valid key",
		attr("ik", b64.EncodeToString(mallory.e.Identity())))
	bundleXML("stripped-suites", "bad signature", "the post-quantum suites removed from the signed list (downgrade by the server)", attr("suites", "3 4"))
	bundleXML("changed-device", "bad signature", "the device id changed", attr("device", "1"))
	bundleXML("jid-changed", "bad signature", "the bundle's JID changed to the owner's case-variant; the signature covers the exact bytes",
		vecReplaceAttr(t, bx, "jid", "Alice@example.org"))

	ik := vecAttr(t, bx, "ik")
	bundleXML("truncated-base64", "malformed", "the identity key's base64 cut in half", attr("ik", ik[:len(ik)/2]))
	bundleXML("noncanonical-base64", "malformed", "the identity key's last base64 character has non-zero padding bits", attr("ik", vecNonCanonical(t, ik)))
	bundleXML("padded-base64", "malformed", "padded base64 where the protocol uses unpadded", attr("ik", base64.StdEncoding.EncodeToString(bu.Identity)))
	for _, name := range []string{"sig", "ik"} {
		v := vecAttr(t, bx, name)
		if u := strings.NewReplacer("+", "-", "/", "_").Replace(v); u != v {
			bundleXML("urlsafe-base64", "malformed", "URL-safe base64 alphabet in "+name, attr(name, u))
			break
		}
	}
	bundleXML("short-identity-key", "malformed", "a 31-byte identity key", attr("ik", b64.EncodeToString(bu.Identity[:31])))
	bundleXML("long-signature", "malformed", "a 65-byte bundle signature", attr("sig", b64.EncodeToString(append(vecB64(t, sig), 0))))
	bundleXML("duplicate-suites", "malformed", "a suite listed twice", attr("suites", "1 2 1"))
	bundleXML("suite-leading-zero", "malformed", "a suite id with a leading zero", attr("suites", "01 2 3 4"))
	bundleXML("suite-out-of-range", "malformed", "a suite id above 16 bits", attr("suites", "1 65536"))
	bundleXML("suite-double-space", "malformed", "two spaces between suite ids", attr("suites", "1  2"))
	bundleXML("empty-suites", "malformed", "an empty suite list", attr("suites", ""))
	bundleXML("jid-with-resource", "malformed", "the bundle JID is a full JID", attr("jid", "alice@example.org/phone"))
	bundleXML("wrong-namespace", "malformed", "the bundle element in another namespace",
		bytes.Replace(bx, []byte(NS), []byte("urn:x-securejingle:9"), 1))
	bundleXML("trailing-element", "malformed", "a second element after the bundle", append(bytes.Clone(bx), "<x/>"...))
	bundleXML("trailing-text", "malformed", "text after the bundle", append(bytes.Clone(bx), "junk"...))
	bundleXML("unclosed", "malformed", "the closing tag is missing", bytes.TrimSuffix(bx, []byte("</bundle>")))
	noPk := *bu
	noPk.Prekeys = nil
	npx, _ := xml.Marshal(&noPk)
	bundleXML("no-prekeys", "malformed", "a bundle without prekeys", npx)
	dupPk := *bu
	dupPk.Prekeys = slices.Clone(bu.Prekeys)
	dupPk.Prekeys[1].ID = dupPk.Prekeys[0].ID
	dpx, _ := xml.Marshal(&dupPk)
	bundleXML("duplicate-prekey-id", "malformed", "two prekeys with one id", dpx)
	bundleXML("prekey-expiry-zero", "malformed", "a prekey expiring at the epoch",
		vecReplaceAttr(t, bx, "expires", "0"))
	badAtt := *bu
	badAtt.Attestations = []Attestation{{Type: "Self!", Data: []byte("x")}}
	bax, _ := xml.Marshal(&badAtt)
	bundleXML("bad-attestation-type", "malformed", "an attestation type that is not a token", bax)

	// Binary form.
	raw := bu.Marshal()
	bin := func(name, expect, desc string, data []byte) *vecOut {
		return g.element("bundle-bin-"+name, "bundle", expect, desc, data)
	}
	bin("valid", "success", "the canonical binary bundle", raw).add("owner", owner)
	bin("trailing-byte", "malformed", "one byte after the signature", append(bytes.Clone(raw), 0)).add("owner", owner)
	bin("truncated", "malformed", "the last byte of the signature missing", raw[:len(raw)-1]).add("owner", owner)
	badLabel := bytes.Clone(raw)
	badLabel[len("securejingle/v")] = '9'
	bin("bad-label", "malformed", "another protocol version in the label", badLabel).add("owner", owner)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 0x80
	bin("bad-signature", "bad signature", "the last bit of the bundle signature flipped", flipped).add("owner", owner)
	bin("wrong-owner", "wrong owner", "served for another JID", raw).add("owner", "bob@example.net")

	// Presence element.
	px, err := xml.Marshal(alice.e.Presence())
	if err != nil {
		t.Fatal(err)
	}
	pres := func(name, expect, desc, from string, data []byte) {
		g.element("presence-"+name, "presence", expect, desc, data).add("from", from)
	}
	pres("valid", "success", "the presence element of a default engine", owner, px)
	pres("wrong-sender", "wrong owner", "alice's presence element relayed in mallory's presence", "mallory@example.org", px)
	pres("from-with-resource", "malformed", "verified against a full JID", owner+"/phone", px)
	pres("bad-signature", "bad signature", "one bit of the signature flipped", owner,
		vecReplaceAttr(t, px, "s", vecFlipB64(t, vecAttr(t, px, "s"), 3)))
	pres("swapped-bundle-hash", "bad signature", "the bundle hash replaced by mallory's", owner,
		vecReplaceAttr(t, px, "h", vecAttr(t, vecMarshal(t, mallory.e.Presence()), "h")))
	pres("swapped-key", "bad signature", "the identity key replaced by mallory's", owner,
		vecReplaceAttr(t, px, "k", b64.EncodeToString(mallory.e.Identity())))
	pres("changed-device", "bad signature", "the device id changed", owner, vecReplaceAttr(t, px, "d", "2"))
	pres("short-hash", "malformed", "a 31-byte bundle hash", owner,
		vecReplaceAttr(t, px, "h", b64.EncodeToString(make([]byte, 31))))
	pres("noncanonical-base64", "malformed", "non-zero padding bits in the key", owner,
		vecReplaceAttr(t, px, "k", vecNonCanonical(t, vecAttr(t, px, "k"))))
	pres("device-overflow", "malformed", "a device id above 32 bits", owner, vecReplaceAttr(t, px, "d", "4294967296"))
	pres("device-negative", "malformed", "a negative device id", owner, vecReplaceAttr(t, px, "d", "-1"))
	pres("missing-signature", "malformed", "no s attribute", owner, bytes.Replace(px, []byte(` s="`+vecAttr(t, px, "s")+`"`), nil, 1))
	pres("wrong-namespace", "malformed", "the element in the jabber:client namespace", owner,
		bytes.Replace(px, []byte(NS), []byte("jabber:client"), 1))
	pres("trailing-element", "malformed", "another element after it", owner, append(bytes.Clone(px), "<e2e/>"...))

	// Chat element, from a real first message.
	bob := g.newEngine("bob@example.net", vecEngineOpts{})
	g.introduce(alice, bob)
	el, err := alice.e.SealChat(vecCtx(alice, bob), []Device{bob.dev()}, "hello", false)
	if err != nil {
		t.Fatal(err)
	}
	cx := vecMarshal(t, el)
	chat := func(name, expect, desc string, data []byte) { g.element("chat-"+name, "chat", expect, desc, data) }
	chat("valid", "success", "a first message from alice to bob", cx)
	inner := b64.EncodeToString(el.Blob)
	chat("noncanonical-base64", "malformed", "non-zero padding bits in the last character",
		bytes.Replace(cx, []byte(inner), []byte(vecNonCanonicalAny(t, inner)), 1))
	chat("padded-base64", "malformed", "padded base64",
		bytes.Replace(cx, []byte(inner), []byte(base64.StdEncoding.EncodeToString(el.Blob)), 1))
	chat("truncated-base64", "malformed", "one base64 character missing (a 4n+1 length)",
		[]byte(`<c xmlns="`+NS+`">AAAAA</c>`))
	chat("invalid-character", "malformed", "a character outside the base64 alphabet",
		[]byte(`<c xmlns="`+NS+`">AAA*</c>`))
	chat("wrong-namespace", "malformed", "the element without the securejingle namespace",
		[]byte(`<c>`+inner+`</c>`))
	chat("wrong-name", "malformed", "an element of another name", []byte(`<p xmlns="`+NS+`">`+inner+`</p>`))
	chat("trailing-element", "malformed", "another element after it", append(bytes.Clone(cx), "<c/>"...))
	chat("not-xml", "malformed", "not XML at all", []byte(inner))

	// Protected elements, from real stanzas.
	ic := Context{From: alice.jid, To: bob.jid, StanzaKind: "iq", StanzaType: "set", StanzaID: "iq1"}
	content := []byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="vectors"/>`)
	pe, err := alice.e.Protect(ic, []Device{bob.dev()}, content, Encrypt)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := alice.e.Protect(ic, []Device{bob.dev()}, content, AuthOnly)
	if err != nil {
		t.Fatal(err)
	}
	pex, pax := vecMarshal(t, pe), vecMarshal(t, pa)
	prot := func(name, expect, desc string, data []byte) {
		g.element("protected-"+name, "protected", expect, desc, data)
	}
	prot("encrypted", "success", "an encrypted protected stanza payload", pex)
	prot("auth-only", "success", "an authenticate-only protected stanza payload", pax)
	prot("unknown-mode", "malformed", "protection mode m='none'", bytes.Replace(pex, []byte(`m="enc"`), []byte(`m="none"`), 1))
	prot("missing-mode", "malformed", "no m attribute", bytes.Replace(pex, []byte(` m="enc"`), nil, 1))
	prot("encrypted-with-children", "malformed", "an encrypted element that also has <env/>",
		bytes.Replace(pex, []byte(`</p>`), []byte(`<env>AAAA</env></p>`), 1))
	prot("auth-without-envelope", "malformed", "auth-only without <env/>",
		[]byte(`<p xmlns="`+NS+`" m="auth"><k>`+b64.EncodeToString(pa.Blob)+`</k></p>`))
	prot("auth-with-text", "malformed", "auth-only with text beside the children",
		bytes.Replace(pax, []byte(`<env>`), []byte(`junk<env>`), 1))
	prot("bad-base64", "malformed", "padded base64 in <env/>",
		bytes.Replace(pax, []byte(b64.EncodeToString(pa.Envelope)), []byte(base64.StdEncoding.EncodeToString(pa.Envelope)), 1))

	// Envelopes.
	ev := &Envelope{Content: content, RPad: "abc123", Time: vectorTime, To: bob.jid, From: alice.jid}
	evx, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	env := func(name, expect, desc string, data []byte) {
		g.element("envelope-"+name, "envelope", expect, desc, data)
	}
	env("valid", "success", "an envelope with one payload element and padding", evx)
	env("bad-time", "malformed", "a time stamp that is not RFC 3339", bytes.Replace(evx, []byte("2026-11-25T12:00:00Z"), []byte("yesterday"), 1))
	env("missing-time", "malformed", "no <time/>", vecCut(t, evx, `<time stamp="2026-11-25T12:00:00Z"></time>`))
	env("to-full-jid", "malformed", "a full JID in <to/>", bytes.Replace(evx, []byte(`jid="bob@example.net"`), []byte(`jid="bob@example.net/desk"`), 1))
	env("missing-from", "malformed", "no <from/>", vecCut(t, evx, `<from jid="alice@example.org"></from>`))
	env("text-content", "malformed", "text beside the payload elements", bytes.Replace(evx, []byte(`<content>`), []byte(`<content>hello`), 1))
	env("processing-instruction", "malformed", "a processing instruction in the content", bytes.Replace(evx, []byte(`<content>`), []byte(`<content><?evil x?>`), 1))
	env("wrong-namespace", "malformed", "the XEP-0420 namespace instead of ours", bytes.Replace(evx, []byte(NS), []byte("urn:xmpp:sce:1"), 1))
	env("trailing-element", "malformed", "another element after it", append(bytes.Clone(evx), "<envelope/>"...))
}

// ---- session vectors ----

type vecEngineOpts struct {
	suites []SuiteID
	device uint32 // preset device id (to impersonate another device)
	trust  bool
	// same makes the engine another device of same's account: same
	// account key, and certified onto same's device list.
	same *vecEngine
}

// vecEngine is an engine under the generator's control with everything
// needed to dump it as a receiving engine.
type vecEngine struct {
	jid    string
	seed   []byte
	signer identity.Signer
	st     *vecRecStore
	e      *Engine
	opts   vecEngineOpts
}

func (g *vecGen) newEngine(jid string, opts vecEngineOpts) *vecEngine {
	t := g.t
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	if opts.same != nil {
		seed = opts.same.seed
	}
	signer := identity.NewMemorySigner(ed25519.NewKeyFromSeed(seed))
	st := &vecRecStore{Store: store.NewMemory(), buckets: map[string]bool{}}
	if opts.device != 0 {
		var d [4]byte
		binary.BigEndian.PutUint32(d[:], opts.device)
		if err := st.Update(func(tx store.Tx) error { return tx.Put(bucketSelf, "device", d[:]) }); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{JID: jid, Signer: signer, Store: st, Suites: opts.suites, Now: vectorNow}
	if opts.trust {
		cfg.Trust = &PinningTrust{Store: trust.New(st, vectorNow)}
	}
	var others []*Engine
	if opts.same != nil {
		others = append(others, opts.same.e)
	}
	e, err := newCertified(t, cfg, others...)
	if err != nil {
		t.Fatal(err)
	}
	if opts.same != nil {
		// The older device learns the new list, as from PEP.
		if _, err := opts.same.e.AddDeviceList(jid, mustList(t, e)); err != nil {
			t.Fatal(err)
		}
	}
	return &vecEngine{jid: jid, seed: seed, signer: signer, st: st, e: e, opts: opts}
}

func (v *vecEngine) dev() Device { return Device{v.jid, v.e.Device()} }

func vecCtx(from, to *vecEngine) Context {
	return Context{From: from.jid, To: to.jid, StanzaKind: "message", StanzaType: "chat"}
}

// introduce gives every engine the others' bundles.
func (g *vecGen) introduce(es ...*vecEngine) {
	for _, a := range es {
		for _, b := range es {
			if a != b {
				if err := a.e.AddBundle(b.jid, b.e.Bundle()); err != nil {
					g.t.Fatalf("%s adding %s: %v", a.jid, b.jid, err)
				}
			}
		}
	}
}

func (g *vecGen) send(from, to *vecEngine, body string) []byte {
	return g.sendCtx(from, vecCtx(from, to), []Device{to.dev()}, body, false)
}

func (g *vecGen) sendCtx(from *vecEngine, c Context, targets []Device, body string, inline bool) []byte {
	g.t.Helper()
	el, err := from.e.SealChat(c, targets, body, inline)
	if err != nil {
		g.t.Fatalf("seal %q: %v", body, err)
	}
	return vecMarshal(g.t, el)
}

func (g *vecGen) recv(from, to *vecEngine, el []byte, want string) {
	g.t.Helper()
	c, err := ParseChatElement(el)
	if err != nil {
		g.t.Fatal(err)
	}
	got, _, err := to.e.OpenChat(vecCtx(from, to), c)
	if err != nil || got != want {
		g.t.Fatalf("open %q: %q, %v", want, got, err)
	}
}

// exchange sends a message each way, opening both.
func (g *vecGen) exchange(a, b *vecEngine) {
	g.recv(a, b, g.send(a, b, "ping"), "ping")
	g.recv(b, a, g.send(b, a, "pong"), "pong")
}

// snap is a snapshot of a receiving engine's state.
type vecSnap struct {
	e    *vecEngine
	dump []byte
}

func (g *vecGen) snap(e *vecEngine) vecSnap {
	g.t.Helper()
	buckets := slices.Clone(vecEngineBuckets)
	e.st.mu.Lock()
	for b := range e.st.buckets {
		buckets = append(buckets, b)
	}
	e.st.mu.Unlock()
	d, err := vecEncodeStore(e.st, buckets)
	if err != nil {
		g.t.Fatal(err)
	}
	return vecSnap{e, d}
}

// without returns the snapshot with one bucket (or one key of it)
// removed.
func (s vecSnap) without(t *testing.T, bucket, key string) vecSnap {
	st := store.NewMemory()
	if err := vecRestoreStore(st, s.dump); err != nil {
		t.Fatal(err)
	}
	var buckets []string
	rest := s.dump
	for len(rest) > 0 {
		n := binary.BigEndian.Uint32(rest)
		buckets = append(buckets, string(rest[4:4+n]))
		rest = rest[4+n:]
		for range 2 {
			n = binary.BigEndian.Uint32(rest)
			rest = rest[4+n:]
		}
	}
	err := st.Update(func(tx store.Tx) error {
		if key != "" {
			return tx.Delete(bucket, key)
		}
		var keys []string
		tx.ForEach(bucket, func(k string, _ []byte) error { keys = append(keys, k); return nil })
		for _, k := range keys {
			if err := tx.Delete(bucket, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := vecEncodeStore(st, buckets)
	if err != nil {
		t.Fatal(err)
	}
	return vecSnap{s.e, d}
}

// session writes a session vector for snapshot s.
func (g *vecGen) session(name, expect, desc string, s vecSnap, c Context, element string, priors [][]byte, msg []byte, plaintext []byte) {
	suites := s.e.opts.suites
	if suites == nil {
		suites = DefaultSuites
	}
	tr := "none"
	if s.e.opts.trust {
		tr = "tofu"
	}
	v := g.vector("session-"+name, expect, desc).add("kind", "session").
		addB64("seed", s.e.seed).add("jid", s.e.jid).add("suites", formatSuites(suites)).add("trust", tr).
		addB64("store", s.dump).
		add("from", c.From).add("to", c.To).add("stanza-kind", c.StanzaKind).add("stanza-type", c.StanzaType).
		add("element", element)
	if c.StanzaID != "" {
		v.add("stanza-id", c.StanzaID)
	}
	for _, p := range priors {
		v.addB64("prior", p)
	}
	v.addB64("message", msg)
	if expect == "success" {
		v.addB64("plaintext", plaintext)
	}
}

func (g *vecGen) chatSession(name, expect, desc string, s vecSnap, c Context, priors [][]byte, msg []byte, plaintext string) {
	g.session(name, expect, desc, s, c, "chat", priors, msg, []byte(plaintext))
}

func (g *vecGen) sessionVectors() {
	t := g.t
	const aliceJID, bobJID = "alice@example.org", "bob@example.net"

	// First message, one per suite: Bob offers all four, Alice one.
	for _, sid := range DefaultSuites {
		a := g.newEngine(aliceJID, vecEngineOpts{suites: []SuiteID{sid}})
		b := g.newEngine(bobJID, vecEngineOpts{})
		g.introduce(a, b)
		s := g.snap(b)
		name := map[SuiteID]string{SuiteXWingAES: "first-mlkem-aes", SuiteXWingChaCha: "first-mlkem-chacha",
			SuiteX25519AES: "first-x25519-aes", SuiteX25519ChaCha: "first-x25519-chacha"}[sid]
		body := "first message with " + sid.String()
		g.chatSession(name, "success", "alice's first message, suite "+sid.String()+" (the best mutual one)",
			s, vecCtx(a, b), nil, g.send(a, b, body), body)
	}

	// A default pair used by most cases below.
	a := g.newEngine(aliceJID, vecEngineOpts{})
	b := g.newEngine(bobJID, vecEngineOpts{})
	g.introduce(a, b)
	fresh := g.snap(b)
	first := g.send(a, b, "first")
	second := g.send(a, b, "second before any reply")
	ab := vecCtx(a, b)
	g.chatSession("first-replayed", "replay", "the first message delivered twice", fresh, ab, [][]byte{first}, first, "")
	g.chatSession("pre-reply-second", "success", "alice's second message before bob replied carries the init block again",
		fresh, ab, [][]byte{first}, second, "second before any reply")
	g.chatSession("pre-reply-second-first", "success", "the second pre-reply message arrives first",
		fresh, ab, nil, second, "second before any reply")
	g.chatSession("first-rerouted-from", "need bundle", "alice's first message re-routed as from mallory, whose bundle bob does not have",
		fresh, Context{From: "mallory@example.org", To: bobJID, StanzaKind: "message", StanzaType: "chat"}, nil, first, "")
	g.chatSession("first-retyped", "auth failure", "alice's first message with the stanza type changed from chat to normal",
		fresh, Context{From: aliceJID, To: bobJID, StanzaKind: "message", StanzaType: "normal"}, nil, first, "")
	// Downgrade: a first message choosing the classic suite although both
	// offer the hybrid one.
	down := g.forgeFirst(a, b, SuiteX25519AES, nil)
	g.chatSession("downgrade", "downgrade", "a first message that chose X25519 although both sides offer MLKEM768X25519",
		fresh, ab, nil, down, "")
	down2 := g.forgeFirst(a, b, SuiteXWingChaCha, nil)
	g.chatSession("downgrade-second-choice", "downgrade", "a first message that chose bob's second preference",
		fresh, ab, nil, down2, "")
	g.chatSession("forged-first-ok", "success", "a first message assembled by hand with the right suite (control for the forged cases)",
		fresh, ab, nil, g.forgeFirst(a, b, SuiteXWingAES, nil), "forged")
	g.chatSession("bad-initiator-signature", "handshake failure", "one bit of the initiator's signature over the first message flipped",
		fresh, ab, nil, vecFlipFirstSig(t, g.forgeFirst(a, b, SuiteXWingAES, nil)), "")
	g.chatSession("unknown-prekey", "handshake failure", "a first message naming a prekey id bob never had",
		fresh, ab, nil, g.forgeFirst(a, b, SuiteXWingAES, func(ib *initBlock) { ib.prekeyID ^= 1 }), "")
	g.chatSession("unknown-responder-bundle", "handshake failure", "a first message naming a bundle hash bob never published",
		fresh, ab, nil, g.forgeFirst(a, b, SuiteXWingAES, func(ib *initBlock) { ib.respBundle[0] ^= 1 }), "")
	pkID := vecPrekeyFor(t, b.e.Bundle(), SuiteXWingAES)
	g.chatSession("retired-prekey", "handshake failure", "bob has deleted the prekey the first message was encrypted to",
		fresh.without(t, bucketPrekeys, prekeyKey(pkID)), ab, nil, first, "")
	carol := g.newEngine("carol@example.com", vecEngineOpts{})
	g.chatSession("inline-bundle-wrong-owner", "wrong owner", "a first message whose inline bundle is carol's",
		fresh.without(t, bucketPeers, ""), ab, nil,
		g.forgeFirst(a, b, SuiteXWingAES, func(ib *initBlock) { ib.inlineBundle = carol.e.Bundle().Marshal() }), "")

	// Bob 2: another device of Bob's account.
	b2 := g.newEngine(bobJID, vecEngineOpts{same: b})
	g.introduce(a, b2)
	g.introduce(b, b2)
	g.chatSession("other-device", "not for us", "a message encrypted for bob's other device", g.snap(b2), ab, nil, first, "")

	// Steady state: first message, reply, and one more round.
	g.recv(a, b, first, "first")
	g.recv(a, b, second, "second before any reply")
	g.exchange(a, b)
	g.exchange(a, b)
	steady := g.snap(b)
	m := [][]byte{g.send(a, b, "m0"), g.send(a, b, "m1"), g.send(a, b, "m2")}
	g.chatSession("steady", "success", "a message in an established session (short header)", steady, ab, nil, m[0], "m0")
	g.chatSession("steady-third", "success", "three messages in order", steady, ab, m[:2], m[2], "m2")
	g.chatSession("out-of-order", "success", "m2 then m0 arrive, then m1 (skipped keys)", steady, ab, [][]byte{m[2], m[0]}, m[1], "m1")
	g.chatSession("out-of-order-replayed", "replay", "a delayed message, then the same again", steady, ab, [][]byte{m[2], m[0]}, m[0], "")
	g.chatSession("replayed", "replay", "a steady-state message delivered twice", steady, ab, [][]byte{m[0]}, m[0], "")
	g.chatSession("first-replayed-late", "replay", "the first message delivered again after the session was established",
		steady, ab, nil, first, "")
	g.chatSession("rerouted-to", "not for us", "a message to bob re-addressed to carol's JID",
		steady, Context{From: aliceJID, To: "carol@example.com", StanzaKind: "message", StanzaType: "chat"}, nil, m[0], "")
	g.chatSession("rerouted-from-stranger", "no session", "a message from alice re-routed as from mallory",
		steady, Context{From: "mallory@example.org", To: bobJID, StanzaKind: "message", StanzaType: "chat"}, nil, m[0], "")
	g.chatSession("retyped-groupchat", "auth failure", "stanza type chat changed to groupchat",
		steady, Context{From: aliceJID, To: bobJID, StanzaKind: "message", StanzaType: "groupchat"}, nil, m[0], "")
	g.chatSession("retyped-untyped", "auth failure", "stanza type removed",
		steady, Context{From: aliceJID, To: bobJID, StanzaKind: "message"}, nil, m[0], "")
	g.chatSession("retyped-iq", "malformed", "a chat element in an iq stanza",
		steady, Context{From: aliceJID, To: bobJID, StanzaKind: "iq", StanzaType: "set", StanzaID: "iq1"}, nil, m[0], "")
	g.chatSession("no-session", "no session", "bob lost the session (state restored without it)",
		steady.without(t, bucketSessions, ""), ab, nil, m[0], "")
	blob := vecBlob(t, m[0])
	g.chatSession("tampered-ciphertext", "auth failure", "the last bit of the AEAD tag flipped", steady, ab, nil,
		vecChat(t, vecFlipLast(blob)), "")
	g.chatSession("tampered-header-n", "auth failure", "the message number in the header incremented", steady, ab, nil,
		vecChat(t, vecEditHeader(t, blob, func(h *header) { h.n++ })), "")
	g.chatSession("tampered-header-ack", "auth failure", "the acknowledgement in the header changed", steady, ab, nil,
		vecChat(t, vecEditHeader(t, blob, func(h *header) { h.ack++ })), "")
	g.chatSession("tampered-sender-device", "no session", "the sender device id changed", steady, ab, nil,
		vecChat(t, append(binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(blob)^1), blob[4:]...)), "")
	g.chatSession("truncated", "malformed", "the last five bytes cut off (entry length overruns)", steady, ab, nil,
		vecChat(t, blob[:len(blob)-5]), "")
	g.chatSession("truncated-to-sender", "malformed", "only the sender device id left", steady, ab, nil, vecChat(t, blob[:4]), "")
	g.chatSession("truncated-entry", "auth failure", "the ciphertext shortened by one byte with a consistent entry length",
		steady, ab, nil, vecChat(t, vecEditEntry(t, blob, func(en *entry) { en.body = en.body[:len(en.body)-1] })), "")
	g.session("chat-as-stanza", "auth failure", "a chat blob moved into an encrypted protected element",
		steady, ab, "protected", nil, vecMarshal(t, &ProtectedElement{Blob: blob}), nil)

	// Too far ahead and the boundary: after m0, send MaxSkip+2 more.
	var far [][]byte
	for i := 0; i <= MaxSkip+2; i++ {
		far = append(far, g.send(a, b, fmt.Sprint("far ", i)))
	}
	g.chatSession("skip-max", "success", "a message exactly MaxSkip ahead of the next expected one", steady, ab,
		[][]byte{far[0]}, far[MaxSkip+1], fmt.Sprint("far ", MaxSkip+1))
	g.chatSession("too-far-ahead", "too far ahead", "a message MaxSkip+1 ahead of the next expected one", steady, ab,
		[][]byte{far[0]}, far[MaxSkip+2], "")

	// Protected stanzas in the established session.
	ic := Context{From: aliceJID, To: bobJID, StanzaKind: "iq", StanzaType: "set", StanzaID: "iq1"}
	content := []byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="v1"/>`)
	a2 := g.newEngine(aliceJID, vecEngineOpts{})
	b3 := g.newEngine(bobJID, vecEngineOpts{})
	g.introduce(a2, b3)
	g.exchange(a2, b3)
	st3 := g.snap(b3)
	enc, err := a2.e.Protect(ic, []Device{b3.dev()}, content, Encrypt)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := a2.e.Protect(ic, []Device{b3.dev()}, content, AuthOnly)
	if err != nil {
		t.Fatal(err)
	}
	g.session("stanza-encrypted", "success", "an encrypted iq payload", st3, ic, "protected", nil, vecMarshal(t, enc), content)
	g.session("stanza-auth-only", "success", "an authenticate-only iq payload", st3, ic, "protected", [][]byte{vecMarshal(t, enc)}, vecMarshal(t, auth), content)
	tampered := *auth
	tampered.Envelope = bytes.Replace(auth.Envelope, []byte("session-initiate"), []byte("session-terminate"), 1)
	g.session("stanza-auth-only-tampered", "auth failure", "the readable envelope of an auth-only payload changed by the server",
		st3, ic, "protected", [][]byte{vecMarshal(t, enc)}, vecMarshal(t, &tampered), nil)
	g.session("stanza-retyped-kind", "auth failure", "an iq payload presented in a message stanza", st3,
		Context{From: aliceJID, To: bobJID, StanzaKind: "message", StanzaType: "set"}, "protected", nil, vecMarshal(t, enc), nil)
	g.session("stanza-retyped-type", "auth failure", "an iq set presented as an iq result", st3,
		Context{From: aliceJID, To: bobJID, StanzaKind: "iq", StanzaType: "result", StanzaID: "iq1"}, "protected", nil, vecMarshal(t, enc), nil)
	g.session("stanza-as-chat", "auth failure", "an encrypted stanza blob moved into a chat element", st3,
		vecCtx(a2, b3), "chat", nil, vecMarshal(t, &ChatElement{Blob: enc.Blob}), nil)

	// Re-routing between two peers that use the same device id: the
	// server presents alice's message as carol's.
	a4 := g.newEngine(aliceJID, vecEngineOpts{})
	c4 := g.newEngine("carol@example.com", vecEngineOpts{device: a4.e.Device()})
	b4 := g.newEngine(bobJID, vecEngineOpts{})
	g.introduce(a4, b4, c4)
	g.exchange(a4, b4)
	g.exchange(c4, b4)
	s4 := g.snap(b4)
	g.chatSession("rerouted-from-peer", "auth failure", "alice's message presented as carol's, whose device has the same id and a session with bob",
		s4, Context{From: "carol@example.com", To: bobJID, StanzaKind: "message", StanzaType: "chat"}, nil, g.send(a4, b4, "for bob from alice"), "")

	// Strangers: bob does not have alice's bundle.
	a5 := g.newEngine(aliceJID, vecEngineOpts{})
	b5 := g.newEngine(bobJID, vecEngineOpts{})
	if err := a5.e.AddBundle(bobJID, b5.e.Bundle()); err != nil {
		t.Fatal(err)
	}
	s5 := g.snap(b5)
	ab5 := vecCtx(a5, b5)
	g.chatSession("need-bundle", "need bundle", "a first message from a stranger without an inline bundle",
		s5, ab5, nil, g.sendCtx(a5, ab5, []Device{b5.dev()}, "who am i", false), "")
	// A second device of alice (a fresh session) sends with its bundle inline.
	a5b := g.newEngine(aliceJID, vecEngineOpts{same: a5})
	if err := a5b.e.AddBundle(bobJID, b5.e.Bundle()); err != nil {
		t.Fatal(err)
	}
	g.chatSession("inline-bundle", "success", "a first message from a stranger with its bundle inline",
		s5, ab5, nil, g.sendCtx(a5b, ab5, []Device{b5.dev()}, "hello stranger", true), "hello stranger")

	// Trust: bob pins alice's key; later a first message under a new key
	// for the same device.
	a6 := g.newEngine(aliceJID, vecEngineOpts{})
	b6 := g.newEngine(bobJID, vecEngineOpts{trust: true})
	g.introduce(a6, b6)
	s6 := g.snap(b6)
	ab6 := vecCtx(a6, b6)
	g.chatSession("trusted-first", "success", "a first message from a pinned (TOFU) key",
		s6, ab6, nil, g.send(a6, b6, "pinned"), "pinned")
	a7 := g.newEngine(aliceJID, vecEngineOpts{device: a6.e.Device()})
	if err := a7.e.AddBundle(bobJID, b6.e.Bundle()); err != nil {
		t.Fatal(err)
	}
	g.chatSession("untrusted-key-change", "untrusted", "a first message (inline bundle) from alice's device under a new identity key",
		s6, ab6, nil, g.sendCtx(a7, ab6, []Device{b6.dev()}, "new key", true), "")

	// The initiator side: alice receives bob's first reply.
	a8 := g.newEngine(aliceJID, vecEngineOpts{})
	b8 := g.newEngine(bobJID, vecEngineOpts{})
	g.introduce(a8, b8)
	g.recv(a8, b8, g.send(a8, b8, "hi"), "hi")
	s8 := g.snap(a8)
	reply := g.send(b8, a8, "reply")
	ba8 := vecCtx(b8, a8)
	g.chatSession("response", "success", "bob's first reply completes alice's handshake", s8, ba8, nil, reply, "reply")
	g.chatSession("response-bad-signature", "handshake failure", "one bit of the responder's transcript signature flipped",
		s8, ba8, nil, vecChat(t, vecEditEntry(t, vecBlob(t, reply), func(en *entry) {
			r := reader{b: en.body}
			rb := readRespBlock(&r)
			rb.signature = bytes.Clone(rb.signature)
			rb.signature[0] ^= 1
			var out builder
			rb.marshal(&out)
			out.raw(r.b)
			en.body = out
		})), "")

	// A copy for the sender's own other device (carbons): bob2 writes to
	// alice and to bob's first device.
	a9 := g.newEngine(aliceJID, vecEngineOpts{})
	b9 := g.newEngine(bobJID, vecEngineOpts{})
	b9b := g.newEngine(bobJID, vecEngineOpts{same: b9})
	g.introduce(a9, b9, b9b)
	s9 := g.snap(b9)
	own := Context{From: bobJID, To: aliceJID, StanzaKind: "message", StanzaType: "chat"}
	g.chatSession("own-device-copy", "success", "a message from bob's other device to alice, read by this device of bob",
		s9, own, nil, g.sendCtx(b9b, own, []Device{a9.dev(), b9.dev()}, "sent from my other device", false), "sent from my other device")
}

// forgeFirst builds a first message from a to b choosing suite sid by
// hand (bypassing negotiation), with an optional edit of the init block.
func (g *vecGen) forgeFirst(a, b *vecEngine, sid SuiteID, edit func(*initBlock)) []byte {
	t := g.t
	su := LookupSuite(sid)
	own, peer := a.e.Bundle(), b.e.Bundle()
	pk, err := peer.prekeyFor(su, vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	self := &party{own.JID, own.Device, own.Identity, own.Account, own.Hash(), own.Suites}
	them := &party{peer.JID, peer.Device, peer.Identity, peer.Account, peer.Hash(), peer.Suites}
	ib, st, rs, _, err := initiate(su, self, them, pk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(ib)
	}
	var blk builder
	ib.marshal(&blk)
	s := &session{suite: sid, role: roleInitiator, peerIK: peer.Identity, peerAK: peer.Account, th: st.th1, th1: st.th1, initBlock: blk, pending: st, r: rs}
	c := vecCtx(a, b)
	kind, body, err := a.e.sealEntry(modeChat, &c, b.dev(), s, []byte("forged"))
	if err != nil {
		t.Fatal(err)
	}
	var out builder
	out.u32(a.e.Device())
	out.u32(b.e.Device())
	out.u8(kind)
	out.vbytes(body)
	return vecMarshal(t, &ChatElement{Blob: out})
}

func vecPrekeyFor(t *testing.T, bu *Bundle, sid SuiteID) uint32 {
	pk, err := bu.prekeyFor(LookupSuite(sid), vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	return pk.ID
}

// ---- byte surgery ----

// mustList returns e's own device list.
func mustList(t testing.TB, e *Engine) *DeviceList {
	l, err := e.DeviceList(e.JID())
	if err != nil || l == nil {
		t.Fatalf("no own device list: %v", err)
	}
	return l
}

// vecFlipFirstSig flips a bit of the signature that ends the only entry
// of a first message.
func vecFlipFirstSig(t *testing.T, el []byte) []byte {
	blob := bytes.Clone(vecBlob(t, el))
	blob[len(blob)-10] ^= 0x04
	return vecMarshal(t, &ChatElement{Blob: blob})
}

func vecBlob(t *testing.T, el []byte) []byte {
	c, err := ParseChatElement(el)
	if err != nil {
		t.Fatal(err)
	}
	return c.Blob
}

func vecChat(t *testing.T, blob []byte) []byte { return vecMarshal(t, &ChatElement{Blob: blob}) }

func vecFlipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 0x01
	return c
}

// vecEditEntry parses a blob, lets edit change its (first) entry and
// re-assembles it.
func vecEditEntry(t *testing.T, blob []byte, edit func(*entry)) []byte {
	sender, es, err := parseEntries(blob)
	if err != nil {
		t.Fatal(err)
	}
	edit(&es[0])
	var out builder
	out.u32(sender)
	for _, en := range es {
		out.u32(en.device)
		out.u8(en.kind)
		out.vbytes(en.body)
	}
	return out
}

// vecEditHeader changes the ratchet header of a short-header entry.
func vecEditHeader(t *testing.T, blob []byte, edit func(*header)) []byte {
	return vecEditEntry(t, blob, func(en *entry) {
		if k := en.kind & kindMask; k != kindShort && k != kindFull {
			t.Fatalf("entry kind %d, want a ratchet message", en.kind)
		}
		r := reader{b: en.body}
		h := readHeader(&r, en.kind&kindMask == kindFull)
		if r.err != nil {
			t.Fatal(r.err)
		}
		edit(&h)
		var out builder
		h.marshal(&out)
		out.raw(r.b)
		en.body = out
	})
}

// vecAttrN returns the value of the n-th (0-based) attribute name="…".
func vecAttrN(t *testing.T, x []byte, name string, n int) string {
	s := string(x)
	key := " " + name + `="`
	for i := 0; ; i++ {
		j := strings.Index(s, key)
		if j < 0 {
			t.Fatalf("attribute %s #%d not found", name, n)
		}
		s = s[j+len(key):]
		if i == n {
			return s[:strings.IndexByte(s, '"')]
		}
	}
}

func vecAttr(t *testing.T, x []byte, name string) string { return vecAttrN(t, x, name, 0) }

// vecReplaceAttr replaces the value of the first attribute name.
func vecReplaceAttr(t *testing.T, x []byte, name, val string) []byte {
	old := ` ` + name + `="` + vecAttr(t, x, name) + `"`
	return bytes.Replace(x, []byte(old), []byte(` `+name+`="`+val+`"`), 1)
}

func vecCut(t *testing.T, x []byte, part string) []byte {
	if !bytes.Contains(x, []byte(part)) {
		t.Fatalf("%q not in %q", part, x)
	}
	return bytes.Replace(x, []byte(part), nil, 1)
}

// vecFlipB64 flips bit (bit%8) of byte bit/8 of a base64 value.
func vecFlipB64(t *testing.T, s string, bit int) string {
	b := vecB64(t, s)
	b[bit/8%len(b)] ^= 1 << (bit % 8)
	return b64.EncodeToString(b)
}

// vecNonCanonical sets unused low bits in the last character of an
// unpadded base64 string whose length is not a multiple of 4.
func vecNonCanonical(t *testing.T, s string) string {
	if len(s)%4 == 0 {
		t.Fatalf("base64 of length %d has no padding bits", len(s))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|1])
}

// vecNonCanonicalAny is vecNonCanonical for any length: a string whose
// length is a multiple of 4 gets two characters of padding bits appended.
func vecNonCanonicalAny(t *testing.T, s string) string {
	if len(s)%4 == 0 {
		return s + "AB"
	}
	return vecNonCanonical(t, s)
}

// vecRecStore records the names of the buckets written, so that a dump
// includes buckets named at run time (trust records).
type vecRecStore struct {
	store.Store
	mu      sync.Mutex
	buckets map[string]bool
}

func (s *vecRecStore) Update(fn func(store.Tx) error) error {
	return s.Store.Update(func(tx store.Tx) error { return fn(&vecRecTx{tx, s}) })
}

type vecRecTx struct {
	store.Tx
	s *vecRecStore
}

func (t *vecRecTx) Put(bucket, key string, value []byte) error {
	t.s.mu.Lock()
	t.s.buckets[bucket] = true
	t.s.mu.Unlock()
	return t.Tx.Put(bucket, key, value)
}
