package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestZeroThrottleIsUsable: a Throttle not built by NewThrottle has the
// defaults of ThrottleConfig{}, as the zero Breaker does.
func TestZeroThrottleIsUsable(t *testing.T) {
	var th Throttle
	now := time.Unix(0, 0)
	for range 3 {
		th.RecordAt(now, ThrottleRefused)
	}
	th.RecordAt(now, ThrottleAccepted)
	assert.Equal(t, ThrottleStats{Requests: 4, Accepts: 1, Probability: 2.0 / 5}, th.StatsAt(now), "K 2")
	assert.False(t, th.AllowAt(now, 0.1))
	assert.Equal(t, int64(5), th.StatsAt(now.Add(DefaultThrottleWindow-time.Nanosecond)).Requests)
	assert.Zero(t, th.StatsAt(now.Add(DefaultThrottleWindow)).Requests, "two minutes")
	assert.Equal(t, ThrottleRefused, th.Outcome(context.Background(), errFlaky), "the default classifier")
	assert.ErrorIs(t, Retry(context.Background(), Policy{}, func(context.Context) error { return nil }, WithThrottle(&th), WithRand(nil)), nil)
}

// TestNilThrottleAdmitsEverything: a nil *Throttle, as a nil Breaker,
// refuses nothing and counts nothing.
func TestNilThrottleAdmitsEverything(t *testing.T) {
	var th *Throttle
	now := time.Unix(0, 0)
	assert.True(t, th.AllowAt(now, 0))
	assert.True(t, th.Allow())
	th.RecordAt(now, ThrottleRefused)
	th.Record(ThrottleRefused)
	th.Done(context.Background(), errFlaky)
	assert.Zero(t, th.ProbabilityAt(now))
	assert.Equal(t, ThrottleStats{}, th.StatsAt(now))
	assert.Equal(t, ThrottleStats{}, th.Stats())
	assert.Equal(t, ThrottleRefused, th.Outcome(context.Background(), errFlaky))
	calls := 0
	require.NoError(t, th.Do(context.Background(), func(context.Context) error { calls++; return nil }))
	assert.Equal(t, 1, calls)
}

// TestThrottleCountSaturates: a full bucket counter stays full; it never
// carries into the stamp.
func TestThrottleCountSaturates(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	now := time.Unix(0, 0)
	th.RecordAt(now, ThrottleAccepted)
	b := th.slot(0)
	full := uint64(1)<<th.countBits() - 1
	b.requests.Store(full)
	b.accepts.Store(full - 1)
	th.RecordAt(now, ThrottleAccepted)
	th.RecordAt(now, ThrottleAccepted)
	assert.Equal(t, ThrottleStats{Requests: int64(full), Accepts: int64(full)}, th.StatsAt(now))
	assert.Equal(t, ThrottleStats{}, th.StatsAt(now.Add(DefaultThrottleWindow)))
}

// TestThrottleExtremeInputs: times before the first one seen, far in the
// future, and draws outside [0, 1) neither panic nor produce a probability
// outside [0, 1).
func TestThrottleExtremeInputs(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{K: 1e308})
	now := time.Unix(0, 0)
	th.RecordAt(now, ThrottleRefused)
	th.RecordAt(now, ThrottleAccepted)
	assert.Zero(t, th.ProbabilityAt(now), "an enormous K never throttles once anything was accepted")
	for _, at := range []time.Time{now.Add(-time.Hour), {}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(math.MaxInt64)} {
		for _, u := range []float64{math.Inf(-1), -1, 0, 0.5, 1, 2, math.Inf(1), math.NaN()} {
			th.AllowAt(at, u)
			th.RecordAt(at, ThrottleRefused)
			p := th.ProbabilityAt(at)
			assert.True(t, p >= 0 && p < 1, "probability %v at %v", p, at)
		}
	}
}

