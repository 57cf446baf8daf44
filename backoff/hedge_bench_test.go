package backoff

import (
	"context"
	"testing"
	"time"
)

// BenchmarkHedgeOverhead is the cost a Hedger adds when the primary answers
// before the delay (the common case): a plain call, then DoHedged with a
// fixed and with a percentile delay.
func BenchmarkHedgeOverhead(b *testing.B) {
	ctx := context.Background()
	op := func(context.Context) (int, error) { return 1, nil }
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = op(ctx)
		}
	})
	for _, bc := range []struct {
		name string
		cfg  HedgeConfig
	}{
		{"fixed", HedgeConfig{Delay: time.Second}},
		{"percentile", HedgeConfig{Delay: time.Second, Percentile: 0.99}},
	} {
		h, _ := NewHedger(bc.cfg)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = DoHedged(ctx, h, op)
			}
		})
	}
}

// BenchmarkHedgeSketch is the latency tracking of one call: an observation
// and a quantile.
func BenchmarkHedgeSketch(b *testing.B) {
	h, _ := NewHedger(HedgeConfig{Percentile: 0.99})
	now := time.Now()
	for i := range 1000 {
		h.ObserveAt(now, time.Duration(i)*time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.ObserveAt(now, 5*time.Millisecond)
		h.DelayAt(now)
	}
}
