package gateway

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// BenchmarkLoad200 runs 200 gateways (100 pairs of contacts) on the
// embedded server. It reports the memory one established, idle e2e session
// costs (heap growth from establishing the sessions, per session) and the
// chat throughput, in messages per second, across all pairs.
//
//	go test ./gateway -run '^$' -bench Load200 -benchtime 2000x
func BenchmarkLoad200(b *testing.B) {
	const pairs = 100
	srv := startServer(b)
	gws := make([]*testGateway, 2*pairs)
	for i := range gws {
		if err := srv.AddUser(fmt.Sprint("u", i), "pw"); err != nil {
			b.Fatal(err)
		}
	}
	for p := 0; p < pairs; p++ {
		if err := srv.Subscribe(jid.MustParse(fmt.Sprintf("u%d@%s", 2*p, testDomain)), jid.MustParse(fmt.Sprintf("u%d@%s", 2*p+1, testDomain))); err != nil {
			b.Fatal(err)
		}
	}
	for i := range gws {
		gws[i] = startGateway(b, srv, fmt.Sprintf("u%d@%s/r", i, testDomain), "pw", gwOptions{})
	}
	peer := func(i int) string { return fmt.Sprintf("u%d@%s", i^1, testDomain) }
	for i, g := range gws {
		g.waitDevices(b, peer(i), 1)
	}
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	// Establish: a first message and a reply in every pair.
	for p := 0; p < pairs; p++ {
		if err := gws[2*p].SendChat(ctx, jid.MustParse(peer(2*p)), "hi"); err != nil {
			b.Fatal(err)
		}
	}
	for p := 0; p < pairs; p++ {
		gws[2*p+1].waitEvent(b, "first", isChat("hi"))
		if err := gws[2*p+1].SendChat(ctx, jid.MustParse(peer(2*p+1)), "hello"); err != nil {
			b.Fatal(err)
		}
	}
	for p := 0; p < pairs; p++ {
		gws[2*p].waitEvent(b, "reply", isChat("hello"))
	}
	after := heap()
	perSession := float64(int64(after)-int64(before)) / float64(2*pairs)

	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; {
		batch := min(b.N-n, 2*pairs)
		for i := 0; i < batch; i++ {
			if err := gws[i].SendChat(ctx, jid.MustParse(peer(i)), "load"); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < batch; i++ {
			gws[i^1].waitEvent(b, "load", isChat("load"))
		}
		n += batch
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(perSession, "B/idle-session")
}
