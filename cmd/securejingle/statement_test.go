package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

func TestKeysStatement(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	st := daemontest.WaitConnected(t, alice.Client)

	out, _, err := runCommand(t, "keys", "statement", "-socket", env.Alice.Socket)
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := attest.ParseStatement([]byte(out))
	if err != nil {
		t.Fatalf("keys statement printed %q: %v", out, err)
	}
	// The statement names the account and its key, no device.
	if stmt.JID != env.Alice.JID || identity.Fingerprint(stmt.Key) != st.Fingerprint || string(stmt.Bytes()) != out ||
		out != st.Statement || strings.Contains(out, "device") {
		t.Fatalf("statement %+v, status %+v", stmt, st)
	}
	if _, _, err := runCommand(t, "keys", "statement", "-socket", env.Alice.Socket, "extra"); err == nil {
		t.Fatal("keys statement accepted an argument")
	}

	// verify lists the self attestation of bob's bundle as alice sees it.
	bobDev := daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	out, _, err = runCommand(t, "verify", "-socket", env.Alice.Socket, "-no-qr", env.Bob.JID)
	if err != nil {
		t.Fatal(err)
	}
	bobSt := daemontest.WaitConnected(t, bob.Client)
	if bobDev != bobSt.Device || !strings.Contains(out, "Attestations:\n  self: verified by "+bobSt.Fingerprint+"\n") {
		t.Fatalf("verify output:\n%s", out)
	}
}

func TestKeysStatementNoDaemon(t *testing.T) {
	_, _, err := runCommand(t, "keys", "statement", "-socket", t.TempDir()+"/none.sock")
	if err == nil {
		t.Fatal("keys statement without a daemon succeeded")
	}
}

func TestPrintAttestations(t *testing.T) {
	var b bytes.Buffer
	printAttestations(&b, []api.AttestationResult{
		{Type: "self", Status: "verified", Signer: "SHA256:abc"},
		{Type: "openpgp", Status: "verified", Signer: "ABCD Alice", Detail: "no user id of the signer has the address a@b"},
		{Type: "openpgp", Status: "untrusted", Detail: "issuer key ID 0123 is not in the keyring; signature not checked"},
		{Type: "x509-cms", Status: "failed", Detail: "bad signature"},
		{Type: "keybase", Status: "unsupported", Detail: "line one\n\x1b[31mline two\n"},
	})
	want := `Attestations:
  self: verified by SHA256:abc
  openpgp: verified by ABCD Alice (no user id of the signer has the address a@b)
  openpgp: untrusted
    issuer key ID 0123 is not in the keyring; signature not checked
  x509-cms: failed (bad signature)
  keybase: unsupported
    line one
    ` + "\uFFFD" + `[31mline two
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	printAttestations(&b, nil)
	if b.String() != "Attestations: none\n" {
		t.Fatalf("no attestations: %q", b.String())
	}
}
