package main

import (
	"container/heap"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

// The seeded run: a dnsplan.Planner publishes a plan every planEvery of
// virtual time; three enactors apply them, each write after a random
// delay, and now and then (simConfig.stall per write) after a long stall, the
// "transaction blocked, retrying" of 2025. Deleting a plan removes the
// records of any endpoint it is live on, as in 2025; an endpoint emptied
// that way stays empty until an operator repairs it, repairAfter later.
const (
	planEvery  = 30 * time.Second
	writeMin   = time.Second     // an ordinary write takes writeMin..writeMax
	writeMax   = 4 * time.Second //
	stallMin   = time.Minute     // a stall lasts stallMin..stallMax
	stallMax   = 6 * time.Minute
	restMin    = 2 * time.Second // pause between passes
	restMax    = 8 * time.Second
	clientGrid = 1000 // clients per emptying, their caches expiring evenly over one positive TTL
)

// simConfig is what the flags of the seeded run set.
type simConfig struct {
	seed   int64
	plans  int
	stall  float64       // chance that a write stalls
	ttl    time.Duration // positive answers are cached this long
	negTTL time.Duration // empty (NODATA) answers are cached this long
	repair time.Duration // an emptied endpoint is repaired by hand this much later
}

// simResult is what one seeded run with one kind of enactor measured.
type simResult struct {
	plans             int
	emptied           int                // emptyings of an endpoint
	stuck             int                // late writes that left an endpoint on a deleted plan
	repairs, repaired int                // operator repairs scheduled, done
	empty             time.Duration      // total time endpoints were empty
	outages           [][2]time.Duration // each emptying: from, to
	virtual           time.Duration      // virtual time the run covered
}

type event struct {
	at  time.Duration
	seq uint64
	run func()
}

type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// sim is one seeded run on a virtual clock.
type sim struct {
	cfg     simConfig
	rng     *rand.Rand
	now     time.Duration
	seq     uint64
	q       queue
	store   *dnsplan.MemoryStore
	dns     *dnsplan.MemoryProvider
	planner *dnsplan.Planner
	report  dnsplan.Report
	res     simResult
	// progress is called after every plan published.
	progress func(published int)
}

func newSim(cfg simConfig, stream uint64) *sim {
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.seed), stream)),
		store: &dnsplan.MemoryStore{}, dns: &dnsplan.MemoryProvider{}}
	s.planner, _ = dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	s.report = dnsplan.Report{}
	for j, ep := range endpoints {
		for k := range 3 {
			s.report[ep] = append(s.report[ep], dnsplan.TargetHealth{
				Addr: netip.AddrFrom4([4]byte{10, byte(j), 0, byte(k + 1)}), Capacity: 1, Healthy: true})
		}
	}
	// Plan 1 is live everywhere before the run starts.
	p := s.publish()
	for _, ep := range endpoints {
		s.dns.Set(ep, dnsplan.Records{Generation: p.Generation, Targets: p.Endpoints[ep]})
	}
	return s
}

func (s *sim) at(d time.Duration, f func()) {
	s.seq++
	heap.Push(&s.q, event{at: s.now + d, seq: s.seq, run: f})
}

