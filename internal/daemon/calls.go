package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
)

var _ api.CallBackend = (*backend)(nil)

// apiCall converts a gateway call for the API, with the fingerprint of
// the peer's pinned account key.
func (b *backend) apiCall(c gateway.CallInfo) api.CallInfo {
	out := api.CallInfo{
		ID: c.ID, Direction: c.Direction, Peer: c.Peer, PeerFull: c.PeerFull, PeerDevice: c.PeerDevice,
		Media: slices.Clone(c.Media), State: string(c.State), Trust: c.Trust, Verified: c.Verified,
		Binding: c.Binding, SRTPProfile: c.SRTPProfile,
		LocalFingerprint: c.LocalFingerprint, PeerFingerprint: c.PeerFingerprint, RelayOnly: c.RelayOnly,
		LocalLeg: c.LocalLeg, LocalSRTPProfile: c.LocalSRTPProfile, LocalLegFingerprint: c.LocalLegFingerprint,
		RelayedToPeer: c.RelayedToPeer, RelayedToLocal: c.RelayedToLocal,
		Muted: slices.Clone(c.Muted), PeerMuted: slices.Clone(c.PeerMuted),
		BytesSent: c.BytesSent, BytesReceived: c.BytesReceived, PacketsSent: c.PacketsSent, PacketsReceived: c.PacketsReceived,
		Recordings: slices.Clone(c.Recordings), Created: c.Created, Connected: c.Connected, Ended: c.Ended,
		EndReason: c.EndReason, Detail: c.Detail,
	}
	if out.Media == nil {
		out.Media = []string{}
	}
	if key, _, err := b.accountKey(c.Peer); err == nil {
		out.AccountFingerprint = identity.Fingerprint(key)
	}
	return out
}

// mapCallErr gives gateway call errors their API class.
func mapCallErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gateway.ErrUnknownCall):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, gateway.ErrCallRefused):
		return fmt.Errorf("%w: %v (`securejingle policy check -config FILE` lists the rules; change policy.file to allow it)", api.ErrPolicyRefused, err)
	case errors.Is(err, gateway.ErrPeerNotCertified), errors.Is(err, gateway.ErrCallState), errors.Is(err, gateway.ErrTooManyCalls):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	case errors.Is(err, gateway.ErrNoMedia), errors.Is(err, gateway.ErrLocalOffer):
		return fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	return mapErr(err)
}

func gatewayMedia(o api.CallOptions) gateway.CallMedia {
	return gateway.CallMedia{Audio: o.Audio, Video: o.Video, AudioFile: o.AudioFile, VideoFile: o.VideoFile,
		RecordDir: o.RecordDir, Duration: o.Duration}
}

// Calls implements api.CallBackend.
func (b *backend) Calls() ([]api.CallInfo, error) {
	cs := b.gw.Calls()
	out := make([]api.CallInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, b.apiCall(c))
	}
	return out, nil
}

// Call implements api.CallBackend.
func (b *backend) Call(id string) (api.CallInfo, error) {
	c, ok := b.gw.Call(id)
	if !ok {
		return api.CallInfo{}, fmt.Errorf("%w: no call %q (securejingle calls lists the calls)", api.ErrNotFound, id)
	}
	return b.apiCall(c), nil
}

// callInfo returns the call id after an action.
func (b *backend) callInfo(id string) (api.CallInfo, error) {
	return b.Call(id)
}

