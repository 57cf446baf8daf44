package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// The pure core: the caller supplies the time and the random draw, so a
// simulation gets the same answers every time.
func ExampleThrottle() {
	th, _ := backoff.NewThrottle(backoff.ThrottleConfig{}) // K 2, a two-minute window
	now := time.Date(2025, 10, 20, 7, 0, 0, 0, time.UTC)
	// The backend accepted 40 of the last 100 requests.
	for i := range 100 {
		if i < 40 {
			th.RecordAt(now, backoff.ThrottleAccepted)
		} else {
			th.RecordAt(now, backoff.ThrottleRefused)
		}
	}
	fmt.Printf("40%% accepted: reject with probability %.3f\n", th.ProbabilityAt(now))

	// Then it refuses everything; the client wants to send 10 requests a
	// second for a minute.
	r := rand.New(rand.NewPCG(1, 2))
	sent := 0
	for range 600 {
		now = now.Add(100 * time.Millisecond)
		if th.AllowAt(now, r.Float64()) {
			sent++
			th.RecordAt(now, backoff.ThrottleRefused)
		}
	}
	s := th.StatsAt(now)
	fmt.Printf("outage: sent %d of 600, probability now %.3f (%d requests, %d accepted)\n",
		sent, s.Probability, s.Requests, s.Accepts)
	// Output:
	// 40% accepted: reject with probability 0.198
	// outage: sent 171 of 600, probability now 0.884 (700 requests, 40 accepted)
}

// WithThrottle puts a Throttle in front of every attempt of Retry: an
// attempt the throttle refuses is not sent, and Retry gives up at once.
func ExampleWithThrottle() {
	th, _ := backoff.NewThrottle(backoff.ThrottleConfig{})
	sent := 0
	op := func(ctx context.Context) error {
		sent++
		return errors.New("503 overloaded")
	}
	r := rand.New(rand.NewPCG(3, 4)) // for a reproducible example; omit it in production
	policy := backoff.Policy{Base: time.Millisecond, MaxAttempts: 3}

	for i := range 20 {
		err := backoff.Retry(context.Background(), policy, op, backoff.WithThrottle(th), backoff.WithRand(r))
		var te *backoff.ThrottledError
		if errors.As(err, &te) && i == 0 {
			fmt.Println(te)
		}
	}
	fmt.Printf("20 calls of up to 3 attempts sent %d requests to a backend that refuses them all\n", sent)
	// Output:
	// throttled locally: rejection probability 0.667 (2 requests, 0 accepted in the last 2m0s, K 2)
	// 20 calls of up to 3 attempts sent 3 requests to a backend that refuses them all
}
