package trust

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func sampleRecords() []Record {
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	return []Record{
		{JID: alice, Key: k1, Level: TOFU, FirstSeen: t0, UpdatedAt: t0},
		{JID: "example.org", Key: k2, Level: Verified, Method: MethodX509CMS, FirstSeen: t0, VerifiedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)},
		{JID: "ünïcode@example.org", Key: k1, Level: Changed, Method: MethodQR, PendingKey: k3, FirstSeen: t0, VerifiedAt: t0, ChangedAt: t0.Add(time.Minute), UpdatedAt: t0.Add(time.Minute)},
		{JID: alice, Key: k3, Level: Changed, PendingKey: k1},
		{JID: alice, Key: k3, Level: Verified, Method: MethodSAS}, // verified at the zero time
		{JID: alice, Key: k2, Level: Distrusted, FirstSeen: time.Unix(-1, 999999999).UTC(), UpdatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		var got Record
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !recordsEqual(r, got) || (r.PendingKey == nil) != (got.PendingKey == nil) {
			t.Errorf("round trip:\n%+v\n%+v", r, got)
		}
		// Every truncation and any trailing byte is rejected.
		for i := range b {
			if err := new(Record).UnmarshalBinary(b[:i]); err == nil {
				t.Errorf("truncated to %d bytes: accepted", i)
			}
		}
		if err := new(Record).UnmarshalBinary(append(b, 0)); err == nil {
			t.Error("trailing byte accepted")
		}
	}
}

func TestRecordStrict(t *testing.T) {
	good, err := sampleRecords()[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	jidEnd := 4 + len(alice)
	verifiedAt := jidEnd + ed25519.PublicKeySize + 2 + 12 // after key, pending flag, method length 0, first seen
	changedAt := verifiedAt + 12
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"version 0":          mutate(func(b []byte) []byte { b[0] = 0; return b }),
		"version 1":          mutate(func(b []byte) []byte { b[0] = 1; return b }),
		"version 3":          mutate(func(b []byte) []byte { b[0] = 3; return b }),
		"level unknown":      mutate(func(b []byte) []byte { b[1] = byte(Unknown); return b }),
		"level 5":            mutate(func(b []byte) []byte { b[1] = 5; return b }),
		"verified no method": mutate(func(b []byte) []byte { b[1] = byte(Verified); return b }),
		"tofu with pending": mutate(func(b []byte) []byte {
			end := jidEnd + ed25519.PublicKeySize
			b[end] = 1
			return append(b[:end+1], append(bytes.Clone(k2), b[end+1:]...)...)
		}),
		"pending flag 2":    mutate(func(b []byte) []byte { b[jidEnd+ed25519.PublicKeySize] = 2; return b }),
		"jid too long":      mutate(func(b []byte) []byte { b[3]++; return b }),
		"jid with resource": mutate(func(b []byte) []byte { b[4+len("alice")] = '/'; return b }),
		"verified at without method": mutate(func(b []byte) []byte {
			copy(b[verifiedAt:], good[len(good)-12:])
			return b
		}),
		"changed at on tofu": mutate(func(b []byte) []byte {
			copy(b[changedAt:], good[len(good)-12:])
			return b
		}),
		"nanoseconds 1e9": mutate(func(b []byte) []byte {
			copy(b[len(b)-4:], []byte{0x3b, 0x9a, 0xca, 0x00})
			return b
		}),
		"time past 9999": mutate(func(b []byte) []byte {
			copy(b[len(b)-12:], []byte{0x7f, 0, 0, 0, 0, 0, 0, 0})
			return b
		}),
		"empty": {},
	}
	for name, b := range cases {
		var r Record
		if err := r.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Invalid records do not encode.
	bad := []Record{
		{},
		{JID: alice, Key: k1[:16], Level: TOFU},
		{JID: alice, Key: k1, Level: Changed, PendingKey: k1},
		{JID: alice, Key: k1, Level: Verified, Method: "x y"},
		{JID: alice, Key: k1, Level: TOFU, Method: MethodQR},
		{JID: alice + "/r", Key: k1, Level: TOFU},
		{JID: alice, Key: k1, Level: TOFU, FirstSeen: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{JID: alice, Key: k1, Level: TOFU, VerifiedAt: time.Unix(1, 0)},
		{JID: alice, Key: k1, Level: Verified, Method: MethodQR, ChangedAt: time.Unix(1, 0)},
		{JID: alice, Key: k1, Level: Changed, PendingKey: k2, ChangedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{JID: strings.Repeat("a", MaxJIDLen+1), Key: k1, Level: TOFU},
		{JID: alice, Key: k1, Level: Verified, Method: strings.Repeat("a", MaxMethodLen+1)},
	}
	for _, r := range bad {
		if _, err := r.MarshalBinary(); err == nil {
			t.Errorf("invalid record encoded: %+v", r)
		} else if r.JID == alice+"/r" && !errors.Is(err, ErrInvalidJID) {
			t.Errorf("resource JID: %v, want ErrInvalidJID", err)
		}
	}
}

func FuzzRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Record
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("round trip changed the encoding:\n%x\n%x", data, again)
		}
	})
}
