//go:build tools

// This file pins modules that the architecture requires but that no package
// imports yet, so `go mod tidy` keeps them at the versions the project was
// designed against. Remove a line once a real package imports the module.
package securejingle

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/ProtonMail/go-crypto/openpgp"
	_ "github.com/pion/srtp/v3"
	_ "github.com/pion/webrtc/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/skip2/go-qrcode"
	_ "github.com/smallstep/pkcs7"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/crypto/ssh/agent"
	_ "golang.org/x/term"
	_ "mellium.im/xmpp"
)
