package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/policy"
)

// EventKind says what an [Event] reports.
type EventKind string

// Event kinds.
const (
	EventConnected    EventKind = "connected"
	EventDisconnected EventKind = "disconnected"
	EventChat         EventKind = "chat"        // a chat message arrived (Encrypted says how)
	EventChatSent     EventKind = "chat-sent"   // our other device sent a chat message (carbon)
	EventStanza       EventKind = "stanza"      // a protected message payload was unwrapped
	EventPeer         EventKind = "peer"        // a peer device was discovered or its bundle stored
	EventKeyChanged   EventKind = "key-changed" // a device of a known account presented another account key
	EventDistrusted   EventKind = "distrusted"  // a device of an account the user distrusted was refused
	EventAlert        EventKind = "alert"       // something the user must know (cleartext, tampering)
	EventDelivery     EventKind = "delivery"    // a sent chat message was delivered to a device, or bounced
	EventWithheld     EventKind = "withheld"    // messages of a sender device never arrived (Count)
	EventCall         EventKind = "call"        // a call changed state or its binding was checked (Call)
	EventFile         EventKind = "file"        // a file transfer changed state or made progress (File)
	// EventFrontFile reports a step of gateway mode's upgrade of a local
	// client's plain file offer (docs/protocol.md §22.10.1): Detail is
	// what the client was told, From the contact's bare JID, File the
	// encrypted transfer once it exists.
	EventFrontFile EventKind = "front-file"
)

// An Event is something the gateway reports to the local API.
type Event struct {
	Kind      EventKind
	Time      time.Time
	From      string    // peer bare JID (or full JID where it matters)
	To        string    // for chat-sent: the addressee
	Peer      *e2e.Peer // authenticated sender, for e2e payloads
	Body      string
	Encrypted bool
	Payload   []byte // unwrapped protected payload elements
	Detail    string
	Alert     *policy.Alert // for EventAlert: the alert with its facts and decision
	Refused   bool          // for chat: policy refused it (it is reported, not delivered)
	// MessageID is, for delivery, the id of the chat message we sent.
	MessageID string
	// Delivery is, for delivery, the message's state after the change.
	Delivery *Delivery
	// Count is, for withheld, how many messages did not arrive.
	Count int
	// Call is, for call, a snapshot of the call after the change.
	Call *CallInfo
	// File is, for file, a snapshot of the transfer after the change.
	File *TransferInfo
}

// bus fans events out to subscribers without ever blocking the gateway: a
// subscriber whose buffer is full loses the event, and the loss is counted.
type bus struct {
	mu      sync.Mutex
	subs    map[int]chan Event
	next    int
	dropped atomic.Uint64
}

func newBus() *bus { return &bus{subs: map[int]chan Event{}} }

func (b *bus) publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.subs {
		select {
		case c <- ev:
		default:
			b.dropped.Add(1)
		}
	}
}

// Subscribe returns a channel of future events with a buffer of n and a
// function that ends the subscription (and closes the channel).
func (g *Gateway) Subscribe(n int) (<-chan Event, func()) {
	b := g.events
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	c := make(chan Event, n)
	b.subs[id] = c
	var once sync.Once
	return c, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, id)
			b.mu.Unlock()
			close(c)
		})
	}
}

// DroppedEvents returns how many events slow subscribers lost.
func (g *Gateway) DroppedEvents() uint64 { return g.events.dropped.Load() }
