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
	// DefaultRetention is how many generations below the oldest applied
	// one clean-up keeps.
	DefaultRetention = 2
	// DefaultMaxConflicts bounds the refused applies to one endpoint in
	// one pass.
	DefaultMaxConflicts = 8
	// DefaultMaxDeletes bounds the plans one clean-up deletes.
	DefaultMaxDeletes = 64
	// DefaultInterval is the pause between two passes of Run.
	DefaultInterval = time.Second
)

// EnactorConfig configures an Enactor. The zero value is usable, and is
// what the zero Enactor runs with.
type EnactorConfig struct {
	// Name identifies the enactor in events, e.g. "us-east-1a". Empty
	// means "enactor".
	Name string
	// Retention is how many generations below the oldest generation still
	// applied on any endpoint clean-up keeps: it deletes plan g only if
	// g < oldest applied - Retention. Zero means DefaultRetention;
	// negative is invalid. (Any value is safe: the margin is for people
	// who want recent history.)
	Retention int
	// MaxConflicts bounds how often, in one pass, an apply to one endpoint
	// may be refused because another writer changed it first; the enactor
	// re-reads after each refusal and moves on to the next endpoint after
	// the last. Zero means DefaultMaxConflicts; negative is invalid.
	MaxConflicts int
	// MaxDeletes bounds the plans one clean-up deletes. Zero means
	// DefaultMaxDeletes; negative is invalid.
	MaxDeletes int
	// Interval is the pause between passes in Run. Zero means
	// DefaultInterval; negative is invalid.
	Interval time.Duration
	// OnEvent, if not nil, receives an Event for everything the enactor
	// does, on the goroutine that drives it. It must not block.
	OnEvent func(Event)
}

// EventKind says what an Event reports.
type EventKind uint8

// The kinds of Event.
const (
	// EventApplied: the plan was written to the endpoint.
	EventApplied EventKind = iota + 1
	// EventRepaired: the endpoint's records were empty or differed from
	// the plan of their own generation, and were rewritten. An empty
	// endpoint whose generation is newer than the enactor's plan (the
	// Store lost the plans up to it) is rewritten with the plan's targets
	// under the endpoint's own generation: Event.Generation is then that
	// generation.
	EventRepaired
	// EventConflict: an apply was refused because the endpoint changed
	// between the read and the write; the enactor re-reads.
	EventConflict
	// EventNewer: the endpoint already has a newer generation than the
	// enactor's plan; nothing was written.
	EventNewer
	// EventDeleted: clean-up deleted a plan.
	EventDeleted
	// EventError: an operation failed; Err says why.
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
	// OpLoadLatest: Store.Latest; deliver Result.Plan or Result.Err.
	OpLoadLatest
	// OpRead: Provider.Read(Action.Endpoint); deliver Result.Records.
	OpRead
	// OpApply: Provider.Apply(Action.Endpoint, Action.Expect,
	// Action.Records); deliver Result.Err.
	OpApply
	// OpListPlans: Store.List; deliver Result.Generations.
	OpListPlans
	// OpLoadPlan: Store.Get(Action.Generation); deliver Result.Plan.
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
	// Endpoint, for OpRead and OpApply.
	Endpoint string
	// Expect is the endpoint's state OpApply is conditioned on (its
	// Generation and Version), as last read.
	Expect Records
	// Records is what OpApply writes.
	Records Records
	// Generation is the plan of OpLoadPlan and OpDeletePlan.
	Generation fence.Token
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
	// up on (errors, or more than MaxConflicts conflicts).
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
	phaseRead
	phaseApply
	phaseList
	phaseLoadCandidate
	phaseReadExtra
	phaseDelete
	phaseRest
)

// Enactor applies the newest plan to every endpoint, safely alongside any
// number of other enactors, and cleans up plans nobody can need. It is a
// pure state machine, in the manner of go.etcd.io/raft: Next says what to
// do, the caller does it against its Store and Provider and hands the
// outcome to Deliver. The Enactor does no I/O and owns no goroutine or
// clock, so a simulation and a real service drive the same code; Pass and
// Run are the thin driver for real use.
//
// One pass: load the newest plan; for each of its endpoints, in order,
// read the endpoint, and if the plan is newer than its applied generation
// (or the same generation with other records), apply the plan conditioned
// on the generation just read — so "newer" is decided atomically with the
// write; on a refusal, read again. Then clean up (see the package
// documentation for the rule). An Enactor is not safe for concurrent use;
// run one per goroutine.
//
// The zero Enactor is ready to use and the same as
// NewEnactor(EnactorConfig{}): it runs with the defaults of the zero
// EnactorConfig, Name "enactor" and no OnEvent.
type Enactor struct {
	cfg     EnactorConfig
	phase   phase
	plan    Plan
	names   []string
	i       int
	cur     Records
	tries   int
	bounds  map[string]fence.Token // lower bounds of applied generations
	gens    []fence.Token          // clean-up candidates
	ci      int
	extra   []string
	stats   PassStats
	last    PassStats
	pending Action
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
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%w: EnactorConfig.%s %d is negative", ErrInvalidConfig, f.name, f.v))
		}
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

