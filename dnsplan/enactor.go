package dnsplan

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// Defaults of EnactorConfig.
const (
	// DefaultRetention is how many generations below an endpoint's
	// applied one clean-up keeps of the plans naming it.
	DefaultRetention = 2
	// DefaultMaxConflicts bounds the refused applies to one endpoint in
	// one pass.
	DefaultMaxConflicts = 8
	// DefaultMaxDeletes bounds the plans one clean-up deletes.
	DefaultMaxDeletes = 64
	// DefaultInterval is the longest pause between two passes of Run.
	DefaultInterval = time.Second
	// DefaultParallel bounds the endpoints in flight at once in a pass.
	// Against a real DNS server it divides a pass's time by up to 16; in
	// memory (MemoryProvider), where calls cost nothing, a pass at 16
	// costs about what it costs at 1 (BenchmarkPass10kParallel), and
	// allocates a constant few more times a pass, not per endpoint.
	DefaultParallel = 16
	// MaxParallel is the highest EnactorConfig.Parallel accepted: more
	// endpoints in flight than that would hold as many connections open
	// to one DNS server.
	MaxParallel = 1024
)

// EnactorConfig configures an Enactor. The zero value is usable, and is
// what the zero Enactor runs with.
type EnactorConfig struct {
	// Name identifies the enactor in events, e.g. "us-east-1a". Empty
	// means "enactor".
	Name string
	// Retention is the margin of clean-up: it deletes plan g only if g is
	// more than Retention generations below the plan the pass applied, and
	// every endpoint g names is known to be more than Retention
	// generations above g (see the package documentation). Zero means
	// DefaultRetention; negative is invalid. (Any value is safe: the
	// margin is for people who want recent history.)
	Retention int
	// MaxConflicts bounds how often, in one pass, an apply to one endpoint
	// may be refused because another writer changed it first; the enactor
	// re-reads after each refusal and moves on to the next endpoint after
	// the last. Zero means DefaultMaxConflicts; negative is invalid.
	MaxConflicts int
	// MaxDeletes bounds the plans one clean-up deletes. Zero means
	// DefaultMaxDeletes; negative is invalid.
	MaxDeletes int
	// Interval is the longest pause between passes in Run. Zero means
	// DefaultInterval; negative is invalid.
	Interval time.Duration
	// Parallel bounds the endpoints in flight at once in the endpoint
	// phase of a pass: Pass reads and applies up to Parallel endpoints
	// concurrently, and Ready hands out the actions of up to Parallel
	// endpoints at once. Each endpoint's write is conditioned on its own
	// read, so the order in which endpoints are written changes nothing
	// of what each one ends up with. Zero means DefaultParallel; negative,
	// or above MaxParallel, is invalid; 1 applies one endpoint after
	// another. Clean-up is one action at a time whatever Parallel is, and
	// a driver of Next and Deliver always runs one action at a time.
	Parallel int
	// OnEvent, if not nil, receives an Event for everything the enactor
	// does, on the goroutine that drives it (the one that calls Deliver,
	// DeliverAction, Pass or Run), at the end of the step (the delivery)
	// that produced it, once the Enactor has moved on: it must not block,
	// nor call the Enactor's methods. Each endpoint's events come in the
	// order they happen; those of endpoints in flight at once interleave
	// as their outcomes are delivered (in the plan's order with Parallel
	// 1, or with Next and Deliver); clean-up's come after every
	// endpoint's, and EventPassDone last. If it panics, the panic reaches
	// the caller of Deliver, DeliverAction or Pass, the step's later
	// events are not heard, and the Enactor is where the step took it:
	// the next Deliver, Pass or Run goes on from there, and neither
	// repeats the step nor counts it twice. Pass first waits for the
	// actions it has in flight (their outcomes are dropped, and the
	// actions are handed out again by the next Pass or Ready; a write
	// is conditioned as ever, so a repeated one that had landed is
	// refused, not applied twice).
	OnEvent func(Event)
}

// EventKind says what an Event reports.
type EventKind uint8

// The kinds of Event.
const (
	// EventApplied: the plan was written to the endpoint.
	EventApplied EventKind = iota + 1
	// EventRepaired: the endpoint's records were empty, corrupt or
	// differed from the plan of their own generation, and were rewritten.
	// An empty or corrupt endpoint whose generation is newer than the
	// enactor's plan is rewritten under its own generation, with the plan
	// of that generation (or, if the Store lost it and holds nothing as
	// new, an empty endpoint with the Store's newest plan's targets):
	// Event.Generation is then that generation.
	EventRepaired
	// EventConflict: an apply was refused because the endpoint changed
	// between the read and the write; the enactor re-reads.
	EventConflict
	// EventNewer: the endpoint already has a newer generation than the
	// enactor's plan; nothing was written.
	EventNewer
	// EventDeleted: clean-up deleted a plan.
	EventDeleted
	// EventError: an operation failed; Err says why, and Endpoint names
	// the endpoint if it was one's (it is then counted in
	// PassStats.Failed). An endpoint that keeps failing is reported on
	// every pass, once.
	EventError
	// EventPassDone: a pass ended.
	EventPassDone
)

