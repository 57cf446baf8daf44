package etcdtest

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stormguard/stormguard/internal/proctest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestMissingBinary: without the binary, Start skips the test locally and
// fails it in CI, saying how to install it.
func TestMissingBinary(t *testing.T) {
	saved := defaultBinary
	defaultBinary = "/nonexistent/etcd"
	t.Cleanup(func() { defaultBinary = saved })
	proctest.CheckMissingBinary(t, "ETCD_BIN", "etcd", "apt-get install -y etcd-server", func(tb testing.TB) { Start(tb) })
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
