package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/policy"
)

// Limits and defaults of the [files] table.
const (
	// DefaultMaxFileSize is files.max_file_size when unset: 16 GiB.
	DefaultMaxFileSize = 16 << 30
	// DefaultMinFree is files.min_free when unset: 1 GiB.
	DefaultMinFree = 1 << 30
	// DefaultAcceptTimeout is files.accept_timeout when unset.
	DefaultAcceptTimeout = 5 * time.Minute
	// maxAcceptTimeout bounds files.accept_timeout.
	maxAcceptTimeout = 24 * time.Hour
	// defaultDownloadDir is files.download_dir when unset, in the
	// directory of store.path.
	defaultDownloadDir = "downloads"
	maxAutoAccept      = 64
	maxProxy65         = 16
	// downloadDirMode is the mode a missing download directory is
	// created with: received files are the user's alone.
	downloadDirMode = 0o700
)

// FilesConfig is the [files] table: where incoming files go, how large
// they may be, the transports to use and which offers are accepted
// without the user.
type FilesConfig struct {
	// DownloadDir is where accepted files are saved unless a rule or the
	// accept names another directory; default "downloads" in the
	// directory of store.path. A missing directory is created (mode
	// 0700) at startup.
	DownloadDir string `toml:"download_dir"`
	// MaxFileSize is the largest file accepted or sent, in bytes
	// (default [DefaultMaxFileSize]); offers with a larger file are
	// declined with the reason.
	MaxFileSize *int64 `toml:"max_file_size"`
	// Quota bounds, in bytes, what each receiving directory may hold:
	// the regular files directly in it plus what the transfers being
	// received into it still bring. It counts all peers together and
	// applies to every directory files are received into (download_dir,
	// a rule's dir, the dir of an accept). Unset or 0: no quota.
	Quota *int64 `toml:"quota"`
	// MinFree is the free space, in bytes, that must remain in a
	// receiving directory once a file is written (default
	// [DefaultMinFree]; 0: none); an accept that would leave less fails
	// (quota, not enough free space).
	MinFree *int64 `toml:"min_free"`
	// Transports is the order of transports tried (names of
	// api.Transports); a transport not listed is not used. Default: all,
	// in the order of api.Transports.
	Transports []string `toml:"transports"`
	// Proxy65 lists the JIDs of XEP-0065 SOCKS5 proxies (Prosody's
	// mod_proxy65); empty discovers them on the server (disco#items).
	Proxy65 []string `toml:"proxy65"`
	// AcceptTimeout is how long an incoming offer no rule took waits for
	// the user, as a Go duration (default "5m", at most "24h"); then it
	// is declined (reason timeout).
	AcceptTimeout string `toml:"accept_timeout"`
	// AutoAccept rules ([[files.auto_accept]]) accept offers without the
	// user: the first rule that takes an offer accepts it; with none, the
	// offer waits for the user.
	AutoAccept []AutoAcceptConfig `toml:"auto_accept"`
}

// AutoAcceptConfig is one [[files.auto_accept]] rule. A rule takes an
// offer when the peer matches, its account key meets MinTrust, and the
// offer's total size is at most MaxSize.
type AutoAcceptConfig struct {
	// Peer is a pattern as in the policy's peer condition:
	// "bob@example.org", "*@example.org", "*.example.org", "*".
	Peer string `toml:"peer"`
	// MinTrust is the least trust the sender's account key needs:
	// "verified" (default) or "tofu".
	MinTrust string `toml:"min_trust"`
	// Dir is the directory to save into (default files.download_dir);
	// created (0700) at startup if missing.
	Dir string `toml:"dir"`
	// MaxSize bounds the offer's total size in bytes; unset: only
	// files.max_file_size and files.quota bound it.
	MaxSize *int64 `toml:"max_size"`
	// RosterOnly (default true) takes offers only from accounts on the
	// roster: a stranger's offer waits for the user even when the peer
	// pattern and trust match. false lets the rule take strangers too.
	RosterOnly *bool `toml:"roster_only"`
}

// resolveFilePaths makes the [files] paths absolute against dir, and
// sets the default download directory next to the store.
func (c *Config) resolveFilePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Files.DownloadDir)
	for i := range c.Files.AutoAccept {
		abs(&c.Files.AutoAccept[i].Dir)
	}
}