var eventNames = [...]string{"", "applied", "repaired", "conflict", "newer", "deleted", "error", "pass-done"}

// String returns the kind's name, e.g. "applied".
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event reports one thing an Enactor did.
type Event struct {
	// Kind says what happened, and which other fields are set.
	Kind EventKind
	// Enactor is EnactorConfig.Name.
	Enactor string
	// Endpoint is the endpoint concerned, if any.
	Endpoint string
	// Generation is the plan generation the enactor wrote, offered or
	// deleted.
	Generation fence.Token
	// Have is the endpoint's applied generation as last read.
	Have fence.Token
	// Err is the error, for EventError and EventConflict.
	Err error
}

// Op names an Action.
type Op uint8

// The actions an Enactor asks its driver to carry out.
const (
	// OpRest: the pass is over; deliver an empty Result (after a pause, if
	// the driver wants one) to start the next.
	OpRest Op = iota
	// OpLoadLatest: Store.Latest; deliver Result.Plan or Result.Err. It
	// starts a pass, and within one finds the newest plan to refill an
	// endpoint whose plan the Store lost.
	OpLoadLatest
	// OpRead: Provider.Read(Action.Endpoint); deliver Result.Records.
	OpRead
	// OpApply: Provider.Apply(Action.Endpoint, Action.Expect,
	// Action.Records); deliver Result.Err.
	OpApply
	// OpListPlans: Store.List; deliver Result.Generations.
	OpListPlans
	// OpLoadPlan: Store.Get(Action.Generation); deliver Result.Plan or
	// Result.Err: the plan of an endpoint's own generation, to repair it,
	// or a plan clean-up considers.
	OpLoadPlan
	// OpDeletePlan: Store.Delete(Action.Generation); deliver Result.Err.
	OpDeletePlan
)

var opNames = [...]string{"rest", "load-latest", "read", "apply", "list-plans", "load-plan", "delete-plan"}

// String returns the op's name, e.g. "apply".
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Action is one step an Enactor asks its driver to carry out against the
// Store or the Provider.
type Action struct {
	// Op says what to do, and which other fields are set.
	Op Op
	// Slot is the slot of the action: in the endpoint phase of a pass,
	// which of the (up to EnactorConfig.Parallel) endpoints in flight it
	// is for, from 0; otherwise 0. Next always returns slot 0's action
	// when a driver uses only Next and Deliver.
	Slot int
	// Endpoint, for OpRead and OpApply.
	Endpoint string
	// Expect is the endpoint's state OpApply is conditioned on (its
	// Generation and Version), as last read.
	Expect Records
	// Records is what OpApply writes.
	Records Records
	// Generation is the plan of OpLoadPlan and OpDeletePlan.
	Generation fence.Token
	// issue numbers the action when Ready hands it out (from 1), so that
	// DeliverAction knows an outcome delivered twice or too late.
	issue uint64
}

// String describes the action, e.g. `apply "api" 7 if 5`.
func (a Action) String() string {
	switch a.Op {
	case OpRead:
		return fmt.Sprintf("read %q", a.Endpoint)
	case OpApply:
		return fmt.Sprintf("apply %q %d if %d", a.Endpoint, uint64(a.Records.Generation), uint64(a.Expect.Generation))
	case OpLoadPlan, OpDeletePlan:
		return fmt.Sprintf("%v %d", a.Op, uint64(a.Generation))
	}
	return a.Op.String()
}

// Result is the outcome of an Action, delivered back to the Enactor.
type Result struct {
	// Plan, for OpLoadLatest and OpLoadPlan.
	Plan Plan
	// Records, for OpRead.
	Records Records
	// Generations, for OpListPlans.
	Generations []fence.Token
	// Err is the action's error, or nil.
	Err error
}

// PassStats summarises one pass.
type PassStats struct {
	// Generation is the plan the pass applied; zero if the store was empty.
	Generation fence.Token
	// Applied and Repaired count endpoints written; Current those already
	// at the plan; Newer those at a newer generation; Failed those given
	// up on (a read or apply error, ErrNameInUse, more than MaxConflicts
	// conflicts, an endpoint clean-up could not read). A failed endpoint
	// keeps the plans it may need; clean-up goes on for the others.
	Applied, Repaired, Current, Newer, Failed int
	// Conflicts counts refused applies.
	Conflicts int
	// Highest is the highest applied generation the pass read on any
	// endpoint. If it is above Generation, the Store has lost (or not yet
	// received) newer plans, and a planner restarted from the Store must
	// resume above it, or every endpoint refuses its plans as older: give
	// it the Store's latest plan with its Generation raised to Highest as
	// PlannerConfig.Previous.
	Highest fence.Token
	// Deleted counts plans clean-up deleted.
	Deleted int
	// Err is the first error of the pass, if any.
	Err error
}

