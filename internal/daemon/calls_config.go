package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/policy"
)

// Limits of the [calls] table.
const (
	maxICEServers     = 16
	maxICEURLs        = 8
	maxICEFieldLen    = 1024
	maxAutoAnswer     = 64
	defaultRingTime   = gateway.DefaultRingTimeout
	maxRingTime       = 10 * time.Minute
	minTrustVerified  = "verified"
	minTrustTOFU      = "tofu"
	defaultMinTrustAA = minTrustVerified
)

// CallsConfig is the [calls] table: NAT traversal and how incoming calls
// are answered.
type CallsConfig struct {
	// RecordDir is the directory auto-answered calls with record = true
	// record into; it must exist.
	RecordDir string `toml:"record_dir"`
	// RelayOnly offers relayed (TURN) candidates only, so the peer never
	// learns this host's addresses; it needs a TURN server, configured
	// here or handed out by the server (UseServerServices).
	RelayOnly bool `toml:"relay_only"`
	// UseServerServices asks the XMPP server for STUN and TURN servers
	// (XEP-0215, e.g. Prosody's mod_turn_external); default true.
	UseServerServices *bool `toml:"use_server_services"`
	// ICEServer lists STUN and TURN servers ([[calls.ice_server]]).
	ICEServer []ICEServerConfig `toml:"ice_server"`
	// RingTimeout is how long a call rings, as a Go duration (default
	// gateway.DefaultRingTimeout, at most "10m"): an incoming call not
	// answered by then is rejected with reason timeout, a call placed
	// here that no device answered is retracted.
	RingTimeout string `toml:"ring_timeout"`
	// OutageTimeout is how long a connected call may lose its media path
	// (reconnecting, ICE restarts) before it ends with connectivity-error,
	// as a Go duration from "5s" to "10m" (default
	// gateway.DefaultCallOutage).
	OutageTimeout string `toml:"outage_timeout"`
	// AutoAnswer rules ([[calls.auto_answer]]) answer incoming calls
	// without the user: the first rule that matches answers; without a
	// match the call rings until the user answers or declines it.
	AutoAnswer []AutoAnswerConfig `toml:"auto_answer"`
}

// ICEServerConfig is one [[calls.ice_server]] entry.
type ICEServerConfig struct {
	URLs       []string `toml:"urls"` // stun:, stuns:, turn: or turns: URIs
	Username   string   `toml:"username"`
	Credential Secret   `toml:"credential"`
}

// AutoAnswerConfig is one [[calls.auto_answer]] rule.
type AutoAnswerConfig struct {
	// Peer is a pattern as in the policy's peer condition:
	// "bob@example.org", "*@example.org", "*.example.org", "*".
	Peer string `toml:"peer"`
	// MinTrust is the least trust the caller's account key needs:
	// "verified" (default) or "tofu" (pinned on first use, or verified).
	MinTrust string `toml:"min_trust"`
	// AudioFile (Ogg Opus) and VideoFile (IVF VP8) are played into the
	// call; empty sends nothing on that medium.
	AudioFile string `toml:"audio_file"`
	VideoFile string `toml:"video_file"`
	// Record records the received tracks in calls.record_dir.
	Record bool `toml:"record"`
}

// resolveCallPaths makes the [calls] paths absolute against dir.
func (c *Config) resolveCallPaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Calls.RecordDir)
	for i := range c.Calls.AutoAnswer {
		abs(&c.Calls.AutoAnswer[i].AudioFile)
		abs(&c.Calls.AutoAnswer[i].VideoFile)
	}
}

// mediaProblem returns what a media check found, for a config message.
func mediaProblem(err error) string {
	var me *api.MediaError
	if errors.As(err, &me) {
		return me.Problem
	}
	return err.Error()
}

