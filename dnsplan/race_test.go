package dnsplan_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"pgregory.net/rapid"
)

// The race of October 2025 as a property. A schedule interleaves a
// planner that publishes plans and three enactors that each take one step
// (one Action carried out against the store or the DNS) at a time; an
// enactor that is not stepped is stalled, for as long as the schedule
// likes, between any two of its actions — in particular between reading an
// endpoint and writing it, and between its check and its writes. The world
// behaves as the 2025 system did: deleting a plan removes the records of
// every endpoint that plan is live on.

// stepper is an enactor driven one action at a time: dnsplan.Enactor, or
// the test-only checkOnce below.
type stepper interface {
	Next() dnsplan.Action
	Deliver(dnsplan.Result)
}

var raceEndpoints = []string{"dynamodb.us-east-1", "dynamodb-fips.us-east-1", "dynamodb.us-east-1.api.aws"}

// raceOp is one step of a schedule: the planner publishes a plan (derived
// from Seed), or enactor Enactor takes one step.
type raceOp struct {
	Planner bool
	Enactor int
	Seed    uint8
}

func (o raceOp) String() string {
	if o.Planner {
		return fmt.Sprintf("plan(%d)", o.Seed)
	}
	return fmt.Sprintf("E%d", o.Enactor)
}

// genSchedule draws a schedule of up to 80 steps.
func genSchedule() *rapid.Generator[[]raceOp] {
	return rapid.Custom(func(t *rapid.T) []raceOp {
		n := rapid.IntRange(1, 80).Draw(t, "steps")
		ops := make([]raceOp, n)
		for i := range ops {
			if rapid.IntRange(0, 3).Draw(t, "kind") == 0 {
				ops[i] = raceOp{Planner: true, Seed: rapid.Uint8().Draw(t, "seed")}
			} else {
				ops[i] = raceOp{Enactor: rapid.IntRange(0, 2).Draw(t, "enactor")}
			}
		}
		return ops
	})
}

// planFor builds plan g from seed: every endpoint gets one to three
// targets, except that one plan in four leaves the last endpoint out (so
// clean-up must find endpoints that only older plans name).
func planFor(g fence.Token, seed uint8) dnsplan.Plan {
	p := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{}}
	for j, name := range raceEndpoints {
		if j == len(raceEndpoints)-1 && seed%4 == 3 {
			continue
		}
		n := 1 + (int(seed)+j)%3
		for k := range n {
			a := netip.AddrFrom4([4]byte{10, byte(j), byte(seed % 5), byte(k + 1)})
			p.Endpoints[name] = append(p.Endpoints[name], dnsplan.Target{Addr: a, Weight: uint32(1 + (int(seed)+k)%4)})
		}
	}
	return p
}

// raceWorld is the store, the DNS and the invariant checker.
type raceWorld struct {
	ctx      context.Context
	store    *dnsplan.MemoryStore
	dns      *dnsplan.MemoryProvider
	gen      fence.Token
	maxSeen  map[string]fence.Token
	enactors []stepper
	passes   []int
	log      []string // what happened, for failure messages
}

func newRaceWorld(enactors []stepper) *raceWorld {
	return &raceWorld{
		ctx:      context.Background(),
		store:    &dnsplan.MemoryStore{},
		dns:      &dnsplan.MemoryProvider{},
		maxSeen:  map[string]fence.Token{},
		enactors: enactors,
		passes:   make([]int, len(enactors)),
	}
}

func (w *raceWorld) publish(seed uint8) error {
	w.gen++
	w.log = append(w.log, fmt.Sprintf("planner: put plan %d", w.gen))
	return w.store.Put(w.ctx, planFor(w.gen, seed))
}

// step carries out enactor i's pending action.
func (w *raceWorld) step(i int) {
	e := w.enactors[i]
	a := e.Next()
	e.Deliver(w.exec(i, a))
}

// exec carries out action a of enactor i.
func (w *raceWorld) exec(i int, a dnsplan.Action) dnsplan.Result {
	r := dnsplan.Execute(w.ctx, a, w.store, w.dns)
	if a.Op == dnsplan.OpRest {
		w.passes[i]++
	}
	if a.Op == dnsplan.OpDeletePlan && r.Err == nil {
		// As in 2025: the records of a plan go with it.
		for _, name := range w.dns.Endpoints() {
			if rec, _ := w.dns.Read(w.ctx, name); rec.Generation == a.Generation {
				w.dns.Set(name, dnsplan.Records{Generation: a.Generation})
			}
		}
	}
	if a.Op != dnsplan.OpRead && a.Op != dnsplan.OpRest {
		w.log = append(w.log, fmt.Sprintf("E%d: %v (slot %d) -> %v", i, a, a.Slot, r.Err))
	}
	return r
}

