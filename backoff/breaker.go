package backoff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied to the zero fields of a BreakerConfig.
const (
	DefaultBreakerWindowCalls    = 100
	DefaultBreakerWindowDuration = 60 * time.Second
	DefaultBreakerBuckets        = 10
	DefaultBreakerMinCalls       = 20
	DefaultBreakerFailureRate    = 0.5
	DefaultBreakerSlowRate       = 0.5
	DefaultBreakerOpenWait       = 10 * time.Second
	DefaultBreakerProbes         = 5
	DefaultBreakerProbeTimeout   = 30 * time.Second
)

// Bounds on the sizes a BreakerConfig may ask for, so that a breaker's memory
// and the cost of its slow path stay small.
const (
	MaxBreakerWindowCalls = 100_000
	MaxBreakerBuckets     = 1000
	MaxBreakerProbes      = 1000
)

var (
	// ErrBreakerOpen is matched (with errors.Is) by every refusal of a
	// Breaker: the error is an *OpenError that says when to try again.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrInvalidBreaker is matched by every error NewBreaker and
	// NewBreakers return.
	ErrInvalidBreaker = errors.New("backoff: invalid breaker")
)

// BreakerState is the state of a Breaker.
type BreakerState uint8

const (
	// BreakerClosed admits every call and counts the results in the
	// sliding window.
	BreakerClosed BreakerState = iota
	// BreakerOpen refuses every call until its wait is over.
	BreakerOpen
	// BreakerHalfOpen admits at most Probes calls at a time and decides from
	// Probes results whether to close or to open again.
	BreakerHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", uint8(s))
}

// WindowKind selects how a Breaker's sliding window forgets old calls.
type WindowKind uint8

const (
	// CountWindow keeps the results of the last WindowCalls calls. It is the
	// default.
	CountWindow WindowKind = iota
	// TimeWindow keeps the results of the calls that ended in the last
	// WindowDuration, in Buckets buckets: a bucket is forgotten as a whole
	// once it is older than WindowDuration.
	TimeWindow
)

// Outcome is how a call's result counts in a Breaker, as a BreakerConfig's
// Classify decides.
type Outcome uint8

const (
	// OutcomeFailure counts the call as failed.
	OutcomeFailure Outcome = iota
	// OutcomeSuccess counts the call as successful (it may still be slow).
	OutcomeSuccess
	// OutcomeIgnore does not count the call at all, as if it had never
	// been admitted; in the half-open state its probe slot is freed.
	OutcomeIgnore
)

// BreakerConfig configures a Breaker. The zero value is usable: a window of
// the last 100 calls, opening when at least half of them failed and at
// least 20 were recorded, open for 10s, then 5 probes; every non-nil error
// counts as a failure and slow calls are not counted.
type BreakerConfig struct {
	// Name appears in refusals and events, so that an operator can tell
	// which dependency is refused.
	Name string
	// Window is the kind of sliding window; the zero value is CountWindow.
	// A TimeWindow follows the latest time it has seen: a result older than
	// the whole window (a call recorded late) is not counted, and only a
	// few such results in a row (a clock that went backwards) make it
	// start again from their time.
	Window WindowKind
	// WindowCalls is the size of a CountWindow, in calls. Zero means
	// DefaultBreakerWindowCalls (100); it must be in [1, 100000].
	WindowCalls int
	// WindowDuration is the span of a TimeWindow. Zero means
	// DefaultBreakerWindowDuration (60s); negative is invalid, and it must
	// hold at least one nanosecond per bucket.
	WindowDuration time.Duration
	// Buckets is how many buckets a TimeWindow has: the window forgets
	// calls WindowDuration/Buckets at a time. Zero means
	// DefaultBreakerBuckets (10); it must be in [1, 1000].
	Buckets int
	// MinCalls is how many calls the window must hold before the rates
	// can open the breaker. Zero means DefaultBreakerMinCalls (20), or
	// WindowCalls if that is smaller; it must be in [1, WindowCalls] for a
	// CountWindow and in [1, 1e9] for a TimeWindow.
	MinCalls int
	// FailureRate opens the breaker when failures/calls in the window
	// reaches it (computed as float64(failures)/float64(calls) >=
	// FailureRate). Zero means DefaultBreakerFailureRate (0.5); it must be
	// in (0, 1].
	FailureRate float64
	// SlowRate opens the breaker when slow calls/calls in the window
	// reaches it. Zero means DefaultBreakerSlowRate (0.5); it must be in
	// (0, 1]. It matters only when SlowCallDuration is set.
	SlowRate float64
	// SlowCallDuration makes a call that took at least this long count as
	// slow (a failed call may be slow too). Zero means that slow calls are
	// not counted: there is no duration that suits every dependency, and
	// without it a CountWindow reads no clock on the closed state's fast
	// path. Negative is invalid.
	SlowCallDuration time.Duration
	// OpenWait is how long the breaker stays open before the next call is
	// admitted as a probe. Zero means DefaultBreakerOpenWait (10s);
	// negative is invalid.
	OpenWait time.Duration
	// Probes is how many calls the half-open state admits at a time, and
	// how many results it decides on: it opens again as soon as the
	// failures (or slow calls) among Probes results reach the rate, and
	// closes once Probes results are in without that. Zero means
	// DefaultBreakerProbes (5); it must be in [1, 1000].
	Probes int
	// ProbeTimeout bounds how long a probe may hold its slot: the first
	// call that finds a probe without a result after ProbeTimeout counts it
	// as a failure, and the probe's result, if it comes later, is ignored.
	// So a probe whose caller never reports back cannot keep the breaker
	// half-open forever. Zero means
	// DefaultBreakerProbeTimeout (30s); negative is invalid.
	ProbeTimeout time.Duration
	// Classify says how a non-nil error counts (a nil error is always a
	// success). Nil means every non-nil error is a failure. Whatever it
	// says, Call and Retry never count a call whose context the caller
	// cancelled (see the package documentation on context errors).
	Classify func(error) Outcome
	// OnStateChange, if not nil, is called after every transition, outside
	// the breaker's lock, one event at a time and in the order of the
	// transitions, never concurrently with itself. It runs inside a call of
	// the breaker: usually on the goroutine whose call caused the
	// transition; if another goroutine is delivering events at that
	// moment, that goroutine delivers this one after the earlier ones. It
	// may call the breaker's methods (an event it causes is delivered
	// after it returns). It should not block: while it runs, later events
	// wait for it.
	OnStateChange func(BreakerEvent)
}

