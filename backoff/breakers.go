package backoff

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBreakerKeys is the bound on keys of a Breakers whose MaxKeys is
// zero.
const DefaultMaxBreakerKeys = 1024

// ErrTooManyBreakers is matched by the error a Breakers returns for a new
// key when it holds MaxKeys breakers and none of them may be forgotten,
// because every one is open or half-open.
var ErrTooManyBreakers = errors.New("too many circuit breakers")

// BreakersConfig configures a Breakers. The zero value is usable: at most
// 1024 keys, each with a breaker configured as BreakerConfig{}.
type BreakersConfig[K comparable] struct {
	// Breaker configures the breaker of every key. Its OnStateChange, if
	// set, is called as for a single Breaker (without the key).
	Breaker BreakerConfig
	// MaxKeys bounds how many keys have a breaker at once. Zero means
	// DefaultMaxBreakerKeys (1024); it must be in [1, 1<<24].
	MaxKeys int
	// OnStateChange, if not nil, is called with the key after every
	// transition of a key's breaker, as BreakerConfig.OnStateChange is.
	OnStateChange func(key K, ev BreakerEvent)
}

// Breakers holds one Breaker per key — per storage node, per peer, per
// Availability Zone — so that a caller stops contacting the peers that
// cannot help while it keeps using the others. In April 2011 the EBS nodes
// that had lost their mirrors kept asking peers that had no space left; a
// breaker per peer is the library form of the fix the operators applied by
// hand.
//
// The number of keys is bounded by MaxKeys. A new key at the bound takes
// the place of a closed breaker that has not been used since the last sweep
// (the CLOCK rule: each breaker gets a second chance); what a forgotten
// closed breaker knew was only that its peer worked, or not yet badly
// enough to open; the results of calls it admitted are ignored from then on
// (get a key's breaker from Get for each call or Retry, not once for good:
// a caller holding a forgotten breaker uses one the set no longer knows).
// An open or half-open breaker is never forgotten by the bound: when every breaker is open or half-open, a new key is refused with
// an error matching ErrTooManyBreakers, and only Remove forgets a key
// explicitly (for a peer that has left the fleet).
//
// The zero Breakers is usable, with the defaults of BreakersConfig{}; a nil
// *Breakers has no breakers and admits every call, as a nil *Breaker does.
// A Breakers is safe for concurrent use. Finding a key's breaker takes a
// read lock; adding a key takes the write lock.
type Breakers[K comparable] struct {
	cfg     BreakerConfig // validated, with the per-key hook wrapped in
	maxKeys int
	hook    func(K, BreakerEvent)
	// checked: the keys cannot break a map (see keysMayBreakMap), so
	// they need no check. False in a zero Breakers, which checks all.
	checked bool

	mu    sync.RWMutex
	m     map[K]*keyedBreaker[K]
	order []*keyedBreaker[K] // the CLOCK ring
	hand  int
}

type keyedBreaker[K comparable] struct {
	key  K
	b    *Breaker
	used atomic.Bool
}

// NewBreakers returns an empty Breakers configured by cfg, or an error that
// matches ErrInvalidBreaker and names every invalid field.
func NewBreakers[K comparable](cfg BreakersConfig[K]) (*Breakers[K], error) {
	c, err := cfg.Breaker.withDefaults()
	maxKeys := cfg.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxBreakerKeys
	}
	if maxKeys < 1 || maxKeys > 1<<24 {
		err = errors.Join(err, fmt.Errorf("%w: MaxKeys %d is outside [1, %d]", ErrInvalidBreaker, cfg.MaxKeys, 1<<24))
	}
	if err != nil {
		return nil, err
	}
	return &Breakers[K]{
		cfg: c, maxKeys: maxKeys, hook: cfg.OnStateChange, m: make(map[K]*keyedBreaker[K]),
		checked: !keysMayBreakMap(reflect.TypeFor[K]()),
	}, nil
}

