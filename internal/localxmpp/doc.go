// Package localxmpp implements a small embedded XMPP client-to-server
// (RFC 6120, RFC 6121) server that listens on loopback. It exists for
// securejingle's demo and tests; production deployments use a standard
// server such as Prosody or ejabberd, and nothing here is meant to replace
// one.
//
// The server speaks to real clients built on mellium.im/xmpp: STARTTLS is
// required, then SASL PLAIN (the only mechanism offered, and only over TLS),
// then resource binding. Accounts and rosters live in memory and are set up
// through [Server.AddUser], [Server.AddRosterItem] and [Server.Subscribe].
//
// Supported protocol surface:
//   - routing of message, presence and iq stanzas between local accounts,
//     with 'from' stamped by the server (RFC 6120 §8.1.2.1) and the RFC 6121
//     §8.5 delivery rules for bare and full JIDs (messages to a bare JID go to
//     every available resource with non-negative priority, as Prosody does);
//   - offline storage of chat and normal messages for accounts with no
//     available resource, replayed with a XEP-0203 delay on the next initial
//     presence;
//   - presence broadcast to subscribed contacts and own resources, presence
//     probes answered from the server's state, unavailable presence on
//     disconnect, directed presence;
//   - jabber:iq:roster get (and pushes after [Server.AddRosterItem]);
//   - XEP-0030 disco#info and disco#items for the server and for accounts;
//   - XEP-0163 PEP: publish, items retrieval (presence access model) and
//     headline notifications to subscribed contacts;
//   - XEP-0280 message carbons;
//   - XEP-0199 ping to the server.
//
// For tests that need a hostile server, [Server.SetHook] installs a [Hook]
// that sees every stanza the server is about to route and may rewrite, drop
// or duplicate it, and [Server.Inject] delivers arbitrary stanzas (for
// example replays).
package localxmpp
