package prosodytest

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// unLua decodes the subset of Lua string literals that luaString produces:
// printable ASCII and \ddd escapes between double quotes.
func unLua(t testing.TB, lit string) string {
	t.Helper()
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		t.Fatalf("not a double-quoted literal: %q", lit)
	}
	var b strings.Builder
	for i := 1; i < len(lit)-1; i++ {
		c := lit[i]
		switch {
		case c == '\\':
			if i+3 >= len(lit) {
				t.Fatalf("short escape in %q", lit)
			}
			n, err := strconv.Atoi(lit[i+1 : i+4])
			if err != nil || n > 255 {
				t.Fatalf("bad escape in %q", lit)
			}
			b.WriteByte(byte(n))
			i += 3
		case c == '"' || c < 0x20 || c >= 0x7f:
			t.Fatalf("unescaped byte %#x in %q", c, lit)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func TestLuaString(t *testing.T) {
	for in, want := range map[string]string{
		"":                   `""`,
		"/tmp/TestX123/001":  `"/tmp/TestX123/001"`,
		`a"b`:                `"a\034b"`,
		`a\b`:                `"a\092b"`,
		"line\nbreak":        `"line\010break"`,
		"]]--":               `"]]--"`,
		"\x001":              `"\0001"`,
		"caf\xc3\xa9":        `"caf\195\169"`,
		`"); os.exit(1) --`:  `"\034); os.exit(1) --"`,
		"example.test":       `"example.test"`,
		"tab\there\x7fdel\r": `"tab\009here\127del\013"`,
	} {
		if got := luaString(in); got != want {
			t.Errorf("luaString(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzLuaString(f *testing.F) {
	for _, s := range []string{"", "/tmp/TestServer1/001/prosody.log", `a"b\c`, "\x00\xff\n", "example.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := luaString(s)
		if got := unLua(t, lit); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}

func TestConfigRendersOptions(t *testing.T) {
	cfg := config{
		Dir:      `/tmp/we"ird`,
		PidFile:  "/tmp/p.pid",
		LogFile:  "/tmp/p.log",
		CertFile: "/tmp/d.crt",
		KeyFile:  "/tmp/d.key",
		Domain:   "example.test",
		C2SPort:  5999,
		Modules:  append(defaultModules[:len(defaultModules):len(defaultModules)], "mam"),
	}
	var buf bytes.Buffer
	if err := cfg.write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"c2s_ports = { 5999 }",
		`interfaces = { "127.0.0.1" }`,
		"c2s_require_encryption = true",
		`authentication = "internal_plain"`,
		"allow_registration = false",
		`"s2s";`,
		`"mam";`,
		`"carbons";`,
		`"pep";`,
		`data_path = "/tmp/we\034ird"`,
		`VirtualHost "example.test"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %s:\n%s", want, out)
		}
	}
}

func TestOptionValidation(t *testing.T) {
	for _, opt := range []Option{
		WithDomain(""),
		WithDomain("Example.TEST"), // not canonical
		WithDomain("a@b"),
		WithModules(""),
		WithModules("mod; os.exit()"),
		WithModules("MAM"),
	} {
		if err := opt(&options{}); err == nil {
			t.Errorf("option accepted a bad value")
		}
	}
	o := options{}
	if err := WithModules("mam", "smacks", "mam")(&o); err != nil {
		t.Fatal(err)
	}
	if len(o.modules) != 2 {
		t.Errorf("modules = %v, want mam and smacks once each", o.modules)
	}
	if err := WithDomain("chat.example.test")(&o); err != nil || o.domain != "chat.example.test" {
		t.Errorf("WithDomain: %v, domain %q", err, o.domain)
	}
}

// fatalRecorder records Fatal and stops the calling goroutine, as
// testing.T does, without failing the real test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatal(...any) { f.failed = true; runtime.Goexit() }
func (f *fatalRecorder) Helper()      {}

func TestHostileNeedsOption(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&Server{}).Hostile(ft)
	}()
	<-done
	if !ft.failed {
		t.Fatal("Hostile on a server started without WithHostile did not fail the test")
	}
}

func TestConfigRendersHostile(t *testing.T) {
	cfg := config{Domain: "example.test", C2SPort: 1, PluginDir: "/tmp/plugins", HostileControl: HostileControl, HostileLog: "/tmp/h.jsonl",
		Modules: []string{"roster", hostileModule}}
	var buf bytes.Buffer
	if err := cfg.write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`plugin_paths = { "/tmp/plugins" }`, `securejingle_hostile_control = "hostile-control"`,
		`securejingle_hostile_log = "/tmp/h.jsonl"`, `"securejingle_hostile";`} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %s:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "plugin_paths"), strings.Index(out, "VirtualHost"); i > j {
		t.Error("hostile options are not global (after VirtualHost)")
	}
	cfg.PluginDir = ""
	buf.Reset()
	if err := cfg.write(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "hostile_control") {
		t.Error("hostile options rendered without WithHostile")
	}
}
