package dnsplan_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"pgregory.net/rapid"
)

// The race property again, in a harder world: a real Planner, restarted
// from the Store's newest plan (as after a crash), which decommissions an
// endpoint at some generation; a Store that loses plans; outside damage
// (endpoints emptied, or given other targets, at their generation);
// corrupt reads; endpoints that cannot be read, or whose name another
// record holds (ErrNameInUse); and three enactors with arbitrary stalls,
// whose same-generation repairs race. The invariants hold after every
// step:
//
//   - no endpoint's applied generation decreases;
//   - no enactor writes an empty record set, and no endpoint is empty
//     unless the outside emptied it;
//   - every write of generation g lands the targets of plan g — or, the
//     one documented exception, an endpoint read empty at g, whose plan
//     the Store lost, gets an older stored plan's targets;
//   - clean-up never deletes a plan an endpoint serves, nor one whose
//     write then lands;
//
// and once the planner stops and the faults are healed (but one endpoint
// may go on failing), every endpoint the newest plan names and that does
// not fail serves it, and the Store holds no plan below the newest -
// Retention that no endpoint could need: a decommissioned endpoint keeps
// only the plans naming it from its own generation on, and a failing one
// only the plans that name it.

var (
	robustLive   = []string{"api.x", "fips.x", "edge.x"} // edge.x is left out of one plan in four
	robustOld    = "old.x"                               // decommissioned
	robustAll    = append(slices.Clone(robustLive), robustOld)
	errTimeout   = errors.New("i/o timeout")
	errCNAME     = fmt.Errorf("%w: CNAME lb.elsewhere.example. at the name", dnsplan.ErrNameInUse)
	robustFaults = []string{"publish", "restart", "empty", "other", "corrupt", "unreadable", "in-use", "in-use-apply", "heal", "lose", "renew"}
)

// robustCfg varies the world: how many enactors, their Retention and
// MaxDeletes (zero: the defaults), the generation from which robustOld is
// no longer planned (decomAt) and the one from which it is planned again
// (reappearAt; zero: never).
type robustCfg struct {
	enactors, retention, maxDeletes int
	decomAt, reappearAt             fence.Token
	// parallel, if not nil, holds each enactor's Parallel, driven by
	// Ready and DeliverAction (0: by Next and Deliver).
	parallel []int
}

// decommissioned reports whether plan g leaves robustOld out.
func (c robustCfg) decommissioned(g fence.Token) bool {
	return g >= c.decomAt && (c.reappearAt == 0 || g < c.reappearAt)
}

type robustOp struct {
	Kind     string // "E" for an enactor step, or one of robustFaults
	Enactor  int
	Endpoint int
	Seed     uint8
}

func (o robustOp) String() string {
	switch o.Kind {
	case "E":
		return fmt.Sprintf("E%d", o.Enactor)
	case "publish", "restart":
		return fmt.Sprintf("%s(%d)", o.Kind, o.Seed)
	case "lose":
		return fmt.Sprintf("lose(%d)", o.Seed)
	case "renew":
		return fmt.Sprintf("renew(E%d)", o.Enactor)
	}
	return fmt.Sprintf("%s(%s)", o.Kind, robustAll[o.Endpoint])
}

func genRobustSchedule(enactors int) *rapid.Generator[[]robustOp] {
	return rapid.Custom(func(t *rapid.T) []robustOp {
		ops := make([]robustOp, rapid.IntRange(1, 300).Draw(t, "steps"))
		for i := range ops {
			if rapid.IntRange(0, 4).Draw(t, "fault") > 0 {
				ops[i] = robustOp{Kind: "E", Enactor: rapid.IntRange(0, enactors-1).Draw(t, "enactor")}
				continue
			}
			kind := robustFaults[0]
			if rapid.IntRange(0, 2).Draw(t, "publish") > 0 {
				kind = rapid.SampledFrom(robustFaults).Draw(t, "kind")
			}
			ops[i] = robustOp{Kind: kind, Endpoint: rapid.IntRange(0, len(robustAll)-1).Draw(t, "endpoint"), Seed: rapid.Uint8().Draw(t, "seed")}
			if kind == "renew" {
				ops[i].Enactor = int(ops[i].Seed) % enactors
			}
		}
		return ops
	})
}

