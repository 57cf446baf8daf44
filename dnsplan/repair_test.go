package dnsplan_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faulty wraps a MemoryProvider with the failures of a real DNS server:
// chosen endpoints fail every Read (readErr) or every Apply (applyErr), or
// read as corrupt (their generation and version intact, their targets
// unreadable) until they are rewritten. It is safe for concurrent use.
type faulty struct {
	*dnsplan.MemoryProvider
	mu       sync.Mutex
	readErr  map[string]error
	applyErr map[string]error
	corrupt  map[string]bool
}

func newFaulty(dns *dnsplan.MemoryProvider) *faulty {
	return &faulty{MemoryProvider: dns, readErr: map[string]error{}, applyErr: map[string]error{}, corrupt: map[string]bool{}}
}

func (f *faulty) set(m map[string]error, ep string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(m, ep)
		return
	}
	m[ep] = err
}

func (f *faulty) setCorrupt(ep string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.corrupt[ep] = on
}

func (f *faulty) isCorrupt(ep string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.corrupt[ep]
}

func (f *faulty) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	f.mu.Lock()
	err, corrupt := f.readErr[ep], f.corrupt[ep]
	f.mu.Unlock()
	if err != nil {
		return dnsplan.Records{}, err
	}
	rec, err := f.MemoryProvider.Read(ctx, ep)
	if err == nil && corrupt {
		return dnsplan.Records{Generation: rec.Generation, Version: rec.Version},
			fmt.Errorf("%w: %q: weights TXT holds a stray string", dnsplan.ErrCorruptRecords, ep)
	}
	return rec, err
}

func (f *faulty) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	f.mu.Lock()
	err := f.applyErr[ep]
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if err := f.MemoryProvider.Apply(ctx, ep, expect, r); err != nil {
		return err
	}
	f.setCorrupt(ep, false)
	return nil
}

// content reads ep's records without their version.
func content(t *testing.T, dns dnsplan.Provider, ep string) dnsplan.Records {
	t.Helper()
	rec, err := dns.Read(ctx, ep)
	require.NoError(t, err)
	rec.Version = ""
	return rec
}

// stepUntil carries out e's actions until the next one is stop (left
// pending), checking after each that ep never serves other targets than
// want at generation g.
func stepUntil(t *testing.T, e *dnsplan.Enactor, store dnsplan.Store, dns dnsplan.Provider, stop func(dnsplan.Action) bool, check func()) {
	t.Helper()
	for range 1000 {
		a := e.Next()
		if stop(a) {
			return
		}
		e.Deliver(dnsplan.Execute(ctx, a, store, dns))
		check()
	}
	t.Fatal("the action awaited never came")
}

