package shed

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// ErrShed is matched (with errors.Is) by every refusal of this package. The
// specific reasons below wrap it, so a caller can ask either "was this
// shed?" or "why?".
var ErrShed = errors.New("shed")

// Reasons for a refusal. Each wraps ErrShed.
var (
	// ErrQueueFull: the wait queue is at its bound.
	ErrQueueFull = fmt.Errorf("%w: queue full", ErrShed)
	// ErrWaitTimeout: the work waited in the queue for as long as it may
	// (MaxWait, or the shorter CoDel target while the queue is standing).
	ErrWaitTimeout = fmt.Errorf("%w: waited too long", ErrShed)
	// ErrPaused: the key (or the whole bulkhead) is paused by an operator.
	ErrPaused = fmt.Errorf("%w: paused", ErrShed)
	// ErrTooManyKeys: a Partition or KeyedLimiter is at its key bound and no
	// idle key could be evicted.
	ErrTooManyKeys = fmt.Errorf("%w: too many keys", ErrShed)
	// ErrDeadline: the work's deadline has passed, or it cannot be met given
	// the work's declared cost, so it was dropped without running.
	ErrDeadline = fmt.Errorf("%w: deadline cannot be met", ErrShed)
	// ErrEvicted: queued work of lower priority was pushed out of a full
	// queue by more critical work.
	ErrEvicted = fmt.Errorf("%w: evicted by higher-priority work", ErrShed)
	// ErrRateLimited: a rate limiter refused.
	ErrRateLimited = fmt.Errorf("%w: rate limited", ErrShed)
)

// ErrInvalidArgument is matched (with errors.Is) by the error a call
// returns for a nil context (a typed nil such as a nil pointer to a
// context type included), a nil function, a nil receiver (a nil
// *Bulkhead, *Partition, *Queue, *Limiter or *KeyedLimiter, such as a
// typed nil stored in an interface) or a key that no map could find again
// (an uncomparable value in an interface, a NaN), before it does anything
// else. It is
// not a refusal: errors.Is(err, ErrShed) is false. Methods of a nil
// receiver that return no error refuse (false), report zero, or do
// nothing; none panics.
var ErrInvalidArgument = errors.New("shed: invalid argument")

var (
	errNilFunc    = fmt.Errorf("%w: nil function", ErrInvalidArgument)
	errNilContext = fmt.Errorf("%w: nil context", ErrInvalidArgument)

	errNilBulkhead     = fmt.Errorf("%w: nil *Bulkhead", ErrInvalidArgument)
	errNilPartition    = fmt.Errorf("%w: nil *Partition", ErrInvalidArgument)
	errNilQueue        = fmt.Errorf("%w: nil *Queue", ErrInvalidArgument)
	errNilLimiter      = fmt.Errorf("%w: nil *Limiter", ErrInvalidArgument)
	errNilKeyedLimiter = fmt.Errorf("%w: nil *KeyedLimiter", ErrInvalidArgument)
	errNilAdaptive     = fmt.Errorf("%w: nil *AdaptiveLimit", ErrInvalidArgument)

	errZeroQueue        = fmt.Errorf("%w: Queue not built with NewQueue", ErrInvalidConfig)
	errZeroLimiter      = fmt.Errorf("%w: Limiter not built with NewLimiter", ErrInvalidConfig)
	errZeroKeyedLimiter = fmt.Errorf("%w: KeyedLimiter not built with NewKeyedLimiter", ErrInvalidConfig)
)

// Refusal is the error returned when work is refused. errors.Is matches its
// Reason, ErrShed and, when the caller's context ended the wait, the
// context's error.
type Refusal struct {
	// Reason is one of the Err* reasons above.
	Reason error
	// Key is the partition key, formatted with %v; empty for an unkeyed
	// primitive.
	Key string
	// Limit and Current are the bound that refused and its value at the
	// time (queue length, keys, concurrency), when the reason has one.
	Limit, Current int
	// Waited is how long the work waited in the queue before the refusal.
	Waited time.Duration
	// MaxWait is the wait bound in force, for ErrWaitTimeout, and for a
	// rate limiter's Wait refused with ErrRateLimited.
	MaxWait time.Duration
	// RetryIn is, for ErrRateLimited, how long until the limiter has a
	// token for this call; RetryAfter returns it, so that backoff.Retry
	// does not try again before then.
	RetryIn time.Duration
	// Rate is the refusing limiter's rate in events per second, for
	// ErrRateLimited.
	Rate float64
	// Burst is the refusing limiter's burst, for ErrRateLimited.
	Burst int
	// Cause is an underlying error, such as the context's, or nil.
	Cause error
}

