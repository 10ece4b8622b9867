package extdisco

import (
	"net"
	"strconv"
	"time"

	"github.com/pion/webrtc/v4"
)

// ICEServer returns the pion ICE server for s, and false when s is of no
// use to ICE at now:
//   - a type other than stun, turn and turns, or a push that removes it;
//   - credentials that expired (Expires not after now);
//   - STUN over anything but UDP (pion gathers server-reflexive
//     candidates over UDP only);
//   - TURN or TURNS without both username and password (pion refuses
//     those, and a restricted service without them needs a
//     [CredentialsRequest] first);
//   - a transport other than udp and tcp.
//
// A missing port is the default one (3478, or 5349 for turns); a missing
// transport is udp for turn and tcp (TLS) for turns. TURN URIs carry the
// transport explicitly ("turn:host:port?transport=udp"). Credentials are
// copied only for TURN and TURNS.
func (s Service) ICEServer(now time.Time) (webrtc.ICEServer, bool) {
	if s.Action == ActionDelete || s.Action == ActionRemove || s.Expired(now) || !validHost(s.Host) {
		return webrtc.ICEServer{}, false
	}
	port := s.Port
	transport := s.Transport
	switch s.Type {
	case TypeSTUN:
		if transport != "" && transport != TransportUDP {
			return webrtc.ICEServer{}, false
		}
		if port == 0 {
			port = DefaultPort
		}
		return webrtc.ICEServer{URLs: []string{"stun:" + hostPort(s.Host, port)}}, true
	case TypeTURN, TypeTURNS:
		if !s.HasCredentials() {
			return webrtc.ICEServer{}, false
		}
		switch {
		case transport == "" && s.Type == TypeTURN:
			transport = TransportUDP
		case transport == "":
			transport = TransportTCP
		case transport != TransportUDP && transport != TransportTCP:
			return webrtc.ICEServer{}, false
		}
		if port == 0 {
			port = DefaultPort
			if s.Type == TypeTURNS {
				port = DefaultTLSPort
			}
		}
		return webrtc.ICEServer{
			URLs:           []string{s.Type + ":" + hostPort(s.Host, port) + "?transport=" + transport},
			Username:       s.Username,
			Credential:     s.Password,
			CredentialType: webrtc.ICECredentialTypePassword,
		}, true
	}
	return webrtc.ICEServer{}, false
}

func hostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// ICEServers returns the pion ICE servers for the services that are of use
// at now (see [Service.ICEServer]), in the order given, without duplicates
// and at most [MaxICEServers] of them. The result is never nil.
func ICEServers(now time.Time, services []Service) []webrtc.ICEServer {
	out, _ := selectServers(now, services)
	return out
}

// Expiry returns the earliest expiry among the services [ICEServers]
// uses at now, or the zero time when none of them expires.
func Expiry(now time.Time, services []Service) time.Time {
	_, used := selectServers(now, services)
	var first time.Time
	for _, s := range used {
		if !s.Expires.IsZero() && (first.IsZero() || s.Expires.Before(first)) {
			first = s.Expires
		}
	}
	return first
}

// selectServers returns the ICE servers and the services they came from.
func selectServers(now time.Time, services []Service) ([]webrtc.ICEServer, []Service) {
	type key struct{ url, user, pass string }
	out := []webrtc.ICEServer{}
	var used []Service
	seen := map[key]bool{}
	for _, s := range services {
		if len(out) == MaxICEServers {
			break
		}
		is, ok := s.ICEServer(now)
		if !ok {
			continue
		}
		cred, _ := is.Credential.(string)
		k := key{is.URLs[0], is.Username, cred}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, is)
		used = append(used, s)
	}
	return out, used
}
