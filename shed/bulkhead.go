package shed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxWait bounds the time work waits in a queue when the config
// leaves MaxWait zero.
const DefaultMaxWait = 250 * time.Millisecond

// BulkheadConfig configures a Bulkhead. MaxConcurrent is required; the
// other fields have defaults.
type BulkheadConfig struct {
	// MaxConcurrent is how many calls may run at once. It must be in
	// [1, 2^24].
	MaxConcurrent int
	// MaxQueue is how many calls may wait for a slot. Zero means none: a
	// call that finds every slot taken is refused at once. It must be in
	// [0, 2^24].
	MaxQueue int
	// MaxWait bounds the time a call waits in the queue. Zero means
	// DefaultMaxWait (250ms). Negative is invalid.
	MaxWait time.Duration
	// CallTimeout, if positive, is the timeout Do puts on the context it
	// passes to the call, so a slow dependency that honours its context
	// cannot hold a slot for long. Do never abandons a running call: one
	// that ignores its context holds its slot until it returns, and Do
	// returns what it returns. Zero means the caller's context alone
	// bounds the call. Negative is invalid.
	CallTimeout time.Duration
	// OnEvent, if not nil, is told what happens to every call.
	OnEvent func(Event)
	// Adaptive, if not nil, makes the limit on calls in flight adaptive:
	// it moves within [Adaptive.MinLimit, Adaptive.MaxLimit] as it learns
	// from the latencies that ReleaseRTT and Do report (see AdaptiveLimit),
	// and MaxConcurrent is its ceiling: Adaptive.MaxLimit defaults to it
	// and must not exceed it. The queue works on top of the moving limit:
	// a limit that shrinks below the calls in flight preempts none of them
	// but admits nobody until they are under it, and one that grows hands
	// the new slots to the waiters at once.
	Adaptive *AdaptiveConfig
}

func (c BulkheadConfig) validate() error {
	var errs []error
	if c.MaxConcurrent <= 0 || c.MaxConcurrent > maxQueueConfig {
		errs = append(errs, fmt.Errorf("%w: MaxConcurrent %d is outside [1, 2^24]", ErrInvalidConfig, c.MaxConcurrent))
	}
	if c.MaxQueue < 0 || c.MaxQueue > maxQueueConfig {
		errs = append(errs, fmt.Errorf("%w: MaxQueue %d is outside [0, 2^24]", ErrInvalidConfig, c.MaxQueue))
	}
	errs = append(errs, validateWaits(c.MaxWait, c.CallTimeout)...)
	if c.Adaptive != nil {
		errs = append(errs, c.Adaptive.validate(max(c.MaxConcurrent, 1), "MaxConcurrent"))
	}
	return errors.Join(errs...)
}

func validateWaits(maxWait, callTimeout time.Duration) []error {
	var errs []error
	if maxWait < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxWait %v is negative", ErrInvalidConfig, maxWait))
	}
	if callTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: CallTimeout %v is negative", ErrInvalidConfig, callTimeout))
	}
	return errs
}

// Bulkhead bounds the calls in flight to one dependency and the calls
// waiting for them, so that a slow dependency costs a bounded number of
// goroutines and a bounded wait instead of all of them. It is the
// compartment that the 2011 EBS control plane lacked: one shared thread pool
// with long timeouts let calls into a single sick Availability Zone starve
// the whole region.
//
// Waiters are served first in, first out. A waiter whose context ends or
// whose MaxWait passes leaves the queue at once. Each waiter's outcome is
// decided once, under the lock, by whichever comes first: its slot, its
// refusal by Pause, or its own giving up. So a slot handed to it as its
// MaxWait passes is kept; one handed to it as its context ends (or before,
// if it wakes to find its context done) passes on and is never lost, so a
// call is never admitted with a context it finds done; and a waiter that
// Pause refuses as it gives up reports ErrPaused and leaves the queue
// once. A Bulkhead is
// safe for concurrent use; Acquire, TryAcquire and Release do not allocate
// unless the call has to wait or is refused.
//
// While nobody waits and the bulkhead is not paused, admission and release
// are a single compare-and-swap on one word; the mutex is taken only while
// calls wait (or the bulkhead is paused), so that the FIFO hand-off stays
// exact.
type Bulkhead struct {
	maxConcurrent int
	maxQueue      int
	maxWait       time.Duration
	callTimeout   time.Duration
	hook          func(Event)

	// adaptive, if not nil, is the limit on calls in flight, in place of
	// maxConcurrent.
	adaptive *AdaptiveLimit

	// state holds the calls in flight in its low 32 bits, the admissions
	// of the lock-free path not yet added to counters.admitted in bits
	// 32–62, and slowBit while anybody waits or the bulkhead is paused.
	// While slowBit is set, state changes only under mu; while it is clear,
	// there are no waiters, so a compare-and-swap may admit or release
	// without the lock. Counting admissions in the same word spares the
	// fast path a second atomic operation.
	state atomic.Uint64

	mu      sync.Mutex
	paused  bool
	waiters waitList

	counters
}

