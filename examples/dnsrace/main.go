// Command dnsrace is the small, step-by-step view of one link of the
// DynamoDB / EC2 outage of October 2025: the DNS plan race that emptied
// DynamoDB's regional endpoint. The whole cascade (the race, DWFM's lease
// collapse, the Network Manager's backlog, NLB health checks) runs in one
// go with go run ./dynamodb2025.
//
// Run it from the examples directory:
//
//	$ go run ./dnsrace
//
// With no flags, dnsrace replays the race step by step, twice, and prints
// each run as a timeline.
//
// A planner publishes generation-numbered plans for three endpoints of
// us-east-1; enactors in three Availability Zones apply them. Enactor A
// picks up plan 101 and is delayed on the regional endpoint while the
// planner publishes plans 102 to 110; enactor B applies plan 110 to every
// endpoint; A's delayed write lands; B's clean-up deletes plans more than
// five generations older than its own. As in 2025, deleting a plan removes
// the records of any endpoint that plan is live on.
//
//   - "2025": enactors that check once, before they start, that their
//     plan is newer, and then write whatever they find. A's write rolls
//     the regional endpoint back to plan 101; B's clean-up deletes plan
//     101, which empties the endpoint; and since the enactors build each
//     transaction from the live plan, which is gone, no later plan can be
//     applied: the endpoint stays empty until operators repair it.
//   - "dnsplan": dnsplan.Enactor, whose every write is conditioned on the
//     generation (and version) it read, and whose clean-up keeps every
//     plan that an endpoint it names may serve or may yet be written
//     with. A's write is refused, the endpoint is never empty, and when
//     the end state of 2025 is made by hand (records emptied, live plan
//     deleted), the next pass repairs it with no operator.
//
// The replay is deterministic (a scripted schedule, a fixed clock, no
// goroutines): every run prints the same bytes.
//
// With any flag, dnsrace runs the race on a seed instead of a script: a
// dnsplan.Planner publishes -plans plans on a virtual clock, and three
// enactors apply them with random write delays, a write stalling now and
// then (-stall), once with check-once enactors and once with dnsplan's,
// on the same seed. It prints how often an endpoint is emptied, or left
// on a deleted plan, per million plans, and how long clients fail to
// resolve, counting their cached answers (-ttl) and cached empty answers
// (-negttl), with operators repairing an endpoint -repair after it is
// emptied. The same flags print the same bytes.
//
// Usage:
//
//	$ go run ./dnsrace
//	$ go run ./dnsrace [-seed N] [-plans P] [-stall F] [-ttl D] [-negttl D] [-repair D]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// Ranges of the flags of the seeded run.
const (
	minPlans  = 1000
	maxPlans  = 500000
	maxStall  = 0.05
	maxTTL    = time.Hour
	maxNegTTL = 3 * time.Hour
	minRepair = time.Minute
	maxRepair = 24 * time.Hour
)

// cli runs the scripted replay, or with any flag the seeded run, and
// returns the exit status.
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dnsrace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := simConfig{}
	fs.Int64Var(&cfg.seed, "seed", 1, "seed of the random delays (any integer)")
	fs.IntVar(&cfg.plans, "plans", 100000, fmt.Sprintf("plans the planner publishes, one every %v [%d, %d]", planEvery, minPlans, maxPlans))
	fs.Float64Var(&cfg.stall, "stall", 0.0005, fmt.Sprintf("chance that an enactor's write stalls for %v-%v [0, %g]", stallMin, stallMax, maxStall))
	fs.DurationVar(&cfg.ttl, "ttl", 5*time.Second, fmt.Sprintf("how long clients cache an answer with addresses [0, %v]", maxTTL))
	fs.DurationVar(&cfg.negTTL, "negttl", time.Minute, fmt.Sprintf("how long clients cache an empty answer [0, %v]", maxNegTTL))
	fs.DurationVar(&cfg.repair, "repair", 2*time.Hour+30*time.Minute, fmt.Sprintf("how long operators take to repair an emptied endpoint [%v, %v]", minRepair, maxRepair))
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: dnsrace [-seed N] [-plans P] [-stall F] [-ttl D] [-negttl D] [-repair D]

The DNS-plan race of October 2025, one link of that outage, step by step
(the whole cascade in one run is go run ./dynamodb2025).