// TestRetryWithThrottleBreakerAndBudget: the three compose in one Retry.
// The throttle counts only the attempts that reached the backend (not the
// ones the breaker refused), the budget pays only for them, and when the
// throttle refuses, neither the breaker nor the budget is asked.
func TestRetryWithThrottleBreakerAndBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		br, err := NewBreaker(BreakerConfig{WindowCalls: 2, MinCalls: 2, OpenWait: time.Second, Probes: 1})
		require.NoError(t, err)
		th := newThrottle(t, ThrottleConfig{})
		b := fullBudget(t, 10)
		calls := 0
		op := func(context.Context) error { calls++; return errFlaky }
		p := Policy{Base: 10 * time.Millisecond, MaxAttempts: 8}
		err = Retry(t.Context(), p, op, WithThrottle(th), WithBreaker(br), WithBudget(b), WithRand(rand.New(drawOne)))
		assert.ErrorIs(t, err, ErrAttemptsExhausted)
		assert.Less(t, calls, 8, "the breaker refused some attempts")
		s := th.Stats()
		assert.Equal(t, [2]int64{int64(calls), 0}, [2]int64{s.Requests, s.Accepts}, "only attempts that reached the backend count")
		assert.Equal(t, int64(calls-1), b.Stats().Retries, "the budget paid for the retries made, not for refused ones")

		// Now the throttle refuses the first retry: the breaker and the
		// budget are not asked.
		br2, err := NewBreaker(BreakerConfig{})
		require.NoError(t, err)
		b2 := fullBudget(t, 10)
		calls = 0
		err = Retry(t.Context(), p, op, WithThrottle(th), WithBreaker(br2), WithBudget(b2), WithRand(rand.New(drawZero)))
		assert.ErrorIs(t, err, ErrThrottled)
		assert.Zero(t, calls, "the throttle refused the first attempt")
		assert.Equal(t, BudgetStats{Tokens: 10}, b2.Stats())
		assert.Zero(t, br2.Stats().Calls)
	})
}

// TestThrottleConcurrentRotation: goroutines share a clock that moves
// through many bucket widths while they count. Whatever the interleaving,
// a count is never lost from the window nor invented: at the end the
// window holds at least every event of its buckets and at most every event
// (an event whose time was already stale when it was counted may land in a
// later bucket, as documented).
func TestThrottleConcurrentRotation(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{Window: 40 * time.Millisecond, Buckets: 4, MaxProbability: 0.5})
	start := time.Unix(0, 0)
	th.StatsAt(start) // the buckets count from start, as the model's do
	var clock atomic.Int64
	const workers, perWorker = 4, 5000
	type event struct {
		at     int64
		accept bool
	}
	logs := make([][]event, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				at := clock.Add(int64(r.IntN(int(40 * time.Microsecond))))
				now := start.Add(time.Duration(at))
				switch {
				case !th.AllowAt(now, r.Float64()):
					logs[w] = append(logs[w], event{at: at})
				case (w+i)%3 == 0:
					th.RecordAt(now, ThrottleAccepted)
					logs[w] = append(logs[w], event{at: at, accept: true})
				default:
					th.RecordAt(now, ThrottleRefused)
					logs[w] = append(logs[w], event{at: at})
				}
			}
		})
	}
	wg.Wait()
	end := clock.Load()
	const width = int64(10 * time.Millisecond)
	var inWindow, all [2]int64
	for _, l := range logs {
		for _, e := range l {
			a := int64(0)
			if e.accept {
				a = 1
			}
			all[0]++
			all[1] += a
			if end/width-e.at/width < 4 {
				inWindow[0]++
				inWindow[1] += a
			}
		}
	}
	s := th.StatsAt(start.Add(time.Duration(end)))
	t.Logf("window %d requests %d accepts; events in its buckets %v of %v", s.Requests, s.Accepts, inWindow, all)
	assert.GreaterOrEqual(t, s.Requests, inWindow[0])
	assert.GreaterOrEqual(t, s.Accepts, inWindow[1])
	assert.LessOrEqual(t, s.Requests, all[0])
	assert.LessOrEqual(t, s.Accepts, all[1])
	assert.Greater(t, end, 5*4*width, "the clock went round the buckets many times")
}

