package backoffhttp_test

import (
	"net/http"
	"testing"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// staticBase answers every request with the same 200, allocating nothing,
// so that what is counted is the transport's own work.
type staticBase struct{ resp *http.Response }

func (b staticBase) RoundTrip(*http.Request) (*http.Response, error) { return b.resp, nil }

func newGuarded(tb testing.TB, hook func(backoffhttp.Attempt), throttled bool) *backoffhttp.Transport {
	tb.Helper()
	budget, err := backoff.NewBudget(backoff.BudgetConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	hosts, err := backoff.NewBreakers(backoff.BreakersConfig[string]{})
	if err != nil {
		tb.Fatal(err)
	}
	var throttle *backoff.Throttle
	if throttled {
		if throttle, err = backoff.NewThrottle(backoff.ThrottleConfig{}); err != nil {
			tb.Fatal(err)
		}
	}
	return mustNew(tb, backoffhttp.Config{
		Base:      staticBase{&http.Response{StatusCode: http.StatusOK, Body: http.NoBody}},
		Budget:    budget,
		Breakers:  hosts,
		Throttle:  throttle,
		OnAttempt: hook,
	})
}

// The package comment promises that a first-try success allocates nothing
// in the transport, with a budget and per-host breakers, hook or not,
// throttle or not.
func TestFirstTrySuccessAllocatesNothing(t *testing.T) {
	req := mustRequest(t, http.MethodGet, "http://api.internal/v1")
	for _, c := range []struct {
		name      string
		hook      func(backoffhttp.Attempt)
		throttled bool
	}{
		{"no hook", nil, false},
		{"hook", func(backoffhttp.Attempt) {}, false},
		{"throttle", nil, true},
	} {
		name := c.name
		rt := newGuarded(t, c.hook, c.throttled)
		rt.RoundTrip(req) // the throttle's first call sets it up
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per first-try success", name, allocs)
		}
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	req := mustRequest(b, http.MethodGet, "http://api.internal/v1")
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"base", staticBase{&http.Response{StatusCode: http.StatusOK, Body: http.NoBody}}},
		{"guarded", newGuarded(b, nil, false)},
		{"guarded-hook", newGuarded(b, func(backoffhttp.Attempt) {}, false)},
		{"guarded-throttle", newGuarded(b, nil, true)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.rt.RoundTrip(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
