package policy

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Placeholders a rule message may use. "{{" yields a literal "{".
var placeholders = []string{
	"peer", "device", "kind", "direction", "trust", "protection",
	"signaling", "stanza_type", "rule", "action", "severity",
}

// tmplSeg is a literal (field < 0) or a placeholder index.
type tmplSeg struct {
	lit   string
	field int
}

// template is a compiled message. A template without placeholders renders
// without allocating.
type template struct {
	constant string
	segs     []tmplSeg // nil when constant
}

func compileTemplate(s string) (template, error) {
	var segs []tmplSeg
	var lit strings.Builder
	hasField := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i += 2
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return template{}, fmt.Errorf("%w: message: unclosed %q at byte %d", ErrInvalidValue, "{", i)
			}
			name := s[i+1 : i+end]
			idx := -1
			for j, p := range placeholders {
				if p == name {
					idx = j
				}
			}
			if idx < 0 {
				return template{}, fmt.Errorf("%w: message: unknown placeholder {%s} (want one of %s)",
					ErrInvalidValue, name, strings.Join(placeholders, ", "))
			}
			if lit.Len() > 0 {
				segs = append(segs, tmplSeg{lit: lit.String(), field: -1})
				lit.Reset()
			}
			segs = append(segs, tmplSeg{field: idx})
			hasField = true
			i += end + 1
		default:
			lit.WriteByte(c)
			i++
		}
	}
	if !hasField {
		return template{constant: lit.String()}, nil
	}
	if lit.Len() > 0 {
		segs = append(segs, tmplSeg{lit: lit.String(), field: -1})
	}
	return template{segs: segs}, nil
}

func (t *template) render(f *Facts, r *compiledRule) string {
	if t.segs == nil {
		return t.constant
	}
	var b strings.Builder
	for _, s := range t.segs {
		if s.field < 0 {
			b.WriteString(s.lit)
			continue
		}
		switch placeholders[s.field] {
		case "peer":
			b.WriteString(ShowJID(f.PeerJID))
		case "device":
			b.WriteString(strconv.FormatUint(uint64(f.PeerDevice), 10))
		case "kind":
			b.WriteString(f.Kind.String())
		case "direction":
			b.WriteString(f.Direction.String())
		case "trust":
			b.WriteString(f.Trust.String())
		case "protection":
			b.WriteString(f.Protection.String())
		case "signaling":
			b.WriteString(f.Signaling.String())
		case "stanza_type":
			b.WriteString(sanitize(f.StanzaType))
		case "rule":
			b.WriteString(r.rule.Name)
		case "action":
			b.WriteString(r.rule.Action.String())
		case "severity":
			b.WriteString(r.severity.String())
		}
	}
	return b.String()
}

// sanitize makes peer-controlled text safe to show: control characters,
// bidirectional overrides and other format characters are replaced, so a
// JID cannot forge line breaks or reorder the notice around it.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

func unsafeRune(r rune) bool {
	return r == utf8RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
		r == '\u2028' || r == '\u2029'
}

const utf8RuneError = '\uFFFD'

// Bounds of peer-influenced text in alerts.
const (
	// MaxShownJID bounds a JID as [ShowJID] renders it, in bytes.
	MaxShownJID = 96
	// MaxUserText bounds the rule message of a user notice, in bytes.
	MaxUserText = 512
	// MaxDetail bounds [Decision.Detail], in bytes.
	MaxDetail = 1024
)

// ShowJID renders a JID for a notice to the user: its bare part only (a
// resource is chosen by whoever logged in), without control or
// bidirectional formatting characters, and at most [MaxShownJID] bytes
// (longer ones end in "…").
func ShowJID(j string) string {
	bare, _ := splitJID(j)
	return truncate(sanitize(bare), MaxShownJID)
}

// BoundDetail makes s fit [Decision.Detail]: sanitized and at most
// [MaxDetail] bytes.
func BoundDetail(s string) string { return truncate(sanitize(s), MaxDetail) }

// truncate cuts s to at most n bytes on a rune boundary, marking the cut
// with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
