package attest

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"flag"
	"github.com/securejingle/securejingle/internal/integration"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Run `go test ./e2e/attest -run TestIntegration -update` to rewrite the
// testdata vectors from real gpg and openssl output.
var updateTestdata = flag.Bool("update", false, "rewrite testdata/ from real gpg and openssl output")

func needTool(t *testing.T, name string) string {
	pkg := map[string]string{"gpg": "gnupg", "gpgconf": "gnupg", "openssl": "openssl"}[name]
	return integration.Tool(t, name, pkg)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func updateVector(t *testing.T, name string, b []byte) {
	t.Helper()
	if *updateTestdata {
		writeFile(t, filepath.Join("testdata", name), b)
	}
}

func newGPGHome(t *testing.T) *gpgHome { return &gpgHome{integration.NewGnuPG(t), t} }

// gpgHome is integration.GnuPG with the short names these tests use.
type gpgHome struct {
	*integration.GnuPG
	t *testing.T
}

func (g *gpgHome) run(args ...string) []byte      { return g.Run(args...) }
func (g *gpgHome) genKey(uid, algo string) string { return g.GenKey(uid, algo) }

func (g *gpgHome) sign(fpr, file string) []byte {
	g.t.Helper()
	g.run("--armor", "--yes", "--local-user", fpr, "--detach-sign", "--output", file+".asc", file)
	return readFile(g.t, file+".asc")
}

func TestIntegrationOpenPGP(t *testing.T) {
	for _, algo := range []string{"ed25519", "rsa3072"} {
		t.Run(algo, func(t *testing.T) {
			g := newGPGHome(t)
			fpr := g.genKey("Alice <alice@example.org>", algo)
			pub := g.run("--armor", "--export", fpr)

			st := testStatement()
			stFile := filepath.Join(t.TempDir(), "st.txt")
			writeFile(t, stFile, st.Bytes())
			sig := g.sign(fpr, stFile)

			v, err := NewOpenPGPVerifier(pub)
			if err != nil {
				t.Fatal(err)
			}
			res := v.Verify(st, sig)
			t.Logf("%v", res)
			if res.Status != Verified {
				t.Fatalf("got %v, want verified", res)
			}
			if !strings.HasPrefix(res.Signer, fpr+" ") || !strings.Contains(res.Signer, "alice@example.org") {
				t.Errorf("signer %q, want fingerprint %s and the user id", res.Signer, fpr)
			}
			if res.Detail != "" {
				t.Errorf("unexpected detail %q (the user id names the JID)", res.Detail)
			}

			tampered := st
			tampered.Key = otherKey()
			res = v.Verify(tampered, sig)
			t.Logf("tampered: %v", res)
			if res.Status != Failed {
				t.Errorf("tampered statement: got %v, want failed", res)
			}

			// A keyring without the signer: the signature is untrusted and
			// the issuer is named.
			other := newGPGHome(t)
			ofpr := other.genKey("Mallory <mallory@example.org>", "ed25519")
			ov, err := NewOpenPGPVerifier(other.run("--armor", "--export", ofpr))
			if err != nil {
				t.Fatal(err)
			}
			res = ov.Verify(st, sig)
			t.Logf("foreign keyring: %v", res)
			if res.Status != Untrusted || !strings.Contains(res.Detail, fpr[len(fpr)-16:]) {
				t.Errorf("foreign keyring: got %v, want untrusted naming key ID %s", res, fpr[len(fpr)-16:])
			}

			// Through the registry, as a client would.
			reg := NewRegistry(SelfVerifier{}, v)
			got := reg.Verify(st, []Attestation{mustSelf(t, testKey(), st), {Type: TypeOpenPGP, Data: sig}})
			if got[0].Status != Verified || got[1].Status != Verified {
				t.Errorf("registry: %v", got)
			}

			// A configured key whose user ids name someone else.
			cfpr := g.genKey("Carol <carol@example.org>", algo)
			cv, err := NewOpenPGPVerifier(g.run("--armor", "--export", cfpr))
			if err != nil {
				t.Fatal(err)
			}
			if res := cv.Verify(st, g.sign(cfpr, stFile)); logResult(t, res).Status != Mismatch ||
				!strings.Contains(res.Detail, "for carol@example.org, not alice@example.org") {
				t.Errorf("carol's key: got %v, want mismatch", res)
			}

			if algo == "rsa3072" {
				// gpg still makes SHA-1 signatures when asked to.
				weak := g.run("--armor", "--local-user", fpr, "--digest-algo", "SHA1", "--detach-sign", "--output", "-", stFile)
				if res := v.Verify(st, weak); logResult(t, res).Status != Failed {
					t.Errorf("SHA-1 signature: got %v, want failed", res)
				}
			}

			updateVector(t, "openpgp-"+algo+".pub.asc", pub)
			updateVector(t, "openpgp-"+algo+".sig.asc", sig)
			if algo == "ed25519" {
				updateVector(t, "statement.txt", st.Bytes())
			}
		})
	}
}

// TestIntegrationOpenPGPNames checks the user id forms that name a JID,
// and an expired key, with keys made by the real gpg.
func TestIntegrationOpenPGPNames(t *testing.T) {
	g := newGPGHome(t)
	st := testStatement()
	stFile := filepath.Join(t.TempDir(), "st.txt")
	writeFile(t, stFile, st.Bytes())
	for _, uid := range []string{"Alice <xmpp:alice@example.org>", "xmpp:alice@example.org", "Alice (work) <alice@Example.ORG>"} {
		fpr := g.genKey(uid, "ed25519")
		v, err := NewOpenPGPVerifier(g.run("--armor", "--export", fpr))
		if err != nil {
			t.Fatal(err)
		}
		if res := v.Verify(st, g.sign(fpr, stFile)); logResult(t, res).Status != Verified || res.Detail != "" {
			t.Errorf("user id %q: got %v, want verified", uid, res)
		}
	}

	// A key that expires a day after it is made, checked two days later.
	uid := "Alice Expiring <alice@example.org>"
	g.run("--quick-gen-key", uid, "ed25519", "sign", "1d")
	var fpr string
	for _, line := range strings.Split(string(g.run("--with-colons", "--list-keys", uid)), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	v, err := NewOpenPGPVerifier(g.run("--armor", "--export", fpr))
	if err != nil {
		t.Fatal(err)
	}
	sig := g.sign(fpr, stFile)
	if res := v.Verify(st, sig); logResult(t, res).Status != Verified || res.Expires.IsZero() {
		t.Errorf("fresh key: got %+v, want verified with an expiry", res)
	}
	later := time.Now().Add(48 * time.Hour)
	v.Now = func() time.Time { return later }
	if res := v.Verify(st, sig); logResult(t, res).Status != Expired || !strings.Contains(res.Detail, "expired on") {
		t.Errorf("expired key: got %v, want expired", res)
	}
}

// opensslPKI is a throw-away CA and leaf made with the openssl CLI.
type opensslPKI struct {
	t       *testing.T
	openssl string
	dir     string
}

func newOpenSSL(t *testing.T) *opensslPKI {
	return &opensslPKI{t: t, openssl: needTool(t, "openssl"), dir: t.TempDir()}
}

func (o *opensslPKI) run(args ...string) {
	o.t.Helper()
	cmd := exec.Command(o.openssl, args...)
	cmd.Dir = o.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		o.t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

func (o *opensslPKI) path(name string) string { return filepath.Join(o.dir, name) }

func newKeyArgs(alg string) []string {
	if alg == "rsa" {
		return []string{"-newkey", "rsa:2048"}
	}
	return []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"}
}

// makeCA creates name.pem and name.key.
func (o *opensslPKI) makeCA(name string) {
	o.t.Helper()
	o.run(append([]string{"req", "-x509"}, append(newKeyArgs("ec"),
		"-nodes", "-keyout", name+".key", "-out", name+".pem", "-days", "3650",
		"-subj", "/CN="+name,
		"-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign")...)...)
}

// makeLeaf creates name.pem and name.key signed by ca with the given EKU.
func (o *opensslPKI) makeLeaf(name, ca, alg, eku string) {
	o.t.Helper()
	o.makeLeafExt(name, ca, alg, eku, "email:alice@example.org")
}

// makeLeafSAN creates an EC S/MIME leaf with the given subjectAltName
// (openssl syntax).
func (o *opensslPKI) makeLeafSAN(name, ca, san string) {
	o.t.Helper()
	o.makeLeafExt(name, ca, "ec", "emailProtection", san)
}

func (o *opensslPKI) makeLeafExt(name, ca, alg, eku, san string) {
	o.t.Helper()
	o.run(append([]string{"req", "-new"}, append(newKeyArgs(alg),
		"-nodes", "-keyout", name+".key", "-out", name+".csr",
		"-subj", "/CN=Alice/O=Example")...)...)
	ext := "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n" +
		"extendedKeyUsage=" + eku + "\nsubjectAltName=" + san + "\n"
	writeFile(o.t, o.path(name+".ext"), []byte(ext))
	o.run("x509", "-req", "-in", name+".csr", "-CA", ca+".pem", "-CAkey", ca+".key",
		"-CAcreateserial", "-out", name+".pem", "-days", "3650", "-extfile", name+".ext")
}

// sign signs file with leaf and returns DER CMS; extra args go to cms -sign.
func (o *opensslPKI) sign(leaf, ca, file string, extra ...string) []byte {
	o.t.Helper()
	out := leaf + "-" + filepath.Base(file) + ".der"
	o.run(append([]string{"cms", "-sign", "-binary", "-in", file, "-signer", leaf + ".pem",
		"-inkey", leaf + ".key", "-certfile", ca + ".pem", "-outform", "DER", "-out", out}, extra...)...)
	return readFile(o.t, o.path(out))
}

func (o *opensslPKI) pool(ca string) *x509.CertPool {
	o.t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(readFile(o.t, o.path(ca+".pem"))) {
		o.t.Fatal("bad CA PEM")
	}
	return p
}

func TestIntegrationX509CMS(t *testing.T) {
	o := newOpenSSL(t)
	o.makeCA("ca")
	o.makeCA("otherca")
	st := testStatement()
	stFile := o.path("st.txt")
	writeFile(t, stFile, st.Bytes())
	v := NewX509Verifier(o.pool("ca"))

	for _, alg := range []string{"ec", "rsa"} {
		t.Run(alg, func(t *testing.T) {
			leaf := "leaf-" + alg
			o.makeLeaf(leaf, "ca", alg, "emailProtection")
			sig := o.sign(leaf, "ca", stFile)

			res := v.Verify(st, sig)
			t.Logf("%v", res)
			if res.Status != Verified {
				t.Fatalf("got %v, want verified", res)
			}
			if !strings.Contains(res.Signer, "CN=Alice") || !strings.Contains(res.Signer, "alice@example.org") {
				t.Errorf("signer %q", res.Signer)
			}
			// PEM form of the same signature.
			if res := v.Verify(st, pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: sig})); logResult(t, res).Status != Verified {
				t.Errorf("PEM: got %v", res)
			}

			// A valid signature whose chain ends at a root we do not trust
			// is Untrusted, not Failed.
			if res := NewX509Verifier(o.pool("otherca")).Verify(st, sig); logResult(t, res).Status != Untrusted {
				t.Errorf("other CA: got %v, want untrusted", res)
			}
			if res := NewX509Verifier(nil).Verify(st, sig); logResult(t, res).Status != Untrusted {
				t.Errorf("nil roots: got %v, want untrusted", res)
			}
			tampered := st
			tampered.Key = otherKey()
			if res := v.Verify(tampered, sig); logResult(t, res).Status != Failed {
				t.Errorf("tampered: got %v, want failed", res)
			}
			// Certificate expired at verification time.
			late := NewX509Verifier(o.pool("ca"), WithClock(func() time.Time { return time.Now().AddDate(20, 0, 0) }))
			if res := late.Verify(st, sig); logResult(t, res).Status != Expired || !strings.Contains(res.Detail, "expired on") {
				t.Errorf("expired: got %v, want expired", res)
			}
			// A statement for someone else: the certificate names alice.
			bob := st
			bob.JID = "bob@example.org"
			bobSig := o.sign(leaf, "ca", writeStatement(t, o.dir, bob))
			if res := v.Verify(bob, bobSig); logResult(t, res).Status != Mismatch ||
				!strings.Contains(res.Detail, "for alice@example.org, not bob@example.org") {
				t.Errorf("alice's certificate on bob's statement: got %v, want mismatch", res)
			}
			updateVector(t, "cms-"+alg+".der", sig)
		})
	}

	t.Run("attached", func(t *testing.T) {
		o.makeLeaf("leaf-att", "ca", "ec", "emailProtection")
		sig := o.sign("leaf-att", "ca", stFile, "-nodetach")
		if res := v.Verify(st, sig); logResult(t, res).Status != Verified {
			t.Errorf("attached content equal to the statement: got %v, want verified", res)
		}
		tampered := st
		tampered.Key = otherKey()
		if res := v.Verify(tampered, sig); logResult(t, res).Status != Failed {
			t.Errorf("attached content for another statement: got %v, want failed", res)
		}
		updateVector(t, "cms-attached.der", sig)
	})

	// id-on-xmppAddr only (RFC 6120 section 13.7.1.4), as openssl writes it.
	t.Run("xmppaddr", func(t *testing.T) {
		o.makeLeafSAN("leaf-xmpp", "ca", "otherName:1.3.6.1.5.5.7.8.5;UTF8:alice@example.org")
		res := v.Verify(st, o.sign("leaf-xmpp", "ca", stFile))
		if logResult(t, res).Status != Verified || res.Detail != "" || len(res.Names) != 1 || res.Names[0] != "alice@example.org" {
			t.Errorf("xmppAddr certificate: got %+v, want verified", res)
		}
		o.makeLeafSAN("leaf-carol", "ca", "otherName:1.3.6.1.5.5.7.8.5;UTF8:carol@example.org,email:carol@example.org")
		res = v.Verify(st, o.sign("leaf-carol", "ca", stFile))
		if logResult(t, res).Status != Mismatch || !strings.Contains(res.Detail, "carol@example.org") {
			t.Errorf("carol's certificate: got %v, want mismatch", res)
		}
	})

	// A certificate that had expired when openssl signed with it: the
	// signing time attribute is outside its validity. It must read as
	// expired, not as a bad signature (finding 7 of the first review).
	t.Run("signed-after-expiry", func(t *testing.T) {
		p := newTestPKI(t)
		end := time.Now().AddDate(0, -1, 0).UTC().Truncate(time.Second)
		leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{sanEmail(st.JID)}, notBefore: end.AddDate(-1, 0, 0), notAfter: end})
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, o.path("old.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
		writeFile(t, o.path("old.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		writeFile(t, o.path("oldca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.caCert.Raw}))
		sig := o.sign("old", "oldca", stFile)
		res := NewX509Verifier(p.pool()).Verify(st, sig)
		if logResult(t, res).Status != Expired || !strings.Contains(res.Detail, "expired on "+end.Format(time.DateOnly)) {
			t.Errorf("signed with an expired certificate: got %v, want expired on %s", res, end.Format(time.DateOnly))
		}
	})

	t.Run("server-auth-eku", func(t *testing.T) {
		o.makeLeaf("leaf-tls", "ca", "ec", "serverAuth")
		sig := o.sign("leaf-tls", "ca", stFile)
		if res := v.Verify(st, sig); logResult(t, res).Status != Failed {
			t.Errorf("serverAuth-only leaf: got %v, want failed", res)
		}
	})

	t.Run("sha1", func(t *testing.T) {
		o.makeLeaf("leaf-sha1", "ca", "rsa", "emailProtection")
		sig := o.sign("leaf-sha1", "ca", stFile, "-md", "sha1")
		if res := v.Verify(st, sig); logResult(t, res).Status != Failed {
			t.Errorf("SHA-1 CMS: got %v, want failed", res)
		}
	})

	updateVector(t, "cms-ca.pem", readFile(t, o.path("ca.pem")))
}

// writeStatement writes st to a new file in dir and returns its path.
func writeStatement(t *testing.T, dir string, st Statement) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "st-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(st.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func logResult(t *testing.T, r Result) Result {
	t.Helper()
	t.Logf("%v", r)
	return r
}
