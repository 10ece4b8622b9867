package policy

// Action is what the gateway does with a channel. The zero value is invalid;
// [Policy.Decide] never returns it.
type Action uint8

// Actions.
const (
	ActionAllow  Action = iota + 1 // "allow": set the channel up silently
	ActionFlag                     // "flag": set it up and alert the user
	ActionRefuse                   // "refuse": tear it down and alert the user
)

// Severity grades an alert. The zero value is invalid; [Policy.Decide] never
// returns it.
type Severity uint8

// Severities.
const (
	SeverityInfo     Severity = iota + 1 // "info"
	SeverityWarning                      // "warning"
	SeverityCritical                     // "critical"
)

var (
	actionNames   = []string{"", "allow", "flag", "refuse"}
	severityNames = []string{"", "info", "warning", "critical"}
)

// String returns the TOML name of a, "unspecified" for the zero value.
func (a Action) String() string { return enumString(actionNames, uint8(a), "Action") }

// ParseAction parses "allow", "flag" or "refuse".
func ParseAction(s string) (Action, error) {
	v, err := parseEnum(actionNames, s, "action")
	return Action(v), err
}

// MarshalText implements [encoding.TextMarshaler]; the zero value is "".
func (a Action) MarshalText() ([]byte, error) { return marshalEnum(actionNames, uint8(a), "Action") }

// UnmarshalText implements [encoding.TextUnmarshaler]; "" is the zero value.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(actionNames, b, "action")
	if err == nil {
		*a = Action(v)
	}
	return err
}

// String returns the TOML name of s, "unspecified" for the zero value.
func (s Severity) String() string { return enumString(severityNames, uint8(s), "Severity") }

// ParseSeverity parses "info", "warning" or "critical".
func ParseSeverity(s string) (Severity, error) {
	v, err := parseEnum(severityNames, s, "severity")
	return Severity(v), err
}

// MarshalText implements [encoding.TextMarshaler]; the zero value is "".
func (s Severity) MarshalText() ([]byte, error) {
	return marshalEnum(severityNames, uint8(s), "Severity")
}

// UnmarshalText implements [encoding.TextUnmarshaler]; "" is the zero value.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(severityNames, b, "severity")
	if err == nil {
		*s = Severity(v)
	}
	return err
}

// defaultSeverity is the severity of a rule that names none.
func defaultSeverity(a Action) Severity {
	switch a {
	case ActionAllow:
		return SeverityInfo
	case ActionRefuse:
		return SeverityCritical
	default:
		return SeverityWarning
	}
}

// Decision is the outcome of [Policy.Decide]. It is a plain value.
type Decision struct {
	Action   Action   `json:"action"`
	Severity Severity `json:"severity"`
	// Rule is the name of the rule that matched.
	Rule string `json:"rule"`
	// Index is the position of that rule in [Policy.Rules]: user rules
	// first, then the built-in ones.
	Index int `json:"index"`
	// Message is the rule's message template rendered for the facts; it
	// may be empty. It is shown to the user (see [FormatUserMessage]), so
	// it must not carry text a peer or server chose beyond a JID shown
	// with [ShowJID].
	Message string `json:"message,omitempty"`
	// Detail is technical detail for the audit log and the API only (for
	// example an error naming a peer's resource): [FormatUserMessage] never
	// shows it. Producers bound it with [BoundDetail].
	Detail string `json:"detail,omitempty"`
}
