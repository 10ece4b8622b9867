package rtcpeer

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/srtp"
)

// Config describes one call leg. [New] copies and validates it; changing a
// Config afterwards has no effect on the Peer.
//
// The zero value is a valid configuration of a peer that negotiates no
// media: set Audio and/or Video.
type Config struct {
	// Name prefixes the recording file names ("<Name>-audio-0.ogg");
	// usually the call id. Only ASCII letters, digits, '-' and '_', at
	// most 64 of them. Empty means "call".
	Name string

	// Certificate is the DTLS certificate of this call, for example
	// dtls.NewCertificate().WebRTC(). The zero value makes New generate a
	// fresh ECDSA P-256 one (dtls.NewCertificate).
	Certificate webrtc.Certificate
	// SRTPProfiles are the DTLS-SRTP protection profiles offered, most
	// preferred first. Nil means srtp.Profiles(); every profile must be
	// srtp.Allowed (no NULL profile).
	SRTPProfiles []piondtls.SRTPProtectionProfile

	// ICEServers are the STUN and TURN servers to gather candidates from.
	ICEServers []webrtc.ICEServer
	// RelayOnly gathers relay candidates only (ICETransportPolicyRelay),
	// so that the peer never learns our addresses. As a second line of
	// defence the Peer also drops every non-relay candidate before it
	// reaches [Peer.OnCandidate] or a description it returns.
	RelayOnly bool
	// Net, if set, is the simulated network (pion/transport vnet) the
	// peer uses instead of the host's; tests only. mDNS is then off and
	// only UDP over IPv4 is gathered.
	Net *vnet.Net
	// IncludeLoopback also gathers host candidates on loopback interfaces.
	IncludeLoopback bool
	// LoopbackOnly gathers UDP IPv4 host candidates on loopback interfaces
	// only; tests that must not touch other interfaces.
	LoopbackOnly bool
	// MDNS resolves the ".local" host candidates browsers send instead of
	// their addresses (ICE mDNS, query only). Off by default, since it
	// joins a multicast group on every interface.
	MDNS bool
	// ICE timeouts; zero means pion's default (disconnected after 5 s
	// without traffic, failed 25 s after that, keepalives every 2 s).
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	ICEKeepaliveInterval   time.Duration

	// Audio and Video say which transceivers the peer negotiates. A kind
	// without a file is received only; a kind the remote offer has but the
	// Config does not want is rejected in the answer.
	Audio, Video bool
	// AudioFile is an Ogg Opus file to send on the audio transceiver ("" =
	// send nothing); it needs Audio.
	AudioFile string
	// VideoFile is an IVF VP8 file to send on the video transceiver; it
	// needs Video.
	VideoFile string
	// Loop restarts playback at the start of a file when it ends, until
	// the peer is closed.
	Loop bool

	// SendAudio and SendVideo are tracks the caller writes itself (a
	// relay: srtp.Forwarder), sent on the audio or video transceiver
	// instead of a file. Each needs Audio or Video, excludes AudioFile or
	// VideoFile, and must have the codec of that kind (Opus, VP8).
	SendAudio, SendVideo *webrtc.TrackLocalStaticRTP
	// OnTrack, if set, takes every received track once it is admitted
	// ([Peer.Admit]), instead of recording it: it runs on the track's
	// goroutine and reads the track until it returns. Its ctx ends at
	// [Peer.Quiesce] or [Peer.Close]. Before Admit the track's packets are
	// read and discarded (they cannot be handed over later); after
	// [Peer.Reject] OnTrack is never called. Received tracks are then
	// neither counted in AudioPayloads/VideoFrames nor recorded.
	OnTrack func(ctx context.Context, tr *webrtc.TrackRemote)
	// OnRTCP, if set, gets the RTCP packets the peer sends about what we
	// send on the transceiver of kind (receiver reports, PLI, FIR,
	// NACK...), as pion parsed them; it runs on that sender's reading
	// goroutine and must not block.
	OnRTCP func(kind webrtc.RTPCodecType, pkts []rtcp.Packet)
	// OnSourceRTCP, if set, gets the RTCP packets the peer sends about a
	// track it sends us (its sender reports, SDES, BYE...), as pion parsed
	// them, read from that track's receiver: ssrc is the track's SSRC.
	// It is called only while the track is admitted ([Peer.Admit]) and
	// the Peer not quiesced; it runs on the track's RTCP goroutine and
	// must not block.
	OnSourceRTCP func(kind webrtc.RTPCodecType, ssrc uint32, pkts []rtcp.Packet)
	// RelayReports makes the Peer one leg of a relay that forwards RTCP
	// reports end to end: it sends no sender or receiver reports of its
	// own (pion's report interceptors are not registered), so the peer
	// gets only those the relay writes ([Peer.WriteRTCP]) from the other
	// leg's peer, never two sources for one SSRC. NACKs, transport-wide
	// congestion control feedback and key frame requests stay per leg.
	RelayReports bool

	// RecordDir, if set, is an existing directory the received tracks are
	// recorded into: Opus to "<Name>-audio-<n>.ogg", VP8 to
	// "<Name>-video-<n>.ivf", n counting tracks of that kind from 0 (an
	// existing file is never overwritten: n moves on).
	RecordDir string
	// MaxRecordingBytes bounds each recording file; zero means
	// [DefaultMaxRecordingBytes]. A recording that reaches it is cut at
	// the last whole packet or frame and [Stats.RecordingError] says so.
	MaxRecordingBytes int64

	// InsecureSkipPionFingerprintCheck turns off pion's own comparison of
	// the peer certificate with the SDP fingerprint, so that a test can
	// show that securejingle's binding check alone catches a man in the
	// middle. Never set it outside tests.
	InsecureSkipPionFingerprintCheck bool

	// Logger receives the peer's logs and pion's (pion's at debug level,
	// its warnings and errors at info: pion reports expected conditions
	// as errors). Nil discards them.
	Logger *slog.Logger
}

