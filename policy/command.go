package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DefaultCommandTimeout bounds one run of a [CommandSink] command.
const DefaultCommandTimeout = 10 * time.Second

// maxCommandStderr bounds how much of a failing command's stderr is kept
// for the error.
const maxCommandStderr = 4 << 10

// CommandSink is a [Sink] that runs a configured program for every alert,
// with the alert as one JSON object on its standard input. The program is
// executed directly, never through a shell, with a minimal environment; it
// is killed when the timeout or the Send context expires. Send blocks until
// the program exits, so slow hooks should be wrapped in an [AsyncSink].
// Create with [NewCommandSink]; the zero value is not usable. Safe for
// concurrent use.
type CommandSink struct {
	path    string
	args    []string
	timeout time.Duration
	env     []string
}

// NewCommandSink prepares a hook running the program at the absolute path
// with args. A timeout <= 0 means [DefaultCommandTimeout].
func NewCommandSink(path string, args []string, timeout time.Duration) (*CommandSink, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("policy: command hook %q: path must be absolute", path)
	}
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return &CommandSink{
		path:    path,
		args:    append([]string(nil), args...),
		timeout: timeout,
		env:     []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8"},
	}, nil
}

// Send runs the command with a on stdin. It fails if the command cannot
// start, exits non-zero (the error wraps *exec.ExitError and quotes the
// start of stderr) or outlives the timeout or ctx (the error wraps
// context.DeadlineExceeded or context.Canceled).
func (c *CommandSink) Send(ctx context.Context, a Alert) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("policy: command hook: %w", err)
	}
	data = append(data, '\n')
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, c.args...)
	cmd.Env = c.env
	cmd.Stdin = bytes.NewReader(data)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	// Do not wait for grandchildren that inherited stderr.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("policy: command hook %s: %w", c.path, errors.Join(ctxErr, err))
	}
	if err != nil {
		msg := strings.TrimSpace(sanitize(stderr.String()))
		if msg != "" {
			return fmt.Errorf("policy: command hook %s: %w: %s", c.path, err, msg)
		}
		return fmt.Errorf("policy: command hook %s: %w", c.path, err)
	}
	return nil
}

type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCommandStderr - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
