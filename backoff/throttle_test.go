package backoff

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// constSource is a rand.Source that always returns v: rand.New(constSource{0})
// draws 0 (the throttle refuses whenever the probability is positive) and
// rand.New(constSource{math.MaxUint64}) draws just under 1 (it never does).
type constSource struct{ v uint64 }

func (s constSource) Uint64() uint64 { return s.v }

var (
	drawZero = constSource{0}
	drawOne  = constSource{math.MaxUint64}
)

func newThrottle(t testing.TB, cfg ThrottleConfig) *Throttle {
	t.Helper()
	th, err := NewThrottle(cfg)
	require.NoError(t, err)
	return th
}

func TestNewThrottleValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   ThrottleConfig
		wants []string
	}{
		{"zero value", ThrottleConfig{}, nil},
		{"K one", ThrottleConfig{K: 1}, nil},
		{"one bucket", ThrottleConfig{Buckets: 1, Window: time.Millisecond}, nil},
		{"max buckets", ThrottleConfig{Buckets: MaxThrottleBuckets}, nil},
		{"K below one", ThrottleConfig{K: 0.5}, []string{"K 0.5 is below 1"}},
		{"negative K", ThrottleConfig{K: -2}, []string{"K -2 is below 1"}},
		{"NaN K", ThrottleConfig{K: math.NaN()}, []string{"K NaN is not a finite number"}},
		{"infinite K", ThrottleConfig{K: math.Inf(1)}, []string{"K +Inf is not a finite number"}},
		{"negative window", ThrottleConfig{Window: -time.Second}, []string{"Window -1s is negative"}},
		{"window too short", ThrottleConfig{Window: 11 * time.Millisecond}, []string{"Window 11ms is shorter than 12 buckets of 1ms"}},
		{"negative buckets", ThrottleConfig{Buckets: -1}, []string{"Buckets -1 is outside [1, 256]"}},
		{"too many buckets", ThrottleConfig{Buckets: 257}, []string{"Buckets 257"}},
		{"max probability", ThrottleConfig{MaxProbability: 0.9}, nil},
		{"max probability one", ThrottleConfig{MaxProbability: 1}, nil},
		{"negative max probability", ThrottleConfig{MaxProbability: -0.1}, []string{"MaxProbability -0.1 is outside (0, 1]"}},
		{"max probability above one", ThrottleConfig{MaxProbability: 1.5}, []string{"MaxProbability 1.5"}},
		{"NaN max probability", ThrottleConfig{MaxProbability: math.NaN()}, []string{"MaxProbability NaN"}},
		{"all at once", ThrottleConfig{K: math.Inf(-1), Window: -1, Buckets: 1000}, []string{"K -Inf", "Window", "Buckets 1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, err := NewThrottle(tt.cfg)
			if len(tt.wants) == 0 {
				require.NoError(t, err)
				require.NotNil(t, th)
				return
			}
			assert.Nil(t, th)
			assert.ErrorIs(t, err, ErrInvalidThrottle)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestThrottleFormula(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	now := time.Date(2025, 10, 20, 6, 48, 0, 0, time.UTC)
	assert.Zero(t, th.ProbabilityAt(now), "no history, no throttling")
	for range 10 {
		th.RecordAt(now, ThrottleAccepted)
	}
	for range 10 {
		th.RecordAt(now, ThrottleRefused)
	}
	// 20 requests, 10 accepted: 20 − 2·10 = 0.
	assert.Zero(t, th.ProbabilityAt(now))
	for range 10 {
		th.RecordAt(now, ThrottleRefused)
	}
	// 30 requests, 10 accepted: (30 − 20)/31.
	assert.Equal(t, 10.0/31, th.ProbabilityAt(now))
	th.RecordAt(now, ThrottleIgnored)
	assert.Equal(t, 10.0/31, th.ProbabilityAt(now), "an ignored outcome counts as nothing")

	assert.True(t, th.AllowAt(now, 10.0/31), "u equal to p admits")
	assert.True(t, th.AllowAt(now, math.NaN()), "NaN admits")
	assert.False(t, th.AllowAt(now, 0.3))
	// The refusal counted as a request: 31 requests, 10 accepted.
	assert.Equal(t, ThrottleStats{Requests: 31, Accepts: 10, Probability: 11.0 / 32, Throttled: 1}, th.StatsAt(now))
	assert.False(t, th.AllowAt(now, -5), "u below 0 is clamped")
}

func TestThrottleForgetsOldBuckets(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{Window: 4 * time.Second, Buckets: 4})
	t0 := time.Time{} // a simulation's clock may start anywhere
	th.RecordAt(t0, ThrottleRefused)
	th.RecordAt(t0.Add(1500*time.Millisecond), ThrottleRefused)
	assert.Equal(t, int64(2), th.StatsAt(t0.Add(3999*time.Millisecond)).Requests)
	assert.Equal(t, int64(1), th.StatsAt(t0.Add(4*time.Second)).Requests, "the first bucket left the window")
	assert.Equal(t, int64(0), th.StatsAt(t0.Add(5*time.Second)).Requests)
	// A bucket reused for a later time starts from zero.
	th.RecordAt(t0.Add(8*time.Second), ThrottleAccepted)
	assert.Equal(t, ThrottleStats{Requests: 1, Accepts: 1}, th.StatsAt(t0.Add(8*time.Second)))
	assert.Equal(t, ThrottleStats{}, th.StatsAt(t0.Add(time.Hour)))
}

// throttleModel is the specification: a list of every counted event and the
// formula, with no buckets shared or reused.
type throttleModel struct {
	k      float64
	maxP   float64
	width  time.Duration
	n      int64
	start  time.Time
	seen   bool
	events []throttleModelEvent
}

type throttleModelEvent struct {
	bucket int64
	accept bool
}

func (m *throttleModel) bucket(now time.Time) int64 {
	if !m.seen {
		m.start, m.seen = now, true
	}
	return int64(now.Sub(m.start) / m.width)
}

func (m *throttleModel) probability(now time.Time) float64 {
	cur := m.bucket(now)
	var requests, accepts float64
	for _, e := range m.events {
		if cur-e.bucket < m.n {
			requests++
			if e.accept {
				accepts++
			}
		}
	}
	return math.Min(m.maxP, math.Max(0, (requests-m.k*accepts)/(requests+1)))
}

// TestThrottleMatchesFormulaProperty: for any configuration and any
// sequence of decisions, outcomes and clock advances, the throttle's
// probability is the formula over the events of the window, and it refuses
// exactly when the injected draw is below it.
func TestThrottleMatchesFormulaProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 20).Draw(t, "buckets")
		width := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(10*time.Second)).Draw(t, "width"))
		window := width*time.Duration(n) + time.Duration(rapid.Int64Range(0, int64(width)-1).Draw(t, "slack"))
		k := rapid.Float64Range(1, 5).Draw(t, "K")
		maxP := 1.0
		if rapid.Bool().Draw(t, "capped") {
			maxP = rapid.Float64Range(0.01, 1).Draw(t, "maxP")
		}
		th, err := NewThrottle(ThrottleConfig{K: k, Window: window, Buckets: n, MaxProbability: maxP})
		if err != nil {
			t.Fatal(err)
		}
		m := &throttleModel{k: k, maxP: maxP, width: window / time.Duration(n), n: int64(n)}
		now := time.Unix(rapid.Int64Range(-1e10, 1e10).Draw(t, "start"), 0)
		refused := int64(0)
		for range rapid.IntRange(1, 300).Draw(t, "steps") {
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				u := rapid.Float64Range(0, 1).Draw(t, "u")
				p := m.probability(now)
				ok := th.AllowAt(now, u)
				if ok != (u >= p) {
					t.Fatalf("AllowAt(u=%v) = %v with model probability %v", u, ok, p)
				}
				if !ok {
					refused++
					m.events = append(m.events, throttleModelEvent{bucket: m.bucket(now)})
				}
			case 1:
				o := ThrottleOutcome(rapid.IntRange(0, 2).Draw(t, "outcome"))
				th.RecordAt(now, o)
				if o != ThrottleIgnored {
					m.events = append(m.events, throttleModelEvent{bucket: m.bucket(now), accept: o == ThrottleAccepted})
				}
			case 2:
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(3*window)/int64(n)).Draw(t, "advance")))
			case 3:
				if got, want := th.ProbabilityAt(now), m.probability(now); got != want {
					t.Fatalf("probability %v, model %v", got, want)
				}
			}
		}
		if got, want := th.ProbabilityAt(now), m.probability(now); got != want {
			t.Fatalf("final probability %v, model %v", got, want)
		}
		if s := th.StatsAt(now); s.Throttled != refused {
			t.Fatalf("stats count %d refusals, saw %d", s.Throttled, refused)
		}
	})
}