// TestStalledRepairWritesItsGenerationsTargets is issue 12 #1. Enactor S
// loads plan 1 (api -> 10.0.0.1) and stalls. Plans 2-10 (api -> 10.0.0.9)
// are published; F applies 10 and cleans up. The endpoint is emptied from
// outside at generation 10, and S, waking, finds it empty at 10 > 1. S
// must repair it with plan 10's targets, never with its own plan 1's:
// whether F repairs first (S's write must then not land over F's: the
// version condition) or S writes first.
func TestStalledRepairWritesItsGenerationsTargets(t *testing.T) {
	for _, fFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("F repairs first %v", fFirst), func(t *testing.T) {
			store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
			require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
			s := mustEnactor(t, dnsplan.EnactorConfig{Name: "S"})
			f := mustEnactor(t, dnsplan.EnactorConfig{Name: "F"})
			s.Deliver(dnsplan.Execute(ctx, s.Next(), store, dns)) // S loads plan 1...
			require.Equal(t, dnsplan.OpRead, s.Next().Op)         // ...and stalls before its read
			for g := fence.Token(2); g <= 10; g++ {
				require.NoError(t, store.Put(ctx, onePlan(g, tg(9, 1))))
			}
			st, err := f.Pass(ctx, store, dns)
			require.NoError(t, err)
			require.Equal(t, 1, st.Applied)
			dns.Set("api", dnsplan.Records{Generation: 10}) // emptied from outside

			want := dnsplan.Records{Generation: 10, Targets: []dnsplan.Target{tg(9, 1)}}
			never := func() {
				if rec := content(t, dns, "api"); len(rec.Targets) > 0 {
					require.Equal(t, want, rec, "S's stale content landed")
				}
			}
			// S reads the empty endpoint and prepares its repair.
			s.Deliver(dnsplan.Execute(ctx, s.Next(), store, dns))
			stepUntil(t, s, store, dns, func(a dnsplan.Action) bool { return a.Op == dnsplan.OpApply }, never)
			assert.Equal(t, []dnsplan.Target{tg(9, 1)}, s.Next().Records.Targets, "the repair carries plan 10's targets")
			if fFirst {
				st, err = f.Pass(ctx, store, dns)
				require.NoError(t, err)
				assert.Equal(t, 1, st.Repaired)
			}
			stepUntil(t, s, store, dns, func(a dnsplan.Action) bool { return a.Op == dnsplan.OpRest }, never)
			assert.Equal(t, want, content(t, dns, "api"))
			if fFirst {
				assert.Equal(t, 1, s.LastPass().Newer, "S found F's repair and wrote nothing")
			} else {
				assert.Equal(t, 1, s.LastPass().Repaired)
			}
			st, err = f.Pass(ctx, store, dns)
			require.NoError(t, err)
			assert.Equal(t, dnsplan.PassStats{Generation: 10, Current: 1, Highest: 10}, st)
		})
	}
}

// TestStoreLossRefill: an endpoint emptied at a generation whose plan the
// Store lost is refilled with the targets of the Store's newest plan (not
// the enactor's own, older one) under its own generation — the single
// case in which an endpoint serves other targets than its generation's
// plan. A non-empty endpoint at a lost generation, and an empty one while
// the Store holds newer plans, are left for the newer plans.
func TestStoreLossRefill(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"a": {tg(1, 1)}, "b": {tg(1, 1)}}}))
	s := mustEnactor(t, dnsplan.EnactorConfig{Name: "S"})
	s.Deliver(dnsplan.Execute(ctx, s.Next(), store, dns)) // S holds plan 1
	require.NoError(t, store.Put(ctx, dnsplan.Plan{Generation: 3, Endpoints: map[string][]dnsplan.Target{"a": {tg(3, 1)}, "b": {tg(3, 1)}}}))
	dns.Set("a", dnsplan.Records{Generation: 7})                                      // plan 7 lost, a empty
	dns.Set("b", dnsplan.Records{Generation: 7, Targets: []dnsplan.Target{tg(7, 1)}}) // plan 7 lost, b serving
	stepUntil(t, s, store, dns, func(a dnsplan.Action) bool { return a.Op == dnsplan.OpRest }, func() {})
	assert.Equal(t, dnsplan.Records{Generation: 7, Targets: []dnsplan.Target{tg(3, 1)}}, content(t, dns, "a"), "the newest plan's targets, not S's plan 1's")
	assert.Equal(t, dnsplan.Records{Generation: 7, Targets: []dnsplan.Target{tg(7, 1)}}, content(t, dns, "b"))
	assert.Equal(t, dnsplan.PassStats{Generation: 1, Repaired: 1, Newer: 1, Highest: 7}, s.LastPass())

	// A newer plan than the endpoint exists: it is that plan's to write.
	all := func(g fence.Token) dnsplan.Plan {
		return dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{"a": {tg(int(g), 1)}, "b": {tg(int(g), 1)}, "c": {tg(int(g), 1)}}}
	}
	require.NoError(t, store.Put(ctx, all(9)))
	s2 := mustEnactor(t, dnsplan.EnactorConfig{Name: "S2"})
	s2.Deliver(dnsplan.Execute(ctx, s2.Next(), store, dns)) // S2 holds plan 9
	require.NoError(t, store.Put(ctx, all(12)))
	require.NoError(t, store.Delete(ctx, 12)) // lost
	require.NoError(t, store.Put(ctx, all(13)))
	dns.Set("c", dnsplan.Records{Generation: 12})
	stepUntil(t, s2, store, dns, func(a dnsplan.Action) bool { return a.Op == dnsplan.OpRest }, func() {})
	assert.Equal(t, dnsplan.Records{Generation: 12}, content(t, dns, "c"), "plan 13 is newer than the endpoint: not S2's to refill")
	assert.Equal(t, 1, s2.LastPass().Newer)
}

