package shed

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LimiterConfig configures a Limiter or a KeyedLimiter. Rate is required;
// the other fields have defaults.
type LimiterConfig struct {
	// Rate is the sustained rate, in events per second. It must be a
	// positive finite number.
	Rate float64
	// Burst is how many events may happen at once after a quiet spell. Zero
	// means max(1, ⌈Rate⌉). Negative is invalid.
	Burst int
	// MaxWait bounds how long Wait may wait for a token. Zero means
	// DefaultMaxWait. Negative is invalid.
	MaxWait time.Duration
	// OnEvent, if not nil, is told what happens to every event: admitted,
	// queued (Wait only) or refused. A KeyedLimiter sets Event.Key.
	OnEvent func(Event)
}

func (c LimiterConfig) validate() []error {
	var errs []error
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("%w: Rate %v must be a positive finite number of events per second", ErrInvalidConfig, c.Rate))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("%w: Burst %d is negative", ErrInvalidConfig, c.Burst))
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxWait %v is negative", ErrInvalidConfig, c.MaxWait))
	}
	return errs
}

func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.Burst == 0 {
		c.Burst = max(1, int(math.Min(math.Ceil(c.Rate), math.MaxInt32)))
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	return c
}

// Limiter is a token-bucket rate limiter: the token bucket is
// golang.org/x/time/rate's, with this package's typed refusals, counters and
// bounded Wait on top. Use it to throttle intake by rate where a Bulkhead
// throttles by concurrency.
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	bucket  *rate.Limiter
	maxWait time.Duration
	hook    func(Event)
	counters
}

// NewLimiter returns a Limiter configured by cfg, or an error that matches
// ErrInvalidConfig and names every invalid field.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if err := errors.Join(cfg.validate()...); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Limiter{bucket: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst), maxWait: cfg.MaxWait, hook: cfg.OnEvent}, nil
}

// Allow reports whether an event may happen now. It is AllowAt(time.Now()).
func (l *Limiter) Allow() bool { return l.AllowAt(time.Now()) }

// AllowAt reports whether an event may happen at now, taking a token if so;
// simulations pass their own clock. It does not allocate.
func (l *Limiter) AllowAt(now time.Time) bool {
	if l == nil || l.bucket == nil {
		return false // not built with NewLimiter: Wait says so
	}
	if l.bucket.AllowN(now, 1) {
		l.admitted.Add(1)
		if l.hook != nil {
			l.hook(Event{Kind: Admitted})
		}
		return true
	}
	l.shed[reasonRateLimited].Add(1)
	if l.hook != nil {
		l.hook(Event{Kind: Refused, Reason: ErrRateLimited})
	}
	return false
}

// Wait waits for a token, and returns nil when the event may happen. If the
// token would come later than MaxWait from now, or at or after ctx's
// deadline (when ctx is done), it returns a *Refusal with ErrRateLimited
// at once instead of waiting in vain, saying when the token is due
// (Refusal.RetryIn); if ctx's deadline has already passed, it returns
// ErrDeadline, even if ctx has not noticed yet; if ctx is cancelled while
// waiting, it returns a Refusal with ctx's error (ErrDeadline for a
// deadline). A refused or cancelled call gives its token back.
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil {
		return errNilLimiter
	}
	if nilContext(ctx) {
		return errNilContext
	}
	if l.bucket == nil {
		return errZeroLimiter
	}
	if ctx.Err() != nil {
		return l.refuse(ctxRefusal(ctx, 0, ""))
	}
	now := time.Now()
	r := l.bucket.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	limit, late := l.maxWait, delay > l.maxWait
	if dl, ok := ctx.Deadline(); ok {
		if !dl.After(now) {
			// The deadline passed after the ctx.Err check above, before
			// ctx noticed: the event cannot happen in time, token or not.
			r.CancelAt(now)
			return l.refuse(&Refusal{Reason: ErrDeadline, Cause: context.DeadlineExceeded})
		}
		limit = min(limit, dl.Sub(now))
		// ctx is done at its deadline, so a token due then is too late.
		late = late || delay >= dl.Sub(now)
	}
	if !r.OK() || late {
		r.CancelAt(now)
		return l.refuse(&Refusal{Reason: ErrRateLimited, MaxWait: limit, RetryIn: delay,
			Rate: float64(l.bucket.Limit()), Burst: l.bucket.Burst()})
	}
	if delay > 0 {
		l.queued.Add(1)
		l.emitQueued(r)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			r.Cancel()
			return l.refuse(ctxRefusal(ctx, time.Since(now), ""))
		}
	}
	l.admitted.Add(1)
	if l.hook != nil {
		l.hook(Event{Kind: Admitted, Waited: delay})
	}
	return nil
}

