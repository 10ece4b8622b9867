package gateway

// Mute: XEP-0167 §7 mute and unmute in protected session-infos. Ours
// are sent by [Gateway.MuteCall] (and, for a call relayed from a local
// peer, the daemon stops forwarding the muted media); the peer's are
// shown in CallInfo.PeerMuted.

import (
	"context"
	"slices"

	"github.com/securejingle/securejingle/jingle"
)

// MuteCall sets what we hold back on call id: audio and video muted
// (true) or sent (false). The peer is told with XEP-0167 mute or unmute
// payloads in a protected session-info, once the session exists (a mute
// set before is told when the call connects); CallInfo.Muted shows our
// state. On a call relayed from a local peer the gateway also stops
// forwarding the muted media (what the browser sends is dropped), so the
// mute holds whatever the page does.
func (g *Gateway) MuteCall(ctx context.Context, id string, audio, video bool) error {
	c := g.calls.get(id)
	if c == nil || c.isEnded() {
		return ErrUnknownCall
	}
	return c.postWait(ctx, callMsg{kind: msgMute, mute: [2]bool{audio, video}})
}

// mediaKinds are the media of kindAudio and kindVideo.
var mediaKinds = [2]string{"audio", "video"}

// setMute runs msgMute on the call's goroutine.
func (c *call) setMute(r *callRun, mute [2]bool) error {
	if r.over {
		return ErrUnknownCall
	}
	was := r.muted
	r.muted = mute
	if l := c.local; l != nil {
		for k := range mute {
			l.setMuted(k, mute[k])
		}
	}
	c.update(func(in *CallInfo) { in.Muted = mutedNames(mute) })
	if !r.connected {
		return nil // told by onConnected
	}
	var changed [2]bool
	for k := range mute {
		changed[k] = mute[k] != was[k]
	}
	return c.sendMute(mute, changed)
}

// sendMute tells the peer the state of each kind that changed.
func (c *call) sendMute(mute, changed [2]bool) error {
	c.mu.Lock()
	var contents []jingle.Content
	if c.sess != nil {
		contents = c.sess.Contents()
	}
	c.mu.Unlock()
	var infos []jingle.RTPInfo
	for _, ct := range contents {
		k := slices.Index(mediaKinds[:], mediaOf(ct))
		if k < 0 || !changed[k] {
			continue
		}
		info := jingle.RTPInfo{Kind: jingle.InfoUnmute, Creator: ct.Creator, Name: ct.Name}
		if mute[k] {
			info.Kind = jingle.InfoMute
		}
		infos = append(infos, info)
	}
	if len(infos) == 0 {
		return nil
	}
	_, err := c.sendJingle(jingle.NewSessionInfo(c.id, infos...))
	if err != nil {
		c.g.log.Info("session-info mute", "call", c.id, "err", err)
	}
	return err
}

func mediaOf(ct jingle.Content) string {
	if ct.Description == nil {
		return ""
	}
	return ct.Description.Media
}

func mutedNames(m [2]bool) []string {
	var out []string
	for k, muted := range m {
		if muted {
			out = append(out, mediaKinds[k])
		}
	}
	return out
}

// peerMuteInfo applies the mute and unmute payloads of the peer's
// session-info j (the handler checked it against the session) to
// CallInfo.PeerMuted. A payload without a name is for every content.
func (c *call) peerMuteInfo(j *jingle.Jingle) {
	infos, _, err := j.RTPInfos()
	if err != nil || len(infos) == 0 {
		return
	}
	c.mu.Lock()
	var contents []jingle.Content
	if c.sess != nil {
		contents = c.sess.Contents()
	}
	state := c.peerMuted
	for _, in := range infos {
		if in.Kind != jingle.InfoMute && in.Kind != jingle.InfoUnmute {
			continue
		}
		for _, ct := range contents {
			if in.Name != "" && (ct.Name != in.Name || in.Creator != "" && ct.Creator != in.Creator) {
				continue
			}
			if k := slices.Index(mediaKinds[:], mediaOf(ct)); k >= 0 {
				state[k] = in.Kind == jingle.InfoMute
			}
		}
	}
	changed := state != c.peerMuted
	c.peerMuted = state
	c.mu.Unlock()
	if changed {
		c.update(func(in *CallInfo) { in.PeerMuted = mutedNames(state) })
	}
}
