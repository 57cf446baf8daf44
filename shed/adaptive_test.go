package shed

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestAdaptiveConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  AdaptiveConfig
		want string // a fragment of the error; empty means valid
	}{
		{"zero", AdaptiveConfig{}, ""},
		{"bounds", AdaptiveConfig{MinLimit: 2, MaxLimit: 8, InitialLimit: 4}, ""},
		{"negative min", AdaptiveConfig{MinLimit: -1}, "MinLimit -1"},
		{"negative max", AdaptiveConfig{MaxLimit: -1}, "MaxLimit -1"},
		{"huge max", AdaptiveConfig{MaxLimit: 1<<24 + 1}, "MaxLimit 16777217"},
		{"min above max", AdaptiveConfig{MinLimit: 9, MaxLimit: 8}, "MinLimit 9 exceeds MaxLimit 8"},
		{"min above default max", AdaptiveConfig{MinLimit: 2000}, "MinLimit 2000 exceeds MaxLimit 1000"},
		{"initial below min", AdaptiveConfig{MinLimit: 4, InitialLimit: 2}, "InitialLimit 2"},
		{"initial above max", AdaptiveConfig{MaxLimit: 4, InitialLimit: 5}, "InitialLimit 5"},
		{"negative initial", AdaptiveConfig{InitialLimit: -3}, "InitialLimit -3"},
		{"negative samples", AdaptiveConfig{WindowSamples: -1}, "WindowSamples -1"},
		{"negative window", AdaptiveConfig{Window: -time.Second}, "Window -1s"},
		{"long window", AdaptiveConfig{Window: 2 * time.Hour}, "Window 2h0m0s"},
		{"NaN tolerance", AdaptiveConfig{Tolerance: math.NaN()}, "Tolerance NaN"},
		{"low tolerance", AdaptiveConfig{Tolerance: 0.5}, "Tolerance 0.5"},
		{"infinite tolerance", AdaptiveConfig{Tolerance: math.Inf(1)}, "Tolerance +Inf"},
		{"NaN smoothing", AdaptiveConfig{Smoothing: math.NaN()}, "Smoothing NaN"},
		{"negative smoothing", AdaptiveConfig{Smoothing: -0.1}, "Smoothing -0.1"},
		{"smoothing above 1", AdaptiveConfig{Smoothing: 1.5}, "Smoothing 1.5"},
		{"NaN backoff", AdaptiveConfig{Backoff: math.NaN()}, "Backoff NaN"},
		{"backoff 1", AdaptiveConfig{Backoff: 1}, "Backoff 1"},
		{"negative backoff", AdaptiveConfig{Backoff: -0.5}, "Backoff -0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAdaptiveLimit(tc.cfg)
			if tc.want == "" {
				require.NoError(t, err)
				assert.GreaterOrEqual(t, a.Limit(), 1)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Nil(t, a)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Every bad field is reported at once.
	_, err := NewAdaptiveLimit(AdaptiveConfig{MinLimit: -1, Smoothing: math.NaN(), Backoff: 2})
	require.ErrorIs(t, err, ErrInvalidConfig)
	for _, f := range []string{"MinLimit", "Smoothing", "Backoff"} {
		assert.Contains(t, err.Error(), f)
	}
}

func TestAdaptiveDefaults(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{})
	require.NoError(t, err)
	assert.Equal(t, DefaultInitialLimit, a.Limit())
	a, err = NewAdaptiveLimit(AdaptiveConfig{MaxLimit: 4})
	require.NoError(t, err)
	assert.Equal(t, 4, a.Limit(), "the initial limit is clamped into the bounds")
}

// saturated drives a with a closed loop that keeps the limit in flight
// against a dependency of k servers with service time svc: the latency of
// a call is svc·max(1, L/k). It returns the limit after n samples.
func saturated(a *AdaptiveLimit, now *time.Time, n int, k float64, svc time.Duration) int {
	for range n {
		l := float64(a.Limit())
		rtt := time.Duration(float64(svc) * max(1, l/k))
		*now = now.Add(rtt / time.Duration(max(l, 1)))
		a.OnSample(*now, rtt, int(l), false)
	}
	return a.Limit()
}

func TestAdaptiveConverges(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{MaxLimit: 200, InitialLimit: 4})
	require.NoError(t, err)
	now := t0
	l := saturated(a, &now, 20000, 16, 10*time.Millisecond)
	// Above the 16 servers (it grows until calls queue), within the
	// tolerance and the √L headroom: 1.5·16 + √L ≈ 29.
	assert.GreaterOrEqual(t, l, 16)
	assert.LessOrEqual(t, l, 32)

	// The dependency loses three quarters of its servers: the limit
	// follows it down.
	l = saturated(a, &now, 20000, 4, 10*time.Millisecond)
	assert.GreaterOrEqual(t, l, 4)
	assert.LessOrEqual(t, l, 10)
	// And back up when they return.
	l = saturated(a, &now, 20000, 16, 10*time.Millisecond)
	assert.GreaterOrEqual(t, l, 16)
}

