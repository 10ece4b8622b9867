package clienttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/integration"
)

// writeSendxmppConfig writes go-sendxmpp's account file (mode 0600, so the
// password is not on the command line) and returns its path.
func writeSendxmppConfig(t testing.TB, dir string, ep Endpoint, host, port string) string {
	t.Helper()
	cfg := fmt.Sprintf("username: %s\njserver: %s\nport: %s\npassword: %s\n", ep.JID, host, port, ep.Password)
	p := filepath.Join(dir, "sendxmpprc")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	return p
}

func sendxmppTool(t testing.TB) string {
	t.Helper()
	return integration.Tool(t, "go-sendxmpp", "go-sendxmpp")
}

var _ = strings.TrimSpace
