package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/securejingle/securejingle/internal/api"
)

func init() {
	register(command{
		name:    "chat",
		summary: "send an encrypted chat message, or print incoming ones (-listen)",
		run:     runChat,
	})
}

const chatUsage = `usage:
  securejingle chat [-socket S] TO MESSAGE...
  securejingle chat -listen [-socket S] [-n N] [-json]

The first form sends MESSAGE (the remaining arguments joined by spaces),
encrypted for every device of the bare JID TO and of your own account.
The second prints incoming chat messages, alerts, trust and key events
until interrupted, or until N new chat messages were printed. It starts
with what the daemon kept from before (marked "earlier"). Lines starting
with "!" need attention (unencrypted or refused messages, alerts, key
changes); lines starting with "*" report trust, device and connection
events.
`

func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, chatUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	listen := fs.Bool("listen", false, "print incoming messages instead of sending")
	count := fs.Int("n", 0, "with -listen: exit after this many chat messages (0: never)")
	asJSON := fs.Bool("json", false, "with -listen: print every event as a JSON line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *listen {
		if fs.NArg() > 0 {
			return fmt.Errorf("-listen takes no arguments, got %q", fs.Args())
		}
		return chatListen(ctx, *socket, *count, *asJSON, stdout, stderr)
	}
	if *count != 0 || *asJSON {
		return errors.New("-n and -json apply to -listen only")
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return errors.New("need a recipient and a message")
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	to, msg := fs.Arg(0), strings.Join(fs.Args()[1:], " ")
	if err := c.SendChat(ctx, to, msg); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "sent to %s\n", to)
	return err
}

func chatListen(ctx context.Context, socket string, count int, asJSON bool, stdout, stderr io.Writer) error {
	c, err := dialAPI(socket)
	if err != nil {
		return err
	}
	defer c.Close()
	stream, err := c.Events(ctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	fmt.Fprintln(stderr, "listening for messages; interrupt to stop")
	stop := context.AfterFunc(ctx, func() { stream.Close() })
	defer stop()
	seen := 0
	for {
		ev, err := stream.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the daemon closed the event stream")
			}
			return err
		}
		if asJSON {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
				return err
			}
		} else if line := formatEvent(ev); line != "" {
			if _, err := fmt.Fprintln(stdout, line); err != nil {
				return err
			}
		}
		if ev.Kind == "chat" && !ev.Replayed && !ev.Refused {
			seen++
			if count > 0 && seen >= count {
				return nil
			}
		}
	}
}

// formatEvent renders the events a chat user cares about as one line;
// other kinds give "". Conversation lines start with the sender; lines that
// need attention start with "!", other trust, key and connection events
// with "*", so that neither can pass for a message.
func formatEvent(ev api.Event) string {
	ts := ev.Time.Local().Format("15:04:05")
	if ev.Replayed {
		ts = "earlier " + ts
	}
	// Bodies and details come from the network: never let them move the
	// cursor or write escape sequences to the terminal.
	from, body, detail := sanitize(ev.From), sanitize(ev.Body), sanitize(ev.Detail)
	switch ev.Kind {
	case "chat":
		switch {
		case ev.Refused:
			how := "unencrypted"
			if ev.Encrypted {
				how = "encrypted"
			}
			return fmt.Sprintf("[%s] ! REFUSED %s message from %s (blocked by policy, not part of the conversation): %s", ts, how, from, body)
		case !ev.Encrypted:
			return fmt.Sprintf("[%s] ! UNENCRYPTED message from %s (anyone on the path could read or change it): %s", ts, from, body)
		}
		how := fmt.Sprintf("encrypted, device %d", ev.Device)
		if !ev.Established {
			how += ", not yet confirmed"
		}
		return fmt.Sprintf("[%s] %s (%s): %s", ts, from, how, body)
	case "chat-sent":
		return fmt.Sprintf("[%s] -> %s (from your other device): %s", ts, sanitize(ev.To), body)
	case "alert":
		what := "ALERT"
		if ev.Alert != nil {
			what = fmt.Sprintf("ALERT (%s, %s)", ev.Alert.Decision.Severity, ev.Alert.Decision.Action)
			if ev.Alert.Summary {
				what += fmt.Sprintf(" x%d", ev.Alert.Count)
			}
		}
		return fmt.Sprintf("[%s] ! %s %s: %s", ts, what, from, detail)
	case "key-changed":
		return fmt.Sprintf("[%s] ! KEY CHANGED %s: %s", ts, from, detail)
	case "trust":
		return fmt.Sprintf("[%s] * TRUST %s: %s", ts, from, detail) // trust is per account, not per device
	case "peer":
		return fmt.Sprintf("[%s] * DEVICE %s: %s", ts, from, detail)
	case "call":
		if ev.Call != nil {
			return fmt.Sprintf("[%s] %s", ts, callEventLine(*ev.Call))
		}
	case "file":
		if ev.File != nil {
			if line := fileEventLine(*ev.File); line != "" {
				return fmt.Sprintf("[%s] %s", ts, line)
			}
		}
	case "connected":
		return fmt.Sprintf("[%s] * connected: %s", ts, detail)
	case "disconnected":
		return fmt.Sprintf("[%s] ! DISCONNECTED: %s", ts, detail)
	}
	return ""
}

// sanitize replaces control characters other than tab by U+FFFD and
// newlines by a visible marker.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return '⏎'
		case r == '\t':
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return '\uFFFD'
		}
		return r
	}, s)
}