func (s *sim) uniform(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

// writeDelay is how long a write takes: mostly a second or so, now and
// then a long stall.
func (s *sim) writeDelay() time.Duration {
	if s.rng.Float64() < s.cfg.stall {
		return s.uniform(stallMin, stallMax)
	}
	return s.uniform(writeMin, writeMax)
}

func (s *sim) rest() time.Duration { return s.uniform(restMin, restMax) }

func (s *sim) publish() dnsplan.Plan {
	p, err := s.planner.Next(start.Add(s.now), s.report)
	if err == nil {
		err = s.store.Put(ctx, p)
	}
	if err != nil {
		panic(fmt.Sprintf("dnsrace: publishing a plan: %v", err)) // a bug of this program
	}
	s.res.plans++
	return p
}

func (s *sim) plannerStep() {
	s.publish()
	if s.progress != nil {
		s.progress(s.res.plans)
	}
	if s.res.plans < s.cfg.plans {
		s.at(planEvery, s.plannerStep)
	}
}

// deleted is called after plan g is deleted: as in 2025, the records of
// every endpoint g is live on go with it, and an operator repairs them
// s.cfg.repair later.
func (s *sim) deleted(g fence.Token) {
	for _, ep := range endpoints {
		rec, _ := s.dns.Read(ctx, ep)
		if rec.Generation != g || len(rec.Targets) == 0 {
			continue
		}
		s.dns.Set(ep, dnsplan.Records{Generation: g})
		s.res.emptied++
		s.res.repairs++
		from := s.now
		s.at(s.cfg.repair, func() {
			s.res.repaired++
			p, _ := s.store.Latest(ctx)
			s.dns.Set(ep, dnsplan.Records{Generation: p.Generation, Targets: p.Endpoints[ep]})
			s.res.outages = append(s.res.outages, [2]time.Duration{from, s.now})
			s.res.empty += s.now - from
		})
	}
}

// stuck is called when a late write puts endpoint ep on plan g, already
// deleted: it keeps its old addresses, but no enactor can build a
// transaction from it any more, so it is stuck until an operator repairs
// it, s.cfg.repair later.
func (s *sim) stuck(ep string, g fence.Token) {
	s.res.stuck++
	s.res.repairs++
	s.at(s.cfg.repair, func() {
		s.res.repaired++
		if rec, _ := s.dns.Read(ctx, ep); rec.Generation == g {
			p, _ := s.store.Latest(ctx)
			s.dns.Set(ep, dnsplan.Records{Generation: p.Generation, Targets: p.Endpoints[ep]})
		}
	})
}

// run runs until the last plan is published and every emptied endpoint
// is repaired.
func (s *sim) run(enactors []func()) simResult {
	s.at(planEvery, s.plannerStep)
	for _, e := range enactors {
		s.at(s.rest(), e)
	}
	for s.q.Len() > 0 {
		ev := heap.Pop(&s.q).(event)
		s.now = ev.at
		if s.res.plans >= s.cfg.plans && s.res.repaired == s.res.repairs {
			break
		}
		ev.run()
	}
	s.res.virtual = s.now
	return s.res
}

// onceEnactor is the 2025 enactor of the seeded run: like checkOnce, it
// checks once that its plan is newer than any applied, then writes each
// endpoint whatever its plan says, building the transaction from the
// endpoint's live plan, and cleans up by age alone.
type onceEnactor struct {
	s    *sim
	plan dnsplan.Plan
	next int
}

func (c *onceEnactor) begin() {
	c.plan, _ = c.s.store.Latest(ctx)
	var applied fence.Token
	for _, ep := range endpoints {
		rec, _ := c.s.dns.Read(ctx, ep)
		applied = max(applied, rec.Generation)
	}
	if c.plan.Generation <= applied {
		c.s.at(c.s.rest(), c.begin)
		return
	}
	c.next = 0
	c.s.at(c.s.writeDelay(), c.apply)
}

func (c *onceEnactor) apply() {
	ep := endpoints[c.next]
	c.next++
	rec, _ := c.s.dns.Read(ctx, ep)
	if _, err := c.s.store.Get(ctx, rec.Generation); err == nil {
		err = c.s.dns.Apply(ctx, ep, rec, dnsplan.Records{Generation: c.plan.Generation, Targets: c.plan.Endpoints[ep]})
		if _, gone := c.s.store.Get(ctx, c.plan.Generation); err == nil && gone != nil {
			c.s.stuck(ep, c.plan.Generation)
		}
	}
	if c.next < len(endpoints) {
		c.s.at(c.s.writeDelay(), c.apply)
		return
	}
	c.s.at(c.s.uniform(writeMin, writeMax), c.cleanup)
}

func (c *onceEnactor) cleanup() {
	gens, _ := c.s.store.List(ctx)
	for _, g := range gens {
		if g+retention < c.plan.Generation && c.s.store.Delete(ctx, g) == nil {
			c.s.deleted(g)
		}
	}
	c.s.at(c.s.rest(), c.begin)
}

// fencedEnactor drives a dnsplan.Enactor on the virtual clock: each write
// waits writeDelay after the enactor asks for it, everything else is
// instant.
type fencedEnactor struct {
	s       *sim
	e       *dnsplan.Enactor
	pending bool // the apply at Next is due now
}

func (f *fencedEnactor) step() {
	for {
		a := f.e.Next()
		switch a.Op {
		case dnsplan.OpRest:
			f.e.Deliver(dnsplan.Result{})
			f.s.at(f.s.rest(), f.step)
			return
		case dnsplan.OpApply:
			if !f.pending {
				f.pending = true
				f.s.at(f.s.writeDelay(), f.step)
				return
			}
			f.pending = false
		}
		r := dnsplan.Execute(ctx, a, f.s.store, f.s.dns)
		f.e.Deliver(r)
		if a.Op == dnsplan.OpDeletePlan && r.Err == nil {
			f.s.deleted(a.Generation)
		}
	}
}

// runSeeded runs the seeded race with check-once enactors (fenced false)
// or dnsplan's.
func runSeeded(cfg simConfig, fenced bool, progress func(int)) simResult {
	stream := uint64(1)
	if fenced {
		stream = 2
	}
	s := newSim(cfg, stream)
	s.progress = progress
	var steps []func()
	for i := range 3 {
		if fenced {
			e, _ := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: fmt.Sprintf("1%c", 'a'+i), Retention: retention})
			steps = append(steps, (&fencedEnactor{s: s, e: e}).step)
		} else {
			steps = append(steps, (&onceEnactor{s: s}).begin)
		}
	}
	return s.run(steps)
}

