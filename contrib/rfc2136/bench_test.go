package rfc2136_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/internal/proctest"
)

// applies times Apply of one generation after another to ep, each
// conditioned on the generation and version read before it; the read is
// not timed.
func applies(b *testing.B, p *rfc2136.Provider, ep string, targets func(fence.Token) []dnsplan.Target) {
	b.Helper()
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		cur, err := p.Read(ctx, ep)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := p.Apply(ctx, ep, cur, dnsplan.Records{Generation: cur.Generation + 1, Targets: targets(cur.Generation)}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	proctest.ReportLatencies(b, lat)
}

// BenchmarkBind measures the provider against a real BIND on loopback
// (TSIG hmac-sha256, zone journal on disk), and reports the median
// and 99th percentile latency besides the mean (ns/op). Apply is one
// signed UPDATE over TCP with its prerequisites (the generation TXT and
// version read, no CNAME, DNAME or NS in the way), replacing three addresses,
// the generation TXT and the weights TXT; Read is five queries over UDP.
// ApplyLargest and ReadLargest do the same for an endpoint of 64 IPv6
// targets, whose AAAA and weights answers BIND truncates over UDP, so
// that two of Read's queries are asked again over TCP.
func BenchmarkBind(b *testing.B) {
	s := bindtest.Start(b)
	p := newProvider(b, s)
	targets := []dnsplan.Target{tg("10.0.0.1", 1), tg("10.0.0.2", 2), tg("2001:db8::3", 3)}
	run := 0
	b.Run("Apply", func(b *testing.B) {
		run++
		ep := fmt.Sprintf("bench%d.dnsplan.test", run)
		applies(b, p, ep, func(fence.Token) []dnsplan.Target { return targets })
	})
	if err := p.Apply(ctx, "read.dnsplan.test", dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: targets}); err != nil {
		b.Fatal(err)
	}
	b.Run("Read", func(b *testing.B) {
		proctest.Latencies(b, func() {
			if _, err := p.Read(ctx, "read.dnsplan.test"); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("ApplyLargest", func(b *testing.B) {
		run++
		ep := fmt.Sprintf("bench%d.dnsplan.test", run)
		applies(b, p, ep, func(g fence.Token) []dnsplan.Target { return largest(0, uint32(g%2)) })
	})
	if err := p.Apply(ctx, "large.dnsplan.test", dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: largest(0, 1)}); err != nil {
		b.Fatal(err)
	}
	b.Run("ReadLargest", func(b *testing.B) {
		proctest.Latencies(b, func() {
			if r, err := p.Read(ctx, "large.dnsplan.test"); err != nil || len(r.Targets) != dnsplan.DefaultMaxTargets {
				b.Fatal(len(r.Targets), err)
			}
		})
	})
}

// passEndpoints is the size of the plans of BenchmarkPass10k.
const passEndpoints = 10_000

// passPlan is plan g of BenchmarkPass10k: passEndpoints endpoints of two
// IPv4 targets each, whose addresses change with every generation, so
// that a pass writes every endpoint.
func passPlan(g fence.Token) dnsplan.Plan {
	p := dnsplan.Plan{Generation: g, Endpoints: make(map[string][]dnsplan.Target, passEndpoints)}
	for i := range passEndpoints {
		p.Endpoints[fmt.Sprintf("ep%05d.dnsplan.test", i)] = []dnsplan.Target{
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(2 * g)}), Weight: 1},
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(2*g + 1)}), Weight: 2},
		}
	}
	return p
}

// timedProvider times every Read and Apply of the Provider it wraps.
type timedProvider struct {
	dnsplan.Provider
	mu            sync.Mutex
	reads, writes []time.Duration
}

func (p *timedProvider) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	start := time.Now()
	r, err := p.Provider.Read(ctx, ep)
	d := time.Since(start)
	p.mu.Lock()
	p.reads = append(p.reads, d)
	p.mu.Unlock()
	return r, err
}

