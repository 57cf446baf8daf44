package lease

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// DefaultMaxResources is the number of resources a Memory table tracks when
// MemoryConfig.MaxResources is zero.
const DefaultMaxResources = 1 << 20

// MemoryConfig configures a Memory table. The zero value is usable: at most
// DefaultMaxResources resources, no hook.
type MemoryConfig struct {
	// MaxResources bounds the resources the table tracks, so that a runaway
	// caller fails with ErrFull instead of exhausting memory. A resource
	// stays tracked after its lease ends until the room is needed: a grant
	// of a new resource into a full table first forgets every resource
	// whose lease has ended (expired or released), and fails with ErrFull
	// only if MaxResources resources still have unexpired leases. A
	// forgotten resource granted again still gets an epoch above every
	// epoch it had, since epochs are drawn from one table-wide counter.
	// Zero means DefaultMaxResources; negative is invalid.
	MaxResources int
	// OnEvent, if not nil, is called after every grant, renewal, release
	// and expiry, taken or refused, on the caller's goroutine and outside
	// the table's lock. It must not block; Counters.Observe is a
	// ready-made hook.
	OnEvent func(Event)
}

// Memory is the in-memory lease table, the default Store. Its pure core is
// GrantAt, RenewAt, ReleaseAt, HolderAt and ExpireAt, which take the time as
// an argument, so a simulation drives the table with its own clock; Grant,
// Renew, Release and Get are the Store methods, which read the real clock.
//
// Every call checks and writes a resource's record under one mutex, so "no
// other unexpired lease" is decided atomically with the grant, and a
// renewal is judged by the record as it is when the renewal lands. Time
// never goes backwards inside the table: a call whose now is earlier than
// the latest time a write (GrantAt, RenewAt, ReleaseAt, ExpireAt) has
// passed is judged at that latest time, so a late caller with an old
// timestamp cannot revive an expired lease or get a grant refused that a
// later call was given. Reads (HolderAt, Get, Epoch) never move that clock:
// a query about a future time changes nothing for calls at the real time.
//
// Guarantees, whatever the sequence of calls:
//
//   - at every instant at most one lease per resource is unexpired;
//   - every grant of a resource carries an epoch strictly greater than
//     every earlier epoch of that resource, even if the table has forgotten
//     the resource in between: epochs are drawn from one table-wide counter
//     that counts up from 1, as etcd's revision does, so they are unique
//     across resources and increase with every grant of any resource;
//   - a renewal keeps the epoch and never revives a lease that expired,
//     was released or was superseded.
//
// The zero Memory is empty and ready to use with MemoryConfig's defaults.
// A nil *Memory is not: its methods refuse with an error matching
// ErrInvalidArgument (its queries report nothing), and a KeeperConfig
// naming it as its Store is invalid. Each call costs one map lookup under
// the lock; a grant of a new resource allocates its record, and when the
// table is full scans it to forget the records of ended leases, only if
// one may have ended since the last scan. A Memory must not be
// copied after first use.
type Memory struct {
	mu      sync.Mutex
	entries map[string]*record
	latest  time.Time
	epoch   fence.Token // the last epoch granted, on any resource
	// sweepAt is the earliest instant at which a record might be
	// forgotten: the earliest expiry seen since the last sweep, or the
	// instant of a release since; zero if none. A full table sweeps only from then on, so a table
	// full of live leases refuses new resources without scanning.
	sweepAt time.Time
	max     int
	onEvent func(Event)
}

type record struct {
	holder   string // "" when no lease is running
	released bool   // the last lease was released, not expired
	epoch    fence.Token
	ttl      time.Duration
	renewed  time.Time
	expires  time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory table configured by cfg, or an error
// matching ErrInvalidConfig that names every invalid field.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.MaxResources < 0 {
		return nil, fmt.Errorf("%w: MemoryConfig.MaxResources %d is negative", ErrInvalidConfig, cfg.MaxResources)
	}
	return &Memory{max: cfg.MaxResources, onEvent: cfg.OnEvent}, nil
}

// clock returns the time the table judges a write made at now by, and
// records it. Reads judge by laterOf(now, m.latest) and record nothing.
// It must be called with m.mu held.
func (m *Memory) clock(now time.Time) time.Time {
	if now.Before(m.latest) {
		return m.latest
	}
	m.latest = now
	return now
}

