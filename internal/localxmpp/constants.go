package localxmpp

import "time"

// Namespaces (specification constants).
const (
	nsStreams   = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsRoster    = "jabber:iq:roster"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsDiscoItem = "http://jabber.org/protocol/disco#items"
	nsPubSub    = "http://jabber.org/protocol/pubsub"
	nsPubSubEvt = "http://jabber.org/protocol/pubsub#event"
	nsPubSubErr = "http://jabber.org/protocol/pubsub#errors"
	nsCarbons   = "urn:xmpp:carbons:2"
	nsForward   = "urn:xmpp:forward:0"
	nsHints     = "urn:xmpp:hints"
	nsDelay     = "urn:xmpp:delay"
	nsPing      = "urn:xmpp:ping"
	nsOffline   = "msgoffline"
)

// Implementation constants.
const (
	// maxStanzaSize bounds the serialised size of one incoming stanza.
	maxStanzaSize = 256 << 10
	// readSlack is how far the raw (TLS) byte count may run past
	// maxStanzaSize before the connection is cut; it covers TLS framing and
	// the XML decoder's read-ahead buffer.
	readSlack = 64 << 10
	// maxNegotiationBytes bounds what a client may send before it is bound.
	maxNegotiationBytes = 64 << 10
	// negotiationTimeout bounds STARTTLS + SASL + bind.
	negotiationTimeout = 30 * time.Second
	// maxDepth bounds element nesting inside a stanza.
	maxDepth = 64
	// maxQueue is the per-session output queue length; a session whose queue
	// overflows is closed so that a slow client cannot hold up others.
	maxQueue = 1024
	// maxOffline is the number of messages kept per offline account.
	maxOffline = 1000
	// pepMaxItems is the number of items kept per PEP node.
	pepMaxItems = 16
	// writeTimeout bounds a single write to a client.
	writeTimeout = 30 * time.Second
)

// nsDataForms is the XEP-0004 namespace (publish-options forms).
const nsDataForms = "jabber:x:data"
