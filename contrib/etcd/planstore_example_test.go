package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd"
	"github.com/stormguard/stormguard/dnsplan"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A planner and an enactor in separate processes share plans through
// etcd. The planner continues from the newest plan after a restart and
// publishes with Publish, whose generation comes from a fence.Sequencer in
// the same etcd, so it is above every plan ever published, even by a
// planner that died after taking it. Each enactor runs dnsplan.Enactor on
// the store (Run, woken through an etcd watch when a plan is published;
// here one Pass).
// endpoints are etcd's client URLs.
func ExamplePlanStore() {
	resetEtcd()
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	plans, err := etcd.NewPlanStore(client, etcd.PlanStoreConfig{Prefix: "stormguard/dnsplan/"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The planner process.
	cfg := dnsplan.PlannerConfig{}
	if latest, err := plans.Latest(ctx); err == nil {
		cfg.Previous = &latest // velocity control continues across restarts
	} else if !errors.Is(err, dnsplan.ErrNotFound) {
		log.Fatal(err)
	}
	planner, err := dnsplan.NewPlanner(cfg)
	if err != nil {
		log.Fatal(err)
	}
	plan, err := planner.Next(time.Now(), dnsplan.Report{
		"dynamodb.us-east-1": {{Addr: netip.MustParseAddr("10.0.0.7"), Capacity: 100, Healthy: true}},
	})
	if err != nil {
		log.Fatal(err)
	}
	g, err := plans.Publish(ctx, plan) // plan.Generation is replaced by g
	switch {
	case errors.Is(err, etcd.ErrUnknownOutcome):
		log.Printf("plan %d may or may not be published: publish again (under a newer generation)", g)
	case err != nil:
		log.Fatal(err)
	}

	// An enactor process.
	var enactor dnsplan.Enactor
	var dns dnsplan.MemoryProvider // contrib/rfc2136 for a real DNS server
	stats, err := enactor.Pass(ctx, plans, &dns)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("applied plan %d to %d endpoints\n", stats.Generation, stats.Applied)

	// Now and then, anyone: delete the chunks of puts that never committed.
	if _, err := plans.CollectOrphans(ctx); err != nil {
		log.Print(err)
	}
	// Output:
	// applied plan 1 to 1 endpoints
}
