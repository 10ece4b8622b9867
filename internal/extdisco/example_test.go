package extdisco_test

import (
	"fmt"
	"time"

	"github.com/securejingle/securejingle/internal/extdisco"
)

// A server's answer to ServicesRequest("") becomes the ICE servers of a
// call; the FTP server and the expired credentials are left out.
func Example() {
	fmt.Printf("%s\n", extdisco.ServicesRequest(""))
	answer := []byte(`<services xmlns='urn:xmpp:extdisco:2'>
  <service type='stun' host='turn.example.org' port='3478' transport='udp'/>
  <service type='turn' host='turn.example.org' port='3478' transport='udp' restricted='1'
           username='1767229200:alice' password='c2VjcmV0' expires='2026-01-01T01:00:00Z'/>
  <service type='turn' host='old.example.org' username='u' password='p' expires='2025-01-01T00:00:00Z'/>
  <service type='ftp' host='ftp.example.org' port='21' transport='tcp'/>
</services>`)
	services, err := extdisco.ParseServices(answer)
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range extdisco.ICEServers(now, services) {
		if s.Username == "" {
			fmt.Println(s.URLs[0])
		} else {
			fmt.Println(s.URLs[0], "as", s.Username)
		}
	}
	fmt.Println("refresh before", extdisco.Expiry(now, services).Format(time.RFC3339))
	// Output:
	// <services xmlns="urn:xmpp:extdisco:2"/>
	// stun:turn.example.org:3478
	// turn:turn.example.org:3478?transport=udp as 1767229200:alice
	// refresh before 2026-01-01T01:00:00Z
}
