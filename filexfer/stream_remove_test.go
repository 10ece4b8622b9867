package filexfer

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveIfSame: after placing, the temporary name is removed only if
// it still names the file written; a file another process put there
// since is left alone.
func TestRemoveIfSame(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "x.part")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Link(tmp, filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, tmp); err != nil {
		t.Fatal(err)
	}
	removeIfSame(tmp, f)
	if b, err := os.ReadFile(tmp); err != nil || string(b) != "someone else's" {
		t.Fatalf("a file put at the temporary name was removed: %q, %v", b, err)
	}
	os.Remove(tmp)
	if err := os.Link(filepath.Join(dir, "x"), tmp); err != nil {
		t.Fatal(err)
	}
	removeIfSame(tmp, f)
	if _, err := os.Lstat(tmp); !os.IsNotExist(err) {
		t.Fatalf("the temporary name of the written file was kept: %v", err)
	}
}
