package srtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/securejingle/securejingle/dtls"
)

// handshakeTimeout only guards against a hung test.
const handshakeTimeout = 30 * time.Second

// dtlsPair runs a pion/dtls handshake between two UDP sockets on loopback
// and returns the client's and server's connections. serverProfiles and
// clientProfiles are the SRTP profiles each offers.
func dtlsPair(t *testing.T, clientProfiles, serverProfiles []piondtls.SRTPProtectionProfile) (client, server *piondtls.Conn, err error) {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	cu, su := listen(), listen()
	cfg := func(p []piondtls.SRTPProtectionProfile) *piondtls.Config {
		cert, err := dtls.NewCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return &piondtls.Config{
			Certificates:           []tls.Certificate{cert.TLS()},
			InsecureSkipVerify:     true, // the fingerprint binding is checked instead
			ClientAuth:             piondtls.RequireAnyClientCert,
			SRTPProtectionProfiles: p,
			ExtendedMasterSecret:   piondtls.RequireExtendedMasterSecret,
		}
	}
	client, err = piondtls.Client(cu, su.LocalAddr(), cfg(clientProfiles))
	if err != nil {
		t.Fatal(err)
	}
	server, err = piondtls.Server(su, cu.LocalAddr(), cfg(serverProfiles))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- server.HandshakeContext(ctx) }()
	cerr := client.HandshakeContext(ctx)
	serr := <-errc
	return client, server, errors.Join(cerr, serr)
}

func TestContextsFromDTLS(t *testing.T) {
	dino := []piondtls.SRTPProtectionProfile{piondtls.SRTP_AES128_CM_HMAC_SHA1_80}
	for _, tc := range []struct {
		name           string
		client, server []piondtls.SRTPProtectionProfile
		want           piondtls.SRTPProtectionProfile
	}{
		{"both ours", Profiles(), Profiles(), piondtls.SRTP_AEAD_AES_256_GCM},
		{"client like Dino", dino, Profiles(), piondtls.SRTP_AES128_CM_HMAC_SHA1_80},
		{"server like Dino", Profiles(), dino, piondtls.SRTP_AES128_CM_HMAC_SHA1_80},
		{"client prefers 128", []piondtls.SRTPProtectionProfile{piondtls.SRTP_AEAD_AES_128_GCM, piondtls.SRTP_AEAD_AES_256_GCM}, Profiles(), piondtls.SRTP_AEAD_AES_256_GCM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server, err := dtlsPair(t, tc.client, tc.server)
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := client.SelectedSRTPProtectionProfile(); p != tc.want {
				t.Fatalf("selected %s, want %s", ProfileName(p), ProfileName(tc.want))
			}
			cLocal, cRemote, err := ContextsFromDTLS(client, true)
			if err != nil {
				t.Fatal(err)
			}
			sLocal, sRemote, err := ContextsFromDTLS(server, false)
			if err != nil {
				t.Fatal(err)
			}
			if cLocal.Profile() != tc.want || sRemote.Profile() != tc.want {
				t.Fatalf("context profiles %s, %s", ProfileName(cLocal.Profile()), ProfileName(sRemote.Profile()))
			}
			cSend, cRecv := protector(t, cLocal), unprotector(t, cRemote)
			for _, dir := range []struct {
				name string
				enc  *Protector
				un   *Unprotector
			}{
				{"client to server", cSend, unprotector(t, sRemote)},
				{"server to client", protector(t, sLocal), cRecv},
			} {
				plain := rtpPacket(t, 1, 1, 111, false, payloadOf(160, 2))
				ct, err := dir.enc.RTP(nil, plain)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dir.un.RTP(nil, ct)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("%s: %v", dir.name, err)
				}
				if _, err := dir.un.RTP(nil, ct); !errors.Is(err, ErrReplay) {
					t.Fatalf("%s: replay: %v, want ErrReplay (replay protection on)", dir.name, err)
				}
			}
			// The directions have different keys.
			ct, _ := cSend.RTP(nil, rtpPacket(t, 1, 2, 111, false, payloadOf(160, 2)))
			if _, err := cRecv.RTP(nil, ct); !errors.Is(err, ErrAuth) {
				t.Fatalf("client opened its own packet: %v", err)
			}
		})
	}
}

func TestDTLSRefusesNull(t *testing.T) {
	null := []piondtls.SRTPProtectionProfile{piondtls.SRTP_NULL_HMAC_SHA1_80, piondtls.SRTP_NULL_HMAC_SHA1_32}
	for _, tc := range []struct {
		name           string
		client, server []piondtls.SRTPProtectionProfile
	}{
		{"client offers only NULL", null, Profiles()},
		{"server accepts only NULL", Profiles(), null},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := dtlsPair(t, tc.client, tc.server); err == nil {
				t.Fatal("handshake succeeded without a common allowed profile")
			}
		})
	}
	// And if some stack did select NULL, ContextsFromDTLS refuses it.
	client, server, err := dtlsPair(t, null, null)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*piondtls.Conn{client, server} {
		if _, _, err := ContextsFromDTLS(c, c == client); !errors.Is(err, ErrProfileNotAllowed) {
			t.Fatalf("ContextsFromDTLS with NULL: %v, want ErrProfileNotAllowed", err)
		}
	}
}

// TestRelayBetweenDTLSLegs relays media between two DTLS-SRTP legs as a
// gateway would: A (client) talks to the relay's server on leg A, the
// relay's client talks to B (server) on leg B, each leg with its own keys
// and here its own profile.
func TestRelayBetweenDTLSLegs(t *testing.T) {
	aConn, relayA, err := dtlsPair(t, Profiles(), Profiles())
	if err != nil {
		t.Fatal(err)
	}
	relayB, bConn, err := dtlsPair(t, Profiles(), []piondtls.SRTPProtectionProfile{piondtls.SRTP_AES128_CM_HMAC_SHA1_80})
	if err != nil {
		t.Fatal(err)
	}
	aLocal, _, err := ContextsFromDTLS(aConn, true)
	if err != nil {
		t.Fatal(err)
	}
	_, relayFromA, err := ContextsFromDTLS(relayA, false)
	if err != nil {
		t.Fatal(err)
	}
	relayToB, _, err := ContextsFromDTLS(relayB, true)
	if err != nil {
		t.Fatal(err)
	}
	_, bRemote, err := ContextsFromDTLS(bConn, false)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(relayFromA, relayToB, WithSSRC(0xa, 0xb))
	if err != nil {
		t.Fatal(err)
	}
	send, recv := protector(t, aLocal), unprotector(t, bRemote)
	var ct, relayed, got []byte
	for seq := range uint16(50) {
		payload := payloadOf(1200, byte(seq))
		if ct, err = send.RTP(ct, rtpPacket(t, 0xa, seq, 111, false, payload)); err != nil {
			t.Fatal(err)
		}
		if relayed, err = r.RTP(relayed, ct); err != nil {
			t.Fatal(err)
		}
		if got, err = recv.RTP(got, relayed); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[12:], payload) || got[8] != 0 || got[11] != 0xb {
			t.Fatalf("packet %d relayed wrongly", seq)
		}
	}
}
