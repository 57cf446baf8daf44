package shed

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newQueue(t *testing.T, cfg QueueConfig) *Queue {
	t.Helper()
	q, err := NewQueue(cfg)
	require.NoError(t, err)
	return q
}

// acquireAsync calls Acquire in a goroutine and returns its result channel,
// once the call has settled (joined the queue, or returned).
func acquireAsync(ctx context.Context, q *Queue, p Priority, opts ...CallOption) <-chan error {
	done := make(chan error, 1)
	go func() { done <- q.Acquire(ctx, p, opts...) }()
	synctest.Wait()
	return done
}

func TestQueueLimitsAndHandOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 2})
		require.True(t, q.TryAcquire())
		require.NoError(t, q.Acquire(t.Context(), Normal))
		assert.False(t, q.TryAcquire())

		waiting := acquireAsync(t.Context(), q, Normal)
		assert.Equal(t, Stats{InFlight: 2, Waiting: 1, Admitted: 2, Queued: 1, Shed: ShedCounts{QueueFull: 1}}, q.Stats())
		start := time.Now()
		time.Sleep(3 * time.Millisecond)
		q.Release()
		require.NoError(t, <-waiting)
		assert.Equal(t, 3*time.Millisecond, time.Since(start))
		assert.Equal(t, Stats{InFlight: 2, Admitted: 3, Queued: 1, Shed: ShedCounts{QueueFull: 1}}, q.Stats(),
			"the slot went straight to the waiter")
		q.Release()
		q.Release()
		q.Release() // one too many: ignored
		assert.Equal(t, 0, q.Stats().InFlight)
		require.True(t, q.TryAcquire())
		q.Release()
	})
}

func TestQueueMaxWaitFiresWithoutARelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1, MaxWait: 50 * time.Millisecond})
		require.True(t, q.TryAcquire())
		start := time.Now()
		err := q.Acquire(t.Context(), Normal)
		assert.Equal(t, 50*time.Millisecond, time.Since(start), "the waiter's own timer")
		assert.ErrorIs(t, err, ErrWaitTimeout)
		assert.Equal(t, "shed: waited too long (waited 50ms, limit 50ms)", err.Error())
		assert.Equal(t, int64(1), q.Stats().Shed.WaitTimeout)
		q.Release()
	})
}

// TestQueueCoDelTimeoutsFireWithoutARelease: the only worker hangs and a
// waiter arrives every millisecond. The oldest waiter passes Target (5ms)
// at 5ms; at 105ms the queue has stood for an Interval, every waiter older
// than Target is refused, and from then on each waiter is refused after 5ms,
// by its own timer, instead of after MaxWait (250ms).
func TestQueueCoDelTimeoutsFireWithoutARelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1, Backlog: -1})
		require.True(t, q.TryAcquire())
		type result struct {
			err    error
			waited time.Duration
		}
		results := make([]result, 200)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				start := time.Now()
				err := q.Acquire(t.Context(), Normal)
				results[i] = result{err, time.Since(start)}
			})
			time.Sleep(time.Millisecond)
		}
		wg.Wait()
		for i, r := range results {
			var ref *Refusal
			require.ErrorAs(t, r.err, &ref, "waiter %d", i)
			require.Equal(t, ErrWaitTimeout, ref.Reason)
			want := 5 * time.Millisecond
			if i <= 100 {
				want = time.Duration(105-i) * time.Millisecond
			}
			assert.Equal(t, want, r.waited, "waiter %d", i)
			assert.Equal(t, want, ref.Waited, "waiter %d", i)
			assert.Equal(t, DefaultTarget, ref.MaxWait, "waiter %d", i)
		}
		assert.True(t, q.Standing(Normal))
		assert.False(t, q.Standing(Critical))

		// A lone waiter, with no other call to advance the queue.
		start := time.Now()
		err := q.Acquire(t.Context(), Normal)
		assert.ErrorIs(t, err, ErrWaitTimeout)
		assert.Equal(t, DefaultTarget, time.Since(start))

		// A whole Interval without a waiter reaching Target: the queue no
		// longer stands, and the next waiter may wait MaxWait.
		time.Sleep(DefaultInterval)
		start = time.Now()
		err = q.Acquire(t.Context(), Normal)
		assert.ErrorIs(t, err, ErrWaitTimeout)
		assert.Equal(t, DefaultTarget+DefaultInterval, time.Since(start),
			"a lone waiter that stays above Target for an Interval makes the queue stand")
		q.Release()
	})
}

func TestQueueCancelledWaiterLeavesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1})
		require.True(t, q.TryAcquire())
		ctx, cancel := context.WithCancel(t.Context())
		waiting := acquireAsync(ctx, q, Critical)
		time.Sleep(time.Millisecond)
		cancel()
		err := <-waiting
		assert.ErrorIs(t, err, context.Canceled)
		var ref *Refusal
		assert.ErrorAs(t, err, &ref, "a Refusal whatever the cause")
		assert.Equal(t, "shed: gave up waiting: context canceled (after waiting 1ms)", err.Error())
		s := q.Stats()
		assert.Equal(t, 0, s.Waiting)
		assert.Equal(t, int64(1), s.Shed.Cancelled)

		// The slot is not lost: the next caller gets it when it frees.
		next := acquireAsync(t.Context(), q, Normal)
		q.Release()
		require.NoError(t, <-next)
		q.Release()

		// A context already done is refused without queueing.
		err = q.Acquire(ctx, Normal)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, int64(2), q.Stats().Shed.Cancelled)
	})
}

// TestQueueGrantAndCancelAtOnce: the slot is handed to a waiter at the very
// moment its context is cancelled. Whichever the waiter sees first, it
// gives up and the slot passes on to the next waiter.
func TestQueueGrantAndCancelAtOnce(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			q := newQueue(t, QueueConfig{Workers: 1})
			require.True(t, q.TryAcquire())
			ctx, cancel := context.WithCancel(t.Context())
			a := acquireAsync(ctx, q, Normal)
			b := acquireAsync(t.Context(), q, Normal)
			cancel()
			q.Release() // grants a, which has not yet noticed the cancel
			assert.ErrorIs(t, <-a, context.Canceled)
			require.NoError(t, <-b)
			s := q.Stats()
			assert.Equal(t, Stats{InFlight: 1, Admitted: 2, Queued: 2, Shed: ShedCounts{Cancelled: 1}}, s)
			q.Release()
		})
	}
}

func TestQueueDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1, MaxWait: time.Second})

		// Refused at once, even by an idle pool: 30ms of work cannot
		// finish in the 20ms left.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		err := q.Acquire(ctx, Normal, WithCost(30*time.Millisecond))
		assert.ErrorIs(t, err, ErrDeadline)
		assert.Equal(t, "shed: deadline cannot be met", err.Error())
		require.NoError(t, q.Acquire(ctx, Normal, WithCost(time.Hour), WithCost(19*time.Millisecond)), "the last option wins")

		// Dropped from the queue as soon as it could no longer finish.
		ctx2, cancel2 := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel2()
		start := time.Now()
		err = q.Acquire(ctx2, Critical, WithCost(30*time.Millisecond))
		assert.Equal(t, 70*time.Millisecond, time.Since(start))
		assert.ErrorIs(t, err, ErrDeadline)
		assert.NoError(t, ctx2.Err(), "refused before the deadline itself")

		// Without a declared cost: at the deadline.
		ctx3, cancel3 := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel3()
		start = time.Now()
		err = q.Acquire(ctx3, Critical)
		assert.Equal(t, 100*time.Millisecond, time.Since(start))
		assert.ErrorIs(t, err, ErrDeadline)
		assert.Equal(t, int64(3), q.Stats().Shed.Deadline)
		q.Release()
	})
}

