package shed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults applied to the zero fields of a PartitionConfig.
const (
	DefaultShare   = 0.5
	DefaultMaxKeys = 1024
	// maxKeysLimit bounds MaxKeys itself, so a typo cannot configure
	// unbounded memory.
	maxKeysLimit = 1 << 20
)

// PartitionConfig configures a Partition. Total is required; the other
// fields have defaults. A key that a map could not find again — a slice,
// map or func held in an interface-typed K, or a NaN — is refused with
// ErrInvalidArgument.
type PartitionConfig[K comparable] struct {
	// Total is how many calls may run at once across all keys. It must be
	// in [1, 2^24].
	Total int
	// PerKey caps the calls in flight for any one key. Zero means
	// ⌈Share·Total⌉. It must not exceed Total.
	PerKey int
	// Share is the cap per key as a fraction of Total, used when PerKey is
	// zero. Zero means DefaultShare (0.5): one key whose calls all hang
	// holds at most half the pool. It must be in (0, 1].
	Share float64
	// MaxQueuePerKey is how many calls of one key may wait. Zero means
	// none. Negative is invalid.
	MaxQueuePerKey int
	// MaxWait bounds the time a call waits. Zero means DefaultMaxWait.
	MaxWait time.Duration
	// CallTimeout, if positive, bounds the context Do passes to the call.
	CallTimeout time.Duration
	// MaxKeys bounds the number of keys tracked, so untrusted keys cannot
	// grow memory without limit. When a new key arrives at the bound, the
	// least recently used idle key (nothing in flight or waiting, not
	// paused) is forgotten; if none is idle the call is refused with
	// ErrTooManyKeys. Zero means DefaultMaxKeys (1024); at most 2^20.
	MaxKeys int
	// OnEvent, if not nil, is told what happens to every call, with its key.
	OnEvent func(key K, e Event)
	// Adaptive, if not nil, gives every key its own adaptive limit: each
	// key (each Availability Zone) learns from the latencies of its own
	// calls, reported by ReleaseRTT and Do, how much concurrency its
	// dependency can take (see AdaptiveLimit), within [Adaptive.MinLimit,
	// Adaptive.MaxLimit], under the per-key cap and the regional Total:
	// Adaptive.MaxLimit defaults to the per-key cap and must not exceed
	// it, and the calls in flight across keys never exceed Total whatever
	// the keys learn. A key that slows down shrinks its own limit and
	// leaves the pool to the others. A key forgotten while idle (see
	// MaxKeys) forgets what it learned. Adaptive.OnLimit is told each
	// key's changes, with LimitChange.Key set.
	//
	// A key's limit settles near Tolerance (1.5) times its dependency's
	// concurrency, so the limits may sum above Total; a full pool then
	// hands freed slots to the keys with the fewest calls in flight (see
	// Partition), so that no key holds slots queued at its dependency
	// while another key's dependency idles: three zones of 8 servers
	// under a Total of 24 and the default cap of 12 finish 99.8% of their
	// capacity (TestAdaptivePartitionRealZones; 89% when freed slots went
	// in arrival order across keys).
	Adaptive *AdaptiveConfig
}

func (c PartitionConfig[K]) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Total <= 0 || c.Total > maxQueueConfig {
		bad("Total %d is outside [1, 2^24]", c.Total)
	}
	if c.PerKey < 0 {
		bad("PerKey %d is negative", c.PerKey)
	} else if c.Total > 0 && c.PerKey > c.Total {
		bad("PerKey %d exceeds Total %d", c.PerKey, c.Total)
	}
	if s := c.Share; math.IsNaN(s) || s < 0 || s > 1 {
		bad("Share %v is outside (0, 1]", s)
	}
	if c.MaxQueuePerKey < 0 || c.MaxQueuePerKey > maxQueueConfig {
		bad("MaxQueuePerKey %d is outside [0, 2^24]", c.MaxQueuePerKey)
	}
	if c.MaxKeys < 0 || c.MaxKeys > maxKeysLimit {
		bad("MaxKeys %d is outside [1, %d]", c.MaxKeys, maxKeysLimit)
	}
	errs = append(errs, validateWaits(c.MaxWait, c.CallTimeout)...)
	if c.Adaptive != nil {
		errs = append(errs, c.Adaptive.validate(max(c.perKey(), 1), "the per-key cap"))
	}
	return errors.Join(errs...)
}

