package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/stormguard/stormguard/internal/ctxsleep"
)

// Reasons Retry gives up, matched with errors.Is on the error it returns.
// The same error also matches the operation's last error, and ctx.Err() when
// the context ended the loop.
var (
	// ErrAttemptsExhausted: the operation failed MaxAttempts times.
	ErrAttemptsExhausted = errors.New("attempts exhausted")
	// ErrElapsedExhausted: the next attempt would start after MaxElapsed.
	ErrElapsedExhausted = errors.New("max elapsed time exhausted")
	// ErrDeadline: the next attempt would start after the context's
	// deadline, so Retry returned at once instead of sleeping in vain.
	ErrDeadline = errors.New("next attempt would start after the context deadline")
	// ErrBudgetExhausted: the retry Budget refused the retry.
	ErrBudgetExhausted = errors.New("retry budget exhausted")
	// ErrPermanent: the operation returned an error marked with Permanent.
	ErrPermanent = errors.New("permanent error")
	// ErrRetryAfterTooLong: the operation asked, through a retry-after
	// hint, for a delay longer than the option WithMaxRetryAfter allows.
	ErrRetryAfterTooLong = errors.New("retry-after hint too long")
	// ErrInvalidArgument: Retry or Do was called with a nil context or a
	// nil operation; the operation was not called.
	ErrInvalidArgument = errors.New("invalid argument")
)

var (
	errNilOp      = fmt.Errorf("%w: nil operation", ErrInvalidArgument)
	errNilContext = fmt.Errorf("%w: nil context", ErrInvalidArgument)
)

// DefaultMaxRetryAfter bounds retry-after hints unless WithMaxRetryAfter
// says otherwise.
const DefaultMaxRetryAfter = 5 * time.Minute

// Error is the error Retry and Do return when they give up. errors.Is
// matches both Reason and Last.
type Error struct {
	// Reason is why the loop stopped: one of the Err* sentinels of this
	// package (ErrInvalidArgument with a word on which argument),
	// ErrInvalidPolicy, a *ThrottledError (matching ErrThrottled), or the
	// context's error.
	Reason error
	// Last is the last error the operation returned (or the *OpenError of
	// a Breaker that refused the last attempt); nil if it was never called.
	Last error
	// Attempts is how many times the operation was called, plus the
	// attempts a Breaker refused (see WithBreaker).
	Attempts int
	// Elapsed is the time spent retrying: from the first attempt's failure
	// until Retry gave up. (The clock is not read before the first attempt,
	// so that a call that succeeds at once costs no clock read.)
	Elapsed time.Duration
	// Next is the delay Retry refused to sleep, when the reason is a bound
	// that the next delay would have crossed; otherwise zero.
	Next time.Duration
}

// Error describes the reason, the numbers and the last error, for example
// "backoff: gave up after 3 attempts in 350ms: attempts exhausted:
// last error: connection refused".
func (e *Error) Error() string {
	attempts := "attempts"
	if e.Attempts == 1 {
		attempts = "attempt"
	}
	msg := fmt.Sprintf("backoff: gave up after %d %s in %v: %v", e.Attempts, attempts, e.Elapsed, e.Reason)
	if e.Next > 0 {
		msg += fmt.Sprintf(" (next delay %v)", e.Next)
	}
	if e.Last != nil {
		msg += ": last error: " + e.Last.Error()
	}
	return msg
}

// Unwrap returns the reason and the last error, so errors.Is and errors.As
// find either.
func (e *Error) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Last}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: Retry stops at once and returns
// an *Error with Reason ErrPermanent and Last err. errors.Is and errors.As
// still find err through the mark. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// RetryAfterError is implemented by errors that carry a minimum delay before
// the next attempt, such as a throttling response with a Retry-After header.
// Retry finds it anywhere in the error's chain, so an application's own error
// type can implement it.
type RetryAfterError interface {
	error
	// RetryAfter is the least time to wait before the next attempt; zero
	// or negative means no minimum.
	RetryAfter() time.Duration
}

type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string             { return e.err.Error() }
func (e *retryAfterError) Unwrap() error             { return e.err }
func (e *retryAfterError) RetryAfter() time.Duration { return e.delay }

// RetryAfter wraps err with a hint that the next attempt should not start
// before d has passed. Retry then sleeps max(d, the policy's delay), which
// may exceed the policy's Cap; but it never sleeps past the context's
// deadline or MaxElapsed (it gives up at once instead) nor longer than
// WithMaxRetryAfter allows. RetryAfter(nil, d) is nil; a negative d counts
// as zero.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, delay: max(d, 0)}
}

// Event describes one attempt, for the hook set by OnAttempt.
type Event struct {
	// Attempt is the attempt's number, from 1.
	Attempt int
	// Err is what the operation returned (nil on success).
	Err error
	// Delay is the delay chosen before the next attempt; zero after a
	// success or when Retry gives up.
	Delay time.Duration
	// GiveUp is the reason Retry stops after this attempt (one of the
	// sentinels or the context's error), or nil if it retries or succeeded.
	GiveUp error
}

