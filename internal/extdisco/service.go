package extdisco

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is the 'action' of a service in a push update (XEP-0215 §3.2).
type Action string

// Actions. The schema says "delete", the prose says "remove"; both are
// accepted and mean the same.
const (
	ActionNone   Action = "" // not a push, or the default "add"
	ActionAdd    Action = "add"
	ActionModify Action = "modify"
	ActionDelete Action = "delete"
	ActionRemove Action = "remove"
)

// A Service is one <service/> element. The zero value is not a valid
// service (Type and Host are required). Values are plain data, safe to
// copy and share.
type Service struct {
	Type      string // "stun", "turn", "turns" or another registered type
	Host      string // a DNS name or an IP address literal
	Port      uint16 // 0 when absent
	Transport string // "udp", "tcp", another transport, or "" when absent
	// Username and Password are short-term credentials for the service
	// ("" when absent).
	Username, Password string
	// Expires is when the credentials expire, in UTC (zero when absent).
	Expires time.Time
	// Restricted says credentials are needed; when they are missing they
	// must be requested with [CredentialsRequest].
	Restricted bool
	Name       string // human-readable label ("" when absent)
	Action     Action // push updates only
}

// HasCredentials reports whether s carries both a username and a password.
func (s Service) HasCredentials() bool { return s.Username != "" && s.Password != "" }

// NeedsCredentials reports whether s is restricted and carries no
// credentials, so that they must be requested (XEP-0215 §3.3).
func (s Service) NeedsCredentials() bool { return s.Restricted && !s.HasCredentials() }

// Expired reports whether s has an expiry that is not after now.
func (s Service) Expired(now time.Time) bool {
	return !s.Expires.IsZero() && !now.Before(s.Expires)
}

// Errors that parse failures wrap.
var (
	// ErrMalformed: the element is not a well-formed, valid XEP-0215
	// element.
	ErrMalformed = errors.New("extdisco: malformed element")
	// ErrLimit: the element exceeds one of the package's limits.
	ErrLimit = errors.New("extdisco: element exceeds a limit")
)

