package shed

import (
	"context"
	"errors"
	"sync"
	"time"
)

// CallOption sets an optional property of one call of Queue.Acquire or
// Queue.Do. Options are plain values: passing them does not allocate.
type CallOption struct {
	cost time.Duration
}

// WithCost declares how long the work is expected to take once it runs. The
// queue then never starts it unless it can finish before the context's
// deadline: it is refused at once, even if a worker is free, or dropped
// from the queue, with ErrDeadline as soon as now+cost reaches the
// deadline. Without it the work is dropped only once the deadline itself
// has passed. Negative counts as zero.
func WithCost(d time.Duration) CallOption { return CallOption{cost: d} }

// Queue is queue-aware admission in front of a pool of Workers: a
// concurrency limiter whose wait queue is a Scheduler, read with the real
// clock. It throttles intake by the length of the queue (MaxQueue, the fix
// EC2 named after its 2025 congestive collapse) and by the time spent in it
// (MaxWait, shrinking to Target under CoDel control while a class is
// standing), serves newest first under overload (adaptive LIFO), serves
// Critical work before Normal before Sheddable and sheds it in the reverse
// order (as Lambda protected synchronous calls by throttling asynchronous
// ones), and drops work whose context's deadline has passed or, given its
// declared cost (WithCost), can no longer be met — without running it. See
// Scheduler for the rules.
//
// A waiter is woken by the goroutine that hands it the slot (Release), or
// that refuses it; each waiter also has one timer, so its queue timeout and
// its deadline fire even when no slot frees. A waiter whose context ends
// leaves the queue at once; if a slot was handed to it at that same moment,
// the slot passes on to the next waiter and is never lost. No call starts a
// goroutine, and every timer is stopped before the call returns.
//
// A Queue is safe for concurrent use. Acquire, TryAcquire and Release do not
// allocate unless the call has to wait or is refused.
type Queue struct {
	hook        func(Event)
	callTimeout time.Duration
	mu          sync.Mutex
	paused      bool // guarded by mu
	sched       *Scheduler[*queueWaiter]
	// pushRefusal is the refusal of the call being pushed, which has no
	// waiter yet.
	pushRefusal Refusal
	// adaptive, if not nil, moves the scheduler's workers.
	adaptive *AdaptiveLimit
}

type waitState uint8

const (
	stateWaiting waitState = iota
	stateGranted
	stateRefused
)

// queueWaiter is one goroutine waiting in a Queue. Its state and refusal
// are set under Queue.mu before ready is signalled, and read by the waiter
// under the lock or after the signal. Waiters are not recycled: their
// channel and timer would belong to the testing/synctest bubble, if any, of
// the call that made them, and using them from another is a fatal error.
type queueWaiter struct {
	// ready receives exactly one signal, when the waiter is granted or
	// refused.
	ready   chan struct{}
	timer   *time.Timer
	ticket  Ticket
	state   waitState
	refusal Refusal
}

// NewQueue returns a Queue configured by cfg, or an error that matches
// ErrInvalidConfig and names every invalid field.
func NewQueue(cfg QueueConfig) (*Queue, error) {
	q := &Queue{hook: cfg.OnEvent, callTimeout: cfg.CallTimeout}
	cfg.OnEvent = nil // the shell emits events itself, outside its lock
	s, err := NewScheduler(cfg, q.dropped)
	if err != nil {
		return nil, err
	}
	q.sched = s
	if cfg.Adaptive != nil {
		q.adaptive = newAdaptive(cfg.Adaptive.withDefaults(cfg.Workers))
		s.SetWorkers(q.adaptive.Limit())
	}
	return q, nil
}

// TryAcquire takes a slot if one is free, and reports whether it did. It
// never waits (a free slot means nobody waits). A refusal is counted as
// ErrQueueFull but, to stay allocation-free, returns no error.
func (q *Queue) TryAcquire() bool {
	if q == nil || q.sched == nil {
		return false // not built with NewQueue: Acquire says so
	}
	q.mu.Lock()
	paused := q.paused
	ok := !paused && q.sched.TryRun()
	q.mu.Unlock()
	if !ok {
		reason := ErrQueueFull
		if paused {
			reason = ErrPaused
		}
		q.sched.refused(reason)
		q.emit(Event{Kind: Refused, Reason: reason})
		return false
	}
	q.emitAdmitted(Normal, 0)
	return true
}

