package sim

import (
	"errors"
	"math"
	"testing"
	"time"
)

// Extreme but valid (or plainly refused) configurations: delays and fault
// times up to MaxInt64, authority rates near zero and huge, a tiny Fill.
// Run either refuses with ErrInvalidConfig or returns a result; it never
// panics, hangs or lets simulated time go backwards.
func TestRunExtremeConfig(t *testing.T) {
	small := DefaultConfig()
	small.Zones, small.NodesPerZone, small.VolumesPerZone = 2, 8, 60
	small.Duration = 2 * time.Hour
	small.FaultStart, small.FaultDuration = 10*time.Minute, 30*time.Minute
	small.IsolatedFraction = 0.5
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
	} {
		for _, m := range []Mode{Naive, Guarded} {
			cfg := small
			edit(&cfg)
			r, err := Run(cfg, m)
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
