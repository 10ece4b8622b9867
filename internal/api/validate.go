package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"mellium.im/xmpp/jid"
)

// maxMethodLen bounds a verification method name (as package trust does).
const maxMethodLen = 64

// checkBareJID parses s as a bare JID and returns its canonical form.
func checkBareJID(field, s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || s == "" {
		return "", fmt.Errorf("%w: %s: not a JID: %q", ErrInvalid, field, s)
	}
	if j.Resourcepart() != "" {
		return "", fmt.Errorf("%w: %s must be a bare JID, without a resource", ErrInvalid, field)
	}
	return j.String(), nil
}

// checkFullJID parses s as a full JID and returns its canonical form.
func checkFullJID(field, s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || s == "" {
		return "", fmt.Errorf("%w: %s: not a JID: %q", ErrInvalid, field, s)
	}
	if j.Resourcepart() == "" {
		return "", fmt.Errorf("%w: %s must be a full JID, with the resource of the device", ErrInvalid, field)
	}
	return j.String(), nil
}

func checkChat(req ChatRequest) (string, error) {
	to, err := checkBareJID("to", req.To)
	if err != nil {
		return "", err
	}
	if req.Body == "" {
		return "", fmt.Errorf("%w: body is empty", ErrInvalid)
	}
	if len(req.Body) > MaxChatBody {
		return "", fmt.Errorf("%w: body longer than %d bytes", ErrInvalid, MaxChatBody)
	}
	if err := checkXMLText(req.Body); err != nil {
		return "", fmt.Errorf("%w: body: %v", ErrInvalid, err)
	}
	return to, nil
}

// checkXMLText rejects text that is not valid UTF-8 or holds characters
// XML 1.0 cannot carry.
func checkXMLText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return fmt.Errorf("character %U cannot appear in XML", r)
		}
	}
	return nil
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func checkIQ(req IQRequest) (string, error) {
	to, err := checkFullJID("to", req.To)
	if err != nil {
		return "", err
	}
	if req.Type != "get" && req.Type != "set" {
		return "", fmt.Errorf("%w: type must be get or set", ErrInvalid)
	}
	if err := CheckPayload([]byte(req.Payload)); err != nil {
		return "", err
	}
	return to, nil
}

// CheckPayload reports whether p is one well-formed XML element with a
// namespace, at most [MaxIQPayload] bytes, with nothing but whitespace
// around it (no declaration, processing instruction, directive or
// comment outside the element). Errors wrap [ErrInvalid].
func CheckPayload(p []byte) error {
	bad := func(why string) error { return fmt.Errorf("%w: payload: %s", ErrInvalid, why) }
	if len(p) == 0 {
		return bad("empty")
	}
	if len(p) > MaxIQPayload {
		return bad(fmt.Sprintf("longer than %d bytes", MaxIQPayload))
	}
	if !utf8.Valid(p) {
		return bad("not valid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(p))
	d.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bad("not well-formed XML: " + err.Error())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return bad("more than one element")
				}
				if !hasXMLNS(t) {
					return bad("the element needs an xmlns")
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return bad("text outside the element")
			}
		case xml.Comment:
			if depth == 0 {
				return bad("comment outside the element")
			}
		case xml.ProcInst:
			return bad("processing instruction")
		case xml.Directive:
			return bad("directive")
		}
	}
	if roots != 1 || depth != 0 {
		return bad("not exactly one complete element")
	}
	// RawToken does not match end tags to start tags; Token does.
	d = xml.NewDecoder(bytes.NewReader(p))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return bad("not well-formed XML: " + err.Error())
		}
	}
}

func hasXMLNS(t xml.StartElement) bool {
	if t.Name.Space != "" {
		return false // a prefix: keep to the default-namespace form
	}
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == "xmlns" && a.Value != "" {
			return true
		}
	}
	return false
}

// DecodeKey decodes an Ed25519 identity key in strict standard base64
// (with padding). Errors wrap [ErrInvalid].
func DecodeKey(s string) (ed25519.PublicKey, error) {
	// The decoder skips CR and LF even in strict mode; a key has one
	// spelling only.
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: key must be a 32-byte Ed25519 key in standard base64", ErrInvalid)
	}
	return ed25519.PublicKey(b), nil
}

// EncodeKey encodes an identity key as [DecodeKey] expects.
func EncodeKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

func checkMethod(m string) error {
	if m == "" || len(m) > maxMethodLen {
		return fmt.Errorf("%w: method must be 1 to %d characters", ErrInvalid, maxMethodLen)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%w: method may hold a-z, 0-9, '-' and '.' only", ErrInvalid)
		}
	}
	return nil
}

