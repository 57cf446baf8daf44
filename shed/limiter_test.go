package shed

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewLimiterValidation(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   LimiterConfig
		wants []string
	}{
		{"zero value", LimiterConfig{}, []string{"Rate 0 must be a positive finite number"}},
		{"NaN", LimiterConfig{Rate: math.NaN()}, []string{"Rate NaN"}},
		{"Inf", LimiterConfig{Rate: math.Inf(1)}, []string{"Rate +Inf"}},
		{"negatives", LimiterConfig{Rate: -1, Burst: -1, MaxWait: -1}, []string{"Rate -1", "Burst -1", "MaxWait -1ns"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLimiter(tt.cfg)
			assert.Nil(t, l)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
			k, err := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: tt.cfg, MaxKeys: -1})
			assert.Nil(t, k)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), "MaxKeys -1")
		})
	}
}

func TestLimiterAllowAt(t *testing.T) {
	l, err := NewLimiter(LimiterConfig{Rate: 10, Burst: 2})
	require.NoError(t, err)
	t0 := time.Date(2025, 10, 20, 2, 25, 0, 0, time.UTC)
	assert.True(t, l.AllowAt(t0))
	assert.True(t, l.AllowAt(t0))
	assert.False(t, l.AllowAt(t0), "burst spent")
	assert.False(t, l.AllowAt(t0.Add(99*time.Millisecond)))
	assert.True(t, l.AllowAt(t0.Add(100*time.Millisecond)), "one token per 100ms")
	assert.InDelta(t, 2.0, l.Tokens(t0.Add(time.Hour)), 1e-9)
	s := l.Stats()
	assert.Equal(t, int64(3), s.Admitted)
	assert.Equal(t, int64(2), s.Shed.RateLimited)
	assert.Zero(t, testing.AllocsPerRun(100, func() { l.AllowAt(t0) }))
}

func TestLimiterDefaultBurst(t *testing.T) {
	l, err := NewLimiter(LimiterConfig{Rate: 0.5})
	require.NoError(t, err)
	now := time.Now()
	assert.True(t, l.AllowAt(now), "burst is at least one")
	assert.False(t, l.AllowAt(now))
	l, err = NewLimiter(LimiterConfig{Rate: 2.5})
	require.NoError(t, err)
	assert.InDelta(t, 3.0, l.Tokens(now), 1e-9, "burst ⌈rate⌉")
}

func TestLimiterWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := NewLimiter(LimiterConfig{Rate: 10, Burst: 1, MaxWait: 250 * time.Millisecond})
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, l.Wait(t.Context()))
		require.NoError(t, l.Wait(t.Context()))
		require.NoError(t, l.Wait(t.Context()))
		assert.Equal(t, 200*time.Millisecond, time.Since(start), "paced at the rate")

		// Tokens are reserved ahead: three more waiters would need 100, 200,
		// 300ms; the third is beyond MaxWait and refused at once.
		errs := make(chan error, 3)
		for range 3 {
			go func() { errs <- l.Wait(t.Context()) }()
			synctest.Wait()
		}
		err = <-errs
		assert.ErrorIs(t, err, ErrRateLimited, "refused without waiting")
		assert.EqualError(t, err, "shed: rate limited (next token in 300ms, wait limit 250ms; 10/s, burst 1)")
		var r *Refusal
		require.ErrorAs(t, err, &r)
		assert.Equal(t, 300*time.Millisecond, r.RetryAfter(), "the refusal says when to come back")
		assert.NoError(t, <-errs)
		assert.NoError(t, <-errs)

		// A deadline shorter than the wait is refused at once too.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, l.Wait(ctx), ErrRateLimited)

		// Cancelled mid-wait: the token is given back.
		ctx2, cancel2 := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- l.Wait(ctx2) }()
		synctest.Wait()
		cancel2()
		assert.ErrorIs(t, <-done, context.Canceled)
		time.Sleep(100 * time.Millisecond)
		assert.True(t, l.Allow(), "the cancelled reservation was returned")
	})
}

func TestKeyedLimiter(t *testing.T) {
	k, err := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: 1, Burst: 1}, MaxKeys: 2})
	require.NoError(t, err)
	t0 := time.Unix(1_700_000_000, 0)
	assert.NoError(t, k.AllowAt(t0, "tenant-a"))
	err = k.AllowAt(t0, "tenant-a")
	assert.ErrorIs(t, err, ErrRateLimited)
	assert.Equal(t, `shed: rate limited (next token in 1s; 1/s, burst 1) for key "tenant-a"`, err.Error())
	var r *Refusal
	require.ErrorAs(t, err, &r)
	assert.Equal(t, time.Second, r.RetryAfter())
	assert.NoError(t, k.AllowAt(t0, "tenant-b"), "keys are independent")

	// At the bound, a new key may only replace a key whose bucket has
	// refilled (it is then the same as a new one).
	err = k.AllowAt(t0.Add(500*time.Millisecond), "tenant-c")
	assert.ErrorIs(t, err, ErrTooManyKeys)
	assert.NoError(t, k.AllowAt(t0.Add(time.Second), "tenant-c"), "tenant-a refilled and was forgotten")
	assert.Equal(t, 2, k.Keys())

	// Forgetting loses nothing: tenant-a comes back with a full bucket,
	// exactly as if it had been kept.
	assert.NoError(t, k.AllowAt(t0.Add(3*time.Second), "tenant-a"))
	s := k.Stats()
	assert.Equal(t, int64(4), s.Admitted)
	assert.Equal(t, ShedCounts{RateLimited: 1, TooManyKeys: 1}, s.Shed)
}

