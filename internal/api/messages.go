package api

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Conversation history limits.
const (
	// MaxShownBody bounds a chat body the API hands out, in the history
	// and in chat events: a longer one is cut at a character boundary and
	// marked truncated, with its size. Messages sent from here are at
	// most MaxChatBody; longer ones come from other clients, or from the
	// server.
	MaxShownBody = 64 << 10
	// MaxPreview bounds the body of a conversation's last message in
	// GET /v1/conversations.
	MaxPreview = 256
	// DefaultMessagesLimit is the page size of GET /v1/messages without
	// limit; MaxMessagesLimit bounds it.
	DefaultMessagesLimit = 100
	MaxMessagesLimit     = 500
)

// Message directions.
const (
	MessageOutgoing = "outgoing" // sent by us: from here, or (Carbon) from another device of the account
	MessageIncoming = "incoming" // from the contact
)

// Message is one chat message of the conversation history, either way:
// an element of GET /v1/messages.
type Message struct {
	// ID is the stanza id of a message sent from here (the id receipts
	// and delivery events name), or the id of the event that brought an
	// incoming message or a carbon.
	ID        string `json:"id"`
	Direction string `json:"direction"` // outgoing or incoming
	Peer      string `json:"peer"`      // the contact's bare JID
	To        string `json:"to,omitempty"`
	From      string `json:"from,omitempty"`
	// Device is the sender's authenticated device (incoming, encrypted).
	Device uint32    `json:"device,omitempty"`
	Time   time.Time `json:"time"`
	Body   string    `json:"body"`
	// Truncated is set when the body was longer than [MaxShownBody]
	// bytes; Size is then its length.
	Truncated bool `json:"truncated,omitempty"`
	Size      int  `json:"size,omitempty"`
	// Encrypted: the message came end-to-end encrypted. Unencrypted is
	// its negation, set so that a client cannot miss it: show such a
	// message marked, never as a secure one.
	Encrypted   bool `json:"encrypted"`
	Unencrypted bool `json:"unencrypted,omitempty"`
	// Refused: the channel policy refused this cleartext message: show it
	// as a warning, not as conversation.
	Refused bool `json:"refused,omitempty"`
	// Carbon: sent by another device of the account (a carbon).
	Carbon bool   `json:"carbon,omitempty"`
	Detail string `json:"detail,omitempty"`
	// State and Devices are the delivery state of a message sent from
	// here, as in [SentMessage].
	State   string           `json:"state,omitempty"`
	Devices []DeviceDelivery `json:"devices,omitempty"`
}

// MessagesQuery is a validated GET /v1/messages request.
type MessagesQuery struct {
	Peer   string // bare JID, "" for every conversation
	Before string // a Next of an earlier answer, "" for the newest
	Limit  int    // 1 to MaxMessagesLimit
}

// MessagesResponse is the answer of GET /v1/messages.
type MessagesResponse struct {
	// Messages are the newest Limit messages before the cursor, oldest
	// first.
	Messages []Message `json:"messages"`
	// Next is the before parameter of the older page when More is set.
	Next string `json:"next,omitempty"`
	More bool   `json:"more"`
}

// Conversation is one contact's conversation in GET /v1/conversations.
type Conversation struct {
	Peer string `json:"peer"`
	// Messages is the number of its messages the history holds.
	Messages int `json:"messages"`
	// Warnings counts those that came unencrypted or were refused.
	Warnings int `json:"warnings,omitempty"`
	// Last is the newest message, its body cut to [MaxPreview] bytes.
	Last Message `json:"last"`
}

// ConversationsResponse is the answer of GET /v1/conversations.
type ConversationsResponse struct {
	// Conversations are newest first.
	Conversations []Conversation `json:"conversations"`
}

