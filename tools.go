//go:build tools

// This file pins modules that the architecture requires but that no package
// imports yet (pion, for calls and file transfer), so `go mod tidy` keeps
// them at the versions the project was designed against. Remove a line once
// a real package imports the module.
package securejingle

import (
	_ "github.com/pion/srtp/v3"
	_ "github.com/pion/webrtc/v4"
)
