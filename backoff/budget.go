package backoff

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Defaults applied to the zero fields of a BudgetConfig.
const (
	DefaultBudgetRatio         = 0.1
	DefaultMinRetriesPerSecond = 1.0
	DefaultBudgetMaxTokens     = 100
)

// ErrInvalidBudget is matched (with errors.Is) by every error NewBudget
// returns.
var ErrInvalidBudget = errors.New("backoff: invalid budget")

// tokenScale is one retry token in the fixed-point unit of Budget's balance.
const tokenScale = 1 << 20

// BudgetConfig configures a Budget. The zero value is usable: retries are at
// most 10% of requests, plus one retry per second for low traffic, with at
// most 100 retries banked.
type BudgetConfig struct {
	// Ratio is how many retries each request earns: 0.1 lets retries add at
	// most 10% to the load. Zero means DefaultBudgetRatio; it must be in
	// (0, 1].
	Ratio float64
	// MinRetriesPerSecond is a floor for low traffic: this many retries per
	// second (with a burst of the same size, at least one) are allowed even
	// when requests have earned none. Zero means
	// DefaultMinRetriesPerSecond; it must be at most 1e9, and negative, NaN
	// or infinite is invalid. Set NoFloor to have no floor at all (this
	// field is then ignored, and not checked).
	MinRetriesPerSecond float64
	// NoFloor disables MinRetriesPerSecond: retries are then strictly
	// bounded by Ratio.
	NoFloor bool
	// MaxTokens bounds how many retries requests can bank, so a long healthy
	// spell does not pay for a long retry storm. Zero means
	// DefaultBudgetMaxTokens; it must be in [1, 1e9].
	MaxTokens int
}

// Budget is a retry budget shared by all callers of one dependency, in the
// manner of Finagle's RetryBudget and gRPC's retry throttling: every request
// deposits Ratio of a token and every retry withdraws one whole token. While
// the dependency is healthy, retries are rare and the budget stays full; in
// a large outage every request fails, the budget empties, and retries are
// switched off instead of multiplying the load on the dependency while it
// tries to recover. Tokens come only from deposits, so over any sequence of
// calls the retries admitted never exceed Ratio·deposits plus the floor's
// allowance, burst + MinRetriesPerSecond·(seconds elapsed).
//
// Build a Budget with NewBudget; a zero Budget refuses every retry. A nil
// *Budget is no budget, as WithBudget(nil) is: it allows every retry,
// Deposit does nothing, and Tokens and Stats are zero.
// A Budget is safe for concurrent use. Deposit and Withdraw are lock-free
// and do not allocate; Deposit on a full budget is a single atomic load.
type Budget struct {
	deposit  int64 // fixed-point tokens earned per request
	capacity int64 // fixed-point bound on the balance
	floor    bool
	interval int64 // nanoseconds per floor retry
	window   int64 // burst·interval

	// The words written under contention each get a cache line, so that
	// deposits, the floor and the counters do not slow each other down.
	_       cacheLinePad
	balance atomic.Int64
	_       cacheLinePad
	// The floor is a GCRA token bucket in one word: tat is the theoretical
	// arrival time, in nanoseconds since epoch (tatUnset before the first
	// floor retry). epoch is the first time the floor was asked, so that
	// any clock works, a simulation's starting at the zero Time included.
	tat     atomic.Int64
	epoch   atomic.Pointer[time.Time]
	_       cacheLinePad
	retries atomic.Int64
	_       cacheLinePad
	refused atomic.Int64
}

type cacheLinePad [64]byte

const tatUnset = math.MinInt64

// BudgetStats is a snapshot of a Budget's counters.
type BudgetStats struct {
	// Tokens is the banked balance of retries earned by requests, not
	// counting the floor.
	Tokens float64
	// Retries is how many retries the budget has admitted.
	Retries int64
	// Refused is how many retries it has refused.
	Refused int64
}

