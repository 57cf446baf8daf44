package stormotel_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	stormotel "github.com/stormguard/stormguard/contrib/otel"
	"github.com/stormguard/stormguard/shed"
)

// The package comment's code: a Queue and a Partition registered on a
// Meter, whose counts a reader collects only when it reads.
func Example_package() {
	reader := sdkmetric.NewManualReader()
	meterProvider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	queue, _ := shed.NewQueue(shed.QueueConfig{Workers: 4})
	partition, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 8})

	m, err := stormotel.New(meterProvider) // e.g. sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	if err != nil {
		panic(err)
	}
	reg, err := m.RegisterQueue("api", queue) // stormguard.shed.queue.*{stormguard.name="api"}
	if err != nil {
		panic(err)
	}
	defer reg.Unregister()
	zones, err := stormotel.RegisterPartition(m, "zones", partition, []string{"az1", "az2", "az3"})
	if err != nil {
		panic(err)
	}
	defer zones.Unregister()

	ctx := context.Background()
	call := func(context.Context) error { return nil }
	_ = queue.Do(ctx, shed.Critical, call)
	_ = partition.Do(ctx, "az1", call)
	_ = partition.Do(ctx, "az1", call)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	for _, mt := range rm.ScopeMetrics[0].Metrics {
		switch mt.Name {
		case "stormguard.shed.queue.admitted", "stormguard.shed.partition.key.admitted":
			for _, dp := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				name := mt.Name
				if key, ok := dp.Attributes.Value(stormotel.AttrKey); ok {
					name += "{" + key.AsString() + "}"
				}
				fmt.Println(name, dp.Value)
			}
		}
	}
	// Unordered output:
	// stormguard.shed.queue.admitted 1
	// stormguard.shed.partition.key.admitted{az1} 2
}
