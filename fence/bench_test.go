package fence

import (
	"context"
	"sync/atomic"
	"testing"
)

// Guard: the admission path a resource runs on every write.

func BenchmarkGuardAdmit(b *testing.B) {
	b.Run("same-token", func(b *testing.B) {
		g := NewGuard(GuardConfig{Initial: 7})
		b.ReportAllocs()
		for b.Loop() {
			if g.Admit(7) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("advancing", func(b *testing.B) {
		var g Guard
		var tok Token
		b.ReportAllocs()
		for b.Loop() {
			tok++
			if g.Admit(tok) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("stale-allow", func(b *testing.B) {
		g := NewGuard(GuardConfig{Initial: 9})
		b.ReportAllocs()
		for b.Loop() {
			if g.Allow(3) {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("with-counters", func(b *testing.B) {
		var c Counters
		g := NewGuard(GuardConfig{Initial: 7, OnEvent: c.Observe})
		b.ReportAllocs()
		for b.Loop() {
			_ = g.Admit(7)
		}
	})
}

func BenchmarkGuardAdmitParallel(b *testing.B) {
	b.Run("same-token", func(b *testing.B) {
		g := NewGuard(GuardConfig{Initial: 7})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if g.Admit(7) != nil {
					b.Error("refused")
					return
				}
			}
		})
	})
	// The worst case: every goroutine offers a new, higher token on every
	// call, so the guard's word is written on most admissions and the
	// goroutine that falls behind is refused until it catches up.
	b.Run("advancing", func(b *testing.B) {
		var g Guard
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var tok Token
			for pb.Next() {
				tok++
				g.Allow(tok)
			}
		})
	})
}

// Register: the in-memory fenced value.

func BenchmarkRegisterLoad(b *testing.B) {
	var r Register[string]
	_ = r.WriteIfNewer("plan", 1)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = r.Load()
	}
}

func BenchmarkRegisterCompareAndSwap(b *testing.B) {
	var r Register[int]
	var tok Token
	b.ReportAllocs()
	for b.Loop() {
		if r.CompareAndSwap(tok, 1, tok+1) != nil {
			b.Fatal("refused")
		}
		tok++
	}
}

func BenchmarkRegisterWriteIfNewer(b *testing.B) {
	b.Run("accepted", func(b *testing.B) {
		var r Register[int]
		var tok Token
		b.ReportAllocs()
		for b.Loop() {
			tok++
			_ = r.WriteIfNewer(1, tok)
		}
	})
}

// BenchmarkRegisterCompareAndSwapParallel: all goroutines run
// read-compare-and-swap loops on one register, the worst case.
func BenchmarkRegisterCompareAndSwapParallel(b *testing.B) {
	var r Register[int]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for {
				_, tok := r.Load()
				if r.CompareAndSwap(tok, 1, tok+1) == nil {
					break
				}
			}
		}
	})
}

// Memory: the default Store.

func BenchmarkMemoryLoad(b *testing.B) {
	ctx := context.Background()
	m := &Memory{}
	_ = m.CompareAndSwap(ctx, "k", 0, []byte("a small plan"), 1)
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = m.Load(ctx, "k")
	}
}

func BenchmarkMemoryCompareAndSwap(b *testing.B) {
	ctx := context.Background()
	m := &Memory{}
	value := []byte("a small plan")
	var tok Token
	b.ReportAllocs()
	for b.Loop() {
		if m.CompareAndSwap(ctx, "k", tok, value, tok+1) != nil {
			b.Fatal("refused")
		}
		tok++
	}
}

// BenchmarkMemoryCompareAndSwapParallel: each goroutine updates its own key
// (the store's lock is shared, the keys are not).
func BenchmarkMemoryCompareAndSwapParallel(b *testing.B) {
	ctx := context.Background()
	m := &Memory{}
	value := []byte("a small plan")
	var ids atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := "k" + Token(ids.Add(1)).String()
		var tok Token
		for pb.Next() {
			if m.CompareAndSwap(ctx, key, tok, value, tok+1) != nil {
				b.Error("refused")
				return
			}
			tok++
		}
	})
}

func BenchmarkMemoryWriteIfNewerStale(b *testing.B) {
	ctx := context.Background()
	m := &Memory{}
	_ = m.CompareAndSwap(ctx, "k", 0, []byte("new"), 10)
	value := []byte("old")
	b.ReportAllocs()
	for b.Loop() {
		_ = m.WriteIfNewer(ctx, "k", value, 3)
	}
}
