package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fsbudget "github.com/failsafe-go/failsafe-go/budget"
	fscircuitbreaker "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// The client transports compared, configured alike: up to 4 attempts with
// exponential backoff from 10ms, a retry budget, and a circuit breaker
// (50% of the last 100 calls, at least 20). stormguard's breaker is per
// host (a Breakers[string] keyed by URL host, one lookup per request);
// failsafe-go's failsafehttp has no per-host breakers, so it gets a single
// breaker, which is the cheaper of the two. Its budget (budget.New: retries
// at most 20% of executions in flight) stands for stormguard's Budget
// (retries at most 10% of requests).
func newStormguardHTTP(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	tb.Helper()
	budget, err := backoff.NewBudget(backoff.BudgetConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	hosts, err := backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: backoff.BreakerConfig{
		WindowCalls: breakerWindowCalls, MinCalls: breakerMinCalls, FailureRate: breakerFailureRate,
		OpenWait: breakerOpenWait, Probes: breakerProbes,
	}})
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := backoffhttp.New(backoffhttp.Config{
		Base:     base,
		Policy:   backoff.Policy{Base: 10 * time.Millisecond, MaxAttempts: 4},
		Budget:   budget,
		Breakers: hosts,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rt
}

func newFailsafeHTTP(base http.RoundTripper) http.RoundTripper {
	retry := failsafehttp.NewRetryPolicyBuilder().
		WithMaxRetries(3).
		WithBackoff(10*time.Millisecond, time.Second).
		WithBudget(fsbudget.New()).
		Build()
	breaker := fscircuitbreaker.NewBuilder[*http.Response]().
		WithFailureThresholdRatio(uint(breakerFailureRate*breakerWindowCalls), breakerWindowCalls).
		WithDelay(breakerOpenWait).
		WithSuccessThreshold(breakerProbes).
		Build()
	return failsafehttp.NewRoundTripperWithExecutor(base, failsafe.With[*http.Response](retry, breaker))
}

// clientCases returns bare, stormguard and failsafe over base, each making
// a GET and reading and closing the response body: through an http.Client,
// or with direct, by calling RoundTrip itself (so that the client's own work
// does not add noise to the transports' overhead).
func clientCases(base http.RoundTripper, url string, direct bool) []benchCase {
	call := func(b *testing.B, rt http.RoundTripper) func() {
		do := (&http.Client{Transport: rt}).Do
		if direct {
			do = rt.RoundTrip
		}
		return getOK(b, url, do)
	}
	return []benchCase{
		{"bare", func(b *testing.B) func() { return call(b, base) }},
		{"stormguard", func(b *testing.B) func() { return call(b, newStormguardHTTP(b, base)) }},
		{"failsafe", func(b *testing.B) func() { return call(b, newFailsafeHTTP(base)) }},
	}
}

// getOK returns one benchmark iteration: a GET of url made with do, its
// body read to the end and closed, and an error or a status other than
// 200 reported.
func getOK(b *testing.B, url string, do func(*http.Request) (*http.Response, error)) func() {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		resp, err := do(req)
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkHTTPClient: a first-try success through each transport, over
// loopback with keep-alive, on the same server. The overhead is the
// difference from bare.
func BenchmarkHTTPClient(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	// Warm the connection and the server up first, so that bare, which
	// runs first, does not pay for them.
	client := &http.Client{Transport: tr}
	for range 1000 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	runCases(b, clientCases(tr, srv.URL, false), false)
}

// cannedTransport answers every request with a fresh 200 and an empty body,
// without a network, so that BenchmarkHTTPClientInProcess measures only the
// transports' own work.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// BenchmarkHTTPClientInProcess: the same first-try success over a base
// transport that returns a canned response, RoundTrip called directly, to
// isolate the overhead.
func BenchmarkHTTPClientInProcess(b *testing.B) {
	runCases(b, clientCases(cannedTransport{}, "http://api.internal/v1/volumes/vol-42", true), false)
}

// TestHTTPClientPeersEquivalent checks that the benchmarked configurations
// pass a success through and both retry a 503.
func TestHTTPClientPeersEquivalent(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for name, rt := range map[string]http.RoundTripper{
		"stormguard": newStormguardHTTP(t, tr),
		"failsafe":   newFailsafeHTTP(tr),
	} {
		hits.Store(0)
		resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
		if err != nil {
			t.Fatal(name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || hits.Load() != 2 {
			t.Errorf("%s: status %d after %d calls", name, resp.StatusCode, hits.Load())
		}
	}
}
