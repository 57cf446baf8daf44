package shed

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is matched (with errors.Is) by every error a constructor
// of this package returns for a bad configuration.
var ErrInvalidConfig = errors.New("shed: invalid config")

// Defaults applied to the zero fields of a QueueConfig. MaxWait defaults to
// DefaultMaxWait, as for a Bulkhead.
const (
	// DefaultMaxQueue bounds the waiting items of a Queue or Scheduler whose
	// config leaves MaxQueue zero. (A Bulkhead's zero MaxQueue means no
	// queue at all; queue-aware admission needs one.)
	DefaultMaxQueue = 1024
	// DefaultTarget is the CoDel target: the queueing delay that a standing
	// queue is not allowed to exceed. 5ms, as in Facebook's "Fail at Scale".
	DefaultTarget = 5 * time.Millisecond
	// DefaultInterval is the CoDel interval: how long the queueing delay must
	// stay above Target before the queue counts as standing. 100ms, as in
	// "Fail at Scale".
	DefaultInterval = 100 * time.Millisecond

	// DefaultBacklogRounds is the Backlog of a Queue or Scheduler whose
	// config leaves it zero, in rounds of service (Workers items each).
	// Four rounds keep the goodput of the package's overload simulation
	// within a point of the best FIFO queue at loads up to 1×, where a
	// standing class that shed everything older than Target lost three
	// points, and change nothing at 2× to 10× (see README).
	DefaultBacklogRounds = 4

	// maxQueueConfig bounds Workers and MaxQueue themselves, so that a typo
	// cannot configure unbounded memory.
	maxQueueConfig = 1 << 24
	// maxQueueDuration bounds MaxWait, Target and Interval: a queue that
	// holds work for longer is the long timeout of 2011, not a queue.
	maxQueueDuration = time.Hour
)

// QueueConfig configures a Queue, or the Scheduler at its core. The zero
// value of every field but Workers means a documented default.
type QueueConfig struct {
	// Workers is how many items may run at once: the size of the worker
	// pool the queue sits in front of. It must be in [1, 2^24].
	Workers int
	// MaxQueue bounds the items waiting for a worker: the EC2 fix of 2025,
	// throttling intake by the size of the waiting queue. When the queue is
	// full, a new item is refused with ErrQueueFull, unless a waiting item of
	// lower priority can be evicted for it (see Scheduler). Zero means
	// DefaultMaxQueue (1024). Negative or above 2^24 is invalid.
	MaxQueue int
	// MaxWait bounds the time an item waits while its priority class is not
	// standing. Zero means DefaultMaxWait (250ms). Negative is invalid. A
	// class whose oldest item has waited more than Target for a whole
	// Interval becomes standing, so no item waits longer than
	// min(MaxWait, Target+Interval) in any case; if MaxWait is at most
	// Target the control law never engages. Above an hour is invalid.
	MaxWait time.Duration
	// Target is the CoDel target delay, and the queue timeout of a standing
	// class. Zero means DefaultTarget (5ms). Negative is invalid, and it
	// must be below Interval.
	Target time.Duration
	// Interval is the CoDel interval: how long the oldest waiting item of a
	// class must stay older than Target before the class is standing, and
	// how long a standing class must go without an item reaching Target
	// before it is not (unless the workers empty it first). Zero means
	// DefaultInterval (100ms). Negative or above an hour is invalid.
	Interval time.Duration
	// Backlog is how many waiting items of a standing class are kept out
	// of reach of the Target timeout and served in arrival order: the
	// queue a pool at full load needs to stay busy through the bursts of
	// random arrivals, so that admission sheds nothing a pool could have
	// served. Beyond it, a standing class serves its newest items first
	// and times its oldest out at Target, trimming the queue to the
	// Backlog newest. Kept items still wait at most min(MaxWait,
	// Target+Interval). Zero means DefaultBacklogRounds·Workers (with an
	// adaptive limit, of the current workers); negative means none: every
	// item of a standing class times out at Target, as in "Fail at Scale".
	// Above 2^24 is invalid.
	Backlog int
	// DisableLIFO keeps first-in, first-out order within a class even while
	// it is standing. By default a standing class serves its newest item
	// first (adaptive LIFO), so that the items it does serve still have
	// their whole deadline ahead of them while the oldest ones time out.
	DisableLIFO bool
	// CallTimeout, if positive, is the timeout Queue.Do puts on the context
	// it passes to the work, as Bulkhead's does; a Scheduler ignores it.
	// Zero means the caller's context alone bounds the work. Negative or
	// above an hour is invalid.
	CallTimeout time.Duration
	// OnEvent, if not nil, is told what happens to every item: by a Queue on
	// the goroutine of the call, outside its lock; by a Scheduler inside
	// the call that decided it.
	OnEvent func(Event)
	// Adaptive, if not nil, makes a Queue's number of workers adaptive: it
	// moves within [Adaptive.MinLimit, Adaptive.MaxLimit] as it learns
	// from the latencies that Queue.ReleaseRTT and Queue.Do report (see
	// AdaptiveLimit), and Workers is its ceiling: Adaptive.MaxLimit
	// defaults to it and must not exceed it. The queue-aware admission
	// works on top of the moving limit (see Scheduler.SetWorkers). A
	// Scheduler ignores it: its caller moves its workers.
	Adaptive *AdaptiveConfig
}

