package srtp

import (
	"errors"
	"fmt"

	piondtls "github.com/pion/dtls/v3"
	pionsrtp "github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// Replay windows (implementation constants): how many packets behind the
// newest one a packet may arrive and still be accepted once. 1024 for SRTP
// is what browsers use, and tolerates the reordering of video bursts;
// RTCP is sparse.
const (
	ReplayWindowSRTP  = 1024
	ReplayWindowSRTCP = 128
)

// ErrProfileNotAllowed is returned for an SRTP protection profile outside
// [Profiles], including every NULL profile.
var ErrProfileNotAllowed = errors.New("srtp: protection profile not allowed")

// profiles is the preference order of [Profiles].
var profiles = [...]piondtls.SRTPProtectionProfile{
	piondtls.SRTP_AEAD_AES_256_GCM,
	piondtls.SRTP_AEAD_AES_128_GCM,
	piondtls.SRTP_AES128_CM_HMAC_SHA1_80,
}

// Profiles returns the SRTP protection profiles securejingle offers and
// accepts, most preferred first. The caller owns the returned slice.
func Profiles() []piondtls.SRTPProtectionProfile {
	return append([]piondtls.SRTPProtectionProfile(nil), profiles[:]...)
}

// Allowed reports whether p is one of [Profiles]. It is false for the NULL
// profiles (no encryption), the 32-bit-tag profiles and unknown values.
func Allowed(p piondtls.SRTPProtectionProfile) bool {
	for _, q := range profiles {
		if p == q {
			return true
		}
	}
	return false
}

// ProfileName returns the IANA name of p ("SRTP_AEAD_AES_256_GCM", ...),
// or "unknown SRTP profile 0x...." for a value it does not know.
func ProfileName(p piondtls.SRTPProtectionProfile) string {
	switch p {
	case piondtls.SRTP_AEAD_AES_256_GCM:
		return "SRTP_AEAD_AES_256_GCM"
	case piondtls.SRTP_AEAD_AES_128_GCM:
		return "SRTP_AEAD_AES_128_GCM"
	case piondtls.SRTP_AES128_CM_HMAC_SHA1_80:
		return "SRTP_AES128_CM_HMAC_SHA1_80"
	case piondtls.SRTP_AES128_CM_HMAC_SHA1_32:
		return "SRTP_AES128_CM_HMAC_SHA1_32"
	case piondtls.SRTP_NULL_HMAC_SHA1_80:
		return "SRTP_NULL_HMAC_SHA1_80"
	case piondtls.SRTP_NULL_HMAC_SHA1_32:
		return "SRTP_NULL_HMAC_SHA1_32"
	}
	return fmt.Sprintf("unknown SRTP profile 0x%04x", uint16(p))
}

// profileByName is the inverse of [ProfileName] for the allowed profiles.
func profileByName(name string) (piondtls.SRTPProtectionProfile, bool) {
	for _, p := range profiles {
		if ProfileName(p) == name {
			return p, true
		}
	}
	return 0, false
}

// PionProfile maps an allowed DTLS-SRTP profile to the pion/srtp profile
// that implements it; it reports false for a profile that is not
// [Allowed].
func PionProfile(p piondtls.SRTPProtectionProfile) (pionsrtp.ProtectionProfile, bool) {
	switch p {
	case piondtls.SRTP_AEAD_AES_256_GCM:
		return pionsrtp.ProtectionProfileAeadAes256Gcm, true
	case piondtls.SRTP_AEAD_AES_128_GCM:
		return pionsrtp.ProtectionProfileAeadAes128Gcm, true
	case piondtls.SRTP_AES128_CM_HMAC_SHA1_80:
		return pionsrtp.ProtectionProfileAes128CmHmacSha1_80, true
	}
	return 0, false
}

// Configure sets securejingle's SRTP policy on se: the protection profiles
// of [Profiles] in that order, and replay protection for SRTP and SRTCP
// with windows of [ReplayWindowSRTP] and [ReplayWindowSRTCP] packets. The
// DTLS server (by default the offerer) picks the first of its profiles the
// client offers, so two peers configured this way use
// SRTP_AEAD_AES_256_GCM.
func Configure(se *webrtc.SettingEngine) {
	se.SetSRTPProtectionProfiles(profiles[:]...)
	se.SetSRTPReplayProtectionWindow(ReplayWindowSRTP)
	se.SetSRTCPReplayProtectionWindow(ReplayWindowSRTCP)
}

// NegotiatedProfile returns the SRTP protection profile the DTLS handshake
// of pc selected, and false when DTLS has not completed or selected none.
//
// pion v4 keeps the selected profile private to its DTLSTransport and
// publishes it only in the transport statistics, so this reads
// pc.GetStats (which collects every statistic: call it once per call, not
// per packet). A profile outside [Profiles] (which a peer cannot make pion
// select when [Configure] was used) also reports false.
func NegotiatedProfile(pc *webrtc.PeerConnection) (piondtls.SRTPProtectionProfile, bool) {
	if pc == nil {
		return 0, false
	}
	for _, s := range pc.GetStats() {
		ts, ok := s.(webrtc.TransportStats)
		if !ok || ts.SRTPCipher == "" {
			continue
		}
		// pion names profiles as IANA does (srtp.ProtectionProfile.String).
		return profileByName(ts.SRTPCipher)
	}
	return 0, false
}
