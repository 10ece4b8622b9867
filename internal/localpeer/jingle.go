package localpeer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/jingle"
)

// The stand-in as a plain Jingle endpoint: XEP-0167 RTP with XEP-0320
// DTLS-SRTP fingerprints and XEP-0176 ICE-UDP candidates in clear, as an
// unmodified client (Conversations, Dino, without their OMEMO
// fingerprint) speaks it; what gateway mode's tests use as a client.

// JingleOffer returns the stand-in's offer (every candidate gathered) as
// the contents and groups of a session-initiate.
func (p *Peer) JingleOffer(t testing.TB) ([]jingle.Content, []jingle.Group) {
	t.Helper()
	contents, groups, err := jingle.SDPToJingle(p.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	return contents, groups
}

// JingleAnswer answers the offer of session-initiate j (every candidate
// gathered) and returns the contents and groups of the session-accept.
func (p *Peer) JingleAnswer(t testing.TB, j *jingle.Jingle) ([]jingle.Content, []jingle.Group) {
	t.Helper()
	offer, err := jingle.JingleToSDP(j.Contents, j.Groups, 1)
	if err != nil {
		t.Fatal(err)
	}
	gathered := make(chan struct{})
	var once sync.Once
	p.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			once.Do(func() { close(gathered) })
		}
	})
	if _, err := p.AcceptOffer(context.Background(), offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(Wait):
		t.Fatal("localpeer: gathering did not end")
	}
	contents, groups, err := jingle.SDPToJingleAs(p.LocalDescription(), jingle.CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	return contents, groups
}

// JingleAnswered applies the answer of session-accept j to the
// stand-in's offer.
func (p *Peer) JingleAnswered(t testing.TB, j *jingle.Jingle) {
	t.Helper()
	answer, err := jingle.JingleToSDPAs(j.Contents, j.Groups, 2, jingle.CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
}
