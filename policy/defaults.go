package policy

// DefaultConfigTOML is the built-in default policy written out as a policy
// file. [Compile] appends these rules after the user's unless the file sets
// replace_defaults = true; this text sets it, so that copying it into a file
// and editing it gives full control. Compiling it yields exactly the
// built-in table, which is parsed from this very text.
const DefaultConfigTOML = `# securejingle channel policy.
#
# Rules are tried in order; the first whose conditions all hold decides.
# Every condition is optional. Enumerations take one name or a list:
#   kind       = chat | stanza | media-call | file-transfer | data-channel | bytestream
#   direction  = incoming | outgoing
#   trust      = verified | tofu | unknown | key-changed | distrusted
#   protection = e2e-bound | e2e-unverified | transport-only | cleartext
#   signaling  = protected | unprotected | none
# peer takes JID patterns: "bob@example.net", "*@example.net" (that domain),
# "*.example.net" (its subdomains) or "*". peer_device takes device ids,
# stanza_type stanza type strings, and secured_session, on_roster and
# peer_supports_e2e take true or false.
# action = allow | flag | refuse; severity = info | warning | critical
# (default: info for allow, warning for flag, critical for refuse).
# message may use {peer} {device} {kind} {direction} {trust} {protection}
# {signaling} {stanza_type} {rule} {action} {severity}.
#
# Without replace_defaults = true these defaults follow your own rules.
replace_defaults = true

# A peer whose identity key changed is refused until the new key is verified.
[[rule]]
name = "default-refuse-key-changed"
trust = "key-changed"
action = "refuse"
severity = "critical"
message = "Your contact's identity key changed. Verify the new key before accepting anything from them."

# A peer whose key the user distrusted is refused until the user trusts it again.
[[rule]]
name = "default-refuse-distrusted"
trust = "distrusted"
action = "refuse"
severity = "critical"
message = "You distrusted this contact's account key. Nothing from them is accepted until you verify or accept their key again."

# A file offered or requested without securejingle's stream encryption
# (plain IBB or SOCKS5, a data channel without our key, JET whose key came in
# another envelope such as OMEMO, or file signaling sent around the e2e
# layer) while an end-to-end session with the peer exists: a downgrade.
[[rule]]
name = "default-refuse-cleartext-files"
kind = "file-transfer"
protection = "cleartext"
secured_session = true
action = "refuse"
severity = "critical"
message = "Your conversation is end-to-end encrypted, but this file was offered without securejingle's encryption (a plain bytestream or another client's key), so it was refused. Ask your contact to send it from a securejingle device."

# Calls, files, data channels and bytestreams are never set up in cleartext.
[[rule]]
name = "default-refuse-cleartext-channels"
kind = ["media-call", "file-transfer", "bytestream", "data-channel"]
protection = "cleartext"
action = "refuse"
severity = "critical"
message = "Ask your contact to enable encryption."

# Jingle signaling sent around the e2e layer by a peer who supports it is a
# downgrade: the server could have swapped the DTLS fingerprint.
[[rule]]
name = "default-refuse-unprotected-jingle"
kind = ["media-call", "file-transfer"]
signaling = "unprotected"
peer_supports_e2e = true
action = "refuse"
severity = "critical"
message = "The call setup bypassed end-to-end encryption although your contact supports it; the server may be interfering."

# Transport encryption whose keys the server could have replaced.
[[rule]]
name = "default-flag-transport-only"
protection = "transport-only"
action = "flag"
severity = "warning"
message = "Only the connection is encrypted; its key was not protected end to end, so the server could intercept it."

# A cleartext message from a contact whose device has sent us end-to-end
# encrypted messages: a downgrade (or a server injecting text). It is not
# delivered; a rule before this one may allow or flag it instead.
[[rule]]
name = "default-refuse-cleartext-downgrade"
kind = "chat"
protection = "cleartext"
secured_session = true
action = "refuse"
severity = "critical"
message = "Your conversation is end-to-end encrypted, but this message was not, so it was not delivered: it may be a downgrade attempt or text injected by the server."

# A cleartext message when no end-to-end session exists.
[[rule]]
name = "default-flag-cleartext-no-session"
kind = "chat"
protection = "cleartext"
secured_session = false
action = "flag"
severity = "info"
message = "No end-to-end encrypted session exists with this contact."

# A call from someone who is not in your contacts never rings, however well
# it is protected: strangers can reach you by chat (opportunistic access
# control), not by ringing your devices.
[[rule]]
name = "default-refuse-stranger-calls"
kind = "media-call"
direction = "incoming"
on_roster = false
action = "refuse"
severity = "warning"
message = "A call from someone who is not in your contacts was refused. Add them to your contacts to receive their calls."

[[rule]]
name = "default-allow-e2e-bound"
protection = "e2e-bound"
action = "allow"
severity = "info"

[[rule]]
name = "default-flag-e2e-unverified"
protection = "e2e-unverified"
action = "flag"
severity = "info"
message = "Encrypted, but not bound to a verified key. Compare fingerprints with your contact."

# Anything else was not classified: flag it, never allow it silently.
[[rule]]
name = "default-flag-unclassified"
action = "flag"
severity = "warning"
message = "This channel could not be classified; it was flagged for review."
`

// defaultRules is the built-in table, parsed from DefaultConfigTOML.
var defaultRules = mustParseDefaults()

func mustParseDefaults() []Rule {
	cfg, err := ParseConfig([]byte(DefaultConfigTOML))
	if err != nil {
		panic("policy: DefaultConfigTOML: " + err.Error())
	}
	for i := range cfg.Rules {
		cfg.Rules[i].Line = 0
	}
	return cfg.Rules
}

var defaultPolicy = func() *Policy {
	p, err := Compile(nil)
	if err != nil {
		panic("policy: default policy: " + err.Error())
	}
	return p
}()

// Default returns the built-in default policy. It is shared and immutable.
func Default() *Policy { return defaultPolicy }

// Load parses a policy file and compiles it; see [ParseConfig] and
// [Compile].
func Load(data []byte) (*Policy, error) {
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return Compile(cfg)
}
