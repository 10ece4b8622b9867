package daemon

import (
	"strconv"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
)

func TestHubBacklog(t *testing.T) {
	h := newHub()
	backlog, _, stop := h.subscribe(1, "")
	stop()
	if len(backlog) != 0 {
		t.Fatalf("empty hub: backlog %v", backlog)
	}
	for i := range 3 {
		h.publish(api.Event{Kind: "trust", Detail: strconv.Itoa(i)})
	}
	backlog, ch, stop := h.subscribe(4, "")
	if len(backlog) != 3 || backlog[0].Detail != "0" || backlog[2].Detail != "2" {
		t.Fatalf("backlog %+v", backlog)
	}
	ids := map[string]bool{}
	for _, ev := range backlog {
		if !strings.HasPrefix(ev.ID, h.run+"-") || ids[ev.ID] {
			t.Fatalf("event id %q", ev.ID)
		}
		ids[ev.ID] = true
	}
	// No overlap and no gap between backlog and channel.
	h.publish(api.Event{Kind: "chat", Detail: "3"})
	if ev := <-ch; ev.Detail != "3" {
		t.Fatalf("live event %+v", ev)
	}
	stop()

	after := func(id string) []api.Event {
		b, _, stop := h.subscribe(1, id)
		stop()
		return b
	}
	if b := after(backlog[0].ID); len(b) != 3 || b[0].Detail != "1" {
		t.Fatalf("after the first: %+v", b)
	}
	last := backlog[2].ID
	if b := after(last); len(b) != 1 || b[0].Detail != "3" {
		t.Fatalf("after the third: %+v", b)
	}
	// An id of another run, or a malformed one, replays everything.
	for _, id := range []string{"0badc0de-2", h.run + "-x", h.run + "-99"} {
		if b := after(id); len(b) != 4 {
			t.Fatalf("after %q: %d events, want all 4", id, len(b))
		}
	}
	// The ring keeps the last backlogSize events.
	for i := range backlogSize + 10 {
		h.publish(api.Event{Kind: "peer", Detail: strconv.Itoa(100 + i)})
	}
	b := after("")
	if len(b) != backlogSize || b[len(b)-1].Detail != strconv.Itoa(100+backlogSize+9) || b[0].Detail != strconv.Itoa(110) {
		t.Fatalf("full ring: %d events, first %+v", len(b), b[0])
	}
	// An id that fell out of the ring replays the whole ring.
	if b := after(last); len(b) != backlogSize {
		t.Fatalf("after an evicted id: %d events", len(b))
	}
}
