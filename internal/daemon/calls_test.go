package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/policy"
)

func mustPattern(t *testing.T, s string) policy.PeerPattern {
	t.Helper()
	p, err := policy.ParsePeerPattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	k, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAutoAnswer: the first rule whose pattern and minimum trust fit
// answers, with the media the call offers; no fitting rule lets it ring.
func TestAutoAnswer(t *testing.T) {
	b, _ := offlineBackend(t)
	if b.answerer(nil) != nil {
		t.Fatal("an answerer without rules")
	}
	// bob is verified, carol pinned on first use, dave's key changed,
	// erin distrusted, frank unknown.
	bob, carol, dave, erin := newKey(t), newKey(t), newKey(t), newKey(t)
	for j, k := range map[string]ed25519.PublicKey{"bob@example.test": bob, "carol@example.test": carol, "dave@example.test": dave, "erin@example.test": erin} {
		if _, _, err := b.trust.Observe(j, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.trust.Verify("bob@example.test", bob, "sas"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.trust.Observe("dave@example.test", newKey(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.trust.Distrust("erin@example.test"); err != nil {
		t.Fatal(err)
	}
	answer := b.answerer([]autoAnswer{
		{peer: mustPattern(t, "bob@example.test"), minTrust: "verified", audioFile: "/a.ogg", videoFile: "/v.ivf", recordDir: "/rec"},
		{peer: mustPattern(t, "*@example.test"), minTrust: "tofu", audioFile: "/b.ogg"},
	})
	for _, tc := range []struct {
		peer   string
		media  []string
		answer bool
		want   gateway.CallMedia
	}{
		{"bob@example.test", []string{"audio", "video"}, true, gateway.CallMedia{Audio: true, Video: true, AudioFile: "/a.ogg", VideoFile: "/v.ivf", RecordDir: "/rec"}},
		{"bob@example.test", []string{"audio"}, true, gateway.CallMedia{Audio: true, AudioFile: "/a.ogg", RecordDir: "/rec"}},
		{"carol@example.test", []string{"audio", "video"}, true, gateway.CallMedia{Audio: true, Video: true, AudioFile: "/b.ogg"}},
		{"carol@example.test", []string{"video"}, true, gateway.CallMedia{Video: true}},
		{"dave@example.test", []string{"audio"}, false, gateway.CallMedia{}},
		{"erin@example.test", []string{"audio"}, false, gateway.CallMedia{}},
		{"frank@example.test", []string{"audio"}, false, gateway.CallMedia{}},
		{"bob@example.org", []string{"audio"}, false, gateway.CallMedia{}},
	} {
		m, ok := answer(gateway.CallInfo{ID: "c", Direction: gateway.CallIncoming, Peer: tc.peer, Media: tc.media, State: gateway.CallRinging})
		if ok != tc.answer || m != tc.want {
			t.Errorf("%s %v: answer %v %+v, want %v %+v", tc.peer, tc.media, ok, m, tc.answer, tc.want)
		}
	}
}

func TestMapCallErr(t *testing.T) {
	for _, tc := range []struct {
		err, want error
	}{
		{gateway.ErrUnknownCall, api.ErrNotFound},
		{gateway.ErrCallRefused, api.ErrPolicyRefused},
		{gateway.ErrCallRefused, api.ErrForbidden},
		{gateway.ErrPeerNotCertified, api.ErrConflict},
		{gateway.ErrDeviceNotCertified, api.ErrConflict},
		{gateway.ErrNoE2E, api.ErrConflict},
		{gateway.ErrCallState, api.ErrConflict},
		{gateway.ErrTooManyCalls, api.ErrConflict},
		{gateway.ErrNoMedia, api.ErrInvalid},
		{gateway.ErrOffline, api.ErrUnavailable},
		{context.DeadlineExceeded, api.ErrTimeout},
	} {
		if got := mapCallErr(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestCallsOffline: the call endpoints of a daemon that is not connected
// answer with the class of the problem.
func TestCallsOffline(t *testing.T) {
	b, _ := offlineBackend(t)
	ctx := context.Background()
	if _, err := b.PlaceCall(ctx, "bob@example.test", api.CallOptions{Audio: true}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("place offline: %v", err)
	}
	if _, err := b.Call("nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown call: %v", err)
	}
	for _, f := range []func() error{
		func() error { _, err := b.AnswerCall(ctx, "nope", api.CallOptions{Audio: true}); return err },
		func() error { _, err := b.DeclineCall(ctx, "nope"); return err },
		func() error { _, err := b.HangUp(ctx, "nope"); return err },
	} {
		if err := f(); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("action on an unknown call: %v", err)
		}
	}
	if cs, err := b.Calls(); err != nil || cs == nil || len(cs) != 0 {
		t.Fatalf("calls %#v %v", cs, err)
	}
}
