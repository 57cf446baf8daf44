package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// The pure core takes the time as an argument, so a simulation drives a
// Breaker with its own clock.
func ExampleBreaker() {
	b, err := backoff.NewBreaker(backoff.BreakerConfig{
		Name:        "volume-service",
		WindowCalls: 10, MinCalls: 4, FailureRate: 0.5,
		OpenWait: 5 * time.Second, Probes: 1,
	})
	if err != nil {
		panic(err)
	}
	now := time.Date(2011, 4, 21, 0, 47, 0, 0, time.UTC)
	refused := errors.New("connection refused")
	for range 4 {
		t, _ := b.AllowAt(now)
		b.RecordAt(now, t, refused)
	}
	fmt.Println(b.StateAt(now))

	_, err = b.AllowAt(now.Add(2 * time.Second))
	fmt.Println(err)
	var oe *backoff.OpenError
	if errors.As(err, &oe) {
		fmt.Println("retry after", oe.RetryAfter())
	}

	// The first call after the wait is a probe; its success closes the
	// breaker.
	t, err := b.AllowAt(now.Add(5 * time.Second))
	fmt.Println(b.StateAt(now.Add(5*time.Second)), err)
	b.RecordAt(now.Add(5*time.Second), t, nil)
	fmt.Println(b.StateAt(now.Add(5 * time.Second)))
	// Output:
	// open
	// backoff: circuit breaker "volume-service" open: 4 of 4 calls failed (100%), next probe in 3s
	// retry after 3s
	// half-open <nil>
	// closed
}

// One breaker per peer: a node that keeps answering "no space" is left
// alone while the others are still asked — the 11:30 AM fix of April 2011,
// as a library.
func ExampleBreakers() {
	peers, err := backoff.NewBreakers(backoff.BreakersConfig[string]{
		MaxKeys: 1000,
		Breaker: backoff.BreakerConfig{WindowCalls: 5, MinCalls: 3, OpenWait: time.Minute},
	})
	if err != nil {
		panic(err)
	}
	errNoSpace := errors.New("no space for a replica")
	askForSpace := func(peer string) error {
		if peer == "node-a" {
			return errNoSpace
		}
		return nil
	}
	now := time.Unix(0, 0)
	for round := range 5 {
		for _, peer := range []string{"node-a", "node-b"} {
			t, err := peers.AllowAt(now, peer)
			if err != nil {
				fmt.Printf("round %d: %s skipped: %v\n", round, peer, errors.Is(err, backoff.ErrBreakerOpen))
				continue
			}
			peers.RecordAt(now, t, askForSpace(peer))
		}
		now = now.Add(time.Second)
	}
	// Output:
	// round 3: node-a skipped: true
	// round 4: node-a skipped: true
}

// With WithBreaker, Retry waits out an open breaker's refusal (it carries
// the time left until the next probe) instead of spinning against it.
func ExampleWithBreaker() {
	b, err := backoff.NewBreaker(backoff.BreakerConfig{WindowCalls: 1, MinCalls: 1, OpenWait: 20 * time.Millisecond, Probes: 1})
	if err != nil {
		panic(err)
	}
	calls := 0
	op := func(context.Context) error {
		calls++
		if calls == 1 {
			return errors.New("connection refused") // opens the breaker
		}
		return nil
	}
	err = backoff.Retry(context.Background(), backoff.Policy{Base: time.Millisecond}, op, backoff.WithBreaker(b))
	fmt.Println(err, calls, b.State())
	// Output:
	// <nil> 2 closed
}
