package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/securejingle/securejingle/policy"
)

// A Backend is what the API serves: the daemon implements it on top of a
// gateway, tests with a fake. Implementations must be safe for concurrent
// use. Errors should wrap one of the sentinel errors of this package
// ([ErrInvalid], [ErrNotFound], [ErrConflict], [ErrUnavailable],
// [ErrUpstream], [ErrTimeout] or one of the more specific ones that wrap
// them) so that the handlers can choose the HTTP status and reason; any
// other error is a 500.
type Backend interface {
	// Status reports the account and connection.
	Status() Status
	// Peers lists contact accounts with their trust state and devices.
	Peers() ([]Peer, error)
	// SendChat encrypts body for every usable device of the bare JID to
	// and returns the message's delivery state ("sent" and the devices).
	SendChat(ctx context.Context, to, body string) (SentMessage, error)
	// Messages returns the delivery state of the most recent chat
	// messages sent, oldest first.
	Messages() ([]SentMessage, error)
	// SendIQ sends a protected IQ to a full JID and waits for the response.
	SendIQ(ctx context.Context, req IQRequest) (IQResponse, error)
	// Subscribe returns the backlog, a channel of future events with a
	// buffer of n, and a function that ends the subscription and closes
	// the channel. The backlog holds the buffered events published after
	// the event whose ID is after, oldest first: all of them when after
	// is "" or no longer buffered. Backlog and channel neither overlap
	// nor leave a gap.
	Subscribe(n int, after string) (backlog []Event, events <-chan Event, stop func())
	// Verify returns what the user compares to verify an account's
	// identity key.
	Verify(jid string) (VerifyInfo, error)
	// Devices lists the own account's device list as this device holds it.
	Devices() (DevicesInfo, error)
	// ChangeDevices adds this device to the account's device list or
	// removes another device from it, signing through the account key's
	// agent, and publishes the new list.
	ChangeDevices(ctx context.Context, req DevicesRequest) (DevicesInfo, error)
	// Trust applies a trust decision about an account's identity key.
	Trust(req TrustRequest) (TrustResult, error)
}

// Sentinel errors: a [Backend] wraps them to select the HTTP status, and
// the [Client] returns a [*StatusError] that unwraps to them.
// ErrForbidden is 403.
var (
	ErrInvalid     = errors.New("api: invalid request")           // 400
	ErrNotFound    = errors.New("api: not found")                 // 404
	ErrForbidden   = errors.New("api: forbidden")                 // 403
	ErrConflict    = errors.New("api: conflict")                  // 409
	ErrUnavailable = errors.New("api: unavailable")               // 503
	ErrUpstream    = errors.New("api: the peer or server failed") // 502
	ErrTimeout     = errors.New("api: timed out")                 // 504
)

// More specific sentinels. Each wraps the class above that gives its
// status, and has its own reason in the error body.
var (
	// ErrSignerUnavailable: the identity key cannot sign (the agent is
	// gone, lost the key, or refused to sign); 503.
	ErrSignerUnavailable = fmt.Errorf("%w: the identity key cannot sign", ErrUnavailable)
	// ErrSignerTimeout: the identity key's agent did not answer in time;
	// 504.
	ErrSignerTimeout = fmt.Errorf("%w: the identity key's agent did not answer", ErrTimeout)
	// ErrBusy: too many sends are still in progress; 503.
	ErrBusy = fmt.Errorf("%w: too many requests in progress", ErrUnavailable)
	// ErrIntegrity: a response failed its end-to-end checks (tampered,
	// replayed, unprotected or from another device); 502.
	ErrIntegrity = fmt.Errorf("%w: the response failed its integrity check", ErrUpstream)
	// ErrPolicyRefused: the channel policy refused the call or
	// transfer; 403.
	ErrPolicyRefused = fmt.Errorf("%w: refused by the channel policy", ErrForbidden)
	// ErrTooLarge: a file is larger than the size limit; 413.
	ErrTooLarge = fmt.Errorf("%w: too large", ErrInvalid)
	// ErrQuota: the files would exceed the download quota; 413.
	ErrQuota = fmt.Errorf("%w: over the quota", ErrTooLarge)
)

// reasons gives each sentinel the reason token of the error body, most
// specific first.
var reasons = []struct {
	err    error
	reason string
}{
	{ErrSignerUnavailable, "signer-unavailable"},
	{ErrSignerTimeout, "signer-timeout"},
	{ErrBusy, "busy"},
	{ErrIntegrity, "integrity"},
	{ErrPolicyRefused, "policy-refused"},
	{ErrQuota, "quota"},
	{ErrTooLarge, "too-large"},
	{ErrInvalid, "invalid"},
	{ErrNotFound, "not-found"},
	{ErrForbidden, "forbidden"},
	{ErrConflict, "conflict"},
	{ErrUnavailable, "unavailable"},
	{ErrUpstream, "upstream"},
	{ErrTimeout, "timeout"},
}

