package shed

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
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
