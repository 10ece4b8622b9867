//go:build !linux

package filexfer

import "os"

// linkOpen gives the file f, created as tmp, the new name path; it fails
// on an existing name (os.ErrExist) and never replaces a file. Here it
// links by name: Finish checks before and after that the name holds the
// file written.
func linkOpen(f partFile, tmp, path string) error {
	return os.Link(tmp, path)
}
