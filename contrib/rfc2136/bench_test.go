package rfc2136_test

import (
	"fmt"
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
