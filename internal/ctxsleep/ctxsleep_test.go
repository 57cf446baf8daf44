package ctxsleep_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/internal/ctxsleep"
	"github.com/stormguard/stormguard/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// A wait that ends on its own returns nil after exactly d.
func TestSleepWaitsForD(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := ctxsleep.Sleep(t.Context(), 3*time.Second); err != nil {
			t.Fatalf("Sleep: %v, want nil", err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Fatalf("slept %v, want 3s", got)
		}
	})
}

// A d of zero or less does not wait, and reports a context already done.
func TestSleepNonPositive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, d := range []time.Duration{0, -1, time.Duration(-1 << 63)} {
			start := time.Now()
			if err := ctxsleep.Sleep(t.Context(), d); err != nil || time.Since(start) != 0 {
				t.Fatalf("Sleep(%v): %v after %v, want nil at once", d, err, time.Since(start))
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := ctxsleep.Sleep(ctx, d); !errors.Is(err, context.Canceled) {
				t.Fatalf("Sleep(%v) on a cancelled context: %v, want context.Canceled", d, err)
			}
		}
	})
}

// A cancel during the wait ends it at once with the context's error.
func TestSleepCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		if err := ctxsleep.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep: %v, want context.Canceled", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("returned after %v, want 1s (the cancel)", got)
		}
	})
}

// A wait that ends at the instant of ctx's deadline, or with a deadline
// shorter than d, returns DeadlineExceeded every time, never nil.
func TestSleepDeadlineAtWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for range 100 {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			if err := ctxsleep.Sleep(ctx, time.Second); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Sleep to the deadline: %v, want context.DeadlineExceeded", err)
			}
			cancel()
			ctx, cancel = context.WithTimeout(t.Context(), time.Second)
			if err := ctxsleep.Sleep(ctx, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Sleep past the deadline: %v, want context.DeadlineExceeded", err)
			}
			cancel()
		}
	})
}