// Option adjusts one call of Retry or Do. Options are plain values: passing
// them allocates nothing.
type Option struct {
	set           optionKind
	budget        *Budget
	hook          func(Event)
	rand          *rand.Rand
	maxRetryAfter time.Duration
	throttle      *Throttle
	breaker       *Breaker
}

type optionKind uint8

const (
	setBudget optionKind = 1 << iota
	setHook
	setRand
	setMaxRetryAfter
	setThrottle
	setBreaker
)

// config is the merged options of one call.
type config struct {
	budget        *Budget
	hook          func(Event)
	rand          *rand.Rand
	maxRetryAfter time.Duration
	throttle      *Throttle
	breaker       *Breaker
	// paid: the next attempt needs no Budget token, because it is the
	// first one or the attempt that withdrew the token was refused by the
	// breaker before reaching the dependency.
	paid bool
}

func newConfig(opts []Option) config {
	c := config{maxRetryAfter: DefaultMaxRetryAfter}
	for _, o := range opts {
		if o.set&setBudget != 0 {
			c.budget = o.budget
		}
		if o.set&setHook != 0 {
			c.hook = o.hook
		}
		if o.set&setRand != 0 {
			c.rand = o.rand
		}
		if o.set&setMaxRetryAfter != 0 {
			c.maxRetryAfter = o.maxRetryAfter
		}
		if o.set&setThrottle != 0 {
			c.throttle = o.throttle
		}
		if o.set&setBreaker != 0 {
			c.breaker = o.breaker
		}
	}
	return c
}

// WithBudget makes every retry (not the first attempt) withdraw from b, and
// every call that reaches the dependency deposit into it (a call that a
// Throttle or Breaker refuses does not), so that retries stay a bounded
// fraction of the traffic to one dependency. When b refuses, Retry gives up with
// ErrBudgetExhausted. A nil b means no budget.
func WithBudget(b *Budget) Option { return Option{set: setBudget, budget: b} }

// WithThrottle sends every attempt, the first one included, through t: an
// attempt t refuses is not made, and Retry gives up at once with the
// *ThrottledError as Reason (matching ErrThrottled), without sleeping; the
// outcome of every attempt made is recorded in t as t.Outcome classifies it
// (an attempt that failed because the caller cancelled ctx counts as
// nothing; one that ran into ctx's deadline counts as its error). A retry is
// asked of t before the sleep that precedes it, and of a Budget only if t
// admits it, so a throttled retry spends no token; a first attempt t
// refuses deposits nothing in the Budget. A nil t means no throttle.
func WithThrottle(t *Throttle) Option { return Option{set: setThrottle, throttle: t} }

// WithBreaker asks b before every attempt, right before the operation is
// called, and records the result of every attempt b admits (an attempt that
// failed because the caller cancelled ctx is released, not counted; see
// Breaker.Call). An attempt b refuses is not made: its error is b's
// *OpenError, which counts as an attempt towards MaxAttempts and carries a
// retry-after hint of the time left until b admits a probe, so Retry waits
// that long (if the hint exceeds WithMaxRetryAfter, or the wait would end
// after ctx's deadline or MaxElapsed, Retry gives up at once, as for any
// hint) instead of spinning against an open breaker. A refused attempt
// spends no Budget token: the token withdrawn for it, if any, pays for the
// next attempt, and a call whose every attempt b refuses deposits nothing
// in the Budget. For per-key breakers pass the key's breaker from
// Breakers.Get. A nil b means no breaker.
func WithBreaker(b *Breaker) Option { return Option{set: setBreaker, breaker: b} }

// OnAttempt calls fn after every attempt, on the goroutine that called Retry,
// before any sleep. fn must not block.
func OnAttempt(fn func(Event)) Option { return Option{set: setHook, hook: fn} }

// WithRand draws jitter from r instead of the shared default source, for
// reproducible tests. r must not be used concurrently elsewhere during the
// call.
func WithRand(r *rand.Rand) Option { return Option{set: setRand, rand: r} }

// WithMaxRetryAfter bounds the retry-after hints Retry honours (default
// DefaultMaxRetryAfter; zero or negative also means the default, as a zero
// setting does everywhere in stormguard). A longer hint makes Retry give up
// at once with ErrRetryAfterTooLong rather than retry early against the
// server's wish or sleep for an unbounded time.
func WithMaxRetryAfter(d time.Duration) Option {
	if d <= 0 {
		d = DefaultMaxRetryAfter
	}
	return Option{set: setMaxRetryAfter, maxRetryAfter: d}
}

// Retry calls op until it succeeds, then returns nil. Between attempts it
// sleeps as p says. It gives up and returns an *Error when op returns an
// error marked Permanent, when MaxAttempts calls have failed, when the next
// attempt would start after MaxElapsed or after ctx's deadline (at once,
// without sleeping in vain), when a Throttle or a Budget refuses, or when
// ctx is done (promptly, also in the middle of a sleep). The error matches,
// with errors.Is, both the reason and op's last error.
//
// An invalid p is reported as an *Error with Reason ErrInvalidPolicy, and a
// nil ctx or op as one matching ErrInvalidArgument, before op is called.
// Retry does not allocate when op succeeds at once.
func Retry(ctx context.Context, p Policy, op func(context.Context) error, opts ...Option) error {
	return run(ctx, p, opts, op)
}

