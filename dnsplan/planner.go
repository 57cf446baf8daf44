package dnsplan

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// Defaults of PlannerConfig.
const (
	// DefaultWindow is the velocity-control window.
	DefaultWindow = 10 * time.Minute
	// DefaultMaxRemoveFraction is the fraction of an endpoint's capacity
	// that may be removed within one window.
	DefaultMaxRemoveFraction = 0.25
)

// TargetHealth is what a health checker says about one target of an
// endpoint.
type TargetHealth struct {
	// Addr is the target's address (see Target.Addr).
	Addr netip.Addr
	// Capacity is the target's weight if it is kept; positive.
	Capacity uint32
	// Healthy is the health check's verdict.
	Healthy bool
}

// Report is a round of health checks: endpoint name to the health of each
// of its targets. A target that was in the previous plan and is missing
// from its endpoint's report counts as unhealthy; an endpoint missing from
// the report keeps its previous targets.
type Report map[string][]TargetHealth

// PlannerConfig configures a Planner. The zero value is usable, and is
// what the zero Planner runs with.
type PlannerConfig struct {
	// Window is the velocity-control window. Zero means DefaultWindow;
	// negative is invalid.
	Window time.Duration
	// MaxRemoveFraction is the largest fraction of an endpoint's capacity
	// that plans emitted within one Window may remove, however many health
	// checks fail: the capacity removed by plans emitted in (t-Window, t]
	// is at most MaxRemoveFraction times the endpoint's peak capacity over
	// [t-Window, t]. Removals beyond it are held (the target stays, with
	// its previous weight) until the window allows them. The plans counted
	// include those of the Planners this one continues from through
	// Previous: the history travels in Plan.Velocity. Zero means
	// DefaultMaxRemoveFraction; it must be in (0, 1], and NaN is invalid.
	MaxRemoveFraction float64
	// Limits bounds the plans emitted (and the reports accepted).
	Limits Limits
	// Previous, if not nil, is the plan to continue from (for example the
	// Store's latest after a restart): the next plan has its generation
	// plus one and starts from its targets, and velocity control from its
	// Velocity, so that a restarted Planner honours the window its
	// predecessor started, and never takes now as earlier than the time
	// the plan was made (Plan.MadeAt) or the newest change it records. The history can only narrow the removal
	// budget, never widen it: a capacity it claims beyond what the
	// removals it records could explain is not believed. A Planner never
	// drops an endpoint by
	// itself: to decommission one, leave it out of Previous (its records
	// stay as they are; see the package documentation on clean-up).
	Previous *Plan
	// OnEvent, if not nil, receives a PlannerEvent for every removal held
	// back, every endpoint kept static or failed open, and every target or
	// endpoint a limit left out. Next calls it on its own goroutine after
	// the plan is made and the Planner's lock is released, in the order of
	// the decisions (endpoints by name; an endpoint's held targets by
	// address, then those left out by address), so it may call the
	// Planner's methods; a Next that returns an error made no plan and
	// reports nothing. It must not block. If it panics, the panic
	// reaches the caller of Next, and the plan was made all the same:
	// Last returns it, and the next plan follows it.
	OnEvent func(PlannerEvent)
}

// PlannerEventKind says what a PlannerEvent reports.
type PlannerEventKind uint8

// The kinds of PlannerEvent.
const (
	// PlannerHeld: velocity control held back a removal.
	PlannerHeld PlannerEventKind = iota + 1
	// PlannerFailStatic: every target of the endpoint looked unhealthy,
	// so the endpoint kept its previous targets.
	PlannerFailStatic
	// PlannerFailOpen: every target of a new endpoint looked unhealthy,
	// and there was no previous set to keep, so all were planned.
	PlannerFailOpen
	// PlannerCapped: a healthy target (Addr) was left out of the plan
	// because its endpoint was at Limits.MaxTargets with the targets
	// velocity control holds; or a new endpoint (Addr zero) was left out
	// because the plan was at Limits.MaxEndpoints. It is planned as room
	// is made.
	PlannerCapped
)

