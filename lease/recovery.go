package lease

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/shed"
)

// Defaults applied to the zero fields of a RecoveryConfig.
const (
	// DefaultCostWeight is the weight of the newest measurement in the
	// moving average (EWMA) of an attempt's cost.
	DefaultCostWeight = 0.2
	// DefaultRecoveryMaxKeys bounds the keys a Recovery tracks when
	// RecoveryConfig.MaxKeys is zero.
	DefaultRecoveryMaxKeys = 1 << 24
)

// ErrTimeout is the cause recorded when an attempt finishes after its
// deadline: its work is wasted, as the droplet manager's was in 2025.
var ErrTimeout = errors.New("lease: attempt finished after its deadline")

// AttemptKind says whether an attempt establishes a lease or renews one.
type AttemptKind uint8

const (
	// Establish is a new grant: the key has no lease.
	Establish AttemptKind = iota + 1
	// Renew renews an established lease before it lapses.
	Renew
)

// String returns "establish" or "renew".
func (k AttemptKind) String() string {
	switch k {
	case Establish:
		return "establish"
	case Renew:
		return "renew"
	}
	return fmt.Sprintf("AttemptKind(%d)", uint8(k))
}

// Attempt is one establishment or renewal that the caller must run on a
// worker, then report with Recovery.Finish.
type Attempt[K comparable] struct {
	// Key is the lease to establish or renew (a droplet, say).
	Key K
	// Kind says which.
	Kind AttemptKind
	// Started is when the Recovery handed the attempt out. A lease's term
	// is counted from here, the latest instant the request can have been
	// sent at.
	Started time.Time
	// Deadline is when the attempt must have finished: for Establish its
	// admission plus AttemptTimeout, for Renew the lease's loss deadline
	// (expiry minus the drift margin). Give the work a context with this
	// deadline: an attempt that finishes later counts as failed
	// (ErrTimeout). Finish judges by the deadline handed out: changing
	// this field changes nothing.
	Deadline time.Time
	// owner and id tell this attempt from every other handed out, by
	// this Recovery or another, so that Finish can ignore a duplicate,
	// stale or misdirected report; span is Deadline−Started as handed
	// out, which Finish judges by, whatever the caller did to Deadline.
	owner *Recovery[K]
	id    uint64
	span  time.Duration
}

// RecoveryConfig configures a Recovery. Workers, TTL and AttemptTimeout are
// required; the zero value of every other field means a documented default.
type RecoveryConfig struct {
	// Workers bounds the attempts in flight. It must be in [1, 2^24].
	Workers int
	// MaxQueue bounds the attempts admitted and waiting for a worker: the
	// intake throttle by queue size. Keys beyond it wait in the backlog,
	// where they cost nothing and time nothing out. Zero means
	// shed.DefaultMaxQueue (1024).
	MaxQueue int
	// TTL is the term of every lease. Required, in (0, MaxTTL].
	TTL time.Duration
	// RenewFraction schedules renewals as for a Keeper: a lease whose term
	// started at s is renewed from s+RenewFraction·TTL. Zero means
	// DefaultRenewFraction (0.5). It must be in (0, 1), the renewal must
	// fall before the loss deadline TTL−DriftMargin, and RenewFraction·TTL
	// must be at least MinRenewInterval (1ms), so that no configuration
	// renews in a busy loop.
	RenewFraction float64
	// DriftMargin is the Keeper's drift margin: a lease whose term started
	// at s counts as lapsed at s+TTL−DriftMargin. Zero means
	// TTL/DefaultDriftDivisor; negative, or TTL or more, is invalid.
	DriftMargin time.Duration
	// AttemptTimeout is how long an establishment may take from the moment
	// it is admitted to the queue until it finishes: the droplet manager's
	// timeout. Required, positive, at most the TTL.
	AttemptTimeout time.Duration
	// InitialCost is the cost assumed for an attempt of either kind until
	// one has been measured; a renewal assumes the establishments' moving
	// average until a renewal has been measured. Zero means
	// AttemptTimeout/10.
	InitialCost time.Duration
	// CostWeight is the weight of each new measurement in the moving
	// average of the cost of each kind of attempt, in (0, 1]. Zero means
	// DefaultCostWeight (0.2).
	CostWeight float64
	// Retry spaces out the establishment attempts of a key after each
	// failure, and the renewal attempts of a lease after each failure,
	// with its jitter drawn afresh for every key and failure, so that keys
	// that fail together are retried at spread-out times. Renewals are
	// bounded by the loss deadline, not by MaxAttempts or MaxElapsed: the
	// delay is shortened where needed so that one last renewal can still
	// finish before it. Establishments are bounded by MaxAttempts and
	// MaxElapsed: a key is failed, and not tried again unless Added again,
	// after MaxAttempts failed attempts in a row, or when its next retry
	// would start more than MaxElapsed after the first attempt of the run
	// of failures started; establishments that fail while the key's own
	// lapsed lease may still run in the table do not count, but do grow
	// the delay, up to the time left until that lease has surely ended
	// (its expiry plus the drift margin): the key is due then at the
	// latest, and the delays after later failures grow from there, not
	// from the count of those uncounted failures. (MaxElapsed is judged
	// when the retry is scheduled: a retry kept waiting in the queue may
	// start later.) Every delay is at
	// least MinRenewInterval, whatever the Policy draws (a Base of 1ns, or
	// full jitter's zero: a shorter draw is lengthened by
	// MinRenewInterval, which keeps the jitter's spread), so that a key whose attempts fail at once is
	// not retried in a loop; a renewal's last retry before the loss
	// deadline, and an establishment's retry at the end of the key's own
	// lease, may come sooner. The zero Policy is backoff's default
	// (about 100ms doubling to 10s, full jitter, 5 attempts).
	Retry backoff.Policy
	// Rand supplies the uniform draws for Retry's jitter, one per failed
	// establishment or renewal, so that a seeded source makes the Recovery
	// deterministic, as simulations need. The Recovery's calls are not
	// concurrent; Rand must not be used elsewhere at the same time. Nil
	// means the runtime's fast, randomly seeded source (math/rand/v2's
	// Float64), which differs between processes, so that Recoveries on
	// different hosts do not retry in step.
	Rand *rand.Rand
	// MaxKeys bounds the keys tracked, at most 2^30. Zero means
	// DefaultRecoveryMaxKeys.
	MaxKeys int
}

