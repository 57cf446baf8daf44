package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// A Policy is a plain value; the pure core computes each delay from the retry
// number, the previous delay and a uniform random draw.
func ExamplePolicy() {
	p := backoff.Policy{Base: 100 * time.Millisecond, Cap: 2 * time.Second}
	for n := 1; n <= 6; n++ {
		fmt.Printf("retry %d: envelope %v, full-jitter delay for draw 0.5: %v\n",
			n, p.Envelope(n), p.Delay(n, 0, 0.5))
	}
	fmt.Println(backoff.Policy{Cap: time.Second, Base: time.Minute}.Validate())
	// Output:
	// retry 1: envelope 100ms, full-jitter delay for draw 0.5: 50ms
	// retry 2: envelope 200ms, full-jitter delay for draw 0.5: 100ms
	// retry 3: envelope 400ms, full-jitter delay for draw 0.5: 200ms
	// retry 4: envelope 800ms, full-jitter delay for draw 0.5: 400ms
	// retry 5: envelope 1.6s, full-jitter delay for draw 0.5: 800ms
	// retry 6: envelope 2s, full-jitter delay for draw 0.5: 1s
	// backoff: invalid policy: Cap 1s is below Base 1m0s
}

// Delays is for callers that run their own loop.
func ExamplePolicy_Delays() {
	p := backoff.Policy{Base: 10 * time.Millisecond, Jitter: backoff.JitterNone, MaxAttempts: 4}
	for n, d := range p.Delays(nil) {
		fmt.Println(n, d)
	}
	// Output:
	// 1 10ms
	// 2 20ms
	// 3 40ms
}

func ExampleRetry() {
	calls := 0
	flaky := func(ctx context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("connection refused")
		}
		return nil
	}
	err := backoff.Retry(context.Background(), backoff.Policy{Base: time.Millisecond}, flaky)
	fmt.Println(err, calls)

	// Giving up: the error says why and what went wrong last.
	err = backoff.Retry(context.Background(), backoff.Policy{Base: time.Millisecond, MaxAttempts: 2},
		func(context.Context) error { return errors.New("connection refused") })
	fmt.Println(errors.Is(err, backoff.ErrAttemptsExhausted))

	// A permanent error stops at once.
	err = backoff.Retry(context.Background(), backoff.Policy{},
		func(context.Context) error { return backoff.Permanent(errors.New("403 forbidden")) })
	var e *backoff.Error
	fmt.Println(errors.Is(err, backoff.ErrPermanent), errors.As(err, &e) && e.Attempts == 1)
	// Output:
	// <nil> 3
	// true
	// true true
}

func ExampleDo() {
	calls := 0
	v, err := backoff.Do(context.Background(), backoff.Policy{Base: time.Millisecond},
		func(ctx context.Context) (string, error) {
			calls++
			if calls == 1 {
				// The server asks for at least 2ms before the next try.
				return "", backoff.RetryAfter(errors.New("429 slow down"), 2*time.Millisecond)
			}
			return "volume vol-42 attached", nil
		})
	fmt.Println(v, err)
	// Output: volume vol-42 attached <nil>
}

// One Budget is shared by every caller of one dependency: when the dependency
// fails for everyone, retries stop instead of multiplying the load.
func ExampleBudget() {
	budget, err := backoff.NewBudget(backoff.BudgetConfig{Ratio: 0.1, NoFloor: true})
	if err != nil {
		panic(err)
	}
	down := func(context.Context) error { return errors.New("503 unavailable") }
	p := backoff.Policy{Base: time.Microsecond, MaxAttempts: 5}
	calls := 0
	counted := func(ctx context.Context) error { calls++; return down(ctx) }
	for range 100 {
		_ = backoff.Retry(context.Background(), p, counted, backoff.WithBudget(budget))
	}
	s := budget.Stats()
	fmt.Printf("100 requests made %d calls (%d retries admitted, %d refused), not 500\n", calls, s.Retries, s.Refused)
	// Output: 100 requests made 109 calls (9 retries admitted, 100 refused), not 500
}
