package ddbsim

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
)

const (
	regional  = "dynamodb.us-east-1.amazonaws.com"
	fips      = "dynamodb-fips.us-east-1.amazonaws.com"
	dualstack = "dynamodb.us-east-1.api.aws"
	retention = 5 // the 2025 clean-up: plans this many generations older go
)

var endpoints = []string{fips, dualstack, regional}

// dnsWorld is the plan store, the DNS and the planner of one run.
type dnsWorld struct {
	ctx     context.Context
	store   *dnsplan.MemoryStore
	dns     *dnsplan.MemoryProvider
	planner *dnsplan.Planner
	report  dnsplan.Report
	// emptyAt lists the instants the regional endpoint turned empty and
	// non-empty again, alternately.
	flips []time.Duration
	empty bool
	// gens counts plans published, applied and refused.
	published, refused int
}

func newDNSWorld() (*dnsWorld, error) {
	w := &dnsWorld{ctx: context.Background(), store: &dnsplan.MemoryStore{}, dns: &dnsplan.MemoryProvider{}, report: dnsplan.Report{}}
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	if err != nil {
		return nil, err
	}
	w.planner = p
	for j, ep := range endpoints {
		for k := range 3 {
			w.report[ep] = append(w.report[ep], dnsplan.TargetHealth{Addr: netip.AddrFrom4([4]byte{10, byte(j), 0, byte(k + 1)}), Capacity: 1, Healthy: true})
		}
	}
	plan, err := w.publish(0)
	if err != nil {
		return nil, err
	}
	for _, ep := range endpoints {
		if err := w.dns.Apply(w.ctx, ep, dnsplan.Records{}, dnsplan.Records{Generation: plan.Generation, Targets: plan.Endpoints[ep]}); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// publish makes the planner's next plan from an all-healthy report and
// stores it.
func (w *dnsWorld) publish(at time.Duration) (dnsplan.Plan, error) {
	p, err := w.planner.Next(start.Add(at), w.report)
	if err != nil {
		return p, err
	}
	w.published++
	return p, w.store.Put(w.ctx, p)
}

// observe records whether the regional endpoint is empty at at.
func (w *dnsWorld) observe(at time.Duration) {
	rec, _ := w.dns.Read(w.ctx, regional)
	e := len(rec.Targets) == 0
	if e != w.empty {
		w.empty = e
		w.flips = append(w.flips, at)
	}
}

// checkOnce is a 2025 enactor: one check before the pass, then writes.
type checkOnce struct {
	w    *dnsWorld
	plan dnsplan.Plan
	next int
}

func (c *checkOnce) begin() bool {
	c.plan, _ = c.w.store.Latest(c.w.ctx)
	c.next = 0
	rec, _ := c.w.dns.Read(c.w.ctx, regional)
	return c.plan.Generation > rec.Generation
}

// apply applies the plan to the next n endpoints; an endpoint whose live
// plan is gone cannot be written (the 2025 transaction is built from it).
func (c *checkOnce) apply(n int) {
	for ; n > 0 && c.next < len(endpoints); n-- {
		ep := endpoints[c.next]
		c.next++
		rec, _ := c.w.dns.Read(c.w.ctx, ep)
		if _, err := c.w.store.Get(c.w.ctx, rec.Generation); errors.Is(err, dnsplan.ErrNotFound) {
			c.w.refused++
			continue
		}
		_ = c.w.dns.Apply(c.w.ctx, ep, rec, dnsplan.Records{Generation: c.plan.Generation, Targets: c.plan.Endpoints[ep]})
	}
}

// cleanup deletes plans more than retention generations older than its
// own and, as in 2025, the records of any endpoint that serves one of them:
// deleting a plan removes its addresses.
func (c *checkOnce) cleanup() {
	gens, _ := c.w.store.List(c.w.ctx)
	for _, g := range gens {
		if g+retention < c.plan.Generation {
			_ = c.w.store.Delete(c.w.ctx, g)
		}
	}
	for _, ep := range endpoints {
		if rec, _ := c.w.dns.Read(c.w.ctx, ep); rec.Generation+retention < c.plan.Generation && len(rec.Targets) > 0 {
			c.w.dns.Set(ep, dnsplan.Records{Generation: rec.Generation})
		}
	}
}

func (c *checkOnce) pass() {
	if c.begin() {
		c.apply(len(endpoints))
		c.cleanup()
	}
}

// dnsResult is what the DNS layer hands the rest of the run.
type dnsResult struct {
	flips     []time.Duration
	published int
	refused   int
}

// emptyAt says whether the regional endpoint is empty at t.
func (d dnsResult) emptyAt(t time.Duration) bool {
	e := false
	for _, f := range d.flips {
		if f > t {
			break
		}
		e = !e
	}
	return e
}

// runDNS plays the DNS layer to end: the planner every minute, enactor A
// stalled on the regional endpoint from about 23:40 until 23:48, enactor B
// applying a much newer plan just before, and every enactor passing once a
// minute. Naive enactors check once; guarded ones are dnsplan.Enactor.
// The naive operators repair the record at 02:25.
func runDNS(mode Mode, rng *rand.Rand, end time.Duration) (dnsResult, error) {
	w, err := newDNSWorld()
	if err != nil {
		return dnsResult{}, err
	}
	stallAt := 40*time.Minute + time.Duration(rng.IntN(9))*time.Second // before the minute's passes
	bAt := 47*time.Minute + time.Duration(rng.IntN(40))*time.Second
	writeAt := RaceAt - 3*time.Second + time.Duration(rng.IntN(3))*time.Second
	cleanAt := RaceAt + time.Duration(rng.IntN(8))*time.Second // before the minute's passes
	type step struct {
		at time.Duration
		do func() error
	}
	var steps []step
	add := func(at time.Duration, do func() error) { steps = append(steps, step{at, do}) }
	for m := time.Minute; m < end; m += time.Minute {
		add(m, func() error { _, err := w.publish(m); return err })
	}
	if mode == Naive {
		a, b, c := &checkOnce{w: w}, &checkOnce{w: w}, &checkOnce{w: w}
		stalled := true
		add(stallAt, func() error {
			if a.begin() {
				a.apply(2) // fips and dualstack; the regional transaction stalls
			}
			return nil
		})
		add(bAt, func() error { b.pass(); b.next = len(endpoints); return nil })
		add(writeAt, func() error { a.apply(1); stalled = false; return nil })
		add(cleanAt, func() error { b.cleanup(); return nil })
		for m := time.Minute; m < end; m += time.Minute {
			add(m+10*time.Second, func() error {
				if m > stallAt && !stalled {
					a.pass()
				}
				if m > cleanAt {
					b.pass()
				}
				c.pass()
				return nil
			})
		}
		add(DNSRepair, func() error {
			// The operators' repair: the newest plan written to the
			// regional endpoint by hand.
			p, err := w.store.Latest(w.ctx)
			if err != nil {
				return err
			}
			w.dns.Set(regional, dnsplan.Records{Generation: p.Generation, Targets: p.Endpoints[regional]})
			return nil
		})
	} else {
		ens := make([]*dnsplan.Enactor, 3)
		for i := range ens {
			e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: []string{"1a", "1b", "1c"}[i], Retention: retention})
			if err != nil {
				return dnsResult{}, err
			}
			ens[i] = e
		}
		a := ens[0]
		var held dnsplan.Action
		drive := func(e *dnsplan.Enactor, stop func(dnsplan.Action) bool) {
			for range 1000 {
				x := e.Next()
				if stop(x) {
					return
				}
				r := dnsplan.Execute(w.ctx, x, w.store, w.dns)
				if x.Op == dnsplan.OpRest {
					r = dnsplan.Result{}
				}
				e.Deliver(r)
				if x.Op == dnsplan.OpRest {
					return
				}
			}
		}
		stalled := true
		add(stallAt, func() error {
			drive(a, func(x dnsplan.Action) bool {
				if x.Op == dnsplan.OpApply && x.Endpoint == regional {
					held = x
					return true
				}
				return false
			})
			return nil
		})
		add(bAt, func() error { _, err := ens[1].Pass(w.ctx, w.store, w.dns); return err })
		add(writeAt, func() error {
			if held.Op == dnsplan.OpApply {
				r := dnsplan.Execute(w.ctx, held, w.store, w.dns)
				if r.Err != nil {
					w.refused++
				}
				a.Deliver(r)
				drive(a, func(dnsplan.Action) bool { return false })
			}
			stalled = false
			return nil
		})
		for m := time.Minute; m < end; m += time.Minute {
			add(m+10*time.Second, func() error {
				for i, e := range ens {
					if i == 0 && (stalled || m <= stallAt) {
						continue
					}
					if i == 1 && m <= bAt {
						continue
					}
					if _, err := e.Pass(w.ctx, w.store, w.dns); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	slices.SortStableFunc(steps, func(x, y step) int { return cmp.Compare(x.at, y.at) })
	for _, s := range steps {
		if err := s.do(); err != nil {
			return dnsResult{}, err
		}
		w.observe(s.at)
	}
	return dnsResult{flips: w.flips, published: w.published, refused: w.refused}, nil
}

// start is 23:00 PDT, October 19, 2025.
var start = time.Date(2025, 10, 20, 6, 0, 0, 0, time.UTC)
