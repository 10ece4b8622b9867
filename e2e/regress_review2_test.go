package e2e

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Regression tests for the size findings of the second review (issue 7,
// finding 1): every size field a peer controls is bounded at parse time,
// so nothing a parser returns can make the canonical writers panic.

// oversize is bigger than any bound and than a 16-bit length.
const oversize = 70 << 10

// regressBundle returns a valid signed bundle of a fresh engine with both
// registered KEMs and an attestation.
func regressBundle(t *testing.T) (*testEngine, *Bundle) {
	t.Helper()
	e := newTestEngine(t, "mallory@example.org", newClock())
	bu, err := ParseBundle(e.Bundle().Marshal())
	if err != nil {
		t.Fatal(err)
	}
	// An attestation, so its fields are grown too (the signature no
	// longer verifies; shapes are what is tested).
	bu.Attestations = append(bu.Attestations, Attestation{Type: "x-test", Data: []byte("statement")})
	if len(bu.Prekeys) < 2 {
		t.Fatalf("test bundle has %d prekeys", len(bu.Prekeys))
	}
	return e, bu
}

// useParsed calls everything a caller may call on a parsed bundle; none
// of it may panic.
func useParsed(t *testing.T, bu *Bundle, p *PresenceElement) {
	t.Helper()
	_ = bu.Verify(bu.JID)
	_ = bu.Hash()
	_ = bu.Marshal()
	if p != nil {
		_ = p.Matches(bu)
	}
	if _, err := MarshalBundleXML(bu); err != nil {
		t.Errorf("parsed bundle does not marshal as XML: %v", err)
	}
}

// parseNoPanic runs parse and turns a panic into a test failure.
func parseNoPanic(t *testing.T, what string, parse func() (*Bundle, error)) (bu *Bundle, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v", what, r)
		}
	}()
	return parse()
}

func TestRegressBundleOversizePrekeyCrash(t *testing.T) {
	e, good := regressBundle(t)
	presence := e.Presence()

	t.Run("xml", func(t *testing.T) {
		for _, kem := range []uint16{kemXWing, kemX25519, 0x7777} {
			bu, _ := ParseBundle(good.Marshal())
			bu.Prekeys[0].KEM = kem
			bu.Prekeys[0].Public = bytes.Repeat([]byte{0x42}, oversize)
			x, err := MarshalBundleXML(bu)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseNoPanic(t, "ParseBundleXML", func() (*Bundle, error) { return ParseBundleXML(x) })
			if err == nil {
				// What the gateway does with a fetched bundle (ensureBundle).
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("KEM 0x%04x: Matches/Hash/Verify of a parsed bundle panic: %v", kem, r)
						}
					}()
					useParsed(t, got, presence)
				}()
				t.Fatalf("KEM 0x%04x: a %d-byte prekey parsed", kem, oversize)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("KEM 0x%04x: %v, want ErrMalformed", kem, err)
			}
		}
	})

	t.Run("binary", func(t *testing.T) {
		// The 16-bit length of the binary form caps a prekey at 65535
		// bytes; as large as it goes, and a whole bundle of 70 KB.
		for _, kem := range []uint16{kemXWing, 0x7777} {
			bu, _ := ParseBundle(good.Marshal())
			bu.Prekeys[0].KEM = kem
			bu.Prekeys[0].Public = bytes.Repeat([]byte{0x42}, 0xffff)
			bin := bu.Marshal()
			got, err := parseNoPanic(t, "ParseBundle", func() (*Bundle, error) { return ParseBundle(bin) })
			if err == nil {
				useParsed(t, got, presence)
				t.Fatalf("KEM 0x%04x: a 65535-byte prekey parsed", kem)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("KEM 0x%04x: %v, want ErrMalformed", kem, err)
			}
		}
		// 70 KB of attestations: every field within its own bound, the
		// whole over MaxBundleSize.
		bu, _ := ParseBundle(good.Marshal())
		for len(bu.Attestations) < maxAttestations {
			bu.Attestations = append(bu.Attestations, Attestation{Type: "x-pad", Data: bytes.Repeat([]byte{1}, 4800)})
		}
		bin := bu.Marshal()
		if len(bin) < oversize {
			t.Fatalf("test bundle only %d bytes", len(bin))
		}
		if _, err := parseNoPanic(t, "ParseBundle", func() (*Bundle, error) { return ParseBundle(bin) }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d-byte bundle: %v, want ErrMalformed", len(bin), err)
		}
		x, err := MarshalBundleXML(bu)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseNoPanic(t, "ParseBundleXML", func() (*Bundle, error) { return ParseBundleXML(x) }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d-byte bundle as XML: %v, want ErrMalformed", len(bin), err)
		}
	})

	t.Run("wrong-size-prekey", func(t *testing.T) {
		// Off by one for each registered KEM.
		for kem, sz := range kemSize {
			for _, n := range []int{sz.publicKey - 1, sz.publicKey + 1} {
				bu, _ := ParseBundle(good.Marshal())
				bu.Prekeys[0].KEM = kem
				bu.Prekeys[0].Public = make([]byte, n)
				if _, err := ParseBundle(bu.Marshal()); !errors.Is(err, ErrMalformed) {
					t.Errorf("KEM 0x%04x, %d-byte prekey: %v, want ErrMalformed", kem, n, err)
				}
			}
		}
	})

	t.Run("unknown-kem-kept", func(t *testing.T) {
		// A prekey of a KEM we do not know (a newer suite) within the
		// generic bound is kept and never used, like an unknown suite id.
		bu, _ := ParseBundle(good.Marshal())
		bu.Prekeys[0].KEM = 0x7777
		bu.Prekeys[0].Public = make([]byte, maxUnknownKEMSize)
		got, err := ParseBundle(bu.Marshal())
		if err != nil {
			t.Fatalf("bundle with an unknown-KEM prekey: %v", err)
		}
		for _, id := range DefaultSuites {
			if p, err := got.prekeyFor(LookupSuite(id), clkNow(e)); err == nil && p.KEM == 0x7777 {
				t.Errorf("suite %v picked the unknown-KEM prekey", id)
			}
		}
	})

	t.Run("every-field", func(t *testing.T) {
		// Grow each variable-length field of a valid bundle in turn (a new
		// field the bundle gets is covered by itself): check rejects it,
		// and so do both parsers, without a panic.
		n := 0
		for k := 0; ; k++ {
			bu, _ := ParseBundle(good.Marshal())
			skip := k
			path, ok := growField(reflect.ValueOf(bu).Elem(), "Bundle", &skip)
			if !ok {
				break
			}
			n++
			if err := bu.check(); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s oversized: check says %v, want ErrMalformed", path, err)
				continue
			}
			x, err := MarshalBundleXML(bu)
			if err != nil {
				continue // not expressible as XML at all
			}
			if got, err := parseNoPanic(t, path, func() (*Bundle, error) { return ParseBundleXML(x) }); err == nil {
				useParsed(t, got, presence)
				t.Errorf("%s oversized: ParseBundleXML accepted it", path)
			}
		}
		if n < 10 {
			t.Fatalf("only %d fields grown", n)
		}
	})
}

