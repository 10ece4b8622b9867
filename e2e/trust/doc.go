// Package trust keeps the trust record of every peer account: which Ed25519
// account identity key is pinned for a bare JID and how far the user trusts
// it. An account's devices are certified by its identity key, so trust is
// decided once per account, not once per device: a contact is verified
// once, and every device it certifies inherits that.
//
// The model is trust on first use with explicit verification:
//
//   - The first account key seen for a JID is pinned as [TOFU].
//   - The user can raise it to [Verified] by checking it out of band
//     (fingerprint, SAS, QR code, or an OpenPGP or X.509 attestation); the
//     method and time are recorded.
//   - A different key for a known account is never accepted silently: the
//     record becomes [Changed], the new key is kept as PendingKey, and it is
//     not accepted until the user acts ([Store.Verify], [Store.Accept],
//     [Store.Distrust] or [Store.Remove]); the pinned key keeps working.
//   - The user can [Store.Distrust] an account; this is reported as
//     [EventDistrusted], never as a key change.
//
// Records live in a [store.Store] in the bucket "trust/acct" under the
// bare JID, in a versioned binary format ([Record.MarshalBinary], version
// 2; version 1 was the former per-device record and is rejected). Every
// operation has a Tx variant that runs inside a caller's transaction, so
// that the engine can pin a key and advance a session atomically. See
// docs/protocol.md, "Trust".
package trust
