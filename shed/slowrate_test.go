package shed

import (
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"
)

// TestKeyedLimiterSlowRateKeepsKeys: however slow the rate, a key whose
// bucket is not full is never forgotten for another key, so forgetting it
// cannot hand it a fresh bucket. (The time to refill once overflowed
// int64 and went negative, which made every key forgettable at once.)
func TestKeyedLimiterSlowRateKeepsKeys(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		burst int
	}{
		{1.0 / 86400, 1_000_000}, // one a day, a million at once
		{1e-10, 1},
		{1e-300, 1},
		{math.SmallestNonzeroFloat64, math.MaxInt32},
	} {
		k, err := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: tt.rate, Burst: tt.burst}, MaxKeys: 1})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Unix(1_700_000_000, 0)
		spent := min(tt.burst, 1000)
		for i := range spent {
			if err := k.AllowAt(t0, "a"); err != nil {
				t.Fatalf("rate %v burst %d: event %d of a refused: %v", tt.rate, tt.burst, i, err)
			}
		}
		if err := k.AllowAt(t0.Add(time.Nanosecond), "b"); !errors.Is(err, ErrTooManyKeys) {
			t.Fatalf("rate %v burst %d: b got %v 1ns after a spent %d tokens, want ErrTooManyKeys", tt.rate, tt.burst, err, spent)
		}
		for _, at := range []time.Duration{time.Hour, 1000 * time.Hour} {
			if err := k.AllowAt(t0.Add(at), "b"); !errors.Is(err, ErrTooManyKeys) {
				t.Fatalf("rate %v burst %d: b got %v %v after a spent %d tokens, want ErrTooManyKeys", tt.rate, tt.burst, err, at, spent)
			}
		}
		if s, ok := k.StatsFor("a"); !ok || s.Admitted != int64(spent) {
			t.Fatalf("rate %v burst %d: a forgotten or reset: %+v, %v", tt.rate, tt.burst, s, ok)
		}
	}
}

// TestSlowRateRetryIn: a rate limiter's refusal says when its next token
// is due, saturating at the longest time.Duration rather than wrapping to a
// negative hint that would have a client retry at once.
func TestSlowRateRetryIn(t *testing.T) {
	for _, r := range []float64{1.0 / 86400, 1e-10, 1e-300, math.SmallestNonzeroFloat64} {
		k, err := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: r, Burst: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Unix(1_700_000_000, 0)
		if err := k.AllowAt(t0, "a"); err != nil {
			t.Fatal(err)
		}
		err = k.AllowAt(t0, "a")
		var ref *Refusal
		if !errors.As(err, &ref) || ref.Reason != ErrRateLimited {
			t.Fatalf("rate %v: got %v, want ErrRateLimited", r, err)
		}
		want := time.Duration(math.MaxInt64)
		if s := 1 / r; s < float64(math.MaxInt64/int64(time.Second)) {
			want = time.Duration(math.Ceil(s * float64(time.Second)))
		}
		if ref.RetryAfter() != want {
			t.Fatalf("rate %v: KeyedLimiter RetryAfter %v, want %v", r, ref.RetryAfter(), want)
		}

		synctest.Test(t, func(t *testing.T) {
			l, err := NewLimiter(LimiterConfig{Rate: r, Burst: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			err = l.Wait(t.Context())
			var ref *Refusal
			if !errors.As(err, &ref) || ref.Reason != ErrRateLimited {
				t.Fatalf("rate %v: Wait got %v, want ErrRateLimited", r, err)
			}
			if ref.RetryAfter() < want-time.Microsecond {
				t.Fatalf("rate %v: Limiter RetryAfter %v, want about %v", r, ref.RetryAfter(), want)
			}
		})
	}
}

// TestKeyedLimiterForgetsOnlyFullBuckets: for any rate and burst, a key
// that has spent tokens is forgotten for a new key only once its bucket is
// full again, and a refusal's RetryIn is never negative.
func TestKeyedLimiterForgetsOnlyFullBuckets(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		r := math.Pow(10, rapid.Float64Range(-300, 12).Draw(rt, "log10Rate"))
		burst := rapid.IntRange(1, 1<<20).Draw(rt, "burst")
		k, err := NewKeyedLimiter[int](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: r, Burst: burst}, MaxKeys: 1})
		if err != nil {
			rt.Fatal(err)
		}
		now := time.Unix(1_700_000_000, 0)
		spent := rapid.IntRange(1, min(burst+1, 20)).Draw(rt, "spent")
		for range spent {
			if err := k.AllowAt(now, 0); err != nil {
				var ref *Refusal
				if !errors.As(err, &ref) || ref.Reason != ErrRateLimited || ref.RetryIn <= 0 {
					rt.Fatalf("refusal %v with RetryIn %v", err, ref.RetryIn)
				}
			}
		}
		// The time to refill what was spent, in seconds.
		refill := float64(min(spent, burst)) / r
		d := time.Duration(rapid.Int64Range(1, math.MaxInt64/2).Draw(rt, "after"))
		err = k.AllowAt(now.Add(d), 1)
		switch {
		case d.Seconds() < refill*(1-1e-9) && errors.Is(err, ErrTooManyKeys):
		case d.Seconds() > refill*(1+1e-9) && err == nil:
		case math.Abs(d.Seconds()-refill) <= refill*1e-9:
		default:
			rt.Fatalf("new key %v after spending %d of %d at %v/s (refill %vs): %v", d, spent, burst, r, refill, err)
		}
	})
}
