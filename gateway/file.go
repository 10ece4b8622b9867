package gateway

// The file channel (file*.go): XEP-0234 file transfer inside protected
// Jingle, bound to the peer's certified device like calls, with
// securejingle's stream encryption (package filexfer) on every transport.
// This file holds the API and its types; file_session.go the Jingle
// session of a transfer, file_policy.go the policy decisions,
// file_table.go the bounded table, file_transport.go the transports and
// file_bytes.go the byte phase.

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/jid"
)

// TransferState is the state of a file transfer (and of each of its
// files) as the local API reports it. The values are those of
// internal/api.
type TransferState string

// Transfer states.
const (
	TransferOffered      TransferState = "offered"      // outgoing: the offer went out, the receiver has not decided
	TransferPending      TransferState = "pending"      // incoming: waiting for accept or decline
	TransferConnecting   TransferState = "connecting"   // accepted: the transport is being set up
	TransferTransferring TransferState = "transferring" // bytes flowing
	TransferVerifying    TransferState = "verifying"    // all bytes in: the whole-file hash is checked
	TransferCompleted    TransferState = "completed"    // every file arrived and matched its hash
	TransferFailed       TransferState = "failed"       // Detail says why; ResumeTransfer may go on
	TransferCancelled    TransferState = "cancelled"    // either side cancelled
	TransferDeclined     TransferState = "declined"     // the receiver (or its rules, or a limit) declined
)

// Ended reports whether a transfer in state s is over (a failed one may
// still be resumed while its session lives).
func (s TransferState) Ended() bool {
	switch s {
	case TransferCompleted, TransferFailed, TransferCancelled, TransferDeclined:
		return true
	}
	return false
}

// Transfer directions (TransferInfo.Direction).
const (
	TransferOutgoing = "outgoing"
	TransferIncoming = "incoming"
)

// Transport names (SendOptions.Transports, Config.FileTransports,
// TransferInfo.Transport), in the default order of preference.
const (
	TransportDataChannel = "webrtc-datachannel" // XEP-0343 on the DTLS bound to the e2e session
	TransportS5BDirect   = "s5b-direct"         // XEP-0260 SOCKS5, peer to peer
	TransportS5BProxy    = "s5b-proxy"          // XEP-0260 through a XEP-0065 proxy
	TransportIBB         = "ibb"                // XEP-0261 in-band bytestreams
)

// DefaultMaxFileSize is the default of Config.MaxFileSize: 16 GiB.
const DefaultMaxFileSize = 16 << 30

// FileInfo is one file of a transfer.
type FileInfo struct {
	// Name is the base name offered (outgoing), or the sanitized name the
	// file is saved under (incoming).
	Name      string
	Size      uint64
	MediaType string
	Desc      string
	Date      time.Time
	// Hash is the whole file's hash, "sha-256:<hex>" (or a stronger
	// algorithm the sender offered), once known.
	Hash string
	// Path is the source file (outgoing), or the received file once it
	// is complete (incoming).
	Path  string
	Done  uint64 // bytes sent or verified so far
	State TransferState
}

// TransferInfo is a snapshot of one transfer. It is a value: changing it
// changes nothing in the gateway.
type TransferInfo struct {
	ID        string // the Jingle session id
	Direction string // TransferOutgoing or TransferIncoming
	Peer      string // peer bare JID
	// PeerFull and PeerDevice name the peer's certified device the
	// session is bound to.
	PeerFull   string
	PeerDevice uint32
	// Trust is the trust level of the peer account, Verified whether the
	// user verified it.
	Trust    string
	Verified bool
	// Stranger is set when the peer account was not on the roster as
	// the transfer was made (an accepter may refuse strangers).
	Stranger bool
	Files    []FileInfo
	State    TransferState
	// Transport is the transport in use (or last used), "" before one is
	// chosen; Suite the stream cipher suite URI.
	Transport, Suite      string
	BytesDone, BytesTotal uint64
	Rate                  float64 // bytes per second, smoothed
	// Resumed is set when the transfer went on after a cut, from
	// ResumedFrom bytes (of the file that was cut).
	Resumed     bool
	ResumedFrom uint64
	// Resumable is set while a failed transfer's session lives: either
	// side may still resume it (it may still bring bytes), until the
	// resume wait runs out and the transfer fails for good.
	Resumable bool
	Created   time.Time
	Started   time.Time // first byte
	Ended     time.Time
	// Detail is a sentence naming the cause and the fix when the
	// transfer failed, was declined or refused.
	Detail string
}

