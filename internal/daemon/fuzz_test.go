package daemon

import (
	"errors"
	"testing"
)

// FuzzParse: no configuration text panics the parser, every rejection is
// a configuration error, and an accepted configuration validates again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "[access]\nmode = \"domains\"\ndomains = [\"example.org\", \"*.example.net\"]\nrate = 1.5\nburst = 2\nmax_pending = 3\n"))
	f.Add([]byte(minimal + "[policy]\nx = 1\n[log]\nlevel = \"debug\"\nformat = \"json\"\n"))
	f.Add([]byte("[account]\njid = \"a@b/c\"\npassword_command = [\"pass\", \"x\"]\nserver = \"[::1]:5222\"\npin_sha256 = \"" +
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n[keys]\nbackend = \"agent\"\nagent_key = \"SHA256:" +
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n[store]\npath = \"s\"\n"))
	f.Add([]byte(minimal + "[alerts]\naudit_log = \"a.jsonl\"\nwindow = \"30s\"\naudit_keep = 2\naudit_max_size = 4096\nnotify_user = false\n"))
	f.Add([]byte(minimal + "[alerts]\nwindow = \"0s\"\ncommand = \"/bin/true\"\ncommand_args = [\"-x\"]\ncommand_timeout = \"1m\"\n"))
	f.Add([]byte(minimal + "[[keys.attestation]]\ntype = \"openpgp\"\nfile = \"st.asc\"\n[[keys.attestation]]\ntype = \"x-y\"\nfile = \"p\"\n"))
	f.Add([]byte(minimal + "[trust]\nopenpgp_keys = [\"a.asc\"]\nx509_roots = \"roots.pem\"\n"))
	f.Add([]byte(minimal + "[trust]\nopenpgp_keys = []\n"))
	f.Add([]byte("[account\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, "/base")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("rejection is not a configuration error: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted configuration does not validate: %v", err)
		}
		if _, err := c.Access.config(); err != nil {
			t.Fatalf("accepted access table fails: %v", err)
		}
	})
}