func (p *timedProvider) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	start := time.Now()
	err := p.Provider.Apply(ctx, ep, expect, r)
	d := time.Since(start)
	p.mu.Lock()
	p.writes = append(p.writes, d)
	p.mu.Unlock()
	return err
}

// BenchmarkPass10k measures a whole enactor pass (dnsplan.Enactor.Pass)
// over 10,000 endpoints against one real BIND on loopback, every endpoint
// changed: 10,000 reads (five UDP queries each) and 10,000 signed,
// conditioned Applies, then a clean-up of the plan of three passes
// before, in a MemoryStore. It runs at Parallel 1 (one endpoint after
// another), the default (DefaultParallel) and 64, each with group commit
// (Config.MaxBatch 0, DefaultMaxBatch: the Applies that arrive while an
// UPDATE is in flight share the next one) and without (MaxBatch 1: an
// UPDATE per Apply), and reports the pass time (ns/op and pass-s), the
// endpoints that failed per pass (an UPDATE that timed out,
// Config.Timeout, queued behind the others: the next pass writes it),
// and the median and 99th percentile latency of one Apply (p50-µs,
// p99-µs) and one Read (read-p50-µs, read-p99-µs). The zone is filled
// with plan 1 by passes at Parallel 64 first, not timed. Run it with
// -benchtime=1x: a pass without group commit takes tens of seconds.
func BenchmarkPass10k(b *testing.B) {
	s := bindtest.Start(b)
	store := &dnsplan.MemoryStore{}
	g := fence.Token(1)
	if err := store.Put(ctx, passPlan(g)); err != nil {
		b.Fatal(err)
	}
	fill, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Parallel: 64})
	if err != nil {
		b.Fatal(err)
	}
	fillProvider := newProvider(b, s)
	start := time.Now()
	for done := 0; done < passEndpoints; {
		// A pass at Parallel 64 may see a few UPDATEs time out behind
		// the others (BIND applies them one at a time): the next pass
		// writes those.
		st, err := fill.Pass(ctx, store, fillProvider)
		if err != nil || st.Applied == 0 && st.Current != passEndpoints {
			b.Fatalf("filling the zone: %+v %v", st, err)
		}
		done = st.Current + st.Applied
	}
	b.Logf("zone filled with %d endpoints in %v", passEndpoints, time.Since(start).Round(time.Millisecond))
	for _, batch := range []int{0, 1} {
		for _, parallel := range []int{1, dnsplan.DefaultParallel, 64} {
			b.Run(fmt.Sprintf("MaxBatch=%d/Parallel=%d", batch, parallel), func(b *testing.B) {
				passBench(b, store, &g, s, parallel, batch)
			})
		}
	}
}

// passBench is one sub-benchmark of BenchmarkPass10k.
func passBench(b *testing.B, store *dnsplan.MemoryStore, g *fence.Token, s *bindtest.Server, parallel, batch int) {
	e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Parallel: parallel})
	if err != nil {
		b.Fatal(err)
	}
	rp, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret(), MaxBatch: batch})
	if err != nil {
		b.Fatal(err)
	}
	p := &timedProvider{Provider: rp}
	failed := 0
	for b.Loop() {
		b.StopTimer()
		*g++
		if err := store.Put(ctx, passPlan(*g)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := e.Pass(ctx, store, p)
		if err != nil || st.Applied+st.Failed != passEndpoints {
			b.Fatalf("pass of plan %d: %+v %v", *g, st, err)
		}
		failed += st.Failed
		if st.Failed > 0 {
			b.Logf("pass of plan %d: %d endpoints failed, e.g. %v", *g, st.Failed, st.Err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "pass-s")
	b.ReportMetric(float64(failed)/float64(b.N), "failed/pass")
	proctest.ReportLatencies(b, p.writes)
	pct := func(lat []time.Duration, q float64) float64 {
		slices.Sort(lat)
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(pct(p.reads, 0.50), "read-p50-µs")
	b.ReportMetric(pct(p.reads, 0.99), "read-p99-µs")
}