// A ParseError says what is wrong with an element. It wraps
// [ErrMalformed] or [ErrLimit].
type ParseError struct {
	Service int    // index of the offending <service/>, -1 if none
	Attr    string // offending attribute, "" if none
	Msg     string
	Err     error // ErrMalformed or ErrLimit
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("extdisco: ")
	if e.Service >= 0 {
		fmt.Fprintf(&b, "service %d: ", e.Service)
	}
	if e.Attr != "" {
		fmt.Fprintf(&b, "attribute %q: ", e.Attr)
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

func malformed(svc int, attr, format string, args ...any) error {
	return &ParseError{Service: svc, Attr: attr, Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func limit(svc int, attr, format string, args ...any) error {
	return &ParseError{Service: svc, Attr: attr, Msg: fmt.Sprintf(format, args...), Err: ErrLimit}
}

// Element names.
const (
	elemServices    = "services"
	elemCredentials = "credentials"
	elemService     = "service"
)

// ServicesRequest returns the payload of the IQ-get that asks a server for
// its external services (XEP-0215 §3.1), or only those of type typ (§3.2)
// when typ is not empty. It panics if typ is not a valid type token: types
// are constants of the caller.
func ServicesRequest(typ string) []byte {
	if typ == "" {
		return []byte(`<services xmlns="` + NS + `"/>`)
	}
	if !validToken(typ) {
		panic("extdisco: invalid service type " + strconv.Quote(typ))
	}
	return []byte(`<services xmlns="` + NS + `" type="` + typ + `"/>`)
}

// CredentialsRequest returns the payload of the IQ-get that asks for
// credentials at the given services (XEP-0215 §3.3): each is identified by
// its type, host and, when not zero, port. It fails for no services, more
// than [MaxServices], or one with an invalid type or host.
func CredentialsRequest(services []Service) ([]byte, error) {
	if len(services) == 0 {
		return nil, errors.New("extdisco: credentials request for no service")
	}
	if len(services) > MaxServices {
		return nil, limit(-1, "", "%d services, at most %d", len(services), MaxServices)
	}
	var b bytes.Buffer
	b.WriteString(`<credentials xmlns="` + NS + `">`)
	for i, s := range services {
		if !validToken(s.Type) {
			return nil, malformed(i, "type", "invalid type")
		}
		if !validHost(s.Host) {
			return nil, malformed(i, "host", "invalid host")
		}
		b.WriteString(`<service type="` + s.Type + `" host="` + s.Host + `"`)
		if s.Port != 0 {
			b.WriteString(` port="` + strconv.Itoa(int(s.Port)) + `"`)
		}
		b.WriteString(`/>`)
	}
	b.WriteString(`</credentials>`)
	return b.Bytes(), nil
}

// ParseServices parses a <services/> element (the payload of an IQ result
// or of a push), b being exactly that element (surrounding whitespace and
// comments allowed). Children in other namespaces are skipped; every
// <service/> is validated and bounded (see the package constants).
func ParseServices(b []byte) ([]Service, error) {
	_, svcs, err := parse(b, elemServices)
	return svcs, err
}

// ParseCredentials parses a <credentials/> element the same way.
func ParseCredentials(b []byte) ([]Service, error) {
	_, svcs, err := parse(b, elemCredentials)
	return svcs, err
}

// MarshalServices returns a <services/> element holding services, with
// the type filter typ ("" for none). It fails for an invalid service.
// [ParseServices] gives back equal services.
func MarshalServices(typ string, services []Service) ([]byte, error) {
	if typ != "" && !validToken(typ) {
		return nil, malformed(-1, "type", "invalid type")
	}
	return marshal(elemServices, typ, services)
}

// MarshalCredentials returns a <credentials/> element holding services.
func MarshalCredentials(services []Service) ([]byte, error) {
	return marshal(elemCredentials, "", services)
}

func marshal(elem, typ string, services []Service) ([]byte, error) {
	if len(services) > MaxServices {
		return nil, limit(-1, "", "%d services, at most %d", len(services), MaxServices)
	}
	var b bytes.Buffer
	b.WriteString("<" + elem + ` xmlns="` + NS + `"`)
	if typ != "" {
		b.WriteString(` type="` + typ + `"`)
	}
	b.WriteString(">")
	for i, s := range services {
		if err := s.validate(i); err != nil {
			return nil, err
		}
		b.WriteString("<service")
		attr := func(name, v string) {
			if v == "" {
				return
			}
			b.WriteString(" " + name + `="`)
			xml.EscapeText(&b, []byte(v))
			b.WriteString(`"`)
		}
		attr("type", s.Type)
		attr("host", s.Host)
		if s.Port != 0 {
			attr("port", strconv.Itoa(int(s.Port)))
		}
		attr("transport", s.Transport)
		attr("username", s.Username)
		attr("password", s.Password)
		if !s.Expires.IsZero() {
			attr("expires", s.Expires.UTC().Format(time.RFC3339Nano))
		}
		if s.Restricted {
			attr("restricted", "true")
		}
		attr("name", s.Name)
		attr("action", string(s.Action))
		b.WriteString("/>")
	}
	b.WriteString("</" + elem + ">")
	if b.Len() > MaxElementSize {
		return nil, limit(-1, "", "element of %d bytes, at most %d", b.Len(), MaxElementSize)
	}
	return b.Bytes(), nil
}

// validate checks what parse checks, for services built by callers.
func (s Service) validate(i int) error {
	switch {
	case !validToken(s.Type):
		return malformed(i, "type", "invalid type")
	case !validHost(s.Host):
		return malformed(i, "host", "invalid host")
	case s.Transport != "" && !validToken(s.Transport):
		return malformed(i, "transport", "invalid transport")
	case len(s.Username) > MaxCredentialLen || len(s.Password) > MaxCredentialLen:
		return limit(i, "username", "credential longer than %d bytes", MaxCredentialLen)
	case !validText(s.Username) || !validText(s.Password):
		return malformed(i, "username", "credential with control characters or invalid UTF-8")
	case len(s.Name) > MaxNameLen:
		return limit(i, "name", "longer than %d bytes", MaxNameLen)
	case !validText(s.Name):
		return malformed(i, "name", "control characters or invalid UTF-8")
	}
	switch s.Action {
	case ActionNone, ActionAdd, ActionModify, ActionDelete, ActionRemove:
	default:
		return malformed(i, "action", "unknown action")
	}
	return nil
}

// parse reads the single element named {NS, local} from b and returns its
// 'type' attribute and services.
func parse(b []byte, local string) (string, []Service, error) {
	if len(b) > MaxElementSize {
		return "", nil, limit(-1, "", "element of %d bytes, at most %d", len(b), MaxElementSize)
	}
	// Token (not RawToken) resolves namespaces and checks that end tags
	// match their start tags.
	d := xml.NewDecoder(bytes.NewReader(b))
	var (
		typ   string
		svcs  []Service
		depth int  // 1 inside the root
		done  bool // the root has ended
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, malformed(-1, "", "%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if done {
				return "", nil, malformed(-1, "", "content after the <%s/> element", local)
			}
			depth++
			if depth > maxDepth {
				return "", nil, limit(-1, "", "nesting deeper than %d", maxDepth)
			}
			switch {
			case depth == 1:
				if t.Name != (xml.Name{Space: NS, Local: local}) {
					return "", nil, malformed(-1, "", "root is {%s}%s, want {%s}%s", t.Name.Space, t.Name.Local, NS, local)
				}
				if typ, err = rootType(t.Attr); err != nil {
					return "", nil, err
				}
			case depth == 2 && t.Name == xml.Name{Space: NS, Local: elemService}:
				if len(svcs) == MaxServices {
					return "", nil, limit(len(svcs), "", "more than %d services", MaxServices)
				}
				s, err := parseService(len(svcs), t.Attr)
				if err != nil {
					return "", nil, err
				}
				svcs = append(svcs, s)
			case depth == 2 && t.Name.Space == NS:
				return "", nil, malformed(-1, "", "unexpected <%s/> in <%s/>", t.Name.Local, local)
			}
			// Anything else (children in other namespaces, a service's
			// data form) is skipped, bounded by maxDepth and
			// MaxElementSize.
		case xml.EndElement:
			depth--
			if depth == 0 {
				done = true
			}
		case xml.CharData:
			if depth <= 1 && len(bytes.TrimSpace(t)) != 0 {
				return "", nil, malformed(-1, "", "text outside <service/>")
			}
		case xml.Comment:
		case xml.ProcInst:
			if t.Target != "xml" || depth > 0 || done {
				return "", nil, malformed(-1, "", "processing instruction <?%s?>", t.Target)
			}
		case xml.Directive:
			return "", nil, malformed(-1, "", "directive <!%s>", t)
		}
	}
	if !done {
		return "", nil, malformed(-1, "", "no complete <%s/> element", local)
	}
	return typ, svcs, nil
}

// rootType returns the root's optional 'type' filter.
func rootType(attrs []xml.Attr) (string, error) {
	var typ string
	seen := false
	for _, a := range attrs {
		if a.Name.Space != "" || a.Name.Local != "type" {
			continue
		}
		if seen {
			return "", malformed(-1, "type", "repeated")
		}
		seen = true
		if !validToken(a.Value) {
			return "", malformed(-1, "type", "invalid type")
		}
		typ = a.Value
	}
	return typ, nil
}

// parseService validates the attributes of the i-th <service/>. Unknown
// attributes and attributes in other namespaces are ignored; a known one
// may appear once.
func parseService(i int, attrs []xml.Attr) (Service, error) {
	var s Service
	var seen [10]bool
	for _, a := range attrs {
		if a.Name.Space != "" {
			continue
		}
		k := slot(a.Name.Local)
		if k < 0 {
			continue
		}
		if seen[k] {
			return Service{}, malformed(i, a.Name.Local, "repeated")
		}
		seen[k] = true
		v := a.Value
		switch a.Name.Local {
		case "type":
			if !validToken(v) {
				return Service{}, malformed(i, "type", "invalid type")
			}
			s.Type = v
		case "host":
			if len(v) > MaxHostLen {
				return Service{}, limit(i, "host", "longer than %d bytes", MaxHostLen)
			}
			if !validHost(v) {
				return Service{}, malformed(i, "host", "neither a DNS name nor an IP address")
			}
			s.Host = v
		case "port":
			p, ok := parsePort(v)
			if !ok {
				return Service{}, malformed(i, "port", "not a port number")
			}
			s.Port = p
		case "transport":
			if !validToken(v) {
				return Service{}, malformed(i, "transport", "invalid transport")
			}
			s.Transport = v
		case "username", "password":
			if len(v) > MaxCredentialLen {
				return Service{}, limit(i, a.Name.Local, "longer than %d bytes", MaxCredentialLen)
			}
			if !validText(v) {
				return Service{}, malformed(i, a.Name.Local, "control characters or invalid UTF-8")
			}
			if a.Name.Local == "username" {
				s.Username = v
			} else {
				s.Password = v
			}
		case "expires":
			t, err := parseTime(v)
			if err != nil {
				return Service{}, malformed(i, "expires", "%v", err)
			}
			s.Expires = t
		case "restricted":
			switch v {
			case "true", "1":
				s.Restricted = true
			case "false", "0":
			default:
				return Service{}, malformed(i, "restricted", "not an xs:boolean")
			}
		case "name":
			if len(v) > MaxNameLen {
				return Service{}, limit(i, "name", "longer than %d bytes", MaxNameLen)
			}
			if !validText(v) {
				return Service{}, malformed(i, "name", "control characters or invalid UTF-8")
			}
			s.Name = v
		case "action":
			switch act := Action(v); act {
			case ActionAdd, ActionModify, ActionDelete, ActionRemove:
				s.Action = act
			default:
				return Service{}, malformed(i, "action", "unknown action")
			}
		}
	}
	if s.Type == "" {
		return Service{}, malformed(i, "type", "missing")
	}
	if s.Host == "" {
		return Service{}, malformed(i, "host", "missing")
	}
	return s, nil
}

// slot numbers the known attributes for duplicate detection.
func slot(name string) int {
	switch name {
	case "type":
		return 0
	case "host":
		return 1
	case "port":
		return 2
	case "transport":
		return 3
	case "username":
		return 4
	case "password":
		return 5
	case "expires":
		return 6
	case "restricted":
		return 7
	case "name":
		return 8
	case "action":
		return 9
	}
	return -1
}

// validToken reports whether s is a short lowercase token such as the
// registered service types and transports: a letter, then letters, digits,
// '-', '_' or '.', at most MaxTokenLen bytes.
func validToken(s string) bool {
	if s == "" || len(s) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// validHost reports whether s is an IP address literal (no zone, no
// brackets) or a DNS name of letters, digits and hyphens (RFC 1123 labels,
// no trailing dot). Nothing else may reach a stun: or turn: URI.
func validHost(s string) bool {
	if s == "" || len(s) > MaxHostLen {
		return false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// parsePort parses a decimal port 1..65535 without sign, spaces or
// leading zeros.
func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseTime parses an XEP-0082 dateTime, which XEP-0215 requires in UTC.
func parseTime(s string) (time.Time, error) {
	if len(s) > maxTimeLen {
		return time.Time{}, errors.New("too long")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("not an XEP-0082 dateTime")
	}
	if _, off := t.Zone(); off != 0 {
		return time.Time{}, errors.New("not in UTC")
	}
	return t.UTC(), nil
}

// validText reports whether s is valid UTF-8 without control characters.
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
