package lease

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// Lease is one term of a holder's exclusive right to a resource. Every grant
// of a resource starts a new term with a new Epoch, strictly greater than
// every earlier epoch of that resource; renewals extend the term and keep the
// epoch. The holder passes the epoch with every write it makes to the
// resource, where a fence.Guard or a fence.Store refuses it once a newer
// epoch has been seen: a holder whose lease lapsed while it was paused can
// no longer write.
//
// A Lease is a plain value; the Store that granted it is the authority.
type Lease struct {
	// Resource is what the lease is on, for example "droplet/i-0abc".
	Resource string
	// Holder is who holds it, for example "dwfm-use1-az1-07".
	Holder string
	// Epoch is the term's fencing token.
	Epoch fence.Token
	// TTL is the term's length, from a grant or a renewal.
	TTL time.Duration
	// Renewed is when the current term (its grant or its latest renewal)
	// began, on the holder's clock: for a remote Store the moment the
	// request was sent, which is no later than the moment the Store
	// started the term.
	Renewed time.Time
	// Expires is Renewed+TTL: the earliest moment, on the holder's clock,
	// at which the Store may grant the resource to another holder if the
	// lease is not renewed. A holder must stop acting on the lease before
	// Expires minus its clock-drift margin (see ValidAt and Keeper).
	Expires time.Time
	// ID is the Store's handle for the term, such as an etcd lease ID;
	// zero for Memory.
	ID int64
}

// ValidAt reports whether a holder whose clock reads now may still act on
// the lease, allowing drift for the difference between its clock and the
// Store's: now is before Expires−drift. A negative drift counts as zero:
// a lease is never valid at or after its Expires.
func (l Lease) ValidAt(now time.Time, drift time.Duration) bool {
	return now.Before(l.Expires.Add(-max(drift, 0)))
}

// Store is a lease table: it grants, renews and releases leases on
// resources, at most one unexpired lease per resource at any instant, each
// grant with an epoch strictly greater than every earlier epoch of the
// resource. Memory implements it in memory; the package
// github.com/stormguard/stormguard/contrib/etcd implements it on etcd.
//
// A table may forget a resource whose lease has ended (expired or
// released), so that a table whose resource names churn — droplets,
// volumes, sessions — does not fill up for good; but a resource granted
// again after being forgotten must still get an epoch greater than every
// epoch it had. Drawing every epoch from one table-wide counter that never
// goes back (Memory's counter, etcd's revision) keeps both promises.
//
// Implementations must validate their input with ValidateGrant and
// ValidateLease before any I/O, and refuse a nil context with an error
// matching ErrInvalidArgument rather than panic; must refuse a grant while
// another lease on the resource is unexpired with a *HeldError; must
// refuse to renew or release a lease that expired, was released or
// superseded with a *LostError; and must return leases whose Expires is no
// later, on the caller's clock, than the moment the Store may grant the
// resource to another holder (measure from before the request is sent). An error that
// is none of these (a timeout, a lost connection) leaves the outcome
// unknown: a grant may have taken effect, and the resource then stays
// unavailable until that term expires.
type Store interface {
	// Grant gives resource to holder for ttl, with a new epoch, if no
	// other lease on it is unexpired. A holder that asks again while it
	// holds the resource is refused too: it should Renew.
	Grant(ctx context.Context, resource, holder string, ttl time.Duration) (Lease, error)
	// Renew extends l's term by its TTL from now and keeps its epoch, if l
	// is still the resource's unexpired lease.
	Renew(ctx context.Context, l Lease) (Lease, error)
	// Release ends l's term at once, if it is still the resource's
	// unexpired lease, so that another holder need not wait for it to
	// expire. The epoch is not reused.
	Release(ctx context.Context, l Lease) error
	// Get returns the resource's unexpired lease, if any.
	Get(ctx context.Context, resource string) (Lease, bool, error)
}

// Op names what an Event is about.
type Op uint8

// The operations.
const (
	// OpGrant is a grant.
	OpGrant Op = iota + 1
	// OpRenew is a renewal.
	OpRenew
	// OpRelease is a release.
	OpRelease
	// OpExpire is a lease found expired by Memory.ExpireAt.
	OpExpire
	// OpLost is a Keeper giving its lease up as lost.
	OpLost
)

// String returns the operation's name, e.g. "grant".
func (o Op) String() string {
	switch o {
	case OpGrant:
		return "grant"
	case OpRenew:
		return "renew"
	case OpRelease:
		return "release"
	case OpExpire:
		return "expire"
	case OpLost:
		return "lost"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Event describes one grant, renewal, release, expiry or loss, taken or
// refused, for the OnEvent hooks of Memory and Keeper.
type Event struct {
	// Op is the operation.
	Op Op
	// Resource is the lease's resource.
	Resource string
	// Holder is the lease's holder; for a refused grant, the holder that
	// asked.
	Holder string
	// Epoch is the lease's epoch; for a refused grant, the current
	// holder's.
	Epoch fence.Token
	// Refused is true if the operation was refused (held, lost).
	Refused bool
}

// Counters counts the events it observes: pass its Observe method as an
// OnEvent hook and read the counts with Stats. The zero value is ready to
// use and safe for concurrent use; Observe costs one atomic add. A nil
// *Counters counts nothing: its Observe does nothing and its Stats are
// zero.
type Counters struct {
	n [OpLost + 1][2]atomic.Uint64
}

// Stats is a snapshot of Counters: the number of events of each kind
// observed so far.
type Stats struct {
	// Granted counts grants taken (OpGrant, not refused).
	Granted uint64
	// Renewed counts renewals taken (OpRenew, not refused).
	Renewed uint64
	// Released counts releases taken (OpRelease, not refused).
	Released uint64
	// Expired counts leases Memory.ExpireAt found expired (OpExpire).
	Expired uint64
	// Lost counts leases a Keeper gave up as lost (OpLost).
	Lost uint64
	// Held counts grants refused because another holder held the
	// resource (OpGrant, refused).
	Held uint64
	// Stale counts renewals and releases refused (OpRenew and OpRelease,
	// refused): from a Memory, those of leases that were lost (expired,
	// released or superseded); from a Keeper, every failed renewal
	// attempt, whatever the cause.
	Stale uint64
}

// Observe counts e.
func (c *Counters) Observe(e Event) {
	if c != nil && e.Op >= OpGrant && e.Op <= OpLost {
		r := 0
		if e.Refused {
			r = 1
		}
		c.n[e.Op][r].Add(1)
	}
}

// Stats returns the counts so far.
func (c *Counters) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	return Stats{
		Granted:  c.n[OpGrant][0].Load(),
		Renewed:  c.n[OpRenew][0].Load(),
		Released: c.n[OpRelease][0].Load(),
		Expired:  c.n[OpExpire][0].Load(),
		Lost:     c.n[OpLost][0].Load(),
		Held:     c.n[OpGrant][1].Load(),
		Stale:    c.n[OpRenew][1].Load() + c.n[OpRelease][1].Load(),
	}
}
