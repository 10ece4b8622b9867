package webapp

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/internal/api"
)

// qrSize is the side of the PNG of GET /api/qr, in pixels.
const qrSize = 320

// handleQR draws ?uri= as a PNG QR code, error correction M. Only a
// verification URI (attest.ParseVerifyURI, canonical form) is drawn: the
// endpoint renders the code of GET /v1/verify, nothing else.
func (s *Server) handleQR(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query()
	uris := q["uri"]
	if len(q) != 1 || len(uris) != 1 || len(uris[0]) > attest.MaxQRPayload {
		writeError(w, http.StatusBadRequest, "GET /api/qr needs exactly one query parameter uri: the qr field of GET /v1/verify")
		return
	}
	if _, err := attest.ParseVerifyURI(uris[0]); err != nil {
		writeError(w, http.StatusBadRequest, "GET /api/qr draws verification URIs only (the qr field of GET /v1/verify): "+err.Error())
		return
	}
	png, err := qrcode.Encode(uris[0], qrcode.Medium, qrSize)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "drawing the QR code: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}

// ScannedURI is the body of POST /api/verify-uri.
type ScannedURI struct {
	URI string `json:"uri"`
}

// ScannedKey is the answer of POST /api/verify-uri: the account and key a
// scanned verification URI names, the key in the form of
// api.TrustRequest.Key.
type ScannedKey struct {
	JID string `json:"jid"`
	Key string `json:"key"`
}

// handleVerifyURI parses a scanned verification URI strictly (the page
// has no parser of its own); the page then posts the key to /v1/trust,
// which verifies it only if it is the contact's pinned or pending key.
func (s *Server) handleVerifyURI(w http.ResponseWriter, r *http.Request, _ *session) {
	var req ScannedURI
	if err := decodeJSON(w, r, maxLoginBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, `the request must be one JSON object {"uri": "..."}: `+err.Error())
		return
	}
	u, err := attest.ParseVerifyURI(req.URI)
	if err != nil {
		writeError(w, http.StatusBadRequest, "this QR code is not a securejingle verification code ("+err.Error()+"): scan the code the contact's verify page shows")
		return
	}
	writeJSON(w, http.StatusOK, ScannedKey{JID: u.JID, Key: api.EncodeKey(u.Key)})
}

// decodeJSON reads one JSON object of known fields, at most limit bytes,
// into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}
