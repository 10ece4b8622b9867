package c2sfront

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// scramServer is the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677)
// working from StoredKey/ServerKey only. Channel binding is not offered, so
// the gs2 header must be "n" or "y" (never "p=").
type scramServer struct {
	cred    Credential
	user    string // expected username (the account's localpart)
	authzOK func(authz string) bool

	gs2         string
	clientFirst string // client-first-message-bare
	serverFirst string
	nonce       string
}

var errSCRAM = errors.New("c2sfront: SCRAM exchange refused")

const maxSCRAMMessage = 1024

// first handles the client-first-message and returns the server-first.
func (s *scramServer) first(msg []byte) ([]byte, error) {
	if len(msg) > maxSCRAMMessage || !isPrintable(msg) {
		return nil, errSCRAM
	}
	m := string(msg)
	var authz string
	switch {
	case strings.HasPrefix(m, "n,"), strings.HasPrefix(m, "y,"):
	default:
		return nil, errSCRAM
	}
	rest := m[2:]
	i := strings.IndexByte(rest, ',')
	if i < 0 {
		return nil, errSCRAM
	}
	if a := rest[:i]; a != "" {
		if !strings.HasPrefix(a, "a=") {
			return nil, errSCRAM
		}
		authz = unescapeName(a[2:])
	}
	s.gs2 = m[:2+i+1]
	s.clientFirst = rest[i+1:]
	f := strings.Split(s.clientFirst, ",")
	if len(f) < 2 || !strings.HasPrefix(f[0], "n=") || !strings.HasPrefix(f[1], "r=") || len(f[1]) < 2+8 {
		return nil, errSCRAM
	}
	user := unescapeName(f[0][2:])
	okUser := subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) == 1
	if !okUser || (authz != "" && !s.authzOK(authz)) {
		return nil, errSCRAM
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	s.nonce = f[1][2:] + base64.RawStdEncoding.EncodeToString(b[:])
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), nil
}

// final checks the client-final-message and returns the server-final.
func (s *scramServer) final(msg []byte) ([]byte, error) {
	if len(msg) > maxSCRAMMessage || !isPrintable(msg) || s.serverFirst == "" {
		return nil, errSCRAM
	}
	m := string(msg)
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return nil, errSCRAM
	}
	without, proofB64 := m[:i], m[i+3:]
	f := strings.Split(without, ",")
	if len(f) < 2 || f[0] != "c="+base64.StdEncoding.EncodeToString([]byte(s.gs2)) || subtle.ConstantTimeCompare([]byte(f[1]), []byte("r="+s.nonce)) != 1 {
		return nil, errSCRAM
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != sha256.Size {
		return nil, errSCRAM
	}
	auth := []byte(s.clientFirst + "," + s.serverFirst + "," + without)
	sig := mac(s.cred.StoredKey[:], string(auth))
	clientKey := make([]byte, sha256.Size)
	subtle.XORBytes(clientKey, proof, sig)
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], s.cred.StoredKey[:]) != 1 {
		return nil, errSCRAM
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(s.cred.ServerKey[:], string(auth)))), nil
}

func unescapeName(s string) string {
	return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(s)
}

func isPrintable(b []byte) bool {
	return bytes.IndexFunc(b, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
}
