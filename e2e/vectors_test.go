package e2e

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// Test vectors as data (age/CCTV style): one file per case in
// testdata/e2e, a header of "key: value" lines. The first three keys are
// always case, expect and description; binary values are unpadded standard
// base64. The generator is TestGenerateVectors (vectorgen_test.go); run
// "go test ./e2e -run TestGenerateVectors -update" to regenerate.
//
// Element vectors (kind: bundle, bundle-xml, presence, chat, protected,
// envelope) run one stateless decoder on input, and for bundles and
// presence elements also Verify against owner / from.
//
// Session vectors (kind: session) restore a receiving engine from seed
// (Ed25519 identity seed), jid, suites, trust (none or tofu) and store (a
// dump of every bucket, see vecDecodeStore), open every prior message
// (which must succeed), then open message in the context from, to,
// stanza-kind, stanza-type. element says whether the messages are <c/>
// chat elements or <p/> protected elements.

const vectorDir = "../testdata/e2e"

// minVectors is the least number of vector files the checker accepts.
const minVectors = 40

// vectorTime is the fixed clock of every vector: prekeys created at this
// instant stay valid for it forever.
var vectorTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func vectorNow() time.Time { return vectorTime }

// vecClasses maps each expect class to the check of the returned error.
// "bad signature" and "wrong owner" are both ErrBadBundle; they are kept
// apart in the files because they document different attacks.
var vecClasses = map[string]func(error) bool{
	"success":           func(err error) bool { return err == nil },
	"malformed":         func(err error) bool { return errors.Is(err, ErrMalformed) },
	"bad signature":     func(err error) bool { return errors.Is(err, ErrBadBundle) },
	"wrong owner":       func(err error) bool { return errors.Is(err, ErrBadBundle) },
	"handshake failure": func(err error) bool { return errors.Is(err, ErrHandshake) },
	"auth failure":      func(err error) bool { return errors.Is(err, ErrDecrypt) },
	"replay":            func(err error) bool { return errors.Is(err, ErrReplay) },
	"downgrade":         func(err error) bool { return errors.Is(err, ErrDowngrade) },
	"too far ahead":     func(err error) bool { return errors.Is(err, ErrTooFarAhead) },
	"not for us":        func(err error) bool { return errors.Is(err, ErrNotForUs) },
	"no session":        func(err error) bool { return errors.Is(err, ErrNoSession) },
	"need bundle":       func(err error) bool { var nb *NeedBundleError; return errors.As(err, &nb) },
	"untrusted":         func(err error) bool { return errors.Is(err, ErrUntrusted) },
}

// vecSentinels are the distinct errors of the classes above: an error must
// not match two of them (a failure reported ambiguously is a bug too).
var vecSentinels = []error{ErrMalformed, ErrBadBundle, ErrHandshake, ErrDecrypt, ErrReplay,
	ErrDowngrade, ErrTooFarAhead, ErrNotForUs, ErrNoSession, ErrUntrusted, ErrAccessDenied}

func vecCheckClass(t *testing.T, expect string, err error) {
	t.Helper()
	check, ok := vecClasses[expect]
	if !ok {
		t.Fatalf("unknown expect class %q", expect)
	}
	if !check(err) {
		t.Fatalf("got error %v, want class %q", err, expect)
	}
	if err == nil {
		return
	}
	var hit []string
	for _, s := range vecSentinels {
		if errors.Is(err, s) {
			hit = append(hit, s.Error())
		}
	}
	var nb *NeedBundleError
	if errors.As(err, &nb) {
		hit = append(hit, "NeedBundleError")
	}
	if len(hit) > 1 {
		t.Fatalf("error %v matches several classes: %q", err, hit)
	}
}

type vecField struct{ key, value string }

// A vecFile is one parsed vector file.
type vecFile struct {
	name   string
	fields []vecField
}

