package backoff

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied to the zero fields of a HedgeConfig.
const (
	DefaultHedgeDelay      = 100 * time.Millisecond
	DefaultHedgeWindow     = time.Minute
	DefaultHedgeMinSamples = 20
	DefaultMaxHedges       = 1
)

// Bounds checked by NewHedger.
const (
	// MaxHedgesLimit bounds HedgeConfig.MaxHedges: beyond a few hedges a
	// call multiplies the load for little gain in latency.
	MaxHedgesLimit = 16
	// MinHedgeWindow is the least HedgeConfig.Window.
	MinHedgeWindow = time.Millisecond
)

// ErrInvalidHedge is matched (with errors.Is) by every error NewHedger
// returns.
var ErrInvalidHedge = errors.New("backoff: invalid hedge")

var (
	errNilHedger = fmt.Errorf("%w: nil Hedger", ErrInvalidArgument)
	// errAttemptExited is the error of an attempt whose goroutine exited
	// (runtime.Goexit, as t.FailNow does) instead of returning.
	errAttemptExited = errors.New("backoff: hedged attempt exited without returning")
)

// HedgeConfig configures a Hedger. The zero value is usable: one hedge,
// sent if the first attempt has not answered within 100ms, drawn from a
// Budget of the Hedger's own with the default BudgetConfig.
type HedgeConfig struct {
	// Delay is how long a call waits for its attempts before it sends the
	// next hedge: hedge n is sent n·Delay after the call started (no
	// sooner; a busy scheduler may add to it), if no attempt has succeeded
	// by then and one is still running. With
	// Percentile it is the delay used until the Hedger has MinSamples
	// samples. Zero means DefaultHedgeDelay (100ms); negative is invalid.
	Delay time.Duration
	// Percentile, if not zero, makes the delay track the latency of the
	// primary attempts: it is the Percentile-th quantile (0.95 for the
	// 95th percentile, nearest rank) of those seen in the last Window,
	// rounded up to the top of its histogram bin, at most 25% above it
	// (latencies below 1µs count as 1µs, above 2^42ns, about 73 minutes,
	// as 2^42ns). It must be in (0, 1]; zero means a fixed Delay.
	Percentile float64
	// Window is how long latencies are remembered for Percentile: the
	// samples of the last Window/2 to Window count. Zero means
	// DefaultHedgeWindow (1 minute); it must be at least MinHedgeWindow.
	Window time.Duration
	// MinSamples is how many samples the window must hold before
	// Percentile replaces Delay. Zero means DefaultHedgeMinSamples (20);
	// negative is invalid.
	MinSamples int
	// MaxHedges bounds the hedges of one call, so a call makes at most
	// MaxHedges+1 attempts. Zero means DefaultMaxHedges (1); it must be in
	// [1, MaxHedgesLimit].
	MaxHedges int
	// Budget pays for the hedges: every hedge withdraws one token, and a
	// hedge the budget refuses is not sent (nor any later one of that
	// call). Share the Budget of the Retry calls to the same dependency
	// (and give it to RetryHedged), so that a storm that turns retries off
	// turns hedging off too. Nil means a Budget of the Hedger's own with
	// the default BudgetConfig: hedges at most 10% of calls, plus one per
	// second.
	Budget *Budget
	// OnEvent, if not nil, is told of every hedge sent, refused or won, on
	// the goroutine that called DoHedged. It must not block.
	OnEvent func(HedgeEvent)
}

// HedgeEventKind says what a HedgeEvent reports.
type HedgeEventKind uint8

const (
	// HedgeSent: a hedge was sent.
	HedgeSent HedgeEventKind = iota + 1
	// HedgeRefused: the Budget refused a hedge; the call sends no more.
	HedgeRefused
	// HedgeWon: a hedge's success is the call's result.
	HedgeWon
)

// String returns "sent", "refused" or "won".
func (k HedgeEventKind) String() string {
	switch k {
	case HedgeSent:
		return "sent"
	case HedgeRefused:
		return "refused"
	case HedgeWon:
		return "won"
	}
	return fmt.Sprintf("HedgeEventKind(%d)", uint8(k))
}