// Validate reports every invalid field of c in one error matching
// ErrInvalidConfig, or nil.
func (c RecoveryConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Workers < 1 || c.Workers > 1<<24 {
		bad("RecoveryConfig.Workers %d is outside [1, 2^24]", c.Workers)
	}
	if c.MaxQueue < 0 || c.MaxQueue > 1<<24 {
		bad("RecoveryConfig.MaxQueue %d is outside [0, 2^24]", c.MaxQueue)
	}
	if err := validateTTL(c.TTL); err != nil {
		bad("RecoveryConfig.TTL %v is not in (0, %v]", c.TTL, MaxTTL)
	}
	errs = append(errs, scheduleErrors("RecoveryConfig", c.RenewFraction, c.DriftMargin, c.TTL)...)
	switch {
	case c.AttemptTimeout <= 0:
		bad("RecoveryConfig.AttemptTimeout %v is not positive", c.AttemptTimeout)
	case c.TTL > 0 && c.AttemptTimeout > c.TTL:
		bad("RecoveryConfig.AttemptTimeout %v is above the TTL %v", c.AttemptTimeout, c.TTL)
	}
	if c.InitialCost < 0 {
		bad("RecoveryConfig.InitialCost %v is negative", c.InitialCost)
	}
	if w := c.CostWeight; math.IsNaN(w) || w < 0 || w > 1 {
		bad("RecoveryConfig.CostWeight %v is outside (0, 1]", w)
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: RecoveryConfig.Retry: %w", ErrInvalidConfig, err))
	}
	if c.MaxKeys < 0 || c.MaxKeys > 1<<30 {
		bad("RecoveryConfig.MaxKeys %d is outside [0, 2^30]", c.MaxKeys)
	}
	return errors.Join(errs...)
}

// Progress is what an operator watches during a recovery.
type Progress struct {
	// Established counts keys whose lease is held (and not lapsed).
	Established int
	// Pending counts keys still to be established: in the backlog, queued
	// or being attempted.
	Pending int
	// Failed counts keys given up after Retry.MaxAttempts failed
	// establishments, or when a retry would have started past
	// Retry.MaxElapsed. Establishments that fail while the key's own
	// lease may still run in the table do not count.
	Failed int
	// InFlight counts attempts running.
	InFlight int
	// Queued counts attempts admitted to the queue and waiting for a
	// worker.
	Queued int
	// Lapsed counts leases lost because no renewal finished in time.
	Lapsed int64
	// Attempts counts attempts handed out.
	Attempts int64
	// Wasted counts attempts that failed or finished after their
	// deadline.
	Wasted int64
	// Dropped counts attempts that were admitted to the queue but left it
	// without starting — evicted by a renewal, or unable to finish in
	// time — and went back to the backlog at no cost but a queue slot.
	Dropped int64
	// Rate is establishments per second over the last second or more.
	Rate float64
	// EstablishCost is the moving average of the measured cost of an
	// establishment (InitialCost until one has finished).
	EstablishCost time.Duration
	// RenewCost is the moving average of the measured cost of a renewal
	// (EstablishCost until one has finished).
	RenewCost time.Duration
}

type keyState uint8

const (
	stBacklog keyState = iota
	stQueued
	stRunning
	stHeld      // established, renewal not yet due
	stRenewWait // established, renewal queued or waiting to be queued
	stRenewing
	stFailed
	stRemoved // no longer tracked; in no heap, queue or map
	// stParked: added again while an attempt of the key, removed, is
	// still in flight; it joins the backlog when that attempt is reported.
	stParked
)

type entry[K comparable] struct {
	key   K
	state keyState
	// final is set when the renewal queued is the last that fits before
	// the loss deadline: if it fails, the lease lapses.
	final bool
	// lapsed is set while the key waits out its lapsed lease: expires()
	// is then that lease's end in the table, and failed establishments
	// before it (plus the drift margin) are not counted.
	lapsed bool
	idx    int32 // position in the heap it is in (backlog, renew or waiting), -1 if none
	// attempts counts, while the key's lease is not held, its failed
	// establishments in a row that count against it; while it is held,
	// the failed renewals of its current term. tries counts the failed
	// establishments that did not count, for the backoff. prev is the
	// delay after the latest of them.
	attempts, tries int32
	prev            time.Duration
	// deadline is, while the key's lease is held (stHeld, stRenewWait,
	// stRenewing), the lease's loss deadline; while its establishments
	// fail (attempts > 0), the retry deadline: the start of the first
	// failed attempt plus Retry.MaxElapsed. A key is never in both phases
	// at once, and one field for both keeps entries small.
	deadline time.Time
	due      time.Time // backlog: not before; held: renew at; running: started at
	// own is expires() minus deadline, kept as an offset so that entries
	// stay within 96 bytes.
	own time.Duration
	seq uint64 // arrival order in a heap; while running, the attempt's id
}