// emitQueued tells the hook that the call waits for r's token. If the hook
// panics (or exits its goroutine), the token goes back on the way out and
// the call counts as a cancellation: nobody will use it.
func (l *Limiter) emitQueued(r *rate.Reservation) {
	if l.hook == nil {
		return
	}
	told := false
	defer func() {
		if !told {
			r.Cancel()
			l.refused(context.Canceled)
		}
	}()
	l.hook(Event{Kind: Queued})
	told = true
}

func (l *Limiter) refuse(r *Refusal) error {
	l.refused(r.Reason)
	if l.hook != nil {
		l.hook(Event{Kind: Refused, Reason: r.Reason, Waited: r.Waited})
	}
	return r
}

// Tokens returns the tokens available at now.
func (l *Limiter) Tokens(now time.Time) float64 {
	if l == nil || l.bucket == nil {
		return 0
	}
	return l.bucket.TokensAt(now)
}

// Stats returns the counters: admitted events, waits, and refusals.
func (l *Limiter) Stats() Stats {
	var s Stats
	if l == nil {
		return s
	}
	l.load(&s)
	return s
}

// KeyedLimiterConfig configures a KeyedLimiter.
type KeyedLimiterConfig struct {
	// LimiterConfig is the rate, burst and hook of every key. MaxWait must
	// be zero: a KeyedLimiter never waits (it has no Wait), and a bound
	// that bounds nothing is refused rather than ignored.
	LimiterConfig
	// MaxKeys bounds the number of keys tracked. A key whose bucket has
	// refilled completely is indistinguishable from a new one, so it can be
	// forgotten without loss: at the bound, the least recently used key is
	// forgotten if its bucket is full, and otherwise the event is refused
	// with ErrTooManyKeys. Zero means DefaultMaxKeys; at most 2^20.
	MaxKeys int
}

// KeyedLimiter is a rate limiter per key (a tenant, a client address, an
// Availability Zone) with a bounded number of keys, so that untrusted keys
// cannot grow memory without limit. Each key has its own
// golang.org/x/time/rate bucket. It is safe for concurrent use. A key that
// a map could not find again — a slice, map or func held in an
// interface-typed K, or a NaN, which would get a fresh bucket on every
// call — is refused with ErrInvalidArgument.
type KeyedLimiter[K comparable] struct {
	cfg       LimiterConfig
	maxKeys   int
	hook      func(Event)
	checkKeys bool // K can hold values no map finds again (keysNeedCheck)

	mu   sync.Mutex
	keys map[K]*list.Element // of *keyedBucket[K]
	lru  list.List           // front: least recently used
	counters
}

type keyedBucket[K comparable] struct {
	key    K
	name   string // the key formatted with %v, for refusals
	bucket *rate.Limiter
	// admitted and limited count the key's events since it was last
	// tracked; guarded by the KeyedLimiter's mu.
	admitted, limited int64
}