const (
	slowBit     = 1 << 63
	inFlightMax = 1<<32 - 1

	// The lock-free path's admissions, counted in state: one is
	// admittedUnit, and admittedMax of them fill the field, which is then
	// moved to counters.admitted under the lock.
	admittedShift = 32
	admittedUnit  = 1 << admittedShift
	admittedMax   = 1<<31 - 1
)

func (b *Bulkhead) inFlight() int { return int(b.state.Load() & inFlightMax) }

// cap returns the current limit on calls in flight.
func (b *Bulkhead) cap() int {
	if a := b.adaptive; a != nil {
		return int(a.limit.Load())
	}
	return b.maxConcurrent
}

// fastAdmitted returns the admissions counted in state s.
func fastAdmitted(s uint64) uint64 { return s >> admittedShift & admittedMax }

// flushAdmittedLocked moves the admissions counted in state to
// counters.admitted. The caller holds mu and has set slowBit, so state
// cannot change meanwhile.
func (b *Bulkhead) flushAdmittedLocked() {
	if n := fastAdmitted(b.state.Load()); n > 0 {
		b.admitted.Add(int64(n))
		b.state.Add(-n << admittedShift)
	}
}

// flushAdmitted empties a full admission field so the fast path can count
// again (once in 2^31 admissions).
func (b *Bulkhead) flushAdmitted() {
	b.mu.Lock()
	b.state.Or(slowBit)
	b.flushAdmittedLocked()
	b.syncSlowLocked()
	b.mu.Unlock()
}

// syncSlowLocked sets or clears slowBit to match the waiters and the pause.
func (b *Bulkhead) syncSlowLocked() {
	if b.paused || b.waiters.len > 0 {
		b.state.Or(slowBit)
	} else {
		b.state.And(^uint64(slowBit))
	}
}

// NewBulkhead returns a Bulkhead configured by cfg, or an error that
// matches ErrInvalidConfig and names every invalid field.
func NewBulkhead(cfg BulkheadConfig) (*Bulkhead, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	b := &Bulkhead{
		maxConcurrent: cfg.MaxConcurrent,
		maxQueue:      cfg.MaxQueue,
		maxWait:       cfg.MaxWait,
		callTimeout:   cfg.CallTimeout,
		hook:          cfg.OnEvent,
	}
	if cfg.Adaptive != nil {
		b.adaptive = newAdaptive(cfg.Adaptive.withDefaults(cfg.MaxConcurrent))
	}
	return b, nil
}

