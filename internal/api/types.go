package api

import (
	"context"
	"errors"
	"time"

	"github.com/securejingle/securejingle/policy"
)

// A Backend is what the API serves: the daemon implements it on top of a
// gateway, tests with a fake. Implementations must be safe for concurrent
// use. Errors should wrap one of the sentinel errors of this package
// ([ErrInvalid], [ErrNotFound], [ErrConflict], [ErrUnavailable],
// [ErrUpstream]) so that the handlers can choose the HTTP status; any other
// error is a 500.
type Backend interface {
	// Status reports the account and connection.
	Status() Status
	// Peers lists contacts and known devices.
	Peers() ([]Peer, error)
	// SendChat encrypts body for every usable device of the bare JID to.
	SendChat(ctx context.Context, to, body string) error
	// SendIQ sends a protected IQ to a full JID and waits for the response.
	SendIQ(ctx context.Context, req IQRequest) (IQResponse, error)
	// Subscribe returns a channel of future events with a buffer of n and
	// a function that ends the subscription and closes the channel.
	Subscribe(n int) (<-chan Event, func())
	// Verify returns what the user compares to verify a device.
	Verify(jid string, device uint32) (VerifyInfo, error)
	// Trust applies a trust decision.
	Trust(req TrustRequest) (TrustResult, error)
}

// Sentinel errors: a [Backend] wraps them to select the HTTP status, and
// the [Client] returns a [*StatusError] that unwraps to them.
var (
	ErrInvalid     = errors.New("api: invalid request")           // 400
	ErrNotFound    = errors.New("api: not found")                 // 404
	ErrConflict    = errors.New("api: conflict")                  // 409
	ErrUnavailable = errors.New("api: not connected")             // 503
	ErrUpstream    = errors.New("api: the peer or server failed") // 502
	ErrTimeout     = errors.New("api: timed out")                 // 504
)

// Status is the answer of GET /v1/status.
type Status struct {
	Account           string `json:"account"`            // configured bare JID
	JID               string `json:"jid"`                // bound full JID (configured one while offline)
	Device            uint32 `json:"device"`             // our device id
	Fingerprint       string `json:"fingerprint"`        // identity key, "SHA256:" + base64 as ssh-keygen -l
	FingerprintBlocks string `json:"fingerprint_blocks"` // the same key as 8 blocks of hex
	Connected         bool   `json:"connected"`
	DroppedEvents     uint64 `json:"dropped_events"` // events lost by slow subscribers
	// Statement is the identity statement of this device (package
	// attest's canonical text, LF line endings): what an OpenPGP or X.509
	// key signs to vouch for this device.
	Statement string `json:"statement"`
	// Warnings are problems found at startup that did not stop the
	// daemon, one sentence each naming the cause and the fix (such as an
	// attestation whose certificate has expired).
	Warnings []string `json:"warnings,omitempty"`
}

// A Peer is one contact (bare JID) with what is known of it.
type Peer struct {
	JID       string     `json:"jid"`
	Self      bool       `json:"self,omitempty"` // our own account (other devices)
	Resources []Resource `json:"resources"`      // available now
	Devices   []Device   `json:"devices"`        // known devices
}

// A Resource is an available resource of a contact.
type Resource struct {
	Resource string `json:"resource"`
	Device   uint32 `json:"device"` // 0: it does not advertise securejingle
}

// A Device is a known device of a contact.
type Device struct {
	ID    uint32 `json:"id"`
	Trust string `json:"trust"` // unknown, tofu, verified, changed, distrusted
	// Method is how the pinned key was verified, if it was.
	Method            string `json:"method,omitempty"`
	Fingerprint       string `json:"fingerprint,omitempty"`
	FingerprintBlocks string `json:"fingerprint_blocks,omitempty"`
	// PendingFingerprint is the new key of a device whose key changed.
	PendingFingerprint string `json:"pending_fingerprint,omitempty"`
	Bundle             bool   `json:"bundle"`      // a verified bundle is stored
	Session            bool   `json:"session"`     // a session exists
	Established        bool   `json:"established"` // the peer proved its key live
	Suite              string `json:"suite,omitempty"`
}

// ChatRequest is the body of POST /v1/chat.
type ChatRequest struct {
	To   string `json:"to"` // bare JID
	Body string `json:"body"`
}