// PlannerEvent reports one decision of a Planner.
type PlannerEvent struct {
	// Kind says what was decided.
	Kind PlannerEventKind
	// Generation is the plan the decision is part of.
	Generation fence.Token
	// Endpoint is the endpoint decided on.
	Endpoint string
	// Addr is the target whose removal was held (PlannerHeld).
	Addr netip.Addr
	// Removal is the capacity the held removal asked for, and Budget what
	// was left of the window's budget (PlannerHeld).
	Removal, Budget uint64
}

// Planner turns health reports into plans, one generation at a time, with
// velocity control and fail-static. The pure core is Next, which takes the
// time as an argument. A Planner is safe for concurrent use, but plans are
// meant to come from one planner at a time: run a single Planner (elected,
// if need be), and let the Store refuse a second one's generations.
//
// The zero Planner is ready to use and the same as
// NewPlanner(PlannerConfig{}): it starts at generation 1, with the
// defaults of the zero PlannerConfig and no OnEvent.
type Planner struct {
	mu     sync.Mutex
	cfg    PlannerConfig
	prev   Plan
	now    time.Time
	byName map[string]*velocity
}

// velocity is the recent history of one endpoint.
type velocity struct {
	changes []change // oldest first; the first may predate the window
}

type change struct {
	at       time.Time
	capacity uint64 // after the change
	removed  uint64 // by the change
}

// NewPlanner returns a Planner, or an error matching ErrInvalidConfig that
// names every invalid field.
func NewPlanner(cfg PlannerConfig) (*Planner, error) {
	var errs []error
	if cfg.Window < 0 {
		errs = append(errs, fmt.Errorf("%w: PlannerConfig.Window %v is negative", ErrInvalidConfig, cfg.Window))
	}
	if f := cfg.MaxRemoveFraction; math.IsNaN(f) || f < 0 || f > 1 {
		errs = append(errs, fmt.Errorf("%w: PlannerConfig.MaxRemoveFraction %v is not in (0, 1]", ErrInvalidConfig, f))
	}
	if err := cfg.Limits.validate("PlannerConfig"); err != nil {
		errs = append(errs, err)
	}
	if cfg.Previous != nil {
		if err := Validate(*cfg.Previous, cfg.Limits); err != nil {
			errs = append(errs, fmt.Errorf("%w: PlannerConfig.Previous: %w", ErrInvalidConfig, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := &Planner{cfg: cfg}
	if cfg.Previous != nil {
		p.prev = cfg.Previous.Clone()
		p.prev.Normalize()
		p.cfg.Previous = nil
		p.now = p.prev.MadeAt
		p.resume(p.prev.Velocity)
	}
	return p, nil
}

// Last returns a copy of the last plan emitted (or PlannerConfig.Previous);
// its Generation is zero if there is none.
func (p *Planner) Last() Plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prev.Clone()
}

// validateReport reports every problem of r, each matching
// ErrInvalidReport.
func (p *Planner) validateReport(r Report) error {
	var errs []error
	if len(r) > p.cfg.Limits.maxEndpoints() {
		errs = append(errs, fmt.Errorf("%w: %d endpoints, limit %d", ErrInvalidReport, len(r), p.cfg.Limits.maxEndpoints()))
	}
	for _, name := range slices.Sorted(maps.Keys(r)) {
		if len(errs) > maxReported {
			break
		}
		if err := ValidateEndpoint(name); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidReport, err))
			continue
		}
		hs := r[name]
		ts := make([]Target, len(hs))
		for i, h := range hs {
			ts[i] = Target{Addr: h.Addr, Weight: h.Capacity}
		}
		errs = append(errs, validateTargets(ErrInvalidReport, name, ts, p.cfg.Limits.maxTargets(), false)...)
	}
	return errors.Join(errs...)
}

