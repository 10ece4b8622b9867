package gateway

// Caps augmentation for gateway mode (docs/protocol.md §22.5).
//
// A local client logged into the gateway advertises its own XEP-0115 caps
// in presence. Peers must also learn that the account supports
// securejingle, so the gateway adds its own features to the client's
// service discovery information (XEP-0030, with XEP-0128 forms) and
// recomputes the verification string (XEP-0115 §5.1). A capsRewriter does
// this for one client session; the composer calls it from its stanza
// loops:
//
//	client → gateway: presence         rw.clientPresence(st)      → send up (rewritten) / held; ask the client
//	client → gateway: iq result/error  rw.clientResult(st)        → consumed / rewritten / unchanged
//	server → client:  iq get           rw.inboundQuery(st, now)   → answered here / unchanged
//
// The parser and the verification string are general (parseDiscoInfo,
// (*discoInfo).ver); the gateway's own caps (capsVer) use them too.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
)

// Limits of a disco#info the gateway parses (§22.5). They are far above
// what clients publish (Profanity 0.13: one identity, 14 features, no
// form; XEP-0115 §5.3's example: two identities, one form of 6 fields).
const (
	maxDiscoBytes      = 64 << 10 // the <query/> element's bytes
	maxDiscoIdentities = 32
	maxDiscoFeatures   = 256
	maxDiscoForms      = 8
	maxDiscoFields     = 64 // per form
	maxDiscoValues     = 64 // per field
	maxDiscoOther      = 64 // other child elements of <query/> (skipped)
	maxDiscoString     = 1024
)

// Hash function names of XEP-0115 §5.1 (the IANA names XEP-0300 uses).
const (
	capsSHA1   = "sha-1"
	capsSHA256 = "sha-256"
)

// formTypeVar is the XEP-0068 field that names a form's type.
const formTypeVar = "FORM_TYPE"

// errDiscoInfo is wrapped by every parse error of parseDiscoInfo.
var errDiscoInfo = errors.New("gateway: invalid disco#info")

func discoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errDiscoInfo, fmt.Sprintf(format, a...))
}

// A discoIdentity is one XEP-0030 <identity/>.
type discoIdentity struct {
	Category, Type, Lang, Name string
}

// A discoField is one field of a data form (XEP-0004), with its values in
// document order.
type discoField struct {
	Var, Type, Label string
	Values           []string
}

// A discoForm is one XEP-0128 extended information form. FormType is the
// value of its FORM_TYPE field, "" when the form has no hidden FORM_TYPE:
// such a form is kept but not hashed (XEP-0115 §5.4 step 3.6).
type discoForm struct {
	Type     string // the form's type attribute ("result")
	FormType string
	Fields   []discoField
}

// A discoInfo is a parsed disco#info <query/>. The zero value is an empty
// info.
type discoInfo struct {
	Node       string
	Identities []discoIdentity
	Features   []string
	Forms      []discoForm
}

