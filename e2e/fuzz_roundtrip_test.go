package e2e

import (
	"bytes"
	"errors"
	"testing"

	"github.com/securejingle/securejingle/e2e/attest"
)

// Round-trip fuzz targets (issue 7): for every decoder of the package,
// parse → re-encode → parse gives an equal value, the re-encoding is the
// canonical one (re-encoding again gives the same bytes), and everything a
// caller does with a parsed value (Hash, Verify, Matches, String, the
// other format, attestation checks) never panics. They are seeded from
// testdata/e2e like the targets of fuzz_test.go and fail without seeds.

// fuzzRegistry checks attestations as the daemon does.
var fuzzRegistry = attest.NewRegistry(attest.SelfVerifier{}, &attest.OpenPGPVerifier{}, attest.NewX509Verifier(nil))

// exerciseBundle is the property of every parsed bundle: it re-encodes in
// both forms to bytes that parse back to the same bundle, and nothing a
// caller does with it panics.
func exerciseBundle(t *testing.T, bu *Bundle, p *PresenceElement) {
	t.Helper()
	bin := bu.Marshal()
	b2, err := ParseBundle(bin)
	if err != nil {
		t.Fatalf("a parsed bundle's binary form does not parse: %v\n%x", err, bin)
	}
	if out := b2.Marshal(); !bytes.Equal(out, bin) {
		t.Fatalf("binary round trip:\n in %x\nout %x", bin, out)
	}
	x, err := MarshalBundleXML(bu)
	if err != nil {
		t.Fatalf("a parsed bundle does not marshal as XML: %v", err)
	}
	b3, err := ParseBundleXML(x)
	if err != nil {
		t.Fatalf("a parsed bundle's XML form does not parse: %v\n%s", err, x)
	}
	if !bytes.Equal(b3.Marshal(), bin) {
		t.Fatalf("XML round trip changed the bundle:\n%s", x)
	}
	if x2, _ := MarshalBundleXML(b3); !bytes.Equal(x2, x) {
		t.Fatalf("XML form not canonical:\n%s\n%s", x, x2)
	}
	if bu.Hash() != b2.Hash() || bu.Hash() != b3.Hash() {
		t.Fatal("hash changed in a round trip")
	}
	// What callers do with it.
	err = bu.Verify(bu.JID)
	if err != nil && !errors.Is(err, ErrBadBundle) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("Verify: unexpected error class %v", err)
	}
	if bu.Verify("someone-else@example.org") == nil {
		t.Fatalf("bundle of %q verified for another owner", bu.JID)
	}
	self := &PresenceElement{Device: bu.Device, Identity: bu.Identity, BundleHash: bu.Hash()}
	if !self.Matches(bu) {
		t.Fatal("a bundle does not match a presence naming its own hash")
	}
	if p != nil {
		p.Matches(bu)
	}
	for _, id := range DefaultSuites {
		if pk, err := bu.prekeyFor(LookupSuite(id), vectorNow()); err == nil && pk.KEM != LookupSuite(id).KEM {
			t.Fatalf("suite %v got a prekey of KEM 0x%04x", id, pk.KEM)
		}
	}
	for _, r := range fuzzRegistry.Verify(attest.Statement{JID: bu.JID, Key: bu.Account}, bu.Attestations) {
		_ = r.String()
	}
	for _, s := range bu.Suites {
		_ = s.String()
	}
}

// FuzzRoundTripBundle feeds every input to both bundle parsers.
func FuzzRoundTripBundle(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["bundle"], c.elements["bundle-xml"], c.bundles, [][]byte{live.bundle, live.bundleXML})
	p, err := ParsePresenceElement(live.presence)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bu, err := ParseBundle(data); err == nil {
			if out := bu.Marshal(); !bytes.Equal(out, data) {
				t.Fatalf("binary form not canonical:\n in %x\nout %x", data, out)
			}
			exerciseBundle(t, bu, p)
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseBundle: error class %v", err)
		}
		if bu, err := ParseBundleXML(data); err == nil {
			exerciseBundle(t, bu, p)
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseBundleXML: error class %v", err)
		}
	})
}

// FuzzRoundTripPresence: a parsed presence element re-marshals to a
// canonical form that parses back equal; Verify and Matches never panic.
func FuzzRoundTripPresence(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["presence"], [][]byte{live.presence})
	bu, err := ParseBundle(live.bundle)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePresenceElement(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error class %v", err)
			}
			return
		}
		x := vecMarshal(t, p)
		p2, err := ParsePresenceElement(x)
		if err != nil {
			t.Fatalf("re-marshalled element does not parse: %v\n%s", err, x)
		}
		if x2 := vecMarshal(t, p2); !bytes.Equal(x, x2) {
			t.Fatalf("not canonical:\n%s\n%s", x, x2)
		}
		if p.Device != p2.Device || !bytes.Equal(p.Identity, p2.Identity) || p.BundleHash != p2.BundleHash || !bytes.Equal(p.Signature, p2.Signature) {
			t.Fatalf("round trip changed the element: %q -> %q", data, x)
		}
		for _, from := range []string{"alice@example.org", "bob@example.net", "", "a/b"} {
			if err := p.Verify(from); err != nil && !errors.Is(err, ErrBadBundle) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify(%q): error class %v", from, err)
			}
		}
		p.Matches(bu)
	})
}

