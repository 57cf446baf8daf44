package shed

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// A window bounded in time closes at MaxWindow with fewer than
// WindowSamples samples, whichever comes first.
func TestAdaptiveMaxWindow(t *testing.T) {
	a, err := NewAdaptiveLimit(AdaptiveConfig{InitialLimit: 4, MaxWindow: time.Second})
	require.NoError(t, err)
	for i := range 10 {
		a.OnSample(t0.Add(time.Duration(i)*100*time.Millisecond), time.Millisecond, 4, false)
	}
	assert.Equal(t, int64(0), a.Stats().Windows, "no window closes before MaxWindow or WindowSamples")
	a.OnSample(t0.Add(time.Second), time.Millisecond, 4, false)
	assert.Equal(t, int64(1), a.Stats().Windows, "the window closes at MaxWindow with 11 of 32 samples")
	// The count still closes a window before MaxWindow.
	for i := range 32 {
		a.OnSample(t0.Add(time.Second+time.Duration(i+1)*time.Millisecond), time.Millisecond, 4, false)
	}
	assert.Equal(t, int64(2), a.Stats().Windows)
}

// A limit at its floor of 1, whose one call takes 100ms, grows back within
// seconds with a MaxWindow of 300ms; with only the count of 32 samples, a
// window takes 3.2s.
func TestAdaptiveFloorRecoversWithMaxWindow(t *testing.T) {
	recover := func(maxWindow time.Duration) time.Duration {
		a, err := NewAdaptiveLimit(AdaptiveConfig{MaxLimit: 8, InitialLimit: 1, MaxWindow: maxWindow})
		require.NoError(t, err)
		now := t0
		for a.Limit() < 4 {
			now = now.Add(100 * time.Millisecond)
			a.OnSample(now, 100*time.Millisecond, a.Limit(), false)
			require.Less(t, now.Sub(t0), time.Hour)
		}
		return now.Sub(t0)
	}
	slow, fast := recover(0), recover(300*time.Millisecond)
	t.Logf("from 1 to 4: %v with 32-sample windows, %v with MaxWindow 300ms", slow, fast)
	assert.LessOrEqual(t, fast*5, slow*2, "a time-bounded window recovers at least 2.5x sooner")
}

func TestAdaptiveMaxWindowValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  AdaptiveConfig
		want string
	}{
		{AdaptiveConfig{MaxWindow: -time.Second}, "MaxWindow -1s is outside [0, 1h]"},
		{AdaptiveConfig{MaxWindow: 2 * time.Hour}, "MaxWindow 2h0m0s is outside [0, 1h]"},
		{AdaptiveConfig{Window: 2 * time.Second, MaxWindow: time.Second}, "MaxWindow 1s is below Window 2s"},
	} {
		_, err := NewAdaptiveLimit(tc.cfg)
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.Contains(t, err.Error(), tc.want)
	}
	_, err := NewAdaptiveLimit(AdaptiveConfig{Window: time.Second, MaxWindow: time.Second})
	assert.NoError(t, err)
}

// The limit stays within its bounds with windows bounded in time both ways
// and a clock that jumps by centuries, backwards and forwards.
func TestAdaptiveBoundsClockJumps(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		minL := rapid.IntRange(1, 20).Draw(t, "min")
		maxL := rapid.IntRange(minL, 100).Draw(t, "max")
		window := time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "window"))
		cfg := AdaptiveConfig{MinLimit: minL, MaxLimit: maxL, WindowSamples: rapid.IntRange(1, 8).Draw(t, "samples"),
			Window: window, MaxWindow: window + time.Duration(rapid.Int64Range(0, int64(time.Hour-window)).Draw(t, "extra"))}
		a, err := NewAdaptiveLimit(cfg)
		require.NoError(t, err)
		jumps := []time.Duration{0, time.Nanosecond, time.Second, time.Hour, 100 * 365 * 24 * time.Hour, math.MaxInt64, math.MinInt64, -100 * 365 * 24 * time.Hour}
		now := t0
		for range rapid.IntRange(1, 200).Draw(t, "n") {
			now = now.Add(rapid.SampledFrom(jumps).Draw(t, "dt"))
			if rapid.Bool().Draw(t, "zero time") {
				now = time.Time{}
			}
			rtt := rapid.SampledFrom([]time.Duration{0, -1, time.Millisecond, time.Hour, math.MaxInt64, math.MinInt64}).Draw(t, "rtt")
			l := a.OnSample(now, rtt, rapid.IntRange(0, 200).Draw(t, "inflight"), rapid.Bool().Draw(t, "dropped"))
			if l < minL || l > maxL {
				t.Fatalf("limit %d outside [%d, %d]", l, minL, maxL)
			}
		}
	})
}