// PlaceCall implements api.CallBackend.
func (b *backend) PlaceCall(ctx context.Context, to string, o api.CallOptions) (api.CallInfo, error) {
	j, err := jid.Parse(to)
	if err != nil {
		return api.CallInfo{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	if !b.connected() {
		return api.CallInfo{}, fmt.Errorf("%w: %v", api.ErrUnavailable, gateway.ErrOffline)
	}
	if o.LocalOffer != "" {
		c, answer, err := b.gw.PlaceLocalCall(ctx, j, gateway.LocalOffer{SDP: o.LocalOffer, Certificate: o.LegCertificate, Lifetime: o.LegLifetime})
		if err != nil {
			return api.CallInfo{}, mapCallErr(err)
		}
		b.log.Info("call placed from the local peer", "call", c.ID, "to", to, "media", c.Media)
		out := b.apiCall(c)
		out.LocalAnswer = answer
		return out, nil
	}
	c, err := b.gw.PlaceCall(ctx, j, gatewayMedia(o))
	if err != nil {
		return api.CallInfo{}, mapCallErr(err)
	}
	b.log.Info("call placed", "call", c.ID, "to", to, "audio", o.Audio, "video", o.Video, "record", o.RecordDir != "")
	return b.apiCall(c), nil
}

// actionErr maps the error of an action on call id: a call that ended is
// still listed for a while, and acting on it is a conflict, not an unknown
// call.
func (b *backend) actionErr(id string, err error) error {
	if errors.Is(err, gateway.ErrUnknownCall) {
		if c, ok := b.gw.Call(id); ok && c.State == gateway.CallEnded {
			return fmt.Errorf("%w: call %s already ended (%s)", api.ErrConflict, id, c.EndReason)
		}
	}
	return mapCallErr(err)
}

// AnswerCall implements api.CallBackend.
func (b *backend) AnswerCall(ctx context.Context, id string, o api.CallOptions) (api.CallInfo, error) {
	if o.LocalOffer != "" {
		answer, err := b.gw.AnswerLocalCall(ctx, id, gateway.LocalOffer{SDP: o.LocalOffer, Certificate: o.LegCertificate, Lifetime: o.LegLifetime})
		if err != nil {
			return api.CallInfo{}, b.actionErr(id, err)
		}
		b.log.Info("call answered by the local peer", "call", id)
		out, err := b.callInfo(id)
		out.LocalAnswer = answer
		return out, err
	}
	if err := b.gw.AnswerCall(ctx, id, gatewayMedia(o)); err != nil {
		return api.CallInfo{}, b.actionErr(id, err)
	}
	b.log.Info("call answered", "call", id)
	return b.callInfo(id)
}

var _ api.CallMuter = (*backend)(nil)

// MuteCall implements api.CallMuter: nil leaves a medium as it is.
func (b *backend) MuteCall(ctx context.Context, id string, audio, video *bool) (api.CallInfo, error) {
	c, ok := b.gw.Call(id)
	if !ok {
		return api.CallInfo{}, b.actionErr(id, gateway.ErrUnknownCall)
	}
	mute := [2]bool{slices.Contains(c.Muted, api.MediaAudio), slices.Contains(c.Muted, api.MediaVideo)}
	for i, p := range []*bool{audio, video} {
		if p != nil {
			mute[i] = *p
		}
	}
	if err := b.gw.MuteCall(ctx, id, mute[0], mute[1]); err != nil {
		return api.CallInfo{}, b.actionErr(id, err)
	}
	b.log.Info("call mute", "call", id, "audio", mute[0], "video", mute[1])
	return b.callInfo(id)
}

// DeclineCall implements api.CallBackend.
func (b *backend) DeclineCall(ctx context.Context, id string) (api.CallInfo, error) {
	if err := b.gw.DeclineCall(ctx, id); err != nil {
		return api.CallInfo{}, b.actionErr(id, err)
	}
	b.log.Info("call declined", "call", id)
	return b.callInfo(id)
}

// HangUp implements api.CallBackend.
func (b *backend) HangUp(ctx context.Context, id string) (api.CallInfo, error) {
	if err := b.gw.HangUp(ctx, id); err != nil {
		return api.CallInfo{}, b.actionErr(id, err)
	}
	b.log.Info("call hung up", "call", id)
	return b.callInfo(id)
}

// answerer returns the gateway's CallAnswerer for the auto-answer rules:
// the first rule whose peer pattern matches and whose minimum trust the
// caller's account key meets answers with the media the call offers.
func (b *backend) answerer(rules []autoAnswer) func(gateway.CallInfo) (gateway.CallMedia, bool) {
	if len(rules) == 0 {
		return nil
	}
	return func(c gateway.CallInfo) (gateway.CallMedia, bool) {
		level := b.trustLevel(c.Peer)
		for i, r := range rules {
			if !r.peer.Match(c.Peer) || !trustAtLeast(level, r.minTrust) {
				continue
			}
			audio, video := slices.Contains(c.Media, api.MediaAudio), slices.Contains(c.Media, api.MediaVideo)
			m := gateway.CallMedia{Audio: audio, Video: video, RecordDir: r.recordDir}
			if audio {
				m.AudioFile = r.audioFile
			}
			if video {
				m.VideoFile = r.videoFile
			}
			b.log.Info("call auto-answered", "call", c.ID, "peer", c.Peer, "rule", i, "pattern", r.peer.String(), "trust", level)
			return m, true
		}
		b.log.Info("incoming call rings: no auto-answer rule took it", "call", c.ID, "peer", c.Peer, "trust", level)
		return gateway.CallMedia{}, false
	}
}

// trustLevel is the trust level name of bare's account key.
func (b *backend) trustLevel(bare string) string {
	rec, err := b.trust.Lookup(bare)
	if err != nil {
		return trust.Unknown.String()
	}
	return rec.Level.String()
}
