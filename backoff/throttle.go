package backoff

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Defaults applied to the zero fields of a ThrottleConfig.
const (
	DefaultThrottleK       = 2.0
	DefaultThrottleWindow  = 2 * time.Minute
	DefaultThrottleBuckets = 12
)

// Bounds checked by NewThrottle.
const (
	// MaxThrottleBuckets bounds ThrottleConfig.Buckets: every decision
	// reads two words per bucket.
	MaxThrottleBuckets = 256
	// MinThrottleBucketWidth is the least Window/Buckets.
	MinThrottleBucketWidth = time.Millisecond
)

var (
	// ErrInvalidThrottle is matched (with errors.Is) by every error
	// NewThrottle returns.
	ErrInvalidThrottle = errors.New("backoff: invalid throttle")
	// ErrThrottled is matched (with errors.Is) by every *ThrottledError: the
	// client refused a request locally because the backend has been
	// refusing most of them.
	ErrThrottled = errors.New("throttled locally")
)

// ThrottleOutcome is what a request's result says about the backend, as a
// Throttle counts it.
type ThrottleOutcome uint8

const (
	// ThrottleAccepted: the backend accepted the request. A success is an
	// accept; an error that the backend answered on its merits (not found,
	// invalid argument, permission denied) should be one too, as it had
	// the capacity to look at the request, but only a Classify that knows
	// the errors can say so: by default every error is a refusal.
	ThrottleAccepted ThrottleOutcome = iota
	// ThrottleRefused: the backend did not accept the request (overloaded,
	// unavailable, timed out, connection refused). It counts as a request
	// without an accept.
	ThrottleRefused
	// ThrottleIgnored: the result says nothing about the backend (the
	// caller cancelled the request). It counts as nothing.
	ThrottleIgnored
)

// String returns "accepted", "refused" or "ignored".
func (o ThrottleOutcome) String() string {
	switch o {
	case ThrottleAccepted:
		return "accepted"
	case ThrottleRefused:
		return "refused"
	case ThrottleIgnored:
		return "ignored"
	}
	return fmt.Sprintf("ThrottleOutcome(%d)", uint8(o))
}

// ThrottleConfig configures a Throttle. The zero value is usable: K 2, a
// two-minute window in 12 steps of 10s, and every error counted as a
// refusal.
type ThrottleConfig struct {
	// K is how many requests per accept the client may send before it
	// starts refusing locally: the Throttle refuses with probability
	// max(0, (requests − K·accepts)/(requests + 1)). Zero means
	// DefaultThrottleK (2, as the Google SRE book recommends). Lower is
	// more aggressive. K must be at least 1 and finite: below 1 the client
	// would refuse requests to a backend that accepts all of them, and an
	// infinite K never throttles (and makes the formula NaN when nothing
	// was accepted).
	K float64
	// Window is how long requests and accepts are remembered. Zero means
	// DefaultThrottleWindow (2 minutes). Negative is invalid, and so is a
	// window shorter than Buckets·MinThrottleBucketWidth.
	Window time.Duration
	// Buckets is how many steps the window slides in: the counts cover the
	// current bucket and the Buckets−1 before it, each Window/Buckets long,
	// so old counts are forgotten in steps of Window/Buckets. Zero means
	// DefaultThrottleBuckets (12). It must be in [1, MaxThrottleBuckets].
	Buckets int
	// MaxProbability bounds the rejection probability, so that at least
	// 1−MaxProbability of the requests reach the backend even in a long
	// outage. Zero means 1: no bound but the formula's own, which stays
	// below 1 (the SRE book's algorithm as it is). It must be in (0, 1].
	//
	// A bound shortens recovery. When the backend is back, the deviation
	// of the probability from 1 roughly doubles per window (with K 2), so
	// recovery from p = 1−1/(requests+1) takes a number of windows that
	// grows with the logarithm of the request rate. In this package's
	// simulation (default window, a four-minute outage) a client sending
	// 1 to 100 requests per second sent all of them again 10 to 15 minutes
	// after the backend recovered; with MaxProbability 0.9, after 4
	// minutes, and it kept sending 10% of its requests during the outage.
	MaxProbability float64
	// Classify says what a non-nil error from a request means for the
	// backend. It is not called for a nil error (an accept) nor when the
	// caller cancelled the request's context (ctx.Err() is
	// context.Canceled: the request is then ignored, as a client that
	// gives up says nothing about the backend). A request that ran into
	// the caller's deadline is classified like any other error, so that a
	// backend that hangs until its callers time out is throttled. Nil
	// means the default: every non-nil error is a refusal, Permanent or
	// not (Permanent says a retry will not help, not that the backend is
	// well), as every error is a failure to a Breaker by default.
	Classify func(err error) ThrottleOutcome
	// OnEvent, if not nil, is told of every decision, on the goroutine that
	// asked. It must not block.
	OnEvent func(ThrottleEvent)
}

