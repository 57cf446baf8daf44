package shed

import (
	"context"
	"errors"
	"time"
)

// waiter is one goroutine waiting for a slot in a Bulkhead or Partition. It
// sits in an intrusive FIFO list guarded by the owner's mutex.
type waiter struct {
	ready      chan struct{} // closed when the slot is granted or the waiter refused
	granted    bool          // set under the owner's lock before ready is closed
	refusal    error         // set instead of granted when the owner refuses a queued waiter (pause)
	enqueued   time.Time
	key        *keyCore // Partition only
	prev, next *waiter
}

// waitList is a FIFO of waiters.
type waitList struct {
	head, tail *waiter
	len        int
}

func (l *waitList) pushBack(w *waiter) {
	w.prev, w.next = l.tail, nil
	if l.tail == nil {
		l.head = w
	} else {
		l.tail.next = w
	}
	l.tail = w
	l.len++
}

func (l *waitList) remove(w *waiter) {
	if w.prev == nil {
		l.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		l.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next = nil, nil
	l.len--
}

// grant hands w a slot; the caller holds the owner's lock and has removed w
// from its list.
func (w *waiter) grant() {
	w.granted = true
	close(w.ready)
}

// refuse wakes w with err; the caller holds the owner's lock and has removed
// w from its list.
func (w *waiter) refuse(err error) {
	w.refusal = err
	close(w.ready)
}

// waitOutcome is how a wait ended.
type waitOutcome uint8

const (
	waitGranted waitOutcome = iota
	waitRefused             // the owner refused the waiter; see waiter.refusal
	waitTimedOut
	waitCtxDone
)

// wait blocks until w is granted or refused, maxWait passes, or ctx is done.
// It does not touch the owner's state: on a timeout or a done context the
// caller must take its lock and check w.granted, since a grant may have
// raced with the timer.
func (w *waiter) wait(ctx context.Context, maxWait time.Duration) waitOutcome {
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case <-w.ready:
		if w.granted {
			return waitGranted
		}
		return waitRefused
	case <-t.C:
		return waitTimedOut
	case <-ctx.Done():
		return waitCtxDone
	}
}

// ctxRefusal turns a context that ended a wait into a refusal: a passed
// deadline means the work can no longer be done in time (ErrDeadline); a
// plain cancellation keeps the context's error as the reason.
func ctxRefusal(ctx context.Context, waited time.Duration, key string) *Refusal {
	err := ctx.Err()
	r := &Refusal{Reason: err, Key: key, Waited: waited}
	if errors.Is(err, context.DeadlineExceeded) {
		r.Reason = ErrDeadline
		r.Cause = err
	}
	if cause := context.Cause(ctx); cause != err {
		r.Cause = cause
	}
	return r
}