// expires returns when a lease of the key granted to this Recovery may
// still run in the table, on the Recovery's clock: its current or last
// term's start plus the TTL, pushed later by attempts whose outcome is
// unknown. An establishment refused as held before then (plus the drift
// margin) is refused by the Recovery's own lease. (The offset saturates
// for a Retry.MaxElapsed of centuries, and the lease then counts as ended.)
func (e *entry[K]) expires() time.Time { return e.deadline.Add(e.own) }

func (e *entry[K]) setExpires(t time.Time) { e.own = t.Sub(e.deadline) }

// setDeadline sets deadline and keeps expires.
func (e *entry[K]) setDeadline(t time.Time) {
	exp := e.expires()
	e.deadline = t
	e.setExpires(exp)
}

// Recovery re-establishes and keeps a large number of leases without
// falling into congestive collapse. It is a pure state machine in the
// manner of go.etcd.io/raft: it reads no clock, owns no goroutine and does
// no I/O. The caller adds keys, asks for attempts to start (Start), runs
// each on one of Workers workers, reports each result (Finish), and calls
// Start again at Wake. A simulation on a virtual clock and a real service
// drive the same code; Run is that loop on the real clock.
//
// It breaks the loop that kept EC2's droplet manager down in 2025, where
// every attempt queued for longer than its own timeout, failed, and was
// queued again:
//
//   - Bounded work. At most Workers attempts run; at most MaxQueue wait in
//     a shed.Scheduler in front of them. The rest of the backlog waits
//     outside, where waiting costs nothing and times nothing out.
//   - Intake throttled by the queue. An establishment is admitted to the
//     queue only if the queue is below MaxQueue and the expected wait —
//     the attempts ahead of it divided among the workers, times the
//     measured cost — plus its own cost is within half its AttemptTimeout;
//     the other half is headroom for renewals that overtake it.
//   - Renewals first. Renewals are shed.Critical and establishments
//     shed.Normal: a renewal is served before every waiting establishment
//     and evicts one from a full queue, so held leases do not lapse while
//     others are being established.
//   - No attempt that cannot finish. Every attempt carries a deadline and
//     the moving average (EWMA) of the measured cost of its kind; none is
//     started unless start+cost is before its deadline. An establishment
//     that could not start in time returns to the backlog without being
//     counted as an attempt; a renewal that could not means its lease has
//     lapsed, and the key returns to the backlog.
//   - Failures back off. A failed establishment or renewal is retried
//     after Retry's delay, jittered for each key with a draw from Rand, so
//     that keys that failed together do not retry together, and a table
//     that is down is not hammered while it recovers; a key is given up
//     after Retry.MaxAttempts failed establishments, or when its next
//     retry would start past Retry.MaxElapsed. Renewals are bounded by
//     the loss deadline instead, with one last attempt fitted before it.
//   - Its own leases are waited out, not counted. A lease that lapses in
//     the Recovery's view (at its loss deadline) still runs in the table
//     until its expiry — a TTL later still if a renewal of unknown outcome
//     landed — and the table refuses every grant of the key until then,
//     even to the same holder. So a lapsed key returns to the backlog due
//     at its lease's expiry, and establishments that fail before the
//     lease can have ended (plus the drift margin) are backed off but not
//     counted against the key; nor is a refusal as held (report the
//     table's *HeldError, errors.Is ErrHeld) while a lease granted to this
//     Recovery may still run: the key is retried when the refusal says
//     that lease ends. An outage of the table that begins after a key is
//     established and lasts less than the TTL therefore never fails it.
//
// Each Attempt carries an identity: Finish ignores a duplicate or stale
// report, and one of an attempt this Recovery did not hand out (made by
// the caller, or by another Recovery).
//
// A Recovery is not safe for concurrent use. Start and Finish cost
// O(log n) per key they move for n keys tracked.
//
// Make a Recovery with NewRecovery. The zero Recovery, and a nil
// *Recovery, track nothing, and say so rather than panic: Add and Run return an error matching
// ErrInvalidConfig, Start and Finish hand out nothing, Wake reports
// nothing to wake for, and Progress is zero.
type Recovery[K comparable] struct {
	cfg     RecoveryConfig
	keys    map[K]*entry[K]
	backlog entryHeap[K]
	renew   entryHeap[K]
	// waiting holds the renewals waiting in the scheduler for a worker,
	// by loss deadline, so that one still waiting at its deadline lapses
	// then, not when a worker next comes free.
	waiting waitHeap[K]
	// queued holds the establishments waiting in the scheduler for a
	// worker, in no order, each entry's idx its position, with their
	// tickets, so that Remove can take one out of the queue.
	queued waitSet[K]
	// gone holds the ids of the attempts in flight for removed keys, by
	// key (a key has one at most): their Finish frees the worker and
	// changes nothing else.
	gone    map[K]uint64
	sched   *shed.Scheduler[*entry[K]]
	dropped []shed.Item[*entry[K]]
	reasons []error
	seq     uint64

	costE, costR float64
	// renewMeasured is set once a renewal's cost has been measured:
	// until then costR follows costE, so that a renewal window shorter
	// than InitialCost does not keep every renewal from starting, and so
	// from ever being measured.
	renewMeasured    bool
	weight           float64
	held, failed     int
	lapsed, attempts int64
	wasted, drops    int64
	total            int64 // establishments so far
	rateAt           time.Time
	rateTotal        int64
	rate             float64
	maxKeys          int
	drift            time.Duration // the effective DriftMargin
	last             time.Time     // the latest time the caller passed
}

