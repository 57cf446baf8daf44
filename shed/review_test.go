package shed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"pgregory.net/rapid"
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

// TestQueueRaces races a Queue's own machinery — priorities (an unknown
// one included), eviction, CoDel and adaptive LIFO, declared costs and
// deadlines, cancels, Pause and Resume, slots freeing — on a millisecond
// grid of a synctest clock, with an observer sampling Stats on the grid.
// Every sample is within bounds; every call ends once, in success or a
// typed refusal; a call admitted with a declared cost had that cost
// before its deadline; afterwards the counters agree with the calls and
// the queue is idle and usable.
func TestQueueRaces(t *testing.T) {
	ms := func(rt *rapid.T, name string, lo, hi int) time.Duration {
		return time.Duration(rapid.IntRange(lo, hi).Draw(rt, name)) * time.Millisecond
	}
	type call struct {
		pri                Priority
		start, hold, cost  time.Duration
		cancelAt, deadline time.Duration
	}
	rapid.Check(t, func(rt *rapid.T) {
		cfg := QueueConfig{
			Workers:     rapid.IntRange(1, 2).Draw(rt, "workers"),
			MaxQueue:    rapid.IntRange(1, 3).Draw(rt, "maxQueue"),
			MaxWait:     ms(rt, "maxWait", 1, 8),
			Target:      ms(rt, "target", 1, 2),
			Interval:    ms(rt, "interval", 3, 5),
			DisableLIFO: rapid.Bool().Draw(rt, "fifo"),
		}
		calls := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) call {
			c := call{
				pri:   Priority(rapid.IntRange(0, 3).Draw(rt, "pri")),
				start: ms(rt, "start", 0, 6),
				hold:  ms(rt, "hold", 0, 4),
				cost:  ms(rt, "cost", 0, 3),
			}
			switch rapid.IntRange(0, 2).Draw(rt, "ctx") {
			case 1:
				c.cancelAt = ms(rt, "cancelAt", 0, 8)
			case 2:
				c.deadline = ms(rt, "deadline", 0, 8)
			}
			return c
		}), 1, 14).Draw(rt, "calls")
		type op struct {
			pause bool
			at    time.Duration
		}
		ops := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) op {
			return op{pause: rapid.Bool().Draw(rt, "pause"), at: ms(rt, "at", 0, 8)}
		}), 0, 4).Draw(rt, "ops")

		var broken string
		synctest.Test(t, func(t *testing.T) {
			var events eventCount
			cfg.OnEvent = events.count
			q, err := NewQueue(cfg)
			if err != nil {
				broken = err.Error()
				return
			}
			var admitted, refused atomic.Int64
			var bad atomic.Value
			fail := func(format string, args ...any) { bad.CompareAndSwap(nil, fmt.Sprintf(format, args...)) }
			var wg sync.WaitGroup
			stop := make(chan struct{})
			obs := make(chan struct{})
			go func() {
				defer close(obs)
				for {
					s := q.Stats()
					if s.InFlight < 0 || s.InFlight > cfg.Workers || s.Waiting < 0 || s.Waiting > cfg.MaxQueue {
						fail("sample %+v out of bounds (workers %d, queue %d)", s, cfg.Workers, cfg.MaxQueue)
					}
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			for _, o := range ops {
				wg.Go(func() {
					time.Sleep(o.at)
					if o.pause {
						q.Pause()
					} else {
						q.Resume()
					}
				})
			}
			for _, c := range calls {
				wg.Go(func() {
					time.Sleep(c.start)
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					var deadline time.Time
					if c.deadline > 0 {
						deadline = time.Now().Add(c.deadline)
						ctx, cancel = context.WithDeadline(ctx, deadline)
						defer cancel()
					}
					if c.cancelAt > 0 {
						wg.Go(func() { time.Sleep(c.cancelAt); cancel() })
					}
					err := q.Acquire(ctx, c.pri, WithCost(c.cost))
					if err != nil {
						refused.Add(1)
						if r := (*Refusal)(nil); !errors.As(err, &r) {
							fail("untyped error %v", err)
						}
						return
					}
					admitted.Add(1)
					if !deadline.IsZero() && !time.Now().Add(c.cost).Before(deadline) {
						fail("call admitted at %v with cost %v past its deadline %v", time.Now(), c.cost, deadline)
					}
					time.Sleep(c.hold)
					q.Release()
				})
			}
			wg.Wait()
			close(stop)
			<-obs
			q.Resume()
			synctest.Wait()
			if msg := bad.Load(); msg != nil {
				broken = msg.(string)
				return
			}
			s := q.Stats()
			if s.Waiting != 0 || s.InFlight != 0 || s.Admitted != admitted.Load() || s.Shed.Total() != refused.Load() {
				broken = fmt.Sprintf("after quiescence %+v; the calls saw %d admitted, %d refused", s, admitted.Load(), refused.Load())
				return
			}
			if a, r := events.admitted.Load(), events.refused.Load(); a != admitted.Load() || r != refused.Load() {
				broken = fmt.Sprintf("the hook saw %d admitted and %d refused, the calls saw %d and %d", a, r, admitted.Load(), refused.Load())
				return
			}
			for i := range cfg.Workers {
				if !q.TryAcquire() {
					broken = fmt.Sprintf("TryAcquire %d of %d refused on an idle queue", i+1, cfg.Workers)
					return
				}
			}
			for range cfg.Workers {
				q.Release()
			}
		})
		if broken != "" {
			rt.Fatal(broken)
		}
	})
}

