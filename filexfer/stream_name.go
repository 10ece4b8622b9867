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

// minCutName is the shortest a name is cut to for a file system with
// short names.
const minCutName = 16

// SanitizeName turns a name a peer offered into a safe file name of the
// download directory: only its last path element (after / or \), without
// control, format and line or paragraph separator characters and without
// characters that render blank (bidirectional overrides, zero-width
// characters, fillers: they disguise extensions), every Unicode space made
// an ASCII space, invalid UTF-8 replaced, spaces and dots trimmed at both
// ends (no hidden files, no "." or ".."), a leading "-" escaped (it would
// read as an option to many commands), and at most 249 bytes, cut on a
// character boundary and keeping the extension (or, when the extension is
// too long to keep, without letting an inner one become the extension).
// An empty result becomes "file".
func SanitizeName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r), unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp), r == utf8.RuneError, blank(r):
			return -1
		case unicode.IsSpace(r):
			return ' '
		}
		return r
	}, name)
	return cutName(name, maxNameLen)
}

// blank reports characters that are not spaces but render as nothing.
func blank(r rune) bool {
	switch r {
	case '\u115f', '\u1160', '\u3164', '\uffa0', '\u2800', '\u034f', '\u17b4', '\u17b5':
		return true
	}
	return false
}

// cutName trims name and cuts it to at most max bytes, on a character
// boundary, keeping an extension of up to 32 bytes.
func cutName(name string, max int) string {
	name = trimName(name)
	if len(name) > max {
		ext := filepath.Ext(name)
		dropped := len(ext) > 32 || len(ext) >= max/2
		if dropped {
			ext = ""
		}
		base := name[:len(name)-len(ext)]
		cut := max - len(ext)
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		base = trimName(base[:cut])
		if dropped {
			// What is left must not end in an extension of its own.
			base = strings.ReplaceAll(base, ".", "_")
		}
		name = base + ext
	}
	if strings.HasPrefix(name, "-") {
		name = "_" + name
	}
	if name == "" {
		return "file"
	}
	return name
}

// trimName trims spaces and dots at both ends.
func trimName(s string) string { return strings.Trim(s, " .") }

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
