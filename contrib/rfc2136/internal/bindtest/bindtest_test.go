package bindtest

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/miekg/dns"
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
	t.Setenv("NAMED_BIN", "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", ci)
	saved := defaultBinary
	defaultBinary = "/nonexistent/named"
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
	assert.Contains(t, f.skipped, "named binary not found: install it (apt-get install -y bind9) or set NAMED_BIN")
	assert.Empty(t, f.fatal)
}

func TestMissingBinaryFailsInCI(t *testing.T) {
	f := startWithoutBinary(t, "true")
	assert.Contains(t, f.fatal, "CI=true: integration tests must not be skipped")
	assert.Empty(t, f.skipped)
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
