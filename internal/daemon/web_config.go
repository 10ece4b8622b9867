package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/securejingle/securejingle/internal/webapp"
)

// WebConfig is the [web] table: the local web app (internal/webapp).
type WebConfig struct {
	// Enabled serves the web app; default true.
	Enabled *bool `toml:"enabled"`
	// Listen is an IP address and port, default webapp.DefaultListen
	// ("127.0.0.1:7480"); port 0 picks a free one. An address that is not
	// loopback needs AllowRemote.
	Listen string `toml:"listen"`
	// AllowRemote permits a listen address other than loopback. The app
	// has no TLS: anyone on that network sees the session cookie and
	// everything the page shows.
	AllowRemote bool `toml:"allow_remote"`
}

// enabled reports whether the web app is served.
func (w WebConfig) enabled() bool { return w.Enabled == nil || *w.Enabled }

// listen returns the listen address.
func (w WebConfig) listen() string {
	if w.Listen == "" {
		return webapp.DefaultListen
	}
	return w.Listen
}

// validate checks the [web] table.
func (w WebConfig) validate() []error {
	var errs []error
	ap, err := netip.ParseAddrPort(w.listen())
	switch {
	case err != nil:
		errs = append(errs, &FieldError{Key: "web.listen", Msg: fmt.Sprintf("%q: want an IP address and port, such as %q", w.Listen, webapp.DefaultListen)})
	case ap.Addr().IsUnspecified():
		errs = append(errs, &FieldError{Key: "web.listen", Msg: fmt.Sprintf("%q: name one address, not the unspecified one (the Host check needs it)", w.Listen)})
	case ap.Addr().Zone() != "":
		errs = append(errs, &FieldError{Key: "web.listen", Msg: fmt.Sprintf("%q: an address with a zone is not supported", w.Listen)})
	case !ap.Addr().IsLoopback() && !w.AllowRemote:
		errs = append(errs, &FieldError{Key: "web.listen", Msg: fmt.Sprintf("%q is not a loopback address: the web app has no TLS; set allow_remote = true to serve it anyway", w.Listen)})
	}
	return errs
}

// warnRemote logs a warning when the web app listens beyond loopback.
func (w WebConfig) warnRemote(log *slog.Logger) {
	if ap, err := netip.ParseAddrPort(w.listen()); err == nil && !ap.Addr().IsLoopback() {
		log.Warn("web app listens beyond loopback without TLS (web.allow_remote = true): anyone on that network can read the session cookie and what the page shows",
			"listen", w.Listen)
	}
}
