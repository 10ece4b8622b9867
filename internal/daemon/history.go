package daemon

import (
	"slices"
	"sort"
	"sync"

	"github.com/securejingle/securejingle/internal/api"
)

// Bounds of the conversation history, which is held in memory only.
const (
	// maxHistory is how many messages the history keeps in all.
	maxHistory = 4096
	// maxHistoryPerPeer is how many it keeps per contact, so that one
	// account flooding the daemon cannot push the others' out.
	maxHistoryPerPeer = 512
	// maxHistoryBytes bounds the bodies kept, in all.
	maxHistoryBytes = 16 << 20
)

// history is the recent conversation history, both ways: the messages
// sent through the API (with their delivery state, kept up to date from
// delivery events), those received and the carbons of the account's
// other devices. The oldest go first when a bound is reached. It is safe
// for concurrent use.
type history struct {
	mu     sync.Mutex
	next   uint64 // position of the next message, from 1
	msgs   []api.Message
	pos    []uint64 // pos[i] is the position of msgs[i]
	byID   map[string]uint64
	count  map[string]int // messages per peer
	bytes  int
	maxAll int // bounds, maxHistory and maxHistoryPerPeer unless a test sets them
	maxPer int
	// early holds delivery states that came before their message was
	// added (a receipt can overtake the return of the send), oldest
	// first, at most maxEarly.
	early []api.SentMessage
}

// maxEarly bounds the delivery states kept for messages not added yet.
const maxEarly = 64

func newHistory() *history {
	return &history{next: 1, byID: map[string]uint64{}, count: map[string]int{}, maxAll: maxHistory, maxPer: maxHistoryPerPeer}
}

// add appends m, bounding its body at api.MaxShownBody, and drops the
// oldest messages past the bounds. A message whose id is known already
// is ignored.
func (h *history) add(m api.Message) {
	if body, cut := api.BoundBody(m.Body, api.MaxShownBody); cut {
		m.Size, m.Body, m.Truncated = len(m.Body), body, true
	}
	m.Devices = slices.Clone(m.Devices)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.byID[m.ID]; dup || m.ID == "" {
		return
	}
	if m.Direction == api.MessageOutgoing && !m.Carbon {
		if i := slices.IndexFunc(h.early, func(d api.SentMessage) bool { return d.ID == m.ID }); i >= 0 {
			m.State, m.Devices = h.early[i].State, slices.Clone(h.early[i].Devices)
			h.early = slices.Delete(h.early, i, i+1)
		}
	}
	if h.count[m.Peer] >= h.maxPer {
		for i := range h.msgs {
			if h.msgs[i].Peer == m.Peer {
				h.removeLocked(i)
				break
			}
		}
	}
	for len(h.msgs) > 0 && (len(h.msgs) >= h.maxAll || h.bytes+len(m.Body) > maxHistoryBytes) {
		h.removeLocked(0)
	}
	h.msgs = append(h.msgs, m)
	h.pos = append(h.pos, h.next)
	h.byID[m.ID] = h.next
	h.next++
	h.count[m.Peer]++
	h.bytes += len(m.Body)
}

func (h *history) removeLocked(i int) {
	m := h.msgs[i]
	delete(h.byID, m.ID)
	if h.count[m.Peer]--; h.count[m.Peer] <= 0 {
		delete(h.count, m.Peer)
	}
	h.bytes -= len(m.Body)
	h.msgs = slices.Delete(h.msgs, i, i+1)
	h.pos = slices.Delete(h.pos, i, i+1)
}

// delivered updates the delivery state of a message sent from here.
func (h *history) delivered(d api.SentMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.byID[d.ID]
	if !ok {
		if len(h.early) >= maxEarly {
			h.early = slices.Delete(h.early, 0, 1)
		}
		d.Devices = slices.Clone(d.Devices)
		h.early = append(h.early, d)
		return
	}
	i := sort.Search(len(h.pos), func(i int) bool { return h.pos[i] >= p })
	if i < len(h.pos) && h.pos[i] == p && h.msgs[i].Direction == api.MessageOutgoing && !h.msgs[i].Carbon {
		h.msgs[i].State, h.msgs[i].Devices = d.State, slices.Clone(d.Devices)
	}
}

// page answers GET /v1/messages.
func (h *history) page(q api.MessagesQuery) (api.MessagesResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	resp, err := api.PageMessages(h.msgs, h.pos, q)
	for i := range resp.Messages {
		resp.Messages[i].Devices = slices.Clone(resp.Messages[i].Devices)
	}
	return resp, err
}

// conversations answers GET /v1/conversations.
func (h *history) conversations() []api.Conversation {
	h.mu.Lock()
	defer h.mu.Unlock()
	idx := map[string]int{}
	var out []api.Conversation
	for _, m := range h.msgs {
		i, ok := idx[m.Peer]
		if !ok {
			i = len(out)
			idx[m.Peer] = i
			out = append(out, api.Conversation{Peer: m.Peer})
		}
		c := &out[i]
		c.Messages++
		if m.Unencrypted || m.Refused {
			c.Warnings++
		}
		c.Last = m
	}
	for i := range out {
		last := &out[i].Last
		if body, cut := api.BoundBody(last.Body, api.MaxPreview); cut {
			if !last.Truncated {
				last.Size = len(last.Body)
			}
			last.Body, last.Truncated = body, true
		}
		last.Devices = slices.Clone(last.Devices)
	}
	// Newest first: the last message of each is in history order.
	sort.SliceStable(out, func(a, b int) bool { return h.byID[out[a].Last.ID] > h.byID[out[b].Last.ID] })
	return out
}
