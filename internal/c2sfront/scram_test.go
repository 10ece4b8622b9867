package c2sfront

import (
	"testing"

	"mellium.im/sasl"
)

// runSCRAM runs mellium's SCRAM-SHA-256 client against scramServer.
func runSCRAM(t *testing.T, cred Credential, user, password string) error {
	t.Helper()
	c := sasl.NewClient(sasl.ScramSha256, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(password), nil
	}))
	srv := &scramServer{cred: cred, user: "alice", authzOK: func(string) bool { return false }}
	_, first, err := c.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := srv.first(first)
	if err != nil {
		return err
	}
	_, final, err := c.Step(sf)
	if err != nil {
		t.Fatal(err)
	}
	v, err := srv.final(final)
	if err != nil {
		return err
	}
	// The client checks the server signature.
	if _, _, err := c.Step(v); err != nil {
		t.Fatalf("client refused server signature: %v", err)
	}
	return nil
}

func TestSCRAM(t *testing.T) {
	cred, err := NewCredential(testPassword, minIterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := runSCRAM(t, cred, "alice", testPassword); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := runSCRAM(t, cred, "alice", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := runSCRAM(t, cred, "bob", testPassword); err == nil {
		t.Fatal("other user accepted")
	}
}

func TestSCRAMRefusesMalformed(t *testing.T) {
	cred, _ := NewCredential(testPassword, minIterations)
	for _, m := range []string{
		"", "p=tls-unique,,n=alice,r=abcdefghij", "n,,n=alice", "n,,n=alice,r=short",
		"n,x,n=alice,r=abcdefghij", "n,,r=abcdefghij,n=alice", "n,,n=alice,r=abcdefghij\x00",
	} {
		srv := &scramServer{cred: cred, user: "alice", authzOK: func(string) bool { return false }}
		if _, err := srv.first([]byte(m)); err == nil {
			t.Errorf("client-first %q accepted", m)
		}
	}
	srv := &scramServer{cred: cred, user: "alice", authzOK: func(string) bool { return false }}
	if _, err := srv.final([]byte("c=biws,r=x,p=AAAA")); err == nil {
		t.Error("final before first accepted")
	}
	if _, err := srv.first([]byte("n,,n=alice,r=abcdefghij")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"c=biws,r=abcdefghij,p=AAAA", "c=biws,r=" + srv.nonce + ",p=!!", "c=eSws,r=" + srv.nonce + ",p=AAAA"} {
		if _, err := srv.final([]byte(m)); err == nil {
			t.Errorf("client-final %q accepted", m)
		}
	}
}
