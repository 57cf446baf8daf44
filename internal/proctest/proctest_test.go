package proctest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func requireMissing(tb testing.TB) {
	Require(tb, "PROCTEST_BIN", "proctest-server", "/nonexistent/proctest-server", "apt-get install -y proctest")
}

func TestRequireSkipsLocallyFailsInCI(t *testing.T) {
	CheckMissingBinary(t, "PROCTEST_BIN", "proctest-server", "apt-get install -y proctest", requireMissing)
}

// TestCheckMissingBinaryCatchesBadHarnesses: a harness that runs without
// its binary, or says something else, fails the check, once per case.
func TestCheckMissingBinaryCatchesBadHarnesses(t *testing.T) {
	for name, start := range map[string]func(testing.TB){
		"runs anyway":   func(testing.TB) {},
		"wrong message": func(tb testing.TB) { tb.Skip("no binary") },
		"always fails":  func(tb testing.TB) { tb.Fatal("no binary") },
	} {
		t.Run(name, func(t *testing.T) {
			r := &errRecorder{TB: t}
			CheckMissingBinary(r, "PROCTEST_BIN", "proctest-server", "apt-get install -y proctest", start)
			assert.Len(t, r.errs, 2, "%q", r.errs)
		})
	}
}

type errRecorder struct {
	testing.TB
	errs []string
}

func (r *errRecorder) Helper()                   {}
func (r *errRecorder) Errorf(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }

func TestBinaryOrder(t *testing.T) {
	dir := t.TempDir()
	onPath := filepath.Join(dir, "srv")
	require.NoError(t, os.WriteFile(onPath, []byte("#!/bin/sh\n"), 0o755))
	fallback := filepath.Join(t.TempDir(), "fallback")
	require.NoError(t, os.WriteFile(fallback, nil, 0o755))

	t.Setenv("PATH", dir)
	t.Setenv("SRV_BIN", "/from/env")
	assert.Equal(t, "/from/env", Binary("SRV_BIN", "srv", fallback), "the variable wins")
	t.Setenv("SRV_BIN", "")
	assert.Equal(t, onPath, Binary("SRV_BIN", "srv", fallback), "then $PATH")
	t.Setenv("PATH", t.TempDir())
	assert.Equal(t, fallback, Binary("SRV_BIN", "srv", fallback), "then the fallback")
	assert.Empty(t, Binary("SRV_BIN", "srv", "/nonexistent/srv"), "else nothing")
	assert.Equal(t, fallback, Require(t, "SRV_BIN", "srv", fallback, "-"))
}

func TestFreePorts(t *testing.T) {
	ports := FreePorts(t, 8, true)
	require.Len(t, ports, 8)
	seen := map[int]bool{}
	for _, p := range ports {
		assert.False(t, seen[p], "port %d twice", p)
		seen[p] = true
		assert.Positive(t, p)
	}
}

// TestProcess: Stop ends exactly the process Start started, a second Stop
// does nothing, Kill ends a process that ignores SIGTERM, and the log holds
// the process's output.
func TestProcess(t *testing.T) {
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	log := filepath.Join(t.TempDir(), "srv.log")
	p := NewProcess("srv", log)
	assert.Zero(t, p.PID(), "nothing runs before Start")

	done, err := p.Start(exec.Command(sh, "-c", "echo started; exec sleep 60"))
	require.NoError(t, err)
	pid := p.PID()
	require.NotZero(t, pid)
	require.Eventually(t, func() bool { return strings.Contains(p.LogTail(), "started") },
		10*time.Second, 10*time.Millisecond)
	p.Stop(t)
	<-done
	assert.Zero(t, p.PID())
	assert.True(t, errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), "process %d is gone", pid)
	p.Stop(t) // stopping a stopped process does nothing

	// A process that ignores SIGTERM: Signal reports that it did not exit,
	// and Kill ends it.
	done, err = p.Start(exec.Command(sh, "-c", "trap '' TERM; echo trapped; while :; do sleep 0.01; done"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(p.LogTail(), "trapped") },
		10*time.Second, 10*time.Millisecond)
	assert.False(t, p.Signal(syscall.SIGTERM, 200*time.Millisecond))
	assert.NotZero(t, p.PID())
	p.Kill(t)
	<-done
	assert.Zero(t, p.PID())
	assert.Contains(t, p.LogTail(), "srv log (last lines):\nstarted\ntrapped")
}

func TestStartError(t *testing.T) {
	p := NewProcess("srv", filepath.Join(t.TempDir(), "srv.log"))
	_, err := p.Start(exec.Command("/nonexistent/srv"))
	assert.ErrorContains(t, err, "starting /nonexistent/srv")
	assert.Zero(t, p.PID())

	p = NewProcess("srv", filepath.Join(t.TempDir(), "missing-dir", "srv.log"))
	_, err = p.Start(exec.Command("/bin/true"))
	assert.Error(t, err, "an unwritable log is an error")
	assert.Contains(t, p.LogTail(), "(no log:")
}

// TestStartReady: it returns once ready does, says so when the process
// exits first, and gives up at the timeout with ready's last error and
// the log.
func TestStartReady(t *testing.T) {
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)

	p := NewProcess("srv", filepath.Join(t.TempDir(), "srv.log"))
	probes := 0
	require.NoError(t, p.StartReady(exec.Command(sh, "-c", "exec sleep 60"), 10*time.Second, func() error {
		if probes++; probes < 3 {
			return errors.New("not yet")
		}
		return nil
	}))
	assert.Equal(t, 3, probes)
	assert.NotZero(t, p.PID())
	p.Stop(t)

	p = NewProcess("srv", filepath.Join(t.TempDir(), "srv.log"))
	err = p.StartReady(exec.Command(sh, "-c", "echo bad config; exit 1"), 10*time.Second, func() error { return errors.New("refused") })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited before it was ready (last check: refused)")
	assert.Contains(t, err.Error(), "bad config", "the log's tail")

	p = NewProcess("srv", filepath.Join(t.TempDir(), "srv.log"))
	err = p.StartReady(exec.Command(sh, "-c", "exec sleep 60"), 100*time.Millisecond, func() error { return errors.New("refused") })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not ready after 100ms: refused")
	p.Stop(t)
}