// TryAcquire takes a slot if one is free and nobody is waiting for one, and
// reports whether it did. It never waits. A refusal is counted (as
// ErrQueueFull, or ErrPaused) but, to stay allocation-free, returns no error.
func (b *Bulkhead) TryAcquire() bool {
	if b == nil {
		return false
	}
	for {
		s := b.state.Load()
		if s&slowBit == 0 {
			if int(s&inFlightMax) >= b.cap() {
				return b.tryRefused(reasonQueueFull)
			}
			if fastAdmitted(s) == admittedMax {
				b.flushAdmitted()
				continue
			}
			if b.state.CompareAndSwap(s, s+1+admittedUnit) {
				b.emitAdmitted(0)
				return true
			}
			continue
		}
		b.mu.Lock()
		if b.state.Load()&slowBit == 0 {
			b.mu.Unlock() // the last waiter left meanwhile: try again
			continue
		}
		// slowBit with the lock held: somebody waits, or the bulkhead is
		// paused. Either way a newcomer may not take a slot.
		paused := b.paused
		b.mu.Unlock()
		if paused {
			return b.tryRefused(reasonPaused)
		}
		return b.tryRefused(reasonQueueFull)
	}
}

func (b *Bulkhead) tryAdmitted() {
	b.admitted.Add(1)
	b.emitAdmitted(0)
}

// emitAdmitted tells the hook that the caller now holds a slot. If the
// hook panics (or exits its goroutine), the slot is released on the way
// out: the caller never learns that it holds it, so nobody else would.
func (b *Bulkhead) emitAdmitted(waited time.Duration) {
	if b.hook != nil {
		b.tellAdmitted(waited)
	}
}

// tellAdmitted is emitAdmitted's slow path, apart so that the fast path
// inlines.
func (b *Bulkhead) tellAdmitted(waited time.Duration) {
	told := false
	defer func() {
		if !told {
			b.Release()
		}
	}()
	b.hook(Event{Kind: Admitted, Waited: waited})
	told = true
}

// emitQueued tells the hook that w joined the queue. If the hook panics,
// w gives up its place on the way out (counted as a cancellation), so
// that no waiter nobody waits for is granted a slot.
func (b *Bulkhead) emitQueued(w *waiter) {
	if b.hook == nil {
		return
	}
	told := false
	defer func() {
		if !told {
			b.abandon(w)
		}
	}()
	b.hook(Event{Kind: Queued})
	told = true
}

// giveUpLocked settles w for a waiter giving up with outcome (its
// context ended or MaxWait passed) and returns the outcome that stands:
// a waiter still queued leaves the queue; one granted meanwhile passes the
// slot on (waitCtxDone) or keeps it (waitTimedOut); a refusal by Pause
// stands. b.mu must be held.
func (b *Bulkhead) giveUpLocked(w *waiter, outcome waitOutcome) waitOutcome {
	outcome, left := w.settleLocked(outcome)
	switch {
	case left:
		b.waiters.remove(w)
		b.syncSlowLocked()
	case outcome == waitCtxDone:
		// The slot arrived as the context ended: pass it on.
		b.releaseLocked()
	}
	return outcome
}

// abandon settles w for a caller that will never wait for it, as if its
// context had ended: it leaves the queue, or passes on the slot it was
// granted meanwhile; a refusal by Pause stands.
func (b *Bulkhead) abandon(w *waiter) {
	b.mu.Lock()
	outcome := b.giveUpLocked(w, waitCtxDone)
	b.mu.Unlock()
	if outcome == waitRefused {
		b.refused(w.refusal)
	} else {
		b.refused(context.Canceled)
	}
}

func (b *Bulkhead) tryRefused(idx int) bool {
	b.shed[idx].Add(1)
	if b.hook != nil {
		reason := ErrQueueFull
		if idx == reasonPaused {
			reason = ErrPaused
		}
		b.hook(Event{Kind: Refused, Reason: reason})
	}
	return false
}