// BreakerEvent describes one transition of a Breaker.
type BreakerEvent struct {
	// Name is the breaker's BreakerConfig.Name.
	Name string
	// From is the state before the transition.
	From BreakerState
	// To is the state after it.
	To BreakerState
	// Generation is the breaker's generation after the transition; it grows
	// by one at every transition.
	Generation uint64
	// At is the time of the transition (the now of the call that caused
	// it).
	At time.Time
	// Calls, Failures and SlowCalls are the counts the decision was made
	// on: the window's, when a closed breaker opens; the probes', when a
	// half-open breaker opens or closes; zero when an open breaker turns
	// half-open.
	Calls, Failures, SlowCalls int
}

// OpenError is the refusal of an open or half-open Breaker. It matches
// ErrBreakerOpen with errors.Is and implements RetryAfterError, so that
// Retry waits until the next probe instead of spinning.
type OpenError struct {
	// Name is the breaker's BreakerConfig.Name.
	Name string
	// Key is the key of the breaker in a Breakers; nil for a Breaker of
	// its own.
	Key any
	// State is BreakerOpen, or BreakerHalfOpen when every probe slot was
	// taken.
	State BreakerState
	// Wait is the time left until the breaker admits a probe; zero when
	// half-open (the probes' results are due: the caller's own backoff
	// applies).
	Wait time.Duration
	// Calls, Failures and SlowCalls are the counts that opened the
	// breaker (zero when half-open).
	Calls, Failures, SlowCalls int
}

// Error says what was refused and why, with the numbers, for example
// `backoff: circuit breaker "db" open: 12 of 20 calls failed (60%), next
// probe in 4.2s`.
func (e *OpenError) Error() string {
	var sb strings.Builder
	sb.WriteString("backoff: circuit breaker")
	if e.Name != "" {
		fmt.Fprintf(&sb, " %q", e.Name)
	}
	if e.Key != nil {
		fmt.Fprintf(&sb, " for key %v", e.Key)
	}
	if e.State == BreakerHalfOpen {
		sb.WriteString(" half-open: every probe slot is taken")
		return sb.String()
	}
	sb.WriteString(" open: ")
	switch {
	case e.Calls == 0:
		sb.WriteString("opened by its probes")
	default:
		fmt.Fprintf(&sb, "%d of %d calls failed (%.3g%%)", e.Failures, e.Calls, 100*e.FailureRate())
		if e.SlowCalls > 0 {
			fmt.Fprintf(&sb, ", %d slow (%.3g%%)", e.SlowCalls, 100*e.SlowRate())
		}
	}
	fmt.Fprintf(&sb, ", next probe in %v", e.Wait)
	return sb.String()
}

// FailureRate is Failures/Calls, the failure rate that opened the breaker
// (zero when Calls is zero).
func (e *OpenError) FailureRate() float64 { return ratio(e.Failures, e.Calls) }

