// Package srtp holds securejingle's SRTP policy and its packet-level media
// relay.
//
// Policy: the DTLS-SRTP protection profiles (RFC 5764 §4.1.2, RFC 7714
// §14.2) offered and accepted are, in order of preference,
// SRTP_AEAD_AES_256_GCM, SRTP_AEAD_AES_128_GCM and
// SRTP_AES128_CM_HMAC_SHA1_80 (kept for peers such as Dino that have only
// that one); NULL profiles never ([Profiles], [Allowed], [Configure]).
// Replay protection (RFC 3711 §3.3.2) is on for SRTP and SRTCP.
//
// Relay: [Unprotector], [Protector] and [Relay] work on github.com/pion/srtp/v3
// contexts at the packet level. A relay decrypts a packet from one call leg,
// optionally rewrites SSRC and payload type, and encrypts it for the other
// leg, into a buffer the caller supplies, without allocating in steady
// state. [Forwarder] does the same at the level of pion tracks for two
// PeerConnections; pion allocates on that path (see its doc).
package srtp
