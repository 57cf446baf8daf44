// Package shed keeps overload in one place from spreading: it bounds how much
// work runs and waits, isolates partitions of a service from each other, and
// refuses work early and cheaply, with a typed reason, when it cannot be done
// in time.
//
// Put a Partition (or a Bulkhead, for one dependency) between your service
// and what it calls, and run each call through it:
//
//	ctx := context.Background()
//	zones, err := shed.NewPartition(shed.PartitionConfig[string]{
//		Total:          64,                     // calls in flight, all zones together
//		Share:          0.5,                    // no zone takes more than half
//		MaxQueuePerKey: 8,                      // then wait in line, up to MaxWait
//		MaxWait:        50 * time.Millisecond,  // then refuse
//		CallTimeout:    200 * time.Millisecond, // short timeouts, the 2011 lesson
//	})
//	if err != nil {
//		panic(err)
//	}
//	err = zones.Do(ctx, "us-east-1a", func(ctx context.Context) error {
//		return nil // the call to the dependency, bounded by ctx
//	})
//	if errors.Is(err, shed.ErrShed) {
//		// Refused early, with the reason and the numbers, e.g.
//		// shed: queue full (8 waiting, limit 8) for key "us-east-1a"
//		fmt.Println(err)
//	}
//
// # Primitives
//
//   - Bulkhead bounds the calls in flight to one dependency, with a bounded
//     FIFO wait queue, a maximum wait, and a timeout for each call.
//   - Partition is a Bulkhead per key (an Availability Zone, a cluster, a
//     tenant) drawing on one shared total, with each key capped so that a
//     key whose calls hang cannot take the others' capacity. Keys can be
//     paused by an operator; the number of keys is bounded.
//   - Queue is queue-aware admission in front of a pool of workers: bounded
//     queue length, CoDel-style control of the time spent queued, adaptive
//     LIFO while a queue is standing, priority classes, and early dropping
//     of work whose deadline can no longer be met. Scheduler is its pure,
//     clock-free core, for simulations.
//   - AdaptiveLimit is a concurrency limit learned from latency (Netflix's
//     Gradient2 with a drift-proof baseline, AIMD on drops), usable alone
//     or, through the Adaptive field of their configs, as the limit of a
//     Bulkhead, of a Queue, and of each key of a Partition. OnSample is its
//     pure core, taking the time.
//   - Limiter and KeyedLimiter throttle by rate, on golang.org/x/time/rate's
//     token bucket, the keyed variant with a bounded number of keys.
//
// # History
//
// It breaks two feedback loops from the outages stormguard is built from.
// In April 2011 the EBS control plane served every Availability Zone from
// one regional thread pool; calls into the degraded zone had long timeouts,
// filled the pool, and the API failed for the whole region (the fixes:
// short timeouts, per-zone isolation and shedding, a switch to pause one
// zone). In October 2025 EC2's DropletWorkflow Manager collapsed
// re-establishing leases: attempts queued longer than their own timeout,
// failed, and were queued again (the fix: throttle by the queue's size,
// and protect latency-sensitive work by throttling the rest).
//
// # Queue-aware admission
//
// Queue puts queue-aware admission in front of a pool of workers. It bounds
// the queue's length (MaxQueue), the throttle EC2 added after its droplet
// manager collapsed re-queueing lease attempts that had already timed out. It
// also bounds the time spent queued, under CoDel control as in Facebook's
// "Fail at Scale": when the oldest waiting call of a priority class has been
// older than Target (5ms) for a whole Interval (100ms), the class is
// standing. Its queue timeout then shrinks from MaxWait to Target, so the
// excess is shed at once, and it serves newest first (adaptive LIFO), so the
// calls it serves still have their deadlines ahead of them; only its
// Backlog newest calls (four rounds of service by default) are kept and
// served in order, so that a pool at full load is not starved of work by
// its own shedding. It stops standing when its workers serve it empty, or
// when an Interval passes in which no call was shed at Target. No call
// waits longer than min(MaxWait, Target+Interval).
//
// Work comes in three classes. Critical work is served before Normal, and
// Normal before Sheddable. A full queue makes room for more critical work by
// evicting the lowest class (ErrEvicted), so critical work is never refused
// for space while less critical work waits: this is how Lambda protected
// synchronous calls by throttling asynchronous ones. Each class runs its own
// control law, so sheddable work piling up does not shorten the timeouts of
// critical work. A call's deadline is its context's. With WithCost, the call
// is refused, or dropped from the queue, with ErrDeadline as soon as it could
// no longer finish in time, so it never runs late. Like Bulkhead and
// Partition, a Queue can be paused (every waiting call and every new one
// is refused with ErrPaused; calls in flight finish) and bounds the work
// Do runs with CallTimeout.
//
// Scheduler is the pure core of Queue, in the manner of x/time/rate's
// AllowN. It takes the time as an argument, owns no goroutine, clock or lock,
// and reports every refused or dropped item, with its Refusal, to a function
// given at construction, without allocating. Timeouts take effect at exact
// instants however rarely it is called, so a discrete-event simulation and
// the real service make the same decisions. The package's overload test uses
// it to show goodput held at 99.9% of capacity at 10× overload where an
// unbounded FIFO queue falls to 6.5%.
//
// # Refusals
//
// Every refusal is a *Refusal whose reason is one of ErrQueueFull,
// ErrWaitTimeout, ErrPaused, ErrTooManyKeys, ErrDeadline, ErrEvicted or
// ErrRateLimited, all of which match ErrShed with errors.Is. Its message says
// what was refused and why, with the numbers:
//
//	shed: queue full (64 waiting, limit 64) for key "us-east-1a"
//
// A caller that cancels its own context while waiting gets a *Refusal whose
// reason is the context's error: it was not shed, and errors.Is(err, ErrShed)
// is false.
//
// A rate limiter's refusal says when the next token is due
// (Refusal.RetryIn), and its RetryAfter method makes it a
// backoff.RetryAfterError, so that backoff.Retry around a rate-limited call
// waits for the token instead of retrying into the limit:
//
//	shed: rate limited (next token in 750ms; 10/s, burst 20) for key "tenant-7"
//
// A nil context or function, a nil receiver (a typed nil *Bulkhead,
// *Partition, *Queue, *Limiter or *KeyedLimiter in an interface), or a key
// that no map could find again (a NaN, or a slice, map or func in an
// interface key) is an error matching ErrInvalidArgument (not a refusal),
// returned before anything is admitted or counted; never a panic.
//
// A rate limiter's RetryIn saturates at the longest time.Duration for very
// slow rates, rather than wrapping around to a negative hint.
//
// # Observability
//
// Each primitive counts what it admitted, queued and shed (by reason) —
// Stats, and StatsFor per key — and takes an optional hook that is told
// what happened to every call.
//
// # Cost
//
// Admission takes one short critical section and does not allocate; a call
// that has to wait allocates its waiter, and a refusal allocates its error.
// Waiters are woken by the goroutine that frees a slot, without polling, and
// a waiter that gives up leaves the queue at once, never losing a slot.
// A waiter's outcome is decided once, under the lock, by the first of its
// grant, its refusal (Pause, eviction) and its own giving up (its context,
// MaxWait), so that it leaves the queue exactly once whatever the race;
// a grant that finds the waiter's context done passes the slot on, so no
// call is admitted with a context it finds done. A Partition counts each
// admission and refusal under its lock as it decides it, so that its
// snapshots (Stats, StatsFor) are exact.
package shed
