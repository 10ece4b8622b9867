package e2e

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
)

// maxElementSize bounds any element this package parses.
const maxElementSize = 256 << 10

// strictUnmarshal decodes exactly one element into v: the input must be a
// single well-formed element (whitespace around it allowed) no larger than
// maxElementSize, with the name and namespace v's XMLName demands.
func strictUnmarshal(data []byte, v any) error {
	if len(data) > maxElementSize {
		return malformed("element larger than %d bytes", maxElementSize)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	if err := d.Decode(v); err != nil {
		return malformed("xml: %v", err)
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return malformed("xml after element: %v", err)
		}
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) != 0 {
			return malformed("content after element")
		}
	}
}
