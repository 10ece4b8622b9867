// Package daemon runs the securejingle gateway as a long-lived service: it
// loads a TOML [Config], opens the state store, the identity key (a key
// file or an ssh-agent), the trust store, access control and the e2e
// engine, compiles the channel policy (package policy) and opens the alert
// sinks (audit log, metrics, command hook), connects the account through
// package gateway and serves the local control API of package api on a
// Unix socket. Calls are placed and answered through that API; the
// [calls] table configures ICE servers, relay-only and auto-answer rules.
// With [front] enabled it serves gateway mode (docs/protocol.md §22): the
// user's own XMPP clients log in to a local listener (internal/c2sfront)
// and the gateway's composer ([gateway.Front]) secures their chat.
//
// The configuration format and the API are documented in docs/api.md.
// Logs are structured ([log/slog]), as text or JSON.
package daemon
