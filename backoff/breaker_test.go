package backoff

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustBreaker(t testing.TB, cfg BreakerConfig) *Breaker {
	t.Helper()
	b, err := NewBreaker(cfg)
	require.NoError(t, err)
	return b
}

// trip fails calls at now until the breaker opens.
func trip(t testing.TB, b *Breaker, now time.Time) {
	t.Helper()
	for b.StateAt(now) == BreakerClosed {
		tk, err := b.AllowAt(now)
		require.NoError(t, err)
		b.RecordAt(now, tk, errDependency)
	}
	require.Equal(t, BreakerOpen, b.StateAt(now))
}

func TestBreakerConfigValidation(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name  string
		cfg   BreakerConfig
		field string // every field named must appear in the error
	}{
		{"window kind", BreakerConfig{Window: 7}, "Window 7"},
		{"negative window calls", BreakerConfig{WindowCalls: -1}, "WindowCalls -1"},
		{"huge window", BreakerConfig{WindowCalls: MaxBreakerWindowCalls + 1}, "WindowCalls 100001"},
		{"negative duration", BreakerConfig{Window: TimeWindow, WindowDuration: -time.Second}, "WindowDuration -1s"},
		{"buckets", BreakerConfig{Buckets: MaxBreakerBuckets + 1}, "Buckets 1001"},
		{"bucket under a nanosecond", BreakerConfig{Window: TimeWindow, WindowDuration: 5, Buckets: 10}, "WindowDuration 5ns"},
		{"min calls above window", BreakerConfig{WindowCalls: 10, MinCalls: 11}, "MinCalls 11"},
		{"negative min calls", BreakerConfig{MinCalls: -3}, "MinCalls -3"},
		{"NaN failure rate", BreakerConfig{FailureRate: nan}, "FailureRate NaN"},
		{"failure rate above 1", BreakerConfig{FailureRate: 50}, "FailureRate 50"},
		{"negative failure rate", BreakerConfig{FailureRate: -0.5}, "FailureRate -0.5"},
		{"infinite slow rate", BreakerConfig{SlowRate: math.Inf(1)}, "SlowRate +Inf"},
		{"negative slow call", BreakerConfig{SlowCallDuration: -1}, "SlowCallDuration -1ns"},
		{"negative open wait", BreakerConfig{OpenWait: -time.Second}, "OpenWait -1s"},
		{"probes", BreakerConfig{Probes: MaxBreakerProbes + 1}, "Probes 1001"},
		{"negative probes", BreakerConfig{Probes: -1}, "Probes -1"},
		{"negative probe timeout", BreakerConfig{ProbeTimeout: -time.Minute}, "ProbeTimeout -1m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := NewBreaker(c.cfg)
			assert.Nil(t, b)
			require.ErrorIs(t, err, ErrInvalidBreaker)
			assert.Contains(t, err.Error(), c.field)
		})
	}
	// Every bad field is named at once.
	_, err := NewBreaker(BreakerConfig{FailureRate: nan, SlowRate: 2, OpenWait: -1, Probes: -1})
	require.ErrorIs(t, err, ErrInvalidBreaker)
	for _, f := range []string{"FailureRate", "SlowRate", "OpenWait", "Probes"} {
		assert.Contains(t, err.Error(), f)
	}
	_, err = NewBreakers(BreakersConfig[string]{MaxKeys: -1, Breaker: BreakerConfig{FailureRate: 2}})
	require.ErrorIs(t, err, ErrInvalidBreaker)
	assert.Contains(t, err.Error(), "MaxKeys -1")
	assert.Contains(t, err.Error(), "FailureRate 2")
}

func TestBreakerZeroConfigDefaults(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{})
	c := b.cfg
	assert.Equal(t, CountWindow, c.Window)
	assert.Equal(t, DefaultBreakerWindowCalls, c.WindowCalls)
	assert.Equal(t, DefaultBreakerMinCalls, c.MinCalls)
	assert.Equal(t, DefaultBreakerFailureRate, c.FailureRate)
	assert.Equal(t, DefaultBreakerOpenWait, c.OpenWait)
	assert.Equal(t, DefaultBreakerProbes, c.Probes)
	assert.Equal(t, DefaultBreakerProbeTimeout, c.ProbeTimeout)
	// A window smaller than the default MinCalls lowers it.
	assert.Equal(t, 5, mustBreaker(t, BreakerConfig{WindowCalls: 5}).cfg.MinCalls)
}