// Acquire takes a slot, waiting for one if the queue has room. It returns
// nil once the caller holds a slot (release it with Release), or a
// *Refusal: ErrPaused, ErrQueueFull (the queue is at MaxQueue),
// ErrWaitTimeout (MaxWait passed), ErrDeadline (ctx's deadline passed) or,
// when ctx was cancelled, a Refusal whose reason is ctx's error.
func (b *Bulkhead) Acquire(ctx context.Context) error {
	if b == nil {
		return errNilBulkhead
	}
	if nilContext(ctx) {
		return errNilContext
	}
	if err := ctx.Err(); err != nil {
		return b.refuse(ctxRefusal(ctx, 0, ""))
	}
	for {
		s := b.state.Load()
		if s&slowBit != 0 || int(s&inFlightMax) >= b.cap() || fastAdmitted(s) == admittedMax {
			break
		}
		if b.state.CompareAndSwap(s, s+1+admittedUnit) {
			b.emitAdmitted(0)
			return nil
		}
	}
	b.mu.Lock()
	// From here on state changes only under the lock: fast paths see
	// slowBit and come here too.
	b.state.Or(slowBit)
	b.flushAdmittedLocked()
	switch {
	case b.paused:
		b.mu.Unlock()
		return b.refuse(&Refusal{Reason: ErrPaused})
	case b.inFlight() < b.cap() && b.waiters.len == 0:
		b.state.Add(1)
		b.syncSlowLocked()
		b.mu.Unlock()
		b.tryAdmitted()
		return nil
	case b.waiters.len >= b.maxQueue:
		n := b.waiters.len
		b.syncSlowLocked()
		b.mu.Unlock()
		return b.refuse(&Refusal{Reason: ErrQueueFull, Current: n, Limit: b.maxQueue})
	}
	w := &waiter{ready: make(chan struct{}), enqueued: time.Now()}
	b.waiters.pushBack(w)
	b.mu.Unlock()
	b.queued.Add(1)
	b.emitQueued(w)

	outcome := w.wait(ctx, b.maxWait)
	waited := time.Since(w.enqueued)
	if outcome == waitTimedOut || outcome == waitCtxDone {
		b.mu.Lock()
		outcome = b.giveUpLocked(w, outcome)
		b.mu.Unlock()
	}
	switch outcome {
	case waitGranted:
		b.admitted.Add(1)
		b.emitAdmitted(waited)
		return nil
	case waitRefused:
		return b.refuse(&Refusal{Reason: w.refusal, Waited: waited})
	case waitTimedOut:
		return b.refuse(&Refusal{Reason: ErrWaitTimeout, Waited: waited, MaxWait: b.maxWait})
	}
	return b.refuse(ctxRefusal(ctx, waited, ""))
}

// Release returns a slot taken by Acquire or TryAcquire, handing it to the
// longest waiter if there is one. Releasing more slots than were taken is a
// caller bug; Release then does nothing rather than corrupt the count.
func (b *Bulkhead) Release() {
	if b == nil {
		return
	}
	for {
		s := b.state.Load()
		if s&slowBit != 0 {
			break
		}
		if s&inFlightMax == 0 {
			return
		}
		if b.state.CompareAndSwap(s, s-1) {
			return
		}
	}
	b.mu.Lock()
	b.state.Or(slowBit) // freeze state while the lock is held
	if b.inFlight() > 0 {
		b.releaseLocked()
	} else {
		b.syncSlowLocked()
	}
	b.mu.Unlock()
}

// releaseLocked hands the caller's slot to the first waiter, or frees it
// if there is none, or if the limit has shrunk below the calls in flight.
// The caller holds mu, and the caller's slot is counted in state.
func (b *Bulkhead) releaseLocked() {
	b.state.Or(slowBit) // freeze state while the lock is held
	if w := b.waiters.head; w != nil && !b.paused && b.inFlight() <= b.cap() {
		b.waiters.remove(w)
		w.grant()
	} else {
		b.state.Add(^uint64(0)) // minus one
	}
	b.syncSlowLocked()
}

// ReleaseRTT is Release for a bulkhead with an adaptive limit: it also
// reports the call's latency rtt, and whether it was dropped (timed out,
// or refused by the dependency for overload), from which the limit learns
// (see AdaptiveLimit). A limit that grows hands its new slots to waiters
// at once. Without an adaptive limit it is Release. Like Release, it does
// nothing, and records nothing, when no call is in flight.
func (b *Bulkhead) ReleaseRTT(rtt time.Duration, dropped bool) {
	if b == nil {
		return
	}
	if b.adaptive == nil {
		b.Release()
		return
	}
	n := b.inFlight()
	if n == 0 {
		return
	}
	ch, changed := b.adaptive.observe(b.adaptive.now(), rtt, n, dropped)
	b.Release()
	if changed {
		if ch.New > ch.Old {
			b.grantWaiters()
		}
		b.adaptive.emit(ch)
	}
}