// perKey returns the per-key cap c configures (PerKey, or ⌈Share·Total⌉).
func (c PartitionConfig[K]) perKey() int {
	if c.PerKey != 0 {
		return c.PerKey
	}
	share := c.Share
	if share == 0 {
		share = DefaultShare
	}
	return max(1, int(math.Ceil(share*float64(c.Total))))
}

// keyCore is the state of one key that waiters point to.
type keyCore struct {
	name     string // the key formatted with %v, for refusals
	inFlight int
	waiting  int
	paused   bool
	adaptive *AdaptiveLimit // the key's own limit, if adaptive
	counters
}

// keyState is a key's entry in the Partition, linked into the LRU list of
// idle keys while it has nothing in flight or waiting and is not paused.
type keyState[K comparable] struct {
	keyCore
	key                K
	idlePrev, idleNext *keyState[K]
	inIdle             bool
}

func (k *keyState[K]) idle() bool { return k.inFlight == 0 && k.waiting == 0 && !k.paused }

// Partition is a set of bulkheads, one per key (an Availability Zone, a
// cluster, a tenant), drawing on one shared pool. Each key is capped, so
// that calls for one key that all hang hold at most PerKey slots and the
// other keys keep the rest; the total in flight never exceeds Total. It is
// the per-AZ isolation the 2011 EBS control plane added after calls into one
// zone starved the region.
//
// Keys are created on first use and forgotten when idle under key pressure
// (see MaxKeys). A slot freed in the pool goes to a waiter whose key is
// below its cap: the first in arrival order among the keys with the
// fewest calls in flight, so that keys contending for a full pool
// converge to equal shares (within a key, waiters are served in arrival
// order); and a waiter's outcome is decided once, as in a
// Bulkhead, however its giving up races with a grant or a Pause. Pause and
// Resume switch one key off and on. A
// Partition is safe for concurrent use; admission does not allocate once a
// key exists, unless the call has to wait or is refused.
type Partition[K comparable] struct {
	total       int
	perKey      int
	maxQueue    int
	maxWait     time.Duration
	callTimeout time.Duration
	maxKeys     int
	hook        func(K, Event)
	checkKeys   bool // K can hold values no map finds again (keysNeedCheck)
	adaptive    *AdaptiveConfig

	mu                 sync.Mutex
	keys               map[K]*keyState[K]
	inFlight           int
	waiters            waitList
	idleHead, idleTail *keyState[K]

	counters
}

