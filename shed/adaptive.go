package shed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied to the zero fields of an AdaptiveConfig.
const (
	// DefaultMinLimit is the floor of an adaptive limit.
	DefaultMinLimit = 1
	// DefaultMaxLimit is the ceiling of a standalone adaptive limit; under
	// a Bulkhead, Partition or Queue the ceiling defaults to their fixed
	// bound (MaxConcurrent, the per-key cap, Workers).
	DefaultMaxLimit = 1000
	// DefaultInitialLimit is where an adaptive limit starts (clamped into
	// [MinLimit, MaxLimit]).
	DefaultInitialLimit = 20
	// DefaultWindowSamples is how many samples close a window.
	DefaultWindowSamples = 32
	// DefaultTolerance is how far the short-term latency may rise above the
	// baseline before the limit is lowered: 1.5×, as Netflix's Gradient2.
	DefaultTolerance = 1.5
	// DefaultSmoothing is the weight of a window's verdict in the limit.
	DefaultSmoothing = 0.2
	// DefaultBackoff multiplies the limit after a window with drops.
	DefaultBackoff = 0.9

	// maxAdaptiveWindow bounds Window, as maxQueueDuration bounds waits.
	maxAdaptiveWindow = time.Hour
	// minGradient is the least the gradient can be: one window takes at
	// most half the limit off (Gradient2's clamp).
	minGradient = 0.5
)

// ErrLimitReached: an adaptive limit had no free slot (a standalone
// AdaptiveLimit, which never queues).
var ErrLimitReached = fmt.Errorf("%w: concurrency limit reached", ErrShed)

// AdaptiveConfig configures an adaptive concurrency limit: a standalone
// AdaptiveLimit, or the limit of a Bulkhead, of each key of a Partition,
// or of a Queue. The zero value is usable: every zero field means the
// documented default.
type AdaptiveConfig struct {
	// MinLimit is the floor: the limit never goes below it. Zero means
	// DefaultMinLimit (1). It must be in [1, MaxLimit].
	MinLimit int
	// MaxLimit is the ceiling. Zero means DefaultMaxLimit (1000) for a
	// standalone AdaptiveLimit, and the primitive's fixed bound under a
	// Bulkhead (MaxConcurrent), Partition (its per-key cap) or Queue
	// (Workers), which it must not exceed there. At most 2^24.
	MaxLimit int
	// InitialLimit is the limit before anything is learned. Zero means
	// DefaultInitialLimit (20), clamped into [MinLimit, MaxLimit]; a
	// non-zero value must lie in that range.
	InitialLimit int
	// WindowSamples is how many completed calls (samples) make a window,
	// the unit in which the limit moves. Zero means DefaultWindowSamples
	// (32). It must be in [1, 2^20].
	WindowSamples int
	// Window, if positive, is the least time a window lasts, so that the
	// limit moves at most once per Window however fast calls complete.
	// Zero means no such floor. Negative or above an hour is invalid.
	Window time.Duration
	// MaxWindow, if positive, is the most time a window lasts: a window
	// closes at WindowSamples samples or once MaxWindow has passed since
	// its first sample, whichever comes first (and never before Window).
	// Without it a limit at a low floor moves slowly: at a limit of 1 and
	// 100ms calls, a window of 32 samples lasts 3.2s; a MaxWindow of 300ms
	// lets it move every third call. A shorter window is a noisier mean.
	// Zero means none: windows are counted in samples only. It must be in
	// [Window, 1h].
	MaxWindow time.Duration
	// Tolerance is how far, as a ratio, the window's mean latency may
	// exceed the baseline before the limit is lowered. Zero means
	// DefaultTolerance (1.5). It must be finite and in [1, 10].
	Tolerance float64
	// Smoothing is the weight of each window's new estimate in the limit
	// (an exponential moving average). Zero means DefaultSmoothing (0.2).
	// It must be in (0, 1].
	Smoothing float64
	// Backoff multiplies the limit after a window in which a call was
	// dropped (timed out, or refused by the dependency for overload): the
	// multiplicative decrease of AIMD, for dependencies that signal
	// overload by failing rather than by slowing down. Zero means
	// DefaultBackoff (0.9). It must be in (0, 1).
	Backoff float64
	// OnLimit, if not nil, is told every change of the (integer) limit. It
	// runs on the goroutine that reported the sample that closed the
	// window, outside every lock of this package; it must be cheap and
	// must not block.
	OnLimit func(LimitChange)
}

