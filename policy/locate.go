package policy

import "strings"

// TOML positions: BurntSushi/toml v1.6 keeps one position per dotted key,
// so every [[rule]] overwrites the previous rule's positions and MetaData
// exposes none of them. lineIndex recovers them with a small scanner that
// runs only on documents the TOML parser has already accepted.
type lineIndex struct {
	top   map[string]int // top-level key or table name -> line
	rules []ruleLines    // one per [[rule]] header, in order
}

type ruleLines struct {
	header int
	keys   map[string]int
}

// ruleKeyLine returns the best line for key in the i-th rule (0-based):
// the key's own line, else the rule header, else the top-level "rule" key.
func (ix *lineIndex) ruleKeyLine(i int, key string) int {
	if i >= 0 && i < len(ix.rules) {
		if l, ok := ix.rules[i].keys[key]; ok && key != "" {
			return l
		}
		return ix.rules[i].header
	}
	return ix.top["rule"]
}

func (ix *lineIndex) ruleLine(i int) int { return ix.ruleKeyLine(i, "") }

func indexLines(src string) *lineIndex {
	ix := &lineIndex{top: map[string]int{}}
	line := 1
	i := 0
	n := len(src)
	// section: 0 top level, 1 inside the current [[rule]], 2 other table.
	section := 0
	for i < n {
		// Start of a logical line: skip blanks.
		for i < n && (src[i] == ' ' || src[i] == '\t' || src[i] == '\r') {
			i++
		}
		if i >= n {
			break
		}
		switch c := src[i]; {
		case c == '\n':
			line++
			i++
			continue
		case c == '#':
			for i < n && src[i] != '\n' {
				i++
			}
			continue
		case c == '[':
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = n - i
			}
			hdr := src[i : i+end]
			if h, _, ok := strings.Cut(hdr, "#"); ok && !strings.ContainsAny(h, `"'`) {
				hdr = h
			}
			hdr = strings.TrimSpace(hdr)
			array := strings.HasPrefix(hdr, "[[")
			hdr = strings.Trim(hdr, "[] \t")
			path := splitKeyPath(hdr)
			switch {
			case array && len(path) == 1 && path[0] == "rule":
				ix.rules = append(ix.rules, ruleLines{header: line, keys: map[string]int{}})
				section = 1
			case len(path) > 1 && path[0] == "rule" && len(ix.rules) > 0:
				r := &ix.rules[len(ix.rules)-1]
				if _, ok := r.keys[path[1]]; !ok {
					r.keys[path[1]] = line
				}
				section = 2
			default:
				if len(path) > 0 {
					if _, ok := ix.top[path[0]]; !ok {
						ix.top[path[0]] = line
					}
				}
				section = 2
			}
			i += end
			continue
		}
		// A key/value pair: the key runs up to '=' outside quotes.
		start := i
		for i < n && src[i] != '=' && src[i] != '\n' {
			if src[i] == '"' || src[i] == '\'' {
				q := src[i]
				i++
				for i < n && src[i] != q && src[i] != '\n' {
					if q == '"' && src[i] == '\\' {
						i++
					}
					i++
				}
			}
			i++
		}
		if path := splitKeyPath(src[start:min(i, n)]); len(path) > 0 {
			switch section {
			case 0:
				if _, ok := ix.top[path[0]]; !ok {
					ix.top[path[0]] = line
				}
			case 1:
				r := &ix.rules[len(ix.rules)-1]
				if _, ok := r.keys[path[0]]; !ok {
					r.keys[path[0]] = line
				}
			}
		}
		if i < n && src[i] == '=' {
			i++
		}
		i, line = skipValue(src, i, line)
	}
	return ix
}

// skipValue advances past one TOML value, counting newlines, and stops at
// the newline that ends it.
func skipValue(src string, i, line int) (int, int) {
	n := len(src)
	depth := 0
	for i < n {
		c := src[i]
		switch {
		case c == '\n':
			if depth == 0 {
				return i, line
			}
			line++
			i++
		case c == '#':
			for i < n && src[i] != '\n' {
				i++
			}
		case c == '[' || c == '{':
			depth++
			i++
		case c == ']' || c == '}':
			depth--
			i++
		case strings.HasPrefix(src[i:], `"""`) || strings.HasPrefix(src[i:], `'''`):
			delim := src[i : i+3]
			i += 3
			for i < n && !strings.HasPrefix(src[i:], delim) {
				if src[i] == '\n' {
					line++
				}
				if delim == `"""` && src[i] == '\\' {
					i++
					if i < n && src[i] == '\n' {
						line++
					}
				}
				i++
			}
			i += 3
			// A closing delimiter may be followed by up to two quotes.
			for k := 0; k < 2 && i < n && src[i] == delim[0]; k++ {
				i++
			}
		case c == '"' || c == '\'':
			i++
			for i < n && src[i] != c && src[i] != '\n' {
				if c == '"' && src[i] == '\\' {
					i++
				}
				i++
			}
			i++
		default:
			i++
		}
	}
	return min(i, n), line
}

// splitKeyPath splits a (possibly quoted, dotted) TOML key into parts.
func splitKeyPath(s string) []string {
	var parts []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			parts = append(parts, t)
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				cur.WriteString(s[i+1:])
				i = len(s)
				continue
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '.':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return parts
}