// withDefaults returns c with its zero fields set to the defaults.
func (c QueueConfig) withDefaults() QueueConfig {
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Target == 0 {
		c.Target = DefaultTarget
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	return c
}

// Validate reports every invalid field of c in one error that matches
// ErrInvalidConfig, or nil if c is valid.
func (c QueueConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Workers < 1 || c.Workers > maxQueueConfig {
		bad("Workers %d is outside [1, 2^24]", c.Workers)
	}
	if c.MaxQueue < 0 {
		bad("MaxQueue %d is negative", c.MaxQueue)
	} else if c.MaxQueue > maxQueueConfig {
		bad("MaxQueue %d is above 2^24", c.MaxQueue)
	}
	if c.Backlog > maxQueueConfig {
		bad("Backlog %d is above 2^24", c.Backlog)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"MaxWait", c.MaxWait}, {"Target", c.Target}, {"Interval", c.Interval}, {"CallTimeout", c.CallTimeout}} {
		if f.d < 0 {
			bad("%s %v is negative", f.name, f.d)
		} else if f.d > maxQueueDuration {
			bad("%s %v is above %v", f.name, f.d, maxQueueDuration)
		}
	}
	if d := c.withDefaults(); c.Target >= 0 && c.Interval >= 0 && d.Target >= d.Interval {
		bad("Target %v is not below Interval %v", d.Target, d.Interval)
	}
	if c.Adaptive != nil {
		errs = append(errs, c.Adaptive.validate(max(c.Workers, 1), "Workers"))
	}
	return errors.Join(errs...)
}

// Item is one piece of work waiting in a Scheduler.
type Item[T any] struct {
	// Value is the caller's payload.
	Value T
	// Priority is the item's class. Values other than Normal, Critical and
	// Sheddable are served as Sheddable.
	Priority Priority
	// Deadline, if not zero, is when the work must be finished. An item is
	// never started unless now+Cost is before Deadline.
	Deadline time.Time
	// Cost is the time the work is expected to take once started (zero if
	// unknown; negative counts as zero).
	Cost time.Duration
	// Enqueued is set by Push to the time the item was offered.
	Enqueued time.Time
}

// canMeet reports whether work started at now can finish before its
// deadline.
func (it *Item[T]) canMeet(now time.Time) bool {
	return it.Deadline.IsZero() || now.Add(it.Cost).Before(it.Deadline)
}

// Ticket names a waiting item, for Remove, Check and Wake. It is valid while
// the item waits; once the item has left the queue the scheduler ignores it.
// The zero Ticket names nothing.
type Ticket struct {
	idx int32
	gen uint32
}

// class is the queue and the control-law state of one priority class.
type class struct {
	head, tail int32 // oldest and newest waiting items; -1 when empty
	n          int
	// standing: the class is overloaded; its timeout is Target and it
	// serves newest first (unless DisableLIFO).
	standing bool
	// Not standing: above says the oldest waiting item has been older than
	// Target continuously since aboveSince.
	above      bool
	aboveSince time.Time
	// Standing: since is when the class became standing, and lastAbove the
	// last time an item reached Target (and was dropped for it).
	since, lastAbove time.Time
}

