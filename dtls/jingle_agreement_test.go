package dtls_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/jingle"
)

// TestJingleFingerprintAgreement checks that the jingle and dtls packages
// never disagree silently about a fingerprint in the direction that
// matters. For every hash name jingle accepts, in every ASCII case, with
// upper- and lower-case hex: when dtls accepts the value as well, both
// read the same hash and digest; when dtls refuses it (sha-1, sha-224),
// jingle's Marshal refuses to emit it, so that the package never offers a
// fingerprint that cannot bind. And every fingerprint jingle's Marshal
// emits is one dtls accepts.
func TestJingleFingerprintAgreement(t *testing.T) {
	names := jingle.HashNames()
	if len(names) == 0 {
		t.Fatal("jingle accepts no hash names")
	}
	checked := 0
	for _, name := range names {
		size, ok := jingle.HashSize(name)
		if !ok {
			t.Fatalf("jingle.HashSize(%q) unknown", name)
		}
		digest := make([]byte, size)
		for i := range digest {
			digest[i] = byte(0xA0 + i)
		}
		for _, spelling := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			for _, value := range []string{hexColons(digest, false), hexColons(digest, true), " " + hexColons(digest, false) + "\n"} {
				checked++
				offer := `<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'><content creator='initiator' name='a'>` +
					`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/>` +
					`<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='` + spelling + `'>` +
					value + `</fingerprint></transport></content></jingle>`
				j, err := jingle.Parse([]byte(offer))
				if err != nil {
					t.Fatalf("%s %q: jingle refuses a name it lists: %v", spelling, value, err)
				}
				jf := j.Contents[0].Transport.Fingerprint
				if jf.Hash != name {
					t.Fatalf("%s: jingle reads hash %q, want %q", spelling, jf.Hash, name)
				}
				if err := jingle.ValidateFingerprint(spelling, value); err != nil {
					t.Fatalf("%s: ValidateFingerprint disagrees with Parse: %v", spelling, err)
				}
				// dtls on what arrived, and on what jingle made of it.
				raw, rawErr := dtls.ParseFingerprint(spelling, value)
				norm, normErr := dtls.ParseFingerprint(jf.Hash, jf.Value)
				if (rawErr == nil) != (normErr == nil) {
					t.Fatalf("%s %q: dtls reads the wire form (%v) and jingle's form (%v) differently", spelling, value, rawErr, normErr)
				}
				_, marshalErr := j.Marshal()
				if rawErr != nil {
					if !errors.Is(rawErr, dtls.ErrUnsupportedHash) {
						t.Fatalf("%s %q: dtls refuses a value jingle accepts for another reason than the hash: %v", spelling, value, rawErr)
					}
					if !errors.Is(marshalErr, jingle.ErrWeakFingerprint) {
						t.Fatalf("%s: dtls refuses it but jingle.Marshal emits it (%v)", spelling, marshalErr)
					}
					continue
				}
				if raw.Hash != name || norm.Hash != name || !bytes.Equal(raw.Value, digest) || !norm.Equal(raw) {
					t.Fatalf("%s %q: dtls reads %s %x, jingle %s %s", spelling, value, raw.Hash, raw.Value, jf.Hash, jf.Value)
				}
				if marshalErr != nil {
					t.Fatalf("%s: dtls accepts it but jingle.Marshal refuses: %v", spelling, marshalErr)
				}
			}
		}
	}
	// dtls's own names are all among jingle's.
	for _, h := range []string{dtls.HashSHA256, dtls.HashSHA384, dtls.HashSHA512} {
		found := false
		for _, n := range names {
			found = found || n == h
		}
		if !found {
			t.Fatalf("dtls hash %s is not accepted by jingle", h)
		}
	}
	t.Logf("%d spellings checked", checked)
}

func hexColons(b []byte, lower bool) string {
	s := dtls.Fingerprint{Hash: dtls.HashSHA256, Value: b}.String()
	if lower {
		s = strings.ToLower(s)
	}
	return s
}