func TestBreakerOpenErrorSaysWhy(t *testing.T) {
	now := time.Unix(1000, 0)
	b := mustBreaker(t, BreakerConfig{Name: "db", WindowCalls: 20, MinCalls: 10, OpenWait: 5 * time.Second})
	for i := range 10 {
		tk, err := b.AllowAt(now)
		require.NoError(t, err)
		var res error
		if i%5 != 0 {
			res = errDependency
		}
		b.RecordAt(now, tk, res)
	}
	_, err := b.AllowAt(now.Add(800 * time.Millisecond))
	require.ErrorIs(t, err, ErrBreakerOpen)
	var oe *OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, 4200*time.Millisecond, oe.RetryAfter())
	assert.InDelta(t, 0.8, oe.FailureRate(), 1e-9)
	assert.Zero(t, oe.SlowRate())
	assert.Zero(t, (&OpenError{}).FailureRate())
	assert.Equal(t, `backoff: circuit breaker "db" open: 8 of 10 calls failed (80%), next probe in 4.2s`, err.Error())
	var ra RetryAfterError
	require.ErrorAs(t, err, &ra)
	s := b.StatsAt(now.Add(time.Second))
	assert.Equal(t, BreakerOpen, s.State)
	assert.Equal(t, now.Add(5*time.Second), s.NextProbe)
	assert.Equal(t, now, s.Since)
	assert.Equal(t, int64(1), s.Refused)
	assert.InDelta(t, 0.8, s.FailureRate, 1e-9)
}

func TestBreakerSlowCallsOpen(t *testing.T) {
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{WindowCalls: 4, MinCalls: 4, SlowCallDuration: time.Second, SlowRate: 0.5})
	for i := range 4 {
		tk, err := b.AllowAt(now)
		require.NoError(t, err)
		d := 10 * time.Millisecond
		if i >= 2 {
			d = time.Second // exactly the threshold counts as slow
		}
		b.RecordAt(now.Add(d), tk, nil)
	}
	assert.Equal(t, BreakerOpen, b.StateAt(now.Add(time.Second)))
	_, err := b.AllowAt(now.Add(time.Second))
	assert.ErrorContains(t, err, "0 of 4 calls failed (0%), 2 slow (50%)")
}

func TestBreakerHookInOrderOutsideLock(t *testing.T) {
	var (
		mu     sync.Mutex
		events []BreakerEvent
		b      *Breaker
	)
	b = mustBreaker(t, BreakerConfig{
		Name: "peer", WindowCalls: 2, MinCalls: 2, OpenWait: time.Second, Probes: 1,
		OnStateChange: func(ev BreakerEvent) {
			// The breaker's lock is not held: its methods may be called.
			_ = b.StatsAt(ev.At)
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		},
	})
	now := time.Unix(0, 0)
	trip(t, b, now)
	tk, err := b.AllowAt(now.Add(time.Second))
	require.NoError(t, err)
	b.RecordAt(now.Add(time.Second), tk, nil)
	require.Len(t, events, 3)
	want := []struct{ from, to BreakerState }{
		{BreakerClosed, BreakerOpen}, {BreakerOpen, BreakerHalfOpen}, {BreakerHalfOpen, BreakerClosed},
	}
	for i, w := range want {
		assert.Equal(t, w.from, events[i].From)
		assert.Equal(t, w.to, events[i].To)
		assert.Equal(t, uint64(i+1), events[i].Generation)
		assert.Equal(t, "peer", events[i].Name)
	}
	assert.Equal(t, 2, events[0].Failures)
}