// Acquire takes a slot for work of class pri, waiting for one if needed. It
// returns nil once the caller holds a slot (release it with Release), or a
// *Refusal whose reason is:
//
//   - ErrQueueFull: every slot is taken and MaxQueue calls wait, none of
//     lower priority;
//   - ErrEvicted: the call waited and was pushed out by a more critical one;
//   - ErrWaitTimeout: the call waited MaxWait, or Target while its class is
//     standing (Refusal.MaxWait says which bound applied);
//   - ErrDeadline: ctx's deadline has passed, or the work could not finish
//     before it given the cost declared with WithCost;
//   - ErrPaused: the queue is paused, or was paused while the call waited;
//   - ctx's error (context.Canceled), when ctx was cancelled.
//
// ctx's deadline is the work's deadline.
func (q *Queue) Acquire(ctx context.Context, pri Priority, opts ...CallOption) error {
	if q == nil {
		return errNilQueue
	}
	if nilContext(ctx) {
		return errNilContext
	}
	if q.sched == nil {
		return errZeroQueue
	}
	if ctx.Err() != nil {
		r := ctxRefusal(ctx, 0, "")
		q.sched.refused(r.Reason)
		return q.refusal(r, pri)
	}
	it := Item[*queueWaiter]{Priority: pri}
	it.Deadline, _ = ctx.Deadline()
	for _, o := range opts {
		if o.cost != 0 {
			it.Cost = max(o.cost, 0)
		}
	}
	var now time.Time
	if !it.Deadline.IsZero() {
		now = time.Now()
	}
	q.mu.Lock()
	if q.paused {
		q.mu.Unlock()
		q.sched.refused(ErrPaused)
		return q.refusal(&Refusal{Reason: ErrPaused}, pri)
	}
	if it.canMeet(now) && q.sched.TryRun() {
		q.mu.Unlock()
		q.emitAdmitted(pri, 0)
		return nil
	}
	if now.IsZero() {
		now = time.Now()
	}
	// The waiter is made only once the call has to wait: a refusal, the
	// common outcome under overload, costs only its error.
	kind, t := q.sched.Push(now, it)
	switch kind {
	case Admitted:
		q.mu.Unlock()
		q.emitAdmitted(pri, 0)
		return nil
	case Refused:
		r := q.pushRefusal
		q.pushRefusal = Refusal{}
		q.mu.Unlock()
		return q.refusal(&r, pri)
	}
	w := &queueWaiter{ready: make(chan struct{}, 1), ticket: t}
	q.sched.setValue(t, w)
	wake, _ := q.sched.Wake(t)
	q.mu.Unlock()
	q.emitQueued(w, pri)
	return q.wait(ctx, w, pri, now, wake)
}

// wait blocks until w is granted or refused, or ctx ends, checking the
// queue's timeouts and w's deadline at wake.
func (q *Queue) wait(ctx context.Context, w *queueWaiter, pri Priority, enqueued, wake time.Time) error {
	w.timer = time.NewTimer(time.Until(wake))
	for {
		select {
		case <-w.ready:
			if w.state == stateGranted && ctx.Err() != nil {
				// Granted as the context ended: a waiter whose context is
				// done never keeps a slot.
				now := time.Now()
				cancelled := ctxRefusal(ctx, now.Sub(enqueued), "")
				q.mu.Lock()
				q.passOnLocked(now, cancelled.Reason)
				q.mu.Unlock()
				return q.finish(w, pri, enqueued, cancelled)
			}
			return q.finish(w, pri, enqueued, nil)
		case <-w.timer.C:
			now := time.Now()
			q.mu.Lock()
			if w.state == stateWaiting {
				if next, ok := q.sched.Check(now, w.ticket); ok {
					q.mu.Unlock()
					w.timer.Reset(next.Sub(now))
					continue
				}
			}
			// Granted or refused: the signal is in ready.
			q.mu.Unlock()
		case <-ctx.Done():
			now := time.Now()
			cancelled := ctxRefusal(ctx, now.Sub(enqueued), "")
			q.mu.Lock()
			if w.state == stateWaiting {
				if _, ok := q.sched.Remove(now, w.ticket, cancelled.Reason); ok {
					q.mu.Unlock()
					w.timer.Stop()
					return q.refusal(cancelled, pri)
				}
				// Remove found w timed out: refused, and signalled.
			}
			if w.state == stateGranted {
				q.passOnLocked(now, cancelled.Reason)
			}
			q.mu.Unlock()
			<-w.ready
			return q.finish(w, pri, enqueued, cancelled)
		}
	}
}

