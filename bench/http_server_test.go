package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// The server middlewares compared, configured alike: a bulkhead whose
// limit (shedBulkheadLimit) no benchmark reaches, so every request is
// admitted and the benchmarks measure the cost of admission, release and
// the wrapping itself. stormguard's Bulkhead has no queue (MaxQueue 0) and
// failsafe-go's bulkhead its default max wait of 0: a request that found
// every slot taken would be refused at once by both (TestHTTPServerPeers
// Equivalent checks it). A bulkhead is the policy the two libraries share
// whose admission is cheapest in both; failsafe-go's adaptive limiter would
// add its own latency bookkeeping, as stormguard's adaptive limits would.
func newStormguardServer(tb testing.TB, next http.Handler, limit int) http.Handler {
	tb.Helper()
	bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: limit})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := shedhttp.New(next, shedhttp.Options{Bulkhead: bh})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func newFailsafeServer(next http.Handler, limit uint) http.Handler {
	return failsafehttp.NewHandler(next, fsbulkhead.New[*http.Response](limit))
}

// noop is the handler every server runs: it writes nothing, so the
// response is an empty 200.
var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// serverCases returns bare, stormguard and failsafe around noop; serve
// turns a handler into one benchmark iteration.
func serverCases(serve func(b *testing.B, h http.Handler) func()) []benchCase {
	return []benchCase{
		{"bare", func(b *testing.B) func() { return serve(b, noop) }},
		{"stormguard", func(b *testing.B) func() { return serve(b, newStormguardServer(b, noop, shedBulkheadLimit)) }},
		{"failsafe", func(b *testing.B) func() { return serve(b, newFailsafeServer(noop, shedBulkheadLimit)) }},
	}
}

// BenchmarkHTTPServer: a GET of a no-op handler behind each middleware, on
// a real server over loopback, from one keep-alive connection. The
// overhead of a middleware is the difference from bare.
//
// It is serial, one request at a time: the overhead asked about is the
// latency a middleware adds to a request, and on a two-core machine shared
// with other work b.RunParallel would measure the scheduler and the
// loopback stack's contention more than the middleware. Loopback's own
// cost (tens of µs) and its noise dwarf an overhead of tens of ns, so
// BenchmarkHTTPServerInProcess measures the overhead precisely.
func BenchmarkHTTPServer(b *testing.B) {
	runCases(b, serverCases(func(b *testing.B, h http.Handler) func() {
		srv := httptest.NewServer(h)
		b.Cleanup(srv.Close)
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		b.Cleanup(tr.CloseIdleConnections)
		client := &http.Client{Transport: tr}
		return getOK(b, srv.URL, client.Do)
	}), false)
}

// BenchmarkHTTPServerInProcess: the same request served by calling
// ServeHTTP with a fresh httptest.ResponseRecorder, without a network, to
// isolate each middleware's own cost. The recorder's allocations are in
// bare too. Serial, as BenchmarkHTTPServer, for the same reason.
func BenchmarkHTTPServerInProcess(b *testing.B) {
	runCases(b, serverCases(func(b *testing.B, h http.Handler) func() {
		// A server's request context is cancellable (it ends when the
		// client goes), and checking a cancellable context costs more
		// than checking context.Background, so the request carries one.
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://api.internal/v1/volumes/vol-42", nil)
		return func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
			}
		}
	}), false)
}

// TestHTTPServerPeersEquivalent checks that the benchmarked configurations
// pass a request through, and refuse one at once when their limit is
// held (with limit 1): stormguard with 503, failsafe-go with 429.
func TestHTTPServerPeersEquivalent(t *testing.T) {
	for name, mk := range map[string]func(http.Handler) http.Handler{
		"stormguard": func(next http.Handler) http.Handler { return newStormguardServer(t, next, 1) },
		"failsafe":   func(next http.Handler) http.Handler { return newFailsafeServer(next, 1) },
	} {
		hold, held := make(chan struct{}), make(chan struct{})
		srv := httptest.NewServer(mk(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				close(held)
				<-hold
			}
		})))
		resp, err := srv.Client().Get(srv.URL)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", name, resp, err)
		}
		resp.Body.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := srv.Client().Get(srv.URL + "/hold"); err == nil {
				resp.Body.Close()
			}
		}()
		<-held
		resp, err = srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s: status %d with the limit held", name, resp.StatusCode)
		}
		close(hold)
		<-done
		srv.Close()
	}
}