// Next returns the action to carry out next. It does not change the
// Enactor: calling it twice returns the same action.
func (e *Enactor) Next() Action {
	if e.phase == phaseNew {
		return Action{Op: OpLoadLatest}
	}
	return e.pending
}

// LastPass returns the statistics of the last completed pass.
func (e *Enactor) LastPass() PassStats { return e.last }

func (e *Enactor) emit(ev Event) {
	if e.cfg.OnEvent != nil {
		ev.Enactor = e.cfg.Name
		e.cfg.OnEvent(ev)
	}
}

func (e *Enactor) fail(endpoint string, err error) {
	if e.stats.Err == nil {
		e.stats.Err = err
	}
	e.emit(Event{Kind: EventError, Endpoint: endpoint, Generation: e.plan.Generation, Err: err})
}

// Deliver hands the Enactor the outcome of the action Next returned and
// advances it to the next action.
func (e *Enactor) Deliver(r Result) {
	e.init()
	switch e.pending.Op {
	case OpRest:
		e.phase = phaseStart
		e.pending = Action{Op: OpLoadLatest}
	case OpLoadLatest:
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
		e.i = -1
		e.nextEndpoint()
	case OpRead:
		if e.phase == phaseReadExtra {
			e.deliverExtra(r)
			return
		}
		e.deliverRead(r)
	case OpApply:
		e.deliverApply(r)
	case OpListPlans:
		e.deliverList(r)
	case OpLoadPlan:
		e.deliverCandidate(r)
	case OpDeletePlan:
		g := e.pending.Generation
		switch {
		case r.Err == nil:
			e.stats.Deleted++
			e.emit(Event{Kind: EventDeleted, Generation: g})
		case errors.Is(r.Err, ErrNotFound):
			// Another enactor's clean-up got there first.
		default:
			e.fail("", r.Err)
		}
		e.nextDelete()
	}
}

// nextEndpoint moves to the next endpoint of the plan, or to clean-up.
func (e *Enactor) nextEndpoint() {
	e.i++
	e.tries = 0
	for e.i < len(e.names) && len(e.plan.Endpoints[e.names[e.i]]) == 0 {
		// An endpoint the plan leaves empty is never written: its
		// records stay as they are, and it takes no part in clean-up.
		e.i++
	}
	if e.i >= len(e.names) {
		e.startCleanup()
		return
	}
	e.phase = phaseRead
	e.pending = Action{Op: OpRead, Endpoint: e.names[e.i]}
}

func (e *Enactor) deliverRead(r Result) {
	name := e.names[e.i]
	if r.Err != nil {
		e.stats.Failed++
		e.fail(name, r.Err)
		e.nextEndpoint()
		return
	}
	e.cur = r.Records
	want := e.plan.Endpoints[name]
	have := r.Records.Generation
	e.stats.Highest = max(e.stats.Highest, have)
	switch {
	case have > e.plan.Generation && len(r.Records.Targets) == 0:
		// Empty at a generation newer than every plan the enactor has: the
		// plans up to it are lost, and no DNS answer is worse than an old
		// one. Write the plan's targets under the endpoint's own generation,
		// conditioned on it, so the generation never decreases and the
		// planner's next plan replaces them as usual.
		e.phase = phaseApply
		e.pending = Action{Op: OpApply, Endpoint: name, Expect: r.Records,
			Records: Records{Generation: have, Targets: want}}
	case have > e.plan.Generation:
		e.bounds[name] = have
		e.stats.Newer++
		e.emit(Event{Kind: EventNewer, Endpoint: name, Generation: e.plan.Generation, Have: have})
		e.nextEndpoint()
	case have == e.plan.Generation && SameTargets(r.Records.Targets, want):
		e.bounds[name] = have
		e.stats.Current++
		e.nextEndpoint()
	default:
		// The plan is newer than the endpoint, or of the same generation
		// with other (say, empty) records: write it, conditioned on the
		// generation just read.
		e.phase = phaseApply
		e.pending = Action{Op: OpApply, Endpoint: name, Expect: r.Records,
			Records: Records{Generation: e.plan.Generation, Targets: want}}
	}
}