// GrantAt grants resource to holder for ttl at time now, with the next
// epoch of the resource, if no lease on it is unexpired at now. A refusal
// is a *HeldError naming the current holder; bad input an error matching
// ErrInvalidArgument; a new resource beyond MaxResources an error matching
// ErrFull.
func (m *Memory) GrantAt(now time.Time, resource, holder string, ttl time.Duration) (Lease, error) {
	if m == nil {
		return Lease{}, nilMemory("GrantAt")
	}
	if err := ValidateGrant(resource, holder, ttl); err != nil {
		return Lease{}, err
	}
	m.mu.Lock()
	now = m.clock(now)
	rec := m.entries[resource]
	if rec != nil && rec.holder != "" && now.Before(rec.expires) {
		err := &HeldError{Resource: resource, Holder: rec.holder, Want: holder, Epoch: rec.epoch, Remaining: rec.expires.Sub(now)}
		m.mu.Unlock()
		m.observe(OpGrant, resource, holder, err.Epoch, true)
		return Lease{}, err
	}
	if m.epoch == fence.MaxToken {
		m.mu.Unlock()
		return Lease{}, fmt.Errorf("%w: cannot grant %q: the table has used the last epoch %d", fence.ErrExhausted, resource, uint64(fence.MaxToken))
	}
	var expired []Event
	if rec == nil {
		limit := m.max
		if limit == 0 {
			limit = DefaultMaxResources
		}
		if len(m.entries) >= limit {
			expired = m.forget(now)
		}
		if len(m.entries) >= limit {
			m.mu.Unlock()
			m.report(expired)
			return Lease{}, fmt.Errorf("%w: cannot track resource %q: %d resources with unexpired leases, limit %d", ErrFull, resource, limit, limit)
		}
		if m.entries == nil {
			m.entries = make(map[string]*record)
		}
		rec = &record{}
		m.entries[resource] = rec
	}
	m.epoch++
	rec.released = false
	rec.holder, rec.epoch, rec.ttl, rec.renewed, rec.expires = holder, m.epoch, ttl, now, now.Add(ttl)
	m.expiresAt(rec.expires)
	l := rec.lease(resource)
	m.mu.Unlock()
	m.report(expired)
	m.observe(OpGrant, resource, holder, l.Epoch, false)
	return l, nil
}

// forget deletes the record of every resource whose lease has ended at now
// (expired or released), unless no lease can have ended since the last
// sweep, and returns the expiries it found for the hook. It must be called
// with m.mu held.
func (m *Memory) forget(now time.Time) []Event {
	if now.Before(m.sweepAt) {
		return nil
	}
	var expired []Event
	var next time.Time
	for res, rec := range m.entries {
		if rec.holder != "" && now.Before(rec.expires) {
			if next.IsZero() || rec.expires.Before(next) {
				next = rec.expires
			}
			continue
		}
		if rec.holder != "" && m.onEvent != nil {
			expired = append(expired, Event{Op: OpExpire, Resource: res, Holder: rec.holder, Epoch: rec.epoch})
		}
		delete(m.entries, res)
	}
	m.sweepAt = next
	return expired
}

// expiresAt notes that a lease ends at t, for forget. It must be called
// with m.mu held.
func (m *Memory) expiresAt(t time.Time) {
	if m.sweepAt.IsZero() || t.Before(m.sweepAt) {
		m.sweepAt = t
	}
}

func (m *Memory) report(events []Event) {
	for _, e := range events {
		m.onEvent(e)
	}
}

// RenewAt extends l by its TTL from now, keeping its epoch, if l is the
// resource's unexpired lease at now; otherwise it returns a *LostError
// saying whether l expired, was released, or was superseded.
func (m *Memory) RenewAt(now time.Time, l Lease) (Lease, error) {
	if m == nil {
		return Lease{}, nilMemory("RenewAt")
	}
	if err := ValidateLease(l); err != nil {
		return Lease{}, err
	}
	m.mu.Lock()
	now = m.clock(now)
	rec, err := m.current(now, l)
	if err != nil {
		m.mu.Unlock()
		m.observe(OpRenew, l.Resource, l.Holder, l.Epoch, true)
		return Lease{}, err
	}
	rec.renewed, rec.expires = now, now.Add(rec.ttl)
	out := rec.lease(l.Resource)
	m.mu.Unlock()
	m.observe(OpRenew, l.Resource, l.Holder, l.Epoch, false)
	return out, nil
}

// ReleaseAt ends l at now if it is the resource's unexpired lease;
// otherwise it returns a *LostError. The resource may be granted again at
// once, with a newer epoch.
func (m *Memory) ReleaseAt(now time.Time, l Lease) error {
	if m == nil {
		return nilMemory("ReleaseAt")
	}
	if err := ValidateLease(l); err != nil {
		return err
	}
	m.mu.Lock()
	now = m.clock(now)
	rec, err := m.current(now, l)
	if err != nil {
		m.mu.Unlock()
		m.observe(OpRelease, l.Resource, l.Holder, l.Epoch, true)
		return err
	}
	rec.holder, rec.released, rec.expires = "", true, now
	m.sweepAt = now // its record can be forgotten from now on
	m.mu.Unlock()
	m.observe(OpRelease, l.Resource, l.Holder, l.Epoch, false)
	return nil
}