// grantWaiters hands free slots to waiters after the limit grew.
func (b *Bulkhead) grantWaiters() {
	if b.state.Load()&slowBit == 0 {
		return // nobody waits (a waiter sets slowBit before it queues)
	}
	b.mu.Lock()
	b.state.Or(slowBit)
	for w := b.waiters.head; w != nil && !b.paused && b.inFlight() < b.cap(); w = b.waiters.head {
		b.waiters.remove(w)
		b.state.Add(1)
		w.grant()
	}
	b.syncSlowLocked()
	b.mu.Unlock()
}

// Limit returns the current limit on calls in flight: MaxConcurrent, or
// the adaptive limit's.
func (b *Bulkhead) Limit() int {
	if b == nil {
		return 0
	}
	return b.cap()
}

// AdaptiveStats returns a snapshot of the adaptive limit, and false if the
// bulkhead has none.
func (b *Bulkhead) AdaptiveStats() (AdaptiveStats, bool) {
	if b == nil || b.adaptive == nil {
		return AdaptiveStats{}, false
	}
	return b.adaptive.Stats(), true
}

// Do runs fn in a slot: it acquires one (see Acquire for the refusals),
// calls fn with a context bounded by CallTimeout if one is set, and
// releases the slot when fn returns or panics. With an adaptive limit it
// reports fn's latency, as ReleaseRTT does: an error matching
// context.DeadlineExceeded or ErrShed counts as a drop, and a call whose
// caller cancelled it (or that panicked) reports nothing.
func (b *Bulkhead) Do(ctx context.Context, fn func(context.Context) error) error {
	if b == nil {
		return errNilBulkhead
	}
	if fn == nil {
		return errNilFunc
	}
	if err := b.Acquire(ctx); err != nil {
		return err
	}
	if b.adaptive != nil {
		return b.doAdaptive(ctx, fn)
	}
	defer b.Release()
	return callWithTimeout(ctx, b.callTimeout, fn)
}

func (b *Bulkhead) doAdaptive(ctx context.Context, fn func(context.Context) error) error {
	start := time.Now()
	done := false
	defer func() {
		if !done {
			b.Release()
		}
	}()
	err := callWithTimeout(ctx, b.callTimeout, fn)
	done = true
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		b.Release()
	} else {
		b.ReleaseRTT(time.Since(start), dropped(err))
	}
	return err
}

func callWithTimeout(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	if timeout <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx)
}

// Pause refuses new calls with ErrPaused, and refuses the calls already
// waiting, at once. Calls in flight finish normally. It is the operator's
// lever from 2011: switch off one expensive path without a deploy.
func (b *Bulkhead) Pause() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.paused = true
	b.state.Or(slowBit)
	for w := b.waiters.head; w != nil; w = b.waiters.head {
		b.waiters.remove(w)
		w.refuse(ErrPaused)
	}
	b.mu.Unlock()
}

// Resume undoes Pause.
func (b *Bulkhead) Resume() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.paused = false
	b.syncSlowLocked()
	b.mu.Unlock()
}

// Stats returns a snapshot of the calls in flight, waiting, and the
// counters.
func (b *Bulkhead) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	// Under mu, so that no flush moves admissions from state to the
	// counter between the two reads.
	b.mu.Lock()
	st := b.state.Load()
	s := Stats{InFlight: int(st & inFlightMax), Waiting: b.waiters.len}
	b.load(&s)
	b.mu.Unlock()
	s.Admitted += int64(fastAdmitted(st))
	return s
}

func (b *Bulkhead) refuse(r *Refusal) error {
	b.refused(r.Reason)
	b.emit(Event{Kind: Refused, Reason: r.Reason, Waited: r.Waited})
	return r
}

func (b *Bulkhead) emit(e Event) {
	if b.hook != nil {
		b.hook(e)
	}
}