// A hook that panics does not stop later events from being delivered.
func TestBreakerHookPanicDoesNotWedge(t *testing.T) {
	var got []BreakerState
	b := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: time.Second, Probes: 1,
		OnStateChange: func(ev BreakerEvent) {
			got = append(got, ev.To)
			if ev.To == BreakerOpen && len(got) == 1 {
				panic("hook")
			}
		}})
	now := time.Unix(0, 0)
	tk, _ := b.AllowAt(now)
	assert.Panics(t, func() { b.RecordAt(now, tk, errDependency) })
	tk, err := b.AllowAt(now.Add(time.Second))
	require.NoError(t, err)
	b.RecordAt(now.Add(time.Second), tk, nil)
	assert.Equal(t, []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerClosed}, got)
}

func TestBreakerStaleResultsIgnored(t *testing.T) {
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{WindowCalls: 4, MinCalls: 2, OpenWait: time.Second, Probes: 1})
	old, err := b.AllowAt(now) // admitted while closed, answers much later
	require.NoError(t, err)
	trip(t, b, now)
	probe, err := b.AllowAt(now.Add(time.Second))
	require.NoError(t, err)
	// The old call's failure belongs to the closed period that is over: it
	// must not count against the probe.
	b.RecordAt(now.Add(time.Second), old, errDependency)
	assert.Equal(t, BreakerHalfOpen, b.StateAt(now.Add(time.Second)))
	b.RecordAt(now.Add(time.Second), probe, nil)
	assert.Equal(t, BreakerClosed, b.StateAt(now.Add(time.Second)))
	// Recording the probe again, or the old call, changes nothing in the
	// new closed period.
	b.RecordAt(now.Add(time.Second), probe, errDependency)
	b.RecordAt(now.Add(time.Second), old, errDependency)
	assert.Zero(t, b.StatsAt(now.Add(time.Second)).Calls)
	// Nor do the zero Ticket and another breaker's ticket.
	other := mustBreaker(t, BreakerConfig{})
	otk, _ := other.AllowAt(now)
	b.RecordAt(now, otk, errDependency)
	b.RecordAt(now, Ticket{}, errDependency)
	b.Record(Ticket{}, errDependency)
	b.Release(Ticket{})
	assert.Zero(t, b.StatsAt(now.Add(time.Second)).Calls)
}

// A probe whose result never comes back holds its slot for ProbeTimeout at
// most, and then counts as a failure; its late result is ignored.
func TestBreakerLostProbeTimesOut(t *testing.T) {
	now := time.Unix(0, 0)
	b := mustBreaker(t, BreakerConfig{WindowCalls: 2, MinCalls: 2, OpenWait: time.Second, Probes: 1, ProbeTimeout: 3 * time.Second})
	trip(t, b, now)
	lost, err := b.AllowAt(now.Add(time.Second))
	require.NoError(t, err)
	_, err = b.AllowAt(now.Add(3 * time.Second))
	var oe *OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, BreakerHalfOpen, oe.State)
	assert.Contains(t, err.Error(), "every probe slot is taken")
	// At the timeout the lost probe counts as a failure: open again.
	_, err = b.AllowAt(now.Add(4 * time.Second))
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, BreakerOpen, oe.State)
	assert.Equal(t, time.Second, oe.Wait)
	b.RecordAt(now.Add(4*time.Second), lost, nil) // too late
	assert.Equal(t, BreakerOpen, b.StateAt(now.Add(4*time.Second)))
	tk, err := b.AllowAt(now.Add(5 * time.Second))
	require.NoError(t, err, "the first call after the new wait is a probe")
	b.RecordAt(now.Add(5*time.Second), tk, nil)
	assert.Equal(t, BreakerClosed, b.StateAt(now.Add(5*time.Second)))
}

// The clock going backwards (a few calls in a row with earlier times) never
// keeps a breaker open longer than OpenWait on the clock it is given.
func TestBreakerClockBackwards(t *testing.T) {
	now := time.Unix(10_000, 0)
	b := mustBreaker(t, BreakerConfig{WindowCalls: 2, MinCalls: 2, OpenWait: time.Second, Probes: 1})
	trip(t, b, now)
	back := now.Add(-time.Hour)
	var oe *OpenError
	for i := range staleResets {
		_, err := b.AllowAt(back)
		require.ErrorAs(t, err, &oe)
		if i < staleResets-1 {
			assert.Equal(t, time.Hour+time.Second, oe.Wait, "a late caller, maybe")
		}
	}
	assert.Equal(t, time.Second, oe.Wait, "the clock went backwards")
	_, err := b.AllowAt(back.Add(time.Second))
	require.NoError(t, err)
}

