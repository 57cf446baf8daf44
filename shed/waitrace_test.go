package shed

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"
)

// TestPauseRacesCancel is the race of the review: one holder, one waiter,
// and the waiter's cancel and Pause from two goroutines at once. However
// the race goes, the waiter leaves the queue exactly once: after Resume and
// the holder's Release nothing waits or is in flight, the next TryAcquire
// succeeds, and (Partition, MaxKeys 1) the key is idle again, so another
// key may take its place.
func TestPauseRacesCancel(t *testing.T) {
	const rounds = 2000
	t.Run("Bulkhead", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			for i := range rounds {
				b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				if !b.TryAcquire() {
					t.Fatal("holder refused")
				}
				ctx, cancel := context.WithCancel(t.Context())
				res := make(chan error, 1)
				go func() { res <- b.Acquire(ctx) }()
				synctest.Wait() // queued
				var wg sync.WaitGroup
				// Stagger the two a little differently each round, so that
				// every interleaving comes up.
				wg.Go(func() { yieldN(i % 3); cancel() })
				wg.Go(func() { yieldN(i / 3 % 4); b.Pause() })
				wg.Wait()
				if err := <-res; !errors.Is(err, ErrPaused) && !errors.Is(err, context.Canceled) {
					t.Fatalf("round %d: waiter got %v, want ErrPaused or context.Canceled", i, err)
				}
				b.Resume()
				b.Release()
				if s := b.Stats(); s.Waiting != 0 || s.InFlight != 0 || s.Admitted != 1 || s.Shed.Total() != 1 {
					t.Fatalf("round %d: after quiescence %+v, want nothing waiting or in flight, 1 admitted, 1 refused", i, s)
				}
				if !b.TryAcquire() {
					t.Fatalf("round %d: TryAcquire refused on an idle bulkhead", i)
				}
				b.Release()
			}
		})
	})
	t.Run("Partition", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			for i := range rounds {
				p, err := NewPartition(PartitionConfig[string]{Total: 1, MaxQueuePerKey: 1, MaxWait: time.Hour, MaxKeys: 1})
				if err != nil {
					t.Fatal(err)
				}
				if !p.TryAcquire("a") {
					t.Fatal("holder refused")
				}
				ctx, cancel := context.WithCancel(t.Context())
				res := make(chan error, 1)
				go func() { res <- p.Acquire(ctx, "a") }()
				synctest.Wait()
				var wg sync.WaitGroup
				wg.Go(func() { yieldN(i % 3); cancel() })
				wg.Go(func() { yieldN(i / 3 % 4); _ = p.Pause("a") })
				wg.Wait()
				if err := <-res; !errors.Is(err, ErrPaused) && !errors.Is(err, context.Canceled) {
					t.Fatalf("round %d: waiter got %v, want ErrPaused or context.Canceled", i, err)
				}
				p.Resume("a")
				p.Release("a")
				if s, _ := p.StatsFor("a"); s.Waiting != 0 || s.InFlight != 0 {
					t.Fatalf("round %d: key a after quiescence %+v, want nothing waiting or in flight", i, s)
				}
				if s := p.Stats(); s.Waiting != 0 || s.InFlight != 0 {
					t.Fatalf("round %d: after quiescence %+v", i, s)
				}
				if !p.TryAcquire("b") {
					t.Fatalf("round %d: idle key a was not forgotten for key b", i)
				}
				p.Release("b")
			}
		})
	})
}

func yieldN(n int) {
	for range n {
		runtime.Gosched()
	}
}

// raceTarget adapts a Bulkhead, a Partition or a Queue to one shape for
// TestWaitRaces. Keys mean priorities for a Queue, and nothing for a
// Bulkhead.
type raceTarget interface {
	acquire(ctx context.Context, key int) error
	do(ctx context.Context, key int, fn func(context.Context) error) error
	try(key int) bool
	release(key int)
	pause(key int)
	resume(key int)
	stats() Stats
	// idle checks, once everything has settled, that the target is idle
	// and usable again.
	idle(keys []int) error
}