// SlowRate is SlowCalls/Calls, the slow-call rate that opened the breaker
// (zero when Calls is zero).
func (e *OpenError) SlowRate() float64 { return ratio(e.SlowCalls, e.Calls) }

func ratio(n, of int) float64 {
	if of <= 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// Is reports whether target is ErrBreakerOpen.
func (e *OpenError) Is(target error) bool { return target == ErrBreakerOpen }

// RetryAfter is the time left until the breaker admits a probe.
func (e *OpenError) RetryAfter() time.Duration { return e.Wait }

// Ticket is an admission by a Breaker: pass it to Record (or Release) when
// the call ends. It is a small value; copying it allocates nothing. The zero
// Ticket, and the Ticket returned with a refusal, record nothing.
type Ticket struct {
	b     *Breaker
	p     *phase
	start time.Time // zero unless the breaker measures durations
	slot  int32     // probe slot in the half-open state
	seq   uint32    // the slot's admission number
}

// Breaker stops calls to a dependency that is failing or slow, so that
// callers neither wait on it nor add to its load while it recovers, and
// tries it again with a few probes after a wait. It is the library form of
// the fix the EBS operators applied by hand in April 2011: stop contacting
// peers that cannot help.
//
// A closed Breaker counts the results of calls in a sliding window (the
// last WindowCalls calls, or the calls of the last WindowDuration) and opens
// when, with at least MinCalls calls in the window, the failure rate or the
// slow-call rate reaches its threshold. An open Breaker refuses every call
// with an *OpenError until OpenWait has passed; the first call after that is
// admitted as a probe (no timer is needed: a breaker never stays open past
// its wait, it just has no one to tell until a call comes). A half-open
// Breaker admits at most Probes calls at a time; it opens again as soon as
// the failures or slow calls among the Probes results reach a threshold,
// and closes, with an empty window, once Probes results are in without that.
//
// AllowAt and RecordAt are the pure core: they take the time as an argument
// and read no clock, so a simulation drives a Breaker with its own clock.
// Allow, Record and Call read the real clock, and only when they need it.
//
// The zero Breaker is usable and has the defaults of BreakerConfig{}; a nil
// *Breaker admits every call and records nothing, so that "no breaker"
// needs no special case.
//
// A Breaker is safe for concurrent use. In the closed state, admission and
// recording are lock-free and allocate nothing: admission is one atomic
// load; recording a result into a CountWindow is one atomic addition and a
// load when the result equals the one it pushes out of the ring (the steady
// state), three atomic operations when it differs; recording into a
// TimeWindow is a few atomic additions on time buckets. Transitions, the
// open and half-open states and a TimeWindow's move to a new bucket take a
// mutex; a refusal allocates its *OpenError.
//
// Results belong to the state they were admitted in: a result that comes
// back after a transition (from a call admitted before it) is ignored, so
// the calls of an old, broken period never count in a new one.
//
// The counts are exact when calls are recorded one at a time (the property
// tests check every decision against a model); under concurrency a
// decision reads counts that may be off by the results being recorded at
// that very moment, as any lock-free counter's are.
type Breaker struct {
	cfg      BreakerConfig // with defaults applied
	slow     bool          // SlowCallDuration > 0
	needTime bool          // slow || TimeWindow: the closed path needs now
	key      any           // the key of a Breakers, for refusals

	cur     atomic.Pointer[phase]
	refused atomic.Int64

	mu       sync.Mutex
	pending  []BreakerEvent // transitions not yet delivered to the hook
	draining bool
}

// phase is one period of a Breaker in one state. It is replaced, never
// reset, at every transition, so a call admitted in one phase cannot write
// into the next one's counts.
type phase struct {
	state BreakerState
	gen   uint64
	since time.Time // time of the transition into this phase
	hasAt bool      // since is known (false for the initial phase)

	// closed
	count *countWindow
	tw    *timeWindow

	// open
	until                     time.Time
	calls, failures, slowHits int          // what opened it
	behind                    atomic.Int32 // calls in a row with a time before since

	// half-open, guarded by Breaker.mu
	probes                []probeSlot
	inFlight              int
	results, pFail, pSlow int
}

type probeSlot struct {
	start time.Time
	busy  bool
	seq   uint32
}

// NewBreaker returns a Breaker configured by cfg, closed, or an error that
// matches ErrInvalidBreaker and names every invalid field.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return newBreaker(c), nil
}

// load returns the current phase; a zero Breaker starts closed with the
// defaults of BreakerConfig{}.
func (b *Breaker) load() *phase {
	if p := b.cur.Load(); p != nil {
		return p
	}
	return b.init()
}

