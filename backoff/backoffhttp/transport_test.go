package backoffhttp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

var fast = backoff.Policy{Base: time.Microsecond, Cap: time.Microsecond, MaxAttempts: 4}

func mustNew(t testing.TB, cfg backoffhttp.Config) *backoffhttp.Transport {
	t.Helper()
	rt, err := backoffhttp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// hangUp is a handler that closes the connection without an answer: the
// client sees a transport error after the request was written.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestPostWithoutKeyIsNeverRetried(t *testing.T) {
	for _, mode := range []string{"503", "hangup", "500"} {
		t.Run(mode, func(t *testing.T) {
			var hits atomic.Int32
			srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				io.Copy(io.Discard, r.Body)
				switch mode {
				case "503":
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusServiceUnavailable)
				case "500":
					w.WriteHeader(http.StatusInternalServerError)
				default:
					hangUp(w, r)
				}
			}))
			rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, IdempotencyHeader: "Idempotency-Key"})
			for _, method := range []string{http.MethodPost, http.MethodPatch, "CONNECTX"} {
				hits.Store(0)
				req, _ := http.NewRequest(method, srv.URL, strings.NewReader("create"))
				req.Header.Set("Idempotency-Key", "") // present but empty: not a key
				resp, err := (&http.Client{Transport: rt}).Do(req)
				if err == nil {
					resp.Body.Close()
				}
				if got := hits.Load(); got != 1 {
					t.Errorf("%s %s: server hit %d times, want 1", method, mode, got)
				}
			}
			if n := ct.open(); n != 0 {
				t.Errorf("%d response bodies left open", n)
			}
		})
	}
}

func TestPostWithKeyIsRetriedWithTheSameBody(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []string
	)
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b)+"|"+r.Header.Get("Idempotency-Key"))
		n := len(bodies)
		mu.Unlock()
		switch n {
		case 1:
			hangUp(w, r)
		case 2:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("created"))
		}
	}))
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, IdempotencyHeader: "idempotency-key"})
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(`{"size":8}`)))
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "created" {
		t.Fatalf("body %q", got)
	}
	want := []string{`{"size":8}|k1`, `{"size":8}|k1`, `{"size":8}|k1`}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(bodies, ",") != strings.Join(want, ",") {
		t.Fatalf("server saw %q, want %q", bodies, want)
	}
	if n := ct.open(); n != 0 {
		t.Errorf("%d response bodies left open", n)
	}
}

// A body without GetBody cannot be sent again: the request goes once.
func TestBodyWithoutGetBodyIsSentOnce(t *testing.T) {
	var hits atomic.Int32
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	req, _ := http.NewRequest(http.MethodPut, srv.URL, io.NopCloser(strings.NewReader("x")))
	var giveUp error
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, OnAttempt: func(a backoffhttp.Attempt) { giveUp = a.GiveUp }})
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 || !errors.Is(giveUp, backoffhttp.ErrBodyNotRewindable) {
		t.Fatalf("hits %d, give-up %v", hits.Load(), giveUp)
	}
}

// Every discarded response is drained and closed; the final one is handed
// over unread.
func TestNoResponseBodyLeaks(t *testing.T) {
	var hits atomic.Int32
	big := strings.Repeat("x", 200<<10)
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch hits.Add(1) % 4 {
		case 1:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, big) // larger than the drain limit
		case 3:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			io.WriteString(w, "ok")
		}
	}))
	var bodies []*countedBody
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, OnAttempt: func(a backoffhttp.Attempt) {}})
	for i := range 5 {
		resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		cb := resp.Body.(*countedBody)
		if cb.read.Load() != 0 {
			t.Fatalf("request %d: the final body was read (%d bytes) before the caller", i, cb.read.Load())
		}
		if n := ct.open(); n != 1 {
			t.Fatalf("request %d: %d bodies open, want only the final one", i, n)
		}
		bodies = append(bodies, cb)
		resp.Body.Close()
	}
	if ct.open() != 0 || ct.opened.Load() != 20 {
		t.Fatalf("opened %d, closed %d", ct.opened.Load(), ct.closed.Load())
	}
}

func mustRequest(t testing.TB, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The caller's request is not modified, even when it is retried.
func TestRequestNotModified(t *testing.T) {
	var hits atomic.Int32
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if hits.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast})
	req, _ := http.NewRequest(http.MethodPut, srv.URL, strings.NewReader("v"))
	req.Header.Set("X-A", "1")
	before := *req
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Body != before.Body || req.URL != before.URL || len(req.Header) != 1 || req.Header.Get("X-A") != "1" || req.Method != http.MethodPut {
		t.Fatalf("request modified: %+v", req)
	}
	if resp.Request == req && hits.Load() > 1 {
		t.Fatal("a retried response should name the copy that was sent")
	}
}

