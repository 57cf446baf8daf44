package backoff

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"time"
)

// Defaults applied to the zero fields of a Policy.
const (
	DefaultBase        = 100 * time.Millisecond
	DefaultCap         = 10 * time.Second
	DefaultMultiplier  = 2.0
	DefaultMaxAttempts = 5
)

// Unlimited, as Policy.MaxAttempts, removes the limit on attempts. It is
// valid only together with a positive MaxElapsed, so that every retry loop
// still has a bound.
const Unlimited = -1

// Jitter selects how a Policy randomises its delays. The zero value is
// JitterFull.
//
// Randomising delays matters more than their length: when many clients fail
// at the same moment, un-jittered exponential backoff keeps them in lockstep
// and every retry wave arrives at once.
type Jitter int

const (
	// JitterFull draws the delay uniformly from [0, e], where e is the
	// exponential envelope min(Cap, Base·Multiplier^(n−1)). It spreads
	// retries the most and is the default.
	JitterFull Jitter = iota
	// JitterEqual draws the delay uniformly from [e/2, e]: never shorter
	// than half the envelope, still spread.
	JitterEqual
	// JitterDecorrelated draws the delay uniformly from
	// [Base, min(Cap, 3·previous delay)], as in the AWS Architecture Blog's
	// "Exponential Backoff and Jitter". It ignores Multiplier and the attempt
	// number and grows from the previous delay instead.
	JitterDecorrelated
	// JitterNone uses the envelope e itself. Use it only where a single
	// client retries: many clients with JitterNone retry in synchronised
	// waves.
	JitterNone
)

// String returns the name of the jitter kind ("full", "equal",
// "decorrelated", "none").
func (j Jitter) String() string {
	switch j {
	case JitterFull:
		return "full"
	case JitterEqual:
		return "equal"
	case JitterDecorrelated:
		return "decorrelated"
	case JitterNone:
		return "none"
	}
	return fmt.Sprintf("Jitter(%d)", int(j))
}

// Policy describes when to retry and how long to wait in between. It is a
// plain immutable value: copy it, share it between goroutines, keep it in a
// global. The zero value is usable and means: first delay about 100ms,
// doubling, at most 10s, full jitter, at most 5 attempts.
//
// Delays follow the exponential envelope e(n) = min(Cap, Base·Multiplier^(n−1))
// for the n-th retry (n = 1 is the delay after the first failed attempt),
// randomised as Jitter says.
type Policy struct {
	// Base is the envelope of the first retry's delay. Zero means
	// DefaultBase (100ms). Negative is invalid.
	Base time.Duration
	// Cap bounds every delay, jitter included (a retry-after hint from the
	// server may exceed it; see RetryAfter). Zero means DefaultCap (10s), or
	// Base if Base is larger. Cap below Base is invalid.
	Cap time.Duration
	// Multiplier is the growth factor of the envelope per retry. Zero means
	// DefaultMultiplier (2). Below 1, NaN or infinite is invalid.
	Multiplier float64
	// Jitter is how delays are randomised. The zero value is JitterFull.
	Jitter Jitter
	// MaxAttempts bounds the number of calls of the operation, the first
	// one included: MaxAttempts 1 means no retry. Zero means
	// DefaultMaxAttempts (5). Unlimited removes the bound, but then
	// MaxElapsed must be positive. Other negative values are invalid.
	MaxAttempts int
	// MaxElapsed bounds the time from the start of the first attempt to the
	// start of the last one. Retry never starts a sleep that would end
	// after it. Zero means no time bound (MaxAttempts bounds the loop).
	// Negative is invalid.
	MaxElapsed time.Duration
}

// ErrInvalidPolicy is matched (with errors.Is) by every error Validate
// returns.
var ErrInvalidPolicy = errors.New("backoff: invalid policy")