// TestThrottleDrawBelowZeroIsClamped: a draw below 0 counts as 0, so a
// throttle whose probability is 0 admits it (the doc says out-of-range
// draws are clamped; -0.5 < 0 must not refuse a healthy backend).
func TestThrottleDrawBelowZeroIsClamped(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	now := time.Unix(0, 0)
	for _, u := range []float64{-0.5, -1e-300, math.Inf(-1), 0, 1, 2, math.Inf(1), math.NaN()} {
		assert.True(t, th.AllowAt(now, u), "u %v with probability 0", u)
	}
	assert.Equal(t, ThrottleStats{}, th.StatsAt(now))
	for range 10 {
		th.RecordAt(now, ThrottleRefused)
	}
	p := th.ProbabilityAt(now)
	require.Greater(t, p, 0.0)
	assert.False(t, th.AllowAt(now, math.Inf(-1)), "clamped to 0 < p")
	assert.True(t, th.AllowAt(now, math.Inf(1)), "clamped to just below 1, and p < 1")
}

// TestThrottleCountsTheCallersDeadline: a request that ran into the
// caller's deadline counts as the error it returned (a refusal by
// default), as it does in a Breaker; only the caller's cancellation
// counts as nothing. Otherwise a backend that hangs every request until
// the caller's deadline would never be throttled.
func TestThrottleCountsTheCallersDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle(t, ThrottleConfig{})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		assert.ErrorIs(t, th.Do(ctx, hang), context.DeadlineExceeded)
		assert.Equal(t, ThrottleRefused, th.Outcome(ctx, context.DeadlineExceeded))
		assert.Equal(t, int64(1), th.Stats().Requests)
		assert.Zero(t, th.Stats().Accepts)

		cctx, ccancel := context.WithCancel(t.Context())
		ccancel()
		assert.Equal(t, ThrottleIgnored, th.Outcome(cctx, context.Canceled))

		// In Retry too: every attempt that hung until its deadline counts.
		th2 := newThrottle(t, ThrottleConfig{})
		for range 5 {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			_ = Retry(ctx, Policy{MaxAttempts: 1}, hang, WithThrottle(th2))
			cancel()
		}
		st := th2.Stats()
		assert.Equal(t, int64(5), st.Requests, "made or refused, every attempt counts")
		assert.Zero(t, st.Accepts)
	})
}

// TestThrottleAndBreakerCountPermanentAlike: the package has one default
// rule: every non-nil error counts against the dependency, Permanent or
// not (Permanent says a retry will not help, not that the dependency is
// well). A Throttle counts it as a refusal as a Breaker counts it as a
// failure; Classify says otherwise.
func TestThrottleAndBreakerCountPermanentAlike(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	ctx := t.Context()
	assert.Equal(t, ThrottleRefused, th.Outcome(ctx, Permanent(errFlaky)))
	assert.Equal(t, ThrottleRefused, th.Outcome(ctx, RetryAfter(Permanent(errFlaky), time.Second)))

	br, err := NewBreaker(BreakerConfig{WindowCalls: 1, MinCalls: 1})
	require.NoError(t, err)
	_ = br.Call(ctx, func(context.Context) error { return Permanent(errFlaky) })
	assert.Equal(t, BreakerOpen, br.Stats().State, "the breaker counted it as a failure")
}