// TestLimiterQueuedHookPanicGivesTokenBack: a Limiter's Wait whose hook
// panics as it is told the call queued gives its reserved token back, so
// the calls after it do not wait for a token nobody uses, and counts the
// call once, as a cancellation.
func TestLimiterQueuedHookPanicGivesTokenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var panicOn atomic.Int32
		l, err := NewLimiter(LimiterConfig{Rate: 1, Burst: 1, MaxWait: time.Hour, OnEvent: func(e Event) {
			if EventKind(panicOn.Load()) == e.Kind {
				panic("hook")
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if !l.Allow() {
			t.Fatal("first Allow refused")
		}
		before := l.Tokens(time.Now())
		panicOn.Store(int32(Queued))
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the hook's panic did not reach the caller")
				}
			}()
			_ = l.Wait(t.Context())
		}()
		panicOn.Store(0)
		if after := l.Tokens(time.Now()); after != before {
			t.Fatalf("tokens %v before the call, %v after: its reservation was kept", before, after)
		}
		if s := l.Stats(); s.Admitted != 1 || s.Queued != 1 || s.Shed.Total() != 1 || s.Shed.Cancelled != 1 {
			t.Fatalf("Stats = %+v, want the panicked call counted once, as a cancellation", s)
		}
	})
}

// TestCallTimeoutIgnoredHoldsTheSlot: Do never abandons a running call; a
// call that ignores the context CallTimeout bounds holds its slot until it
// returns, and Do returns its result.
func TestCallTimeoutIgnoredHoldsTheSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, CallTimeout: time.Millisecond})
		done := make(chan error)
		go func() {
			done <- b.Do(t.Context(), func(context.Context) error { time.Sleep(time.Second); return nil })
		}()
		time.Sleep(500 * time.Millisecond)
		if b.TryAcquire() {
			t.Fatal("a slot was free while a call that ignores CallTimeout still ran")
		}
		if err := <-done; err != nil {
			t.Fatalf("Do = %v, want the call's own nil", err)
		}
		if !b.TryAcquire() {
			t.Fatal("the slot was not released when the call returned")
		}
	})
}

