package dnsplan_test

import (
	"fmt"
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

// BenchmarkPass10kParallel: BenchmarkPass10k at several Parallel values,
// in memory: what running endpoints concurrently costs when the calls
// themselves cost nothing.
func BenchmarkPass10kParallel(b *testing.B) {
	for _, parallel := range []int{1, dnsplan.DefaultParallel} {
		b.Run(fmt.Sprintf("Parallel=%d", parallel), func(b *testing.B) {
			store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
			e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Parallel: parallel})
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
		})
	}
}
