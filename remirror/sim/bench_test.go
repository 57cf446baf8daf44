package sim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRun simulates 24 hours of a region at the sizes the issue names
// and reports simulated events per second of wall time. The naive runs cost
// what their storm costs: every search message is an event, and at 1,000,000
// volumes the storm sends about 266 million of them (one run takes most of
// a minute on two cores).
func BenchmarkRun(b *testing.B) {
	for _, c := range []struct {
		volumes int
		mode    Mode
	}{{100_000, Guarded}, {100_000, Naive}, {1_000_000, Guarded}, {1_000_000, Naive}} {
		b.Run(fmt.Sprintf("%s-%dk", c.mode, c.volumes/1000), func(b *testing.B) {
			cfg := DefaultConfig().Scaled(c.volumes)
			cfg.Duration = 24 * time.Hour
			b.ReportAllocs()
			var events int64
			start := time.Now()
			for b.Loop() {
				r, err := Run(cfg, c.mode)
				if err != nil {
					b.Fatal(err)
				}
				events += r.Events
			}
			b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
		})
	}
}
