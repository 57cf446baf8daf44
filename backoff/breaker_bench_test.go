package backoff

import (
	"errors"
	"testing"
	"time"
)

// BenchmarkBreaker measures one call's admission plus its result in the
// closed state: the cost a healthy dependency pays for its breaker.
func BenchmarkBreaker(b *testing.B) {
	errFail := errors.New("fail")
	cases := []struct {
		name string
		cfg  BreakerConfig
	}{
		{"count", BreakerConfig{}},
		{"count-slow", BreakerConfig{SlowCallDuration: time.Second}},
		{"time", BreakerConfig{Window: TimeWindow}},
	}
	for _, c := range cases {
		br, err := NewBreaker(c.cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				t, err := br.Allow()
				if err != nil {
					b.Fatal(err)
				}
				var res error
				if i%16 == 0 { // a few failures, far below the threshold
					res = errFail
				}
				br.Record(t, res)
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					t, err := br.Allow()
					if err != nil {
						b.Fatal(err)
					}
					var res error
					if i%16 == 0 {
						res = errFail
					}
					i++
					br.Record(t, res)
				}
			})
		})
	}
	bs, err := NewBreakers[string](BreakersConfig[string]{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("keyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			t, err := bs.Allow("node-17")
			if err != nil {
				b.Fatal(err)
			}
			bs.Record(t, nil)
		}
	})
	b.Run("keyed-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				t, err := bs.Allow("node-17")
				if err != nil {
					b.Fatal(err)
				}
				bs.Record(t, nil)
			}
		})
	})
}