type phase uint8

const (
	// phaseNew is the zero Enactor's: it has not been set up (init).
	phaseNew phase = iota
	phaseStart
	phaseEndpoints // the slots hold the endpoints in flight
	// The phases of a slot.
	phaseRead
	phaseApply
	phaseLoadOwn    // the plan of an endpoint's own, newer generation
	phaseLoadNewest // the newest plan, to refill an endpoint whose plan is lost
	// The phases of clean-up.
	phaseList
	phaseReadPinner // the endpoint that kept a candidate last time
	phaseLoadCandidate
	phaseReadExtra
	phaseDelete
	phaseRest
)

// Enactor applies the newest plan to every endpoint, safely alongside any
// number of other enactors, and cleans up plans nobody can need. It is a
// pure state machine, in the manner of go.etcd.io/raft: it says what to
// do, the caller does it against its Store and Provider and hands the
// outcome back. The Enactor does no I/O and owns no goroutine or clock,
// so a simulation and a real service drive the same code; Pass and Run
// are the thin driver for real use.
//
// One pass: load the newest plan; for each of its endpoints (up to
// EnactorConfig.Parallel at once, each in a slot of its own; otherwise in
// order), read the endpoint, and if the plan is newer than its applied
// generation (or the same generation with other records), apply the plan
// conditioned on the generation and version just read — so "newer" is
// decided atomically with the write; on a refusal, read again. An
// endpoint found empty or corrupt at a generation newer than the plan is
// repaired with the plan of that generation (see the package
// documentation). Then, once every endpoint of the pass is done, clean up
// (see the package documentation for the rule), one action at a time.
//
// There are two ways to drive it. Next and Deliver run one action at a
// time: Next returns the action to carry out, Deliver takes its outcome;
// the endpoints are then done one after another, in the plan's order,
// whatever Parallel is. Ready and DeliverAction run several: Ready hands
// out every action that may run now (up to Parallel in the endpoint
// phase, one per slot), and DeliverAction takes the outcome of one of
// them, in any order; then Ready again. A driver uses one pair or the
// other within a pass.
//
// An Enactor is not safe for concurrent use; drive it from one
// goroutine (Pass runs the actions themselves concurrently). A Pass or
// Run called while another Pass or Run of the same Enactor runs is
// refused with an error matching ErrInvalidArgument; other concurrent
// calls are not detected. What it
// remembers between passes (the generations it read) is of one Store and
// Provider: Pass and Run forget it, and start a new pass, when given
// another Store or Provider than the last pass's (compared as pointers:
// one of another kind counts as new on every pass, which costs reads, not
// safety); a driver of Next and Deliver (or Ready and DeliverAction) must
// use one Enactor per Store and Provider.
//
// The zero Enactor is ready to use and the same as
// NewEnactor(EnactorConfig{}): it runs with the defaults of the zero
// EnactorConfig, Name "enactor" and no OnEvent.
type Enactor struct {
	cfg   EnactorConfig
	phase phase
	plan  Plan
	names []string
	i     int // the next endpoint of names to start
	// slots hold the endpoints in flight in phaseEndpoints; active counts
	// the busy ones.
	slots  []slot
	active int
	// bounds holds, for the endpoints read this pass, the applied
	// generation read: a lower bound, since generations never decrease.
	bounds map[string]fence.Token
	// failed holds the endpoints that could not be read this pass.
	failed map[string]bool
	// known holds, across passes, the last generation read of every
	// endpoint seen recently: the lower bound of one that cannot be read.
	known map[string]fence.Token
	// pinnedBy remembers, across passes, an endpoint that a kept plan
	// names and that kept it: a plan's endpoints never change, so while
	// that endpoint still keeps it the plan need not be loaded again.
	pinnedBy map[fence.Token]string
	gens     []fence.Token // clean-up candidates
	ci       int
	extra    []string
	deleted  int
	stats    PassStats
	last     PassStats
	// pending is the action outside phaseEndpoints, issued whether Ready
	// has handed it out; issues numbers the actions Ready hands out.
	pending Action
	issued  bool
	issues  uint64
	// store and provider are those of the last Pass: known and pinnedBy
	// are of them.
	store    Store
	provider Provider
	// running is 1 while a Pass or Run drives the Enactor: a second one
	// at the same time is refused.
	running int32
	// events are those of the step in progress, for OnEvent.
	events []Event
}

// slot is one endpoint in flight.
type slot struct {
	name    string
	phase   phase // phaseRead, phaseApply, phaseLoadOwn or phaseLoadNewest
	action  Action
	cur     Records // the endpoint as last read
	corrupt bool    // cur came with ErrCorruptRecords
	tries   int
	busy    bool // it holds an endpoint
	issued  bool // Ready handed out action, and its outcome is due
}

