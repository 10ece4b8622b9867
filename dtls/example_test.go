package dtls_test

import (
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/dtls"
)

func ExampleParseFingerprint() {
	fp, err := dtls.ParseFingerprint("sha-256",
		"a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90:a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90")
	if err != nil {
		panic(err)
	}
	fmt.Println(fp.Hash, fp)

	_, err = dtls.ParseFingerprint("sha-1", "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33")
	fmt.Println(errors.Is(err, dtls.ErrUnsupportedHash))
	// Output:
	// sha-256 A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90
	// true
}

func ExampleBinding_Check() {
	cert, err := dtls.NewCertificate()
	if err != nil {
		panic(err)
	}
	other, err := dtls.NewCertificate()
	if err != nil {
		panic(err)
	}
	// Expected comes from the protected session-accept of the peer's
	// certified device, never from SDP.
	b := dtls.Binding{SID: "a73sjjvkla37jfea", Peer: "juliet@example.org", Device: 42, Expected: cert.Fingerprint()}
	fmt.Println(b.Check(cert.DER()))

	var mismatch *dtls.MismatchError
	err = b.Check(other.DER())
	fmt.Println(errors.Is(err, dtls.ErrBindingMismatch), errors.As(err, &mismatch) && mismatch.Got.Equal(other.Fingerprint()))
	// Output:
	// <nil>
	// true true
}
