package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
)

const filesConfig = `
[files]
download_dir = "in"
max_file_size = 1_000_000
quota = 5_000_000
min_free = 0
transports = ["ibb", "s5b-proxy"]
proxy65 = ["proxy.example.test"]
accept_timeout = "90s"

[[files.auto_accept]]
peer = "bob@example.test"
dir = "from-bob"

[[files.auto_accept]]
peer = "*@example.test"
min_trust = "tofu"
max_size = 4096
roster_only = false
`

func TestFilesConfig(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(minimal+filesConfig), dir)
	if err != nil {
		t.Fatal(err)
	}
	fc := c.Files
	if c.downloadDir() != filepath.Join(dir, "in") || fc.maxFileSize() != 1_000_000 || fc.quota() != 5_000_000 {
		t.Fatalf("files %+v", fc)
	}
	if got := fc.transports(); !reflect.DeepEqual(got, []string{api.TransportIBB, api.TransportS5BProxy}) {
		t.Fatalf("transports %v", got)
	}
	if d, err := fc.acceptTimeout(); err != nil || d != 90*time.Second {
		t.Fatalf("accept timeout %v %v", d, err)
	}
	s, err := c.fileSettings()
	if err != nil || len(s.rules) != 2 {
		t.Fatalf("settings %+v %v", s, err)
	}
	if s.minFree != 0 {
		t.Fatalf("min_free %d", s.minFree)
	}
	if r := s.rules[0]; r.minTrust != "verified" || r.dir != filepath.Join(dir, "from-bob") || r.maxSize != 0 || !r.peer.Match("bob@example.test") || !r.rosterOnly {
		t.Fatalf("rule 0 %+v", r)
	}
	if r := s.rules[1]; r.minTrust != "tofu" || r.dir != filepath.Join(dir, "in") || r.maxSize != 4096 || !r.peer.Match("carol@example.test") || r.rosterOnly {
		t.Fatalf("rule 1 %+v", r)
	}
	// The directories are created at startup, 0700.
	if err := c.makeDirs(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"in", "from-bob"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != downloadDirMode {
			t.Fatalf("%s: %v %v", d, fi, err)
		}
	}

	// Defaults: downloads next to the store, 16 GiB, no quota, every
	// transport, 5 minutes, no rules.
	c, err = Parse([]byte(minimal), "/")
	if err != nil {
		t.Fatal(err)
	}
	fc = c.Files
	if c.DownloadDir() != "/downloads" || fc.maxFileSize() != DefaultMaxFileSize || fc.quota() != 0 || len(fc.AutoAccept) != 0 {
		t.Fatalf("defaults %+v (download %s)", fc, c.DownloadDir())
	}
	if got := fc.transports(); !reflect.DeepEqual(got, api.Transports()) {
		t.Fatalf("default transports %v", got)
	}
	if d, _ := fc.acceptTimeout(); d != DefaultAcceptTimeout {
		t.Fatalf("default accept timeout %v", d)
	}
	if fc.minFree() != DefaultMinFree {
		t.Fatalf("default min_free %d", fc.minFree())
	}
}

func TestFilesConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, toml, key string
	}{
		{"download dir a file", "[files]\ndownload_dir = \"file\"", "files.download_dir"},
		{"download dir under a file", "[files]\ndownload_dir = \"file/sub\"", "files.download_dir"},
		{"max size zero", "[files]\nmax_file_size = 0", "files.max_file_size"},
		{"max size negative", "[files]\nmax_file_size = -1", "files.max_file_size"},
		{"quota negative", "[files]\nquota = -5", "files.quota"},
		{"min free negative", "[files]\nmin_free = -1", "files.min_free"},
		{"no transports", "[files]\ntransports = []", "files.transports"},
		{"unknown transport", "[files]\ntransports = [\"ibb\", \"ftp\"]", "files.transports[1]"},
		{"transport twice", "[files]\ntransports = [\"ibb\", \"ibb\"]", "files.transports[1]"},
		{"proxy with resource", "[files]\nproxy65 = [\"proxy.example.test/x\"]", "files.proxy65[0]"},
		{"proxy empty", "[files]\nproxy65 = [\"\"]", "files.proxy65[0]"},
		{"accept timeout", "[files]\naccept_timeout = \"later\"", "files.accept_timeout"},
		{"accept timeout zero", "[files]\naccept_timeout = \"0s\"", "files.accept_timeout"},
		{"accept timeout long", "[files]\naccept_timeout = \"48h\"", "files.accept_timeout"},
		{"rule without peer", "[[files.auto_accept]]\nmin_trust = \"tofu\"", "files.auto_accept[0].peer"},
		{"rule bad peer", "[[files.auto_accept]]\npeer = \"bob@example.test/phone\"", "files.auto_accept[0].peer"},
		{"rule bad trust", "[[files.auto_accept]]\npeer = \"*\"\nmin_trust = \"anyone\"", "files.auto_accept[0].min_trust"},
		{"rule dir a file", "[[files.auto_accept]]\npeer = \"*\"\ndir = \"file\"", "files.auto_accept[0].dir"},
		{"rule max size zero", "[[files.auto_accept]]\npeer = \"*\"\nmax_size = 0", "files.auto_accept[0].max_size"},
		{"second rule", "[[files.auto_accept]]\npeer = \"*\"\n[[files.auto_accept]]\npeer = \"\"", "files.auto_accept[1].peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+tc.toml), dir)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrConfig) {
				t.Fatalf("want a FieldError, got %v", err)
			}
			if fe.Key != tc.key {
				t.Fatalf("error %v names %s, want %s", err, fe.Key, tc.key)
			}
			if !strings.HasPrefix(err.Error(), "daemon: config: "+tc.key+": ") {
				t.Fatalf("message %q does not start with the key", err)
			}
		})
	}
	var uk *UnknownKeysError
	if _, err := Parse([]byte(minimal+"[[files.auto_accept]]\npeer = \"*\"\nmaxsize = 1"), dir); !errors.As(err, &uk) || uk.Keys[0] != "files.auto_accept.maxsize" {
		t.Fatalf("typo: %v", err)
	}
	// A size written as a string is a type error, not silently 0.
	if _, err := Parse([]byte(minimal+"[files]\nquota = \"5GB\""), dir); !errors.Is(err, ErrConfig) {
		t.Fatalf("quota as a string: %v", err)
	}
	// A download directory that cannot be created stops the start with
	// its key.
	c := &Config{Files: FilesConfig{DownloadDir: filepath.Join(dir, "file", "sub")}}
	var fe *FieldError
	if err := c.makeDirs(); !errors.As(err, &fe) || fe.Key != "files.download_dir" {
		t.Fatalf("makeDirs under a file: %v", err)
	}
}

// TestExampleFilesConfig: the [files] table of docs/api.md's example is
// what Load reads.
func TestExampleFilesConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(examplePolicy(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(exampleConfig(t)), dir)
	if err != nil {
		t.Fatal(err)
	}
	fc := c.Files
	if c.downloadDir() != filepath.Join(dir, "downloads") || fc.maxFileSize() != 4<<30 || fc.quota() != 20<<30 ||
		len(fc.AutoAccept) != 1 || fc.AutoAccept[0].Peer != "bob@example.org" || fc.AutoAccept[0].MinTrust != "verified" {
		t.Fatalf("example [files] %+v", fc)
	}
}
