package policy

// remedies says what the user should do about an alert of each built-in
// rule (the default rules of [DefaultConfigTOML] and the alerts the
// gateway raises itself, which no rule decides). The texts are constants:
// they never carry peer- or server-chosen text.
var remedies = map[string]string{
	"default-refuse-key-changed":         "Compare the new key with your contact in person or over another channel (securejingle verify, or the verify view), then verify or accept it; until then nothing from them is accepted.",
	"default-refuse-distrusted":          "Nothing to do if you meant to distrust this contact; if it was a mistake, compare keys with them again and verify the key.",
	"default-refuse-cleartext-files":     "Nothing was received. Ask your contact, over the encrypted chat, to send the file again from a securejingle device.",
	"default-refuse-cleartext-channels":  "Nothing was set up. Ask your contact to use securejingle so the channel is end-to-end encrypted.",
	"default-refuse-unprotected-jingle":  "Nothing was set up. Ask your contact to call or send again from securejingle; if it repeats, your server may be interfering: tell its administrator.",
	"default-flag-transport-only":        "Treat what goes over this channel as readable by the server; verify your contact and use a securejingle device for anything private.",
	"default-refuse-cleartext-downgrade": "Do not trust the text. Ask your contact over the encrypted chat whether they sent it; if they did not, your server injected it.",
	"default-flag-cleartext-no-session":  "The servers could read this message. Do not reply with anything private until your contact uses securejingle.",
	"default-refuse-stranger-calls":      "If you know the caller, add them to your contacts and ask them to call again.",
	"default-flag-e2e-unverified":        "Compare the safety numbers (SAS) or fingerprint with your contact and mark them verified.",
	"default-flag-unclassified":          "Read the details; if this channel is expected, add a rule to your policy file that allows it (securejingle policy explain shows the decision).",
	"integrity":                          "Nothing was accepted. If it repeats, the server or the network is tampering: read the details and compare keys with your contact.",
	"withheld":                           "Ask your contact over the encrypted chat to send the missing messages again; if it repeats, your server may be dropping messages.",
	"stripped-encryption":                "Ask your contact to send it again; if it repeats, your server strips encryption: report it to its administrator or move to another server.",
	"cleartext-sent-carbon":              "If you did not send it from another client, change your account password: the server or someone with your password forged it.",
	"support-stripped":                   "Nothing to do right away: messages stay encrypted to the devices you know. If it lasts, ask your contact whether they still use securejingle.",
	"misrouted":                          "Tell the addressee they missed a message; if it repeats, your server is misrouting messages: report it to its administrator.",
}

// Remedy says what the user should do about a: a sentence for the alerts
// of the built-in rules, and for a rule of the user's own policy file a
// pointer to that rule. It never carries text a peer or the server chose
// beyond the rule name as [ShowJID]-style sanitizing leaves it.
func Remedy(a Alert) string {
	if r, ok := remedies[a.Decision.Rule]; ok {
		return r
	}
	rule := truncate(sanitize(a.Decision.Rule), MaxShownJID)
	switch a.Decision.Action {
	case ActionRefuse:
		return "Refused by your policy rule " + rule + ": if it should be allowed, change the rule in your policy file (securejingle policy explain shows the decision)."
	case ActionFlag:
		return "Flagged by your policy rule " + rule + ": check that you expected it; securejingle policy explain shows the decision."
	}
	return ""
}