func (e *Enactor) deliverApply(r Result) {
	name := e.names[e.i]
	var stale *fence.StaleError
	switch {
	case r.Err == nil && e.cur.Generation > e.plan.Generation:
		// The endpoint was ahead of the plan (only ever written when it
		// was empty): its own generation was rewritten.
		e.bounds[name] = e.cur.Generation
		e.stats.Repaired++
		e.emit(Event{Kind: EventRepaired, Endpoint: name, Generation: e.cur.Generation, Have: e.cur.Generation})
		e.nextEndpoint()
	case r.Err == nil:
		e.bounds[name] = e.plan.Generation
		kind := EventApplied
		if e.cur.Generation == e.plan.Generation || (e.cur.Generation != 0 && len(e.cur.Targets) == 0) {
			kind = EventRepaired
			e.stats.Repaired++
		} else {
			e.stats.Applied++
		}
		e.emit(Event{Kind: kind, Endpoint: name, Generation: e.plan.Generation, Have: e.cur.Generation})
		e.nextEndpoint()
	case errors.As(r.Err, &stale):
		e.stats.Conflicts++
		e.tries++
		e.emit(Event{Kind: EventConflict, Endpoint: name, Generation: e.plan.Generation, Have: stale.Have, Err: r.Err})
		if e.tries > e.cfg.MaxConflicts {
			e.stats.Failed++
			e.fail(name, fmt.Errorf("dnsplan: enactor %s gave up on %q after %d conflicts: %w", e.cfg.Name, name, e.tries, r.Err))
			e.nextEndpoint()
			return
		}
		e.phase = phaseRead
		e.pending = Action{Op: OpRead, Endpoint: name}
	default:
		e.stats.Failed++
		e.fail(name, r.Err)
		e.nextEndpoint()
	}
}

// startCleanup lists the plans if every endpoint's applied generation is
// known; otherwise the floor is unknown and clean-up is skipped.
func (e *Enactor) startCleanup() {
	if e.stats.Failed > 0 || len(e.bounds) == 0 {
		e.rest()
		return
	}
	e.phase = phaseList
	e.pending = Action{Op: OpListPlans}
}

// floor is the lowest known applied generation of the endpoints seen.
func (e *Enactor) floor() fence.Token {
	f := fence.MaxToken
	for _, g := range e.bounds {
		f = min(f, g)
	}
	return f
}

// deletable reports whether clean-up may delete generation g under floor.
// It never deletes the plan the pass applied, nor a newer one: when
// endpoints are ahead of every stored plan (the Store lost plans), the
// newest plans left are what repairs them.
func (e *Enactor) deletable(g, floor fence.Token) bool {
	return g < floor && uint64(floor-g) > uint64(e.cfg.Retention) && g < e.plan.Generation
}

func (e *Enactor) deliverList(r Result) {
	if r.Err != nil {
		e.fail("", r.Err)
		e.rest()
		return
	}
	floor := e.floor()
	e.gens = e.gens[:0]
	for _, g := range r.Generations {
		if e.deletable(g, floor) && len(e.gens) < e.cfg.MaxDeletes {
			e.gens = append(e.gens, g)
		}
	}
	e.ci = -1
	e.nextCandidate()
}

// nextCandidate loads the next candidate plan, to learn the endpoints it
// names that the newest plan does not.
func (e *Enactor) nextCandidate() {
	e.ci++
	if e.ci >= len(e.gens) {
		e.ci = -1
		e.nextDelete()
		return
	}
	e.phase = phaseLoadCandidate
	e.pending = Action{Op: OpLoadPlan, Generation: e.gens[e.ci]}
}

func (e *Enactor) deliverCandidate(r Result) {
	switch {
	case errors.Is(r.Err, ErrNotFound):
		e.nextCandidate()
		return
	case r.Err != nil:
		e.fail("", r.Err)
		e.rest()
		return
	}
	e.extra = e.extra[:0]
	for name := range r.Plan.Endpoints {
		if _, ok := e.bounds[name]; !ok {
			e.extra = append(e.extra, name)
		}
	}
	slices.Sort(e.extra)
	e.nextExtra()
}

func (e *Enactor) nextExtra() {
	if len(e.extra) == 0 {
		e.nextCandidate()
		return
	}
	e.phase = phaseReadExtra
	e.pending = Action{Op: OpRead, Endpoint: e.extra[0]}
}

func (e *Enactor) deliverExtra(r Result) {
	if r.Err != nil {
		e.fail(e.extra[0], r.Err)
		e.rest()
		return
	}
	e.bounds[e.extra[0]] = r.Records.Generation
	e.extra = e.extra[1:]
	e.nextExtra()
}

// nextDelete deletes the next candidate that is still below the floor,
// now that the floor covers every endpoint of every candidate.
func (e *Enactor) nextDelete() {
	floor := e.floor()
	for e.ci++; e.ci < len(e.gens); e.ci++ {
		if e.deletable(e.gens[e.ci], floor) {
			e.phase = phaseDelete
			e.pending = Action{Op: OpDeletePlan, Generation: e.gens[e.ci]}
			return
		}
	}
	e.rest()
}

func (e *Enactor) rest() {
	e.phase = phaseRest
	e.last = e.stats
	e.emit(Event{Kind: EventPassDone, Generation: e.stats.Generation, Err: e.stats.Err})
	e.pending = Action{Op: OpRest}
}