func TestLimiterHook(t *testing.T) {
	var events []Event
	l, err := NewLimiter(LimiterConfig{Rate: 10, Burst: 1, MaxWait: 150 * time.Millisecond,
		OnEvent: func(e Event) { events = append(events, e) }})
	require.NoError(t, err)
	t0 := time.Unix(1_700_000_000, 0)
	assert.True(t, l.AllowAt(t0))
	assert.False(t, l.AllowAt(t0))
	assert.Equal(t, []Event{{Kind: Admitted}, {Kind: Refused, Reason: ErrRateLimited}}, events)

	synctest.Test(t, func(t *testing.T) {
		events = nil
		l, err := NewLimiter(LimiterConfig{Rate: 10, Burst: 1, MaxWait: 150 * time.Millisecond,
			OnEvent: func(e Event) { events = append(events, e) }})
		require.NoError(t, err)
		require.NoError(t, l.Wait(t.Context())) // at once
		require.NoError(t, l.Wait(t.Context())) // after 100ms
		short, cancelShort := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancelShort()
		assert.ErrorIs(t, l.Wait(short), ErrRateLimited, "the next token is 100ms away")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.ErrorIs(t, l.Wait(ctx), context.Canceled)
		assert.Equal(t, []Event{
			{Kind: Admitted},
			{Kind: Queued},
			{Kind: Admitted, Waited: 100 * time.Millisecond},
			{Kind: Refused, Reason: ErrRateLimited},
			{Kind: Refused, Reason: context.Canceled},
		}, events)
		s := l.Stats()
		assert.Equal(t, int64(2), s.Admitted)
		assert.Equal(t, int64(1), s.Queued)
		assert.Equal(t, ShedCounts{RateLimited: 1, Cancelled: 1}, s.Shed)
	})
}

func TestKeyedLimiterStatsForAndHook(t *testing.T) {
	var events []Event
	k, err := NewKeyedLimiter[int](KeyedLimiterConfig{
		LimiterConfig: LimiterConfig{Rate: 2, Burst: 2, OnEvent: func(e Event) { events = append(events, e) }},
		MaxKeys:       1,
	})
	require.NoError(t, err)
	t0 := time.Unix(1_700_000_000, 0)
	_, ok := k.StatsFor(7)
	assert.False(t, ok, "not tracked yet")
	require.NoError(t, k.AllowAt(t0, 7))
	require.NoError(t, k.AllowAt(t0, 7))
	err = k.AllowAt(t0, 7)
	assert.ErrorIs(t, err, ErrRateLimited)
	assert.ErrorIs(t, k.AllowAt(t0, 8), ErrTooManyKeys, "7 has not refilled")

	s, ok := k.StatsFor(7)
	require.True(t, ok)
	assert.Equal(t, Stats{Admitted: 2, Shed: ShedCounts{RateLimited: 1}}, s)
	_, ok = k.StatsFor(8)
	assert.False(t, ok, "a key refused at the bound is not tracked")
	assert.Equal(t, []Event{
		{Kind: Admitted, Key: "7"},
		{Kind: Admitted, Key: "7"},
		{Kind: Refused, Reason: ErrRateLimited, Key: "7"},
		{Kind: Refused, Reason: ErrTooManyKeys, Key: "8"},
	}, events)

	// Once 7 has refilled it is forgotten for 8, with its counters; the
	// totals keep everything.
	require.NoError(t, k.AllowAt(t0.Add(time.Second), 8))
	_, ok = k.StatsFor(7)
	assert.False(t, ok)
	s, ok = k.StatsFor(8)
	require.True(t, ok)
	assert.Equal(t, Stats{Admitted: 1}, s)
	assert.Equal(t, Stats{Admitted: 3, Shed: ShedCounts{RateLimited: 1, TooManyKeys: 1}}, k.Stats())
}

// TestKeyedLimiterRetryIn: a refusal's RetryIn is when the key's next
// token is due: asking again then is admitted, a microsecond earlier is
// not. (x/time/rate counts tokens in floating point, so the exact
// nanosecond can be a little earlier than RetryIn, never later.)
func TestKeyedLimiterRetryIn(t *testing.T) {
	k, err := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: 3, Burst: 2}})
	require.NoError(t, err)
	now := time.Unix(1_700_000_000, 0)
	for i := range 50 {
		err := k.AllowAt(now, "k")
		if err == nil {
			continue
		}
		var r *Refusal
		require.ErrorAs(t, err, &r, "round %d", i)
		require.Positive(t, r.RetryIn)
		require.ErrorIs(t, k.AllowAt(now.Add(r.RetryIn-time.Microsecond), "k"), ErrRateLimited, "round %d: too early", i)
		now = now.Add(r.RetryIn)
		require.NoError(t, k.AllowAt(now, "k"), "round %d: due after %v", i, r.RetryIn)
	}
}