func TestBreakerCall(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{WindowCalls: 2, MinCalls: 2})
	ctx := context.Background()
	require.ErrorIs(t, b.Call(nil, func(context.Context) error { return nil }), ErrInvalidArgument) //nolint:staticcheck // nil ctx on purpose
	require.ErrorIs(t, b.Call(ctx, nil), ErrInvalidArgument)

	// The caller's cancellation never counts.
	for range 5 {
		cctx, cancel := context.WithCancel(ctx)
		err := b.Call(cctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
		require.ErrorIs(t, err, context.Canceled)
	}
	assert.Zero(t, b.Stats().Calls)

	// A dependency's own failure counts, and so does running into the
	// caller's deadline (see the package documentation).
	synctest.Test(t, func(t *testing.T) {
		dctx, dcancel := context.WithTimeout(ctx, time.Millisecond)
		defer dcancel()
		require.ErrorIs(t, b.Call(dctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }), context.DeadlineExceeded)
	})
	require.Error(t, b.Call(ctx, func(context.Context) error { return errDependency }))
	require.ErrorIs(t, b.Call(ctx, func(context.Context) error { return nil }), ErrBreakerOpen)

	// A panicking op releases its probe slot.
	hb := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, Probes: 1, OpenWait: time.Nanosecond})
	require.Error(t, hb.Call(ctx, func(context.Context) error { return errDependency }))
	time.Sleep(time.Millisecond)
	assert.Panics(t, func() { _ = hb.Call(ctx, func(context.Context) error { panic("op") }) })
	require.NoError(t, hb.Call(ctx, func(context.Context) error { return nil }))
	assert.Equal(t, BreakerClosed, hb.State())
}

func TestBreakerClassify(t *testing.T) {
	notFound := errors.New("not found")
	b := mustBreaker(t, BreakerConfig{WindowCalls: 10, MinCalls: 1, FailureRate: 0.3, Classify: func(err error) Outcome {
		switch {
		case errors.Is(err, notFound):
			return OutcomeSuccess // the dependency answered
		case errors.Is(err, errNotCounted):
			return OutcomeIgnore
		}
		return Outcome(99) // unknown outcomes count as failures
	}})
	now := time.Unix(0, 0)
	for _, e := range []error{notFound, errNotCounted, nil} {
		tk, _ := b.AllowAt(now)
		b.RecordAt(now, tk, e)
	}
	s := b.StatsAt(now)
	assert.Equal(t, 2, s.Calls)
	assert.Equal(t, 0, s.Failures)
	tk, _ := b.AllowAt(now)
	b.RecordAt(now, tk, errDependency)
	assert.Equal(t, BreakerOpen, b.StateAt(now))
}

func TestBreakerStateStrings(t *testing.T) {
	assert.Equal(t, "closed", BreakerClosed.String())
	assert.Equal(t, "open", BreakerOpen.String())
	assert.Equal(t, "half-open", BreakerHalfOpen.String())
	assert.Equal(t, "BreakerState(9)", BreakerState(9).String())
}

// Retry waits out an open breaker's refusal instead of spinning, and the
// refused attempt spends no Budget token.
func TestRetryWaitsOutOpenBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: 5 * time.Second, Probes: 1})
		budget, err := NewBudget(BudgetConfig{NoFloor: true, Ratio: 1})
		require.NoError(t, err)
		for range 10 {
			budget.Deposit()
		}
		start := time.Now()
		r := &recorder{failures: 1, err: errDependency}
		var events []Event
		err = Retry(context.Background(), Policy{Base: 10 * time.Millisecond, Jitter: JitterNone}, r.op,
			WithBreaker(b), WithBudget(budget), OnAttempt(func(e Event) { events = append(events, e) }))
		require.NoError(t, err)
		// Attempt 1 fails and opens the breaker; attempt 2 (after 10ms) is
		// refused; attempt 3 is the probe, when the wait is over.
		require.Len(t, r.calls, 2)
		assert.Equal(t, 5*time.Second, r.calls[1].Sub(start))
		require.Len(t, events, 3)
		assert.ErrorIs(t, events[1].Err, ErrBreakerOpen)
		assert.Equal(t, 5*time.Second-10*time.Millisecond, events[1].Delay)
		assert.Equal(t, int64(1), budget.Stats().Retries, "one token for the retry that reached the dependency")
		assert.Equal(t, BreakerClosed, b.State())
	})
}