// IQRequest is the body of POST /v1/iq.
type IQRequest struct {
	To       string `json:"to"`      // full JID of the peer device's resource
	Type     string `json:"type"`    // get or set
	Payload  string `json:"payload"` // exactly one XML element
	AuthOnly bool   `json:"auth_only"`
}

// IQResponse is the answer of POST /v1/iq: the unwrapped response.
type IQResponse struct {
	Type    string `json:"type"` // result or error (a protected error response)
	From    string `json:"from"` // authenticated peer bare JID
	Device  uint32 `json:"device"`
	Payload string `json:"payload"` // the response payload, possibly empty
}

// An Event is one line of GET /v1/events.
type Event struct {
	Kind      string    `json:"kind"` // connected, disconnected, chat, chat-sent, stanza, peer, key-changed, alert, trust, warning
	Time      time.Time `json:"time"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	Device    uint32    `json:"device,omitempty"`    // authenticated sender device
	Body      string    `json:"body,omitempty"`      // chat
	Encrypted bool      `json:"encrypted,omitempty"` // chat, stanza
	// Established is set when the sender's session is mutually
	// authenticated.
	Established bool   `json:"established,omitempty"`
	Payload     string `json:"payload,omitempty"` // stanza: the unwrapped payload
	Detail      string `json:"detail,omitempty"`
	// Refused is set on a chat the channel policy refused: it is
	// reported, not delivered as a conversation message.
	Refused bool `json:"refused,omitempty"`
	// Alert is the policy alert of an "alert" event: the channel's facts,
	// the decision and, for a summary of suppressed duplicates, their
	// count and window start. It is the record the audit log holds.
	Alert *policy.Alert `json:"alert,omitempty"`
}

// VerifyInfo is the answer of GET /v1/verify.
type VerifyInfo struct {
	JID               string `json:"jid"`
	Device            uint32 `json:"device"`
	Key               string `json:"key"` // identity key, standard base64
	Fingerprint       string `json:"fingerprint"`
	FingerprintBlocks string `json:"fingerprint_blocks"`
	// SAS is the short authentication string of the session with the
	// device; empty when there is no session.
	SAS         string `json:"sas,omitempty"`
	Established bool   `json:"established"`
	QR          string `json:"qr"`    // verification URI to show as a QR code
	Trust       string `json:"trust"` // current trust level
	// Attestations are the results of checking the attestations of the
	// device's stored bundle against its identity statement, in bundle
	// order; empty without a stored bundle.
	Attestations []AttestationResult `json:"attestations"`
}

// AttestationResult is the outcome of checking one attestation of a
// device's bundle.
type AttestationResult struct {
	Type string `json:"type"` // self, openpgp, x509-cms or another token
	// Status is verified, mismatch (a trusted signer whose certificate
	// or key names another identity than the JID), expired (the signer's
	// certificate or key is expired or not yet valid), untrusted (the
	// signer is not one the daemon is configured to trust), failed, or
	// unsupported (no verifier for the type: Detail holds the payload to
	// check by hand).
	Status string `json:"status"`
	Signer string `json:"signer,omitempty"` // who signed, in the mechanism's terms
	Detail string `json:"detail,omitempty"`
}

// Trust actions.
const (
	ActionVerify   = "verify"
	ActionAccept   = "accept"
	ActionDistrust = "distrust"
)

// TrustRequest is the body of POST /v1/trust.
type TrustRequest struct {
	JID    string `json:"jid"`
	Device uint32 `json:"device"`
	Action string `json:"action"` // verify, accept, distrust
	// Method is how the user verified (verify only): fingerprint, sas, qr,
	// openpgp, x509-cms or another lower-case name. Default fingerprint.
	Method string `json:"method,omitempty"`
	// Key is the identity key the decision is about, standard base64. It
	// is required for verify and must equal the stored bundle key (or the
	// pending key of a changed device); optional for accept.
	Key string `json:"key,omitempty"`
}

// TrustResult is the answer of POST /v1/trust.
type TrustResult struct {
	JID         string `json:"jid"`
	Device      uint32 `json:"device"`
	Trust       string `json:"trust"`
	Method      string `json:"method,omitempty"`
	Fingerprint string `json:"fingerprint"`
}

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
}