// parseVectorFile parses the key: value format strictly: every line is
// "key: value" (value may be empty), the first three keys are case,
// expect, description, and the case equals the file name.
func parseVectorFile(name string, data []byte) (*vecFile, error) {
	if !bytes.HasSuffix(data, []byte("\n")) {
		return nil, errors.New("missing final newline")
	}
	v := &vecFile{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		k, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || k == "" || strings.TrimSpace(k) != k || (val != "" && !strings.HasPrefix(val, " ")) {
			return nil, fmt.Errorf("bad line %q", sc.Text())
		}
		v.fields = append(v.fields, vecField{k, strings.TrimPrefix(val, " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(v.fields) < 3 || v.fields[0].key != "case" || v.fields[1].key != "expect" || v.fields[2].key != "description" {
		return nil, errors.New("header must start with case, expect, description")
	}
	if v.fields[0].value+".txt" != name {
		return nil, fmt.Errorf("case %q in file %s", v.fields[0].value, name)
	}
	return v, nil
}

func (v *vecFile) all(key string) []string {
	var out []string
	for _, f := range v.fields {
		if f.key == key {
			out = append(out, f.value)
		}
	}
	return out
}

// str returns the one value of key, or "" and false if it is absent. A
// repeated key is an error.
func (v *vecFile) str(key string) (string, bool, error) {
	vals := v.all(key)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
		return vals[0], true, nil
	}
	return "", false, fmt.Errorf("key %q repeated", key)
}

// optional returns the value of key, or "" when the vector has none.
func (v *vecFile) optional(key string) string {
	s, _, _ := v.str(key)
	return s
}

func (v *vecFile) must(t testing.TB, key string) string {
	t.Helper()
	s, ok, err := v.str(key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("missing key %q", key)
	}
	return s
}

func (v *vecFile) bytes(t testing.TB, key string) []byte {
	t.Helper()
	return vecB64(t, v.must(t, key))
}

func vecB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatalf("vector base64: %v", err)
	}
	return b
}

func (v *vecFile) expect() string { return v.fields[1].value }
func (v *vecFile) kind() string   { k, _, _ := v.str("kind"); return k }

// loadVectors reads every vector file. It does not need a *testing.T so
// that fuzz targets can use it for seeds.
func loadVectors() ([]*vecFile, error) {
	names, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []*vecFile
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		v, err := parseVectorFile(filepath.Base(n), data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func TestVectors(t *testing.T) {
	vs, err := loadVectors()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) < minVectors {
		t.Fatalf("%d vector files in %s, want at least %d (run make vectors)", len(vs), vectorDir, minVectors)
	}
	counts := map[string]int{}
	for _, v := range vs {
		counts[v.expect()]++
		t.Run(strings.TrimSuffix(v.name, ".txt"), func(t *testing.T) {
			t.Parallel()
			if v.kind() == "session" {
				runSessionVector(t, v)
			} else {
				runElementVector(t, v)
			}
		})
	}
	t.Logf("%d vectors by class: %v", len(vs), counts)
}

// runElementVector runs one stateless decoder (and Verify) on input.
func runElementVector(t *testing.T, v *vecFile) {
	in := v.bytes(t, "input")
	var err error
	var remarshal func() ([]byte, error)
	switch k := v.kind(); k {
	case "bundle":
		var bu *Bundle
		if bu, err = ParseBundle(in); err == nil {
			remarshal = func() ([]byte, error) { return bu.Marshal(), nil }
			err = bu.Verify(v.must(t, "owner"))
		}
	case "bundle-xml":
		var bu *Bundle
		if bu, err = ParseBundleXML(in); err == nil {
			remarshal = func() ([]byte, error) { return MarshalBundleXML(bu) }
			err = bu.Verify(v.must(t, "owner"))
		}
	case "presence":
		var p *PresenceElement
		if p, err = ParsePresenceElement(in); err == nil {
			remarshal = func() ([]byte, error) { return xml.Marshal(p) }
			err = p.Verify(v.must(t, "from"))
		}
	case "chat":
		var c *ChatElement
		if c, err = ParseChatElement(in); err == nil {
			remarshal = func() ([]byte, error) { return xml.Marshal(c) }
		}
	case "protected":
		var p *ProtectedElement
		if p, err = ParseProtectedElement(in); err == nil {
			remarshal = func() ([]byte, error) { return xml.Marshal(p) }
		}
	case "envelope":
		var ev *Envelope
		if ev, err = ParseEnvelope(in); err == nil {
			remarshal = ev.Marshal
		}
	default:
		t.Fatalf("unknown kind %q", k)
	}
	vecCheckClass(t, v.expect(), err)
	if err == nil {
		// Success vectors are canonical: parse then marshal gives the input.
		out, err := remarshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("re-marshalled input differs:\n got %q\nwant %q", out, in)
		}
	}
}

