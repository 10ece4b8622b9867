package api

import (
	"errors"
	"testing"
)

// TestRegressDecodeKeyLineBreaks: a key has exactly one accepted
// spelling. Go's base64 decoder skips CR and LF even in strict mode, so a
// key with line breaks inside was accepted as the same key. Found by
// FuzzDecodeScalars.
func TestRegressDecodeKeyLineBreaks(t *testing.T) {
	const good = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	if _, err := DecodeKey(good); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{good[:10] + "\r" + good[10:], good[:10] + "\n" + good[10:], good + "\n", "\r\n" + good} {
		if _, err := DecodeKey(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeKey(%q) = %v, want ErrInvalid", s, err)
		}
	}
}
