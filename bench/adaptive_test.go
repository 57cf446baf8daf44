package bench

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fsadaptivelimiter "github.com/failsafe-go/failsafe-go/adaptivelimiter"

	"github.com/stormguard/stormguard/shed"
)

// One adaptive limit configuration in each library's terms: limits in
// [1, 200], starting at 20 (failsafe-go's defaults; stormguard's MaxLimit is
// set to match). Both start far below anything a benchmark holds at once
// (one call, or one per goroutine), so nothing is ever refused and the
// benchmarks measure the admission and the recording of one sample.
const (
	adaptiveMinLimit     = 1
	adaptiveMaxLimit     = 200
	adaptiveInitialLimit = 20
	// adaptiveRTT is the latency reported by the rows that report one they
	// did not measure.
	adaptiveRTT = 10 * time.Millisecond
)

func newStormguardAdaptive(tb testing.TB) *shed.AdaptiveLimit {
	tb.Helper()
	a, err := shed.NewAdaptiveLimit(shed.AdaptiveConfig{
		MinLimit:     adaptiveMinLimit,
		MaxLimit:     adaptiveMaxLimit,
		InitialLimit: adaptiveInitialLimit,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func newFailsafeAdaptive() fsadaptivelimiter.AdaptiveLimiter[any] {
	return fsadaptivelimiter.NewBuilder[any]().
		WithLimits(adaptiveMinLimit, adaptiveMaxLimit, adaptiveInitialLimit).
		Build()
}

// TestAdaptivePeersEquivalent checks that both limiters start at the same
// limit, admit that many calls at once and refuse the next.
func TestAdaptivePeersEquivalent(t *testing.T) {
	sg := newStormguardAdaptive(t)
	fs := newFailsafeAdaptive()
	if sg.Limit() != adaptiveInitialLimit || fs.Limit() != adaptiveInitialLimit {
		t.Fatalf("initial limits: stormguard %d, failsafe-go %d; want %d", sg.Limit(), fs.Limit(), adaptiveInitialLimit)
	}
	var permits []fsadaptivelimiter.Permit
	for i := range adaptiveInitialLimit {
		if !sg.TryAcquire() {
			t.Fatalf("stormguard: call %d refused under the limit", i)
		}
		p, ok := fs.TryAcquirePermit()
		if !ok {
			t.Fatalf("failsafe-go: call %d refused under the limit", i)
		}
		permits = append(permits, p)
	}
	if sg.TryAcquire() {
		t.Error("stormguard: admits a call beyond its limit")
	}
	if _, ok := fs.TryAcquirePermit(); ok {
		t.Error("failsafe-go: admits a call beyond its limit")
	}
	for _, p := range permits {
		sg.ReleaseRTT(adaptiveRTT, false)
		p.Record()
	}
	if got := sg.Stats().InFlight; got != 0 {
		t.Errorf("stormguard: %d in flight after every release", got)
	}
	if got := fs.Inflight(); got != 0 {
		t.Errorf("failsafe-go: %d in flight after every release", got)
	}
}

// BenchmarkAdaptiveLimit measures one acquire and one release that records
// the call's latency, on a limit with room.
//
//   - "stormguard": TryAcquire, then ReleaseRTT with a latency the caller
//     already has (ReleaseRTT reads the clock once, for the window's time).
//   - "stormguard-timed": the same, with the caller measuring the latency
//     (time.Now before, time.Since after), as failsafe-go's permit does
//     internally: the like-for-like row.
//   - "stormguard-do": AdaptiveLimit.Do around an operation.
//   - "failsafe": TryAcquirePermit, then Permit.Record (which reads the
//     clock at both ends).
//   - "failsafe-acquire": AcquirePermit(ctx), the blocking form.
//   - "failsafe-run": the policy in an executor, failsafe.With(l).Run.
func BenchmarkAdaptiveLimit(b *testing.B) {
	runCases(b, adaptiveCases(), false)
}

// BenchmarkAdaptiveLimitParallel is BenchmarkAdaptiveLimit from GOMAXPROCS
// goroutines on one shared limit.
func BenchmarkAdaptiveLimitParallel(b *testing.B) {
	runCases(b, adaptiveCases(), true)
}

func adaptiveCases() []benchCase {
	ctx := context.Background()
	return []benchCase{
		{"stormguard", func(b *testing.B) func() {
			a := newStormguardAdaptive(b)
			return func() {
				if !a.TryAcquire() {
					b.Error("refused")
					return
				}
				a.ReleaseRTT(adaptiveRTT, false)
			}
		}},
		{"stormguard-timed", func(b *testing.B) func() {
			a := newStormguardAdaptive(b)
			return func() {
				start := time.Now()
				if !a.TryAcquire() {
					b.Error("refused")
					return
				}
				a.ReleaseRTT(time.Since(start), false)
			}
		}},
		{"stormguard-do", func(b *testing.B) func() {
			a := newStormguardAdaptive(b)
			op := func(context.Context) error { return nil }
			return func() {
				if err := a.Do(ctx, op); err != nil {
					b.Error(err)
				}
			}
		}},
		{"failsafe", func(b *testing.B) func() {
			l := newFailsafeAdaptive()
			return func() {
				p, ok := l.TryAcquirePermit()
				if !ok {
					b.Error("refused")
					return
				}
				p.Record()
			}
		}},
		{"failsafe-acquire", func(b *testing.B) func() {
			l := newFailsafeAdaptive()
			return func() {
				p, err := l.AcquirePermit(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				p.Record()
			}
		}},
		{"failsafe-run", func(b *testing.B) func() {
			exec := failsafe.With[any](newFailsafeAdaptive())
			op := func() error { return nil }
			return func() {
				if err := exec.Run(op); err != nil {
					b.Error(err)
				}
			}
		}},
	}
}
