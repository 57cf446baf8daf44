package dnsplan_test

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// flapping reports the n targets of healthy(n, 1) with only the first one
// healthy.
func flapping(n int) []dnsplan.TargetHealth {
	hs := healthy(n, 1)
	for i := 1; i < n; i++ {
		hs[i].Healthy = false
	}
	return hs
}

// TestPlannerForgedHistoryGrantsNothing: a Previous whose Velocity claims
// a capacity the endpoint never had (a hand-edited or damaged store) must
// not widen the removal budget: with 8 targets of weight 1 and
// MaxRemoveFraction 0.25, one plan removes at most 2, whatever the
// history says.
func TestPlannerForgedHistoryGrantsNothing(t *testing.T) {
	prev := dnsplan.Plan{Generation: 5, Endpoints: map[string][]dnsplan.Target{"api.x": targetsOf(healthy(8, 1))}}
	for _, forged := range [][]dnsplan.CapacityChange{
		{{Endpoint: "api.x", At: t0.Add(-time.Second), Capacity: 1 << 40}},
		{{Endpoint: "api.x", At: t0.Add(-time.Second), Capacity: math.MaxUint64}},
		// Removals that wrap a uint64 sum around to nothing.
		{
			{Endpoint: "api.x", At: t0.Add(-3 * time.Second), Capacity: math.MaxUint64, Removed: 1 << 63},
			{Endpoint: "api.x", At: t0.Add(-2 * time.Second), Capacity: math.MaxUint64, Removed: 1 << 63},
			{Endpoint: "api.x", At: t0.Add(-time.Second), Capacity: 8},
		},
	} {
		prev.Velocity = forged
		p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Window: time.Hour, MaxRemoveFraction: 0.25, Previous: &prev})
		require.NoError(t, err)
		plan, err := p.Next(t0, dnsplan.Report{"api.x": flapping(8)})
		require.NoError(t, err)
		assert.GreaterOrEqual(t, plan.Capacity("api.x"), uint64(6), "history %+v: 25%% of 8 is 2", forged)
	}
}

// TestPlannerHistoryOnlyRestricts: whatever Velocity a Previous carries
// (any times, capacities and removals, in any order), the next plan
// removes no more capacity than a Planner started from the same plan
// without history.
func TestPlannerHistoryOnlyRestricts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 16).Draw(t, "targets")
		window := time.Duration(rapid.IntRange(1, 3600).Draw(t, "window")) * time.Second
		fraction := rapid.Float64Range(0.01, 1).Draw(t, "fraction")
		prev := dnsplan.Plan{Generation: 9, Endpoints: map[string][]dnsplan.Target{"api.x": targetsOf(healthy(n, 1))}}
		cfg := dnsplan.PlannerConfig{Window: window, MaxRemoveFraction: fraction, Previous: &prev}
		fresh, err := dnsplan.NewPlanner(cfg)
		require.NoError(t, err)
		for range rapid.IntRange(0, 12).Draw(t, "changes") {
			prev.Velocity = append(prev.Velocity, dnsplan.CapacityChange{
				Endpoint: "api.x",
				At:       t0.Add(time.Duration(rapid.Int64Range(-3*int64(window), 3*int64(window)).Draw(t, "at"))),
				Capacity: rapid.SampledFrom([]uint64{0, 1, uint64(n), 2 * uint64(n), 1 << 40, math.MaxUint64}).Draw(t, "capacity"),
				Removed:  rapid.SampledFrom([]uint64{0, 1, uint64(n), 1 << 63, math.MaxUint64}).Draw(t, "removed"),
			})
		}
		forged, err := dnsplan.NewPlanner(cfg)
		require.NoError(t, err)
		report := dnsplan.Report{"api.x": flapping(n)}
		want, err := fresh.Next(t0, report)
		require.NoError(t, err)
		got, err := forged.Next(t0, report)
		require.NoError(t, err)
		if got.Capacity("api.x") < want.Capacity("api.x") {
			t.Fatalf("history %+v let the plan go down to capacity %d; without it, %d", prev.Velocity, got.Capacity("api.x"), want.Capacity("api.x"))
		}
	})
}

