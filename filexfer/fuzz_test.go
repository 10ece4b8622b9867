package filexfer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/securejingle/securejingle/jingle"
)

// The fuzzers feed one element to each parser, inside a content (or a
// session-info for the payloads that live there), and check the
// round-trip property: what parses serializes with Raw, parses back to the
// same value, and serializes to the same element again; what does not
// parse fails with an *ElementError. They are seeded with every element
// of the kind found in the XEP examples and the Conversations fixtures,
// and fail without seeds.

// seedElements returns the XML of every element named local in space
// found in the examples and fixtures.
func seedElements(f *testing.F, space, local string, info bool) [][]byte {
	f.Helper()
	dir, files := exampleFiles(f)
	var paths []string
	for _, name := range files {
		paths = append(paths, filepath.Join(dir, name))
	}
	fx, _ := filepath.Glob(filepath.Join("testdata", "conversations", "*.xml"))
	paths = append(paths, fx...)
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, c := range chunks(b) {
			js, err := jingleOf(c)
			if err != nil {
				continue
			}
			for _, src := range js {
				j, err := jingle.Parse(src)
				if err != nil {
					continue
				}
				var rs []jingle.Raw
				for _, ct := range j.Contents {
					rs = append(rs, ct.Other...)
				}
				rs = append(rs, j.Info...)
				for _, r := range rs {
					if is(r, space, local) {
						out = append(out, []byte(elementXML(f, r, info)))
					}
				}
			}
		}
	}
	if len(out) == 0 {
		f.Fatalf("no seed for {%s}%s", space, local)
	}
	return out
}

// elementIn parses b as the one child of a content (or, with info set,
// of a session-info) and returns it, or false when jingle refuses it.
func elementIn(b []byte, info bool) (jingle.Raw, bool) {
	var doc []byte
	if info {
		doc = append([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'>`), b...)
	} else {
		doc = append([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'><content creator='initiator' name='c' senders='initiator'>`), b...)
		doc = append(doc, "</content>"...)
	}
	doc = append(doc, "</jingle>"...)
	j, err := jingle.Parse(doc)
	if err != nil {
		return jingle.Raw{}, false
	}
	if info {
		if len(j.Info) != 1 {
			return jingle.Raw{}, false
		}
		return j.Info[0], true
	}
	if len(j.Contents) != 1 || len(j.Contents[0].Other) != 1 {
		return jingle.Raw{}, false
	}
	return j.Contents[0].Other[0], true
}

func fuzzParser[T any](f *testing.F, space, local string, info bool, parse func(jingle.Raw) (*T, bool, error), raw func(*T) (jingle.Raw, error)) {
	for _, s := range seedElements(f, space, local, info) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := elementIn(b, info)
		if !ok {
			return
		}
		v, ok, err := parse(r)
		if !ok {
			return
		}
		if err != nil {
			var ee *ElementError
			if !errors.As(err, &ee) || !errors.Is(err, ErrMalformedElement) {
				t.Fatalf("error is not an ElementError: %v", err)
			}
			return
		}
		out, err := raw(v)
		if err != nil {
			t.Fatalf("Raw of a parsed value: %v", err)
		}
		back, ok, err := parse(out)
		if !ok || err != nil {
			t.Fatalf("parse of Raw's output: %v", err)
		}
		if !sameValue(reflect.ValueOf(v), reflect.ValueOf(back)) {
			t.Fatalf("round trip changed the value")
		}
		again, err := raw(back)
		if err != nil || !again.Equal(out) {
			t.Fatalf("Raw is not a fixed point: %v", err)
		}
		// What Raw writes is accepted by jingle where it belongs.
		j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "s"}
		if info {
			j.Action, j.Info = jingle.ActionSessionInfo, []jingle.Raw{out}
		} else {
			j.Contents = []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "c", Senders: jingle.SendersInitiator, Other: []jingle.Raw{out}}}
		}
		if _, err := j.Marshal(); err != nil {
			t.Fatalf("jingle.Marshal of Raw's output: %v", err)
		}
	})
}

func FuzzDescription(f *testing.F) {
	fuzzParser(f, NSFileTransfer, "description", false, ParseDescription, (*Description).Raw)
}

func FuzzSecurity(f *testing.F) {
	fuzzParser(f, NSJET, "security", false, ParseSecurity, (*Security).Raw)
}

func FuzzS5BTransport(f *testing.F) {
	fuzzParser(f, NSS5B, "transport", false, ParseS5BTransport, (*S5BTransport).Raw)
}

func FuzzIBBTransport(f *testing.F) {
	fuzzParser(f, NSIBB, "transport", false, ParseIBBTransport, (*IBBTransport).Raw)
}

func FuzzDataChannelTransport(f *testing.F) {
	fuzzParser(f, NSDataChannel, "transport", false, ParseDataChannelTransport, (*DataChannelTransport).Raw)
}

func FuzzChecksum(f *testing.F) {
	fuzzParser(f, NSFileTransfer, "checksum", true, ParseChecksum, (*Checksum).Raw)
}

func FuzzReceived(f *testing.F) {
	fuzzParser(f, NSFileTransfer, "received", true, ParseReceived, (*Received).Raw)
}

// FuzzClassify feeds whole Jingle elements to ParseContent and the
// classifiers: they never panic, and errors are typed.
func FuzzClassify(f *testing.F) {
	dir, files := exampleFiles(f)
	n := 0
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		for _, c := range chunks(b) {
			js, _ := jingleOf(c)
			for _, j := range js {
				f.Add(j, true, true)
				n++
			}
		}
	}
	if n == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte, prot, cert bool) {
		j, err := jingle.Parse(b)
		if err != nil {
			return
		}
		a := Arrival{Protected: prot, Certified: cert}
		o, err := ClassifyOffer(j, a)
		if err != nil && !errors.Is(err, ErrMalformedElement) && !errors.Is(err, ErrNoFileContent) {
			t.Fatalf("untyped error %v", err)
		}
		if err == nil && (o.Class == ClassOurs) != (prot && cert && allOurs(o)) {
			t.Fatalf("class %v for arrival %+v", o.Class, a)
		}
		_, err = ClassifyUpdate(j, a, func(jingle.Creator, string) (*Security, bool) { return nil, true })
		if err != nil && !errors.Is(err, ErrMalformedElement) && !errors.Is(err, ErrNoFileContent) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

func allOurs(o OfferClass) bool {
	for _, c := range o.Contents {
		if c.Class != ClassOurs {
			return false
		}
	}
	return len(o.Contents) > 0
}