// parseDiscoInfo parses a disco#info <query/> element (raw: its bytes,
// with its namespace declared). It enforces the limits above and rejects
// what XEP-0115 §5.4 calls ill-formed: two equal identities, two equal
// features, two forms with the same FORM_TYPE, a FORM_TYPE with different
// values. It also rejects an identity without category or type, a feature
// without var, two fields with the same var in a form, and markup inside a
// value. Other child elements of <query/> are skipped (they are not part
// of the caps hash and are not kept).
func parseDiscoInfo(raw []byte) (*discoInfo, error) {
	if len(raw) > maxDiscoBytes {
		return nil, discoErr("larger than %d bytes", maxDiscoBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	start, err := nextStart(d)
	if err != nil {
		return nil, discoErr("%v", err)
	}
	if start.Name.Space != nsDiscoInfo || start.Name.Local != "query" {
		return nil, discoErr("not a disco#info query: %s %s", start.Name.Space, start.Name.Local)
	}
	info := &discoInfo{}
	if info.Node, err = boundedAttr(start, "", "node"); err != nil {
		return nil, err
	}
	idents := map[discoIdentity]bool{}
	feats := map[string]bool{}
	other := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, discoErr("%v", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if err := expectEOF(d); err != nil {
				return nil, err
			}
			return info, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, discoErr("text in <query/>")
			}
		case xml.StartElement:
			switch {
			case t.Name.Space == nsDiscoInfo && t.Name.Local == "identity":
				id, err := parseIdentity(t)
				if err != nil {
					return nil, err
				}
				if idents[id] {
					return nil, discoErr("duplicate identity %s/%s/%s/%s", id.Category, id.Type, id.Lang, id.Name)
				}
				if len(info.Identities) == maxDiscoIdentities {
					return nil, discoErr("more than %d identities", maxDiscoIdentities)
				}
				idents[id] = true
				info.Identities = append(info.Identities, id)
				if err := skipEmpty(d); err != nil {
					return nil, err
				}
			case t.Name.Space == nsDiscoInfo && t.Name.Local == "feature":
				v, err := boundedAttr(t, "", "var")
				if err != nil {
					return nil, err
				}
				if v == "" {
					return nil, discoErr("feature without var")
				}
				if feats[v] {
					return nil, discoErr("duplicate feature %q", v)
				}
				if len(info.Features) == maxDiscoFeatures {
					return nil, discoErr("more than %d features", maxDiscoFeatures)
				}
				feats[v] = true
				info.Features = append(info.Features, v)
				if err := skipEmpty(d); err != nil {
					return nil, err
				}
			case t.Name.Space == nsDataForms && t.Name.Local == "x":
				if len(info.Forms) == maxDiscoForms {
					return nil, discoErr("more than %d forms", maxDiscoForms)
				}
				f, err := parseForm(d, t)
				if err != nil {
					return nil, err
				}
				if f.FormType != "" {
					for _, o := range info.Forms {
						if o.FormType == f.FormType {
							return nil, discoErr("two forms of FORM_TYPE %q", f.FormType)
						}
					}
				}
				info.Forms = append(info.Forms, f)
			default:
				if other++; other > maxDiscoOther {
					return nil, discoErr("more than %d other elements", maxDiscoOther)
				}
				if err := d.Skip(); err != nil {
					return nil, discoErr("%v", err)
				}
			}
		}
	}
}

// expectEOF checks that nothing but whitespace follows the root element.
func expectEOF(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return discoErr("%v", err)
		}
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) != 0 {
			return discoErr("content after </query>")
		}
	}
}

// boundedAttr returns the attribute's value ("" when absent), at most
// maxDiscoString bytes, and refuses it twice.
func boundedAttr(st xml.StartElement, space, local string) (string, error) {
	v, seen := "", false
	for _, a := range st.Attr {
		if a.Name.Space != space || a.Name.Local != local {
			continue
		}
		if seen {
			return "", discoErr("two %s attributes on <%s/>", local, st.Name.Local)
		}
		if len(a.Value) > maxDiscoString {
			return "", discoErr("%s attribute longer than %d bytes", local, maxDiscoString)
		}
		v, seen = a.Value, true
	}
	return v, nil
}

func parseIdentity(st xml.StartElement) (discoIdentity, error) {
	var id discoIdentity
	var err error
	for _, f := range []struct {
		dst          *string
		space, local string
	}{{&id.Category, "", "category"}, {&id.Type, "", "type"}, {&id.Name, "", "name"}, {&id.Lang, xmlURL, "lang"}} {
		if *f.dst, err = boundedAttr(st, f.space, f.local); err != nil {
			return id, err
		}
	}
	if id.Category == "" || id.Type == "" {
		return id, discoErr("identity without category or type")
	}
	return id, nil
}

// skipEmpty consumes the rest of an element that must have no child
// elements (text is ignored).
func skipEmpty(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return discoErr("%v", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			return discoErr("unexpected child element")
		case xml.EndElement:
			return nil
		}
	}
}

