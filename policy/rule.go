package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Match holds a rule's conditions. A nil or empty field does not constrain;
// a non-empty list matches when the fact equals any element. A rule matches
// when every condition does. The zero value matches every channel. Match is
// a plain value; [Compile] copies it.
type Match struct {
	Kind       []Kind
	Direction  []Direction
	Peer       []string // JID patterns, see [Rule]
	PeerDevice []uint32
	Trust      []Trust
	Protection []Protection
	Signaling  []Signaling
	StanzaType []string

	SecuredSession  *bool
	OnRoster        *bool
	PeerSupportsE2E *bool
}

// Rule is one entry of a policy. Peer patterns are an exact bare JID
// ("bob@example.net", or a domain JID "example.net"), "*@domain" (any JID at
// that domain), "*.domain" (any JID at a strict subdomain) or "*". Message may
// use the placeholders {peer} {device} {kind} {direction} {trust}
// {protection} {signaling} {stanza_type} {rule} {action} {severity}; "{{" is
// a literal "{". A Rule is a plain value; [Compile] copies what it needs.
type Rule struct {
	Name     string
	Match    Match
	Action   Action
	Severity Severity // zero: info for allow, warning for flag, critical for refuse
	Message  string
	// Line is the TOML line of the rule's [[rule]] header, 0 when the rule
	// was not read from TOML.
	Line int
}

// Config is a parsed policy file: the user's rules in order and whether they
// replace the built-in defaults. It is a plain value.
type Config struct {
	ReplaceDefaults bool
	Rules           []Rule
}

// catchAllName names the rule [Compile] appends after everything else, so
// that no channel is ever left undecided.
const catchAllName = "implicit-flag-unmatched"

// compiledRule is a Rule prepared for matching without allocation.
type compiledRule struct {
	rule     Rule
	builtin  bool
	mask     uint64
	peers    []peerPattern
	severity Severity
	msg      template
}

// Policy is a compiled, immutable rule table. Its zero value is not usable;
// obtain one from [Compile], [Load] or [Default]. A Policy is safe for
// concurrent use; to reload, compile a new one and swap the pointer.
type Policy struct {
	rules    []compiledRule
	anyPeers bool
}

// Compile checks cfg and builds a Policy: cfg's rules in order, then the
// built-in defaults unless cfg.ReplaceDefaults, then a catch-all that flags
// (with warning severity). Errors are *[ConfigError]. A nil cfg yields the
// default policy.
func Compile(cfg *Config) (*Policy, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	p := &Policy{}
	user, err := compileUser(cfg.Rules)
	if err != nil {
		return nil, err
	}
	p.rules = user
	if !cfg.ReplaceDefaults {
		for _, r := range defaultRules {
			cr, _, err := compileRule(r)
			if err != nil {
				panic("policy: built-in rule does not compile: " + err.Error())
			}
			cr.builtin = true
			p.rules = append(p.rules, cr)
		}
	}
	last, _, _ := compileRule(Rule{Name: catchAllName, Action: ActionFlag,
		Message: "No policy rule matched this channel; it was flagged for review."})
	last.builtin = true
	p.rules = append(p.rules, last)
	for i := range p.rules {
		if p.rules[i].peers != nil {
			p.anyPeers = true
		}
	}
	return p, nil
}

// compileUser checks and compiles the user's rules.
func compileUser(rules []Rule) ([]compiledRule, error) {
	var out []compiledRule
	seen := map[string]int{}
	for i := range rules {
		r := rules[i]
		if r.Name == "" {
			r.Name = "rule-" + strconv.Itoa(i+1)
		}
		if prev, dup := seen[r.Name]; dup {
			return nil, &ConfigError{Line: r.Line, Rule: i + 1, Key: "name",
				Err: fmt.Errorf("%w: duplicate rule name %q (first used by rule %d)", ErrInvalidValue, r.Name, prev)}
		}
		seen[r.Name] = i + 1
		cr, key, err := compileRule(r)
		if err != nil {
			return nil, &ConfigError{Line: r.Line, Rule: i + 1, Key: key, Err: err}
		}
		out = append(out, cr)
	}
	return out, nil
}