type bulkheadRT struct{ *Bulkhead }

func (b bulkheadRT) acquire(ctx context.Context, _ int) error { return b.Acquire(ctx) }
func (b bulkheadRT) do(ctx context.Context, _ int, fn func(context.Context) error) error {
	return b.Do(ctx, fn)
}
func (b bulkheadRT) try(int) bool { return b.TryAcquire() }
func (b bulkheadRT) release(int)  { b.Release() }
func (b bulkheadRT) pause(int)    { b.Pause() }
func (b bulkheadRT) resume(int)   { b.Resume() }
func (b bulkheadRT) stats() Stats { return b.Stats() }
func (b bulkheadRT) idle([]int) error {
	// Every slot is free, and none may be refused to a newcomer.
	for i := range b.maxConcurrent {
		if !b.TryAcquire() {
			return fmt.Errorf("TryAcquire %d of %d refused on an idle bulkhead", i+1, b.maxConcurrent)
		}
	}
	for range b.maxConcurrent {
		b.Release()
	}
	return nil
}

type partitionRT struct{ *Partition[int] }

func (p partitionRT) acquire(ctx context.Context, k int) error { return p.Acquire(ctx, k) }
func (p partitionRT) do(ctx context.Context, k int, fn func(context.Context) error) error {
	return p.Do(ctx, k, fn)
}
func (p partitionRT) try(k int) bool { return p.TryAcquire(k) }
func (p partitionRT) release(k int)  { p.Release(k) }
func (p partitionRT) pause(k int)    { _ = p.Pause(k) }
func (p partitionRT) resume(k int)   { p.Resume(k) }
func (p partitionRT) stats() Stats   { return p.Stats() }
func (p partitionRT) idle(keys []int) error {
	for _, k := range keys {
		if s, ok := p.StatsFor(k); ok && (s.InFlight != 0 || s.Waiting != 0) {
			return fmt.Errorf("key %d not idle: %+v", k, s)
		}
	}
	// Every key is idle, so a new one may always evict the oldest.
	if !p.TryAcquire(-1) {
		return fmt.Errorf("a new key was refused with every key idle (%d keys, limit %d)", p.Keys(), p.maxKeys)
	}
	p.Release(-1)
	return nil
}

type queueRT struct{ *Queue }

func (q queueRT) acquire(ctx context.Context, k int) error { return q.Acquire(ctx, Priority(k)) }
func (q queueRT) do(ctx context.Context, k int, fn func(context.Context) error) error {
	return q.Do(ctx, Priority(k), fn)
}
func (q queueRT) try(int) bool { return q.TryAcquire() }
func (q queueRT) release(int)  { q.Release() }
func (q queueRT) pause(int)    { q.Pause() }
func (q queueRT) resume(int)   { q.Resume() }
func (q queueRT) stats() Stats { return q.Stats() }
func (q queueRT) idle([]int) error {
	if !q.TryAcquire() {
		return errors.New("TryAcquire refused on an idle queue")
	}
	q.Release()
	return nil
}

// eventCount counts what a hook was told.
type eventCount struct{ admitted, refused atomic.Int64 }

func (c *eventCount) count(e Event) {
	switch e.Kind {
	case Admitted:
		c.admitted.Add(1)
	case Refused:
		c.refused.Add(1)
	}
}

// raceCall is one caller of TestWaitRaces: it calls Acquire (holding the
// slot for hold) or Do (whose function runs for hold, or until CallTimeout),
// with a context cancelled at cancelAt or with a deadline, or neither.
type raceCall struct {
	key                int
	start, hold        time.Duration
	useDo              bool
	cancelAt, deadline time.Duration // zero: none
}

// raceOp is an operator's action at a moment: pause, resume, release a slot
// taken at the start, or (Partition) use a new key, which may evict.
type raceOp struct {
	kind string
	key  int
	at   time.Duration
}

