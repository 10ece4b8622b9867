package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/securejingle/securejingle/dtls"
)

// Call limits.
const (
	// MaxPathLen bounds a file or directory path in a call request.
	MaxPathLen = 4096
	// MaxCallIDLen bounds a call id (a Jingle sid is at most 256 bytes).
	MaxCallIDLen = 256
	// MaxCallDuration bounds the duration of a call request.
	MaxCallDuration = 24 * time.Hour
)

// Call states (CallInfo.State).
const (
	CallProposed   = "proposed"   // outgoing: the propose went out, no device rang yet
	CallRinging    = "ringing"    // a device of the callee rings (incoming: this daemon rings)
	CallConnecting = "connecting" // accepted: ICE and DTLS under way
	CallConnected  = "connected"  // DTLS-SRTP up, binding checked, media flowing
	// CallReconnecting: a connected call lost its media path; ICE
	// restarts look for a new one (back to connected, or ended with
	// connectivity-error after the outage bound).
	CallReconnecting = "reconnecting"
	CallEnded        = "ended" // over: EndReason and Detail say why
)

// Binding check results (CallInfo.Binding).
const (
	BindingPending = "pending" // DTLS has not completed yet
	BindingPassed  = "passed"  // the peer's certificate matches the fingerprint of its protected offer or answer
	BindingFailed  = "failed"  // it does not: the call was terminated with security-error
)

// Media names (CallInfo.Media).
const (
	MediaAudio = "audio"
	MediaVideo = "video"
)

// Call directions (CallInfo.Direction).
const (
	CallOutgoing = "outgoing"
	CallIncoming = "incoming"
)

