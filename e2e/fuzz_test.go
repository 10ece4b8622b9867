package e2e

import (
	"bytes"
	"sync"
	"testing"
)

// Fuzz targets for every decoder of the package. Each is seeded from the
// vector files in testdata/e2e and from values a live engine produces, and
// fails when it has no seeds. The property is a round trip (parse, then
// marshal, gives back the input or an equal value) or, for OpenChat, that
// nothing but a genuine message opens.

// fuzzCorpus is what the vector files yield as seeds, computed once.
type fuzzCorpus struct {
	elements map[string][][]byte // element vector inputs by kind
	blobs    [][]byte            // message blobs (chat and protected) of session vectors
	sessions [][]byte            // stored sessions from session vector dumps
	bundles  [][]byte            // stored bundles (binary) from dumps
	headers  []fuzzHeaderSeed    // ratchet headers found in entries
	inits    [][]byte            // init blocks found in entries
	resps    [][]byte            // response blocks found in entries
}

type fuzzHeaderSeed struct {
	data []byte
	full bool
}

var fuzzCorpusOnce = sync.OnceValues(func() (*fuzzCorpus, error) {
	vs, err := loadVectors()
	if err != nil {
		return nil, err
	}
	c := &fuzzCorpus{elements: map[string][][]byte{}}
	for _, v := range vs {
		if v.kind() != "session" {
			if in, ok, _ := v.str("input"); ok {
				if b, err := b64.DecodeString(in); err == nil {
					c.elements[v.kind()] = append(c.elements[v.kind()], b)
				}
			}
			continue
		}
		var msgs []string
		msgs = append(msgs, v.all("prior")...)
		msgs = append(msgs, v.all("message")...)
		for _, m := range msgs {
			el, err := b64.DecodeString(m)
			if err != nil {
				continue
			}
			c.elements["message-xml"] = append(c.elements["message-xml"], el)
			var blob []byte
			if ce, err := ParseChatElement(el); err == nil {
				blob = ce.Blob
			} else if pe, err := ParseProtectedElement(el); err == nil {
				blob = pe.Blob
				if pe.AuthOnly {
					c.elements["envelope"] = append(c.elements["envelope"], pe.Envelope)
				}
			} else {
				continue
			}
			c.blobs = append(c.blobs, blob)
			c.addEntries(blob)
		}
		if d, ok, _ := v.str("store"); ok {
			dump, err := b64.DecodeString(d)
			if err != nil {
				continue
			}
			for _, rec := range fuzzDumpRecords(dump) {
				switch rec[0] {
				case bucketSessions:
					c.sessions = append(c.sessions, []byte(rec[2]))
				case bucketPeers, bucketOwnBundles:
					c.bundles = append(c.bundles, []byte(rec[2]))
				}
			}
		}
	}
	return c, nil
})

// addEntries extracts headers and handshake blocks from a blob's entries.
func (c *fuzzCorpus) addEntries(blob []byte) {
	_, es, err := parseEntries(blob)
	if err != nil {
		return
	}
	for _, en := range es {
		r := reader{b: en.body}
		kind := en.kind & kindMask
		switch kind {
		case kindInit:
			start := r.b
			readInitBlock(&r)
			if r.err == nil {
				c.inits = append(c.inits, start[:len(start)-len(r.b)])
			}
		case kindResp:
			start := r.b
			readRespBlock(&r)
			if r.err == nil {
				c.resps = append(c.resps, start[:len(start)-len(r.b)])
			}
		}
		start := r.b
		readHeader(&r, kind != kindShort)
		if r.err == nil {
			c.headers = append(c.headers, fuzzHeaderSeed{start[:len(start)-len(r.b)], kind != kindShort})
		}
	}
}

// fuzzDumpRecords splits a store dump into (bucket, key, value) records;
// it stops at the first malformed record.
func fuzzDumpRecords(dump []byte) [][3]string {
	var out [][3]string
	r := reader{b: dump}
	for r.err == nil && len(r.b) > 0 {
		var rec [3]string
		for i := range rec {
			rec[i] = string(r.take(int(r.u32("length")), "record"))
		}
		if r.err == nil {
			out = append(out, rec)
		}
	}
	return out
}

// fuzzSeeds loads the corpus and fails the target if it cannot.
func fuzzSeeds(f *testing.F) *fuzzCorpus {
	f.Helper()
	c, err := fuzzCorpusOnce()
	if err != nil {
		f.Fatal(err)
	}
	return c
}