func (b *Breaker) init() *phase {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.cur.Load(); p != nil {
		return p
	}
	b.cfg, _ = BreakerConfig{}.withDefaults()
	p := b.newClosed(0, time.Time{}, false)
	b.cur.Store(p)
	return p
}

// newBreaker builds a Breaker from a validated configuration.
func newBreaker(c BreakerConfig) *Breaker {
	b := &Breaker{cfg: c, slow: c.SlowCallDuration > 0}
	b.needTime = b.slow || c.Window == TimeWindow
	b.cur.Store(b.newClosed(0, time.Time{}, false))
	return b
}

func (cfg BreakerConfig) withDefaults() (BreakerConfig, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidBreaker}, args...)...))
	}
	c := cfg
	if c.Window != CountWindow && c.Window != TimeWindow {
		bad("Window %d is neither CountWindow nor TimeWindow", c.Window)
	}
	if c.WindowCalls == 0 {
		c.WindowCalls = DefaultBreakerWindowCalls
	}
	if c.WindowCalls < 1 || c.WindowCalls > MaxBreakerWindowCalls {
		bad("WindowCalls %d is outside [1, %d]", cfg.WindowCalls, MaxBreakerWindowCalls)
	}
	if c.WindowDuration == 0 {
		c.WindowDuration = DefaultBreakerWindowDuration
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBreakerBuckets
	}
	if c.Buckets < 1 || c.Buckets > MaxBreakerBuckets {
		bad("Buckets %d is outside [1, %d]", cfg.Buckets, MaxBreakerBuckets)
	} else if c.WindowDuration > 0 && c.WindowDuration < time.Duration(c.Buckets) {
		bad("WindowDuration %v is shorter than one nanosecond per bucket (%d buckets)", cfg.WindowDuration, c.Buckets)
	}
	if c.MinCalls == 0 {
		c.MinCalls = DefaultBreakerMinCalls
		if c.Window == CountWindow && c.WindowCalls >= 1 && c.WindowCalls < c.MinCalls {
			c.MinCalls = c.WindowCalls
		}
	}
	if c.Window == CountWindow {
		if c.MinCalls < 1 || c.MinCalls > c.WindowCalls {
			bad("MinCalls %d is outside [1, WindowCalls %d]: the breaker could never open", cfg.MinCalls, c.WindowCalls)
		}
	} else if c.MinCalls < 1 || c.MinCalls > 1e9 {
		bad("MinCalls %d is outside [1, 1e9]", cfg.MinCalls)
	}
	rate := func(name string, v *float64, def float64) {
		orig := *v
		if *v == 0 {
			*v = def
		}
		if !(*v > 0 && *v <= 1) {
			bad("%s %v is outside (0, 1]", name, orig)
		}
	}
	rate("FailureRate", &c.FailureRate, DefaultBreakerFailureRate)
	rate("SlowRate", &c.SlowRate, DefaultBreakerSlowRate)
	if c.SlowCallDuration < 0 {
		bad("SlowCallDuration %v is negative", cfg.SlowCallDuration)
	}
	dur := func(name string, v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
		if *v < 0 {
			bad("%s %v is negative", name, *v)
		}
	}
	dur("WindowDuration", &c.WindowDuration, DefaultBreakerWindowDuration)
	dur("OpenWait", &c.OpenWait, DefaultBreakerOpenWait)
	dur("ProbeTimeout", &c.ProbeTimeout, DefaultBreakerProbeTimeout)
	if c.Probes == 0 {
		c.Probes = DefaultBreakerProbes
	}
	if c.Probes < 1 || c.Probes > MaxBreakerProbes {
		bad("Probes %d is outside [1, %d]", cfg.Probes, MaxBreakerProbes)
	}
	if err := errors.Join(errs...); err != nil {
		return BreakerConfig{}, err
	}
	return c, nil
}

func (b *Breaker) newClosed(gen uint64, now time.Time, hasAt bool) *phase {
	p := &phase{state: BreakerClosed, gen: gen, since: now, hasAt: hasAt}
	if b.cfg.Window == CountWindow {
		p.count = newCountWindow(b.cfg.WindowCalls)
	} else {
		p.tw = newTimeWindow(b.cfg.WindowDuration, b.cfg.Buckets)
		if hasAt {
			p.tw.start(now)
		}
	}
	return p
}

