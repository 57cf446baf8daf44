package shed

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// lateCtx is a context whose deadline has passed but whose Err has not
// caught up yet: what Limiter.Wait sees when the deadline passes between
// its ctx.Err check and its reading of the deadline.
type lateCtx struct {
	context.Context
	deadline time.Time
}

func (c lateCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// TestLimiterWaitPastDeadline: a context whose deadline has passed is
// refused with ErrDeadline, whatever its Err says yet, and not with
// ErrRateLimited and a negative wait limit; the token goes back.
func TestLimiterWaitPastDeadline(t *testing.T) {
	for _, tokens := range []string{"token free", "token due later"} {
		t.Run(tokens, func(t *testing.T) {
			l, err := NewLimiter(LimiterConfig{Rate: 1, Burst: 1, MaxWait: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if tokens == "token due later" && !l.Allow() {
				t.Fatal("first Allow refused")
			}
			before, stats := l.Tokens(time.Now()), l.Stats()
			ctx := lateCtx{context.Background(), time.Now().Add(-time.Millisecond)}
			err = l.Wait(ctx)
			var r *Refusal
			if !errors.As(err, &r) || !errors.Is(err, ErrDeadline) || errors.Is(err, ErrRateLimited) {
				t.Fatalf("Wait with a passed deadline = %v, want ErrDeadline", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Wait with a passed deadline = %v, want it to match context.DeadlineExceeded", err)
			}
			if r.MaxWait < 0 || r.RetryIn < 0 {
				t.Errorf("refusal %+v has a negative bound or hint", r)
			}
			stats.Shed.Deadline++
			if s := l.Stats(); s != stats {
				t.Errorf("Stats = %+v, want %+v: one more Deadline refusal and nothing else", s, stats)
			}
			if after := l.Tokens(time.Now()); after < before {
				t.Errorf("tokens %v before, %v after: the refused call kept its token", before, after)
			}
		})
	}
}

// TestPartitionKeyStatsExact: a waiter's refusal is counted for its key
// when it is decided, under the lock, so that no snapshot of the key
// shows a call that has left the queue without an outcome, and no count
// lands on a key state that was forgotten meanwhile. Every call of key
// "a" waits (the only slot is held for key "h") and times out; an
// observer checks that the key's queued calls are all still waiting or
// refused.
func TestPartitionKeyStatsExact(t *testing.T) {
	p := newPartition(t, PartitionConfig[string]{Total: 1, PerKey: 1, MaxQueuePerKey: 8, MaxWait: time.Microsecond, MaxKeys: 2})
	if !p.TryAcquire("h") {
		t.Fatal("holder refused")
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 3000 {
				if err := p.Acquire(context.Background(), "a"); err == nil {
					t.Error("a call of key a was admitted while h holds the only slot")
					return
				}
			}
		})
	}
	var bad atomic.Value
	obs := make(chan struct{})
	go func() {
		defer close(obs)
		for !stop.Load() {
			s, ok := p.StatsFor("a")
			if ok && s.Queued > int64(s.Waiting)+s.Shed.Total()+s.Admitted {
				bad.Store(s)
				return
			}
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-obs
	if s := bad.Load(); s != nil {
		t.Fatalf("StatsFor(a) = %+v: a queued call had left the queue without being counted", s)
	}
	s, _ := p.StatsFor("a")
	if s.Queued+s.Shed.QueueFull != 6000 || s.Shed.Total() != 6000 || s.Waiting != 0 {
		t.Fatalf("StatsFor(a) after quiescence = %+v, want 6000 calls refused", s)
	}
}

// TestHooksMayCallBack: hooks run outside every lock, so a hook may call
// back into the primitive that called it (Stats, Pause, Resume, Release)
// without deadlocking, and the counts stay exact.
func TestHooksMayCallBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b *Bulkhead
		b = newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Second, OnEvent: func(e Event) {
			_ = b.Stats()
			if e.Kind == Queued {
				b.Pause() // refuses the waiter that is being told it queued
				b.Resume()
			}
		}})
		if err := b.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := b.Acquire(t.Context()); !errors.Is(err, ErrPaused) {
			t.Fatalf("waiter paused by the hook got %v, want ErrPaused", err)
		}
		b.Release()
		if s := b.Stats(); s.InFlight != 0 || s.Waiting != 0 || s.Admitted != 1 || s.Shed.Paused != 1 {
			t.Fatalf("Bulkhead Stats = %+v", s)
		}

		var p *Partition[string]
		p = newPartition(t, PartitionConfig[string]{Total: 1, MaxQueuePerKey: 1, MaxWait: time.Second, OnEvent: func(k string, e Event) {
			_, _ = p.StatsFor(k)
			if e.Kind == Queued {
				p.Release("h") // the holder lets go from the waiter's hook
			}
		}})
		if !p.TryAcquire("h") {
			t.Fatal("holder refused")
		}
		if err := p.Acquire(t.Context(), "a"); err != nil {
			t.Fatalf("waiter granted from its own hook got %v", err)
		}
		p.Release("a")
		if s := p.Stats(); s.InFlight != 0 || s.Waiting != 0 || s.Admitted != 2 {
			t.Fatalf("Partition Stats = %+v", s)
		}

		var q *Queue
		q = newQueue(t, QueueConfig{Workers: 1, MaxQueue: 1, MaxWait: time.Second, OnEvent: func(e Event) {
			_ = q.Stats()
			_ = q.Standing(e.Priority)
			if e.Kind == Queued {
				q.Release()
			}
		}})
		if !q.TryAcquire() {
			t.Fatal("holder refused")
		}
		if err := q.Acquire(t.Context(), Normal); err != nil {
			t.Fatalf("waiter granted from its own hook got %v", err)
		}
		q.Release()
		if s := q.Stats(); s.InFlight != 0 || s.Waiting != 0 || s.Admitted != 2 {
			t.Fatalf("Queue Stats = %+v", s)
		}
	})
}