// HedgeEvent describes what a hedged call did, for the OnEvent hook.
type HedgeEvent struct {
	// Kind is what happened.
	Kind HedgeEventKind
	// Hedge is the hedge's number, from 1 (the primary attempt is 0).
	Hedge int
	// Delay is the delay the call used between hedges.
	Delay time.Duration
}

// HedgeStats is a snapshot of a Hedger's counters.
type HedgeStats struct {
	// Calls is how many hedged calls were made.
	Calls int64
	// Hedges is how many hedges were sent, Refused how many the Budget
	// refused, and Won how many calls returned a hedge's success.
	Hedges, Refused, Won int64
	// Samples is how many latencies the percentile is computed from now.
	Samples int64
}

// HedgePanicError is the value DoHedged panics with, on the caller's
// goroutine, when an attempt panicked before the call returned: a panic in
// an attempt's goroutine would otherwise crash the program with no chance
// to recover it.
type HedgePanicError struct {
	// Value is what the attempt panicked with.
	Value any
	// Stack is the attempt's stack at the panic.
	Stack []byte
}

// Error returns the panic value and the attempt's stack.
func (e *HedgePanicError) Error() string {
	return fmt.Sprintf("backoff: hedged attempt panicked: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns Value if it is an error.
func (e *HedgePanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Hedger sends hedged requests: when a call's attempt has not answered
// within a delay, it sends another, and returns the first success. Hedging
// cuts the tail latency that one slow replica or one lost packet adds, but
// it is also a load amplifier: in an outage every call is slow, so every
// call would hedge. A Hedger therefore draws every hedge from a retry
// Budget (failsafe-go's and Polly's hedging have no such bound): while the
// dependency is healthy hedges are rare and the budget full; in a storm the
// budget empties and hedging turns off, as retries do.
//
// The delay is fixed, or a percentile of the latencies the Hedger has seen
// (HedgeConfig.Percentile): a small histogram of 130 bins per half window,
// updated once per call, with no allocation. DelayAt and ObserveAt are its
// pure core, for simulations. A Hedger is safe for concurrent use; share
// one per dependency.
//
// The zero Hedger makes plain calls: it has the defaults of HedgeConfig{}
// but no Budget to pay for hedges, so it refuses them all (as a zero Budget
// refuses every retry). Build one with NewHedger.
type Hedger struct {
	delay      time.Duration
	percentile float64
	minSamples int64
	maxHedges  int
	budget     *Budget
	hook       func(HedgeEvent)
	sketch     *latencySketch // nil without Percentile

	calls, hedges, refused, won atomic.Int64
}

// NewHedger returns a Hedger configured by cfg, or an error that matches
// ErrInvalidHedge and names every invalid field.
func NewHedger(cfg HedgeConfig) (*Hedger, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidHedge}, args...)...))
	}
	delay := cfg.Delay
	if delay == 0 {
		delay = DefaultHedgeDelay
	}
	if delay < 0 {
		bad("Delay %v is negative", cfg.Delay)
	}
	if p := cfg.Percentile; p != 0 && !(p > 0 && p <= 1) {
		bad("Percentile %v is outside (0, 1]", p)
	}
	window := cfg.Window
	if window == 0 {
		window = DefaultHedgeWindow
	}
	if window < MinHedgeWindow {
		bad("Window %v is shorter than %v", cfg.Window, MinHedgeWindow)
	}
	minSamples := cfg.MinSamples
	if minSamples == 0 {
		minSamples = DefaultHedgeMinSamples
	}
	if minSamples < 0 {
		bad("MinSamples %d is negative", cfg.MinSamples)
	}
	maxHedges := cfg.MaxHedges
	if maxHedges == 0 {
		maxHedges = DefaultMaxHedges
	}
	if maxHedges < 1 || maxHedges > MaxHedgesLimit {
		bad("MaxHedges %d is outside [1, %d]", cfg.MaxHedges, MaxHedgesLimit)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	budget := cfg.Budget
	if budget == nil {
		budget, _ = NewBudget(BudgetConfig{}) // the zero config is valid
	}
	h := &Hedger{
		delay:      delay,
		percentile: cfg.Percentile,
		minSamples: int64(minSamples),
		maxHedges:  maxHedges,
		budget:     budget,
		hook:       cfg.OnEvent,
	}
	if cfg.Percentile > 0 {
		h.sketch = &latencySketch{half: int64(window / 2)}
	}
	return h, nil
}

