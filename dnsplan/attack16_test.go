package dnsplan_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestDeliverActionRefusesAnAlteredAction: an action Ready handed out,
// then changed by the driver (another endpoint, op, generation or
// condition), was not handed out by Ready: its outcome is refused, and
// the Enactor is unchanged — the true outcome is still due.
func TestDeliverActionRefusesAnAlteredAction(t *testing.T) {
	const n = 4
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
	require.NoError(t, store.Put(ctx, bigPlan(5, n, 5)))
	e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: 2, Retention: 1})
	alter := map[string]func(*dnsplan.Action){
		"endpoint":   func(a *dnsplan.Action) { a.Endpoint += "x" },
		"op":         func(a *dnsplan.Action) { a.Op = (a.Op + 1) % (dnsplan.OpDeletePlan + 1) },
		"generation": func(a *dnsplan.Action) { a.Generation++ },
		"records":    func(a *dnsplan.Action) { a.Records.Generation++ },
		"expect":     func(a *dnsplan.Action) { a.Expect.Version += "x" },
	}
	out := e.Ready(nil)
	for steps := 0; len(out) > 0; steps++ {
		require.Less(t, steps, 200)
		a := out[0]
		out = out[1:]
		if a.Op == dnsplan.OpRest {
			break
		}
		for what, f := range alter {
			b := a
			f(&b)
			if reflect.DeepEqual(a, b) {
				continue
			}
			err := e.DeliverAction(b, dnsplan.Result{Err: errors.New("must not be delivered")})
			require.ErrorIs(t, err, dnsplan.ErrInvalidArgument, "%v with its %s altered to %v", a, what, b)
		}
		require.NoError(t, e.DeliverAction(a, dnsplan.Execute(ctx, a, store, dns)), a.String())
		out = e.Ready(out)
	}
	assert.Equal(t, dnsplan.PassStats{Generation: 5, Applied: n, Deleted: 1}, e.LastPass())
	for i := range n {
		rec, _ := dns.Read(ctx, epName(i))
		assert.Equal(t, fence.Token(5), rec.Generation)
	}
}

// blockingDNS blocks every Read until release is closed.
type blockingDNS struct {
	dnsplan.MemoryProvider
	release chan struct{}
}

func (d *blockingDNS) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	<-d.release
	return d.MemoryProvider.Read(ctx, ep)
}

// TestPassRefusesAConcurrentPass: an Enactor is not safe for concurrent
// use, but a second Pass (or Run) of one Enactor while another runs is
// refused with ErrInvalidArgument, at once, instead of driving the same
// state from two goroutines; the first Pass is unharmed.
func TestPassRefusesAConcurrentPass(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		synctest.Test(t, func(t *testing.T) {
			const n = 8
			store, dns := &dnsplan.MemoryStore{}, &blockingDNS{release: make(chan struct{})}
			require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
			e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel})
			first := make(chan error)
			go func() {
				_, err := e.Pass(ctx, store, dns)
				first <- err
			}()
			synctest.Wait()
			second := make(chan error, 2)
			go func() {
				_, err := e.Pass(ctx, store, dns)
				second <- err
			}()
			go func() { second <- e.Run(ctx, store, dns) }()
			synctest.Wait()
			for range 2 {
				select {
				case err := <-second:
					require.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
					assert.Contains(t, err.Error(), "already")
				default:
					close(dns.release)
					t.Fatalf("parallel %d: a second Pass or Run of the Enactor did not return at once", parallel)
				}
			}
			close(dns.release)
			require.NoError(t, <-first)
			assert.Equal(t, dnsplan.PassStats{Generation: 1, Applied: n}, e.LastPass())
			st, err := e.Pass(ctx, store, dns)
			require.NoError(t, err)
			assert.Equal(t, dnsplan.PassStats{Generation: 1, Current: n, Highest: 1}, st)
		})
	}
}

