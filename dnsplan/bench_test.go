package dnsplan_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

const benchEndpoints = 10_000

// bigPlan is a plan of n endpoints with three targets each; shift changes
// every endpoint's addresses.
func bigPlan(g fence.Token, n int, shift byte) dnsplan.Plan {
	p := dnsplan.Plan{Generation: g, Endpoints: make(map[string][]dnsplan.Target, n)}
	for i := range n {
		p.Endpoints[fmt.Sprintf("ep%05d.us-east-1.example", i)] = []dnsplan.Target{
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), shift}), Weight: 1},
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), shift + 1}), Weight: 2},
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), shift + 2}), Weight: 3},
		}
	}
	return p
}

// BenchmarkDiff10k: comparing two plans of 10,000 endpoints, all changed.
func BenchmarkDiff10k(b *testing.B) {
	x, y := bigPlan(1, benchEndpoints, 0), bigPlan(2, benchEndpoints, 3)
	b.ReportAllocs()
	for b.Loop() {
		if len(dnsplan.Diff(x, y)) != benchEndpoints {
			b.Fatal("diff")
		}
	}
}

// BenchmarkValidate10k: validating a plan of 10,000 endpoints.
func BenchmarkValidate10k(b *testing.B) {
	p := bigPlan(1, benchEndpoints, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := dnsplan.Validate(p, dnsplan.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPass10k: one enactor pass that applies a new plan to 10,000
// endpoints in memory (load, 10,000 reads and conditional applies, list,
// clean-up), alternating between two plans so every pass writes every
// endpoint.
func BenchmarkPass10k(b *testing.B) { benchPass10k(b, dnsplan.EnactorConfig{}) }

// benchPass10k is BenchmarkPass10k with an Enactor configured by cfg.
func benchPass10k(b *testing.B, cfg dnsplan.EnactorConfig) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	e, err := dnsplan.NewEnactor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	plans := []dnsplan.Plan{bigPlan(0, benchEndpoints, 0), bigPlan(0, benchEndpoints, 3)}
	g := fence.Token(0)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		g++
		p := plans[g%2]
		p.Generation = g
		if err := store.Put(ctx, p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := e.Pass(ctx, store, dns)
		if err != nil || st.Applied != benchEndpoints {
			b.Fatalf("%+v %v", st, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchEndpoints, "ns/endpoint")
}

// BenchmarkPlannerNext10k: the planner turning a report of 10,000
// endpoints into a plan.
func BenchmarkPlannerNext10k(b *testing.B) {
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	r := dnsplan.Report{}
	for name, ts := range bigPlan(1, benchEndpoints, 0).Endpoints {
		for i, t := range ts {
			r[name] = append(r[name], dnsplan.TargetHealth{Addr: t.Addr, Capacity: t.Weight, Healthy: i != 0})
		}
	}
	now := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		if _, err := p.Next(now, r); err != nil {
			b.Fatal(err)
		}
	}
}
