package policy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrUnknownKey is wrapped by a [ConfigError] for a key the policy file
// format does not define (a misspelt fact name, for instance).
var ErrUnknownKey = errors.New("policy: unknown key")

// MaxConfigSize bounds the policy file accepted by [ParseConfig].
const MaxConfigSize = 1 << 20

// ConfigError reports a problem in a policy file; it is a plain value. It wraps [ErrUnknownKey],
// [ErrInvalidValue], [ErrInvalidPattern] or a TOML syntax error.
type ConfigError struct {
	Line int    // 1-based line in the TOML source, 0 if unknown
	Rule int    // 1-based index of the [[rule]], 0 for top-level problems
	Key  string // the offending key, if any
	Err  error
}

// Error formats the problem as "policy: config line N (rule R): key: ...".
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("policy: config")
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Rule > 0 {
		fmt.Fprintf(&b, " (rule %d)", e.Rule)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "policy: "))
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

var ruleKeys = []string{
	"name", "action", "severity", "message",
	"kind", "direction", "peer", "peer_device", "trust", "protection",
	"signaling", "stanza_type", "secured_session", "on_roster", "peer_supports_e2e",
}

// ParseConfig parses a policy file:
//
//	replace_defaults = false   # optional
//	[[rule]]
//	name = "..."               # optional, defaults to rule-N
//	kind = ["media-call", "file-transfer"]
//	peer = "*@example.net"
//	action = "refuse"          # allow | flag | refuse
//	severity = "critical"      # optional: info | warning | critical
//	message = "..."            # optional template
//
// Every match key is optional: kind, direction, trust, protection and
// signaling take a name or a list of names; peer and stanza_type a string or
// a list; peer_device an integer or a list; secured_session, on_roster and
// peer_supports_e2e a boolean. Errors are *[ConfigError] carrying the line.
// The returned rules are checked as [Compile] would check them.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, &ConfigError{Err: fmt.Errorf("%w: file larger than %d bytes", ErrInvalidValue, MaxConfigSize)}
	}
	src := string(data)
	var raw map[string]any
	if _, err := toml.Decode(src, &raw); err != nil {
		ce := &ConfigError{Err: fmt.Errorf("policy: %w", err)}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			ce.Line = pe.Position.Line
		}
		return nil, ce
	}
	ix := indexLines(src)
	cfg := &Config{}
	for _, k := range sortedKeys(raw, func(k string) int { return ix.top[k] }) {
		v := raw[k]
		switch k {
		case "replace_defaults":
			b, ok := v.(bool)
			if !ok {
				return nil, &ConfigError{Line: ix.top[k], Key: k, Err: typeErr("a boolean", v)}
			}
			cfg.ReplaceDefaults = b
		case "rule":
			tables, ok := v.([]map[string]any)
			if !ok {
				return nil, &ConfigError{Line: ix.top[k], Key: k,
					Err: fmt.Errorf("%w: rules must be an array of tables ([[rule]])", ErrInvalidValue)}
			}
			for i, t := range tables {
				r, err := parseRule(t, i, ix)
				if err != nil {
					return nil, err
				}
				cfg.Rules = append(cfg.Rules, r)
			}
		default:
			return nil, &ConfigError{Line: ix.top[k], Key: k,
				Err: fmt.Errorf("%w %q (want replace_defaults or [[rule]])", ErrUnknownKey, k)}
		}
	}
	// Check the rules as Compile will, so the error carries a line.
	if _, err := compileUser(cfg.Rules); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) && ce.Key != "" && ce.Rule > 0 {
			ce.Line = ix.ruleKeyLine(ce.Rule-1, ce.Key)
		}
		return nil, err
	}
	return cfg, nil
}

func sortedKeys(m map[string]any, line func(string) int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := line(a) - line(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return keys
}

func typeErr(want string, v any) error {
	return fmt.Errorf("%w: want %s, have %s", ErrInvalidValue, want, tomlTypeName(v))
}

func tomlTypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

func parseRule(t map[string]any, i int, ix *lineIndex) (Rule, error) {
	r := Rule{Line: ix.ruleLine(i)}
	fail := func(key string, err error) (Rule, error) {
		return Rule{}, &ConfigError{Line: ix.ruleKeyLine(i, key), Rule: i + 1, Key: key, Err: err}
	}
	lineOf := func(k string) int { return ix.ruleKeyLine(i, k) }
	for _, k := range sortedKeys(t, lineOf) {
		v := t[k]
		var err error
		switch k {
		case "name":
			r.Name, err = tomlString(v)
			if err == nil && (r.Name == "" || strings.ContainsFunc(r.Name, unsafeRune)) {
				err = fmt.Errorf("%w: name must be non-empty printable text", ErrInvalidValue)
			}
		case "message":
			r.Message, err = tomlString(v)
		case "action":
			var s string
			if s, err = tomlString(v); err == nil {
				r.Action, err = ParseAction(s)
			}
		case "severity":
			var s string
			if s, err = tomlString(v); err == nil {
				r.Severity, err = ParseSeverity(s)
			}
		case "kind":
			r.Match.Kind, err = tomlEnums(v, ParseKind)
		case "direction":
			r.Match.Direction, err = tomlEnums(v, ParseDirection)
		case "trust":
			r.Match.Trust, err = tomlEnums(v, ParseTrust)
		case "protection":
			r.Match.Protection, err = tomlEnums(v, ParseProtection)
		case "signaling":
			r.Match.Signaling, err = tomlEnums(v, ParseSignaling)
		case "peer":
			r.Match.Peer, err = tomlEnums(v, func(s string) (string, error) {
				_, err := compilePeerPattern(s)
				return s, err
			})
		case "stanza_type":
			r.Match.StanzaType, err = tomlEnums(v, func(s string) (string, error) { return s, nil })
		case "peer_device":
			r.Match.PeerDevice, err = tomlDevices(v)
		case "secured_session":
			r.Match.SecuredSession, err = tomlBool(v)
		case "on_roster":
			r.Match.OnRoster, err = tomlBool(v)
		case "peer_supports_e2e":
			r.Match.PeerSupportsE2E, err = tomlBool(v)
		default:
			err = fmt.Errorf("%w %q (want one of %s)", ErrUnknownKey, k, strings.Join(ruleKeys, ", "))
		}
		if err != nil {
			return fail(k, err)
		}
	}
	if r.Action == 0 {
		return fail("action", fmt.Errorf("%w: every rule needs an action (allow, flag or refuse)", ErrInvalidValue))
	}
	return r, nil
}

func tomlString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", typeErr("a string", v)
	}
	return s, nil
}