// finish returns the outcome of a wait whose signal has been received:
// the refusal if w was refused, else nil if it was granted and the caller
// did not give up (cancelled is nil), else cancelled.
func (q *Queue) finish(w *queueWaiter, pri Priority, enqueued time.Time, cancelled *Refusal) error {
	w.timer.Stop()
	if w.state == stateRefused {
		r := w.refusal // the error should not keep the waiter alive
		return q.refusal(&r, pri)
	}
	if cancelled != nil {
		return q.refusal(cancelled, pri)
	}
	q.emitAdmitted(pri, time.Since(enqueued))
	return nil
}

// emitAdmitted tells the hook that the caller now holds a slot. If the
// hook panics (or exits its goroutine), the slot is released on the way
// out: the caller never learns that it holds it, so nobody else would.
func (q *Queue) emitAdmitted(pri Priority, waited time.Duration) {
	if q.hook != nil {
		q.tellAdmitted(pri, waited)
	}
}

// tellAdmitted is emitAdmitted's slow path, apart so that the fast path
// inlines.
func (q *Queue) tellAdmitted(pri Priority, waited time.Duration) {
	told := false
	defer func() {
		if !told {
			q.Release()
		}
	}()
	q.hook(Event{Kind: Admitted, Waited: waited, Priority: pri})
	told = true
}

// emitQueued tells the hook that w joined the queue. If the hook panics,
// w gives up its place on the way out (counted as a cancellation), so
// that no waiter nobody waits for is granted a slot.
func (q *Queue) emitQueued(w *queueWaiter, pri Priority) {
	if q.hook == nil {
		return
	}
	told := false
	defer func() {
		if !told {
			q.abandon(w)
		}
	}()
	q.hook(Event{Kind: Queued, Priority: pri})
	told = true
}

// abandon settles w for a caller that will never wait for it, as if its
// context had ended: it leaves the queue, or passes on the slot it was
// granted meanwhile; a refusal (counted by the scheduler) stands.
func (q *Queue) abandon(w *queueWaiter) {
	now := time.Now()
	q.mu.Lock()
	switch w.state {
	case stateWaiting:
		// If w timed out at or before now, Remove's advance refuses it.
		q.sched.Remove(now, w.ticket, context.Canceled)
	case stateGranted:
		q.passOnLocked(now, context.Canceled)
	}
	q.mu.Unlock()
}

// Release returns a slot taken by Acquire or TryAcquire, handing it
// directly to the next waiter if there is one. Releasing more slots than
// were taken is a caller bug; Release then does nothing rather than corrupt
// the count.
func (q *Queue) Release() {
	if q == nil || q.sched == nil {
		return
	}
	q.mu.Lock()
	if s := q.sched; s.waiting == 0 {
		// Nobody to hand the slot to: no clock needed.
		if s.inFlight > 0 {
			s.inFlight--
		}
	} else {
		q.releaseLocked(time.Now())
	}
	q.mu.Unlock()
}

// releaseLocked hands the caller's slot to the next waiter, or frees it.
func (q *Queue) releaseLocked(now time.Time) {
	if it, ok := q.sched.Done(now); ok {
		w := it.Value
		w.state = stateGranted
		w.ready <- struct{}{}
	}
}

// ReleaseRTT is Release for a queue with an adaptive limit: it also
// reports the work's latency rtt, and whether it was dropped (timed out,
// or refused by the dependency for overload), from which the number of
// workers is learned (see AdaptiveLimit). Workers added are handed to
// waiters at once; workers cut preempt nothing, and no slot is handed on
// until fewer calls run than there are workers. Without an adaptive limit
// it is Release. Like Release, it does nothing, and records nothing, when
// no call is in flight.
func (q *Queue) ReleaseRTT(rtt time.Duration, dropped bool) {
	if q == nil || q.sched == nil {
		return
	}
	if q.adaptive == nil {
		q.Release()
		return
	}
	now := time.Now()
	q.mu.Lock()
	n := q.sched.inFlight
	if n == 0 {
		q.mu.Unlock()
		return
	}
	ch, changed := q.adaptive.observe(now, rtt, n, dropped)
	if changed {
		q.sched.SetWorkers(ch.New)
	}
	q.releaseLocked(now)
	if changed && ch.New > ch.Old {
		for {
			it, ok := q.sched.Next(now)
			if !ok {
				break
			}
			w := it.Value
			w.state = stateGranted
			w.ready <- struct{}{}
		}
	}
	q.mu.Unlock()
	if changed {
		q.adaptive.emit(ch)
	}
}