// NewPartition returns a Partition configured by cfg, or an error that
// matches ErrInvalidConfig and names every invalid field.
func NewPartition[K comparable](cfg PartitionConfig[K]) (*Partition[K], error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.PerKey = cfg.perKey()
	if cfg.Adaptive != nil {
		a := cfg.Adaptive.withDefaults(cfg.PerKey)
		cfg.Adaptive = &a
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	return &Partition[K]{
		total:       cfg.Total,
		perKey:      cfg.PerKey,
		maxQueue:    cfg.MaxQueuePerKey,
		maxWait:     cfg.MaxWait,
		callTimeout: cfg.CallTimeout,
		maxKeys:     cfg.MaxKeys,
		hook:        cfg.OnEvent,
		checkKeys:   keysNeedCheck[K](),
		keys:        make(map[K]*keyState[K]),
		adaptive:    cfg.Adaptive,
	}, nil
}

// badKey returns an error matching ErrInvalidArgument if key is not
// comparable or not equal to itself (see keysNeedCheck), or nil. A
// Partition not built with NewPartition checks every key.
func (p *Partition[K]) badKey(key K) error {
	if p.checkKeys || p.keys == nil {
		return checkKey(key)
	}
	return nil
}

// PerKey returns the cap on calls in flight for one key.
func (p *Partition[K]) PerKey() int {
	if p == nil {
		return 0
	}
	return p.perKey
}

// lookupLocked returns key's state, creating it if needed and evicting the
// least recently used idle key at the bound.
func (p *Partition[K]) lookupLocked(key K) (*keyState[K], *Refusal) {
	if ks, ok := p.keys[key]; ok {
		return ks, nil
	}
	if len(p.keys) >= p.maxKeys {
		victim := p.idleHead
		if victim == nil {
			return nil, &Refusal{Reason: ErrTooManyKeys, Key: fmt.Sprint(key), Current: len(p.keys), Limit: p.maxKeys}
		}
		p.unlinkIdle(victim)
		delete(p.keys, victim.key)
	}
	ks := &keyState[K]{key: key}
	ks.name = fmt.Sprint(key)
	if p.adaptive != nil {
		ks.adaptive = newAdaptive(*p.adaptive)
	}
	p.keys[key] = ks
	p.touchLocked(ks)
	return ks, nil
}

// touchLocked puts ks at the most recent end of the idle list if it is idle,
// and takes it out if it is not.
func (p *Partition[K]) touchLocked(ks *keyState[K]) {
	if ks.inIdle {
		p.unlinkIdle(ks)
	}
	if !ks.idle() {
		return
	}
	ks.inIdle = true
	ks.idlePrev = p.idleTail
	if p.idleTail == nil {
		p.idleHead = ks
	} else {
		p.idleTail.idleNext = ks
	}
	p.idleTail = ks
}

func (p *Partition[K]) unlinkIdle(ks *keyState[K]) {
	if ks.idlePrev == nil {
		p.idleHead = ks.idleNext
	} else {
		ks.idlePrev.idleNext = ks.idleNext
	}
	if ks.idleNext == nil {
		p.idleTail = ks.idlePrev
	} else {
		ks.idleNext.idlePrev = ks.idlePrev
	}
	ks.idlePrev, ks.idleNext, ks.inIdle = nil, nil, false
}

// TryAcquire takes a slot for key if one is free without waiting, and
// reports whether it did. Refusals are counted but return no error.
func (p *Partition[K]) TryAcquire(key K) bool {
	if p == nil || p.badKey(key) != nil {
		return false
	}
	p.mu.Lock()
	ks, r := p.lookupLocked(key)
	if r != nil {
		p.refusedLocked(nil, r.Reason)
		p.mu.Unlock()
		p.report(key, r)
		return false
	}
	if ks.paused || !p.freeLocked(ks) {
		reason := ErrQueueFull
		if ks.paused {
			reason = ErrPaused
		}
		p.refusedLocked(&ks.keyCore, reason)
		p.mu.Unlock()
		p.report(key, &Refusal{Reason: reason, Key: ks.name})
		return false
	}
	p.admitLocked(ks)
	p.mu.Unlock()
	p.emitAdmitted(key, 0)
	return true
}

// freeLocked reports whether a newcomer for ks may take a slot now: both
// caps have room and nobody of the same key waits ahead of it. (Waiters of
// other keys can only be waiting for their own key's cap while the total
// has room, so they are not ahead of it.)
func (p *Partition[K]) freeLocked(ks *keyState[K]) bool {
	return ks.inFlight < p.keyLimit(&ks.keyCore) && p.inFlight < p.total && ks.waiting == 0
}

// keyLimit returns the current limit of key k: the per-key cap, or the
// key's adaptive limit.
func (p *Partition[K]) keyLimit(k *keyCore) int {
	if k.adaptive != nil {
		return int(k.adaptive.limit.Load())
	}
	return p.perKey
}

// admitLocked gives a newcomer for ks a slot, and counts it: admissions,
// like refusals, are counted as they are decided, so that a snapshot never
// shows a call in flight that is not counted as admitted.
func (p *Partition[K]) admitLocked(ks *keyState[K]) {
	ks.inFlight++
	p.inFlight++
	p.admitted.Add(1)
	ks.admitted.Add(1)
	p.touchLocked(ks)
}

// revokeLocked undoes the count of a grant whose waiter found its context
// done and passed the slot on; the caller counts its refusal.
func (p *Partition[K]) revokeLocked(ks *keyCore) {
	p.admitted.Add(-1)
	ks.admitted.Add(-1)
}

// Acquire takes a slot for key, waiting if the key's queue has room. It
// returns nil once the caller holds a slot (release it with Release(key)),
// or a *Refusal: ErrTooManyKeys, ErrPaused, ErrQueueFull, ErrWaitTimeout,
// ErrDeadline, or ctx's error if ctx was cancelled.
func (p *Partition[K]) Acquire(ctx context.Context, key K) error {
	if p == nil {
		return errNilPartition
	}
	if nilContext(ctx) {
		return errNilContext
	}
	if err := p.badKey(key); err != nil {
		return err
	}
	p.mu.Lock()
	ks, r := p.lookupLocked(key)
	switch {
	case r != nil:
	case ctx.Err() != nil:
		r = ctxRefusal(ctx, 0, ks.name)
	case ks.paused:
		r = &Refusal{Reason: ErrPaused, Key: ks.name}
	case p.freeLocked(ks):
		p.admitLocked(ks)
		p.mu.Unlock()
		p.emitAdmitted(key, 0)
		return nil
	case ks.waiting >= p.maxQueue:
		r = &Refusal{Reason: ErrQueueFull, Key: ks.name, Current: ks.waiting, Limit: p.maxQueue}
	}
	if r != nil {
		var core *keyCore
		if ks != nil {
			core = &ks.keyCore
		}
		p.refusedLocked(core, r.Reason)
		p.mu.Unlock()
		return p.report(key, r)
	}
	w := &waiter{ready: make(chan struct{}), enqueued: time.Now(), key: &ks.keyCore}
	p.waiters.pushBack(w)
	ks.waiting++
	p.touchLocked(ks)
	p.queued.Add(1)
	ks.queued.Add(1)
	p.mu.Unlock()
	p.emitQueued(key, ks, w)

	outcome := w.wait(ctx, p.maxWait)
	waited := time.Since(w.enqueued)
	if outcome == waitTimedOut || outcome == waitCtxDone {
		p.mu.Lock()
		outcome = p.giveUpLocked(ks, w, outcome)
		// Count the refusal before the key can be forgotten: once the
		// lock is released an idle key may be evicted, and a count
		// after that would land on a state nobody can see.
		switch outcome {
		case waitTimedOut:
			r = &Refusal{Reason: ErrWaitTimeout, Key: ks.name, Waited: waited, MaxWait: p.maxWait}
		case waitCtxDone:
			r = ctxRefusal(ctx, waited, ks.name)
		}
		if r != nil {
			p.refusedLocked(&ks.keyCore, r.Reason)
		}
		p.mu.Unlock()
	}
	switch outcome {
	case waitGranted:
		// Counted by the grant (releaseLocked).
		p.emitAdmitted(key, waited)
		return nil
	case waitRefused:
		// Counted by Pause, which refused it.
		return p.report(key, &Refusal{Reason: w.refusal, Key: ks.name, Waited: waited})
	}
	return p.report(key, r)
}

// Release returns a slot of key taken by Acquire or TryAcquire, and hands
// freed capacity to the longest waiters that can use it. Releasing a key
// with nothing in flight is a caller bug; Release then does nothing.
func (p *Partition[K]) Release(key K) {
	if p == nil || p.badKey(key) != nil {
		return
	}
	p.mu.Lock()
	if ks, ok := p.keys[key]; ok && ks.inFlight > 0 {
		p.releaseLocked(ks)
	}
	p.mu.Unlock()
}

func (p *Partition[K]) releaseLocked(ks *keyState[K]) {
	ks.inFlight--
	p.inFlight--
	p.touchLocked(ks)
	// While the pool has room, grant to a waiter whose key has room: the
	// first in arrival order among the keys with the fewest calls in
	// flight, so that keys contending for the pool converge to equal
	// shares rather than to whoever queued first. Waiters of keys at their
	// cap are skipped, not blocking the others: that is the isolation.
	for p.inFlight < p.total {
		var best *waiter
		for w := p.waiters.head; w != nil; w = w.next {
			if w.key.inFlight < p.keyLimit(w.key) && (best == nil || w.key.inFlight < best.key.inFlight) {
				best = w
			}
		}
		if best == nil {
			return
		}
		w := best
		p.waiters.remove(w)
		w.key.waiting--
		w.key.inFlight++
		p.inFlight++
		p.admitted.Add(1)
		w.key.admitted.Add(1)
		w.grant()
	}
}

// ReleaseRTT is Release for a partition with adaptive limits: it also
// reports the latency rtt of the call of key, and whether it was dropped
// (timed out, or refused by the dependency for overload), from which the
// key's limit is learned (see AdaptiveLimit). A key whose limit grows gets
// waiters of its own admitted at once, as far as Total allows; one whose
// limit shrinks below its calls in flight preempts none and admits none
// of its calls until they are under it. Without adaptive limits it is
// Release. Like Release, it does nothing, and records nothing, when key
// has nothing in flight.
func (p *Partition[K]) ReleaseRTT(key K, rtt time.Duration, dropped bool) {
	if p == nil || p.badKey(key) != nil {
		return
	}
	var now time.Time // read only if a window is bounded in time
	if c := p.adaptive; c != nil && (c.Window > 0 || c.MaxWindow > 0) {
		now = time.Now()
	}
	p.mu.Lock()
	ks, ok := p.keys[key]
	if !ok || ks.inFlight == 0 {
		p.mu.Unlock()
		return
	}
	var ch LimitChange
	changed := false
	if ks.adaptive != nil {
		ch, changed = ks.adaptive.observe(now, rtt, ks.inFlight, dropped)
		ch.Key = ks.name
	}
	p.releaseLocked(ks) // grants under the new limit, growth included
	a := ks.adaptive
	p.mu.Unlock()
	if changed {
		a.emit(ch)
	}
}

// LimitFor returns the current limit of key (the per-key cap, or what the
// key has learned), and false if the key is not tracked.
func (p *Partition[K]) LimitFor(key K) (int, bool) {
	if p == nil || p.badKey(key) != nil {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ks, ok := p.keys[key]
	if !ok {
		return 0, false
	}
	return p.keyLimit(&ks.keyCore), true
}

// AdaptiveStatsFor returns a snapshot of key's adaptive limit, and false
// if the key is not tracked or the partition has no adaptive limits.
func (p *Partition[K]) AdaptiveStatsFor(key K) (AdaptiveStats, bool) {
	if p == nil || p.badKey(key) != nil {
		return AdaptiveStats{}, false
	}
	p.mu.Lock()
	ks, ok := p.keys[key]
	p.mu.Unlock()
	if !ok || ks.adaptive == nil {
		return AdaptiveStats{}, false
	}
	return ks.adaptive.Stats(), true
}

// Do runs fn in a slot of key: it acquires one (see Acquire for the
// refusals), calls fn with a context bounded by CallTimeout if one is set,
// and releases the slot when fn returns or panics. With adaptive limits it
// reports fn's latency, as ReleaseRTT does: an error matching
// context.DeadlineExceeded or ErrShed counts as a drop, and a call whose
// caller cancelled it (or that panicked) reports nothing.
func (p *Partition[K]) Do(ctx context.Context, key K, fn func(context.Context) error) error {
	if p == nil {
		return errNilPartition
	}
	if fn == nil {
		return errNilFunc
	}
	if err := p.Acquire(ctx, key); err != nil {
		return err
	}
	if p.adaptive != nil {
		return p.doAdaptive(ctx, key, fn)
	}
	defer p.Release(key)
	return callWithTimeout(ctx, p.callTimeout, fn)
}

func (p *Partition[K]) doAdaptive(ctx context.Context, key K, fn func(context.Context) error) error {
	start := time.Now()
	done := false
	defer func() {
		if !done {
			p.Release(key)
		}
	}()
	err := callWithTimeout(ctx, p.callTimeout, fn)
	done = true
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		p.Release(key)
	} else {
		p.ReleaseRTT(key, time.Since(start), dropped(err))
	}
	return err
}

// Pause refuses new calls for key with ErrPaused, and refuses its calls
// already waiting, at once; its calls in flight finish normally. Pausing a
// key not seen yet creates it (a paused key is never forgotten), which can
// fail with ErrTooManyKeys.
func (p *Partition[K]) Pause(key K) error {
	if p == nil {
		return errNilPartition
	}
	if err := p.badKey(key); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ks, r := p.lookupLocked(key)
	if r != nil {
		return r
	}
	ks.paused = true
	for w := p.waiters.head; w != nil; {
		next := w.next
		if w.key == &ks.keyCore {
			p.waiters.remove(w)
			ks.waiting--
			p.refusedLocked(w.key, ErrPaused)
			w.refuse(ErrPaused)
		}
		w = next
	}
	p.touchLocked(ks)
	return nil
}

// Resume undoes Pause for key. Resuming a key that is not paused does
// nothing.
func (p *Partition[K]) Resume(key K) {
	if p == nil || p.badKey(key) != nil {
		return
	}
	p.mu.Lock()
	if ks, ok := p.keys[key]; ok {
		ks.paused = false
		p.touchLocked(ks)
	}
	p.mu.Unlock()
}

// Paused reports whether key is paused.
func (p *Partition[K]) Paused(key K) bool {
	if p == nil || p.badKey(key) != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ks, ok := p.keys[key]
	return ok && ks.paused
}

// Stats returns a snapshot of the whole partition: calls in flight and
// waiting across keys, and the counters summed over all keys (forgotten
// keys included).
func (p *Partition[K]) Stats() Stats {
	if p == nil {
		return Stats{}
	}
	p.mu.Lock()
	s := Stats{InFlight: p.inFlight, Waiting: p.waiters.len}
	p.load(&s)
	p.mu.Unlock()
	return s
}

// StatsFor returns a snapshot for one key, and false if the key is not
// tracked (never used, or forgotten while idle). Every admission and
// refusal is counted under the partition's lock as it is decided, so a
// snapshot is exact: each call in flight is counted as admitted and each
// queued call is waiting or counted with its outcome. (A waiter granted a
// slot as its context ends counts as admitted until, a moment later, it
// passes the slot on and counts as cancelled instead.)
func (p *Partition[K]) StatsFor(key K) (Stats, bool) {
	if p == nil || p.badKey(key) != nil {
		return Stats{}, false
	}
	p.mu.Lock()
	ks, ok := p.keys[key]
	if !ok {
		p.mu.Unlock()
		return Stats{}, false
	}
	s := Stats{InFlight: ks.inFlight, Waiting: ks.waiting}
	ks.load(&s)
	p.mu.Unlock()
	return s, true
}

// Keys returns the number of keys tracked.
func (p *Partition[K]) Keys() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys)
}