// TestPlannerClockBackAndForth: after a removal at t0, the clock jumps
// back an hour, then forward to just after t0. The removal counts all
// along: no second removal within the Window of the first, in the
// caller's time, whatever the clock did in between (a Planner that took
// the earlier time as now would find the removal out of the window once
// the clock came back).
func TestPlannerClockBackAndForth(t *testing.T) {
	const window = 10 * time.Minute
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Window: window, MaxRemoveFraction: 0.25})
	require.NoError(t, err)
	_, err = p.Next(t0, dnsplan.Report{"api.x": healthy(8, 1)})
	require.NoError(t, err)
	plan, err := p.Next(t0.Add(time.Second), dnsplan.Report{"api.x": flapping(8)})
	require.NoError(t, err)
	require.EqualValues(t, 6, plan.Capacity("api.x"))
	for _, now := range []time.Time{t0.Add(-time.Hour), {}, t0.Add(-time.Hour + window + time.Second), t0.Add(2 * time.Second), t0.Add(window)} {
		plan, err = p.Next(now, dnsplan.Report{"api.x": flapping(8)})
		require.NoError(t, err)
		assert.EqualValues(t, 6, plan.Capacity("api.x"), "at %v", now)
	}
	plan, err = p.Next(t0.Add(window+2*time.Second), dnsplan.Report{"api.x": flapping(8)})
	require.NoError(t, err)
	assert.Less(t, plan.Capacity("api.x"), uint64(6), "a window after the removal")
}

// TestPlannerFutureHistoryCounts: a Previous written by a planner whose
// clock was a year ahead. Its removal counts: removals beyond the budget
// are held until the clock reaches that time (the documented price).
func TestPlannerFutureHistoryCounts(t *testing.T) {
	const window = 10 * time.Minute
	ahead := t0.AddDate(1, 0, 0)
	prev := dnsplan.Plan{Generation: 3, Endpoints: map[string][]dnsplan.Target{"api.x": targetsOf(healthy(6, 1))},
		Velocity: []dnsplan.CapacityChange{
			{Endpoint: "api.x", At: ahead.Add(-time.Second), Capacity: 8},
			{Endpoint: "api.x", At: ahead, Capacity: 6, Removed: 2},
		}}
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Window: window, MaxRemoveFraction: 0.25, Previous: &prev})
	require.NoError(t, err)
	for _, now := range []time.Time{t0, t0.Add(window + time.Second), ahead.Add(window - time.Second)} {
		plan, err := p.Next(now, dnsplan.Report{"api.x": flapping(6)})
		require.NoError(t, err)
		assert.EqualValues(t, 6, plan.Capacity("api.x"), "at %v", now)
	}
	plan, err := p.Next(ahead.Add(window+time.Second), dnsplan.Report{"api.x": flapping(6)})
	require.NoError(t, err)
	assert.Less(t, plan.Capacity("api.x"), uint64(6))
}

func targetsOf(hs []dnsplan.TargetHealth) []dnsplan.Target {
	ts := make([]dnsplan.Target, len(hs))
	for i, h := range hs {
		ts[i] = dnsplan.Target{Addr: h.Addr, Weight: h.Capacity}
	}
	return ts
}

// TestEnactorReusedOnAnotherFleet: an Enactor that served one Store and
// Provider (where "api" reached generation 50) is then run against
// another, where "api" serves plan 5 and cannot be read. What it knew of
// the first fleet says nothing of the second: clean-up keeps plan 5 (and
// every plan naming "api" that "api" may need).
func TestEnactorReusedOnAnotherFleet(t *testing.T) {
	var e dnsplan.Enactor
	storeA, dnsA := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, storeA.Put(ctx, onePlan(50, tg(1, 1))))
	_, err := e.Pass(ctx, storeA, dnsA)
	require.NoError(t, err)

	storeB, memB := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	for g := fence.Token(1); g <= 10; g++ {
		require.NoError(t, storeB.Put(ctx, onePlan(g, tg(int(g), 1))))
	}
	memB.Set("api", dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg(5, 1)}})
	dnsB := newFaulty(memB)
	dnsB.set(dnsB.readErr, "api", errTimeout)
	st, err := e.Pass(ctx, storeB, dnsB)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Failed)
	_, err = storeB.Get(ctx, 5)
	require.NoError(t, err, "plan 5 is live on api: clean-up deleted %d plans", st.Deleted)
}

// TestPlannerEmptyOnlyFromPrevious: a Planner emits an empty endpoint
// only where Previous (under Limits.AllowEmpty) had one and the report
// does not name it; a report naming it fills it.
func TestPlannerEmptyOnlyFromPrevious(t *testing.T) {
	limits := dnsplan.Limits{AllowEmpty: true}
	prev := dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{"api.x": nil, "web.x": {tg(1, 1)}}}
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Limits: limits, Previous: &prev})
	require.NoError(t, err)
	plan, err := p.Next(t0, dnsplan.Report{"web.x": healthy(1, 1)})
	require.NoError(t, err)
	assert.Empty(t, plan.Endpoints["api.x"], "left as Previous had it")
	down := healthy(2, 1)
	down[0].Healthy, down[1].Healthy = false, false
	plan, err = p.Next(t0, dnsplan.Report{"api.x": down})
	require.NoError(t, err)
	assert.Len(t, plan.Endpoints["api.x"], 2, "fail open: nothing to keep")
}