// TestThrottleStampNeverWraps: a bucket's stamp is wide enough for every
// bucket number a Throttle can compute (time.Duration's range divided by
// the bucket width), so a bucket idle for years is never mistaken for a
// current or a future one. With 36-bit stamps and 1ms buckets, a gap of
// 2^35 to 2^36 buckets (one to two years) made the window count nothing,
// and a gap of exactly 2^36 brought the old counts back.
func TestThrottleStampNeverWraps(t *testing.T) {
	cfg := ThrottleConfig{Window: 12 * time.Millisecond, Buckets: 12}
	now := time.Unix(0, 0)
	for _, gap := range []int64{1 << 35, 1<<35 + 5, 1<<36 - 3, 1 << 36, 1<<36 + 7, 3 << 36, math.MaxInt64 / int64(time.Millisecond)} {
		th := newThrottle(t, cfg)
		for range 10 {
			th.RecordAt(now, ThrottleRefused)
		}
		later := now.Add(time.Duration(gap) * time.Millisecond)
		assert.Equal(t, ThrottleStats{}, th.StatsAt(later), "gap of %d buckets: the old counts are gone", gap)
		th.RecordAt(later, ThrottleRefused)
		th.RecordAt(later, ThrottleAccepted)
		assert.Equal(t, ThrottleStats{Requests: 2, Accepts: 1}, th.StatsAt(later), "gap of %d buckets: new counts count", gap)
	}
}

func TestThrottleCountBits(t *testing.T) {
	assert.Equal(t, uint(tDefaultCountBits), tCountBitsFor(int64(DefaultThrottleWindow/DefaultThrottleBuckets)))
	assert.Equal(t, uint(18), tCountBitsFor(int64(MinThrottleBucketWidth)))
	assert.Equal(t, uint(60), tCountBitsFor(math.MaxInt64))
	var zero Throttle
	assert.Equal(t, uint(tDefaultCountBits), zero.countBits())
}

// TestThrottleMatchesFormulaAcrossHugeGaps: the formula holds over the
// sliding window when time jumps by exact bucket boundaries, by whole
// windows, by years (past where a 36-bit stamp wrapped) and up to
// time.Duration's range, and for draws outside [0, 1).
func TestThrottleMatchesFormulaAcrossHugeGaps(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 12).Draw(t, "buckets")
		width := time.Duration(rapid.SampledFrom([]int64{int64(time.Millisecond), int64(time.Second), int64(10 * time.Second)}).Draw(t, "width"))
		k := rapid.Float64Range(1, 4).Draw(t, "K")
		th, err := NewThrottle(ThrottleConfig{K: k, Window: width * time.Duration(n), Buckets: n})
		if err != nil {
			t.Fatal(err)
		}
		m := &throttleModel{k: k, maxP: 1, width: width, n: int64(n)}
		now := time.Unix(rapid.Int64Range(-1e12, 1e12).Draw(t, "start"), 0)
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				u := rapid.SampledFrom([]float64{-1, math.Inf(-1), 0, 0.25, 0.5, 0.75, 0.999, 1, 2, math.NaN()}).Draw(t, "u")
				p := m.probability(now)
				if ok := th.AllowAt(now, u); ok != !(max(u, 0) < p) {
					t.Fatalf("AllowAt(u=%v) = %v with model probability %v", u, ok, p)
				} else if !ok {
					m.events = append(m.events, throttleModelEvent{bucket: m.bucket(now)})
				}
			case 1:
				o := ThrottleOutcome(rapid.IntRange(0, 2).Draw(t, "outcome"))
				th.RecordAt(now, o)
				if o != ThrottleIgnored {
					m.events = append(m.events, throttleModelEvent{bucket: m.bucket(now), accept: o == ThrottleAccepted})
				}
			case 2:
				buckets := rapid.SampledFrom([]int64{0, 1, int64(n) - 1, int64(n), int64(n) + 1, 1 << 35, 1<<36 - 1, 1 << 36, 1 << 40, math.MaxInt64}).Draw(t, "gap")
				d := time.Duration(math.MaxInt64)
				if buckets <= math.MaxInt64/int64(width) {
					d = time.Duration(buckets) * width
				}
				now = now.Add(d) // saturates at the end of time's range
			case 3:
				if got, want := th.ProbabilityAt(now), m.probability(now); got != want {
					t.Fatalf("probability %v, model %v", got, want)
				}
			}
		}
		if got, want := th.ProbabilityAt(now), m.probability(now); got != want {
			t.Fatalf("final probability %v, model %v", got, want)
		}
	})
}