// downloadDir returns download_dir, or its default next to store.path.
func (c *Config) downloadDir() string {
	if c.Files.DownloadDir != "" {
		return c.Files.DownloadDir
	}
	return filepath.Join(filepath.Dir(c.Store.Path), defaultDownloadDir)
}

// DownloadDir returns the directory accepted files are saved in by
// default.
func (c *Config) DownloadDir() string { return c.downloadDir() }

// checkDirShape reports a path that exists and is not a directory; a
// missing one is fine (it is created at startup).
func checkDirShape(p string) string {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ""
	case err != nil:
		return fmt.Sprintf("cannot use %s: %v", p, errors.Unwrap(err))
	case !fi.IsDir():
		return p + " exists and is not a directory: name a directory"
	}
	return ""
}

// validate checks the [files] table.
func (fc FilesConfig) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if fc.DownloadDir != "" {
		if p := checkDirShape(fc.DownloadDir); p != "" {
			bad("files.download_dir", "%s", p)
		}
	}
	if fc.MaxFileSize != nil && *fc.MaxFileSize < 1 {
		bad("files.max_file_size", "%d: want a size in bytes of at least 1 (e.g. 4294967296 for 4 GiB)", *fc.MaxFileSize)
	}
	if fc.MinFree != nil && *fc.MinFree < 0 {
		bad("files.min_free", "%d: want a size in bytes (e.g. 1073741824 for 1 GiB), or 0 for none", *fc.MinFree)
	}
	if fc.Quota != nil && *fc.Quota < 0 {
		bad("files.quota", "%d: want a size in bytes, or 0 for no quota", *fc.Quota)
	}
	if len(fc.Transports) == 0 && fc.Transports != nil {
		bad("files.transports", "is empty: list at least one of %v, or leave it out for all of them", api.Transports())
	}
	for i, t := range fc.Transports {
		key := "files.transports[" + strconv.Itoa(i) + "]"
		switch {
		case !slices.Contains(api.Transports(), t):
			bad(key, "%q is not a transport: want one of %v", t, api.Transports())
		case slices.Contains(fc.Transports[:i], t):
			bad(key, "%q is listed twice", t)
		}
	}
	if len(fc.Proxy65) > maxProxy65 {
		bad("files.proxy65", "at most %d proxies", maxProxy65)
	}
	for i, p := range fc.Proxy65 {
		j, err := jid.Parse(p)
		if err != nil || p == "" || j.Resourcepart() != "" {
			bad("files.proxy65["+strconv.Itoa(i)+"]", "%q is not the JID of a proxy (e.g. \"proxy.example.org\")", p)
		}
	}
	if _, err := fc.acceptTimeout(); err != nil {
		bad("files.accept_timeout", "%v", err)
	}
	if len(fc.AutoAccept) > maxAutoAccept {
		bad("files.auto_accept", "at most %d rules", maxAutoAccept)
	}
	for i, r := range fc.AutoAccept {
		key := "files.auto_accept[" + strconv.Itoa(i) + "]"
		if r.Peer == "" {
			bad(key+".peer", "is required: a JID pattern such as \"bob@example.org\", \"*@example.org\" or \"*\"")
		} else if _, err := policy.ParsePeerPattern(r.Peer); err != nil {
			bad(key+".peer", "%v", err)
		}
		switch r.MinTrust {
		case "", minTrustVerified, minTrustTOFU:
		default:
			bad(key+".min_trust", "%q: want \"verified\" or \"tofu\"", r.MinTrust)
		}
		if r.Dir != "" {
			if p := checkDirShape(r.Dir); p != "" {
				bad(key+".dir", "%s", p)
			}
		}
		if r.MaxSize != nil && *r.MaxSize < 1 {
			bad(key+".max_size", "%d: want a size in bytes of at least 1, or leave it out", *r.MaxSize)
		}
	}
	return errs
}