// Error says what was refused and why, with the numbers, for example
// `shed: queue full (64 waiting, limit 64) for key "us-east-1a"`.
func (r *Refusal) Error() string {
	if r == nil {
		return "shed: refused (nil *Refusal)"
	}
	if r.Reason == nil {
		return "shed: refused (no reason given)"
	}
	var b []byte
	if !errors.Is(r.Reason, ErrShed) {
		b = append(b, "shed: gave up waiting: "...)
	}
	b = append(b, r.Reason.Error()...)
	switch {
	case r.Reason == ErrWaitTimeout:
		b = fmt.Appendf(b, " (waited %v, limit %v)", r.Waited, r.MaxWait)
	case r.Reason == ErrQueueFull:
		b = fmt.Appendf(b, " (%d waiting, limit %d)", r.Current, r.Limit)
	case r.Reason == ErrLimitReached:
		b = fmt.Appendf(b, " (%d in flight, limit %d", r.Current, r.Limit)
		if r.RetryIn > 0 {
			b = fmt.Appendf(b, "; a slot expected in %v", r.RetryIn)
		}
		b = append(b, ')')
	case r.Reason == ErrTooManyKeys:
		b = fmt.Appendf(b, " (%d keys, limit %d, none idle)", r.Current, r.Limit)
	case r.Reason == ErrRateLimited:
		b = fmt.Appendf(b, " (next token in %v", r.RetryIn)
		if r.MaxWait > 0 {
			b = fmt.Appendf(b, ", wait limit %v", r.MaxWait)
		}
		b = fmt.Appendf(b, "; %v/s, burst %d)", r.Rate, r.Burst)
	case r.Limit > 0:
		b = fmt.Appendf(b, " (%d of %d)", r.Current, r.Limit)
	case r.Waited > 0:
		b = fmt.Appendf(b, " (after waiting %v)", r.Waited)
	}
	if r.Key != "" {
		b = append(b, " for key "...)
		b = strconv.AppendQuote(b, r.Key)
	}
	if r.Cause != nil {
		b = append(b, ": "...)
		b = append(b, r.Cause.Error()...)
	}
	return string(b)
}

// Hint returns when a retry of the refused call may find capacity, for
// a server to tell its client (an HTTP Retry-After, a gRPC pushback), and
// whether the refusal gives any basis for one:
//   - RetryIn, when positive: a rate limiter's next token, or an adaptive
//     limit's expected free slot;
//   - Waited, for a call that waited in a queue and was not served
//     (ErrWaitTimeout, ErrEvicted): no capacity freed for it that long, so
//     an earlier retry would meet the same queue. It is the time this call
//     waited, not the bound (MaxWait) every such refusal would share;
//   - nothing otherwise (a full queue, a pause, a key bound, a deadline, a
//     nil *Refusal): a made-up constant would bring every refused client
//     back at the same instant.
func (r *Refusal) Hint() (time.Duration, bool) {
	switch {
	case r == nil:
		return 0, false
	case r.RetryIn > 0:
		return r.RetryIn, true
	case (r.Reason == ErrWaitTimeout || r.Reason == ErrEvicted) && r.Waited > 0:
		return r.Waited, true
	}
	return 0, false
}

// RetryAfter returns RetryIn: for a rate limiter's refusal, the wait until
// a token is due; for an adaptive limit's (ErrLimitReached), the time a
// slot is expected to free; zero for the other reasons. It makes a Refusal a
// backoff.RetryAfterError, so an operation retried with backoff.Retry
// that returns a rate limiter's refusal is not retried before its token
// is due.
func (r *Refusal) RetryAfter() time.Duration {
	if r == nil {
		return 0
	}
	return r.RetryIn
}

// Unwrap returns the reason and the cause (nothing for a nil *Refusal).
func (r *Refusal) Unwrap() []error {
	if r == nil {
		return nil
	}
	if r.Cause == nil {
		return []error{r.Reason}
	}
	return []error{r.Reason, r.Cause}
}

// ShedCounts counts refusals by reason.
type ShedCounts struct {
	// QueueFull counts refusals with ErrQueueFull.
	QueueFull int64
	// WaitTimeout counts refusals with ErrWaitTimeout.
	WaitTimeout int64
	// Paused counts refusals with ErrPaused.
	Paused int64
	// TooManyKeys counts refusals with ErrTooManyKeys.
	TooManyKeys int64
	// Deadline counts refusals with ErrDeadline.
	Deadline int64
	// Evicted counts refusals with ErrEvicted.
	Evicted int64
	// RateLimited counts refusals with ErrRateLimited.
	RateLimited int64
	// LimitReached counts refusals with ErrLimitReached.
	LimitReached int64
	// Cancelled counts waiters whose own context ended the wait.
	Cancelled int64
}

// Total is the sum of all refusals, cancellations included.
func (c ShedCounts) Total() int64 {
	return c.QueueFull + c.WaitTimeout + c.Paused + c.TooManyKeys + c.Deadline + c.Evicted + c.RateLimited + c.LimitReached + c.Cancelled
}

