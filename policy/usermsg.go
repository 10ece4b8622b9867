package policy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MessageSender delivers a notice to the user, normally as an XMPP message
// from the gateway to the user's own JID. The gateway implements it.
// SendMessage must be safe for concurrent use and honour ctx.
type MessageSender interface {
	SendMessage(ctx context.Context, text string) error
}

// UserMessageSink is a [Sink] that tells the user about flagged and refused
// channels in words, through a [MessageSender]. Allowed channels are not
// reported. Create with [NewUserMessageSink]; safe for concurrent use.
type UserMessageSink struct {
	s MessageSender
}

// NewUserMessageSink returns a sink sending [FormatUserMessage] texts to s.
func NewUserMessageSink(s MessageSender) *UserMessageSink { return &UserMessageSink{s: s} }

// Send formats a and passes it to the MessageSender, unless a is an allow.
func (u *UserMessageSink) Send(ctx context.Context, a Alert) error {
	if a.Decision.Action == ActionAllow {
		return nil
	}
	if err := u.s.SendMessage(ctx, FormatUserMessage(a)); err != nil {
		return fmt.Errorf("policy: user message: %w", err)
	}
	return nil
}

var kindNouns = map[Kind][2]string{
	KindChat:         {"chat message", "chat messages"},
	KindStanza:       {"stanza", "stanzas"},
	KindMediaCall:    {"call", "calls"},
	KindFileTransfer: {"file transfer", "file transfers"},
	KindDataChannel:  {"data channel", "data channels"},
	KindBytestream:   {"bytestream", "bytestreams"},
}

var protectionAdjectives = map[Protection]string{
	ProtectionE2EBound:      "end-to-end encrypted",
	ProtectionE2EUnverified: "unverified encrypted",
	ProtectionTransportOnly: "transport-only encrypted",
	ProtectionCleartext:     "cleartext",
}

var actionVerbs = map[Action]string{
	ActionAllow:  "allowed",
	ActionFlag:   "flagged",
	ActionRefuse: "refused",
}

// FormatUserMessage renders a human-readable notice for a, for example:
//
//	securejingle: refused a cleartext file transfer from bob@example.net (rule default-refuse-cleartext-channels). Ask your contact to enable encryption.
//
// A summary reads "... flagged 41 more cleartext chat messages from ... since
// 15:04:05 UTC ...". Peer-supplied text is stripped of control and
// bidirectional formatting characters and bounded: the peer appears as
// [ShowJID] renders it, the rule message is cut at [MaxUserText] bytes, and
// [Decision.Detail] is never shown.
func FormatUserMessage(a Alert) string {
	var b strings.Builder
	b.WriteString("securejingle: ")
	verb, ok := actionVerbs[a.Decision.Action]
	if !ok {
		verb = "noticed"
	}
	b.WriteString(verb)
	b.WriteByte(' ')
	nouns, ok := kindNouns[a.Facts.Kind]
	if !ok {
		nouns = [2]string{"channel", "channels"}
	}
	adj := protectionAdjectives[a.Facts.Protection]
	if a.Summary {
		b.WriteString(strconv.Itoa(a.Count))
		b.WriteString(" more ")
		if adj != "" {
			b.WriteString(adj)
			b.WriteByte(' ')
		}
		if a.Count == 1 {
			b.WriteString(nouns[0])
		} else {
			b.WriteString(nouns[1])
		}
	} else {
		phrase := nouns[0]
		if adj != "" {
			phrase = adj + " " + phrase
		}
		if strings.ContainsRune("aeiou", rune(phrase[0])) {
			b.WriteString("an ")
		} else {
			b.WriteString("a ")
		}
		b.WriteString(phrase)
	}
	if peer := ShowJID(a.Facts.PeerJID); peer != "" {
		if a.Facts.Direction == DirectionOutgoing {
			b.WriteString(" to ")
		} else {
			b.WriteString(" from ")
		}
		b.WriteString(peer)
	}
	if a.Summary && !a.Since.IsZero() {
		b.WriteString(" since ")
		b.WriteString(a.Since.UTC().Format(time.TimeOnly))
		b.WriteString(" UTC")
	}
	if a.Decision.Rule != "" {
		b.WriteString(" (rule ")
		b.WriteString(truncate(sanitize(a.Decision.Rule), MaxShownJID))
		b.WriteString(")")
	}
	b.WriteByte('.')
	if m := truncate(sanitize(a.Decision.Message), MaxUserText); m != "" {
		b.WriteByte(' ')
		b.WriteString(m)
	}
	return b.String()
}
