package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/webapp"
)

func TestWebConfigDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "/")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Web.enabled() || c.Web.listen() != webapp.DefaultListen || webapp.DefaultListen != "127.0.0.1:7480" {
		t.Fatalf("web defaults: enabled %v listen %q", c.Web.enabled(), c.Web.listen())
	}
	c, err = Parse([]byte(minimal+"[web]\nenabled = false\nlisten = \"[::1]:0\"\n"), "/")
	if err != nil {
		t.Fatal(err)
	}
	if c.Web.enabled() || c.Web.listen() != "[::1]:0" {
		t.Fatalf("web: enabled %v listen %q", c.Web.enabled(), c.Web.listen())
	}
	// Beyond loopback with allow_remote: accepted, and warned about.
	c, err = Parse([]byte(minimal+"[web]\nlisten = \"192.0.2.7:7480\"\nallow_remote = true\n"), "/")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	c.Web.warnRemote(slog.New(slog.NewTextHandler(&log, nil)))
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "without TLS") {
		t.Errorf("no warning for a remote listen: %q", log.String())
	}
	log.Reset()
	c, _ = Parse([]byte(minimal), "/")
	c.Web.warnRemote(slog.New(slog.NewTextHandler(&log, nil)))
	if log.Len() != 0 {
		t.Errorf("warning for loopback: %q", log.String())
	}
}

func TestWebConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, toml, want string
	}{
		{"remote without allow", "[web]\nlisten = \"192.0.2.7:7480\"", "allow_remote"},
		{"unspecified", "[web]\nlisten = \"0.0.0.0:7480\"\nallow_remote = true", "unspecified"},
		{"unspecified v6", "[web]\nlisten = \"[::]:7480\"\nallow_remote = true", "unspecified"},
		{"host name", "[web]\nlisten = \"localhost:7480\"", "IP address and port"},
		{"no port", "[web]\nlisten = \"127.0.0.1\"", "IP address and port"},
		{"bad port", "[web]\nlisten = \"127.0.0.1:99999\"", "IP address and port"},
		{"zone", "[web]\nlisten = \"[fe80::1%lo]:7480\"\nallow_remote = true", "zone"},
		{"unknown key", "[web]\nport = 80", "web.port"},
		{"wrong type", "[web]\nenabled = \"yes\"", "enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+tc.toml), "/")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a config error naming %q", err, tc.want)
			}
			var fe *FieldError
			if errors.As(err, &fe) && fe.Key != "web.listen" {
				t.Errorf("key %q", fe.Key)
			}
		})
	}
}