// LimitChange describes a change of an adaptive limit, for
// AdaptiveConfig.OnLimit.
type LimitChange struct {
	// Old and New are the limit before and after.
	Old, New int
	// RTT is the mean latency of the window that moved the limit, and
	// Baseline the baseline it was compared with.
	RTT, Baseline time.Duration
	// Dropped says the window had drops: the limit backed off (AIMD).
	Dropped bool
	// Key is the Partition key, formatted with %v; empty elsewhere.
	Key string
}

// withDefaults fills the zero fields of c; ceiling is the MaxLimit default.
func (c AdaptiveConfig) withDefaults(ceiling int) AdaptiveConfig {
	if c.MinLimit == 0 {
		c.MinLimit = DefaultMinLimit
	}
	if c.MaxLimit == 0 {
		c.MaxLimit = ceiling
	}
	if c.InitialLimit == 0 {
		c.InitialLimit = min(max(DefaultInitialLimit, c.MinLimit), c.MaxLimit)
	}
	if c.WindowSamples == 0 {
		c.WindowSamples = DefaultWindowSamples
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.Smoothing == 0 {
		c.Smoothing = DefaultSmoothing
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	return c
}

// validate reports every invalid field of c in one error matching
// ErrInvalidConfig. ceiling is the MaxLimit default, and under a primitive
// its fixed bound, which MaxLimit must not exceed (ceilingName names it).
func (c AdaptiveConfig) validate(ceiling int, ceilingName string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: Adaptive."+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.MinLimit < 0 || c.MinLimit > maxQueueConfig {
		bad("MinLimit %d is outside [1, 2^24]", c.MinLimit)
	}
	if c.MaxLimit < 0 || c.MaxLimit > maxQueueConfig {
		bad("MaxLimit %d is outside [1, 2^24]", c.MaxLimit)
	} else if ceilingName != "" && c.MaxLimit > ceiling {
		bad("MaxLimit %d exceeds %s %d", c.MaxLimit, ceilingName, ceiling)
	}
	d := c.withDefaults(ceiling)
	if c.MinLimit >= 0 && c.MaxLimit >= 0 && d.MinLimit > d.MaxLimit {
		bad("MinLimit %d exceeds MaxLimit %d", d.MinLimit, d.MaxLimit)
	}
	if c.InitialLimit != 0 && (c.InitialLimit < d.MinLimit || c.InitialLimit > d.MaxLimit) {
		bad("InitialLimit %d is outside [MinLimit %d, MaxLimit %d]", c.InitialLimit, d.MinLimit, d.MaxLimit)
	}
	if c.WindowSamples < 0 || c.WindowSamples > 1<<20 {
		bad("WindowSamples %d is outside [1, 2^20]", c.WindowSamples)
	}
	if c.Window < 0 || c.Window > maxAdaptiveWindow {
		bad("Window %v is outside [0, 1h]", c.Window)
	}
	if c.MaxWindow < 0 || c.MaxWindow > maxAdaptiveWindow {
		bad("MaxWindow %v is outside [0, 1h]", c.MaxWindow)
	} else if c.MaxWindow > 0 && c.MaxWindow < c.Window {
		bad("MaxWindow %v is below Window %v", c.MaxWindow, c.Window)
	}
	if t := c.Tolerance; math.IsNaN(t) || t != 0 && (t < 1 || t > 10) {
		bad("Tolerance %v is outside [1, 10]", t)
	}
	if s := c.Smoothing; math.IsNaN(s) || s < 0 || s > 1 {
		bad("Smoothing %v is outside (0, 1]", s)
	}
	if b := c.Backoff; math.IsNaN(b) || b < 0 || b >= 1 {
		bad("Backoff %v is outside (0, 1)", b)
	}
	return errors.Join(errs...)
}

// AdaptiveLimit is a concurrency limit that learns how much concurrency a
// dependency can take from the latencies it sees, within [MinLimit,
// MaxLimit]. Use it on its own (TryAcquire or Acquire, then ReleaseRTT with
// the call's latency, or Do), or as the limit of a Bulkhead, of each key of
// a Partition, or of a Queue (their Adaptive config field), where it moves
// the bound those primitives enforce while their queueing works on top.
//
// # Algorithm
//
// Completed calls are grouped into windows of WindowSamples samples (and at
// least Window long; or, sooner, MaxWindow long). At the end of a window its mean latency (the short
// RTT) is compared with a baseline, the latency of the dependency when it
// is not queueing our calls, and the limit L moves as in Netflix's
// Gradient2 (concurrency-limits, Gradient2Limit):
//
//	gradient = clamp(Tolerance · baseline / short, 0.5, 1)
//	next     = gradient·L + √L
//	L ← next                                   if next < L
//	L ← (1−Smoothing)·L + Smoothing·next       otherwise
//
// so that while latency stays within Tolerance of the baseline the limit
// grows by about Smoothing·√L a window, and once calls queue at the
// dependency it falls at once in proportion to the latency they add, by
// at most half in a window (√L is the queue Gradient2 allows for
// headroom, so that growth in the dependency's capacity is noticed). The
// fall is not smoothed, as TCP does not smooth its response to
// congestion: a smoothed fall leaves the queue standing at the dependency
// for many windows, and a latency ten times the baseline holds a
// Partition's slots ten times as long meanwhile. By Little's law,
// L·baseline/short is the concurrency the dependency serves without
// queueing, so the limit settles a little above it: about
// Tolerance·servers + √L against a dependency of that many servers, and
// near 4 (= 2·√4) against one that became several times slower. A window in which
// the limit was not used (at most half of it in flight) never raises it:
// an idle limit learns nothing about capacity. A window with a dropped
// call (ReleaseRTT with dropped set: a timeout, or the dependency refusing
// for overload) multiplies the limit by Backoff instead: the AIMD fallback
// for dependencies that fail rather than slow down.
//
// # Baseline
//
// The baseline falls at once to any window's mean below it. It rises only
// on evidence that the higher latency is not queueing we cause: a window
// measured with at most half the limit in flight, or at MinLimit. This is
// the protection against drift. A baseline that simply tracked a long-term
// average of the latency (Gradient2's long window) rises with the queue
// during a long overload, the gradient returns to 1, and the limit grows
// into the overload it should be shedding; Gradient2 decays its long
// average only when it is twice the short one, and Vegas (Brakmo and
// Peterson, 1995; Netflix's VegasLimit) keeps the minimum but must probe by
// resetting it periodically, which re-learns a congested latency if it
// probes during the overload. Here the baseline is re-learned only where
// our own calls cannot be the queue. The cost is that a dependency whose
// latency rises for good while it stays saturated is treated as congested
// until the load falls below half the limit or the limit reaches its floor.
//
// failsafe-go's adaptivelimiter (a Vegas-style queue estimate over a
// gradient, with throughput correlation to detect overload) was the other
// model; this one keeps Gradient2's single ratio, which needs no
// correlation windows, so a window costs O(1) and a sample a few
// arithmetic operations under one short lock.
//
// # Time
//
// OnSample is the pure core: it takes the time of the sample, like
// x/time/rate's AllowN(now, n), so a simulation on a virtual clock drives
// the same code as ReleaseRTT, which reads the clock. Time never goes
// backwards inside it. Latencies are durations: a negative one counts as
// zero, and every value up to the longest time.Duration keeps the limit
// within [MinLimit, MaxLimit].
//
// The limit learns only from calls that complete. Calls that hang hold
// their slots and teach it nothing, so at a low limit a few hung calls
// refuse everything; bound them with a CallTimeout (a Bulkhead's,
// Partition's or Queue's Do reports a call that ran into it as a drop, and
// frees its slot). A limit with no samples stays where it is.
//
// An AdaptiveLimit is safe for concurrent use. TryAcquire and Acquire are
// a compare-and-swap; ReleaseRTT and OnSample take one short lock; none
// allocates unless Acquire refuses.
type AdaptiveLimit struct {
	limit    atomic.Int64 // the current integer limit
	inFlight atomic.Int64 // the standalone shell's calls in flight

	minLimit, maxLimit int
	samples            int
	window, maxWindow  time.Duration
	tolerance          float64
	smoothing          float64
	backoff            float64
	hook               func(LimitChange)

	mu       sync.Mutex
	est      float64 // the limit as a real number
	baseline float64 // ns; 0 until the first window
	short    float64 // the last window's mean, ns
	last     time.Time
	wStart   time.Time
	wN       int
	wDrops   int
	wSum     float64
	wMax     int // the most calls in flight reported in the window

	windows, drops, sampled atomic.Int64
	counters
}

// NewAdaptiveLimit returns an AdaptiveLimit configured by cfg, or an error
// that matches ErrInvalidConfig and names every invalid field.
func NewAdaptiveLimit(cfg AdaptiveConfig) (*AdaptiveLimit, error) {
	if err := cfg.validate(DefaultMaxLimit, ""); err != nil {
		return nil, err
	}
	return newAdaptive(cfg.withDefaults(DefaultMaxLimit)), nil
}

// newAdaptive builds a limit from a validated config with its defaults.
func newAdaptive(c AdaptiveConfig) *AdaptiveLimit {
	a := &AdaptiveLimit{
		minLimit:  c.MinLimit,
		maxLimit:  c.MaxLimit,
		samples:   c.WindowSamples,
		window:    c.Window,
		maxWindow: c.MaxWindow,
		tolerance: c.Tolerance,
		smoothing: c.Smoothing,
		backoff:   c.Backoff,
		hook:      c.OnLimit,
		est:       float64(c.InitialLimit),
	}
	a.limit.Store(int64(c.InitialLimit))
	return a
}

// Limit returns the current limit.
func (a *AdaptiveLimit) Limit() int {
	if a == nil {
		return 0
	}
	return int(a.limit.Load())
}

// OnSample records at time now one completed call that took rtt, with
// inflight calls in flight when it completed (itself included), and
// whether it was dropped (timed out, or refused by the dependency for
// overload); it returns the limit afterwards. It is the pure core: it
// reads no clock and admits nothing, so a simulation, or a shell of the
// caller's own, can drive it. A nil *AdaptiveLimit returns 0.
func (a *AdaptiveLimit) OnSample(now time.Time, rtt time.Duration, inflight int, dropped bool) int {
	if a == nil {
		return 0
	}
	ch, changed := a.observe(now, rtt, inflight, dropped)
	if changed {
		a.emit(ch)
	}
	return int(a.limit.Load())
}

// observe is OnSample without the hook, for shells that call it under
// their own lock and emit afterwards.
func (a *AdaptiveLimit) observe(now time.Time, rtt time.Duration, inflight int, dropped bool) (LimitChange, bool) {
	a.sampled.Add(1)
	a.mu.Lock()
	if now.Before(a.last) {
		now = a.last
	}
	a.last = now
	if a.wN == 0 && a.wDrops == 0 {
		a.wStart = now
	}
	if dropped {
		a.wDrops++
		a.drops.Add(1)
	} else {
		a.wN++
		a.wSum += max(float64(rtt), 1) // 1ns: a zero latency must not divide by zero
	}
	a.wMax = max(a.wMax, inflight)
	elapsed := now.Sub(a.wStart)
	if a.wN+a.wDrops < a.samples && (a.maxWindow <= 0 || elapsed < a.maxWindow) || elapsed < a.window {
		a.mu.Unlock()
		return LimitChange{}, false
	}
	ch, changed := a.closeWindowLocked()
	a.mu.Unlock()
	return ch, changed
}

// closeWindowLocked moves the limit at the end of a window.
func (a *AdaptiveLimit) closeWindowLocked() (LimitChange, bool) {
	a.windows.Add(1)
	old := int(a.limit.Load())
	est := a.est
	used := 2*a.wMax > old // more than half the limit was in flight
	if a.wDrops > 0 {
		est *= a.backoff
	} else {
		short := a.wSum / float64(a.wN)
		a.short = short
		switch {
		case a.baseline == 0 || short < a.baseline:
			a.baseline = short
		case !used || old <= a.minLimit:
			// Measured where our own calls cannot be the queue: the
			// dependency's unloaded latency has changed.
			a.baseline = short
		}
		gradient := min(max(a.tolerance*a.baseline/short, minGradient), 1)
		if gradient < 1 || used {
			next := gradient*est + math.Sqrt(est)
			if next < est {
				// Queueing: fall at once, as TCP halves its window on
				// congestion; a smoothed fall leaves the queue standing at
				// the dependency for many windows.
				est = next
			} else {
				est = (1-a.smoothing)*est + a.smoothing*next
			}
		}
	}
	est = min(max(est, float64(a.minLimit)), float64(a.maxLimit))
	a.est = est
	ch := LimitChange{Old: old, New: int(math.Round(est)), RTT: durationOf(a.short),
		Baseline: durationOf(a.baseline), Dropped: a.wDrops > 0}
	a.wN, a.wDrops, a.wSum, a.wMax = 0, 0, 0, 0
	if ch.New == old {
		return ch, false
	}
	a.limit.Store(int64(ch.New))
	return ch, true
}

// durationOf converts nanoseconds to a Duration, saturating at the longest
// one: a float64 near 2^63 converted directly would wrap to a negative.
func durationOf(ns float64) time.Duration {
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

func (a *AdaptiveLimit) emit(ch LimitChange) {
	if a.hook != nil {
		a.hook(ch)
	}
}

// TryAcquire takes a slot if fewer calls than the limit are in flight, and
// reports whether it did. It never waits. A refusal is counted (as
// ErrLimitReached) but returns no error.
func (a *AdaptiveLimit) TryAcquire() bool {
	if a == nil {
		return false
	}
	for {
		n := a.inFlight.Load()
		if n >= a.limit.Load() {
			a.shed[reasonLimitReached].Add(1)
			return false
		}
		if a.inFlight.CompareAndSwap(n, n+1) {
			a.admitted.Add(1)
			return true
		}
	}
}

// Acquire takes a slot if fewer calls than the limit are in flight. It
// never waits (put the limit under a Bulkhead or a Queue to wait): it
// returns nil once the caller holds a slot (release it with ReleaseRTT or
// Release), or a *Refusal with ErrLimitReached, the calls in flight
// (Current), the limit (Limit), and in RetryIn (and RetryAfter) the time a
// slot is expected to free: the last window's mean latency divided by the
// calls in flight.
func (a *AdaptiveLimit) Acquire() error {
	if a == nil {
		return errNilAdaptive
	}
	if a.TryAcquire() {
		return nil
	}
	n, lim := a.inFlight.Load(), a.limit.Load()
	a.mu.Lock()
	short := a.short
	a.mu.Unlock()
	r := &Refusal{Reason: ErrLimitReached, Current: int(n), Limit: int(lim)}
	if n > 0 {
		r.RetryIn = durationOf(short / float64(n))
	}
	return r
}

// ReleaseRTT returns a slot taken by TryAcquire or Acquire, and records the
// call as a sample (see OnSample) at the current time: rtt is how long it
// took, dropped whether it timed out or was refused by the dependency for
// overload. Releasing more slots than were taken is a caller bug;
// ReleaseRTT then records the sample and frees nothing.
func (a *AdaptiveLimit) ReleaseRTT(rtt time.Duration, dropped bool) {
	if a == nil {
		return
	}
	n := a.release()
	if n < 0 {
		n = 0
	}
	a.OnSample(a.now(), rtt, int(n)+1, dropped)
}

// now returns the time of a sample: the clock if Window or MaxWindow needs
// it, and otherwise the zero Time, which OnSample treats as no later than
// the last sample's, so a limit whose windows are counted in samples only
// reads no clock per sample.
func (a *AdaptiveLimit) now() time.Time {
	if a.window > 0 || a.maxWindow > 0 {
		return time.Now()
	}
	return time.Time{}
}

// Release returns a slot taken by TryAcquire or Acquire without recording
// a sample, for a call whose latency says nothing about the dependency
// (cancelled by its caller, say). Releasing more slots than were taken
// does nothing.
func (a *AdaptiveLimit) Release() {
	if a != nil {
		a.release()
	}
}

// release frees a slot if one is held, and returns the calls left in
// flight (-1 if none was held).
func (a *AdaptiveLimit) release() int64 {
	for {
		n := a.inFlight.Load()
		if n <= 0 {
			return -1
		}
		if a.inFlight.CompareAndSwap(n, n-1) {
			return n - 1
		}
	}
}

// Do runs fn in a slot (see Acquire for the refusal) and records its
// latency. A call whose error matches context.DeadlineExceeded, or ErrShed
// from a dependency that shed it, counts as dropped; one whose caller's
// context was cancelled records no sample.
func (a *AdaptiveLimit) Do(ctx context.Context, fn func(context.Context) error) error {
	if a == nil {
		return errNilAdaptive
	}
	if nilContext(ctx) {
		return errNilContext
	}
	if fn == nil {
		return errNilFunc
	}
	if err := a.Acquire(); err != nil {
		return err
	}
	start := time.Now()
	var err error
	defer func() { a.finish(ctx, start, err) }()
	err = fn(ctx)
	return err
}

// finish releases the slot of a call that started at start and ended with
// err, recording it as a sample unless its own caller cancelled it.
func (a *AdaptiveLimit) finish(ctx context.Context, start time.Time, err error) {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		a.Release()
		return
	}
	a.ReleaseRTT(time.Since(start), dropped(err))
}

// dropped reports whether a call's error says the dependency was
// overloaded: it timed out, or shed the call.
func dropped(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrShed))
}