type robustWorld struct {
	ctx       context.Context
	store     *dnsplan.MemoryStore
	mem       *dnsplan.MemoryProvider
	dns       *faulty
	planner   *dnsplan.Planner
	cfg       dnsplan.PlannerConfig
	now       time.Time
	gen       fence.Token
	rc        robustCfg
	retention fence.Token
	plans     map[fence.Token]dnsplan.Plan // every plan published
	lost      map[fence.Token]bool         // deleted by the test (the Store lost them)
	cleaned   map[fence.Token]bool         // deleted by an enactor
	damaged   map[string]bool              // emptied by the test since the last enactor write
	maxSeen   map[string]fence.Token
	enactors  []*dnsplan.Enactor
	par       []*parallelStepper // nil for an enactor driven by Next and Deliver
	passes    []int
	log       []string
}

func newRobustWorld(t *rapid.T, rc robustCfg) *robustWorld {
	w := &robustWorld{
		ctx: context.Background(), store: &dnsplan.MemoryStore{}, mem: &dnsplan.MemoryProvider{},
		cfg: dnsplan.PlannerConfig{Window: time.Minute}, now: t0, rc: rc, retention: dnsplan.DefaultRetention,
		plans: map[fence.Token]dnsplan.Plan{}, lost: map[fence.Token]bool{}, cleaned: map[fence.Token]bool{},
		damaged: map[string]bool{}, maxSeen: map[string]fence.Token{}, passes: make([]int, rc.enactors),
	}
	w.dns = newFaulty(w.mem)
	var err error
	if w.planner, err = dnsplan.NewPlanner(w.cfg); err != nil {
		t.Fatal(err)
	}
	if rc.retention > 0 {
		w.retention = fence.Token(rc.retention)
	}
	w.par = make([]*parallelStepper, rc.enactors)
	for i := range rc.enactors {
		w.enactors = append(w.enactors, w.newEnactor(t, i))
	}
	return w
}

// newEnactor returns a new enactor i, with no memory of earlier passes
// (the actions the old one had in flight are abandoned).
func (w *robustWorld) newEnactor(t *rapid.T, i int) *dnsplan.Enactor {
	cfg := dnsplan.EnactorConfig{Name: fmt.Sprintf("E%d", i), Retention: w.rc.retention, MaxDeletes: w.rc.maxDeletes}
	if i < len(w.rc.parallel) && w.rc.parallel[i] > 0 {
		cfg.Parallel = w.rc.parallel[i]
	}
	e, err := dnsplan.NewEnactor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.par[i] = nil
	if cfg.Parallel > 0 {
		w.par[i] = &parallelStepper{Enactor: e}
	}
	return e
}

func (w *robustWorld) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf(format, args...))
}

// report is the health checks of round seed: one to three targets per
// endpoint, some unhealthy.
func (w *robustWorld) report(seed uint8) dnsplan.Report {
	r := dnsplan.Report{}
	for j, name := range robustAll {
		if name == robustOld && w.rc.decommissioned(w.gen+1) {
			continue
		}
		if name == "edge.x" && seed%4 == 3 {
			continue
		}
		for k := range 1 + (int(seed)+j)%3 {
			a := netip.AddrFrom4([4]byte{10, byte(j), byte(seed % 5), byte(k + 1)})
			r[name] = append(r[name], dnsplan.TargetHealth{Addr: a, Capacity: uint32(1 + (int(seed)+k)%4), Healthy: (int(seed)>>k)&3 != 0})
		}
	}
	return r
}

// restart starts a new Planner from the Store's newest plan, resumed
// above the highest generation published (the store may have lost the
// newest plans), without the decommissioned endpoint once its time has
// come.
func (w *robustWorld) restart(t *rapid.T) {
	prev, err := w.store.Latest(w.ctx)
	if err != nil {
		prev = w.plans[w.gen]
	}
	if prev.Generation == 0 {
		w.planner, _ = dnsplan.NewPlanner(w.cfg)
		return
	}
	prev = prev.Clone()
	prev.Generation = w.gen
	if w.rc.decommissioned(w.gen + 1) {
		delete(prev.Endpoints, robustOld)
	}
	if len(prev.Endpoints) == 0 {
		w.planner, _ = dnsplan.NewPlanner(w.cfg)
		return
	}
	cfg := w.cfg
	cfg.Previous = &prev
	if w.planner, err = dnsplan.NewPlanner(cfg); err != nil {
		t.Fatalf("restart from plan %d: %v", prev.Generation, err)
	}
	w.logf("planner: restarted from plan %d", prev.Generation)
}