// AllowAt asks, at time now, whether a call may go ahead. It returns a
// Ticket to pass to RecordAt when the call ends, or a zero Ticket and an
// *OpenError (matching ErrBreakerOpen) that says how long to wait.
//
// In the closed state it is lock-free and allocates nothing. The first call
// at or after an open breaker's wait turns it half-open and is admitted as
// a probe.
func (b *Breaker) AllowAt(now time.Time) (Ticket, error) {
	if b == nil {
		return Ticket{}, nil
	}
	p := b.load()
	if p.state == BreakerClosed {
		t := Ticket{b: b, p: p}
		if b.slow {
			t.start = now
		}
		return t, nil
	}
	if p.state == BreakerOpen && now.Before(p.until) && !now.Before(p.since) {
		if p.behind.Load() != 0 {
			p.behind.Store(0)
		}
		b.refused.Add(1)
		return Ticket{}, b.openError(p, now)
	}
	return b.allowSlow(now)
}

// Allow is AllowAt(time.Now()), except that the clock is not read in the
// closed state unless slow calls are counted.
func (b *Breaker) Allow() (Ticket, error) {
	// The closed state without slow calls is small enough to be inlined
	// into the caller.
	if b != nil && !b.slow {
		if p := b.cur.Load(); p != nil && p.state == BreakerClosed {
			return Ticket{b: b, p: p}, nil
		}
	}
	return b.allowNow()
}

func (b *Breaker) allowNow() (Ticket, error) {
	if b == nil {
		return Ticket{}, nil
	}
	p := b.load()
	if p.state == BreakerClosed {
		t := Ticket{b: b, p: p}
		if b.slow {
			t.start = time.Now()
		}
		return t, nil
	}
	return b.AllowAt(time.Now())
}

func (b *Breaker) openError(p *phase, now time.Time) *OpenError {
	return &OpenError{
		Name: b.cfg.Name, Key: b.key, State: BreakerOpen, Wait: p.until.Sub(now),
		Calls: p.calls, Failures: p.failures, SlowCalls: p.slowHits,
	}
}

// allowSlow admits or refuses a call when the breaker is not closed.
func (b *Breaker) allowSlow(now time.Time) (Ticket, error) {
	b.mu.Lock()
	t, err := b.allowLocked(now)
	b.mu.Unlock()
	b.deliver()
	if err != nil {
		b.refused.Add(1)
	}
	return t, err
}

func (b *Breaker) allowLocked(now time.Time) (Ticket, error) {
	p := b.cur.Load()
	switch p.state {
	case BreakerClosed:
		t := Ticket{b: b, p: p}
		if b.slow {
			t.start = now
		}
		return t, nil
	case BreakerOpen:
		if now.Before(p.since) {
			// A time before the breaker opened: a caller that read the
			// clock before and asks late (refused, with the wait on its
			// clock), or a clock that went backwards. After staleResets
			// such calls in a row the wait counts from now, so that the
			// breaker stays open at most OpenWait on the clock it is given.
			if p.behind.Add(1) < staleResets {
				return Ticket{}, b.openError(p, now)
			}
			q := &phase{
				state: BreakerOpen, gen: p.gen, since: now, hasAt: true, until: now.Add(b.cfg.OpenWait),
				calls: p.calls, failures: p.failures, slowHits: p.slowHits,
			}
			b.cur.Store(q)
			return Ticket{}, b.openError(q, now)
		}
		if p.behind.Load() != 0 {
			p.behind.Store(0)
		}
		if now.Before(p.until) {
			return Ticket{}, b.openError(p, now)
		}
		p = b.transitionLocked(p, b.newHalfOpen(p.gen+1, now), now, 0, 0, 0)
	}
	// Half-open: first count the probes whose results are overdue.
	if b.expireProbesLocked(p, now) {
		return b.allowLocked(now) // the probes decided: closed or open
	}
	if p.inFlight+p.results < b.cfg.Probes {
		for i := range p.probes {
			s := &p.probes[i]
			if !s.busy {
				s.busy, s.start = true, now
				s.seq++
				p.inFlight++
				return Ticket{b: b, p: p, start: now, slot: int32(i), seq: s.seq}, nil
			}
		}
	}
	return Ticket{}, &OpenError{Name: b.cfg.Name, Key: b.key, State: BreakerHalfOpen}
}

func (b *Breaker) newHalfOpen(gen uint64, now time.Time) *phase {
	return &phase{state: BreakerHalfOpen, gen: gen, since: now, hasAt: true, probes: make([]probeSlot, b.cfg.Probes)}
}

// expireProbesLocked counts every probe without a result after ProbeTimeout
// as a failure, and reports whether that made the breaker leave phase p.
func (b *Breaker) expireProbesLocked(p *phase, now time.Time) bool {
	for i := range p.probes {
		s := &p.probes[i]
		if !s.busy {
			continue
		}
		if now.Before(s.start) {
			s.start = now // the clock went backwards: time the probe from now
			continue
		}
		if now.Sub(s.start) < b.cfg.ProbeTimeout {
			continue
		}
		s.busy = false
		p.inFlight--
		p.results++
		p.pFail++
		if b.slow && b.cfg.ProbeTimeout >= b.cfg.SlowCallDuration {
			p.pSlow++
		}
		if b.evaluateLocked(p, now) {
			return true
		}
	}
	return false
}