// parseForm parses a jabber:x:data form whose start element was read.
func parseForm(d *xml.Decoder, st xml.StartElement) (discoForm, error) {
	var f discoForm
	var err error
	if f.Type, err = boundedAttr(st, "", "type"); err != nil {
		return f, err
	}
	vars := map[string]bool{}
	hiddenType := false
	for {
		tok, err := d.Token()
		if err != nil {
			return f, discoErr("%v", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if !hiddenType {
				f.FormType = "" // XEP-0115 §5.4 3.6: not hashed
			}
			return f, nil
		case xml.StartElement:
			if t.Name.Space != nsDataForms || t.Name.Local != "field" {
				if err := d.Skip(); err != nil { // title, instructions, reported, item
					return f, discoErr("%v", err)
				}
				continue
			}
			if len(f.Fields) == maxDiscoFields {
				return f, discoErr("more than %d fields in a form", maxDiscoFields)
			}
			fld, err := parseField(d, t)
			if err != nil {
				return f, err
			}
			if fld.Var != "" {
				if vars[fld.Var] {
					return f, discoErr("two fields %q in a form", fld.Var)
				}
				vars[fld.Var] = true
			}
			if fld.Var == formTypeVar {
				for _, v := range fld.Values {
					if v != fld.Values[0] {
						return f, discoErr("FORM_TYPE with different values")
					}
				}
				if len(fld.Values) == 0 {
					return f, discoErr("FORM_TYPE without a value")
				}
				f.FormType = fld.Values[0]
				hiddenType = fld.Type == "hidden"
			}
			f.Fields = append(f.Fields, fld)
		}
	}
}

func parseField(d *xml.Decoder, st xml.StartElement) (discoField, error) {
	var fld discoField
	var err error
	for _, a := range []struct {
		dst   *string
		local string
	}{{&fld.Var, "var"}, {&fld.Type, "type"}, {&fld.Label, "label"}} {
		if *a.dst, err = boundedAttr(st, "", a.local); err != nil {
			return fld, err
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return fld, discoErr("%v", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return fld, nil
		case xml.StartElement:
			if t.Name.Space != nsDataForms || t.Name.Local != "value" {
				if err := d.Skip(); err != nil { // desc, required, option, media
					return fld, discoErr("%v", err)
				}
				continue
			}
			if len(fld.Values) == maxDiscoValues {
				return fld, discoErr("more than %d values in a field", maxDiscoValues)
			}
			v, err := valueText(d)
			if err != nil {
				return fld, err
			}
			fld.Values = append(fld.Values, v)
		}
	}
}

// valueText reads the character data of a <value/> up to its end.
func valueText(d *xml.Decoder) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", discoErr("%v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if b.Len()+len(t) > maxDiscoString {
				return "", discoErr("value longer than %d bytes", maxDiscoString)
			}
			b.Write(t)
		case xml.StartElement:
			return "", discoErr("markup inside <value/>")
		case xml.EndElement:
			return b.String(), nil
		}
	}
}

// ver returns the XEP-0115 §5.1 verification string of info for the hash
// function named h (capsSHA1 or capsSHA256): identities sorted by
// category, type and xml:lang, each "category/type/lang/name<"; features
// sorted, each "feature<"; forms with a hidden FORM_TYPE sorted by it,
// each "FORM_TYPE<" then their other fields sorted by var, each "var<"
// followed by its values sorted, each "value<". Sorting is by octets.
// Caps are not a security check: SHA-1 is what the XEP mandates.
func (info *discoInfo) ver(h string) (string, error) {
	var hf hash.Hash
	switch h {
	case capsSHA1:
		hf = sha1.New()
	case capsSHA256:
		hf = sha256.New()
	default:
		return "", fmt.Errorf("gateway: caps hash %q not supported", h)
	}
	hf.Write(info.verInput())
	return base64.StdEncoding.EncodeToString(hf.Sum(nil)), nil
}