// NewBudget returns a Budget configured by cfg, or an error that matches
// ErrInvalidBudget and names every invalid field.
func NewBudget(cfg BudgetConfig) (*Budget, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidBudget}, args...)...))
	}
	ratio := cfg.Ratio
	if ratio == 0 {
		ratio = DefaultBudgetRatio
	}
	if !(ratio > 0 && ratio <= 1) {
		bad("Ratio %v is outside (0, 1]", cfg.Ratio)
	}
	rate := cfg.MinRetriesPerSecond
	if rate == 0 || cfg.NoFloor {
		rate = DefaultMinRetriesPerSecond
	}
	if !(rate > 0) || math.IsInf(rate, 0) {
		bad("MinRetriesPerSecond %v is not a positive finite number", cfg.MinRetriesPerSecond)
	} else if rate > 1e9 {
		bad("MinRetriesPerSecond %v is above 1e9", cfg.MinRetriesPerSecond)
	}
	maxTokens := cfg.MaxTokens
	if maxTokens == 0 {
		maxTokens = DefaultBudgetMaxTokens
	}
	if maxTokens < 1 || maxTokens > 1e9 {
		bad("MaxTokens %d is outside [1, 1e9]", cfg.MaxTokens)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b := &Budget{
		deposit:  int64(ratio * tokenScale),
		capacity: int64(maxTokens) * tokenScale,
		floor:    !cfg.NoFloor,
	}
	if b.floor {
		b.interval = max(int64(float64(time.Second)/rate), 1)
		b.window = int64(math.Max(1, math.Ceil(rate))) * b.interval
		b.tat.Store(tatUnset) // the burst is available at once
	}
	return b, nil
}

// Deposit records one request (a first attempt): it earns Ratio of a retry
// token, up to MaxTokens. Retry calls it once per call when given the budget
// with WithBudget.
func (b *Budget) Deposit() {
	if b == nil {
		return
	}
	for {
		old := b.balance.Load()
		if old >= b.capacity {
			return
		}
		if b.balance.CompareAndSwap(old, min(old+b.deposit, b.capacity)) {
			return
		}
	}
}

// Withdraw asks for one retry now and reports whether it is allowed. It is
// WithdrawAt(time.Now()), except that the clock is read only when the
// balance cannot pay and the floor is asked.
func (b *Budget) Withdraw() bool {
	if b == nil {
		return true
	}
	if b.takeBalance() {
		return true
	}
	return b.withdrawFloor(time.Now())
}

// WithdrawAt asks for one retry at time now and reports whether it is
// allowed: from the balance earned by requests if it holds a whole token,
// else from the floor. now only matters for the floor; simulations pass
// their own clock (one clock per Budget: the floor measures time from the
// first now it sees). A refusal is counted in Stats.
func (b *Budget) WithdrawAt(now time.Time) bool {
	if b == nil {
		return true
	}
	if b.takeBalance() {
		return true
	}
	return b.withdrawFloor(now)
}

func (b *Budget) takeBalance() bool {
	for {
		old := b.balance.Load()
		if old < tokenScale {
			return false
		}
		if b.balance.CompareAndSwap(old, old-tokenScale) {
			b.retries.Add(1)
			return true
		}
	}
}

func (b *Budget) withdrawFloor(now time.Time) bool {
	if b.floor && b.takeFloor(now) {
		b.retries.Add(1)
		return true
	}
	b.refused.Add(1)
	return false
}

func (b *Budget) takeFloor(now time.Time) bool {
	epoch := b.epoch.Load()
	if epoch == nil {
		first := now // escapes to the heap once, on the first floor retry only
		b.epoch.CompareAndSwap(nil, &first)
		epoch = b.epoch.Load()
	}
	t := int64(now.Sub(*epoch))
	for {
		tat := b.tat.Load()
		next := t + b.interval
		if tat != tatUnset {
			next = max(tat, t) + b.interval
		}
		if next-t > b.window {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// Tokens returns the banked balance of retries earned by requests (the floor
// not included).
func (b *Budget) Tokens() float64 {
	if b == nil {
		return 0
	}
	return float64(b.balance.Load()) / tokenScale
}

// Stats returns a snapshot of the budget's balance and counters.
func (b *Budget) Stats() BudgetStats {
	if b == nil {
		return BudgetStats{}
	}
	return BudgetStats{Tokens: b.Tokens(), Retries: b.retries.Load(), Refused: b.refused.Load()}
}
