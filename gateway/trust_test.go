package gateway

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/policy"
)

// TestRegressDistrustAlertSaysDistrusted is finding 7: after the user
// distrusted a contact, a refused bundle of that contact was reported as
// "presents a different identity key" and the alert's trust fact was
// key-changed. It must say distrusted, and the policy must see distrusted.
func TestRegressDistrustAlertSaysDistrusted(t *testing.T) {
	_, a, _ := pair(t)
	bob := jid.MustParse("bob@" + testDomain)
	rec, ev, err := a.cfg.Trust.Distrust(bob.String())
	if err != nil || rec.Level != trust.Distrusted || ev.Kind != trust.EventDistrusted {
		t.Fatalf("distrust: %+v %v %v", rec, ev.Kind, err)
	}
	// Bob's bundle comes again (a refetch, a new presence): it is refused
	// and reported through events and the policy, checked below.
	a.DiscoverBundles(context.Background(), bob)
	var sawEvent, sawAlert bool
	for !sawEvent || !sawAlert {
		ev := a.waitEvent(t, "distrusted event and alert", func(ev Event) bool {
			return ev.Kind == EventDistrusted || ev.Kind == EventKeyChanged || ev.Kind == EventAlert
		})
		switch ev.Kind {
		case EventKeyChanged:
			t.Fatalf("a distrusted contact reported as a key change: %+v", ev)
		case EventDistrusted:
			sawEvent = true
			if ev.From != bob.String() || !strings.Contains(ev.Detail, "you distrusted "+bob.String()+"'s account key") ||
				strings.Contains(ev.Detail, "changed") {
				t.Fatalf("distrusted event %+v", ev)
			}
		case EventAlert:
			sawAlert = true
			if ev.Alert == nil || ev.Alert.Facts.Trust != policy.TrustDistrusted || ev.Alert.Decision.Rule != "default-refuse-distrusted" ||
				strings.Contains(ev.Alert.Decision.Message, "changed") {
				t.Fatalf("alert %+v", ev.Alert)
			}
		}
	}
	// Every other decision about Bob sees the distrusted account too.
	if f := a.peerFacts(policy.KindChat, policy.DirectionIncoming, bob.String()); f.Trust != policy.TrustDistrusted {
		t.Fatalf("peer facts trust %v, want distrusted", f.Trust)
	}
	// Nothing is encrypted to a distrusted account.
	if _, err := a.targets(bob.String()); err != ErrNoE2E {
		t.Fatalf("targets of a distrusted account: %v, want ErrNoE2E", err)
	}
}

// TestTrustEventDetail checks the per-account wording of trust events.
func TestTrustEventDetail(t *testing.T) {
	s1, _ := identity.GenerateMemorySigner()
	s2, _ := identity.GenerateMemorySigner()
	k1, k2 := s1.PublicKey(), s2.PublicKey()
	for _, tc := range []struct {
		ev   trust.Event
		want []string
	}{
		{trust.Event{Kind: trust.EventFirstUse, JID: "bob@example.org", New: k1},
			[]string{"first contact with bob@example.org: account key pinned (TOFU)", identity.Fingerprint(k1)}},
		{trust.Event{Kind: trust.EventKeyChanged, JID: "bob@example.org", Old: k1, New: k2},
			[]string{"bob@example.org's account key changed", identity.Fingerprint(k1), identity.Fingerprint(k2)}},
		{trust.Event{Kind: trust.EventDistrusted, JID: "bob@example.org", Old: k1, New: k1},
			[]string{"you distrusted bob@example.org's account key", identity.Fingerprint(k1)}},
	} {
		got := TrustEventDetail(tc.ev)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%v: %q lacks %q", tc.ev.Kind, got, w)
			}
		}
		if strings.Contains(got, "device") {
			t.Errorf("%v: %q names a device: trust is per account", tc.ev.Kind, got)
		}
	}
}
