package backoff

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
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

// Calls admitted by a breaker that a Breakers then forgets (closed, to make
// room) must not open it afterwards: an open breaker the set no longer
// holds is exactly what the bound promises never to have.
func TestBreakersForgottenBreakerCannotOpen(t *testing.T) {
	now := time.Unix(0, 0)
	var opened []string
	bs, err := NewBreakers(BreakersConfig[string]{MaxKeys: 1,
		Breaker:       BreakerConfig{WindowCalls: 2, MinCalls: 2},
		OnStateChange: func(key string, ev BreakerEvent) { opened = append(opened, key) },
	})
	require.NoError(t, err)
	var inFlight []Ticket
	for range 2 {
		tk, err := bs.AllowAt(now, "a")
		require.NoError(t, err)
		inFlight = append(inFlight, tk)
	}
	// "b" takes the only place; "a" is closed and forgotten (after its
	// second chance).
	_, err = bs.Get("b")
	require.NoError(t, err)
	_, held := bs.Lookup("a")
	require.False(t, held)
	for _, tk := range inFlight {
		bs.RecordAt(now, tk, errDependency)
	}
	assert.Empty(t, opened, "a forgotten breaker opened")
}

// A hook that causes a transition itself (here: asking the breaker after its
// wait) gets that event after it returns, in order, without deadlock.
func TestBreakerHookReentrant(t *testing.T) {
	now := time.Unix(0, 0)
	var (
		b   *Breaker
		got []BreakerState
	)
	b = mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: time.Second, Probes: 1,
		OnStateChange: func(ev BreakerEvent) {
			got = append(got, ev.To)
			if ev.To == BreakerOpen {
				_, err := b.AllowAt(ev.At.Add(time.Second)) // turns it half-open
				assert.NoError(t, err)
				assert.Len(t, got, 1, "the nested event waits for this hook to return")
			}
		}})
	tk, _ := b.AllowAt(now)
	b.RecordAt(now, tk, errDependency)
	assert.Equal(t, []BreakerState{BreakerOpen, BreakerHalfOpen}, got)
}

// Remove says the results of the forgotten breaker's calls are ignored.
func TestBreakersRemoveDetaches(t *testing.T) {
	now := time.Unix(0, 0)
	var events []BreakerEvent
	bs, err := NewBreakers(BreakersConfig[string]{
		Breaker:       BreakerConfig{WindowCalls: 1, MinCalls: 1},
		OnStateChange: func(key string, ev BreakerEvent) { events = append(events, ev) },
	})
	require.NoError(t, err)
	tk, err := bs.AllowAt(now, "a")
	require.NoError(t, err)
	require.True(t, bs.Remove("a"))
	bs.RecordAt(now, tk, errDependency)
	assert.Empty(t, events)
}

// Many callers arrive at the moment the wait ends: exactly Probes of them
// are admitted, the others are refused as half-open, whatever the
// interleaving.
func TestBreakerHalfOpenRace(t *testing.T) {
	for range 20 {
		now := time.Unix(0, 0)
		b := mustBreaker(t, BreakerConfig{Name: "n", WindowCalls: 1, MinCalls: 1, OpenWait: time.Second, Probes: 3})
		trip(t, b, now)
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			admitted atomic.Int32
			halfOpen atomic.Int32
		)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := b.AllowAt(now.Add(time.Second))
				var oe *OpenError
				switch {
				case err == nil:
					admitted.Add(1)
				case errors.As(err, &oe) && oe.State == BreakerHalfOpen && oe.Wait == 0:
					halfOpen.Add(1)
				default:
					t.Errorf("unexpected refusal %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		require.Equal(t, int32(3), admitted.Load())
		require.Equal(t, int32(47), halfOpen.Load())
		assert.Equal(t, int64(47), b.Stats().Refused)
	}
}

// A refusal of a keyed breaker names the key.
func TestBreakersRefusalNamesKey(t *testing.T) {
	now := time.Unix(0, 0)
	bs, err := NewBreakers(BreakersConfig[string]{Breaker: BreakerConfig{Name: "peers", WindowCalls: 1, MinCalls: 1}})
	require.NoError(t, err)
	b, err := bs.Get("node-17")
	require.NoError(t, err)
	trip(t, b, now)
	_, err = bs.AllowAt(now, "node-17")
	var oe *OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "node-17", oe.Key)
	assert.Equal(t, `backoff: circuit breaker "peers" for key node-17 open: 1 of 1 calls failed (100%), next probe in 10s`, err.Error())
}

