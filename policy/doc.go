// Package policy turns channel facts into enforced decisions for securejingle.
//
// The seed requirement it implements is: "Clients must provide notification
// to the user if a cleartext client-to-client channel is attempted during an
// otherwise secured session or when no session is currently present." The
// gateway describes every client-to-client channel it sees (chat, protected
// stanza, Jingle call, file transfer, data channel, bytestream) as [Facts],
// asks a compiled [Policy] for a [Decision] (allow, flag or refuse), and hands
// flagged and refused channels to a [Notifier] that fans [Alert] values out to
// sinks: the append-only audit log ([AuditLog]), the control API event stream
// ([Broadcaster]), Prometheus ([MetricsSink]), an external command
// ([CommandSink]) and the user's own JID ([UserMessageSink], which the gateway
// plugs its XMPP client into).
//
// Rules come from TOML ([ParseConfig], [Compile], [Load]). They are an ordered
// list; the first rule that matches decides. A built-in table of safe
// defaults, written out in [DefaultConfigTOML], follows the user's rules
// unless the file sets replace_defaults = true, and a final catch-all always
// flags: nothing unclassified is allowed silently.
//
// The package knows no XMPP and no cryptography and imports no other
// securejingle package: facts in, decision out.
package policy
