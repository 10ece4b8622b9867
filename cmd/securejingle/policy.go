package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/policy"
)

func init() {
	register(command{
		name:    "policy",
		summary: "check, explain or print the channel policy (policy check|explain|defaults)",
		run:     runPolicy,
	})
}

const policyUsage = `usage:
  securejingle policy check FILE
  securejingle policy check -config daemon.toml
  securejingle policy explain [-file FILE | -config daemon.toml] -kind KIND [facts...]
  securejingle policy defaults

check validates a policy file and prints the effective rule table: the
file's rules, then the built-in ones. explain shows which rule decides a
channel with the given facts, and why each earlier rule did not match.
defaults prints the built-in rules as a policy file to start from.
`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return errors.New("missing subcommand: check, explain or defaults")
	}
	switch args[0] {
	case "check":
		return policyCheck(args[1:], stdout, stderr)
	case "explain":
		return policyExplain(args[1:], stdout, stderr)
	case "defaults":
		fs := flag.NewFlagSet("policy defaults", flag.ContinueOnError)
		fs.SetOutput(stderr)
		if help, err := parseFlags(fs, args[1:]); help || err != nil {
			return err
		}
		_, err := io.WriteString(stdout, policy.DefaultConfigTOML)
		return err
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	default:
		fmt.Fprint(stderr, policyUsage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}

// loadedPolicy is a compiled policy with where its rules came from.
type loadedPolicy struct {
	p      *policy.Policy
	source string // the policy file, "" for the built-in defaults
	user   int    // number of rules from the file
}

// loadPolicy compiles the policy of file, or of the daemon configuration
// config, or the built-in default when both are empty.
func loadPolicy(file, config string) (loadedPolicy, error) {
	switch {
	case file != "" && config != "":
		return loadedPolicy{}, errors.New("give a policy file or -config, not both")
	case config != "":
		cfg, err := daemon.Load(config)
		if err != nil {
			return loadedPolicy{}, err
		}
		file = cfg.Policy.File
	}
	if file == "" {
		return loadedPolicy{p: policy.Default()}, nil
	}
	pc, p, err := daemon.ReadPolicyFile(file)
	var pe *daemon.PolicyFileError
	if errors.As(err, &pe) && config == "" {
		// Not a daemon configuration problem: name the file only.
		return loadedPolicy{}, fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	if err != nil {
		return loadedPolicy{}, err
	}
	return loadedPolicy{p: p, source: file, user: len(pc.Rules)}, nil
}

// ruleSource says where rule i of lp comes from.
func (lp loadedPolicy) ruleSource(i, n int, r policy.Rule) string {
	switch {
	case i < lp.user:
		return lp.source + ":" + strconv.Itoa(r.Line)
	case i == n-1:
		return "built-in catch-all"
	default:
		return "built-in"
	}
}

func policyCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, policyUsage); fs.PrintDefaults() }
	config := fs.String("config", "", "check the policy file this daemon configuration names")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	var file string
	switch {
	case len(pos) > 1:
		return fmt.Errorf("unexpected arguments: %q", pos[1:])
	case len(pos) == 1:
		file = pos[0]
	case *config == "":
		fs.Usage()
		return errors.New("give a policy file or -config")
	}
	lp, err := loadPolicy(file, *config)
	if err != nil {
		return err
	}
	rules := lp.p.Rules()
	if lp.source == "" {
		fmt.Fprintln(stdout, "no policy file: the built-in rules apply")
	} else {
		fmt.Fprintf(stdout, "%s: OK, %d rules of its own, %d built-in\n", cell(lp.source), lp.user, len(rules)-lp.user)
	}
	return printRules(stdout, lp, rules)
}

func printRules(w io.Writer, lp loadedPolicy, rules []policy.Rule) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tNAME\tMATCH\tACTION\tSEVERITY\tSOURCE")
	for i, r := range rules {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i, cell(r.Name), cell(formatMatch(r.Match)),
			r.Action, r.Severity, cell(lp.ruleSource(i, len(rules), r)))
	}
	return tw.Flush()
}

// formatMatch writes a rule's conditions as key=value pairs, lists joined
// by commas; a rule without conditions matches anything.
func formatMatch(m policy.Match) string {
	var parts []string
	add := func(key string, vals []string) {
		if len(vals) > 0 {
			parts = append(parts, key+"="+strings.Join(vals, ","))
		}
	}
	add("kind", names(m.Kind))
	add("direction", names(m.Direction))
	add("peer", m.Peer)
	devs := make([]string, len(m.PeerDevice))
	for i, d := range m.PeerDevice {
		devs[i] = strconv.FormatUint(uint64(d), 10)
	}
	add("peer_device", devs)
	add("trust", names(m.Trust))
	add("protection", names(m.Protection))
	add("signaling", names(m.Signaling))
	add("stanza_type", m.StanzaType)
	for _, b := range []struct {
		key string
		v   *bool
	}{{"secured_session", m.SecuredSession}, {"on_roster", m.OnRoster}, {"peer_supports_e2e", m.PeerSupportsE2E}} {
		if b.v != nil {
			parts = append(parts, b.key+"="+strconv.FormatBool(*b.v))
		}
	}
	if len(parts) == 0 {
		return "(anything)"
	}
	return cell(strings.Join(parts, " "))
}

