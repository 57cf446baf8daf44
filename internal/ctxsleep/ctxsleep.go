// Package ctxsleep is the context-aware wait between two attempts that
// backoff.Retry and backoffhttp.Transport share:
//
//	if err := ctxsleep.Sleep(ctx, delay); err != nil {
//		return err // the caller gave up during the wait
//	}
package ctxsleep

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx's error in the second case. A wait that ends at the instant
// ctx is done (or past ctx's deadline, before ctx's own timer has noticed)
// also returns ctx's error: select picks at random among ready cases, and
// the next attempt must never start after the caller has given up. A d of
// zero or less does not wait and returns ctx.Err(). Sleep allocates only
// its timer.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}