// fuzzAdd adds every input as a seed and fails the target if there is none.
func fuzzAdd(f *testing.F, inputs ...[][]byte) {
	f.Helper()
	n := 0
	for _, l := range inputs {
		for _, in := range l {
			f.Add(in)
			n++
		}
	}
	if n == 0 {
		f.Fatal("no seeds: regenerate testdata/e2e (make vectors)")
	}
	f.Logf("%d seeds", n)
}

// fuzzLiveValues are real values from a pair of live engines.
type fuzzLiveValues struct {
	bundle, bundleXML, presence, chat, enc, auth, envelope []byte
}

// fuzzLiveSeeds makes them (fresh engines for every target).
func fuzzLiveSeeds(f *testing.F) *fuzzLiveValues {
	f.Helper()
	clk := newClock()
	a := newTestEngine(f, "alice@example.org", clk)
	b := newTestEngine(f, "bob@example.net", clk)
	introduce(f, a, b)
	v := &fuzzLiveValues{bundle: a.Bundle().Marshal()}
	var err error
	if v.bundleXML, err = MarshalBundleXML(a.Bundle()); err != nil {
		f.Fatal(err)
	}
	v.presence = vecMarshal(f, a.Presence())
	v.chat = vecMarshal(f, send(f, a, b, "hello"))
	c := Context{From: a.JID(), To: b.JID(), StanzaKind: "iq", StanzaType: "get", StanzaID: "iq1"}
	content := []byte(`<query xmlns="jabber:iq:version"/>`)
	pe, err := a.Protect(c, []Device{dev(b)}, content, Encrypt)
	if err != nil {
		f.Fatal(err)
	}
	pa, err := a.Protect(c, []Device{dev(b)}, content, AuthOnly)
	if err != nil {
		f.Fatal(err)
	}
	v.enc, v.auth, v.envelope = vecMarshal(f, pe), vecMarshal(f, pa), pa.Envelope
	return v
}

func FuzzParseBundle(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["bundle"], c.bundles, [][]byte{live.bundle})
	f.Fuzz(func(t *testing.T, data []byte) {
		bu, err := ParseBundle(data)
		if err != nil {
			return
		}
		if out := bu.Marshal(); !bytes.Equal(out, data) {
			t.Fatalf("round trip:\n in %x\nout %x", data, out)
		}
		bu.Verify(bu.JID) // must not panic
	})
}

func FuzzParseBundleXML(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["bundle-xml"], [][]byte{live.bundleXML})
	f.Fuzz(func(t *testing.T, data []byte) {
		bu, err := ParseBundleXML(data)
		if err != nil {
			return
		}
		x, err := MarshalBundleXML(bu)
		if err != nil {
			t.Fatalf("parsed bundle does not marshal: %v", err)
		}
		bu2, err := ParseBundleXML(x)
		if err != nil {
			t.Fatalf("re-marshalled bundle does not parse: %v\n%s", err, x)
		}
		if !bytes.Equal(bu.Marshal(), bu2.Marshal()) {
			t.Fatalf("round trip changed the bundle:\n in %q\nout %q", data, x)
		}
		bu.Verify(bu.JID)
	})
}

func FuzzParsePresenceElement(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["presence"], [][]byte{live.presence})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePresenceElement(data)
		if err != nil {
			return
		}
		x := vecMarshal(t, p)
		p2, err := ParsePresenceElement(x)
		if err != nil {
			t.Fatalf("re-marshalled element does not parse: %v\n%s", err, x)
		}
		if p.Device != p2.Device || !bytes.Equal(p.Identity, p2.Identity) || p.BundleHash != p2.BundleHash || !bytes.Equal(p.Signature, p2.Signature) {
			t.Fatalf("round trip changed the element: %q -> %q", data, x)
		}
		p.Verify("alice@example.org")
	})
}

func FuzzParseChatElement(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["chat"], c.elements["message-xml"], [][]byte{live.chat})
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := ParseChatElement(data)
		if err != nil {
			return
		}
		x := vecMarshal(t, el)
		el2, err := ParseChatElement(x)
		if err != nil || !bytes.Equal(el.Blob, el2.Blob) {
			t.Fatalf("round trip: %q -> %q (%v)", data, x, err)
		}
	})
}

func FuzzParseProtectedElement(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["protected"], c.elements["message-xml"], [][]byte{live.enc, live.auth})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProtectedElement(data)
		if err != nil {
			return
		}
		x := vecMarshal(t, p)
		p2, err := ParseProtectedElement(x)
		if err != nil || p.AuthOnly != p2.AuthOnly || !bytes.Equal(p.Blob, p2.Blob) || !bytes.Equal(p.Envelope, p2.Envelope) {
			t.Fatalf("round trip: %q -> %q (%v)", data, x, err)
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	c := fuzzSeeds(f)
	live := fuzzLiveSeeds(f)
	fuzzAdd(f, c.elements["envelope"], [][]byte{live.envelope})
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEnvelope(data)
		if err != nil {
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
	})
}