// clientFailure is how long clients fail to resolve an endpoint empty
// over out, with answers cached: a client's cached positive answer
// expires somewhere in the first ttl of the outage (clientGrid clients,
// spread evenly); from then it asks again each time its cached empty
// answer (negTTL) expires, and resolves at the first ask after the
// repair. It returns the mean and the longest failure, and how many of
// the clients failed at all.
func clientFailure(out [2]time.Duration, ttl, negTTL time.Duration) (mean, longest time.Duration, failed int) {
	var total time.Duration
	for i := range clientGrid {
		e := out[0] + time.Duration(int64(ttl)*int64(i)/clientGrid)
		if e >= out[1] {
			continue
		}
		fail := out[1] - e
		if negTTL > 0 {
			k := (fail + negTTL - 1) / negTTL
			fail = k * negTTL
		}
		failed++
		total += fail
		longest = max(longest, fail)
	}
	return total / clientGrid, longest, failed
}

func perMillion(n, plans int) float64 { return float64(n) * 1e6 / float64(plans) }

// seeded runs both kinds of enactor and prints what they did.
func seeded(cfg simConfig, out, progress io.Writer) {
	began := time.Now()
	last := began
	total := 2 * cfg.plans
	report := func(done int) func(int) {
		return func(published int) {
			if published%1024 != 0 {
				return
			}
			if now := time.Now(); now.Sub(began) > 2*time.Second && now.Sub(last) >= time.Second {
				last = now
				fmt.Fprintf(progress, "dnsrace: %d of %d plans (%.0f%%), %v\n", done+published, total,
					100*float64(done+published)/float64(total), now.Sub(began).Round(time.Second))
			}
		}
	}
	once := runSeeded(cfg, false, report(0))
	fenced := runSeeded(cfg, true, report(cfg.plans))

	fmt.Fprintf(out, "The DNS plan race, seeded: seed %d, %d plans, one every %v (%v of virtual time per run).\n",
		cfg.seed, cfg.plans, planEvery, once.virtual.Round(time.Hour))
	fmt.Fprintf(out, "Three enactors write each endpoint in %v-%v, and a write stalls for %v-%v with chance %g;\n",
		writeMin, writeMax, stallMin, stallMax, cfg.stall)
	fmt.Fprintf(out, "deleting a plan removes the records of any endpoint it is live on, as in 2025; an\n")
	fmt.Fprintf(out, "emptied endpoint is repaired by hand %v later. Clients cache answers %v, empty ones %v.\n",
		cfg.repair, cfg.ttl, cfg.negTTL)
	fmt.Fprintln(out)
	line := func(name string, r simResult) {
		if r.emptied == 0 {
			fmt.Fprintf(out, "%s: no endpoint emptied in %d plans (0 per million plans); clients never failed to resolve.\n", name, r.plans)
			return
		}
		var mean, longest time.Duration
		failed := 0
		for _, o := range r.outages {
			m, l, f := clientFailure(o, cfg.ttl, cfg.negTTL)
			mean += m
			longest = max(longest, l)
			failed += f
		}
		mean /= time.Duration(len(r.outages))
		fmt.Fprintf(out, "%s: an endpoint emptied %s in %d plans (%.1f per million plans), empty for\n", name, times(r.emptied), r.plans, perMillion(r.emptied, r.plans))
		fmt.Fprintf(out, "  %v each (%v in all); clients failed to resolve for %v on average per emptying (%.0f%% of them at all),\n",
			(r.empty / time.Duration(len(r.outages))).Round(time.Second), r.empty, mean.Round(time.Second), 100*float64(failed)/float64(clientGrid*len(r.outages)))
		fmt.Fprintf(out, "  the unluckiest for %v.\n", longest.Round(time.Second))
	}
	stuckLine := func(name string, r simResult) {
		if r.stuck == 0 {
			fmt.Fprintf(out, "%s: no late write left an endpoint on a deleted plan.\n", name)
			return
		}
		fmt.Fprintf(out, "%s: %s left an endpoint on a deleted plan (%.1f per million plans):\n", name, plural(r.stuck, "late write"), perMillion(r.stuck, r.plans))
		fmt.Fprintf(out, "  it kept serving that plan's old addresses, and no enactor could update it until repaired by hand.\n")
	}
	line("check-once enactors (2025)", once)
	stuckLine("check-once enactors (2025)", once)
	line("dnsplan enactors", fenced)
	stuckLine("dnsplan enactors", fenced)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "This is one link of the October 2025 outage; for the whole cascade in one run (DNS,")
	fmt.Fprintln(out, "DWFM lease collapse, NLB health checks), see go run ./dynamodb2025")
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