// TestSchedulerTimeNeverGoesBackwards: a Scheduler given a time earlier
// than one it has seen (a caller's clock stepping back, or two callers of
// a shell that read the clock before they serialise, as Queue's do)
// decides exactly as if given the latest time it has seen, so no item
// waits a negative time or jumps the queue.
func TestSchedulerTimeNeverGoesBackwards(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := QueueConfig{
			Workers:  rapid.IntRange(1, 2).Draw(rt, "workers"),
			MaxQueue: rapid.IntRange(1, 4).Draw(rt, "maxQueue"),
			MaxWait:  time.Duration(rapid.IntRange(1, 12).Draw(rt, "maxWait")) * time.Millisecond,
			Target:   2 * time.Millisecond,
			Interval: 4 * time.Millisecond,
		}
		type drop struct {
			value  int
			reason error
			waited time.Duration
		}
		var raw, mono []drop
		var hookBad string
		mk := func(log *[]drop) *Scheduler[int] {
			c := cfg
			c.OnEvent = func(e Event) {
				if e.Waited < 0 && hookBad == "" {
					hookBad = fmt.Sprintf("event %v with Waited %v", e.Kind, e.Waited)
				}
			}
			s, err := NewScheduler(c, func(it Item[int], r Refusal) {
				*log = append(*log, drop{it.Value, r.Reason, r.Waited})
			})
			if err != nil {
				rt.Fatal(err)
			}
			return s
		}
		a, b := mk(&raw), mk(&mono)
		base := time.Unix(1000, 0)
		latest := base
		var ta, tb []Ticket
		for i := range 40 {
			now := base.Add(time.Duration(rapid.IntRange(0, 30).Draw(rt, "t")) * time.Millisecond)
			latest = laterOf(latest, now)
			var ra, rb string
			switch rapid.IntRange(0, 4).Draw(rt, "op") {
			case 0:
				it := Item[int]{Value: i, Priority: Priority(rapid.IntRange(0, 2).Draw(rt, "p"))}
				if rapid.Bool().Draw(rt, "deadline") {
					it.Deadline = base.Add(time.Duration(rapid.IntRange(0, 40).Draw(rt, "dl")) * time.Millisecond)
				}
				ka, xa := a.Push(now, it)
				kb, xb := b.Push(latest, it)
				ta, tb = append(ta, xa), append(tb, xb)
				ra, rb = ka.String(), kb.String()
			case 1:
				ia, oka := a.Done(now)
				ib, okb := b.Done(latest)
				ra, rb = fmt.Sprint(ia.Value, oka), fmt.Sprint(ib.Value, okb)
			case 2:
				if len(ta) == 0 {
					a.Advance(now)
					b.Advance(latest)
				} else {
					j := rapid.IntRange(0, len(ta)-1).Draw(rt, "ticket")
					wa, oka := a.Check(now, ta[j])
					wb, okb := b.Check(latest, tb[j])
					ra, rb = fmt.Sprint(wa, oka), fmt.Sprint(wb, okb)
				}
			case 3:
				if len(ta) == 0 {
					a.Advance(now)
					b.Advance(latest)
				} else {
					j := rapid.IntRange(0, len(ta)-1).Draw(rt, "ticket")
					ia, oka := a.Remove(now, ta[j], context.Canceled)
					ib, okb := b.Remove(latest, tb[j], context.Canceled)
					ra, rb = fmt.Sprint(ia.Value, oka), fmt.Sprint(ib.Value, okb)
				}
			case 4:
				a.Advance(now)
				b.Advance(latest)
			}
			if ra != rb {
				rt.Fatalf("step %d at %v (latest %v): %s, want %s as at the latest time", i, now.Sub(base), latest.Sub(base), ra, rb)
			}
			if fmt.Sprint(raw) != fmt.Sprint(mono) {
				rt.Fatalf("step %d at %v (latest %v): drops %v, want %v as at the latest time", i, now.Sub(base), latest.Sub(base), raw, mono)
			}
			if hookBad != "" {
				rt.Fatal(hookBad)
			}
		}
	})
}

// TestLimiterWaitTokenAtDeadline: a token due exactly at the context's
// deadline comes too late (the context is done at its deadline), so Wait
// refuses at once with ErrRateLimited instead of waiting for a race it
// may lose; a token due just before the deadline is waited for.
func TestLimiterWaitTokenAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for i := range 20 {
			l, err := NewLimiter(LimiterConfig{Rate: 1, Burst: 1, MaxWait: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if !l.Allow() {
				t.Fatal("first Allow refused")
			}
			start := time.Now()
			ctx, cancel := context.WithDeadline(t.Context(), start.Add(time.Second))
			err = l.Wait(ctx)
			cancel()
			if !errors.Is(err, ErrRateLimited) || time.Since(start) != 0 {
				t.Fatalf("round %d: token due at the deadline: Wait = %v after %v, want ErrRateLimited at once", i, err, time.Since(start))
			}
			ctx, cancel = context.WithDeadline(t.Context(), time.Now().Add(time.Second+time.Nanosecond))
			err = l.Wait(ctx)
			cancel()
			if err != nil {
				t.Fatalf("round %d: token due 1ns before the deadline: Wait = %v", i, err)
			}
		}
	})
}