// TestWaitRaces races every way a waiter can be refused or served (Pause,
// eviction by more critical work in a Queue, a new key evicting an idle one
// in a Partition, a slot freeing) against every way it can give up (its
// context's cancellation and deadline, MaxWait) and CallTimeout, with many
// goroutines whose moments collide on a millisecond grid of a synctest
// clock. After everything settles: nothing waits or is in flight, every
// call ended once in success or a typed refusal, the counters and the
// hook's events agree with what the calls saw, and the target is idle and
// usable again.
func TestWaitRaces(t *testing.T) {
	ms := func(rt *rapid.T, name string, lo, hi int) time.Duration {
		return time.Duration(rapid.IntRange(lo, hi).Draw(rt, name)) * time.Millisecond
	}
	run := func(t *testing.T, rt *rapid.T, target raceTarget, events *eventCount, keys int, evicts bool) {
		calls := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) raceCall {
			c := raceCall{
				key:   rapid.IntRange(0, keys-1).Draw(rt, "key"),
				start: ms(rt, "start", 0, 3),
				hold:  ms(rt, "hold", 0, 4),
				useDo: rapid.Bool().Draw(rt, "do"),
			}
			switch rapid.IntRange(0, 2).Draw(rt, "ctx") {
			case 1:
				c.cancelAt = ms(rt, "cancelAt", 0, 6)
			case 2:
				c.deadline = ms(rt, "deadline", 1, 6)
			}
			return c
		}), 1, 12).Draw(rt, "calls")
		kinds := []string{"pause", "resume", "release"}
		if evicts {
			kinds = append(kinds, "newkey")
		}
		ops := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) raceOp {
			return raceOp{
				kind: rapid.SampledFrom(kinds).Draw(rt, "op"),
				key:  rapid.IntRange(0, keys-1).Draw(rt, "opKey"),
				at:   ms(rt, "at", 0, 6),
			}
		}), 0, 8).Draw(rt, "ops")
		holders := rapid.IntRange(0, 3).Draw(rt, "holders")

		var broken string
		synctest.Test(t, func(t *testing.T) {
			var admitted, refused atomic.Int64 // as the calls saw them
			var bad atomic.Value
			var wg sync.WaitGroup
			// Slots taken before the calls arrive, released by the
			// release ops (the rest at the end).
			var heldMu sync.Mutex
			var held []int
			for i := range holders {
				if k := i % keys; target.try(k) {
					admitted.Add(1)
					held = append(held, k)
				} else {
					refused.Add(1)
				}
			}
			releaseOne := func() {
				heldMu.Lock()
				defer heldMu.Unlock()
				if len(held) > 0 {
					target.release(held[0])
					held = held[1:]
				}
			}
			newKeys := 0
			var usedKeys []int
			for k := range keys {
				usedKeys = append(usedKeys, k)
			}
			for _, op := range ops {
				key := op.key
				if op.kind == "newkey" {
					newKeys++
					key = 100 + newKeys
					usedKeys = append(usedKeys, key)
				}
				wg.Go(func() {
					time.Sleep(op.at)
					switch op.kind {
					case "pause":
						target.pause(key)
					case "resume":
						target.resume(key)
					case "release":
						releaseOne()
					case "newkey":
						if target.try(key) {
							admitted.Add(1)
							target.release(key)
						} else {
							refused.Add(1)
						}
					}
				})
			}
			for _, c := range calls {
				wg.Go(func() {
					time.Sleep(c.start)
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					if c.deadline > 0 {
						ctx, cancel = context.WithTimeout(ctx, c.deadline)
						defer cancel()
					}
					if c.cancelAt > 0 {
						wg.Go(func() {
							time.Sleep(c.cancelAt)
							cancel()
						})
					}
					var err error
					if c.useDo {
						ran := 0
						err = target.do(ctx, c.key, func(ctx context.Context) error {
							ran++
							select {
							case <-ctx.Done(): // CallTimeout, or the caller's end
							case <-time.After(c.hold):
							}
							return nil
						})
						if err == nil && ran != 1 {
							bad.CompareAndSwap(nil, fmt.Sprintf("Do ran its function %d times", ran))
						}
					} else {
						err = target.acquire(ctx, c.key)
						if err == nil {
							time.Sleep(c.hold)
							target.release(c.key)
						}
					}
					if err == nil {
						admitted.Add(1)
						return
					}
					refused.Add(1)
					if r := (*Refusal)(nil); !errors.As(err, &r) {
						bad.CompareAndSwap(nil, fmt.Sprintf("untyped error %v", err))
					}
				})
			}
			wg.Wait()
			for range holders {
				releaseOne()
			}
			for _, k := range usedKeys {
				target.resume(k)
			}
			synctest.Wait() // every cancel goroutine has finished
			if msg := bad.Load(); msg != nil {
				broken = msg.(string)
				return
			}
			s := target.stats()
			if s.Waiting != 0 || s.InFlight != 0 {
				broken = fmt.Sprintf("after quiescence %d waiting, %d in flight; want none", s.Waiting, s.InFlight)
				return
			}
			if s.Admitted != admitted.Load() || s.Shed.Total() != refused.Load() {
				broken = fmt.Sprintf("counters say %d admitted and %d refused, the calls saw %d and %d",
					s.Admitted, s.Shed.Total(), admitted.Load(), refused.Load())
				return
			}
			if a, r := events.admitted.Load(), events.refused.Load(); a != admitted.Load() || r != refused.Load() {
				broken = fmt.Sprintf("the hook saw %d admitted and %d refused, the calls saw %d and %d",
					a, r, admitted.Load(), refused.Load())
				return
			}
			if err := target.idle(usedKeys); err != nil {
				broken = err.Error()
			}
		})
		if broken != "" {
			rt.Fatal(broken)
		}
	}
	t.Run("Bulkhead", func(t *testing.T) {
		rapid.Check(t, func(rt *rapid.T) {
			var events eventCount
			b, err := NewBulkhead(BulkheadConfig{
				OnEvent:       events.count,
				MaxConcurrent: rapid.IntRange(1, 3).Draw(rt, "maxConcurrent"),
				MaxQueue:      rapid.IntRange(1, 6).Draw(rt, "maxQueue"),
				MaxWait:       ms(rt, "maxWait", 1, 6),
				CallTimeout:   ms(rt, "callTimeout", 0, 4),
			})
			if err != nil {
				rt.Fatal(err)
			}
			run(t, rt, bulkheadRT{b}, &events, 1, false)
		})
	})
	t.Run("Partition", func(t *testing.T) {
		rapid.Check(t, func(rt *rapid.T) {
			total := rapid.IntRange(1, 4).Draw(rt, "total")
			keys := rapid.IntRange(1, 3).Draw(rt, "keys")
			var events eventCount
			p, err := NewPartition(PartitionConfig[int]{
				OnEvent:        func(_ int, e Event) { events.count(e) },
				Total:          total,
				PerKey:         rapid.IntRange(1, total).Draw(rt, "perKey"),
				MaxQueuePerKey: rapid.IntRange(1, 4).Draw(rt, "maxQueue"),
				MaxWait:        ms(rt, "maxWait", 1, 6),
				CallTimeout:    ms(rt, "callTimeout", 0, 4),
				MaxKeys:        rapid.IntRange(1, keys+1).Draw(rt, "maxKeys"),
			})
			if err != nil {
				rt.Fatal(err)
			}
			run(t, rt, partitionRT{p}, &events, keys, true)
		})
	})
	t.Run("Queue", func(t *testing.T) {
		rapid.Check(t, func(rt *rapid.T) {
			var events eventCount
			q, err := NewQueue(QueueConfig{
				OnEvent:     events.count,
				Workers:     rapid.IntRange(1, 2).Draw(rt, "workers"),
				MaxQueue:    rapid.IntRange(1, 3).Draw(rt, "maxQueue"),
				MaxWait:     ms(rt, "maxWait", 1, 6),
				Target:      ms(rt, "target", 1, 2),
				Interval:    ms(rt, "interval", 3, 5),
				CallTimeout: ms(rt, "callTimeout", 0, 4),
			})
			if err != nil {
				rt.Fatal(err)
			}
			run(t, rt, queueRT{q}, &events, 3, false)
		})
	})
}