// A call recorded late, with a time older than the whole window (its
// goroutine stalled between reading the clock and recording), must not wipe
// the window of the calls recorded since.
func TestBreakerTimeWindowLateRecord(t *testing.T) {
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{Window: TimeWindow, WindowDuration: time.Second, Buckets: 4, MinCalls: 20})
	late, err := b.AllowAt(now)
	require.NoError(t, err)
	now = now.Add(5 * time.Second)
	for range 10 {
		tk, _ := b.AllowAt(now)
		b.RecordAt(now, tk, errDependency)
	}
	b.RecordAt(now.Add(-5*time.Second), late, nil)
	assert.Equal(t, 10, b.StatsAt(now).Failures, "the late result wiped the window")

	// A clock that really went backwards is followed after a few results.
	back := now.Add(-time.Hour)
	for range 2 + 20 { // two results are taken for late ones

		tk, _ := b.AllowAt(back)
		b.RecordAt(back, tk, errDependency)
	}
	assert.Equal(t, BreakerOpen, b.StateAt(back))
}

// Asking for Stats, even at a time far ahead, changes nothing in the window.
func TestBreakerStatsDoNotMoveTheWindow(t *testing.T) {
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{Window: TimeWindow, WindowDuration: time.Second, Buckets: 4, MinCalls: 2, FailureRate: 1})
	tk, _ := b.AllowAt(now)
	b.RecordAt(now, tk, errDependency)
	assert.Zero(t, b.StatsAt(now.Add(time.Hour)).Calls, "nothing in the window an hour later")
	assert.Equal(t, 1, b.StatsAt(now).Calls)
	tk, _ = b.AllowAt(now)
	b.RecordAt(now, tk, errDependency)
	assert.Equal(t, BreakerOpen, b.StateAt(now), "the second failure counted")
}

// The largest window counts every one of its calls: it opens at exactly
// MinCalls failures, not before.
func TestBreakerLargestWindow(t *testing.T) {
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{WindowCalls: MaxBreakerWindowCalls, MinCalls: MaxBreakerWindowCalls, FailureRate: 1})
	for i := range MaxBreakerWindowCalls {
		require.Equal(t, BreakerClosed, b.StateAt(now), "after %d failures", i)
		tk, err := b.AllowAt(now)
		require.NoError(t, err)
		b.RecordAt(now, tk, errDependency)
	}
	assert.Equal(t, BreakerOpen, b.StateAt(now))
	_, err := b.AllowAt(now)
	assert.ErrorContains(t, err, "100000 of 100000 calls failed")
}

// A caller that read the clock before the breaker opened and asks late, with
// that old time, must not shorten the wait for everyone; only a clock that
// keeps reading earlier (really went backwards) moves the wait.
func TestBreakerLateAllowKeepsWait(t *testing.T) {
	now := time.Unix(100, 0)
	b := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: 10 * time.Second, Probes: 1})
	trip(t, b, now)
	_, err := b.AllowAt(now.Add(-2 * time.Second)) // read the clock 2s ago, asks now
	var oe *OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, 12*time.Second, oe.Wait, "the wait on the late caller's clock")
	_, err = b.AllowAt(now.Add(9 * time.Second))
	require.ErrorIs(t, err, ErrBreakerOpen, "the wait was shortened by a late caller")
	_, err = b.AllowAt(now.Add(10 * time.Second))
	require.NoError(t, err)

	// A clock that went backwards for good is followed after a few calls.
	b = mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: 10 * time.Second, Probes: 1})
	trip(t, b, now)
	back := now.Add(-time.Hour)
	for range staleResets {
		_, err = b.AllowAt(back)
		require.ErrorIs(t, err, ErrBreakerOpen)
	}
	_, err = b.AllowAt(back.Add(10 * time.Second))
	require.NoError(t, err, "open for more than OpenWait on the clock it is given")
}

