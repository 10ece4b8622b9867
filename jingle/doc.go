// Package jingle implements the signaling of XEP-0166 Jingle sessions and of
// the application and transport formats securejingle uses for calls:
// XEP-0167 (RTP sessions), XEP-0176 (ICE-UDP transport), XEP-0320 (DTLS-SRTP
// fingerprints), XEP-0293 (RTCP feedback), XEP-0294 (RTP header extensions),
// XEP-0338 (grouping, BUNDLE), XEP-0339 (source-specific media attributes)
// and XEP-0353 (Jingle Message Initiation), with a translation between
// Jingle contents and SDP (RFC 8866) following the mapping that deployed
// clients use.
//
// [Parse], [ParseJMI], [ParseDescription] and [ParseReason] read elements
// strictly and within the limits of constants.go, and fail with a
// *[ParseError] (matching [ErrMalformed]) that names the offending
// attribute or element; elements of namespaces the package does not
// implement are kept verbatim as [Raw], so that Marshal after Parse loses
// nothing, while an element of a namespace it implements is accepted only
// where it is defined (a XEP-0320 fingerprint cannot hide in a Raw).
// Marshal and [Jingle.Validate] check that a value serializes to bytes
// that parse back to the same value; Validate adds the per-action rules
// of XEP-0166 §7.2. [Jingle.Fingerprints] lists every fingerprint-like
// element of a session element for policy.
// [Raw.Children], [NewRaw], [Raw.Equal], [Transport.Raw] and
// [TransportFromRaw] let the packages that implement the elements kept in
// Raw (file transfer, bytestreams, data channels) read and build them with
// the same strict reader and canonical writer.
// [ErrorPayload] and [ParseErrorCondition] handle the Jingle stanza errors
// of XEP-0166 §10; [RTPInfo] the session-info payloads of XEP-0167 §7.
//
// The element types are plain values whose zero value means "absent" or
// "empty" field by field; they are safe for concurrent reads, not for
// concurrent mutation. The functions of the package keep no state.
//
// The package is pure signaling: it parses, validates, serializes and
// tracks session state. It does no cryptography and no network I/O; the
// gateway carries its elements inside end-to-end protected stanzas and the
// dtls and srtp packages secure the media.
package jingle
