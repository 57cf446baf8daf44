package backoffhttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// The package comment's code: a client whose GET, answered 503 once by a
// dependency that is briefly overloaded, is retried after a backoff and
// succeeds.
func Example_package() {
	var calls atomic.Int32
	volumes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "vol-42")
	}))
	defer volumes.Close()
	volumesURL := volumes.URL

	budget, _ := backoff.NewBudget(backoff.BudgetConfig{}) // retries ≤ 10% of requests + 1/s
	hosts, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{})
	rt, err := backoffhttp.New(backoffhttp.Config{
		Policy:            backoff.Policy{Base: 50 * time.Millisecond, MaxAttempts: 4},
		Budget:            budget,
		Breakers:          hosts,
		IdempotencyHeader: "Idempotency-Key",
	})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	resp, err := client.Get(volumesURL + "/v1/volumes/vol-42")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", calls.Load(), "calls")
	// Output: 200 OK after 2 calls
}