func (w *robustWorld) publish(t *rapid.T, seed uint8) error {
	if w.gen+1 == w.rc.decomAt {
		w.restart(t) // decommissioning is done by editing the plan a planner resumes from
	}
	w.now = w.now.Add(time.Second)
	p, err := w.planner.Next(w.now, w.report(seed))
	if err != nil {
		return fmt.Errorf("the planner failed: %w", err)
	}
	if err := w.store.Put(w.ctx, p); err != nil {
		return fmt.Errorf("put plan %d: %w", p.Generation, err)
	}
	w.gen = p.Generation
	w.plans[p.Generation] = p.Clone()
	w.logf("planner: put plan %d %v", p.Generation, p.EndpointNames())
	return nil
}

// fault carries out an outside event.
func (w *robustWorld) fault(t *rapid.T, op robustOp) error {
	ep := robustAll[op.Endpoint]
	switch op.Kind {
	case "publish":
		return w.publish(t, op.Seed)
	case "restart":
		w.restart(t)
	case "empty", "other":
		rec, _ := w.mem.Read(w.ctx, ep)
		if rec.Generation == 0 {
			return nil
		}
		var ts []dnsplan.Target
		if op.Kind == "other" {
			ts = []dnsplan.Target{{Addr: netip.AddrFrom4([4]byte{192, 0, 2, op.Seed}), Weight: 1}}
		}
		w.mem.Set(ep, dnsplan.Records{Generation: rec.Generation, Targets: ts})
		w.damaged[ep] = op.Kind == "empty"
	case "corrupt":
		w.dns.setCorrupt(ep, true)
	case "unreadable":
		w.dns.set(w.dns.readErr, ep, errTimeout)
	case "in-use":
		w.dns.set(w.dns.readErr, ep, errCNAME)
		w.dns.set(w.dns.applyErr, ep, errCNAME)
	case "in-use-apply":
		w.dns.set(w.dns.applyErr, ep, errCNAME)
	case "heal":
		w.heal(ep)
	case "renew":
		w.enactors[op.Enactor] = w.newEnactor(t, op.Enactor)
	case "lose":
		gens, _ := w.store.List(w.ctx)
		if len(gens) == 0 {
			return nil
		}
		g := gens[int(op.Seed)%len(gens)]
		if err := w.store.Delete(w.ctx, g); err == nil {
			w.lost[g] = true
		}
	}
	w.logf("outside: %v", op)
	return nil
}

func (w *robustWorld) heal(ep string) {
	w.dns.set(w.dns.readErr, ep, nil)
	w.dns.set(w.dns.applyErr, ep, nil)
	w.dns.setCorrupt(ep, false)
}

// step carries out enactor i's pending action and checks the write or
// the deletion it makes; for an enactor driven by Ready and
// DeliverAction, pick chooses which of its outstanding actions is
// carried out, or, if it has been already, delivered.
func (w *robustWorld) step(i, pick int) error {
	if p := w.par[i]; p != nil {
		var err error
		if serr := p.step(pick, func(a dnsplan.Action) (r dnsplan.Result) {
			r, err = w.exec(i, a)
			return r
		}); serr != nil {
			return serr
		}
		return err
	}
	e := w.enactors[i]
	r, err := w.exec(i, e.Next())
	if err != nil {
		return err
	}
	e.Deliver(r)
	return nil
}

// exec carries out action a of enactor i and checks the write or the
// deletion it makes.
func (w *robustWorld) exec(i int, a dnsplan.Action) (dnsplan.Result, error) {
	r := dnsplan.Execute(w.ctx, a, w.store, w.dns)
	switch a.Op {
	case dnsplan.OpRest:
		w.passes[i]++
	case dnsplan.OpApply:
		if len(a.Records.Targets) == 0 {
			return r, fmt.Errorf("E%d asked for an empty write: %v", i, a)
		}
		if r.Err == nil {
			w.logf("E%d: %v (slot %d) %s", i, a, a.Slot, dnsplan.FormatTargets(a.Records.Targets))
			if err := w.checkWrite(a); err != nil {
				return r, fmt.Errorf("E%d: %v: %w", i, a, err)
			}
			w.damaged[a.Endpoint] = false
		}
	case dnsplan.OpDeletePlan:
		if r.Err == nil {
			w.logf("E%d: %v", i, a)
			w.cleaned[a.Generation] = true
			for _, name := range w.mem.Endpoints() {
				if rec, _ := w.mem.Read(w.ctx, name); rec.Generation == a.Generation {
					return r, fmt.Errorf("E%d deleted plan %d, live on %s", i, a.Generation, name)
				}
			}
			// Stronger: every endpoint the plan names is above it by more
			// than Retention, now (generations never decrease here).
			for name, ts := range w.plans[a.Generation].Endpoints {
				if rec, _ := w.mem.Read(w.ctx, name); len(ts) > 0 && rec.Generation <= a.Generation+w.retention {
					return r, fmt.Errorf("E%d deleted plan %d, which names %s at generation %d", i, a.Generation, name, rec.Generation)
				}
			}
		}
	}
	return r, nil
}

