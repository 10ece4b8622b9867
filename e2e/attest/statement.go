package attest

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/securejingle/securejingle/e2e/identity"
)

// ErrMalformedStatement is returned by [ParseStatement] for any input that
// is not exactly the canonical form of a valid statement.
var ErrMalformedStatement = errors.New("attest: malformed identity statement")

// ErrInvalidJID is returned for a JID that is not a valid bare JID.
var ErrInvalidJID = errors.New("attest: invalid bare JID")

// sshEd25519 is the SSH key type name of an Ed25519 key (RFC 8709).
const sshEd25519 = "ssh-ed25519"

// A Statement is the identity statement that every mechanism signs: it binds
// a bare JID and a device id to an Ed25519 identity key.
//
// Its canonical form ([Statement.Bytes]) is UTF-8 text with LF line endings:
//
//	securejingle identity statement v0
//	jid: <bare JID, domain lower-cased>
//	device: <decimal device id>
//	key: ssh-ed25519 <base64 of the SSH wire public key>
//	fingerprint: <identity.Fingerprint(key)>
//
// with a final LF. The text is stable so that users can sign it with
// external tools. The zero Statement is not valid. A Statement is a value;
// it is safe for concurrent use as long as Key is not modified.
type Statement struct {
	JID    string            // bare JID, local@domain or domain
	Device uint32            // device id
	Key    ed25519.PublicKey // identity public key, 32 bytes
}

// Validate reports whether st can be put in canonical form: a valid bare
// JID and a 32-byte key. It wraps [ErrInvalidJID] for a bad JID.
func (st Statement) Validate() error {
	if _, err := canonicalJID(st.JID); err != nil {
		return err
	}
	if len(st.Key) != ed25519.PublicKeySize {
		return errors.New("attest: identity key must be 32 bytes")
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
	b.WriteString("device: " + strconv.FormatUint(uint64(st.Device), 10) + "\n")
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
	if len(lines) != 5 {
		return bad("want exactly 5 lines")
	}
	if lines[0] != StatementHeader {
		return bad("bad header line")
	}
	field := func(line, name string) (string, bool) {
		return strings.CutPrefix(line, name+": ")
	}
	jid, ok := field(lines[1], "jid")
	if !ok {
		return bad("missing jid line")
	}
	dev, ok := field(lines[2], "device")
	if !ok {
		return bad("missing device line")
	}
	key, ok := field(lines[3], "key")
	if !ok {
		return bad("missing key line")
	}
	fp, ok := field(lines[4], "fingerprint")
	if !ok {
		return bad("missing fingerprint line")
	}
	if _, err := canonicalJID(jid); err != nil {
		return bad("invalid jid")
	}
	device, err := parseDecimalUint32(dev)
	if err != nil {
		return bad("invalid device")
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
	st := Statement{JID: jid, Device: device, Key: pub}
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

// parseDecimalUint32 parses a canonical decimal uint32: digits only, no
// sign, no leading zero except for "0" itself.
func parseDecimalUint32(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("attest: not a canonical decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("attest: not a canonical decimal")
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("attest: decimal out of range")
	}
	return uint32(v), nil
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
