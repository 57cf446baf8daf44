package rfc2136_test

import (
	"fmt"
	"testing"

	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/internal/proctest"
)

// BenchmarkBind measures the provider against a real BIND on loopback
// (UDP, TSIG hmac-sha256, zone journal on disk), and reports the median
// and 99th percentile latency besides the mean (ns/op). Apply is one
// signed UPDATE with a prerequisite, replacing three addresses, the
// generation TXT and the weights TXT; Read is five queries.
func BenchmarkBind(b *testing.B) {
	s := bindtest.Start(b)
	p := newProvider(b, s)
	targets := []dnsplan.Target{tg("10.0.0.1", 1), tg("10.0.0.2", 2), tg("2001:db8::3", 3)}
	run := 0
	b.Run("Apply", func(b *testing.B) {
		run++
		ep := fmt.Sprintf("bench%d.dnsplan.test", run)
		var g fence.Token
		proctest.Latencies(b, func() {
			if err := p.Apply(ctx, ep, g, dnsplan.Records{Generation: g + 1, Targets: targets}); err != nil {
				b.Fatal(err)
			}
			g++
		})
	})
	if err := p.Apply(ctx, "read.dnsplan.test", 0, dnsplan.Records{Generation: 1, Targets: targets}); err != nil {
		b.Fatal(err)
	}
	b.Run("Read", func(b *testing.B) {
		proctest.Latencies(b, func() {
			if _, err := p.Read(ctx, "read.dnsplan.test"); err != nil {
				b.Fatal(err)
			}
		})
	})
}
