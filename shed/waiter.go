package shed

import (
	"context"
	"errors"
	"reflect"
	"time"
	"unsafe"
)

// waiter is one goroutine waiting for a slot in a Bulkhead or Partition. It
// sits in an intrusive FIFO list guarded by the owner's mutex.
//
// Its outcome is state, decided once under the owner's lock: whoever finds
// it waiterWaiting decides it (a grant, a refusal, or the waiter's own
// giving up) and unlinks it; everybody else finds it decided and leaves it
// alone. So a waiter is unlinked exactly once however its give-up races
// with a grant or a pause.
type waiter struct {
	ready    chan struct{} // closed when the owner grants or refuses the waiter
	state    waiterState   // guarded by the owner's lock; read after ready without it
	refusal  error         // why the owner refused the waiter (pause), with waiterRefused
	enqueued time.Time
	key      *keyCore // Partition only
	// prev and next link the waiter into the owner's list while it is
	// waiterWaiting; both are nil once it is unlinked.
	prev, next *waiter
}

// waiterState is what became of a waiter.
type waiterState uint8

const (
	waiterWaiting waiterState = iota // in the list, undecided
	waiterGranted                    // handed a slot, which it now holds
	waiterRefused                    // refused by the owner, see waiter.refusal
	waiterGaveUp                     // left the queue on its own (context, MaxWait)
)

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

// remove unlinks w. Removing a waiter that is not linked (its outcome is
// decided, so somebody unlinked it already) does nothing: an unlinked node
// has no neighbours and is not the head.
func (l *waitList) remove(w *waiter) {
	if w.prev == nil && l.head != w {
		return
	}
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

// grant hands w a slot; the caller holds the owner's lock, has found w
// waiterWaiting and has removed it from its list.
func (w *waiter) grant() {
	w.state = waiterGranted
	close(w.ready)
}

// refuse wakes w with err; the caller holds the owner's lock, has found w
// waiterWaiting and has removed it from its list.
func (w *waiter) refuse(err error) {
	w.state, w.refusal = waiterRefused, err
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
// caller must take its lock and look at w.state, since a grant or a refusal
// may have raced with the timer or the context (see settleLocked). A grant
// found with ctx done is reported as a done context, whichever came first.
func (w *waiter) wait(ctx context.Context, maxWait time.Duration) waitOutcome {
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case <-w.ready:
		if w.state != waiterGranted {
			return waitRefused
		}
		if ctx.Err() != nil {
			// Granted as the context ended, and select picked the grant:
			// a waiter whose context is done never keeps a slot, so the
			// caller settles this as a done context and passes it on.
			return waitCtxDone
		}
		return waitGranted
	case <-t.C:
		return waitTimedOut
	case <-ctx.Done():
		return waitCtxDone
	}
}

// settleLocked decides, under the owner's lock, the outcome of a wait that
// ended in a timeout or a done context. If w still waits, it gives up: it
// becomes waiterGaveUp, the outcome stands, and settleLocked returns true;
// the caller must then unlink it and undo its counts. Otherwise the
// owner decided first and its decision stands: a refusal is reported as
// such, and a grant is kept after a timeout (the slot came in time) but
// not after a done context, whose caller must hand the slot back
// (settleLocked then returns waitCtxDone and false with w granted).
func (w *waiter) settleLocked(outcome waitOutcome) (waitOutcome, bool) {
	switch w.state {
	case waiterWaiting:
		w.state = waiterGaveUp
		return outcome, true
	case waiterGranted:
		if outcome == waitTimedOut {
			return waitGranted, false
		}
		return outcome, false
	}
	return waitRefused, false
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

// nilContext reports whether ctx is nil or a typed nil: a nil pointer (or
// map, chan, func) of a type that implements context.Context, whose
// methods would dereference nil. It is small enough to inline, and costs
// one load: the data word of an interface is nil only when it holds a nil
// pointer-shaped value, and only then does nilValue confirm the kind.
func nilContext(ctx context.Context) bool {
	type iface struct{ tab, data unsafe.Pointer }
	return ctx == nil || (*iface)(unsafe.Pointer(&ctx)).data == nil && nilValue(ctx)
}

// nilValue reports whether x holds a nil pointer, map, chan or func.
func nilValue(x any) bool {
	switch v := reflect.ValueOf(x); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}