// vecSession is a session vector ready to run.
type vecSession struct {
	seed      []byte
	jid       string
	suites    []SuiteID
	trust     bool
	dump      []byte
	ctx       Context
	element   string
	priors    [][]byte
	message   []byte
	plaintext []byte
}

func loadSessionVector(t testing.TB, v *vecFile) *vecSession {
	t.Helper()
	s := &vecSession{
		seed:    v.bytes(t, "seed"),
		jid:     v.must(t, "jid"),
		dump:    v.bytes(t, "store"),
		element: v.must(t, "element"),
		message: v.bytes(t, "message"),
		ctx: Context{From: v.must(t, "from"), To: v.must(t, "to"),
			StanzaKind: v.must(t, "stanza-kind"), StanzaType: v.must(t, "stanza-type"), StanzaID: v.optional("stanza-id")},
	}
	var err error
	if s.suites, err = parseSuites(v.must(t, "suites")); err != nil {
		t.Fatal(err)
	}
	switch tr := v.must(t, "trust"); tr {
	case "none":
	case "tofu":
		s.trust = true
	default:
		t.Fatalf("trust %q", tr)
	}
	for _, p := range v.all("prior") {
		s.priors = append(s.priors, vecB64(t, p))
	}
	if v.expect() == "success" {
		s.plaintext = v.bytes(t, "plaintext")
	}
	return s
}

// engine restores the receiving engine into a fresh memory store.
func (s *vecSession) engine(t testing.TB) *Engine {
	t.Helper()
	if len(s.seed) != ed25519.SeedSize {
		t.Fatalf("seed of %d bytes", len(s.seed))
	}
	st := store.NewMemory()
	if err := vecRestoreStore(st, s.dump); err != nil {
		t.Fatal(err)
	}
	cfg := Config{JID: s.jid, Signer: identity.NewMemorySigner(ed25519.NewKeyFromSeed(s.seed)),
		Store: st, Suites: s.suites, Now: vectorNow}
	if s.trust {
		cfg.Trust = &PinningTrust{Store: trust.New(st, vectorNow)}
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("restoring engine: %v", err)
	}
	return e
}

// open opens one message element (chat or protected) and returns the
// plaintext: the body, or the envelope content.
func (s *vecSession) open(e *Engine, el []byte) ([]byte, error) {
	switch s.element {
	case "chat":
		c, err := ParseChatElement(el)
		if err != nil {
			return nil, err
		}
		body, _, err := e.OpenChat(s.ctx, c)
		return []byte(body), err
	case "protected":
		p, err := ParseProtectedElement(el)
		if err != nil {
			return nil, err
		}
		ev, _, err := e.Unprotect(s.ctx, p)
		if err != nil {
			return nil, err
		}
		return ev.Content, nil
	}
	return nil, fmt.Errorf("unknown element %q", s.element)
}

// prepare restores the engine and opens the priors.
func (s *vecSession) prepare(t testing.TB) *Engine {
	t.Helper()
	e := s.engine(t)
	for i, p := range s.priors {
		if _, err := s.open(e, p); err != nil {
			t.Fatalf("prior message %d: %v", i, err)
		}
	}
	return e
}

func runSessionVector(t *testing.T, v *vecFile) {
	s := loadSessionVector(t, v)
	e := s.prepare(t)
	pt, err := s.open(e, s.message)
	vecCheckClass(t, v.expect(), err)
	if err == nil && !bytes.Equal(pt, s.plaintext) {
		t.Fatalf("plaintext %q, want %q", pt, s.plaintext)
	}
}

