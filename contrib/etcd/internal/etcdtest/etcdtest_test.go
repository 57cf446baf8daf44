package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// fakeTB records Skip and Fatal instead of ending the real test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Skip(args ...any)          { f.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatal(args ...any)         { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatalf(s string, a ...any) { f.fatal = fmt.Sprintf(s, a...); runtime.Goexit() }

func startWithoutBinary(t *testing.T, ci string) *fakeTB {
	t.Setenv("ETCD_BIN", "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", ci)
	saved := defaultBinary
	defaultBinary = "/nonexistent/etcd"
	defer func() { defaultBinary = saved }()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f)
	}()
	<-done
	return f
}

func TestMissingBinarySkipsLocally(t *testing.T) {
	f := startWithoutBinary(t, "")
	assert.Contains(t, f.skipped, "etcd binary not found: install it (apt-get install -y etcd-server) or set ETCD_BIN")
	assert.Empty(t, f.fatal)
}

func TestMissingBinaryFailsInCI(t *testing.T) {
	f := startWithoutBinary(t, "true")
	assert.Contains(t, f.fatal, "CI=true: integration tests must not be skipped")
	assert.Empty(t, f.skipped)
}

// TestKillAndRestart: Kill ends exactly the process Start started, and
// Restart brings the data back on the same ports.
func TestKillAndRestart(t *testing.T) {
	srv := Start(t)
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Put(ctx, "k", "acknowledged")
	require.NoError(t, err)

	pid := srv.PID()
	require.NotZero(t, pid)
	srv.Kill()
	assert.Zero(t, srv.PID())
	assert.True(t, errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), "process %d is gone", pid)

	srv.Restart()
	assert.NotEqual(t, pid, srv.PID())
	resp, err := c.Get(ctx, "k")
	require.NoError(t, err, "the old client reconnects to the same port")
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, "acknowledged", string(resp.Kvs[0].Value))

	pid = srv.PID()
	srv.Stop()
	assert.Zero(t, srv.PID())
	assert.True(t, errors.Is(syscall.Kill(pid, 0), syscall.ESRCH))
	srv.Stop() // stopping a stopped server does nothing
}
