package daemon_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/integration"
)

func verifyAttestations(t *testing.T, c *api.Client, jid string) []api.AttestationResult {
	t.Helper()
	v, err := c.Verify(context.Background(), jid)
	if err != nil {
		t.Fatal(err)
	}
	return v.Attestations
}

// TestOpenPGPAttestation publishes a real gpg signature over alice's
// statement in her bundle and checks it from bob's daemon, without and
// then with alice's public key in bob's [trust] openpgp_keys.
func TestOpenPGPAttestation(t *testing.T) {
	g := integration.NewGnuPG(t)
	env := daemontest.New(t)

	// The statement names the account and its key, no device.
	alice := daemontest.Start(t, env.Alice)
	st := daemontest.WaitConnected(t, alice.Client)
	alice.Stop(t)
	stmt, err := attest.ParseStatement([]byte(st.Statement))
	if err != nil || stmt.JID != env.Alice.JID || identity.Fingerprint(stmt.Key) != st.Fingerprint {
		t.Fatalf("statement %q: %+v, %v", st.Statement, stmt, err)
	}

	dir := filepath.Dir(env.Alice.ConfigPath)
	stFile := filepath.Join(dir, "st.txt")
	if err := os.WriteFile(stFile, []byte(st.Statement), 0o600); err != nil {
		t.Fatal(err)
	}
	fpr := g.GenKey("Alice <alice@example.test>", "ed25519")
	g.Run("--armor", "--detach-sign", "--output", stFile+".asc", stFile)
	pub := filepath.Join(filepath.Dir(env.Bob.ConfigPath), "alice.asc")
	if err := os.WriteFile(pub, g.Run("--armor", "--export", "alice@example.test"), 0o600); err != nil {
		t.Fatal(err)
	}
	env.Alice.AppendConfig(t, "[[keys.attestation]]\ntype = \"openpgp\"\nfile = \"st.txt.asc\"\n")
	alice = daemontest.Start(t, env.Alice)
	if st2, err := alice.Client.Status(context.Background()); err != nil || st2.Statement != st.Statement {
		t.Fatalf("statement changed across the restart: %q, %v", st2.Statement, err)
	}

	// Alice's own view of her bundle: signed by her OpenPGP key, which she
	// has not configured as trusted.
	own := verifyAttestations(t, alice.Client, env.Alice.JID)
	if len(own) != 2 || own[0].Type != "self" || own[0].Status != "verified" || own[1].Type != "openpgp" || own[1].Status != "untrusted" {
		t.Fatalf("alice's own attestations %+v", own)
	}

	// Bob without alice's key: the signature is there but proves nothing.
	bob := daemontest.Start(t, env.Bob)
	if dev := daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID); dev != st.Device {
		t.Fatalf("bob sees alice's device %d, want %d", dev, st.Device)
	}
	got := verifyAttestations(t, bob.Client, env.Alice.JID)
	if len(got) != 2 || got[0].Type != "self" || got[0].Status != "verified" || got[0].Signer != st.Fingerprint {
		t.Fatalf("bob sees %+v", got)
	}
	if got[1].Type != "openpgp" || got[1].Status != "untrusted" || !strings.Contains(got[1].Detail, fpr) {
		t.Fatalf("without the key, bob sees %+v (key %s)", got[1], fpr)
	}

	// Bob with alice's key in his keyring.
	bob.Stop(t)
	env.Bob.AppendConfig(t, "[trust]\nopenpgp_keys = [\"alice.asc\"]\n")
	bob = daemontest.Start(t, env.Bob)
	got = verifyAttestations(t, bob.Client, env.Alice.JID)
	if len(got) != 2 || got[0].Status != "verified" || got[1].Type != "openpgp" || got[1].Status != "verified" ||
		!strings.HasPrefix(got[1].Signer, fpr+" ") || got[1].Detail != "" {
		t.Fatalf("with the key, bob sees %+v (key %s)", got, fpr)
	}

	// A file that is not an OpenPGP signature stops the daemon at startup,
	// naming the file.
	alice.Stop(t)
	if err := os.WriteFile(stFile+".asc", []byte("-----BEGIN PGP SIGNATURE-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := daemon.Load(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	err = daemon.Run(context.Background(), cfg, daemontest.Logger())
	var fe *daemon.AttestationFileError
	if !errors.As(err, &fe) || fe.File != stFile+".asc" || fe.Type != "openpgp" {
		t.Fatalf("daemon with a malformed attestation: %v", err)
	}
}

// TestX509Attestation publishes an openssl CMS signature over alice's
// statement and checks it from bob's daemon, which trusts only the CA in
// [trust] x509_roots.
func TestX509Attestation(t *testing.T) {
	openssl := integration.Tool(t, "openssl", "openssl")
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	st := daemontest.WaitConnected(t, alice.Client)
	alice.Stop(t)

	adir, bdir := filepath.Dir(env.Alice.ConfigPath), filepath.Dir(env.Bob.ConfigPath)
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = adir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	run(append(append([]string{"req", "-x509"}, ec...), "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
		"-subj", "/CN=Test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")...)
	run(append(append([]string{"req", "-new"}, ec...), "-keyout", "alice.key", "-out", "alice.csr", "-subj", "/CN=Alice")...)
	ext := "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=emailProtection\nsubjectAltName=email:alice@example.test\n"
	if err := os.WriteFile(filepath.Join(adir, "alice.ext"), []byte(ext), 0o600); err != nil {
		t.Fatal(err)
	}
	run("x509", "-req", "-in", "alice.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-out", "alice.pem", "-days", "30", "-extfile", "alice.ext")
	if err := os.WriteFile(filepath.Join(adir, "st.txt"), []byte(st.Statement), 0o600); err != nil {
		t.Fatal(err)
	}
	run("cms", "-sign", "-binary", "-in", "st.txt", "-signer", "alice.pem", "-inkey", "alice.key",
		"-certfile", "ca.pem", "-outform", "DER", "-out", "st.p7s")
	ca, err := os.ReadFile(filepath.Join(adir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bdir, "roots.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}

	env.Alice.AppendConfig(t, "[[keys.attestation]]\ntype = \"x509-cms\"\nfile = \"st.p7s\"\n")
	alice = daemontest.Start(t, env.Alice)
	if ast, err := alice.Client.Status(context.Background()); err != nil || len(ast.Warnings) != 0 {
		t.Fatalf("alice's status %+v, %v: want no warnings", ast, err)
	}
	env.Bob.AppendConfig(t, "[trust]\nx509_roots = \"roots.pem\"\n")
	bob := daemontest.Start(t, env.Bob)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	got := verifyAttestations(t, bob.Client, env.Alice.JID)
	if len(got) != 2 || got[0].Status != "verified" || got[1].Type != "x509-cms" || got[1].Status != "verified" ||
		!strings.Contains(got[1].Signer, "Alice") || !strings.Contains(got[1].Signer, "alice@example.test") || got[1].Detail != "" {
		t.Fatalf("bob sees %+v", got)
	}
}

// TestRegressDaemonRunsWithExpiredAttestation is finding 7 of the first
// review: a configured attestation whose certificate had expired stopped
// the daemon ("not a signature of this device's identity statement").
// The daemon runs, publishes it and reports it in /v1/status.
func TestRegressDaemonRunsWithExpiredAttestation(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	st := daemontest.WaitConnected(t, alice.Client)
	alice.Stop(t)

	dir := filepath.Dir(env.Alice.ConfigPath)
	end := time.Now().AddDate(0, -1, 0).UTC().Truncate(time.Second)
	daemon.TestCMS(t, dir, env.Alice.JID, end.AddDate(-1, 0, 0), end, []byte(st.Statement))
	env.Alice.AppendConfig(t, "[[keys.attestation]]\ntype = \"x509-cms\"\nfile = \"st.p7s\"\n[trust]\nx509_roots = \"ca.pem\"\n")
	alice = daemontest.Start(t, env.Alice)
	ast := daemontest.WaitConnected(t, alice.Client)
	if len(ast.Warnings) != 1 || !strings.Contains(ast.Warnings[0], "expired on "+end.Format(time.DateOnly)) {
		t.Fatalf("warnings %q, want one saying the certificate expired on %s", ast.Warnings, end.Format(time.DateOnly))
	}
	own := verifyAttestations(t, alice.Client, env.Alice.JID)
	if len(own) != 2 || own[1].Type != "x509-cms" || own[1].Status != "expired" {
		t.Fatalf("alice's own attestations %+v", own)
	}
}
