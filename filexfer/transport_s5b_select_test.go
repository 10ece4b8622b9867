package filexfer

import (
	"errors"
	"strings"
	"testing"
)

func cand(cid string, prio uint32, typ string) S5BCandidate {
	return S5BCandidate{CID: cid, Host: "127.0.0.1", JID: "x@example.test/r", Port: 1, Priority: prio, Type: typ}
}

// TestS5BNominationRule walks XEP-0260 §2.4's four cases from both
// sides: the two parties always nominate the same candidate.
func TestS5BNominationRule(t *testing.T) {
	// Candidates of the initiator (i*) and of the responder (r*).
	ini := []S5BCandidate{cand("i-hi", 126<<16|2, S5BDirect), cand("i-lo", 126<<16|1, S5BDirect), cand("i-proxy", 10<<16, S5BProxy)}
	res := []S5BCandidate{cand("r-hi", 126<<16|2, S5BDirect), cand("r-lo", 126<<16|1, S5BDirect), cand("r-proxy", 10<<16, S5BProxy)}
	type report = string // a cid, or "" for candidate-error
	for _, tc := range []struct {
		name string
		// iUsed is the initiator's report (a responder candidate),
		// rUsed the responder's (an initiator candidate).
		iUsed, rUsed report
		want         string // nominated cid, "" for failure
		state        S5BState
	}{
		{"both errors", "", "", "", S5BFailed},
		{"only initiator connected", "r-lo", "", "r-lo", S5BReady},
		{"only responder connected", "", "i-lo", "i-lo", S5BReady},
		{"higher priority wins (responder's pick)", "r-lo", "i-hi", "i-hi", S5BReady},
		{"higher priority wins (initiator's pick)", "r-hi", "i-lo", "r-hi", S5BReady},
		{"tie: the initiator's choice", "r-hi", "i-hi", "r-hi", S5BReady},
		{"tie low: the initiator's choice", "r-lo", "i-lo", "r-lo", S5BReady},
		{"direct beats proxy", "r-proxy", "i-lo", "i-lo", S5BReady},
		{"proxy only", "r-proxy", "", "r-proxy", 0},
		{"proxy tie", "r-proxy", "i-proxy", "r-proxy", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, initiator := range []bool{true, false} {
				local, remote := ini, res
				mine, theirs := tc.iUsed, tc.rUsed
				if !initiator {
					local, remote = res, ini
					mine, theirs = tc.rUsed, tc.iUsed
				}
				n := NewS5BNomination(initiator, local, remote)
				if n.State() != S5BPending {
					t.Fatalf("new nomination in state %s", n.State())
				}
				// Reports in both orders give the same result.
				for order := 0; order < 2; order++ {
					n = NewS5BNomination(initiator, local, remote)
					steps := []func() error{
						func() error {
							if mine == "" {
								return n.LocalError()
							}
							return n.LocalUsed(mine)
						},
						func() error {
							if theirs == "" {
								return n.RemoteError()
							}
							return n.RemoteUsed(theirs)
						},
					}
					if order == 1 {
						steps[0], steps[1] = steps[1], steps[0]
					}
					if err := steps[0](); err != nil {
						t.Fatal(err)
					}
					if n.State() != S5BPending {
						t.Fatalf("state %s after one report", n.State())
					}
					if err := steps[1](); err != nil {
						t.Fatal(err)
					}
					c, ours, ok := n.Nominated()
					if tc.want == "" {
						if ok || n.State() != S5BFailed {
							t.Fatalf("initiator=%v: nominated %q (state %s), want failure", initiator, c.CID, n.State())
						}
						continue
					}
					if !ok || c.CID != tc.want {
						t.Fatalf("initiator=%v order=%d: nominated %q, %v; want %q", initiator, order, c.CID, ok, tc.want)
					}
					// ours: the nominated candidate is one we offered.
					wantOurs := strings.HasPrefix(tc.want, "i-") == initiator
					if ours != wantOurs {
						t.Fatalf("initiator=%v: ours = %v", initiator, ours)
					}
					want := tc.state
					if c.Type == S5BProxy {
						want = S5BAwaitActivation
						if ours {
							want = S5BMustActivate
						}
					}
					if n.State() != want {
						t.Fatalf("initiator=%v: state %s, want %s", initiator, n.State(), want)
					}
				}
			}
		})
	}
}