// checkTrust validates req and fills in defaults.
func checkTrust(req TrustRequest) (TrustRequest, error) {
	bare, err := checkBareJID("jid", req.JID)
	if err != nil {
		return req, err
	}
	req.JID = bare
	switch req.Action {
	case ActionVerify:
		if req.Method == "" {
			req.Method = "fingerprint"
		}
		if err := checkMethod(req.Method); err != nil {
			return req, err
		}
		if req.Key == "" {
			return req, fmt.Errorf("%w: verify needs the key that was verified", ErrInvalid)
		}
	case ActionAccept, ActionDistrust:
		if req.Method != "" {
			return req, fmt.Errorf("%w: method applies to verify only", ErrInvalid)
		}
		if req.Action == ActionDistrust && req.Key != "" {
			return req, fmt.Errorf("%w: distrust takes no key", ErrInvalid)
		}
	default:
		return req, fmt.Errorf("%w: action must be verify, accept or distrust", ErrInvalid)
	}
	if req.Key != "" {
		if _, err := DecodeKey(req.Key); err != nil {
			return req, err
		}
	}
	return req, nil
}

// checkCallID checks a call id of a request path: 1 to [MaxCallIDLen]
// printable ASCII characters other than '/'.
func checkCallID(id string) error {
	if id == "" || len(id) > MaxCallIDLen {
		return fmt.Errorf("%w: call id must be 1 to %d characters (as GET /v1/calls lists it)", ErrInvalid, MaxCallIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= 0x20 || c >= 0x7f || c == '/' {
			return fmt.Errorf("%w: call id holds a character that no call id has (as GET /v1/calls lists it)", ErrInvalid)
		}
	}
	return nil
}

// checkNoBody rejects a request body on an endpoint that takes none.
func checkNoBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > 0 {
		return fmt.Errorf("%w: this endpoint takes no request body", ErrInvalid)
	}
	if r.ContentLength < 0 {
		var b [1]byte
		if n, _ := io.ReadFull(http.MaxBytesReader(w, r.Body, 1), b[:]); n > 0 {
			return fmt.Errorf("%w: this endpoint takes no request body", ErrInvalid)
		}
	}
	return nil
}

// checkCallMedia validates m: paths resolved against the working
// directory and checked, duration parsed, and the media chosen, with
// defAudio and defVideo for media m leaves unset. Errors wrap
// [ErrInvalid]; those about a path are a [*MediaError].
func checkCallMedia(m CallMedia, defAudio, defVideo bool) (CallOptions, error) {
	if m.LocalOffer != "" {
		return checkLocalOffer(m)
	}
	o := CallOptions{Audio: defAudio, Video: defVideo}
	if m.Audio != nil {
		o.Audio = *m.Audio
	}
	if m.Video != nil {
		o.Video = *m.Video
	}
	var err error
	if o.AudioFile, err = checkLocalPath("audio_file", m.AudioFile); err != nil {
		return o, err
	}
	if o.VideoFile, err = checkLocalPath("video_file", m.VideoFile); err != nil {
		return o, err
	}
	if o.RecordDir, err = checkLocalPath("record_dir", m.RecordDir); err != nil {
		return o, err
	}
	switch {
	case o.AudioFile != "" && m.Audio != nil && !*m.Audio:
		return o, fmt.Errorf("%w: audio_file given with audio false: drop one of them", ErrInvalid)
	case o.VideoFile != "" && m.Video != nil && !*m.Video:
		return o, fmt.Errorf("%w: video_file given with video false: drop one of them", ErrInvalid)
	}
	if o.AudioFile != "" {
		o.Audio = true
	}
	if o.VideoFile != "" {
		o.Video = true
	}
	if !o.Audio && !o.Video {
		return o, fmt.Errorf("%w: a call needs audio or video: set audio or video to true, or give audio_file or video_file", ErrInvalid)
	}
	if m.Duration != "" {
		d, err := time.ParseDuration(m.Duration)
		if err != nil || d < 0 || d > MaxCallDuration {
			return o, fmt.Errorf("%w: duration: %q is not a Go duration from 0s to %s (write e.g. \"30s\" or \"5m\")", ErrInvalid, m.Duration, MaxCallDuration)
		}
		o.Duration = d
	}
	if o.AudioFile != "" {
		if err := CheckAudioFile(o.AudioFile); err != nil {
			return o, err
		}
	}
	if o.VideoFile != "" {
		if err := CheckVideoFile(o.VideoFile); err != nil {
			return o, err
		}
	}
	if o.RecordDir != "" {
		if err := CheckRecordDir(o.RecordDir); err != nil {
			return o, err
		}
	}
	return o, nil
}

// checkLocalPath bounds a path of a request and makes it absolute against
// the working directory; "" stays "".
func checkLocalPath(field, p string) (string, error) {
	if p == "" {
		return "", nil
	}
	bad := func(problem string) (string, error) {
		return "", &MediaError{Field: field, Path: p, Problem: problem}
	}
	if len(p) > MaxPathLen {
		return bad(fmt.Sprintf("path longer than %d bytes", MaxPathLen))
	}
	if !utf8.ValidString(p) {
		return bad("path is not valid UTF-8")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return bad("path holds a control character")
		}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return bad(fmt.Sprintf("%s cannot be made absolute: %v", p, err))
	}
	return abs, nil
}