// A breaker refusal longer than MaxRetryAfter, or past the deadline, makes
// Retry give up at once without calling op.
func TestRetryBreakerRefusalBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: 10 * time.Minute})
		trip(t, b, time.Now())
		r := &recorder{}
		err := Retry(context.Background(), Policy{}, r.op, WithBreaker(b))
		require.ErrorIs(t, err, ErrRetryAfterTooLong)
		require.ErrorIs(t, err, ErrBreakerOpen)
		assert.Empty(t, r.calls)

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		err = Retry(ctx, Policy{}, r.op, WithBreaker(b), WithMaxRetryAfter(time.Hour))
		require.ErrorIs(t, err, ErrDeadline)
		assert.Equal(t, start, time.Now(), "gave up at once")
		assert.Empty(t, r.calls)

		// MaxAttempts bounds refused attempts too.
		err = Retry(context.Background(), Policy{MaxAttempts: 1}, r.op, WithBreaker(b))
		require.ErrorIs(t, err, ErrAttemptsExhausted)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 1, e.Attempts)
	})
}

// Retry never counts an attempt the caller cancelled.
func TestRetryBreakerCallerCancel(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1})
	ctx, cancel := context.WithCancel(context.Background())
	err := Retry(ctx, Policy{}, func(ctx context.Context) error {
		cancel()
		return ctx.Err()
	}, WithBreaker(b))
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, BreakerClosed, b.State())
	assert.Zero(t, b.Stats().Calls)
}

func TestRetryBreakerNoAllocs(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{})
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	allocs := testing.AllocsPerRun(100, func() {
		_ = Retry(ctx, Policy{}, op, WithBreaker(b))
	})
	assert.Zero(t, allocs)
	for _, cfg := range []BreakerConfig{{}, {Window: TimeWindow}, {SlowCallDuration: time.Second}, {Window: TimeWindow, SlowCallDuration: time.Second}} {
		b := mustBreaker(t, cfg)
		now := time.Unix(0, 0)
		allocs = testing.AllocsPerRun(100, func() {
			tk, _ := b.Allow()
			b.Record(tk, errDependency)
			tk, _ = b.Allow()
			b.Record(tk, nil)
			tk, _ = b.Allow()
			b.Record(tk, nil)
			tk, _ = b.AllowAt(now)
			b.RecordAt(now, tk, nil)
		})
		assert.Zero(t, allocs, "%+v", cfg)
	}
}

// A zero Breaker or Breakers works with the defaults; a nil one admits
// everything and never panics.
func TestBreakerZeroAndNil(t *testing.T) {
	now := time.Unix(0, 0)
	var zero Breaker
	trip(t, &zero, now)
	assert.Equal(t, DefaultBreakerMinCalls, zero.StatsAt(now).Calls)

	var nb *Breaker
	tk, err := nb.AllowAt(now)
	require.NoError(t, err)
	nb.RecordAt(now, tk, errDependency)
	nb.Record(tk, nil)
	nb.Release(tk)
	_, err = nb.Allow()
	require.NoError(t, err)
	assert.Equal(t, BreakerClosed, nb.State())
	assert.Equal(t, BreakerStats{}, nb.Stats())
	require.NoError(t, nb.Call(context.Background(), func(context.Context) error { return nil }))
	require.ErrorIs(t, nb.Call(context.Background(), nil), ErrInvalidArgument)
	require.NoError(t, Retry(context.Background(), Policy{}, func(context.Context) error { return nil }, WithBreaker(nb)))

	var zk Breakers[string]
	b, err := zk.Get("a")
	require.NoError(t, err)
	trip(t, b, now)
	_, err = zk.AllowAt(now, "a")
	require.ErrorIs(t, err, ErrBreakerOpen)
	assert.Equal(t, 1, zk.Len())

	var nk *Breakers[string]
	tk, err = nk.Allow("a")
	require.NoError(t, err)
	nk.Record(tk, errDependency)
	nk.RecordAt(now, tk, errDependency)
	nk.Release(tk)
	assert.Zero(t, nk.Len())
	assert.False(t, nk.Remove("a"))
	_, ok := nk.Lookup("a")
	assert.False(t, ok)
	require.NoError(t, nk.Call(context.Background(), "a", func(context.Context) error { return nil }))
}