// TestEnactorOnEventPanics: an OnEvent that panics on every third event.
// The panic reaches the caller of Pass; a Pass after it carries on from
// where the Enactor was, never rolls an endpoint back or writes it empty,
// and in the end every endpoint serves the newest plan and the plans
// below it are cleaned up.
func TestEnactorOnEventPanics(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	names := []string{"a.x", "b.x", "c.x"}
	put := func(g fence.Token) {
		p := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{}}
		for i, n := range names {
			p.Endpoints[n] = []dnsplan.Target{tg(int(g)*4+i, 1)}
		}
		require.NoError(t, store.Put(ctx, p))
	}
	events := 0
	e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Retention: 1, OnEvent: func(ev dnsplan.Event) {
		events++
		if events%3 == 0 {
			panic(ev.Kind.String())
		}
	}})
	require.NoError(t, err)
	panics := 0
	maxSeen := map[string]fence.Token{}
	for g := fence.Token(1); g <= 30; g++ {
		put(g)
		for range 3 {
			func() {
				defer func() {
					if recover() != nil {
						panics++
					}
				}()
				_, _ = e.Pass(ctx, store, dns)
			}()
			for _, n := range names {
				r, _ := dns.Read(ctx, n)
				require.GreaterOrEqual(t, r.Generation, maxSeen[n])
				require.NotEmpty(t, r.Targets)
				maxSeen[n] = r.Generation
			}
		}
	}
	for range 5 {
		func() {
			defer func() { _ = recover() }()
			_, _ = e.Pass(ctx, store, dns)
		}()
	}
	for _, n := range names {
		r, _ := dns.Read(ctx, n)
		assert.EqualValues(t, 30, r.Generation, n)
	}
	gens, _ := store.List(ctx)
	assert.Equal(t, []fence.Token{29, 30}, gens)
	assert.Positive(t, panics)
}

// TestGenerationsNearMaxToken: a planner and an enactor at the end of the
// generations: the planner emits fence.MaxToken and then refuses with
// ErrInvalidPlan; the enactor applies it and cleans up below it, with no
// wrap-around.
func TestGenerationsNearMaxToken(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	prev := dnsplan.Plan{Generation: fence.MaxToken - 5, Endpoints: map[string][]dnsplan.Target{"api.x": {tg(1, 1)}}}
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Previous: &prev})
	require.NoError(t, err)
	var e dnsplan.Enactor
	for i := 1; i <= 5; i++ {
		plan, err := p.Next(t0, dnsplan.Report{"api.x": healthy(1+i%2, 1)})
		require.NoError(t, err)
		require.NoError(t, store.Put(ctx, plan))
		_, err = e.Pass(ctx, store, dns)
		require.NoError(t, err)
	}
	_, err = p.Next(t0, dnsplan.Report{"api.x": healthy(1, 1)})
	require.ErrorIs(t, err, dnsplan.ErrInvalidPlan)
	r, _ := dns.Read(ctx, "api.x")
	assert.Equal(t, fence.MaxToken, r.Generation)
	gens, _ := store.List(ctx)
	assert.Equal(t, []fence.Token{fence.MaxToken - 2, fence.MaxToken - 1, fence.MaxToken}, gens)
}

// TestPlannerConcurrentNext: Next from many goroutines at once, with an
// OnEvent that calls back into the Planner: generations are handed out
// once each, in a row, and nothing deadlocks.
func TestPlannerConcurrentNext(t *testing.T) {
	var p *dnsplan.Planner
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{OnEvent: func(dnsplan.PlannerEvent) { _ = p.Last() }})
	require.NoError(t, err)
	const workers, rounds = 8, 50
	gens := make(chan fence.Token, workers*rounds)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				r := dnsplan.Report{"api.x": flapping(8)}
				if (w+i)%2 == 0 {
					r = dnsplan.Report{"api.x": healthy(8, 1)}
				}
				plan, err := p.Next(t0.Add(time.Duration(i)*time.Second), r)
				if err != nil {
					t.Error(err)
					return
				}
				gens <- plan.Generation
			}
		}()
	}
	wg.Wait()
	close(gens)
	seen := map[fence.Token]bool{}
	for g := range gens {
		require.False(t, seen[g], "generation %d twice", g)
		seen[g] = true
	}
	for g := fence.Token(1); g <= workers*rounds; g++ {
		require.True(t, seen[g], "generation %d missing", g)
	}
}