// ThrottleEvent describes one decision of a Throttle, for its OnEvent hook.
type ThrottleEvent struct {
	// Time is the time of the decision.
	Time time.Time
	// Throttled is true if the request was refused locally.
	Throttled bool
	// Probability is the rejection probability the decision used.
	Probability float64
	// Requests and Accepts are the counts in the window the probability
	// was computed from.
	Requests, Accepts int64
}

// ThrottledError is the refusal of a Throttle: the request was not sent.
// It matches ErrThrottled with errors.Is.
type ThrottledError struct {
	// Probability is the rejection probability at the time of the refusal.
	Probability float64
	// Requests and Accepts are the counts in the window.
	Requests, Accepts int64
	// K is the throttle's ThrottleConfig.K.
	K float64
	// Window is the throttle's ThrottleConfig.Window.
	Window time.Duration
}

// Error says what was refused and why, for example "throttled locally:
// rejection probability 0.66 (200 requests, 34 accepted in the last 2m0s,
// K 2)".
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v: rejection probability %.3g (%d requests, %d accepted in the last %v, K %v)",
		ErrThrottled, e.Probability, e.Requests, e.Accepts, e.Window, e.K)
}

// Unwrap returns ErrThrottled.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// ThrottleStats is a snapshot of a Throttle.
type ThrottleStats struct {
	// Requests and Accepts are the counts in the window.
	Requests, Accepts int64
	// Probability is the current rejection probability.
	Probability float64
	// Throttled is how many requests the throttle has refused in all.
	Throttled int64
}

// Throttle is the client-side adaptive throttle of the Google SRE book
// ("Handling Overload"): each client counts, over a sliding window, the
// requests it wanted to send and the ones the backend accepted, and refuses
// a new request locally with probability
//
//	min(MaxProbability, max(0, (requests − K·accepts) / (requests + 1)))
//
// A request refused locally counts as a request, so while a backend refuses
// almost everything the probability approaches 1 and the clients stop
// sending it work without any coordination among them; as it recovers, the
// few requests still let through are accepted and the probability falls.
// With K 2 a backend sees no throttling until it refuses more than half of
// the requests. Recovery takes a few windows (see MaxProbability). Unlike a Budget, which bounds retries, a Throttle also
// refuses first attempts; unlike a circuit breaker it has no states and
// never refuses everything.
//
// A request is counted when its result is recorded (with Record, RecordAt
// or Done), not while it is in flight; a refusal is counted at once.
//
// The zero Throttle is usable and has the defaults of ThrottleConfig{}; a
// nil *Throttle admits every request and counts nothing.
//
// AllowAt, RecordAt and ProbabilityAt are the pure core: they take the time
// (and AllowAt the uniform draw), so a simulation drives them with its own
// clock and random source and gets the same answers for the same inputs.
// One clock per Throttle: the window is measured from the first time it
// sees (a time more than time.Duration's range, about 292 years, away from
// it counts as that far: the window stops sliding there), and times should
// not go backwards (a count made with a time earlier
// than one already seen may land in a later bucket than its own). Allow, Record and Do read the real clock and a fast shared random
// source. A Throttle is safe for concurrent use; its methods are lock-free
// and, after the first call, do not allocate (but for the *ThrottledError
// of a refusal in Do, Check, CheckAt and Retry).
type Throttle struct {
	// The settings; zero means the default, so that the zero Throttle is
	// usable.
	k        float64
	maxP     float64
	n        int64 // buckets in use
	width    int64 // nanoseconds per bucket
	window   time.Duration
	cbits    uint // bits of a bucket word that hold the count
	classify func(error) ThrottleOutcome
	hook     func(ThrottleEvent)

	epoch   atomic.Pointer[time.Time]
	_       cacheLinePad
	refused atomic.Int64
	_       cacheLinePad
	buckets [MaxThrottleBuckets]throttleBucket
}

