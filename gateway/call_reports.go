package gateway

// RTCP reports across the relay of a local call (§14.7.9): the sender
// and receiver reports of the browser and of the remote leg's peer are
// forwarded end to end, with their SSRCs rewritten to each leg's, so
// that each end computes its round-trip time and loss over the whole
// path (browser → daemon → daemon → browser and back) instead of over
// its loopback leg. Both of the relay's peers send no reports of their
// own (rtcpeer.Config.RelayReports). What is forwarded is rebuilt from
// pion's parse, never copied: a sender report's timestamps (with the
// relay's own counts) for the one track the relay takes of that kind,
// and a report block about the one track the relay sends of that kind;
// nothing else (no SDES, BYE, APP, XR, profile extensions, blocks about
// other SSRCs).

import (
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/rtcpeer"
)

// rtpHeaderLen is the fixed RTP header (RFC 3550 §5.1), which a sender
// report's octet count leaves out.
const rtpHeaderLen = 12

// reportEvery bounds the reports relayed of each kind, type and
// direction (implementation constant): a peer sends one about every
// second per stream; one that floods them does not make the relay flood
// the other leg.
const reportEvery = 20 * time.Millisecond

// Report types (indices of localLeg.lastReport).
const (
	reportSR = iota // sender information
	reportRR        // a report block
)

// sourceFromLocal is the local leg's OnSourceRTCP: the browser's sender
// reports about its track ssrc go to the remote leg.
func (l *localLeg) sourceFromLocal(kind webrtc.RTPCodecType, ssrc uint32, pkts []rtcp.Packet) {
	l.relaySenderInfo(true, kind, ssrc, pkts)
}

// sourceFromRemote is the remote leg's OnSourceRTCP: its peer's sender
// reports about its track ssrc go to the browser.
func (l *localLeg) sourceFromRemote(kind webrtc.RTPCodecType, ssrc uint32, pkts []rtcp.Packet) {
	l.relaySenderInfo(false, kind, ssrc, pkts)
}

// relaySenderInfo forwards the timestamps of the first sender report in
// pkts about the track ssrc, if that is the track of its kind the relay
// forwards, to the other leg as a sender report of the relay's sender of
// that kind there, with the counts of what the relay forwarded on it;
// nothing while the local peer's medium of that kind is muted.
func (l *localLeg) relaySenderInfo(fromLocal bool, kind webrtc.RTPCodecType, ssrc uint32, pkts []rtcp.Packet) {
	k := kindIndex(kind)
	dir := 1 // l.fwd's direction
	if fromLocal {
		dir = 0
	}
	l.mu.Lock()
	src, out, muted := l.peerSSRC[k], l.peer, false
	if fromLocal {
		// A muted medium's sender reports stay here like its RTP: their
		// packet and octet counts follow what the page still sends.
		src, out, muted = l.localSSRC[k], l.remote, l.muted[k]
	}
	// The counts are what the relay sent on its sender, not what the
	// source says it sent: those include what was dropped (muted, before
	// the binding check, duplicates), and are the source's word.
	fwds := len(l.fwd[dir][k])
	var packets, octets uint64
	for _, f := range l.fwd[dir][k] {
		st := f.Stats()
		packets += st.Packets
		octets += st.Bytes - min(st.Bytes, rtpHeaderLen*st.Packets) // payload (no CSRCs on these legs)
	}
	l.mu.Unlock()
	if src == 0 || src != ssrc || out == nil || muted || fwds == 0 || !l.reportsOn() {
		return
	}
	for _, p := range pkts {
		sr, ok := p.(*rtcp.SenderReport)
		if !ok || sr.SSRC != ssrc {
			continue
		}
		own, ok := out.SenderSSRC(kind)
		if !ok || !l.reportDue(fromLocal, k, reportSR) {
			return
		}
		l.writeReport(out, &rtcp.SenderReport{SSRC: own, NTPTime: sr.NTPTime, RTPTime: sr.RTPTime,
			PacketCount: uint32(packets), OctetCount: uint32(octets)})
		return
	}
}

// relayReportBlock forwards the first report block in pkts (receiver or
// sender reports the peer of one leg sends about what the relay sends it
// of kind) to the other leg, about the track there that the relay takes
// that media from, as a receiver report from the relay's sender of that
// kind on that leg.
func (l *localLeg) relayReportBlock(fromLocal bool, kind webrtc.RTPCodecType, pkts []rtcp.Packet) {
	k := kindIndex(kind)
	l.mu.Lock()
	in, out, src := l.remote, l.peer, l.localSSRC[k]
	if fromLocal {
		in, out, src = l.peer, l.remote, l.peerSSRC[k]
	}
	l.mu.Unlock()
	if in == nil || out == nil || src == 0 || !l.reportsOn() {
		return
	}
	ours, ok := in.SenderSSRC(kind)
	if !ok {
		return
	}
	for _, p := range pkts {
		var blocks []rtcp.ReceptionReport
		switch r := p.(type) {
		case *rtcp.ReceiverReport:
			blocks = r.Reports
		case *rtcp.SenderReport:
			blocks = r.Reports
		}
		for _, b := range blocks {
			if b.SSRC != ours {
				continue
			}
			own, ok := out.SenderSSRC(kind)
			if !ok {
				own, ok = out.SenderSSRC(otherKind(kind))
			}
			if !ok || !l.reportDue(fromLocal, k, reportRR) {
				return
			}
			b.SSRC = src
			l.writeReport(out, &rtcp.ReceiverReport{SSRC: own, Reports: []rtcp.ReceptionReport{b}})
			return
		}
	}
}

func otherKind(k webrtc.RTPCodecType) webrtc.RTPCodecType {
	if k == webrtc.RTPCodecTypeVideo {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}

// reportsOn reports whether reports cross the relay: from the binding
// check of the remote leg (as media) until the relay is quiesced.
func (l *localLeg) reportsOn() bool {
	if l.quiet.Load() {
		return false
	}
	select {
	case <-l.relayOn:
		return true
	default:
		return false
	}
}

// reportDue reports whether a report of type typ and kind k may go
// from one leg to the other now (at most one per reportEvery), and if so
// counts it as sent.
func (l *localLeg) reportDue(fromLocal bool, k, typ int) bool {
	dir := 0
	if fromLocal {
		dir = 1
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastReport[dir][k][typ]) < reportEvery {
		return false
	}
	l.lastReport[dir][k][typ] = now
	return true
}

// writeReport sends the rebuilt report r to the peer of one leg.
func (l *localLeg) writeReport(p *rtcpeer.Peer, r rtcp.Packet) {
	if err := p.WriteRTCP([]rtcp.Packet{r}); err != nil {
		l.g.log.Debug("relay: RTCP report", "err", err)
	}
}