func TestS5BNominationActivation(t *testing.T) {
	ini := []S5BCandidate{cand("i-proxy", 10<<16, S5BProxy)}
	res := []S5BCandidate{cand("r-direct", 126<<16, S5BDirect)}

	// We (initiator) offered the proxy and the responder used it: we
	// activate.
	n := NewS5BNomination(true, ini, res)
	mustOK(t, n.LocalError(), n.RemoteUsed("i-proxy"))
	if n.State() != S5BMustActivate {
		t.Fatalf("state %s", n.State())
	}
	if err := n.RemoteActivated("i-proxy"); !errors.Is(err, ErrS5BNegotiation) {
		t.Fatalf("peer activating our proxy: %v", err)
	}
	mustOK(t, n.LocalActivated())
	if n.State() != S5BReady {
		t.Fatalf("state %s", n.State())
	}

	// The responder's view: it waits for <activated/> naming the proxy.
	r := NewS5BNomination(false, res, ini)
	mustOK(t, r.LocalUsed("i-proxy"), r.RemoteError())
	if r.State() != S5BAwaitActivation {
		t.Fatalf("state %s", r.State())
	}
	if err := r.LocalActivated(); !errors.Is(err, ErrS5BNegotiation) {
		t.Fatalf("activating the peer's proxy: %v", err)
	}
	if err := r.RemoteActivated("r-direct"); !errors.Is(err, ErrS5BNegotiation) {
		t.Fatalf("activated naming another candidate: %v", err)
	}
	mustOK(t, r.RemoteActivated("i-proxy"))
	if r.State() != S5BReady {
		t.Fatalf("state %s", r.State())
	}

	// A proxy-error ends it.
	r = NewS5BNomination(false, res, ini)
	mustOK(t, r.LocalUsed("i-proxy"), r.RemoteError(), r.ProxyError())
	if r.State() != S5BFailed {
		t.Fatalf("state %s", r.State())
	}
	if _, _, ok := r.Nominated(); ok {
		t.Fatal("failed negotiation still nominates")
	}
}

func TestS5BNominationOutOfOrder(t *testing.T) {
	ini := []S5BCandidate{cand("i1", 126<<16, S5BDirect)}
	res := []S5BCandidate{cand("r1", 126<<16, S5BDirect)}
	n := NewS5BNomination(true, ini, res)
	for name, err := range map[string]error{
		"used unknown remote":   n.LocalUsed("i1"), // our own candidate, not the peer's
		"peer names its own":    n.RemoteUsed("r1"),
		"activated too early":   n.RemoteActivated("r1"),
		"proxy-error, no proxy": n.ProxyError(),
		"local activate":        n.LocalActivated(),
	} {
		if !errors.Is(err, ErrS5BNegotiation) {
			t.Errorf("%s: %v, want ErrS5BNegotiation", name, err)
		}
	}
	mustOK(t, n.LocalUsed("r1"), n.RemoteUsed("i1"))
	for name, err := range map[string]error{
		"second local used":    n.LocalUsed("r1"),
		"second local error":   n.LocalError(),
		"second remote used":   n.RemoteUsed("i1"),
		"second remote error":  n.RemoteError(),
		"activated for direct": n.RemoteActivated("r1"),
		"proxy-error, direct":  n.ProxyError(),
	} {
		if !errors.Is(err, ErrS5BNegotiation) {
			t.Errorf("%s: %v, want ErrS5BNegotiation", name, err)
		}
	}
	if n.State() != S5BReady {
		t.Fatalf("state changed to %s by refused reports", n.State())
	}
}

func TestS5BWorthTrying(t *testing.T) {
	ini := []S5BCandidate{cand("i-hi", 126<<16|9, S5BDirect)}
	res := []S5BCandidate{cand("r-hi", 126<<16|10, S5BDirect), cand("r-eq", 126<<16|9, S5BDirect), cand("r-proxy", 10<<16, S5BProxy)}
	n := NewS5BNomination(true, ini, res)
	for _, c := range res {
		if !n.WorthTrying(c) {
			t.Fatalf("%s not worth trying before any report", c.CID)
		}
	}
	mustOK(t, n.RemoteUsed("i-hi"))
	for _, c := range res {
		if got, want := n.WorthTrying(c), c.CID == "r-hi"; got != want {
			t.Errorf("WorthTrying(%s) = %v after the peer used priority %d", c.CID, got, ini[0].Priority)
		}
	}
	mustOK(t, n.LocalError())
	if n.WorthTrying(res[0]) {
		t.Error("worth trying after our own report")
	}
}

func TestS5BStateString(t *testing.T) {
	if S5BAwaitActivation.String() != "await-activation" || S5BState(99).String() != "S5BState(99)" {
		t.Fatal(S5BAwaitActivation.String(), S5BState(99).String())
	}
}

func mustOK(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