// TestPassAfterOnEventPanicsOnAnEndpoint: an OnEvent that panics on an
// endpoint's event leaves that endpoint done (its write landed and was
// counted, or its failure counted): the next Pass goes on with the
// others, and neither writes it again (a conflict) nor counts it twice.
// With several endpoints in flight, driven by Ready and DeliverAction,
// the outcomes of the others are still due after the panic.
func TestPassAfterOnEventPanicsOnAnEndpoint(t *testing.T) {
	const n = 8
	for _, kind := range []dnsplan.EventKind{dnsplan.EventApplied, dnsplan.EventNewer, dnsplan.EventError} {
		for _, parallel := range []int{1, 4} {
			for _, driver := range []string{"Pass", "Ready"} {
				if driver == "Pass" && parallel > 1 {
					continue // the outcomes in flight are dropped: conflicts
				}
				store, dns := &dnsplan.MemoryStore{}, &failingApply{bad: epName(6)}
				require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
				// One endpoint is ahead of the plan.
				require.NoError(t, dns.MemoryProvider.Apply(ctx, epName(2), dnsplan.Records{}, dnsplan.Records{Generation: 9, Targets: bigPlan(9, n, 9).Endpoints[epName(2)]}))
				var events []dnsplan.Event
				panics := 0
				e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel, OnEvent: func(ev dnsplan.Event) {
					events = append(events, ev)
					if ev.Kind == kind && panics == 0 {
						panics++
						panic("hook")
					}
				}})
				var st dnsplan.PassStats
				if driver == "Pass" {
					require.PanicsWithValue(t, "hook", func() { _, _ = e.Pass(ctx, store, dns) })
					var err error
					st, err = e.Pass(ctx, store, dns)
					require.NoError(t, err)
				} else {
					out := e.Ready(nil)
					var results []dnsplan.Result
					for steps := 0; ; steps++ {
						require.Less(t, steps, 100)
						results = results[:0]
						for _, a := range out {
							results = append(results, dnsplan.Execute(ctx, a, store, dns))
						}
						if len(out) == 1 && out[0].Op == dnsplan.OpRest {
							break
						}
						for i, a := range out {
							func() {
								defer func() { _ = recover() }()
								require.NoError(t, e.DeliverAction(a, results[i]))
							}()
						}
						out = e.Ready(out[:0])
					}
					st = e.LastPass()
				}
				require.Equal(t, 1, panics)
				st.Err = nil
				assert.Equal(t, dnsplan.PassStats{Generation: 1, Applied: n - 2, Newer: 1, Failed: 1, Highest: 9}, st,
					"%v, parallel %d, %s: %v", kind, parallel, driver, events)
				per := map[string]int{}
				for _, ev := range events {
					if ev.Endpoint != "" {
						per[ev.Endpoint]++
					}
				}
				assert.Len(t, per, n)
				for name, k := range per {
					assert.Equal(t, 1, k, "%v, parallel %d, %s: %s has %d events", kind, parallel, driver, name, k)
				}
			}
		}
	}
}

// failingApply fails every Apply to bad.
type failingApply struct {
	dnsplan.MemoryProvider
	bad string
}

func (d *failingApply) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	if ep == d.bad {
		return errors.New("dns: SERVFAIL")
	}
	return d.MemoryProvider.Apply(ctx, ep, expect, r)
}

// mixedDriver is one enactor of TestMixedDriversProperty with the
// actions Ready handed out, carried out or not yet.
type mixedDriver struct {
	e    *dnsplan.Enactor
	pool []inflight
	old  []inflight // delivered or abandoned: never due again
}