// NewRecovery returns an empty Recovery configured by cfg, or an error
// matching ErrInvalidConfig that names every invalid field.
func NewRecovery[K comparable](cfg RecoveryConfig) (*Recovery[K], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = shed.DefaultMaxQueue
	}
	if cfg.InitialCost == 0 {
		cfg.InitialCost = cfg.AttemptTimeout / 10
	}
	if cfg.CostWeight == 0 {
		cfg.CostWeight = DefaultCostWeight
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultRecoveryMaxKeys
	}
	r := &Recovery[K]{cfg: cfg, keys: make(map[K]*entry[K]), weight: cfg.CostWeight, maxKeys: cfg.MaxKeys,
		costE: float64(cfg.InitialCost), costR: float64(cfg.InitialCost),
		drift: KeeperConfig{DriftMargin: cfg.DriftMargin}.drift(cfg.TTL)}
	// Deadlines, not queue timeouts, bound the wait: with MaxWait equal to
	// Target the CoDel control law never engages. (The scheduler bounds
	// every wait by an hour; an item dropped for that is offered again.)
	wait := min(max(cfg.TTL, cfg.AttemptTimeout), time.Hour-time.Nanosecond)
	s, err := shed.NewScheduler(shed.QueueConfig{
		Workers: cfg.Workers, MaxQueue: cfg.MaxQueue,
		MaxWait: wait, Target: wait, Interval: wait + time.Nanosecond, DisableLIFO: true,
	}, func(it shed.Item[*entry[K]], rf shed.Refusal) {
		r.dropped = append(r.dropped, it)
		r.reasons = append(r.reasons, rf.Reason)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	r.sched = s
	return r, nil
}

// Add puts key in the backlog, to be established from now on. A key that
// is already tracked is left as it is, unless it failed: it is then tried
// again from scratch. Beyond MaxKeys, Add returns an error matching
// ErrFull.
func (r *Recovery[K]) Add(now time.Time, key K) error {
	if r == nil || r.sched == nil {
		return errNoRecovery
	}
	if e, ok := r.keys[key]; ok {
		if e.state == stFailed {
			r.failed--
			e.attempts, e.tries, e.prev = 0, 0, 0
			r.toBacklog(e, now)
		}
		return nil
	}
	if len(r.keys) >= r.maxKeys {
		return fmt.Errorf("%w: cannot track key %v: %d keys, limit %d", ErrFull, key, len(r.keys), r.maxKeys)
	}
	e := &entry[K]{key: key, idx: -1}
	r.keys[key] = e
	if _, ok := r.gone[key]; ok {
		// An attempt of the key, removed, is still in flight: the new key
		// waits for it, so that a key never has two attempts at once.
		e.state = stParked
		return nil
	}
	r.toBacklog(e, now)
	return nil
}

// Remove stops tracking key at time now, as if it had never been added,
// and reports whether it was tracked: a decommissioned key (a droplet
// retired) is no longer established, renewed or retried, and no longer
// counts in Progress's Established, Pending or Failed, nor against
// MaxKeys. It leaves the backlog, or the queue if it waited there for a
// worker (making room for another key), at once.
//
// An attempt of key in flight when it is removed still holds its worker
// until it is reported: Progress.InFlight counts it until then, and Finish
// of it releases the worker exactly once, handing the worker the next
// attempt as usual, but changes nothing else — its result, even a
// success, is not recorded, nor counted as wasted, nor measured for the
// moving costs. A second report of it is ignored as any duplicate is.
//
// Added again later, key is a new key: it is established from scratch,
// and nothing of its past is remembered; if an attempt of the removed key
// is still in flight then, the new key waits (Pending) until that attempt
// is reported, so that a key never has two attempts at once. Remove does not release its
// lease in the table (Recovery does no I/O): a lease it held, or one an
// establishment in flight may still be granted, runs there until it
// expires. Release it yourself, or wait a TTL before adding the key
// again: until then its establishments are refused as held, and count
// against the key like any other failure, so that it may be failed after
// Retry.MaxAttempts.
func (r *Recovery[K]) Remove(now time.Time, key K) bool {
	if r == nil || r.sched == nil {
		return false
	}
	e := r.keys[key]
	if e == nil {
		return false
	}
	r.last = laterOf(r.last, now)
	now = r.last // time never goes backwards inside the Recovery
	switch e.state {
	case stBacklog:
		heap.Remove(&r.backlog, int(e.idx))
	case stQueued:
		w := r.queued.remove(int(e.idx))
		r.sched.Remove(now, w.t, errRemoved)
	case stHeld:
		heap.Remove(&r.renew, int(e.idx))
		r.held--
	case stRenewWait:
		if i := int(e.idx); i < len(r.renew) && r.renew[i] == e {
			heap.Remove(&r.renew, i)
		} else {
			w := r.waiting.remove(i)
			r.sched.Remove(now, w.t, errRemoved)
		}
		r.held--
	case stRenewing:
		r.held--
		r.goneAttempt(key, e.seq)
	case stRunning:
		r.goneAttempt(key, e.seq)
	case stFailed:
		r.failed--
	}
	e.state, e.idx = stRemoved, -1
	delete(r.keys, key)
	// A queued item the scheduler dropped on the way (one that timed out
	// at now) is settled here; the removed entry is skipped.
	r.settleDrops(now)
	return true
}

// goneAttempt records that the attempt id in flight belongs to a removed
// key: its Finish only frees its worker.
func (r *Recovery[K]) goneAttempt(key K, id uint64) {
	if r.gone == nil {
		r.gone = make(map[K]uint64)
	}
	r.gone[key] = id
}

// Start applies at time now everything that has become due — renewals to
// queue, backlog to admit, queued attempts that can no longer finish in
// time — and appends to out the attempts to start now, each on a free
// worker. Call it after Add and at Wake. A now earlier than one passed
// before to Start or Finish is taken as that later time, as in Memory.
func (r *Recovery[K]) Start(now time.Time, out []Attempt[K]) []Attempt[K] {
	if r == nil || r.sched == nil {
		return out
	}
	r.last = laterOf(r.last, now)
	now = r.last // time never goes backwards inside the Recovery
	r.sched.Advance(now)
	r.settleDrops(now)
	r.expireWaiting(now)
	out = r.queueRenewals(now, out)
	return r.admit(now, out)
}

// Finish reports at time now that attempt a ended with err (nil: the lease
// was established or renewed), and appends to out the attempts to start
// now: the worker that ran a takes the first of them, if any. An attempt
// that finishes at or after its Deadline counts as failed (ErrTimeout),
// whatever err says.
//
// An err matching ErrRemoveKey says the key is no longer wanted: the key
// is removed, as by Remove, and the attempt's worker freed.
//
// Each attempt is reported once: a report of an attempt this Recovery did
// not hand out, or of one already reported (a duplicate, or a stale report
// of an earlier attempt for the same key), is ignored and changes nothing.
//
// A failed renewal is retried after Retry's delay (its Base, Cap,
// Multiplier and Jitter; not its MaxAttempts or MaxElapsed, since the loss
// deadline bounds the retries), shortened if need be so that one last
// attempt can still finish before the loss deadline at the measured cost.
// An establishment refused as held (a *HeldError, errors.Is ErrHeld) while
// a lease of the key granted to this Recovery may still run in the table
// is not counted against the key: it is retried once that lease has ended,
// after the HeldError's Remaining if the table says (or at the lease's
// expiry plus the drift margin if not). Nor is any other failed
// establishment of a key whose lapsed lease may still run in the table;
// it is retried after Retry's delay, which keeps growing, but no later
// than the lease's expiry plus the drift margin, when the lease has
// surely ended, and a failure after that waits no longer than Retry's
// delay for that failure alone or the last delay before it, whichever is
// longer.
func (r *Recovery[K]) Finish(now time.Time, a Attempt[K], err error, out []Attempt[K]) []Attempt[K] {
	if r == nil || r.sched == nil {
		return out
	}
	if id, ok := r.gone[a.Key]; ok && id == a.id && a.owner == r {
		// An attempt of a removed key: it frees its worker, and that is
		// all, but for letting the key, if added again since, join the
		// backlog.
		delete(r.gone, a.Key)
		r.last = laterOf(r.last, now)
		if e := r.keys[a.Key]; e != nil && e.state == stParked {
			r.toBacklog(e, r.last)
		}
		return r.next(r.last, out)
	}
	e := r.keys[a.Key]
	if e == nil || a.owner != r || e.seq != a.id || !(e.state == stRunning && a.Kind == Establish || e.state == stRenewing && a.Kind == Renew) {
		return out // not an attempt this Recovery handed out, or already reported
	}
	if errors.Is(err, ErrRemoveKey) {
		// The key is no longer wanted: remove it, and this attempt then
		// only frees its worker.
		r.Remove(now, a.Key)
		return r.Finish(now, a, nil, out)
	}
	r.last = laterOf(r.last, now)
	now = r.last // time never goes backwards inside the Recovery
	started := e.due
	cost := float64(now.Sub(started))
	if a.Kind == Renew {
		r.costR += r.weight * (cost - r.costR)
		r.renewMeasured = true
	} else {
		r.costE += r.weight * (cost - r.costE)
		if !r.renewMeasured {
			r.costR = r.costE
		}
	}
	if err == nil && !now.Before(started.Add(a.span)) {
		err = ErrTimeout
	}
	switch {
	case err == nil:
		if a.Kind == Establish {
			r.total++
			r.held++
		}
		e.attempts, e.tries, e.prev, e.lapsed = 0, 0, 0, false
		r.hold(e, started)
	case a.Kind == Renew:
		r.wasted++
		switch {
		case errors.Is(err, ErrLost):
			// The table says the lease is no longer this Recovery's.
			e.setExpires(now)
			r.lapse(e, now)
			e.setExpires(now)
			e.lapsed = false
		case errors.Is(err, ErrTimeout) || !now.Before(e.deadline):
			r.lapse(e, now)
		default:
			r.retryRenewal(e, now)
		}
	case errors.Is(err, ErrHeld) && now.Before(e.expires().Add(r.drift)):
		// Refused by the Recovery's own lease, or by one it may have been
		// granted: not a futile attempt to count against the key, but a
		// lease to wait out.
		r.wasted++
		due := e.expires().Add(r.drift)
		if left := heldRemaining(err); left > 0 {
			// A lease of this Recovery runs a TTL at most; a longer
			// Remaining is not the table's answer about it.
			due = now.Add(min(left, r.cfg.TTL+r.drift))
		}
		r.toBacklog(e, laterOf(due, now.Add(max(time.Duration(r.costE), time.Microsecond))))
	case e.lapsed && now.Before(e.expires().Add(r.drift)) && !errors.Is(err, ErrInvalidArgument):
		// The key's lapsed lease may still run in the table (a renewal
		// of unknown outcome may have extended it): whatever this
		// attempt met, an outage or the lease, it could not have
		// succeeded, so it does not count; it backs off all the same.
		// The delay grows, but the key is retried no later than when
		// that lease has surely ended: an outage that outlasts it must
		// not keep the key waiting for a delay grown exponentially
		// while it could not have succeeded anyway.
		r.wasted++
		e.tries = min(e.tries+1, math.MaxInt32-1)
		d := floorDelay(r.cfg.Retry.Delay(int(e.tries), e.prev, r.uniform()))
		d = min(d, e.expires().Add(r.drift).Sub(now))
		e.prev = d
		r.toBacklog(e, now.Add(d))
	default:
		r.wasted++
		if !errors.Is(err, ErrHeld) && !errors.Is(err, ErrInvalidArgument) {
			// The outcome is unknown: the grant may have landed, and a
			// later refusal as held may then be of this lease.
			e.setExpires(laterOf(e.expires(), now.Add(r.cfg.TTL)))
		}
		e.lapsed = false
		if e.attempts == 0 {
			// MaxElapsed counts from the start of the first attempt, as
			// in backoff.Retry.
			e.setDeadline(started.Add(r.cfg.Retry.MaxElapsed))
		}
		e.attempts = min(e.attempts+1, math.MaxInt32-1)
		elapsed := now.Sub(e.deadline) + r.cfg.Retry.MaxElapsed // since the first attempt started
		// A fresh draw per key and failure: keys that failed together
		// must not all come back at the same instant. The delay grows
		// with every failure of the run, counted or not.
		u := r.uniform()
		d, gerr := r.cfg.Retry.Next(int(e.attempts), elapsed, e.prev, u)
		if gerr == nil && e.tries > 0 {
			// The uncounted failures grow the delay, but not beyond
			// the last of their delays, which was cut to the time left
			// until the key's own lease ended.
			d = min(r.cfg.Retry.Delay(int(e.attempts+e.tries), e.prev, u), max(d, e.prev))
		}
		// No retry sooner than MinRenewInterval, however small Retry's
		// delays: a key failing at once must not be retried in a loop.
		d = floorDelay(d)
		if gerr == nil && r.cfg.Retry.MaxElapsed > 0 && d > r.cfg.Retry.MaxElapsed-elapsed {
			gerr = backoff.ErrElapsedExhausted
		}
		e.prev = d
		if gerr != nil || errors.Is(err, ErrInvalidArgument) {
			e.state = stFailed
			r.failed++
		} else {
			r.toBacklog(e, now.Add(d))
		}
	}
	return r.next(now, out)
}

// next hands the worker that finished an attempt at now the next attempt
// that can still finish in time, renewals first, and admits from the
// backlog.
func (r *Recovery[K]) next(now time.Time, out []Attempt[K]) []Attempt[K] {
	r.sched.Advance(now)
	r.settleDrops(now)
	r.expireWaiting(now)
	out = r.queueRenewals(now, out)
	// The finished worker takes the next attempt that can still finish in
	// time, renewals first.
	for {
		it, ok := r.sched.Done(now)
		if !ok {
			break
		}
		e := it.Value
		if !now.Add(r.cost(e)).Before(it.Deadline) {
			r.dropped = append(r.dropped, it)
			r.reasons = append(r.reasons, shed.ErrDeadline)
			continue
		}
		out = r.started(now, it, out)
		break
	}
	r.settleDrops(now)
	r.updateRate(now)
	return r.admit(now, out)
}

// Wake returns the next instant at which Start has something to do if no
// attempt finishes before it — a renewal falling due, a renewal still
// waiting for a worker at its loss deadline (its lease lapses then), a
// failed key's retry — and false if there is none. Keys of the backlog
// that are due but wait for room in the queue need no wake: the Finish
// that frees the room admits them.
func (r *Recovery[K]) Wake() (time.Time, bool) {
	var t time.Time
	if r == nil {
		return t, false
	}
	if len(r.renew) > 0 {
		t = r.renew[0].due
	}
	if len(r.waiting) > 0 && (t.IsZero() || r.waiting[0].e.deadline.Before(t)) {
		t = r.waiting[0].e.deadline
	}
	if len(r.backlog) > 0 && r.backlog[0].due.After(r.last) && (t.IsZero() || r.backlog[0].due.Before(t)) {
		t = r.backlog[0].due
	}
	return t, !t.IsZero()
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Progress returns the counts as of now.
func (r *Recovery[K]) Progress(now time.Time) Progress {
	if r == nil || r.sched == nil {
		return Progress{}
	}
	r.updateRate(now)
	st := r.sched.Stats()
	return Progress{
		Established: r.held, Failed: r.failed,
		Pending:  len(r.keys) - r.held - r.failed,
		InFlight: st.InFlight, Queued: st.Waiting,
		Lapsed: r.lapsed, Attempts: r.attempts, Wasted: r.wasted, Dropped: r.drops,
		Rate:          r.rate,
		EstablishCost: time.Duration(r.costE), RenewCost: time.Duration(r.costR),
	}
}

// uniform returns a draw in [0, 1) for a retry's jitter.
func (r *Recovery[K]) uniform() float64 {
	if r.cfg.Rand != nil {
		return r.cfg.Rand.Float64()
	}
	return rand.Float64()
}

func (r *Recovery[K]) updateRate(now time.Time) {
	if r.rateAt.IsZero() {
		r.rateAt = now
		return
	}
	if d := now.Sub(r.rateAt); d >= time.Second {
		r.rate = float64(r.total-r.rateTotal) / d.Seconds()
		r.rateAt, r.rateTotal = now, r.total
	}
}

func (r *Recovery[K]) cost(e *entry[K]) time.Duration {
	if e.state == stRenewWait {
		return time.Duration(r.costR)
	}
	return time.Duration(r.costE)
}

// heldRemaining returns the Remaining of the *HeldError in err, or zero.
func heldRemaining(err error) time.Duration {
	var held *HeldError
	if errors.As(err, &held) {
		return held.Remaining
	}
	return 0
}

// hold records a lease term that started at start and schedules its
// renewal.
func (r *Recovery[K]) hold(e *entry[K], start time.Time) {
	kc := KeeperConfig{RenewFraction: r.cfg.RenewFraction, DriftMargin: r.cfg.DriftMargin}
	l := Lease{TTL: r.cfg.TTL, Renewed: start, Expires: start.Add(r.cfg.TTL)}
	e.state, e.deadline, e.due, e.final = stHeld, kc.LostAt(l), kc.RenewAt(l), false
	e.setExpires(l.Expires)
	r.push(&r.renew, e)
}

// retryRenewal schedules the next renewal of e after a failed one: after
// Retry's delay, jittered afresh, but early enough for one last attempt to
// finish before the loss deadline at the measured cost; at the loss
// deadline, where e lapses, if there is no time left for one.
func (r *Recovery[K]) retryRenewal(e *entry[K], now time.Time) {
	e.attempts = min(e.attempts+1, math.MaxInt32-1)
	d := floorDelay(r.cfg.Retry.Delay(int(e.attempts), e.prev, r.uniform()))
	e.prev = d
	due := now.Add(d)
	if last := e.deadline.Add(-2 * max(time.Duration(r.costR), time.Microsecond)); due.After(last) {
		due = last
		if e.final || !now.Before(last) {
			due = e.deadline
		}
		e.final = true
	}
	e.state, e.due = stRenewWait, due
	r.push(&r.renew, e)
}

// lapse records that e's lease was lost at its loss deadline (or refused
// as lost), and puts it back in the backlog, due when its lease has ended
// in the table: an establishment before then would be refused by it.
func (r *Recovery[K]) lapse(e *entry[K], now time.Time) {
	r.held--
	r.lapsed++
	due := laterOf(now, e.expires())
	if e.attempts > 0 {
		// A renewal of this term failed with an unknown outcome: it may
		// have landed, and extended the lease by up to a TTL.
		e.setExpires(e.expires().Add(r.cfg.TTL))
	}
	e.attempts, e.tries, e.prev, e.lapsed = 0, 0, 0, true
	r.toBacklog(e, due)
}

func (r *Recovery[K]) toBacklog(e *entry[K], due time.Time) {
	e.state, e.due = stBacklog, due
	r.push(&r.backlog, e)
}

func (r *Recovery[K]) push(h *entryHeap[K], e *entry[K]) {
	r.seq++
	e.seq = r.seq
	heap.Push(h, e)
}

// queueRenewals offers every renewal due at now to the scheduler.
func (r *Recovery[K]) queueRenewals(now time.Time, out []Attempt[K]) []Attempt[K] {
	for len(r.renew) > 0 && !r.renew[0].due.After(now) {
		e := heap.Pop(&r.renew).(*entry[K])
		if !now.Before(e.deadline) {
			r.lapse(e, now)
			continue
		}
		e.state = stRenewWait
		it := shed.Item[*entry[K]]{Value: e, Priority: shed.Critical, Deadline: e.deadline, Cost: time.Duration(r.costR)}
		switch kind, ticket := r.sched.Push(now, it); kind {
		case shed.Admitted:
			out = r.started(now, it, out)
		case shed.Queued:
			r.waiting.push(waiter[K]{e, ticket})
		}
		r.settleDrops(now)
	}
	return out
}

// admit moves keys from the backlog into the scheduler while the queue has
// room and the expected wait lets them finish within half their timeout.
func (r *Recovery[K]) admit(now time.Time, out []Attempt[K]) []Attempt[K] {
	for len(r.backlog) > 0 && !r.backlog[0].due.After(now) && r.sched.Len() < r.cfg.MaxQueue {
		ahead := float64(r.sched.Len()+r.sched.InFlight()) / float64(r.cfg.Workers)
		if r.sched.InFlight() < r.cfg.Workers {
			ahead = 0
		}
		if wait := ahead*r.costE + r.costE; wait > float64(r.cfg.AttemptTimeout)/2 && ahead > 0 {
			break
		}
		e := heap.Pop(&r.backlog).(*entry[K])
		e.state = stQueued
		it := shed.Item[*entry[K]]{Value: e, Priority: shed.Normal, Deadline: now.Add(r.cfg.AttemptTimeout), Cost: time.Duration(r.costE)}
		kind, ticket := r.sched.Push(now, it)
		refused := kind == shed.Refused
		switch kind {
		case shed.Admitted:
			out = r.started(now, it, out)
		case shed.Queued:
			r.queued.push(waiter[K]{e, ticket})
		}
		r.settleDrops(now)
		if refused {
			// Its cost estimate exceeds its timeout: wait a timeout
			// before trying it again, rather than spin.
			break
		}
	}
	return out
}

// started hands out it, which holds a worker from now.
func (r *Recovery[K]) started(now time.Time, it shed.Item[*entry[K]], out []Attempt[K]) []Attempt[K] {
	e := it.Value
	r.unwait(e)
	kind := Establish
	if e.state == stRenewWait {
		kind, e.state = Renew, stRenewing
	} else {
		e.state = stRunning
	}
	r.attempts++
	r.seq++
	e.seq, e.due = r.seq, now
	return append(out, Attempt[K]{Key: e.key, Kind: kind, Started: now, Deadline: it.Deadline, owner: r, id: e.seq, span: it.Deadline.Sub(now)})
}

// settleDrops handles the items the scheduler (or Finish) dropped without
// starting them.
func (r *Recovery[K]) settleDrops(now time.Time) {
	for i, it := range r.dropped {
		e, reason := it.Value, r.reasons[i]
		if e.state == stRemoved {
			continue
		}
		r.unwait(e)
		r.drops++
		switch {
		case e.state == stRenewWait && (reason == shed.ErrDeadline || !now.Before(e.deadline)):
			r.lapse(e, now)
		case e.state == stRenewWait:
			// Refused for space by other renewals: offer it again once
			// a renewal's cost has passed.
			e.due = now.Add(max(time.Duration(r.costR), time.Microsecond))
			r.push(&r.renew, e)
		case reason == shed.ErrDeadline && it.Enqueued.Equal(now):
			// Refused on arrival: its cost estimate exceeds its timeout.
			r.toBacklog(e, now.Add(r.cfg.AttemptTimeout))
		default:
			// Evicted, or could no longer finish: not an attempt, back to
			// the backlog.
			r.toBacklog(e, now)
		}
	}
	r.dropped, r.reasons = r.dropped[:0], r.reasons[:0]
}

// expireWaiting lapses the leases whose renewal still waits for a worker
// at the loss deadline: it can no longer finish in time.
func (r *Recovery[K]) expireWaiting(now time.Time) {
	for len(r.waiting) > 0 && !now.Before(r.waiting[0].e.deadline) {
		w := r.waiting.remove(0)
		if _, ok := r.sched.Remove(now, w.t, shed.ErrDeadline); ok {
			r.drops++
			r.lapse(w.e, now)
		}
	}
}

// unwait takes e out of waiting or queued if it is there: its renewal or
// establishment left the scheduler's queue.
func (r *Recovery[K]) unwait(e *entry[K]) {
	switch {
	case e.state == stRenewWait && e.idx >= 0:
		r.waiting.remove(int(e.idx))
	case e.state == stQueued && e.idx >= 0:
		r.queued.remove(int(e.idx))
	}
}

// waitSet is a set of waiting establishments, each entry's idx its
// position; removal swaps the last one in.
type waitSet[K comparable] []waiter[K]

func (s *waitSet[K]) push(w waiter[K]) {
	w.e.idx = int32(len(*s))
	*s = append(*s, w)
}

// remove takes out and returns the waiter at position i.
func (s *waitSet[K]) remove(i int) waiter[K] {
	old := *s
	w, n := old[i], len(old)-1
	if i != n {
		old[i] = old[n]
		old[i].e.idx = int32(i)
	}
	old[n] = waiter[K]{}
	*s = old[:n]
	w.e.idx = -1
	return w
}

// waiter is a renewal waiting in the scheduler, with its ticket.
type waiter[K comparable] struct {
	e *entry[K]
	t shed.Ticket
}

// waitHeap is a heap of waiting renewals by loss deadline, each entry's
// idx its position. It is not a container/heap: boxing a waiter in an
// interface would allocate for every queued renewal.
type waitHeap[K comparable] []waiter[K]

func (h *waitHeap[K]) push(w waiter[K]) {
	*h = append(*h, w)
	h.set(len(*h)-1, w)
	h.up(len(*h) - 1)
}

// remove takes out and returns the waiter at position i.
func (h *waitHeap[K]) remove(i int) waiter[K] {
	old := *h
	w, n := old[i], len(old)-1
	if i != n {
		h.set(i, old[n])
		old[n] = waiter[K]{}
		*h = old[:n]
		if !h.down(i) {
			h.up(i)
		}
	} else {
		old[n] = waiter[K]{}
		*h = old[:n]
	}
	w.e.idx = -1
	return w
}

func (h waitHeap[K]) set(i int, w waiter[K]) { h[i], w.e.idx = w, int32(i) }

func (h waitHeap[K]) less(i, j int) bool { return h[i].e.deadline.Before(h[j].e.deadline) }

func (h waitHeap[K]) swap(i, j int) {
	wi, wj := h[i], h[j]
	h.set(i, wj)
	h.set(j, wi)
}

func (h waitHeap[K]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts position i down and reports whether it moved.
func (h waitHeap[K]) down(i int) bool {
	i0 := i
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h.less(r, c) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > i0
}

// entryHeap orders entries by due time, then by arrival.
type entryHeap[K comparable] []*entry[K]

func (h entryHeap[K]) Len() int { return len(h) }
func (h entryHeap[K]) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h entryHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = int32(i), int32(j)
}
func (h *entryHeap[K]) Push(x any) {
	e := x.(*entry[K])
	e.idx = int32(len(*h))
	*h = append(*h, e)
}
func (h *entryHeap[K]) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}