func names[T fmt.Stringer](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// enumFlag registers a flag whose value is parsed by parse into *dst. The
// flag package keeps only the text of a parse error, so the error itself
// is recorded in *perr for the caller to return.
func enumFlag[T any](fs *flag.FlagSet, name, usage string, dst *T, perr *error, parse func(string) (T, error)) {
	fs.Func(name, usage, func(s string) error {
		v, err := parse(s)
		if err != nil {
			if *perr == nil {
				*perr = fmt.Errorf("-%s: %w", name, err)
			}
			return err
		}
		*dst = v
		return nil
	})
}

func policyExplain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, policyUsage); fs.PrintDefaults() }
	file := fs.String("file", "", "policy file (default: the built-in rules)")
	config := fs.String("config", "", "use the policy file this daemon configuration names")
	var f policy.Facts
	var perr error
	enumFlag(fs, "kind", "channel kind: chat, stanza, media-call, file-transfer, data-channel, bytestream (required)", &f.Kind, &perr, policy.ParseKind)
	enumFlag(fs, "direction", "incoming or outgoing", &f.Direction, &perr, policy.ParseDirection)
	enumFlag(fs, "trust", "verified, tofu, unknown, key-changed or distrusted", &f.Trust, &perr, policy.ParseTrust)
	enumFlag(fs, "protection", "e2e-bound, e2e-unverified, transport-only or cleartext", &f.Protection, &perr, policy.ParseProtection)
	enumFlag(fs, "signaling", "protected, unprotected or none", &f.Signaling, &perr, policy.ParseSignaling)
	fs.StringVar(&f.PeerJID, "peer", "", "peer JID")
	device := fs.Uint("device", 0, "peer device id")
	fs.StringVar(&f.StanzaType, "stanza-type", "", "stanza type, e.g. chat")
	fs.BoolVar(&f.SecuredSession, "secured-session", false, "an end-to-end session with the peer exists")
	fs.BoolVar(&f.OnRoster, "on-roster", false, "the peer is in the roster")
	fs.BoolVar(&f.PeerSupportsE2E, "peer-supports-e2e", false, "the peer advertises end-to-end support")
	if help, err := parseFlags(fs, args); help || err != nil {
		if perr != nil {
			return perr
		}
		return err
	}
	if f.Kind == 0 {
		fs.Usage()
		return errors.New("-kind is required")
	}
	if uint64(*device) > uint64(^uint32(0)) {
		return fmt.Errorf("-device %d out of range", *device)
	}
	f.PeerDevice = uint32(*device)
	lp, err := loadPolicy(*file, *config)
	if err != nil {
		return err
	}
	n := len(lp.p.Rules())
	fmt.Fprintf(stdout, "facts: %s\n", formatFacts(f))
	steps := lp.p.Explain(f)
	for _, st := range steps {
		src := lp.ruleSource(st.Index, n, policy.Rule{Line: st.Line})
		if st.Matched {
			fmt.Fprintf(stdout, "  #%d %s (%s): matches\n", st.Index, cell(st.Rule), cell(src))
			continue
		}
		var failed []policy.Check
		for _, c := range st.Checks {
			if !c.OK {
				failed = append(failed, c)
			}
		}
		why := "no match"
		if len(failed) > 0 {
			c := failed[0]
			why = fmt.Sprintf("%s is %s, the rule wants %s", c.Field, c.Got, c.Want)
			if len(failed) > 1 {
				why += fmt.Sprintf(" (and %d more)", len(failed)-1)
			}
		}
		fmt.Fprintf(stdout, "  #%d %s (%s): skipped: %s\n", st.Index, cell(st.Rule), cell(src), cell(why))
	}
	d := lp.p.Decide(f)
	fmt.Fprintf(stdout, "decision: %s, severity %s, by rule #%d %s\n", d.Action, d.Severity, d.Index, cell(d.Rule))
	if d.Message != "" {
		fmt.Fprintf(stdout, "message: %s\n", cell(d.Message))
	}
	return nil
}

func formatFacts(f policy.Facts) string {
	parts := []string{"kind=" + f.Kind.String(), "direction=" + f.Direction.String()}
	if f.PeerJID != "" {
		parts = append(parts, "peer="+f.PeerJID)
	}
	if f.PeerDevice != 0 {
		parts = append(parts, "peer_device="+strconv.FormatUint(uint64(f.PeerDevice), 10))
	}
	parts = append(parts, "trust="+f.Trust.String(), "protection="+f.Protection.String(), "signaling="+f.Signaling.String())
	if f.StanzaType != "" {
		parts = append(parts, "stanza_type="+f.StanzaType)
	}
	parts = append(parts, "secured_session="+strconv.FormatBool(f.SecuredSession),
		"on_roster="+strconv.FormatBool(f.OnRoster), "peer_supports_e2e="+strconv.FormatBool(f.PeerSupportsE2E))
	return cell(strings.Join(parts, " "))
}

// defaultConfigPath is the daemon configuration used when -config is not
// given, as for `securejingle serve`.
func defaultConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "securejingle", "daemon.toml"), nil
}
