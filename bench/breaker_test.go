package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fscircuitbreaker "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/stormguard/stormguard/backoff"
)

// One breaker configuration, expressed in each library's terms: open when at
// least half of the recent calls failed and at least 20 were seen, stay open
// 10s, then try 5 probes.
//
// The windows differ by design. stormguard's default is a count window (the
// last 100 calls), as is failsafe-go's WithFailureThresholdRatio (50 of the
// last 100). gobreaker has no count window, only a rolling time window
// (Interval split into BucketPeriod buckets), so "stormguard-time" runs
// stormguard with the same kind of window (60s in 10 buckets) for the row
// that compares like with like.
const (
	breakerWindowCalls = 100
	breakerMinCalls    = 20
	breakerFailureRate = 0.5
	breakerOpenWait    = 10 * time.Second
	breakerProbes      = 5
	breakerWindow      = 60 * time.Second
	breakerBuckets     = 10
)

var errBreakerOp = errors.New("bench: the operation failed")

func newStormguardBreaker(tb testing.TB, window backoff.WindowKind) *backoff.Breaker {
	tb.Helper()
	b, err := backoff.NewBreaker(backoff.BreakerConfig{
		Window:         window,
		WindowCalls:    breakerWindowCalls,
		WindowDuration: breakerWindow,
		Buckets:        breakerBuckets,
		MinCalls:       breakerMinCalls,
		FailureRate:    breakerFailureRate,
		OpenWait:       breakerOpenWait,
		Probes:         breakerProbes,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func gobreakerSettings() gobreaker.Settings {
	return gobreaker.Settings{
		MaxRequests:  breakerProbes,
		Interval:     breakerWindow,
		BucketPeriod: breakerWindow / breakerBuckets,
		Timeout:      breakerOpenWait,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= breakerMinCalls &&
				float64(c.TotalFailures) >= breakerFailureRate*float64(c.Requests)
		},
	}
}

func newFailsafeBreaker() fscircuitbreaker.CircuitBreaker[any] {
	return fscircuitbreaker.NewBuilder[any]().
		WithFailureThresholdRatio(uint(breakerFailureRate*breakerWindowCalls), breakerWindowCalls).
		WithDelay(breakerOpenWait).
		WithSuccessThreshold(breakerProbes).
		Build()
}

// TestBreakerPeersEquivalent checks that the configurations of
// BenchmarkBreaker admit every call while the calls succeed, and that each
// breaker opens (refuses) once every call of a full window has failed.
func TestBreakerPeersEquivalent(t *testing.T) {
	ctx := context.Background()
	ok := func() error { return nil }
	type peer struct {
		name string
		call func(op func() error) (admitted bool)
	}
	sgCount := newStormguardBreaker(t, backoff.CountWindow)
	sgTime := newStormguardBreaker(t, backoff.TimeWindow)
	gb := gobreaker.NewCircuitBreaker[struct{}](gobreakerSettings())
	gb2 := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreakerSettings())
	fs := newFailsafeBreaker()
	fsExec := failsafe.With[any](newFailsafeBreaker())
	sgCall := func(b *backoff.Breaker) func(func() error) bool {
		return func(op func() error) bool {
			tk, err := b.Allow()
			if err != nil {
				return false
			}
			b.Record(tk, op())
			return true
		}
	}
	peers := []peer{
		{"stormguard", sgCall(sgCount)},
		{"stormguard-time", sgCall(sgTime)},
		{"stormguard-call", func(op func() error) bool {
			b := sgCount
			err := b.Call(ctx, func(context.Context) error { return op() })
			return !errors.Is(err, backoff.ErrBreakerOpen)
		}},
		{"gobreaker", func(op func() error) bool {
			_, err := gb.Execute(func() (struct{}, error) { return struct{}{}, op() })
			return !errors.Is(err, gobreaker.ErrOpenState)
		}},
		{"gobreaker-twostep", func(op func() error) bool {
			done, err := gb2.Allow()
			if err != nil {
				return false
			}
			done(op())
			return true
		}},
		{"failsafe", func(op func() error) bool {
			if !fs.TryAcquirePermit() {
				return false
			}
			if err := op(); err != nil {
				fs.RecordFailure()
			} else {
				fs.RecordSuccess()
			}
			return true
		}},
		{"failsafe-run", func(op func() error) bool {
			err := fsExec.Run(op)
			return !errors.Is(err, fscircuitbreaker.ErrOpen)
		}},
	}
	for _, p := range peers {
		if p.name == "stormguard-call" {
			continue // shares sgCount with "stormguard"; checked below
		}
		for i := range 1000 {
			if !p.call(ok) {
				t.Fatalf("%s: success %d refused by a closed breaker", p.name, i)
			}
		}
		checkOpens(t, p.name, p.call)
	}
	// The stormguard-call form: a fresh breaker, same checks.
	sgCount = newStormguardBreaker(t, backoff.CountWindow)
	for i := range 1000 {
		if !peers[2].call(ok) {
			t.Fatalf("stormguard-call: success %d refused by a closed breaker", i)
		}
	}
	checkOpens(t, "stormguard-call", peers[2].call)
}

// checkOpens feeds failures to a breaker that has just admitted 1000
// successes, and fails t unless it refuses a call once the failures are at
// least half of what its window holds: at most 1000 failures for the
// 60s-time-window breakers, at most 100 for the count windows of 100.
func checkOpens(t *testing.T, name string, call func(op func() error) bool) {
	t.Helper()
	fail := func() error { return errBreakerOp }
	for i := range 1000 + breakerWindowCalls {
		if !call(fail) {
			if i < breakerMinCalls/2 {
				t.Errorf("%s: refused after only %d failures", name, i)
			}
			return
		}
	}
	t.Errorf("%s: still admits calls after %d failures", name, 1000+breakerWindowCalls)
}

// BenchmarkBreaker measures, in the closed state, one call's admission and
// the recording of its (successful) result: what every call through a
// healthy dependency pays. "stormguard" is Allow+Record on the default count
// window, "stormguard-time" the same on a 60s time window like gobreaker's,
// "stormguard-call" Breaker.Call around an operation; "gobreaker" is
// CircuitBreaker.Execute (its usual form) and "gobreaker-twostep"
// TwoStepCircuitBreaker's Allow and done; "failsafe" is TryAcquirePermit +
// RecordSuccess and "failsafe-run" the executor's Run.
func BenchmarkBreaker(b *testing.B) {
	runCases(b, breakerCases(), false)
}

// BenchmarkBreakerParallel is BenchmarkBreaker from GOMAXPROCS goroutines on
// one shared breaker: the contention a busy client's breaker sees.
func BenchmarkBreakerParallel(b *testing.B) {
	runCases(b, breakerCases(), true)
}

func breakerCases() []benchCase {
	ctx := context.Background()
	sg := func(window backoff.WindowKind) func(b *testing.B) func() {
		return func(b *testing.B) func() {
			br := newStormguardBreaker(b, window)
			return func() {
				t, err := br.Allow()
				if err != nil {
					b.Error(err)
				}
				br.Record(t, nil)
			}
		}
	}
	return []benchCase{
		{"stormguard", sg(backoff.CountWindow)},
		{"stormguard-time", sg(backoff.TimeWindow)},
		{"stormguard-call", func(b *testing.B) func() {
			br := newStormguardBreaker(b, backoff.CountWindow)
			op := func(context.Context) error { return nil }
			return func() {
				if err := br.Call(ctx, op); err != nil {
					b.Error(err)
				}
			}
		}},
		{"gobreaker", func(b *testing.B) func() {
			cb := gobreaker.NewCircuitBreaker[struct{}](gobreakerSettings())
			op := func() (struct{}, error) { return struct{}{}, nil }
			return func() {
				if _, err := cb.Execute(op); err != nil {
					b.Error(err)
				}
			}
		}},
		{"gobreaker-twostep", func(b *testing.B) func() {
			cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreakerSettings())
			return func() {
				done, err := cb.Allow()
				if err != nil {
					b.Error(err)
				}
				done(nil)
			}
		}},
		{"failsafe", func(b *testing.B) func() {
			cb := newFailsafeBreaker()
			return func() {
				if !cb.TryAcquirePermit() {
					b.Error("refused")
				}
				cb.RecordSuccess()
			}
		}},
		{"failsafe-run", func(b *testing.B) func() {
			exec := failsafe.With[any](newFailsafeBreaker())
			op := func() error { return nil }
			return func() {
				if err := exec.Run(op); err != nil {
					b.Error(err)
				}
			}
		}},
	}
}