// evaluateLocked decides a half-open phase from its probes' results, and
// reports whether it left the phase.
func (b *Breaker) evaluateLocked(p *phase, now time.Time) bool {
	n := float64(b.cfg.Probes)
	switch {
	case float64(p.pFail)/n >= b.cfg.FailureRate || (b.slow && float64(p.pSlow)/n >= b.cfg.SlowRate):
		b.openLocked(p, now, p.results, p.pFail, p.pSlow)
		return true
	case p.results >= b.cfg.Probes:
		b.transitionLocked(p, b.newClosed(p.gen+1, now, true), now, p.results, p.pFail, p.pSlow)
		return true
	}
	return false
}

func (b *Breaker) openLocked(p *phase, now time.Time, calls, failures, slow int) {
	q := &phase{
		state: BreakerOpen, gen: p.gen + 1, since: now, hasAt: true,
		until: now.Add(b.cfg.OpenWait), calls: calls, failures: failures, slowHits: slow,
	}
	b.transitionLocked(p, q, now, calls, failures, slow)
}

func (b *Breaker) transitionLocked(from, to *phase, now time.Time, calls, failures, slow int) *phase {
	b.cur.Store(to)
	if b.cfg.OnStateChange != nil {
		b.pending = append(b.pending, BreakerEvent{
			Name: b.cfg.Name, From: from.state, To: to.state, Generation: to.gen, At: now,
			Calls: calls, Failures: failures, SlowCalls: slow,
		})
	}
	return to
}

// deliver calls the hook with the pending events, one at a time and in
// order, outside the lock. A goroutine that finds another one delivering
// leaves its events to it, so the hook is never called concurrently and a
// hook that causes a transition does not deadlock.
func (b *Breaker) deliver() {
	if b.cfg.OnStateChange == nil {
		return
	}
	b.mu.Lock()
	if b.draining || len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	b.draining = true
	locked := true
	defer func() {
		// Also when the hook panics: later events must still be delivered.
		if !locked {
			b.mu.Lock()
		}
		b.draining = false
		b.mu.Unlock()
	}()
	for len(b.pending) > 0 {
		ev := b.pending[0]
		b.pending = b.pending[1:]
		if len(b.pending) == 0 {
			b.pending = nil
		}
		b.mu.Unlock()
		locked = false
		b.cfg.OnStateChange(ev)
		b.mu.Lock()
		locked = true
	}
}

// RecordAt records, at time now, the result of a call admitted with t:
// err nil is a success, anything else counts as Classify says. A Ticket
// from a refusal, the zero Ticket, a Ticket of another Breaker, and a
// Ticket admitted before the latest transition are ignored, and so is the
// result of a probe already counted as timed out (see ProbeTimeout). Record
// each Ticket once: in the closed state a second Record counts the call
// twice.
//
// In the closed state it is lock-free and allocates nothing, unless the
// result opens the breaker.
func (b *Breaker) RecordAt(now time.Time, t Ticket, err error) {
	b.record(now, true, t, err)
}

// Record is RecordAt(time.Now(), t, err), except that the clock is not read
// when nothing needs it (a CountWindow without slow calls, in the closed
// state, unless the result opens the breaker). A TimeWindow or slow-call
// timing needs one clock read per call, which on some virtual machines
// costs more than the rest of the breaker. For a TimeWindow without slow
// calls, and for a CountWindow with them, Record in the closed state reads
// only the monotonic clock (time.Since of the window's origin, or of the
// call's admission), which is cheaper than time.Now and gives the same
// result; a TimeWindow with slow calls reads time.Now.
func (b *Breaker) Record(t Ticket, err error) {
	// The steady state, a success replacing a success in a CountWindow,
	// is small enough to be inlined into the caller.
	if err == nil && b != nil && t.b == b && !b.needTime {
		if w := t.p.count; w != nil && b.cur.Load() == t.p {
			if i, same := w.sameAsBefore(1); !same {
				b.recordCount(time.Time{}, false, t.p, w, i, 1)
			}
			return
		}
	}
	b.recordNow(t, err)
}

func (b *Breaker) recordNow(t Ticket, err error) {
	if b == nil || t.b != b || t.p == nil {
		return
	}
	if t.p.tw != nil && !b.slow {
		b.recordTimeWindow(t.p, err)
		return
	}
	if t.p.count != nil && b.slow {
		b.recordCountSlow(t, err)
		return
	}
	if b.needTime || t.p.state != BreakerClosed {
		b.record(time.Now(), true, t, err)
		return
	}
	b.record(time.Time{}, false, t, err)
}

