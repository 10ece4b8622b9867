package jingle

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzSeeds returns the payloads of the XEP examples (when they are
// available) and of testdata/conversations whose root is in space.
func fuzzSeeds(f *testing.F, space string) int {
	var sources [][]byte
	if dir, ok := findExamples(); ok {
		files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
		for _, p := range files {
			base := filepath.Base(p)
			for _, x := range relevantXEPs {
				if strings.HasPrefix(base, "xep"+x+"-") {
					b, err := os.ReadFile(p)
					if err != nil {
						f.Fatal(err)
					}
					sources = append(sources, b)
				}
			}
		}
	}
	own, _ := filepath.Glob(filepath.Join("testdata", "conversations", "*.xml"))
	for _, p := range own {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		sources = append(sources, b)
	}
	n := 0
	for _, src := range sources {
		for _, c := range chunks(src) {
			ps, err := payloads(c)
			if err != nil {
				continue
			}
			for _, p := range ps {
				if p.name.Space == space {
					f.Add(p.raw)
					n++
				}
			}
		}
	}
	if n == 0 {
		f.Fatal("no seeds for " + space)
	}
	return n
}

// FuzzParse checks the round-trip property on arbitrary input: whatever
// Parse accepts marshals, parses back to a deeply equal value, and
// serializes to the same bytes again; Validate never panics.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f, NS)
	f.Add([]byte(contentWith(`<x xmlns='urn:x' xmlns:p='urn:p' p:a='&apos;"'>t&amp;<![CDATA[<c>]]><y/></x>`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := Parse(b)
		if err != nil {
			if j != nil {
				t.Fatal("value with error")
			}
			return
		}
		_ = j.Validate()
		_, _, _ = j.RTPInfos()
		if _, err := j.Fingerprints(); err != nil {
			t.Fatalf("Fingerprints of a parsed value: %v", err)
		}
		out, err := j.Marshal()
		if errors.Is(err, ErrWeakFingerprint) && hasWeakFingerprint(t, j) {
			return // read for policy, never sent
		}
		if err != nil {
			t.Fatalf("accepted input does not marshal: %v\n%q", err, b)
		}
		j2, err := Parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(j, j2) {
			t.Fatalf("round trip changed the value\n%q\n%q", b, out)
		}
		again, err := j2.Marshal()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %v\n%q\n%q", err, out, again)
		}
	})
}

// FuzzParseJMI is FuzzParse for XEP-0353 elements.
func FuzzParseJMI(f *testing.F) {
	fuzzSeeds(f, NSJMI)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseJMI(b)
		if err != nil {
			return
		}
		_, _ = m.DeviceID()
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted input does not marshal: %v\n%q", err, b)
		}
		m2, err := ParseJMI(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the value\n%q\n%q", b, out)
		}
		again, err := m2.Marshal()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %v\n%q\n%q", err, out, again)
		}
	})
}

// hasWeakFingerprint reports whether j carries a XEP-0320 fingerprint
// that Marshal refuses to emit.
func hasWeakFingerprint(t testing.TB, j *Jingle) bool {
	t.Helper()
	refs, err := j.Fingerprints()
	if err != nil {
		t.Fatalf("Fingerprints of a parsed value: %v", err)
	}
	for _, r := range refs {
		if r.Fingerprint != nil && !sendableHashes[r.Fingerprint.Hash] {
			return true
		}
	}
	return false
}