// emitAdmitted tells the hook that the caller now holds a slot of key
// (counted already, under the lock). If the hook panics (or exits its
// goroutine), the slot is released on the way out: the caller never learns
// that it holds it, so nobody else would.
func (p *Partition[K]) emitAdmitted(key K, waited time.Duration) {
	if p.hook != nil {
		p.tellAdmitted(key, waited)
	}
}

// tellAdmitted is emitAdmitted's slow path, apart so that the fast path
// inlines.
func (p *Partition[K]) tellAdmitted(key K, waited time.Duration) {
	told := false
	defer func() {
		if !told {
			p.Release(key)
		}
	}()
	p.hook(key, Event{Kind: Admitted, Waited: waited})
	told = true
}

// emitQueued tells the hook that w joined key's queue. If the hook panics,
// w gives up its place on the way out (counted as a cancellation), so that
// no waiter nobody waits for is granted a slot.
func (p *Partition[K]) emitQueued(key K, ks *keyState[K], w *waiter) {
	if p.hook == nil {
		return
	}
	told := false
	defer func() {
		if !told {
			p.abandon(ks, w)
		}
	}()
	p.hook(key, Event{Kind: Queued})
	told = true
}

// giveUpLocked settles w, a waiter of key state ks giving up with
// outcome (its context ended or MaxWait passed), and returns the outcome
// that stands: a waiter still queued leaves the queue; one granted
// meanwhile passes the slot on (waitCtxDone) or keeps it (waitTimedOut);
// a refusal by Pause stands. p.mu must be held.
func (p *Partition[K]) giveUpLocked(ks *keyState[K], w *waiter, outcome waitOutcome) waitOutcome {
	outcome, left := w.settleLocked(outcome)
	switch {
	case left:
		p.waiters.remove(w)
		ks.waiting--
		p.touchLocked(ks)
	case outcome == waitCtxDone:
		// The slot arrived as the context ended: pass it on.
		p.releaseLocked(ks)
		p.revokeLocked(&ks.keyCore)
	}
	return outcome
}

