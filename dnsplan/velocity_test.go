package dnsplan_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestPlannerMaxTargetsAndVelocity is issue 12 #3: an endpoint of 4
// targets under Limits{MaxTargets: 4} reported with 4 new healthy targets
// and the old ones missing. Velocity control holds most removals back, so
// old and new do not fit: the planner still emits a valid plan every time,
// keeping the held targets and adding as many new ones as fit, and never
// fails the report (nor the other endpoint in it).
func TestPlannerMaxTargetsAndVelocity(t *testing.T) {
	var capped int
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Window: time.Hour, MaxRemoveFraction: 0.25, Limits: dnsplan.Limits{MaxTargets: 4},
		OnEvent: func(ev dnsplan.PlannerEvent) {
			if ev.Kind == dnsplan.PlannerCapped {
				capped++
			}
		}})
	require.NoError(t, err)
	old := healthy(4, 10)
	plan, err := p.Next(t0, dnsplan.Report{"api": old, "web": healthy(1, 1)})
	require.NoError(t, err)
	require.EqualValues(t, 40, plan.Capacity("api"))
	fresh := make([]dnsplan.TargetHealth, 4)
	for i := range fresh {
		fresh[i] = dnsplan.TargetHealth{Addr: addr(100 + i), Capacity: 10, Healthy: true}
	}
	now := t0
	for round := range 8 {
		now = now.Add(time.Hour + time.Second)
		plan, err = p.Next(now, dnsplan.Report{"api": fresh, "web": healthy(2, 1)})
		require.NoError(t, err, "round %d", round)
		require.NoError(t, dnsplan.Validate(plan, dnsplan.Limits{MaxTargets: 4}))
		assert.Len(t, plan.Endpoints["api"], 4, "round %d", round)
		assert.Len(t, plan.Endpoints["web"], 2, "round %d: the other endpoint is planned", round)
	}
	for i := range fresh {
		assert.Contains(t, plan.Endpoints["api"], dnsplan.Target{Addr: fresh[i].Addr, Weight: 10}, "in the end every new target is in")
	}
	assert.Positive(t, capped)
}

// TestPlannerRestartKeepsVelocityBudget is issue 12 #4: 8 targets, 1
// healthy, MaxRemoveFraction 0.25 and Window 1h, and a planner restarted
// from the newest plan every second (through a Store, and through JSON as
// a shared store would keep it). The window's budget (2 targets) holds:
// capacity stays at 6 for the hour, and goes to 5 only after it.
func TestPlannerRestartKeepsVelocityBudget(t *testing.T) {
	cfg := dnsplan.PlannerConfig{Window: time.Hour, MaxRemoveFraction: 0.25}
	p, err := dnsplan.NewPlanner(cfg)
	require.NoError(t, err)
	plan, err := p.Next(t0, dnsplan.Report{"api": healthy(8, 1)})
	require.NoError(t, err)
	store := &dnsplan.MemoryStore{}
	require.NoError(t, store.Put(ctx, plan))
	flap := healthy(8, 1)
	for i := 1; i < 8; i++ {
		flap[i].Healthy = false
	}
	for s := 1; s <= 3600+60; s++ {
		latest, err := store.Latest(ctx)
		require.NoError(t, err)
		if s%2 == 0 { // as a JSON store would keep it
			b, err := json.Marshal(latest)
			require.NoError(t, err)
			latest = dnsplan.Plan{}
			require.NoError(t, json.Unmarshal(b, &latest))
		}
		cfg.Previous = &latest
		p, err := dnsplan.NewPlanner(cfg)
		require.NoError(t, err)
		plan, err := p.Next(t0.Add(time.Duration(s)*time.Second), dnsplan.Report{"api": flap})
		require.NoError(t, err)
		require.NoError(t, store.Put(ctx, plan))
		if s < 3600 {
			require.EqualValues(t, 6, plan.Capacity("api"), "second %d: 25%% of 8 per hour, however often the planner restarts", s)
		}
		if s%500 == 0 {
			gens, _ := store.List(ctx)
			for _, g := range gens[:len(gens)-1] {
				require.NoError(t, store.Delete(ctx, g))
			}
		}
	}
	latest, err := store.Latest(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 5, latest.Capacity("api"), "a new window: 25% of the window's peak 6 is one target")
}