// A MediaError is a media file or recording directory that the daemon
// cannot use. It wraps [ErrInvalid].
type MediaError struct {
	Field string // audio_file, video_file or record_dir
	Path  string
	// Problem says what is wrong with Path and what to do, without the
	// field name.
	Problem string
}

func (e *MediaError) Error() string { return "api: " + e.Field + ": " + e.Problem }

// Unwrap returns [ErrInvalid].
func (e *MediaError) Unwrap() error { return ErrInvalid }

// openRegular opens path, which must be a regular file, for a media check.
func openRegular(field, path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		problem := fmt.Sprintf("cannot open %s: %v", path, errors.Unwrap(err))
		if errors.Is(err, fs.ErrNotExist) {
			problem = fmt.Sprintf("%s does not exist (paths name files of the daemon's user; a relative path is relative to the daemon's working directory: give an absolute path)", path)
		}
		return nil, &MediaError{Field: field, Path: path, Problem: problem}
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &MediaError{Field: field, Path: path, Problem: path + " is not a regular file"}
	}
	return f, nil
}

// CheckAudioFile checks that path is a readable Ogg Opus file, the audio a
// call can play. Errors are a [*MediaError] for field audio_file.
func CheckAudioFile(path string) error {
	f, err := openRegular("audio_file", path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, err := oggreader.NewWith(io.LimitReader(f, 64<<10)); err != nil {
		return &MediaError{Field: "audio_file", Path: path, Problem: fmt.Sprintf(
			"%s is not Ogg Opus (%v): convert it, e.g. ffmpeg -i IN -c:a libopus -ar 48000 OUT.ogg", path, err)}
	}
	return nil
}

// CheckVideoFile checks that path is a readable IVF file of VP8 frames,
// the video a call can play. Errors are a [*MediaError] for field
// video_file.
func CheckVideoFile(path string) error {
	f, err := openRegular("video_file", path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, h, err := ivfreader.NewWith(io.LimitReader(f, 64<<10))
	switch {
	case err != nil:
		return &MediaError{Field: "video_file", Path: path, Problem: fmt.Sprintf(
			"%s is not IVF (%v): convert it, e.g. ffmpeg -i IN -c:v libvpx -b:v 1M OUT.ivf", path, err)}
	case h.FourCC != "VP80":
		return &MediaError{Field: "video_file", Path: path, Problem: fmt.Sprintf(
			"%s holds %q video, not VP8: convert it, e.g. ffmpeg -i IN -c:v libvpx -b:v 1M OUT.ivf", path, sanitizeFourCC(h.FourCC))}
	}
	return nil
}

func sanitizeFourCC(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

// CheckRecordDir checks that path is a directory the daemon can create
// files in. Errors are a [*MediaError] for field record_dir.
func CheckRecordDir(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &MediaError{Field: "record_dir", Path: path, Problem: fmt.Sprintf(
			"%s does not exist: create it (mkdir -p) or name another directory; a relative path is relative to the daemon's working directory", path)}
	case err != nil:
		return &MediaError{Field: "record_dir", Path: path, Problem: fmt.Sprintf("cannot use %s: %v", path, errors.Unwrap(err))}
	case !fi.IsDir():
		return &MediaError{Field: "record_dir", Path: path, Problem: path + " is not a directory"}
	}
	f, err := os.CreateTemp(path, ".securejingle-check-*")
	if err != nil {
		return &MediaError{Field: "record_dir", Path: path, Problem: fmt.Sprintf(
			"the daemon cannot create files in %s (%v): fix its permissions or name another directory", path, errors.Unwrap(err))}
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// MaxLocalOfferLen bounds a local_offer (the daemon also bounds its
// sections and candidates).
const MaxLocalOfferLen = 32 << 10

// checkLocalOffer checks a CallMedia with a local_offer: nothing else may
// be set, since the offer says what the call sends and receives.
func checkLocalOffer(m CallMedia) (CallOptions, error) {
	switch {
	case len(m.LocalOffer) > MaxLocalOfferLen:
		return CallOptions{}, fmt.Errorf("%w: local_offer has %d bytes, the limit is %d", ErrInvalid, len(m.LocalOffer), MaxLocalOfferLen)
	case m.Audio != nil || m.Video != nil || m.AudioFile != "" || m.VideoFile != "" || m.RecordDir != "" || m.Duration != "":
		return CallOptions{}, fmt.Errorf("%w: local_offer goes alone: the media are those the browser offers (drop audio, video, audio_file, video_file, record_dir and duration)", ErrInvalid)
	}
	return CallOptions{LocalOffer: m.LocalOffer}, nil
}