// verInput is the string S of XEP-0115 §5.1 before hashing.
func (info *discoInfo) verInput() []byte {
	var s bytes.Buffer
	ids := slices.Clone(info.Identities)
	slices.SortFunc(ids, func(a, b discoIdentity) int {
		if c := strings.Compare(a.Category, b.Category); c != 0 {
			return c
		}
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		if c := strings.Compare(a.Lang, b.Lang); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, id := range ids {
		s.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name + "<")
	}
	feats := slices.Clone(info.Features)
	slices.Sort(feats)
	for _, f := range feats {
		s.WriteString(f + "<")
	}
	var forms []discoForm
	for _, f := range info.Forms {
		if f.FormType != "" {
			forms = append(forms, f)
		}
	}
	slices.SortFunc(forms, func(a, b discoForm) int { return strings.Compare(a.FormType, b.FormType) })
	for _, f := range forms {
		s.WriteString(f.FormType + "<")
		fields := slices.Clone(f.Fields)
		slices.SortFunc(fields, func(a, b discoField) int { return strings.Compare(a.Var, b.Var) })
		for _, fld := range fields {
			if fld.Var == formTypeVar || fld.Var == "" {
				continue
			}
			s.WriteString(fld.Var + "<")
			vals := slices.Clone(fld.Values)
			slices.Sort(vals)
			for _, v := range vals {
				s.WriteString(v + "<")
			}
		}
	}
	return s.Bytes()
}

// augmented returns a copy of info with the features added that it does
// not list yet, and node set.
func (info *discoInfo) augmented(node string, features []string) *discoInfo {
	out := &discoInfo{Node: node, Identities: info.Identities, Forms: info.Forms}
	out.Features = slices.Clone(info.Features)
	for _, f := range features {
		if !slices.Contains(out.Features, f) {
			out.Features = append(out.Features, f)
		}
	}
	return out
}

// marshal returns info as a disco#info <query/> element.
func (info *discoInfo) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(`<query xmlns="` + nsDiscoInfo + `"`)
	writeAttr(&b, "node", info.Node)
	b.WriteString(">")
	for _, id := range info.Identities {
		b.WriteString(`<identity`)
		writeAttr(&b, "category", id.Category)
		writeAttr(&b, "type", id.Type)
		writeAttr(&b, "xml:lang", id.Lang)
		writeAttr(&b, "name", id.Name)
		b.WriteString(`/>`)
	}
	for _, f := range info.Features {
		b.WriteString(`<feature var="` + escapeAttr(f) + `"/>`)
	}
	for _, f := range info.Forms {
		b.WriteString(`<x xmlns="` + nsDataForms + `"`)
		writeAttr(&b, "type", f.Type)
		b.WriteString(">")
		for _, fld := range f.Fields {
			b.WriteString("<field")
			writeAttr(&b, "var", fld.Var)
			writeAttr(&b, "type", fld.Type)
			writeAttr(&b, "label", fld.Label)
			b.WriteString(">")
			for _, v := range fld.Values {
				b.WriteString("<value>")
				xml.EscapeText(&b, []byte(v))
				b.WriteString("</value>")
			}
			b.WriteString("</field>")
		}
		b.WriteString("</x>")
	}
	b.WriteString("</query>")
	return b.Bytes()
}

// writeAttr writes ` name="value"` unless value is empty.
func writeAttr(b *bytes.Buffer, name, value string) {
	if value != "" {
		b.WriteString(" " + name + `="` + escapeAttr(value) + `"`)
	}
}

// ownInfo is the gateway's own disco#info (XEP-0030), which capsVer hashes
// and discoInfo serves.
func (g *Gateway) ownInfo() *discoInfo {
	return &discoInfo{
		Identities: []discoIdentity{{Category: "client", Type: "pc", Name: "securejingle"}},
		Features:   g.features,
	}
}

// capsAugmentFeatures are the features the gateway adds to a local
// client's disco#info: securejingle support and the PEP notifications it
// needs (XEP-0163 "+notify"). The others of g.features (disco#info, caps,
// carbons) describe the gateway's own stream, not the client.
func capsAugmentFeatures() []string {
	return []string{e2e.NS, nsBundlesNode + "+notify", nsDevicesNode + "+notify"}
}

// Defaults of a capsRewriter.
const (
	// capsQueryTimeout: how long a presence is held while the client is
	// asked for its own disco#info.
	capsQueryTimeout = 5 * time.Second
	// maxCapsCache: entries (client node#ver) remembered per session.
	maxCapsCache = 4
	// maxCapsAbandoned: questions to the client superseded by a newer
	// one whose answers are still consumed (not passed upstream).
	maxCapsAbandoned = 4
	// maxCapsTracked: peer disco#info queries without a node forwarded to
	// the client whose results are still to be augmented.
	maxCapsTracked = 32
	// capsTrackedTTL: how long such a query waits for the client's result.
	capsTrackedTTL = time.Minute
)