// compileRule validates r and returns the compiled rule, or the TOML key at
// fault and the error.
func compileRule(r Rule) (compiledRule, string, error) {
	cr := compiledRule{rule: r}
	m := &r.Match
	var mask uint64
	mask |= enumMask(offKind, len(kindNames), u8s(m.Kind))
	mask |= enumMask(offDirection, len(directionNames), u8s(m.Direction))
	mask |= enumMask(offTrust, len(trustNames), u8s(m.Trust))
	mask |= enumMask(offProtection, len(protectionNames), u8s(m.Protection))
	mask |= enumMask(offSignaling, len(signalingNames), u8s(m.Signaling))
	mask |= boolMask(offSecured, m.SecuredSession)
	mask |= boolMask(offRoster, m.OnRoster)
	mask |= boolMask(offE2E, m.PeerSupportsE2E)
	cr.mask = mask
	for _, chk := range []struct {
		key   string
		vals  []uint8
		names []string
	}{
		{"kind", u8s(m.Kind), kindNames},
		{"direction", u8s(m.Direction), directionNames},
		{"trust", u8s(m.Trust), trustNames},
		{"protection", u8s(m.Protection), protectionNames},
		{"signaling", u8s(m.Signaling), signalingNames},
	} {
		for _, v := range chk.vals {
			if v == 0 || int(v) >= len(chk.names) {
				return cr, chk.key, fmt.Errorf("%w: %s value %d out of range", ErrInvalidValue, chk.key, v)
			}
		}
	}
	for _, s := range m.Peer {
		pp, err := compilePeerPattern(s)
		if err != nil {
			return cr, "peer", err
		}
		cr.peers = append(cr.peers, pp)
	}
	for _, s := range m.StanzaType {
		if s == "" {
			return cr, "stanza_type", fmt.Errorf("%w: empty stanza_type", ErrInvalidValue)
		}
	}
	if r.Action == 0 || int(r.Action) >= len(actionNames) {
		return cr, "action", fmt.Errorf("%w: action must be one of allow, flag, refuse", ErrInvalidValue)
	}
	cr.severity = r.Severity
	if cr.severity == 0 {
		cr.severity = defaultSeverity(r.Action)
	} else if int(cr.severity) >= len(severityNames) {
		return cr, "severity", fmt.Errorf("%w: severity must be one of info, warning, critical", ErrInvalidValue)
	}
	t, err := compileTemplate(r.Message)
	if err != nil {
		return cr, "message", err
	}
	cr.msg = t
	// Keep private copies so later changes to the caller's slices do not
	// reach the compiled policy.
	cr.rule.Match = cloneMatch(*m)
	return cr, "", nil
}

func cloneMatch(m Match) Match {
	c := Match{
		Kind: slices.Clone(m.Kind), Direction: slices.Clone(m.Direction),
		Peer: slices.Clone(m.Peer), PeerDevice: slices.Clone(m.PeerDevice),
		Trust: slices.Clone(m.Trust), Protection: slices.Clone(m.Protection),
		Signaling: slices.Clone(m.Signaling), StanzaType: slices.Clone(m.StanzaType),
	}
	cp := func(b *bool) *bool {
		if b == nil {
			return nil
		}
		v := *b
		return &v
	}
	c.SecuredSession, c.OnRoster, c.PeerSupportsE2E = cp(m.SecuredSession), cp(m.OnRoster), cp(m.PeerSupportsE2E)
	return c
}

func u8s[T ~uint8](vs []T) []uint8 {
	out := make([]uint8, len(vs))
	for i, v := range vs {
		out[i] = uint8(v)
	}
	return out
}

func enumMask(off uint, n int, vals []uint8) uint64 {
	if len(vals) == 0 {
		return (uint64(1)<<uint(n) - 1) << off
	}
	var m uint64
	for _, v := range vals {
		if int(v) < n {
			m |= 1 << (off + uint(v))
		}
	}
	return m
}

func boolMask(off uint, b *bool) uint64 {
	if b == nil {
		return 3 << off
	}
	return boolBit(off, *b)
}

