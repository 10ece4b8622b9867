//go:build !linux

package daemon

import "os"

// fileIdentOf says nothing here: every download hashes its file again.
func fileIdentOf(os.FileInfo, string) (fileIdent, bool) { return fileIdent{}, false }
