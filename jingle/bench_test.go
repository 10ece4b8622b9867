package jingle

import (
	"bytes"
	"encoding/xml"
	"testing"
)

func BenchmarkParseSessionInitiate(b *testing.B) {
	src := conversationsPayloadB(b, "session-initiate-omemo.xml")
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalSessionInitiate(b *testing.B) {
	j, err := Parse(conversationsPayloadB(b, "session-initiate-omemo.xml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseTransportInfo(b *testing.B) {
	src := conversationsPayloadB(b, "transport-info.xml")
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttributes compares Parse with encoding/xml's RawToken alone
// (the tokenizer under Parse, with no checks at all) on the same 64 KiB
// attribute-heavy inputs of the first security review: "flood" is one
// element with ~8000 attributes (refused after its first token), and
// "max" is the worst input Parse accepts, elements of MaxAttrs attributes
// each. Parse should cost a small factor of RawToken.
func BenchmarkAttributes(b *testing.B) {
	for _, in := range []struct {
		name string
		src  []byte
	}{{"flood", attrFlood()}, {"max", attrElements()}} {
		b.Run(in.name+"/Parse", func(b *testing.B) {
			b.SetBytes(int64(len(in.src)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Parse(in.src)
			}
		})
		b.Run(in.name+"/RawToken", func(b *testing.B) {
			b.SetBytes(int64(len(in.src)))
			b.ReportAllocs()
			for b.Loop() {
				d := xml.NewDecoder(bytes.NewReader(in.src))
				for {
					if _, err := d.RawToken(); err != nil {
						break
					}
				}
			}
		})
	}
}
