package stormotel

import (
	"sync"
	"sync/atomic"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/lease"
)

// RecoveryProgress exports the Progress of a lease.Recovery, which is not
// safe to read from a collecting goroutine: pass its Observe method as the
// onProgress argument of Recovery.Run, and the series report the latest
// Progress Run handed over (nothing before the first).
type RecoveryProgress struct {
	reg  *Registration
	mu   sync.Mutex
	p    lease.Progress
	seen bool
}

// RegisterRecovery returns a RecoveryProgress that exports the Progress
// it observes as the stormguard.lease.recovery.* metrics.
func (m *Meter) RegisterRecovery(name string) (*RecoveryProgress, error) {
	rp := &RecoveryProgress{}
	reg, err := register(m, "recovery", name, []source[lease.Progress]{{table: recoveryTable, get: func() (lease.Progress, any, bool) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		return rp.p, rp, rp.seen
	}}})
	if err != nil {
		return nil, err
	}
	rp.reg = reg
	return rp, nil
}

// Observe records p as the latest Progress. It costs a lock and a copy,
// once per finished attempt. A nil *RecoveryProgress does nothing.
func (rp *RecoveryProgress) Observe(p lease.Progress) {
	if rp == nil {
		return
	}
	rp.mu.Lock()
	rp.p, rp.seen = p, true
	rp.mu.Unlock()
}

// Unregister stops reporting (see Registration.Unregister).
func (rp *RecoveryProgress) Unregister() error {
	if rp == nil {
		return nil
	}
	return rp.reg.Unregister()
}

// enactorKinds are the dnsplan enactor event kinds counted, from
// dnsplan.EventApplied on; index 0 counts kinds this package does not
// know.
var enactorKinds = []dnsplan.EventKind{0, dnsplan.EventApplied, dnsplan.EventRepaired, dnsplan.EventConflict,
	dnsplan.EventNewer, dnsplan.EventDeleted, dnsplan.EventError, dnsplan.EventPassDone}

type eventCounts [8]int64

func eventTable(metric string, names []string) []series[eventCounts] {
	t := make([]series[eventCounts], len(names))
	for i, n := range names {
		t[i] = series[eventCounts]{metric: metric, attr: AttrEvent.String(n), source: n, i: func(c eventCounts) int64 { return c[i] }}
	}
	return t
}

var enactorTable = func() []series[eventCounts] {
	names := []string{"other"}
	for _, k := range enactorKinds[1:] {
		names = append(names, k.String())
	}
	return eventTable(enactorEvents, names)
}()

// plannerKinds are the dnsplan planner event kinds counted, by their
// index, with their names; index 0 counts kinds this package does not
// know.
var plannerKinds = []struct {
	kind dnsplan.PlannerEventKind
	name string
}{{0, "other"}, {dnsplan.PlannerHeld, "held"}, {dnsplan.PlannerFailStatic, "fail-static"}, {dnsplan.PlannerFailOpen, "fail-open"}, {dnsplan.PlannerCapped, "capped"}}

var plannerTable = func() []series[eventCounts] {
	var names []string
	for _, k := range plannerKinds {
		names = append(names, k.name)
	}
	return eventTable(plannerEvents, names)
}()

// eventSink counts events by kind in atomics read by the callback.
type eventSink struct {
	reg *Registration
	n   [8]atomic.Int64
}

// register exports s's counts under table, kind and name.
func (s *eventSink) register(m *Meter, kind, name string, table []series[eventCounts]) error {
	reg, err := register(m, kind, name, []source[eventCounts]{{table: table, get: s.snapshot}})
	if err != nil {
		return err
	}
	s.reg = reg
	return nil
}

// add counts one event of kind index i, of known kinds; an index this
// package does not know counts as 0, "other".
func (s *eventSink) add(i, known int) {
	if i >= known {
		i = 0
	}
	s.n[i].Add(1)
}

func (s *eventSink) snapshot() (eventCounts, any, bool) {
	var c eventCounts
	for i := range c {
		c[i] = s.n[i].Load()
	}
	return c, s, true
}

// EnactorEvents counts the events of dnsplan Enactors: plug its Observe
// method into EnactorConfig.OnEvent. The counts are exported as
// stormguard.dnsplan.enactor.events, by stormguard.event (the
// EventKind's name; "other" for a kind this package does not know).
type EnactorEvents struct{ s eventSink }

// RegisterEnactorEvents returns an EnactorEvents exporting under name.
func (m *Meter) RegisterEnactorEvents(name string) (*EnactorEvents, error) {
	e := &EnactorEvents{}
	if err := e.s.register(m, "enactor", name, enactorTable); err != nil {
		return nil, err
	}
	return e, nil
}

// Observe counts ev: one atomic add. A nil *EnactorEvents does nothing.
func (e *EnactorEvents) Observe(ev dnsplan.Event) {
	if e == nil {
		return
	}
	e.s.add(int(ev.Kind), len(enactorKinds))
}

// Unregister stops reporting (see Registration.Unregister).
func (e *EnactorEvents) Unregister() error {
	if e == nil {
		return nil
	}
	return e.s.reg.Unregister()
}

// PlannerEvents counts the events of a dnsplan Planner: plug its Observe
// method into PlannerConfig.OnEvent. The counts are exported as
// stormguard.dnsplan.planner.events, by stormguard.event ("held",
// "fail-static", "fail-open", "capped"; "other" for a kind this package
// does not know).
type PlannerEvents struct{ s eventSink }

// RegisterPlannerEvents returns a PlannerEvents exporting under name.
func (m *Meter) RegisterPlannerEvents(name string) (*PlannerEvents, error) {
	p := &PlannerEvents{}
	if err := p.s.register(m, "planner", name, plannerTable); err != nil {
		return nil, err
	}
	return p, nil
}

// Observe counts ev: one atomic add. A nil *PlannerEvents does nothing.
func (p *PlannerEvents) Observe(ev dnsplan.PlannerEvent) {
	if p == nil {
		return
	}
	p.s.add(int(ev.Kind), len(plannerKinds))
}

// Unregister stops reporting (see Registration.Unregister).
func (p *PlannerEvents) Unregister() error {
	if p == nil {
		return nil
	}
	return p.s.reg.Unregister()
}