// NewEnactor returns an Enactor at the start of its first pass, or an
// error matching ErrInvalidConfig that names every invalid field.
func NewEnactor(cfg EnactorConfig) (*Enactor, error) {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Retention", int64(cfg.Retention)},
		{"MaxConflicts", int64(cfg.MaxConflicts)},
		{"MaxDeletes", int64(cfg.MaxDeletes)},
		{"Interval", int64(cfg.Interval)},
		{"Parallel", int64(cfg.Parallel)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%w: EnactorConfig.%s %d is negative", ErrInvalidConfig, f.name, f.v))
		}
	}
	if cfg.Parallel > MaxParallel {
		errs = append(errs, fmt.Errorf("%w: EnactorConfig.Parallel %d is above MaxParallel %d", ErrInvalidConfig, cfg.Parallel, MaxParallel))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := &Enactor{cfg: cfg}
	e.init()
	return e, nil
}

// init sets up a new Enactor, the zero one included: the defaults of its
// config, and the first action of its first pass.
func (e *Enactor) init() {
	if e.phase != phaseNew {
		return
	}
	if e.cfg.Name == "" {
		e.cfg.Name = defaultName
	}
	if e.cfg.Retention == 0 {
		e.cfg.Retention = DefaultRetention
	}
	if e.cfg.MaxConflicts == 0 {
		e.cfg.MaxConflicts = DefaultMaxConflicts
	}
	if e.cfg.MaxDeletes == 0 {
		e.cfg.MaxDeletes = DefaultMaxDeletes
	}
	if e.cfg.Interval == 0 {
		e.cfg.Interval = DefaultInterval
	}
	if e.cfg.Parallel == 0 {
		e.cfg.Parallel = DefaultParallel
	}
	e.phase = phaseStart
	e.pending = Action{Op: OpLoadLatest}
}

// defaultName is the Name of an Enactor whose EnactorConfig.Name is empty.
const defaultName = "enactor"

// Name returns EnactorConfig.Name, or "enactor" if it is empty.
func (e *Enactor) Name() string {
	if e.cfg.Name == "" {
		return defaultName
	}
	return e.cfg.Name
}

// Next returns the action to carry out next: outside the endpoint phase
// the one action of the pass, and within it the action of the lowest
// slot in flight (slot 0, for a driver of Next and Deliver only). It does
// not change the Enactor: calling it twice returns the same action.
func (e *Enactor) Next() Action {
	switch e.phase {
	case phaseNew:
		return Action{Op: OpLoadLatest}
	case phaseEndpoints:
		return e.slots[e.lowestBusy()].action
	}
	return e.pending
}

// lowestBusy returns the lowest slot that holds an endpoint; in
// phaseEndpoints there is always one.
func (e *Enactor) lowestBusy() int {
	for s := range e.slots {
		if e.slots[s].busy {
			return s
		}
	}
	panic("dnsplan: no slot busy in the endpoint phase") // unreachable: see endpointDone
}

// Ready appends to buf, and returns, every action that may be carried
// out now and that Ready has not handed out yet: in the endpoint phase of
// a pass, one action per slot, and up to EnactorConfig.Parallel slots,
// each filled with the plan's next endpoint as it frees up; otherwise
// the one action of the pass, until its outcome is delivered. It returns
// buf unchanged while every action handed out awaits its outcome. The
// actions may be carried out concurrently and their outcomes delivered
// with DeliverAction in any order. An OpRest action means the pass is
// over (it is handed out once every other action's outcome is in).
func (e *Enactor) Ready(buf []Action) []Action {
	e.init()
	if e.phase != phaseEndpoints {
		if !e.issued {
			e.issued = true
			e.issues++
			e.pending.issue = e.issues
			buf = append(buf, e.pending)
		}
		return buf
	}
	for s := range e.cfg.Parallel {
		if (s >= len(e.slots) || !e.slots[s].busy) && !e.startEndpoint(s) {
			break
		}
	}
	for s := range e.slots {
		if sl := &e.slots[s]; sl.busy && !sl.issued {
			sl.issued = true
			e.issues++
			sl.action.issue = e.issues
			buf = append(buf, sl.action)
		}
	}
	return buf
}

// DeliverAction hands the Enactor the outcome of a, an action Ready
// handed out, and advances a's slot; then Ready hands out what may run
// next. It refuses, with an error matching ErrInvalidArgument and without
// changing the Enactor, an action whose outcome is not due: delivered
// already, not handed out by Ready (Next's actions are delivered with
// Deliver; an action altered since Ready handed it out is not the one
// it handed out), or of a pass abandoned since (by Pass or Run, after a
// cancellation, or on a new Store or Provider).
func (e *Enactor) DeliverAction(a Action, r Result) error {
	e.init()
	if a.issue != 0 {
		switch {
		case e.phase == phaseEndpoints:
			if a.Slot >= 0 && a.Slot < len(e.slots) {
				if sl := &e.slots[a.Slot]; sl.busy && sl.issued && sameAction(sl.action, a) {
					sl.issued = false
					e.deliverSlot(a.Slot, r)
					e.flush()
					return nil
				}
			}
		case e.issued && sameAction(e.pending, a):
			e.issued = false
			e.deliverPass(r)
			e.flush()
			return nil
		}
	}
	return fmt.Errorf("%w: Enactor.DeliverAction: the outcome of %v (slot %d) is not due: delivered already, not handed out by Ready, or of an abandoned pass",
		ErrInvalidArgument, a, a.Slot)
}

