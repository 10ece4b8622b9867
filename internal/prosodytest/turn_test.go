package prosodytest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestConfigRendersTURN(t *testing.T) {
	o := options{modules: defaultModules}
	if err := WithTURN(TURN{Host: "127.0.0.1", Port: 3479, Secret: `s"cret`, User: "sj", TTL: 90 * time.Second, TCP: true})(&o); err != nil {
		t.Fatal(err)
	}
	cfg := config{Domain: "example.test", C2SPort: 1, TURN: o.turn, Modules: append(defaultModules[:len(defaultModules):len(defaultModules)], turnModule)}
	var buf bytes.Buffer
	if err := cfg.write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`turn_external_host = "127.0.0.1"`,
		`turn_external_port = 3479`,
		`turn_external_secret = "s\034cret"`,
		`turn_external_user = "sj"`,
		`turn_external_ttl = 90`,
		`turn_external_tcp = true`,
		`"turn_external";`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %s:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "turn_external_host"), strings.Index(out, "VirtualHost"); i > j {
		t.Error("TURN options are not global (after VirtualHost)")
	}
	// Defaults: no user, Prosody's TTL.
	if err := WithTURN(TURN{Host: "turn.example.test", Port: 3478, Secret: "s"})(&o); err != nil {
		t.Fatal(err)
	}
	cfg.TURN = o.turn
	buf.Reset()
	if err := cfg.write(&buf); err != nil {
		t.Fatal(err)
	}
	out = buf.String()
	if strings.Contains(out, "turn_external_user") || strings.Contains(out, "turn_external_ttl") || !strings.Contains(out, "turn_external_tcp = false") {
		t.Errorf("defaults rendered wrongly:\n%s", out)
	}
	cfg.TURN = nil
	cfg.Modules = defaultModules
	buf.Reset()
	if err := cfg.write(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "turn_external") {
		t.Error("TURN options rendered without WithTURN")
	}
}

func TestTURNOptionValidation(t *testing.T) {
	ok := TURN{Host: "127.0.0.1", Port: 3478, Secret: "s"}
	for name, c := range map[string]TURN{
		"no host":       {Port: 3478, Secret: "s"},
		"bad host":      {Host: "a b", Port: 3478, Secret: "s"},
		"host and port": {Host: "h:3478", Port: 3478, Secret: "s"},
		"port 0":        {Host: "h", Secret: "s"},
		"port too big":  {Host: "h", Port: 65536, Secret: "s"},
		"no secret":     {Host: "h", Port: 3478},
		"negative ttl":  {Host: "h", Port: 3478, Secret: "s", TTL: -time.Second},
		"fractional":    {Host: "h", Port: 3478, Secret: "s", TTL: 1500 * time.Millisecond},
		"sub-second":    {Host: "h", Port: 3478, Secret: "s", TTL: time.Millisecond},
	} {
		if err := WithTURN(c)(&options{}); err == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
	var o options
	if err := WithTURN(ok)(&o); err != nil || o.turn == nil || o.turn.TTL != 0 {
		t.Fatalf("valid TURN: %v %+v", err, o.turn)
	}
}