// TestMixedDriversProperty: enactors of several Parallel values, each
// driven in turn, at random, by Ready and DeliverAction (outcomes
// carried out and delivered in any order, late, twice, or after the
// pass was abandoned), by Next and Deliver, and by Pass (sometimes
// cancelled), while a planner publishes and the Store loses plans. An
// outcome that is not due is refused (ErrInvalidArgument), never taken;
// and whatever the mix, no endpoint's generation decreases, no endpoint
// once written is empty, and the plan of every endpoint's generation is
// in the Store unless the Store lost it.
func TestMixedDriversProperty(t *testing.T) {
	endpoints := []string{"a", "b", "c", "d"}
	rapid.Check(t, func(rt *rapid.T) {
		store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
		retention := rapid.IntRange(-1, 2).Draw(rt, "retention") // -1: 0 via the default
		var ds []*mixedDriver
		for i := range rapid.IntRange(1, 3).Draw(rt, "enactors") {
			e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{
				Name:      fmt.Sprintf("E%d", i),
				Parallel:  rapid.IntRange(1, 5).Draw(rt, "parallel"),
				Retention: max(retention, 0), MaxDeletes: 1 + i,
			})
			if err != nil {
				rt.Fatal(err)
			}
			ds = append(ds, &mixedDriver{e: e})
		}
		var (
			next    fence.Token
			lost    = map[fence.Token]bool{}
			highest = map[string]fence.Token{}
		)
		publish := func() {
			next++
			p := dnsplan.Plan{Generation: next, Endpoints: map[string][]dnsplan.Target{}}
			for i, ep := range endpoints {
				if rapid.IntRange(0, 4).Draw(rt, "named") > 0 || i == 0 {
					p.Endpoints[ep] = []dnsplan.Target{tg(int(next)%7+1, 1), tg(int(next)%5+10, 2)}
				}
			}
			if err := store.Put(ctx, p); err != nil {
				rt.Fatal(err)
			}
		}
		publish()
		check := func() {
			for _, ep := range endpoints {
				rec, err := dns.Read(ctx, ep)
				if err != nil {
					rt.Fatal(err)
				}
				if rec.Generation < highest[ep] {
					rt.Fatalf("%s rolled back from %d to %d", ep, highest[ep], rec.Generation)
				}
				if rec.Generation > 0 && len(rec.Targets) == 0 {
					rt.Fatalf("%s is empty at generation %d", ep, rec.Generation)
				}
				highest[ep] = rec.Generation
				if g := rec.Generation; g > 0 && !lost[g] {
					if _, err := store.Get(ctx, g); err != nil {
						rt.Fatalf("%s is at generation %d, whose plan was deleted: %v", ep, g, err)
					}
				}
			}
		}
		refused := func(d *mixedDriver, o inflight, why string) {
			if err := d.e.DeliverAction(o.a, o.r); !errors.Is(err, dnsplan.ErrInvalidArgument) {
				rt.Fatalf("%s: %s outcome of %v not refused: %v", d.e.Name(), why, o.a, err)
			}
		}
		abandon := func(d *mixedDriver) {
			d.old = append(d.old, d.pool...)
			d.pool = d.pool[:0]
		}
		for range rapid.IntRange(1, 150).Draw(rt, "steps") {
			d := ds[rapid.IntRange(0, len(ds)-1).Draw(rt, "enactor")]
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0:
				publish()
			case 1:
				if gens, _ := store.List(ctx); len(gens) > 1 {
					g := gens[rapid.IntRange(0, len(gens)-1).Draw(rt, "lose")]
					if store.Delete(ctx, g) == nil {
						lost[g] = true
					}
				}
			case 2, 3, 4:
				for _, a := range d.e.Ready(nil) {
					d.pool = append(d.pool, inflight{a: a})
				}
				if len(d.pool) == 0 {
					break
				}
				k := rapid.IntRange(0, len(d.pool)-1).Draw(rt, "pick")
				if o := &d.pool[k]; !o.done {
					o.r, o.done = dnsplan.Execute(ctx, o.a, store, dns), true
					break
				}
				o := d.pool[k]
				d.pool = append(d.pool[:k], d.pool[k+1:]...)
				if err := d.e.DeliverAction(o.a, o.r); err != nil {
					// Taken over by Next and Deliver since: refused.
					if !errors.Is(err, dnsplan.ErrInvalidArgument) {
						rt.Fatal(err)
					}
				}
				d.old = append(d.old, o)
			case 5:
				if len(d.old) > 0 {
					o := d.old[rapid.IntRange(0, len(d.old)-1).Draw(rt, "stale")]
					if !o.done {
						o.r = dnsplan.Execute(ctx, o.a, store, dns)
					}
					refused(d, o, "a stale")
				}
			case 6:
				a := d.e.Next()
				d.e.Deliver(dnsplan.Execute(ctx, a, store, dns))
			case 7:
				c, cancel := context.WithCancel(ctx)
				if rapid.Bool().Draw(rt, "cancelled") {
					cancel()
				}
				if _, err := d.e.Pass(c, store, dns); err != nil && !errors.Is(err, context.Canceled) {
					rt.Fatal(err)
				}
				cancel()
				abandon(d)
			case 8, 9:
				if len(d.pool) > 0 {
					// The pool's actions may be delivered twice: the second is
					// refused.
					k := rapid.IntRange(0, len(d.pool)-1).Draw(rt, "twice")
					o := d.pool[k]
					if !o.done {
						o.r = dnsplan.Execute(ctx, o.a, store, dns)
					}
					d.pool = append(d.pool[:k], d.pool[k+1:]...)
					if err := d.e.DeliverAction(o.a, o.r); err == nil {
						refused(d, o, "a repeated")
					}
					d.old = append(d.old, o)
				}
			}
			check()
		}
		// Every enactor, in the end, converges on the newest plan (the
		// Store may have lost them all: one is published).
		publish()
		for _, d := range ds {
			abandon(d)
			for range 2 {
				if _, err := d.e.Pass(ctx, store, dns); err != nil {
					rt.Fatal(err)
				}
				check()
			}
			for _, o := range d.old {
				refused(d, o, "an abandoned")
			}
		}
		latest, err := store.Latest(ctx)
		if err != nil {
			rt.Fatal(err)
		}
		for ep, ts := range latest.Endpoints {
			rec, _ := dns.Read(ctx, ep)
			if rec.Generation < latest.Generation || (rec.Generation == latest.Generation && !dnsplan.SameTargets(rec.Targets, ts)) {
				rt.Fatalf("%s at %d %v after the last passes, newest plan %d %v", ep, rec.Generation, rec.Targets, latest.Generation, ts)
			}
		}
	})
}

