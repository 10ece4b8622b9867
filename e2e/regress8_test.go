package e2e

import (
	"fmt"
	"sync"
	"testing"
)

func TestRegressionConcurrentSealOpen(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "x"), "x")
	recv(t, b, a, send(t, b, a, "y"), "y")
	var mu sync.Mutex
	var msgs []*ChatElement
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				el, err := a.SealChat(chatCtx(a, b), []Device{dev(b)}, fmt.Sprint(g, i), false)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				msgs = append(msgs, el)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, m := range msgs { // header bytes identical => key reuse
		k := string(m.Blob[:20])
		if seen[k] {
			t.Fatal("two messages with the same header")
		}
		seen[k] = true
	}
	var ok int
	var omu sync.Mutex
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(msgs); i += 4 {
				if _, _, err := b.OpenChat(chatCtx(a, b), msgs[i]); err == nil {
					omu.Lock()
					ok++
					omu.Unlock()
				}
			}
		}(g)
	}
	wg.Wait()
	if ok != len(msgs) {
		t.Fatalf("opened %d of %d", ok, len(msgs))
	}
}
