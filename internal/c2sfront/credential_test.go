package c2sfront

import (
	"errors"
	"strings"
	"testing"
)

// TestCredentialText: MarshalText and ParseCredential round-trip, the
// parsed credential verifies the password, and parsing is strict.
func TestCredentialText(t *testing.T) {
	c, err := NewCredential("pencil", 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCredential(string(b) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Verify([]byte("pencil")) || got.Verify([]byte("pen")) {
		t.Fatal("parsed credential does not verify as the original")
	}
	again, _ := got.MarshalText()
	if string(again) != string(b) {
		t.Fatalf("round trip: %s != %s", again, b)
	}
	s := string(b)
	iter, _, _ := strings.Cut(strings.TrimPrefix(s, "SCRAM-SHA-256$"), ":")
	for name, bad := range map[string]string{
		"scheme":         strings.Replace(s, "SCRAM-SHA-256", "SCRAM-SHA-1", 1),
		"leading zero":   strings.Replace(s, "$"+iter+":", "$0"+iter+":", 1),
		"few iterations": strings.Replace(s, "$"+iter+":", "$4095:", 1),
		"no padding":     strings.TrimRight(s, "="),
		"short key":      s[:len(s)-8] + "=",
		"no keys":        s[:strings.LastIndex(s, "$")],
		"empty":          "",
	} {
		if _, err := ParseCredential(bad); !errors.Is(err, ErrBadCredential) {
			t.Errorf("%s: %q parsed (err %v)", name, bad, err)
		}
	}
}