// stepAny takes one step of enactor i: for a parallel one, pick chooses
// which of its outstanding actions is carried out, or, if it has been
// carried out already, delivered.
func (w *raceWorld) stepAny(i, pick int) error {
	p, ok := w.enactors[i].(*parallelStepper)
	if !ok {
		w.step(i)
		return nil
	}
	return p.step(pick, func(a dnsplan.Action) dnsplan.Result { return w.exec(i, a) })
}

// parallelStepper drives an Enactor with Ready and DeliverAction: its
// outstanding actions are carried out, and their outcomes delivered, in
// whatever order the schedule picks, so that any of them may stall
// between its hand-out and its execution, and between its execution and
// its delivery.
type parallelStepper struct {
	*dnsplan.Enactor
	pool []inflight
	buf  []dnsplan.Action
}

type inflight struct {
	a    dnsplan.Action
	r    dnsplan.Result
	done bool // carried out; the outcome is due
}

// step takes the actions Ready hands out, then carries out the picked
// one, or delivers its outcome if it was carried out already.
func (p *parallelStepper) step(pick int, exec func(dnsplan.Action) dnsplan.Result) error {
	p.buf = p.Ready(p.buf[:0])
	for _, a := range p.buf {
		p.pool = append(p.pool, inflight{a: a})
	}
	if len(p.pool) == 0 {
		return fmt.Errorf("%s has nothing to do", p.Name())
	}
	k := pick % len(p.pool)
	o := &p.pool[k]
	if !o.done {
		o.r, o.done = exec(o.a), true
		return nil
	}
	if err := p.DeliverAction(o.a, o.r); err != nil {
		return err
	}
	p.pool = append(p.pool[:k], p.pool[k+1:]...)
	return nil
}

// check returns the first invariant the world breaks, or nil.
func (w *raceWorld) check() error {
	for _, name := range raceEndpoints {
		rec, err := w.dns.Read(w.ctx, name)
		if err != nil {
			return err
		}
		if rec.Generation < w.maxSeen[name] {
			return fmt.Errorf("%s rolled back from generation %d to %d", name, w.maxSeen[name], rec.Generation)
		}
		w.maxSeen[name] = rec.Generation
		if rec.Generation == 0 {
			continue
		}
		if len(rec.Targets) == 0 {
			return fmt.Errorf("%s has an empty record set (generation %d)", name, rec.Generation)
		}
		if _, err := w.store.Get(w.ctx, rec.Generation); err != nil {
			return fmt.Errorf("the live plan %d of %s was deleted: %w", rec.Generation, name, err)
		}
	}
	return nil
}

// converged reports whether every endpoint of the newest plan serves it
// (an endpoint the newest plan leaves out keeps its records).
func (w *raceWorld) converged() bool {
	latest, err := w.store.Latest(w.ctx)
	if err != nil {
		return true
	}
	for name, want := range latest.Endpoints {
		rec, _ := w.dns.Read(w.ctx, name)
		if rec.Generation != latest.Generation || !dnsplan.SameTargets(rec.Targets, want) {
			return false
		}
	}
	return true
}

// convergeBound is the most steps, round robin over three enactors, that
// convergence may take once the planner stops: each enactor finishes the
// pass it is in and runs one more, and a pass over three endpoints of a
// store of at most 81 plans is at most 1 + 3*2*(MaxConflicts+1) applies
// and reads, a list, and 2*81 + 3 clean-up steps.
const convergeBound = 3 * 2 * (1 + 3*2*(dnsplan.DefaultMaxConflicts+1) + 1 + 2*81 + 3 + 1)

// runRace runs sched, checking the invariants after every step, then stops
// the planner and steps the enactors round robin until each has completed
// two more passes, and checks that every endpoint converged.
func runRace(sched []raceOp, enactors []stepper) error {
	return runRacePicks(sched, nil, enactors)
}