// A long overload must not teach the limit that the congested latency is
// normal: the baseline does not drift up while the limit is in use.
func TestAdaptiveBaselineDoesNotDrift(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{MaxLimit: 500, InitialLimit: 8})
	require.NoError(t, err)
	now := t0
	saturated(a, &now, 5000, 8, 10*time.Millisecond)
	base := a.Stats().Baseline
	// An hour of saturation.
	saturated(a, &now, 500000, 8, 10*time.Millisecond)
	st := a.Stats()
	assert.LessOrEqual(t, st.Baseline, base, "the baseline rose under load")
	assert.LessOrEqual(t, st.Limit, 20, "the limit drifted up: %+v", st)
}

// A dependency that becomes slower for good, without queueing, is
// re-learned once the load falls below half the limit.
func TestAdaptiveRelearnsBaseline(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{MaxLimit: 100, InitialLimit: 10, WindowSamples: 10})
	require.NoError(t, err)
	now := t0
	for range 100 {
		now = now.Add(time.Millisecond)
		a.OnSample(now, 10*time.Millisecond, 2, false)
	}
	assert.Equal(t, 10*time.Millisecond, a.Stats().Baseline)
	for range 100 {
		now = now.Add(time.Millisecond)
		a.OnSample(now, 40*time.Millisecond, 2, false) // 2 of 10 in flight
	}
	assert.Equal(t, 40*time.Millisecond, a.Stats().Baseline)
	assert.GreaterOrEqual(t, a.Limit(), 5)
}

func TestAdaptiveBacksOffOnDrops(t *testing.T) {
	var changes []LimitChange
	a, err := NewAdaptiveLimit(AdaptiveConfig{InitialLimit: 100, WindowSamples: 4, OnLimit: func(c LimitChange) { changes = append(changes, c) }})
	require.NoError(t, err)
	now := t0
	for range 4 {
		now = now.Add(time.Millisecond)
		a.OnSample(now, time.Second, 100, true)
	}
	assert.Equal(t, 90, a.Limit())
	require.Len(t, changes, 1)
	assert.Equal(t, LimitChange{Old: 100, New: 90, Dropped: true}, changes[0])
	assert.Equal(t, int64(4), a.Stats().Drops)
}

func TestAdaptiveWindowDuration(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{InitialLimit: 10, WindowSamples: 1, Window: time.Second})
	require.NoError(t, err)
	for i := range 100 {
		a.OnSample(t0.Add(time.Duration(i)*time.Millisecond), time.Millisecond, 10, false)
	}
	assert.Equal(t, int64(0), a.Stats().Windows, "no window closes before Window has passed")
	a.OnSample(t0.Add(time.Second), time.Millisecond, 10, false)
	assert.Equal(t, int64(1), a.Stats().Windows)
}

// The limit stays within its bounds for every sequence of samples: any
// latency (zero, negative, the longest Duration), any in-flight count, any
// drops, and a clock that jumps back and forth.
func TestAdaptiveBoundsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		minL := rapid.IntRange(1, 50).Draw(t, "min")
		maxL := rapid.IntRange(minL, 200).Draw(t, "max")
		cfg := AdaptiveConfig{
			MinLimit:      minL,
			MaxLimit:      maxL,
			InitialLimit:  rapid.IntRange(minL, maxL).Draw(t, "initial"),
			WindowSamples: rapid.IntRange(1, 8).Draw(t, "samples"),
			Tolerance:     rapid.Float64Range(1, 10).Draw(t, "tolerance"),
			Smoothing:     rapid.Float64Range(0.01, 1).Draw(t, "smoothing"),
			Backoff:       rapid.Float64Range(0.01, 0.99).Draw(t, "backoff"),
		}
		var bad []LimitChange
		cfg.OnLimit = func(c LimitChange) {
			if c.New < minL || c.New > maxL || c.RTT < 0 || c.Baseline < 0 {
				bad = append(bad, c)
			}
		}
		a, err := NewAdaptiveLimit(cfg)
		require.NoError(t, err)
		rtts := rapid.SampledFrom([]time.Duration{0, -1, 1, time.Millisecond, time.Second, time.Hour, math.MaxInt64, math.MinInt64})
		now := t0
		n := rapid.IntRange(1, 300).Draw(t, "n")
		for range n {
			var rtt time.Duration
			if rapid.Bool().Draw(t, "edge") {
				rtt = rtts.Draw(t, "rtt")
			} else {
				rtt = time.Duration(rapid.Int64().Draw(t, "rtt"))
			}
			now = now.Add(time.Duration(rapid.Int64Range(-int64(time.Second), int64(time.Second)).Draw(t, "dt")))
			l := a.OnSample(now, rtt, rapid.IntRange(-1, 1<<30).Draw(t, "inflight"), rapid.Bool().Draw(t, "dropped"))
			if l < minL || l > maxL {
				t.Fatalf("limit %d outside [%d, %d]", l, minL, maxL)
			}
			st := a.Stats()
			if math.IsNaN(st.Estimate) || st.Estimate < float64(minL) || st.Estimate > float64(maxL) {
				t.Fatalf("estimate %v outside [%d, %d]", st.Estimate, minL, maxL)
			}
		}
		if len(bad) > 0 {
			t.Fatalf("bad limit changes: %+v", bad)
		}
	})
}