// sameAction reports whether a is the action want, as Ready handed it
// out: not one a driver altered since (another endpoint, generation or
// condition), whose outcome would be taken for want's.
func sameAction(want, a Action) bool {
	return a.issue == want.issue && a.Op == want.Op && a.Slot == want.Slot &&
		a.Endpoint == want.Endpoint && a.Generation == want.Generation &&
		sameRecords(a.Expect, want.Expect) && sameRecords(a.Records, want.Records)
}

func sameRecords(a, b Records) bool {
	return a.Generation == b.Generation && a.Version == b.Version && slices.Equal(a.Targets, b.Targets)
}

// LastPass returns the statistics of the last completed pass.
func (e *Enactor) LastPass() PassStats { return e.last }

// emit queues ev for OnEvent: flush calls it once the step is over, so
// that an OnEvent that panics leaves the Enactor where the step took it,
// not halfway (a step counted but not done, and done again).
func (e *Enactor) emit(ev Event) {
	if e.cfg.OnEvent != nil {
		ev.Enactor = e.cfg.Name
		e.events = append(e.events, ev)
	}
}

// flush hands OnEvent the events of the step just over.
func (e *Enactor) flush() {
	evs := e.events
	e.events = e.events[:0]
	for i := range evs {
		e.cfg.OnEvent(evs[i])
		evs[i] = Event{} // drop its Err
	}
}

func (e *Enactor) fail(endpoint string, err error) {
	if e.stats.Err == nil {
		e.stats.Err = err
	}
	e.emit(Event{Kind: EventError, Endpoint: endpoint, Generation: e.plan.Generation, Err: err})
}

// failEndpoint counts the endpoint failed and reports err.
func (e *Enactor) failEndpoint(endpoint string, err error) {
	e.stats.Failed++
	e.fail(endpoint, err)
}

// Deliver hands the Enactor the outcome of the action Next returned and
// advances it to the next action.
func (e *Enactor) Deliver(r Result) {
	e.init()
	if e.phase == phaseEndpoints {
		s := e.lowestBusy()
		e.slots[s].issued = false
		e.deliverSlot(s, r)
		e.flush()
		return
	}
	e.issued = false
	e.deliverPass(r)
	e.flush()
}

// deliverPass delivers the outcome of the action outside the endpoint
// phase.
func (e *Enactor) deliverPass(r Result) {
	switch e.pending.Op {
	case OpRest:
		e.phase = phaseStart
		e.pending = Action{Op: OpLoadLatest}
	case OpLoadLatest:
		e.startPass(r)
	case OpRead:
		if e.phase == phaseReadExtra {
			e.deliverExtra(r)
			return
		}
		e.deliverPinner(r)
	case OpListPlans:
		e.deliverList(r)
	case OpLoadPlan:
		e.deliverCandidate(r)
	case OpDeletePlan:
		g := e.pending.Generation
		switch {
		case r.Err == nil:
			e.stats.Deleted++
			e.deleted++
			e.emit(Event{Kind: EventDeleted, Generation: g})
		case errors.Is(r.Err, ErrNotFound):
			// Another enactor's clean-up got there first.
		default:
			e.fail("", r.Err)
		}
		e.nextCandidate()
	}
}

// deliverSlot delivers the outcome of slot s's action.
func (e *Enactor) deliverSlot(s int, r Result) {
	switch e.slots[s].phase {
	case phaseRead:
		e.deliverRead(s, r)
	case phaseApply:
		e.deliverApply(s, r)
	case phaseLoadOwn:
		e.deliverOwn(s, r)
	case phaseLoadNewest:
		e.deliverNewest(s, r)
	}
}

// startPass takes the newest plan and starts on its endpoints.
func (e *Enactor) startPass(r Result) {
	e.stats = PassStats{}
	if r.Err != nil {
		if !errors.Is(r.Err, ErrNotFound) {
			e.fail("", r.Err)
		}
		e.rest()
		return
	}
	e.plan = r.Plan
	e.stats.Generation = r.Plan.Generation
	e.names = r.Plan.EndpointNames()
	e.bounds = make(map[string]fence.Token, len(e.names))
	clear(e.failed)
	e.i = 0
	e.phase = phaseEndpoints
	if !e.startEndpoint(0) {
		e.startCleanup()
	}
}

