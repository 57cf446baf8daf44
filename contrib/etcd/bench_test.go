package etcd

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/internal/proctest"
)

// BenchmarkEtcd measures round trips of the Store's operations against a
// real etcd on loopback (one member, fsync on), and reports the median and
// 99th percentile of each operation's latency besides the mean (ns/op).
func BenchmarkEtcd(b *testing.B) {
	srv := etcdtest.Start(b)
	client := srv.Client(b)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "bench/"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	value := []byte("lb-7=100,lb-8=100")
	// Each run of a sub-benchmark (b.N calibration, -count) gets new keys.
	var ids atomic.Int64
	fresh := func(name string) string { return fmt.Sprintf("%s/%d", name, ids.Add(1)) }

	b.Run("CompareAndSwap", func(b *testing.B) {
		key := fresh("cas")
		var tok fence.Token
		proctest.Latencies(b, func() {
			if err := s.CompareAndSwap(ctx, key, tok, value, tok+1); err != nil {
				b.Fatal(err)
			}
			tok++
		})
	})
	b.Run("WriteIfNewer", func(b *testing.B) {
		key := fresh("win")
		var tok fence.Token
		proctest.Latencies(b, func() {
			tok++
			if err := s.WriteIfNewer(ctx, key, value, tok); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("WriteIfNewer-refused", func(b *testing.B) {
		key := fresh("stale")
		if err := s.WriteIfNewer(ctx, key, value, 100); err != nil {
			b.Fatal(err)
		}
		proctest.Latencies(b, func() {
			if err := s.WriteIfNewer(ctx, key, value, 99); err == nil {
				b.Fatal("accepted")
			}
		})
	})
	b.Run("Load", func(b *testing.B) {
		key := fresh("load")
		if err := s.CompareAndSwap(ctx, key, 0, value, 1); err != nil {
			b.Fatal(err)
		}
		proctest.Latencies(b, func() {
			if _, _, err := s.Load(ctx, key); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("SequencerNext", func(b *testing.B) {
		seq, err := fence.NewSequencer(fence.SequencerConfig{Store: s, Key: "generation"})
		if err != nil {
			b.Fatal(err)
		}
		proctest.Latencies(b, func() {
			if _, err := seq.Next(ctx); err != nil {
				b.Fatal(err)
			}
		})
	})
	// Eight writers at once, each on its own key: throughput through one
	// client connection, and latency under that load.
	b.Run("CompareAndSwap-8-writers", func(b *testing.B) {
		var mu sync.Mutex
		var all []time.Duration
		b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 goroutines
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			key := fresh("parallel")
			var tok fence.Token
			var mine []time.Duration
			for pb.Next() {
				start := time.Now()
				if err := s.CompareAndSwap(ctx, key, tok, value, tok+1); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
				tok++
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
		b.StopTimer()
		proctest.ReportLatencies(b, all)
	})
}
