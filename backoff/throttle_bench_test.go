package backoff

import (
	"context"
	"testing"
	"time"
)

// BenchmarkThrottleAllowAt is the hot path: one decision with a positive
// probability, which reads every bucket.
func BenchmarkThrottleAllowAt(b *testing.B) {
	th, _ := NewThrottle(ThrottleConfig{})
	now := time.Now()
	for range 100 {
		th.RecordAt(now, ThrottleRefused)
		th.RecordAt(now, ThrottleAccepted)
	}
	b.ReportAllocs()
	for b.Loop() {
		th.AllowAt(now, 0.99)
	}
}

// BenchmarkThrottleRequest is one admitted request: the decision and its
// recorded outcome.
func BenchmarkThrottleRequest(b *testing.B) {
	th, _ := NewThrottle(ThrottleConfig{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if th.AllowAt(now, 0.5) {
			th.RecordAt(now, ThrottleAccepted)
		}
	}
}

// BenchmarkThrottleRequestParallel is the same, on every core, with the
// real clock: contention on the current bucket's counters.
func BenchmarkThrottleRequestParallel(b *testing.B) {
	th, _ := NewThrottle(ThrottleConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if th.Allow() {
				th.Record(ThrottleAccepted)
			}
		}
	})
}

// BenchmarkRetryWithThrottle is Retry's cost when the first attempt
// succeeds, without and with a throttle.
func BenchmarkRetryWithThrottle(b *testing.B) {
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Retry(ctx, Policy{}, op)
		}
	})
	th, _ := NewThrottle(ThrottleConfig{})
	opt := WithThrottle(th)
	b.Run("throttle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Retry(ctx, Policy{}, op, opt)
		}
	})
}