// matchExtra checks the conditions that do not fit the bit mask.
func (r *compiledRule) matchExtra(f *Facts, bare, domain string) bool {
	if r.peers != nil {
		ok := false
		for i := range r.peers {
			if r.peers[i].match(bare, domain) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if d := r.rule.Match.PeerDevice; len(d) > 0 && !slices.Contains(d, f.PeerDevice) {
		return false
	}
	if s := r.rule.Match.StanzaType; len(s) > 0 && !slices.Contains(s, f.StanzaType) {
		return false
	}
	return true
}

// Decide returns the decision of the first rule that matches f. It never
// fails: the final catch-all flags whatever no other rule matched. Decide
// does not allocate unless the matching rule's message has placeholders.
func (p *Policy) Decide(f Facts) Decision {
	bits := f.bits()
	var bare, domain string
	if p.anyPeers {
		bare, domain = splitJID(f.PeerJID)
	}
	for i := range p.rules {
		r := &p.rules[i]
		if bits&^r.mask != 0 || !r.matchExtra(&f, bare, domain) {
			continue
		}
		return Decision{
			Action:   r.rule.Action,
			Severity: r.severity,
			Rule:     r.rule.Name,
			Index:    i,
			Message:  r.msg.render(&f, r),
		}
	}
	panic("policy: Decide on a Policy not built by Compile")
}

// Rules returns a copy of the compiled rule table in evaluation order, with
// defaulted names and severities filled in.
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i := range p.rules {
		out[i] = p.rules[i].rule
		out[i].Match = cloneMatch(out[i].Match)
		out[i].Severity = p.rules[i].severity
	}
	return out
}

// Check is one condition of a rule as evaluated by [Policy.Explain]. It is a
// plain value.
type Check struct {
	Field string // TOML key, e.g. "protection"
	Want  string // the rule's accepted values, e.g. "cleartext" or "[chat, stanza]"
	Got   string // the fact's value
	OK    bool
}

// Step explains one rule evaluated for a fact. It is a plain value.
type Step struct {
	Index   int
	Rule    string
	Line    int  // TOML line of the rule, 0 for built-in rules
	Builtin bool // a default or the final catch-all
	Matched bool
	Action  Action
	// Checks lists every condition of the rule, so a rule that did not
	// match shows all the conditions that failed, not only the first.
	Checks []Check
}

// Explain evaluates the rules in order for f and returns one Step per rule
// up to and including the one that matched, which is the last Step. It is
// meant for a "policy explain" command, not for the hot path.
func (p *Policy) Explain(f Facts) []Step {
	var steps []Step
	bare, domain := splitJID(f.PeerJID)
	for i := range p.rules {
		r := &p.rules[i]
		st := Step{Index: i, Rule: r.rule.Name, Line: r.rule.Line, Builtin: r.builtin, Action: r.rule.Action}
		m := &r.rule.Match
		add := func(field string, want []string, got string) {
			if len(want) == 0 {
				return
			}
			w := want[0]
			if len(want) > 1 {
				w = "[" + strings.Join(want, ", ") + "]"
			}
			st.Checks = append(st.Checks, Check{Field: field, Want: w, Got: got, OK: slices.Contains(want, got)})
		}
		add("kind", strs(m.Kind), f.Kind.String())
		add("direction", strs(m.Direction), f.Direction.String())
		if len(r.peers) > 0 {
			ok := false
			for j := range r.peers {
				ok = ok || r.peers[j].match(bare, domain)
			}
			w := strings.Join(m.Peer, ", ")
			if len(m.Peer) > 1 {
				w = "[" + w + "]"
			}
			st.Checks = append(st.Checks, Check{Field: "peer", Want: w, Got: sanitize(f.PeerJID), OK: ok})
		}
		if len(m.PeerDevice) > 0 {
			ds := make([]string, len(m.PeerDevice))
			for j, d := range m.PeerDevice {
				ds[j] = strconv.FormatUint(uint64(d), 10)
			}
			add("peer_device", ds, strconv.FormatUint(uint64(f.PeerDevice), 10))
		}
		add("trust", strs(m.Trust), f.Trust.String())
		add("protection", strs(m.Protection), f.Protection.String())
		add("signaling", strs(m.Signaling), f.Signaling.String())
		add("stanza_type", m.StanzaType, sanitize(f.StanzaType))
		addBool := func(field string, want *bool, got bool) {
			if want != nil {
				add(field, []string{strconv.FormatBool(*want)}, strconv.FormatBool(got))
			}
		}
		addBool("secured_session", m.SecuredSession, f.SecuredSession)
		addBool("on_roster", m.OnRoster, f.OnRoster)
		addBool("peer_supports_e2e", m.PeerSupportsE2E, f.PeerSupportsE2E)
		st.Matched = f.bits()&^r.mask == 0 && r.matchExtra(&f, bare, domain)
		steps = append(steps, st)
		if st.Matched {
			break
		}
	}
	return steps
}

func strs[T fmt.Stringer](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}