// capsEntry is what a session learnt about one client node#ver.
type capsEntry struct {
	node, ver string     // the client's; ver "" for an answer that did not verify (found by augVer only)
	augVer    string     // ver of the augmented info; "" when the client gave no usable info
	info      *discoInfo // the augmented info, Node = node#augVer
}

// capsPending is the disco#info query to the client in flight.
type capsPending struct {
	id      string
	caps    clientCaps // the client's caps being asked for
	held    *Stanza    // the presence held until the answer, or nil
	expired bool       // the timeout passed: no presence is held for it any more
	timer   *time.Timer
}

type trackedQuery struct {
	peer, id string
	expires  time.Time
}

// A capsRewriter augments the caps of one local client session (§22.5).
// Create it with newCapsRewriter when the client has bound, call its
// methods from the stanza loops, and stop when the session ends. It is
// safe for concurrent use: presence and results come from the client's
// loop, queries from the upstream loop.
//
// Every method takes a parsed stanza and returns the bytes to send, nil
// where the stanza goes on as it came; none blocks on the network. A presence held for the client's answer is handed
// to the release function given to newCapsRewriter when the timeout
// passes, from a timer goroutine; while release runs, clientPresence,
// clientResult and stop wait (so a newer presence is never overtaken by
// an older one), inboundQuery does not. release must not call the
// rewriter, and should be bounded (the gateway's write timeout).
type capsRewriter struct {
	client   jid.JID    // the client's full JID
	ours     *discoInfo // the gateway's info, for presence without caps
	ourVer   string
	features []string // added to the client's info
	timeout  time.Duration
	release  func([]byte)

	// emitMu orders what goes upstream from the client side: it is held
	// by clientPresence, clientResult, stop and by a timeout's release.
	// inboundQuery (the upstream loop) never takes it, so a slow release
	// does not hold up traffic from the server.
	emitMu sync.Mutex

	mu      sync.Mutex   // guards what follows; never held while calling release
	cache   []*capsEntry // most recent last
	pending *capsPending
	// last is the client's latest available undirected presence, kept
	// while its caps are unknown so that a late answer can still send it
	// augmented.
	last      *Stanza
	abandoned []*capsPending // most recent last
	tracked   []trackedQuery
	stopped   bool
}

// newCapsRewriter returns the rewriter of the session bound as client.
// ours is the gateway's own info (g.ownInfo()), features what is added to
// the client's (capsAugmentFeatures()), timeout how long a presence waits
// for the client's answer (0: capsQueryTimeout), release where a presence
// goes upstream when that timeout passes.
func newCapsRewriter(client jid.JID, ours *discoInfo, features []string, timeout time.Duration, release func([]byte)) *capsRewriter {
	if timeout <= 0 {
		timeout = capsQueryTimeout
	}
	v, err := ours.ver(capsSHA1)
	if err != nil {
		panic(err)
	}
	return &capsRewriter{client: client, ours: ours, ourVer: v, features: features, timeout: timeout, release: release}
}

// stop cancels the timer of a held presence (which is dropped: the
// session is over).
func (r *capsRewriter) stop() {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.pending != nil {
		r.pending.timer.Stop()
		r.pending = nil
	}
}

// clientCaps are the attributes of a client's <c/>.
type clientCaps struct {
	hash, node, ver, ext string
}

// capsOf returns the client's <c/> attributes. ok is false when the
// presence has no usable caps: no <c/>, several, or one without node or
// ver.
func capsOf(st *Stanza) (c clientCaps, ok bool) {
	n := 0
	for _, ch := range st.Children {
		if ch.Name.Space != nsCaps || ch.Name.Local != "c" {
			continue
		}
		if n++; n > 1 {
			return clientCaps{}, false
		}
		var v struct {
			Hash string `xml:"hash,attr"`
			Node string `xml:"node,attr"`
			Ver  string `xml:"ver,attr"`
			Ext  string `xml:"ext,attr"`
		}
		if len(ch.Raw) > maxDiscoString*4 || xml.Unmarshal(ch.Raw, &v) != nil {
			return clientCaps{}, false
		}
		c = clientCaps{v.Hash, v.Node, v.Ver, v.Ext}
	}
	return c, n == 1 && c.node != "" && c.ver != "" && len(c.node)+len(c.ver) < maxDiscoString
}

