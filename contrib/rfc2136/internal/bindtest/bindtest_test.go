package bindtest

import (
	"os"
	"syscall"
	"testing"

	"github.com/miekg/dns"
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
	defaultBinary = "/nonexistent/named"
	t.Cleanup(func() { defaultBinary = saved })
	proctest.CheckMissingBinary(t, "NAMED_BIN", "named", "apt-get install -y bind9", func(tb testing.TB) { Start(tb) })
}

// TestStartAndStop: the server answers for its zone, and Stop ends
// exactly the process Start started.
func TestStartAndStop(t *testing.T) {
	s := Start(t)
	pid := s.PID()
	require.NotZero(t, pid)
	m := new(dns.Msg)
	m.SetQuestion(Zone, dns.TypeSOA)
	r, err := dns.Exchange(m, s.Addr())
	require.NoError(t, err)
	assert.True(t, r.Authoritative)
	s.Stop()
	assert.Zero(t, s.PID())
	p, _ := os.FindProcess(pid)
	assert.Error(t, p.Signal(syscallZero), "named is gone")
}

var syscallZero = syscall.Signal(0)
