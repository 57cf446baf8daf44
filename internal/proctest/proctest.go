// Package proctest runs a real server binary for a test: it finds the
// binary (skipping the test locally when it is missing, failing it when the
// environment variable CI is "true"), starts it with its output in a log
// file, signals only the process it started, by its PID, and has the kernel
// kill it if the test binary dies first. The adapters' harnesses
// (contrib/etcd's etcdtest, contrib/rfc2136's bindtest) build on it and add
// what is particular to their server: its flags, its readiness check, its
// client.
package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the binary to use: the path in the environment variable
// env if set, else name on $PATH, else fallback if it exists; "" if none.
func Binary(env, name, fallback string) string {
	if b := os.Getenv(env); b != "" {
		return b
	}
	if b, err := exec.LookPath(name); err == nil {
		return b
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	return ""
}

// Require returns Binary(env, name, fallback), or ends the test: it skips
// with a message saying how to install the binary (install, e.g. "apt-get
// install -y bind9"), unless CI is "true", where integration tests must not
// be skipped and it fails instead.
func Require(t testing.TB, env, name, fallback, install string) string {
	t.Helper()
	bin := Binary(env, name, fallback)
	if bin == "" {
		msg := fmt.Sprintf("%s binary not found: install it (%s) or set %s", name, install, env)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: integration tests must not be skipped)")
		}
		t.Skip(msg)
	}
	return bin
}

// FreePorts asks the kernel for n distinct loopback ports that are free for
// TCP and, if udp is set, for UDP too. They are released before the server
// binds them; another process could take one in between, in which case the
// server fails to start and the test says so.
func FreePorts(t testing.TB, n int, udp bool) []int {
	t.Helper()
	var ports []int
	var open []func() error
	defer func() {
		for _, c := range open {
			c()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 50*n {
			t.Fatalf("proctest: no %d free loopback ports", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("proctest: no free port: %v", err)
		}
		open = append(open, l.Close)
		port := l.Addr().(*net.TCPAddr).Port
		if udp {
			u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue
			}
			open = append(open, u.Close)
		}
		ports = append(ports, port)
	}
	return ports
}

// Process is a server process owned by one test.
type Process struct {
	name    string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// NewProcess returns a Process for a server called name (for messages)
// whose output goes to logPath. Nothing runs until Start.
func NewProcess(name, logPath string) *Process {
	return &Process{name: name, logPath: logPath}
}

// Start starts cmd, with its output appended to the log, and returns a
// channel closed when it exits. The kernel kills it if the test binary dies
// first (on Linux).
func (p *Process) Start(cmd *exec.Cmd) (<-chan struct{}, error) {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return done, nil
}

// readyPoll is how often StartReady asks whether the server is ready.
const readyPoll = 20 * time.Millisecond

// StartReady starts cmd (see Start) and calls ready every 20ms until it
// returns nil, the process exits, or timeout passes. The error then says
// which, with ready's last error and the tail of the server's log.
func (p *Process) StartReady(cmd *exec.Cmd, timeout time.Duration, ready func() error) error {
	exited, err := p.Start(cmd)
	if err != nil {
		return err
	}
	pid := p.PID()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s (pid %d) exited before it was ready (last check: %v)\n%s", p.name, pid, last, p.LogTail())
		default:
		}
		if last = ready(); last == nil {
			return nil
		}
		time.Sleep(readyPoll)
	}
	return fmt.Errorf("%s (pid %d) not ready after %v: %v\n%s", p.name, pid, timeout, last, p.LogTail())
}

// PID returns the process id of the running server, or 0 if it is not
// running.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process this Process started, if it is running,
// and waits up to wait for it to exit; it reports whether it exited.
func (p *Process) Signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		return true
	case <-time.After(wait):
		return false
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit; it reports on t if it does not.
func (p *Process) Kill(t testing.TB) {
	if !p.Signal(syscall.SIGKILL, 10*time.Second) {
		t.Errorf("proctest: %s did not exit after SIGKILL", p.name)
	}
}

// Stop stops the server gracefully (SIGTERM), or with SIGKILL if it has not
// exited after ten seconds. It does nothing if the server is not running.
func (p *Process) Stop(t testing.TB) {
	if !p.Signal(syscall.SIGTERM, 10*time.Second) {
		p.Kill(t)
	}
}

// LogTail returns the last lines of the server's log, for failure messages.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return p.name + " log (last lines):\n" + strings.Join(lines, "\n")
}

// WithoutBinary runs start, a harness's Start, as a test on a machine
// without the server binary would: the environment variable env is empty,
// $PATH holds nothing and CI is set to ci. The caller makes its own
// fallback path point nowhere. It returns the message start skipped with
// and the one it failed with (at most one is non-empty if start called
// Require).
func WithoutBinary(t testing.TB, env, ci string, start func(testing.TB)) (skipped, failed string) {
	t.Helper()
	t.Setenv(env, "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", ci)
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		start(r)
	}()
	<-done
	return r.skipped, r.failed
}

// recorder records Skip and Fatal instead of ending the real test; either
// ends only the goroutine that called it, as testing does.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Skip(args ...any)          { r.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)         { r.failed = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(s string, a ...any) { r.failed = fmt.Sprintf(s, a...); runtime.Goexit() }

// CheckMissingBinary is the test every harness needs: without its binary,
// start (the harness's Start) skips the test locally and fails it in CI,
// with a message saying how to install it (install, e.g. "apt-get install
// -y bind9") or which variable (env) to set. The caller makes its own
// fallback path point nowhere first.
func CheckMissingBinary(t testing.TB, env, name, install string, start func(testing.TB)) {
	t.Helper()
	want := fmt.Sprintf("%s binary not found: install it (%s) or set %s", name, install, env)
	skipped, failed := WithoutBinary(t, env, "", start)
	if skipped != want || failed != "" {
		t.Errorf("without %s, locally: skipped %q, failed %q; want skipped %q", name, skipped, failed, want)
	}
	want += " (CI=true: integration tests must not be skipped)"
	skipped, failed = WithoutBinary(t, env, "true", start)
	if failed != want || skipped != "" {
		t.Errorf("without %s, CI=true: skipped %q, failed %q; want failed %q", name, skipped, failed, want)
	}
}

// Latencies runs op in a b.Loop, timing each call, and reports the median
// and the 99th percentile besides the mean: a round trip to a server
// varies too much for the mean alone to describe it.
func Latencies(b *testing.B, op func()) {
	b.Helper()
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		op()
		lat = append(lat, time.Since(start))
	}
	ReportLatencies(b, lat)
}

// ReportLatencies reports the median and the 99th percentile of lat, in
// microseconds, as the metrics "p50-µs" and "p99-µs". It sorts lat.
func ReportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