// Next returns the next plan, its generation one more than the last, from
// the report r of the health checks made at now. For each endpoint in r:
// healthy targets are planned with their capacity as weight; targets that
// are unhealthy, missing, or report a lower capacity are removed only as
// far as velocity control allows; if no target of the endpoint is healthy
// the endpoint keeps its previous targets (fail static), or, if it had
// none, all reported targets are planned (fail open). Endpoints absent
// from r keep their previous targets. So no endpoint of a returned plan is
// ever empty, but one that Previous left empty (under Limits.AllowEmpty)
// and that no report has named since: the Planner keeps it as it was.
//
// Limits never fail a valid report. When an endpoint's held targets and
// its new healthy ones exceed Limits.MaxTargets, the held ones stay (the
// removal budget is what velocity control promises) and the new ones
// fill the room left, largest capacity first; a new endpoint beyond
// Limits.MaxEndpoints is left out. Each target or endpoint left out is
// reported (PlannerCapped) and planned once there is room. The plan
// carries the velocity history (Plan.Velocity), so a Planner restarted
// from it honours the same window.
//
// A now earlier than the previous call's (or than Previous.MadeAt or the
// newest change in Previous.Velocity) is taken as that time: a clock that goes back and
// forth never frees the budget early. The price is that removals beyond
// the budget are held until the clock catches up with a time it once
// showed (or that Previous's planner's clock showed).
// An invalid report is refused with an error matching ErrInvalidReport,
// and nothing changes. Next fails otherwise only when the generation
// cannot grow (fence.MaxToken). PlannerConfig.OnEvent, if set, is called
// after the plan is made, outside the Planner's lock.
func (p *Planner) Next(now time.Time, r Report) (Plan, error) {
	if err := p.validateReport(r); err != nil {
		return Plan{}, err
	}
	var events []PlannerEvent // stays nil, unallocated, without OnEvent
	plan, err := p.next(now, r, &events)
	if err != nil {
		return Plan{}, err
	}
	for _, ev := range events {
		p.cfg.OnEvent(ev)
	}
	return plan, nil
}

// next is Next under the lock, which it releases before it returns; it
// appends to events the events that Next reports once it has.
func (p *Planner) next(now time.Time, r Report, events *[]PlannerEvent) (Plan, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prev.Generation == fence.MaxToken {
		return Plan{}, fmt.Errorf("%w: generation %d is the last", ErrInvalidPlan, uint64(fence.MaxToken))
	}
	if now.Before(p.now) {
		now = p.now
	}
	next := Plan{Generation: p.prev.Generation + 1, Endpoints: make(map[string][]Target, max(len(p.prev.Endpoints), len(r)))}
	for name, ts := range p.prev.Endpoints {
		if _, reported := r[name]; !reported {
			next.Endpoints[name] = ts // never mutated: plans are rebuilt, not edited
		}
	}
	type planned struct {
		name    string
		ts      []Target
		removed uint64
	}
	var results []planned
	room := p.cfg.Limits.maxEndpoints() - len(p.prev.Endpoints) // for new endpoints
	for _, name := range slices.Sorted(maps.Keys(r)) {
		if _, known := p.prev.Endpoints[name]; !known {
			if room <= 0 {
				// A new endpoint that does not fit is left out, not the
				// whole plan refused: it is planned once there is room.
				p.note(events, PlannerEvent{Kind: PlannerCapped, Generation: next.Generation, Endpoint: name})
				continue
			}
			room--
		}
		ts, removed := p.planEndpoint(now, next.Generation, name, r[name], events)
		results = append(results, planned{name, ts, removed})
	}
	for _, res := range results {
		next.Endpoints[res.name] = res.ts
	}
	if err := Validate(next, p.cfg.Limits); err != nil {
		// Not reached: every endpoint is planned within the limits.
		return Plan{}, err
	}
	if p.byName == nil {
		p.byName = make(map[string]*velocity, len(results))
	}
	for _, res := range results {
		v := p.byName[res.name]
		if v == nil {
			v = &velocity{}
			p.byName[res.name] = v
		}
		c := capacity(res.ts)
		last := capacity(p.prev.Endpoints[res.name])
		if n := len(v.changes); n > 0 {
			last = v.changes[n-1].capacity
		}
		if res.removed > 0 || c != last {
			// A change that neither removes nor changes the capacity
			// tells velocity control nothing: it is not kept.
			v.changes = append(v.changes, change{at: now, capacity: c, removed: res.removed})
		}
	}
	next.Velocity = p.history(now, next)
	next.MadeAt = now
	p.now = now
	p.prev = next
	return next.Clone(), nil
}