// validate checks c and fills in defaults; it opens the media files to
// check their headers.
func (c *Config) validate() error {
	if c.Name == "" {
		c.Name = "call"
	}
	if !validName(c.Name) {
		return configErr("Name %q: only letters, digits, '-' and '_', at most 64", c.Name)
	}
	if c.SRTPProfiles == nil {
		c.SRTPProfiles = srtp.Profiles()
	} else {
		if len(c.SRTPProfiles) == 0 {
			return configErr("SRTPProfiles is empty")
		}
		c.SRTPProfiles = append([]piondtls.SRTPProtectionProfile(nil), c.SRTPProfiles...)
	}
	for _, p := range c.SRTPProfiles {
		if !srtp.Allowed(p) {
			return configErr("SRTP profile %s: %w", srtp.ProfileName(p), srtp.ErrProfileNotAllowed)
		}
	}
	if c.AudioFile != "" && !c.Audio {
		return configErr("AudioFile %q without Audio", c.AudioFile)
	}
	if c.VideoFile != "" && !c.Video {
		return configErr("VideoFile %q without Video", c.VideoFile)
	}
	for _, k := range []struct {
		name       string
		track      *webrtc.TrackLocalStaticRTP
		want       bool
		file, mime string
	}{{"SendAudio", c.SendAudio, c.Audio, c.AudioFile, webrtc.MimeTypeOpus}, {"SendVideo", c.SendVideo, c.Video, c.VideoFile, webrtc.MimeTypeVP8}} {
		switch {
		case k.track == nil:
		case !k.want:
			return configErr("%s without %s", k.name, strings.TrimPrefix(k.name, "Send"))
		case k.file != "":
			return configErr("%s and a file for the same kind", k.name)
		case !strings.EqualFold(k.track.Codec().MimeType, k.mime):
			return configErr("%s has codec %s, want %s", k.name, k.track.Codec().MimeType, k.mime)
		}
	}
	if c.ICEDisconnectedTimeout < 0 || c.ICEFailedTimeout < 0 || c.ICEKeepaliveInterval < 0 {
		return configErr("negative ICE timeout")
	}
	if c.MaxRecordingBytes < 0 {
		return configErr("negative MaxRecordingBytes")
	}
	if c.MaxRecordingBytes == 0 {
		c.MaxRecordingBytes = DefaultMaxRecordingBytes
	}
	if c.RecordDir != "" {
		fi, err := os.Stat(c.RecordDir)
		if err != nil {
			return configErr("RecordDir: %w", err)
		}
		if !fi.IsDir() {
			return configErr("RecordDir %q is not a directory", c.RecordDir)
		}
	}
	if c.AudioFile != "" {
		if err := checkOgg(c.AudioFile); err != nil {
			return configErr("AudioFile: %w", err)
		}
	}
	if c.VideoFile != "" {
		if err := checkIVF(c.VideoFile); err != nil {
			return configErr("VideoFile: %w", err)
		}
	}
	c.ICEServers = append([]webrtc.ICEServer(nil), c.ICEServers...)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// iceTimeouts returns the three ICE timeouts with pion's defaults filled
// in, and whether any was set.
func (c *Config) iceTimeouts() (disconnected, failed, keepalive time.Duration, set bool) {
	disconnected, failed, keepalive = 5*time.Second, 25*time.Second, 2*time.Second
	if c.ICEDisconnectedTimeout > 0 {
		disconnected, set = c.ICEDisconnectedTimeout, true
	}
	if c.ICEFailedTimeout > 0 {
		failed, set = c.ICEFailedTimeout, true
	}
	if c.ICEKeepaliveInterval > 0 {
		keepalive, set = c.ICEKeepaliveInterval, true
	}
	return disconnected, failed, keepalive, set
}
