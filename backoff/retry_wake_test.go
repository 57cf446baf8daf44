package backoff

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestRetryNoAttemptAfterDeadlineAtWake: when the retry wait ends at the
// very instant the caller's deadline passes, both the wait's timer and the
// context are ready at once; Retry must not make another attempt (a select
// between the two picks either at random, so the old code attempted again
// in about half of the rounds).
func TestRetryNoAttemptAfterDeadlineAtWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Base: 10 * time.Millisecond, Cap: 10 * time.Millisecond, Multiplier: 1, Jitter: JitterNone, MaxAttempts: 5}
		for round := range 64 {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
			attempts := 0
			err := Retry(ctx, p, func(context.Context) error {
				attempts++
				return errors.New("unavailable")
			})
			cancel()
			if attempts != 1 {
				t.Fatalf("round %d: %d attempts; the second would start at the deadline, after the caller's context is done", round, attempts)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("round %d: err = %v, want the deadline", round, err)
			}
		}
	})
}
