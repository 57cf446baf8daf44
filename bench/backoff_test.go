package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	cenkalti "github.com/cenkalti/backoff/v5"
	"github.com/failsafe-go/failsafe-go"
	fsbudget "github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/stormguard/stormguard/backoff"
)

// One configuration, expressed in each library's terms: first delay 100ms,
// doubling, capped at 10s, at most 5 attempts (the first one included).
// Jitter cannot be made identical: stormguard's default is full jitter
// (uniform in [0, e]), cenkalti and failsafe-go randomise ±50% around e.
// TestPeersEquivalent checks that the envelopes and attempt limits agree.
const (
	benchBase        = 100 * time.Millisecond
	benchCap         = 10 * time.Second
	benchMultiplier  = 2.0
	benchMaxAttempts = 5
	peerJitterFactor = 0.5

	// attemptCycle is how many retry numbers the delay benchmarks walk
	// through (1..attemptCycle) before starting again, so that neither
	// library sits at its cap forever. Must be a power of two.
	attemptCycle = 8
	// drawCount precomputed uniform draws are cycled through by
	// BenchmarkDelay/stormguard. Must be a power of two.
	drawCount = 1024
)

var stormguardPolicy = backoff.Policy{
	Base:        benchBase,
	Cap:         benchCap,
	Multiplier:  benchMultiplier,
	MaxAttempts: benchMaxAttempts,
}

func newCenkaltiBackOff() *cenkalti.ExponentialBackOff {
	return &cenkalti.ExponentialBackOff{
		InitialInterval:     benchBase,
		RandomizationFactor: peerJitterFactor,
		Multiplier:          benchMultiplier,
		MaxInterval:         benchCap,
	}
}

func newFailsafeRetryPolicy[R any]() retrypolicy.Builder[R] {
	return retrypolicy.NewBuilder[R]().
		WithMaxAttempts(benchMaxAttempts).
		WithBackoffFactor(benchBase, benchCap, benchMultiplier).
		WithJitterFactor(peerJitterFactor).
		ReturnLastFailure()
}

// Sinks keep the compiler from discarding the work being measured.
var (
	sinkDuration time.Duration
	sinkInt      int
)

// BenchmarkDelay measures one delay computation. stormguard's Delay is pure
// and takes its uniform draw as an argument: "stormguard" passes precomputed
// draws (the cost of the computation alone, as a simulation sees it),
// "stormguard-draw" draws from math/rand/v2 on every call, as cenkalti's
// NextBackOff does internally. Both walk retries 1..attemptCycle; cenkalti is
// Reset every attemptCycle calls to the same effect.
func BenchmarkDelay(b *testing.B) {
	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		p := stormguardPolicy
		var draws [drawCount]float64
		r := rand.New(rand.NewPCG(1, 2))
		for i := range draws {
			draws[i] = r.Float64()
		}
		var sum time.Duration
		i := 0
		for b.Loop() {
			sum += p.Delay(i&(attemptCycle-1)+1, 0, draws[i&(drawCount-1)])
			i++
		}
		sinkDuration = sum
	})
	// The fair comparison with cenkalti, which draws inside NextBackOff.
	b.Run("stormguard-draw", func(b *testing.B) {
		b.ReportAllocs()
		p := stormguardPolicy
		var sum time.Duration
		i := 0
		for b.Loop() {
			sum += p.Delay(i&(attemptCycle-1)+1, 0, rand.Float64())
			i++
		}
		sinkDuration = sum
	})
	b.Run("cenkalti", func(b *testing.B) {
		b.ReportAllocs()
		eb := newCenkaltiBackOff()
		var sum time.Duration
		i := 0
		for b.Loop() {
			if i&(attemptCycle-1) == 0 {
				eb.Reset()
			}
			sum += eb.NextBackOff()
			i++
		}
		sinkDuration = sum
	})
}

