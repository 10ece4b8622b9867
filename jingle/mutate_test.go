package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestMutations is a deterministic, structure-aware complement to the
// fuzz targets: every attribute of the Conversations fixtures is replaced
// by awkward values or removed, and text is inserted into every element.
// Each variant must either be refused with a *ParseError or satisfy the
// round-trip property.
func TestMutations(t *testing.T) {
	values := []string{"", " ", "0", "00", "1", "-1", "127", "128", "255", "256", "65535", "65536",
		"2147483647", "2147483648", "4294967295", "4294967296", "a b", "&<>\"'", "\t\n\r", "sha-1", "udp", "actpass",
		"initiator", "both", "x"}
	files, _ := filepath.Glob(filepath.Join("testdata", "conversations", "*.xml"))
	variants, accepted := 0, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := payloads(b)
		if err != nil || len(ps) != 1 {
			t.Fatalf("%s: %v", f, err)
		}
		root, err := parseTree(ps[0].raw, "x")
		if err != nil {
			t.Fatal(err)
		}
		// One element per path: repeated candidates and payload types
		// would only repeat the same checks.
		var all []*node
		seen := map[string]bool{}
		var walk func(n *node, path string)
		walk = func(n *node, path string) {
			path += "/" + fmtName(n.name)
			if !seen[path] {
				seen[path] = true
				all = append(all, n)
			}
			for _, k := range n.kids {
				walk(k, path)
			}
		}
		walk(root, "")
		check := func() {
			variants++
			src := serialize(root)
			if ok := checkProperty(t, src); ok {
				accepted++
			}
		}
		for _, n := range all {
			for i := range n.attrs {
				orig := n.attrs[i].Value
				for _, v := range values {
					n.attrs[i].Value = v
					check()
				}
				n.attrs[i].Value = orig
				saved := n.attrs
				n.attrs = append(append([]xml.Attr(nil), saved[:i]...), saved[i+1:]...)
				check()
				n.attrs = saved
			}
			savedItems := n.items
			n.items = append([]item{{text: "t"}}, savedItems...)
			check()
			n.items = savedItems
		}
	}
	t.Logf("%d variants, %d accepted", variants, accepted)
	if variants < 500 || accepted == 0 || accepted == variants {
		t.Fatalf("mutation run did not exercise both outcomes: %d of %d accepted", accepted, variants)
	}
}

func checkProperty(t *testing.T, src []byte) bool {
	t.Helper()
	var parse func([]byte) (any, error)
	var marshal func(any) ([]byte, error)
	if bytes.Contains(src[:20], []byte("jingle-message")) || !bytes.HasPrefix(src, []byte("<jingle")) {
		parse = func(b []byte) (any, error) { return ParseJMI(b) }
		marshal = func(v any) ([]byte, error) { return v.(*JMI).Marshal() }
	} else {
		parse = func(b []byte) (any, error) { return Parse(b) }
		marshal = func(v any) ([]byte, error) { return v.(*Jingle).Marshal() }
	}
	v, err := parse(src)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v is not a ParseError", err)
		}
		return false
	}
	out, err := marshal(v)
	if j, ok := v.(*Jingle); ok && errors.Is(err, ErrWeakFingerprint) && hasWeakFingerprint(t, j) {
		return true // read for policy, never sent
	}
	if err != nil {
		t.Fatalf("accepted input does not marshal: %v\n%s", err, src)
	}
	v2, err := parse(out)
	if err != nil || !reflect.DeepEqual(v, v2) {
		t.Fatalf("round trip failed (%v):\n%s\n%s", err, src, out)
	}
	if m := missingFacts(t, src, out); len(m) > 0 {
		t.Fatalf("lost %v\n%s\n%s", m, src, out)
	}
	return true
}