// throttleOutage runs one client through a throttle at rps requests per
// second: healthy for two minutes, refusing everything for four, then
// healthy again. It returns the fraction of requests sent during the last
// two minutes of the outage and how long after it the client sent every
// request again for a whole minute.
func throttleOutage(t *testing.T, cfg ThrottleConfig, rps int) (sentInOutage float64, recovery time.Duration) {
	th := newThrottle(t, cfg)
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(0, 0)
	step := time.Second / time.Duration(rps)
	healthy := true
	run := func(d time.Duration) (sent, wanted int) {
		for end := now.Add(d); now.Before(end); now = now.Add(step) {
			wanted++
			if !th.AllowAt(now, r.Float64()) {
				continue
			}
			sent++
			if healthy {
				th.RecordAt(now, ThrottleAccepted)
			} else {
				th.RecordAt(now, ThrottleRefused)
			}
		}
		return sent, wanted
	}
	sent, wanted := run(2 * time.Minute)
	require.Equal(t, wanted, sent, "a healthy backend gets every request")
	healthy = false
	run(2 * time.Minute) // the accepts leave the window
	sent, wanted = run(2 * time.Minute)
	healthy = true
	for recovery = 0; recovery < time.Hour; recovery += time.Minute {
		if s, w := run(time.Minute); s == w {
			return float64(sent) / float64(wanted), recovery
		}
	}
	t.Fatalf("no recovery within an hour")
	return 0, 0
}

