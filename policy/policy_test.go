package policy

import (
	"errors"
	"testing"
)

func TestDefaultRules(t *testing.T) {
	p := Default()
	base := Facts{Direction: DirectionIncoming, PeerJID: "bob@example.net/phone", PeerDevice: 7,
		Trust: TrustVerified, OnRoster: true, PeerSupportsE2E: true}
	with := func(mod func(*Facts)) Facts { f := base; mod(&f); return f }
	tests := []struct {
		name     string
		f        Facts
		rule     string
		action   Action
		severity Severity
	}{
		{"key changed beats e2e-bound", with(func(f *Facts) {
			f.Kind, f.Trust, f.Protection, f.Signaling = KindMediaCall, TrustKeyChanged, ProtectionE2EBound, SignalingProtected
		}), "default-refuse-key-changed", ActionRefuse, SeverityCritical},
		{"key changed chat", with(func(f *Facts) { f.Kind, f.Trust, f.Protection = KindChat, TrustKeyChanged, ProtectionCleartext }),
			"default-refuse-key-changed", ActionRefuse, SeverityCritical},
		{"distrusted chat", with(func(f *Facts) { f.Kind, f.Trust, f.Protection = KindChat, TrustDistrusted, ProtectionE2EUnverified }),
			"default-refuse-distrusted", ActionRefuse, SeverityCritical},
		{"cleartext call", with(func(f *Facts) {
			f.Kind, f.Protection, f.Signaling = KindMediaCall, ProtectionCleartext, SignalingProtected
		}),
			"default-refuse-cleartext-channels", ActionRefuse, SeverityCritical},
		{"cleartext file", with(func(f *Facts) { f.Kind, f.Protection = KindFileTransfer, ProtectionCleartext }),
			"default-refuse-cleartext-channels", ActionRefuse, SeverityCritical},
		{"cleartext file in a secured session", with(func(f *Facts) {
			f.Kind, f.Protection, f.Signaling, f.SecuredSession = KindFileTransfer, ProtectionCleartext, SignalingProtected, true
		}), "default-refuse-cleartext-files", ActionRefuse, SeverityCritical},
		{"cleartext call in a secured session", with(func(f *Facts) {
			f.Kind, f.Protection, f.SecuredSession = KindMediaCall, ProtectionCleartext, true
		}), "default-refuse-cleartext-channels", ActionRefuse, SeverityCritical},
		{"e2e-bound file in a secured session", with(func(f *Facts) {
			f.Kind, f.Protection, f.Signaling, f.SecuredSession = KindFileTransfer, ProtectionE2EBound, SignalingProtected, true
		}), "default-allow-e2e-bound", ActionAllow, SeverityInfo},
		{"cleartext bytestream", with(func(f *Facts) { f.Kind, f.Protection = KindBytestream, ProtectionCleartext }),
			"default-refuse-cleartext-channels", ActionRefuse, SeverityCritical},
		{"cleartext data channel outgoing", with(func(f *Facts) {
			f.Kind, f.Protection, f.Direction = KindDataChannel, ProtectionCleartext, DirectionOutgoing
		}), "default-refuse-cleartext-channels", ActionRefuse, SeverityCritical},
		{"unprotected jingle, peer supports e2e", with(func(f *Facts) {
			f.Kind, f.Protection, f.Signaling = KindMediaCall, ProtectionE2EBound, SignalingUnprotected
		}), "default-refuse-unprotected-jingle", ActionRefuse, SeverityCritical},
		{"unprotected file transfer signaling", with(func(f *Facts) {
			f.Kind, f.Protection, f.Signaling = KindFileTransfer, ProtectionTransportOnly, SignalingUnprotected
		}), "default-refuse-unprotected-jingle", ActionRefuse, SeverityCritical},
		{"unprotected jingle, legacy peer: transport-only flagged", with(func(f *Facts) {
			f.Kind, f.Protection, f.Signaling, f.PeerSupportsE2E = KindMediaCall, ProtectionTransportOnly, SignalingUnprotected, false
		}), "default-flag-transport-only", ActionFlag, SeverityWarning},
		{"transport-only data channel", with(func(f *Facts) {
			f.Kind, f.Protection, f.Signaling = KindDataChannel, ProtectionTransportOnly, SignalingProtected
		}), "default-flag-transport-only", ActionFlag, SeverityWarning},
		{"cleartext chat downgrade refused (TestRegressCleartextWithSessionRefused)", with(func(f *Facts) {
			f.Kind, f.Protection, f.SecuredSession, f.StanzaType = KindChat, ProtectionCleartext, true, "chat"
		}), "default-refuse-cleartext-downgrade", ActionRefuse, SeverityCritical},
		{"cleartext chat, no session", with(func(f *Facts) { f.Kind, f.Protection, f.Trust = KindChat, ProtectionCleartext, TrustUnknown }),
			"default-flag-cleartext-no-session", ActionFlag, SeverityInfo},
		{"cleartext chat, no session, not on roster", with(func(f *Facts) {
			f.Kind, f.Protection, f.OnRoster, f.PeerSupportsE2E = KindChat, ProtectionCleartext, false, false
		}), "default-flag-cleartext-no-session", ActionFlag, SeverityInfo},
		{"e2e-bound chat", with(func(f *Facts) { f.Kind, f.Protection, f.SecuredSession = KindChat, ProtectionE2EBound, true }),
			"default-allow-e2e-bound", ActionAllow, SeverityInfo},
		{"e2e-bound tofu call", with(func(f *Facts) {
			f.Kind, f.Protection, f.Trust, f.Signaling = KindMediaCall, ProtectionE2EBound, TrustTOFU, SignalingProtected
		}), "default-allow-e2e-bound", ActionAllow, SeverityInfo},
		{"e2e-bound call from a stranger never rings", with(func(f *Facts) {
			f.Kind, f.Direction, f.Protection, f.Signaling, f.OnRoster = KindMediaCall, DirectionIncoming, ProtectionE2EBound, SignalingProtected, false
		}), "default-refuse-stranger-calls", ActionRefuse, SeverityWarning},
		{"e2e-bound call to a stranger (outgoing) is the user's choice", with(func(f *Facts) {
			f.Kind, f.Direction, f.Protection, f.Signaling, f.OnRoster = KindMediaCall, DirectionOutgoing, ProtectionE2EBound, SignalingProtected, false
		}), "default-allow-e2e-bound", ActionAllow, SeverityInfo},
		{"e2e-bound stanza", with(func(f *Facts) { f.Kind, f.Protection, f.Signaling = KindStanza, ProtectionE2EBound, SignalingNone }),
			"default-allow-e2e-bound", ActionAllow, SeverityInfo},
		{"e2e-unverified chat", with(func(f *Facts) { f.Kind, f.Protection, f.Trust = KindChat, ProtectionE2EUnverified, TrustTOFU }),
			"default-flag-e2e-unverified", ActionFlag, SeverityInfo},
		{"cleartext stanza falls to catch-all", with(func(f *Facts) { f.Kind, f.Protection = KindStanza, ProtectionCleartext }),
			"default-flag-unclassified", ActionFlag, SeverityWarning},
		{"zero facts", Facts{}, "default-flag-unclassified", ActionFlag, SeverityWarning},
		{"out-of-range enums", Facts{Kind: 99, Protection: 99, Trust: 99, Direction: 99, Signaling: 99},
			"default-flag-unclassified", ActionFlag, SeverityWarning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.f)
			if d.Rule != tt.rule || d.Action != tt.action || d.Severity != tt.severity {
				t.Fatalf("Decide = %+v, want rule %s action %v severity %v", d, tt.rule, tt.action, tt.severity)
			}
			steps := p.Explain(tt.f)
			last := steps[len(steps)-1]
			if !last.Matched || last.Rule != tt.rule || last.Index != d.Index {
				t.Fatalf("Explain ends with %+v, Decide chose %+v", last, d)
			}
			for _, s := range steps[:len(steps)-1] {
				if s.Matched {
					t.Fatalf("Explain: earlier step %s marked matched", s.Rule)
				}
				failed := false
				for _, c := range s.Checks {
					failed = failed || !c.OK
				}
				if !failed {
					t.Fatalf("Explain: step %s did not match but no check failed: %+v", s.Rule, s.Checks)
				}
			}
		})
	}
	// Every default rule is exercised above.
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.rule] = true
	}
	for _, r := range defaultRules {
		if !covered[r.Name] {
			t.Errorf("default rule %s not covered", r.Name)
		}
	}
}

