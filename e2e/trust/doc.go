// Package trust keeps the trust record of every peer device: which Ed25519
// identity key is pinned for a (bare JID, device id) and how far the user
// trusts it.
//
// The model is trust on first use with explicit verification:
//
//   - The first key seen for a device is pinned as [TOFU].
//   - The user can raise it to [Verified] by checking it out of band
//     (fingerprint, SAS, QR code, or an OpenPGP or X.509 attestation); the
//     method is recorded.
//   - A different key for a known device is never accepted silently: the
//     record becomes [Changed], the new key is kept as PendingKey, and it is
//     not accepted until the user acts ([Store.Verify], [Store.Accept],
//     [Store.Distrust] or [Store.Remove]); the pinned key keeps working.
//   - The user can [Store.Distrust] a device.
//
// Records live in a [store.Store] in buckets named "trust/dev/<bare JID>"
// under the device id in 8 lower-case hex digits, so a JID's devices are
// listed in device order. Every operation has a Tx variant that runs inside
// a caller's transaction, so that the engine can pin a key and advance a
// session atomically. See docs/protocol.md, "Trust".
package trust
