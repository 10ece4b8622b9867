package jingle

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
)

// This file makes Marshal and Validate keep their promise for values
// built by hand: the bytes written must parse back to the value that was
// serialized. The checking writer (see [writer]) refuses names and inner
// XML that would change the structure of the output; what remains, such
// as a [Raw] in a namespace or at a place that this package parses itself
// (a XEP-0320 fingerprint put into Transport.Other, say), is caught by
// parsing the output again and comparing.

// reasonRoundTrip is the reason of the error for a value whose
// serialization parses back as something else.
const reasonRoundTrip = "the value does not survive serialization: parsing the output gives a different value " +
	"(an element kept as Raw in a namespace or at a place this package parses itself, or a field the element cannot carry)"

// encodeChecked serializes n with the checking writer.
func encodeChecked(n *node) ([]byte, error) {
	w := writer{check: true}
	w.element(n, "")
	if w.err != nil {
		return nil, w.err
	}
	return w.b.Bytes(), nil
}

// encodeAs serializes v (whose node is n) with the checking writer, parses
// the output with parse and checks that the result equals v. It returns
// the bytes and the value parsed back, or a *ParseError.
func encodeAs[T any](v *T, n *node, parse func([]byte) (*T, error)) ([]byte, *T, error) {
	b, err := encodeChecked(n)
	if err != nil {
		return nil, nil, err
	}
	back, err := parse(b)
	if err != nil {
		return nil, nil, err
	}
	if f := semDiff(reflect.ValueOf(v).Elem(), reflect.ValueOf(back).Elem(), ""); f != "" {
		return nil, nil, &ParseError{Field: f, Reason: reasonRoundTrip}
	}
	return b, back, nil
}

var (
	rawType         = reflect.TypeFor[Raw]()
	fingerprintType = reflect.TypeFor[Fingerprint]()
	bandwidthType   = reflect.TypeFor[Bandwidth]()
	reasonType      = reflect.TypeFor[Reason]()
	jingleType      = reflect.TypeFor[Jingle]()
)

// semDiff compares a value as it was serialized (want) with the value
// parsed back (got) and returns the Go path of the first difference, or
// "". It identifies what the serialization does not distinguish and
// what Parse normalizes: nil and empty slices, the XMLName of a Jingle
// (ignored by Marshal), the case of a fingerprint hash name, whitespace
// around a fingerprint, bandwidth or alternative sid, and the spelling of
// the inner XML of a Raw (compared in canonical form).
func semDiff(want, got reflect.Value, path string) string {
	switch want.Kind() {
	case reflect.Pointer:
		if want.IsNil() || got.IsNil() {
			if want.IsNil() == got.IsNil() {
				return ""
			}
			return orRoot(path)
		}
		return semDiff(want.Elem(), got.Elem(), path)
	case reflect.Slice:
		if want.Len() != got.Len() {
			return orRoot(path)
		}
		for i := range want.Len() {
			if d := semDiff(want.Index(i), got.Index(i), path+"["+strconv.Itoa(i)+"]"); d != "" {
				return d
			}
		}
		return ""
	case reflect.Struct:
		switch want.Type() {
		case rawType:
			return rawDiff(want.Interface().(Raw), got.Interface().(Raw), path)
		case fingerprintType:
			f := want.Interface().(Fingerprint)
			f.Hash, f.Value = strings.ToLower(f.Hash), strings.TrimSpace(f.Value)
			want = reflect.ValueOf(f)
		case bandwidthType:
			bw := want.Interface().(Bandwidth)
			bw.Value = strings.TrimSpace(bw.Value)
			want = reflect.ValueOf(bw)
		case reasonType:
			r := want.Interface().(Reason)
			r.AlternativeSID = strings.TrimSpace(r.AlternativeSID)
			want = reflect.ValueOf(r)
		}
		t := want.Type()
		for i := range t.NumField() {
			if t == jingleType && t.Field(i).Name == "XMLName" {
				continue
			}
			fp := t.Field(i).Name
			if path != "" {
				fp = path + "." + fp
			}
			if d := semDiff(want.Field(i), got.Field(i), fp); d != "" {
				return d
			}
		}
		return ""
	default:
		if !want.Equal(got) {
			return orRoot(path)
		}
		return ""
	}
}

func rawDiff(want, got Raw, path string) string {
	if want.XMLName != got.XMLName {
		return orRoot(path) + ".XMLName"
	}
	if d := semDiff(reflect.ValueOf(want.Attrs), reflect.ValueOf(got.Attrs), path+".Attrs"); d != "" {
		return d
	}
	inner, err := canonicalInner(want.XMLName.Space, want.Inner)
	if err != nil || !bytes.Equal(inner, got.Inner) {
		return path + ".Inner"
	}
	return ""
}

func orRoot(path string) string {
	if path == "" {
		return "value"
	}
	return path
}
