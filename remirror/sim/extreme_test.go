package sim

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// Extreme but valid (or plainly refused) configurations: delays and fault
// times up to MaxInt64, authority rates near zero and huge, a tiny Fill.
// Run either refuses with ErrInvalidConfig or returns a result (cut short
// at MaxEvents with ErrEventLimit, for the storm of nanoseconds); it never
// panics, hangs or lets simulated time go backwards.
func TestRunExtremeConfig(t *testing.T) {
	small := DefaultConfig()
	small.Zones, small.NodesPerZone, small.VolumesPerZone = 2, 8, 60
	small.Duration = 2 * time.Hour
	small.FaultStart, small.FaultDuration = 10*time.Minute, 30*time.Minute
	small.IsolatedFraction = 0.5
	small.MaxEvents = 300_000
	const maxD = time.Duration(math.MaxInt64)
	for name, edit := range map[string]func(*Config){
		"latency":         func(c *Config) { c.Latency = maxD },
		"copy time":       func(c *Config) { c.CopyTime = maxD },
		"restart":         func(c *Config) { c.RestartAfter = maxD; c.CrashPerClose = 1 },
		"fault start":     func(c *Config) { c.FaultStart = maxD },
		"fault duration":  func(c *Config) { c.FaultDuration = maxD },
		"fault both":      func(c *Config) { c.FaultStart, c.FaultDuration = maxD, maxD },
		"slow authority":  func(c *Config) { c.AuthorityRate = 1e-300 },
		"fast authority":  func(c *Config) { c.AuthorityRate = 1e300 },
		"tiny fill":       func(c *Config) { c.Fill = 5e-324 },
		"rare churn":      func(c *Config) { c.ChurnPerHour = 1e-300 },
		"wild churn":      func(c *Config) { c.ChurnPerHour = 1e300 },
		"duration at end": func(c *Config) { c.Duration = 30 * 24 * time.Hour; c.Latency = maxD / 2 },
		"nanosecond storm": func(c *Config) {
			*c = nanosecondStorm()
			c.MaxEvents = small.MaxEvents
		},
		"nanosecond run": func(c *Config) { c.Duration = 1 },
		"sub-minute run": func(c *Config) { c.Duration = time.Minute - 1 },
	} {
		for _, m := range []Mode{Naive, Guarded} {
			cfg := small
			edit(&cfg)
			r, err := Run(cfg, m)
			if errors.Is(err, ErrEventLimit) && r != nil && r.EventLimited && r.Events == cfg.MaxEvents {
				err = nil
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("%s, %v: %v, want a result or ErrInvalidConfig", name, m, err)
				}
				continue
			}
			for i, min := range r.Region {
				if min.Minute != i+1 || min.Free < 0 || min.Free > 1 || math.IsNaN(min.Free) {
					t.Errorf("%s, %v: minute %d: %+v", name, m, i, min)
					break
				}
			}
		}
	}
}

// nanosecondStorm is the naive storm with every delay at a nanosecond:
// search, crash and restart cycle every few nanoseconds, and an hour of
// it is more events than any machine simulates.
func nanosecondStorm() Config {
	cfg := DefaultConfig()
	cfg.Seed, cfg.Zones, cfg.NodesPerZone, cfg.VolumesPerZone = 830, 1, 7, 24
	cfg.Fill, cfg.CrashPerClose, cfg.CrashThreshold, cfg.ChurnPerHour = 1e-9, 0.5, 0, MaxChurnPerHour
	cfg.Latency, cfg.RestartAfter, cfg.CopyTime = 1, 1, 1
	cfg.Duration = time.Hour
	return cfg
}

// A storm that cycles every nanosecond stops at Config.MaxEvents, says so
// with ErrEventLimit and Result.EventLimited, and returns the timeline it
// simulated; it never runs on unbounded.
func TestRunStopsAtMaxEvents(t *testing.T) {
	cfg := nanosecondStorm()
	cfg.MaxEvents = 200_000
	r, err := Run(cfg, Naive)
	if !errors.Is(err, ErrEventLimit) || r == nil || !r.EventLimited || r.Events != cfg.MaxEvents {
		t.Fatalf("Run(nanosecond storm, MaxEvents %d) = %+v, %v; want ErrEventLimit after exactly %d events", cfg.MaxEvents, r, err, cfg.MaxEvents)
	}
	for _, want := range []string{"200000 events", "of 1h0m0s", "MaxEvents 200000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if r.HealthyAfter != -1 || r.MaxZeroLive != 0 {
		t.Errorf("cut-short run: HealthyAfter %v, MaxZeroLive %d", r.HealthyAfter, r.MaxZeroLive)
	}
	for i, m := range r.Region {
		if m.Minute != i+1 {
			t.Fatalf("minute %d: %+v", i, m)
		}
	}
	// A run that needs exactly MaxEvents events is not cut short.
	cfg = DefaultConfig()
	cfg.Zones, cfg.NodesPerZone, cfg.VolumesPerZone, cfg.Duration = 1, 8, 60, time.Hour
	full, err := Run(cfg, Guarded)
	if err != nil || full.EventLimited {
		t.Fatalf("%+v, %v", full, err)
	}
	cfg.MaxEvents = full.Events
	if r, err := Run(cfg, Guarded); err != nil || r.EventLimited || r.Events != full.Events {
		t.Fatalf("MaxEvents %d = the events the run needs: %+v, %v", cfg.MaxEvents, r, err)
	}
	cfg.MaxEvents--
	if r, err := Run(cfg, Guarded); !errors.Is(err, ErrEventLimit) || !r.EventLimited || r.Events != cfg.MaxEvents {
		t.Fatalf("MaxEvents %d, one short: %+v, %v", cfg.MaxEvents, r, err)
	}
}
