package dnsplan_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
)

// The whole loop in one process: a planner turns health reports into
// plans, a store keeps them, and an enactor applies the newest to the DNS.
func Example_start() {
	ctx := context.Background()
	store := &dnsplan.MemoryStore{}  // contrib/etcd's PlanStore across processes
	dns := &dnsplan.MemoryProvider{} // contrib/rfc2136 for a real DNS server

	// The planner: health reports in, the next plan out, velocity-controlled.
	planner, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	if err != nil {
		panic(err)
	}
	plan, err := planner.Next(time.Now(), dnsplan.Report{
		"dynamodb.us-east-1": {{Addr: netip.MustParseAddr("10.0.0.7"), Capacity: 100, Healthy: true}},
	})
	if err != nil {
		panic(err)
	}
	if err := store.Put(ctx, plan); err != nil {
		panic(err)
	}

	// Each enactor, one per zone (Run repeats passes, woken by new plans).
	enactor, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "us-east-1a"})
	if err != nil {
		panic(err)
	}
	stats, err := enactor.Pass(ctx, store, dns)
	fmt.Printf("applied plan %d to %d endpoints, err %v\n", stats.Generation, stats.Applied, err)
	// Output:
	// applied plan 1 to 1 endpoints, err <nil>
}
