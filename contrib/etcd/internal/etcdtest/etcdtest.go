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
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stormguard/stormguard/internal/proctest"
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
	dataDir   string
	clientURL string
	peerURL   string
	proc      *proctest.Process
}

// Binary returns the etcd binary to use: $ETCD_BIN, else etcd on $PATH, else
// DefaultBinary; "" if none exists.
func Binary() string { return proctest.Binary("ETCD_BIN", "etcd", defaultBinary) }

// Start starts a single-member etcd cluster on two free loopback ports
// (client and peer), with its data directory under t.TempDir(), and waits
// until it reports healthy. The server is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := proctest.Require(t, "ETCD_BIN", "etcd", defaultBinary, "apt-get install -y etcd-server")
	dir := t.TempDir()
	ports := proctest.FreePorts(t, 2, false)
	s := &Server{
		t:         t,
		bin:       bin,
		dataDir:   filepath.Join(dir, "data"),
		clientURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		peerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		proc:      proctest.NewProcess("etcd", filepath.Join(dir, "etcd.log")),
	}
	t.Cleanup(s.Stop)
	s.start()
	return s
}

// Endpoint returns the client URL, e.g. "http://127.0.0.1:40123".
func (s *Server) Endpoint() string { return s.clientURL }

// DataDir returns the server's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// PID returns the process id of the running etcd, or 0 if it is not running.
func (s *Server) PID() int { return s.proc.PID() }

func (s *Server) start() {
	s.t.Helper()
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
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	if err := s.proc.StartReady(cmd, healthTimeout, func() error { return s.healthy(client) }); err != nil {
		s.t.Fatalf("etcdtest: etcd at %s did not become healthy: %v", s.clientURL, err)
	}
}

// healthy asks etcd's /health endpoint once.
func (s *Server) healthy(client *http.Client) error {
	resp, err := client.Get(s.clientURL + "/health")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
		return nil
	}
	return fmt.Errorf("health: %s %s", resp.Status, strings.TrimSpace(string(body)))
}

// Kill kills the server with SIGKILL, as a crash would, and waits for the
// process to exit. Data that etcd acknowledged is on disk; nothing else is
// flushed.
func (s *Server) Kill() { s.proc.Kill(s.t) }

// Stop stops the server gracefully (SIGTERM), or with SIGKILL if it has not
// exited after ten seconds. It does nothing if the server is not running.
// Start registers it as a cleanup.
func (s *Server) Stop() { s.proc.Stop(s.t) }

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