func TestAdaptiveAcquireRefusal(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{MinLimit: 2, MaxLimit: 2})
	require.NoError(t, err)
	require.NoError(t, a.Acquire())
	require.True(t, a.TryAcquire())
	assert.False(t, a.TryAcquire())
	err = a.Acquire()
	var r *Refusal
	require.ErrorAs(t, err, &r)
	assert.ErrorIs(t, err, ErrLimitReached)
	assert.ErrorIs(t, err, ErrShed)
	assert.Equal(t, 2, r.Current)
	assert.Equal(t, 2, r.Limit)
	assert.Equal(t, "shed: concurrency limit reached (2 in flight, limit 2)", err.Error())
	st := a.Stats()
	assert.Equal(t, int64(2), st.Refused)
	assert.Equal(t, 2, st.InFlight)

	// After a window the refusal carries the expected wait for a slot.
	a.ReleaseRTT(40*time.Millisecond, false)
	for range DefaultWindowSamples {
		a.OnSample(time.Now(), 40*time.Millisecond, 2, false)
	}
	require.True(t, a.TryAcquire())
	err = a.Acquire()
	require.ErrorAs(t, err, &r)
	assert.Equal(t, 20*time.Millisecond, r.RetryAfter(), "mean latency / calls in flight")
	assert.Contains(t, err.Error(), "a slot expected in 20ms")
}

// Releasing more than was acquired frees nothing: the count never goes
// negative, so the limit is never exceeded afterwards.
func TestAdaptiveReleaseWithoutAcquire(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{MinLimit: 1, MaxLimit: 1})
	require.NoError(t, err)
	a.Release()
	a.ReleaseRTT(time.Millisecond, false)
	require.True(t, a.TryAcquire())
	a.Release()
	a.Release() // double release
	require.True(t, a.TryAcquire())
	assert.False(t, a.TryAcquire(), "a double release let two calls in under a limit of one")
	assert.Equal(t, 1, a.Stats().InFlight)
}

func TestAdaptiveDo(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{WindowSamples: 1, InitialLimit: 10})
	require.NoError(t, err)
	require.NoError(t, a.Do(context.Background(), func(context.Context) error { return nil }))
	assert.Equal(t, int64(1), a.Stats().Samples)
	boom := errors.New("boom")
	assert.ErrorIs(t, a.Do(context.Background(), func(context.Context) error { return boom }), boom)
	assert.ErrorIs(t, a.Do(context.Background(), func(context.Context) error { return context.DeadlineExceeded }), context.DeadlineExceeded)
	st := a.Stats()
	assert.Equal(t, int64(3), st.Samples)
	assert.Equal(t, int64(1), st.Drops, "a timeout counts as a drop")
	assert.Equal(t, 9, st.Limit, "and backs the limit off")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = a.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	assert.Equal(t, int64(3), a.Stats().Samples, "a call its caller cancelled says nothing about the dependency")
	assert.Equal(t, 0, a.Stats().InFlight)

	// A panicking call releases its slot.
	assert.Panics(t, func() { _ = a.Do(context.Background(), func(context.Context) error { panic("x") }) })
	assert.Equal(t, 0, a.Stats().InFlight)
}

func TestAdaptiveNil(t *testing.T) {
	var a *AdaptiveLimit
	assert.Equal(t, 0, a.Limit())
	assert.False(t, a.TryAcquire())
	assert.ErrorIs(t, a.Acquire(), ErrInvalidArgument)
	assert.ErrorIs(t, a.Do(context.Background(), func(context.Context) error { return nil }), ErrInvalidArgument)
	assert.Equal(t, 0, a.OnSample(t0, time.Second, 1, false))
	a.Release()
	a.ReleaseRTT(time.Second, false)
	assert.Equal(t, AdaptiveStats{}, a.Stats())
	b, _ := NewAdaptiveLimit(AdaptiveConfig{})
	assert.ErrorIs(t, b.Do(nil, func(context.Context) error { return nil }), ErrInvalidArgument) //nolint:staticcheck // a nil context is the point
	assert.ErrorIs(t, b.Do(context.Background(), nil), ErrInvalidArgument)
}

func TestAdaptiveAllocs(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{WindowSamples: 2})
	require.NoError(t, err)
	now := t0
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		if a.TryAcquire() {
			a.ReleaseRTT(time.Millisecond, false)
		}
		a.OnSample(now, time.Millisecond, 3, false)
	})
	assert.Zero(t, allocs)
}