// growField finds the k-th variable-length field under v (depth first),
// makes it oversize and returns its path; ok is false when there are
// fewer than k+1 such fields. Byte slices and strings get oversize bytes;
// other slices get 300 elements (more than any count); structs (except
// time.Time) and the first element of a slice are walked into.
func growField(v reflect.Value, path string, k *int) (string, bool) {
	hit := func() bool {
		if *k == 0 {
			return true
		}
		*k--
		return false
	}
	switch v.Kind() {
	case reflect.String:
		if hit() {
			v.SetString(strings.Repeat("a", oversize))
			return path, true
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if hit() {
				v.SetBytes(bytes.Repeat([]byte{0x41}, oversize))
				return path, true
			}
			return "", false
		}
		if hit() {
			var elem reflect.Value
			if v.Len() > 0 {
				elem = v.Index(0)
			} else {
				elem = reflect.Zero(v.Type().Elem())
			}
			grown := reflect.MakeSlice(v.Type(), 300, 300)
			for i := range 300 {
				grown.Index(i).Set(elem)
				if elem.Kind() == reflect.Uint16 { // keep ids distinct (suites)
					grown.Index(i).SetUint(uint64(i + 1))
				}
			}
			v.Set(grown)
			return path + " count", true
		}
		if v.Len() > 0 {
			return growField(v.Index(0), path+"[0]", k)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return "", false
		}
		for i := range v.NumField() {
			if p, ok := growField(v.Field(i), path+"."+v.Type().Field(i).Name, k); ok {
				return p, true
			}
		}
	}
	return "", false
}

// TestRegressInitBlockSizes: a first message's encapsulation and
// ephemeral key have exactly the chosen suite's KEM sizes, and its inline
// bundle is at most MaxBundleSize.
func TestRegressInitBlockSizes(t *testing.T) {
	good := func(sid SuiteID) *initBlock {
		sz := kemSize[LookupSuite(sid).KEM]
		return &initBlock{suite: sid, enc: make([]byte, sz.enc), ephemeral: make([]byte, sz.publicKey),
			inlineBundle: []byte("x")}
	}
	parse := func(ib *initBlock) error {
		var b builder
		ib.marshal(&b)
		r := reader{b: b}
		readInitBlock(&r)
		return r.done()
	}
	for _, sid := range DefaultSuites {
		if err := parse(good(sid)); err != nil {
			t.Fatalf("%v: valid sizes rejected: %v", sid, err)
		}
		for name, edit := range map[string]func(*initBlock){
			"short enc":       func(ib *initBlock) { ib.enc = ib.enc[1:] },
			"long enc":        func(ib *initBlock) { ib.enc = append(ib.enc, 0) },
			"short ephemeral": func(ib *initBlock) { ib.ephemeral = ib.ephemeral[1:] },
			"long ephemeral":  func(ib *initBlock) { ib.ephemeral = append(ib.ephemeral, 0) },
			"oversize inline": func(ib *initBlock) { ib.inlineBundle = make([]byte, MaxBundleSize+1) },
		} {
			ib := good(sid)
			edit(ib)
			if err := parse(ib); !errors.Is(err, ErrMalformed) {
				t.Errorf("%v, %s: %v, want ErrMalformed", sid, name, err)
			}
		}
	}
	// A response's encapsulation is at most the largest registered one.
	var b builder
	(&respBlock{enc: make([]byte, maxKnownEnc+1), signature: make([]byte, 64)}).marshal(&b)
	r := reader{b: b}
	readRespBlock(&r)
	if err := r.done(); !errors.Is(err, ErrMalformed) {
		t.Errorf("response with a %d-byte encapsulation: %v, want ErrMalformed", maxKnownEnc+1, err)
	}
}

