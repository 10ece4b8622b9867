package policy_test

import (
	"errors"
	"testing"

	"github.com/securejingle/securejingle/policy"
)

func TestPeerPatternExported(t *testing.T) {
	for _, tc := range []struct {
		pat, jid string
		want     bool
	}{
		{"*", "anyone@example.net", true},
		{"bob@example.net", "Bob@Example.NET/phone", true},
		{"bob@example.net", "bobby@example.net", false},
		{"*@example.net", "carol@example.net", true},
		{"*@example.net", "carol@sub.example.net", false},
		{"*.example.net", "carol@sub.example.net", true},
		{"*.example.net", "carol@example.net", false},
		{"example.net", "example.net", true},
		{"example.net", "bob@example.net", false},
	} {
		p, err := policy.ParsePeerPattern(tc.pat)
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		if got := p.Match(tc.jid); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v", tc.pat, tc.jid, got, tc.want)
		}
		if p.String() != tc.pat {
			t.Errorf("String %q, want %q", p.String(), tc.pat)
		}
	}
	for _, bad := range []string{"", "bob@example.net/phone", "b*b@example.net", "@example.net"} {
		if _, err := policy.ParsePeerPattern(bad); !errors.Is(err, policy.ErrInvalidPattern) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if (policy.PeerPattern{}).Match("bob@example.net") {
		t.Error("the zero pattern matched")
	}
}