// TestDecommissionedEndpointKeepsTheStoreBounded is issue 12 #2: plans 1-5
// name a and b, plans 6 on only a. b keeps its records (and its live plan
// 5 with Retention's margin), and stops pinning every other plan: the
// store never fills.
func TestDecommissionedEndpointKeepsTheStoreBounded(t *testing.T) {
	store, err := dnsplan.NewMemoryStore(dnsplan.MemoryStoreConfig{MaxPlans: 32})
	require.NoError(t, err)
	dns := &dnsplan.MemoryProvider{}
	e := mustEnactor(t, dnsplan.EnactorConfig{})
	for g := fence.Token(1); g <= 100; g++ {
		p := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{"a": {tg(int(g), 1)}}}
		if g <= 5 {
			p.Endpoints["b"] = []dnsplan.Target{tg(int(g), 2)}
		}
		require.NoError(t, store.Put(ctx, p), "put plan %d", g)
		st, err := e.Pass(ctx, store, dns)
		require.NoError(t, err)
		require.Zero(t, st.Failed)
	}
	gens, err := store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []fence.Token{3, 4, 5, 98, 99, 100}, gens, "b's live plan 5 and Retention 2 below it; a's newest three")
	assert.Equal(t, dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg(5, 2)}}, content(t, dns, "b"), "a decommissioned endpoint keeps its records")
}

// TestCorruptRecordsAreRewritten is issue 12 #5: an endpoint whose
// metadata is damaged (Read: ErrCorruptRecords with the generation and
// version intact) is rewritten under that condition with the plan of the
// right generation, on the next pass, and does not stop clean-up.
func TestCorruptRecordsAreRewritten(t *testing.T) {
	store, mem := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	dns := newFaulty(mem)
	two := func(g fence.Token) dnsplan.Plan {
		return dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{"a": {tg(int(g), 1)}, "b": {tg(int(g), 2)}}}
	}
	var errs []dnsplan.Event
	e := mustEnactor(t, dnsplan.EnactorConfig{OnEvent: func(ev dnsplan.Event) {
		if ev.Kind == dnsplan.EventError {
			errs = append(errs, ev)
		}
	}})
	for g := fence.Token(1); g <= 5; g++ {
		require.NoError(t, store.Put(ctx, two(g)))
	}
	_, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)

	// Same generation: repaired in place.
	dns.setCorrupt("b", true)
	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.PassStats{Generation: 5, Current: 1, Repaired: 1, Highest: 5}, st)
	assert.Equal(t, dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg(5, 2)}}, content(t, dns, "b"))

	// An older generation: the new plan is applied over it, and clean-up
	// goes on.
	dns.setCorrupt("b", true)
	require.NoError(t, store.Put(ctx, two(6)))
	st, err = e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Applied)
	assert.Equal(t, 1, st.Repaired)
	assert.Equal(t, 1, st.Deleted, "plan 3 is below every endpoint's 6 - Retention 2")
	assert.Equal(t, dnsplan.Records{Generation: 6, Targets: []dnsplan.Target{tg(6, 2)}}, content(t, dns, "b"))

	// Newer than the enactor's plan: repaired with that generation's plan.
	s := mustEnactor(t, dnsplan.EnactorConfig{Name: "S"})
	s.Deliver(dnsplan.Execute(ctx, s.Next(), store, dns)) // S holds plan 6
	require.NoError(t, store.Put(ctx, two(7)))
	_, err = e.Pass(ctx, store, dns)
	require.NoError(t, err)
	dns.setCorrupt("b", true)
	stepUntil(t, s, store, dns, func(a dnsplan.Action) bool { return a.Op == dnsplan.OpRest }, func() {})
	assert.Equal(t, dnsplan.Records{Generation: 7, Targets: []dnsplan.Target{tg(7, 2)}}, content(t, dns, "b"))
	assert.Equal(t, 1, s.LastPass().Repaired)
	assert.Empty(t, errs)
}