// Validate reports every invalid field of p in one error that matches
// ErrInvalidPolicy, or nil if p is valid. The zero Policy is valid.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidPolicy}, args...)...))
	}
	if p.Base < 0 {
		bad("Base %v is negative", p.Base)
	}
	if p.Cap < 0 {
		bad("Cap %v is negative", p.Cap)
	}
	if p.Base > 0 && p.Cap > 0 && p.Cap < p.Base {
		bad("Cap %v is below Base %v", p.Cap, p.Base)
	}
	if p.Base == 0 && p.Cap > 0 && p.Cap < DefaultBase {
		bad("Cap %v is below the default Base %v", p.Cap, DefaultBase)
	}
	switch m := p.Multiplier; {
	case math.IsNaN(m) || math.IsInf(m, 0):
		bad("Multiplier %v is not a finite number", m)
	case m != 0 && m < 1:
		bad("Multiplier %v is below 1 (delays would shrink)", m)
	}
	if p.Jitter < JitterFull || p.Jitter > JitterNone {
		bad("unknown Jitter %d", int(p.Jitter))
	}
	if p.MaxAttempts < 0 && p.MaxAttempts != Unlimited {
		bad("MaxAttempts %d is negative (use Unlimited with a MaxElapsed for no attempt limit)", p.MaxAttempts)
	}
	if p.MaxElapsed < 0 {
		bad("MaxElapsed %v is negative", p.MaxElapsed)
	}
	if p.MaxAttempts == Unlimited && p.MaxElapsed <= 0 {
		bad("MaxAttempts is Unlimited but MaxElapsed is %v: the retry loop would have no bound", p.MaxElapsed)
	}
	return errors.Join(errs...)
}

// limits returns the effective Base and Cap, with defaults for zero fields
// and safe substitutes for invalid ones, so that Delay never panics or goes
// out of range whatever it is given. It takes the fields, not the Policy,
// so that the hot path copies no 48-byte struct.
func limits(base, limit time.Duration) (time.Duration, time.Duration) {
	if base <= 0 {
		base = DefaultBase
	}
	if limit <= 0 {
		limit = DefaultCap
	}
	return base, max(limit, base)
}

func (p Policy) base() time.Duration { b, _ := limits(p.Base, p.Cap); return b }
func (p Policy) cap() time.Duration  { _, c := limits(p.Base, p.Cap); return c }

// multiplier returns the effective growth factor: the default for zero, 1
// for anything invalid.
func multiplier(m float64) float64 {
	if m == 0 {
		return DefaultMultiplier
	}
	if !(m >= 1) || math.IsInf(m, 1) { // also catches NaN
		return 1
	}
	return m
}

// maxAttempts returns the attempt bound, or 0 for no bound.
func (p Policy) maxAttempts() int {
	switch {
	case p.MaxAttempts == 0:
		return DefaultMaxAttempts
	case p.MaxAttempts < 0:
		return 0
	}
	return p.MaxAttempts
}

// MaxDelay returns the longest delay Delay can return for p: its effective
// Cap.
func (p Policy) MaxDelay() time.Duration { return p.cap() }

// Attempts returns the effective bound on attempts (MaxAttempts, or its
// default), or 0 if attempts are Unlimited.
func (p Policy) Attempts() int { return p.maxAttempts() }

// Next is the pure retry decision that Retry makes after a failed attempt,
// for simulations and callers with their own loop: given the number of
// attempts made so far (from 1), the time elapsed since the first attempt
// started (at the moment the next sleep would begin), the previous delay and
// a uniform draw u, it returns the delay before the next attempt and nil, or
// ErrAttemptsExhausted or ErrElapsedExhausted (with the delay that would
// have crossed MaxElapsed) when the policy says to give up. Like Delay it
// reads no clock and does not allocate. It does not validate p.
func (p Policy) Next(attempts int, elapsed, prev time.Duration, u float64) (time.Duration, error) {
	if limit := p.maxAttempts(); limit > 0 && attempts >= limit {
		return 0, ErrAttemptsExhausted
	}
	d := p.Delay(attempts, prev, u)
	if p.MaxElapsed > 0 && d > p.MaxElapsed-elapsed {
		return d, ErrElapsedExhausted
	}
	return d, nil
}

// Envelope returns e(n) = min(Cap, Base·Multiplier^(n−1)), the upper end of
// the n-th retry's delay for every jitter kind but JitterDecorrelated. It
// never overflows: any n, however large, gives at most Cap. n below 1 is
// taken as 1.
func (p Policy) Envelope(n int) time.Duration {
	base, limit := limits(p.Base, p.Cap)
	return envelope(base, limit, p.Multiplier, n)
}

