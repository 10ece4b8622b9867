package policy_test

import (
	"context"
	"fmt"
	"os"

	"github.com/securejingle/securejingle/policy"
)

func Example() {
	p, err := policy.Load([]byte(`
[[rule]]
name = "trust-colleagues"
peer = "*@corp.example"
kind = "chat"
protection = "cleartext"
action = "allow"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range []policy.Facts{
		{Kind: policy.KindChat, PeerJID: "ann@corp.example/desk", Protection: policy.ProtectionCleartext},
		{Kind: policy.KindChat, PeerJID: "bob@example.net", Protection: policy.ProtectionCleartext, SecuredSession: true},
		{Kind: policy.KindFileTransfer, PeerJID: "bob@example.net", Protection: policy.ProtectionCleartext},
	} {
		d := p.Decide(f)
		fmt.Println(d.Action, d.Severity, d.Rule)
	}
	// Output:
	// allow info trust-colleagues
	// refuse critical default-refuse-cleartext-downgrade
	// refuse critical default-refuse-cleartext-channels
}

func ExamplePolicy_Explain() {
	f := policy.Facts{Kind: policy.KindChat, Trust: policy.TrustTOFU, Protection: policy.ProtectionCleartext}
	for _, s := range policy.Default().Explain(f) {
		fmt.Printf("%d %s matched=%t", s.Index, s.Rule, s.Matched)
		for _, c := range s.Checks {
			if !c.OK {
				fmt.Printf(" [%s: want %s, got %s]", c.Field, c.Want, c.Got)
			}
		}
		fmt.Println()
	}
	// Output:
	// 0 default-refuse-key-changed matched=false [trust: want key-changed, got tofu]
	// 1 default-refuse-distrusted matched=false [trust: want distrusted, got tofu]
	// 2 default-refuse-cleartext-files matched=false [kind: want file-transfer, got chat] [secured_session: want true, got false]
	// 3 default-refuse-cleartext-channels matched=false [kind: want [media-call, file-transfer, bytestream, data-channel], got chat]
	// 4 default-refuse-unprotected-jingle matched=false [kind: want [media-call, file-transfer], got chat] [signaling: want unprotected, got unspecified] [peer_supports_e2e: want true, got false]
	// 5 default-flag-transport-only matched=false [protection: want transport-only, got cleartext]
	// 6 default-refuse-cleartext-downgrade matched=false [secured_session: want true, got false]
	// 7 default-flag-cleartext-no-session matched=true
}

func ExampleFormatUserMessage() {
	f := policy.Facts{Kind: policy.KindFileTransfer, Direction: policy.DirectionIncoming,
		PeerJID: "bob@example.net/phone", Protection: policy.ProtectionCleartext}
	a := policy.Alert{Facts: f, Decision: policy.Default().Decide(f), Count: 1}
	fmt.Println(policy.FormatUserMessage(a))
	// Output:
	// securejingle: refused a cleartext file transfer from bob@example.net (rule default-refuse-cleartext-channels). Ask your contact to enable encryption.
}

func ExampleNotifier() {
	var events policy.Broadcaster
	sub := events.Subscribe(16)
	n := policy.NewNotifier([]policy.Sink{&events})
	f := policy.Facts{Kind: policy.KindChat, PeerJID: "bob@example.net", Protection: policy.ProtectionCleartext}
	d := policy.Default().Decide(f)
	for range 5 {
		if err := n.Notify(context.Background(), f, d); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	n.Close(context.Background())
	sub.Close()
	for a := range sub.C {
		fmt.Println(a.Count, a.Summary)
	}
	// Output:
	// 1 false
	// 4 true
}
