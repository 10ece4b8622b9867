package daemon

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/policy"
)

func msg(id, peer string) api.Message {
	return api.Message{ID: id, Direction: api.MessageIncoming, Peer: peer, From: peer, Body: "b " + id, Encrypted: true}
}

// TestHistoryBounds: one contact flooding the history loses its own
// oldest messages, never the others'; the whole history is bounded too.
func TestHistoryBounds(t *testing.T) {
	h := newHistory()
	h.maxAll, h.maxPer = 10, 4
	h.add(msg("bob-0", "bob@example.test"))
	for i := range 50 {
		h.add(msg("mallory-"+strconv.Itoa(i), "mallory@example.test"))
	}
	p, err := h.page(api.MessagesQuery{Peer: "bob@example.test", Limit: 10})
	if err != nil || len(p.Messages) != 1 || p.Messages[0].ID != "bob-0" {
		t.Fatalf("bob's conversation after a flood: %+v, %v", p, err)
	}
	p, _ = h.page(api.MessagesQuery{Peer: "mallory@example.test", Limit: 10})
	if len(p.Messages) != 4 || p.Messages[0].ID != "mallory-46" || p.Messages[3].ID != "mallory-49" {
		t.Fatalf("the flooder's messages: %+v", p.Messages)
	}
	for i := range 20 {
		h.add(msg("p"+strconv.Itoa(i), "p"+strconv.Itoa(i)+"@example.test"))
	}
	if p, _ := h.page(api.MessagesQuery{Limit: 500}); len(p.Messages) != 10 || p.Messages[9].ID != "p19" {
		t.Fatalf("global bound: %d messages", len(p.Messages))
	}
	if len(h.byID) != 10 || len(h.pos) != 10 {
		t.Fatalf("index: %d ids, %d positions", len(h.byID), len(h.pos))
	}
	// A duplicate id is ignored.
	h.add(msg("p19", "p19@example.test"))
	if p, _ := h.page(api.MessagesQuery{Limit: 500}); len(p.Messages) != 10 {
		t.Fatalf("duplicate added: %d", len(p.Messages))
	}
}

// TestHistoryBytesBound: bodies are cut at api.MaxShownBody and the
// history holds at most maxHistoryBytes of them.
func TestHistoryBytesBound(t *testing.T) {
	h := newHistory()
	big := strings.Repeat("x", 3*api.MaxShownBody)
	for i := range maxHistoryBytes/api.MaxShownBody + 10 {
		m := msg("m"+strconv.Itoa(i), "p"+strconv.Itoa(i%300)+"@example.test")
		m.Body = big
		h.add(m)
	}
	if h.bytes > maxHistoryBytes {
		t.Fatalf("history holds %d body bytes", h.bytes)
	}
	p, _ := h.page(api.MessagesQuery{Limit: 1})
	if m := p.Messages[0]; !m.Truncated || m.Size != len(big) || len(m.Body) != api.MaxShownBody {
		t.Fatalf("long body: truncated %v, size %d, len %d", m.Truncated, m.Size, len(m.Body))
	}
}

// TestHistoryEarlyReceipt: a receipt that comes before the send returned
// (and the message was added) still marks it delivered.
func TestHistoryEarlyReceipt(t *testing.T) {
	h := newHistory()
	now := time.Now()
	h.delivered(api.SentMessage{ID: "s1", To: "bob@example.test", State: api.DeliveryDelivered,
		Devices: []api.DeviceDelivery{{Device: 7, Delivered: true, Time: now}}})
	h.add(api.Message{ID: "s1", Direction: api.MessageOutgoing, Peer: "bob@example.test", To: "bob@example.test", Body: "hi",
		Encrypted: true, State: api.DeliverySent, Devices: []api.DeviceDelivery{{Device: 7}}})
	p, _ := h.page(api.MessagesQuery{Limit: 5})
	if m := p.Messages[0]; m.State != api.DeliveryDelivered || !m.Devices[0].Delivered {
		t.Fatalf("early receipt lost: %+v", m)
	}
	// A later state replaces it.
	h.delivered(api.SentMessage{ID: "s1", State: api.DeliveryNotDelivered, Devices: []api.DeviceDelivery{{Device: 7}}})
	if p, _ := h.page(api.MessagesQuery{Limit: 5}); p.Messages[0].State != api.DeliveryNotDelivered {
		t.Fatalf("state not updated: %+v", p.Messages[0])
	}
}

// TestHistoryConversations: newest first, warnings counted, the preview
// cut.
func TestHistoryConversations(t *testing.T) {
	h := newHistory()
	h.add(msg("a1", "alice@example.test"))
	long := msg("b1", "bob@example.test")
	long.Body, long.Unencrypted, long.Encrypted = strings.Repeat("é", api.MaxPreview), true, false
	h.add(long)
	h.add(msg("a2", "alice@example.test"))
	cs := h.conversations()
	if len(cs) != 2 || cs[0].Peer != "alice@example.test" || cs[0].Messages != 2 || cs[0].Last.ID != "a2" || cs[0].Warnings != 0 {
		t.Fatalf("conversations: %+v", cs)
	}
	if b := cs[1].Last; cs[1].Warnings != 1 || !b.Truncated || b.Size != 2*api.MaxPreview || len(b.Body) > api.MaxPreview {
		t.Fatalf("bob's conversation: %+v", cs[1])
	}
}

// TestAlertFeedUnseen: the unseen count follows new alerts and the seen
// mark, is capped beyond the ids kept, and the mark never moves back.
func TestAlertFeedUnseen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := policy.OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Send(context.Background(), policy.Alert{ID: "A" + strconv.Itoa(i), Decision: policy.Decision{Rule: "integrity"}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	f := openAlertFeed(path, Logger(t))
	if n, capped := f.unseenLocked(); n != 3 || capped {
		t.Fatalf("from the log: %d unseen, capped %v", n, capped)
	}
	if n := f.note("A3"); n != 4 {
		t.Fatalf("after a new alert: %d", n)
	}
	if r, err := f.MarkSeen("A2"); err != nil || r.Unseen != 1 {
		t.Fatalf("mark A2: %+v, %v", r, err)
	}
	if r, err := f.MarkSeen("A0"); err != nil || r.Unseen != 1 || r.Seen != "A2" {
		t.Fatalf("mark back to A0: %+v, %v", r, err)
	}
	for i := 4; i < maxRecentAlerts+10; i++ {
		f.note("A" + strconv.Itoa(i))
	}
	if n, capped := f.unseenLocked(); n != maxRecentAlerts || !capped {
		t.Fatalf("after many: %d unseen, capped %v", n, capped)
	}
	if len(f.seq) != maxRecentAlerts || len(f.order) != maxRecentAlerts {
		t.Fatalf("kept %d ids", len(f.seq))
	}
	if r, err := f.MarkSeen(""); err != nil || r.Unseen != 0 || r.UnseenCapped {
		t.Fatalf("mark all: %+v, %v", r, err)
	}
	// The mark is stored next to the log.
	g := openAlertFeed(path, Logger(t))
	if g.seen != f.seen {
		t.Fatalf("stored mark %q, want %q", g.seen, f.seen)
	}
}