// Do is Retry for an operation that returns a value: it returns the value of
// the first successful call, or the zero T and the error Retry would return.
func Do[T any](ctx context.Context, p Policy, op func(context.Context) (T, error), opts ...Option) (T, error) {
	var out T
	if op == nil {
		return out, &Error{Reason: errNilOp}
	}
	err := run(ctx, p, opts, func(ctx context.Context) error {
		v, err := op(ctx)
		if err == nil {
			out = v
		}
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

func run(ctx context.Context, p Policy, opts []Option, op func(context.Context) error) error {
	switch {
	case ctx == nil:
		return &Error{Reason: errNilContext}
	case op == nil:
		return &Error{Reason: errNilOp}
	}
	if err := p.Validate(); err != nil {
		return &Error{Reason: err}
	}
	cfg := newConfig(opts)
	if err := ctx.Err(); err != nil {
		return &Error{Reason: err}
	}
	if cfg.throttle != nil {
		if terr := cfg.throttle.check(time.Now(), uniform(cfg.rand)); terr != nil {
			return &Error{Reason: terr}
		}
	}
	// The call deposits into the Budget when its first attempt reaches the
	// dependency: a call a breaker refuses throughout earns nothing.
	deposit := cfg.budget != nil
	cfg.paid = true
	// The clock is read before the first attempt only when MaxElapsed needs
	// it: on a slow clock source it would be most of the cost of a call
	// that succeeds at once.
	var start, firstFailure time.Time
	if p.MaxElapsed > 0 {
		start = time.Now()
	}
	var prev time.Duration
	for attempt := 1; ; attempt++ {
		var err error
		if t, refused := cfg.breaker.admit(); refused != nil {
			err = refused
		} else {
			if deposit {
				cfg.budget.Deposit()
				deposit = false
			}
			err = op(ctx)
			cfg.breaker.done(ctx, t, err)
			cfg.paid = false
			if cfg.throttle != nil {
				cfg.throttle.Done(ctx, err)
			}
		}
		if err == nil {
			if cfg.hook != nil {
				cfg.hook(Event{Attempt: attempt})
			}
			return nil
		}
		if attempt == 1 {
			firstFailure = time.Now()
		}
		delay, reason := next(ctx, p, &cfg, attempt, prev, start, err)
		if cfg.hook != nil {
			ev := Event{Attempt: attempt, Err: err, GiveUp: reason}
			if reason == nil {
				ev.Delay = delay
			}
			cfg.hook(ev)
		}
		if reason != nil {
			e := &Error{Reason: reason, Last: err, Attempts: attempt, Elapsed: time.Since(firstFailure)}
			if reason == ErrDeadline || reason == ErrElapsedExhausted || reason == ErrRetryAfterTooLong {
				e.Next = delay
			}
			if pe, ok := err.(*permanentError); ok {
				e.Last = pe.err
			}
			return e
		}
		if serr := ctxsleep.Sleep(ctx, delay); serr != nil {
			return &Error{Reason: serr, Last: err, Attempts: attempt, Elapsed: time.Since(firstFailure)}
		}
		prev = delay
	}
}

// next decides what follows a failed attempt: the delay before the next one,
// or the reason to give up (with the delay that would have been needed).
func next(ctx context.Context, p Policy, cfg *config, attempt int, prev time.Duration, start time.Time, err error) (time.Duration, error) {
	var pe *permanentError
	if errors.As(err, &pe) {
		return 0, ErrPermanent
	}
	if cerr := ctx.Err(); cerr != nil {
		return 0, cerr
	}
	now := time.Now()
	var elapsed time.Duration
	if p.MaxElapsed > 0 {
		elapsed = now.Sub(start)
	}
	delay, reason := p.Next(attempt, elapsed, prev, uniform(cfg.rand))
	if reason != nil {
		return delay, reason
	}
	var hint RetryAfterError
	if errors.As(err, &hint) {
		h := hint.RetryAfter()
		if h > cfg.maxRetryAfter {
			return h, ErrRetryAfterTooLong
		}
		if h > delay {
			delay = h
			if p.MaxElapsed > 0 && delay > p.MaxElapsed-elapsed {
				return delay, ErrElapsedExhausted
			}
		}
	}
	if dl, ok := ctx.Deadline(); ok && now.Add(delay).After(dl) {
		return delay, ErrDeadline
	}
	if cfg.throttle != nil {
		if terr := cfg.throttle.check(now, uniform(cfg.rand)); terr != nil {
			return delay, terr
		}
	}
	if cfg.budget != nil && !cfg.paid {
		if !cfg.budget.Withdraw() {
			return delay, ErrBudgetExhausted
		}
		cfg.paid = true
	}
	return delay, nil
}
