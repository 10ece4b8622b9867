package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func FuzzParseConfig(f *testing.F) {
	f.Add(DefaultConfigTOML)
	f.Add(fuzzSeedConfig)
	f.Add(hundredRuleConfig())
	f.Add("[[rule]]\nmessage = \"\"\"\n[[rule]]\n\"\"\"\naction = \"flag\"\npeer = ['*.a.b']\n")
	f.Add("rule = [{action = \"allow\", kind = \"chat\"}]\n")
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := ParseConfig([]byte(src))
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			return
		}
		p, err := Compile(cfg)
		if err != nil {
			t.Fatalf("ParseConfig accepted what Compile rejects: %v", err)
		}
		facts := []Facts{{}, {Kind: KindChat, PeerJID: "a@b.c/d", Protection: ProtectionCleartext}, {Kind: 200, Trust: TrustKeyChanged}}
		for _, fa := range facts {
			d := p.Decide(fa)
			steps := p.Explain(fa)
			if last := steps[len(steps)-1]; !last.Matched || last.Index != d.Index {
				t.Fatalf("Explain %+v disagrees with Decide %+v", last, d)
			}
		}
		// Round trip: marshal and parse again gives the same rules.
		out, err := cfg.MarshalTOML()
		if err != nil {
			t.Fatal(err)
		}
		cfg2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if !configsEqual(cfg, cfg2) {
			t.Fatalf("round trip differs:\n%s", out)
		}
	})
}

func FuzzReadAudit(f *testing.F) {
	var seed bytes.Buffer
	for i := range 3 {
		line, _ := json.Marshal(testAlert(i))
		seed.Write(line)
		seed.WriteByte('\n')
	}
	f.Add(seed.Bytes())
	f.Add(seed.Bytes()[:seed.Len()-7])
	f.Add([]byte("{}\n{\"facts\":{\"kind\":\"bogus\"}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := parseAudit(data)
		if err != nil && !errors.Is(err, ErrTornTail) {
			var le *AuditLineError
			if !errors.As(err, &le) {
				t.Fatalf("unexpected error type %v", err)
			}
		}
		// Round trip: what was read re-encodes to a log that reads back the same.
		var buf bytes.Buffer
		for _, a := range alerts {
			line, err := json.Marshal(a)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", a, err)
			}
			buf.Write(line)
			buf.WriteByte('\n')
		}
		again, err := parseAudit(buf.Bytes())
		if err != nil || len(again) != len(alerts) {
			t.Fatalf("re-read: %d of %d, %v", len(again), len(alerts), err)
		}
		for i := range again {
			if again[i].ID != alerts[i].ID || again[i].Facts != alerts[i].Facts || again[i].Decision != alerts[i].Decision ||
				!again[i].Time.Equal(alerts[i].Time) || again[i].Count != alerts[i].Count {
				t.Fatalf("alert %d changed: %+v -> %+v", i, alerts[i], again[i])
			}
		}
	})
}
