package attest

import (
	"errors"
	"io"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// RenderQR draws payload (typically a [VerifyURI]) as a QR code with
// error-correction level M in w, using Unicode half blocks so that each text
// line holds two module rows. Light modules (including the 4-module quiet
// zone) are drawn as blocks and dark modules as spaces, which suits the
// usual light-on-dark terminal. It returns an error, writing nothing, if
// the payload is empty or longer than [MaxQRPayload].
func RenderQR(payload string, w io.Writer) error {
	if payload == "" || len(payload) > MaxQRPayload {
		return errors.New("attest: QR payload empty or too long")
	}
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		return errors.New("attest: QR encoding failed: " + err.Error())
	}
	bm := q.Bitmap() // true = dark module
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top := !bm[y][x]
			bottom := y+1 >= len(bm) || !bm[y+1][x] // beyond the edge is quiet zone
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}