With no flags, a fixed scripted replay: first with check-once enactors,
then with dnsplan's. With any flag, a seeded run over many plans with
random write delays and stalls, on a virtual clock: how often the race
empties an endpoint, per million plans, with either kind of enactor, and
how long clients fail to resolve, counting their DNS caches.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnsrace: unexpected argument %q: dnsrace takes flags only (dnsrace -h)\n", fs.Arg(0))
		return 2
	}
	if fs.NFlag() == 0 {
		run(stdout)
		return 0
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "dnsrace: %v (dnsrace -h)\n", err)
		return 2
	}
	seeded(cfg, stdout, stderr)
	return 0
}

func (c simConfig) validate() error {
	var errs []error
	if c.plans < minPlans || c.plans > maxPlans {
		errs = append(errs, fmt.Errorf("-plans %d is out of range [%d, %d]", c.plans, minPlans, maxPlans))
	}
	if !(c.stall >= 0 && c.stall <= maxStall) { // NaN too
		errs = append(errs, fmt.Errorf("-stall %g is out of range [0, %g]", c.stall, maxStall))
	}
	if c.ttl < 0 || c.ttl > maxTTL {
		errs = append(errs, fmt.Errorf("-ttl %v is out of range [0, %v]", c.ttl, maxTTL))
	}
	if c.negTTL < 0 || c.negTTL > maxNegTTL {
		errs = append(errs, fmt.Errorf("-negttl %v is out of range [0, %v]", c.negTTL, maxNegTTL))
	}
	if c.repair < minRepair || c.repair > maxRepair {
		errs = append(errs, fmt.Errorf("-repair %v is out of range [%v, %v]", c.repair, minRepair, maxRepair))
	}
	return errors.Join(errs...)
}

const (
	dualstack = "dualstack.dynamodb.us-east-1.amazonaws.com"
	fips      = "dynamodb-fips.us-east-1.amazonaws.com"
	regional  = "dynamodb.us-east-1.amazonaws.com"
	// retention: clean-up deletes plans more than this many generations
	// older than its reference.
	retention = 5
)

var (
	endpoints = []string{dualstack, fips, regional} // the order enactors walk them
	start     = time.Date(2025, 10, 19, 23, 40, 0, 0, time.UTC)
	ctx       = context.Background()
)

// planFor is plan g: each endpoint gets three load balancers numbered by
// the generation.
func planFor(g fence.Token) dnsplan.Plan {
	p := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{}}
	for j, ep := range endpoints {
		for k := range 3 {
			p.Endpoints[ep] = append(p.Endpoints[ep], dnsplan.Target{
				Addr: netip.AddrFrom4([4]byte{10, byte(j), byte(g), byte(k + 1)}), Weight: 1})
		}
	}
	return p
}

// world is the plan store and the DNS, shared by every enactor of a run.
type world struct {
	store *dnsplan.MemoryStore
	dns   *dnsplan.MemoryProvider
	out   *tabwriter.Writer
	// emptySince is when the regional endpoint last became empty.
	emptySince time.Duration
	empty      bool
	emptyTotal time.Duration
}

func newWorld(out io.Writer) *world {
	w := &world{store: &dnsplan.MemoryStore{}, dns: &dnsplan.MemoryProvider{}}
	w.out = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w.out, "time\tactor\twhat happens\tregional endpoint\tplans stored\t")
	// The state before the race: plan 100 live everywhere.
	_ = w.store.Put(ctx, planFor(100))
	for _, ep := range endpoints {
		_ = w.dns.Apply(ctx, ep, dnsplan.Records{}, dnsplan.Records{Generation: 100, Targets: planFor(100).Endpoints[ep]})
	}
	return w
}

// row prints one line of the timeline, with the regional endpoint and the
// store as they are after it.
func (w *world) row(at time.Duration, actor, what string) {
	rec, _ := w.dns.Read(ctx, regional)
	state := fmt.Sprintf("plan %d, %d addresses", rec.Generation, len(rec.Targets))
	if len(rec.Targets) == 0 {
		state = fmt.Sprintf("EMPTY (plan %d)", rec.Generation)
		if !w.empty {
			w.empty, w.emptySince = true, at
		}
	} else if w.empty {
		w.empty = false
		w.emptyTotal += at - w.emptySince
	}
	gens, _ := w.store.List(ctx)
	stored := "none"
	if len(gens) > 0 {
		stored = fmt.Sprintf("%d-%d (%d)", gens[0], gens[len(gens)-1], len(gens))
	}
	fmt.Fprintf(w.out, "%s\t%s\t%s\t%s\t%s\t\n", start.Add(at).Format("15:04:05"), actor, what, state, stored)
}

