package etcd

import (
	"context"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/internal/proctest"
)

// BenchmarkEtcdLease measures the LeaseTable's round trips against a real
// etcd on loopback (one member, fsync on), with the median and 99th
// percentile of each operation's latency.
func BenchmarkEtcdLease(b *testing.B) {
	srv := etcdtest.Start(b)
	tb, err := NewLeaseTable(LeaseTableConfig{Client: srv.Client(b), Prefix: "bench-lease/"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// Grant: a read, an etcd lease grant and the fenced transaction. Each
	// grant is released outside the timing so the next one can succeed.
	b.Run("Grant", func(b *testing.B) {
		var lat []time.Duration
		b.ReportAllocs()
		for b.Loop() {
			start := time.Now()
			l, err := tb.Grant(ctx, "droplet-grant", "dwfm", 10*time.Second)
			lat = append(lat, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := tb.Release(ctx, l); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		proctest.ReportLatencies(b, lat)
	})
	b.Run("Renew", func(b *testing.B) {
		l, err := tb.Grant(ctx, "droplet-renew", "dwfm", time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		proctest.Latencies(b, func() {
			if l, err = tb.Renew(ctx, l); err != nil {
				b.Fatal(err)
			}
		})
		// Release it so that the next round (-count, or b.N's growth) can
		// grant it again: a holder may not re-grant what it still holds.
		if err := tb.Release(ctx, l); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("Release", func(b *testing.B) {
		var lat []time.Duration
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			l, err := tb.Grant(ctx, "droplet-release", "dwfm", 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if err := tb.Release(ctx, l); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		proctest.ReportLatencies(b, lat)
	})
}
