package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/securejingle/securejingle/gateway"
)

// writeMediaFiles writes header-only in.ogg (Opus), in.ivf (VP8) and
// vp9.ivf into dir.
func writeMediaFiles(t *testing.T, dir string) {
	t.Helper()
	ow, err := oggwriter.New(filepath.Join(dir, "in.ogg"), 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	for name, mime := range map[string]string{"in.ivf": webrtc.MimeTypeVP8, "vp9.ivf": webrtc.MimeTypeVP9} {
		iw, err := ivfwriter.New(filepath.Join(dir, name), ivfwriter.WithCodec(mime))
		if err != nil {
			t.Fatal(err)
		}
		if err := iw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

const callsConfig = `
[calls]
record_dir = "rec"
relay_only = true
use_server_services = false
ring_timeout = "20s"

[[calls.ice_server]]
urls = ["stun:stun.example.test:3478"]

[[calls.ice_server]]
urls = ["turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:5349"]
username = "alice"
credential = "t0ps3cret"

[[calls.auto_answer]]
peer = "bob@example.test"
audio_file = "in.ogg"
video_file = "in.ivf"
record = true

[[calls.auto_answer]]
peer = "*@example.test"
min_trust = "tofu"
`

func TestCallsConfig(t *testing.T) {
	dir := t.TempDir()
	writeMediaFiles(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "rec"), 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(minimal+callsConfig), dir)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.Calls
	if cc.RecordDir != filepath.Join(dir, "rec") || !cc.RelayOnly || cc.useServerServices() {
		t.Fatalf("calls %+v", cc)
	}
	if d, err := cc.ringTimeout(); err != nil || d != 20*time.Second {
		t.Fatalf("ring timeout %v %v", d, err)
	}
	want := []webrtc.ICEServer{
		{URLs: []string{"stun:stun.example.test:3478"}},
		{URLs: []string{"turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:5349"}, Username: "alice", Credential: "t0ps3cret"},
	}
	if got := cc.iceServers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ICE servers %+v, want %+v", got, want)
	}
	rules, err := cc.autoAnswerRules()
	if err != nil || len(rules) != 2 {
		t.Fatalf("rules %+v %v", rules, err)
	}
	if r := rules[0]; r.minTrust != "verified" || r.audioFile != filepath.Join(dir, "in.ogg") ||
		r.videoFile != filepath.Join(dir, "in.ivf") || r.recordDir != filepath.Join(dir, "rec") || !r.peer.Match("bob@example.test/phone") {
		t.Fatalf("rule 0 %+v", r)
	}
	if r := rules[1]; r.minTrust != "tofu" || r.recordDir != "" || r.audioFile != "" || !r.peer.Match("carol@example.test") {
		t.Fatalf("rule 1 %+v", r)
	}
	// The credential never prints.
	if s := strings.Join([]string{cc.ICEServer[1].Credential.String()}, ""); strings.Contains(s, "t0ps3cret") {
		t.Fatal("credential printed")
	}

	// Defaults: server services on, the gateway's ring timeout, no rules.
	c, err = Parse([]byte(minimal), "/")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := c.Calls.ringTimeout(); !c.Calls.useServerServices() || d != gateway.DefaultRingTimeout || c.Calls.RelayOnly || len(c.Calls.AutoAnswer) != 0 {
		t.Fatalf("defaults %+v", c.Calls)
	}
}

func TestCallsConfigErrors(t *testing.T) {
	dir := t.TempDir()
	writeMediaFiles(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, toml, key string
	}{
		{"record dir missing", "[calls]\nrecord_dir = \"nope\"", "calls.record_dir"},
		{"record dir a file", "[calls]\nrecord_dir = \"file\"", "calls.record_dir"},
		{"ring timeout", "[calls]\nring_timeout = \"soon\"", "calls.ring_timeout"},
		{"ring timeout zero", "[calls]\nring_timeout = \"0s\"", "calls.ring_timeout"},
		{"ring timeout long", "[calls]\nring_timeout = \"1h\"", "calls.ring_timeout"},
		{"no urls", "[[calls.ice_server]]\nusername = \"u\"", "calls.ice_server[0].urls"},
		{"bad url", "[[calls.ice_server]]\nurls = [\"http://turn.example.test\"]", "calls.ice_server[0].urls[0]"},
		{"turn without credential", "[[calls.ice_server]]\nurls = [\"turn:turn.example.test\"]\nusername = \"u\"", "calls.ice_server[0]"},
		{"stun with credential", "[[calls.ice_server]]\nurls = [\"stun:stun.example.test\"]\nusername = \"u\"\ncredential = \"c\"", "calls.ice_server[0]"},
		{"relay only without turn", "[calls]\nrelay_only = true\nuse_server_services = false\n[[calls.ice_server]]\nurls = [\"stun:stun.example.test\"]", "calls.relay_only"},
		{"rule without peer", "[[calls.auto_answer]]\nmin_trust = \"tofu\"", "calls.auto_answer[0].peer"},
		{"rule bad peer", "[[calls.auto_answer]]\npeer = \"bob@example.test/phone\"", "calls.auto_answer[0].peer"},
		{"rule bad trust", "[[calls.auto_answer]]\npeer = \"*\"\nmin_trust = \"anyone\"", "calls.auto_answer[0].min_trust"},
		{"rule missing audio", "[[calls.auto_answer]]\npeer = \"*\"\naudio_file = \"none.ogg\"", "calls.auto_answer[0].audio_file"},
		{"rule audio not ogg", "[[calls.auto_answer]]\npeer = \"*\"\naudio_file = \"in.ivf\"", "calls.auto_answer[0].audio_file"},
		{"rule video not vp8", "[[calls.auto_answer]]\npeer = \"*\"\nvideo_file = \"vp9.ivf\"", "calls.auto_answer[0].video_file"},
		{"rule record without dir", "[[calls.auto_answer]]\npeer = \"*\"\nrecord = true", "calls.auto_answer[0].record"},
		{"second rule", "[[calls.auto_answer]]\npeer = \"*\"\n[[calls.auto_answer]]\npeer = \"\"", "calls.auto_answer[1].peer"},
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
	// A typo is an unknown key.
	var uk *UnknownKeysError
	if _, err := Parse([]byte(minimal+"[[calls.auto_answer]]\npeer = \"*\"\nrecrod = true"), dir); !errors.As(err, &uk) || uk.Keys[0] != "calls.auto_answer.recrod" {
		t.Fatalf("typo: %v", err)
	}
}

func TestTrustAtLeast(t *testing.T) {
	for _, tc := range []struct {
		level, min string
		want       bool
	}{
		{"verified", "verified", true},
		{"verified", "tofu", true},
		{"tofu", "tofu", true},
		{"tofu", "verified", false},
		{"changed", "tofu", false},
		{"distrusted", "tofu", false},
		{"unknown", "tofu", false},
		{"", "tofu", false},
	} {
		if got := trustAtLeast(tc.level, tc.min); got != tc.want {
			t.Errorf("%s at least %s: %v", tc.level, tc.min, got)
		}
	}
}

// TestExampleCallsConfig: the [calls] table of docs/api.md's example is
// what Load reads.
func TestExampleCallsConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(examplePolicy(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(exampleConfig(t)), dir)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.Calls
	if cc.RelayOnly || !cc.useServerServices() || cc.RingTimeout != "45s" || len(cc.AutoAnswer) != 1 ||
		cc.AutoAnswer[0].Peer != "bob@example.org" || cc.AutoAnswer[0].MinTrust != "verified" {
		t.Fatalf("example [calls] %+v", cc)
	}
}

func TestCallsOutageTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"": gateway.DefaultCallOutage, "12s": 12 * time.Second, "10m": 10 * time.Minute} {
		if d, err := (CallsConfig{OutageTimeout: in}).outageTimeout(); err != nil || d != want {
			t.Errorf("outage_timeout %q: %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"1s", "11m", "soon", "-5s"} {
		cc := CallsConfig{OutageTimeout: in}
		if _, err := cc.outageTimeout(); err == nil {
			t.Errorf("outage_timeout %q accepted", in)
		}
		if errs := cc.validate(); len(errs) == 0 || !strings.Contains(errs[0].Error(), "calls.outage_timeout") {
			t.Errorf("outage_timeout %q: validate %v", in, errs)
		}
	}
}