type node[T any] struct {
	item       Item[T]
	prev, next int32
	gen        uint32
	rank       uint8
	queued     bool
}

// Scheduler is the pure core of queue-aware admission in front of a pool of
// Workers: it decides which work runs now, which waits, which is shed, and
// which waiting item runs next when a worker frees. It reads no clock, owns
// no goroutine and takes no lock: the caller passes the current time to
// every call that decides anything and serialises the calls, and the same
// calls give the same decisions, so a simulation on a virtual clock and
// Queue, its shell on the real clock, drive the same code. Time never goes
// backwards inside it: a time earlier than one it was already given counts
// as that one, so a clock that steps back, or callers that read the clock
// before they serialise, cannot make an item wait a negative time or jump
// the queue.
//
// # Admission
//
// Push offers an item. It runs at once if a worker is free (the queue is
// then empty). Otherwise it waits, unless the queue holds MaxQueue items:
// then a Critical or Normal item evicts a waiting item of the lowest class
// below its own (the one that class would serve last: its newest, or its
// oldest while it is standing and serving newest first, beyond its
// Backlog), which is dropped
// with ErrEvicted; if there is none, the new item is refused with
// ErrQueueFull. Critical work is thus never refused for space while less
// critical work waits, and Sheddable work never displaces anything. An item
// whose deadline has passed, or cannot be met given its Cost, is refused
// with ErrDeadline and never runs.
//
// # Service
//
// When a worker finishes, Done hands it the next item: strictly by class,
// Critical before Normal before Sheddable, and within a class oldest first,
// or newest first while the class is standing and holds more than its
// Backlog. An item that can no longer
// meet its deadline at that moment is dropped with ErrDeadline instead of
// being started.
//
// # Control law
//
// Each class runs CoDel (Nichols and Jacobson) in the form Facebook
// describes in "Fail at Scale": when the oldest waiting item of a class has
// been older than Target (5ms) for a whole Interval (100ms) — the minimum
// queueing delay over the interval exceeded Target, so the queue is not
// absorbing a burst but standing — the class becomes standing: its queue
// timeout shrinks from MaxWait to Target, which at once drops every item
// that has waited Target or more, and it serves newest first, so the items
// it does serve still have their deadlines ahead of them. The class stops
// standing when the workers empty it (it is served empty, so they have
// caught up), or when a whole Interval passes in which no item reached
// Target. Two departures from CoDel's letter: with the timeout at Target
// every served item has waited less than Target, so CoDel's exit on "a
// dequeued sojourn below Target" would fire at once and make the control
// law oscillate; and a class that its own drops empty stays standing, or
// shedding the backlog would end the overload state it signals. Classes
// are controlled separately: Sheddable work that piles up does not shrink
// the timeout of Critical work.
//
// # Backlog
//
// A pool at full load needs a queue: random arrivals come in bursts, and a
// worker that finds the queue empty is capacity lost for good. At exactly
// the load the workers can serve, the oldest item of a class is often
// older than Target for an Interval, and a standing class that shed
// everything older than Target, serving newest first, lost three points of
// capacity in the package's simulation that a FIFO queue served. So a
// standing class keeps its Backlog newest items (four rounds of service by
// default) out of reach of the Target timeout, and serves them in arrival
// order; only the items beyond it are served newest first and time out at
// Target. Under real overload the queue always exceeds the Backlog, so the
// Backlog holds the newest arrivals, younger than Target, and shedding is
// unchanged; at loads the workers can serve, the Backlog absorbs the
// bursts. Kept items time out at min(MaxWait, Target+Interval), the
// longest any item may wait.
//
// Timeouts and transitions take effect at exact instants — an item times
// out at Enqueued+MaxWait, or at Enqueued+Target once its class is
// standing and it is beyond the Backlog, or at Enqueued+min(MaxWait,
// Target+Interval) once its class is standing and it is kept — however
// rarely the scheduler is called: each call first applies everything that
// happened since the previous one. Extra calls (Advance) make the drops
// reported sooner, never different.
//
// # Reporting
//
// Every pushed item ends exactly once: it runs (Push returns Admitted, or
// Done returns it), the caller takes it back with Remove, or it is dropped,
// and then the drop function given to NewScheduler receives it with the
// Refusal, by value so that reporting costs no allocation. Drops happen
// inside Push, Done, Remove, Check and Advance; the drop function must not
// call the Scheduler. Stats counts everything, and the OnEvent hook of the config
// sees every event.
//
// Push, Done, Remove, Check and Advance do not allocate once the queue has
// grown to its working size; each costs O(1) plus O(1) per item it drops.
// A Scheduler is not safe for concurrent use. One not built with
// NewScheduler, or a nil *Scheduler, has no worker and no queue: it refuses
// every item (a nil one without calling any drop function) and never
// panics.
type Scheduler[T any] struct {
	workers, maxQueue       int
	backlogN                int // Backlog: 0 default, negative none
	maxWait, target, period time.Duration
	lifo                    bool
	hook                    func(Event)
	drop                    func(Item[T], Refusal)

	inFlight, waiting int
	// last is the latest time the scheduler has been given; an earlier
	// one counts as it (see clock).
	last    time.Time
	classes [numPriorities]class
	nodes   []node[T]
	free    int32 // first free node, -1 if none

	counters
}

