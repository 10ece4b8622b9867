// Package clienttest drives real XMPP clients that no one here wrote, from
// Debian packages, against a c2s endpoint (a real Prosody from
// internal/prosodytest, or a gateway's local front), for integration tests
// of gateway mode (docs/protocol.md §22):
//
//   - [StartSlixmpp]: a small script (slixmpp_client.py, embedded) on
//     Debian's python3-slixmpp, driven with JSON lines on its standard
//     input and output. It trusts only [Endpoint.Cert] (an SSL context
//     without the system roots) and checks the JID's domain against it.
//   - [SendxmppSend] and [StartSendxmppListener]: go-sendxmpp sending one
//     message, and `go-sendxmpp -l` printing what it receives. go-sendxmpp
//     has no CA option; it is pointed at a file holding only the
//     endpoint's certificate through SSL_CERT_FILE, which Go's crypto/x509
//     reads instead of the system roots.
//   - [StartProfanity]: Profanity in a tmux server of its own, typed into
//     with `tmux send-keys` and read with `tmux capture-pane`. Profanity
//     shows the self-signed certificate it cannot verify; the harness pins
//     it: `/tls allow` only if the SHA-1 fingerprint shown is that of
//     Endpoint.Cert, `/tls deny` and a failed test otherwise.
//
// Every client gets a private temporary HOME (and XDG directories) with
// only its own account in it; passwords are in mode-0600 files or the
// environment, never on a command line. Every process runs in its own
// process group under a deadline ([ProcessLimit]) and is stopped (then
// killed, with its group) when the test ends; every wait has a deadline
// ([WaitLimit]) and fails the test with what the client printed. Neither
// is a performance assertion. Endpoints must be on loopback.
//
// # Skipping
//
// When a program is missing the test is skipped, or failed when
// SECUREJINGLE_INTEGRATION=1 (`make check`, whose `make deps` installs
// python3-slixmpp, go-sendxmpp, profanity and tmux).
//
// # Client notes
//
//   - slixmpp 1.8 (Debian 12): the interpreter must be Debian's
//     /usr/bin/python3; a pyenv or venv python3 first in PATH does not see
//     the Debian module. Without a resource in the JID the server picks
//     one.
//   - go-sendxmpp 0.5.6: -l prints "TIMESTAMP BAREJID: BODY" on standard
//     output; with -d it writes what the server sent to standard error,
//     which the harness reads for the bound JID and for the server's
//     reflection of its initial presence (its readiness). Its resources
//     are "go-sendxmpp.XXXXXXXX".
//   - Profanity 0.13: the account file is
//     $XDG_DATA_HOME/profanity/accounts (a GKeyFile with password=), the
//     preferences $XDG_CONFIG_HOME/profanity/profrc; `-a ACCOUNT` connects
//     at start. A received chat message opens a window and shows
//     "<< chat message: FULLJID (win N)" in the console; [Profanity.WaitMessage]
//     switches to that window to read it.
package clienttest