// envelope is Envelope on effective limits; m is the raw Multiplier.
func envelope(base, limit time.Duration, m float64, n int) time.Duration {
	if n <= 1 {
		return base
	}
	if m == 0 || m == 2 {
		// The default and common case, exact and without floating point.
		shift := uint(n - 1)
		if shift >= 63 || base > limit>>shift {
			return limit
		}
		return base << shift
	}
	e := float64(base) * math.Pow(multiplier(m), float64(n-1))
	if !(e < float64(limit)) { // also catches +Inf
		return limit
	}
	return time.Duration(e)
}

// Delay returns the delay before the n-th retry (n = 1 after the first failed
// attempt). prev is the delay returned for retry n−1 (zero for the first
// retry); only JitterDecorrelated uses it. u is a uniform random draw in
// [0, 1), for example rand.Float64(); values outside are clamped.
//
// Delay is the pure core that simulations call: it reads no clock and no
// random source, returns the same result for the same arguments, never
// returns a negative value or one above Cap, never overflows for any n, and
// does not allocate. On an invalid policy it still returns a value in
// [0, Cap] computed from safe substitutes; call Validate to find out.
func (p Policy) Delay(n int, prev time.Duration, u float64) time.Duration {
	// The default policy's case, small enough for the compiler to inline:
	// full jitter, doubling, a draw in [0, 1).
	if p.Jitter == JitterFull && (p.Multiplier == 0 || p.Multiplier == 2) && u >= 0 && u < 1 && n >= 1 && n < 64 {
		base, limit := limits(p.Base, p.Cap)
		e := limit
		if base <= limit>>(n-1) {
			e = min(base<<(n-1), limit)
		}
		return time.Duration(float64(e) * u)
	}
	return p.delay(n, prev, u)
}

// delay is Delay for every case.
func (p Policy) delay(n int, prev time.Duration, u float64) time.Duration {
	base, limit := limits(p.Base, p.Cap)
	if !(u > 0) { // also catches NaN
		u = 0
	} else if u > 1 {
		u = 1
	}
	switch p.Jitter {
	case JitterNone:
		return envelope(base, limit, p.Multiplier, n)
	case JitterEqual:
		e := envelope(base, limit, p.Multiplier, n)
		half := e / 2
		return half + scale(e-half, u)
	case JitterDecorrelated:
		prev = min(max(prev, base), limit)
		hi := limit
		if prev <= limit/3 {
			hi = 3 * prev
		}
		return base + scale(hi-base, u)
	default:
		return scale(envelope(base, limit, p.Multiplier, n), u)
	}
}

// scale returns d·u for u in [0, 1], never above d. The comparison is in
// floating point because float64(d) may round up to 2^63, which does not
// convert back to a Duration.
func scale(d time.Duration, u float64) time.Duration {
	f := float64(d) * u
	if f >= float64(d) {
		return d
	}
	return time.Duration(f)
}

// Delays returns an iterator over the retries the policy allows: the retry
// number n (from 1) and the delay to wait before it. It is for callers that
// run their own loop; Retry and Do use the same computation.
//
// The sequence ends after MaxAttempts−1 retries, or before a delay that
// would make the sum of delays exceed MaxElapsed (the iterator reads no
// clock, so the time the operation itself takes is not counted: Retry
// counts it). With Unlimited attempts and no MaxElapsed the policy is
// invalid, and so is any policy for which Validate fails: the sequence is
// then empty. r supplies the randomness; nil means a fast shared source that
// is safe for concurrent use. Each call of the returned iterator starts
// again from the first retry.
//
//	err := op()
//	for _, d := range policy.Delays(nil) {
//		if err == nil {
//			break
//		}
//		time.Sleep(d)
//		err = op()
//	}
func (p Policy) Delays(r *rand.Rand) iter.Seq2[int, time.Duration] {
	return func(yield func(int, time.Duration) bool) {
		if p.Validate() != nil {
			return
		}
		limit := p.maxAttempts()
		var prev, total time.Duration
		for n := 1; limit == 0 || n < limit; n++ {
			d := p.Delay(n, prev, uniform(r))
			if p.MaxElapsed > 0 && d > p.MaxElapsed-total {
				return
			}
			total += d
			prev = d
			if !yield(n, d) {
				return
			}
		}
	}
}

// uniform draws from r, or from the runtime's per-thread source if r is nil.
func uniform(r *rand.Rand) float64 {
	if r == nil {
		return rand.Float64()
	}
	return r.Float64()
}