// DelayAt returns the delay a call starting at now waits before each
// hedge: the configured Delay, or with Percentile and at least MinSamples
// samples in the window, the tracked percentile.
func (h *Hedger) DelayAt(now time.Time) time.Duration {
	switch {
	case h == nil || h.delay == 0:
		return DefaultHedgeDelay
	case h.sketch == nil:
		return h.delay
	}
	d, n := h.sketch.quantile(now, h.percentile)
	if n < h.minSamples {
		return h.delay
	}
	return d
}

// ObserveAt records, at time now, the latency of a primary attempt for the
// percentile (it does nothing without Percentile). DoHedged calls it: with
// the latency of a primary that succeeded, or with the time a primary had
// been running when a hedge succeeded (a lower bound of its latency).
// Failed attempts are not observed: a fast failure says nothing of how
// long a success takes. A negative latency counts as zero.
func (h *Hedger) ObserveAt(now time.Time, latency time.Duration) {
	if h != nil && h.sketch != nil {
		h.sketch.observe(now, latency)
	}
}

// StatsAt returns a snapshot of the Hedger's counters, with the samples in
// the window at time now.
func (h *Hedger) StatsAt(now time.Time) HedgeStats {
	if h == nil {
		return HedgeStats{}
	}
	s := HedgeStats{Calls: h.calls.Load(), Hedges: h.hedges.Load(), Refused: h.refused.Load(), Won: h.won.Load()}
	if h.sketch != nil {
		s.Samples = h.sketch.count(now)
	}
	return s
}

// Stats is StatsAt(time.Now()).
func (h *Hedger) Stats() HedgeStats { return h.StatsAt(time.Now()) }

// Do is DoHedged for an operation that returns only an error.
func (h *Hedger) Do(ctx context.Context, op func(context.Context) error) error {
	if op == nil {
		return errNilOp
	}
	_, err := DoHedged(ctx, h, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, op(ctx)
	})
	return err
}

// DoHedged calls op, and if it has not succeeded within h's delay, calls it
// again concurrently (a hedge), up to h's MaxHedges, each hedge paid for by
// a token of h's Budget. It returns the first success; or, once every
// attempt sent has failed, the error of the last one to fail, unchanged
// (so Permanent marks and retry-after hints reach an enclosing Retry). A
// failure does not trigger a hedge: only time does, while an attempt is
// still running. The call deposits once in the Budget, as the request it
// is.
//
// Every attempt runs on a goroutine of its own with a context derived from
// ctx, which DoHedged cancels when it returns: op must be done with its
// context (a response body read in full) before it returns its result.
// DoHedged does not wait for the attempts it no longer needs: they are
// cancelled, finish on their own goroutines and their results (even a
// panic) are discarded, so an op that honours its context leaves no
// goroutine behind for longer than it takes to notice the cancellation,
// and an op that ignores it runs on, detached, until it returns: its
// goroutine outlives the call, and a goroutine leak check run before it
// returns (as this repository's tests run one) reports it.
// DoHedged cannot end it; bound such an op with a timeout of its own. When ctx
// ends while DoHedged waits, it returns ctx.Err() at once (unless a success
// arrived at the same moment), without waiting for any attempt and without
// sending another hedge.
//
// If an attempt panics before DoHedged returns, DoHedged cancels the others
// and panics on the caller's goroutine with a *HedgePanicError carrying the
// value and the attempt's stack. A nil ctx, h or op is an error matching
// ErrInvalidArgument, and an ended ctx returns its error; op is then not
// called and nothing is deposited.
func DoHedged[T any](ctx context.Context, h *Hedger, op func(context.Context) (T, error)) (T, error) {
	return hedged(ctx, h, op, true)
}