// history prunes every endpoint's changes at now and returns them as a
// plan's Velocity, sorted by endpoint and then time. An endpoint whose
// only change left is older than the window has a budget that no longer
// depends on it (its capacity is the plan's), and is forgotten.
func (p *Planner) history(now time.Time, next Plan) []CapacityChange {
	n := 0
	for name, v := range p.byName {
		v.prune(now, p.window())
		if len(v.changes) == 0 || len(v.changes) == 1 && !v.changes[0].at.After(now.Add(-p.window())) &&
			v.changes[0].capacity == capacity(next.Endpoints[name]) {
			delete(p.byName, name)
			continue
		}
		n += len(v.changes)
	}
	if n == 0 {
		return nil
	}
	out := make([]CapacityChange, 0, n)
	for name, v := range p.byName {
		for _, c := range v.changes {
			out = append(out, CapacityChange{Endpoint: name, At: c.at, Capacity: c.capacity, Removed: c.removed})
		}
	}
	// Each endpoint's changes are in time order already.
	slices.SortStableFunc(out, func(a, b CapacityChange) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return out
}

// resume takes up the velocity history of the plan a Planner starts
// from.
func (p *Planner) resume(h []CapacityChange) {
	if len(h) == 0 {
		return
	}
	h = slices.Clone(h)
	slices.SortStableFunc(h, func(a, b CapacityChange) int {
		if c := strings.Compare(a.Endpoint, b.Endpoint); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
	p.byName = make(map[string]*velocity)
	for _, c := range h {
		if _, ok := p.prev.Endpoints[c.Endpoint]; !ok {
			continue
		}
		v := p.byName[c.Endpoint]
		if v == nil {
			v = &velocity{}
			p.byName[c.Endpoint] = v
		}
		v.changes = append(v.changes, change{at: c.At, capacity: c.Capacity, removed: c.Removed})
		if c.At.After(p.now) {
			p.now = c.At
		}
	}
}

// prune drops the changes that no window ending at or after now can see,
// keeping the last one before the window: it gives the capacity at the
// window's start.
func (v *velocity) prune(now time.Time, window time.Duration) {
	start := now.Add(-window)
	i := 0
	for i+1 < len(v.changes) && !v.changes[i+1].at.After(start) {
		i++
	}
	v.changes = v.changes[i:]
}

// budget returns what may still be removed from an endpoint at now.
func (p *Planner) budget(name string, now time.Time, current uint64) uint64 {
	peak, removed := current, uint64(0)
	if v := p.byName[name]; v != nil {
		start := now.Add(-p.window())
		for i, c := range v.changes {
			inWindow := c.at.After(start)
			// The last change at or before the window's start gives the
			// capacity the window starts with; older ones are out of it.
			startsWindow := !inWindow && (i+1 == len(v.changes) || v.changes[i+1].at.After(start))
			if inWindow || startsWindow {
				peak = max(peak, c.capacity)
			}
			if inWindow {
				removed = addSat(removed, c.removed)
			}
		}
	}
	// Capacity is only ever lost by removals, so the window's peak is at
	// most the current capacity plus what the window removed; a history
	// that claims more (hand-edited, damaged) is not believed, and a
	// history can only narrow the budget, never widen it beyond that of a
	// Planner without one.
	peak = min(peak, addSat(current, removed))
	f := p.maxRemoveFraction() * float64(peak)
	allowed := uint64(math.MaxUint64)
	if f < math.MaxUint64 {
		allowed = uint64(f)
	}
	if removed >= allowed {
		return 0
	}
	return allowed - removed
}

// addSat returns a+b, or math.MaxUint64 if that overflows.
func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

// planEndpoint returns an endpoint's next targets and the capacity they
// remove.
func (p *Planner) planEndpoint(now time.Time, gen fence.Token, name string, hs []TargetHealth, events *[]PlannerEvent) ([]Target, uint64) {
	prev := p.prev.Endpoints[name]
	healthy := make(map[netip.Addr]uint32, len(hs))
	for _, h := range hs {
		if h.Healthy {
			healthy[h.Addr] = h.Capacity
		}
	}
	if len(healthy) == 0 {
		if len(prev) > 0 {
			p.note(events, PlannerEvent{Kind: PlannerFailStatic, Generation: gen, Endpoint: name})
			return prev, 0
		}
		p.note(events, PlannerEvent{Kind: PlannerFailOpen, Generation: gen, Endpoint: name})
		ts := make([]Target, len(hs))
		for i, h := range hs {
			ts[i] = Target{Addr: h.Addr, Weight: h.Capacity}
		}
		SortTargets(ts)
		return ts, 0
	}
	budget := p.budget(name, now, capacity(prev))
	var removed uint64
	out := make([]Target, 0, len(healthy)+len(prev))
	// Previous targets in address order: each removal (whole or a lower
	// weight) is granted while the budget lasts, and held otherwise.
	for _, t := range prev {
		w, ok := healthy[t.Addr]
		if ok && w >= t.Weight {
			out = append(out, Target{Addr: t.Addr, Weight: w})
			delete(healthy, t.Addr)
			continue
		}
		cut := uint64(t.Weight)
		if ok {
			cut -= uint64(w)
		}
		if cut <= budget {
			budget -= cut
			removed += cut
			if ok {
				out = append(out, Target{Addr: t.Addr, Weight: w})
				delete(healthy, t.Addr)
			}
			continue
		}
		p.note(events, PlannerEvent{Kind: PlannerHeld, Generation: gen, Endpoint: name, Addr: t.Addr, Removal: cut, Budget: budget})
		out = append(out, t)
		delete(healthy, t.Addr)
	}
	// healthy now holds the new targets only. out holds at most as many
	// targets as prev, which is within Limits.MaxTargets; the new ones
	// fill the room left, largest first, and the rest wait (held
	// removals are what velocity control promises, so they come first).
	if room := p.cfg.Limits.maxTargets() - len(out); len(healthy) > room {
		fresh := make([]Target, 0, len(healthy))
		for addr, w := range healthy {
			fresh = append(fresh, Target{Addr: addr, Weight: w})
		}
		slices.SortFunc(fresh, func(a, b Target) int {
			if a.Weight != b.Weight {
				return cmp.Compare(b.Weight, a.Weight)
			}
			return a.Addr.Compare(b.Addr)
		})
		out = append(out, fresh[:room]...)
		SortTargets(fresh[room:])
		for _, t := range fresh[room:] {
			p.note(events, PlannerEvent{Kind: PlannerCapped, Generation: gen, Endpoint: name, Addr: t.Addr})
		}
	} else {
		for addr, w := range healthy {
			out = append(out, Target{Addr: addr, Weight: w})
		}
	}
	SortTargets(out)
	return out, removed
}

// note keeps ev for Next to report once the lock is released; without
// OnEvent there is nothing to report, and nothing is kept.
func (p *Planner) note(events *[]PlannerEvent, ev PlannerEvent) {
	if p.cfg.OnEvent != nil {
		*events = append(*events, ev)
	}
}

// window is PlannerConfig.Window, or its default in the zero Planner.
func (p *Planner) window() time.Duration {
	if p.cfg.Window == 0 {
		return DefaultWindow
	}
	return p.cfg.Window
}

// maxRemoveFraction is PlannerConfig.MaxRemoveFraction, or its default in
// the zero Planner.
func (p *Planner) maxRemoveFraction() float64 {
	if p.cfg.MaxRemoveFraction == 0 {
		return DefaultMaxRemoveFraction
	}
	return p.cfg.MaxRemoveFraction
}
