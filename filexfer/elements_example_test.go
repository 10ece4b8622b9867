package filexfer_test

import (
	"bytes"
	"fmt"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// An offer as securejingle builds it: the XEP-0234 description, a SOCKS5
// transport and our security element, each written to a jingle.Raw of the
// content, then read back and classified as a receiver does.
func ExampleClassifyOffer() {
	desc, _ := (&filexfer.Description{File: filexfer.File{Name: "report.pdf", Size: 6144, HasSize: true,
		Hashes: []filexfer.Hash{{Algo: "sha-256", Value: bytes.Repeat([]byte{1}, 32)}}}}).Raw()
	s5b, _ := (&filexfer.S5BTransport{SID: "vj3hs98y", Candidates: []filexfer.S5BCandidate{
		{CID: "hft54dqy", Host: "192.0.2.1", JID: "romeo@montague.example/sj", Port: 5086, Priority: 8257636}}}).Raw()
	sec, _ := filexfer.NewSecurity("a-file-offer", filexfer.CipherAES256GCM, make([]byte, filexfer.SecurityKeyLen), 0).Raw()
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "851ba2", Contents: []jingle.Content{{
		Creator: jingle.CreatorInitiator, Name: "a-file-offer", Senders: jingle.SendersInitiator,
		Other: []jingle.Raw{desc, s5b, sec}}}}
	b, _ := j.Marshal()

	in, _ := jingle.Parse(b)
	fc, _ := filexfer.ParseContent(&in.Contents[0])
	fmt.Println(fc.Description.File.Name, fc.Description.File.Size, fc.Transport, fc.Security.Suite())
	for _, a := range []filexfer.Arrival{{Protected: true, Certified: true}, {}} {
		o, _ := filexfer.ClassifyOffer(in, a)
		fmt.Println(o.Class, o.Protection(), o.Contents[0].Cause)
	}
	// Output:
	// report.pdf 6144 s5b urn:x-securejingle:1:file:aes-256-gcm
	// ours e2e-bound none
	// cleartext cleartext unprotected
}