// Release gives t back without counting its call, as the result
// OutcomeIgnore does: a probe's slot is freed for another probe. Call and
// Retry release the Ticket of a call whose context the caller cancelled.
func (b *Breaker) Release(t Ticket) {
	if b == nil || t.b != b || t.p == nil || t.p.state == BreakerClosed {
		return
	}
	b.mu.Lock()
	b.recordProbeLocked(time.Time{}, t, OutcomeIgnore)
	b.mu.Unlock()
}

func (b *Breaker) classify(err error) Outcome {
	if err == nil {
		return OutcomeSuccess
	}
	if b.cfg.Classify == nil {
		return OutcomeFailure
	}
	switch o := b.cfg.Classify(err); o {
	case OutcomeSuccess, OutcomeIgnore:
		return o
	}
	return OutcomeFailure
}

func (b *Breaker) record(now time.Time, haveNow bool, t Ticket, err error) {
	p := t.p
	if b == nil || t.b != b || p == nil {
		return
	}
	outcome := b.classify(err)
	if p.state != BreakerClosed {
		b.mu.Lock()
		b.recordProbeLocked(now, t, outcome)
		b.mu.Unlock()
		b.deliver()
		return
	}
	if outcome == OutcomeIgnore || b.cur.Load() != p {
		return
	}
	failed := outcome == OutcomeFailure
	slow := b.slow && now.Sub(t.start) >= b.cfg.SlowCallDuration
	if w := p.count; w != nil {
		v := resultValue(failed, slow)
		if i, ok := w.sameAsBefore(v); !ok {
			b.recordCount(now, haveNow, p, w, i, v)
		}
		return
	}
	calls, failures, slows, counted := p.tw.record(now, failed, slow)
	if !counted {
		return
	}
	b.decide(now, haveNow, p, calls, failures, slows)
}

// recordTimeWindow is record(time.Now(), ...) for a closed TimeWindow
// without slow calls, with the window reading the clock (see
// timeWindow.recordNow).
func (b *Breaker) recordTimeWindow(p *phase, err error) {
	outcome := b.classify(err)
	if outcome == OutcomeIgnore || b.cur.Load() != p {
		return
	}
	calls, failures, slows, counted := p.tw.recordNow(outcome == OutcomeFailure, false)
	if counted {
		b.decide(time.Time{}, false, p, calls, failures, slows)
	}
}

// recordCountSlow is record(time.Now(), ...) for a closed CountWindow
// that times slow calls: time.Since(t.start) is exactly
// time.Now().Sub(t.start), with one clock read instead of two.
func (b *Breaker) recordCountSlow(t Ticket, err error) {
	outcome := b.classify(err)
	if outcome == OutcomeIgnore || b.cur.Load() != t.p {
		return
	}
	v := resultValue(outcome == OutcomeFailure, time.Since(t.start) >= b.cfg.SlowCallDuration)
	if i, same := t.p.count.sameAsBefore(v); !same {
		b.recordCount(time.Time{}, false, t.p, t.p.count, i, v)
	}
}

// recordCount writes result v at position i of p's CountWindow w, whose
// slot held a different result, and decides on the new counts.
func (b *Breaker) recordCount(now time.Time, haveNow bool, p *phase, w *countWindow, i, v uint32) {
	calls, failures, slows := w.write(i, v)
	if failures == 0 && slows == 0 {
		return
	}
	b.decide(now, haveNow, p, calls, failures, slows)
}

// decide opens p if the window's counts cross a threshold.
func (b *Breaker) decide(now time.Time, haveNow bool, p *phase, calls, failures, slows int) {
	if calls < b.cfg.MinCalls || !b.crossed(calls, failures, slows) {
		return
	}
	if !haveNow {
		now = time.Now()
	}
	b.mu.Lock()
	if b.cur.Load() == p {
		b.openLocked(p, now, calls, failures, slows)
	}
	b.mu.Unlock()
	b.deliver()
}

// crossed reports whether the window's rates reach a threshold, as
// float64(count)/float64(calls) >= rate. A multiplication rules out most
// cases first; the division decides the close ones exactly.
func (b *Breaker) crossed(calls, failures, slows int) bool {
	n := float64(calls)
	const margin = 1 - 1e-9
	if float64(failures) >= b.cfg.FailureRate*n*margin && float64(failures)/n >= b.cfg.FailureRate {
		return true
	}
	return b.slow && float64(slows) >= b.cfg.SlowRate*n*margin && float64(slows)/n >= b.cfg.SlowRate
}

