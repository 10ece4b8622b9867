package access_test

import (
	"fmt"

	"github.com/securejingle/securejingle/e2e/access"
)

func Example() {
	cfg := access.DefaultConfig()
	cfg.Mode = access.AllowedDomains
	cfg.Domains = []string{"example.org", "*.example.org"}
	ctl, err := access.New(cfg, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(ctl.Allow("juliet@capulet.example", true).Reason)
	fmt.Println(ctl.Allow("romeo@montague.example", false).Reason)
	fmt.Println(ctl.Allow("nurse@chat.example.org", false).Reason)

	done, err := ctl.BeginHandshake("nurse@chat.example.org")
	if err != nil {
		panic(err)
	}
	defer done()
	// Output:
	// allowed
	// domain-not-allowed
	// allowed
}
