package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

var errFlaky = errors.New("flaky")

// recorder is an op that fails a given number of times and records the
// virtual time of every call.
type recorder struct {
	failures int
	err      error
	calls    []time.Time
}

func (r *recorder) op(context.Context) error {
	r.calls = append(r.calls, time.Now())
	if len(r.calls) <= r.failures {
		return r.err
	}
	return nil
}

// gaps returns the virtual time between consecutive calls.
func (r *recorder) gaps() []time.Duration {
	var out []time.Duration
	for i := 1; i < len(r.calls); i++ {
		out = append(out, r.calls[i].Sub(r.calls[i-1]))
	}
	return out
}

func TestRetrySleepsTheExpectedDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Base: 100 * time.Millisecond, Cap: time.Second, Jitter: JitterNone, MaxAttempts: 6}
		r := &recorder{failures: 5, err: errFlaky}
		start := time.Now()
		require.NoError(t, Retry(t.Context(), p, r.op))
		want := []time.Duration{100, 200, 400, 800, 1000}
		for i := range want {
			want[i] *= time.Millisecond
		}
		assert.Equal(t, want, r.gaps())
		assert.Equal(t, 2500*time.Millisecond, time.Since(start))
	})
}

func TestRetrySleepsJitteredDelaysFromItsSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Base: 10 * time.Millisecond, Jitter: JitterDecorrelated, MaxAttempts: 8}
		r := &recorder{failures: 7, err: errFlaky}
		require.NoError(t, Retry(t.Context(), p, r.op, WithRand(rand.New(rand.NewPCG(7, 7)))))
		// The same draws through the pure core give the same sleeps.
		src := rand.New(rand.NewPCG(7, 7))
		var prev time.Duration
		for i, g := range r.gaps() {
			d := p.Delay(i+1, prev, src.Float64())
			assert.Equal(t, d, g, "retry %d", i+1)
			prev = d
		}
	})
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{failures: 100, err: errFlaky}
		err := Retry(t.Context(), Policy{MaxAttempts: 3}, r.op)
		assert.Len(t, r.calls, 3)
		assert.ErrorIs(t, err, ErrAttemptsExhausted)
		assert.ErrorIs(t, err, errFlaky)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 3, e.Attempts)
		assert.Contains(t, err.Error(), "gave up after 3 attempts")
		assert.Contains(t, err.Error(), "last error: flaky")
	})
}

func TestRetryDefaultAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{failures: 100, err: errFlaky}
		assert.ErrorIs(t, Retry(t.Context(), Policy{}, r.op), ErrAttemptsExhausted)
		assert.Len(t, r.calls, DefaultMaxAttempts)
	})
}

func TestRetryCancelMidSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		p := Policy{Base: time.Hour, Jitter: JitterNone}
		done := make(chan error)
		calls := 0
		go func() {
			done <- Retry(ctx, p, func(context.Context) error { calls++; return errFlaky })
		}()
		time.Sleep(time.Minute) // Retry is now asleep for its hour
		synctest.Wait()
		cancelled := time.Now()
		cancel()
		err := <-done
		assert.Equal(t, cancelled, time.Now(), "no virtual time passed after cancel")
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, errFlaky)
		assert.Equal(t, 1, calls)
	})
}

func TestRetryDoesNotSleepPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
		defer cancel()
		p := Policy{Base: 100 * time.Millisecond, Jitter: JitterNone, MaxAttempts: 10}
		r := &recorder{failures: 100, err: errFlaky}
		start := time.Now()
		err := Retry(ctx, p, r.op)
		// Sleeps of 100ms then 200ms: the second would end at 300ms, after
		// the deadline, so Retry returns at 100ms instead of sleeping.
		assert.Len(t, r.calls, 2)
		assert.Equal(t, 100*time.Millisecond, time.Since(start))
		assert.ErrorIs(t, err, ErrDeadline)
		assert.ErrorIs(t, err, errFlaky)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 200*time.Millisecond, e.Next)
	})
}

func TestRetryMaxElapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Base: 100 * time.Millisecond, Jitter: JitterNone, MaxAttempts: Unlimited, MaxElapsed: time.Second}
		r := &recorder{failures: 100, err: errFlaky}
		start := time.Now()
		err := Retry(t.Context(), p, func(ctx context.Context) error {
			time.Sleep(50 * time.Millisecond) // the op's own time counts too
			return r.op(ctx)
		})
		// Attempts start at 0, 150, 400, 850ms; the next would start at
		// 850+50+800 = 1700ms > 1s.
		assert.Len(t, r.calls, 4)
		assert.ErrorIs(t, err, ErrElapsedExhausted)
		assert.LessOrEqual(t, time.Since(start), time.Second)
	})
}

func TestRetryPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		errBad := errors.New("bad request")
		err := Retry(t.Context(), Policy{}, func(context.Context) error {
			calls++
			return fmt.Errorf("calling: %w", Permanent(errBad))
		})
		assert.Equal(t, 1, calls)
		assert.ErrorIs(t, err, ErrPermanent)
		assert.ErrorIs(t, err, errBad)
		assert.Contains(t, err.Error(), "calling: bad request")
		assert.NoError(t, Permanent(nil))
	})
}

func TestRetryAfterHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Base: 10 * time.Millisecond, Jitter: JitterNone, MaxAttempts: 3}
		r := &recorder{failures: 2}
		op := func(ctx context.Context) error {
			if err := r.op(ctx); err != nil {
				return err
			}
			if len(r.calls) <= 2 {
				return RetryAfter(errFlaky, 3*time.Second)
			}
			return nil
		}
		require.NoError(t, Retry(t.Context(), p, op))
		assert.Equal(t, []time.Duration{3 * time.Second, 3 * time.Second}, r.gaps(), "hint wins over a shorter delay, even above Cap")
	})
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Base: 10 * time.Second, Jitter: JitterNone}
		calls := 0
		start := time.Now()
		err := Retry(t.Context(), p, func(context.Context) error {
			calls++
			if calls == 1 {
				return RetryAfter(errFlaky, time.Second)
			}
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, 10*time.Second, time.Since(start), "a hint shorter than the policy's delay does not shorten it")
	})
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		err := Retry(ctx, Policy{}, func(context.Context) error { return RetryAfter(errFlaky, 5*time.Second) })
		assert.ErrorIs(t, err, ErrDeadline, "a hint beyond the deadline gives up at once")
		assert.ErrorIs(t, err, errFlaky)
	})
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		err := Retry(t.Context(), Policy{}, func(context.Context) error { return RetryAfter(errFlaky, time.Hour) },
			WithMaxRetryAfter(time.Minute))
		assert.ErrorIs(t, err, ErrRetryAfterTooLong)
		assert.Zero(t, time.Since(start))
	})
	synctest.Test(t, func(t *testing.T) {
		// Zero means the default bound (5m), not "no hint allowed".
		start := time.Now()
		calls := 0
		err := Retry(t.Context(), Policy{}, func(context.Context) error {
			if calls++; calls == 1 {
				return RetryAfter(errFlaky, 4*time.Minute)
			}
			return nil
		}, WithMaxRetryAfter(0))
		assert.NoError(t, err)
		assert.Equal(t, 4*time.Minute, time.Since(start))
	})
	assert.NoError(t, RetryAfter(nil, time.Second))
}

type throttled struct{ after time.Duration }

func (e throttled) Error() string             { return "429 too many requests" }
func (e throttled) RetryAfter() time.Duration { return e.after }

func TestRetryAfterFromApplicationErrorType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{failures: 1, err: fmt.Errorf("get: %w", throttled{after: 7 * time.Second})}
		require.NoError(t, Retry(t.Context(), Policy{Jitter: JitterNone}, r.op))
		assert.Equal(t, []time.Duration{7 * time.Second}, r.gaps())
	})
}

func TestRetryBudgetRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBudget(BudgetConfig{Ratio: 0.5, NoFloor: true})
		require.NoError(t, err)
		calls := 0
		fail := func(context.Context) error { calls++; return errFlaky }
		// Each Retry deposits half a token: the first call's retry is
		// refused, the second call's retry is admitted, then refused again.
		err = Retry(t.Context(), Policy{MaxAttempts: 10}, fail, WithBudget(b))
		assert.ErrorIs(t, err, ErrBudgetExhausted)
		assert.ErrorIs(t, err, errFlaky)
		assert.Equal(t, 1, calls)
		err = Retry(t.Context(), Policy{MaxAttempts: 10}, fail, WithBudget(b))
		assert.ErrorIs(t, err, ErrBudgetExhausted)
		assert.Equal(t, 3, calls)
		s := b.Stats()
		assert.Equal(t, int64(1), s.Retries)
		assert.Equal(t, int64(2), s.Refused)
	})
}

func TestRetryHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []Event
		r := &recorder{failures: 2, err: errFlaky}
		p := Policy{Base: time.Second, Jitter: JitterNone}
		require.NoError(t, Retry(t.Context(), p, r.op, OnAttempt(func(e Event) { events = append(events, e) })))
		assert.Equal(t, []Event{
			{Attempt: 1, Err: errFlaky, Delay: time.Second},
			{Attempt: 2, Err: errFlaky, Delay: 2 * time.Second},
			{Attempt: 3},
		}, events)

		events = nil
		_ = Retry(t.Context(), Policy{MaxAttempts: 1}, r.op, OnAttempt(func(e Event) { events = append(events, e) }))
		r.calls, r.failures = nil, 5
		events = nil
		_ = Retry(t.Context(), Policy{MaxAttempts: 1}, r.op, OnAttempt(func(e Event) { events = append(events, e) }))
		assert.Equal(t, []Event{{Attempt: 1, Err: errFlaky, GiveUp: ErrAttemptsExhausted}}, events)
	})
}