// liarWatcher is a MemoryStore whose WaitNewer announces, at once, a
// generation above the one asked about, which the Store does not hold.
type liarWatcher struct {
	dnsplan.MemoryStore
	mu    sync.Mutex
	calls int
}

func (s *liarWatcher) WaitNewer(ctx context.Context, g fence.Token) (fence.Token, error) {
	s.mu.Lock()
	s.calls++
	spinning := s.calls > 1000
	s.mu.Unlock()
	if spinning {
		time.Sleep(time.Hour) // let the test fail on its count, not hang
	}
	return g + 1, nil
}

// TestRunWatcherAnnouncingWhatIsNotThereDoesNotSpin: a Watcher that
// announces at once, every time, a newer generation than the last,
// which the Store does not hold, does not make Run pass in a loop: a
// pass the Watcher started that does not find the plan it announced
// makes Run wait the whole Interval before it listens to the Watcher
// again.
func TestRunWatcherAnnouncingWhatIsNotThereDoesNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, dns := &liarWatcher{}, &dnsplan.MemoryProvider{}
		require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
		var pc passCounter
		e := mustEnactor(t, dnsplan.EnactorConfig{Interval: time.Minute, OnEvent: pc.onEvent})
		start := time.Now()
		runUntil(t, e, store, dns, func() { time.Sleep(10*time.Minute + 30*time.Second) })
		at, _ := pc.passes()
		require.Equal(t, 22, len(at), "two passes a minute: on the Watcher's word, then on the Interval")
		for i, a := range at {
			assert.Equal(t, time.Duration(i/2)*time.Minute, a.Sub(start), "pass %d", i)
		}
	})
}

// panicOnce panics once, on the first call of op.
type panicOnce struct {
	dnsplan.MemoryStore
	dns      dnsplan.MemoryProvider
	op       dnsplan.Op
	mu       sync.Mutex
	panicked bool
}

func (p *panicOnce) hit(op dnsplan.Op) {
	p.mu.Lock()
	hit := op == p.op && !p.panicked
	p.panicked = p.panicked || hit
	p.mu.Unlock()
	if hit {
		panic(op.String())
	}
}