// TestThrottleStopsSendingToARefusingBackend: one client alone, with no
// coordination, stops sending most of its requests to a backend that
// refuses everything, and sends all of them again some windows after it
// recovers; MaxProbability keeps a share flowing and shortens recovery.
func TestThrottleStopsSendingToARefusingBackend(t *testing.T) {
	for _, rps := range []int{1, 10, 100} {
		sent, recovery := throttleOutage(t, ThrottleConfig{}, rps)
		t.Logf("%d/s: sent %.4f in the outage, recovered in %v", rps, sent, recovery)
		assert.Less(t, sent, 0.05, "%d/s", rps)
		assert.LessOrEqual(t, recovery, 20*time.Minute, "%d/s", rps)

		capped, cappedRecovery := throttleOutage(t, ThrottleConfig{MaxProbability: 0.9}, rps)
		t.Logf("%d/s capped at 0.9: sent %.4f in the outage, recovered in %v", rps, capped, cappedRecovery)
		assert.InDelta(t, 0.1, capped, 0.05, "%d/s", rps)
		assert.Less(t, cappedRecovery, recovery, "%d/s", rps)
	}
}

func TestThrottleDoesNotAllocate(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	now := time.Now()
	th.RecordAt(now, ThrottleRefused)
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		th.AllowAt(now, 0.5)
		th.RecordAt(now, ThrottleRefused)
		now = now.Add(time.Second)
	}))
}