// checkWrite checks a write that landed: the targets of its generation's
// plan, or the store-loss exception.
func (w *robustWorld) checkWrite(a dnsplan.Action) error {
	g, ep := a.Records.Generation, a.Endpoint
	if w.cleaned[g] {
		return fmt.Errorf("a write of plan %d landed after clean-up deleted it", g)
	}
	if want, ok := w.plans[g].Endpoints[ep]; ok && dnsplan.SameTargets(want, a.Records.Targets) {
		return nil
	}
	// The exception: read empty at g, whose plan the store lost, and
	// refilled from an older plan.
	if !w.lost[g] || a.Expect.Generation != g || len(a.Expect.Targets) != 0 {
		return fmt.Errorf("wrote %s under generation %d, whose plan says %s",
			dnsplan.FormatTargets(a.Records.Targets), g, dnsplan.FormatTargets(w.plans[g].Endpoints[ep]))
	}
	for h, p := range w.plans {
		if h < g && dnsplan.SameTargets(p.Endpoints[ep], a.Records.Targets) {
			return nil
		}
	}
	return fmt.Errorf("refilled with %s under lost generation %d: no older plan's targets", dnsplan.FormatTargets(a.Records.Targets), g)
}

// check checks the state after a step.
func (w *robustWorld) check() error {
	for _, name := range robustAll {
		rec, err := w.mem.Read(w.ctx, name)
		if err != nil {
			return err
		}
		if rec.Generation < w.maxSeen[name] {
			return fmt.Errorf("%s rolled back from generation %d to %d", name, w.maxSeen[name], rec.Generation)
		}
		w.maxSeen[name] = rec.Generation
		if rec.Generation != 0 && len(rec.Targets) == 0 && !w.damaged[name] {
			return fmt.Errorf("%s is empty at generation %d, and the outside did not empty it", name, rec.Generation)
		}
	}
	return nil
}

// needed reports whether a plan g may still be needed once the world is
// quiet: some endpoint it names is at g + Retention or below, or fails.
func (w *robustWorld) needed(g fence.Token, failing string) (string, bool) {
	for name, ts := range w.plans[g].Endpoints {
		if len(ts) == 0 {
			continue
		}
		rec, _ := w.mem.Read(w.ctx, name)
		if name == failing || rec.Generation <= g+w.retention {
			return name, true
		}
	}
	return "", false
}

func runRobustRace(t *rapid.T, sched []robustOp, rc robustCfg, failing int) error {
	return runRobustRacePicks(t, sched, nil, rc, failing)
}

// runRobustRacePicks is runRobustRace where picks[i] chooses, at step i,
// which of a parallel enactor's outstanding actions moves (0 if picks is
// short).
func runRobustRacePicks(t *rapid.T, sched []robustOp, picks []int, rc robustCfg, failing int) error {
	w := newRobustWorld(t, rc)
	fail := func(err error) error {
		return fmt.Errorf("%w\nschedule: %v picks %v (%+v)\nhistory:\n%s", err, sched, picks, rc, joinLines(w.log))
	}
	for n, op := range sched {
		var err error
		if op.Kind == "E" {
			pick := 0
			if n < len(picks) {
				pick = picks[n]
			}
			err = w.step(op.Enactor, pick)
		} else {
			err = w.fault(t, op)
		}
		if err == nil {
			err = w.check()
		}
		if err != nil {
			return fail(err)
		}
	}

	// The planner publishes one last plan; the faults are healed, but one
	// endpoint may go on failing.
	stillFailing := ""
	for _, ep := range robustAll {
		w.heal(ep)
	}
	if failing >= 0 {
		stillFailing = []string{"edge.x", robustOld}[failing]
		w.dns.set(w.dns.readErr, stillFailing, errCNAME)
		w.dns.set(w.dns.applyErr, stillFailing, errCNAME)
	}
	if err := w.publish(t, 0); err != nil {
		return fail(err)
	}
	w.logf("-- quiet; failing: %q", stillFailing)
	start := slices.Clone(w.passes)
	passes := 3
	if rc.maxDeletes > 0 {
		// A clean-up deletes at most maxDeletes plans: one pass each.
		gens, _ := w.store.List(w.ctx)
		passes += len(gens) / rc.maxDeletes
	}
	for steps := 0; ; steps++ {
		if steps > 2*10000*passes {
			return fail(fmt.Errorf("no convergence within %d steps after the planner stopped", steps))
		}
		if err := w.step(steps%len(w.enactors), 0); err != nil {
			return fail(err)
		}
		if err := w.check(); err != nil {
			return fail(err)
		}
		done := true
		for j := range w.passes {
			done = done && w.passes[j] >= start[j]+passes
		}
		if done {
			break
		}
	}
	latest := w.plans[w.gen]
	for name, want := range latest.Endpoints {
		if name == stillFailing {
			continue
		}
		rec, _ := w.mem.Read(w.ctx, name)
		if rec.Generation != latest.Generation || !dnsplan.SameTargets(rec.Targets, want) {
			return fail(fmt.Errorf("%s serves generation %d %s, not the newest plan %d", name, rec.Generation, dnsplan.FormatTargets(rec.Targets), latest.Generation))
		}
	}
	gens, _ := w.store.List(w.ctx)
	for _, g := range gens {
		if g+w.retention >= latest.Generation {
			continue
		}
		if _, ok := w.needed(g, stillFailing); !ok {
			return fail(fmt.Errorf("plan %d is kept, but no endpoint it names could need it (store: %v)", g, gens))
		}
	}
	return nil
}

