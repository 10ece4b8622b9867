package jingle

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// conversationsPayload reads a fixture of testdata/conversations and
// returns its one payload.
func conversationsPayload(t *testing.T, name string) []byte { return conversationsPayloadB(t, name) }

func conversationsPayloadB(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "conversations", name))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := payloads(b)
	if err != nil || len(ps) != 1 {
		t.Fatalf("%s: want one payload, got %d (%v)", name, len(ps), err)
	}
	return ps[0].raw
}

func TestConversationsPropose(t *testing.T) {
	m := roundTrip(t, conversationsPayload(t, "propose.xml"), ParseJMI, marshalJMI)
	if m.Kind != JMIPropose || m.ID != "2ZbvVS0hS9WZl5bGo4rGRw" {
		t.Fatalf("got %s %q", m.Kind, m.ID)
	}
	if got := m.Media(); !reflect.DeepEqual(got, []string{"audio", "video"}) {
		t.Fatalf("media %v", got)
	}
	if _, ok := m.DeviceID(); ok {
		t.Fatal("a propose has no device")
	}
}

func TestConversationsProceedDevice(t *testing.T) {
	m := roundTrip(t, conversationsPayload(t, "proceed-device.xml"), ParseJMI, marshalJMI)
	if m.Kind != JMIProceed {
		t.Fatalf("kind %s", m.Kind)
	}
	id, ok := m.DeviceID()
	if !ok || id != 1785367318 {
		t.Fatalf("DeviceID = %d, %v", id, ok)
	}
	if len(m.Extra) != 1 || !reflect.DeepEqual(m.Extra[0], DeviceElement(1785367318)) {
		t.Fatalf("device kept as %#v", m.Extra)
	}
}

func TestConversationsOMEMOFingerprint(t *testing.T) {
	j := roundTrip(t, conversationsPayload(t, "session-initiate-omemo.xml"), parseJingle, marshalJingle)
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(j.Contents) != 2 || len(j.Groups) != 1 || j.Groups[0].Semantics != "BUNDLE" {
		t.Fatalf("contents %d groups %v", len(j.Contents), j.Groups)
	}
	for i, c := range j.Contents {
		tr := c.Transport
		if tr == nil || tr.Fingerprint != nil {
			t.Fatalf("content %d: want a transport without a XEP-0320 fingerprint", i)
		}
		if !tr.HasForeignFingerprint() {
			t.Fatalf("content %d: OMEMO fingerprint not classified as foreign", i)
		}
		r, _ := tr.ForeignFingerprint()
		if r.XMLName.Space != NSOMEMOVerification {
			t.Fatalf("content %d: foreign fingerprint in %q", i, r.XMLName.Space)
		}
		if !bytes.Contains(r.Inner, []byte("<encrypted xmlns='eu.siacs.conversations.axolotl'>")) {
			t.Fatalf("content %d: encrypted element not kept: %s", i, r.Inner)
		}
	}
	v := j.Contents[1].Description
	if len(v.SSRCGroups) != 1 || len(v.SSRCGroups[0].Sources) != 2 || len(v.PayloadTypes[0].Feedback) != 5 {
		t.Fatalf("video description %+v", v)
	}
}

func TestConversationsPlaintextFallback(t *testing.T) {
	j := roundTrip(t, conversationsPayload(t, "session-accept-plain.xml"), parseJingle, marshalJingle)
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	tr := j.Contents[0].Transport
	if tr.HasForeignFingerprint() {
		t.Fatal("plaintext fingerprint classified as foreign")
	}
	if f := tr.Fingerprint; f == nil || f.Setup != SetupActive || f.Hash != "sha-256" || len(f.Value) != 95 {
		t.Fatalf("fingerprint %+v", tr.Fingerprint)
	}
	if len(tr.Other) != 1 || tr.Other[0].XMLName.Local != "trickle" {
		t.Fatalf("ice option not kept: %+v", tr.Other)
	}
}

func TestConversationsTransportInfo(t *testing.T) {
	j := roundTrip(t, conversationsPayload(t, "transport-info.xml"), parseJingle, marshalJingle)
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	c := j.Contents[0].Transport.Candidates
	if len(c) != 1 || c[0].Type != "relay" || c[0].Network != 0 || c[0].RelPort != 38519 {
		t.Fatalf("candidates %+v", c)
	}
	var nilT *Transport
	if nilT.HasForeignFingerprint() {
		t.Fatal("nil transport has a foreign fingerprint")
	}
}
