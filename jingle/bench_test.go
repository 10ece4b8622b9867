package jingle

import "testing"

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
