package dtls

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoVariableTimeComparison forbids bytes.Equal and bytes.Compare (under
// any import name) in the sources of dtls and srtp: fingerprints, tags and
// keys are compared with crypto/subtle.
func TestNoVariableTimeComparison(t *testing.T) {
	checked := 0
	for _, dir := range []string{".", filepath.Join("..", "srtp")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			checked++
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			bytesName := ""
			for _, imp := range f.Imports {
				if path, _ := strconv.Unquote(imp.Path.Value); path == "bytes" {
					bytesName = "bytes"
					if imp.Name != nil {
						bytesName = imp.Name.Name
					}
				}
			}
			if bytesName == "" {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == bytesName && (sel.Sel.Name == "Equal" || sel.Sel.Name == "Compare") {
					t.Errorf("%s: bytes.%s: compare secrets and fingerprints with crypto/subtle", fset.Position(sel.Pos()), sel.Sel.Name)
				}
				return true
			})
		}
	}
	if checked < 4 {
		t.Fatalf("checked only %d source files: wrong directory?", checked)
	}
}