// endedCtx reports context.Canceled once ended is set, without closing
// its Done channel.
type endedCtx struct {
	context.Context
	ended atomic.Bool
}

func (c *endedCtx) Err() error {
	if c.ended.Load() {
		return context.Canceled
	}
	return c.Context.Err()
}

// TestGrantedWaiterWithDoneContextPassesTheSlotOn: a waiter that wakes to
// find both its slot and its context's end never keeps the slot: it
// reports its context's error and the slot passes on, whichever of the two
// its select happens to pick.
func TestGrantedWaiterWithDoneContextPassesTheSlotOn(t *testing.T) {
	mk := map[string]func(t *testing.T) raceTarget{
		"Bulkhead": func(t *testing.T) raceTarget {
			return bulkheadRT{newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})}
		},
		"Partition": func(t *testing.T) raceTarget {
			return partitionRT{newPartition(t, PartitionConfig[int]{Total: 1, MaxQueuePerKey: 1, MaxWait: time.Hour})}
		},
		"Queue": func(t *testing.T) raceTarget {
			return queueRT{newQueue(t, QueueConfig{Workers: 1, MaxQueue: 1, MaxWait: time.Hour})}
		},
	}
	for name, mk := range mk {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				for i := range 64 {
					l := mk(t)
					if !l.try(0) {
						t.Fatal("holder refused")
					}
					// A context that is done before the grant, but whose
					// Done channel the waiter's select does not pick: as if
					// the select had picked the grant of the two.
					ctx := &endedCtx{Context: t.Context()}
					res := make(chan error, 1)
					go func() { res <- l.acquire(ctx, 0) }()
					synctest.Wait()
					ctx.ended.Store(true)
					l.release(0) // hands the slot to the waiter
					if err := <-res; !errors.Is(err, context.Canceled) {
						t.Fatalf("round %d: waiter got %v, want context.Canceled", i, err)
					}
					if s := l.stats(); s.InFlight != 0 || s.Waiting != 0 || s.Admitted != 1 || s.Shed.Cancelled != 1 {
						t.Fatalf("round %d: %+v, want the slot passed on and the waiter counted as cancelled", i, s)
					}
				}
			})
		})
	}
}

// TestPartitionAdmissionsCountedWhenDecided: a Partition counts an
// admission, at once or by a grant to a waiter, under its lock as it
// decides it, so that no snapshot shows a call in flight that it has not
// counted as admitted: InFlight never exceeds Admitted minus the releases
// already done, for the partition and for the key.
func TestPartitionAdmissionsCountedWhenDecided(t *testing.T) {
	p := newPartition(t, PartitionConfig[string]{Total: 1, PerKey: 1, MaxQueuePerKey: 8, MaxWait: time.Hour})
	var released atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 3000 {
				if err := p.Acquire(context.Background(), "a"); err != nil {
					t.Error(err)
					return
				}
				p.Release("a")
				released.Add(1)
			}
		})
	}
	var bad atomic.Value
	obs := make(chan struct{})
	go func() {
		defer close(obs)
		for !stop.Load() {
			r := released.Load()
			s, _ := p.StatsFor("a")
			all := p.Stats()
			if int64(s.InFlight) > s.Admitted-r || int64(all.InFlight) > all.Admitted-r {
				bad.Store(fmt.Sprintf("StatsFor(a) = %+v, Stats = %+v, %d released", s, all, r))
				return
			}
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-obs
	if msg := bad.Load(); msg != nil {
		t.Fatalf("a call in flight was not counted as admitted: %s", msg)
	}
	if s, _ := p.StatsFor("a"); s.Admitted != 6000 || s.InFlight != 0 || s.Waiting != 0 {
		t.Fatalf("StatsFor(a) after quiescence = %+v, want 6000 admitted", s)
	}
}