func tomlBool(v any) (*bool, error) {
	b, ok := v.(bool)
	if !ok {
		return nil, typeErr("a boolean", v)
	}
	return &b, nil
}

// tomlList accepts one TOML value of type E or a non-empty array of them,
// converting each with conv; one and many name E for error messages.
func tomlList[E, T any](v any, one, many string, conv func(E) (T, error)) ([]T, error) {
	var items []any
	switch x := v.(type) {
	case E:
		items = []any{x}
	case []any:
		if len(x) == 0 {
			return nil, fmt.Errorf("%w: empty list matches nothing", ErrInvalidValue)
		}
		items = x
	default:
		return nil, typeErr(one+" or an array of "+many, v)
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		e, ok := it.(E)
		if !ok {
			return nil, typeErr(one, it)
		}
		t, err := conv(e)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// tomlEnums accepts a string or a non-empty array of strings.
func tomlEnums[T any](v any, parse func(string) (T, error)) ([]T, error) {
	return tomlList(v, "a string", "strings", parse)
}

// tomlDevices accepts a device id or a non-empty array of them.
func tomlDevices(v any) ([]uint32, error) {
	return tomlList(v, "an integer", "integers", func(n int64) (uint32, error) {
		if n < 0 || n > math.MaxUint32 {
			return 0, fmt.Errorf("%w: device id %d out of range 0..%d", ErrInvalidValue, n, uint32(math.MaxUint32))
		}
		return uint32(n), nil
	})
}

// MarshalTOML writes c in the format [ParseConfig] reads; parsing the
// output gives back c (apart from Rule.Line).
func (c *Config) MarshalTOML() ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "replace_defaults = %t\n", c.ReplaceDefaults)
	for _, r := range c.Rules {
		b.WriteString("\n[[rule]]\n")
		if r.Name != "" {
			fmt.Fprintf(&b, "name = %s\n", tomlQuote(r.Name))
		}
		m := &r.Match
		writeList(&b, "kind", strs(m.Kind))
		writeList(&b, "direction", strs(m.Direction))
		writeList(&b, "peer", m.Peer)
		if len(m.PeerDevice) > 0 {
			ds := make([]string, len(m.PeerDevice))
			for i, d := range m.PeerDevice {
				ds[i] = strconv.FormatUint(uint64(d), 10)
			}
			fmt.Fprintf(&b, "peer_device = [%s]\n", strings.Join(ds, ", "))
		}
		writeList(&b, "trust", strs(m.Trust))
		writeList(&b, "protection", strs(m.Protection))
		writeList(&b, "signaling", strs(m.Signaling))
		writeList(&b, "stanza_type", m.StanzaType)
		for _, kb := range []struct {
			k string
			v *bool
		}{{"secured_session", m.SecuredSession}, {"on_roster", m.OnRoster}, {"peer_supports_e2e", m.PeerSupportsE2E}} {
			if kb.v != nil {
				fmt.Fprintf(&b, "%s = %t\n", kb.k, *kb.v)
			}
		}
		a, err := r.Action.MarshalText()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "action = %s\n", tomlQuote(string(a)))
		if r.Severity != 0 {
			s, err := r.Severity.MarshalText()
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(&b, "severity = %s\n", tomlQuote(string(s)))
		}
		if r.Message != "" {
			fmt.Fprintf(&b, "message = %s\n", tomlQuote(r.Message))
		}
	}
	return []byte(b.String()), nil
}

func writeList(b *strings.Builder, key string, vals []string) {
	if len(vals) == 0 {
		return
	}
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = tomlQuote(v)
	}
	if len(q) == 1 {
		fmt.Fprintf(b, "%s = %s\n", key, q[0])
		return
	}
	fmt.Fprintf(b, "%s = [%s]\n", key, strings.Join(q, ", "))
}

// tomlQuote writes a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
