package stormotel_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stormguard/stormguard/backoff"
	stormotel "github.com/stormguard/stormguard/contrib/otel"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/lease"
)

// Per-host breakers, exported for the hosts that matter only: the
// cardinality stays bounded however many hosts the traffic reaches.
func ExampleRegisterBreakers() {
	reader := sdkmetric.NewManualReader()
	m, _ := stormotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	bs, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{})
	reg, err := stormotel.RegisterBreakers(m, "upstreams", bs, []string{"db-1", "db-2"})
	if err != nil {
		panic(err)
	}
	defer reg.Unregister()
	bs.Allow("db-1") // makes db-1's breaker; db-2 has none yet

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, mt := range rm.ScopeMetrics[0].Metrics {
		if mt.Name != "stormguard.backoff.breaker.state" {
			continue
		}
		for _, dp := range mt.Data.(metricdata.Gauge[int64]).DataPoints {
			key, _ := dp.Attributes.Value(stormotel.AttrKey)
			state, _ := dp.Attributes.Value(stormotel.AttrState)
			if dp.Value == 1 {
				fmt.Println(key.AsString(), state.AsString())
			}
		}
	}
	// Output:
	// db-1 closed
}

// Event-only primitives take a sink in their OnEvent hook.
func ExampleMeter_RegisterEnactorEvents() {
	reader := sdkmetric.NewManualReader()
	m, _ := stormotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	events, err := m.RegisterEnactorEvents("dns")
	if err != nil {
		panic(err)
	}
	defer events.Unregister()
	cfg := dnsplan.EnactorConfig{OnEvent: events.Observe}
	_ = cfg // dnsplan.NewEnactor(cfg) ...

	cfg.OnEvent(dnsplan.Event{Kind: dnsplan.EventApplied}) // as the enactor would
	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, dp := range rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints {
		if ev, _ := dp.Attributes.Value(stormotel.AttrEvent); dp.Value > 0 {
			fmt.Println(rm.ScopeMetrics[0].Metrics[0].Name, ev.AsString(), dp.Value)
		}
	}
	// Output:
	// stormguard.dnsplan.enactor.events applied 1
}

// The sinks' Observe methods fit the hooks they are meant for.
var (
	_ func(dnsplan.Event)        = (*stormotel.EnactorEvents)(nil).Observe
	_ func(dnsplan.PlannerEvent) = (*stormotel.PlannerEvents)(nil).Observe
	_ func(lease.Progress)       = (*stormotel.RecoveryProgress)(nil).Observe
	_ func(lease.Event)          = (*lease.Counters)(nil).Observe
)
