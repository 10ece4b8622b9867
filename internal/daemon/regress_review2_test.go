package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// TestRegressAttestationBudget (issue 7, finding 1): a bundle is at most
// e2e.MaxBundleSize, so attestation files that add up to more than the
// budget are a configuration error naming the fix, not a daemon that
// cannot sign its bundle; and a configuration at the budget does sign.
func TestRegressAttestationBudget(t *testing.T) {
	dir := t.TempDir()
	const each = 15 << 10
	n := maxAttestationTotal/each + 1 // one file over the budget
	var src strings.Builder
	src.WriteString(minimal)
	for i := range n {
		name := fmt.Sprintf("proof%d.txt", i)
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte{'p'}, each), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&src, "[[keys.attestation]]\ntype = \"x-proof\"\nfile = %q\n", name)
	}
	c, err := Parse([]byte(src.String()), dir)
	if err == nil {
		err = c.Validate()
	}
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.HasPrefix(fe.Key, "keys.attestation[") {
		t.Fatalf("%d attestation files of %d bytes: %v, want a keys.attestation field error", n, each, err)
	}

	// At the budget, with the self attestation, the bundle still signs.
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := e2e.New(e2e.Config{JID: "alice@example.test", Signer: signer, Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	self, err := attest.SignSelf(signer, attest.Statement{JID: "alice@example.test", Key: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	atts := []e2e.Attestation{self}
	for left := maxAttestationTotal; left > 0; left -= maxAttestationFile {
		atts = append(atts, e2e.Attestation{Type: "x-proof", Data: bytes.Repeat([]byte{'p'}, min(left, maxAttestationFile))})
	}
	if err := eng.SetAttestations(atts); err != nil {
		t.Fatalf("attestations at the budget (%d bytes): %v", maxAttestationTotal, err)
	}
}