// TestVectorsBitFlip flips one bit at a time in the binary message of
// every success session vector (and in the envelope of auth-only ones)
// and requires the result not to open.
func TestVectorsBitFlip(t *testing.T) {
	vs, err := loadVectors()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range vs {
		if v.kind() != "session" || v.expect() != "success" {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(v.name, ".txt"), func(t *testing.T) {
			t.Parallel()
			s := loadSessionVector(t, v)
			self := s.engine(t).Device()
			type target struct {
				name string
				data []byte
				el   func([]byte) []byte
				pos  []int
			}
			var targets []target
			switch s.element {
			case "chat":
				c, err := ParseChatElement(s.message)
				if err != nil {
					t.Fatal(err)
				}
				targets = append(targets, target{"blob", c.Blob, func(b []byte) []byte { return vecMarshal(t, &ChatElement{Blob: b}) },
					vecOwnPositions(t, c.Blob, self)})
			case "protected":
				p, err := ParseProtectedElement(s.message)
				if err != nil {
					t.Fatal(err)
				}
				targets = append(targets, target{"blob", p.Blob, func(b []byte) []byte {
					q := *p
					q.Blob = b
					return vecMarshal(t, &q)
				}, vecOwnPositions(t, p.Blob, self)})
				if p.AuthOnly {
					targets = append(targets, target{"envelope", p.Envelope, func(b []byte) []byte {
						q := *p
						q.Envelope = b
						return vecMarshal(t, &q)
					}, vecFlipPositions(0, len(p.Envelope))})
				}
			}
			for _, tg := range targets {
				for _, i := range tg.pos {
					bad := bytes.Clone(tg.data)
					bad[i] ^= 1 << (i % 8)
					e := s.prepare(t)
					if pt, err := s.open(e, tg.el(bad)); err == nil {
						t.Fatalf("%s with bit %d of byte %d flipped opened: %q", tg.name, i%8, i, pt)
					}
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no success session vectors")
	}
}

// vecOwnPositions returns the positions to flip in a message blob: the
// sender device id and the entry for device self. Entries for other
// devices are not authenticated to this one (each entry is its own AEAD
// message), so flips there are not this device's business.
func vecOwnPositions(t *testing.T, blob []byte, self uint32) []int {
	t.Helper()
	_, es, err := parseEntries(blob)
	if err != nil {
		t.Fatal(err)
	}
	out := vecFlipPositions(0, 4)
	off := 4
	for _, en := range es {
		var b builder
		b.u32(en.device)
		b.u8(en.kind)
		b.vbytes(en.body)
		if en.device == self {
			out = append(out, vecFlipPositions(off, off+len(b))...)
		}
		off += len(b)
	}
	if off != len(blob) {
		t.Fatalf("entries re-encode to %d bytes, blob has %d", off, len(blob))
	}
	return out
}

// vecFlipPositions returns byte positions in [from, to) to flip: all of a
// short range, or 160 spread over a long one plus its last 32 bytes (the
// AEAD tag).
func vecFlipPositions(from, to int) []int {
	n := to - from
	var out []int
	if n <= 192 {
		for i := from; i < to; i++ {
			out = append(out, i)
		}
		return out
	}
	for i := 0; i < 160; i++ {
		out = append(out, from+i*(n-32)/160)
	}
	for i := to - 32; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func vecMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := xml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The store dump is a sequence of records, each three length-prefixed
// byte strings: bucket, key, value, each with a 32-bit big-endian length.
// Records are sorted by bucket, then key.

func vecEncodeStore(st store.Store, buckets []string) ([]byte, error) {
	buckets = slices.Clone(buckets)
	slices.Sort(buckets)
	buckets = slices.Compact(buckets)
	var out []byte
	err := st.View(func(tx store.Tx) error {
		for _, bk := range buckets {
			err := tx.ForEach(bk, func(k string, v []byte) error {
				for _, p := range [][]byte{[]byte(bk), []byte(k), v} {
					out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
					out = append(out, p...)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func vecRestoreStore(st store.Store, dump []byte) error {
	return st.Update(func(tx store.Tx) error {
		for len(dump) > 0 {
			var rec [3][]byte
			for i := range rec {
				if len(dump) < 4 {
					return errors.New("store dump: truncated length")
				}
				n := binary.BigEndian.Uint32(dump)
				dump = dump[4:]
				if uint64(n) > uint64(len(dump)) {
					return errors.New("store dump: truncated value")
				}
				rec[i], dump = dump[:n], dump[n:]
			}
			if err := tx.Put(string(rec[0]), string(rec[1]), rec[2]); err != nil {
				return err
			}
		}
		return nil
	})
}

// vecEngineBuckets are the engine's own buckets; trust records live in
// buckets named per peer JID (see package trust) and are added by the
// generator from what it saw written.
var vecEngineBuckets = []string{bucketSelf, bucketPrekeys, bucketOwnBundles, bucketPeers, bucketSessions, bucketReplay}
