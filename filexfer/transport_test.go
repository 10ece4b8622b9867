package filexfer

import (
	"errors"
	"io"
	"testing"
)

func TestNextTransport(t *testing.T) {
	all := []TransportKind{TransportIBB, TransportS5B, TransportDataChannel} // order does not matter
	for _, tc := range []struct {
		cur     TransportKind
		allowed []TransportKind
		want    TransportKind
	}{
		{"", all, TransportDataChannel},
		{TransportDataChannel, all, TransportS5B},
		{TransportS5B, all, TransportIBB},
		{TransportIBB, all, ""},
		{TransportDataChannel, []TransportKind{TransportIBB}, TransportIBB},
		{"", []TransportKind{TransportS5B}, TransportS5B},
		{TransportS5B, []TransportKind{TransportDataChannel}, ""}, // never back up the list
		{TransportOther, all, ""},
		{"", nil, ""},
	} {
		got, ok := NextTransport(tc.cur, tc.allowed)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("NextTransport(%q, %v) = %q, %v; want %q", tc.cur, tc.allowed, got, ok, tc.want)
		}
	}
}

func TestTransportError(t *testing.T) {
	err := transportErr("socks5 reply", "streamhost refused", io.ErrUnexpectedEOF)
	if !errors.Is(err, ErrTransport) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%v does not match its sentinel and cause", err)
	}
	if got := err.Error(); got != "filexfer: socks5 reply: streamhost refused: unexpected EOF" {
		t.Fatal(got)
	}
}