// deletePlan deletes plan g and, as in 2025, the records of every endpoint
// it is live on; it returns those endpoints.
func (w *world) deletePlan(g fence.Token) []string {
	if err := w.store.Delete(ctx, g); err != nil {
		return nil
	}
	var gone []string
	for _, ep := range endpoints {
		if rec, _ := w.dns.Read(ctx, ep); rec.Generation == g {
			w.dns.Set(ep, dnsplan.Records{Generation: g})
			gone = append(gone, short(ep))
		}
	}
	return gone
}

func (w *world) publish(at time.Duration, from, to fence.Token) {
	for g := from; g <= to; g++ {
		_ = w.store.Put(ctx, planFor(g))
	}
	what := fmt.Sprintf("publishes plan %d", from)
	if to > from {
		what = fmt.Sprintf("publishes plans %d-%d", from, to)
	}
	w.row(at, "planner", what)
}

// damage makes the end state of 2025 by hand: the regional endpoint
// emptied and its live plan deleted.
func (w *world) damage(at time.Duration) {
	rec, _ := w.dns.Read(ctx, regional)
	if _, err := w.store.Get(ctx, rec.Generation); err != nil && len(rec.Targets) == 0 {
		w.row(at, "outside", "nothing to damage: this is already the end state of 2025")
		return
	}
	_ = w.store.Delete(ctx, rec.Generation)
	w.dns.Set(regional, dnsplan.Records{Generation: rec.Generation})
	w.row(at, "outside", fmt.Sprintf("empties regional and deletes its live plan %d", rec.Generation))
}

func short(ep string) string {
	switch ep {
	case regional:
		return "regional"
	case fips:
		return "fips"
	}
	return "dualstack"
}

// checkOnce is the 2025 enactor: it checks once that its plan is newer
// than the applied one, then walks the endpoints, building each
// transaction from the endpoint's live plan and writing whatever it finds.
type checkOnce struct {
	w    *world
	name string
	plan dnsplan.Plan
	next int // index into endpoints
}

// begin loads the newest plan and makes the one-time check.
func (c *checkOnce) begin(at time.Duration) bool {
	c.plan, _ = c.w.store.Latest(ctx)
	c.next = 0
	rec, _ := c.w.dns.Read(ctx, regional)
	if c.plan.Generation <= rec.Generation {
		c.w.row(at, c.name, fmt.Sprintf("loads plan %d; check %d > applied %d fails: nothing to do", c.plan.Generation, c.plan.Generation, rec.Generation))
		return false
	}
	c.w.row(at, c.name, fmt.Sprintf("loads plan %d; one-time check %d > applied %d: ok", c.plan.Generation, c.plan.Generation, rec.Generation))
	return true
}

// apply applies the plan to the next n endpoints and reports what it did.
func (c *checkOnce) apply(at time.Duration, n int) {
	var done, failed []string
	for ; n > 0 && c.next < len(endpoints); n-- {
		ep := endpoints[c.next]
		c.next++
		rec, _ := c.w.dns.Read(ctx, ep)
		if _, err := c.w.store.Get(ctx, rec.Generation); errors.Is(err, dnsplan.ErrNotFound) {
			failed = append(failed, fmt.Sprintf("%s: live plan %d missing, cannot build transaction", short(ep), rec.Generation))
			continue
		}
		err := c.w.dns.Apply(ctx, ep, rec, dnsplan.Records{Generation: c.plan.Generation, Targets: c.plan.Endpoints[ep]})
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", short(ep), err))
			continue
		}
		done = append(done, fmt.Sprintf("%s %d->%d", short(ep), rec.Generation, c.plan.Generation))
	}
	what := "applies " + strings.Join(done, ", ")
	if len(done) == 0 {
		what = "applies nothing"
	}
	if len(failed) > 0 {
		what += "; FAILS " + strings.Join(failed, "; ")
	}
	c.w.row(at, c.name, what)
}