// TestFailingEndpointPinsOnlyWhatItCouldNeed is issue 12 #5 and #6: an
// endpoint that cannot be read (a transient error) or written (a CNAME at
// its name: ErrNameInUse) is reported failed on every pass, with an error
// naming it, without a conflict loop; the rest of the fleet is applied,
// and clean-up goes on, keeping for the failing endpoint only the plans
// that name it from the lowest generation it could have on.
func TestFailingEndpointPinsOnlyWhatItCouldNeed(t *testing.T) {
	for _, tc := range []struct {
		name       string
		read, appl error
	}{
		{"unreadable", errors.New("i/o timeout"), nil},
		{"name in use", nil, fmt.Errorf("%w: x holds CNAME lb.elsewhere.example.", dnsplan.ErrNameInUse)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, mem := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
			dns := newFaulty(mem)
			var errs []dnsplan.Event
			e := mustEnactor(t, dnsplan.EnactorConfig{OnEvent: func(ev dnsplan.Event) {
				if ev.Kind == dnsplan.EventError {
					errs = append(errs, ev)
				}
			}})
			// Plans 1-10 name a and x, later ones a only. x is healthy up
			// to plan 5, then fails.
			plan := func(g fence.Token) dnsplan.Plan {
				p := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{"a": {tg(int(g), 1)}}}
				if g <= 10 {
					p.Endpoints["x"] = []dnsplan.Target{tg(int(g), 2)}
				}
				return p
			}
			for g := fence.Token(1); g <= 30; g++ {
				require.NoError(t, store.Put(ctx, plan(g)))
				if g == 6 {
					dns.set(dns.readErr, "x", tc.read)
					dns.set(dns.applyErr, "x", tc.appl)
				}
				errs = nil
				st, err := e.Pass(ctx, store, dns)
				require.NoError(t, err)
				if g > 5 && g <= 10 {
					assert.Equal(t, 1, st.Failed, "pass %d", g)
					assert.Zero(t, st.Conflicts, "pass %d", g)
					require.Len(t, errs, 1, "pass %d", g)
					assert.Equal(t, "x", errs[0].Endpoint)
					assert.Equal(t, 1, st.Applied, "pass %d: a is applied", g)
					if tc.appl != nil {
						assert.ErrorIs(t, errs[0].Err, dnsplan.ErrNameInUse)
					}
				}
			}
			gens, err := store.List(ctx)
			require.NoError(t, err)
			// x's live plan is 5 and nobody could write it since: plans
			// naming x from 5 - Retention on stay, the rest go.
			assert.Equal(t, []fence.Token{3, 4, 5, 6, 7, 8, 9, 10, 28, 29, 30}, gens)
			assert.Equal(t, fence.Token(5), content(t, mem, "x").Generation)
		})
	}
}

// TestUnknownEndpointPinsEveryPlanNamingIt: an enactor that has never read
// an endpoint, and cannot, does not know which plan it serves: every plan
// naming it is kept, the others go.
func TestUnknownEndpointPinsEveryPlanNamingIt(t *testing.T) {
	store, mem := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	dns := newFaulty(mem)
	for g := fence.Token(1); g <= 12; g++ {
		p := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{"a": {tg(int(g), 1)}}}
		if g%3 == 0 {
			p.Endpoints["x"] = []dnsplan.Target{tg(int(g), 2)}
		}
		require.NoError(t, store.Put(ctx, p))
	}
	require.NoError(t, mem.Apply(ctx, "x", dnsplan.Records{}, dnsplan.Records{Generation: 3, Targets: []dnsplan.Target{tg(3, 2)}}))
	dns.set(dns.readErr, "x", errors.New("connection refused"))
	e := mustEnactor(t, dnsplan.EnactorConfig{})
	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Failed, "x, read in clean-up, reported once")
	gens, err := store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []fence.Token{3, 6, 9, 10, 11, 12}, gens)
}