// acceptTimeout returns accept_timeout, or its default.
func (fc FilesConfig) acceptTimeout() (time.Duration, error) {
	if fc.AcceptTimeout == "" {
		return DefaultAcceptTimeout, nil
	}
	d, err := parseDuration(fc.AcceptTimeout)
	if err != nil {
		return 0, err
	}
	if d <= 0 || d > maxAcceptTimeout {
		return 0, fmt.Errorf("%q: want a duration from 1s to %s", fc.AcceptTimeout, maxAcceptTimeout)
	}
	return d, nil
}

// maxFileSize returns max_file_size, or its default.
func (fc FilesConfig) maxFileSize() uint64 {
	if fc.MaxFileSize == nil {
		return DefaultMaxFileSize
	}
	return uint64(*fc.MaxFileSize)
}

// minFree returns min_free, or its default.
func (fc FilesConfig) minFree() uint64 {
	if fc.MinFree == nil {
		return DefaultMinFree
	}
	return uint64(*fc.MinFree)
}

// quota returns the quota in bytes; 0 is none.
func (fc FilesConfig) quota() uint64 {
	if fc.Quota == nil {
		return 0
	}
	return uint64(*fc.Quota)
}

// transports returns the transport order.
func (fc FilesConfig) transports() []string {
	if len(fc.Transports) == 0 {
		return api.Transports()
	}
	return append([]string(nil), fc.Transports...)
}

// autoAccept is a compiled [[files.auto_accept]] rule.
type autoAccept struct {
	peer       policy.PeerPattern
	minTrust   string
	dir        string // absolute
	maxSize    uint64 // 0: no bound of its own
	rosterOnly bool   // strangers' offers are not taken
}

// autoAcceptRules compiles the rules with dir defaulting to download; the
// configuration is valid.
func (fc FilesConfig) autoAcceptRules(download string) ([]autoAccept, error) {
	var out []autoAccept
	for i, r := range fc.AutoAccept {
		p, err := policy.ParsePeerPattern(r.Peer)
		if err != nil {
			return nil, &FieldError{Key: "files.auto_accept[" + strconv.Itoa(i) + "].peer", Msg: err.Error()}
		}
		a := autoAccept{peer: p, minTrust: r.MinTrust, dir: r.Dir, rosterOnly: r.RosterOnly == nil || *r.RosterOnly}
		if a.minTrust == "" {
			a.minTrust = minTrustVerified
		}
		if a.dir == "" {
			a.dir = download
		}
		if r.MaxSize != nil {
			a.maxSize = uint64(*r.MaxSize)
		}
		out = append(out, a)
	}
	return out, nil
}

// makeDirs creates the download directory and the rules' directories
// that are missing, mode 0700, and checks that the daemon can create
// files in each.
func (c *Config) makeDirs() error {
	dirs := []struct{ key, dir string }{{"files.download_dir", c.downloadDir()}}
	for i, r := range c.Files.AutoAccept {
		if r.Dir != "" {
			dirs = append(dirs, struct{ key, dir string }{"files.auto_accept[" + strconv.Itoa(i) + "].dir", r.Dir})
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d.dir, downloadDirMode); err != nil {
			return &FieldError{Key: d.key, Msg: fmt.Sprintf("cannot create %s: %v", d.dir, errors.Unwrap(err))}
		}
		if err := api.CheckReceiveDir("dir", d.dir); err != nil {
			var fe *api.FileError
			if errors.As(err, &fe) {
				return &FieldError{Key: d.key, Msg: fe.Problem}
			}
			return &FieldError{Key: d.key, Msg: err.Error()}
		}
	}
	return nil
}

// fileSettings compiles the [files] table for the backend; the configuration
// is valid.
func (c *Config) fileSettings() (fileSettings, error) {
	download := c.downloadDir()
	rules, err := c.Files.autoAcceptRules(download)
	if err != nil {
		return fileSettings{}, err
	}
	timeout, err := c.Files.acceptTimeout()
	if err != nil {
		return fileSettings{}, &FieldError{Key: "files.accept_timeout", Msg: err.Error()}
	}
	return fileSettings{download: download, maxFileSize: c.Files.maxFileSize(), quota: c.Files.quota(),
		minFree: c.Files.minFree(), transports: c.Files.transports(), acceptTimeout: timeout, rules: rules}, nil
}