// abandon settles w for a caller that will never wait for it, as if its
// context had ended: it leaves the queue, or passes on the slot it was
// granted meanwhile; a refusal by Pause stands (and is counted already).
func (p *Partition[K]) abandon(ks *keyState[K], w *waiter) {
	p.mu.Lock()
	if p.giveUpLocked(ks, w, waitCtxDone) != waitRefused {
		p.refusedLocked(&ks.keyCore, context.Canceled)
	}
	p.mu.Unlock()
}

// refusedLocked counts a refusal for reason, for the partition and for key
// state ks if there is one. The caller holds mu: a refusal is counted when
// it is decided, so that a snapshot (Stats, StatsFor) never shows a call
// that left the queue without its outcome, and a key's count never lands
// on a state already forgotten (an idle key may be forgotten as soon as
// the lock is released).
func (p *Partition[K]) refusedLocked(ks *keyCore, reason error) {
	p.refused(reason)
	if ks != nil {
		ks.refused(reason)
	}
}

// report tells the hook about a refusal counted by refusedLocked, and
// returns it.
func (p *Partition[K]) report(key K, r *Refusal) error {
	p.emit(key, Event{Kind: Refused, Reason: r.Reason, Waited: r.Waited})
	return r
}

func (p *Partition[K]) emit(key K, e Event) {
	if p.hook != nil {
		p.hook(key, e)
	}
}
