package shed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func newBulkhead(t *testing.T, cfg BulkheadConfig) *Bulkhead {
	t.Helper()
	b, err := NewBulkhead(cfg)
	require.NoError(t, err)
	return b
}

func TestNewBulkheadValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   BulkheadConfig
		wants []string
	}{
		{"minimal", BulkheadConfig{MaxConcurrent: 1}, nil},
		{"zero value", BulkheadConfig{}, []string{"MaxConcurrent 0 is outside [1, 2^24]"}},
		{"absurd", BulkheadConfig{MaxConcurrent: 1 << 30, MaxQueue: 1 << 30}, []string{"MaxConcurrent 1073741824", "MaxQueue 1073741824"}},
		{"negative", BulkheadConfig{MaxConcurrent: -1, MaxQueue: -2, MaxWait: -time.Second, CallTimeout: -time.Millisecond},
			[]string{"MaxConcurrent -1", "MaxQueue -2 is outside", "MaxWait -1s is negative", "CallTimeout -1ms is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBulkhead(tt.cfg)
			if tt.wants == nil {
				require.NoError(t, err)
				require.NotNil(t, b)
				return
			}
			assert.Nil(t, b)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestBulkheadLimitsAndRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 2, MaxQueue: 1, MaxWait: time.Second})
		require.True(t, b.TryAcquire())
		require.NoError(t, b.Acquire(t.Context()))
		assert.False(t, b.TryAcquire(), "no free slot")

		queued := make(chan error, 1)
		go func() { queued <- b.Acquire(t.Context()) }()
		synctest.Wait()
		assert.Equal(t, 1, b.Stats().Waiting)

		err := b.Acquire(t.Context())
		var r *Refusal
		require.ErrorAs(t, err, &r)
		assert.ErrorIs(t, err, ErrQueueFull)
		assert.ErrorIs(t, err, ErrShed)
		assert.Equal(t, "shed: queue full (1 waiting, limit 1)", err.Error())

		start := time.Now()
		err = <-queued
		assert.ErrorIs(t, err, ErrWaitTimeout)
		assert.Equal(t, time.Second, time.Since(start), "refused exactly at MaxWait")
		assert.Equal(t, "shed: waited too long (waited 1s, limit 1s)", err.Error())

		s := b.Stats()
		assert.Equal(t, 2, s.InFlight)
		assert.Equal(t, int64(2), s.Admitted)
		assert.Equal(t, int64(1), s.Queued)
		assert.Equal(t, ShedCounts{QueueFull: 2, WaitTimeout: 1}, s.Shed, "TryAcquire's refusal counts too")
		b.Release()
		b.Release()
		b.Release() // one too many: ignored
		assert.Equal(t, 0, b.Stats().InFlight)
		assert.True(t, b.TryAcquire())
	})
}

func TestBulkheadFIFOHandOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 10, MaxWait: time.Hour})
		require.NoError(t, b.Acquire(t.Context()))
		var mu sync.Mutex
		var order []int
		for i := range 5 {
			go func() {
				if err := b.Acquire(t.Context()); err != nil {
					t.Errorf("waiter %d: %v", i, err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				b.Release()
			}()
			synctest.Wait() // so arrival order is i
		}
		b.Release()
		synctest.Wait()
		assert.Equal(t, []int{0, 1, 2, 3, 4}, order)
		assert.Equal(t, Stats{Admitted: 6, Queued: 5}, b.Stats())
	})
}

func TestBulkheadCancelledWaiterLeavesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
		require.NoError(t, b.Acquire(t.Context()))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Acquire(ctx) }()
		synctest.Wait()
		cancel()
		err := <-done
		assert.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, ErrShed, "a caller giving up was not shed")
		assert.Contains(t, err.Error(), "shed: gave up waiting: context canceled")
		assert.Equal(t, 0, b.Stats().Waiting, "left the queue")
		// Its place is free for the next waiter.
		go func() { done <- b.Acquire(t.Context()) }()
		synctest.Wait()
		b.Release()
		assert.NoError(t, <-done)
		assert.Equal(t, 1, b.Stats().InFlight)
		assert.Equal(t, int64(1), b.Stats().Shed.Cancelled)
	})
}

func TestBulkheadDeadlineWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
		require.NoError(t, b.Acquire(t.Context()))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err := b.Acquire(ctx)
		assert.ErrorIs(t, err, ErrDeadline)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, ErrShed)
		// An already-expired context is refused without queueing.
		err = b.Acquire(ctx)
		assert.ErrorIs(t, err, ErrDeadline)
		assert.Equal(t, int64(1), b.Stats().Queued)
	})
}

func TestBulkheadPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 5, MaxWait: time.Hour})
		require.NoError(t, b.Acquire(t.Context()))
		done := make(chan error, 2)
		for range 2 {
			go func() { done <- b.Acquire(t.Context()) }()
		}
		synctest.Wait()
		b.Pause()
		assert.ErrorIs(t, <-done, ErrPaused, "waiters are refused at once")
		assert.ErrorIs(t, <-done, ErrPaused)
		assert.ErrorIs(t, b.Acquire(t.Context()), ErrPaused)
		assert.False(t, b.TryAcquire())
		assert.Equal(t, 1, b.Stats().InFlight, "in-flight work continues")
		b.Release()
		b.Resume()
		assert.True(t, b.TryAcquire())
		assert.Equal(t, int64(4), b.Stats().Shed.Paused)
	})
}

func TestBulkheadDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, CallTimeout: 100 * time.Millisecond})
		err := b.Do(t.Context(), func(ctx context.Context) error {
			dl, ok := ctx.Deadline()
			assert.True(t, ok)
			assert.Equal(t, 100*time.Millisecond, time.Until(dl))
			<-ctx.Done()
			return ctx.Err()
		})
		assert.ErrorIs(t, err, context.DeadlineExceeded, "a hung call is cut off at CallTimeout")
		assert.Equal(t, 0, b.Stats().InFlight)

		errBoom := errors.New("boom")
		assert.ErrorIs(t, b.Do(t.Context(), func(context.Context) error { return errBoom }), errBoom)
		func() {
			defer func() { assert.Equal(t, "panic in call", recover()) }()
			_ = b.Do(t.Context(), func(context.Context) error { panic("panic in call") })
		}()
		assert.Equal(t, 0, b.Stats().InFlight, "the slot is released when the call panics")
	})
}

func TestBulkheadHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []Event
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Second, OnEvent: func(e Event) { events = append(events, e) }})
		require.NoError(t, b.Acquire(t.Context()))
		_ = b.Acquire(t.Context())
		assert.Equal(t, []Event{
			{Kind: Admitted},
			{Kind: Queued},
			{Kind: Refused, Reason: ErrWaitTimeout, Waited: time.Second},
		}, events)
	})
}

func TestBulkheadStress(t *testing.T) {
	b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 4, MaxQueue: 8, MaxWait: time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	inFlight, peak := 0, 0
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				ctx := context.Background()
				var cancel context.CancelFunc = func() {}
				if (i+j)%7 == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(j%3)*time.Microsecond)
				}
				work := func(context.Context) error {
					mu.Lock()
					inFlight++
					peak = max(peak, inFlight)
					mu.Unlock()
					mu.Lock()
					inFlight--
					mu.Unlock()
					return nil
				}
				var err error
				if (i+j)%3 == 0 {
					// The lock-free path races the locked one.
					if b.TryAcquire() {
						_ = work(ctx)
						b.Release()
					}
				} else {
					err = b.Do(ctx, work)
				}
				cancel()
				var r *Refusal
				if err != nil && !errors.As(err, &r) {
					t.Errorf("untyped error %v", err)
				}
			}
		}()
	}
	wg.Wait()
	s := b.Stats()
	assert.LessOrEqual(t, peak, 4)
	assert.Equal(t, 0, s.InFlight, "every slot came back")
	assert.Equal(t, 0, s.Waiting)
	assert.Equal(t, int64(32*200), s.Admitted+s.Shed.Total(), "every call ended exactly once")
	assert.Equal(t, uint64(0), b.state.Load()&^(admittedMax<<admittedShift), "no slot and no slow mode left behind")
}

// TestBulkheadAdmittedFieldFlush: the lock-free path counts admissions in
// the state word; when that field is full it is moved to the counter, and
// Stats counts every admission exactly once before, across and after the
// move, on both fast paths and on the locked one.
func TestBulkheadAdmittedFieldFlush(t *testing.T) {
	b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 2, MaxQueue: 1})
	const start = admittedMax - 3
	b.state.Store(start << admittedShift)
	b.admitted.Store(5)
	want := int64(start) + 5
	assert.Equal(t, want, b.Stats().Admitted)

	ctx := context.Background()
	for i := range 8 {
		if i%2 == 0 {
			require.True(t, b.TryAcquire(), "TryAcquire %d", i)
		} else {
			require.NoError(t, b.Acquire(ctx), "Acquire %d", i)
		}
		want++
		s := b.Stats()
		assert.Equal(t, want, s.Admitted, "after admission %d", i)
		assert.Equal(t, 1, s.InFlight)
		assert.LessOrEqual(t, fastAdmitted(b.state.Load()), uint64(admittedMax))
		assert.Zero(t, b.state.Load()&slowBit, "the fast path is open again")
		b.Release()
		assert.Equal(t, 0, b.Stats().InFlight)
	}
	assert.Less(t, fastAdmitted(b.state.Load()), uint64(8), "the field was emptied once")

	// The locked path (a waiter) flushes too.
	b.state.Store(start << admittedShift)
	b.admitted.Store(0)
	want = int64(start)
	require.NoError(t, b.Acquire(ctx))
	require.NoError(t, b.Acquire(ctx))
	want += 2
	done := make(chan error)
	go func() { done <- b.Acquire(ctx) }()
	require.Eventually(t, func() bool { return b.Stats().Waiting == 1 }, 5*time.Second, time.Millisecond)
	b.Release() // hands the slot to the waiter
	require.NoError(t, <-done)
	want++
	s := b.Stats()
	assert.Equal(t, want, s.Admitted)
	assert.Equal(t, 2, s.InFlight)
	assert.Zero(t, fastAdmitted(b.state.Load()), "the locked path moved the field to the counter")
	b.Release()
	b.Release()
	assert.Equal(t, Stats{Admitted: want, Queued: 1}, b.Stats())
}