// NewScheduler returns a Scheduler configured by cfg, or an error that
// matches ErrInvalidConfig and names every invalid field. drop receives
// every item that Push refuses or that is dropped while it waits (see
// Scheduler); it may be nil if the caller needs no report.
func NewScheduler[T any](cfg QueueConfig, drop func(Item[T], Refusal)) (*Scheduler[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Scheduler[T]{
		workers:  cfg.Workers,
		maxQueue: cfg.MaxQueue,
		backlogN: cfg.Backlog,
		maxWait:  cfg.MaxWait,
		target:   cfg.Target,
		period:   cfg.Interval,
		lifo:     !cfg.DisableLIFO,
		hook:     cfg.OnEvent,
		drop:     drop,
		nodes:    make([]node[T], 0, min(cfg.MaxQueue, 64)),
		free:     -1,
	}
	for i := range s.classes {
		s.classes[i].head, s.classes[i].tail = -1, -1
	}
	return s, nil
}

// TryRun takes a free worker if there is one, without queueing, and reports
// whether it did. It is Push for work that would rather not wait (Queue's
// TryAcquire); a false result is not counted as a refusal.
func (s *Scheduler[T]) TryRun() bool {
	if s == nil || s.inFlight >= s.workers || s.waiting > 0 {
		return false
	}
	s.inFlight++
	s.admitted.Add(1)
	s.emit(Event{Kind: Admitted})
	return true
}

// Push offers it at time now and returns what became of it:
//
//   - Admitted: a worker was free; the item holds it from now on, and the
//     caller runs it and calls Done when it finishes.
//   - Queued: it waits; the Ticket names it. Done will hand it out later,
//     unless it is dropped first.
//   - Refused: it was refused (ErrDeadline, ErrQueueFull) and passed to the
//     drop function before Push returned.
//
// Push sets it.Enqueued to now. It may also drop other items: those that
// timed out, and one evicted for it.
func (s *Scheduler[T]) Push(now time.Time, it Item[T]) (EventKind, Ticket) {
	if s == nil {
		return Refused, Ticket{}
	}
	now = s.clock(now)
	it.Enqueued = now
	it.Cost = max(it.Cost, 0)
	// A free worker implies an empty queue (Done hands every freed worker
	// to a waiting item if there is one, and a caller that adds workers
	// hands them out with Next), but a newcomer never overtakes a waiting
	// item in any case.
	free := s.inFlight < s.workers && s.waiting == 0
	if !free {
		s.advance(now)
	}
	if !it.canMeet(now) {
		s.report(it, Refusal{Reason: ErrDeadline})
		return Refused, Ticket{}
	}
	if free {
		s.inFlight++
		s.admitted.Add(1)
		s.emit(Event{Kind: Admitted, Priority: it.Priority})
		return Admitted, Ticket{}
	}
	rank := it.Priority.rank()
	if s.waiting >= s.maxQueue {
		victim := int32(-1)
		for r := len(s.classes) - 1; r > rank; r-- {
			if c := &s.classes[r]; c.n > 0 {
				victim = c.tail
				if c.standing && s.lifo && c.n > s.backlog() {
					victim = c.head // served last while newest go first
				}
				break
			}
		}
		if victim < 0 {
			s.report(it, Refusal{Reason: ErrQueueFull, Current: s.waiting, Limit: s.maxQueue})
			return Refused, Ticket{}
		}
		s.dropNode(victim, now, ErrEvicted, 0)
	}
	idx := s.alloc()
	n := &s.nodes[idx]
	n.item, n.rank, n.queued = it, uint8(rank), true
	s.link(&s.classes[rank], idx)
	s.waiting++
	s.queued.Add(1)
	s.emit(Event{Kind: Queued, Priority: it.Priority})
	return Queued, Ticket{idx: idx, gen: n.gen}
}

// Done tells the scheduler at time now that a worker finished its item,
// and returns the next item to run on that worker, if any: the worker then
// stays busy with it, and the caller calls Done again when it finishes. If
// nothing can run, or the workers were cut (SetWorkers) below the items
// running, the worker becomes free and Done returns false. Items that timed
// out or can no longer meet their deadlines are dropped on the way. Done
// without a busy worker does nothing.
func (s *Scheduler[T]) Done(now time.Time) (Item[T], bool) {
	if s == nil {
		return Item[T]{}, false
	}
	now = s.clock(now)
	if s.inFlight == 0 {
		return Item[T]{}, false
	}
	if s.inFlight > s.workers {
		s.inFlight--
		return Item[T]{}, false
	}
	if it, ok := s.next(now); ok {
		return it, true
	}
	s.inFlight--
	return Item[T]{}, false
}

// SetWorkers changes the number of workers to n (at least 1, at most
// 2^24), as an adaptive limit does. Fewer workers preempt no running
// item: Done frees workers without handing them out until fewer items
// run than there are workers. More workers are free at once: the caller
// then calls Next until it returns false, to start the waiting items they
// can take (Push and TryRun never let a newcomer overtake a waiting item
// meanwhile).
func (s *Scheduler[T]) SetWorkers(n int) {
	if s == nil {
		return
	}
	s.workers = min(max(n, 1), maxQueueConfig)
}

// Workers returns the number of workers.
func (s *Scheduler[T]) Workers() int {
	if s == nil {
		return 0
	}
	return s.workers
}

// Next takes a free worker at time now for the next waiting item, as Done
// would hand it out, and returns it; it returns false if no worker is free
// or nothing can run. It is for a caller that added workers (SetWorkers).
func (s *Scheduler[T]) Next(now time.Time) (Item[T], bool) {
	if s == nil {
		return Item[T]{}, false
	}
	now = s.clock(now)
	if s.inFlight >= s.workers {
		return Item[T]{}, false
	}
	s.inFlight++
	if it, ok := s.next(now); ok {
		return it, true
	}
	s.inFlight--
	return Item[T]{}, false
}

// next hands the next waiting item that can still meet its deadline to a
// worker the caller has counted busy, dropping what timed out or cannot.
func (s *Scheduler[T]) next(now time.Time) (Item[T], bool) {
	if s.waiting > 0 {
		s.advance(now)
		for r := range s.classes {
			c := &s.classes[r]
			for c.n > 0 {
				idx := c.head
				if c.standing && s.lifo && c.n > s.backlog() {
					idx = c.tail
				}
				n := &s.nodes[idx]
				if !n.item.canMeet(now) {
					s.dropNode(idx, now, ErrDeadline, 0)
					continue
				}
				it := n.item
				s.unlinkNode(c, idx)
				s.settle(c, now, true)
				s.admitted.Add(1)
				s.emit(Event{Kind: Admitted, Waited: now.Sub(it.Enqueued), Priority: it.Priority})
				return it, true
			}
		}
	}
	return Item[T]{}, false
}

// Remove takes the waiting item t out of the queue at time now, for example
// because its caller gave up, and returns it. reason is what Stats and the
// OnEvent hook record (ErrDeadline, ErrWaitTimeout..., or anything else, such as
// context.Canceled, which counts as a cancellation); the drop function is
// not called. Remove returns false if t no longer waits, for instance
// because it timed out at or before now.
func (s *Scheduler[T]) Remove(now time.Time, t Ticket, reason error) (Item[T], bool) {
	if s == nil {
		return Item[T]{}, false
	}
	now = s.clock(now)
	s.advance(now)
	if !s.valid(t) {
		return Item[T]{}, false
	}
	n := &s.nodes[t.idx]
	it := n.item
	c := &s.classes[n.rank]
	s.unlinkNode(c, t.idx)
	s.settle(c, now, false)
	s.refused(reason)
	s.emit(Event{Kind: Refused, Reason: reason, Waited: now.Sub(it.Enqueued), Priority: it.Priority})
	return it, true
}

// DropAll refuses every waiting item at time now with reason, through the
// drop function, as a Queue does when it is paused, and returns how many
// it dropped.
func (s *Scheduler[T]) DropAll(now time.Time, reason error) int {
	if s == nil {
		return 0
	}
	now = s.clock(now)
	s.advance(now)
	n := 0
	for i := range s.classes {
		for c := &s.classes[i]; c.n > 0; n++ {
			s.dropNode(c.head, now, reason, 0)
		}
	}
	return n
}

// Check applies at time now the timeouts and transitions due (as Advance
// does), drops the waiting item t if its deadline can no longer be met, and
// reports whether t still waits and, if so, when it must be checked again
// (Wake). A shell that cannot count on other calls arriving, such as Queue,
// calls Check from a timer, so that timeouts fire even when no worker
// frees.
func (s *Scheduler[T]) Check(now time.Time, t Ticket) (wake time.Time, waiting bool) {
	if s == nil {
		return time.Time{}, false
	}
	now = s.clock(now)
	s.advance(now)
	if !s.valid(t) {
		return time.Time{}, false
	}
	if !s.nodes[t.idx].item.canMeet(now) {
		s.dropNode(t.idx, now, ErrDeadline, 0)
		return time.Time{}, false
	}
	return s.Wake(t)
}

// Wake returns the earliest time at which the waiting item t may have to
// leave the queue without running if nothing else happens: when it may
// time out, or its deadline may become impossible to meet. It is never
// later than that moment and may be earlier; a shell arms a timer for it
// and calls Check when it fires. Wake returns false if t no longer waits.
func (s *Scheduler[T]) Wake(t Ticket) (time.Time, bool) {
	if s == nil || !s.valid(t) {
		return time.Time{}, false
	}
	n := &s.nodes[t.idx]
	c := &s.classes[n.rank]
	enq := n.item.Enqueued
	var wake time.Time
	switch {
	case c.standing:
		wake = enq.Add(s.target)
		if !wake.After(s.last) {
			// Older than Target and still here: kept as the backlog. It
			// goes at the backlog's timeout, or is re-examined when the
			// class may stop standing; an arrival that pushes it out
			// reports it through the drop function.
			wake = earlierOf(enq.Add(s.backlogTimeout()), c.lastAbove.Add(s.period))
		}
	case s.maxWait <= s.target:
		wake = enq.Add(s.maxWait)
	default:
		// The class cannot start standing before its oldest item has been
		// older than Target for an Interval; the item then goes if it has
		// reached Target itself.
		start := s.nodes[c.head].item.Enqueued.Add(s.target)
		if c.above {
			start = c.aboveSince
		}
		wake = laterOf(start.Add(s.period), enq.Add(s.target))
		wake = earlierOf(wake, enq.Add(s.waitBound()))
	}
	if !n.item.Deadline.IsZero() {
		wake = earlierOf(wake, n.item.Deadline.Add(-n.item.Cost))
	}
	return wake, true
}

// Advance applies at time now the timeouts and control-law transitions due
// since the previous call, reporting the items that timed out. Calling it
// is never necessary — every other method does it first — but a caller
// that wants timed-out items reported promptly can call it from a timer.
func (s *Scheduler[T]) Advance(now time.Time) {
	if s == nil {
		return
	}
	now = s.clock(now)
	if s.waiting > 0 {
		s.advance(now)
	}
}

// clock returns now, or the latest time the scheduler was given if now is
// earlier, and remembers it: time never goes backwards inside the
// scheduler.
func (s *Scheduler[T]) clock(now time.Time) time.Time {
	if now.Before(s.last) {
		return s.last
	}
	s.last = now
	return now
}

// Len returns the number of waiting items.
func (s *Scheduler[T]) Len() int {
	if s == nil {
		return 0
	}
	return s.waiting
}

// InFlight returns the number of busy workers.
func (s *Scheduler[T]) InFlight() int {
	if s == nil {
		return 0
	}
	return s.inFlight
}

// Standing reports whether class p is standing (overloaded), as of the last
// call: its timeout is then Target and it serves newest first.
func (s *Scheduler[T]) Standing(p Priority) bool {
	return s != nil && s.classes[p.rank()].standing
}

// Timeout returns the queue timeout of class p as of the last call: MaxWait,
// or Target while the class is standing.
func (s *Scheduler[T]) Timeout(p Priority) time.Duration {
	if s == nil {
		return 0
	}
	if s.classes[p.rank()].standing {
		return s.target
	}
	return s.maxWait
}

// Stats returns the busy workers, the waiting items and the counters, as of
// the last call (items that have timed out since are counted as waiting
// until the next one).
func (s *Scheduler[T]) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	st := Stats{InFlight: s.inFlight, Waiting: s.waiting}
	s.load(&st)
	return st
}