// TestPlannerOnEventPanics: a panicking OnEvent reaches the caller of
// Next; the plan was made (Last returns it) and the next one follows it.
func TestPlannerOnEventPanics(t *testing.T) {
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{OnEvent: func(dnsplan.PlannerEvent) { panic("hook") }})
	require.NoError(t, err)
	_, err = p.Next(t0, dnsplan.Report{"api.x": healthy(8, 1)})
	require.NoError(t, err)
	require.Panics(t, func() { _, _ = p.Next(t0.Add(time.Second), dnsplan.Report{"api.x": flapping(8)}) })
	assert.EqualValues(t, 2, p.Last().Generation)
	assert.EqualValues(t, 6, p.Last().Capacity("api.x"))
	plan, err := p.Next(t0.Add(2*time.Second), dnsplan.Report{"api.x": healthy(8, 1)})
	require.NoError(t, err)
	assert.EqualValues(t, 3, plan.Generation)
}

// TestCanonicalEndpointProperty: for any string, CanonicalEndpoint and
// ValidateEndpoint agree: a canonical name is its own canonical form, the
// canonical form of anything is canonical, and every refusal matches
// ErrInvalidPlan.
func TestCanonicalEndpointProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.OneOf(
			rapid.String(),
			rapid.StringMatching(`[a-zA-Z0-9._\\-]{0,70}\.?`),
			rapid.StringMatching(`([a-zA-Z0-9_-]{1,64}\.){0,5}[a-zA-Z0-9_-]{1,64}\.?`),
		).Draw(t, "name")
		c, cerr := dnsplan.CanonicalEndpoint(s)
		verr := dnsplan.ValidateEndpoint(s)
		if verr != nil && !errors.Is(verr, dnsplan.ErrInvalidPlan) {
			t.Fatalf("ValidateEndpoint(%q) = %v, not ErrInvalidPlan", s, verr)
		}
		if cerr != nil {
			if !errors.Is(cerr, dnsplan.ErrInvalidPlan) {
				t.Fatalf("CanonicalEndpoint(%q) = %v, not ErrInvalidPlan", s, cerr)
			}
			if verr == nil {
				t.Fatalf("%q is valid but has no canonical form: %v", s, cerr)
			}
			return
		}
		if err := dnsplan.ValidateEndpoint(c); err != nil {
			t.Fatalf("CanonicalEndpoint(%q) = %q, which is not valid: %v", s, c, err)
		}
		if (verr == nil) != (c == s) {
			t.Fatalf("%q: valid %v, canonical form %q", s, verr == nil, c)
		}
	})
}

// TestPlannerPropertyClockBack: the velocity property of
// TestPlannerProperty with a clock that also goes back (by up to two
// minutes), and restarts from the newest plan. The times checked are the
// latest the Planner has seen (or, after a restart, the plan's MadeAt,
// then the latest seen): a clock going back, on one host or across a
// restart on another, never frees budget.
func TestPlannerPropertyClockBack(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		window := time.Duration(rapid.IntRange(1, 60).Draw(t, "window")) * time.Second
		fraction := rapid.Float64Range(0.01, 1).Draw(t, "fraction")
		cfg := dnsplan.PlannerConfig{Window: window, MaxRemoveFraction: fraction}
		p, err := dnsplan.NewPlanner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var history []emitted
		now, latest := t0, time.Time{}
		for range rapid.IntRange(1, 40).Draw(t, "rounds") {
			if len(history) > 0 && rapid.Bool().Draw(t, "restart") {
				last := history[len(history)-1].plan
				cfg.Previous = &last
				if p, err = dnsplan.NewPlanner(cfg); err != nil {
					t.Fatalf("restart from plan %d: %v", last.Generation, err)
				}
				// What a restarted Planner knows of time is when the
				// plan was made and the newest change it records.
				latest = last.MadeAt
				for _, c := range last.Velocity {
					if c.At.After(latest) {
						latest = c.At
					}
				}
			}
			now = now.Add(time.Duration(rapid.IntRange(-120, 30).Draw(t, "dt")) * time.Second)
			r := drawReport(t)
			plan, err := p.Next(now, r)
			if errors.Is(err, dnsplan.ErrInvalidReport) || (len(history) == 0 && len(r) == 0) {
				continue
			}
			if err != nil {
				t.Fatalf("Next failed on a valid report %v: %v", r, err)
			}
			if now.After(latest) {
				latest = now
			}
			history = append(history, emitted{latest, plan})
			checkVelocity(t, history, window, fraction)
		}
	})
}
