package xferbench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SCPServer is a throwaway OpenSSH server on 127.0.0.1 for the scp
// baseline: a temporary directory with its own host key, a client key in
// its authorized_keys and an sshd_config that listens on a free loopback
// port, allows only that key, and serves SFTP (OpenSSH 9's scp uses it)
// in-process. It is started on the first Run and stopped by Close.
type SCPServer struct {
	src, dir string

	once    sync.Once
	err     error // why the server could not start (wraps ErrSkip when OpenSSH is missing)
	tmp     string
	port    int
	key     string
	user    string
	scpPath string
	cmd     *exec.Cmd
	log     bytes.Buffer
}

// SCP returns the scp baseline for the file src, copied to dir.
func SCP(src, dir string) *SCPServer { return &SCPServer{src: src, dir: dir} }

// sshdPath finds sshd: on PATH, or where Debian puts it.
func sshdPath() (string, error) {
	if p, err := exec.LookPath("sshd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (no sshd; on Debian: apt-get install openssh-server)", errNoSSHD)
}

func (s *SCPServer) start(ctx context.Context) error {
	sshd, err := sshdPath()
	if err != nil {
		return err
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		return fmt.Errorf("%w (no ssh-keygen; on Debian: apt-get install openssh-client)", errNoSSHD)
	}
	if s.scpPath, err = exec.LookPath("scp"); err != nil {
		return fmt.Errorf("%w (no scp; on Debian: apt-get install openssh-client)", errNoSSHD)
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	s.user = u.Username
	// sshd insists on its privilege separation directory, which the
	// system service creates at boot; create it when we may.
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) && os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755)
	}
	if s.tmp, err = os.MkdirTemp("", "securejingle-bench-sshd-"); err != nil {
		return err
	}
	hostKey := filepath.Join(s.tmp, "host")
	s.key = filepath.Join(s.tmp, "client")
	for _, k := range []string{hostKey, s.key} {
		if out, err := exec.CommandContext(ctx, keygen, "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			return fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(s.key + ".pub")
	if err != nil {
		return err
	}
	auth := filepath.Join(s.tmp, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		return err
	}
	for try := 0; try < 3; try++ {
		if err = s.launch(ctx, sshd, hostKey, auth); err == nil {
			return nil
		}
	}
	return err
}

// launch starts sshd on a free port and waits until it accepts.
func (s *SCPServer) launch(ctx context.Context, sshd, hostKey, auth string) error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := filepath.Join(s.tmp, "sshd_config")
	conf := strings.Join([]string{
		"Port " + strconv.Itoa(s.port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + auth,
		"PidFile " + filepath.Join(s.tmp, "sshd.pid"),
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + s.user,
		"Subsystem sftp internal-sftp",
		"LogLevel ERROR",
	}, "\n") + "\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return err
	}
	s.log.Reset()
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w (sshd: %v)", errNoSSHD, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%w (sshd exited: %s)", errNoSSHD, strings.TrimSpace(s.log.String()))
		case <-ctx.Done():
			cmd.Process.Kill()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second); err == nil {
			c.Close()
			s.cmd = cmd
			return nil
		}
	}
	cmd.Process.Kill()
	<-exited
	return fmt.Errorf("sshd did not listen on 127.0.0.1:%d: %s", s.port, strings.TrimSpace(s.log.String()))
}

// Run copies the file with scp (OpenSSH's default cipher) and returns how
// long the scp command took, connection set-up included.
func (s *SCPServer) Run(ctx context.Context) (time.Duration, error) {
	s.once.Do(func() { s.err = s.start(ctx) })
	if s.err != nil {
		return 0, s.err
	}
	dst := scpTarget(s.dir)
	defer removeIfExists(dst)
	args := []string{"-q", "-i", s.key, "-P", strconv.Itoa(s.port),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
		s.src, s.user + "@127.0.0.1:" + dst}
	start := time.Now()
	out, err := exec.CommandContext(ctx, s.scpPath, args...).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("scp: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// Close stops sshd and removes its directory.
func (s *SCPServer) Close() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd = nil
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}