// SendOptions are the options of [Gateway.SendFiles].
type SendOptions struct {
	// Transports is the order of transports to try (transport names);
	// empty takes Config.FileTransports.
	Transports []string
	// Desc is a description sent with every file.
	Desc string
}

// File transfer errors callers branch on.
var (
	// ErrUnknownTransfer is returned for a transfer id the gateway does
	// not know.
	ErrUnknownTransfer = errors.New("gateway: unknown transfer id: list the transfers to see the current ones")
	// ErrTransferState is returned when an action does not fit the
	// transfer's state (accepting an outgoing transfer, resuming one that
	// completed).
	ErrTransferState = errors.New("gateway: the transfer is not in a state that allows this")
	// ErrQuota is returned when an incoming transfer would go over
	// Config.FileQuota.
	ErrQuota = errors.New("gateway: the transfer would go over the file quota: finish or cancel other transfers, or raise the quota")
	// ErrNoSpace is returned when the download directory has not enough
	// free space for an accepted transfer; it stays pending, to be
	// accepted into another directory or declined.
	ErrNoSpace = errors.New("gateway: not enough free space in the download directory: free some space or accept into another directory")
	// ErrFileTooLarge is returned for a file over Config.MaxFileSize.
	ErrFileTooLarge = errors.New("gateway: the file is larger than the size limit: raise the limit (max_file_size) or split the file")
	// ErrTooManyTransfers is returned when the gateway already runs as
	// many transfers as it allows (with that peer, or at all).
	ErrTooManyTransfers = errors.New("gateway: too many file transfers at once: wait for one to finish or cancel one")
	// ErrTransferRefused is matched by [TransferRefusedError].
	ErrTransferRefused = errors.New("gateway: the channel policy refuses this file transfer")
)

// TransferRefusedError is returned by [Gateway.SendFiles] when the channel
// policy refuses the transfer. It matches [ErrTransferRefused].
type TransferRefusedError struct {
	Rule    string // the policy rule that decided
	Message string // the rule's message, for the user
}

func (e *TransferRefusedError) Error() string {
	s := ErrTransferRefused.Error() + " (rule " + e.Rule + ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s + "; change the policy's file-transfer rules to allow it"
}

// Unwrap returns [ErrTransferRefused].
func (e *TransferRefusedError) Unwrap() error { return ErrTransferRefused }

// SendFiles offers the files at paths to a certified device of to (a bare
// JID, or a full JID to pick the device) in one protected Jingle session,
// one content per file, and returns the transfer in state offered once the
// offer went out. The transfer goes on after ctx ends; progress is
// reported as EventFile events and through [Gateway.Transfer].
func (g *Gateway) SendFiles(ctx context.Context, to jid.JID, paths []string, o SendOptions) (TransferInfo, error) {
	return g.sendFiles(ctx, to, paths, o)
}

// AcceptTransfer accepts the pending incoming transfer id into dir (""
// for Config.DownloadDir).
func (g *Gateway) AcceptTransfer(ctx context.Context, id, dir string) error {
	return g.acceptTransfer(ctx, id, dir)
}

// DeclineTransfer declines the pending incoming transfer id.
func (g *Gateway) DeclineTransfer(ctx context.Context, id string) error {
	return g.transferAction(ctx, id, xferDecline)
}

// CancelTransfer cancels transfer id, from either side, unless it ended.
// Partial files are removed.
func (g *Gateway) CancelTransfer(ctx context.Context, id string) error {
	if g.dropKept(id) {
		return nil // a failed transfer's kept partial files: removed
	}
	return g.transferAction(ctx, id, xferCancel)
}

// ResumeTransfer goes on with the failed transfer id from the last
// verified chunk of the file that was cut. While the transfer's Jingle
// session lives, on a fresh transport in it. Once the session ended, an
// incoming transfer whose verified parts were kept (24 h) is continued
// in a new session: a request (XEP-0234 §6.2) to the device that
// offered the files for the rest of each unfinished file, from its kept
// offset; the new transfer appears in Transfers and events.
func (g *Gateway) ResumeTransfer(ctx context.Context, id string) error {
	if g.files.kept.has(id) {
		return g.resumeKept(ctx, id)
	}
	return g.transferAction(ctx, id, xferResume)
}

// Transfers returns the current and recently ended transfers, oldest
// first.
func (g *Gateway) Transfers() []TransferInfo { return g.files.snapshots() }

// Transfer returns transfer id.
func (g *Gateway) Transfer(id string) (TransferInfo, bool) {
	x := g.files.get(id)
	if x == nil {
		return TransferInfo{}, false
	}
	return x.snapshot(), true
}
