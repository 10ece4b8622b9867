package policy

import (
	"fmt"
	"strings"
	"testing"
)

// hundredRuleConfig returns 90 user rules which, with the 9 defaults and the
// final catch-all, make a 100-rule policy. Most user rules constrain the
// peer, so matching exercises the pattern path, not only the bit masks.
func hundredRuleConfig() string {
	var b strings.Builder
	kinds := []string{"chat", "stanza", "media-call", "file-transfer", "data-channel", "bytestream"}
	for i := range 90 {
		fmt.Fprintf(&b, "[[rule]]\nname = \"user-%d\"\n", i)
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "peer = [\"user%d@example.org\", \"*@host%d.example\"]\n", i, i)
		case 1:
			fmt.Fprintf(&b, "peer = \"*.sub%d.example\"\nkind = [%q, %q]\n", i, kinds[i%6], kinds[(i+1)%6])
		case 2:
			fmt.Fprintf(&b, "kind = %q\ntrust = \"tofu\"\nprotection = \"transport-only\"\n", kinds[i%6])
		case 3:
			fmt.Fprintf(&b, "peer_device = [%d, %d]\nsecured_session = true\n", 1000+i, 2000+i)
		case 4:
			fmt.Fprintf(&b, "stanza_type = \"headline\"\npeer = \"user%d@example.net\"\n", i)
		}
		fmt.Fprintf(&b, "action = \"refuse\"\nmessage = \"rule %d\"\n\n", i)
	}
	return b.String()
}

func BenchmarkDecide100Rules(b *testing.B) {
	p, err := Load([]byte(hundredRuleConfig()))
	if err != nil {
		b.Fatal(err)
	}
	if n := len(p.Rules()); n != 100 {
		b.Fatalf("%d rules", n)
	}
	f := Facts{Kind: KindMediaCall, Direction: DirectionIncoming, PeerJID: "bob@example.net/phone",
		PeerDevice: 7, Trust: TrustVerified, Protection: ProtectionE2EBound, SecuredSession: true,
		OnRoster: true, PeerSupportsE2E: true, Signaling: SignalingProtected, StanzaType: "set"}
	if d := p.Decide(f); d.Rule != "default-allow-e2e-bound" || d.Index != 97 {
		b.Fatalf("%+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Decide(f)
	}
}

func BenchmarkDecideCatchAll100Rules(b *testing.B) {
	p, err := Load([]byte(hundredRuleConfig()))
	if err != nil {
		b.Fatal(err)
	}
	f := Facts{Kind: KindStanza, PeerJID: "bob@x.sub1.example.org/r", SecuredSession: true, StanzaType: "headline"}
	if d := p.Decide(f); d.Rule != "default-flag-unclassified" || d.Index != 99 {
		b.Fatalf("%+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Decide(f)
	}
}

func BenchmarkDecideDefault(b *testing.B) {
	p := Default()
	f := Facts{Kind: KindChat, PeerJID: "bob@example.net", Protection: ProtectionCleartext}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Decide(f)
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	p, err := Load([]byte(hundredRuleConfig()))
	if err != nil {
		t.Fatal(err)
	}
	f := Facts{Kind: KindMediaCall, PeerJID: "bob@example.net/phone", Protection: ProtectionE2EBound}
	if n := testing.AllocsPerRun(100, func() { _ = p.Decide(f) }); n != 0 {
		t.Fatalf("%v allocations per Decide", n)
	}
}