// advance applies, in time order, every timeout and transition of every
// class due at or before now.
func (s *Scheduler[T]) advance(now time.Time) {
	for r := range s.classes {
		c := &s.classes[r]
		for c.n > 0 {
			if !s.step(c, now) {
				break
			}
		}
		if c.n == 0 && c.standing && !c.lastAbove.Add(s.period).After(now) {
			// Emptied by drops, then a whole Interval without work.
			c.standing = false
		}
	}
}

// step applies the earliest event of class c due at or before now — its
// oldest item starting to be older than Target, the class starting or
// ceasing to stand, the oldest item timing out — and reports whether there
// was one.
func (s *Scheduler[T]) step(c *class, now time.Time) bool {
	h := &s.nodes[c.head]
	enq := h.item.Enqueued
	if c.standing {
		timeout := s.target
		if c.n <= s.backlog() {
			timeout = s.backlogTimeout()
		}
		drop := laterOf(enq.Add(timeout), c.since)
		exit := c.lastAbove.Add(s.period)
		switch {
		case exit.Before(drop) && !exit.After(now):
			// A whole Interval passed with no item dropped at Target. The
			// oldest item may be older than Target at exit (one kept as
			// the backlog): it is above from then on.
			c.standing = false
			c.above, c.aboveSince = !enq.Add(s.target).After(exit), exit
		case !drop.After(now):
			c.lastAbove = drop
			s.dropNode(c.head, drop, ErrWaitTimeout, timeout)
		default:
			return false
		}
		return true
	}
	wait := s.waitBound()
	timeout := enq.Add(wait)
	if s.maxWait > s.target {
		if !c.above {
			cross := enq.Add(s.target)
			if cross.After(now) {
				return false
			}
			c.above, c.aboveSince = true, cross
		}
		if start := c.aboveSince.Add(s.period); !start.After(timeout) && !start.After(now) {
			// Every item older than Target goes at start, in the
			// standing branch.
			c.standing, c.since, c.lastAbove = true, start, start
			return true
		}
	}
	if timeout.After(now) {
		return false
	}
	s.dropNode(c.head, timeout, ErrWaitTimeout, wait)
	return true
}

