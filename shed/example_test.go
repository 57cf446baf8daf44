package shed_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/shed"
)

func ExampleBulkhead() {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{
		MaxConcurrent: 2,                      // calls in flight to the dependency
		MaxQueue:      0,                      // fail fast: no waiting
		CallTimeout:   100 * time.Millisecond, // a short timeout, the 2011 lesson
	})
	if err != nil {
		panic(err)
	}
	b.TryAcquire()
	b.TryAcquire()
	err = b.Do(context.Background(), func(ctx context.Context) error { return nil })
	fmt.Println(err)
	fmt.Println(errors.Is(err, shed.ErrShed), errors.Is(err, shed.ErrQueueFull))
	// Output:
	// shed: queue full (0 waiting, limit 0)
	// true true
}

// One regional pool shared by three Availability Zones: whatever happens in
// one zone, it holds at most its share.
func ExamplePartition() {
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 30, Share: 0.5})
	if err != nil {
		panic(err)
	}
	for range 100 { // calls into a sick zone that never return
		p.TryAcquire("us-east-1a")
	}
	healthy := 0
	for range 15 {
		if p.TryAcquire("us-east-1b") {
			healthy++
		}
	}
	a, _ := p.StatsFor("us-east-1a")
	fmt.Printf("sick zone: %d in flight, %d refused; healthy zone: %d admitted\n", a.InFlight, a.Shed.Total(), healthy)

	// The operator's lever: switch the sick zone off.
	_ = p.Pause("us-east-1a")
	fmt.Println(p.Acquire(context.Background(), "us-east-1a"))
	// Output:
	// sick zone: 15 in flight, 85 refused; healthy zone: 15 admitted
	// shed: paused for key "us-east-1a"
}

func ExampleLimiter() {
	l, err := shed.NewLimiter(shed.LimiterConfig{Rate: 100, Burst: 2})
	if err != nil {
		panic(err)
	}
	now := time.Date(2025, 10, 20, 4, 14, 0, 0, time.UTC) // the pure core takes the time
	fmt.Println(l.AllowAt(now), l.AllowAt(now), l.AllowAt(now), l.AllowAt(now.Add(10*time.Millisecond)))
	// Output: true true false true
}

func ExampleKeyedLimiter() {
	perTenant, err := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{
		LimiterConfig: shed.LimiterConfig{Rate: 1, Burst: 1},
		MaxKeys:       10_000, // untrusted keys cannot grow memory past this
	})
	if err != nil {
		panic(err)
	}
	now := time.Now()
	fmt.Println(perTenant.AllowAt(now, "acme"))
	fmt.Println(perTenant.AllowAt(now, "acme"))
	fmt.Println(perTenant.AllowAt(now, "globex"))
	// Output:
	// <nil>
	// shed: rate limited (next token in 1s; 1/s, burst 1) for key "acme"
	// <nil>
}
