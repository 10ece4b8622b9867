package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
)

// Round-trip fuzz targets for the request validation of the API (issue 7):
// whatever the strict decoder and the checks accept re-encodes to a
// request that decodes and checks to the same thing, and the canonical
// form the checks return is a fixed point.

func FuzzDecodeChat(f *testing.F) {
	for _, s := range []string{
		`{"to":"bob@example.test","body":"hello"}`,
		`{"to":"Bob@Example.TEST","body":"caf\u00e9 \ud83d\ude00"}`,
		`{"to":"bob@example.test/phone","body":"x"}`,
		`{"to":"bob@example.test","body":"\u0000"}`,
		`{"to":"bob@example.test","body":"x","extra":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ChatRequest
		if decodeStrict(bytes.NewReader(b), &req) != nil {
			return
		}
		to, err := checkChat(req)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error class %v", err)
			}
			return
		}
		canon := ChatRequest{To: to, Body: req.Body}
		enc, err := json.Marshal(canon)
		if err != nil {
			t.Fatal(err)
		}
		var again ChatRequest
		if err := decodeStrict(bytes.NewReader(enc), &again); err != nil || again != canon {
			t.Fatalf("round trip: %+v -> %s -> %+v (%v)", canon, enc, again, err)
		}
		if to2, err := checkChat(again); err != nil || to2 != to {
			t.Fatalf("canonical JID %q not a fixed point: %q (%v)", to, to2, err)
		}
	})
}

func FuzzDecodeIQ(f *testing.F) {
	for _, s := range []string{
		`{"to":"bob@example.test/phone","type":"get","payload":"<ping xmlns=\"urn:xmpp:ping\"/>"}`,
		`{"to":"bob@example.test/phone","type":"set","payload":"<q xmlns=\"urn:x\"><a/></q>","auth_only":true}`,
		`{"to":"bob@example.test","type":"get","payload":"<ping xmlns=\"urn:xmpp:ping\"/>"}`,
		`{"to":"bob@example.test/phone","type":"result","payload":"<a/>"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req IQRequest
		if decodeStrict(bytes.NewReader(b), &req) != nil {
			return
		}
		to, err := checkIQ(req)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error class %v", err)
			}
			return
		}
		canon := req
		canon.To = to
		enc, err := json.Marshal(canon)
		if err != nil {
			t.Fatal(err)
		}
		var again IQRequest
		if err := decodeStrict(bytes.NewReader(enc), &again); err != nil || again != canon {
			t.Fatalf("round trip: %+v -> %s -> %+v (%v)", canon, enc, again, err)
		}
		if to2, err := checkIQ(again); err != nil || to2 != to {
			t.Fatalf("canonical JID %q not a fixed point: %q (%v)", to, to2, err)
		}
	})
}

// FuzzDecodeScalars: device ids and keys in paths and bodies have exactly
// one accepted spelling.
func FuzzDecodeScalars(f *testing.F) {
	for _, s := range []string{"1", "4294967295", "4294967296", "01", "+1", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDevice(s); err == nil {
			if d == 0 || strconv.FormatUint(uint64(d), 10) != s {
				t.Fatalf("device %q parsed as %d", s, d)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error class %v", err)
		}
		if k, err := DecodeKey(s); err == nil {
			if EncodeKey(k) != s {
				t.Fatalf("key %q re-encodes as %q", s, EncodeKey(k))
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error class %v", err)
		}
	})
}
