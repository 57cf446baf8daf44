package backoff

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The ring's position counter wraps at 2^32, which is not a multiple of
// most window sizes: the window must still hold exactly the last
// WindowCalls results across the wrap.
func TestBreakerCountWindowAcrossCounterWrap(t *testing.T) {
	const n = 7
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{WindowCalls: n, MinCalls: n, FailureRate: 1})
	b.cur.Load().count.pos.Store(math.MaxUint32 - 2)
	var last []bool
	for i := range 5 * n {
		fail := i%3 == 0
		tk, err := b.AllowAt(now)
		require.NoError(t, err)
		var res error
		if fail {
			res = errDependency
		}
		b.RecordAt(now, tk, res)
		last = append(last, fail)
		if len(last) > n {
			last = last[1:]
		}
		want := 0
		for _, f := range last {
			if f {
				want++
			}
		}
		require.Equal(t, want, b.StatsAt(now).Failures, "after %d calls", i+1)
	}
}

// A TimeWindow may hold billions of calls (an hour at a million calls a
// second): its slow calls must not spill into its failures.
func TestBreakerTimeWindowHugeCounts(t *testing.T) {
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{Window: TimeWindow, WindowDuration: time.Hour, MinCalls: 1, FailureRate: 0.5,
		SlowCallDuration: time.Second, SlowRate: 1})
	tk, err := b.AllowAt(now)
	require.NoError(t, err)
	b.RecordAt(now, tk, nil) // one fast call, to start the window
	preloadTimeWindow(b.cur.Load().tw, 0, 3<<31, 0, 3<<31-1)
	tk, err = b.AllowAt(now)
	require.NoError(t, err)
	b.RecordAt(now.Add(2*time.Second), tk, nil) // slow, not failed
	s := b.StatsAt(now.Add(2 * time.Second))
	assert.Equal(t, 3<<31+2, s.Calls)
	assert.Equal(t, 0, s.Failures)
	assert.Equal(t, 3<<31, s.SlowCalls)
	assert.Equal(t, BreakerClosed, s.State, "no failures, and not every call slow")
}
