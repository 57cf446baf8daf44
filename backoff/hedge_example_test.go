package backoff_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// A slow first attempt is hedged after the delay; the first success wins
// and the loser is cancelled. The hedge is paid for by the budget that the
// retries to the same dependency use.
func ExampleDoHedged() {
	budget, _ := backoff.NewBudget(backoff.BudgetConfig{}) // shared with Retry's WithBudget
	h, _ := backoff.NewHedger(backoff.HedgeConfig{Delay: 10 * time.Millisecond, Budget: budget})

	var attempt atomic.Int32
	replica, err := backoff.DoHedged(context.Background(), h, func(ctx context.Context) (string, error) {
		if attempt.Add(1) == 1 {
			<-ctx.Done() // the first replica is stuck until cancelled
			return "", ctx.Err()
		}
		return "replica-b", nil
	})
	fmt.Println(replica, err)
	s := h.Stats()
	fmt.Printf("calls %d, hedges %d, won by a hedge %d\n", s.Calls, s.Hedges, s.Won)
	// Output:
	// replica-b <nil>
	// calls 1, hedges 1, won by a hedge 1
}

// With Percentile the delay follows the latencies of the primary attempts.
// DelayAt and ObserveAt are the pure core a simulation drives.
func ExampleHedger_DelayAt() {
	h, _ := backoff.NewHedger(backoff.HedgeConfig{Percentile: 0.95, MinSamples: 20})
	now := time.Date(2025, 10, 20, 7, 0, 0, 0, time.UTC)
	fmt.Println("no samples yet:", h.DelayAt(now))
	for i := range 100 {
		h.ObserveAt(now, time.Duration(i+1)*time.Millisecond) // 1ms .. 100ms
	}
	fmt.Println("95th percentile of 1..100ms, rounded up:", h.DelayAt(now))
	fmt.Println("two windows later:", h.DelayAt(now.Add(2*time.Minute)))
	// Output:
	// no samples yet: 100ms
	// 95th percentile of 1..100ms, rounded up: 100.663295ms
	// two windows later: 100ms
}

// RetryHedged hedges every attempt of a retry loop, and pays for retries
// and hedges from the Hedger's Budget, so one outage turns both off.
func ExampleRetryHedged() {
	budget, _ := backoff.NewBudget(backoff.BudgetConfig{})
	h, _ := backoff.NewHedger(backoff.HedgeConfig{Delay: 5 * time.Millisecond, Budget: budget})
	var attempt atomic.Int32
	v, err := backoff.RetryHedged(context.Background(), backoff.Policy{Base: time.Millisecond}, h,
		func(ctx context.Context) (int, error) {
			if attempt.Add(1) == 1 {
				return 0, fmt.Errorf("connection reset")
			}
			return 42, nil
		})
	fmt.Println(v, err)
	// Output:
	// 42 <nil>
}