// reasonOf returns the reason token of err, or "".
func reasonOf(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ""
}

// errorOfReason returns the sentinel of a reason token, or nil.
func errorOfReason(reason string) error {
	for _, r := range reasons {
		if r.reason == reason {
			return r.err
		}
	}
	return nil
}

// Status is the answer of GET /v1/status.
type Status struct {
	Account           string `json:"account"`            // configured bare JID
	JID               string `json:"jid"`                // bound full JID (configured one while offline)
	Device            uint32 `json:"device"`             // our device id
	Fingerprint       string `json:"fingerprint"`        // identity key, "SHA256:" + base64 as ssh-keygen -l
	FingerprintBlocks string `json:"fingerprint_blocks"` // the same key as 8 blocks of hex
	Connected         bool   `json:"connected"`          // logged in to the XMPP server
	// Certified: this device is on its account's newest device list, so
	// contacts use it (securejingle devices add otherwise).
	Certified     bool   `json:"certified"`
	DroppedEvents uint64 `json:"dropped_events"` // events lost by slow subscribers
	// Signer is the health of the identity key's backend.
	Signer SignerStatus `json:"signer"`
	// Statement is the identity statement of this device (package
	// attest's canonical text, LF line endings): what an OpenPGP or X.509
	// key signs to vouch for this device.
	Statement string `json:"statement"`
	// Warnings are problems found at startup that did not stop the
	// daemon, one sentence each naming the cause and the fix (such as an
	// attestation whose certificate has expired).
	Warnings []string `json:"warnings,omitempty"`
}

// SignerStatus is the health of the identity key's backend, as of the
// last signature or check.
type SignerStatus struct {
	Backend string `json:"backend"` // file or agent
	// State is ok, unreachable (the agent is gone), timed-out (it did not
	// answer), key-missing (it no longer holds the key) or
	// confirmation-required (it refused to sign).
	State string `json:"state"`
	// Error says what went wrong and what to do; empty when State is ok.
	Error       string    `json:"error,omitempty"`
	Socket      string    `json:"socket,omitempty"`      // the agent's socket
	LastSuccess time.Time `json:"last_success,omitzero"` // the backend last answered as it should
	LastError   time.Time `json:"last_error,omitzero"`   // the backend last failed
}

// A Peer is one contact account (bare JID): the trust state of its account
// identity key, which certifies its devices, and the devices known under
// it. Trust is decided once per account, never per device.
type Peer struct {
	JID  string `json:"jid"`
	Self bool   `json:"self,omitempty"` // our own account (other devices)
	// Trust is the level of the account key: unknown, tofu, verified,
	// changed or distrusted.
	Trust string `json:"trust"`
	// Method is how the pinned key was verified, if it was.
	Method string `json:"method,omitempty"`
	// Fingerprint and FingerprintBlocks name the pinned account key; empty
	// when no key is known.
	Fingerprint       string `json:"fingerprint,omitempty"`
	FingerprintBlocks string `json:"fingerprint_blocks,omitempty"`
	// PendingFingerprint is the other account key seen while Trust is
	// changed: unused until the user verifies or accepts it.
	PendingFingerprint string     `json:"pending_fingerprint,omitempty"`
	FirstSeen          *time.Time `json:"first_seen,omitempty"`  // when the key was pinned
	VerifiedAt         *time.Time `json:"verified_at,omitempty"` // when it was verified
	ChangedAt          *time.Time `json:"changed_at,omitempty"`  // when the pending key was seen
	Resources          []Resource `json:"resources"`             // available now
	Devices            []Device   `json:"devices"`               // known devices
}

// A Resource is an available resource of a contact.
type Resource struct {
	Resource string `json:"resource"`
	Device   uint32 `json:"device"` // 0: it does not advertise securejingle
}

// A Device is a known device of a contact account. It has no trust level
// of its own: it is used when Accepted, that is when the account key it
// presents is the one the account's trust record accepts.
type Device struct {
	ID     uint32 `json:"id"`
	Bundle bool   `json:"bundle"` // a verified bundle is stored
	// Accepted: the device is certified by the account key the trust
	// record accepts and is on the account's newest device list, so
	// messages are encrypted to it and accepted from it.
	Accepted    bool   `json:"accepted"`
	Session     bool   `json:"session"`     // a session exists
	Established bool   `json:"established"` // the peer proved its key live
	Suite       string `json:"suite,omitempty"`
	// DeviceKey is the fingerprint of the device key; CertExpires when
	// the account's certificate of the device expires.
	DeviceKey   string     `json:"device_key,omitempty"`
	CertExpires *time.Time `json:"cert_expires,omitempty"`
}