// withCaps returns the presence's bytes with its <c/> elements replaced by
// c (at the first one's place, or at the end).
func withCaps(st *Stanza, c []byte) []byte {
	var kids [][]byte
	placed := false
	for _, ch := range st.Children {
		if ch.Name.Space == nsCaps && ch.Name.Local == "c" {
			if !placed {
				kids, placed = append(kids, c), true
			}
			continue
		}
		kids = append(kids, ch.Raw)
	}
	if !placed {
		kids = append(kids, c)
	}
	return marshalStanza(st, kids)
}

// marshalStanza returns the stanza's bytes with the children given (its
// id, type, to and from attributes; others, such as xml:lang, are not
// kept).
func marshalStanza(st *Stanza, children [][]byte) []byte {
	attrs := map[string]string{"id": st.ID, "type": st.Type}
	if !st.To.Equal(jid.JID{}) {
		attrs["to"] = st.To.String()
	}
	if !st.From.Equal(jid.JID{}) {
		attrs["from"] = st.From.String()
	}
	return build(st.Kind, attrs, children...)
}

func rawChildren(st *Stanza) [][]byte {
	kids := make([][]byte, len(st.Children))
	for i, c := range st.Children {
		kids[i] = c.Raw
	}
	return kids
}

func (r *capsRewriter) lookup(node, ver string) *capsEntry {
	for i, e := range r.cache {
		if e.node == node && e.ver == ver {
			// Most recently used last: the entry in use is never the
			// one evicted.
			r.cache = append(append(r.cache[:i:i], r.cache[i+1:]...), e)
			return e
		}
	}
	return nil
}

func (r *capsRewriter) remember(e *capsEntry) {
	if old := r.lookup(e.node, e.ver); old != nil {
		*old = *e
		return
	}
	if len(r.cache) == maxCapsCache {
		r.cache = slices.Delete(r.cache, 0, 1)
	}
	r.cache = append(r.cache, e)
}

// caps is the <c/> that replaces the client's for a known entry.
func (e *capsEntry) caps(ext string) []byte {
	attrs := []string{"hash", capsSHA1, "node", e.node, "ver", e.augVer}
	if ext != "" {
		attrs = append(attrs, "ext", ext) // XEP-0115 §8.4 legacy: unchanged, peers ask the client for node#ext
	}
	return element(nsCaps, "c", "", attrs...)
}

// clientPresence handles a presence from the client. up is what to send
// upstream now (nil: held, or nothing); query, when not nil, is a
// disco#info request to send to the client, whose answer goes to
// clientResult.
//
// Available presence without usable caps gets the gateway's own <c/>.
// Available presence whose caps are known gets the augmented <c/>. An
// undirected available presence whose caps are unknown is held and the
// client is asked for node#ver (a newer undirected presence replaces the
// held one); a directed one goes up unchanged (and the client is asked,
// so later ones are augmented). Other presence goes up unchanged; an
// unavailable one drops a held presence.
func (r *capsRewriter) clientPresence(st *Stanza) (up, query []byte) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	directed := !st.To.Equal(jid.JID{})
	switch st.Type {
	case "":
	case "unavailable":
		if !directed {
			r.dropPendingLocked()
			r.last = nil
		}
		return marshalStanza(st, rawChildren(st)), nil
	default:
		return marshalStanza(st, rawChildren(st)), nil
	}
	cc, ok := capsOf(st)
	node, ver, ext := cc.node, cc.ver, cc.ext
	if !ok {
		if !directed {
			r.dropPendingLocked()
			r.last = nil
		}
		return withCaps(st, element(nsCaps, "c", "", "hash", capsSHA1, "node", capsNode, "ver", r.ourVer)), nil
	}
	if e := r.lookup(node, ver); e != nil {
		if !directed {
			r.dropPendingLocked()
			r.last = nil
		}
		if e.augVer == "" {
			return marshalStanza(st, rawChildren(st)), nil
		}
		return withCaps(st, e.caps(ext)), nil
	}
	if directed {
		if r.pending == nil {
			query = r.askLocked(cc, nil)
		}
		return marshalStanza(st, rawChildren(st)), query
	}
	r.last = st
	if p := r.pending; p != nil && p.caps.node == node && p.caps.ver == ver {
		if p.expired {
			// Asked already and timed out: this one goes up as it is.
			return marshalStanza(st, rawChildren(st)), nil
		}
		p.held = st // the newer presence replaces a held one
		return nil, nil
	}
	// A presence held for other caps is superseded by this one: it is
	// dropped, not sent.
	r.dropPendingLocked()
	return nil, r.askLocked(cc, st)
}

