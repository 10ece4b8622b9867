package daemon_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// TestRegressSASSameOnBothEnds is finding 7 of the first review: "the two
// ends show different SAS codes before confirmation". The SAS names the
// two accounts (bare JIDs and account keys), not a session, so both
// daemons show the same string before any message, after the first one
// and before the reply, and after the reply.
func TestRegressSASSameOnBothEnds(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	sixGroups := regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){5}$`) // docs/protocol.md §9.7

	var first string
	same := func(when string, sessions int) {
		t.Helper()
		va, err := alice.Client.Verify(ctx, env.Bob.JID)
		if err != nil {
			t.Fatal(err)
		}
		vb, err := bob.Client.Verify(ctx, env.Alice.JID)
		if err != nil {
			t.Fatal(err)
		}
		if !sixGroups.MatchString(va.SAS) || va.SAS != vb.SAS {
			t.Fatalf("%s: alice shows the SAS %q, bob %q", when, va.SAS, vb.SAS)
		}
		if len(va.Devices) != sessions || len(vb.Devices) != sessions {
			t.Fatalf("%s: sessions alice %+v, bob %+v, want %d each", when, va.Devices, vb.Devices, sessions)
		}
		if first == "" {
			first = va.SAS
		} else if va.SAS != first {
			t.Fatalf("%s: the SAS changed from %q to %q", when, first, va.SAS)
		}
	}
	same("before any message", 0)

	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	if err := alice.Client.SendChat(ctx, env.Bob.JID, "hello bob"); err != nil {
		t.Fatal(err)
	}
	nextChat(t, bobEvents, "hello bob")
	same("after the first message, before the reply", 1)

	if err := bob.Client.SendChat(ctx, env.Alice.JID, "hi alice"); err != nil {
		t.Fatal(err)
	}
	nextChat(t, aliceEvents, "hi alice")
	same("after the reply", 1)

	// Our own account has no SAS.
	if v, err := alice.Client.Verify(ctx, env.Alice.JID); err != nil || v.SAS != "" {
		t.Fatalf("own account: SAS %q, %v", v.SAS, err)
	}
}
