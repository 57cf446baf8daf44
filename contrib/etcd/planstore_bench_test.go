package etcd

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/internal/proctest"
)

// BenchmarkPlanEncode measures the encoding of a 10,000-endpoint plan (4
// targets each) at each DEFLATE level considered, and reports its sizes.
func BenchmarkPlanEncode(b *testing.B) {
	p := bigPlan(1, 10_000, 4)
	js, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	for _, level := range []int{flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
		b.Run(fmt.Sprintf("level=%d", level), func(b *testing.B) {
			var n int
			for b.Loop() {
				var buf bytes.Buffer
				w, _ := flate.NewWriter(&buf, level)
				w.Write(js)
				w.Close()
				n = buf.Len()
			}
			b.ReportMetric(float64(len(js)), "json-bytes")
			b.ReportMetric(float64(n), "stored-bytes")
		})
	}
}

// BenchmarkPlanStore measures, against a real etcd on loopback (one
// member, fsync on): Put and Get of a 10,000-endpoint plan, and a clean-up
// of 1,000 plans (one Delete each, as an enactor's clean-up makes them),
// with the median and 99th percentile of each call.
func BenchmarkPlanStore(b *testing.B) {
	srv := etcdtest.Start(b)
	client := srv.Client(b)
	ctx := context.Background()
	big := bigPlan(1, 10_000, 4)
	_, data, _ := encode(big)

	b.Run("Put10k", func(b *testing.B) {
		s := newPlanStore(b, client, PlanStoreConfig{})
		var g fence.Token
		proctest.Latencies(b, func() {
			g++
			big.Generation = g
			if err := s.Put(ctx, big); err != nil {
				b.Fatal(err)
			}
			if g%16 == 0 { // keep etcd's database small
				for d := g - 15; d < g; d++ {
					s.Delete(ctx, d)
				}
			}
		})
		b.ReportMetric(float64(len(data)), "stored-bytes")
	})
	b.Run("Get10k", func(b *testing.B) {
		s := newPlanStore(b, client, PlanStoreConfig{})
		big.Generation = 1
		if err := s.Put(ctx, big); err != nil {
			b.Fatal(err)
		}
		proctest.Latencies(b, func() {
			if _, err := s.Get(ctx, 1); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("CleanUp1000", func(b *testing.B) {
		const plans = 1000
		var lat []time.Duration
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			s := newPlanStore(b, client, PlanStoreConfig{MaxPlans: plans + 1})
			for g := range fence.Token(plans) {
				if err := s.Put(ctx, dnsplantest.PlanFor(g+1, uint8(g))); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			start := time.Now()
			gens, err := s.List(ctx)
			if err != nil || len(gens) != plans {
				b.Fatalf("List: %d plans, %v", len(gens), err)
			}
			for _, g := range gens {
				t0 := time.Now()
				if err := s.Delete(ctx, g); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			total += time.Since(start)
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "s/clean-up")
		proctest.ReportLatencies(b, lat)
	})
}
