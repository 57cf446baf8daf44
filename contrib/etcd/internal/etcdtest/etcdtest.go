// Package etcdtest runs a real etcd server for tests: the Debian binary (or
// the one named by $ETCD_BIN), listening on free loopback ports, with its
// data in the test's temporary directory. The test owns the process: it is
// started with Start, killed (SIGKILL) and restarted on the same data
// directory and ports for fault tests, and stopped by its PID when the test
// ends. Nothing else is ever signalled.
//
// Without an etcd binary, Start skips the test with a message saying how to
// install one — unless the environment variable CI is "true", where a
// missing binary fails the test, so that CI cannot pass by skipping.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// DefaultBinary is where Debian's etcd-server package installs etcd.
const DefaultBinary = "/usr/bin/etcd"

// defaultBinary is DefaultBinary, a variable so that tests of this package
// can pretend it is missing.
var defaultBinary = DefaultBinary

// healthTimeout bounds the wait for a started etcd to report healthy.
const healthTimeout = 30 * time.Second

// Server is an etcd process owned by one test.
type Server struct {
	t         testing.TB
	bin       string
	dir       string
	dataDir   string
	logPath   string
	clientURL string
	peerURL   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Binary returns the etcd binary to use: $ETCD_BIN, else etcd on $PATH, else
// DefaultBinary; "" if none exists.
func Binary() string {
	if b := os.Getenv("ETCD_BIN"); b != "" {
		return b
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b
	}
	if _, err := os.Stat(defaultBinary); err == nil {
		return defaultBinary
	}
	return ""
}

// Start starts a single-member etcd cluster on two free loopback ports
// (client and peer), with its data directory under t.TempDir(), and waits
// until it reports healthy. The server is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "etcd binary not found: install it (apt-get install -y etcd-server) or set ETCD_BIN"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: integration tests must not be skipped)")
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	ports := freePorts(t, 2)
	s := &Server{
		t:         t,
		bin:       bin,
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		logPath:   filepath.Join(dir, "etcd.log"),
		clientURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		peerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[1]),
	}
	t.Cleanup(s.Stop)
	s.start()
	return s
}

// freePorts asks the kernel for n distinct free loopback ports. They are
// released before etcd binds them; another process could take one in
// between, in which case etcd fails to start and the test says so.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("etcdtest: no free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Endpoint returns the client URL, e.g. "http://127.0.0.1:40123".
func (s *Server) Endpoint() string { return s.clientURL }

// DataDir returns the server's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// PID returns the process id of the running etcd, or 0 if it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) start() {
	s.t.Helper()
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatalf("etcdtest: %v", err)
	}
	defer logFile.Close()
	cmd := exec.Command(s.bin,
		"--name", "etcdtest",
		"--data-dir", s.dataDir,
		"--listen-client-urls", s.clientURL,
		"--advertise-client-urls", s.clientURL,
		"--listen-peer-urls", s.peerURL,
		"--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", "etcdtest="+s.peerURL,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "etcdtest",
		// Short raft timers: a restarted single member elects itself in
		// a fraction of a second instead of after the default 1s timeout.
		"--heartbeat-interval", "25",
		"--election-timeout", "250",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("etcdtest: starting %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitHealthy(done); err != nil {
		s.t.Fatalf("etcdtest: etcd (pid %d) at %s did not become healthy: %v\n%s", cmd.Process.Pid, s.clientURL, err, s.logTail())
	}
}

func (s *Server) waitHealthy(exited <-chan struct{}) error {
	deadline := time.Now().Add(healthTimeout)
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("the process exited")
		default:
		}
		resp, err := client.Get(s.clientURL + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
				return nil
			}
			err = fmt.Errorf("health: %s %s", resp.Status, strings.TrimSpace(string(body)))
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v: %v", healthTimeout, last)
}

// signal sends sig to the process this Server started, if it is running,
// and waits up to wait for it to exit; it reports whether it exited.
func (s *Server) signal(sig syscall.Signal, wait time.Duration) bool {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
		return true
	case <-time.After(wait):
		return false
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits for the
// process to exit. Data that etcd acknowledged is on disk; nothing else is
// flushed.
func (s *Server) Kill() {
	if !s.signal(syscall.SIGKILL, 10*time.Second) {
		s.t.Errorf("etcdtest: etcd did not exit after SIGKILL")
	}
}

// Stop stops the server gracefully (SIGTERM), or with SIGKILL if it has not
// exited after ten seconds. It does nothing if the server is not running.
// Start registers it as a cleanup.
func (s *Server) Stop() {
	if !s.signal(syscall.SIGTERM, 10*time.Second) {
		s.Kill()
	}
}

// Restart starts the server again on the same data directory and ports,
// after Kill or Stop, and waits until it is healthy.
func (s *Server) Restart() {
	s.t.Helper()
	if s.PID() != 0 {
		s.t.Fatalf("etcdtest: Restart while etcd is running; Kill or Stop it first")
	}
	s.start()
}

// Client returns a client of the server, closed when the test ends. It logs
// nothing, and reconnects within a fraction of a second after a restart.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.clientURL},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "etcdtest/ping"); err != nil {
		t.Fatalf("etcdtest: client cannot reach %s: %v", s.clientURL, err)
	}
	return c
}

// logTail returns the last lines of the server's log, for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "etcd log (last lines):\n" + strings.Join(lines, "\n")
}
