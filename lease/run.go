package lease

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"
)

// Run is the thin shell of Recovery: it drives r on the real clock until
// ctx ends. Each attempt r hands out runs as fn(actx, a) on its own
// goroutine, where actx ends at a.Deadline (or when ctx ends), so at most
// Workers attempts are outstanding at once; fn returns nil if it
// established or renewed the lease, and its error otherwise — a
// *LostError for a renewal the table refused, the table's *HeldError for
// an establishment it refused as held (so that a lease of r's own is
// waited out rather than counted), or an error matching ErrRemoveKey if
// the key is no longer wanted (a droplet retired), which removes it from r
// (see Recovery.Remove): it is not attempted again. Run reports each result to r, starts
// what r hands out next, and wakes at r.Wake for renewals and retries.
// onProgress, if not nil, is called on Run's goroutine with r's Progress
// after every finished attempt; it must be cheap and must not block.
//
// A call of fn that ignores its context and has not returned by the
// attempt's Deadline (a Store call that hangs) is not waited for: Run
// reports the attempt as failed (ErrTimeout) at the Deadline, so that its
// worker takes the next attempt, and ignores the call's answer if it ever
// comes. Such a call still runs, beyond the Workers bound, until it
// returns.
//
// Run owns r while it runs: add the keys before calling it and do not call
// r from elsewhere until it returns; remove a key meanwhile by returning
// ErrRemoveKey from its next attempt (at the latest its next renewal). When ctx ends, Run waits for the
// attempts in flight to return (their contexts are done), but for none past
// its Deadline, and returns ctx's error, leaving no goroutine behind but
// calls of fn that ignore their context; r is then spent, since the
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
	results := make(chan result)
	stop := make(chan struct{})
	defer close(stop) // a call that returns after Run does drops its answer
	// live holds the attempts whose answer is awaited, by id; due orders
	// them by deadline (an attempt no longer live is skipped there).
	live := make(map[uint64]struct{})
	var due attemptHeap[K]
	start := func(as []Attempt[K]) {
		for _, a := range as {
			live[a.id] = struct{}{}
			heap.Push(&due, a)
			go func() {
				actx, cancel := context.WithDeadline(ctx, a.Deadline)
				err := fn(actx, a)
				cancel()
				select {
				case results <- result{a, err}:
				case <-stop:
				}
			}()
		}
	}
	// first returns the earliest deadline of a live attempt.
	first := func() (time.Time, bool) {
		for len(due) > 0 {
			if _, ok := live[due[0].id]; ok {
				return due[0].Deadline, true
			}
			heap.Pop(&due)
		}
		return time.Time{}, false
	}
	var buf []Attempt[K]
	finish := func(now time.Time, a Attempt[K], err error) {
		delete(live, a.id)
		buf = r.Finish(now, a, err, buf[:0])
		start(buf)
		if onProgress != nil {
			onProgress(r.Progress(now))
		}
	}
	// abandon reports as timed out every live attempt whose deadline has
	// passed at now.
	abandon := func(now time.Time) {
		for {
			d, ok := first()
			if !ok || now.Before(d) {
				return
			}
			a := heap.Pop(&due).(Attempt[K])
			finish(now, a, fmt.Errorf("lease: %v of %v not returned by its deadline: %w", a.Kind, a.Key, ErrTimeout))
		}
	}
	buf = r.Start(time.Now(), buf[:0])
	start(buf)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t, ok := r.Wake()
		if d, any := first(); any && (!ok || d.Before(t)) {
			t, ok = d, true
		}
		var wakeC <-chan time.Time
		if ok {
			timer.Reset(time.Until(t))
			wakeC = timer.C
		}
		select {
		case res := <-results:
			if _, ok := live[res.a.id]; ok {
				finish(time.Now(), res.a, res.err)
			}
		case <-wakeC:
			now := time.Now()
			abandon(now)
			buf = r.Start(now, buf[:0])
			start(buf)
		case <-ctx.Done():
			for {
				d, any := first()
				if !any {
					return ctx.Err()
				}
				timer.Reset(time.Until(d))
				select {
				case res := <-results:
					delete(live, res.a.id)
				case <-timer.C:
					for d, any := first(); any && !time.Now().Before(d); d, any = first() {
						delete(live, heap.Pop(&due).(Attempt[K]).id)
					}
				}
			}
		}
	}
}

// attemptHeap orders attempts by deadline.
type attemptHeap[K comparable] []Attempt[K]

func (h attemptHeap[K]) Len() int           { return len(h) }
func (h attemptHeap[K]) Less(i, j int) bool { return h[i].Deadline.Before(h[j].Deadline) }
func (h attemptHeap[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *attemptHeap[K]) Push(x any)        { *h = append(*h, x.(Attempt[K])) }
func (h *attemptHeap[K]) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = Attempt[K]{}
	*h = old[:len(old)-1]
	return a
}
