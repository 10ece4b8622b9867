package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the browser file endpoints.
const (
	// MaxUploadNameLen bounds the name parameter of POST
	// /v1/files/upload, in bytes (the daemon sanitizes it further).
	MaxUploadNameLen = 1024
	// MaxDownloadChecks bounds the downloads that may check their file at
	// once: GET /v1/files/{id}/content hashes the whole saved file before
	// it sends a byte (even for a one-byte Range), so without a bound a
	// few requests on a large file would keep every core and the disk
	// busy. Beyond it the request is 503 busy at once.
	MaxDownloadChecks = 2
	// uploadIdle bounds the wait for each read of an upload body.
	uploadIdle = 30 * time.Second
)

// An UploadBackend is a [FileBackend] that also takes a file in a request
// body (a browser cannot name a file of the daemon's user) and hands out
// the files it received. The server finds it by type assertion; without
// it the two endpoints are 503.
type UploadBackend interface {
	// StageUpload copies body into a new private staging file that will
	// be offered under name (sanitized) and returns its path. size is the
	// body's length, or -1 when unknown; a body over the size limit wraps
	// [ErrTooLarge], and one that does not fit on the disk [ErrQuota].
	// A failed copy leaves nothing behind.
	StageUpload(ctx context.Context, name string, size int64, body io.Reader) (string, error)
	// SendStaged offers a staged file to a certified device of the bare
	// JID to, as SendFiles does. It owns the staged file from then on:
	// the file is removed when the transfer is over, or at once when the
	// offer fails.
	SendStaged(ctx context.Context, to, path, desc string) (TransferInfo, error)
	// OpenReceived opens file index of a completed incoming transfer, as
	// received and verified, after checking that it is still the file
	// that verified (ctx bounds the check). A transfer you sent, one not
	// completed, or a file changed on disk since, wraps [ErrConflict].
	OpenReceived(ctx context.Context, id string, index int) (*os.File, FileInfo, error)
}

// webKey is the context key of [WithWebSession].
type webKey struct{}

// WithWebSession returns ctx marking a request of a web app session (the
// browser's page, which the web server passes on). Such a request may not
// name files or directories of the daemon's user (POST /v1/files, the dir
// of an accept, the files and record_dir of a call): the page uploads and
// downloads through the request bodies instead, so that whoever drives
// the page (a script injected into it, an extension) cannot read or
// write other files of the user through the daemon.
func WithWebSession(ctx context.Context) context.Context {
	return context.WithValue(ctx, webKey{}, true)
}

// fromWeb reports whether ctx is a request of a web app session.
func fromWeb(ctx context.Context) bool {
	v, _ := ctx.Value(webKey{}).(bool)
	return v
}

// noWebPaths refuses a web session's request that names the paths given
// (field names and values).
func noWebPaths(ctx context.Context, fields ...string) error {
	if !fromWeb(ctx) {
		return nil
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] != "" {
			return fmt.Errorf("%w: %s: the web app cannot name files or directories of the daemon's user; use the control socket (securejingle CLI) for that", ErrForbidden, fields[i])
		}
	}
	return nil
}

func (s *Server) uploads() (UploadBackend, error) {
	ub, ok := s.b.(UploadBackend)
	if !ok {
		return nil, fmt.Errorf("%w: this daemon cannot take files from a request body", ErrUnavailable)
	}
	return ub, nil
}

// idleReader extends the connection's read deadline before every read,
// so that a long upload is bounded by each read's wait, not by the
// server's whole-request ReadTimeout.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (r idleReader) Read(p []byte) (int, error) {
	r.rc.SetReadDeadline(time.Now().Add(uploadIdle))
	return r.r.Read(p)
}

// checkUploadName checks the name parameter: 1 to MaxUploadNameLen bytes
// of UTF-8.
func checkUploadName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: name: the file's name is required", ErrInvalid)
	case len(name) > MaxUploadNameLen:
		return fmt.Errorf("%w: name: at most %d bytes", ErrInvalid, MaxUploadNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name is not valid UTF-8", ErrInvalid)
	}
	return nil
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	ub, err := s.uploads()
	if err == nil {
		err = checkQuery(r, "peer", "name", "desc")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := r.URL.Query()
	to, err := checkBareJID("peer", v.Get("peer"))
	if err == nil {
		err = checkUploadName(v.Get("name"))
	}
	if err == nil && len(v.Get("desc")) > MaxFileDescLen {
		err = fmt.Errorf("%w: desc: at most %d bytes", ErrInvalid, MaxFileDescLen)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/octet-stream: the body is the file's bytes", "")
		return
	}
	if r.ContentLength < 0 {
		writeError(w, http.StatusLengthRequired, "the upload must give its size (Content-Length)", "")
		return
	}
	rc := http.NewResponseController(w)
	path, err := ub.StageUpload(r.Context(), v.Get("name"), r.ContentLength, idleReader{r: r.Body, rc: rc})
	rc.SetReadDeadline(time.Time{})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.answerTransfer(w, r, true, func(ctx context.Context) (TransferInfo, error) { return ub.SendStaged(ctx, to, path, v.Get("desc")) })
}

func (s *Server) handleContent(w http.ResponseWriter, r *http.Request) {
	ub, err := s.uploads()
	id, ok := s.transferRequest(w, r, err, "file")
	if !ok {
		return
	}
	index := 0
	if f := r.URL.Query().Get("file"); f != "" {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n >= 1<<16 || (len(f) > 1 && f[0] == '0') || f[0] == '+' {
			s.fail(w, r, fmt.Errorf("%w: file must be the index of a file of the transfer, from 0", ErrInvalid))
			return
		}
		index = n
	}
	select {
	case s.checks <- struct{}{}:
	default:
		s.fail(w, r, fmt.Errorf("%w: %d downloads are already checking their files against the hashes they verified with; try again when one has finished",
			ErrBusy, MaxDownloadChecks))
		return
	}
	f, fi, err := func() (*os.File, FileInfo, error) {
		defer func() { <-s.checks }() // given back even if the backend panics
		return ub.OpenReceived(r.Context(), id, index)
	}()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	// Never rendered: a download, whatever the bytes look like.
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", ContentDisposition(fi.Name))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// ContentDisposition returns an attachment Content-Disposition for a file
// name: an ASCII fallback (characters other than printable ASCII, quotes
// and backslashes replaced by '_') and the exact name in RFC 8187
// encoding for clients that read it.
func ContentDisposition(name string) string {
	var ascii, ext strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	const attrChar = "!#$&+-.^_`|~"
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(attrChar, c) >= 0 {
			ext.WriteByte(c)
		} else {
			fmt.Fprintf(&ext, "%%%02X", c)
		}
	}
	a := ascii.String()
	if a == "" {
		a = "file"
	}
	return `attachment; filename="` + a + `"; filename*=UTF-8''` + ext.String()
}