// startEndpoint starts the plan's next endpoint in slot s, which must be
// free, and reports whether one was left.
func (e *Enactor) startEndpoint(s int) bool {
	for e.i < len(e.names) && len(e.plan.Endpoints[e.names[e.i]]) == 0 {
		// An endpoint the plan leaves empty is never written: its
		// records stay as they are.
		e.i++
	}
	if e.i >= len(e.names) {
		return false
	}
	if s >= len(e.slots) {
		e.slots = append(e.slots, make([]slot, s+1-len(e.slots))...)
	}
	e.slots[s] = slot{name: e.names[e.i], busy: true}
	e.i++
	e.active++
	e.read(s)
	return true
}

// read asks for slot s's endpoint to be read.
func (e *Enactor) read(s int) {
	sl := &e.slots[s]
	sl.phase = phaseRead
	sl.action = Action{Op: OpRead, Slot: s, Endpoint: sl.name}
}

// endpointDone frees slot s and starts the plan's next endpoint in it;
// once none is left and no slot is busy, clean-up starts, so that it
// knows what the pass read of every endpoint.
func (e *Enactor) endpointDone(s int) {
	e.slots[s].busy = false
	e.slots[s].issued = false
	e.active--
	if !e.startEndpoint(s) && e.active == 0 {
		e.startCleanup()
	}
}

// noteRead records a successful (or corrupt) read of name at generation g.
func (e *Enactor) noteRead(name string, g fence.Token) {
	e.noteBound(name, g)
	e.stats.Highest = max(e.stats.Highest, g)
}

// noteBound records that name is at generation g or above.
func (e *Enactor) noteBound(name string, g fence.Token) {
	e.bounds[name] = g
	if e.known == nil {
		e.known = make(map[string]fence.Token)
	}
	e.known[name] = g
}

// noteUnreadable records that name could not be read this pass.
func (e *Enactor) noteUnreadable(name string) {
	if e.failed == nil {
		e.failed = make(map[string]bool)
	}
	e.failed[name] = true
}

func (e *Enactor) deliverRead(s int, r Result) {
	sl := &e.slots[s]
	name := sl.name
	sl.corrupt = r.Err != nil && errors.Is(r.Err, ErrCorruptRecords)
	if r.Err != nil && !sl.corrupt {
		e.noteUnreadable(name)
		e.failEndpoint(name, r.Err)
		e.endpointDone(s)
		return
	}
	if sl.corrupt {
		// The generation and version are intact, the targets are not:
		// rewritable under that condition, like an empty endpoint.
		r.Records.Targets = nil
	}
	sl.cur = r.Records
	e.noteRead(name, r.Records.Generation)
	want := e.plan.Endpoints[name]
	have := r.Records.Generation
	switch {
	case have > e.plan.Generation && len(r.Records.Targets) == 0:
		// Empty or corrupt at a generation newer than the enactor's plan:
		// repair it with the plan of that generation, never with this
		// (older) one.
		sl.phase = phaseLoadOwn
		sl.action = Action{Op: OpLoadPlan, Slot: s, Generation: have}
	case have > e.plan.Generation:
		e.newer(s)
	case have == e.plan.Generation && !sl.corrupt && SameTargets(r.Records.Targets, want):
		e.stats.Current++
		e.endpointDone(s)
	default:
		// The plan is newer than the endpoint, or of the same generation
		// with other (say, empty or corrupt) records: write it,
		// conditioned on the generation and version just read.
		e.write(s, Records{Generation: e.plan.Generation, Targets: want})
	}
}

// write asks for r to be applied to slot s's endpoint, conditioned on the
// endpoint as last read.
func (e *Enactor) write(s int, r Records) {
	sl := &e.slots[s]
	sl.phase = phaseApply
	sl.action = Action{Op: OpApply, Slot: s, Endpoint: sl.name, Expect: sl.cur, Records: r}
}

// newer counts slot s's endpoint as ahead of the plan and moves on.
func (e *Enactor) newer(s int) {
	e.stats.Newer++
	e.emit(Event{Kind: EventNewer, Endpoint: e.slots[s].name, Generation: e.plan.Generation, Have: e.slots[s].cur.Generation})
	e.endpointDone(s)
}