func TestQueuePriorities(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1})
		require.True(t, q.TryAcquire())
		got := make(chan string, 4)
		for _, p := range []Priority{Sheddable, Normal, Sheddable, Critical} {
			go func() {
				if q.Acquire(t.Context(), p) == nil {
					got <- p.String()
				}
			}()
			synctest.Wait()
		}
		var order []string
		for range 4 {
			q.Release()
			synctest.Wait()
			order = append(order, <-got)
		}
		assert.Equal(t, []string{"critical", "normal", "sheddable", "sheddable"}, order)
		q.Release()
	})
}

func TestQueueEvictsForCriticalWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1, MaxQueue: 1})
		require.True(t, q.TryAcquire())
		batch := acquireAsync(t.Context(), q, Sheddable)
		err := q.Acquire(t.Context(), Sheddable)
		assert.ErrorIs(t, err, ErrQueueFull)
		assert.Equal(t, "shed: queue full (1 waiting, limit 1)", err.Error())

		time.Sleep(2 * time.Millisecond)
		renewal := acquireAsync(t.Context(), q, Critical)
		err = <-batch
		assert.ErrorIs(t, err, ErrEvicted)
		assert.Equal(t, "shed: evicted by higher-priority work (after waiting 2ms)", err.Error())
		q.Release()
		require.NoError(t, <-renewal)
		assert.Equal(t, ShedCounts{QueueFull: 1, Evicted: 1}, q.Stats().Shed)
		q.Release()
	})
}

func TestQueueDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1})
		errBoom := errors.New("boom")
		err := q.Do(t.Context(), Critical, func(ctx context.Context) error {
			assert.Equal(t, 1, q.Stats().InFlight)
			return errBoom
		})
		assert.ErrorIs(t, err, errBoom)
		assert.Equal(t, 0, q.Stats().InFlight)

		assert.Panics(t, func() {
			_ = q.Do(t.Context(), Normal, func(context.Context) error { panic("oops") })
		})
		assert.Equal(t, 0, q.Stats().InFlight, "released on panic")

		assert.EqualError(t, q.Do(t.Context(), Normal, nil), "shed: invalid argument: nil function")
		assert.ErrorIs(t, q.Do(t.Context(), Normal, nil), ErrInvalidArgument)

		require.True(t, q.TryAcquire())
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		called := false
		err = q.Do(ctx, Normal, func(context.Context) error { called = true; return nil }, WithCost(20*time.Millisecond))
		assert.ErrorIs(t, err, ErrDeadline)
		assert.False(t, called)
		q.Release()
	})
}

func TestQueueHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []Event
		q := newQueue(t, QueueConfig{Workers: 1, MaxQueue: 1, OnEvent: func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}})
		require.True(t, q.TryAcquire())
		waiting := acquireAsync(t.Context(), q, Critical)
		assert.Error(t, q.Acquire(t.Context(), Sheddable))
		assert.False(t, q.TryAcquire())
		time.Sleep(4 * time.Millisecond)
		q.Release()
		require.NoError(t, <-waiting)
		q.Release()
		assert.Equal(t, []Event{
			{Kind: Admitted},
			{Kind: Queued, Priority: Critical},
			{Kind: Refused, Reason: ErrQueueFull, Priority: Sheddable},
			{Kind: Refused, Reason: ErrQueueFull},
			{Kind: Admitted, Waited: 4 * time.Millisecond, Priority: Critical},
		}, events)
	})
}

func TestQueueDoesNotAllocate(t *testing.T) {
	q := newQueue(t, QueueConfig{Workers: 1})
	ctx := context.Background()
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		if q.Acquire(ctx, Critical, WithCost(time.Millisecond)) == nil {
			q.Release()
		}
		if q.TryAcquire() {
			q.Release()
		}
	}))
}