// A bucket's counters are each one word: the bucket's number (its stamp)
// in the high bits and the count in the low cbits, so that resetting a
// bucket for reuse and counting in it are one compare-and-swap. The stamp
// has room for the difference of any two bucket numbers the throttle can
// compute (time.Duration's range divided by the bucket width, and one bit
// of sign), so it never wraps; the count has the rest: at least 18 bits
// (a bucket of 1ms saturates at 262143), 32 with the default width.
const tDefaultCountBits = 32

// tCountBitsFor returns how many bits of a bucket word hold the count for
// buckets width nanoseconds wide.
func tCountBitsFor(width int64) uint {
	span := 2 * (uint64(math.MaxInt64/width) + 1) // the largest |difference| of two bucket numbers
	return uint(64 - 1 - bits.Len64(span))
}

type throttleBucket struct {
	requests, accepts atomic.Uint64
}

// NewThrottle returns a Throttle configured by cfg, or an error that
// matches ErrInvalidThrottle and names every invalid field.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidThrottle}, args...)...))
	}
	k := cfg.K
	if k == 0 {
		k = DefaultThrottleK
	}
	switch {
	case math.IsNaN(k) || math.IsInf(k, 0):
		bad("K %v is not a finite number", cfg.K)
	case k < 1:
		bad("K %v is below 1 (the client would refuse requests to a backend that accepts them all)", cfg.K)
	}
	window := cfg.Window
	if window == 0 {
		window = DefaultThrottleWindow
	}
	n := cfg.Buckets
	if n == 0 {
		n = DefaultThrottleBuckets
	}
	if n < 1 || n > MaxThrottleBuckets {
		bad("Buckets %d is outside [1, %d]", cfg.Buckets, MaxThrottleBuckets)
		n = DefaultThrottleBuckets
	}
	switch {
	case window < 0:
		bad("Window %v is negative", cfg.Window)
	case window/time.Duration(n) < MinThrottleBucketWidth:
		bad("Window %v is shorter than %d buckets of %v", window, n, MinThrottleBucketWidth)
	}
	maxP := cfg.MaxProbability
	if maxP == 0 {
		maxP = 1
	}
	if !(maxP > 0 && maxP <= 1) {
		bad("MaxProbability %v is outside (0, 1]", cfg.MaxProbability)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Throttle{
		k:        k,
		maxP:     maxP,
		n:        int64(n),
		width:    int64(window / time.Duration(n)),
		window:   window,
		cbits:    tCountBitsFor(int64(window / time.Duration(n))),
		classify: cfg.Classify,
		hook:     cfg.OnEvent,
	}, nil
}

// settings returns the throttle's K, MaxProbability, number of buckets and
// bucket width, with the defaults for a zero Throttle.
func (t *Throttle) settings() (k, maxP float64, n, width int64) {
	if t.n == 0 {
		return DefaultThrottleK, 1, DefaultThrottleBuckets, int64(DefaultThrottleWindow / DefaultThrottleBuckets)
	}
	return t.k, t.maxP, t.n, t.width
}

// countBits returns cbits, with the default for a zero Throttle.
func (t *Throttle) countBits() uint {
	if t.n == 0 {
		return tDefaultCountBits
	}
	return t.cbits
}

func classifyThrottleDefault(error) ThrottleOutcome { return ThrottleRefused }