// deliverOwn has the plan of the generation an empty or corrupt endpoint
// carries, newer than the enactor's plan: its targets are what the
// endpoint must serve.
func (e *Enactor) deliverOwn(s int, r Result) {
	sl := &e.slots[s]
	name, have := sl.name, sl.cur.Generation
	switch {
	case r.Err == nil && len(r.Plan.Endpoints[name]) > 0:
		e.write(s, Records{Generation: have, Targets: r.Plan.Endpoints[name]})
	case r.Err == nil:
		e.failEndpoint(name, fmt.Errorf("dnsplan: enactor %s: %q is empty or corrupt at generation %d, whose plan does not name it: left for a newer plan",
			e.cfg.Name, name, uint64(have)))
		e.endpointDone(s)
	case !errors.Is(r.Err, ErrNotFound):
		e.failEndpoint(name, r.Err)
		e.endpointDone(s)
	case sl.corrupt:
		// The Store lost the plan, and the endpoint may still serve its
		// addresses: only an empty endpoint is refilled with another
		// plan's targets.
		e.failEndpoint(name, fmt.Errorf("%w: enactor %s: %q is corrupt at generation %d, whose plan the Store lost: left for a newer plan",
			ErrCorruptRecords, e.cfg.Name, name, uint64(have)))
		e.endpointDone(s)
	default:
		// The Store lost the plan of an empty endpoint: refill it from the
		// newest plan, if no plan at or above its generation exists.
		sl.phase = phaseLoadNewest
		sl.action = Action{Op: OpLoadLatest, Slot: s}
	}
}

// deliverNewest has the Store's newest plan, for an endpoint found empty
// at a generation whose plan the Store lost. If that plan is older than
// the endpoint's generation, its targets are written under the endpoint's
// own generation (serving something beats serving nothing, and the
// generation never decreases); if it is not, writing it is the job of
// the passes that apply it.
func (e *Enactor) deliverNewest(s int, r Result) {
	name, have := e.slots[s].name, e.slots[s].cur.Generation
	switch {
	case r.Err == nil && r.Plan.Generation <= have && len(r.Plan.Endpoints[name]) > 0:
		e.write(s, Records{Generation: have, Targets: r.Plan.Endpoints[name]})
	case r.Err == nil || errors.Is(r.Err, ErrNotFound):
		e.newer(s)
	default:
		e.failEndpoint(name, r.Err)
		e.endpointDone(s)
	}
}

func (e *Enactor) deliverApply(s int, r Result) {
	sl := &e.slots[s]
	name := sl.name
	wrote := sl.action.Records.Generation
	var stale *fence.StaleError
	switch {
	case r.Err == nil && wrote > e.plan.Generation:
		// The endpoint was ahead of the plan (written only when it was
		// empty or corrupt): its own generation was rewritten.
		e.noteBound(name, wrote)
		e.stats.Repaired++
		e.emit(Event{Kind: EventRepaired, Endpoint: name, Generation: wrote, Have: sl.cur.Generation})
		e.endpointDone(s)
	case r.Err == nil:
		e.noteBound(name, wrote)
		kind := EventApplied
		if sl.cur.Generation == e.plan.Generation || (sl.cur.Generation != 0 && len(sl.cur.Targets) == 0) || sl.corrupt {
			kind = EventRepaired
			e.stats.Repaired++
		} else {
			e.stats.Applied++
		}
		e.emit(Event{Kind: kind, Endpoint: name, Generation: wrote, Have: sl.cur.Generation})
		e.endpointDone(s)
	case errors.Is(r.Err, ErrNameInUse):
		// Permanent until an operator acts: no retry in this pass.
		e.failEndpoint(name, r.Err)
		e.endpointDone(s)
	case errors.As(r.Err, &stale):
		e.stats.Conflicts++
		sl.tries++
		e.emit(Event{Kind: EventConflict, Endpoint: name, Generation: wrote, Have: stale.Have, Err: r.Err})
		if sl.tries > e.cfg.MaxConflicts {
			e.failEndpoint(name, fmt.Errorf("dnsplan: enactor %s gave up on %q after %d conflicts: %w", e.cfg.Name, name, sl.tries, r.Err))
			e.endpointDone(s)
			return
		}
		e.read(s)
	default:
		e.failEndpoint(name, r.Err)
		e.endpointDone(s)
	}
}

// startCleanup lists the plans.
func (e *Enactor) startCleanup() {
	e.phase = phaseList
	e.pending = Action{Op: OpListPlans}
	e.issued = false
}

// bound returns the lowest applied generation name can have, as far as
// the enactor knows: read this pass, or else read in an earlier pass
// (generations never decrease), or else zero; ok is false if name has
// not been read this pass and has not failed either, so that a read would
// tell more.
func (e *Enactor) bound(name string) (g fence.Token, ok bool) {
	if g, ok := e.bounds[name]; ok {
		return g, true
	}
	return e.known[name], e.failed[name]
}

// keeps reports whether an endpoint at generation b or above may need
// plan g: it may serve g (b <= g), an enactor holding g may yet write it
// there (b < g), or g is within Retention of b.
func (e *Enactor) keeps(b, g fence.Token) bool {
	return b <= g || uint64(b-g) <= uint64(e.cfg.Retention)
}

func (e *Enactor) deliverList(r Result) {
	if r.Err != nil {
		e.fail("", r.Err)
		e.rest()
		return
	}
	e.gens = e.gens[:0]
	for _, g := range r.Generations {
		// The plan the pass applied, the newer ones (they repair
		// endpoints whose plans the Store lost) and Retention's margin
		// below it are never deleted.
		if g < e.plan.Generation && uint64(e.plan.Generation-g) > uint64(e.cfg.Retention) {
			e.gens = append(e.gens, g)
		}
	}
	for g := range e.pinnedBy {
		if _, found := slices.BinarySearch(r.Generations, g); !found {
			delete(e.pinnedBy, g)
		}
	}
	e.deleted = 0
	e.ci = -1
	e.nextCandidate()
}

