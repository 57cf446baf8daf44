package shed_test

import (
	"fmt"
	"time"

	"github.com/stormguard/stormguard/shed"
)

// An adaptive limit driven on a virtual clock, as a simulation drives it:
// a dependency with 8 servers answers in 10ms while at most 8 calls are in
// flight, and queues the rest.
func ExampleAdaptiveLimit_OnSample() {
	lim, _ := shed.NewAdaptiveLimit(shed.AdaptiveConfig{MinLimit: 1, MaxLimit: 100, InitialLimit: 4})
	now := time.Date(2025, 10, 20, 7, 0, 0, 0, time.UTC)
	for range 5000 {
		inFlight := lim.Limit()
		rtt := 10 * time.Millisecond * time.Duration(max(inFlight, 8)) / 8
		now = now.Add(rtt / time.Duration(inFlight))
		lim.OnSample(now, rtt, inFlight, false)
	}
	st := lim.Stats()
	fmt.Println("baseline:", st.Baseline)
	fmt.Println("limit between 8 and 20:", st.Limit >= 8 && st.Limit <= 20)
	// Output:
	// baseline: 10ms
	// limit between 8 and 20: true
}

// A Bulkhead whose limit learns from the latencies Do measures, under a
// ceiling of 64.
func ExampleBulkheadConfig_adaptive() {
	b, _ := shed.NewBulkhead(shed.BulkheadConfig{
		MaxConcurrent: 64,
		MaxQueue:      128,
		Adaptive:      &shed.AdaptiveConfig{MinLimit: 2, InitialLimit: 8},
	})
	fmt.Println("limit:", b.Limit())
	// Output:
	// limit: 8
}