// AllowAt decides at time now whether to send a request, with u a uniform
// random draw in [0, 1): it refuses if u < the rejection probability. A
// refusal counts as a request at once; an admission counts nothing until
// the request's outcome is recorded with RecordAt. A u below 0 counts as
// 0 (so a probability of 0 admits every u), one at or above 1 and NaN
// admit.
func (t *Throttle) AllowAt(now time.Time, u float64) bool {
	if t == nil {
		return true
	}
	ok, _, _, _ := t.decide(now, u)
	return ok
}

// Allow is AllowAt(time.Now(), a draw from a fast shared random source).
func (t *Throttle) Allow() bool {
	if t == nil {
		return true
	}
	return t.AllowAt(time.Now(), rand.Float64())
}

// CheckAt is AllowAt that names a refusal: nil if the request may be sent,
// else a *ThrottledError (matching ErrThrottled) with the numbers the
// decision used, as Do and Retry return. It suits a caller that asks before
// a wait and reports why a request was not sent.
func (t *Throttle) CheckAt(now time.Time, u float64) error {
	if t == nil {
		return nil
	}
	return t.check(now, u)
}

// Check is CheckAt(time.Now(), a draw from a fast shared random source).
func (t *Throttle) Check() error {
	if t == nil {
		return nil
	}
	return t.check(time.Now(), rand.Float64())
}

// decide is AllowAt that also returns the numbers it used.
func (t *Throttle) decide(now time.Time, u float64) (ok bool, p float64, requests, accepts int64) {
	k := t.bucketNumber(now)
	requests, accepts = t.counts(k)
	p = t.probability(requests, accepts)
	// A draw below 0 counts as 0: with p 0 it must admit. NaN admits, and
	// a draw at or above 1 admits as p never exceeds 1.
	ok = !(max(u, 0) < p)
	if !ok {
		t.add(&t.slot(k).requests, k)
		t.refused.Add(1)
	}
	if t.hook != nil {
		t.hook(ThrottleEvent{Time: now, Throttled: !ok, Probability: p, Requests: requests, Accepts: accepts})
	}
	return ok, p, requests, accepts
}

// check is decide for Retry: nil, or the refusal as a *ThrottledError.
func (t *Throttle) check(now time.Time, u float64) error {
	ok, p, r, a := t.decide(now, u)
	if ok {
		return nil
	}
	k, _, _, _ := t.settings()
	window := t.window
	if window == 0 {
		window = DefaultThrottleWindow
	}
	return &ThrottledError{Probability: p, Requests: r, Accepts: a, K: k, Window: window}
}

// RecordAt records, at time now, the outcome of a request that AllowAt
// admitted: ThrottleAccepted counts a request and an accept,
// ThrottleRefused a request, ThrottleIgnored nothing.
func (t *Throttle) RecordAt(now time.Time, o ThrottleOutcome) {
	if t == nil || o != ThrottleAccepted && o != ThrottleRefused {
		return
	}
	k := t.bucketNumber(now)
	b := t.slot(k)
	t.add(&b.requests, k)
	if o == ThrottleAccepted {
		t.add(&b.accepts, k)
	}
}

// Record is RecordAt(time.Now(), o).
func (t *Throttle) Record(o ThrottleOutcome) { t.RecordAt(time.Now(), o) }

// Outcome classifies the result of a request made with ctx: accepted if
// err is nil, ignored if the caller cancelled ctx (ctx.Err() is
// context.Canceled), else what the configured Classify says (a refusal by
// default), also when ctx's deadline passed.
func (t *Throttle) Outcome(ctx context.Context, err error) ThrottleOutcome {
	switch {
	case err == nil:
		return ThrottleAccepted
	case ctx != nil && errors.Is(ctx.Err(), context.Canceled):
		return ThrottleIgnored
	case t == nil || t.classify == nil:
		return classifyThrottleDefault(err)
	}
	return t.classify(err)
}

// Done records the outcome of a request made with ctx that returned err,
// as Outcome classifies it.
func (t *Throttle) Done(ctx context.Context, err error) {
	if t == nil {
		return
	}
	t.RecordAt(time.Now(), t.Outcome(ctx, err))
}

