package lease_test

import (
	"errors"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"pgregory.net/rapid"
)

// TestRecoveryRetryProperties: keys whose establishments fail at the same
// instant are retried at spread-out times, each within [failure, failure +
// Retry's largest delay]; and the retry schedule is a function of the seed
// of RecoveryConfig.Rand alone.
func TestRecoveryRetryProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(2, 40).Draw(rt, "keys")
		p := backoff.Policy{
			Base:   time.Duration(rapid.Int64Range(int64(10*time.Millisecond), int64(time.Second)).Draw(rt, "base")),
			Jitter: rapid.SampledFrom([]backoff.Jitter{backoff.JitterFull, backoff.JitterEqual, backoff.JitterDecorrelated}).Draw(rt, "jitter"),
		}
		seed := rapid.Uint64().Draw(rt, "seed")
		fail := t0.Add(time.Millisecond)
		schedule := func() map[int]time.Time {
			r, err := lease.NewRecovery[int](lease.RecoveryConfig{Workers: n, MaxQueue: n, TTL: time.Hour, AttemptTimeout: time.Minute,
				InitialCost: time.Millisecond, Retry: p, Rand: rand.New(rand.NewPCG(seed, 2025))})
			if err != nil {
				rt.Fatal(err)
			}
			return failTogether(rt, r, n, fail, fail.Add(p.MaxDelay()))
		}
		got := schedule()
		if len(got) != n {
			rt.Fatalf("%d of %d keys retried within the largest delay %v", len(got), n, p.MaxDelay())
		}
		distinct := map[time.Time]bool{}
		for k, s := range got {
			if s.Before(fail) || s.After(fail.Add(p.MaxDelay())) {
				rt.Fatalf("key %d retried %v after the failure, outside [0, %v]", k, s.Sub(fail), p.MaxDelay())
			}
			distinct[s] = true
		}
		if len(distinct) < n-n/10 {
			rt.Fatalf("%d keys failed together are retried at only %d distinct instants", n, len(distinct))
		}
		if again := schedule(); !maps.Equal(got, again) {
			rt.Fatalf("the same seed gave two schedules:\n%v\n%v", got, again)
		}
	})
}

// TestRecoveryMaxElapsedProperty: a key whose establishment always fails is
// failed in the end under any valid Retry policy, after at most
// MaxAttempts attempts, and no retry starts more than MaxElapsed after its
// first attempt started.
func TestRecoveryMaxElapsedProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		p := backoff.Policy{
			Base:       time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(100*time.Millisecond)).Draw(rt, "base")),
			Jitter:     rapid.SampledFrom([]backoff.Jitter{backoff.JitterFull, backoff.JitterEqual, backoff.JitterDecorrelated, backoff.JitterNone}).Draw(rt, "jitter"),
			MaxElapsed: time.Duration(rapid.Int64Range(0, int64(2*time.Second)).Draw(rt, "maxElapsed")),
		}
		if p.MaxElapsed > 0 && rapid.Bool().Draw(rt, "unlimited") {
			p.MaxAttempts = backoff.Unlimited
		} else {
			p.MaxAttempts = rapid.IntRange(1, 10).Draw(rt, "maxAttempts")
		}
		r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: time.Hour, AttemptTimeout: time.Second,
			InitialCost: time.Millisecond, Retry: p, Rand: rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 0))})
		if err != nil {
			rt.Fatal(err)
		}
		if err := r.Add(t0, "k"); err != nil {
			rt.Fatal(err)
		}
		as := r.Start(t0, nil)
		first := t0
		for attempts := 1; ; attempts++ {
			if len(as) != 1 {
				rt.Fatalf("attempt %d: %d attempts handed out, want 1", attempts, len(as))
			}
			if p.MaxElapsed > 0 && as[0].Started.Sub(first) > p.MaxElapsed {
				rt.Fatalf("attempt %d started %v after the first, beyond MaxElapsed %v", attempts, as[0].Started.Sub(first), p.MaxElapsed)
			}
			if p.MaxAttempts > 0 && attempts > p.MaxAttempts {
				rt.Fatalf("attempt %d beyond MaxAttempts %d", attempts, p.MaxAttempts)
			}
			cost := time.Duration(rapid.Int64Range(int64(10*time.Millisecond), int64(100*time.Millisecond)).Draw(rt, "cost"))
			now := as[0].Started.Add(cost)
			r.Finish(now, as[0], errors.New("refused"), nil)
			if r.Progress(now).Failed == 1 {
				return
			}
			if attempts > 1000 {
				rt.Fatalf("still retrying after %d attempts and %v", attempts, now.Sub(first))
			}
			wake, ok := r.Wake()
			if !ok {
				rt.Fatalf("attempt %d failed, key neither failed nor due again", attempts)
			}
			as = r.Start(wake, nil)
		}
	})
}