// Stats is a snapshot of a primitive's load and counters.
type Stats struct {
	// InFlight is the work admitted and not yet released.
	InFlight int
	// Waiting is the work in the queue.
	Waiting int
	// Admitted counts work admitted, at once or after waiting.
	Admitted int64
	// Queued counts work that had to wait (admitted later or not).
	Queued int64
	// Shed counts refusals by reason.
	Shed ShedCounts
}

// EventKind says what happened to one piece of work.
type EventKind uint8

const (
	// Admitted: the work got a slot (Event.Waited says after how long).
	Admitted EventKind = iota + 1
	// Queued: the work found no free slot and joined the queue.
	Queued
	// Refused: the work was shed (Event.Reason says why).
	Refused
)

// String returns "admitted", "queued" or "refused".
func (k EventKind) String() string {
	switch k {
	case Admitted:
		return "admitted"
	case Queued:
		return "queued"
	case Refused:
		return "refused"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event describes what happened to one piece of work, for the optional
// hooks. Hooks run synchronously on the goroutine of the work, outside any
// lock of this package (so they may call back into the primitive); they
// must be cheap and must not block. A hook that panics panics the call it
// was told about, which then holds nothing: a slot it was just admitted to
// is released, a queue it was just told it joined is left, and a rate
// limiter's token it was just told it waits for is given back (the last
// two counted as a cancellation).
type Event struct {
	// Kind is what happened: admitted, queued or refused.
	Kind EventKind
	// Reason is the refusal reason for Refused (one of the Err* values, or
	// the context's error for a waiter that gave up), else nil.
	Reason error
	// Waited is the time spent in the queue so far.
	Waited time.Duration
	// Priority is the work's priority class (Queue only; Normal elsewhere).
	Priority Priority
	// Key is the key formatted with %v, for a KeyedLimiter's events; empty
	// elsewhere (a Partition passes its key to its hook as a K).
	Key string
}

// Priority is a class of work for Queue. Critical work is served before
// Normal, Normal before Sheddable; under overload Sheddable work is shed
// first and Critical work last. The zero value is Normal.
type Priority uint8

const (
	// Normal is the default class.
	Normal Priority = iota
	// Critical work (latency-sensitive, or work that keeps the system
	// alive, such as lease renewals) is served first and shed last.
	Critical
	// Sheddable work (batch, asynchronous, retries) is served last and shed
	// first.
	Sheddable
	numPriorities
)

// rank orders priorities for service: lower is served first.
func (p Priority) rank() int {
	switch p {
	case Critical:
		return 0
	case Normal:
		return 1
	}
	return 2
}

// String returns "normal", "critical" or "sheddable".
func (p Priority) String() string {
	switch p {
	case Normal:
		return "normal"
	case Critical:
		return "critical"
	case Sheddable:
		return "sheddable"
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// counters holds the atomic counters behind Stats, shared by every
// primitive of the package.
type counters struct {
	admitted, queued atomic.Int64
	shed             [numReasons]atomic.Int64
}

// Indexes of counters.shed.
const (
	reasonQueueFull = iota
	reasonWaitTimeout
	reasonPaused
	reasonTooManyKeys
	reasonDeadline
	reasonEvicted
	reasonRateLimited
	reasonLimitReached
	reasonCancelled
	numReasons
)

func reasonIndex(reason error) int {
	switch reason {
	case ErrQueueFull:
		return reasonQueueFull
	case ErrWaitTimeout:
		return reasonWaitTimeout
	case ErrPaused:
		return reasonPaused
	case ErrTooManyKeys:
		return reasonTooManyKeys
	case ErrDeadline:
		return reasonDeadline
	case ErrEvicted:
		return reasonEvicted
	case ErrRateLimited:
		return reasonRateLimited
	case ErrLimitReached:
		return reasonLimitReached
	}
	return reasonCancelled
}

// refused counts a refusal for reason (any other error counts as a
// cancellation by the caller).
func (c *counters) refused(reason error) { c.shed[reasonIndex(reason)].Add(1) }

// load fills the counter fields of s.
func (c *counters) load(s *Stats) {
	s.Admitted = c.admitted.Load()
	s.Queued = c.queued.Load()
	s.Shed = ShedCounts{
		QueueFull:    c.shed[reasonQueueFull].Load(),
		WaitTimeout:  c.shed[reasonWaitTimeout].Load(),
		Paused:       c.shed[reasonPaused].Load(),
		TooManyKeys:  c.shed[reasonTooManyKeys].Load(),
		Deadline:     c.shed[reasonDeadline].Load(),
		Evicted:      c.shed[reasonEvicted].Load(),
		RateLimited:  c.shed[reasonRateLimited].Load(),
		LimitReached: c.shed[reasonLimitReached].Load(),
		Cancelled:    c.shed[reasonCancelled].Load(),
	}
}
