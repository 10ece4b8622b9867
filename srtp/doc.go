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
// Contexts: a [Context] holds the keys of one direction of one call leg
// and can only be made under that policy ([NewContext],
// [ContextsFromDTLS]): an allowed profile, encryption on, replay
// protection on. Each Context has exactly one owner.
//
// Relay: [Unprotector], [Protector] and [Relay] work on Contexts at the
// packet level. A relay decrypts a packet from one call leg, rewrites SSRC
// and payload type, and encrypts it for the other leg, into a buffer the
// caller supplies, without allocating in steady state. It relays only the
// RTP sources of its one-to-one SSRC table ([WithSSRC], [WithPassThrough])
// and drops every other SSRC before decrypting it ([ErrUnknownSSRC]), so
// that no two sources can share an SRTP nonce on the outgoing leg and a
// peer cannot make the relay keep state for SSRCs it invents. [Forwarder]
// does the same at the level of pion tracks for two PeerConnections,
// renumbering what it forwards so that each outgoing index is used once;
// pion allocates on that path (see its doc).
package srtp
