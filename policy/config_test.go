package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		key  string
		is   error
	}{
		{"unknown fact key", `
[[rule]]
name = "ok"
action = "allow"

[[rule]]
name = "typo"
kind = "chat"
protecton = "cleartext"
action = "flag"
`, 9, "protecton", ErrUnknownKey},
		{"bad enum", `[[rule]]
kind = ["chat", "voice-call"]
action = "flag"
`, 2, "kind", ErrInvalidValue},
		{"bad pattern in second rule", `
[[rule]]
peer = "*@ok.example"
action = "flag"
[[rule]]
action = "flag"

peer = [
  "bob@example.net",
  "*bad*@example.net",
]
`, 8, "peer", ErrInvalidPattern},
		{"pattern with resource", "[[rule]]\npeer = \"bob@example.net/phone\"\naction = \"flag\"\n", 2, "peer", ErrInvalidPattern},
		{"unknown action", "\n\n[[rule]]\nname = \"x\"\naction = \"block\"\n", 5, "action", ErrInvalidValue},
		{"missing action", "[[rule]]\nname = \"x\"\n", 1, "action", ErrInvalidValue},
		{"bad severity", "[[rule]]\naction = \"flag\"\nseverity = \"loud\"\n", 3, "severity", ErrInvalidValue},
		{"wrong type", "[[rule]]\naction = \"flag\"\nsecured_session = \"yes\"\n", 3, "secured_session", ErrInvalidValue},
		{"empty list", "[[rule]]\naction = \"flag\"\ntrust = []\n", 3, "trust", ErrInvalidValue},
		{"device range", "[[rule]]\naction = \"flag\"\npeer_device = -1\n", 3, "peer_device", ErrInvalidValue},
		{"bad placeholder", "[[rule]]\naction = \"flag\"\nmessage = \"hi {user}\"\n", 3, "message", ErrInvalidValue},
		{"duplicate name", "[[rule]]\nname = \"a\"\naction = \"flag\"\n[[rule]]\nname = \"a\"\naction = \"flag\"\n", 5, "name", ErrInvalidValue},
		{"unknown top-level key", "replace_defaults = true\nrules = 3\n", 2, "rules", ErrUnknownKey},
		{"rule not an array", "[rule]\naction = \"flag\"\n", 1, "rule", ErrInvalidValue},
		{"nested table in rule", "[[rule]]\naction = \"flag\"\n[rule.match]\nkind = \"chat\"\n", 3, "match", ErrUnknownKey},
		{"multi-line string before error", "[[rule]]\nmessage = \"\"\"\nline\n[[rule]]\n\"\"\"\naction = \"flag\"\nkindd = 1\n", 7, "kindd", ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.src))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConfigError", err)
			}
			if ce.Line != tt.line || ce.Key != tt.key || !errors.Is(err, tt.is) {
				t.Fatalf("err = %v (line %d key %q), want line %d key %q wrapping %v", err, ce.Line, ce.Key, tt.line, tt.key, tt.is)
			}
			if _, err := Load([]byte(tt.src)); !errors.As(err, &ce) {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

func TestConfigSyntaxErrorLine(t *testing.T) {
	_, err := ParseConfig([]byte("[[rule]]\naction = \"flag\"\nkind = [\"chat\"\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line == 0 {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigMarshalRoundTrip(t *testing.T) {
	for _, src := range []string{DefaultConfigTOML, fuzzSeedConfig} {
		c1, err := ParseConfig([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		out, err := c1.MarshalTOML()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !configsEqual(c1, c2) {
			t.Fatalf("round trip differs:\n%s", out)
		}
	}
}

func configsEqual(a, b *Config) bool {
	strip := func(c *Config) Config {
		d := Config{ReplaceDefaults: c.ReplaceDefaults}
		for _, r := range c.Rules {
			r.Line = 0
			d.Rules = append(d.Rules, r)
		}
		return d
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

const fuzzSeedConfig = `replace_defaults = false
[[rule]]
name = "x \"quoted\" \u00e9"
kind = ["chat", "stanza"]
direction = "incoming"
peer = ["*", "*@a.example", "*.b.example", "c@d.example", "e.example"]
peer_device = [1, 2]
trust = "tofu"
protection = ["cleartext", "transport-only"]
signaling = ["none"]
stanza_type = "chat"
secured_session = true
on_roster = false
peer_supports_e2e = true
action = "flag"
severity = "critical"
message = '''{peer}\n{{ {kind}'''
`

func TestPeerPatterns(t *testing.T) {
	good := []string{"*", "a@b", "b.example", "*@b.example", "*.b.example", "ü@bücher.example", "x@b.example."}
	bad := []string{"", "@b", "a@", "a@b@c", "a@b/c", "*a@b", "a*@b", "*@", "*.", "*@*.b", "a b@c", "a@b..c", "a@[::1]", "*@b:5222", "a\x00@b", "\xff@b"}
	for _, s := range good {
		if _, err := compilePeerPattern(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range bad {
		if _, err := compilePeerPattern(s); !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("%q accepted (%v)", s, err)
		}
	}
	if !strings.Contains(DefaultConfigTOML, "replace_defaults = true") {
		t.Error("DefaultConfigTOML must replace defaults to be self-contained")
	}
}