// BenchmarkRetry measures the overhead of a retry wrapper around an
// operation that succeeds on the first attempt: the price every healthy call
// pays. Everything a user would build once (policy, executor, options) is
// built outside the loop.
func BenchmarkRetry(b *testing.B) {
	ctx := context.Background()

	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		calls := 0
		op := func(context.Context) error { calls++; return nil }
		for b.Loop() {
			if err := backoff.Retry(ctx, stormguardPolicy, op); err != nil {
				b.Fatal(err)
			}
		}
		checkCalls(b, calls)
	})
	b.Run("stormguard-do", func(b *testing.B) {
		b.ReportAllocs()
		calls := 0
		op := func(context.Context) (int, error) { calls++; return calls, nil }
		for b.Loop() {
			v, err := backoff.Do(ctx, stormguardPolicy, op)
			if err != nil {
				b.Fatal(err)
			}
			sinkInt = v
		}
		checkCalls(b, calls)
	})
	b.Run("stormguard-budget", func(b *testing.B) {
		b.ReportAllocs()
		budget := mustBudget(b, backoff.BudgetConfig{})
		calls := 0
		op := func(context.Context) error { calls++; return nil }
		for b.Loop() {
			if err := backoff.Retry(ctx, stormguardPolicy, op, backoff.WithBudget(budget)); err != nil {
				b.Fatal(err)
			}
		}
		checkCalls(b, calls)
	})
	b.Run("failsafe", func(b *testing.B) {
		benchFailsafeRun(b, failsafe.With(newFailsafeRetryPolicy[any]().Build()))
	})
	b.Run("failsafe-get", func(b *testing.B) {
		b.ReportAllocs()
		exec := failsafe.With(newFailsafeRetryPolicy[int]().Build())
		calls := 0
		op := func() (int, error) { calls++; return calls, nil }
		for b.Loop() {
			v, err := exec.Get(op)
			if err != nil {
				b.Fatal(err)
			}
			sinkInt = v
		}
		checkCalls(b, calls)
	})
	b.Run("cenkalti", func(b *testing.B) {
		b.ReportAllocs()
		// ExponentialBackOff is not safe for concurrent use; this loop is
		// serial, so one value and one option slice serve every call, which
		// is the cheapest way to call cenkalti's Retry.
		opts := []cenkalti.RetryOption{
			cenkalti.WithBackOff(newCenkaltiBackOff()),
			cenkalti.WithMaxTries(benchMaxAttempts),
		}
		calls := 0
		op := func() (int, error) { calls++; return calls, nil }
		for b.Loop() {
			v, err := cenkalti.Retry(ctx, op, opts...)
			if err != nil {
				b.Fatal(err)
			}
			sinkInt = v
		}
		checkCalls(b, calls)
	})
}

// BenchmarkRetryParallel is BenchmarkRetry from every P at once: with a
// shared retry budget, first-try successes must not contend on it (a deposit
// into a full budget is a single atomic load).
func BenchmarkRetryParallel(b *testing.B) {
	ctx := context.Background()

	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			op := func(context.Context) error { return nil }
			for pb.Next() {
				if err := backoff.Retry(ctx, stormguardPolicy, op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("stormguard-budget", func(b *testing.B) {
		b.ReportAllocs()
		budget := mustBudget(b, backoff.BudgetConfig{})
		b.RunParallel(func(pb *testing.PB) {
			op := func(context.Context) error { return nil }
			for pb.Next() {
				if err := backoff.Retry(ctx, stormguardPolicy, op, backoff.WithBudget(budget)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe-budget", func(b *testing.B) {
		benchFailsafeRunParallel(b, failsafe.With(newFailsafeRetryPolicy[any]().WithBudget(fsbudget.New()).Build()))
	})
}

// BenchmarkBudget measures one request and one retry (Deposit then
// Withdraw) against a shared budget. With Ratio 1 every retry is paid from
// the balance (the lock-free fast path). With the default Ratio 0.1 the
// balance stays empty and nine retries in ten fall through to the floor,
// which reads the clock and is refused: the path taken during an outage.
func BenchmarkBudget(b *testing.B) {
	for _, bc := range budgetCases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			budget := mustBudget(b, bc.cfg)
			granted := 0
			for b.Loop() {
				budget.Deposit()
				if budget.Withdraw() {
					granted++
				}
			}
			sinkInt = granted
		})
	}
}

func BenchmarkBudgetParallel(b *testing.B) {
	for _, bc := range budgetCases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			budget := mustBudget(b, bc.cfg)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					budget.Deposit()
					budget.Withdraw()
				}
			})
		})
	}
}

