package rfc2136_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServerCrashMidRun: named is killed and started again while
// writers apply through one Provider, their Applies grouped and sent
// over reused connections. Every failure meanwhile is transient (no
// connection to the dead process is used as if alive, and none turns
// into a permanent error or a false conflict), and once named is back
// every writer writes again.
func TestServerCrashMidRun(t *testing.T) {
	s := bindtest.Start(t)
	p, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret(), Timeout: time.Second})
	require.NoError(t, err)
	const writers = 8
	var (
		wrote [writers]atomic.Int64
		mu    sync.Mutex
		bad   []error
		wg    sync.WaitGroup
	)
	run, stop := context.WithCancel(ctx)
	defer stop()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep := fmt.Sprintf("w%d.dnsplan.test", w)
			for run.Err() == nil {
				cur, err := p.Read(run, ep)
				if err == nil {
					next := dnsplan.Records{Generation: cur.Generation + 1, Targets: targetsOf(cur.Generation + 1)}
					if err = p.Apply(run, ep, cur, next); err == nil {
						wrote[w].Add(1)
						continue
					}
				}
				if !errors.Is(err, rfc2136.ErrTransient) {
					mu.Lock()
					bad = append(bad, err)
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	waitAll := func(min func(w int) int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for w := range writers {
			for wrote[w].Load() < min(w) {
				require.True(t, time.Now().Before(deadline), "writer %d stuck at %d writes", w, wrote[w].Load())
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	waitAll(func(int) int64 { return 3 })
	s.Crash()
	var after [writers]int64
	for w := range writers {
		after[w] = wrote[w].Load()
	}
	waitAll(func(w int) int64 { return after[w] + 3 })
	stop()
	wg.Wait()
	assert.Empty(t, bad, "only transient failures")
}
