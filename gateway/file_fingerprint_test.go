package gateway

// A data channel file session whose contents carry different DTLS
// fingerprints (issue 9): one filexfer.DataChannel, bound to one
// fingerprint, carries every content, so which fingerprint the session
// is bound to would depend on which content the code reads first. The
// responder's dcTransport.accept made a fresh DataChannel for each
// differing content (closing the one before), and the initiator's
// SetAnswer took the first content's and ignored the rest. Like calls,
// the gateway now refuses such a session-initiate, session-accept or
// transport-replace with not-acceptable / security-required, a critical
// file-fingerprint alert and, for a session, a terminate with
// security-error. Each test below failed on the old code: the request was
// acknowledged.

import (
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// dcTransportRaw is a XEP-0343 transport with the fingerprint of a fresh
// certificate.
func dcTransportRaw(t *testing.T) jingle.Raw {
	t.Helper()
	cert, err := dtls.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fp := cert.Fingerprint()
	tr := &filexfer.DataChannelTransport{SCTPPort: 5000, HasMaxMessageSize: true, MaxMessageSize: filexfer.DataChannelMaxMessageSize,
		ICE: &jingle.Transport{Ufrag: "abcd", Pwd: "0123456789abcdefghijklmn",
			Fingerprint: &jingle.Fingerprint{Hash: fp.Hash, Setup: jingle.SetupActpass, Value: fp.String()}}}
	raw, err := tr.Raw()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// withTransports returns j's contents with the transport element of
// content i replaced by trs[i].
func withTransports(t *testing.T, cs []jingle.Content, trs ...jingle.Raw) []jingle.Content {
	t.Helper()
	if len(cs) != len(trs) {
		t.Fatalf("%d contents, %d transports", len(cs), len(trs))
	}
	out := make([]jingle.Content, len(cs))
	for i, c := range cs {
		c.Other = append([]jingle.Raw(nil), c.Other...)
		replaced := false
		for k, r := range c.Other {
			if r.XMLName.Local == "transport" {
				c.Other[k], replaced = trs[i], true
			}
		}
		if !replaced {
			c.Other = append(c.Other, trs[i])
		}
		out[i] = c
	}
	return out
}

// wantFingerprintRefusal checks the answer to a request refused for its
// fingerprints and bob's alert.
func wantFingerprintRefusal(t *testing.T, tg *testGateway, err error) {
	t.Helper()
	var pe *ProtectedError
	if !errors.As(err, &pe) {
		t.Fatalf("a data channel session with two fingerprints was acknowledged: %v", err)
	}
	if jc, ok := jingle.ParseErrorCondition(pe.Payload); !ok || jc != jingle.ErrSecurityRequired {
		t.Fatalf("refusal %s", pe.Payload)
	}
	ev := tg.waitEvent(t, "file-fingerprint alert", isFileAlert("file-fingerprint"))
	if !strings.Contains(ev.Alert.Decision.Detail, "different DTLS fingerprints") || !strings.Contains(ev.Alert.Decision.Message, "data channel") {
		t.Fatalf("alert: %q / %q", ev.Alert.Decision.Message, ev.Alert.Decision.Detail)
	}
}

// TestFileDataChannelOfferTwoFingerprints: a session-initiate of two
// files whose data channel transports carry different fingerprints is
// refused and leaves no state; the same offer with one transport in both
// contents is taken.
func TestFileDataChannelOfferTwoFingerprints(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	bob := jidOf("bob@" + testDomain + "/phone")
	offer := func(sid string, trs ...jingle.Raw) []byte {
		data := map[string][]byte{"f": []byte("one"), "g": []byte("two")}
		j := mustJingle(t, rawOffer2(t, sid, make([]byte, 32), data))
		j.Contents = withTransports(t, j.Contents, trs...)
		return mustMarshal(t, j)
	}
	_, _, err := a.SendProtectedIQ(ctx, bob, "set", offer(newTransferID(), dcTransportRaw(t), dcTransportRaw(t)), false)
	wantFingerprintRefusal(t, b, err)
	if n := len(b.Transfers()); n != 0 {
		t.Fatalf("a refused offer left %d transfers", n)
	}
	one := dcTransportRaw(t)
	sid := newTransferID()
	if _, _, err := a.SendProtectedIQ(ctx, bob, "set", offer(sid, one, one), false); err != nil {
		t.Fatalf("an offer with one data channel transport: %v", err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
}

// TestFileDataChannelAcceptTwoFingerprints: the receiver's device accepts
// our data channel offer of two files with a different fingerprint in
// each content: the accept is refused, the transfer fails with
// security-error and an alert.
func TestFileDataChannelAcceptTwoFingerprints(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	reg.brokenDC = true // alice offers a data channel (that would never connect)
	ctx := testCtx(t)
	initiates := make(chan *jingle.Jingle, 1)
	terminated := make(chan jingle.ReasonCondition, 1)
	b.HandleIQ(jingleName, func(req InnerIQ) ([]byte, error) {
		j, err := jingle.Parse(req.Payload)
		if err != nil {
			return nil, err
		}
		switch j.Action {
		case jingle.ActionSessionInitiate:
			initiates <- j
		case jingle.ActionSessionTerminate:
			if j.Reason != nil {
				terminated <- j.Reason.Condition
			}
		}
		return nil, nil
	})
	dir := t.TempDir()
	out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{writeFile(t, dir, "f", []byte("one")), writeFile(t, dir, "g", []byte("two"))}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var init *jingle.Jingle
	select {
	case init = <-initiates:
	case <-ctx.Done():
		t.Fatal("no session-initiate")
	}
	for i := range init.Contents {
		if tr, _ := transportRaw(&init.Contents[i]); tr.XMLName.Space != filexfer.NSDataChannel {
			t.Fatalf("content %d offered on %s, want the data channel", i, tr.XMLName.Space)
		}
	}
	acc := &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: out.ID, Responder: "bob@" + testDomain + "/phone",
		Contents: withTransports(t, init.Contents, dcTransportRaw(t), dcTransportRaw(t))}
	_, _, err = b.SendProtectedIQ(ctx, jidOf("alice@"+testDomain+"/laptop"), "set", mustMarshal(t, acc), false)
	wantFingerprintRefusal(t, a, err)
	end := a.waitTransfer(t, out.ID, "failed", inState(TransferFailed))
	if !strings.Contains(end.Detail, "DTLS fingerprints") {
		t.Fatalf("detail %q", end.Detail)
	}
	select {
	case why := <-terminated:
		if why != jingle.ReasonSecurityError {
			t.Fatalf("terminate reason %s", why)
		}
	case <-ctx.Done():
		t.Fatal("no session-terminate")
	}
}

// TestFileDataChannelReplaceTwoFingerprints: in an accepted transfer on
// IBB, the sender's device replaces the transports of both files by data
// channel transports with different fingerprints: refused, and the
// transfer ends with security-error.
func TestFileDataChannelReplaceTwoFingerprints(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	bob := jidOf("bob@" + testDomain + "/phone")
	sid := newTransferID()
	terminated := make(chan jingle.ReasonCondition, 1)
	a.HandleIQ(jingleName, func(req InnerIQ) ([]byte, error) { // alice's device speaks raw Jingle
		if j, err := jingle.Parse(req.Payload); err == nil && j.Action == jingle.ActionSessionTerminate && j.Reason != nil {
			terminated <- j.Reason.Condition
		}
		return nil, nil
	})
	data := map[string][]byte{"f": []byte("one"), "g": []byte("two")}
	if _, _, err := a.SendProtectedIQ(ctx, bob, "set", rawOffer2(t, sid, make([]byte, 32), data), false); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, sid, ""); err != nil {
		t.Fatal(err)
	}
	var cs []jingle.Content
	for _, name := range []string{"f", "g"} {
		cs = append(cs, jingle.Content{Creator: jingle.CreatorInitiator, Name: name, Senders: jingle.SendersInitiator})
	}
	rep := &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: sid, Contents: withTransports(t, cs, dcTransportRaw(t), dcTransportRaw(t))}
	_, _, err := a.SendProtectedIQ(ctx, bob, "set", mustMarshal(t, rep), false)
	wantFingerprintRefusal(t, b, err)
	end := b.waitTransfer(t, sid, "failed", inState(TransferFailed))
	if !strings.Contains(end.Detail, "DTLS fingerprints") {
		t.Fatalf("detail %q", end.Detail)
	}
	select {
	case why := <-terminated:
		if why != jingle.ReasonSecurityError {
			t.Fatalf("terminate reason %s", why)
		}
	case <-ctx.Done():
		t.Fatal("no session-terminate")
	}
}

// TestCheckDataChannelFingerprints: the check itself, on what it is
// given: one transport in every content passes, as do contents without
// a data channel; two fingerprints, a content of the session without
// one, and a second fingerprint element in a content are refused.
func TestCheckDataChannelFingerprints(t *testing.T) {
	one, two := dcTransportRaw(t), dcTransportRaw(t)
	bare, err := (&filexfer.DataChannelTransport{SCTPPort: 5000}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	ibb, err := (&filexfer.IBBTransport{SID: "ibb-1", BlockSize: 4096}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	extra := mustRaw(t, `<fingerprint xmlns="urn:example:omemo-encrypted">opaque</fingerprint>`)
	content := func(name string, rs ...jingle.Raw) jingle.Content {
		return jingle.Content{Creator: jingle.CreatorInitiator, Name: name, Senders: jingle.SendersInitiator, Other: rs}
	}
	for _, c := range []struct {
		name string
		cs   []jingle.Content
		ok   bool
	}{
		{"one transport", []jingle.Content{content("f", one), content("g", one)}, true},
		{"IBB only", []jingle.Content{content("f", ibb), content("g", ibb)}, true},
		{"two fingerprints", []jingle.Content{content("f", one), content("g", two)}, false},
		{"one without", []jingle.Content{content("f", one), content("g", bare)}, false},
		{"a second fingerprint", []jingle.Content{content("f", one, extra)}, false},
	} {
		j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "s", Contents: c.cs}
		if err := checkDataChannelFingerprints(j); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
