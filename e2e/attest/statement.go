package attest

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/securejingle/securejingle/e2e/identity"
)

// ErrMalformedStatement is returned by [ParseStatement] for any input that
// is not exactly the canonical form of a valid statement.
var ErrMalformedStatement = errors.New("attest: malformed account statement")

// ErrInvalidJID is returned for a JID that is not a valid bare JID.
var ErrInvalidJID = errors.New("attest: invalid bare JID")

// ErrInvalidKey is returned for an account key that is not a 32-byte
// Ed25519 public key.
var ErrInvalidKey = errors.New("attest: account key must be a 32-byte Ed25519 public key")

// sshEd25519 is the SSH key type name of an Ed25519 key (RFC 8709).
const sshEd25519 = "ssh-ed25519"

// statementLines is the number of lines of a canonical statement.
const statementLines = 4

// A Statement is the account statement that every mechanism signs: it
// binds a bare JID to the account's Ed25519 identity key, the key that
// certifies all the account's devices. It names no device: a contact is
// verified once, for all its devices.
//
// Its canonical form ([Statement.Bytes]) is UTF-8 text with LF line endings:
//
//	securejingle account statement v1
//	jid: <bare JID, domain lower-cased>
//	key: ssh-ed25519 <base64 of the SSH wire public key>
//	fingerprint: <identity.Fingerprint(key)>
//
// with a final LF. The text is stable so that users can sign it with
// external tools. The zero Statement is not valid. A Statement is a value;
// it is safe for concurrent use as long as Key is not modified.
type Statement struct {
	JID string            // bare JID, local@domain or domain
	Key ed25519.PublicKey // account identity public key, 32 bytes
}

// Validate reports whether st can be put in canonical form: a valid bare
// JID and a 32-byte key. It wraps [ErrInvalidJID] for a bad JID and
// [ErrInvalidKey] for a bad key.
func (st Statement) Validate() error {
	if _, err := canonicalJID(st.JID); err != nil {
		return err
	}
	if len(st.Key) != ed25519.PublicKeySize {
		return ErrInvalidKey
	}
	return nil
}

// Bytes returns the canonical form of st. The domain of the JID is
// lower-cased. Bytes panics if st is not valid (see [Statement.Validate]).
func (st Statement) Bytes() []byte {
	b, err := st.marshal()
	if err != nil {
		panic(err)
	}
	return b
}

func (st Statement) marshal() ([]byte, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	jid, _ := canonicalJID(st.JID)
	var b strings.Builder
	b.WriteString(StatementHeader + "\n")
	b.WriteString("jid: " + jid + "\n")
	b.WriteString("key: " + sshEd25519 + " " + base64.StdEncoding.EncodeToString(sshWireKey(st.Key)) + "\n")
	b.WriteString("fingerprint: " + identity.Fingerprint(st.Key) + "\n")
	return []byte(b.String()), nil
}