// Limit returns the number of workers: Workers, or the adaptive limit's.
func (q *Queue) Limit() int {
	if q == nil || q.sched == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sched.workers
}

// AdaptiveStats returns a snapshot of the adaptive limit, and false if the
// queue has none.
func (q *Queue) AdaptiveStats() (AdaptiveStats, bool) {
	if q == nil || q.adaptive == nil {
		return AdaptiveStats{}, false
	}
	return q.adaptive.Stats(), true
}

// passOnLocked hands on a slot that was granted to a waiter as its context
// ended, and counts the waiter as refused for reason instead of admitted.
func (q *Queue) passOnLocked(now time.Time, reason error) {
	q.releaseLocked(now)
	q.sched.revoke(reason)
}

// dropped is the Scheduler's drop function; it runs under q.mu. A nil
// waiter is the call being pushed, refused before it had to wait.
func (q *Queue) dropped(it Item[*queueWaiter], r Refusal) {
	w := it.Value
	if w == nil {
		q.pushRefusal = r
		return
	}
	w.state, w.refusal = stateRefused, r
	w.ready <- struct{}{}
}

// Do runs fn in a slot for work of class pri: it acquires one (see Acquire
// for the refusals), calls fn with ctx, bounded by CallTimeout if one is
// set, and releases the slot when fn returns or panics. With an adaptive
// limit it reports fn's latency, as ReleaseRTT does: an error matching
// context.DeadlineExceeded or ErrShed counts as a drop, and a call whose
// caller cancelled it (or that panicked) reports nothing.
func (q *Queue) Do(ctx context.Context, pri Priority, fn func(context.Context) error, opts ...CallOption) error {
	if q == nil {
		return errNilQueue
	}
	if fn == nil {
		return errNilFunc
	}
	if err := q.Acquire(ctx, pri, opts...); err != nil {
		return err
	}
	if q.adaptive != nil {
		return q.doAdaptive(ctx, fn)
	}
	defer q.Release()
	return callWithTimeout(ctx, q.callTimeout, fn)
}

func (q *Queue) doAdaptive(ctx context.Context, fn func(context.Context) error) error {
	start := time.Now()
	done := false
	defer func() {
		if !done {
			q.Release()
		}
	}()
	err := callWithTimeout(ctx, q.callTimeout, fn)
	done = true
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		q.Release()
	} else {
		q.ReleaseRTT(time.Since(start), dropped(err))
	}
	return err
}

// Pause refuses new work with ErrPaused, and refuses the work already
// waiting, at once; work in flight finishes normally. It is the operator's
// lever of 2011 and 2025: stop intake without a deploy, then Resume.
func (q *Queue) Pause() {
	if q == nil || q.sched == nil {
		return
	}
	q.mu.Lock()
	q.paused = true
	q.sched.DropAll(time.Now(), ErrPaused)
	q.mu.Unlock()
}

// Resume undoes Pause.
func (q *Queue) Resume() {
	if q == nil {
		return
	}
	q.mu.Lock()
	q.paused = false
	q.mu.Unlock()
}

// Paused reports whether the queue is paused.
func (q *Queue) Paused() bool {
	if q == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.paused
}

// Stats returns a snapshot of the calls in flight, waiting, and the
// counters.
func (q *Queue) Stats() Stats {
	if q == nil || q.sched == nil {
		return Stats{}
	}
	q.mu.Lock()
	s := q.sched.Stats()
	q.mu.Unlock()
	return s
}

// Standing reports whether class p is standing (overloaded): its waiters
// then time out after Target and the newest is served first.
func (q *Queue) Standing(p Priority) bool {
	if q == nil || q.sched == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sched.Standing(p)
}

// refusal reports r to the hook and returns it; the scheduler or the caller
// has counted it.
func (q *Queue) refusal(r *Refusal, pri Priority) error {
	q.emit(Event{Kind: Refused, Reason: r.Reason, Waited: r.Waited, Priority: pri})
	return r
}

func (q *Queue) emit(e Event) {
	if q.hook != nil {
		q.hook(e)
	}
}
