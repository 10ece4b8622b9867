package filexfer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// ourOffer builds a session-initiate with one content per transport
// raw, each with our security element and a sha-256 hash, as securejingle
// sends it, marshaled and parsed again as a receiver reads it.
func ourOffer(t testing.TB, senders jingle.Senders, transports ...jingle.Raw) *jingle.Jingle {
	t.Helper()
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "s1", Initiator: "romeo@montague.example/sj"}
	for i, tr := range transports {
		name := "file" + string(rune('0'+i))
		d := &Description{File: File{Name: "report.pdf", Size: 123456, HasSize: true, MediaType: "application/pdf",
			Date:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			Range:  &Range{},
			Hashes: []Hash{{Algo: "sha-256", Value: bytes.Repeat([]byte{9}, 32)}}}}
		dr, err := d.Raw()
		if err != nil {
			t.Fatal(err)
		}
		sr, err := NewSecurity(name, CipherAES256GCM, bytes.Repeat([]byte{byte(i + 1)}, 32), 0).Raw()
		if err != nil {
			t.Fatal(err)
		}
		j.Contents = append(j.Contents, jingle.Content{Creator: jingle.CreatorInitiator, Name: name, Senders: senders,
			Other: []jingle.Raw{dr, tr, sr}})
	}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := jingle.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	return back
}