// TestThrottleConcurrent: with -race, the lock-free counters; no count is
// lost, whatever the interleaving, while the clock stays in one bucket.
func TestThrottleConcurrent(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	now := time.Now()
	const workers, perWorker = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if th.AllowAt(now, 1) {
					th.RecordAt(now, ThrottleOutcome((w+i)%2))
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, ThrottleStats{Requests: workers * perWorker, Accepts: workers * perWorker / 2}, th.StatsAt(now))
}

func TestThrottleDo(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	overloaded := errors.New("503 overloaded")
	for range 50 {
		_ = th.Do(t.Context(), func(context.Context) error { return overloaded })
	}
	var throttled, sent int
	for range 100 {
		err := th.Do(t.Context(), func(context.Context) error { sent++; return overloaded })
		var te *ThrottledError
		if errors.As(err, &te) {
			throttled++
			assert.ErrorIs(t, err, ErrThrottled)
			assert.Positive(t, te.Probability)
			assert.Zero(t, te.Accepts)
			assert.Contains(t, err.Error(), "throttled locally: rejection probability")
		}
	}
	assert.Equal(t, 100, throttled+sent)
	assert.Greater(t, throttled, 50)

	assert.ErrorIs(t, th.Do(nil, func(context.Context) error { return nil }), ErrInvalidArgument) //nolint:staticcheck // a nil context is the point
	assert.ErrorIs(t, th.Do(t.Context(), nil), ErrInvalidArgument)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	before := th.Stats()
	assert.ErrorIs(t, th.Do(ctx, func(context.Context) error { panic("not called") }), context.Canceled)
	assert.Equal(t, before.Requests, th.Stats().Requests)
}

func TestThrottleOutcome(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	ctx := t.Context()
	assert.Equal(t, ThrottleAccepted, th.Outcome(ctx, nil))
	assert.Equal(t, ThrottleRefused, th.Outcome(ctx, errFlaky))
	assert.Equal(t, ThrottleRefused, th.Outcome(ctx, Permanent(errFlaky)), "every error counts against, as in a Breaker")
	assert.Equal(t, ThrottleRefused, th.Outcome(ctx, RetryAfter(Permanent(errFlaky), time.Second)))
	done, cancel := context.WithCancel(ctx)
	cancel()
	assert.Equal(t, ThrottleIgnored, th.Outcome(done, context.Canceled), "the caller gave up")
	assert.Equal(t, ThrottleAccepted, th.Outcome(done, nil))
	assert.Equal(t, ThrottleRefused, th.Outcome(nil, errFlaky)) //nolint:staticcheck // nil is allowed here

	custom := newThrottle(t, ThrottleConfig{Classify: func(err error) ThrottleOutcome {
		if errors.Is(err, errFlaky) {
			return ThrottleAccepted
		}
		return ThrottleIgnored
	}})
	assert.Equal(t, ThrottleAccepted, custom.Outcome(ctx, errFlaky))
	assert.Equal(t, ThrottleIgnored, custom.Outcome(ctx, errors.New("other")))
	assert.Equal(t, "accepted refused ignored ThrottleOutcome(7)",
		ThrottleAccepted.String()+" "+ThrottleRefused.String()+" "+ThrottleIgnored.String()+" "+ThrottleOutcome(7).String())
	custom.RecordAt(time.Now(), ThrottleOutcome(7))
	assert.Zero(t, custom.Stats().Requests, "an unknown outcome counts as nothing")
}

func TestThrottleHook(t *testing.T) {
	var events []ThrottleEvent
	th := newThrottle(t, ThrottleConfig{OnEvent: func(e ThrottleEvent) { events = append(events, e) }})
	now := time.Unix(100, 0)
	th.RecordAt(now, ThrottleRefused)
	th.AllowAt(now, 0.9)
	th.AllowAt(now, 0.1)
	assert.Equal(t, []ThrottleEvent{
		{Time: now, Probability: 0.5, Requests: 1},
		{Time: now, Throttled: true, Probability: 0.5, Requests: 1},
	}, events)
}