// BenchmarkBaseline measures the two costs that every library above pays
// and none can avoid by itself, on the machine at hand: one clock read
// (each Retry reads the clock once before the first attempt; on a VM with
// kvm-clock it is far dearer than on bare metal) and one draw from the
// default random source (cenkalti's NextBackOff draws one per call).
func BenchmarkBaseline(b *testing.B) {
	b.Run("time.Now", func(b *testing.B) {
		b.ReportAllocs()
		var t time.Time
		for b.Loop() {
			t = time.Now()
		}
		sinkInt = t.Nanosecond()
	})
	b.Run("rand.Float64", func(b *testing.B) {
		b.ReportAllocs()
		var sum float64
		for b.Loop() {
			sum += rand.Float64()
		}
		sinkInt = int(sum)
	})
}

var budgetCases = []struct {
	name string
	cfg  backoff.BudgetConfig
}{
	{"ratio=1", backoff.BudgetConfig{Ratio: 1}},
	{"ratio=0.1", backoff.BudgetConfig{}},
}

func mustBudget(tb testing.TB, cfg backoff.BudgetConfig) *backoff.Budget {
	tb.Helper()
	budget, err := backoff.NewBudget(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return budget
}

func checkCalls(b *testing.B, calls int) {
	b.Helper()
	if calls != b.N {
		b.Fatalf("operation called %d times in %d iterations; want exactly once per iteration", calls, b.N)
	}
}

// benchFailsafeRun measures exec.Run of an operation that succeeds, the way
// failsafe-go's users call it, and checks it ran once per iteration.
func benchFailsafeRun(b *testing.B, exec failsafe.Executor[any]) {
	b.ReportAllocs()
	calls := 0
	op := func() error { calls++; return nil }
	for b.Loop() {
		if err := exec.Run(op); err != nil {
			b.Fatal(err)
		}
	}
	checkCalls(b, calls)
}

// benchFailsafeRunParallel is benchFailsafeRun from every P at once, on one
// shared executor.
func benchFailsafeRunParallel(b *testing.B, exec failsafe.Executor[any]) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		op := func() error { return nil }
		for pb.Next() {
			if err := exec.Run(op); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestPeersEquivalent checks that the three libraries are configured alike,
// so that the benchmarks compare the same work: the same delay envelope,
// the same number of attempts on failure, and exactly one call of the
// operation when it succeeds at once.
func TestPeersEquivalent(t *testing.T) {
	t.Run("envelope", func(t *testing.T) {
		// With no randomisation, cenkalti's delays are its envelope.
		eb := newCenkaltiBackOff()
		eb.RandomizationFactor = 0
		eb.Reset()
		for n := 1; n <= 2*attemptCycle; n++ {
			if got, want := eb.NextBackOff(), stormguardPolicy.Envelope(n); got != want {
				t.Errorf("retry %d: cenkalti delay %v, stormguard envelope %v", n, got, want)
			}
		}

		// failsafe-go reports the delays it schedules; microsecond
		// settings with the same shape keep the sleeps short.
		p := backoff.Policy{Base: time.Microsecond, Cap: 10 * time.Microsecond, Multiplier: benchMultiplier}
		var delays []time.Duration
		rp := retrypolicy.NewBuilder[any]().
			WithMaxAttempts(attemptCycle+1).
			WithBackoffFactor(p.Base, p.Cap, benchMultiplier).
			OnRetryScheduled(func(e failsafe.ExecutionScheduledEvent[any]) { delays = append(delays, e.Delay) }).
			Build()
		_ = failsafe.With(rp).Run(func() error { return errors.New("fail") })
		if len(delays) != attemptCycle {
			t.Fatalf("failsafe-go scheduled %d retries, want %d", len(delays), attemptCycle)
		}
		for i, got := range delays {
			if want := p.Envelope(i + 1); got != want {
				t.Errorf("retry %d: failsafe-go delay %v, stormguard envelope %v", i+1, got, want)
			}
		}
	})

	t.Run("delay bounds", func(t *testing.T) {
		eb := newCenkaltiBackOff()
		r := rand.New(rand.NewPCG(3, 4))
		for range 100 {
			eb.Reset()
			for n := 1; n <= attemptCycle; n++ {
				e := stormguardPolicy.Envelope(n)
				if d := stormguardPolicy.Delay(n, 0, r.Float64()); d < 0 || d > e {
					t.Fatalf("retry %d: stormguard delay %v outside [0, %v]", n, d, e)
				}
				// cenkalti adds up to 1ns of rounding at the top.
				lo := time.Duration(float64(e) * (1 - peerJitterFactor))
				hi := time.Duration(float64(e)*(1+peerJitterFactor)) + 1
				if d := eb.NextBackOff(); d < lo || d > hi {
					t.Fatalf("retry %d: cenkalti delay %v outside [%v, %v]", n, d, lo, hi)
				}
			}
		}
	})

	ctx := context.Background()
	errFail := errors.New("always fails")
	// Short delays so that the failure runs take microseconds; the attempt
	// limits are the ones the benchmarks use.
	fast := stormguardPolicy
	fast.Base, fast.Cap = time.Microsecond, 10*time.Microsecond
	fastCenkalti := func() []cenkalti.RetryOption {
		eb := newCenkaltiBackOff()
		eb.InitialInterval, eb.MaxInterval = fast.Base, fast.Cap
		return []cenkalti.RetryOption{cenkalti.WithBackOff(eb), cenkalti.WithMaxTries(benchMaxAttempts)}
	}
	fastFailsafe := retrypolicy.NewBuilder[int]().
		WithMaxAttempts(benchMaxAttempts).
		WithBackoffFactor(fast.Base, fast.Cap, benchMultiplier).
		WithJitterFactor(peerJitterFactor).
		ReturnLastFailure()
	budget := mustBudget(t, backoff.BudgetConfig{})

	type runner func(op func() (int, error)) (int, error)
	runners := []struct {
		name string
		run  runner
		// budgeted runs are bounded by a retry budget as well as by the
		// policy, so their failure runs may stop before MaxAttempts.
		budgeted bool
	}{
		{"stormguard", func(op func() (int, error)) (int, error) {
			return 0, backoff.Retry(ctx, fast, func(context.Context) error { _, err := op(); return err })
		}, false},
		{"stormguard-do", func(op func() (int, error)) (int, error) {
			return backoff.Do(ctx, fast, func(context.Context) (int, error) { return op() })
		}, false},
		{"stormguard-budget", func(op func() (int, error)) (int, error) {
			return 0, backoff.Retry(ctx, fast, func(context.Context) error { _, err := op(); return err }, backoff.WithBudget(budget))
		}, true},
		{"failsafe", func(op func() (int, error)) (int, error) {
			return failsafe.With(fastFailsafe.Build()).Get(op)
		}, false},
		{"cenkalti", func(op func() (int, error)) (int, error) {
			return cenkalti.Retry(ctx, op, fastCenkalti()...)
		}, false},
	}
	for _, r := range runners {
		t.Run(r.name+"/success", func(t *testing.T) {
			calls := 0
			if _, err := r.run(func() (int, error) { calls++; return 7, nil }); err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if calls != 1 {
				t.Fatalf("operation called %d times, want 1", calls)
			}
		})
		if r.budgeted {
			continue
		}
		t.Run(r.name+"/failure", func(t *testing.T) {
			calls := 0
			_, err := r.run(func() (int, error) { calls++; return 0, errFail })
			if !errors.Is(err, errFail) {
				t.Fatalf("err = %v, want one matching %v", err, errFail)
			}
			if calls != benchMaxAttempts {
				t.Fatalf("operation called %d times, want %d", calls, benchMaxAttempts)
			}
		})
	}
}