func TestRetryInvalidPolicyAndDoneContext(t *testing.T) {
	calls := 0
	op := func(context.Context) error { calls++; return nil }
	err := Retry(t.Context(), Policy{Base: -time.Second}, op)
	assert.ErrorIs(t, err, ErrInvalidPolicy)
	assert.Contains(t, err.Error(), "Base -1s is negative")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = Retry(ctx, Policy{}, op)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, calls, "op is not called when the policy is invalid or ctx is done")
	assert.NoError(t, Retry(t.Context(), Policy{}, op, Option{}, WithBudget(nil)), "empty options are ignored")
}

func TestRetryNilArguments(t *testing.T) {
	var nilCtx context.Context
	calls := 0
	op := func(context.Context) error { calls++; return nil }
	err := Retry(nilCtx, Policy{}, op)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.EqualError(t, err, "backoff: gave up after 0 attempts in 0s: invalid argument: nil context")
	err = Retry(t.Context(), Policy{}, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.EqualError(t, err, "backoff: gave up after 0 attempts in 0s: invalid argument: nil operation")
	v, err := Do[int](t.Context(), Policy{}, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.Zero(t, v)
	_, err = Do(nilCtx, Policy{}, func(context.Context) (int, error) { calls++; return 1, nil })
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.Zero(t, calls, "op is never called")
}

func TestDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		v, err := Do(t.Context(), Policy{}, func(context.Context) (string, error) {
			calls++
			if calls < 3 {
				return "partial", errFlaky
			}
			return "ok", nil
		})
		require.NoError(t, err)
		assert.Equal(t, "ok", v)

		v, err = Do(t.Context(), Policy{MaxAttempts: 2}, func(context.Context) (string, error) { return "partial", errFlaky })
		assert.ErrorIs(t, err, ErrAttemptsExhausted)
		assert.Empty(t, v, "the zero value on failure, never a partial result")
	})
}

func TestRetryFirstTrySuccessDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	b, err := NewBudget(BudgetConfig{})
	require.NoError(t, err)
	op := func(context.Context) error { return nil }
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = Retry(ctx, Policy{}, op) }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = Retry(ctx, Policy{}, op, WithBudget(b)) }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		_, _ = Do(ctx, Policy{}, func(context.Context) (int, error) { return 1, nil })
	}))
}

// TestRetryBoundsProperty checks, over random policies and failure patterns
// in virtual time, that op is called at most MaxAttempts times and that the
// time slept never exceeds MaxElapsed.
func TestRetryBoundsProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		p := policyGen().Draw(rt, "policy")
		p.Base = time.Duration(rapid.Int64Range(int64(time.Microsecond), int64(time.Second)).Draw(rt, "base"))
		p.Cap = time.Duration(rapid.Int64Range(int64(p.Base), int64(time.Minute)).Draw(rt, "cap"))
		if rapid.Bool().Draw(rt, "unlimited") {
			p.MaxAttempts = Unlimited
			p.MaxElapsed = time.Duration(rapid.Int64Range(1, int64(time.Minute)).Draw(rt, "maxElapsed"))
		}
		failures := rapid.IntRange(0, 60).Draw(rt, "failures")
		opCost := time.Duration(rapid.Int64Range(0, int64(time.Second)).Draw(rt, "opCost"))
		seed := rapid.Uint64().Draw(rt, "seed")

		var calls int
		var slept, elapsed time.Duration
		var err error
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var opTime time.Duration
			err = Retry(t.Context(), p, func(context.Context) error {
				calls++
				time.Sleep(opCost)
				opTime += opCost
				if calls <= failures {
					return errFlaky
				}
				return nil
			}, WithRand(rand.New(rand.NewPCG(seed, 0))))
			elapsed = time.Since(start)
			slept = elapsed - opTime
		})
		if limit := p.maxAttempts(); limit > 0 && calls > limit {
			rt.Fatalf("op called %d times, MaxAttempts %d", calls, limit)
		}
		if p.MaxElapsed > 0 && slept > p.MaxElapsed {
			rt.Fatalf("slept %v, MaxElapsed %v", slept, p.MaxElapsed)
		}
		if p.MaxElapsed > 0 && elapsed-opCost > p.MaxElapsed {
			rt.Fatalf("last attempt started at %v, after MaxElapsed %v", elapsed-opCost, p.MaxElapsed)
		}
		if calls > failures && err != nil {
			rt.Fatalf("op succeeded but Retry returned %v", err)
		}
		if err != nil && !errors.Is(err, errFlaky) {
			rt.Fatalf("error %v does not wrap the op's error", err)
		}
	})
}