// dropPendingLocked abandons the question in flight: a held presence is
// dropped, and the answer, if it comes, is still consumed and remembered.
func (r *capsRewriter) dropPendingLocked() {
	if p := r.pending; p != nil {
		p.timer.Stop()
		p.held = nil
		r.pending = nil
		if len(r.abandoned) == maxCapsAbandoned {
			r.abandoned = slices.Delete(r.abandoned, 0, 1)
		}
		r.abandoned = append(r.abandoned, p)
	}
}

// takeAskedLocked returns the question id answers, if it is the one in
// flight (current) or an abandoned one, and forgets it.
func (r *capsRewriter) takeAskedLocked(id string) (p *capsPending, current bool) {
	if p := r.pending; p != nil && p.id == id {
		p.timer.Stop()
		r.pending = nil
		return p, true
	}
	for i, p := range r.abandoned {
		if p.id == id {
			r.abandoned = slices.Delete(r.abandoned, i, i+1)
			return p, false
		}
	}
	return nil, false
}

// askLocked starts the query for the client's node#ver, holding held (may
// be nil).
func (r *capsRewriter) askLocked(cc clientCaps, held *Stanza) []byte {
	var b [8]byte
	rand.Read(b[:])
	p := &capsPending{id: "caps-" + hex.EncodeToString(b[:]), caps: cc, held: held}
	p.timer = time.AfterFunc(r.timeout, func() { r.expire(p) })
	r.pending = p
	return build("iq", map[string]string{"type": "get", "id": p.id, "to": r.client.String(), "from": r.client.Bare().String()},
		element(nsDiscoInfo, "query", "", "node", cc.node+"#"+cc.ver))
}

// expire releases the presence p holds, unaugmented. The query stays
// pending: a late answer still augments the latest presence. release runs
// under emitMu, so a presence the client sends meanwhile waits for it and
// goes up after it, never before.
func (r *capsRewriter) expire(p *capsPending) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.mu.Lock()
	if r.pending != p || r.stopped {
		r.mu.Unlock()
		return
	}
	p.expired = true
	held := p.held
	p.held = nil
	r.mu.Unlock()
	if held != nil && r.release != nil {
		r.release(marshalStanza(held, rawChildren(held)))
	}
}

// clientResult handles an iq result or error from the client (the
// composer calls it for each). consumed means the stanza answered the
// rewriter's own question and must not go upstream; then up, when not nil,
// is the presence to send upstream now. Otherwise up, when not nil, is the
// stanza to send upstream in its place (the result of a tracked peer
// query, with the gateway's features added); nil means: send st as it
// came. A result that does not parse goes up as it came.
func (r *capsRewriter) clientResult(st *Stanza) (up []byte, consumed bool) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	// The id is 64 random bits and the stanza comes from the client's own
	// stream: the id alone identifies the answer.
	if p, current := r.takeAskedLocked(st.ID); p != nil {
		e, verified := answerEntry(p.caps, st, r.features)
		switch {
		case verified:
			r.remember(e)
		case !current:
			return nil, true // not for the ver asked, and nothing waits for it
		default:
			// Augment the presence waiting for it, and answer peers for
			// the augmented node, but do not take the info as the
			// client's ver's (XEP-0115 §5.4: it is not cached): the
			// next presence asks again.
			e.ver = ""
			r.remember(e)
		}
		if !current {
			return nil, true
		}
		last := r.last
		r.last = nil
		if last == nil {
			return nil, true
		}
		lc, _ := capsOf(last)
		if e.augVer == "" {
			if p.held == nil {
				return nil, true // went up unaugmented at the timeout
			}
			return marshalStanza(p.held, rawChildren(p.held)), true
		}
		return withCaps(last, e.caps(lc.ext)), true
	}
	if st.Type != "result" || !r.untrackLocked(st.To.String(), st.ID) {
		return nil, false
	}
	q := st.Child(nsDiscoInfo, "query")
	if q == nil || len(st.Children) != 1 {
		return nil, false
	}
	info, err := parseDiscoInfo(q.Raw)
	if err != nil || info.Node != "" {
		return nil, false
	}
	return marshalStanza(st, [][]byte{info.augmented("", r.features).marshal()}), false
}

