package bench

import "testing"

// benchCase is one contender of a side-by-side benchmark.
type benchCase struct {
	name string
	// make builds the contender and returns one benchmark iteration. It
	// fails b (with Error, which RunParallel's goroutines may call) if a
	// call is refused.
	make func(b *testing.B) func()
}

// runCases runs each case as a sub-benchmark, from one goroutine or, if
// parallel, from GOMAXPROCS goroutines on one shared contender.
func runCases(b *testing.B, cases []benchCase, parallel bool) {
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			call := c.make(b)
			if !parallel {
				for b.Loop() {
					call()
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					call()
				}
			})
		})
	}
}
