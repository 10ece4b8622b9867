package srtp

import (
	"errors"
	"slices"
	"testing"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/webrtc/v4"
)

func TestProfiles(t *testing.T) {
	want := []piondtls.SRTPProtectionProfile{
		piondtls.SRTP_AEAD_AES_256_GCM,
		piondtls.SRTP_AEAD_AES_128_GCM,
		piondtls.SRTP_AES128_CM_HMAC_SHA1_80,
	}
	got := Profiles()
	if !slices.Equal(got, want) {
		t.Fatalf("Profiles() = %v, want %v", got, want)
	}
	got[0] = piondtls.SRTP_NULL_HMAC_SHA1_80
	if Profiles()[0] != piondtls.SRTP_AEAD_AES_256_GCM {
		t.Fatal("Profiles() shares its slice with the caller")
	}
	for _, p := range want {
		if !Allowed(p) {
			t.Errorf("Allowed(%s) = false", ProfileName(p))
		}
		if _, ok := PionProfile(p); !ok {
			t.Errorf("PionProfile(%s) = false", ProfileName(p))
		}
		if q, ok := profileByName(ProfileName(p)); !ok || q != p {
			t.Errorf("profileByName(%s) = %v, %v", ProfileName(p), q, ok)
		}
	}
}

func TestNullAndOthersRefused(t *testing.T) {
	for _, p := range []piondtls.SRTPProtectionProfile{
		piondtls.SRTP_NULL_HMAC_SHA1_80,
		piondtls.SRTP_NULL_HMAC_SHA1_32,
		piondtls.SRTP_AES128_CM_HMAC_SHA1_32,
		piondtls.SRTP_AES256_CM_SHA1_80,
		0, 0xffff,
	} {
		if Allowed(p) {
			t.Errorf("Allowed(%s) = true", ProfileName(p))
		}
		if _, ok := PionProfile(p); ok {
			t.Errorf("PionProfile(%s) = true", ProfileName(p))
		}
		if _, err := NewContext(make([]byte, 16), make([]byte, 14), p); !errors.Is(err, ErrProfileNotAllowed) {
			t.Errorf("NewContext(%s) error = %v, want ErrProfileNotAllowed", ProfileName(p), err)
		}
	}
}

func TestProfileName(t *testing.T) {
	for p, want := range map[piondtls.SRTPProtectionProfile]string{
		piondtls.SRTP_AEAD_AES_256_GCM:       "SRTP_AEAD_AES_256_GCM",
		piondtls.SRTP_AEAD_AES_128_GCM:       "SRTP_AEAD_AES_128_GCM",
		piondtls.SRTP_AES128_CM_HMAC_SHA1_80: "SRTP_AES128_CM_HMAC_SHA1_80",
		piondtls.SRTP_NULL_HMAC_SHA1_80:      "SRTP_NULL_HMAC_SHA1_80",
		0x1234:                               "unknown SRTP profile 0x1234",
	} {
		if got := ProfileName(p); got != want {
			t.Errorf("ProfileName(%#x) = %q, want %q", uint16(p), got, want)
		}
	}
	// pion's statistics name the profiles the same way (NegotiatedProfile
	// relies on it).
	for _, p := range Profiles() {
		pp, _ := PionProfile(p)
		if pp.String() != ProfileName(p) {
			t.Errorf("pion names %s %q", ProfileName(p), pp.String())
		}
	}
}

func TestNegotiatedProfileWithoutConnection(t *testing.T) {
	if _, ok := NegotiatedProfile(nil); ok {
		t.Fatal("nil peer connection has a profile")
	}
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if p, ok := NegotiatedProfile(pc); ok {
		t.Fatalf("unconnected peer connection has profile %s", ProfileName(p))
	}
}
