package dnsplan_test

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

var t0 = time.Date(2025, 10, 20, 5, 30, 0, 0, time.UTC)

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }

func healthy(n int, capacity uint32) []dnsplan.TargetHealth {
	hs := make([]dnsplan.TargetHealth, n)
	for i := range hs {
		hs[i] = dnsplan.TargetHealth{Addr: addr(i + 1), Capacity: capacity, Healthy: true}
	}
	return hs
}

func TestNewPlannerReportsEveryBadField(t *testing.T) {
	bad := dnsplan.Plan{} // generation 0, no endpoints
	_, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{
		Window:            -time.Second,
		MaxRemoveFraction: math.NaN(),
		Limits:            dnsplan.Limits{MaxEndpoints: -1, MaxTargets: -2},
		Previous:          &bad,
	})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	for _, want := range []string{"Window -1s", "MaxRemoveFraction NaN", "MaxEndpoints -1", "MaxTargets -2", "Previous", "generation 0"} {
		assert.Contains(t, err.Error(), want)
	}
	for _, f := range []float64{-0.1, 1.5, math.Inf(1)} {
		_, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{MaxRemoveFraction: f})
		assert.ErrorIs(t, err, dnsplan.ErrInvalidConfig, "fraction %v", f)
	}
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	require.NoError(t, err)
	assert.Zero(t, p.Last().Generation)
}

func TestPlannerRefusesBadReports(t *testing.T) {
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	require.NoError(t, err)
	for name, r := range map[string]dnsplan.Report{
		"empty endpoint": {"api": nil},
		"bad name":       {"a b": healthy(1, 1)},
		"zero capacity":  {"api": {{Addr: addr(1), Capacity: 0, Healthy: true}}},
		"duplicate":      {"api": {{Addr: addr(1), Capacity: 1}, {Addr: addr(1), Capacity: 1}}},
		"no address":     {"api": {{Capacity: 1}}},
	} {
		_, err := p.Next(t0, r)
		assert.ErrorIs(t, err, dnsplan.ErrInvalidReport, name)
	}
	assert.Zero(t, p.Last().Generation, "a refused report changes nothing")
}

// The NLB mechanism of 2025: health checks flap and report most targets
// unhealthy. Velocity control removes at most MaxRemoveFraction of the
// capacity per window; fail-static keeps the endpoint when all look bad.
func TestPlannerVelocityControlAndFailStatic(t *testing.T) {
	var held, static int
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Window: time.Minute, MaxRemoveFraction: 0.25, OnEvent: func(e dnsplan.PlannerEvent) {
		switch e.Kind {
		case dnsplan.PlannerHeld:
			held++
		case dnsplan.PlannerFailStatic:
			static++
		}
	}})
	require.NoError(t, err)
	plan, err := p.Next(t0, dnsplan.Report{"api": healthy(8, 10)})
	require.NoError(t, err)
	assert.EqualValues(t, 1, plan.Generation)
	assert.EqualValues(t, 80, plan.Capacity("api"))

	flap := healthy(8, 10)
	for i := 2; i < 8; i++ {
		flap[i].Healthy = false // six of eight fail
	}
	plan, err = p.Next(t0.Add(time.Second), dnsplan.Report{"api": flap})
	require.NoError(t, err)
	assert.EqualValues(t, 2, plan.Generation)
	assert.EqualValues(t, 60, plan.Capacity("api"), "25% of 80 may go: two targets")
	assert.Equal(t, 4, held)

	plan, err = p.Next(t0.Add(30*time.Second), dnsplan.Report{"api": flap})
	require.NoError(t, err)
	assert.EqualValues(t, 60, plan.Capacity("api"), "the window's budget is spent")

	plan, err = p.Next(t0.Add(62*time.Second), dnsplan.Report{"api": flap})
	require.NoError(t, err)
	assert.EqualValues(t, 50, plan.Capacity("api"), "a new window: 25% of the peak of 60 is one target")

	all := healthy(8, 10)
	for i := range all {
		all[i].Healthy = false
	}
	before := plan
	plan, err = p.Next(t0.Add(time.Hour), dnsplan.Report{"api": all})
	require.NoError(t, err)
	assert.Equal(t, before.Endpoints["api"], plan.Endpoints["api"], "fail static")
	assert.Equal(t, 1, static)

	// Recovery adds capacity at once.
	plan, err = p.Next(t0.Add(time.Hour+time.Second), dnsplan.Report{"api": healthy(8, 10)})
	require.NoError(t, err)
	assert.EqualValues(t, 80, plan.Capacity("api"))
}