// TestPlanVelocityIsCopied: stores and Clone copy a plan's velocity
// history; a Planner ignores the history of an endpoint the plan does not
// name.
func TestPlanVelocityIsCopied(t *testing.T) {
	p := onePlan(1, tg(1, 1))
	p.Velocity = []dnsplan.CapacityChange{{Endpoint: "api", At: t0, Capacity: 1, Removed: 1}}
	c := p.Clone()
	c.Velocity[0].Removed = 9
	assert.EqualValues(t, 1, p.Velocity[0].Removed, "Clone copies")
	store := &dnsplan.MemoryStore{}
	require.NoError(t, store.Put(ctx, p))
	p.Velocity[0].Removed = 7
	got, err := store.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, []dnsplan.CapacityChange{{Endpoint: "api", At: t0, Capacity: 1, Removed: 1}}, got.Velocity)
	got.Velocity[0].Removed = 5
	got, _ = store.Latest(ctx)
	assert.EqualValues(t, 1, got.Velocity[0].Removed)

	// History of an endpoint the plan no longer names is ignored.
	p.Velocity = []dnsplan.CapacityChange{{Endpoint: "web", At: t0, Capacity: 1}}
	require.NoError(t, dnsplan.Validate(p, dnsplan.Limits{}))
	planner, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Previous: &p})
	require.NoError(t, err)
	next, err := planner.Next(t0, nil)
	require.NoError(t, err)
	assert.Nil(t, next.Velocity)
}

// TestPlannerProperty: under any sequence of health reports at any times,
// with a planner that may be restarted from its newest plan before any
// report and with any Limits, Next fails only on an invalid
// report, never because one endpoint cannot be planned; every plan is
// valid under the limits; and for every plan emitted at t the capacity
// removed from an endpoint by the plans emitted in (t-Window, t] is at
// most MaxRemoveFraction times the endpoint's peak capacity over
// [t-Window, t].
func TestPlannerProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		window := time.Duration(rapid.IntRange(1, 60).Draw(t, "window")) * time.Second
		fraction := rapid.Float64Range(0.01, 1).Draw(t, "fraction")
		limits := dnsplan.Limits{MaxTargets: rapid.IntRange(0, 6).Draw(t, "maxTargets"), MaxEndpoints: rapid.IntRange(0, 2).Draw(t, "maxEndpoints")}
		cfg := dnsplan.PlannerConfig{Window: window, MaxRemoveFraction: fraction, Limits: limits}
		p, err := dnsplan.NewPlanner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var history []emitted
		now := t0
		for range rapid.IntRange(1, 40).Draw(t, "rounds") {
			if len(history) > 0 && rapid.Bool().Draw(t, "restart") {
				last := history[len(history)-1].plan
				cfg.Previous = &last
				if p, err = dnsplan.NewPlanner(cfg); err != nil {
					t.Fatalf("restart from plan %d: %v", last.Generation, err)
				}
			}
			now = now.Add(time.Duration(rapid.IntRange(0, 30).Draw(t, "dt")) * time.Second)
			r := drawReport(t)
			plan, err := p.Next(now, r)
			if errors.Is(err, dnsplan.ErrInvalidReport) || (len(history) == 0 && len(r) == 0) {
				continue // duplicate addresses or too many targets drawn, or nothing to plan yet
			}
			if err != nil {
				t.Fatalf("Next failed on a valid report %v: %v", r, err)
			}
			if err := dnsplan.Validate(plan, limits); err != nil {
				t.Fatalf("plan %d invalid: %v", plan.Generation, err)
			}
			history = append(history, emitted{now, plan})
			checkVelocity(t, history, window, fraction)
		}
	})
}