func s5bRaw(t testing.TB) jingle.Raw {
	t.Helper()
	r, err := (&S5BTransport{SID: "vj3hs98y", DstAddr: "972b7bf47291ca609517f67f86b5081086052dad",
		Candidates: []S5BCandidate{{CID: "hft54dqy", Host: "127.0.0.1", JID: "romeo@montague.example/sj", Port: 5086, Priority: 8257636, Type: S5BDirect}}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ibbRaw(t testing.TB) jingle.Raw {
	t.Helper()
	r, err := (&IBBTransport{SID: "ch3d9s71", BlockSize: 65535}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func dcRaw(t testing.TB) jingle.Raw {
	t.Helper()
	r, err := (&DataChannelTransport{SCTPPort: 5000, MaxMessageSize: 262144, HasMaxMessageSize: true,
		ICE: &jingle.Transport{Ufrag: "8hhy", Pwd: "asd88fgpdd777uzjYhagZg",
			Fingerprint: &jingle.Fingerprint{Hash: "sha-256", Setup: jingle.SetupActpass,
				Value: "02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2"}}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	protected   = Arrival{Protected: true, Certified: true}
	unprotected = Arrival{}
	uncertified = Arrival{Protected: true}
)

func TestClassifyOurOffer(t *testing.T) {
	j := ourOffer(t, jingle.SendersInitiator, dcRaw(t), s5bRaw(t), ibbRaw(t))
	o, err := ClassifyOffer(j, protected)
	if err != nil {
		t.Fatal(err)
	}
	if o.Class != ClassOurs || o.Protection() != policy.ProtectionE2EBound || o.Signaling != policy.SignalingProtected || len(o.Contents) != 3 {
		t.Fatalf("%+v", o)
	}
	for i, want := range []TransportKind{TransportDataChannel, TransportS5B, TransportIBB} {
		c := o.Contents[i]
		if c.Transport != want || c.Class != ClassOurs || c.Cause != CauseNone || c.Suite != CipherAES256GCM || c.Request {
			t.Fatalf("content %d: %+v", i, c)
		}
	}
	f := policy.Facts{Direction: policy.DirectionIncoming, PeerJID: "romeo@montague.example", Trust: policy.TrustVerified,
		OnRoster: true, PeerSupportsE2E: true, SecuredSession: true}
	o.Apply(&f)
	if d := policy.Default().Decide(f); d.Action != policy.ActionAllow || d.Rule != "default-allow-e2e-bound" {
		t.Fatalf("decision %+v", d)
	}

	// The same offer in clear: the server saw the key.
	o, err = ClassifyOffer(j, unprotected)
	if err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseUnprotected || o.Signaling != policy.SignalingUnprotected {
		t.Fatalf("unprotected: %+v %v", o, err)
	}
	f2 := f
	o.Apply(&f2)
	if d := policy.Default().Decide(f2); d.Action != policy.ActionRefuse || d.Rule != "default-refuse-cleartext-files" {
		t.Fatalf("decision %+v", d)
	}
	f2.SecuredSession = false
	if d := policy.Default().Decide(f2); d.Action != policy.ActionRefuse || d.Rule != "default-refuse-cleartext-channels" {
		t.Fatalf("decision without a secured session %+v", d)
	}
	o, err = ClassifyOffer(j, uncertified)
	if err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseUncertified {
		t.Fatalf("uncertified: %+v %v", o, err)
	}
}

func TestClassifyRequestAndMixed(t *testing.T) {
	j := ourOffer(t, jingle.SendersResponder, ibbRaw(t))
	o, err := ClassifyOffer(j, protected)
	if err != nil || o.Class != ClassOurs || !o.Contents[0].Request {
		t.Fatalf("request: %+v %v", o, err)
	}
	// One of two contents without our key makes the element cleartext.
	j = ourOffer(t, jingle.SendersInitiator, s5bRaw(t), ibbRaw(t))
	j.Contents[1].Other = j.Contents[1].Other[:2]
	o, err = ClassifyOffer(j, protected)
	if err != nil || o.Class != ClassCleartext || o.Contents[0].Class != ClassOurs || o.Contents[1].Cause != CauseNoSecurity {
		t.Fatalf("mixed: %+v %v", o, err)
	}
	// A foreign JET type, with our key element nowhere.
	j = ourOffer(t, jingle.SendersInitiator, ibbRaw(t))
	sec, _, _ := ParseSecurity(j.Contents[0].Other[2])
	sec.Type, sec.Cipher, sec.Key = OMEMOEnvelope, "urn:xmpp:ciphers:aes-128-gcm-nopadding:0", nil
	sec.Envelope = []jingle.Raw{{XMLName: name(OMEMOEnvelope, "encrypted")}}
	if j.Contents[0].Other[2], err = sec.Raw(); err != nil {
		t.Fatal(err)
	}
	o, err = ClassifyOffer(j, protected)
	if err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseForeignEnvelope {
		t.Fatalf("foreign: %+v %v", o, err)
	}
	// An RTP content is left to the call classification; none left is an error.
	rtp := jingle.Content{Creator: jingle.CreatorInitiator, Name: "audio", Senders: jingle.SendersBoth,
		Description: &jingle.Description{Media: "audio", PayloadTypes: []jingle.PayloadType{{ID: 0, Name: "PCMU", Clockrate: 8000}}}}
	j = ourOffer(t, jingle.SendersInitiator, ibbRaw(t))
	j.Contents = append(j.Contents, rtp)
	if o, err = ClassifyOffer(j, protected); err != nil || len(o.Contents) != 1 || o.Class != ClassOurs {
		t.Fatalf("with RTP: %+v %v", o, err)
	}
	j.Contents = j.Contents[1:]
	if _, err := ClassifyOffer(j, protected); !errors.Is(err, ErrNoFileContent) {
		t.Fatalf("RTP only: %v", err)
	}
	// Malformed elements are errors, not classes.
	j = ourOffer(t, jingle.SendersInitiator, ibbRaw(t))
	j.Contents[0].Other[1].Attrs[0].Value = "0"
	if _, err := ClassifyOffer(j, protected); !errors.Is(err, ErrMalformedElement) {
		t.Fatalf("malformed: %v", err)
	}
}

func TestClassifyUpdate(t *testing.T) {
	j := ourOffer(t, jingle.SendersInitiator, s5bRaw(t))
	offered, _, err := ParseSecurity(j.Contents[0].Other[2])
	if err != nil {
		t.Fatal(err)
	}
	session := func(c jingle.Creator, n string) (*Security, bool) {
		if c == jingle.CreatorInitiator && n == "file0" {
			return offered, true
		}
		return nil, false
	}
	replace := &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: "s1",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "file0", Other: []jingle.Raw{ibbRaw(t)}}}}
	o, err := ClassifyUpdate(replace, protected, session)
	if err != nil || o.Class != ClassOurs || o.Contents[0].Transport != TransportIBB || o.Contents[0].Suite != CipherAES256GCM {
		t.Fatalf("transport-replace to IBB in our session: %+v %v", o, err)
	}
	if o, err = ClassifyUpdate(replace, unprotected, session); err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseUnprotected {
		t.Fatalf("unprotected transport-replace: %+v %v", o, err)
	}
	// An accept repeating the very same security element stays ours; a
	// changed key does not.
	accept := ourOffer(t, jingle.SendersInitiator, s5bRaw(t))
	accept.Action = jingle.ActionSessionAccept
	if o, err = ClassifyUpdate(accept, protected, session); err != nil || o.Class != ClassOurs {
		t.Fatalf("accept with the same key: %+v %v", o, err)
	}
	changed := NewSecurity("file0", CipherAES256GCM, bytes.Repeat([]byte{0xEE}, 32), 0)
	accept.Contents[0].Other[2], _ = changed.Raw()
	if o, err = ClassifyUpdate(accept, protected, session); err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseSecurityChanged {
		t.Fatalf("changed key: %+v %v", o, err)
	}
	other := func(jingle.Creator, string) (*Security, bool) { return nil, true }
	if o, err = ClassifyUpdate(replace, protected, other); err != nil || o.Contents[0].Cause != CauseSessionCleartext {
		t.Fatalf("cleartext session: %+v %v", o, err)
	}
	replace.Contents[0].Name = "nope"
	if _, err := ClassifyUpdate(replace, protected, session); !errors.Is(err, ErrUnknownContent) {
		t.Fatalf("unknown content: %v", err)
	}
}

func TestClassNames(t *testing.T) {
	if ClassOurs.String() != "ours" || ClassCleartext.String() != "cleartext" || Class(0).String() != "unclassified" || Class(9).String() != "Class(9)" {
		t.Fatal("class names")
	}
	if CauseForeignEnvelope.String() != "foreign-envelope" || Cause(99).String() != "Cause(99)" {
		t.Fatal("cause names")
	}
	if Class(0).Protection() != 0 {
		t.Fatal("unclassified protection")
	}
}
