package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// maxKeyFileSize bounds how much of a key file is read. An OpenSSH Ed25519
// key file is under 500 bytes; anything near this limit is not one.
const maxKeyFileSize = 64 << 10

var (
	// ErrIncorrectPassphrase is returned when a key file's passphrase is
	// wrong, so callers can prompt again.
	ErrIncorrectPassphrase = errors.New("identity: incorrect passphrase")

	// ErrKeyType is returned when a key file or agent key is not an Ed25519
	// key. Identity keys are Ed25519 only.
	ErrKeyType = errors.New("identity: not an Ed25519 key")

	// ErrKeyPermissions is returned when a private key file can be read or
	// written by group or others. Like ssh, LoadFile refuses such a key: it
	// may have been read by someone else.
	ErrKeyPermissions = errors.New("identity: private key file permissions are too open")
)

// LoadFile returns a [Signer] for the OpenSSH-format Ed25519 private key in
// the file at path, as written by `ssh-keygen -t ed25519` or [Generate].
//
// If the key is passphrase-protected, LoadFile calls passphrase once to get
// the passphrase; a nil passphrase func makes such a key an error wrapping
// *ssh.PassphraseMissingError. A wrong passphrase gives an error wrapping
// [ErrIncorrectPassphrase]; a key of another type one wrapping [ErrKeyType];
// a file readable or writable by group or others (on Unix) one wrapping
// [ErrKeyPermissions].
//
// The decrypted key is then held in process memory. The Signer is safe for
// concurrent use.
func LoadFile(path string, passphrase func() ([]byte, error)) (Signer, error) {
	priv, err := loadPrivateKey(path, passphrase)
	if err != nil {
		return nil, err
	}
	s := newKeySigner(priv)
	clear(priv)
	return s, nil
}

// AddFileToAgent loads the key file at path as [LoadFile] does and adds the
// key to a, as `ssh-add` would, with path as its comment. It returns the
// public key that was added. The private key is handed to a and not kept.
func AddFileToAgent(a agent.Agent, path string, passphrase func() ([]byte, error)) (ed25519.PublicKey, error) {
	priv, err := loadPrivateKey(path, passphrase)
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	// An in-process agent such as agent.NewKeyring keeps the slice it is
	// given, so it gets its own copy, which is not cleared here.
	own := append(ed25519.PrivateKey(nil), priv...)
	if err := a.Add(agent.AddedKey{PrivateKey: own, Comment: path}); err != nil {
		return nil, fmt.Errorf("identity: adding %s to agent: %w", path, err)
	}
	return append(ed25519.PublicKey(nil), priv[ed25519.SeedSize:]...), nil
}

// PublicKeyFromFile returns the public key of the OpenSSH-format Ed25519
// private key file at path without needing its passphrase: OpenSSH stores
// the public key in the clear. It does not check the file's permissions.
func PublicKeyFromFile(path string) (ed25519.PublicKey, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if pm, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
		if pm.PublicKey == nil {
			return nil, fmt.Errorf("identity: %s: no public key in encrypted key file", path)
		}
		return ed25519PublicKey(pm.PublicKey, path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	priv, err := ed25519PrivateKey(raw, path)
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	return append(ed25519.PublicKey(nil), priv[ed25519.SeedSize:]...), nil
}

func loadPrivateKey(path string, passphrase func() ([]byte, error)) (ed25519.PrivateKey, error) {
	if err := checkKeyFilePermissions(path); err != nil {
		return nil, err
	}
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	raw, err := ssh.ParseRawPrivateKey(b)
	if pm, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
		if pm.PublicKey != nil && pm.PublicKey.Type() != ssh.KeyAlgoED25519 {
			return nil, fmt.Errorf("%w: %s holds a %s key", ErrKeyType, path, pm.PublicKey.Type())
		}
		if passphrase == nil {
			return nil, fmt.Errorf("identity: %s is passphrase-protected and no passphrase was given: %w", path, err)
		}
		pass, perr := passphrase()
		if perr != nil {
			return nil, fmt.Errorf("identity: reading passphrase for %s: %w", path, perr)
		}
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(b, pass)
		clear(pass)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("%w for %s", ErrIncorrectPassphrase, path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	return ed25519PrivateKey(raw, path)
}

// readKeyFile reads a PEM key file and rejects anything after its one block.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("identity: %s: key file too large", path)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("identity: %s: no PEM-encoded private key", path)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("identity: %s: trailing data after private key", path)
	}
	return b, nil
}

func ed25519PrivateKey(raw any, path string) (ed25519.PrivateKey, error) {
	var k ed25519.PrivateKey
	switch raw := raw.(type) {
	case *ed25519.PrivateKey:
		k = *raw
	case ed25519.PrivateKey:
		k = raw
	default:
		return nil, fmt.Errorf("%w: %s holds a %T", ErrKeyType, path, raw)
	}
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: %s: bad key length", ErrKeyType, path)
	}
	return k, nil
}

func ed25519PublicKey(k ssh.PublicKey, what string) (ed25519.PublicKey, error) {
	if k.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("%w: %s is a %s key", ErrKeyType, what, k.Type())
	}
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrKeyType, what)
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %s", ErrKeyType, what)
	}
	return append(ed25519.PublicKey(nil), pub...), nil
}

func checkKeyFilePermissions(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("identity: %s is not a regular file", path)
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %#o, want 0600", ErrKeyPermissions, path, perm)
	}
	return nil
}

// Generate creates a new Ed25519 identity key, writes it to path in OpenSSH
// format with mode 0600, encrypted with passphrase unless passphrase is
// empty, and writes the public key to path+".pub" in authorized_keys format
// with comment. It refuses to overwrite either file: the error then wraps
// [fs.ErrExist]. It returns a [Signer] for the new key, as [LoadFile] would.
func Generate(path string, passphrase []byte, comment string) (Signer, error) {
	for _, r := range comment {
		if r < 0x20 || r == 0x7f {
			return nil, errors.New("identity: key comment contains control characters")
		}
	}
	pubPath := path + ".pub"
	if _, err := os.Lstat(pubPath); err == nil {
		return nil, fmt.Errorf("identity: %s: %w", pubPath, fs.ErrExist)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generating key: %w", err)
	}
	defer clear(priv)
	var block *pem.Block
	if len(passphrase) == 0 {
		block, err = ssh.MarshalPrivateKey(priv, comment)
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, comment, passphrase)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: encoding key: %w", err)
	}
	privPEM := pem.EncodeToMemory(block)
	defer clear(privPEM)
	clear(block.Bytes)

	if err := writeNewFile(path, privPEM, 0o600); err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("identity: %w", err)
	}
	line := ssh.MarshalAuthorizedKey(sshPub)
	if comment != "" {
		line = append(bytes.TrimSuffix(line, []byte("\n")), " "+comment+"\n"...)
	}
	if err := writeNewFile(pubPath, line, 0o644); err != nil {
		os.Remove(path)
		return nil, err
	}
	return newKeySigner(priv), nil
}

// writeNewFile writes b to a file that must not exist yet, and syncs it.
func writeNewFile(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("identity: writing %s: %w", path, err)
	}
	return nil
}
