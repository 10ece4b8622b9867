package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// BenchmarkChatLockstep: one chat message at a time from alice's gateway
// to bob's on the embedded server, waited for (bob's chat event) before
// the next, receipts on: the engine's share of docs/protocol.md §22.9's
// ChatLatency without Prosody and the local clients. "bolt" keeps each
// engine in a sealed bbolt store in the test's temporary directory (a
// sync per committed transaction; TMPDIR=/dev/shm for tmpfs), as the
// daemon does; "memory" has no disk.
//
//	go test ./gateway -run '^$' -bench ChatLockstep -benchtime 2000x
func BenchmarkChatLockstep(b *testing.B) {
	for _, kind := range []string{"memory", "bolt"} {
		b.Run(kind, func(b *testing.B) {
			srv := benchPair(b)
			var commits atomic.Int64
			open := func(name string) store.Store {
				if kind == "memory" {
					return &countingStore{Store: store.NewMemory(), commits: &commits}
				}
				inner, err := store.OpenBolt(filepath.Join(b.TempDir(), name+".db"))
				if err != nil {
					b.Fatal(err)
				}
				st, err := store.Sealed(inner, func([]byte, bool) ([store.KeySize]byte, error) {
					return [store.KeySize]byte{1}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				return &countingStore{Store: st, commits: &commits}
			}
			a := startGateway(b, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{store: open("alice")})
			c := startGateway(b, srv, "bob@"+testDomain+"/phone", "bob-password", gwOptions{store: open("bob")})
			a.waitDevices(b, "bob@"+testDomain, 1)
			c.waitDevices(b, "alice@"+testDomain, 1)
			ctx := context.Background()
			bob, alice := jid.MustParse("bob@"+testDomain), jid.MustParse("alice@"+testDomain)
			// Both sessions confirmed, as in a conversation.
			for _, m := range []struct {
				from *testGateway
				to   jid.JID
				at   *testGateway
			}{{a, bob, c}, {c, alice, a}} {
				if err := m.from.SendChat(ctx, m.to, "hello"); err != nil {
					b.Fatal(err)
				}
				m.at.waitEvent(b, "hello", isChat("hello"))
			}
			i := 0
			commits.Store(0)
			for b.Loop() {
				i++
				body := fmt.Sprint("bench ", i)
				if err := a.SendChat(ctx, bob, body); err != nil {
					b.Fatal(err)
				}
				c.waitEvent(b, body, isChat(body))
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/msg")
			b.ReportMetric(float64(commits.Load())/float64(b.N), "commits/msg")
		})
	}
}

// benchPair is pair's server: alice and bob, subscribed to each other.
func benchPair(b *testing.B) *localxmpp.Server {
	srv := startServer(b)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			b.Fatal(err)
		}
	}
	if err := srv.Subscribe(jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)); err != nil {
		b.Fatal(err)
	}
	return srv
}

// countingStore counts the Update transactions that wrote something
// (those a bbolt store commits and syncs), in both gateways together.
type countingStore struct {
	store.Store
	commits *atomic.Int64
}

func (s *countingStore) Update(fn func(store.Tx) error) error {
	wrote := false
	err := s.Store.Update(func(tx store.Tx) error { return fn(&countingTx{Tx: tx, wrote: &wrote}) })
	if err == nil && wrote {
		s.commits.Add(1)
	}
	return err
}

type countingTx struct {
	store.Tx
	wrote *bool
}

func (t *countingTx) Put(bucket, key string, value []byte) error {
	*t.wrote = true
	return t.Tx.Put(bucket, key, value)
}

func (t *countingTx) Delete(bucket, key string) error {
	*t.wrote = true
	return t.Tx.Delete(bucket, key)
}