// nextCandidate moves to the next plan clean-up may delete: if the
// endpoint that kept it last time is known and still keeps it, it is
// kept without loading it; otherwise it is loaded, to learn its
// endpoints.
func (e *Enactor) nextCandidate() {
	e.ci++
	if e.ci >= len(e.gens) || e.deleted >= e.cfg.MaxDeletes {
		e.rest()
		return
	}
	g := e.gens[e.ci]
	if name, ok := e.pinnedBy[g]; ok {
		b, known := e.bound(name)
		if !known {
			e.phase = phaseReadPinner
			e.pending = Action{Op: OpRead, Endpoint: name}
			return
		}
		if e.keeps(b, g) {
			e.nextCandidate()
			return
		}
		delete(e.pinnedBy, g)
	}
	e.loadCandidate(g)
}

func (e *Enactor) loadCandidate(g fence.Token) {
	e.phase = phaseLoadCandidate
	e.pending = Action{Op: OpLoadPlan, Generation: g}
}

// deliverPinner has the endpoint that kept the candidate last time.
func (e *Enactor) deliverPinner(r Result) {
	name, g := e.pending.Endpoint, e.gens[e.ci]
	e.noteCleanupRead(name, r)
	if b, _ := e.bound(name); e.keeps(b, g) {
		e.nextCandidate()
		return
	}
	delete(e.pinnedBy, g)
	e.loadCandidate(g)
}

// noteCleanupRead records a read of an endpoint made for clean-up.
func (e *Enactor) noteCleanupRead(name string, r Result) {
	if r.Err != nil && !errors.Is(r.Err, ErrCorruptRecords) {
		e.noteUnreadable(name)
		e.failEndpoint(name, r.Err)
		return
	}
	e.noteRead(name, r.Records.Generation)
}

func (e *Enactor) deliverCandidate(r Result) {
	switch {
	case errors.Is(r.Err, ErrNotFound):
		e.nextCandidate()
		return
	case r.Err != nil:
		// Its endpoints are unknown, so it is kept.
		e.fail("", r.Err)
		e.nextCandidate()
		return
	}
	g := e.gens[e.ci]
	e.extra = e.extra[:0]
	for name, ts := range r.Plan.Endpoints {
		if len(ts) == 0 {
			continue // never written by an enactor: it needs nothing
		}
		b, known := e.bound(name)
		switch {
		case !known:
			e.extra = append(e.extra, name)
		case e.keeps(b, g):
			e.pin(g, name)
			e.nextCandidate()
			return
		}
	}
	slices.Sort(e.extra)
	e.nextExtra()
}

// pin remembers that name keeps plan g.
func (e *Enactor) pin(g fence.Token, name string) {
	if e.pinnedBy == nil {
		e.pinnedBy = make(map[fence.Token]string)
	}
	e.pinnedBy[g] = name
}

// nextExtra reads the next endpoint of the candidate that has not been
// read this pass, or, when none is left and none keeps it, deletes it.
func (e *Enactor) nextExtra() {
	if len(e.extra) == 0 {
		e.phase = phaseDelete
		e.pending = Action{Op: OpDeletePlan, Generation: e.gens[e.ci]}
		return
	}
	e.phase = phaseReadExtra
	e.pending = Action{Op: OpRead, Endpoint: e.extra[0]}
}

func (e *Enactor) deliverExtra(r Result) {
	name, g := e.extra[0], e.gens[e.ci]
	e.noteCleanupRead(name, r)
	if b, _ := e.bound(name); e.keeps(b, g) {
		e.pin(g, name)
		e.nextCandidate()
		return
	}
	e.extra = e.extra[1:]
	e.nextExtra()
}

// rest ends the pass. The generations known of endpoints the pass did not
// come across are forgotten, so that the memory of an Enactor is bounded
// by the endpoints its Store names.
func (e *Enactor) rest() {
	if len(e.known) > len(e.bounds)+len(e.failed) {
		pinners := make(map[string]bool, len(e.pinnedBy))
		for _, name := range e.pinnedBy {
			pinners[name] = true
		}
		for name := range e.known {
			if _, read := e.bounds[name]; !read && !e.failed[name] && !pinners[name] {
				delete(e.known, name)
			}
		}
	}
	// The pass is over before OnEvent hears of it: if OnEvent panics,
	// the next Pass starts a new one.
	e.phase = phaseRest
	e.last = e.stats
	e.pending = Action{Op: OpRest}
	e.issued = false
	e.emit(Event{Kind: EventPassDone, Generation: e.stats.Generation, Err: e.stats.Err})
}