// refusedFirst returns a throttle whose probability is positive: every draw
// of zero refuses.
func refusedFirst(t *testing.T) *Throttle {
	th := newThrottle(t, ThrottleConfig{})
	th.Record(ThrottleRefused)
	return th
}

func TestRetryWithThrottleRefusesTheFirstAttempt(t *testing.T) {
	th := refusedFirst(t)
	b, err := NewBudget(BudgetConfig{Ratio: 1, NoFloor: true})
	require.NoError(t, err)
	calls := 0
	err = Retry(t.Context(), Policy{}, func(context.Context) error { calls++; return nil },
		WithThrottle(th), WithBudget(b), WithRand(rand.New(drawZero)))
	assert.Zero(t, calls)
	assert.ErrorIs(t, err, ErrThrottled)
	var te *ThrottledError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, ThrottledError{Probability: 0.5, Requests: 1, K: 2, Window: 2 * time.Minute}, *te)
	var re *Error
	require.ErrorAs(t, err, &re)
	assert.Zero(t, re.Attempts)
	assert.Zero(t, b.Tokens(), "a request not sent deposits nothing")
	assert.Equal(t, "backoff: gave up after 0 attempts in 0s: throttled locally: rejection probability 0.5 (1 requests, 0 accepted in the last 2m0s, K 2)", err.Error())
}

func TestRetryWithThrottleStopsRetryingWithoutSleeping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle(t, ThrottleConfig{})
		b, err := NewBudget(BudgetConfig{})
		require.NoError(t, err)
		calls := 0
		start := time.Now()
		err = Retry(t.Context(), Policy{}, func(context.Context) error { calls++; return errFlaky },
			WithThrottle(th), WithBudget(b), WithRand(rand.New(drawZero)))
		assert.Equal(t, 1, calls, "the first attempt's refusal makes the probability positive")
		assert.ErrorIs(t, err, ErrThrottled)
		assert.ErrorIs(t, err, errFlaky)
		assert.Zero(t, time.Since(start), "no sleep before a retry that will not be made")
		assert.Equal(t, BudgetStats{Tokens: b.Tokens()}, b.Stats(), "no token withdrawn for a throttled retry")
	})
}

func TestRetryWithThrottleRecordsEveryAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle(t, ThrottleConfig{K: 10})
		r := &recorder{failures: 2, err: errFlaky}
		require.NoError(t, Retry(t.Context(), Policy{}, r.op, WithThrottle(th), WithRand(rand.New(drawOne))))
		assert.Equal(t, ThrottleStats{Requests: 3, Accepts: 1}, th.Stats())

		// An attempt that fails because the caller gave up counts as nothing.
		ctx, cancel := context.WithCancel(t.Context())
		err := Retry(ctx, Policy{}, func(ctx context.Context) error { cancel(); return ctx.Err() }, WithThrottle(th))
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, ThrottleStats{Requests: 3, Accepts: 1}, th.Stats())

		// A Permanent error counts as a refusal unless Classify says
		// otherwise, as it counts as a failure in a Breaker.
		err = Retry(t.Context(), Policy{}, func(context.Context) error { return Permanent(errFlaky) }, WithThrottle(th))
		assert.ErrorIs(t, err, ErrPermanent)
		assert.Equal(t, ThrottleStats{Requests: 4, Accepts: 1}, th.Stats())
	})
}

func TestRetryWithNilThrottle(t *testing.T) {
	assert.NoError(t, Retry(t.Context(), Policy{}, func(context.Context) error { return nil }, WithThrottle(nil)))
}

func TestRetryWithThrottleDoesNotAllocate(t *testing.T) {
	th := newThrottle(t, ThrottleConfig{})
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	opt := WithThrottle(th)
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		_ = Retry(ctx, Policy{}, op, opt)
	}))
}