// A key no map can find again — not comparable (a slice in an interface) or
// not equal to itself (a NaN, also inside an array or struct) — is refused
// with an error matching ErrInvalidArgument by every method that takes a
// key, never a panic, and never takes a place in the set: a NaN key would
// otherwise add a breaker on every call and could never be deleted.
func TestBreakersUnfindableKeys(t *testing.T) {
	now := time.Unix(0, 0)
	op := func(context.Context) error { return nil }
	type pair struct {
		A string
		F float64
	}
	check := func(t *testing.T, name string, f func() error) {
		t.Helper()
		var err error
		require.NotPanics(t, func() { err = f() }, name)
		require.ErrorIs(t, err, ErrInvalidArgument, name)
		assert.NotErrorIs(t, err, ErrTooManyBreakers, name)
	}
	t.Run("any", func(t *testing.T) {
		bs, err := NewBreakers(BreakersConfig[any]{MaxKeys: 2})
		require.NoError(t, err)
		for _, key := range []any{[]int{1}, map[string]int{}, func() {}, math.NaN(), [1]float64{math.NaN()}, pair{"a", math.NaN()}} {
			check(t, "Get", func() error { _, err := bs.Get(key); return err })
			check(t, "Allow", func() error { _, err := bs.Allow(key); return err })
			check(t, "AllowAt", func() error { _, err := bs.AllowAt(now, key); return err })
			check(t, "Call", func() error { return bs.Call(context.Background(), key, op) })
			require.NotPanics(t, func() {
				_, ok := bs.Lookup(key)
				assert.False(t, ok)
				assert.False(t, bs.Remove(key))
			})
			assert.Contains(t, fmt.Sprint(func() error { _, err := bs.Get(key); return err }()), "key")
		}
		assert.Zero(t, bs.Len())
		_, err = bs.Get("fine")
		require.NoError(t, err)
	})
	t.Run("float", func(t *testing.T) {
		var bs Breakers[float64] // the zero value checks its keys too
		for range 5 {
			check(t, "Get", func() error { _, err := bs.Get(math.NaN()); return err })
		}
		assert.Zero(t, bs.Len())
		_, err := bs.Get(math.Inf(1))
		require.NoError(t, err)
		assert.Equal(t, 1, bs.Len())
	})
	t.Run("struct", func(t *testing.T) {
		bs, err := NewBreakers(BreakersConfig[pair]{MaxKeys: 1})
		require.NoError(t, err)
		for range 5 {
			check(t, "Get", func() error { _, err := bs.Get(pair{"x", math.NaN()}); return err })
		}
		assert.Zero(t, bs.Len())
	})
}

// A TimeWindow with one-nanosecond buckets, fed times near both ends of
// time.Time's range: the bucket arithmetic must not overflow, so a window
// that jumped a whole window (either way) holds only what was recorded
// after the jump.
func TestBreakerTimeWindowEndsOfTime(t *testing.T) {
	for _, far := range []time.Duration{math.MinInt64, math.MaxInt64} {
		b := mustBreaker(t, BreakerConfig{Window: TimeWindow, WindowDuration: 4, Buckets: 4, MinCalls: 2, FailureRate: 1})
		origin := time.Unix(0, 0)
		tk, err := b.AllowAt(origin)
		require.NoError(t, err)
		b.RecordAt(origin, tk, nil)
		// Far away (now.Sub saturates), repeatedly, so that the window
		// believes the clock.
		then := origin.Add(far).Add(far)
		for range staleResets + 1 {
			tk, err := b.AllowAt(then)
			if err != nil {
				break
			}
			b.RecordAt(then, tk, errDependency)
		}
		s := b.StatsAt(then)
		assert.Equal(t, s.Calls, s.Failures, "far %v: calls from before the jump still counted", far)
		assert.Equal(t, BreakerOpen, b.StateAt(then), "far %v", far)
	}
}

// Call on a nil *Breaker follows the same rule as on a real one: a done
// context calls nothing.
func TestBreakerNilCallDoneContext(t *testing.T) {
	var nb *Breaker
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := nb.Call(ctx, func(context.Context) error { called = true; return nil })
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, called)
	var nk *Breakers[string]
	err = nk.Call(ctx, "a", func(context.Context) error { called = true; return nil })
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, called)
}