// TestKEMSizesMatchHPKE: the size table is the truth of crypto/hpke for
// the KEM of every registered suite.
func TestKEMSizesMatchHPKE(t *testing.T) {
	for id, su := range suites {
		sz, ok := kemSize[su.KEM]
		if !ok {
			t.Errorf("suite %v: KEM 0x%04x has no entry in kemSize (limits.go)", id, su.KEM)
			continue
		}
		kem, kdf, aead := su.hpke()
		priv, err := kem.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub := priv.PublicKey()
		enc, _, err := hpke.NewSender(pub, kdf, aead, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := (kemSizes{len(pub.Bytes()), len(enc)}); got != sz {
			t.Errorf("suite %v: hpke sizes %+v, table %+v", id, got, sz)
		}
		if sz.publicKey > maxUnknownKEMSize || sz.enc > maxUnknownKEMSize {
			t.Errorf("suite %v: sizes %+v above maxUnknownKEMSize", id, sz)
		}
	}
	// Every valid bundle fits its XML form into one element.
	if n := MaxBundleSize*4/3 + 16<<10; n > maxElementSize {
		t.Errorf("a %d-byte bundle may not fit maxElementSize as XML", MaxBundleSize)
	}
}

// TestRegressBundleBinaryXMLAgree: the binary and XML parsers accept the
// same bundles. The binary form read any u64 as issued and prekey expiry
// (≥ 2^63 turned negative, which the XML form cannot carry) and a prekey
// expiry of 0, which the XML parser refuses; a bundle fetched in one form
// and relayed in the other (inline in a first message, from PEP) must not
// change its fate. Found by FuzzRoundTripBundle.
func TestRegressBundleBinaryXMLAgree(t *testing.T) {
	_, good := regressBundle(t)
	for name, edit := range map[string]func(*Bundle){
		"issued 2^63":       func(bu *Bundle) { bu.Issued = time.Unix(-1<<63, 0).UTC() },
		"issued -1":         func(bu *Bundle) { bu.Issued = time.Unix(-1, 0).UTC() },
		"prekey expiry 0":   func(bu *Bundle) { bu.Prekeys[0].Expires = time.Unix(0, 0).UTC() },
		"prekey expiry -1":  func(bu *Bundle) { bu.Prekeys[1].Expires = time.Unix(-1, 0).UTC() },
		"prekey expiry max": func(bu *Bundle) { bu.Prekeys[1].Expires = time.Unix(-1<<63, 0).UTC() },
	} {
		bu, _ := ParseBundle(good.Marshal())
		edit(bu)
		_, errBin := ParseBundle(bu.Marshal())
		x, err := MarshalBundleXML(bu)
		if err != nil {
			t.Fatal(err)
		}
		_, errXML := ParseBundleXML(x)
		if !errors.Is(errBin, ErrMalformed) || !errors.Is(errXML, ErrMalformed) {
			t.Errorf("%s: binary parse %v, XML parse %v; want both ErrMalformed", name, errBin, errXML)
		}
	}
}

// TestRegressBundleJIDNotXML: a JID the XML form cannot carry (invalid
// UTF-8, a character outside XML 1.0) is malformed in every form; before,
// the binary parser accepted it and its XML re-encoding named another
// JID (the encoder writes U+FFFD), so a bundle changed owner in transit
// between the forms. Found by the FuzzRoundTripBundle property.
func TestRegressBundleJIDNotXML(t *testing.T) {
	_, good := regressBundle(t)
	for _, j := range []string{"a\xff@example.org", "a\ufffe@example.org", "a@example\xed\xa0\x80.org"} {
		bu, _ := ParseBundle(good.Marshal())
		bu.JID = j
		if _, err := ParseBundle(bu.Marshal()); !errors.Is(err, ErrMalformed) {
			t.Errorf("JID %q: binary parse %v, want ErrMalformed", j, err)
		}
		if err := checkBareJID(j); !errors.Is(err, ErrMalformed) {
			t.Errorf("JID %q: checkBareJID %v, want ErrMalformed", j, err)
		}
	}
}