// TestQueueStress hammers a Queue from many goroutines with random
// priorities, deadlines, costs and cancellations, with timeouts short
// enough for the classes to stand; run with -race. No more than Workers
// calls ever run at once, every call ends in success or a typed Refusal,
// and the counters add up.
func TestQueueStress(t *testing.T) {
	const workers, goroutines = 4, 32
	perG := 300
	if testing.Short() {
		perG = 50
	}
	q := newQueue(t, QueueConfig{Workers: workers, MaxQueue: 16, MaxWait: 3 * time.Millisecond,
		Target: 200 * time.Microsecond, Interval: time.Millisecond})
	var running, peak, ok, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range perG {
				var ctx context.Context
				var cancel context.CancelFunc
				stop := func() bool { return false }
				switch r.IntN(4) {
				case 0:
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(r.IntN(2000))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(context.Background())
					stop = time.AfterFunc(time.Duration(r.IntN(500))*time.Microsecond, cancel).Stop
				default:
					ctx, cancel = context.WithCancel(context.Background())
				}
				pri := Priority(r.IntN(4))
				err := q.Do(ctx, pri, func(context.Context) error {
					n := running.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
					running.Add(-1)
					return nil
				}, WithCost(time.Duration(r.IntN(200))*time.Microsecond))
				stop()
				cancel()
				if err == nil {
					ok.Add(1)
					continue
				}
				var ref *Refusal
				if !errors.As(err, &ref) {
					t.Errorf("untyped error %v", err)
				}
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	s := q.Stats()
	assert.LessOrEqual(t, peak.Load(), int64(workers))
	assert.Equal(t, 0, s.InFlight)
	assert.Equal(t, 0, s.Waiting)
	assert.Equal(t, ok.Load(), s.Admitted)
	assert.Equal(t, refused.Load(), s.Shed.Total())
	assert.Equal(t, int64(goroutines*perG), s.Admitted+s.Shed.Total())
	assert.Positive(t, ok.Load())
	t.Logf("%d calls: %d ran, refused %+v", goroutines*perG, s.Admitted, s.Shed)
	require.True(t, q.TryAcquire(), "no slot leaked")
	q.Release()
}

// TestQueuePause: Pause refuses the waiting work at once and new work from
// then on, with ErrPaused; work in flight finishes and releases normally;
// Resume reopens the queue.
func TestQueuePause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex // hooks run on each call's goroutine
		var events []Event
		q := newQueue(t, QueueConfig{Workers: 1, OnEvent: func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}})
		require.NoError(t, q.Acquire(t.Context(), Normal))
		critical := acquireAsync(t.Context(), q, Critical)
		normal := acquireAsync(t.Context(), q, Normal)
		require.Equal(t, 2, q.Stats().Waiting)

		start := time.Now()
		q.Pause()
		assert.True(t, q.Paused())
		for _, ch := range []<-chan error{critical, normal} {
			err := <-ch
			assert.ErrorIs(t, err, ErrPaused)
			assert.ErrorIs(t, err, ErrShed)
		}
		assert.Zero(t, time.Since(start), "refused at once")
		assert.ErrorIs(t, q.Acquire(t.Context(), Critical), ErrPaused, "even critical work")
		assert.False(t, q.TryAcquire())
		assert.EqualError(t, q.Do(t.Context(), Normal, func(context.Context) error { return nil }), "shed: paused")

		s := q.Stats()
		assert.Equal(t, 1, s.InFlight, "work in flight is not touched")
		assert.Equal(t, 0, s.Waiting)
		assert.Equal(t, int64(5), s.Shed.Paused)
		q.Release()
		assert.Equal(t, 0, q.Stats().InFlight)

		q.Resume()
		assert.False(t, q.Paused())
		require.True(t, q.TryAcquire())
		q.Release()
		var refused int
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.Kind == Refused && e.Reason == ErrPaused {
				refused++
			}
		}
		assert.Equal(t, 5, refused, "every refusal reported")
	})
}

func TestQueueCallTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, QueueConfig{Workers: 1, CallTimeout: 100 * time.Millisecond})
		start := time.Now()
		err := q.Do(t.Context(), Normal, func(ctx context.Context) error {
			<-ctx.Done() // a hung dependency
			return ctx.Err()
		})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 100*time.Millisecond, time.Since(start))
		assert.Equal(t, 0, q.Stats().InFlight, "the slot came back")
	})
	_, err := NewQueue(QueueConfig{Workers: 1, CallTimeout: -1})
	assert.ErrorContains(t, err, "CallTimeout -1ns is negative")
}
