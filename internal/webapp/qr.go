package webapp

import (
	"net/http"

	qrcode "github.com/skip2/go-qrcode"
)

// maxQRText bounds the text of GET /api/qr.
const maxQRText = 1024

// handleQR draws ?text= as a PNG QR code (the verification URI of
// GET /v1/verify), medium error correction, 256 px.
func (s *Server) handleQR(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query()
	texts := q["text"]
	if len(q) != 1 || len(texts) != 1 || texts[0] == "" || len(texts[0]) > maxQRText {
		writeError(w, http.StatusBadRequest, "GET /api/qr needs exactly one query parameter text (1 to 1024 bytes)")
		return
	}
	png, err := qrcode.Encode(texts[0], qrcode.Medium, 256)
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot draw this text as a QR code: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}
