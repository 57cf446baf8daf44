package shed

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkQueueAcquireRelease: one goroutine, a free slot every time.
func BenchmarkQueueAcquireRelease(b *testing.B) {
	q, err := NewQueue(QueueConfig{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Acquire(ctx, Normal); err != nil {
			b.Fatal(err)
		}
		q.Release()
	}
}

// BenchmarkQueueAcquireReleaseDeadline: the same with a context deadline and
// a declared cost, which costs a clock read.
func BenchmarkQueueAcquireReleaseDeadline(b *testing.B) {
	q, err := NewQueue(QueueConfig{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Acquire(ctx, Critical, WithCost(time.Millisecond)); err != nil {
			b.Fatal(err)
		}
		q.Release()
	}
}

func BenchmarkQueueTryAcquireRelease(b *testing.B) {
	q, err := NewQueue(QueueConfig{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !q.TryAcquire() {
			b.Fatal("refused")
		}
		q.Release()
	}
}

// BenchmarkQueueParallel: GOMAXPROCS goroutines and as many slots: the
// lock is contended, the slots are not.
func BenchmarkQueueParallel(b *testing.B) {
	benchQueueParallel(b, QueueConfig{Workers: runtime.GOMAXPROCS(0)}, 1)
}

// benchQueueParallel runs Acquire+Release on a Queue configured by cfg
// from parallelism·GOMAXPROCS goroutines.
func benchQueueParallel(b *testing.B, cfg QueueConfig, parallelism int) {
	q, err := NewQueue(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := q.Acquire(ctx, Normal); err != nil {
				b.Error(err)
				return
			}
			q.Release()
		}
	})
}

// BenchmarkQueueParallelWaiting: 8·GOMAXPROCS goroutines share 2 slots,
// so most calls wait in the queue and are woken by a hand-off. A wait
// allocates its waiter, channel and timer (4 allocations), as a Bulkhead's
// does: recycling them would tie them to the testing/synctest bubble that
// made them.
func BenchmarkQueueParallelWaiting(b *testing.B) {
	benchQueueParallel(b, QueueConfig{Workers: 2, MaxQueue: 4096, MaxWait: time.Hour, Target: time.Minute, Interval: time.Hour}, 8)
}

// BenchmarkSchedulerPushDone: the pure core in steady state: every worker
// busy, one item queued and handed to the next freed worker.
func BenchmarkSchedulerPushDone(b *testing.B) {
	s, err := NewScheduler[int](QueueConfig{Workers: 8}, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	for range 8 {
		s.TryRun()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(time.Microsecond)
		i++
		s.Push(now, Item[int]{Value: i, Priority: Priority(i % 3), Deadline: now.Add(time.Second), Cost: time.Millisecond})
		if _, ok := s.Done(now); !ok {
			b.Fatal("nothing handed out")
		}
	}
}

// BenchmarkSchedulerOverloaded: ten arrivals per completion, so the queue
// stands, times items out, refuses and evicts.
func BenchmarkSchedulerOverloaded(b *testing.B) {
	s, err := NewScheduler[int](QueueConfig{Workers: 8, MaxQueue: 256}, func(Item[int], Refusal) {})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	for range 8 {
		s.TryRun()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(12500 * time.Nanosecond) // 10× a pool serving 8 per 1ms
		i++
		s.Push(now, Item[int]{Value: i, Priority: Priority(i % 3)})
		if i%10 == 0 {
			s.Done(now)
		}
	}
}