// HolderAt returns the resource's unexpired lease at now, if any (none
// for a nil *Memory). It is a read: it changes nothing, and does not move
// the table's clock, so a query at a future time ("who will hold it in an
// hour?") answers for that time and leaves the leases live until then for
// every later call. A now earlier than the latest write's time is judged
// at that time, as a write would be.
func (m *Memory) HolderAt(now time.Time, resource string) (Lease, bool) {
	if m == nil {
		return Lease{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now = laterOf(now, m.latest)
	rec := m.entries[resource]
	if rec == nil || rec.holder == "" || !now.Before(rec.expires) {
		return Lease{}, false
	}
	return rec.lease(resource), true
}

// Epoch returns the newest epoch granted on resource, or zero if none was
// or the table has forgotten the resource (see MemoryConfig.MaxResources);
// every later grant of the resource carries a greater epoch either way.
func (m *Memory) Epoch(resource string) fence.Token {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec := m.entries[resource]; rec != nil {
		return rec.epoch
	}
	return 0
}

// ExpireAt ends every lease that has expired at now, reporting each to the
// hook as OpExpire, and returns how many it ended. Calling it is never
// needed for correctness — every call judges expiry itself — but it reports
// expiries promptly. It scans every resource. A nil *Memory ends nothing.
//
// ExpireAt is a write, not a query: like GrantAt, RenewAt and ReleaseAt it
// moves the table's clock to now (if now is later than every time seen),
// and every later call with an earlier time is judged at now. So the
// leases it ends stay ended: ExpireAt(t.Add(time.Hour)) expires, for good,
// every lease that would have expired within the hour, and a renewal at t
// is then refused as expired. Call it with the table's real time; ask
// HolderAt about a future time instead, which changes nothing.
func (m *Memory) ExpireAt(now time.Time) int {
	if m == nil {
		return 0
	}
	var expired []Event
	m.mu.Lock()
	now = m.clock(now)
	for res, rec := range m.entries {
		if rec.holder != "" && !now.Before(rec.expires) {
			if m.onEvent != nil {
				expired = append(expired, Event{Op: OpExpire, Resource: res, Holder: rec.holder, Epoch: rec.epoch})
			}
			rec.holder = ""
		}
	}
	m.mu.Unlock()
	for _, e := range expired {
		m.onEvent(e)
	}
	return len(expired)
}

// current returns the record of l if l is its unexpired lease at now, or
// the *LostError saying why not. It must be called with m.mu held.
func (m *Memory) current(now time.Time, l Lease) (*record, error) {
	rec := m.entries[l.Resource]
	lost := func(reason string) (*record, error) {
		var cur fence.Token
		if rec != nil {
			cur = rec.epoch
		}
		return nil, &LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch, Current: cur, Reason: reason}
	}
	switch {
	case rec == nil:
		return lost("never granted, or ended and forgotten")
	case rec.epoch < l.Epoch:
		return lost("never granted")
	case rec.epoch > l.Epoch:
		return lost("superseded")
	case rec.holder != l.Holder && rec.holder != "":
		return lost("held by " + fmt.Sprintf("%q", rec.holder))
	case rec.holder == "" && rec.released:
		return lost("released")
	case rec.holder == "" || !now.Before(rec.expires):
		return lost("expired")
	}
	return rec, nil
}

func (r *record) lease(resource string) Lease {
	return Lease{Resource: resource, Holder: r.holder, Epoch: r.epoch, TTL: r.ttl, Renewed: r.renewed, Expires: r.expires}
}

// nilMemory refuses call on a nil *Memory.
func nilMemory(call string) error {
	return fmt.Errorf("%w: Memory.%s on a nil *lease.Memory", ErrInvalidArgument, call)
}

func (m *Memory) observe(op Op, resource, holder string, epoch fence.Token, refused bool) {
	if m.onEvent != nil {
		m.onEvent(Event{Op: op, Resource: resource, Holder: holder, Epoch: epoch, Refused: refused})
	}
}

// Grant is GrantAt with the real clock; it fails only as GrantAt does, for
// a done context (with the context's error) or for a nil context (an error
// matching ErrInvalidArgument). Renew, Release and Get fail the same way
// for a done or nil context.
func (m *Memory) Grant(ctx context.Context, resource, holder string, ttl time.Duration) (Lease, error) {
	if m == nil {
		return Lease{}, nilMemory("Grant")
	}
	if err := contextErr(ctx); err != nil {
		return Lease{}, err
	}
	return m.GrantAt(time.Now(), resource, holder, ttl)
}

// Renew is RenewAt with the real clock.
func (m *Memory) Renew(ctx context.Context, l Lease) (Lease, error) {
	if m == nil {
		return Lease{}, nilMemory("Renew")
	}
	if err := contextErr(ctx); err != nil {
		return Lease{}, err
	}
	return m.RenewAt(time.Now(), l)
}

// Release is ReleaseAt with the real clock.
func (m *Memory) Release(ctx context.Context, l Lease) error {
	if m == nil {
		return nilMemory("Release")
	}
	if err := contextErr(ctx); err != nil {
		return err
	}
	return m.ReleaseAt(time.Now(), l)
}

// Get is HolderAt with the real clock, after validating resource.
func (m *Memory) Get(ctx context.Context, resource string) (Lease, bool, error) {
	if m == nil {
		return Lease{}, false, nilMemory("Get")
	}
	if err := validateResource(resource); err != nil {
		return Lease{}, false, err
	}
	if err := contextErr(ctx); err != nil {
		return Lease{}, false, err
	}
	l, ok := m.HolderAt(time.Now(), resource)
	return l, ok, nil
}