// RetryHedged is Do with every attempt hedged by h: it retries as p says,
// and each attempt is a DoHedged call. The Budget is h's, for retries and
// hedges alike (a WithBudget among opts is overridden, unless h has no
// Budget, as the zero Hedger, which sends no hedges): each call deposits
// once, and each retry and each hedge withdraws one token, so together
// they stay within the budget's bound and an outage that empties it turns
// both off. An attempt's hedges do not deposit. Other options apply as in
// Do, once per attempt: a Throttle (WithThrottle) counts an attempt and
// its hedges as one request with one outcome, and a Breaker (WithBreaker)
// admits and records an attempt and its hedges as one call, so a
// half-open breaker's probe may reach the dependency up to MaxHedges+1
// times (each hedge still paid by the Budget).
//
// A hedged call inside Retry by hand works too, but each attempt then
// deposits as a request of its own.
func RetryHedged[T any](ctx context.Context, p Policy, h *Hedger, op func(context.Context) (T, error), opts ...Option) (T, error) {
	var zero T
	switch {
	case h == nil:
		return zero, &Error{Reason: errNilHedger}
	case op == nil:
		return zero, &Error{Reason: errNilOp}
	}
	if h.budget != nil {
		// A copy: the caller's slice may have room that is not ours.
		opts = append(opts[:len(opts):len(opts)], WithBudget(h.budget))
	}
	return Do(ctx, p, func(ctx context.Context) (T, error) { return hedged(ctx, h, op, false) }, opts...)
}

type hedgeResult[T any] struct {
	value T
	err   error
	hedge int
	end   time.Time
	panic *HedgePanicError
}