// TestLimiterExtremeRates: rates at the ends of float64's range give
// refusals whose hints are never negative, and waits that neither
// overflow nor hang.
func TestLimiterExtremeRates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, rt := range []float64{math.SmallestNonzeroFloat64, 1e-308, 1e-12, 1e12, 1e308, math.MaxFloat64} {
			for _, burst := range []int{0, 1, math.MaxInt32} {
				l, err := NewLimiter(LimiterConfig{Rate: rt, Burst: burst, MaxWait: time.Duration(math.MaxInt64)})
				if err != nil {
					t.Fatal(err)
				}
				for range 3 {
					err := l.Wait(t.Context())
					var r *Refusal
					if errors.As(err, &r) && (r.RetryIn < 0 || r.MaxWait < 0 || r.RetryAfter() < 0) {
						t.Fatalf("rate %v burst %d: refusal %+v has a negative hint", rt, burst, r)
					}
					if err != nil && !errors.Is(err, ErrRateLimited) {
						t.Fatalf("rate %v burst %d: Wait = %v", rt, burst, err)
					}
				}
				k, err := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: rt, Burst: burst}, MaxKeys: 1})
				if err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					err := k.Allow("k")
					var r *Refusal
					if errors.As(err, &r) && (r.RetryIn < 0 || r.RetryAfter() < 0) {
						t.Fatalf("rate %v burst %d: keyed refusal %+v has a negative hint", rt, burst, r)
					}
					if i == 0 && err != nil {
						t.Fatalf("rate %v burst %d: first keyed Allow = %v", rt, burst, err)
					}
				}
			}
		}
		for _, rt := range []float64{0, -1, math.NaN(), math.Inf(1), math.Inf(-1)} {
			if _, err := NewLimiter(LimiterConfig{Rate: rt}); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewLimiter(Rate %v) = %v, want ErrInvalidConfig", rt, err)
			}
		}
	})
}

// TestReleaseTooMany: releasing more than was taken does nothing, and
// does not hand a phantom slot to a waiter.
func TestReleaseTooMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
		b.Release()
		if !b.TryAcquire() || b.TryAcquire() {
			t.Fatal("a spurious Release changed the bulkhead's capacity")
		}
		res := make(chan error, 1)
		go func() { res <- b.Acquire(t.Context()) }()
		synctest.Wait()
		b.Release() // hands the slot to the waiter
		if err := <-res; err != nil {
			t.Fatal(err)
		}
		b.Release()
		b.Release() // one too many
		if s := b.Stats(); s.InFlight != 0 || s.Waiting != 0 {
			t.Fatalf("Bulkhead Stats = %+v", s)
		}
		if !b.TryAcquire() || b.TryAcquire() {
			t.Fatal("a spurious Release changed the bulkhead's capacity")
		}

		p := newPartition(t, PartitionConfig[string]{Total: 2, PerKey: 1, MaxQueuePerKey: 1, MaxWait: time.Hour})
		p.Release("a")
		if !p.TryAcquire("a") {
			t.Fatal("refused")
		}
		p.Release("b") // not a's slot
		if p.TryAcquire("a") {
			t.Fatal("Release of another key freed a's slot")
		}
		p.Release("a")
		p.Release("a")
		if s := p.Stats(); s.InFlight != 0 {
			t.Fatalf("Partition Stats = %+v", s)
		}

		q := newQueue(t, QueueConfig{Workers: 1, MaxWait: time.Hour})
		q.Release()
		if !q.TryAcquire() || q.TryAcquire() {
			t.Fatal("a spurious Release changed the queue's capacity")
		}
		q.Release()
		q.Release()
		if s := q.Stats(); s.InFlight != 0 {
			t.Fatalf("Queue Stats = %+v", s)
		}
	})
}