// exerciseBlob parses a message blob's entries and every handshake block
// and header in them; entries re-encode to the blob, and an inline bundle
// gets the bundle property.
func exerciseBlob(t *testing.T, blob []byte) {
	t.Helper()
	sender, es, err := parseEntries(blob)
	if err != nil {
		return
	}
	var out builder
	out.u32(sender)
	for _, en := range es {
		out.u32(en.device)
		out.u8(en.kind)
		out.vbytes(en.body)
		exerciseEntry(t, en.kind, en.body)
	}
	if !bytes.Equal(out, blob) {
		t.Fatalf("entries round trip:\n in %x\nout %x", blob, []byte(out))
	}
}

// exerciseEntry reads an entry body's prefix as openEntry does and
// requires its re-encoding to be the prefix read.
func exerciseEntry(t *testing.T, kind byte, body []byte) {
	t.Helper()
	r := reader{b: body}
	var out builder
	switch kind & kindMask {
	case kindInit:
		ib := readInitBlock(&r)
		if r.err != nil {
			return
		}
		ib.marshal(&out)
		_ = initID(ib.enc)
		if len(ib.inlineBundle) > 0 {
			if bu, err := ParseBundle(ib.inlineBundle); err == nil {
				exerciseBundle(t, bu, nil)
			}
		}
	case kindResp:
		rb := readRespBlock(&r)
		if r.err != nil {
			return
		}
		rb.marshal(&out)
	}
	h := readHeader(&r, kind&kindMask != kindShort)
	if r.err != nil {
		return
	}
	h.marshal(&out)
	if prefix := body[:len(body)-len(r.b)]; !bytes.Equal(out, prefix) {
		t.Fatalf("entry prefix round trip (kind %d):\n in %x\nout %x", kind, prefix, []byte(out))
	}
}

// FuzzRoundTripChat: canonical re-encoding of <c/>, and the blob inside.
func FuzzRoundTripChat(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["chat"], c.elements["message-xml"], [][]byte{live.chat})
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := ParseChatElement(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error class %v", err)
			}
			return
		}
		x := vecMarshal(t, el)
		el2, err := ParseChatElement(x)
		if err != nil || !bytes.Equal(el.Blob, el2.Blob) {
			t.Fatalf("round trip: %q -> %q (%v)", data, x, err)
		}
		if x2 := vecMarshal(t, el2); !bytes.Equal(x, x2) {
			t.Fatalf("not canonical:\n%s\n%s", x, x2)
		}
		exerciseBlob(t, el.Blob)
	})
}

// FuzzRoundTripProtected: canonical re-encoding of <p/>, its envelope and
// its blob.
func FuzzRoundTripProtected(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["protected"], c.elements["message-xml"], [][]byte{live.enc, live.auth})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProtectedElement(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error class %v", err)
			}
			return
		}
		x := vecMarshal(t, p)
		p2, err := ParseProtectedElement(x)
		if err != nil || p.AuthOnly != p2.AuthOnly || !bytes.Equal(p.Blob, p2.Blob) || !bytes.Equal(p.Envelope, p2.Envelope) {
			t.Fatalf("round trip: %q -> %q (%v)", data, x, err)
		}
		if x2 := vecMarshal(t, p2); !bytes.Equal(x, x2) {
			t.Fatalf("not canonical:\n%s\n%s", x, x2)
		}
		exerciseBlob(t, p.Blob)
		if p.AuthOnly {
			exerciseEnvelope(t, p.Envelope)
		}
	})
}

// exerciseEnvelope: a parsed envelope marshals to bytes that parse back
// equal and marshal again to the same bytes.
func exerciseEnvelope(t *testing.T, data []byte) {
	t.Helper()
	ev, err := ParseEnvelope(data)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error class %v", err)
		}
		return
	}
	x, err := ev.Marshal()
	if err != nil {
		t.Fatalf("parsed envelope does not marshal: %v", err)
	}
	ev2, err := ParseEnvelope(x)
	if err != nil {
		t.Fatalf("re-marshalled envelope does not parse: %v\n%q", err, x)
	}
	if !bytes.Equal(ev.Content, ev2.Content) || ev.RPad != ev2.RPad || !ev.Time.Equal(ev2.Time) || ev.To != ev2.To || ev.From != ev2.From {
		t.Fatalf("round trip changed the envelope:\n in %q\nout %q", data, x)
	}
	if x2, err := ev2.Marshal(); err != nil || !bytes.Equal(x, x2) {
		t.Fatalf("not canonical (%v):\n%q\n%q", err, x, x2)
	}
}

// FuzzRoundTripEnvelope runs exerciseEnvelope on any input.
func FuzzRoundTripEnvelope(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["envelope"], [][]byte{live.envelope})
	f.Fuzz(exerciseEnvelope)
}