// The shell reads the real clock: slow calls are timed, the wait is waited,
// a lost probe times out, and a TimeWindow forgets.
func TestBreakerShellTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBreaker(t, BreakerConfig{
			Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 10, MinCalls: 3,
			SlowCallDuration: 100 * time.Millisecond, SlowRate: 0.6,
			OpenWait: time.Second, Probes: 1, ProbeTimeout: 2 * time.Second,
		})
		ctx := context.Background()
		slowOp := func(context.Context) error { time.Sleep(150 * time.Millisecond); return nil }
		fastOp := func(context.Context) error { return nil }
		require.NoError(t, b.Call(ctx, fastOp))
		require.NoError(t, b.Call(ctx, slowOp))
		assert.Equal(t, BreakerClosed, b.State())
		require.NoError(t, b.Call(ctx, slowOp)) // 2 of 3 slow: 0.67 ≥ 0.6
		assert.Equal(t, BreakerOpen, b.State())

		time.Sleep(400 * time.Millisecond)
		err := b.Call(ctx, fastOp)
		var oe *OpenError
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, 600*time.Millisecond, oe.Wait)
		time.Sleep(oe.Wait)
		assert.Equal(t, BreakerHalfOpen, b.State(), "reported half-open by time, no timer needed")

		lost, err := b.Allow() // a probe whose result never comes back
		require.NoError(t, err)
		time.Sleep(2 * time.Second)
		_, err = b.Allow()
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, BreakerOpen, oe.State)
		b.Record(lost, nil)
		time.Sleep(time.Second)
		require.NoError(t, b.Call(ctx, fastOp))
		assert.Equal(t, BreakerClosed, b.State())

		// The time window forgets failures older than WindowDuration.
		require.Error(t, b.Call(ctx, func(context.Context) error { return errDependency }))
		require.Error(t, b.Call(ctx, func(context.Context) error { return errDependency }))
		assert.Equal(t, 2, b.Stats().Failures)
		time.Sleep(10 * time.Second)
		assert.Zero(t, b.Stats().Calls)
		require.Error(t, b.Call(ctx, func(context.Context) error { return errDependency }))
		assert.Equal(t, BreakerClosed, b.State(), "one failure in the window, MinCalls 3")
	})
}

// A call whose every attempt an open breaker refuses reached no dependency:
// it earns the Budget nothing, or a long open spell would fill the budget
// for a retry burst when the breaker closes.
func TestRetryRefusedCallDepositsNothing(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: time.Hour})
	trip(t, b, time.Now())
	budget, err := NewBudget(BudgetConfig{NoFloor: true, Ratio: 1})
	require.NoError(t, err)
	for range 5 {
		err := Retry(context.Background(), Policy{MaxAttempts: 1}, func(context.Context) error { return nil },
			WithBreaker(b), WithBudget(budget))
		require.ErrorIs(t, err, ErrBreakerOpen)
	}
	assert.Zero(t, budget.Tokens())
}

// A call whose context is already done is not made and not counted: its
// deadline error would say nothing about the dependency.
func TestBreakerCallDoneContext(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{WindowCalls: 1, MinCalls: 1})
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	called := false
	err := b.Call(ctx, func(ctx context.Context) error { called = true; return ctx.Err() })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, called)
	assert.Equal(t, BreakerClosed, b.State())
}