// TestPlannerHookMayCallPlanner: OnEvent runs without the Planner's lock,
// after the plan is made, so it may call the Planner (here Last, which
// sees the plan the events belong to); events come in the order of the
// decisions: endpoints by name, held targets by address. Were OnEvent
// called under the lock, this test would deadlock.
func TestPlannerHookMayCallPlanner(t *testing.T) {
	type seen struct {
		ev   dnsplan.PlannerEvent
		last fence.Token
	}
	var got []seen
	var p *dnsplan.Planner
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{OnEvent: func(ev dnsplan.PlannerEvent) {
		got = append(got, seen{ev, p.Last().Generation})
	}})
	require.NoError(t, err)
	_, err = p.Next(t0, dnsplan.Report{"a": healthy(2, 1), "b": healthy(4, 10)})
	require.NoError(t, err)
	require.Empty(t, got)

	down := healthy(4, 10)
	for i := range down {
		down[i].Healthy = i == 0
	}
	sick := healthy(1, 1)
	sick[0].Healthy = false
	_, err = p.Next(t0.Add(time.Second), dnsplan.Report{
		"c": sick,                                                         // new, none healthy: fail open
		"b": down,                                                         // three of 40 fail: one may go
		"a": {{Addr: addr(1), Capacity: 1}, {Addr: addr(2), Capacity: 1}}, // none healthy: fail static
	})
	require.NoError(t, err)
	held := func(i int, budget uint64) seen {
		return seen{dnsplan.PlannerEvent{Kind: dnsplan.PlannerHeld, Generation: 2, Endpoint: "b", Addr: addr(i), Removal: 10, Budget: budget}, 2}
	}
	assert.Equal(t, []seen{
		{dnsplan.PlannerEvent{Kind: dnsplan.PlannerFailStatic, Generation: 2, Endpoint: "a"}, 2},
		held(3, 0),
		held(4, 0),
		{dnsplan.PlannerEvent{Kind: dnsplan.PlannerFailOpen, Generation: 2, Endpoint: "c"}, 2},
	}, got)
}

// TestPlannerReportsNoEventsForARefusedPlan: a Next that returns an error
// makes no plan, so it reports no decisions about one. A new endpoint that
// does not fit under Limits.MaxEndpoints is not such an error: it is left
// out (PlannerCapped), and the rest of the fleet is planned.
func TestPlannerReportsNoEventsForARefusedPlan(t *testing.T) {
	var got []dnsplan.PlannerEvent
	last := dnsplan.Plan{Generation: fence.MaxToken - 1, Endpoints: map[string][]dnsplan.Target{"a": {tg(1, 1)}, "c": {tg(1, 1)}}}
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Limits: dnsplan.Limits{MaxEndpoints: 2}, Previous: &last, OnEvent: func(ev dnsplan.PlannerEvent) {
		got = append(got, ev)
	}})
	require.NoError(t, err)
	sick := healthy(1, 1)
	sick[0].Healthy = false
	plan, err := p.Next(t0, dnsplan.Report{"a": healthy(2, 1), "b": sick}) // "a", "b" and "c": one endpoint too many
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "c"}, plan.EndpointNames())
	assert.Len(t, plan.Endpoints["a"], 2)
	assert.Equal(t, []dnsplan.PlannerEvent{{Kind: dnsplan.PlannerCapped, Generation: fence.MaxToken, Endpoint: "b"}}, got)

	got = nil
	_, err = p.Next(t0, dnsplan.Report{"a": sick}) // fail static, in a plan that cannot be made
	require.ErrorIs(t, err, dnsplan.ErrInvalidPlan)
	assert.Contains(t, err.Error(), "is the last")
	assert.Empty(t, got)
	assert.Equal(t, fence.MaxToken, p.Last().Generation)
}