// waitBound is the queue timeout of a class that is not standing: MaxWait,
// but never beyond Target+Interval. A class becomes standing before its
// oldest item reaches Target+Interval, unless it stopped standing with a
// kept item (see Backlog) already older than Target: the bound holds for
// that item too.
func (s *Scheduler[T]) waitBound() time.Duration {
	if s.maxWait > s.target {
		return min(s.maxWait, s.target+s.period)
	}
	return s.maxWait
}

// settle updates class c after its oldest item may have changed at now.
// served says a worker took the item: a class that service empties stops
// standing, since the workers have caught up; one that drops empty does
// not, or shedding a standing queue would end the overload state it
// signals.
func (s *Scheduler[T]) settle(c *class, now time.Time, served bool) {
	switch {
	case c.n == 0:
		c.above = false
		if served {
			c.standing = false
		}
	case c.above && !c.standing && s.nodes[c.head].item.Enqueued.Add(s.target).After(now):
		c.above = false
	}
}

// dropNode removes waiting item idx, which left the queue at time at, and
// reports it. timeout is the wait bound in force, for ErrWaitTimeout.
func (s *Scheduler[T]) dropNode(idx int32, at time.Time, reason error, timeout time.Duration) {
	n := &s.nodes[idx]
	it := n.item
	c := &s.classes[n.rank]
	s.unlinkNode(c, idx)
	s.settle(c, at, false)
	s.report(it, Refusal{Reason: reason, Waited: at.Sub(it.Enqueued), MaxWait: timeout})
}