// DevicesInfo is the answer of GET and POST /v1/devices: the own
// account's newest device list as this device holds it.
type DevicesInfo struct {
	Account     string `json:"account"`
	Fingerprint string `json:"fingerprint"` // of the account key that signs the list
	// Version is the list's counter (0: no list yet).
	Version    uint64 `json:"version"`
	ThisDevice uint32 `json:"this_device"`
	// Certified: this device is on the list, so peers accept it.
	Certified bool        `json:"certified"`
	Devices   []OwnDevice `json:"devices"`
}

// OwnDevice is one device on the own account's list.
type OwnDevice struct {
	ID        uint32 `json:"id"`
	DeviceKey string `json:"device_key"` // fingerprint of the device key
	This      bool   `json:"this,omitempty"`
}

// Device list actions of POST /v1/devices.
const (
	DevicesAdd    = "add"    // put this device on the list
	DevicesRemove = "remove" // revoke Device
)

// DevicesRequest is the body of POST /v1/devices.
type DevicesRequest struct {
	Action string `json:"action"`           // add or remove
	Device uint32 `json:"device,omitempty"` // remove: the device to revoke
}

// ChatRequest is the body of POST /v1/chat.
type ChatRequest struct {
	To   string `json:"to"` // bare JID
	Body string `json:"body"`
}

// Delivery states of a sent chat message (see docs/api.md).
const (
	// DeliverySent: handed to the server; no device has confirmed it.
	DeliverySent = "sent"
	// DeliveryDelivered: at least one of the contact's devices decrypted
	// it and confirmed it with an end-to-end receipt (see Devices).
	DeliveryDelivered = "delivered"
	// DeliveryNotDelivered: the server returned an error for it.
	DeliveryNotDelivered = "not-delivered"
)

// SentMessage is the delivery state of a chat message this daemon sent:
// an element of GET /v1/messages and the answer of POST /v1/chat.
type SentMessage struct {
	ID    string    `json:"id"` // stanza id, named by the receipts
	To    string    `json:"to"` // bare JID
	Time  time.Time `json:"time"`
	State string    `json:"state"` // sent, delivered, not-delivered
	// Devices are the contact's devices the message was encrypted to.
	Devices []DeviceDelivery `json:"devices"`
}