// Do sends one request through the throttle: it returns a *ThrottledError
// without calling op if the throttle refuses, else calls op and records its
// outcome. A nil ctx or op is an error matching ErrInvalidArgument, and an
// ended ctx returns its error; op is then not called and nothing is
// counted.
func (t *Throttle) Do(ctx context.Context, op func(context.Context) error) error {
	switch {
	case ctx == nil:
		return errNilContext
	case op == nil:
		return errNilOp
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if t == nil {
		return op(ctx)
	}
	if err := t.check(time.Now(), rand.Float64()); err != nil {
		return err
	}
	err := op(ctx)
	t.Done(ctx, err)
	return err
}

// ProbabilityAt returns the rejection probability at time now, without
// counting anything.
func (t *Throttle) ProbabilityAt(now time.Time) float64 {
	if t == nil {
		return 0
	}
	return t.probability(t.counts(t.bucketNumber(now)))
}

// StatsAt returns a snapshot of the throttle at time now.
func (t *Throttle) StatsAt(now time.Time) ThrottleStats {
	if t == nil {
		return ThrottleStats{}
	}
	r, a := t.counts(t.bucketNumber(now))
	return ThrottleStats{Requests: r, Accepts: a, Probability: t.probability(r, a), Throttled: t.refused.Load()}
}

// Stats is StatsAt(time.Now()).
func (t *Throttle) Stats() ThrottleStats {
	if t == nil {
		return ThrottleStats{}
	}
	return t.StatsAt(time.Now())
}

func (t *Throttle) probability(requests, accepts int64) float64 {
	k, maxP, _, _ := t.settings()
	r, a := float64(requests), float64(accepts)
	return min(maxP, max(0, (r-k*a)/(r+1)))
}

// bucketNumber returns the number of the bucket that now falls in, counted
// from the first time the throttle saw (negative before it).
func (t *Throttle) bucketNumber(now time.Time) int64 {
	epoch := t.epoch.Load()
	if epoch == nil {
		first := now // escapes to the heap once, on the first call only
		t.epoch.CompareAndSwap(nil, &first)
		epoch = t.epoch.Load()
	}
	_, _, _, width := t.settings()
	d := int64(now.Sub(*epoch))
	k := d / width
	if d < 0 && d%width != 0 {
		k-- // floor, not truncation
	}
	return k
}

func (t *Throttle) slot(k int64) *throttleBucket {
	_, _, n, _ := t.settings()
	return &t.buckets[((k%n)+n)%n]
}

// tAge returns how many buckets k is after the bucket stamped s (negative
// if s is newer), for words with cb bits of count.
func tAge(k int64, s uint64, cb uint) int64 {
	return int64((uint64(k)-s)<<cb) >> cb
}

// add counts one in the word w of bucket k: it resets a word stamped with
// an older bucket, and counts in a newer one as it is (a time earlier than
// one already seen).
func (t *Throttle) add(w *atomic.Uint64, k int64) {
	cb := t.countBits()
	mask := uint64(1)<<cb - 1
	for {
		old := w.Load()
		var next uint64
		if tAge(k, old>>cb, cb) > 0 {
			next = uint64(k)<<cb | 1
		} else {
			if old&mask == mask {
				return
			}
			next = old + 1
		}
		if w.CompareAndSwap(old, next) {
			return
		}
	}
}

// counts sums the words of the buckets in the window that ends with bucket k.
func (t *Throttle) counts(k int64) (requests, accepts int64) {
	_, _, n, _ := t.settings()
	cb := t.countBits()
	mask := uint64(1)<<cb - 1
	for i := range n {
		b := &t.buckets[i]
		if w := b.accepts.Load(); tInWindow(tAge(k, w>>cb, cb), n) {
			accepts += int64(w & mask)
		}
		if w := b.requests.Load(); tInWindow(tAge(k, w>>cb, cb), n) {
			requests += int64(w & mask)
		}
	}
	return requests, accepts
}

func tInWindow(age, n int64) bool { return age >= 0 && age < n }