// TestHookPanicHoldsNothing: a hook that panics panics the call it was
// telling about, and the call then holds nothing: the slot it was
// admitted to is released (its caller never learns that it holds it, and
// Do never gets to release it), and the place in the queue it had just
// joined is given up, counted as a cancellation, so that no ghost waiter
// takes a later slot. Each call is counted once.
func TestHookPanicHoldsNothing(t *testing.T) {
	var panicOn atomic.Int32 // an EventKind, or zero
	hook := func(e Event) {
		if EventKind(panicOn.Load()) == e.Kind {
			panic("hook")
		}
	}
	mk := map[string]func(t *testing.T) raceTarget{
		"Bulkhead": func(t *testing.T) raceTarget {
			return bulkheadRT{newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour, OnEvent: hook})}
		},
		"Partition": func(t *testing.T) raceTarget {
			return partitionRT{newPartition(t, PartitionConfig[int]{Total: 1, MaxQueuePerKey: 1, MaxWait: time.Hour, MaxKeys: 1,
				OnEvent: func(_ int, e Event) { hook(e) }})}
		},
		"Queue": func(t *testing.T) raceTarget {
			return queueRT{newQueue(t, QueueConfig{Workers: 1, MaxQueue: 1, MaxWait: time.Hour, OnEvent: hook})}
		},
	}
	for name, mk := range mk {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := mk(t)
				calls := int64(0)
				mustPanic := func(what string, f func()) {
					t.Helper()
					calls++
					defer func() {
						if recover() == nil {
							t.Fatalf("%s: the hook's panic did not reach the caller", what)
						}
					}()
					f()
				}
				check := func(what string) {
					t.Helper()
					defer panicOn.Store(panicOn.Swap(0))
					s := l.stats()
					if s.InFlight != 0 || s.Waiting != 0 || s.Admitted+s.Shed.Total() != calls {
						t.Fatalf("after %s: %+v, want nothing in flight or waiting and %d calls counted once each", what, s, calls)
					}
					if err := l.idle([]int{0}); err != nil {
						t.Fatalf("after %s: %v", what, err)
					}
					calls++ // idle's TryAcquire
				}

				panicOn.Store(int32(Admitted))
				mustPanic("Acquire", func() { _ = l.acquire(t.Context(), 0) })
				check("Acquire admitted")
				mustPanic("TryAcquire", func() { l.try(0) })
				check("TryAcquire admitted")
				ran := false
				mustPanic("Do", func() { _ = l.do(t.Context(), 0, func(context.Context) error { ran = true; return nil }) })
				if ran {
					t.Fatal("Do ran fn after the hook panicked")
				}
				check("Do admitted")

				// A waiter told it queued panics; the holder's slot must not
				// go to the ghost.
				panicOn.Store(0)
				if !l.try(0) {
					t.Fatal("holder refused")
				}
				calls++
				panicOn.Store(int32(Queued))
				mustPanic("queued Acquire", func() { _ = l.acquire(t.Context(), 0) })
				panicOn.Store(0)
				l.release(0)
				check("queued Acquire")

				// A waiter granted a slot panics as it is told so.
				if !l.try(0) {
					t.Fatal("holder refused")
				}
				calls++
				done := make(chan bool)
				go func() {
					defer func() { done <- recover() != nil }()
					_ = l.acquire(t.Context(), 0)
				}()
				synctest.Wait()
				calls++
				panicOn.Store(int32(Admitted))
				l.release(0)
				if !<-done {
					t.Fatal("granted waiter: the hook's panic did not reach the caller")
				}
				panicOn.Store(0)
				check("granted waiter")
			})
		})
	}
}
