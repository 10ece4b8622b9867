package filexfer

import (
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameLen is the longest name SanitizeName returns, in bytes: what
// common Linux file systems allow (NAME_MAX), with room for " (999)".
const maxNameLen = 255 - len(" (999)")

// maxNameTries bounds the "name (k).ext" candidates Finish tries.
const maxNameTries = 1000

// SanitizeName turns a name a peer offered into a safe file name of the
// download directory: only its last path element (after / or \), without
// control and format characters (bidirectional overrides, zero-width
// characters: they disguise extensions), invalid UTF-8 replaced, spaces
// and dots trimmed at both ends (no hidden files, no "." or ".."), a
// leading "-" escaped (it would read as an option to many commands), and
// at most 249 bytes, cut on a character boundary and keeping the
// extension. An empty result becomes "file".
func SanitizeName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.Trim(name, " .\u00a0")
	if strings.HasPrefix(name, "-") {
		name = "_" + name
	}
	if name == "" {
		return "file"
	}
	if len(name) > maxNameLen {
		ext := filepath.Ext(name)
		if len(ext) > 32 {
			ext = ""
		}
		base := name[:len(name)-len(ext)]
		cut := maxNameLen - len(ext)
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		name = strings.TrimRight(base[:cut], " .") + ext
	}
	return name
}

// numberedName returns name for k = 0, else "base (k).ext".
func numberedName(name string, k int) string {
	if k == 0 {
		return name
	}
	ext := filepath.Ext(name)
	if ext == name {
		ext = ""
	}
	return strings.TrimSuffix(name, ext) + " (" + strconv.Itoa(k) + ")" + ext
}