// NewKeyedLimiter returns a KeyedLimiter configured by cfg, or an error that
// matches ErrInvalidConfig and names every invalid field.
func NewKeyedLimiter[K comparable](cfg KeyedLimiterConfig) (*KeyedLimiter[K], error) {
	errs := cfg.validate()
	if cfg.MaxWait != 0 {
		errs = append(errs, fmt.Errorf("%w: MaxWait %v: a KeyedLimiter never waits; leave it zero", ErrInvalidConfig, cfg.MaxWait))
	}
	if cfg.MaxKeys < 0 || cfg.MaxKeys > maxKeysLimit {
		errs = append(errs, fmt.Errorf("%w: MaxKeys %d is outside [1, %d]", ErrInvalidConfig, cfg.MaxKeys, maxKeysLimit))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	lc := cfg.withDefaults()
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	return &KeyedLimiter[K]{cfg: lc, maxKeys: cfg.MaxKeys, hook: lc.OnEvent, checkKeys: keysNeedCheck[K](), keys: make(map[K]*list.Element)}, nil
}

// badKey returns an error matching ErrInvalidArgument if key is not
// comparable or not equal to itself (see keysNeedCheck), or nil.
func (k *KeyedLimiter[K]) badKey(key K) error {
	if k.checkKeys || k.keys == nil {
		return checkKey(key)
	}
	return nil
}

// Allow reports whether an event for key may happen now.
func (k *KeyedLimiter[K]) Allow(key K) error { return k.AllowAt(time.Now(), key) }

// AllowAt takes a token from key's bucket at now, and returns nil if there
// was one, or a *Refusal: ErrRateLimited, saying when the key's next token
// is due (Refusal.RetryIn), or ErrTooManyKeys when key is new, the key
// bound is reached and no key can be forgotten. (Unlike Limiter.AllowAt it
// returns an error, because a refusal has two possible reasons; the admit
// path does not allocate.)
func (k *KeyedLimiter[K]) AllowAt(now time.Time, key K) error {
	if k == nil {
		return errNilKeyedLimiter
	}
	if k.keys == nil {
		return errZeroKeyedLimiter
	}
	if err := k.badKey(key); err != nil {
		return err
	}
	k.mu.Lock()
	b, r := k.lookupLocked(now, key)
	if r != nil {
		k.mu.Unlock()
		k.refused(r.Reason)
		k.emit(Event{Kind: Refused, Reason: r.Reason, Key: r.Key})
		return r
	}
	if b.bucket.AllowN(now, 1) {
		b.admitted++
		k.mu.Unlock()
		k.admitted.Add(1)
		k.emit(Event{Kind: Admitted, Key: b.name})
		return nil
	}
	b.limited++
	// The time until one token is due, rounded up to the nanosecond.
	need := 1 - b.bucket.TokensAt(now)
	k.mu.Unlock()
	k.shed[reasonRateLimited].Add(1)
	k.emit(Event{Kind: Refused, Reason: ErrRateLimited, Key: b.name})
	return &Refusal{Reason: ErrRateLimited, Key: b.name, Rate: k.cfg.Rate, Burst: k.cfg.Burst,
		RetryIn: secondsCeil(need / k.cfg.Rate)}
}

func (k *KeyedLimiter[K]) emit(e Event) {
	if k.hook != nil {
		k.hook(e)
	}
}

func (k *KeyedLimiter[K]) lookupLocked(now time.Time, key K) (*keyedBucket[K], *Refusal) {
	if e, ok := k.keys[key]; ok {
		k.lru.MoveToBack(e)
		return e.Value.(*keyedBucket[K]), nil
	}
	if len(k.keys) >= k.maxKeys {
		oldest := k.lru.Front()
		victim := oldest.Value.(*keyedBucket[K])
		// Ask the bucket itself rather than compute when it will be full:
		// for slow rates that time does not fit in a time.Duration, and a
		// bucket whose clock is ahead of now (a caller's clock stepped
		// back) reports its tokens as of its own clock.
		if victim.bucket.TokensAt(now) < float64(k.cfg.Burst) {
			return nil, &Refusal{Reason: ErrTooManyKeys, Key: fmt.Sprint(key), Current: len(k.keys), Limit: k.maxKeys}
		}
		k.lru.Remove(oldest)
		delete(k.keys, victim.key)
	}
	b := &keyedBucket[K]{key: key, name: fmt.Sprint(key), bucket: rate.NewLimiter(rate.Limit(k.cfg.Rate), k.cfg.Burst)}
	k.keys[key] = k.lru.PushBack(b)
	return b, nil
}

// Keys returns the number of keys tracked.
func (k *KeyedLimiter[K]) Keys() int {
	if k == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.keys)
}

// Stats returns the counters summed over all keys, forgotten ones
// included.
func (k *KeyedLimiter[K]) Stats() Stats {
	var s Stats
	if k == nil {
		return s
	}
	k.load(&s)
	return s
}

// StatsFor returns key's counters (Admitted and Shed.RateLimited) since it
// was last tracked, and whether it is tracked. A key forgotten at the key
// bound (its bucket had refilled) starts again from zero; a refusal with
// ErrTooManyKeys is counted only in Stats, since the key was not tracked.
func (k *KeyedLimiter[K]) StatsFor(key K) (Stats, bool) {
	if k == nil || k.badKey(key) != nil {
		return Stats{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.keys[key]
	if !ok {
		return Stats{}, false
	}
	b := e.Value.(*keyedBucket[K])
	return Stats{Admitted: b.admitted, Shed: ShedCounts{RateLimited: b.limited}}, true
}

// secondsCeil converts seconds to a time.Duration rounded up to the
// nanosecond, saturating at the longest Duration instead of overflowing
// (for slow rates, the time to the next token does not fit in int64
// nanoseconds); negative and NaN give zero.
func secondsCeil(seconds float64) time.Duration {
	ns := math.Ceil(seconds * float64(time.Second))
	switch {
	case ns >= math.MaxInt64: // float64(math.MaxInt64) is 2^63, one past it
		return math.MaxInt64
	case ns > 0:
		return time.Duration(ns)
	}
	return 0
}
