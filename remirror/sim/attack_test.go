package sim

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Small regions with every knob drawn from its whole range, edges
// included: Run refuses with ErrInvalidConfig or returns a timeline in
// which no volume ever lost its data, every fraction is in [0, 1], and
// minutes count up from 1.
func TestPropertyRunDrawnConfigs(t *testing.T) {
	ran := 0
	defer func() { t.Logf("%d configurations ran", ran) }()
	rapid.Check(t, func(t *rapid.T) {
		cfg, mode := drawConfig(t)
		r, err := Run(cfg, mode)
		if err == nil {
			ran++
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("%+v: %v, want ErrInvalidConfig", cfg, err)
			}
			return
		}
		if r.MaxZeroLive != 0 {
			t.Fatalf("%+v: %d volumes lost their data", cfg, r.MaxZeroLive)
		}
		for i, m := range r.Region {
			if m.Minute != i+1 || !(m.Stuck >= 0 && m.Stuck <= 1) || !(m.Free >= 0 && m.Free <= 1) || m.ZeroLive != 0 || m.Searches < 0 || m.AuthorityCalls < 0 {
				t.Fatalf("%+v: minute %d: %+v", cfg, i, m)
			}
		}
	})
}

// A region too small for its reserve is refused with the numbers.
func TestRunVolumesDoNotFitSaysWhy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Zones, cfg.NodesPerZone, cfg.VolumesPerZone, cfg.Fill = 1, 4, 1, 0.9
	_, err := Run(cfg, Guarded)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"1 volumes", "4 nodes", "Fill 0.9", "0 replicas", "capacity 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// drawConfig draws a small region with every knob at or near its edges,
// mostly valid, and a mode. Times start at a second: with a latency and a
// restart of nanoseconds the naive storm cycles (search, crash, restart)
// every few nanoseconds, and an hour takes too many events to simulate.
func drawConfig(t *rapid.T) (Config, Mode) {
	dur := func(label string) time.Duration {
		if rapid.IntRange(0, 9).Draw(t, label+"Odd") == 0 {
			return rapid.SampledFrom([]time.Duration{0, -1, math.MinInt64}).Draw(t, label)
		}
		return rapid.SampledFrom([]time.Duration{time.Second, time.Minute, time.Hour, math.MaxInt64 / 2, math.MaxInt64}).Draw(t, label)
	}
	frac := func(label string) float64 {
		if rapid.IntRange(0, 9).Draw(t, label+"Odd") == 0 {
			return rapid.SampledFrom([]float64{math.NaN(), -1, math.Inf(1), 1.5}).Draw(t, label)
		}
		return rapid.SampledFrom([]float64{0, 5e-324, 0.01, 0.5, 0.9, 1}).Draw(t, label)
	}
	cfg := Config{
		Seed:             rapid.Uint64().Draw(t, "seed"),
		Zones:            rapid.IntRange(1, 2).Draw(t, "zones"),
		NodesPerZone:     rapid.IntRange(4, 10).Draw(t, "nodes"),
		VolumesPerZone:   rapid.IntRange(1, 30).Draw(t, "volumes"),
		Fill:             rapid.SampledFrom([]float64{1e-9, 0.01, 0.5, 0.9}).Draw(t, "fill"),
		Duration:         rapid.SampledFrom([]time.Duration{time.Minute, 20 * time.Minute, time.Hour}).Draw(t, "duration"),
		FaultStart:       dur("faultStart"),
		FaultDuration:    dur("faultDuration"),
		IsolatedFraction: frac("isolated"),
		Latency:          dur("latency"),
		CopyTime:         dur("copyTime"),
		AuthorityRate:    rapid.SampledFrom([]float64{1e-300, 0.01, 1, 1e6, 1e300}).Draw(t, "authorityRate"),
		CrashPerClose:    frac("crashPerClose"),
		CrashThreshold:   rapid.IntRange(0, 3).Draw(t, "crashThreshold"),
		RestartAfter:     dur("restartAfter"),
		ChurnPerHour:     rapid.SampledFrom([]float64{0, 1e-300, 1, 60, MaxChurnPerHour}).Draw(t, "churn"),
	}
	mode := rapid.SampledFrom([]Mode{Naive, Guarded}).Draw(t, "mode")
	return cfg, mode
}