// CallInfo is a call as the API reports it: an element of GET /v1/calls,
// the answer of the call endpoints, and the call field of "call" events.
type CallInfo struct {
	ID        string `json:"id"`
	Direction string `json:"direction"` // outgoing or incoming
	Peer      string `json:"peer"`      // bare JID
	// PeerFull and PeerDevice name the peer's certified device that
	// carries the call, once one answered (outgoing) or proposed
	// (incoming).
	PeerFull   string   `json:"peer_full,omitempty"`
	PeerDevice uint32   `json:"peer_device,omitempty"`
	Media      []string `json:"media"` // audio, video
	State      string   `json:"state"` // proposed, ringing, connecting, connected, ended
	// Trust is the trust level of the peer's account key (tofu, verified,
	// ...) and Verified whether the user verified it;
	// AccountFingerprint is that key's fingerprint, as GET /v1/peers
	// shows it.
	Trust              string `json:"trust"`
	Verified           bool   `json:"verified"`
	AccountFingerprint string `json:"account_fingerprint,omitempty"`
	// Binding is the result of the DTLS binding check: pending, passed
	// or failed.
	Binding     string `json:"binding"`
	SRTPProfile string `json:"srtp_profile,omitempty"`
	// LocalFingerprint and PeerFingerprint are the DTLS certificate
	// SHA-256 fingerprints of the call ("AB:CD:..."), the peer's as its
	// protected offer or answer carried it.
	LocalFingerprint string `json:"local_fingerprint,omitempty"`
	PeerFingerprint  string `json:"peer_fingerprint,omitempty"`
	// RelayOnly: this side offered relayed (TURN) candidates only.
	RelayOnly bool `json:"relay_only,omitempty"`
	// LocalLeg is set for a call placed or answered with a local_offer
	// (the web app's browser): the state of the browser's leg
	// (connecting, connected, ended). LocalSRTPProfile is that leg's SRTP
	// profile, LocalLegFingerprint the certificate fingerprint the
	// daemon presents on it (the web session's leg_fingerprint), and
	// RelayedToPeer / RelayedToLocal the RTP packets relayed from the
	// browser to the peer and back.
	LocalLeg            string `json:"local_leg,omitempty"`
	LocalSRTPProfile    string `json:"local_srtp_profile,omitempty"`
	LocalLegFingerprint string `json:"local_leg_fingerprint,omitempty"`
	RelayedToPeer       uint64 `json:"relayed_to_peer,omitempty"`
	RelayedToLocal      uint64 `json:"relayed_to_local,omitempty"`
	// Muted is what this side holds back (POST /v1/calls/{id}/mute),
	// PeerMuted what the peer said it holds back: audio, video.
	Muted     []string `json:"muted,omitempty"`
	PeerMuted []string `json:"peer_muted,omitempty"`
	// LocalAnswer is the daemon's SDP answer to the local_offer of the
	// request, in the response to that request only.
	LocalAnswer     string `json:"local_answer,omitempty"`
	BytesSent       uint64 `json:"bytes_sent"`
	BytesReceived   uint64 `json:"bytes_received"`
	PacketsSent     uint64 `json:"packets_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	// Recordings are the files the received tracks are written to.
	Recordings []string  `json:"recordings,omitempty"`
	Created    time.Time `json:"created"`
	Connected  time.Time `json:"connected,omitzero"`
	Ended      time.Time `json:"ended,omitzero"`
	// EndReason is the XEP-0166 reason the call ended with (success,
	// decline, busy, timeout, security-error, answered-elsewhere, ...).
	EndReason string `json:"end_reason,omitempty"`
	// Detail is a sentence naming the cause and the fix when the call
	// failed or was refused.
	Detail string `json:"detail,omitempty"`
}

// HasMedia reports whether the call negotiates media m (MediaAudio,
// MediaVideo).
func (c CallInfo) HasMedia(m string) bool { return slices.Contains(c.Media, m) }

// CallMedia is what a call sends and where it records: the body of POST
// /v1/calls/{id}/answer and part of [CallRequest]. Paths are files of the
// daemon's user, absolute or relative to the daemon's working directory.
type CallMedia struct {
	// Audio and Video choose the media to negotiate. Unset: for a new
	// call audio, and video when VideoFile is given; for an answer, what
	// the call offers.
	Audio *bool `json:"audio,omitempty"`
	Video *bool `json:"video,omitempty"`
	// AudioFile is Ogg Opus to play, VideoFile IVF VP8; empty sends
	// nothing on that medium (it is still received).
	AudioFile string `json:"audio_file,omitempty"`
	VideoFile string `json:"video_file,omitempty"`
	// RecordDir is an existing directory to record the received tracks
	// in; empty records nothing.
	RecordDir string `json:"record_dir,omitempty"`
	// Duration is a Go duration ("30s") after which the call hangs up
	// once connected; empty or "0s" means no limit.
	Duration string `json:"duration,omitempty"`
	// LocalOffer is the SDP offer of the user's own WebRTC peer (the web
	// app's browser: audio and/or video, all candidates on loopback, no
	// trickle). The daemon answers it (LocalAnswer of the response) and
	// relays the call's media between it and the peer; the media are
	// those it offers. It excludes audio, video, the files, record_dir
	// and duration.
	LocalOffer string `json:"local_offer,omitempty"`
}

// CallRequest is the body of POST /v1/calls.
type CallRequest struct {
	To string `json:"to"` // bare JID: every certified device of it rings
	CallMedia
}

// CallOptions is a validated [CallMedia]: the media chosen, absolute
// paths of files checked to be usable, and the duration parsed. The
// server hands it to the [CallBackend].
type CallOptions struct {
	Audio, Video         bool
	AudioFile, VideoFile string
	RecordDir            string
	Duration             time.Duration
	// LocalOffer is CallMedia.LocalOffer; LegCertificate the DTLS
	// certificate the local leg presents: the web session's (see
	// [WithLegCertificate]), nil for a fresh one.
	LocalOffer     string
	LegCertificate *dtls.Certificate
	// LegLifetime bounds the call of a LocalOffer: it is hung up once
	// LegLifetime is done (the web session's end, see
	// [WithCallLifetime]); nil for no such bound.
	LegLifetime context.Context
}

// CallsResponse is the answer of GET /v1/calls.
type CallsResponse struct {
	Calls []CallInfo `json:"calls"`
}

// A CallBackend is a [Backend] that can place and answer calls: the
// server finds it by type assertion, and answers the call endpoints with
// 503 when the backend is not one. Errors follow the Backend rules; an
// unknown call id wraps [ErrNotFound], a refusal by the channel policy
// [ErrPolicyRefused].
type CallBackend interface {
	// Calls lists the current and recently ended calls, oldest first.
	Calls() ([]CallInfo, error)
	// Call returns one call.
	Call(id string) (CallInfo, error)
	// PlaceCall calls every certified device of the bare JID to. It
	// returns once the proposal went out; the call lives on after ctx
	// ends.
	PlaceCall(ctx context.Context, to string, o CallOptions) (CallInfo, error)
	// AnswerCall accepts an incoming call that rings.
	AnswerCall(ctx context.Context, id string, o CallOptions) (CallInfo, error)
	// DeclineCall refuses an incoming call that rings.
	DeclineCall(ctx context.Context, id string) (CallInfo, error)
	// HangUp ends a call in any state but ended (an outgoing call not yet
	// answered is retracted).
	HangUp(ctx context.Context, id string) (CallInfo, error)
}

// MuteRequest is the body of POST /v1/calls/{id}/mute: true mutes,
// false unmutes, unset leaves that medium as it is.
type MuteRequest struct {
	Audio *bool `json:"audio,omitempty"`
	Video *bool `json:"video,omitempty"`
}

// A CallMuter is a [CallBackend] that can mute calls; the server finds it
// by type assertion and answers POST /v1/calls/{id}/mute with 503 when
// the backend is not one.
type CallMuter interface {
	// MuteCall changes what call id holds back (nil: unchanged) and
	// tells the peer.
	MuteCall(ctx context.Context, id string, audio, video *bool) (CallInfo, error)
}

func (s *Server) handleMuteCall(w http.ResponseWriter, r *http.Request) {
	cb, id, err := s.callRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cm, ok := cb.(CallMuter)
	if !ok {
		s.fail(w, r, fmt.Errorf("%w: this daemon cannot mute calls", ErrUnavailable))
		return
	}
	var req MuteRequest
	if !decode(w, r, MaxRequestBody, &req) {
		return
	}
	if req.Audio == nil && req.Video == nil {
		s.fail(w, r, fmt.Errorf("%w: say what to mute: {\"audio\": true} mutes the microphone, {\"video\": false} turns the camera back on", ErrInvalid))
		return
	}
	var info CallInfo
	err = s.bounded(r.Context(), func(ctx context.Context) (err error) {
		info, err = cm.MuteCall(ctx, id, req.Audio, req.Video)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, normalizeCall(info))
}

// calls returns the backend's call capability, or an error for 503.
func (s *Server) calls() (CallBackend, error) {
	cb, ok := s.b.(CallBackend)
	if !ok {
		return nil, fmt.Errorf("%w: this daemon has no call support", ErrUnavailable)
	}
	return cb, nil
}

func (s *Server) handleCalls(w http.ResponseWriter, r *http.Request) {
	cb, err := s.calls()
	if err == nil {
		err = checkQuery(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cs, err := cb.Calls()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if cs == nil {
		cs = []CallInfo{}
	}
	for i := range cs {
		cs[i] = normalizeCall(cs[i])
	}
	writeJSON(w, http.StatusOK, CallsResponse{Calls: cs})
}

func (s *Server) handlePlaceCall(w http.ResponseWriter, r *http.Request) {
	cb, err := s.calls()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req CallRequest
	if !decode(w, r, MaxRequestBody, &req) {
		return
	}
	to, err := checkBareJID("to", req.To)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := checkCallMedia(req.CallMedia, true, req.VideoFile != "")
	if err == nil {
		err = webCallPaths(r.Context(), req.CallMedia)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o.LegCertificate, o.LegLifetime = LegCertificate(r.Context()), CallLifetime(r.Context())
	var info CallInfo
	err = s.bounded(r.Context(), func(ctx context.Context) (err error) {
		info, err = cb.PlaceCall(ctx, to, o)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/calls/"+info.ID)
	writeJSON(w, http.StatusCreated, normalizeCall(info))
}

// callID returns the checked id path value.
func callID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := checkCallID(id); err != nil {
		return "", err
	}
	return id, nil
}

// callRequest does the checks every /v1/calls/{id} endpoint shares: call
// support (503), no query parameters (400) and a well-formed id (400).
func (s *Server) callRequest(r *http.Request) (CallBackend, string, error) {
	cb, err := s.calls()
	if err != nil {
		return nil, "", err
	}
	if err := checkQuery(r); err != nil {
		return nil, "", err
	}
	id, err := callID(r)
	if err != nil {
		return nil, "", err
	}
	return cb, id, nil
}

func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	cb, id, err := s.callRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	info, err := cb.Call(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, normalizeCall(info))
}

// A callAction is what differs between the POST /v1/calls/{id}/ACTION
// endpoints: given the checked id and the decoded body (the zero
// CallMedia for an endpoint without one), it checks the request against
// the call and returns the backend call to run, bounded like a send.
type callAction func(cb CallBackend, id string, m CallMedia, r *http.Request) (func(context.Context) (CallInfo, error), error)

// handleCallAction serves one POST /v1/calls/{id}/ACTION endpoint:
// [Server.callRequest], then the body (a [CallMedia] when withBody,
// else none: 400 for one), then act, and 200 with the call.
func (s *Server) handleCallAction(withBody bool, act callAction) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cb, id, err := s.callRequest(r)
		if err == nil && !withBody {
			err = checkNoBody(w, r)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var m CallMedia
		if withBody && !decode(w, r, MaxRequestBody, &m) {
			return
		}
		run, err := act(cb, id, m, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var info CallInfo
		err = s.bounded(r.Context(), func(ctx context.Context) (err error) {
			info, err = run(ctx)
			return err
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, normalizeCall(info))
	}
}

// webCallPaths refuses the files and directory of m in a web session's
// request.
func webCallPaths(ctx context.Context, m CallMedia) error {
	return noWebPaths(ctx, "audio_file", m.AudioFile, "video_file", m.VideoFile, "record_dir", m.RecordDir)
}

// answerCall is POST /v1/calls/{id}/answer: only an incoming call, and
// only with media it offers (409 otherwise).
func answerCall(cb CallBackend, id string, m CallMedia, r *http.Request) (func(context.Context) (CallInfo, error), error) {
	call, err := cb.Call(id)
	if err != nil {
		return nil, err
	}
	audio, video := call.HasMedia(MediaAudio), call.HasMedia(MediaVideo)
	o, err := checkCallMedia(m, audio, video)
	if err == nil {
		err = webCallPaths(r.Context(), m)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case call.Direction != CallIncoming:
		return nil, fmt.Errorf("%w: call %s is one you placed: only the callee answers (hang up with POST /v1/calls/%s/hangup)", ErrConflict, id, id)
	case o.LocalOffer != "":
		// The media are those of the offer; the gateway checks them.
	case o.Audio && !audio:
		return nil, fmt.Errorf("%w: call %s offers no audio: answer without audio or audio_file", ErrConflict, id)
	case o.Video && !video:
		return nil, fmt.Errorf("%w: call %s offers no video: answer without video or video_file", ErrConflict, id)
	}
	o.LegCertificate, o.LegLifetime = LegCertificate(r.Context()), CallLifetime(r.Context())
	return func(ctx context.Context) (CallInfo, error) { return cb.AnswerCall(ctx, id, o) }, nil
}

// declineCall is POST /v1/calls/{id}/decline.
func declineCall(cb CallBackend, id string, _ CallMedia, _ *http.Request) (func(context.Context) (CallInfo, error), error) {
	return func(ctx context.Context) (CallInfo, error) { return cb.DeclineCall(ctx, id) }, nil
}

// hangUpCall is POST /v1/calls/{id}/hangup.
func hangUpCall(cb CallBackend, id string, _ CallMedia, _ *http.Request) (func(context.Context) (CallInfo, error), error) {
	return func(ctx context.Context) (CallInfo, error) { return cb.HangUp(ctx, id) }, nil
}

// normalizeCall gives the lists of c their JSON form: empty, never null.
func normalizeCall(c CallInfo) CallInfo {
	if c.Media == nil {
		c.Media = []string{}
	}
	return c
}

// legCertKey is the context key of [WithLegCertificate].
type legCertKey struct{}

// WithLegCertificate returns ctx carrying the DTLS certificate of a web
// session's local call leg. The web app wraps the context of every
// request of a session with it: a call placed or answered with a
// local_offer in that request presents this certificate to the browser,
// whose page pins its fingerprint (GET /api/session leg_fingerprint) and
// refuses an answer with another. Make one per session with
// [NewLegCertificate].
func WithLegCertificate(ctx context.Context, c *dtls.Certificate) context.Context {
	return context.WithValue(ctx, legCertKey{}, c)
}

// LegCertificate returns the certificate of [WithLegCertificate], or nil
// (a request on the control socket: the call gets a fresh one, whose
// fingerprint only its answer carries).
func LegCertificate(ctx context.Context) *dtls.Certificate {
	c, _ := ctx.Value(legCertKey{}).(*dtls.Certificate)
	return c
}

// callLifetimeKey is the context key of [WithCallLifetime].
type callLifetimeKey struct{}

// WithCallLifetime returns ctx carrying life, the lifetime of a web
// session: a call placed or answered with a local_offer in a request
// with this context is hung up by the daemon once life is done (logout,
// expiry, a newer login that retires the session), whatever its page
// does. The web app wraps every request of a session with it.
func WithCallLifetime(ctx, life context.Context) context.Context {
	return context.WithValue(ctx, callLifetimeKey{}, life)
}

// CallLifetime returns the lifetime of [WithCallLifetime], or nil (a
// request on the control socket: the call lives until it is hung up).
func CallLifetime(ctx context.Context) context.Context {
	c, _ := ctx.Value(callLifetimeKey{}).(context.Context)
	return c
}

// NewLegCertificate makes the local call leg certificate of a new web
// session and returns it with its fingerprint as GET /api/session shows
// it (leg_fingerprint: "sha-256 AB:CD:...", the form of an SDP
// a=fingerprint value).
func NewLegCertificate() (*dtls.Certificate, string, error) {
	c, err := dtls.NewCertificate()
	if err != nil {
		return nil, "", fmt.Errorf("api: local call leg certificate: %w", err)
	}
	return c, LegFingerprint(c), nil
}

// LegFingerprint is the leg_fingerprint of c: "sha-256 AB:CD:...".
func LegFingerprint(c *dtls.Certificate) string {
	f := c.Fingerprint()
	return f.Hash + " " + f.String()
}
