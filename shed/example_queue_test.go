package shed_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/shed"
)

// A Queue in front of a pool of workers: lease renewals are Critical, batch
// work Sheddable. Every call carries its deadline in its context and may
// declare its cost, so work that cannot finish in time is refused instead
// of run late.
func ExampleQueue() {
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 2, MaxQueue: 64})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	err = q.Do(ctx, shed.Critical, func(ctx context.Context) error {
		fmt.Println("renewing the lease of droplet i-42")
		return nil
	}, shed.WithCost(20*time.Millisecond))
	fmt.Println("renewal:", err)

	// 150ms of batch work cannot finish before the 100ms deadline: it is
	// refused at once, without queueing or running.
	err = q.Do(ctx, shed.Sheddable, func(ctx context.Context) error {
		fmt.Println("never printed")
		return nil
	}, shed.WithCost(150*time.Millisecond))
	var r *shed.Refusal
	fmt.Println("batch:", err, errors.Is(err, shed.ErrShed), errors.As(err, &r))

	s := q.Stats()
	fmt.Printf("admitted %d, shed %d (deadline %d)\n", s.Admitted, s.Shed.Total(), s.Shed.Deadline)
	// Output:
	// renewing the lease of droplet i-42
	// renewal: <nil>
	// batch: shed: deadline cannot be met true true
	// admitted 1, shed 1 (deadline 1)
}

// The Scheduler is the pure core of Queue: it takes the time as an argument
// and owns no goroutine, so a simulation or an event loop drives it with
// its own clock. Here one worker is busy and a full queue sorts out what
// runs next.
func ExampleScheduler() {
	start := time.Date(2025, 10, 20, 2, 25, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	s, err := shed.NewScheduler(shed.QueueConfig{Workers: 1, MaxQueue: 3},
		func(it shed.Item[string], r shed.Refusal) {
			fmt.Printf("  %s: %v\n", it.Value, &r)
		})
	if err != nil {
		panic(err)
	}
	push := func(ms int, it shed.Item[string]) {
		kind, _ := s.Push(at(ms), it)
		fmt.Printf("%2dms push %s: %v\n", ms, it.Value, kind)
	}
	push(0, shed.Item[string]{Value: "renewal-1", Priority: shed.Critical})
	push(1, shed.Item[string]{Value: "batch-1", Priority: shed.Sheddable})
	push(2, shed.Item[string]{Value: "status", Deadline: at(30), Cost: 10 * time.Millisecond})
	push(3, shed.Item[string]{Value: "batch-2", Priority: shed.Sheddable})
	push(4, shed.Item[string]{Value: "batch-3", Priority: shed.Sheddable})
	push(5, shed.Item[string]{Value: "renewal-2", Priority: shed.Critical})
	for _, ms := range []int{12, 25, 40, 50} {
		if it, ok := s.Done(at(ms)); ok {
			fmt.Printf("%2dms done, next: %s (waited %v)\n", ms, it.Value, at(ms).Sub(it.Enqueued))
		} else {
			fmt.Printf("%2dms done, worker idle\n", ms)
		}
	}
	// Output:
	//  0ms push renewal-1: admitted
	//  1ms push batch-1: queued
	//  2ms push status: queued
	//  3ms push batch-2: queued
	//   batch-3: shed: queue full (3 waiting, limit 3)
	//  4ms push batch-3: refused
	//   batch-2: shed: evicted by higher-priority work (after waiting 2ms)
	//  5ms push renewal-2: queued
	// 12ms done, next: renewal-2 (waited 7ms)
	//   status: shed: deadline cannot be met (after waiting 23ms)
	// 25ms done, next: batch-1 (waited 24ms)
	// 40ms done, worker idle
	// 50ms done, worker idle
}

// When the worker hangs, CoDel notices: the oldest waiting item has been
// older than Target (5ms) for a whole Interval (100ms), so the queue is
// standing. Its timeout drops from MaxWait to Target, which sheds the
// backlog at once, and it serves newest first until it drains.
func ExampleScheduler_standing() {
	start := time.Date(2025, 10, 20, 2, 25, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	timedOut := 0
	s, err := shed.NewScheduler(shed.QueueConfig{Workers: 1},
		func(it shed.Item[int], r shed.Refusal) {
			if errors.Is(&r, shed.ErrWaitTimeout) {
				timedOut++
			}
		})
	if err != nil {
		panic(err)
	}
	s.TryRun() // the worker is busy, and stays so
	for ms := 0; ms <= 110; ms++ {
		s.Push(at(ms), shed.Item[int]{Value: ms})
		if ms == 104 || ms == 105 || ms == 110 {
			fmt.Printf("%dms: standing %v, timeout %v, %d waiting, %d timed out\n",
				ms, s.Standing(shed.Normal), s.Timeout(shed.Normal), s.Len(), timedOut)
		}
	}
	it, _ := s.Done(at(110))
	fmt.Println("next:", it.Value, "(newest first)")
	// Output:
	// 104ms: standing false, timeout 250ms, 105 waiting, 0 timed out
	// 105ms: standing true, timeout 5ms, 5 waiting, 101 timed out
	// 110ms: standing true, timeout 5ms, 5 waiting, 106 timed out
	// next: 110 (newest first)
}

func ExampleWithCost() {
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 1})
	if err != nil {
		panic(err)
	}
	q.TryAcquire() // the only worker is busy
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// 80ms of work cannot finish within 50ms: refused without waiting.
	err = q.Acquire(ctx, shed.Normal, shed.WithCost(80*time.Millisecond))
	fmt.Println(err)
	q.Release()
	// Output: shed: deadline cannot be met
}