// report counts and reports an item that will not run.
func (s *Scheduler[T]) report(it Item[T], r Refusal) {
	s.refused(r.Reason)
	s.emit(Event{Kind: Refused, Reason: r.Reason, Waited: r.Waited, Priority: it.Priority})
	if s.drop != nil {
		s.drop(it, r)
	}
}

// setValue replaces the payload of the waiting item t.
func (s *Scheduler[T]) setValue(t Ticket, v T) {
	if s.valid(t) {
		s.nodes[t.idx].item.Value = v
	}
}

// revoke undoes the count of an item that Done handed out but whose caller
// gave up at the same moment, and counts reason instead.
func (s *Scheduler[T]) revoke(reason error) {
	s.admitted.Add(-1)
	s.refused(reason)
}

func (s *Scheduler[T]) emit(e Event) {
	if s.hook != nil {
		s.hook(e)
	}
}

func (s *Scheduler[T]) valid(t Ticket) bool {
	if t.gen == 0 || t.idx < 0 || int(t.idx) >= len(s.nodes) {
		return false
	}
	n := &s.nodes[t.idx]
	return n.queued && n.gen == t.gen
}

// alloc returns a free node, growing the slab if none is free. The slab
// never holds more than MaxQueue nodes: eviction frees one before the
// newcomer takes it.
func (s *Scheduler[T]) alloc() int32 {
	idx := s.free
	if idx >= 0 {
		s.free = s.nodes[idx].next
	} else {
		s.nodes = append(s.nodes, node[T]{})
		idx = int32(len(s.nodes) - 1)
	}
	n := &s.nodes[idx]
	n.gen++
	if n.gen == 0 { // never hand out the zero Ticket's generation
		n.gen++
	}
	return idx
}

