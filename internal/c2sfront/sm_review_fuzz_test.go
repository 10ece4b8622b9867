package c2sfront

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// FuzzReviewStanzaCounter (security review h/rvsm): whatever a peer puts
// inside a stanza, once it went through a decoder and encoding/xml's
// encoder (as everything written to the client does), the written-side
// counter counts each top-level stanza once.
func FuzzReviewStanzaCounter(f *testing.F) {
	for _, s := range []string{"<body>x</body>", "<x xmlns='a'><stream xmlns='b'/></x>", "<!-- c --><?pi x?>", "<!DOCTYPE a [<!-- ' -->]>", "<a b='&quot;'>&lt;message/&gt;</a>", "<![CDATA[</message>]]>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		d := xml.NewDecoder(strings.NewReader("<message xmlns='jabber:client'>" + inner + "</message>"))
		var buf bytes.Buffer
		e := xml.NewEncoder(&buf)
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			if err := e.EncodeToken(xml.CopyToken(tok)); err != nil {
				return
			}
		}
		if err := e.Flush(); err != nil {
			return
		}
		one := buf.String()
		sm := &smState{kick: make(chan struct{}, 1), counting: true}
		c := newStanzaCounter(sm)
		c.write(io.Discard, []byte(one+one+"<presence xmlns='jabber:client'></presence>"))
		if sm.sent != 3 {
			t.Fatalf("counted %d, want 3: %q", sm.sent, one)
		}
	})
}