// validate checks the [calls] table.
func (cc CallsConfig) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if cc.RecordDir != "" {
		if err := api.CheckRecordDir(cc.RecordDir); err != nil {
			bad("calls.record_dir", "%s", mediaProblem(err))
		}
	}
	if _, err := cc.ringTimeout(); err != nil {
		bad("calls.ring_timeout", "%v", err)
	}
	if _, err := cc.outageTimeout(); err != nil {
		bad("calls.outage_timeout", "%v", err)
	}
	if len(cc.ICEServer) > maxICEServers {
		bad("calls.ice_server", "at most %d entries", maxICEServers)
	}
	haveTURN := false
	for i, s := range cc.ICEServer {
		key := "calls.ice_server[" + strconv.Itoa(i) + "]"
		if len(s.URLs) == 0 {
			bad(key+".urls", "is required: e.g. urls = [\"turn:turn.example.org:3478?transport=udp\"]")
		}
		if len(s.URLs) > maxICEURLs {
			bad(key+".urls", "at most %d URLs", maxICEURLs)
		}
		if len(s.Username) > maxICEFieldLen || len(s.Credential) > maxICEFieldLen {
			bad(key, "username and credential are at most %d bytes", maxICEFieldLen)
		}
		turn := false
		for j, u := range s.URLs {
			ukey := key + ".urls[" + strconv.Itoa(j) + "]"
			if len(u) > maxICEFieldLen {
				bad(ukey, "longer than %d bytes", maxICEFieldLen)
				continue
			}
			uri, err := stun.ParseURI(u)
			if err != nil {
				bad(ukey, "%q is not a STUN or TURN URI (%v): write e.g. \"stun:stun.example.org:3478\" or \"turn:turn.example.org:3478?transport=udp\"", u, err)
				continue
			}
			if uri.Scheme == stun.SchemeTypeTURN || uri.Scheme == stun.SchemeTypeTURNS {
				turn = true
			}
		}
		switch {
		case turn && (s.Username == "" || s.Credential == ""):
			bad(key, "a TURN server needs username and credential")
		case !turn && (s.Username != "" || s.Credential != ""):
			bad(key, "username and credential apply to turn: and turns: URLs only")
		}
		haveTURN = haveTURN || turn
	}
	if cc.RelayOnly && !haveTURN && !cc.useServerServices() {
		bad("calls.relay_only", "needs a TURN server: add a [[calls.ice_server]] with a turn: URL, or keep use_server_services = true so the XMPP server can hand one out")
	}
	if len(cc.AutoAnswer) > maxAutoAnswer {
		bad("calls.auto_answer", "at most %d rules", maxAutoAnswer)
	}
	for i, r := range cc.AutoAnswer {
		key := "calls.auto_answer[" + strconv.Itoa(i) + "]"
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
		if r.AudioFile != "" {
			if err := api.CheckAudioFile(r.AudioFile); err != nil {
				bad(key+".audio_file", "%s", mediaProblem(err))
			}
		}
		if r.VideoFile != "" {
			if err := api.CheckVideoFile(r.VideoFile); err != nil {
				bad(key+".video_file", "%s", mediaProblem(err))
			}
		}
		if r.Record && cc.RecordDir == "" {
			bad(key+".record", "needs calls.record_dir: the directory to record into")
		}
	}
	return errs
}

// ringTimeout returns ring_timeout, or its default.
func (cc CallsConfig) ringTimeout() (time.Duration, error) {
	if cc.RingTimeout == "" {
		return defaultRingTime, nil
	}
	d, err := parseDuration(cc.RingTimeout)
	if err != nil {
		return 0, err
	}
	if d <= 0 || d > maxRingTime {
		return 0, fmt.Errorf("%q: want a duration from 1s to %s", cc.RingTimeout, maxRingTime)
	}
	return d, nil
}

// outageTimeout returns outage_timeout, or its default.
func (cc CallsConfig) outageTimeout() (time.Duration, error) {
	if cc.OutageTimeout == "" {
		return gateway.DefaultCallOutage, nil
	}
	d, err := parseDuration(cc.OutageTimeout)
	if err != nil {
		return 0, err
	}
	if d < 5*time.Second || d > maxRingTime {
		return 0, fmt.Errorf("%q: want a duration from 5s to %s", cc.OutageTimeout, maxRingTime)
	}
	return d, nil
}

// useServerServices reports whether XEP-0215 is asked for ICE servers.
func (cc CallsConfig) useServerServices() bool {
	return cc.UseServerServices == nil || *cc.UseServerServices
}

// iceServers returns the configured servers in pion's form.
func (cc CallsConfig) iceServers() []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, s := range cc.ICEServer {
		is := webrtc.ICEServer{URLs: append([]string(nil), s.URLs...), Username: s.Username}
		if s.Credential != "" {
			is.Credential = string(s.Credential)
		}
		out = append(out, is)
	}
	return out
}

// autoAnswer is a compiled [[calls.auto_answer]] rule.
type autoAnswer struct {
	peer      policy.PeerPattern
	minTrust  string
	audioFile string
	videoFile string
	recordDir string // "" unless the rule records
}

// autoAnswerRules compiles the rules; the configuration is valid.
func (cc CallsConfig) autoAnswerRules() ([]autoAnswer, error) {
	var out []autoAnswer
	for i, r := range cc.AutoAnswer {
		p, err := policy.ParsePeerPattern(r.Peer)
		if err != nil {
			return nil, &FieldError{Key: "calls.auto_answer[" + strconv.Itoa(i) + "].peer", Msg: err.Error()}
		}
		a := autoAnswer{peer: p, minTrust: r.MinTrust, audioFile: r.AudioFile, videoFile: r.VideoFile}
		if a.minTrust == "" {
			a.minTrust = defaultMinTrustAA
		}
		if r.Record {
			a.recordDir = cc.RecordDir
		}
		out = append(out, a)
	}
	return out, nil
}

// trustAtLeast reports whether an account key at trust level level
// (trust.Level's names) meets min ("verified" or "tofu"): changed,
// distrusted and unknown keys never do.
func trustAtLeast(level, min string) bool {
	switch level {
	case minTrustVerified:
		return true
	case minTrustTOFU:
		return min == minTrustTOFU
	}
	return false
}