// The shell's Record of a TimeWindow counts, forgets and opens exactly as
// RecordAt(time.Now()) does, at every step including bucket edges, also
// when the origin came from RecordAt with a time without a monotonic
// reading. (synctest's clock has none: the monotonic path is checked by
// TestTimeWindowRecordNowMonotonic.)
func TestBreakerTimeWindowRecordMatchesRecordAt(t *testing.T) {
	for _, wallOrigin := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			cfg := BreakerConfig{Window: TimeWindow, WindowDuration: 4 * time.Second, Buckets: 4, MinCalls: 3, FailureRate: 0.5}
			shell, core := mustBreaker(t, cfg), mustBreaker(t, cfg)
			now := time.Now()
			if wallOrigin {
				tk, err := shell.AllowAt(now.Round(0))
				require.NoError(t, err)
				shell.RecordAt(now.Round(0), tk, nil)
				tk, err = core.AllowAt(now.Round(0))
				require.NoError(t, err)
				core.RecordAt(now.Round(0), tk, nil)
			}
			steps := []time.Duration{0, time.Second, 999 * time.Millisecond, time.Millisecond, 0, 3 * time.Second, time.Second, 5 * time.Second, 500 * time.Millisecond}
			for i := range 60 {
				time.Sleep(steps[i%len(steps)])
				var res error
				if i%3 == 0 || i > 40 {
					res = errDependency
				}
				ts, errS := shell.Allow()
				tc, errC := core.AllowAt(time.Now())
				require.Equal(t, errC == nil, errS == nil, "step %d", i)
				if errS == nil {
					shell.Record(ts, res)
					core.RecordAt(time.Now(), tc, res)
				}
				now := time.Now()
				ss, sc := shell.StatsAt(now), core.StatsAt(now)
				require.Equal(t, sc, ss, "step %d", i)
			}
			assert.Equal(t, BreakerOpen, shell.StateAt(time.Now()))
		})
	}
}

// timeWindow.recordNow takes the bucket from time.Since(origin) when the
// origin has a monotonic reading: the same bucket as record(time.Now()),
// for origins before and after now, and the same counts. Buckets of an
// hour, with now in the middle of one, keep the test off bucket edges.
func TestTimeWindowRecordNowMonotonic(t *testing.T) {
	for _, k := range []int64{0, 1, 3, 4, 7, 1000, -1, -5} {
		fast, slow := newTimeWindow(4*time.Hour, 4), newTimeWindow(4*time.Hour, 4)
		origin := time.Now().Add(-time.Duration(k)*time.Hour - 30*time.Minute)
		require.NotEqual(t, origin, origin.Round(0))
		fast.start(origin)
		slow.start(origin.Round(0)) // the same instant on the wall clock only
		for i := range 5 {
			c1, f1, s1, ok1 := fast.recordNow(i%2 == 0, false)
			c2, f2, s2, ok2 := slow.record(time.Now(), i%2 == 0, false)
			require.Equal(t, []any{c2, f2, s2, ok2}, []any{c1, f1, s1, ok1}, "k %d, record %d", k, i)
			require.Equal(t, slow.head.Load(), fast.head.Load(), "k %d", k)
		}
	}
}

// The shell times a slow call with time.Since of its admission: a call
// that took exactly SlowCallDuration is slow, one a nanosecond shorter is
// not, in a CountWindow and a TimeWindow alike.
func TestBreakerShellSlowCallEdge(t *testing.T) {
	for _, w := range []WindowKind{CountWindow, TimeWindow} {
		synctest.Test(t, func(t *testing.T) {
			b := mustBreaker(t, BreakerConfig{Window: w, SlowCallDuration: time.Second, MinCalls: 4, WindowCalls: 10, SlowRate: 1})
			for i, d := range []time.Duration{time.Second, time.Second - 1, time.Second, 2 * time.Second} {
				tk, err := b.Allow()
				require.NoError(t, err)
				time.Sleep(d)
				b.Record(tk, nil)
				want := []int{1, 1, 2, 3}[i]
				if s := b.Stats(); s.State == BreakerClosed {
					assert.Equal(t, want, s.SlowCalls, "window %v, call %d", w, i)
				}
			}
			assert.Equal(t, BreakerClosed, b.State(), "3 of 4 slow is below SlowRate 1")
		})
	}
}
