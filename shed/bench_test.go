package shed

import (
	"context"
	"testing"
	"time"
)

func BenchmarkBulkhead(b *testing.B) {
	ctx := context.Background()
	b.Run("Acquire+Release", func(b *testing.B) {
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
		b.ReportAllocs()
		for b.Loop() {
			_ = bh.Acquire(ctx)
			bh.Release()
		}
	})
	b.Run("TryAcquire+Release", func(b *testing.B) {
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
		b.ReportAllocs()
		for b.Loop() {
			bh.TryAcquire()
			bh.Release()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1 << 20})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = bh.Acquire(ctx)
				bh.Release()
			}
		})
	})
	b.Run("refused", func(b *testing.B) {
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
		bh.TryAcquire()
		b.ReportAllocs()
		for b.Loop() {
			bh.TryAcquire()
		}
	})
}

func BenchmarkPartition(b *testing.B) {
	ctx := context.Background()
	keys := []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	b.Run("Acquire+Release", func(b *testing.B) {
		p, _ := NewPartition(PartitionConfig[string]{Total: 3, PerKey: 1})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i%3]
			i++
			_ = p.Acquire(ctx, k)
			p.Release(k)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		p, _ := NewPartition(PartitionConfig[string]{Total: 1 << 20, PerKey: 1 << 19})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				k := keys[i%3]
				i++
				_ = p.Acquire(ctx, k)
				p.Release(k)
			}
		})
	})
}

func BenchmarkLimiter(b *testing.B) {
	l, _ := NewLimiter(LimiterConfig{Rate: 1e9, Burst: 1 << 20})
	now := time.Now()
	b.Run("AllowAt", func(b *testing.B) {
		b.ReportAllocs()
		t := now
		for b.Loop() {
			t = t.Add(time.Nanosecond) // one token per nanosecond: always admitted
			l.AllowAt(t)
		}
	})
	k, _ := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: 1e9, Burst: 1 << 20}})
	b.Run("KeyedAllowAt", func(b *testing.B) {
		b.ReportAllocs()
		t := now
		for b.Loop() {
			t = t.Add(time.Nanosecond)
			_ = k.AllowAt(t, "tenant")
		}
	})
}

func BenchmarkAdaptiveLimit(b *testing.B) {
	b.Run("TryAcquire+ReleaseRTT", func(b *testing.B) {
		a, _ := NewAdaptiveLimit(AdaptiveConfig{})
		b.ReportAllocs()
		for b.Loop() {
			a.TryAcquire()
			a.ReleaseRTT(time.Millisecond, false)
		}
	})
	b.Run("OnSample", func(b *testing.B) {
		a, _ := NewAdaptiveLimit(AdaptiveConfig{})
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Microsecond)
			a.OnSample(now, time.Millisecond, 10, false)
		}
	})
	b.Run("Bulkhead", func(b *testing.B) {
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 64, Adaptive: &AdaptiveConfig{}})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			_ = bh.Acquire(ctx)
			bh.ReleaseRTT(time.Millisecond, false)
		}
	})
}