// AdaptiveStats is a snapshot of an adaptive limit.
type AdaptiveStats struct {
	// Limit is the current limit.
	Limit int
	// Estimate is the real number Limit is rounded from.
	Estimate float64
	// RTT is the last window's mean latency; Baseline the latency the
	// limit compares it with (zero before the first window).
	RTT, Baseline time.Duration
	// InFlight is the standalone shell's calls in flight (zero under a
	// primitive, whose Stats count them).
	InFlight int
	// Samples counts the samples recorded, Drops those dropped, and
	// Windows the windows closed.
	Samples, Drops, Windows int64
	// Admitted and Refused count the standalone shell's admissions and
	// refusals (ErrLimitReached).
	Admitted, Refused int64
}

// Stats returns a snapshot of the limit and its counters.
func (a *AdaptiveLimit) Stats() AdaptiveStats {
	if a == nil {
		return AdaptiveStats{}
	}
	a.mu.Lock()
	s := AdaptiveStats{
		Limit:    int(a.limit.Load()),
		Estimate: a.est,
		RTT:      durationOf(a.short),
		Baseline: durationOf(a.baseline),
	}
	a.mu.Unlock()
	s.InFlight = int(a.inFlight.Load())
	s.Samples, s.Drops, s.Windows = a.sampled.Load(), a.drops.Load(), a.windows.Load()
	s.Admitted, s.Refused = a.admitted.Load(), a.shed[reasonLimitReached].Load()
	return s
}