func FuzzParseSession(f *testing.F) {
	c := fuzzSeeds(f)
	fuzzAdd(f, c.sessions)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSession(data)
		if err != nil {
			return
		}
		if out := s.marshal(); !bytes.Equal(out, data) {
			t.Fatalf("round trip:\n in %x\nout %x", data, out)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	c := fuzzSeeds(f)
	for _, h := range c.headers {
		f.Add(h.data, h.full)
	}
	if len(c.headers) == 0 {
		f.Fatal("no seeds: regenerate testdata/e2e (make vectors)")
	}
	f.Fuzz(func(t *testing.T, data []byte, full bool) {
		r := reader{b: data}
		h := readHeader(&r, full)
		if r.done() != nil {
			return
		}
		var out builder
		h.marshal(&out)
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip (full %v):\n in %x\nout %x", full, data, []byte(out))
		}
	})
}

func FuzzReadInitBlock(f *testing.F) {
	c := fuzzSeeds(f)
	fuzzAdd(f, c.inits)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := reader{b: data}
		ib := readInitBlock(&r)
		if r.done() != nil {
			return
		}
		var out builder
		ib.marshal(&out)
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip:\n in %x\nout %x", data, []byte(out))
		}
	})
}

func FuzzReadRespBlock(f *testing.F) {
	c := fuzzSeeds(f)
	fuzzAdd(f, c.resps)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := reader{b: data}
		rb := readRespBlock(&r)
		if r.done() != nil {
			return
		}
		var out builder
		rb.marshal(&out)
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip:\n in %x\nout %x", data, []byte(out))
		}
	})
}

func FuzzParseEntries(f *testing.F) {
	c := fuzzSeeds(f)
	fuzzAdd(f, c.blobs)
	f.Fuzz(func(t *testing.T, data []byte) {
		sender, es, err := parseEntries(data)
		if err != nil {
			return
		}
		var out builder
		out.u32(sender)
		for _, en := range es {
			out.u32(en.device)
			out.u8(en.kind)
			out.vbytes(en.body)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip:\n in %x\nout %x", data, []byte(out))
		}
	})
}

// FuzzOpenChat feeds arbitrary blobs to an engine restored from the
// session-steady vector (a live session with alice). Nothing may panic,
// and nothing may open unless this device's entry is one of alice's
// genuine messages for that state (from any vector sharing the state).
func FuzzOpenChat(f *testing.F) {
	vs, err := loadVectors()
	if err != nil {
		f.Fatal(err)
	}
	var base *vecFile
	for _, v := range vs {
		if v.name == "session-steady.txt" {
			base = v
		}
	}
	if base == nil {
		f.Fatal("no session-steady vector: regenerate testdata/e2e (make vectors)")
	}
	s := loadSessionVector(f, base)
	self := s.engine(f).Device()
	// Genuine entries: every message of every vector restored from the
	// same state in the same context.
	genuine := map[string]bool{}
	var seeds [][]byte
	for _, v := range vs {
		if v.kind() != "session" || !bytes.Equal(v.bytes(f, "store"), s.dump) {
			continue
		}
		for _, m := range append(v.all("prior"), v.all("message")...) {
			el := vecB64(f, m)
			var blob []byte
			if ce, err := ParseChatElement(el); err == nil {
				blob = ce.Blob
			} else if pe, err := ParseProtectedElement(el); err == nil {
				blob = pe.Blob
			} else {
				seeds = append(seeds, el) // a malformed element's bytes are still a fine seed
				continue
			}
			seeds = append(seeds, blob)
			if v.expect() == "success" || len(v.all("prior")) > 0 {
				if k, ok := fuzzOwnEntry(blob, self); ok {
					genuine[k] = true
				}
			}
		}
	}
	if len(genuine) == 0 {
		f.Fatal("no genuine messages for the steady state")
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
			t.Fatalf("a message that alice never sent opened: %q from %x", body, data)
		}
	})
}

// fuzzOwnEntry returns the sender and this device's entry of blob, as a
// map key.
func fuzzOwnEntry(blob []byte, self uint32) (string, bool) {
	sender, es, err := parseEntries(blob)
	if err != nil {
		return "", false
	}
	for _, en := range es {
		if en.device == self && en.kind&flagOwn == 0 {
			var b builder
			b.u32(sender)
			b.u8(en.kind)
			b.vbytes(en.body)
			return string(b), true
		}
	}
	return "", false
}