// answerEntry is what the client's answer st to the question for cc
// teaches: its info augmented with features, or no info (augVer "") for an
// error or an answer that does not parse or names another node. verified
// is false when cc's hash is one the gateway computes and the answer's
// info does not hash to cc's ver (Profanity 0.13, asked for its previous
// ver, answers with its current info); a legacy or unknown hash cannot be
// checked and counts as verified.
func answerEntry(cc clientCaps, st *Stanza, features []string) (e *capsEntry, verified bool) {
	e = &capsEntry{node: cc.node, ver: cc.ver}
	q := st.Child(nsDiscoInfo, "query")
	if st.Type != "result" || q == nil || len(st.Children) != 1 {
		return e, true
	}
	info, err := parseDiscoInfo(q.Raw)
	if err != nil || (info.Node != "" && info.Node != cc.node+"#"+cc.ver) {
		return e, true
	}
	if v, err := info.ver(cc.hash); err == nil && v != cc.ver {
		verified = false
	} else {
		verified = true
	}
	aug := info.augmented("", features)
	e.augVer, _ = aug.ver(capsSHA1)
	aug.Node = cc.node + "#" + e.augVer
	e.info = aug
	return e, verified
}

// untrackLocked removes the tracked query (peer, id), reporting whether it
// was there.
func (r *capsRewriter) untrackLocked(peer, id string) bool {
	for i, t := range r.tracked {
		if t.peer == peer && t.id == id {
			r.tracked = slices.Delete(r.tracked, i, i+1)
			return true
		}
	}
	return false
}

// inboundQuery looks at a stanza from upstream addressed to the client
// (the composer calls it for each iq get; others are ignored). answer,
// when not nil, is the result to send upstream instead of passing st on: a
// disco#info query for an augmented node#ver, or for the gateway's own
// caps node, is answered from what the rewriter knows. nil means: pass st
// to the client as it came; a disco#info query without a node is then
// remembered, so that clientResult adds the gateway's features to the
// client's answer. now is the time, for the expiry of remembered queries.
func (r *capsRewriter) inboundQuery(st *Stanza, now time.Time) (answer []byte) {
	if st.Kind != "iq" || st.Type != "get" || len(st.Children) != 1 || !st.To.Equal(r.client) {
		return nil
	}
	q := st.Child(nsDiscoInfo, "query")
	if q == nil || len(q.Raw) > maxDiscoBytes {
		return nil
	}
	var req struct {
		Node string `xml:"node,attr"`
	}
	if xml.Unmarshal(q.Raw, &req) != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Node == "" {
		peer := st.From.String()
		r.tracked = slices.DeleteFunc(r.tracked, func(t trackedQuery) bool {
			return !now.Before(t.expires) || (t.peer == peer && t.id == st.ID)
		})
		if len(r.tracked) < maxCapsTracked {
			r.tracked = append(r.tracked, trackedQuery{peer: peer, id: st.ID, expires: now.Add(capsTrackedTTL)})
		}
		return nil
	}
	var info *discoInfo
	if req.Node == capsNode+"#"+r.ourVer {
		info = &discoInfo{Node: req.Node, Identities: r.ours.Identities, Features: r.ours.Features}
	} else {
		for _, e := range r.cache {
			if e.info != nil && e.info.Node == req.Node {
				info = e.info
			}
		}
	}
	if info == nil {
		return nil
	}
	res := map[string]string{"type": "result", "id": st.ID, "from": r.client.String()}
	if !st.From.Equal(jid.JID{}) {
		res["to"] = st.From.String()
	}
	return build("iq", res, info.marshal())
}