// A HistoryBackend is a [Backend] that keeps the recent conversation
// history, both ways. The server finds it by type assertion; without it
// GET /v1/messages lists the messages sent (Backend.Messages) and GET
// /v1/conversations is 503.
type HistoryBackend interface {
	// History returns a page of the history. A Before that is not a
	// cursor of this backend wraps [ErrInvalid].
	History(q MessagesQuery) (MessagesResponse, error)
	// Conversations summarizes the history by contact.
	Conversations() ([]Conversation, error)
}

// BoundBody cuts s to at most max bytes at a character boundary and
// reports whether it did.
func BoundBody(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}

// PageMessages returns the page of q from ms, which is oldest first;
// pos[i] is the cursor position of ms[i] (increasing). The cursor of the
// answer is a position: the page holds the newest messages of q.Peer
// before it.
func PageMessages(ms []Message, pos []uint64, q MessagesQuery) (MessagesResponse, error) {
	end := uint64(1<<64 - 1)
	if q.Before != "" {
		n, err := strconv.ParseUint(q.Before, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != q.Before {
			return MessagesResponse{}, fmt.Errorf("%w: before: pass the next value of an earlier answer", ErrInvalid)
		}
		end = n
	}
	// The first message at or after the cursor.
	i := sort.Search(len(pos), func(i int) bool { return pos[i] >= end })
	var page []Message
	var firstPos uint64
	more := false
	for i--; i >= 0; i-- {
		if q.Peer != "" && ms[i].Peer != q.Peer {
			continue
		}
		if len(page) == q.Limit {
			more = true
			break
		}
		page = append(page, ms[i])
		firstPos = pos[i]
	}
	slices.Reverse(page)
	resp := MessagesResponse{Messages: page, More: more}
	if page == nil {
		resp.Messages = []Message{}
	}
	if more {
		resp.Next = strconv.FormatUint(firstPos, 10)
	}
	return resp, nil
}

// sentAsMessage is the history entry of a sent message's delivery state.
func sentAsMessage(m SentMessage) Message {
	return Message{ID: m.ID, Direction: MessageOutgoing, Peer: m.To, To: m.To, Time: m.Time, Encrypted: true,
		State: m.State, Devices: m.Devices}
}

// checkMessagesQuery validates the parameters of GET /v1/messages.
func checkMessagesQuery(r *http.Request) (MessagesQuery, error) {
	q := MessagesQuery{Limit: DefaultMessagesLimit}
	if err := checkQuery(r, "peer", "before", "limit"); err != nil {
		return q, err
	}
	v := r.URL.Query()
	if p := v.Get("peer"); p != "" || v.Has("peer") {
		bare, err := checkBareJID("peer", p)
		if err != nil {
			return q, err
		}
		q.Peer = bare
	}
	q.Before = v.Get("before")
	if len(q.Before) > 20 {
		return q, fmt.Errorf("%w: before: pass the next value of an earlier answer", ErrInvalid)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxMessagesLimit || l[0] == '0' || l[0] == '+' {
			return q, fmt.Errorf("%w: limit must be a number from 1 to %d", ErrInvalid, MaxMessagesLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	q, err := checkMessagesQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp MessagesResponse
	if hb, ok := s.b.(HistoryBackend); ok {
		resp, err = hb.History(q)
	} else {
		var sent []SentMessage
		sent, err = s.b.Messages()
		if err == nil {
			ms, pos := make([]Message, len(sent)), make([]uint64, len(sent))
			for i, m := range sent {
				ms[i], pos[i] = sentAsMessage(m), uint64(i+1)
			}
			resp, err = PageMessages(ms, pos, q)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Messages == nil {
		resp.Messages = []Message{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleConversations(w http.ResponseWriter, r *http.Request) {
	hb, ok := s.b.(HistoryBackend)
	if !ok {
		s.fail(w, r, fmt.Errorf("%w: this daemon keeps no conversation history", ErrUnavailable))
		return
	}
	if err := checkQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	cs, err := hb.Conversations()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if cs == nil {
		cs = []Conversation{}
	}
	writeJSON(w, http.StatusOK, ConversationsResponse{Conversations: cs})
}
