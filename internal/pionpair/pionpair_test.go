package pionpair_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/pionpair"
)

const importPath = "github.com/securejingle/securejingle/internal/pionpair"

// TestOnlyTestsImport: no non-test file of the module imports this
// package, so that test code never ends up in a program.
func TestOnlyTestsImport(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == importPath {
				t.Errorf("%s imports %s, which is test code", path, importPath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: is %s the module root?", checked, root)
	}
}

// TestPair: two peers with a data channel connect, and their DTLS
// certificates are the per-call ones.
func TestPair(t *testing.T) {
	a, b := pionpair.New(t, "a", nil), pionpair.New(t, "b", nil)
	if _, err := a.PC.CreateDataChannel("probe", nil); err != nil {
		t.Fatal(err)
	}
	pionpair.Signal(t, a, b, nil)
	pionpair.WaitConnected(t, a, b)
	for _, tc := range []struct{ local, remote *pionpair.Peer }{{a, b}, {b, a}} {
		if err := (dtls.Binding{SID: "s1", Expected: tc.remote.Cert.Fingerprint()}).CheckPeerConnection(tc.local.PC); err != nil {
			t.Fatalf("%s: the remote certificate is not %s's: %v", tc.local.Name, tc.remote.Name, err)
		}
	}
}
