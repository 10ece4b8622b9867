package jingle

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const (
	callID  = "8a3c1d2e-0b5a-4c4e-8d2a-1f0e9c8b7a6d"
	caller  = "romeo@example.org/orchard"
	callee  = "juliet@example.org"
	phone   = "juliet@example.org/phone"
	laptop  = "juliet@example.org/laptop"
	tablet  = "juliet@example.org/tablet"
	mallory = "mallory@example.org/x"
)

func jmi(k JMIKind) *JMI {
	m := &JMI{Kind: k, ID: callID}
	switch k {
	case JMIPropose:
		m.Descriptions = []Description{{Media: "audio"}}
	case JMIReject:
		m.Reason = &Reason{Condition: ReasonBusy}
	case JMIRetract:
		m.Reason = &Reason{Condition: ReasonCancel}
	case JMIFinish:
		m.Reason = &Reason{Condition: ReasonSuccess}
	}
	return m
}

type jstep struct {
	send bool   // we send (else receive from `from`)
	from string // sender of a received message
	kind JMIKind
}

func outgoing(t *testing.T) *Proposal {
	t.Helper()
	p, err := NewOutgoingProposal(caller, callee, jmi(JMIPropose), t0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func incoming(t *testing.T) *Proposal {
	t.Helper()
	p, err := NewIncomingProposal(phone, caller, jmi(JMIPropose), t0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func apply(p *Proposal, s jstep) (ProposalOutcome, error) {
	if s.send {
		return p.Send(jmi(s.kind))
	}
	return p.Receive(s.from, jmi(s.kind))
}

func TestProposalCaller(t *testing.T) {
	tests := []struct {
		name    string
		steps   []jstep
		wantErr error // of the last step
		want    ProposalState
		check   func(t *testing.T, o ProposalOutcome, p *Proposal)
	}{
		{"ringing", []jstep{{from: phone, kind: JMIRinging}}, nil, ProposalRinging, nil},
		{"first proceed wins", []jstep{{from: phone, kind: JMIRinging}, {from: laptop, kind: JMIRinging}, {from: tablet, kind: JMIRinging}, {from: laptop, kind: JMIProceed}},
			nil, ProposalProceeding, func(t *testing.T, o ProposalOutcome, p *Proposal) {
				if o.Winner != laptop || !slices.Equal(o.AnsweredElsewhere, []string{phone, tablet}) || p.Winner() != laptop {
					t.Errorf("outcome %+v", o)
				}
			}},
		{"proceed without ringing", []jstep{{from: phone, kind: JMIProceed}}, nil, ProposalProceeding, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if o.Winner != phone || len(o.AnsweredElsewhere) != 0 {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"later proceed answered elsewhere", []jstep{{from: phone, kind: JMIProceed}, {from: laptop, kind: JMIProceed}}, nil, ProposalProceeding, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if o.Winner != phone || !slices.Equal(o.AnsweredElsewhere, []string{laptop}) || o.Ignored {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"duplicate proceed", []jstep{{from: phone, kind: JMIProceed}, {from: phone, kind: JMIProceed}}, nil, ProposalProceeding, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.Ignored {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"ringing after proceed", []jstep{{from: phone, kind: JMIProceed}, {from: laptop, kind: JMIRinging}}, nil, ProposalProceeding, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.Ignored {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"reject", []jstep{{from: phone, kind: JMIRinging}, {from: laptop, kind: JMIReject}}, nil, ProposalRejected, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if o.Reason.Condition != ReasonBusy || p.Reason().Condition != ReasonBusy {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"reject by a loser after proceed", []jstep{{from: phone, kind: JMIProceed}, {from: laptop, kind: JMIReject}}, nil, ProposalProceeding, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.Ignored {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"reject by the winner", []jstep{{from: phone, kind: JMIProceed}, {from: phone, kind: JMIReject}}, nil, ProposalRejected, nil},
		{"accept copy", []jstep{{from: phone, kind: JMIAccept}}, nil, ProposalProposed, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.Ignored {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"retract", []jstep{{from: phone, kind: JMIRinging}, {send: true, kind: JMIRetract}}, nil, ProposalRetracted, nil},
		{"retract after proceed", []jstep{{from: phone, kind: JMIProceed}, {send: true, kind: JMIRetract}}, ErrJMIUnexpected, ProposalProceeding, nil},
		{"finish", []jstep{{from: phone, kind: JMIProceed}, {send: true, kind: JMIFinish}}, nil, ProposalFinished, nil},
		{"finish by winner", []jstep{{from: phone, kind: JMIProceed}, {from: phone, kind: JMIFinish}}, nil, ProposalFinished, nil},
		{"finish by loser", []jstep{{from: phone, kind: JMIProceed}, {from: laptop, kind: JMIFinish}}, ErrJMIUnexpected, ProposalProceeding, nil},
		{"finish before proceed", []jstep{{send: true, kind: JMIFinish}}, ErrJMIUnexpected, ProposalProposed, nil},
		{"proceed after retract", []jstep{{send: true, kind: JMIRetract}, {from: phone, kind: JMIProceed}}, ErrJMIUnexpected, ProposalRetracted, nil},
		{"proceed after finish", []jstep{{from: phone, kind: JMIProceed}, {send: true, kind: JMIFinish}, {from: laptop, kind: JMIProceed}}, nil, ProposalFinished, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !slices.Equal(o.AnsweredElsewhere, []string{laptop}) {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"retract from callee", []jstep{{from: phone, kind: JMIRetract}}, ErrJMIUnexpected, ProposalProposed, nil},
		{"caller sends proceed", []jstep{{send: true, kind: JMIProceed}}, ErrJMIUnexpected, ProposalProposed, nil},
		{"caller sends ringing", []jstep{{send: true, kind: JMIRinging}}, ErrJMIUnexpected, ProposalProposed, nil},
		{"stranger", []jstep{{from: mallory, kind: JMIProceed}}, ErrJMIWrongSender, ProposalProposed, nil},
		{"bare JID", []jstep{{from: callee, kind: JMIProceed}}, ErrJMIWrongSender, ProposalProposed, nil},
		{"own device", []jstep{{from: "romeo@example.org/laptop", kind: JMIProceed}}, ErrJMIWrongSender, ProposalProposed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := outgoing(t)
			var o ProposalOutcome
			var err error
			for n, s := range tc.steps {
				o, err = apply(p, s)
				if n < len(tc.steps)-1 && err != nil {
					t.Fatalf("step %d: %v", n, err)
				}
			}
			checkJMIErr(t, err, tc.wantErr)
			if p.State() != tc.want || o.State != tc.want {
				t.Fatalf("state %s (outcome %s), want %s", p.State(), o.State, tc.want)
			}
			if tc.check != nil {
				tc.check(t, o, p)
			}
		})
	}
}

func checkJMIErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	var je *JMIError
	if !errors.As(err, &je) || !errors.Is(err, want) || je.Error() == "" {
		t.Fatalf("got %v, want a *JMIError wrapping %v", err, want)
	}
}

func TestProposalCallee(t *testing.T) {
	tests := []struct {
		name    string
		steps   []jstep
		wantErr error
		want    ProposalState
		check   func(t *testing.T, o ProposalOutcome, p *Proposal)
	}{
		{"ring", []jstep{{send: true, kind: JMIRinging}}, nil, ProposalRinging, nil},
		{"ring twice", []jstep{{send: true, kind: JMIRinging}, {send: true, kind: JMIRinging}}, nil, ProposalRinging, nil},
		{"proceed", []jstep{{send: true, kind: JMIRinging}, {send: true, kind: JMIProceed}}, nil, ProposalProceeding, nil},
		{"accept then proceed", []jstep{{send: true, kind: JMIAccept}, {send: true, kind: JMIProceed}}, nil, ProposalProceeding, nil},
		{"reject", []jstep{{send: true, kind: JMIReject}}, nil, ProposalRejected, nil},
		{"reject after proceed", []jstep{{send: true, kind: JMIProceed}, {send: true, kind: JMIReject}}, ErrJMIUnexpected, ProposalProceeding, nil},
		{"retract by caller", []jstep{{send: true, kind: JMIRinging}, {from: caller, kind: JMIRetract}}, nil, ProposalRetracted, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.StopRinging || o.OtherDevice != "" || o.Reason.Condition != ReasonCancel {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"answered elsewhere", []jstep{{send: true, kind: JMIRinging}, {from: laptop, kind: JMIProceed}}, nil, ProposalAnsweredElsewhere, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.StopRinging || o.OtherDevice != laptop || p.Winner() != laptop {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"accepted elsewhere", []jstep{{from: tablet, kind: JMIAccept}}, nil, ProposalAnsweredElsewhere, nil},
		{"rejected elsewhere", []jstep{{send: true, kind: JMIRinging}, {from: laptop, kind: JMIReject}}, nil, ProposalRejected, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.StopRinging || o.OtherDevice != laptop {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"our proceed, then another device's", []jstep{{send: true, kind: JMIProceed}, {from: laptop, kind: JMIProceed}}, nil, ProposalProceeding, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.Ignored {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"proceed after answered elsewhere", []jstep{{from: laptop, kind: JMIProceed}, {send: true, kind: JMIProceed}}, ErrJMIUnexpected, ProposalAnsweredElsewhere, nil},
		{"finish", []jstep{{send: true, kind: JMIProceed}, {from: caller, kind: JMIFinish}}, nil, ProposalFinished, nil},
		{"send finish", []jstep{{send: true, kind: JMIProceed}, {send: true, kind: JMIFinish}}, nil, ProposalFinished, nil},
		{"finish while ringing", []jstep{{from: caller, kind: JMIFinish}}, ErrJMIUnexpected, ProposalProposed, nil},
		{"late retract", []jstep{{send: true, kind: JMIReject}, {from: caller, kind: JMIRetract}}, nil, ProposalRejected, func(t *testing.T, o ProposalOutcome, p *Proposal) {
			if !o.Ignored {
				t.Errorf("outcome %+v", o)
			}
		}},
		{"callee sends retract", []jstep{{send: true, kind: JMIRetract}}, ErrJMIUnexpected, ProposalProposed, nil},
		{"proceed from the caller", []jstep{{from: caller, kind: JMIProceed}}, ErrJMIUnexpected, ProposalProposed, nil},
		{"stranger", []jstep{{from: mallory, kind: JMIRetract}}, ErrJMIWrongSender, ProposalProposed, nil},
		{"other caller device", []jstep{{from: "romeo@example.org/laptop", kind: JMIRetract}}, ErrJMIWrongSender, ProposalProposed, nil},
		{"own device rings", []jstep{{from: laptop, kind: JMIRinging}}, nil, ProposalProposed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := incoming(t)
			var o ProposalOutcome
			var err error
			for n, s := range tc.steps {
				o, err = apply(p, s)
				if n < len(tc.steps)-1 && err != nil {
					t.Fatalf("step %d: %v", n, err)
				}
			}
			checkJMIErr(t, err, tc.wantErr)
			if p.State() != tc.want {
				t.Fatalf("state %s, want %s", p.State(), tc.want)
			}
			if tc.check != nil {
				tc.check(t, o, p)
			}
		})
	}
}

func TestProposalMisc(t *testing.T) {
	p := outgoing(t)
	other := &JMI{Kind: JMIProceed, ID: "other"}
	if _, err := p.Receive(phone, other); !errors.Is(err, ErrJMIWrongSender) {
		t.Errorf("other id: %v", err)
	}
	if _, err := p.Send(&JMI{Kind: JMIRetract, ID: "other"}); !errors.Is(err, ErrJMIWrongSender) {
		t.Errorf("send other id: %v", err)
	}
	if _, err := NewOutgoingProposal(caller, callee, jmi(JMIProceed), t0); err == nil {
		t.Error("a proposal from a proceed")
	}
	if _, err := NewOutgoingProposal(caller, callee, jmi(JMIPropose), t0, WithRingTimeout(-time.Second)); err == nil {
		t.Error("negative ring timeout")
	}
	if p.ID() != callID || !p.Caller() || incoming(t).Caller() {
		t.Error("accessors")
	}
	// Ringing devices are bounded.
	for n := 0; n < 2*MaxProposalDevices; n++ {
		if _, err := p.Receive(callee+"/d"+string(rune('a'+n%26))+string(rune('a'+n/26)), jmi(JMIRinging)); err != nil {
			t.Fatal(err)
		}
	}
	o, err := p.Receive(phone, jmi(JMIProceed))
	if err != nil || len(o.AnsweredElsewhere) != MaxProposalDevices {
		t.Errorf("answered elsewhere %d, %v", len(o.AnsweredElsewhere), err)
	}
}

func TestProposalExpired(t *testing.T) {
	for _, p := range []*Proposal{outgoing(t), incoming(t)} {
		if _, ok := p.Expired(t0.Add(DefaultRingTimeout - time.Nanosecond)); ok {
			t.Error("expired early")
		}
		if c, ok := p.Expired(t0.Add(DefaultRingTimeout)); !ok || c != ReasonTimeout {
			t.Error("not expired")
		}
	}
	p := outgoing(t)
	if _, err := p.Receive(phone, jmi(JMIProceed)); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Expired(t0.Add(time.Hour)); ok {
		t.Error("a proceeding proposal expired")
	}
	q, err := NewIncomingProposal(phone, caller, jmi(JMIPropose), t0, WithRingTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Expired(t0.Add(10 * time.Second)); !ok {
		t.Error("custom ring timeout ignored")
	}
	q.End(ReasonTimeout)
	if q.State() != ProposalRejected || q.Reason().Condition != ReasonTimeout {
		t.Errorf("callee End: %s %+v", q.State(), q.Reason())
	}
	r := outgoing(t)
	r.End(ReasonTimeout)
	if r.State() != ProposalRetracted {
		t.Errorf("caller End: %s", r.State())
	}
	r.End(ReasonSuccess)
	if r.Reason().Condition != ReasonTimeout {
		t.Error("End changed a terminal proposal")
	}
}

func TestProposalTieBreak(t *testing.T) {
	mk := func(id string, local, peer string) *Proposal {
		p, err := NewOutgoingProposal(local, peer, &JMI{Kind: JMIPropose, ID: id, Descriptions: []Description{{Media: "audio"}}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	theirs := func(id string) *JMI {
		return &JMI{Kind: JMIPropose, ID: id, Descriptions: []Description{{Media: "audio"}}}
	}

	p := mk("a", caller, callee)
	res, msg := p.TieBreak(phone, theirs("b"))
	if res != TieBreakOurs || msg.Kind != JMIReject || msg.ID != "b" || !msg.TieBreak || msg.Reason.Condition != ReasonExpired || p.State() != ProposalProposed {
		t.Fatalf("ours lower: %s %+v %s", res, msg, p.State())
	}
	p = mk("b", caller, callee)
	res, msg = p.TieBreak(phone, theirs("a"))
	if res != TieBreakTheirs || msg.Kind != JMIRetract || msg.ID != "b" || !msg.TieBreak || msg.Reason.Condition != ReasonExpired || p.State() != ProposalRetracted {
		t.Fatalf("theirs lower: %s %+v %s", res, msg, p.State())
	}
	// Equal ids: the lower JID's wins. juliet < romeo.
	p = mk("x", phone, "romeo@example.org")
	if res, _ := p.TieBreak(caller, theirs("x")); res != TieBreakOurs {
		t.Errorf("equal ids, our JID lower: %s", res)
	}
	p = mk("x", caller, callee)
	if res, _ := p.TieBreak(phone, theirs("x")); res != TieBreakTheirs {
		t.Errorf("equal ids, our JID higher: %s", res)
	}
	// Not a tie: another peer, a proceeding proposal, a callee proposal.
	p = mk("b", caller, callee)
	if res, _ := p.TieBreak(mallory, theirs("a")); res != TieBreakNone {
		t.Errorf("stranger: %s", res)
	}
	if _, err := p.Receive(phone, jmi(JMIProceed)); err == nil {
		t.Fatal("proceed of another id accepted")
	}
	p2 := outgoing(t)
	if _, err := p2.Receive(phone, jmi(JMIProceed)); err != nil {
		t.Fatal(err)
	}
	if res, _ := p2.TieBreak(phone, theirs("a")); res != TieBreakNone {
		t.Errorf("proceeding: %s", res)
	}
	if res, _ := incoming(t).TieBreak(caller, theirs("a")); res != TieBreakNone {
		t.Errorf("callee side: %s", res)
	}
}

func TestProposalMigrate(t *testing.T) {
	p := incoming(t)
	if _, ok := p.Migrate(caller, &JMI{Kind: JMIPropose, ID: "new"}); ok {
		t.Fatal("migrated a ringing proposal")
	}
	if _, err := p.Send(jmi(JMIProceed)); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Migrate(mallory, &JMI{Kind: JMIPropose, ID: "new"}); ok {
		t.Fatal("migrated to a stranger")
	}
	if _, ok := p.Migrate(caller, jmi(JMIPropose)); ok {
		t.Fatal("migrated to the same id")
	}
	fin, ok := p.Migrate("romeo@example.org/laptop", &JMI{Kind: JMIPropose, ID: "new"})
	if !ok || fin.Kind != JMIFinish || fin.ID != callID || fin.MigratedTo != "new" || fin.Reason.Condition != ReasonExpired || p.State() != ProposalFinished {
		t.Fatalf("migrate: %+v %v %s", fin, ok, p.State())
	}
	if _, err := fin.Marshal(); err != nil {
		t.Errorf("the finish does not marshal: %v", err)
	}
}

// TestProposalProperties: random messages on both sides never panic,
// terminal states stay terminal, and a refused message changes nothing.
func TestProposalProperties(t *testing.T) {
	kinds := []JMIKind{JMIPropose, JMIRinging, JMIProceed, JMIAccept, JMIReject, JMIRetract, JMIFinish}
	senders := []string{caller, phone, laptop, tablet, callee, mallory, "romeo@example.org/laptop"}
	for seed := uint64(0); seed < 500; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x6a6d69))
		p := outgoing(t)
		if seed%2 == 1 {
			p = incoming(t)
		}
		for n := 0; n < 30; n++ {
			m := jmi(kinds[rng.IntN(len(kinds))])
			if rng.IntN(10) == 0 {
				m.ID = "other"
			}
			before, winner := p.State(), p.Winner()
			var err error
			var o ProposalOutcome
			if rng.IntN(3) == 0 {
				o, err = p.Send(m)
			} else {
				o, err = p.Receive(senders[rng.IntN(len(senders))], m)
			}
			if err != nil {
				var je *JMIError
				if !errors.As(err, &je) {
					t.Fatalf("seed %d: %v", seed, err)
				}
				if p.State() != before || p.Winner() != winner {
					t.Fatalf("seed %d: refused %s changed the state", seed, m.Kind)
				}
			} else if o.State != p.State() {
				t.Fatalf("seed %d: outcome state %s, proposal %s", seed, o.State, p.State())
			}
			if before.Terminal() && p.State() != before {
				t.Fatalf("seed %d: left terminal %s for %s on %s", seed, before, p.State(), m.Kind)
			}
			_, _ = p.Expired(t0.Add(time.Duration(rng.IntN(100)) * time.Second))
		}
	}
}
