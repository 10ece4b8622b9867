package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"time"
)

// File transfer limits.
const (
	// MaxSendFiles bounds the files of one POST /v1/files.
	MaxSendFiles = 64
	// MaxTransferIDLen bounds a transfer id (a Jingle sid).
	MaxTransferIDLen = 256
	// MaxFileDescLen bounds the description of a send request, in bytes.
	MaxFileDescLen = 1024
)

// Transfer states (TransferInfo.State and FileInfo.State).
const (
	TransferOffered      = "offered"      // outgoing: the offer went out, the receiver has not decided
	TransferPending      = "pending"      // incoming: waiting for accept or decline
	TransferConnecting   = "connecting"   // accepted: the transport is being set up
	TransferTransferring = "transferring" // bytes flowing
	TransferVerifying    = "verifying"    // all bytes in: the whole-file hash is being checked
	TransferCompleted    = "completed"    // every file arrived and matched its hash
	TransferFailed       = "failed"       // Detail says why; ResumeTransfer may go on
	TransferCancelled    = "cancelled"    // either side cancelled
	TransferDeclined     = "declined"     // the receiver (or its rules) declined
)

// TransferEnded reports whether a transfer in state s is over: completed,
// failed, cancelled or declined. A failed transfer can still be resumed.
func TransferEnded(s string) bool {
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

// Transport names (TransferInfo.Transport, SendFilesRequest.Transports),
// in the default order of preference.
const (
	TransportDataChannel = "webrtc-datachannel" // XEP-0343 on the DTLS bound to the e2e session
	TransportS5BDirect   = "s5b-direct"         // XEP-0260 SOCKS5, peer to peer
	TransportS5BProxy    = "s5b-proxy"          // XEP-0260 through a XEP-0065 proxy
	TransportIBB         = "ibb"                // XEP-0261 in-band bytestreams
)

// Transports lists the transport names in the default order of
// preference.
func Transports() []string {
	return []string{TransportDataChannel, TransportS5BDirect, TransportS5BProxy, TransportIBB}
}

// FileInfo is one file of a transfer.
type FileInfo struct {
	// Name is the file's name: the base name offered (outgoing) or the
	// sanitized name it is saved under (incoming).
	Name      string    `json:"name"`
	Size      uint64    `json:"size"`
	MediaType string    `json:"media_type,omitempty"`
	Desc      string    `json:"desc,omitempty"`
	Date      time.Time `json:"date,omitzero"`
	// Hash is the whole file's hash as offered, "sha-256:<hex>" (or a
	// stronger algorithm the sender offered).
	Hash string `json:"hash,omitempty"`
	// Path is the source file (outgoing), or the received file once it
	// is complete (incoming).
	Path  string `json:"path,omitempty"`
	Done  uint64 `json:"done"` // bytes sent or verified so far
	State string `json:"state"`
}

// TransferInfo is a file transfer as the API reports it: an element of
// GET /v1/files, the answer of the file endpoints, and the file field of
// "file" events.
type TransferInfo struct {
	ID        string `json:"id"`
	Direction string `json:"direction"` // outgoing or incoming
	Peer      string `json:"peer"`      // bare JID
	// PeerFull and PeerDevice name the peer's certified device at the
	// other end.
	PeerFull   string `json:"peer_full,omitempty"`
	PeerDevice uint32 `json:"peer_device,omitempty"`
	// Trust is the trust level of the peer's account key, Verified
	// whether the user verified it, AccountFingerprint its fingerprint.
	Trust              string     `json:"trust"`
	Verified           bool       `json:"verified"`
	AccountFingerprint string     `json:"account_fingerprint,omitempty"`
	Files              []FileInfo `json:"files"`
	State              string     `json:"state"`
	// Transport is the transport in use (or last used): one of
	// [Transports]; empty before one is chosen.
	Transport string `json:"transport,omitempty"`
	// Suite is the stream cipher suite URI.
	Suite      string  `json:"suite,omitempty"`
	BytesDone  uint64  `json:"bytes_done"`
	BytesTotal uint64  `json:"bytes_total"`
	Rate       float64 `json:"rate"` // bytes per second, smoothed
	// Resumed is set when the transfer went on after a cut, from
	// ResumedFrom bytes.
	Resumed     bool      `json:"resumed,omitempty"`
	ResumedFrom uint64    `json:"resumed_from,omitempty"`
	Created     time.Time `json:"created"`
	Started     time.Time `json:"started,omitzero"`
	Ended       time.Time `json:"ended,omitzero"`
	// Detail is a sentence naming the cause and the fix when the
	// transfer failed, was declined or refused.
	Detail string `json:"detail,omitempty"`
}

// SendFilesRequest is the body of POST /v1/files.
type SendFilesRequest struct {
	To string `json:"to"` // bare JID: the transfer goes to a certified device of it
	// Paths are the files to send: files of the daemon's user, absolute
	// or relative to the daemon's working directory.
	Paths []string `json:"paths"`
	// Transports is the order of transports to try (names of
	// [Transports]); empty takes the daemon's order.
	Transports []string `json:"transports,omitempty"`
	// Desc is a description sent with the files.
	Desc string `json:"desc,omitempty"`
}

// AcceptRequest is the body of POST /v1/files/{id}/accept.
type AcceptRequest struct {
	// Dir is the directory to save the files in; empty takes the
	// daemon's download directory.
	Dir string `json:"dir,omitempty"`
}

// SendFilesOptions is a validated [SendFilesRequest]: absolute paths of
// regular files the daemon can read, and known transports without
// repeats. The server hands it to the [FileBackend].
type SendFilesOptions struct {
	Paths      []string
	Transports []string
	Desc       string
}

// TransfersResponse is the answer of GET /v1/files.
type TransfersResponse struct {
	Transfers []TransferInfo `json:"transfers"`
}

// A FileBackend is a [Backend] that can send and receive files: the
// server finds it by type assertion, and answers the file endpoints with
// 503 when the backend is not one. Errors follow the Backend rules: an
// unknown transfer wraps [ErrNotFound], an action the transfer's state
// does not allow [ErrConflict], a refusal by the channel policy
// [ErrPolicyRefused], a file over the size limit [ErrTooLarge] and one
// over the quota [ErrQuota].
type FileBackend interface {
	// Transfers lists the current and recent transfers, oldest first.
	Transfers() ([]TransferInfo, error)
	// Transfer returns one transfer.
	Transfer(id string) (TransferInfo, error)
	// SendFiles offers files to a certified device of the bare JID to. It
	// returns once the offer went out; the transfer lives on after ctx
	// ends.
	SendFiles(ctx context.Context, to string, o SendFilesOptions) (TransferInfo, error)
	// AcceptTransfer accepts a pending incoming transfer into dir (an
	// absolute directory, or "" for the download directory).
	AcceptTransfer(ctx context.Context, id, dir string) (TransferInfo, error)
	// DeclineTransfer declines a pending incoming transfer.
	DeclineTransfer(ctx context.Context, id string) (TransferInfo, error)
	// CancelTransfer cancels a transfer that has not ended, from either
	// side.
	CancelTransfer(ctx context.Context, id string) (TransferInfo, error)
	// ResumeTransfer goes on with a failed transfer from the last
	// verified chunk.
	ResumeTransfer(ctx context.Context, id string) (TransferInfo, error)
}

// files returns the backend's file capability, or an error for 503.
func (s *Server) files() (FileBackend, error) {
	fb, ok := s.b.(FileBackend)
	if !ok {
		return nil, fmt.Errorf("%w: this daemon has no file transfer support", ErrUnavailable)
	}
	return fb, nil
}

// checkTransferID checks a transfer id of a request path: 1 to
// [MaxTransferIDLen] printable ASCII characters other than '/'.
func checkTransferID(id string) error {
	if id == "" || len(id) > MaxTransferIDLen {
		return fmt.Errorf("%w: transfer id must be 1 to %d characters (as securejingle files lists it)", ErrInvalid, MaxTransferIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= 0x20 || c >= 0x7f || c == '/' {
			return fmt.Errorf("%w: transfer id holds a character that no transfer id has (as securejingle files lists it)", ErrInvalid)
		}
	}
	return nil
}

// A FileError is a file or directory of a request that the daemon cannot
// use. It wraps [ErrInvalid].
type FileError struct {
	Field string // paths[i] or dir
	Path  string
	// Problem says what is wrong with Path and what to do.
	Problem string
}

func (e *FileError) Error() string { return "api: " + e.Field + ": " + e.Problem }

// Unwrap returns [ErrInvalid].
func (e *FileError) Unwrap() error { return ErrInvalid }

// localPath bounds and absolutizes p, as a [*FileError].
func localPath(field, p string) (string, error) {
	abs, err := checkLocalPath(field, p)
	var me *MediaError
	if errors.As(err, &me) {
		return "", &FileError{Field: field, Path: p, Problem: me.Problem}
	}
	return abs, err
}

// CheckSendFile checks that path is a regular file the daemon can read.
// Errors are a [*FileError] for field.
func CheckSendFile(field, path string) error {
	f, err := os.Open(path)
	if err != nil {
		problem := fmt.Sprintf("cannot open %s: %v (the daemon's user must be able to read it)", path, errors.Unwrap(err))
		if errors.Is(err, fs.ErrNotExist) {
			problem = fmt.Sprintf("%s does not exist (paths name files of the daemon's user; a relative path is relative to the daemon's working directory: give an absolute path)", path)
		}
		return &FileError{Field: field, Path: path, Problem: problem}
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return &FileError{Field: field, Path: path, Problem: fmt.Sprintf("cannot stat %s: %v", path, err)}
	case fi.IsDir():
		return &FileError{Field: field, Path: path, Problem: path + " is a directory: name the files in it (or pack it with tar first)"}
	case !fi.Mode().IsRegular():
		return &FileError{Field: field, Path: path, Problem: path + " is not a regular file"}
	}
	return nil
}

// CheckReceiveDir checks that path is a directory the daemon can create
// files in. Errors are a [*FileError] for field.
func CheckReceiveDir(field, path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &FileError{Field: field, Path: path, Problem: fmt.Sprintf(
			"%s does not exist: create it (mkdir -p) or name another directory", path)}
	case err != nil:
		return &FileError{Field: field, Path: path, Problem: fmt.Sprintf("cannot use %s: %v", path, errors.Unwrap(err))}
	case !fi.IsDir():
		return &FileError{Field: field, Path: path, Problem: path + " is not a directory"}
	}
	f, err := os.CreateTemp(path, ".securejingle-check-*")
	if err != nil {
		return &FileError{Field: field, Path: path, Problem: fmt.Sprintf(
			"the daemon cannot create files in %s (%v): fix its permissions or name another directory", path, errors.Unwrap(err))}
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// CheckTransports checks a transport order: known names of [Transports],
// each at most once. Errors wrap [ErrInvalid].
func CheckTransports(ts []string) error {
	known := Transports()
	if len(ts) > len(known) {
		return fmt.Errorf("%w: transports: at most %d names", ErrInvalid, len(known))
	}
	for i, t := range ts {
		if !slices.Contains(known, t) {
			return fmt.Errorf("%w: transports[%d]: %q is not a transport: want one of %v", ErrInvalid, i, sanitizeFourCC(t), known)
		}
		if slices.Contains(ts[:i], t) {
			return fmt.Errorf("%w: transports[%d]: %q named twice", ErrInvalid, i, t)
		}
	}
	return nil
}

// checkSendFiles validates a send request.
func checkSendFiles(req SendFilesRequest) (string, SendFilesOptions, error) {
	to, err := checkBareJID("to", req.To)
	if err != nil {
		return "", SendFilesOptions{}, err
	}
	var o SendFilesOptions
	switch {
	case len(req.Paths) == 0:
		return "", o, fmt.Errorf("%w: paths: name at least one file to send", ErrInvalid)
	case len(req.Paths) > MaxSendFiles:
		return "", o, fmt.Errorf("%w: paths: at most %d files in one transfer (send the rest in another, or pack them with tar)", ErrInvalid, MaxSendFiles)
	case len(req.Desc) > MaxFileDescLen:
		return "", o, fmt.Errorf("%w: desc: at most %d bytes", ErrInvalid, MaxFileDescLen)
	}
	if err := CheckTransports(req.Transports); err != nil {
		return "", o, err
	}
	for i, p := range req.Paths {
		field := fmt.Sprintf("paths[%d]", i)
		if p == "" {
			return "", o, &FileError{Field: field, Problem: "empty path"}
		}
		abs, err := localPath(field, p)
		if err != nil {
			return "", o, err
		}
		if err := CheckSendFile(field, abs); err != nil {
			return "", o, err
		}
		o.Paths = append(o.Paths, abs)
	}
	o.Transports = slices.Clone(req.Transports)
	o.Desc = req.Desc
	return to, o, nil
}

// transferID returns the checked id path value.
func transferID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := checkTransferID(id); err != nil {
		return "", err
	}
	return id, nil
}

// transferRequest checks a request on one transfer (/v1/files/{id}...):
// capErr is the backend capability's error (503), query the parameters
// allowed. It returns the transfer id; on false it has answered.
func (s *Server) transferRequest(w http.ResponseWriter, r *http.Request, capErr error, query ...string) (string, bool) {
	err := capErr
	if err == nil {
		err = checkQuery(r, query...)
	}
	var id string
	if err == nil {
		id, err = transferID(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return "", false
	}
	return id, true
}

// answerTransfer runs call bounded by the request's time and answers
// with the transfer it returns: created (201, with its Location) or 200.
func (s *Server) answerTransfer(w http.ResponseWriter, r *http.Request, created bool, call func(ctx context.Context) (TransferInfo, error)) {
	var info TransferInfo
	err := s.bounded(r.Context(), func(ctx context.Context) (err error) {
		info, err = call(ctx)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	code := http.StatusOK
	if created {
		w.Header().Set("Location", "/v1/files/"+info.ID)
		code = http.StatusCreated
	}
	writeJSON(w, code, normalizeTransfer(info))
}

// filesRequest checks a request on /v1/files (no query parameters) and
// returns the file capability; on false it has answered.
func (s *Server) filesRequest(w http.ResponseWriter, r *http.Request) (FileBackend, bool) {
	fb, err := s.files()
	if err == nil {
		err = checkQuery(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return fb, true
}

func (s *Server) handleTransfers(w http.ResponseWriter, r *http.Request) {
	fb, ok := s.filesRequest(w, r)
	if !ok {
		return
	}
	ts, err := fb.Transfers()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ts == nil {
		ts = []TransferInfo{}
	}
	for i := range ts {
		ts[i] = normalizeTransfer(ts[i])
	}
	writeJSON(w, http.StatusOK, TransfersResponse{Transfers: ts})
}

func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	fb, err := s.files()
	id, ok := s.transferRequest(w, r, err)
	if !ok {
		return
	}
	t, err := fb.Transfer(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, normalizeTransfer(t))
}

func (s *Server) handleSendFiles(w http.ResponseWriter, r *http.Request) {
	fb, ok := s.filesRequest(w, r)
	if !ok {
		return
	}
	if fromWeb(r.Context()) {
		s.fail(w, r, fmt.Errorf("%w: the web app cannot send files of the daemon's user by path: upload the file with POST /v1/files/upload", ErrForbidden))
		return
	}
	var req SendFilesRequest
	if !decode(w, r, MaxRequestBody, &req) {
		return
	}
	to, o, err := checkSendFiles(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.answerTransfer(w, r, true, func(ctx context.Context) (TransferInfo, error) { return fb.SendFiles(ctx, to, o) })
}

func (s *Server) handleAcceptTransfer(w http.ResponseWriter, r *http.Request) {
	fb, err := s.files()
	id, ok := s.transferRequest(w, r, err)
	if !ok {
		return
	}
	var req AcceptRequest
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		if !decode(w, r, MaxRequestBody, &req) {
			return
		}
	}
	err = noWebPaths(r.Context(), "dir", req.Dir)
	var dir string
	if err == nil {
		dir, err = localPath("dir", req.Dir)
	}
	if err == nil && dir != "" {
		err = CheckReceiveDir("dir", dir)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := incomingOnly(fb, id, "accepts"); err != nil {
		s.fail(w, r, err)
		return
	}
	s.answerTransfer(w, r, false, func(ctx context.Context) (TransferInfo, error) { return fb.AcceptTransfer(ctx, id, dir) })
}

// Transfer actions that take no body.
const (
	actDecline = "decline"
	actCancel  = "cancel"
	actResume  = "resume"
)

// handleTransferAction serves decline, cancel and resume.
func (s *Server) handleTransferAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fb, err := s.files()
		if err == nil {
			err = checkNoBody(w, r)
		}
		id, ok := s.transferRequest(w, r, err)
		if !ok {
			return
		}
		if action == actDecline {
			if err := incomingOnly(fb, id, "declines"); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		s.answerTransfer(w, r, false, func(ctx context.Context) (TransferInfo, error) {
			switch action {
			case actDecline:
				return fb.DeclineTransfer(ctx, id)
			case actCancel:
				return fb.CancelTransfer(ctx, id)
			}
			return fb.ResumeTransfer(ctx, id)
		})
	}
}

// incomingOnly refuses an action (the receiver's verb: accepts,
// declines) on a transfer that is not incoming.
func incomingOnly(fb FileBackend, id, verb string) error {
	t, err := fb.Transfer(id)
	if err != nil {
		return err
	}
	if t.Direction != TransferIncoming {
		return fmt.Errorf("%w: transfer %s is one you sent: only the receiver %s (cancel it with POST /v1/files/%s/cancel)", ErrConflict, id, verb, id)
	}
	return nil
}

// normalizeTransfer gives the lists of t their JSON form: empty, never
// null.
func normalizeTransfer(t TransferInfo) TransferInfo {
	if t.Files == nil {
		t.Files = []FileInfo{}
	}
	return t
}
