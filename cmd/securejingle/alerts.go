package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/policy"
)

func init() {
	register(command{
		name:    "alerts",
		summary: "list recent policy alerts from the audit log",
		run:     runAlerts,
	})
}

const alertsUsage = `usage:
  securejingle alerts [-config daemon.toml | -audit PATH] [-n 20] [-json]

Prints the last N alerts of the audit log, oldest first, reading rotated
files (PATH.1, PATH.2, ...) when the current one holds fewer. The daemon
need not run. -n 0 prints them all.
`

// maxRotated bounds how many rotated audit files are read.
const maxRotated = 1000

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("alerts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, alertsUsage); fs.PrintDefaults() }
	config := fs.String("config", "", "daemon configuration whose audit log to read (default $XDG_CONFIG_HOME/securejingle/daemon.toml)")
	audit := fs.String("audit", "", "audit log to read")
	n := fs.Int("n", 20, "number of alerts to print; 0 prints all")
	asJSON := fs.Bool("json", false, "print the alerts as JSON lines, as the audit log holds them")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *n < 0 {
		return errors.New("-n must be 0 or more")
	}
	path := *audit
	switch {
	case *audit != "" && *config != "":
		return errors.New("give -config or -audit, not both")
	case *audit == "":
		cp := *config
		if cp == "" {
			var err error
			if cp, err = defaultConfigPath(); err != nil {
				return err
			}
		}
		cfg, err := daemon.Load(cp)
		if err != nil {
			return err
		}
		path = cfg.AuditLogPath()
	}
	alerts, err := readAlerts(path, *n, stderr)
	if err != nil && len(alerts) == 0 {
		return err
	}
	if len(alerts) == 0 {
		_, werr := fmt.Fprintf(stdout, "no alerts in %s\n", sanitize(path))
		return werr
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, a := range alerts {
			if werr := enc.Encode(a); werr != nil {
				return werr
			}
		}
	} else if werr := printAlerts(stdout, alerts); werr != nil {
		return werr
	}
	// Damage in the middle of a file: the alerts before it were printed,
	// but the command fails.
	return err
}

// readAlerts returns the last n (all if 0) alerts of the audit log at
// path and its rotated siblings, oldest first. A torn last line is
// reported on stderr and skipped; other damage is returned as the error
// together with the alerts read.
func readAlerts(path string, n int, stderr io.Writer) ([]policy.Alert, error) {
	var out []policy.Alert
	var damage error
files:
	for i := 0; i <= maxRotated && (n == 0 || len(out) < n); i++ {
		p := path
		if i > 0 {
			p = path + "." + strconv.Itoa(i)
		}
		as, err := policy.ReadAudit(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			break files // no older files
		case errors.Is(err, policy.ErrTornTail):
			fmt.Fprintf(stderr, "warning: %s: %v (an interrupted write; the alerts before it are intact)\n", sanitize(p), err)
		case err != nil:
			var le *policy.AuditLineError
			if !errors.As(err, &le) {
				return out, err
			}
			damage = errors.Join(damage, fmt.Errorf("%s: %w", p, err))
		}
		out = append(as, out...)
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, damage
}

func printAlerts(w io.Writer, alerts []policy.Alert) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSEVERITY\tACTION\tKIND\tPEER\tCOUNT\tRULE\tMESSAGE")
	for _, a := range alerts {
		count := strconv.Itoa(a.Count)
		if a.Summary {
			count += " since " + a.Since.UTC().Format(time.RFC3339)
		}
		peer := a.Facts.PeerJID
		if peer == "" {
			peer = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Time.UTC().Format(time.RFC3339),
			a.Decision.Severity, a.Decision.Action, a.Facts.Kind, cell(peer), count,
			cell(a.Decision.Rule), cell(a.Decision.Message))
	}
	return tw.Flush()
}

// cell makes text from the audit log (which may carry peer-chosen text)
// safe for one table cell: no control, tab or bidirectional formatting
// characters.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, sanitize(s))
}