// A host whose breaker is open is refused without a request; another host
// is not affected.
func TestBreakerPerHost(t *testing.T) {
	var badHits, goodHits atomic.Int32
	bad, ctBad := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	good, ctGood := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r) // a 4xx is a success for the breaker
		}
	}))
	var events []string
	hosts, err := backoff.NewBreakers(backoff.BreakersConfig[string]{
		Breaker: backoff.BreakerConfig{WindowCalls: 4, MinCalls: 4, OpenWait: time.Hour},
		OnStateChange: func(host string, ev backoff.BreakerEvent) {
			events = append(events, ev.To.String())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == bad.Listener.Addr().String() {
			return ctBad.RoundTrip(r)
		}
		return ctGood.RoundTrip(r)
	})
	rt := mustNew(t, backoffhttp.Config{Base: mux, Breakers: hosts, Policy: fast})
	for range 4 {
		resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, bad.URL))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp, err = rt.RoundTrip(mustRequest(t, http.MethodGet, good.URL+"/missing"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if badHits.Load() != 4 {
		t.Fatalf("a 500 is not retried by default: %d hits", badHits.Load())
	}
	body := &closeCounter{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPut, bad.URL, body)
	resp, err := rt.RoundTrip(req)
	var hint backoff.RetryAfterError
	if resp != nil || !errors.Is(err, backoff.ErrBreakerOpen) || !errors.As(err, &hint) || hint.RetryAfter() <= 0 {
		t.Fatalf("open breaker: resp %v, err %v", resp, err)
	}
	if badHits.Load() != 4 || body.closes.Load() != 1 {
		t.Fatalf("refused request: %d hits, request body closed %d times", badHits.Load(), body.closes.Load())
	}
	resp, err = rt.RoundTrip(mustRequest(t, http.MethodGet, good.URL))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("other host: %v %v", resp, err)
	}
	resp.Body.Close()
	if goodHits.Load() != 5 || strings.Join(events, ",") != "open" {
		t.Fatalf("good host hits %d, events %v", goodHits.Load(), events)
	}
	if ctBad.open()+ctGood.open() != 0 {
		t.Fatal("bodies left open")
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type closeCounter struct {
	io.Reader
	closes atomic.Int32
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

// An exhausted budget ends retrying: with no floor and a tiny ratio, only
// the first attempts reach the server once the bank is spent.
func TestBudgetExhaustedStopsRetries(t *testing.T) {
	var hits atomic.Int32
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	budget, err := backoff.NewBudget(backoff.BudgetConfig{Ratio: 0.5, NoFloor: true, MaxTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []error
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, Budget: budget, OnAttempt: func(a backoffhttp.Attempt) {
		if a.GiveUp != nil {
			reasons = append(reasons, a.GiveUp)
		}
	}})
	for range 4 {
		resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Each request deposits 0.5 before it is sent: request 1 earns half a
	// token (no retry), request 2 a whole one (one retry), and so on.
	if hits.Load() != 6 {
		t.Fatalf("%d hits, want 6 (4 first attempts, 2 paid retries)", hits.Load())
	}
	for _, r := range reasons {
		if !errors.Is(r, backoff.ErrBudgetExhausted) {
			t.Fatalf("reason %v", r)
		}
	}
	if ct.open() != 0 {
		t.Fatal("bodies left open")
	}
}

// A transport error retried until the attempts run out comes back as a
// *backoff.Error that matches both the bound and the error.
func TestTransportErrorGivesUpWithBackoffError(t *testing.T) {
	var hits atomic.Int32
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		hangUp(w, r)
	}))
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast})
	resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
	var be *backoff.Error
	if resp != nil || !errors.As(err, &be) || !errors.Is(err, backoff.ErrAttemptsExhausted) || be.Attempts != 4 {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if hits.Load() < 4 {
		t.Fatalf("%d hits", hits.Load())
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []backoffhttp.Config{
		{Policy: backoff.Policy{Base: -1}},
		{MaxRetryAfter: -time.Second},
		{IdempotencyHeader: "Idempotency Key"},
		{IdempotencyHeader: "Key:"},
	} {
		if _, err := backoffhttp.New(cfg); !errors.Is(err, backoffhttp.ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if _, err := backoffhttp.New(backoffhttp.Config{}); err != nil {
		t.Fatal(err)
	}
}

// The zero Transport works over http.DefaultTransport's defaults.
func TestZeroTransport(t *testing.T) {
	srv, _ := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var rt backoffhttp.Transport
	resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// A context cancelled before RoundTrip sends nothing and closes the body.
func TestDoneContextSendsNothing(t *testing.T) {
	fb := &fakeBase{answers: []answer{{status: 200}}}
	rt := mustNew(t, backoffhttp.Config{Base: fb})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := &closeCounter{Reader: strings.NewReader("x")}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://h/", body)
	if _, err := rt.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if fb.sent() != 0 || body.closes.Load() != 1 {
		t.Fatalf("sent %d, body closed %d", fb.sent(), body.closes.Load())
	}
}
