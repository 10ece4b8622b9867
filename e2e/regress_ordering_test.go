package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Randomised ordering property: with reordering, duplication and loss,
// every delivered message either opens with its text once or is a
// duplicate, and the session never breaks. One seed in four has both sides
// start at once (crossed first messages); in the others Bob only writes
// once he has Alice's session.
func TestRegressionRandomOrdering(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		clk := newClock()
		a := newTestEngine(t, "alice@example.org", clk)
		b := newTestEngine(t, "bob@example.net", clk)
		introduce(t, a, b)
		type msg struct {
			el   *ChatElement
			text string
		}
		var toA, toB []msg
		opened := map[string]bool{}
		cross := seed%4 == 0
		toB = append(toB, msg{send(t, a, b, "a-init"), "a-init"})
		if cross {
			toA = append(toA, msg{send(t, b, a, "b-init"), "b-init"})
		}
		n := 0
		deliver := func(q *[]msg, from, to *testEngine) {
			if len(*q) == 0 {
				return
			}
			i := r.IntN(len(*q))
			m := (*q)[i]
			if r.IntN(10) != 0 { // 10%: keep for duplicate delivery
				*q = append((*q)[:i], (*q)[i+1:]...)
			}
			got, _, err := to.OpenChat(chatCtx(from, to), m.el)
			if err == nil {
				if got != m.text || opened[m.text] {
					t.Fatalf("seed %d: bad open %q (dup=%v)", seed, got, opened[m.text])
				}
				opened[m.text] = true
			} else if !opened[m.text] {
				t.Logf("seed %d: %q lost: %v", seed, m.text, err)
			}
		}
		for step := 0; step < 400; step++ {
			switch r.IntN(4) {
			case 0:
				n++
				if m, err := a.SealChat(chatCtx(a, b), []Device{dev(b)}, fmt.Sprint("a", n), false); err == nil {
					if r.IntN(20) != 0 {
						toB = append(toB, msg{m, fmt.Sprint("a", n)})
					}
				}
			case 1:
				if _, err := b.Session(dev(a)); err != nil && !cross {
					continue
				}
				n++
				if m, err := b.SealChat(chatCtx(b, a), []Device{dev(a)}, fmt.Sprint("b", n), false); err == nil {
					if r.IntN(20) != 0 {
						toA = append(toA, msg{m, fmt.Sprint("b", n)})
					}
				}
			case 2:
				deliver(&toB, a, b)
			case 3:
				deliver(&toA, b, a)
			}
		}
		for len(toA)+len(toB) > 0 {
			deliver(&toB, a, b)
			deliver(&toA, b, a)
			if len(toA) > 0 && r.IntN(10) == 0 {
				toA = toA[1:]
			}
			if len(toB) > 0 && r.IntN(10) == 0 {
				toB = toB[1:]
			}
		}
		// After the storm, fresh messages must work both ways.
		for i := 0; i < 3; i++ {
			if _, _, err := b.OpenChat(chatCtx(a, b), send(t, a, b, "z")); err != nil {
				t.Errorf("seed %d (cross=%v): a->b broken: %v", seed, cross, err)
			}
			if _, _, err := a.OpenChat(chatCtx(b, a), send(t, b, a, "z")); err != nil {
				t.Errorf("seed %d (cross=%v): b->a broken: %v", seed, cross, err)
			}
		}
	}
}
