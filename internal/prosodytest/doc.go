// Package prosodytest starts a real Prosody XMPP server for integration
// tests and logs mellium clients in to it.
//
// It follows the pattern of mellium's internal/integration/prosody: every
// call to [Start] writes a fresh prosody.cfg.lua into a [testing.TB.TempDir],
// picks a random free loopback port for client-to-server (c2s) connections,
// generates a self-signed ECDSA P-256 certificate for the VirtualHost domain,
// runs `prosody -F --config FILE` in the foreground and stops it in
// [testing.TB.Cleanup]. When the test failed, the cleanup also prints the tail
// of the server log.
//
// The server listens on 127.0.0.1 only. Server-to-server (s2s) is disabled
// and no HTTP module is loaded, so c2s is the only open port. TLS is required
// (c2s_require_encryption), accounts use "internal_plain" storage so that
// both SCRAM-SHA-1 and PLAIN are offered after STARTTLS, and in-band
// registration is off: accounts are created with [Server.AddUser], which runs
// prosodyctl. Enabled modules: roster, saslauth, tls, disco, carbons, pep,
// private, vcard4, ping and blocklist, plus Prosody's autoloaded ones
// (presence, message, iq, offline, c2s). More can be added with
// [WithModules] (for example "mam").
//
// Clients dial [Server.Addr] directly, so the domain ([Server.Domain],
// "example.test" unless [WithDomain] says otherwise) needs no DNS; TLS is
// verified against [Server.CertPool] with the domain as the server name.
// [Dial] returns a negotiated *xmpp.Session; it does not call Serve, because
// Serve blocks and needs the test's own handler: run `go sess.Serve(h)`
// before any SendIQ.
//
// # A hostile server
//
// [WithHostile] loads mod_securejingle_hostile (prosody/ in this package,
// embedded and written to the server's plugin directory) and logs in a
// control account ([HostileControl]); [Server.Hostile] then makes the real
// server attack its own users on command, for attack tests of clients that
// must detect or resist it:
//
//	srv := prosodytest.Start(t, prosodytest.WithHostile())
//	h := srv.Hostile(t)
//	h.StripSupport(t, bob, e2e.NS)                   // (e) strip <e2e/> from bob's presence
//	h.SwapPresenceKey(t, bob, e2e.NS, evilE2E)       // (b) replace it
//	h.StripContent(t, bob, e2e.NS)                   // (f) remove <c/> from bob's messages
//	h.Reroute(t, prosodytest.Reroute{To: bob, NewTo: mallory}) // (d)
//	h.Replay(t, entry)                               // (c) re-send a logged stanza
//	h.Phantom(t, prosodytest.Phantom{JID: bobEvil, To: alice,   // (a) invented device
//		Presence: []string{evilE2E},
//		Answers:  []prosodytest.Answer{{Child: bundleName, Result: []string{evilBundle}}}})
//	h.ForgeCarbon(t, prosodytest.Carbon{Account: alice, From: aliceOther, To: bob, Body: "hi"}) // (g)
//	h.Withhold(t, prosodytest.Match{Stanza: "message", From: bob})
//
// The general forms are [Hostile.Rewrite] (remove, add or drop on the last
// hop), [Hostile.Answer] (answer IQs in someone's name), [Hostile.Inject] and
// [Hostile.Route]. A command is in force once its method returns. Every
// stanza that crosses a user's stream is logged ([Hostile.Log],
// [Hostile.WaitLog]): what the client sent ("in") and what each session was
// sent after rewriting ("out", "drop"), so a test can check what really
// crossed the wire. A phantom can also be a real second login with the
// account's password ([Server.Login] with a new resource).
//
// The protocol between [Hostile] and the module (an IQ carrying JSON, from
// the control account only) is described at the top of the Lua file.
//
// # TURN through XEP-0215
//
// [WithTURN] loads Prosody's mod_turn_external (Prosody 0.12 ships it; it
// depends on mod_external_services, which answers urn:xmpp:extdisco:2
// requests from c2s sessions). The server then lists a STUN and a TURN
// server at [TURN].Host and [TURN].Port, and, with [TURN].TCP, the same
// over TCP. The TURN entries are restricted and carry TURN REST API
// credentials: username "EXPIRY:User" (just "EXPIRY" without a User),
// password base64(HMAC-SHA1(Secret, username)), 'expires' the same EXPIRY
// as an XEP-0082 UTC dateTime. A coturn started with use-auth-secret and
// the same static-auth-secret accepts them (internal/coturntest). Give
// the TURN server's IP address as Host: the module's default is the XMPP
// domain, which does not resolve in tests.
//
// # A SOCKS5 proxy
//
// [WithProxy65] adds Prosody's mod_proxy65 (XEP-0065) as the component
// "proxy.DOMAIN" on a random 127.0.0.1 port ([Server.Proxy65]). It is
// listed in the host's disco#items, answers the streamhost query with
// host 127.0.0.1, and joins the two connections of a DST.ADDR once the
// party whose JID is hashed first activates it (mod_proxy65 computes
// SHA-1(sid + activator + target)). It expects the SOCKS5 greeting and
// the CONNECT request each in one TCP segment.
//
// # Skipping
//
// When the prosody or prosodyctl program is missing, [Start] calls t.Skip,
// or t.Fatal when the environment variable SECUREJINGLE_INTEGRATION is "1"
// (as `make check` sets it). On Debian the programs come from the "prosody"
// package.
//
// # Prosody version notes
//
// Written against Debian 12's Prosody 0.12.3 (Lua 5.4; the process shows up
// as "lua5.4" in ps). Quirks met:
//
//   - The "daemonize" config option is deprecated in 0.12 and logs a warning;
//     the foreground mode is asked for with the -F flag instead.
//   - Started as root, prosody and prosodyctl switch to the "prosody" user
//     unless run_as_root = true, and that user cannot read a root-owned temp
//     dir; the config therefore sets run_as_root = true (no effect when not
//     root).
//   - prosodyctl 0.12 has no roster command (mod_roster_command is a
//     community module that Debian does not ship), so [Server.Subscribe] logs
//     both users in and performs the RFC 6121 §3 subscribe/subscribed
//     exchange, then checks that both rosters say subscription="both".
//   - `prosodyctl register USER HOST PASSWORD` is the ejabberdctl-compatible
//     spelling, hidden from the usage text but present in 0.12; unlike
//     `adduser` it takes the password as an argument instead of from a
//     terminal, and it overwrites an existing account. It writes the account
//     store directly, so it works whether or not the server is running.
//   - c2s and s2s are autoloaded; s2s is switched off through
//     modules_disabled, which leaves the c2s port as the only listener.
//   - A port that is taken shows up only as "Failed to open server port" in
//     the log (the process keeps running); [Start] watches for it and retries
//     on a new random port.
//   - Carbon copies (XEP-0280) arrive without a from attribute, meaning the
//     account's bare JID (RFC 6120 §8.1.2.1).
//   - PEP nodes default to the "presence" access model: a non-contact gets
//     <forbidden/>.
//   - Shutdown on SIGTERM waits up to about a second for sessions to close.
//   - The package installs a system service whose postinst may start it
//     (listening on *:5222). These tests never use it; deps scripts should
//     stop it.
//
// # mellium v0.22 notes
//
//   - xmpp.BindResource writes the (empty) JID instead of the requested
//     resource into <resource/>, so the server always picks a random one.
//     [Server.Login] uses its own bind feature, so the resource passed to
//     [Dial] is the one bound.
//   - A Serve handler's token reader starts after the start element it is
//     given; to decode the whole stanza with encoding/xml, read from
//     xmlstream.MultiReader(xmlstream.Token(*start), xmlstream.Inner(r),
//     xmlstream.Token(start.End())).
//   - A SASL failure comes back as an error of an internal mellium type
//     that callers cannot match; [Server.CheckPassword] offers
//     [ErrNotAuthorized] instead, via a hand-written PLAIN exchange.
package prosodytest