// runRacePicks is runRace where picks[i] chooses, at step i, which of a
// parallel enactor's outstanding actions moves (0 if picks is short).
func runRacePicks(sched []raceOp, picks []int, enactors []stepper) error {
	w := newRaceWorld(enactors)
	fail := func(err error) error {
		return fmt.Errorf("%w\nschedule: %v picks %v\nhistory:\n%s", err, sched, picks, joinLines(w.log))
	}
	bound := convergeBound
	for _, e := range enactors {
		if _, ok := e.(*parallelStepper); ok {
			// Carried out, then delivered: two steps an action.
			bound = 2 * convergeBound * len(enactors) / 3
		}
	}
	for n, op := range sched {
		if op.Planner {
			if err := w.publish(op.Seed); err != nil {
				return fail(err)
			}
		} else {
			pick := 0
			if n < len(picks) {
				pick = picks[n]
			}
			if err := w.stepAny(op.Enactor, pick); err != nil {
				return fail(err)
			}
		}
		if err := w.check(); err != nil {
			return fail(err)
		}
	}
	start := append([]int(nil), w.passes...)
	steps := 0
	for done := false; !done; steps++ {
		if steps > bound {
			return fail(fmt.Errorf("no convergence within %d steps after the planner stopped", bound))
		}
		i := steps % len(w.enactors)
		if err := w.stepAny(i, 0); err != nil {
			return fail(err)
		}
		if err := w.check(); err != nil {
			return fail(err)
		}
		done = true
		for j := range w.passes {
			done = done && w.passes[j] >= start[j]+2
		}
	}
	if !w.converged() {
		return fail(errors.New("the endpoints did not converge to the newest plan"))
	}
	return nil
}

func joinLines(lines []string) string {
	var s string
	for _, l := range lines {
		s += "  " + l + "\n"
	}
	return s
}

func fencedEnactors(tb interface{ Fatal(...any) }, n int) []stepper {
	out := make([]stepper, n)
	for i := range out {
		e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: fmt.Sprintf("E%d", i)})
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = e
	}
	return out
}

func checkOnceEnactors(n int) []stepper {
	out := make([]stepper, n)
	for i := range out {
		out[i] = newCheckOnce(2)
	}
	return out
}

// TestRaceProperty: under any schedule of a planner and three dnsplan
// enactors with arbitrary stalls and their clean-ups, no endpoint's
// applied generation ever decreases, no record set is ever empty, no live
// plan is ever deleted, and once the planner stops every endpoint serves
// the newest plan within convergeBound steps.
func TestRaceProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sched := genSchedule().Draw(t, "schedule")
		if err := runRace(sched, fencedEnactors(t, 3)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRacePropertyParallel: the same property with three enactors each
// driven by Ready and DeliverAction with Parallel 1 to 3 (or by Next and
// Deliver), whose outstanding actions are carried out, and their outcomes
// delivered, in any order the schedule picks: an enactor stalls any of
// its endpoints between read and write, and between a write and learning
// how it went, while its other endpoints, the planner and the other
// enactors (their clean-ups included) go on.
func TestRacePropertyParallel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ens := make([]stepper, 3)
		for i := range ens {
			parallel := rapid.IntRange(0, 3).Draw(t, "parallel")
			e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: fmt.Sprintf("E%d", i), Parallel: max(parallel, 1)})
			if err != nil {
				t.Fatal(err)
			}
			ens[i] = e
			if parallel > 0 {
				ens[i] = &parallelStepper{Enactor: e}
			}
		}
		sched := genSchedule().Draw(t, "schedule")
		picks := rapid.SliceOfN(rapid.IntRange(0, 5), len(sched), len(sched)).Draw(t, "picks")
		if err := runRacePicks(sched, picks, ens); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRacePropertyCatchesCheckOnce: the same property, on schedules drawn
// by the same generator, catches the 2025 check-once enactor. This is the
// proof that the property has teeth.
func TestRacePropertyCatchesCheckOnce(t *testing.T) {
	gen := genSchedule()
	for seed := range 500 {
		sched := gen.Example(seed)
		if err := runRace(sched, checkOnceEnactors(3)); err != nil {
			t.Logf("seed %d caught the check-once enactor: %v", seed, firstLine(err))
			return
		}
	}
	t.Fatal("the race property did not catch the check-once enactor in 500 schedules")
}

