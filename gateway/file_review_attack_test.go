package gateway

// Attacks on the file channel found in review (issue 9). Each test shows
// the bad behaviour on the code it was written against; see the comment
// of each for the expected (fixed) behaviour.

import (
	"testing"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// rawReplace builds a transport-replace of content name of session sid
// to IBB, as the initiator (the sender of the bytes) sends it.
func rawReplace(t *testing.T, sid, name string) []byte {
	t.Helper()
	tr, err := (&filexfer.IBBTransport{SID: "ibb2-" + sid, BlockSize: 4096}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	j := &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: sid,
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: name, Senders: jingle.SendersInitiator, Other: []jingle.Raw{tr}}}}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttackReplaceWhilePending: a contact offers a file and, before the
// user decides, sends a transport-replace of its content. The session
// machine takes a transport-replace in the pending state; the transfer's
// goroutine then reads xf.recv (nil until accept) in onTransportReplace
// and starts the pump of a transfer nobody accepted. On the reviewed code
// the process dies with a nil pointer dereference. Expected: the replace
// is refused (out-of-order or transport-reject) while pending, and the
// transfer stays pending.
func TestAttackReplaceWhilePending(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	sid := newTransferID()
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOffer(t, sid, true), false); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
	_, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawReplace(t, sid, "f"), false)
	t.Logf("transport-replace while pending answered: %v", err)
	// Give the transfer's goroutine the message (a ping behind it on the
	// same queue is answered only once the replace was handled).
	ping, _ := (&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: sid}).Marshal()
	a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", ping, false)
	in, _ := b.Transfer(sid)
	if in.State != TransferPending {
		t.Fatalf("a transport-replace before the accept moved the transfer to %s (%s)", in.State, in.Detail)
	}
}
