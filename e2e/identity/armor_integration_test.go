package identity

import (
	"os"
	"path/filepath"
	"testing"
)

// TestIntegrationParseArmoredRSAECDSA signs with fresh RSA and ECDSA keys
// made by the real ssh-keygen: ParseArmored must call their signatures
// unsupported, never malformed (finding 7 of the first review).
func TestIntegrationParseArmoredRSAECDSA(t *testing.T) {
	for _, kt := range [][]string{{"rsa", "3072"}, {"ecdsa", "256"}, {"ecdsa", "384"}, {"ecdsa", "521"}} {
		t.Run(kt[0]+kt[1], func(t *testing.T) {
			dir := t.TempDir()
			env := sshEnv(t, "")
			key := filepath.Join(dir, "id")
			runTool(t, env, nil, "ssh-keygen", "-q", "-t", kt[0], "-b", kt[1], "-N", "", "-C", "test", "-f", key)
			msg := filepath.Join(dir, "msg")
			if err := os.WriteFile(msg, []byte("securejingle test message\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			runTool(t, env, nil, "ssh-keygen", "-Y", "sign", "-f", key, "-n", NamespaceStatement, msg)
			b, err := os.ReadFile(msg + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			checkUnsupportedNotMalformed(t, b)
		})
	}
}