// DeviceDelivery is the state of a sent message at one recipient device.
type DeviceDelivery struct {
	Device    uint32    `json:"device"`
	Delivered bool      `json:"delivered"`     // the device's receipt arrived
	Time      time.Time `json:"time,omitzero"` // when it arrived
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
	// ID identifies the event for Last-Event-ID: unique within a daemon
	// run, increasing in publication order.
	ID     string    `json:"id,omitempty"`
	Kind   string    `json:"kind"` // connected, disconnected, chat, chat-sent, stanza, peer, key-changed, distrusted, alert, trust, delivery, withheld, warning, call, file
	Time   time.Time `json:"time"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Device uint32    `json:"device,omitempty"` // authenticated sender device
	Body   string    `json:"body,omitempty"`   // chat
	// Truncated is set on a chat or chat-sent event whose body was longer
	// than [MaxShownBody] bytes and was cut; Size is then its length.
	Truncated bool `json:"truncated,omitempty"`
	Size      int  `json:"size,omitempty"`
	Encrypted bool `json:"encrypted,omitempty"` // chat, stanza
	// Established is set when the sender's session is mutually
	// authenticated.
	Established bool   `json:"established,omitempty"`
	Payload     string `json:"payload,omitempty"` // stanza: the unwrapped payload
	Detail      string `json:"detail,omitempty"`
	// Refused is set on a chat the channel policy refused: it is
	// reported, not delivered as a conversation message.
	Refused bool `json:"refused,omitempty"`
	// Unencrypted is set on a chat or chat-sent event whose message
	// arrived without end-to-end encryption: show it as such, never as a
	// secure message.
	Unencrypted bool `json:"unencrypted,omitempty"`
	// MessageID is, for a delivery event, the id of the message sent.
	MessageID string `json:"message_id,omitempty"`
	// Delivery is, for a delivery event, the message's state after the
	// change.
	Delivery *SentMessage `json:"delivery,omitempty"`
	// Count is, for a withheld event, how many messages did not arrive.
	Count int `json:"count,omitempty"`
	// Alert is the policy alert of an "alert" event: the channel's facts,
	// the decision and, for a summary of suppressed duplicates, their
	// count and window start. It is the record the audit log holds.
	Alert *policy.Alert `json:"alert,omitempty"`
	// Remedy is, for an "alert" event, what the user should do about it
	// (see policy.Remedy).
	Remedy string `json:"remedy,omitempty"`
	// Unseen is, for an "alert" event, the number of alerts not marked
	// seen, this one included (see GET /v1/alerts).
	Unseen int `json:"unseen,omitempty"`
	// Call is, for a "call" event, the call after the change: a new
	// state, the binding check's result, or the end.
	Call *CallInfo `json:"call,omitempty"`
	// File is, for a "file" event, the transfer after the change: a new
	// state, or progress (at most a few times a second, and at 100%).
	File *TransferInfo `json:"file,omitempty"`
	// Replayed is set on events of the backlog: published before the
	// stream began (or, with Last-Event-ID, before it resumed).
	Replayed bool `json:"replayed,omitempty"`
}

// VerifyInfo is the answer of GET /v1/verify: what the user compares with
// the contact to verify its account identity key, once for all its
// devices.
type VerifyInfo struct {
	JID               string `json:"jid"`
	Key               string `json:"key"` // account identity key, standard base64
	Fingerprint       string `json:"fingerprint"`
	FingerprintBlocks string `json:"fingerprint_blocks"`
	QR                string `json:"qr"`    // verification URI to show as a QR code
	Trust             string `json:"trust"` // current trust level of the account key
	Method            string `json:"method,omitempty"`
	// PendingKey is the other account key seen while Trust is changed
	// (standard base64), with its fingerprints: verifying or accepting it
	// replaces the pinned key.
	PendingKey               string `json:"pending_key,omitempty"`
	PendingFingerprint       string `json:"pending_fingerprint,omitempty"`
	PendingFingerprintBlocks string `json:"pending_fingerprint_blocks,omitempty"`
	// SAS is the short authentication string of our account and the
	// contact's (their pinned account key): the same on both ends at any
	// time, for all devices. Empty for our own account.
	SAS string `json:"sas,omitempty"`
	// PendingSAS is the SAS with the pending key instead of the pinned
	// one, while Trust is changed.
	PendingSAS string `json:"pending_sas,omitempty"`
	// Devices are the account's devices that have a session, with the
	// state of that session.
	Devices []VerifyDevice `json:"devices"`
	// Attestations are the results of checking the attestations of the
	// account's stored bundles against their identity statements, in
	// device and bundle order; empty without a stored bundle.
	Attestations []AttestationResult `json:"attestations"`
}

// VerifyDevice is one device of a [VerifyInfo] with a session.
type VerifyDevice struct {
	ID uint32 `json:"id"`
	// Established is false until the device confirmed the session.
	Established bool `json:"established"`
}

// AttestationResult is the outcome of checking one attestation of a
// device's bundle.
type AttestationResult struct {
	Device uint32 `json:"device"` // the device whose bundle carries it
	Type   string `json:"type"`   // self, openpgp, x509-cms or another token
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

// TrustRequest is the body of POST /v1/trust: a decision about the
// account identity key of JID (all its devices).
type TrustRequest struct {
	JID    string `json:"jid"`
	Action string `json:"action"` // verify, accept, distrust
	// Method is how the user verified (verify only): fingerprint, sas, qr,
	// openpgp, x509-cms or another lower-case name. Default fingerprint.
	Method string `json:"method,omitempty"`
	// Key is the account identity key the decision is about, standard
	// base64. It is required for verify and must equal the pinned key (or
	// the pending key of a changed account); optional for accept.
	Key string `json:"key,omitempty"`
}

// TrustResult is the answer of POST /v1/trust.
type TrustResult struct {
	JID         string `json:"jid"`
	Trust       string `json:"trust"`
	Method      string `json:"method,omitempty"`
	Fingerprint string `json:"fingerprint"`
}

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
	// Reason is a token for programs: the sentinel's (signer-timeout,
	// integrity, ...), "internal" for a 500, absent for errors of the
	// HTTP layer (unknown path, wrong method, body too large).
	Reason string `json:"reason,omitempty"`
}

// WebLoginPath is the endpoint of the Unix socket that issues a one-time
// login link of the web app (POST, no body). It exists on the socket
// only, never under the web app's /api/.
const WebLoginPath = "/v1/web/login"

// WebLogin is the answer of POST [WebLoginPath]: a URL that logs a browser
// in once, with the token in its fragment, and when it expires.
type WebLogin struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}
