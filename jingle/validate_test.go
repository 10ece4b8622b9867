package jingle

import (
	"errors"
	"strings"
	"testing"
)

func rtpContent(name string) Content {
	return Content{
		Creator: CreatorInitiator, Name: name,
		Description: &Description{Media: "audio", PayloadTypes: []PayloadType{{ID: 111, Name: "opus", Clockrate: 48000, Channels: 2}}},
		Transport: &Transport{Ufrag: "8hhy", Pwd: "asd88fgpdd777uzjYhagZg", Fingerprint: &Fingerprint{
			Hash: "sha-256", Setup: SetupActpass, Value: fp256}},
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Jingle {
		return &Jingle{Action: ActionSessionInitiate, SID: "s1", Initiator: "a@b/c",
			Groups:   []Group{{Semantics: "BUNDLE", Contents: []GroupContent{{Name: "0"}}}},
			Contents: []Content{rtpContent("0")}}
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	noInitiator := ok()
	noInitiator.Initiator = ""
	if err := noInitiator.Validate(); err != nil {
		t.Fatalf("initiator is a SHOULD: %v", err)
	}
	cases := []struct {
		name  string
		mod   func(j *Jingle)
		field string
	}{
		{"unknown action", func(j *Jingle) { j.Action = "session-dance" }, "action"},
		{"empty sid", func(j *Jingle) { j.SID = "" }, "sid"},
		{"long sid", func(j *Jingle) { j.SID = strings.Repeat("s", MaxIDLen+1) }, "sid"},
		{"no contents", func(j *Jingle) { j.Contents = nil; j.Groups = nil }, "content"},
		{"too many contents", func(j *Jingle) {
			j.Contents = nil
			for i := 0; i <= MaxContents; i++ {
				j.Contents = append(j.Contents, rtpContent(string(rune('a'+i))))
			}
		}, "content"},
		{"duplicate names", func(j *Jingle) { j.Contents = append(j.Contents, rtpContent("0")) }, "content[1]"},
		{"unnamed content", func(j *Jingle) { j.Contents[0].Name = "" }, "content[0]"},
		{"no application", func(j *Jingle) { j.Contents[0].Description = nil }, "content[0]"},
		{"no transport", func(j *Jingle) { j.Contents[0].Transport = nil }, "content[0]"},
		{"no media", func(j *Jingle) { j.Contents[0].Description.Media = "" }, "content[0]/description"},
		{"group names unknown content", func(j *Jingle) { j.Groups[0].Contents[0].Name = "9" }, "group[0]"},
		{"bad setup", func(j *Jingle) { j.Contents[0].Transport.Fingerprint.Setup = "holdconn" }, "jingle/content/transport/fingerprint@setup"},
		{"bad fingerprint", func(j *Jingle) { j.Contents[0].Transport.Fingerprint.Value = fp1 }, "jingle/content/transport/fingerprint"},
		{"bad creator", func(j *Jingle) { j.Contents[0].Creator = "me" }, "jingle/content@creator"},
		{"terminate without reason", func(j *Jingle) { j.Action = ActionSessionTerminate }, "reason"},
		{"unknown reason", func(j *Jingle) {
			j.Action = ActionSessionTerminate
			j.Reason = &Reason{Condition: "meh"}
		}, "reason"},
		{"alternative-session without sid", func(j *Jingle) {
			j.Action = ActionSessionTerminate
			j.Reason = &Reason{Condition: ReasonAlternativeSession}
		}, "reason"},
		{"transport-info without transport", func(j *Jingle) {
			j.Action = ActionTransportInfo
			j.Contents[0].Transport = nil
		}, "content[0]"},
		{"transport-info without contents", func(j *Jingle) { j.Action = ActionTransportInfo; j.Contents = nil }, "content"},
		{"description-info without description", func(j *Jingle) {
			j.Action = ActionDescriptionInfo
			j.Contents[0].Description = nil
		}, "content[0]"},
		{"content-modify without senders", func(j *Jingle) { j.Action = ActionContentModify }, "content[0]"},
		{"content-remove without contents", func(j *Jingle) { j.Action = ActionContentRemove; j.Contents = nil }, "content"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := ok()
			c.mod(j)
			err := j.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if ve.Field != c.field {
				t.Fatalf("field %q, want %q (%v)", ve.Field, c.field, err)
			}
			if errors.Is(err, ErrMalformed) {
				t.Fatal("a validation error must not match ErrMalformed")
			}
			if !strings.HasPrefix(err.Error(), "jingle: invalid ") {
				t.Fatalf("message %q", err)
			}
		})
	}
	// Actions without content rules.
	for _, j := range []*Jingle{
		NewSessionInfo("s1"),
		NewSessionInfo("s1", RTPInfo{Kind: InfoRinging}),
		{Action: ActionSessionTerminate, SID: "s1", Reason: &Reason{Condition: ReasonSuccess}},
		{Action: ActionContentModify, SID: "s1", Contents: []Content{{Creator: CreatorInitiator, Name: "v", Senders: SendersNone}}},
		{Action: ActionTransportReplace, SID: "s1", Contents: []Content{{Creator: CreatorInitiator, Name: "v",
			Other: []Raw{{XMLName: name("urn:xmpp:jingle:transports:ibb:1", "transport")}}}}},
	} {
		if err := j.Validate(); err != nil {
			t.Errorf("%s: %v", j.Action, err)
		}
	}
}

func TestHandBuiltRoundTrip(t *testing.T) {
	j := &Jingle{XMLName: name(NS, "jingle"), Action: ActionSessionAccept, SID: "s1", Responder: "b@c/d",
		Contents: []Content{rtpContent("0")}}
	d := j.Contents[0].Description
	d.RTCPMux = &struct{}{}
	d.ReducedSize = &struct{}{}
	d.ExtmapAllowMixed = &struct{}{}
	d.Bandwidth = &Bandwidth{Type: "AS", Value: "128"}
	d.Encryption = &Encryption{Required: "1", Crypto: []Crypto{{CryptoSuite: "AES_CM_128_HMAC_SHA1_80", KeyParams: "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", Tag: "1"}}}
	d.Feedback = []RTCPFeedback{{Type: "nack", Subtype: "pli"}}
	d.FeedbackTRRInt = []RTCPFeedbackTRRInt{{Value: 100}}
	d.HeaderExts = []HeaderExt{{ID: 1, URI: "urn:ietf:params:rtp-hdrext:ssrc-audio-level", Senders: SendersInitiator,
		Parameters: []Parameter{{Name: "vad", Value: "on"}}}}
	d.Sources = []Source{{SSRC: 1, Parameters: []Parameter{{Name: "cname", Value: "x"}}}, {SSRC: 2}}
	d.SSRCGroups = []SSRCGroup{{Semantics: "FID", Sources: []Source{{SSRC: 1}, {SSRC: 2}}}}
	d.PayloadTypes[0].Parameters = []Parameter{{Name: "minptime", Value: "10"}, {Value: "raw=fmtp"}}
	d.PayloadTypes[0].Ptime, d.PayloadTypes[0].Maxptime = "20", "60"
	tr := j.Contents[0].Transport
	tr.Candidates = []Candidate{{Component: 1, Foundation: "1", IP: "::1", Port: 1, Priority: 1, Protocol: "udp", Type: "srflx", RelAddr: "0.0.0.0"}}
	tr.RemoteCandidate = &RemoteCandidate{Component: 1, IP: "10.0.0.1", Port: 9}
	j.Reason = &Reason{Condition: ReasonSuccess, Text: "ok", Lang: "en"}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.Marshal()
	if string(b) != string(b2) {
		t.Fatalf("not stable:\n%s\n%s", b, b2)
	}
	if c := back.Contents[0].Transport.Candidates[0]; c.RelAddr != "0.0.0.0" || c.RelPort != 0 || !strings.Contains(string(b), "rel-port='0'") {
		t.Fatalf("rel-port of a rel-addr must be written: %s", b)
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	for name, j := range map[string]*Jingle{
		"no action":     {SID: "s"},
		"bad senders":   {Action: ActionContentModify, SID: "s", Contents: []Content{{Creator: CreatorInitiator, Name: "a", Senders: "all"}}},
		"bad raw inner": {Action: ActionSessionInfo, SID: "s", Info: []Raw{{XMLName: name("urn:x", "x"), Inner: []byte("<unclosed>")}}},
		"priority 0":    {Action: ActionTransportInfo, SID: "s", Contents: []Content{{Creator: CreatorInitiator, Name: "a", Transport: &Transport{Candidates: []Candidate{{Component: 1, Foundation: "1", IP: "1.2.3.4", Protocol: "udp", Type: "host"}}}}}},
		"payload 200":   {Action: ActionDescriptionInfo, SID: "s", Contents: []Content{{Creator: CreatorInitiator, Name: "a", Description: &Description{PayloadTypes: []PayloadType{{ID: 200}}}}}},
	} {
		_, err := j.Marshal()
		var me *MarshalError
		var pe *ParseError
		if !errors.As(err, &me) || !errors.As(err, &pe) {
			t.Errorf("%s: want a MarshalError wrapping a ParseError, got %v", name, err)
		} else if !strings.HasPrefix(err.Error(), "jingle: cannot marshal: jingle: malformed element: ") {
			t.Errorf("%s: message %q", name, err)
		}
	}
}

func TestCanonicalSizeBound(t *testing.T) {
	// 40 KiB of quotes in a kept attribute fit the input limit but not the
	// escaped output: refused at parse time, so that Marshal(Parse(x))
	// always parses.
	in := contentWith(`<x xmlns='urn:x' a='` + strings.Repeat(`"`, 40<<10) + `'/>`)
	checkParseError(t, in, "jingle", func(b []byte) error { _, err := Parse(b); return err })
}