func TestDefaultConfigTOMLMatchesBuiltin(t *testing.T) {
	p, err := Load([]byte(DefaultConfigTOML))
	if err != nil {
		t.Fatal(err)
	}
	got, want := p.Rules(), Default().Rules()
	if len(got) != len(want) {
		t.Fatalf("%d rules, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Name != want[i].Name || got[i].Action != want[i].Action || got[i].Severity != want[i].Severity {
			t.Errorf("rule %d: %s/%v/%v, want %s/%v/%v", i, got[i].Name, got[i].Action, got[i].Severity,
				want[i].Name, want[i].Action, want[i].Severity)
		}
	}
}

// TestFactDimensions checks every fact dimension through user rules placed
// before the defaults.
func TestFactDimensions(t *testing.T) {
	cfg := `
[[rule]]
name = "dir"
direction = "outgoing"
kind = "bytestream"
action = "allow"

[[rule]]
name = "exact-peer"
peer = ["Alice@Example.NET", "carol@example.org"]
kind = "chat"
action = "refuse"
message = "blocked {peer} ({kind}, {direction}, {trust}, {protection}, {signaling}, dev {device}, {stanza_type}) by {rule}/{action}/{severity} {{x}"

[[rule]]
name = "domain"
peer = "*@corp.example"
kind = "chat"
action = "allow"

[[rule]]
name = "subdomain"
peer = "*.corp.example"
kind = "chat"
severity = "critical"
action = "flag"

[[rule]]
name = "device"
peer_device = [42, 4294967295]
action = "refuse"

[[rule]]
name = "trust"
trust = ["tofu", "unknown"]
kind = "data-channel"
action = "refuse"

[[rule]]
name = "signaling"
signaling = "none"
kind = "file-transfer"
action = "refuse"

[[rule]]
name = "stanza"
stanza_type = ["groupchat"]
action = "allow"

[[rule]]
name = "roster"
on_roster = false
kind = "stanza"
action = "refuse"

[[rule]]
name = "e2e-support"
peer_supports_e2e = false
secured_session = true
kind = "media-call"
action = "flag"

[[rule]]
name = "prot"
protection = ["e2e-unverified"]
kind = "media-call"
action = "refuse"

[[rule]]
name = "anyone"
peer = "*"
kind = "chat"
protection = "e2e-unverified"
action = "allow"
`
	p, err := Load([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	base := Facts{Direction: DirectionIncoming, Trust: TrustVerified, Protection: ProtectionE2EBound,
		OnRoster: true, PeerSupportsE2E: true, Signaling: SignalingProtected, PeerDevice: 1}
	with := func(mod func(*Facts)) Facts { f := base; mod(&f); return f }
	tests := []struct {
		name string
		f    Facts
		rule string
	}{
		{"direction outgoing", with(func(f *Facts) { f.Kind, f.Direction = KindBytestream, DirectionOutgoing }), "dir"},
		{"direction incoming", with(func(f *Facts) { f.Kind = KindBytestream }), "default-allow-e2e-bound"},
		{"exact peer, case folded, full JID", with(func(f *Facts) { f.Kind, f.PeerJID = KindChat, "alice@example.net/res" }), "exact-peer"},
		{"exact peer second", with(func(f *Facts) { f.Kind, f.PeerJID = KindChat, "carol@example.org" }), "exact-peer"},
		{"exact peer other local", with(func(f *Facts) { f.Kind, f.PeerJID = KindChat, "mallory@example.net" }), "default-allow-e2e-bound"},
		{"domain", with(func(f *Facts) { f.Kind, f.PeerJID = KindChat, "x@CORP.example./r" }), "domain"},
		{"domain JID itself", with(func(f *Facts) { f.Kind, f.PeerJID = KindChat, "corp.example" }), "domain"},
		{"subdomain", with(func(f *Facts) { f.Kind, f.PeerJID = KindChat, "x@muc.corp.example" }), "subdomain"},
		{"not a subdomain", with(func(f *Facts) { f.Kind, f.PeerJID = KindChat, "x@evilcorp.example" }), "default-allow-e2e-bound"},
		{"device", with(func(f *Facts) { f.Kind, f.PeerDevice = KindChat, 4294967295 }), "device"},
		{"trust", with(func(f *Facts) { f.Kind, f.Trust = KindDataChannel, TrustTOFU }), "trust"},
		{"trust verified", with(func(f *Facts) { f.Kind = KindDataChannel }), "default-allow-e2e-bound"},
		{"signaling", with(func(f *Facts) { f.Kind, f.Signaling = KindFileTransfer, SignalingNone }), "signaling"},
		{"stanza type", with(func(f *Facts) { f.Kind, f.StanzaType = KindStanza, "groupchat" }), "stanza"},
		{"on roster false", with(func(f *Facts) { f.Kind, f.OnRoster = KindStanza, false }), "roster"},
		{"on roster true", with(func(f *Facts) { f.Kind = KindStanza }), "default-allow-e2e-bound"},
		{"bools", with(func(f *Facts) { f.Kind, f.PeerSupportsE2E, f.SecuredSession = KindMediaCall, false, true }), "e2e-support"},
		{"bools secured false", with(func(f *Facts) { f.Kind, f.PeerSupportsE2E = KindMediaCall, false }), "default-allow-e2e-bound"},
		{"protection", with(func(f *Facts) { f.Kind, f.Protection = KindMediaCall, ProtectionE2EUnverified }), "prot"},
		{"star", with(func(f *Facts) { f.Kind, f.Protection, f.PeerJID = KindChat, ProtectionE2EUnverified, "" }), "anyone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.f)
			if d.Rule != tt.rule {
				t.Fatalf("rule %s, want %s (%+v)", d.Rule, tt.rule, p.Explain(tt.f))
			}
			if steps := p.Explain(tt.f); steps[len(steps)-1].Rule != tt.rule {
				t.Fatalf("Explain disagrees: %+v", steps[len(steps)-1])
			}
		})
	}
	d := p.Decide(Facts{Kind: KindChat, PeerJID: "alice@example.net/\u202eevil", Direction: DirectionOutgoing,
		Trust: TrustTOFU, Protection: ProtectionCleartext, Signaling: SignalingNone, PeerDevice: 9, StanzaType: "chat\n"})
	want := "blocked alice@example.net (chat, outgoing, tofu, cleartext, none, dev 9, chat\uFFFD) by exact-peer/refuse/critical {x}"
	if d.Message != want {
		t.Fatalf("message %q, want %q", d.Message, want)
	}
	if d.Severity != SeverityCritical || d.Index != 1 {
		t.Fatalf("decision %+v", d)
	}
}

func TestReplaceDefaults(t *testing.T) {
	p, err := Load([]byte("replace_defaults = true\n[[rule]]\nkind = \"chat\"\naction = \"allow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(Facts{Kind: KindChat, Protection: ProtectionCleartext}); d.Action != ActionAllow || d.Rule != "rule-1" {
		t.Fatalf("%+v", d)
	}
	// Without defaults, a cleartext call still does not pass silently.
	d := p.Decide(Facts{Kind: KindMediaCall, Protection: ProtectionCleartext})
	if d.Action != ActionFlag || d.Rule != catchAllName || d.Index != 1 {
		t.Fatalf("%+v", d)
	}
}

func TestCompileRejectsProgrammaticMistakes(t *testing.T) {
	for _, r := range []Rule{
		{Name: "a"},
		{Name: "b", Action: 9},
		{Name: "c", Action: ActionFlag, Severity: 9},
		{Name: "d", Action: ActionFlag, Match: Match{Kind: []Kind{0}}},
		{Name: "e", Action: ActionFlag, Match: Match{Peer: []string{"a@b/c"}}},
		{Name: "f", Action: ActionFlag, Message: "{nope}"},
	} {
		_, err := Compile(&Config{Rules: []Rule{r}})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Rule != 1 {
			t.Errorf("rule %s: err %v", r.Name, err)
		}
	}
	_, err := Compile(&Config{Rules: []Rule{{Name: "x", Action: ActionFlag}, {Name: "x", Action: ActionFlag}}})
	if !errors.Is(err, ErrInvalidValue) {
		t.Errorf("duplicate names: %v", err)
	}
}

func TestCompileCopiesInput(t *testing.T) {
	cfg := &Config{Rules: []Rule{{Name: "x", Action: ActionRefuse, Match: Match{Peer: []string{"a@b.c"}, StanzaType: []string{"chat"}}}}}
	p, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rules[0].Match.StanzaType[0] = "groupchat"
	if d := p.Decide(Facts{PeerJID: "a@b.c", StanzaType: "chat"}); d.Rule != "x" {
		t.Fatalf("%+v", d)
	}
}

func TestEnumRoundTrip(t *testing.T) {
	check := func(names []string, parse func(string) (string, error)) {
		for _, n := range names[1:] {
			got, err := parse(n)
			if err != nil || got != n {
				t.Errorf("%q -> %q, %v", n, got, err)
			}
		}
		if _, err := parse("bogus"); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("bogus accepted: %v", err)
		}
		if _, err := parse("unspecified"); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("unspecified accepted: %v", err)
		}
	}
	str := func(s fmtStringer, err error) (string, error) {
		if err != nil {
			return "", err
		}
		return s.String(), nil
	}
	check(kindNames, func(s string) (string, error) { return str(ParseKind(s)) })
	check(directionNames, func(s string) (string, error) { return str(ParseDirection(s)) })
	check(trustNames, func(s string) (string, error) { return str(ParseTrust(s)) })
	check(protectionNames, func(s string) (string, error) { return str(ParseProtection(s)) })
	check(signalingNames, func(s string) (string, error) { return str(ParseSignaling(s)) })
	check(actionNames, func(s string) (string, error) { return str(ParseAction(s)) })
	check(severityNames, func(s string) (string, error) { return str(ParseSeverity(s)) })
	if Kind(0).String() != "unspecified" || Kind(77).String() != "Kind(77)" {
		t.Error("String of zero/out of range")
	}
	if _, err := Kind(77).MarshalText(); !errors.Is(err, ErrInvalidValue) {
		t.Error("MarshalText out of range")
	}
}

type fmtStringer interface{ String() string }