// FuzzRoundTripEntry: one entry body of any kind, as openEntry reads it.
func FuzzRoundTripEntry(f *testing.F) {
	c := fuzzSeeds(f)
	n := 0
	for _, blob := range c.blobs {
		_, es, err := parseEntries(blob)
		if err != nil {
			continue
		}
		for _, en := range es {
			f.Add(en.kind, en.body)
			n++
		}
	}
	if n == 0 {
		f.Fatal("no seeds: regenerate testdata/e2e (make vectors)")
	}
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		exerciseEntry(t, kind, body)
	})
}

// FuzzRoundTripSession: stored session state re-encodes byte for byte,
// and what the engine does with a loaded session (print it, check it,
// clone it, derive the next sending key) never panics.
func FuzzRoundTripSession(f *testing.F) {
	c := fuzzSeeds(f)
	fuzzAdd(f, c.sessions)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSession(data)
		if err != nil {
			return
		}
		out := s.marshal()
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip:\n in %x\nout %x", data, out)
		}
		s2, err := parseSession(out)
		if err != nil || !bytes.Equal(s2.marshal(), out) {
			t.Fatalf("re-parse: %v", err)
		}
		_ = s.established()
		_ = s.r.String()
		r := s.r.clone()
		if _, _, err := r.sendHeader(); err == nil {
			var b builder
			r.marshal(&b)
		}
		if len(s.initBlock) > 0 {
			rd := reader{b: s.initBlock}
			readInitBlock(&rd)
		}
	})
}

// FuzzOpenFirstMessage feeds arbitrary blobs to an engine restored from
// the session-inline-bundle vector: a responder with no session that a
// stranger's first message (with its bundle inline) reaches. Nothing may
// panic, and nothing but a genuine first message of that state opens.
func FuzzOpenFirstMessage(f *testing.F) {
	vs, err := loadVectors()
	if err != nil {
		f.Fatal(err)
	}
	var base *vecFile
	for _, v := range vs {
		if v.name == "session-inline-bundle.txt" {
			base = v
		}
	}
	if base == nil {
		f.Fatal("no session-inline-bundle vector: regenerate testdata/e2e (make vectors)")
	}
	s := loadSessionVector(f, base)
	self := s.engine(f).Device()
	genuine := map[string]bool{}
	var seeds [][]byte
	for _, v := range vs {
		if v.kind() != "session" {
			continue
		}
		for _, m := range append(v.all("prior"), v.all("message")...) {
			el := vecB64(f, m)
			ce, err := ParseChatElement(el)
			if err != nil {
				continue
			}
			seeds = append(seeds, ce.Blob)
			if bytes.Equal(v.bytes(f, "store"), s.dump) && v.expect() == "success" {
				if k, ok := fuzzOwnEntry(ce.Blob, self); ok {
					genuine[k] = true
				}
			}
		}
	}
	if len(genuine) == 0 {
		f.Fatal("no genuine first message for the inline-bundle state")
	}
	fuzzAdd(f, seeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		e := s.engine(t)
		body, _, err := e.OpenChat(s.ctx, &ChatElement{Blob: data})
		if err != nil {
			return
		}
		k, ok := fuzzOwnEntry(data, self)
		if !ok || !genuine[k] {
			t.Fatalf("a first message that alice never sent opened: %q from %x", body, data)
		}
	})
}

// FuzzRoundTripDeviceList: device lists and device-list elements (binary
// and XML), as PEP and notifications bring them; a parsed list
// re-encodes canonically in both forms, and verifying it or merging it
// into an engine never panics. Seeded from the lists embedded in the
// bundle vectors and a freshly signed list.
func FuzzRoundTripDeviceList(f *testing.F) {
	n := 0
	for _, v := range fuzzSeeds(f).bundles {
		if bu, err := ParseBundle(v); err == nil && bu.List != nil {
			f.Add(bu.List.Marshal())
			if x, err := MarshalDeviceListXML(bu.List); err == nil {
				f.Add(x)
			}
			n++
		}
	}
	clk := newClock()
	e := newTestEngine(f, "alice@example.org", clk)
	l := mustList(f, e.Engine)
	f.Add(l.Marshal())
	x, _ := MarshalDeviceListXML(l)
	f.Add(x)
	if n == 0 {
		f.Fatal("no bundle vector embeds a device list: regenerate testdata/e2e (make vectors)")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, parse := range []func([]byte) (*DeviceList, error){ParseDeviceList, ParseDeviceListXML} {
			l, err := parse(b)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("parse error is not ErrMalformed: %v", err)
				}
				continue
			}
			bin := l.Marshal()
			l2, err := ParseDeviceList(bin)
			if err != nil || !bytes.Equal(l2.Marshal(), bin) {
				t.Fatalf("binary round trip: %v", err)
			}
			x, err := MarshalDeviceListXML(l)
			if err != nil {
				t.Fatal(err)
			}
			l3, err := ParseDeviceListXML(x)
			if err != nil || !bytes.Equal(l3.Marshal(), bin) {
				t.Fatalf("XML round trip: %v", err)
			}
			_ = l.Verify(l.JID)
			_, _ = e.AddDeviceList(l.JID, l)
		}
	})
}
