// Package api is the local control API of the securejingle daemon: HTTP
// with JSON bodies over a Unix socket (never TCP), and the Go [Client] the
// command line uses.
//
// The endpoints are documented in docs/api.md:
//
//	GET  /v1/status   account, bound JID, device, fingerprint, connection
//	GET  /v1/peers    contacts, their resources and devices, trust, sessions
//	POST /v1/chat     send an encrypted chat message
//	POST /v1/iq       send a protected IQ and return the protected response
//	GET  /v1/events   Server-Sent Events: one JSON [Event] per data line
//	GET  /v1/verify   fingerprint, SAS and QR payload of an account key
//	POST /v1/trust    verify, accept or distrust a contact's account key
//	GET  /v1/devices  the own account's device list; POST adds or removes
//	GET  /v1/calls    calls; POST places one ([CallRequest])
//	GET  /v1/calls/{id}, POST /v1/calls/{id}/answer|decline|hangup
//	GET  /metrics     Prometheus text format
//
// The daemon's state is reached through the small [Backend] interface, so
// the handlers can be tested against a fake; call support is the optional
// [CallBackend], found by type assertion. Access control is the socket's:
// it is created 0600 in a 0700 directory by [Listen], and on Linux every
// connection's peer credentials must name our user or root.
//
// The request and response types ([Status], [Peer], [ChatRequest], ...)
// are plain JSON values; their zero values are empty requests, which the
// server rejects.
//
// Request bodies are size-limited and decoded strictly (unknown fields and
// trailing data are errors); every error is a JSON object {"error": "..."}
// with a matching HTTP status.
package api
