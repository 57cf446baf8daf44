package lease

import (
	"context"
	"errors"
	"time"
)

// Run is the thin shell of Recovery: it drives r on the real clock until
// ctx ends. Each attempt r hands out runs as fn(actx, a) on its own
// goroutine, where actx ends at a.Deadline (or when ctx ends), so at most
// Workers run at once; fn returns nil if it established or renewed the
// lease, and its error otherwise — a *LostError for a renewal the table
// refused, the table's *HeldError for an establishment it refused as held
// (so that a lease of r's own is waited out rather than counted). Run reports each result to r, starts what r hands out next, and
// wakes at r.Wake for renewals and retries. onProgress, if not nil, is
// called on Run's goroutine with r's Progress after every finished attempt;
// it must be cheap and must not block.
//
// Run owns r while it runs: add the keys before calling it and do not call
// r from elsewhere until it returns. When ctx ends, Run waits for the
// attempts in flight to return (their contexts are done) and returns
// ctx's error, leaving no goroutine behind; r is then spent, since the
// results of those last attempts are not recorded. A nil ctx or fn is an
// error matching ErrInvalidArgument, and a Recovery not made by NewRecovery
// one matching ErrInvalidConfig; Run then does nothing.
func (r *Recovery[K]) Run(ctx context.Context, fn func(context.Context, Attempt[K]) error, onProgress func(Progress)) error {
	var errCtx, errFn, errZero error
	if ctx == nil {
		errCtx = errNilContext
	}
	if fn == nil {
		errFn = errNilFunc
	}
	if r == nil || r.sched == nil {
		errZero = errNoRecovery
	}
	if err := errors.Join(errCtx, errFn, errZero); err != nil {
		return err
	}
	type result struct {
		a   Attempt[K]
		err error
	}
	results := make(chan result, r.cfg.Workers)
	running := 0
	start := func(as []Attempt[K]) {
		for _, a := range as {
			running++
			go func() {
				actx, cancel := context.WithDeadline(ctx, a.Deadline)
				err := fn(actx, a)
				cancel()
				results <- result{a, err}
			}()
		}
	}
	var buf []Attempt[K]
	buf = r.Start(time.Now(), buf[:0])
	start(buf)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var wakeC <-chan time.Time
		if t, ok := r.Wake(); ok {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(time.Until(t))
			wakeC = timer.C
		}
		select {
		case res := <-results:
			running--
			buf = r.Finish(time.Now(), res.a, res.err, buf[:0])
			start(buf)
			if onProgress != nil {
				onProgress(r.Progress(time.Now()))
			}
		case <-wakeC:
			buf = r.Start(time.Now(), buf[:0])
			start(buf)
		case <-ctx.Done():
			for ; running > 0; running-- {
				<-results
			}
			return ctx.Err()
		}
	}
}