func firstLine(err error) string {
	s := err.Error()
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// regression2025 is the counterexample of the check-once enactor, kept as
// a regression test: it is the 2025 sequence. E0 takes plan 1 and checks
// it is newer than what is applied, then stalls; the planner publishes
// plans 2 to 5; E1 applies plan 5 everywhere and cleans up; E0 wakes and
// writes its plan.
var regression2025 = func() []raceOp {
	ops := []raceOp{{Planner: true, Seed: 1}}
	ops = append(ops, raceOp{Enactor: 0}, raceOp{Enactor: 0}) // load plan 1; check
	for s := range 4 {
		ops = append(ops, raceOp{Planner: true, Seed: uint8(s + 2)})
	}
	for range 3 * 2 {
		ops = append(ops, raceOp{Enactor: 1}) // E1: load plan 5, then read+apply each endpoint
	}
	ops = append(ops, raceOp{Enactor: 1}, raceOp{Enactor: 1}) // load plan 5; read+apply first
	for range 40 {
		ops = append(ops, raceOp{Enactor: 1}) // rest of E1's pass and its clean-up
	}
	for range 12 {
		ops = append(ops, raceOp{Enactor: 0}) // E0 wakes up
	}
	return ops
}()

func TestRegression2025CheckOnceIsCaught(t *testing.T) {
	err := runRace(regression2025, checkOnceEnactors(3))
	if err == nil {
		t.Fatal("the 2025 schedule did not break the check-once enactor")
	}
	t.Logf("check-once: %v", firstLine(err))
}

func TestRegression2025FencedHolds(t *testing.T) {
	if err := runRace(regression2025, fencedEnactors(t, 3)); err != nil {
		t.Fatal(err)
	}
}

// checkOnce is test-only code that behaves like the 2025 DNS Enactor: it
// checks once, before it starts, that its plan is newer than the applied
// one; then it applies the plan to every endpoint with a transaction
// conditioned only on the endpoint not changing between its read and its
// write (retrying when it does), whatever generation it finds; then it
// deletes every plan more than retention generations older than its own.
type checkOnce struct {
	retention fence.Token
	plan      dnsplan.Plan
	names     []string
	i         int
	checked   bool
	gens      []fence.Token
	pending   dnsplan.Action
}

func newCheckOnce(retention fence.Token) *checkOnce {
	return &checkOnce{retention: retention, pending: dnsplan.Action{Op: dnsplan.OpLoadLatest}}
}

func (c *checkOnce) Next() dnsplan.Action { return c.pending }

func (c *checkOnce) Deliver(r dnsplan.Result) {
	a := c.pending
	switch a.Op {
	case dnsplan.OpRest:
		c.pending = dnsplan.Action{Op: dnsplan.OpLoadLatest}
	case dnsplan.OpLoadLatest:
		if r.Err != nil {
			c.pending = dnsplan.Action{Op: dnsplan.OpRest}
			return
		}
		c.plan, c.names, c.i, c.checked = r.Plan, r.Plan.EndpointNames(), 0, false
		c.pending = dnsplan.Action{Op: dnsplan.OpRead, Endpoint: c.names[0]}
	case dnsplan.OpRead:
		if !c.checked {
			// The one-time check, made before the work starts.
			if r.Records.Generation >= c.plan.Generation {
				c.pending = dnsplan.Action{Op: dnsplan.OpRest}
				return
			}
			c.checked = true
			c.pending = dnsplan.Action{Op: dnsplan.OpRead, Endpoint: c.names[0]}
			return
		}
		c.pending = dnsplan.Action{Op: dnsplan.OpApply, Endpoint: a.Endpoint, Expect: r.Records,
			Records: dnsplan.Records{Generation: c.plan.Generation, Targets: c.plan.Endpoints[a.Endpoint]}}
	case dnsplan.OpApply:
		if r.Err != nil {
			c.pending = dnsplan.Action{Op: dnsplan.OpRead, Endpoint: a.Endpoint} // retry this endpoint
			return
		}
		c.i++
		if c.i < len(c.names) {
			c.pending = dnsplan.Action{Op: dnsplan.OpRead, Endpoint: c.names[c.i]}
			return
		}
		c.pending = dnsplan.Action{Op: dnsplan.OpListPlans}
	case dnsplan.OpListPlans:
		c.gens = c.gens[:0]
		for _, g := range r.Generations {
			if g+c.retention < c.plan.Generation {
				c.gens = append(c.gens, g)
			}
		}
		c.nextDelete()
	case dnsplan.OpDeletePlan:
		c.nextDelete()
	}
}

func (c *checkOnce) nextDelete() {
	if len(c.gens) == 0 {
		c.pending = dnsplan.Action{Op: dnsplan.OpRest}
		return
	}
	c.pending = dnsplan.Action{Op: dnsplan.OpDeletePlan, Generation: c.gens[0]}
	c.gens = c.gens[1:]
}