// cleanup deletes plans more than retention generations older than its
// own plan.
func (c *checkOnce) cleanup(at time.Duration) {
	gens, _ := c.w.store.List(ctx)
	var deleted []fence.Token
	var emptied []string
	for _, g := range gens {
		if g+retention < c.plan.Generation {
			deleted = append(deleted, g)
			emptied = append(emptied, c.w.deletePlan(g)...)
		}
	}
	what := fmt.Sprintf("clean-up deletes %s (older than its own %d - %d)", span(deleted), c.plan.Generation, retention)
	if len(emptied) > 0 {
		what += "; records of " + strings.Join(emptied, ", ") + " go with them"
	}
	c.w.row(at, c.name, what)
}

func span(gs []fence.Token) string {
	switch len(gs) {
	case 0:
		return "no plan"
	case 1:
		return "plan " + gs[0].String()
	}
	return fmt.Sprintf("plans %d-%d", gs[0], gs[len(gs)-1])
}

// run2025 replays the race with check-once enactors.
func run2025(out io.Writer) *world {
	w := newWorld(out)
	a := &checkOnce{w: w, name: "A (1a)"}
	b := &checkOnce{w: w, name: "B (1b)"}
	c := &checkOnce{w: w, name: "C (1c)"}
	w.publish(0, 101, 101)
	a.begin(5 * time.Second)
	a.apply(6*time.Second, 2)
	w.row(7*time.Second, a.name, "regional: transaction blocked, retrying ... (delayed)")
	w.publish(6*time.Minute, 102, 110)
	b.begin(7 * time.Minute)
	b.apply(7*time.Minute+time.Second, 3)
	a.apply(7*time.Minute+2*time.Second, 1)
	b.cleanup(7*time.Minute + 3*time.Second)
	w.publish(8*time.Minute, 111, 111)
	if c.begin(8*time.Minute + 5*time.Second) {
		c.apply(8*time.Minute+6*time.Second, 3)
	}
	w.damage(10 * time.Minute)
	w.publish(10*time.Minute+30*time.Second, 112, 112)
	if c.begin(10*time.Minute + 35*time.Second) {
		c.apply(10*time.Minute+36*time.Second, 3)
	}
	return w
}

// enactor drives a dnsplan.Enactor through the schedule, narrating its
// events.
type enactor struct {
	w       *world
	name    string
	e       *dnsplan.Enactor
	applied []string
	events  []string
}

func newEnactor(w *world, name string) *enactor {
	en := &enactor{w: w, name: name}
	en.e, _ = dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: name, Retention: retention, OnEvent: en.observe})
	return en
}

func (en *enactor) observe(ev dnsplan.Event) {
	switch ev.Kind {
	case dnsplan.EventApplied:
		en.applied = append(en.applied, fmt.Sprintf("%s %d->%d", short(ev.Endpoint), ev.Have, ev.Generation))
	case dnsplan.EventRepaired:
		en.events = append(en.events, fmt.Sprintf("REPAIRS %s %d->%d", short(ev.Endpoint), ev.Have, ev.Generation))
	case dnsplan.EventConflict:
		en.events = append(en.events, fmt.Sprintf("write of %d to %s REFUSED: it is at %d now", ev.Generation, short(ev.Endpoint), ev.Have))
	case dnsplan.EventNewer:
		en.events = append(en.events, fmt.Sprintf("re-reads: %d is newer, skips", ev.Have))
	case dnsplan.EventError:
		en.events = append(en.events, fmt.Sprintf("error: %v", ev.Err))
	}
}