func (p *panicOnce) Latest(ctx context.Context) (dnsplan.Plan, error) {
	p.hit(dnsplan.OpLoadLatest)
	return p.MemoryStore.Latest(ctx)
}

func (p *panicOnce) List(ctx context.Context) ([]fence.Token, error) {
	p.hit(dnsplan.OpListPlans)
	return p.MemoryStore.List(ctx)
}

func (p *panicOnce) Get(ctx context.Context, g fence.Token) (dnsplan.Plan, error) {
	p.hit(dnsplan.OpLoadPlan)
	return p.MemoryStore.Get(ctx, g)
}

func (p *panicOnce) Delete(ctx context.Context, g fence.Token) error {
	p.hit(dnsplan.OpDeletePlan)
	return p.MemoryStore.Delete(ctx, g)
}

func (p *panicOnce) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	p.hit(dnsplan.OpRead)
	return p.dns.Read(ctx, ep)
}

func (p *panicOnce) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	p.hit(dnsplan.OpApply)
	return p.dns.Apply(ctx, ep, expect, r)
}

// TestPassAfterAPanicInEveryOp: a Store or Provider that panics once, in
// any of its calls, with one endpoint or several in flight, panics the
// caller of Pass; the next Pass finishes the work (every endpoint at the
// newest plan, the old plans deleted), and the one after finds nothing to
// do.
func TestPassAfterAPanicInEveryOp(t *testing.T) {
	const n = 6
	for op := dnsplan.OpLoadLatest; op <= dnsplan.OpDeletePlan; op++ {
		for _, parallel := range []int{1, 3} {
			p := &panicOnce{op: op}
			for g := fence.Token(1); g <= 4; g++ {
				require.NoError(t, p.Put(ctx, bigPlan(g, n, byte(g))))
			}
			e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel, Retention: 1})
			require.PanicsWithValue(t, op.String(), func() { _, _ = e.Pass(ctx, p, p) }, "%v, parallel %d", op, parallel)
			_, err := e.Pass(ctx, p, p)
			require.NoError(t, err)
			for i := range n {
				rec, _ := p.dns.Read(ctx, epName(i))
				assert.Equal(t, fence.Token(4), rec.Generation, "%v, parallel %d", op, parallel)
			}
			gens, _ := p.List(ctx)
			assert.Equal(t, []fence.Token{3, 4}, gens, "%v, parallel %d", op, parallel)
			st, err := e.Pass(ctx, p, p)
			require.NoError(t, err)
			assert.Equal(t, dnsplan.PassStats{Generation: 4, Current: n, Highest: 4}, st, "%v, parallel %d", op, parallel)
		}
	}
}

// TestParallelPassAllocatesAsMuchAsASequentialOne: the worker pool of a
// parallel Pass costs a constant number of allocations per pass (its
// goroutines and channels), not some per action: in memory, where the
// calls cost nothing, Parallel 16 must not be the slower default.
func TestParallelPassAllocatesAsMuchAsASequentialOne(t *testing.T) {
	const n = 2000
	allocs := func(parallel int) float64 {
		store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
		e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel})
		plans := []dnsplan.Plan{bigPlan(0, n, 0), bigPlan(0, n, 3)}
		g := fence.Token(0)
		var applied int
		a := testing.AllocsPerRun(5, func() {
			g++
			p := plans[g%2]
			p.Generation = g
			if err := store.Put(ctx, p); err != nil {
				panic(err)
			}
			st, err := e.Pass(ctx, store, dns)
			if err != nil {
				panic(err)
			}
			applied = st.Applied
		})
		require.Equal(t, n, applied)
		// Put's own allocations (a copy of the plan) are in both counts.
		return a
	}
	seq, par := allocs(1), allocs(dnsplan.DefaultParallel)
	t.Logf("allocations a pass: Parallel 1 %.0f, Parallel %d %.0f", seq, dnsplan.DefaultParallel, par)
	assert.LessOrEqual(t, par, seq+100, "Parallel %d allocates %.0f a pass over %d endpoints, Parallel 1 %.0f", dnsplan.DefaultParallel, par, n, seq)
}
