package attest

import (
	"errors"
	"strings"
	"testing"
)

func TestStatementRoundTrip(t *testing.T) {
	for _, jid := range []string{"alice@example.org", "example.org", "ålice@例え.jp", "a+b!c@x.y"} {
		st := testStatement()
		st.JID = jid
		got, err := ParseStatement(st.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", jid, err)
		}
		if got.JID != jid || !got.Key.Equal(st.Key) {
			t.Errorf("round trip: got %+v, want %+v", got, st)
		}
	}
}

func TestStatementLowercasesDomain(t *testing.T) {
	st := testStatement()
	st.JID = "Alice@EXAMPLE.Org"
	if !strings.Contains(string(st.Bytes()), "\njid: Alice@example.org\n") {
		t.Errorf("domain not lower-cased:\n%s", st.Bytes())
	}
}

func TestStatementValidate(t *testing.T) {
	for _, jid := range []string{
		"", "@example.org", "alice@", "alice@example.org/res", "example.org/res",
		"al ice@example.org", "alice@exa\tmple.org", "alice@example.org\n", "a@b@c",
		"al<ice@example.org", "alice@.example.org", "alice@example.org.", "\u202ealice@example.org",
		"alice@exam\x00ple.org", string([]byte{0xff, '@', 'x'}), strings.Repeat("a", 1024) + "@x",
	} {
		st := testStatement()
		st.JID = jid
		if err := st.Validate(); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("JID %q: got %v, want ErrInvalidJID", jid, err)
		}
	}
	st := testStatement()
	st.Key = st.Key[:31]
	if err := st.Validate(); err == nil {
		t.Error("31-byte key accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("Bytes of an invalid statement did not panic")
		}
	}()
	_ = st.Bytes()
}

func TestParseStatementRejects(t *testing.T) {
	good := string(testStatement().Bytes())
	other := testStatement()
	other.Key = append([]byte(nil), other.Key...)
	other.Key[0] ^= 1
	otherFP := strings.Split(string(other.Bytes()), "\n")[3]
	lines := strings.Split(good, "\n")
	cases := map[string]string{
		"empty":              "",
		"CRLF":               strings.ReplaceAll(good, "\n", "\r\n"),
		"no final LF":        strings.TrimSuffix(good, "\n"),
		"extra final LF":     good + "\n",
		"extra line":         good + "comment: hi\n",
		"missing line":       strings.Join(append(lines[:2:2], lines[3:]...), "\n"),
		"swapped lines":      strings.Join([]string{lines[0], lines[2], lines[1], lines[3], ""}, "\n"),
		"bad header":         strings.Replace(good, "v1", "v2", 1),
		"identity header":    strings.Replace(good, "account statement", "identity statement", 1),
		"v0 device line":     strings.Replace(good, "\nkey: ", "\ndevice: 1234\nkey: ", 1),
		"resource":           strings.Replace(good, "alice@example.org", "alice@example.org/phone", 1),
		"bad JID":            strings.Replace(good, "alice@example.org", "alice@", 1),
		"upper-case domain":  strings.Replace(good, "alice@example.org", "alice@Example.org", 1),
		"space in JID":       strings.Replace(good, "alice@example.org", "al ice@example.org", 1),
		"wrong fingerprint":  strings.Replace(good, lines[3], otherFP, 1),
		"double space":       strings.Replace(good, "jid: ", "jid:  ", 1),
		"trailing space":     strings.Replace(good, "alice@example.org\n", "alice@example.org \n", 1),
		"rsa key":            strings.Replace(good, "ssh-ed25519 ", "ssh-rsa ", 1),
		"altered key":        strings.Replace(good, "QutBJZk\n", "QutBJZl\n", 1),
		"key without prefix": strings.Replace(good, "AAAAC3NzaC1lZDI1NTE5AAAAI", "AAAAC3NzaC1lZDI1NTE5AAAAJ", 1),
		"not UTF-8":          strings.Replace(good, "alice", "al\xffice", 1),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseStatement([]byte(in)); !errors.Is(err, ErrMalformedStatement) {
				t.Errorf("got %v, want ErrMalformedStatement", err)
			}
		})
	}
}