// link appends node idx to class c as its newest item.
func (s *Scheduler[T]) link(c *class, idx int32) {
	n := &s.nodes[idx]
	n.prev, n.next = c.tail, -1
	if c.tail < 0 {
		c.head = idx
	} else {
		s.nodes[c.tail].next = idx
	}
	c.tail = idx
	c.n++
}

// unlinkNode takes node idx out of class c and frees it.
func (s *Scheduler[T]) unlinkNode(c *class, idx int32) {
	n := &s.nodes[idx]
	if n.prev < 0 {
		c.head = n.next
	} else {
		s.nodes[n.prev].next = n.next
	}
	if n.next < 0 {
		c.tail = n.prev
	} else {
		s.nodes[n.next].prev = n.prev
	}
	c.n--
	s.waiting--
	n.item = Item[T]{} // let the payload be collected
	n.queued = false
	n.prev, n.next = -1, s.free
	s.free = idx
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// backlog returns how many waiting items a standing class keeps.
func (s *Scheduler[T]) backlog() int {
	switch {
	case s.backlogN > 0:
		return s.backlogN
	case s.backlogN < 0:
		return 0
	}
	return backlogRounds * s.workers
}

// backlogRounds is DefaultBacklogRounds; a variable so that the
// calibration can be rerun.
var backlogRounds = DefaultBacklogRounds

// backlogTimeout is the queue timeout of the items a standing class keeps:
// min(MaxWait, Target+Interval), the longest any item may wait.
func (s *Scheduler[T]) backlogTimeout() time.Duration {
	return max(min(s.maxWait, s.target+s.period), s.target)
}