// keysMayBreakMap reports whether a key of type t may be one no map can
// find again: an interface may hold a slice, map or func (hashing it
// panics), and a float, or an array or struct holding one, may be a NaN
// (never equal to itself, so every lookup misses).
func keysMayBreakMap(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface, reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return keysMayBreakMap(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if keysMayBreakMap(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// badKey returns an error matching ErrInvalidArgument if key could not be
// found again in a map: it is not comparable or not equal to itself.
func (bs *Breakers[K]) badKey(key K) error {
	if bs.checked {
		return nil
	}
	return checkBreakerKey(key)
}

func checkBreakerKey[K comparable](key K) (err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("backoff: %w: breaker key %v of type %T is not comparable", ErrInvalidArgument, key, key)
		}
	}()
	if key != key {
		return fmt.Errorf("backoff: %w: breaker key %v is not equal to itself (NaN), so it could never be found again", ErrInvalidArgument, key)
	}
	return nil
}

// Get returns key's breaker, making it (closed) if key has none. At the
// bound it forgets a closed breaker that has not been used lately to make
// room, or returns an error matching ErrTooManyBreakers if every breaker
// is open or half-open. A key no map could find again (a NaN, or a slice,
// map or func in an interface key) is an error matching
// ErrInvalidArgument, never a panic; Lookup and Remove report false for
// it.
func (bs *Breakers[K]) Get(key K) (*Breaker, error) {
	if bs == nil {
		return nil, nil
	}
	if err := bs.badKey(key); err != nil {
		return nil, err
	}
	bs.mu.RLock()
	e := bs.m[key]
	bs.mu.RUnlock()
	if e != nil {
		if !e.used.Load() {
			e.used.Store(true)
		}
		return e.b, nil
	}
	return bs.add(key)
}

// Lookup returns key's breaker if key has one, without making one.
func (bs *Breakers[K]) Lookup(key K) (*Breaker, bool) {
	if bs == nil || bs.badKey(key) != nil {
		return nil, false
	}
	bs.mu.RLock()
	e := bs.m[key]
	bs.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	return e.b, true
}

func (bs *Breakers[K]) add(key K) (*Breaker, error) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if e := bs.m[key]; e != nil {
		e.used.Store(true)
		return e.b, nil
	}
	if bs.maxKeys == 0 { // a zero Breakers: the defaults of BreakersConfig{}
		bs.cfg, _ = BreakerConfig{}.withDefaults()
		bs.maxKeys = DefaultMaxBreakerKeys
		bs.m = make(map[K]*keyedBreaker[K])
	}
	c := bs.cfg
	if bs.hook != nil {
		own, hook := c.OnStateChange, bs.hook
		c.OnStateChange = func(ev BreakerEvent) {
			if own != nil {
				own(ev)
			}
			hook(key, ev)
		}
	}
	e := &keyedBreaker[K]{key: key, b: newBreaker(c)}
	e.b.key = key
	e.used.Store(true)
	if len(bs.order) < bs.maxKeys {
		bs.order = append(bs.order, e)
		bs.m[key] = e
		return e.b, nil
	}
	// CLOCK: sweep at most twice round, clearing the used marks on the
	// first pass, for a closed breaker that was not used since.
	for range 2 * len(bs.order) {
		old := bs.order[bs.hand]
		if old.b.forget(&old.used) {
			delete(bs.m, old.key)
			bs.order[bs.hand] = e
			bs.m[key] = e
			bs.hand = (bs.hand + 1) % len(bs.order)
			return e.b, nil
		}
		bs.hand = (bs.hand + 1) % len(bs.order)
	}
	open := 0
	for _, o := range bs.order {
		if o.b.cur.Load().state == BreakerOpen {
			open++
		}
	}
	return nil, fmt.Errorf("backoff: %w: refusing key %v: %d breakers (MaxKeys %d), %d open and %d half-open, none may be forgotten",
		ErrTooManyBreakers, key, len(bs.order), bs.maxKeys, open, len(bs.order)-open)
}

// forget detaches b from a Breakers if it is closed and was not used since
// the last sweep (clearing used otherwise). It checks and detaches under b's
// lock, so b cannot open at the same moment, and starts a new generation, so
// that the results of calls b admitted before cannot open it afterwards.
func (b *Breaker) forget(used *atomic.Bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.cur.Load()
	if p.state != BreakerClosed || used.Swap(false) {
		return false
	}
	b.cur.Store(b.newClosed(p.gen+1, time.Time{}, false))
	return true
}

// detach starts a new closed generation without an event, so that the
// results of the calls b admitted so far are ignored.
func (b *Breaker) detach() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cur.Store(b.newClosed(b.cur.Load().gen+1, time.Time{}, false))
}

// Remove forgets key's breaker, whatever its state, and reports whether key
// had one. Results of calls admitted by the forgotten breaker are ignored.
func (bs *Breakers[K]) Remove(key K) bool {
	if bs == nil || bs.badKey(key) != nil {
		return false
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	e := bs.m[key]
	if e == nil {
		return false
	}
	delete(bs.m, key)
	e.b.detach()
	for i, o := range bs.order {
		if o == e {
			last := len(bs.order) - 1
			bs.order[i] = bs.order[last]
			bs.order[last] = nil
			bs.order = bs.order[:last]
			if bs.hand >= len(bs.order) {
				bs.hand = 0
			}
			break
		}
	}
	return true
}

// Len returns how many keys have a breaker.
func (bs *Breakers[K]) Len() int {
	if bs == nil {
		return 0
	}
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	return len(bs.m)
}

// AllowAt is key's Breaker.AllowAt. It refuses with the error of Get when
// key has no breaker and none can be made.
func (bs *Breakers[K]) AllowAt(now time.Time, key K) (Ticket, error) {
	b, err := bs.Get(key)
	if err != nil {
		return Ticket{}, err
	}
	return b.AllowAt(now)
}

// Allow is key's Breaker.Allow.
func (bs *Breakers[K]) Allow(key K) (Ticket, error) {
	b, err := bs.Get(key)
	if err != nil {
		return Ticket{}, err
	}
	return b.Allow()
}

// RecordAt records t's result in the breaker that admitted it.
func (bs *Breakers[K]) RecordAt(now time.Time, t Ticket, err error) {
	if t.b != nil {
		t.b.RecordAt(now, t, err)
	}
}

// Record records t's result in the breaker that admitted it.
func (bs *Breakers[K]) Record(t Ticket, err error) {
	if t.b != nil {
		t.b.Record(t, err)
	}
}

// Release releases t in the breaker that admitted it.
func (bs *Breakers[K]) Release(t Ticket) {
	if t.b != nil {
		t.b.Release(t)
	}
}

// Call is key's Breaker.Call.
func (bs *Breakers[K]) Call(ctx context.Context, key K, op func(context.Context) error) error {
	b, err := bs.Get(key)
	if err != nil {
		return err
	}
	return b.Call(ctx, op)
}
