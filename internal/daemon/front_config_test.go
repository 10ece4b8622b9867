package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/c2sfront"
)

func TestFrontConfigDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "/cfg")
	if err != nil {
		t.Fatal(err)
	}
	if c.Front.Enabled || c.Front.listen() != DefaultFrontListen || DefaultFrontListen != "127.0.0.1:5223" {
		t.Fatalf("front defaults: enabled %v listen %q", c.Front.Enabled, c.Front.listen())
	}
	if want := filepath.Join(filepath.Dir(c.Store.Path), DefaultFrontCredentialName); c.CredentialPath() != want {
		t.Errorf("credential path %q, want %q", c.CredentialPath(), want)
	}
	c, err = Parse([]byte(minimal+"[front]\nenabled = true\nsocket = \"front.sock\"\ncredential = \"secret/front.cred\"\n"), "/cfg")
	if err != nil {
		t.Fatal(err)
	}
	if c.Front.listen() != "" || c.Front.Socket != "/cfg/front.sock" || c.CredentialPath() != "/cfg/secret/front.cred" {
		t.Errorf("socket only: listen %q socket %q credential %q", c.Front.listen(), c.Front.Socket, c.CredentialPath())
	}
	if _, err := Parse([]byte(minimal+"[front]\nlisten = \"192.0.2.7:5223\"\nallow_remote = true\n"), "/"); err != nil {
		t.Errorf("remote with allow_remote: %v", err)
	}
}

func TestFrontConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, toml, key string
	}{
		{"remote without allow", "[front]\nlisten = \"192.0.2.7:5223\"", "front.listen"},
		{"host name", "[front]\nlisten = \"localhost:5223\"", "front.listen"},
		{"clients", "[front]\nmax_clients = 5000", "front.max_clients"},
		{"socket path", "[front]\nsocket = \"/" + strings.Repeat("s", 120) + "\"", "front.socket"},
		{"unknown key", "[front]\npassword = \"x\"", "front.password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+tc.toml), "/")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("got %v, want a config error naming %q", err, tc.key)
			}
		})
	}
}

// TestFrontCredentialFile: WriteCredential and ReadCredential round-trip
// (mode 0600); a missing or bad file says how to set the password.
func TestFrontCredentialFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "front.credential")
	if _, err := ReadCredential(path); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "securejingle front passwd") {
		t.Fatalf("missing file: %v", err)
	}
	cred, err := c2sfront.NewCredential("local pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCredential(path, cred); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat %v, mode %v", err, fi.Mode())
	}
	got, err := ReadCredential(path)
	if err != nil || !got.Verify([]byte("local pw")) {
		t.Fatalf("read back: %v", err)
	}
	if err := os.WriteFile(path, []byte("local pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredential(path); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "front passwd") {
		t.Fatalf("a password instead of a credential: %v", err)
	}
}