func TestPlannerFailOpenAndUnreported(t *testing.T) {
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	require.NoError(t, err)
	sick := healthy(2, 3)
	sick[0].Healthy, sick[1].Healthy = false, false
	plan, err := p.Next(t0, dnsplan.Report{"new": sick, "api": healthy(1, 1)})
	require.NoError(t, err)
	assert.Len(t, plan.Endpoints["new"], 2, "a new endpoint with no healthy target fails open")
	plan, err = p.Next(t0.Add(time.Second), dnsplan.Report{"api": healthy(2, 1)})
	require.NoError(t, err)
	assert.Len(t, plan.Endpoints["new"], 2, "an unreported endpoint keeps its targets")
	assert.Len(t, plan.Endpoints["api"], 2)
}

func TestPlannerResumesFromPrevious(t *testing.T) {
	prev := dnsplan.Plan{Generation: 41, Endpoints: map[string][]dnsplan.Target{"api": {{Addr: addr(1), Weight: 1}}}}
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Previous: &prev})
	require.NoError(t, err)
	plan, err := p.Next(t0, nil)
	require.NoError(t, err)
	assert.EqualValues(t, 42, plan.Generation)
	assert.Equal(t, prev.Endpoints, plan.Endpoints)
}

type emitted struct {
	at   time.Time
	plan dnsplan.Plan
}

// drawReport draws a health report about "api" and "fips".
func drawReport(t *rapid.T) dnsplan.Report {
	r := dnsplan.Report{}
	for _, name := range []string{"api", "fips"} {
		if rapid.IntRange(0, 5).Draw(t, "skip") == 0 {
			continue
		}
		n := rapid.IntRange(1, 6).Draw(t, "targets")
		for i := range n {
			r[name] = append(r[name], dnsplan.TargetHealth{
				Addr:     addr(rapid.IntRange(0, 8).Draw(t, "addr")*8 + i),
				Capacity: uint32(rapid.IntRange(1, 20).Draw(t, "capacity")),
				Healthy:  rapid.Bool().Draw(t, "healthy"),
			})
		}
	}
	return r
}

// checkVelocity fails t if, for the last plan emitted, the capacity
// removed from an endpoint by the plans emitted in (t-Window, t] exceeds
// MaxRemoveFraction times the endpoint's peak capacity over [t-Window, t],
// or the plan has an empty endpoint.
func checkVelocity(t *rapid.T, history []emitted, window time.Duration, fraction float64) {
	last := history[len(history)-1]
	for name, ts := range last.plan.Endpoints {
		if len(ts) == 0 {
			t.Fatalf("plan %d has an empty endpoint %q", last.plan.Generation, name)
		}
	}
	for _, name := range []string{"api", "fips"} {
		start := last.at.Add(-window)
		var removed, peak uint64
		for i, h := range history {
			inWindow := h.at.After(start)
			startsWindow := !inWindow && (i+1 == len(history) || history[i+1].at.After(start))
			if inWindow || startsWindow {
				peak = max(peak, h.plan.Capacity(name))
			}
			if inWindow && i > 0 {
				removed += removedCapacity(history[i-1].plan.Endpoints[name], h.plan.Endpoints[name])
			}
		}
		if limit := uint64(fraction * float64(peak)); removed > limit {
			t.Fatalf("%s: %d capacity removed in the window ending at plan %d, limit %d (%.3f of peak %d)",
				name, removed, last.plan.Generation, limit, fraction, peak)
		}
	}
}

// removedCapacity is the capacity that going from a to b removes: the
// weight of targets dropped plus the weight lost by targets kept.
func removedCapacity(a, b []dnsplan.Target) uint64 {
	now := map[netip.Addr]uint32{}
	for _, t := range b {
		now[t.Addr] = t.Weight
	}
	var r uint64
	for _, t := range a {
		if w := now[t.Addr]; w < t.Weight {
			r += uint64(t.Weight - w)
		}
	}
	return r
}