// ParseStatement parses the canonical form of a statement. It is strict: the
// exact lines in the exact order, LF line endings with a final LF, a strict
// base64 Ed25519 SSH key, a fingerprint that matches the key, and input that
// [Statement.Bytes] reproduces byte for byte. Any deviation returns an error
// wrapping [ErrMalformedStatement].
func ParseStatement(b []byte) (Statement, error) {
	bad := func(why string) (Statement, error) {
		return Statement{}, fmt.Errorf("%w: %s", ErrMalformedStatement, why)
	}
	if !utf8.Valid(b) {
		return bad("not UTF-8")
	}
	s := string(b)
	if strings.ContainsRune(s, '\r') {
		return bad("CR in input (line endings must be LF)")
	}
	if !strings.HasSuffix(s, "\n") {
		return bad("missing final line feed")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != statementLines {
		return bad(fmt.Sprintf("want exactly %d lines (a statement of protocol version 0 also had a device line: print a new one with securejingle keys statement)", statementLines))
	}
	if lines[0] != StatementHeader {
		return bad("bad header line (want " + StatementHeader + ")")
	}
	field := func(line, name string) (string, bool) {
		return strings.CutPrefix(line, name+": ")
	}
	jid, ok := field(lines[1], "jid")
	if !ok {
		return bad("missing jid line")
	}
	key, ok := field(lines[2], "key")
	if !ok {
		return bad("missing key line")
	}
	fp, ok := field(lines[3], "fingerprint")
	if !ok {
		return bad("missing fingerprint line")
	}
	if _, err := canonicalJID(jid); err != nil {
		return bad("invalid jid")
	}
	k64, ok := strings.CutPrefix(key, sshEd25519+" ")
	if !ok {
		return bad("key is not ssh-ed25519")
	}
	wire, err := base64.StdEncoding.Strict().DecodeString(k64)
	if err != nil {
		return bad("key is not strict base64")
	}
	pub, err := parseSSHWireKey(wire)
	if err != nil {
		return bad("key is not an SSH Ed25519 public key")
	}
	if subtle.ConstantTimeCompare([]byte(fp), []byte(identity.Fingerprint(pub))) != 1 {
		return bad("fingerprint does not match key")
	}
	st := Statement{JID: jid, Key: pub}
	if subtle.ConstantTimeCompare(st.Bytes(), b) != 1 {
		return bad("not in canonical form")
	}
	return st, nil
}

// sshWireKey returns the SSH wire encoding of an Ed25519 public key
// (RFC 8709 section 4): string "ssh-ed25519", string key.
func sshWireKey(pub ed25519.PublicKey) []byte {
	b := make([]byte, 0, 4+len(sshEd25519)+4+ed25519.PublicKeySize)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sshEd25519)))
	b = append(b, sshEd25519...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(pub)))
	return append(b, pub...)
}

// parseSSHWireKey is the strict inverse of sshWireKey.
func parseSSHWireKey(wire []byte) (ed25519.PublicKey, error) {
	want := sshWireKey(make(ed25519.PublicKey, ed25519.PublicKeySize))
	prefix := len(want) - ed25519.PublicKeySize
	if len(wire) != len(want) || subtle.ConstantTimeCompare(wire[:prefix], want[:prefix]) != 1 {
		return nil, errors.New("attest: not an SSH Ed25519 public key")
	}
	return ed25519.PublicKey(append([]byte(nil), wire[prefix:]...)), nil
}

// canonicalJID validates a bare JID and returns it with its domain
// lower-cased. It enforces the structural rules of RFC 7622 (no resource,
// non-empty parts, at most 1023 bytes each, no characters forbidden in a
// localpart) plus no whitespace and no control characters; it does not
// apply PRECIS profiles.
func canonicalJID(jid string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrInvalidJID, why)
	}
	if !utf8.ValidString(jid) {
		return bad("not UTF-8")
	}
	if strings.ContainsRune(jid, '/') {
		return bad("resource present")
	}
	for _, r := range jid {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
			return bad("whitespace, control or unprintable character")
		}
	}
	local, domain, hasLocal := strings.Cut(jid, "@")
	if !hasLocal {
		local, domain = "", jid
	}
	if hasLocal {
		if local == "" || len(local) > maxJIDPartLen {
			return bad("empty or too long localpart")
		}
		if strings.ContainsAny(local, "\"&'/:<>@") {
			return bad("forbidden character in localpart")
		}
	}
	if domain == "" || len(domain) > maxJIDPartLen {
		return bad("empty or too long domainpart")
	}
	if strings.ContainsAny(domain, "@") || strings.HasSuffix(domain, ".") || strings.HasPrefix(domain, ".") {
		return bad("malformed domainpart")
	}
	domain = strings.ToLower(domain)
	if len(domain) > maxJIDPartLen || !utf8.ValidString(domain) {
		return bad("malformed domainpart")
	}
	if hasLocal {
		return local + "@" + domain, nil
	}
	return domain, nil
}