// until carries out the enactor's actions until the next one matches stop
// (which is left pending), and prints what happened.
func (en *enactor) until(at time.Duration, what string, stop func(dnsplan.Action) bool) {
	var deleted []fence.Token
	loaded := fence.Token(0)
	for steps := 0; !stop(en.e.Next()) && steps < 1000; steps++ {
		a := en.e.Next()
		r := dnsplan.Execute(ctx, a, en.w.store, en.w.dns)
		switch a.Op {
		case dnsplan.OpLoadLatest:
			loaded = r.Plan.Generation
		case dnsplan.OpDeletePlan:
			if r.Err == nil {
				deleted = append(deleted, a.Generation)
			}
		case dnsplan.OpRest:
			r = dnsplan.Result{}
		}
		en.e.Deliver(r)
	}
	var parts []string
	if what != "" {
		parts = append(parts, what)
	}
	if loaded != 0 {
		parts = append(parts, fmt.Sprintf("loads plan %d", loaded))
	}
	if len(en.applied) > 0 {
		parts = append(parts, "applies "+strings.Join(en.applied, ", "))
	}
	parts = append(parts, en.events...)
	if len(deleted) > 0 {
		floor := fence.MaxToken
		for _, ep := range endpoints {
			rec, _ := en.w.dns.Read(ctx, ep)
			floor = min(floor, rec.Generation)
		}
		parts = append(parts, fmt.Sprintf("clean-up deletes %s (every endpoint they name is at %d or later; retention %d)", span(deleted), floor, retention))
	}
	en.applied, en.events = nil, nil
	en.w.row(at, en.name, strings.Join(parts, "; "))
}

func isOp(op dnsplan.Op) func(dnsplan.Action) bool {
	return func(a dnsplan.Action) bool { return a.Op == op }
}

// runDnsplan replays the same schedule with dnsplan.Enactor.
func runDnsplan(out io.Writer) *world {
	w := newWorld(out)
	a := newEnactor(w, "A (1a)")
	b := newEnactor(w, "B (1b)")
	c := newEnactor(w, "C (1c)")
	w.publish(0, 101, 101)
	a.until(5*time.Second, "", func(x dnsplan.Action) bool { return x.Op == dnsplan.OpApply && x.Endpoint == regional })
	w.row(7*time.Second, a.name, "regional: read 100, write of 101 pending ... (delayed)")
	w.publish(6*time.Minute, 102, 110)
	b.until(7*time.Minute, "", isOp(dnsplan.OpListPlans))
	a.until(7*time.Minute+2*time.Second, "", isOp(dnsplan.OpRest))
	b.until(7*time.Minute+3*time.Second, "", isOp(dnsplan.OpRest))
	w.publish(8*time.Minute, 111, 111)
	c.until(8*time.Minute+5*time.Second, "", isOp(dnsplan.OpRest))
	c.e.Deliver(dnsplan.Result{}) // rest over
	w.damage(10 * time.Minute)
	w.publish(10*time.Minute+30*time.Second, 112, 112)
	c.until(10*time.Minute+35*time.Second, "", isOp(dnsplan.OpRest))
	return w
}

func run(out io.Writer) {
	fmt.Fprintln(out, "The DynamoDB DNS race of 2025-10-19, replayed. Enactor A is delayed on the regional")
	fmt.Fprintln(out, "endpoint while B applies a newer plan and cleans up; deleting a plan removes the")
	fmt.Fprintln(out, "records of any endpoint it is live on, as in 2025. This is one link of the October")
	fmt.Fprintln(out, "2025 outage, step by step; for the whole cascade in one run (DNS, DWFM lease collapse,")
	fmt.Fprintln(out, "NLB health checks), see go run ./dynamodb2025; for this race over many plans with")
	fmt.Fprintln(out, "random delays, go run ./dnsrace -seed 1.")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "== 2025: check-once enactors ==")
	w := run2025(out)
	w.out.Flush()
	summary(out, w, 10*time.Minute+36*time.Second)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "== dnsplan: fenced enactors, safe clean-up, self-repair ==")
	w = runDnsplan(out)
	w.out.Flush()
	summary(out, w, 10*time.Minute+35*time.Second)
}

func summary(out io.Writer, w *world, end time.Duration) {
	rec, _ := w.dns.Read(ctx, regional)
	empty := w.emptyTotal
	if w.empty {
		empty += end - w.emptySince
	}
	if len(rec.Targets) == 0 {
		fmt.Fprintf(out, "=> regional endpoint EMPTY at the end, stuck on deleted plan %d; empty for %v of the replay; operators must repair it by hand\n",
			rec.Generation, empty)
		return
	}
	fmt.Fprintf(out, "=> regional endpoint serves plan %d (%d addresses); empty for %v of the replay, outside damage included; no operator needed\n",
		rec.Generation, len(rec.Targets), empty)
}
