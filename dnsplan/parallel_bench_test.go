package dnsplan_test

import (
	"fmt"
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
)

// BenchmarkPass10kParallel: BenchmarkPass10k at several Parallel values,
// in memory: what running endpoints concurrently costs when the calls
// themselves cost nothing.
func BenchmarkPass10kParallel(b *testing.B) {
	for _, parallel := range []int{1, dnsplan.DefaultParallel} {
		b.Run(fmt.Sprintf("Parallel=%d", parallel), func(b *testing.B) {
			benchPass10k(b, dnsplan.EnactorConfig{Parallel: parallel})
		})
	}
}