// TestRobustRaceProperty: see the comment at the top of this file.
func TestRobustRaceProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sched := genRobustSchedule(3).Draw(t, "schedule")
		rc := robustCfg{enactors: 3, decomAt: fence.Token(rapid.IntRange(1, 40).Draw(t, "decommissionAt"))}
		failing := rapid.IntRange(-1, 1).Draw(t, "failing")
		if err := runRobustRace(t, sched, rc, failing); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRobustRaceVariedProperty: the same invariants with 2 to 5
// enactors, any of which may be replaced by a new one with no memory
// (renew), a Retention of 1, the default or a huge one, MaxDeletes 1 or
// the default, and a decommissioned endpoint that may come back into the
// plans later.
func TestRobustRaceVariedProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rc := robustCfg{
			enactors:   rapid.IntRange(2, 5).Draw(t, "enactors"),
			retention:  rapid.SampledFrom([]int{0, 1, 1 << 40}).Draw(t, "retention"),
			maxDeletes: rapid.SampledFrom([]int{0, 1}).Draw(t, "maxDeletes"),
			decomAt:    fence.Token(rapid.IntRange(1, 40).Draw(t, "decommissionAt")),
		}
		if rapid.Bool().Draw(t, "reappear") {
			rc.reappearAt = rc.decomAt + fence.Token(rapid.IntRange(1, 20).Draw(t, "reappearAfter"))
		}
		sched := genRobustSchedule(rc.enactors).Draw(t, "schedule")
		failing := rapid.IntRange(-1, 1).Draw(t, "failing")
		if err := runRobustRace(t, sched, rc, failing); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRobustRaceParallelProperty: the same invariants with 2 to 5
// enactors, each driven by Ready and DeliverAction with Parallel 1 to 4
// (or by Next and Deliver), whose outstanding actions are carried out,
// and their outcomes delivered, in any order the schedule picks — any
// endpoint of any enactor may stall between its read and its write, and
// between its write and its delivery, while the enactor's other
// endpoints, the faults and the other enactors go on — and any of which
// may be replaced by a new one with no memory, abandoning what it had in
// flight (renew).
func TestRobustRaceParallelProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rc := robustCfg{
			enactors:   rapid.IntRange(2, 5).Draw(t, "enactors"),
			retention:  rapid.SampledFrom([]int{0, 1}).Draw(t, "retention"),
			maxDeletes: rapid.SampledFrom([]int{0, 1}).Draw(t, "maxDeletes"),
			decomAt:    fence.Token(rapid.IntRange(1, 40).Draw(t, "decommissionAt")),
		}
		rc.parallel = rapid.SliceOfN(rapid.IntRange(0, 4), rc.enactors, rc.enactors).Draw(t, "parallel")
		if rapid.Bool().Draw(t, "reappear") {
			rc.reappearAt = rc.decomAt + fence.Token(rapid.IntRange(1, 20).Draw(t, "reappearAfter"))
		}
		sched := genRobustSchedule(rc.enactors).Draw(t, "schedule")
		picks := rapid.SliceOfN(rapid.IntRange(0, 7), len(sched), len(sched)).Draw(t, "picks")
		failing := rapid.IntRange(-1, 1).Draw(t, "failing")
		if err := runRobustRacePicks(t, sched, picks, rc, failing); err != nil {
			t.Fatal(err)
		}
	})
}