func hedged[T any](ctx context.Context, h *Hedger, op func(context.Context) (T, error), deposit bool) (T, error) {
	var zero T
	switch {
	case ctx == nil:
		return zero, errNilContext
	case h == nil:
		return zero, errNilHedger
	case op == nil:
		return zero, errNilOp
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if deposit && h.budget != nil {
		h.budget.Deposit()
	}
	h.calls.Add(1)
	start := time.Now()
	delay := h.DelayAt(start)

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Buffered for every attempt the call may send and every time its
	// timer may fire (once per hedge), so that an attempt that finishes,
	// or a timer that fires, after DoHedged returned never blocks.
	maxHedges := h.maxHedges
	if maxHedges == 0 {
		maxHedges = DefaultMaxHedges
	}
	results := make(chan hedgeResult[T], 2*maxHedges+1)
	send := func(n int) {
		go func() {
			r := hedgeResult[T]{hedge: n}
			returned := false
			defer func() {
				if !returned {
					if v := recover(); v != nil {
						r.panic = &HedgePanicError{Value: v, Stack: debug.Stack()}
					} else {
						r.err = errAttemptExited
					}
				}
				results <- r
			}()
			r.value, r.err = op(actx)
			r.end = time.Now()
			returned = true
		}()
	}
	send(0)
	sent, running := 1, 1
	primaryRunning := true
	// sendHedge sends the next hedge when the timer fires, and reports
	// whether the timer should fire again.
	sendHedge := func() bool {
		if ctx.Err() != nil {
			return false // the ctx.Done case returns
		}
		if h.budget == nil || !h.budget.Withdraw() {
			h.refused.Add(1)
			h.event(HedgeEvent{Kind: HedgeRefused, Hedge: sent, Delay: delay})
			return false
		}
		h.hedges.Add(1)
		h.event(HedgeEvent{Kind: HedgeSent, Hedge: sent, Delay: delay})
		send(sent)
		sent++
		running++
		return sent <= maxHedges
	}
	// The timer reports on results (as hedge -1) rather than on a channel
	// of its own: a call whose primary answers first allocates less.
	timer := time.AfterFunc(delay, func() { results <- hedgeResult[T]{hedge: -1} })
	defer timer.Stop()
	for {
		select {
		case r := <-results:
			if r.hedge < 0 {
				if sendHedge() {
					timer.Reset(delay)
				}
				continue
			}
			running--
			if r.hedge == 0 {
				primaryRunning = false
			}
			if r.panic != nil {
				cancel()
				panic(r.panic)
			}
			if r.err == nil {
				if r.hedge == 0 {
					h.ObserveAt(r.end, r.end.Sub(start))
				} else {
					if primaryRunning {
						now := time.Now()
						h.ObserveAt(now, now.Sub(start))
					}
					h.won.Add(1)
					h.event(HedgeEvent{Kind: HedgeWon, Hedge: r.hedge, Delay: delay})
				}
				return r.value, nil
			}
			if running == 0 {
				return zero, r.err
			}
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

func (h *Hedger) event(e HedgeEvent) {
	if h.hook != nil {
		h.hook(e)
	}
}

// The latency sketch is a histogram with four bins per power of two from
// 1µs to 2^42ns (about 73 minutes), so a bin's upper bound is at most 25%
// above any latency in it, plus a bin below 1µs and one above: 130 bins.
// It keeps two of them, one per half window: the current half and the one
// before, so the samples of the last Window/2 to Window count.
const (
	sketchMinExp = 10 // 2^10ns ≈ 1µs
	sketchMaxExp = 42 // 2^42ns ≈ 73min
	sketchBins   = (sketchMaxExp-sketchMinExp)*4 + 2
)

type latencySketch struct {
	mu    sync.Mutex
	half  int64 // nanoseconds per half window
	epoch time.Time
	seen  bool
	cur   int64 // number of the current half, from epoch
	n     [2]int64
	bins  [2][sketchBins]int64
}

// sketchBin returns the bin of a latency of v nanoseconds.
func sketchBin(v int64) int {
	switch {
	case v < 1<<sketchMinExp:
		return 0
	case v >= 1<<sketchMaxExp:
		return sketchBins - 1
	}
	e := bits.Len64(uint64(v)) - 1
	sub := int(v>>(e-2)) & 3
	return 1 + (e-sketchMinExp)*4 + sub
}

// sketchUpper returns the largest latency bin i holds (the bin above 2^42ns
// reports 2^42ns).
func sketchUpper(i int) time.Duration {
	switch {
	case i <= 0:
		return 1<<sketchMinExp - 1
	case i >= sketchBins-1:
		return 1 << sketchMaxExp
	}
	e := (i-1)/4 + sketchMinExp
	sub := (i - 1) % 4
	return time.Duration(int64(4+sub+1)<<(e-2) - 1)
}

// halfAt returns the number of the half window now falls in; the caller
// holds mu.
func (s *latencySketch) halfAt(now time.Time) int64 {
	if !s.seen {
		s.epoch, s.seen = now, true
	}
	d := int64(now.Sub(s.epoch))
	k := d / s.half
	if d < 0 && d%s.half != 0 {
		k--
	}
	return k
}

// live reports which halves hold samples of the window at now, without
// moving the window: only an observation does, so that reading at another
// clock (Stats with the real one in a simulation) disturbs nothing. A time
// earlier than one already seen reads the window as it is.
func (s *latencySketch) live(now time.Time) (cur, prev bool) {
	k := s.halfAt(now)
	switch {
	case k <= s.cur:
		return true, true
	case k == s.cur+1:
		return true, false
	}
	return false, false
}

// rotate moves the window to now; the caller holds mu. A time earlier than
// one already seen counts in the current half.
func (s *latencySketch) rotate(now time.Time) {
	k := s.halfAt(now)
	switch {
	case k <= s.cur:
		return
	case k == s.cur+1:
		s.clear(int(k & 1))
	default:
		s.clear(0)
		s.clear(1)
	}
	s.cur = k
}

func (s *latencySketch) clear(i int) {
	s.n[i] = 0
	s.bins[i] = [sketchBins]int64{}
}

func (s *latencySketch) observe(now time.Time, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate(now)
	i := int(s.cur & 1)
	s.bins[i][sketchBin(int64(max(latency, 0)))]++
	s.n[i]++
}

// weights returns, for the halves 0 and 1, 1 if their samples are in the
// window at now and 0 if not.
func (s *latencySketch) weights(now time.Time) (w [2]int64) {
	cur, prev := s.live(now)
	if cur {
		w[s.cur&1] = 1
	}
	if prev {
		w[(s.cur+1)&1] = 1
	}
	return w
}

func (s *latencySketch) count(now time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.weights(now)
	return w[0]*s.n[0] + w[1]*s.n[1]
}

// quantile returns the upper bound of the bin that holds the q-th quantile
// (nearest rank) of the samples in the window, and how many there are.
func (s *latencySketch) quantile(now time.Time, q float64) (time.Duration, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.weights(now)
	n := w[0]*s.n[0] + w[1]*s.n[1]
	if n == 0 {
		return 0, 0
	}
	rank := max(int64(math.Ceil(q*float64(n))), 1)
	var seen int64
	for i := range sketchBins {
		seen += w[0]*s.bins[0][i] + w[1]*s.bins[1][i]
		if seen >= rank {
			return sketchUpper(i), n
		}
	}
	return sketchUpper(sketchBins - 1), n
}