func (b *Breaker) recordProbeLocked(now time.Time, t Ticket, outcome Outcome) {
	p := b.cur.Load()
	if p != t.p || t.slot < 0 || int(t.slot) >= len(p.probes) {
		return
	}
	s := &p.probes[t.slot]
	if !s.busy || s.seq != t.seq {
		return // timed out, released, or recorded already
	}
	s.busy = false
	p.inFlight--
	if outcome == OutcomeIgnore {
		return
	}
	p.results++
	if outcome == OutcomeFailure {
		p.pFail++
	}
	if b.slow && now.Sub(t.start) >= b.cfg.SlowCallDuration {
		p.pSlow++
	}
	b.evaluateLocked(p, now)
}

// StateAt returns the state at time now. An open breaker whose wait is over
// is reported half-open: the next call will be admitted as a probe.
func (b *Breaker) StateAt(now time.Time) BreakerState {
	if b == nil {
		return BreakerClosed
	}
	p := b.load()
	if p.state == BreakerOpen && !now.Before(p.until) {
		return BreakerHalfOpen
	}
	return p.state
}

// State is StateAt(time.Now()).
func (b *Breaker) State() BreakerState { return b.StateAt(time.Now()) }

// BreakerStats is a snapshot of a Breaker.
type BreakerStats struct {
	// State is the state at the time of the snapshot (see StateAt).
	State BreakerState
	// Generation counts the transitions so far (and the times a Breakers
	// forgot the breaker, which makes its calls in flight stale).
	Generation uint64
	// Since is the time of the latest transition; zero before the first.
	Since time.Time
	// Calls, Failures and SlowCalls are the window's counts when closed,
	// the counts that opened the breaker when open, and the probes'
	// results so far when half-open.
	Calls, Failures, SlowCalls int
	// FailureRate and SlowRate are Failures/Calls and SlowCalls/Calls (zero
	// when Calls is zero).
	FailureRate, SlowRate float64
	// Probes is how many probes are in flight (half-open only).
	Probes int
	// NextProbe is when an open breaker admits its next call; zero
	// otherwise.
	NextProbe time.Time
	// Refused counts the calls refused since the breaker was built.
	Refused int64
}

// StatsAt returns a snapshot at time now. It takes the breaker's lock unless
// the breaker is closed with a CountWindow.
func (b *Breaker) StatsAt(now time.Time) BreakerStats {
	if b == nil {
		return BreakerStats{}
	}
	p := b.load()
	s := BreakerStats{State: b.StateAt(now), Generation: p.gen, Refused: b.refused.Load()}
	if p.hasAt {
		s.Since = p.since
	}
	switch {
	case p.count != nil:
		s.Calls, s.Failures, s.SlowCalls = p.count.counts()
	case p.tw != nil:
		s.Calls, s.Failures, s.SlowCalls = p.tw.countsAt(now)
	case p.state == BreakerOpen:
		s.Calls, s.Failures, s.SlowCalls = p.calls, p.failures, p.slowHits
		s.NextProbe = p.until
	default:
		b.mu.Lock()
		s.Calls, s.Failures, s.SlowCalls, s.Probes = p.results, p.pFail, p.pSlow, p.inFlight
		b.mu.Unlock()
	}
	s.FailureRate, s.SlowRate = ratio(s.Failures, s.Calls), ratio(s.SlowCalls, s.Calls)
	return s
}

// Stats is StatsAt(time.Now()).
func (b *Breaker) Stats() BreakerStats { return b.StatsAt(time.Now()) }

// Call calls op if the breaker admits it and records its result; otherwise
// it returns the *OpenError without calling op. A call whose ctx the caller
// cancelled (ctx.Err() is context.Canceled when op returns an error) is
// released, not counted; a call that ran into ctx's deadline counts as the
// error op returned does (see the package documentation). If ctx is done
// already, Call returns ctx.Err() without asking the breaker or calling op.
// If op panics, its Ticket is released and the panic goes on.
func (b *Breaker) Call(ctx context.Context, op func(context.Context) error) error {
	switch {
	case ctx == nil:
		return errNilContext
	case op == nil:
		return errNilOp
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b == nil {
		return op(ctx)
	}
	t, err := b.Allow()
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			b.Release(t)
		}
	}()
	err = op(ctx)
	done = true
	b.done(ctx, t, err)
	return err
}

// admit is Allow for Retry: a nil b admits everything.
func (b *Breaker) admit() (Ticket, error) {
	if b == nil {
		return Ticket{}, nil
	}
	return b.Allow()
}

// done records the result of a call made under ctx, unless the caller
// cancelled ctx, which says nothing about the dependency.
func (b *Breaker) done(ctx context.Context, t Ticket, err error) {
	if b == nil {
		return
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		b.Release(t)
		return
	}
	b.Record(t, err)
}
