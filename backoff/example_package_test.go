package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// flakyAttach returns an attach call that fails once, then succeeds.
func flakyAttach() func(ctx context.Context, volume string) (string, error) {
	calls := 0
	return func(ctx context.Context, volume string) (string, error) {
		if calls++; calls == 1 {
			return "", errors.New("connection refused")
		}
		return volume + " attached", nil
	}
}

// Retries of one dependency, spaced out with jitter, paid for from a
// budget shared by all its callers, and stopped by a breaker when it is
// down.
func Example() {
	attach := flakyAttach()
	ctx := context.Background()
	// One Budget and one Breaker per dependency, shared by all its callers.
	budget, err := backoff.NewBudget(backoff.BudgetConfig{Ratio: 0.1}) // retries add at most 10% load
	if err != nil {
		panic(err)
	}
	breaker, err := backoff.NewBreaker(backoff.BreakerConfig{Name: "volumes", SlowCallDuration: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	policy := backoff.Policy{Base: 10 * time.Millisecond, Cap: time.Second, MaxAttempts: 5}

	v, err := backoff.Do(ctx, policy, func(ctx context.Context) (string, error) {
		return attach(ctx, "vol-42") // backoff.Permanent(err) for what a retry cannot fix
	}, backoff.WithBudget(budget), backoff.WithBreaker(breaker))
	fmt.Println(v, err)
	// Output: vol-42 attached <nil>
}
