package backoffhttp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// Attacks from a second hostile review.

// doneAt is a context that is done from the instant at on, as its Err says
// at once; its Done channel is closed by a timer at the same instant, so a
// select on a wait ending then sees both ready.
type doneAt struct {
	context.Context
	at   time.Time
	done chan struct{}
}

func newDoneAt(d time.Duration) *doneAt {
	c := &doneAt{Context: context.Background(), at: time.Now().Add(d), done: make(chan struct{})}
	time.AfterFunc(d, func() { close(c.done) })
	return c
}

func (c *doneAt) Done() <-chan struct{} { return c.done }

func (c *doneAt) Err() error {
	if !time.Now().Before(c.at) {
		return context.Canceled
	}
	return nil
}

// A wait that ends at the very instant the caller's context is done must
// not start another attempt: select picks at random among ready cases.
func TestNoAttemptWhenContextEndsWithTheWait(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			var late atomic.Int32
			sent := 0
			base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
				sent++
				if r.Context().Err() != nil {
					late.Add(1)
				}
				h := http.Header{"Retry-After": {"1"}}
				return &http.Response{StatusCode: 503, Header: h, Body: http.NoBody}, nil
			})
			rt := mustNew(t, backoffhttp.Config{Base: base, Policy: backoff.Policy{Base: time.Millisecond, MaxAttempts: 2}})
			ctx := newDoneAt(time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.internal/", nil)
			resp, err := rt.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if late.Load() != 0 || !errors.Is(err, context.Canceled) {
				t.Fatalf("%d of %d attempts sent after the context ended; err %v", late.Load(), sent, err)
			}
		})
	}
}

// stuckBody is a discarded body whose Read blocks, ignoring every context,
// until it is closed (or an hour passes, so that a test of a broken
// transport ends).
type stuckBody struct {
	once   sync.Once
	closed chan struct{}
	closes atomic.Int32
}

func newStuckBody() *stuckBody { return &stuckBody{closed: make(chan struct{})} }

func (b *stuckBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, errors.New("read on closed body")
	case <-time.After(time.Hour):
		return 0, io.EOF
	}
}

func (b *stuckBody) Close() error {
	b.closes.Add(1)
	b.once.Do(func() { close(b.closed) })
	return nil
}

// Draining a discarded body that never ends must not delay the next
// attempt past the end of the wait, nor the caller past its context.
func TestDrainOfAStuckBodyEndsWithTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts []time.Duration
		body := newStuckBody()
		t0 := time.Now()
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			starts = append(starts, time.Since(t0))
			if len(starts) == 1 {
				h := http.Header{"Retry-After": {"1"}}
				return &http.Response{StatusCode: 503, Header: h, Body: body}, nil
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		rt := mustNew(t, backoffhttp.Config{Base: base, Policy: backoff.Policy{Base: time.Millisecond}})
		resp, err := rt.RoundTrip(getWith(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(starts) != 2 || starts[1] != time.Second || body.closes.Load() != 1 {
			t.Fatalf("attempts started at %v, want [0s 1s]; body closed %d times", starts, body.closes.Load())
		}
	})
}

func TestDrainOfAStuckBodyEndsWithTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		body := newStuckBody()
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{"Retry-After": {"60"}}
			return &http.Response{StatusCode: 503, Header: h, Body: body}, nil
		})
		rt := mustNew(t, backoffhttp.Config{Base: base})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel)
		start := time.Now()
		_, err := rt.RoundTrip(getWith(ctx))
		if !errors.Is(err, context.Canceled) || time.Since(start) != 500*time.Millisecond || body.closes.Load() != 1 {
			t.Fatalf("err %v after %v; body closed %d times", err, time.Since(start), body.closes.Load())
		}
	})
}

// One host is one breaker, however its URL spells it: host names are not
// case-sensitive, and the scheme's default port is the same as none.
func TestBreakerKeyIsTheHostNotItsSpelling(t *testing.T) {
	hosts, err := backoff.NewBreakers(backoff.BreakersConfig[string]{})
	if err != nil {
		t.Fatal(err)
	}
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	rt := mustNew(t, backoffhttp.Config{Base: base, Breakers: hosts})
	for _, c := range []struct {
		urls []string
		key  string
	}{
		{[]string{"http://api.internal/", "http://API.Internal/x", "http://api.internal:80/", "http://api.internal./"}, "api.internal"},
		{[]string{"https://api.internal/", "https://api.internal:443/"}, "api.internal"},
		{[]string{"http://api.internal:8080/", "http://API.INTERNAL:8080/"}, "api.internal:8080"},
		{[]string{"https://api.internal:80/"}, "api.internal:80"},
		{[]string{"http://[::1]:8080/", "http://[::1]:8080/y"}, "[::1]:8080"},
		{[]string{"http://[FE80::1]/", "http://[fe80::1]:80/"}, "[fe80::1]"},
	} {
		for _, u := range c.urls {
			resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, u))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if _, ok := hosts.Lookup(c.key); !ok {
				t.Errorf("%s: no breaker under %q", u, c.key)
			}
		}
	}
	if hosts.Len() != 5 {
		t.Errorf("%d breakers, want 5", hosts.Len())
	}
}

// A retry that cannot be made because GetBody fails spends no budget token.
func TestFailingGetBodySpendsNoToken(t *testing.T) {
	budget, err := backoff.NewBudget(backoff.BudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBase{answers: []answer{{status: 503}, {status: 200}}}
	rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: fast, Budget: budget})
	req, _ := http.NewRequest(http.MethodPut, "http://h/", strings.NewReader("payload"))
	req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("spool gone") }
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := budget.Stats(); fb.sent() != 1 || s.Retries != 0 {
		t.Fatalf("sent %d, budget %+v", fb.sent(), s)
	}
}

// A Classify that panics releases the breaker's ticket (a half-open
// breaker is not left waiting for a probe that will never report) and
// closes the response it was given, as Breaker.Call does.
func TestPanickingClassifyReleasesTicketAndBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hosts, err := backoff.NewBreakers(backoff.BreakersConfig[string]{
			Breaker: backoff.BreakerConfig{WindowCalls: 2, MinCalls: 2, OpenWait: time.Second, Probes: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			tk, err := hosts.Allow("api.internal")
			if err != nil {
				t.Fatal(err)
			}
			hosts.Record(tk, errReset)
		}
		time.Sleep(time.Second) // half-open: one probe slot
		var body *closeCounter
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			body = &closeCounter{Reader: strings.NewReader("ok")}
			return &http.Response{StatusCode: 200, Body: body}, nil
		})
		panicky := true
		rt := mustNew(t, backoffhttp.Config{Base: base, Breakers: hosts, Classify: func(r *http.Response, err error) backoffhttp.Class {
			if panicky {
				panic("classify broke")
			}
			return backoffhttp.DefaultClassify(r, err)
		}})
		mustPanic(t, func() { rt.RoundTrip(getWith(context.Background())) })
		if body.closes.Load() != 1 {
			t.Errorf("body closed %d times after the panic", body.closes.Load())
		}
		panicky = false
		resp, err := rt.RoundTrip(getWith(context.Background()))
		if err != nil {
			t.Fatalf("the probe slot is still taken: %v", err)
		}
		resp.Body.Close()
	})
}

// A hook that panics on a success does not leak the response it saw.
func TestPanickingHookClosesTheResponse(t *testing.T) {
	var body *closeCounter
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		body = &closeCounter{Reader: strings.NewReader("ok")}
		return &http.Response{StatusCode: 200, Body: body}, nil
	})
	rt := mustNew(t, backoffhttp.Config{Base: base, OnAttempt: func(backoffhttp.Attempt) { panic("hook broke") }})
	mustPanic(t, func() { rt.RoundTrip(getWith(context.Background())) })
	if body.closes.Load() != 1 {
		t.Errorf("body closed %d times after the panic", body.closes.Load())
	}
}

// A POST that a 307 or 308 redirects is sent once to each URL, with its
// body, through an http.Client: the client follows the redirect, the
// transport never repeats either hop.
func TestRedirectedPostIsSentOncePerHop(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		var hitsA, hitsB atomic.Int32
		var bodyB atomic.Value
		srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/a":
				hitsA.Add(1)
				io.Copy(io.Discard, r.Body)
				http.Redirect(w, r, "/b", code)
			case "/b":
				hitsB.Add(1)
				b, _ := io.ReadAll(r.Body)
				bodyB.Store(string(b))
				w.Header().Set("Retry-After", "0")
				http.Error(w, "busy", http.StatusServiceUnavailable)
			}
		}))
		rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast})
		client := &http.Client{Transport: rt}
		resp, err := client.Post(srv.URL+"/a", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || hitsA.Load() != 1 || hitsB.Load() != 1 || bodyB.Load() != "payload" {
			t.Fatalf("%d: status %d, hits %d and %d, body at /b %q", code, resp.StatusCode, hitsA.Load(), hitsB.Load(), bodyB.Load())
		}
		if ct.open() != 0 {
			t.Fatalf("%d: %d bodies open", code, ct.open())
		}
	}
}

// What net/http's Transport itself replays on a reused connection that the
// server closed: a POST without an idempotency header never; one with an
// empty Idempotency-Key header once (net/http looks only at the header's
// presence), which this transport does not count as a key.
func TestPostOverAReusedConnectionThatDies(t *testing.T) {
	for _, c := range []struct {
		name   string
		header http.Header
		posts  int32
	}{
		{"no key", http.Header{}, 1},
		{"empty Idempotency-Key", http.Header{"Idempotency-Key": {""}}, 2},
	} {
		var posts atomic.Int32
		srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && posts.Add(1) == 1 {
				io.Copy(io.Discard, r.Body)
				hangUp(w, r)
				return
			}
			io.WriteString(w, "ok")
		}))
		var giveUp []error
		rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, IdempotencyHeader: "Idempotency-Key",
			OnAttempt: func(a backoffhttp.Attempt) { giveUp = append(giveUp, a.GiveUp) }})
		client := &http.Client{Transport: rt}
		resp, err := client.Get(srv.URL) // a connection to reuse
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("payload"))
		for k, v := range c.header {
			req.Header[k] = v
		}
		resp, err = client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if posts.Load() != c.posts || len(giveUp) != 2 || !errors.Is(giveUp[1], backoffhttp.ErrNotIdempotent) && c.posts == 1 {
			t.Errorf("%s: %d POSTs reached the server, want %d; attempts %v; err %v", c.name, posts.Load(), c.posts, giveUp, err)
		}
		if ct.open() != 0 {
			t.Errorf("%s: %d bodies open", c.name, ct.open())
		}
	}
}

// Over HTTP/2 with TLS: retries reuse the connection's streams, every
// discarded body is closed, a POST is sent once, and a certificate the
// client does not trust is not retried.
func TestHTTP2OverTLS(t *testing.T) {
	var gets, posts atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := gets.Load()
		if r.Method == http.MethodPost {
			posts.Add(1)
		} else {
			n = gets.Add(1)
		}
		if r.Method == http.MethodPost || n < 3 {
			http.Error(w, strings.Repeat("busy ", 1000), http.StatusBadGateway)
			return
		}
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake
	srv.StartTLS()
	defer srv.Close()
	base := srv.Client().Transport.(*http.Transport)
	defer base.CloseIdleConnections()
	ct := &countingTransport{base: base}
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast})
	client := &http.Client{Transport: rt}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" || gets.Load() != 3 {
		t.Fatalf("body %q after %d GETs", body, gets.Load())
	}
	resp, err = client.Post(srv.URL, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 || posts.Load() != 1 || ct.open() != 0 {
		t.Fatalf("status %d after %d POSTs; %d bodies open", resp.StatusCode, posts.Load(), ct.open())
	}

	// A client that does not trust the server's certificate.
	untrusting := &http.Transport{ForceAttemptHTTP2: true}
	defer untrusting.CloseIdleConnections()
	attempts := 0
	rt = mustNew(t, backoffhttp.Config{Base: untrusting, Policy: fast, OnAttempt: func(backoffhttp.Attempt) { attempts++ }})
	_, err = rt.RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
	var cv *tls.CertificateVerificationError
	if !errors.As(err, &cv) || attempts != 1 {
		t.Fatalf("err %v after %d attempts", err, attempts)
	}
}

// endless is a body that never ends.
type endless struct{ read atomic.Int64 }

func (e *endless) Read(p []byte) (int, error) { e.read.Add(int64(len(p))); return len(p), nil }

// failingClose is a body whose Close fails.
type failingClose struct {
	io.Reader
	closes atomic.Int32
}

func (f *failingClose) Close() error { f.closes.Add(1); return errors.New("close failed") }

// An endless body is drained up to DrainLimit and no further; a nil body
// and a body whose Close fails do not stop the retries.
func TestOddDiscardedBodies(t *testing.T) {
	for _, limit := range []int64{0, 1, 100 << 10, -1} {
		e := &endless{}
		fc := &failingClose{Reader: e}
		n := 0
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			n++
			switch n {
			case 1:
				return &http.Response{StatusCode: 503, Body: fc}, nil
			case 2:
				return &http.Response{StatusCode: 503}, nil // no body at all
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		rt := mustNew(t, backoffhttp.Config{Base: base, Policy: fast, DrainLimit: limit})
		resp, err := rt.RoundTrip(getWith(context.Background()))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("limit %d: resp %v, err %v", limit, resp, err)
		}
		want := limit
		switch {
		case limit == 0:
			want = backoffhttp.DefaultDrainLimit
		case limit < 0:
			want = 0
		}
		if got := e.read.Load(); got < want || got > want+32<<10 || fc.closes.Load() != 1 {
			t.Errorf("limit %d: read %d bytes of an endless body, closed %d times", limit, got, fc.closes.Load())
		}
	}
}

// The deadline rule at its boundary: a wait that would end exactly at the
// deadline is not started, one that ends a nanosecond before it is.
func TestDeadlineBoundary(t *testing.T) {
	for _, c := range []struct {
		slack time.Duration
		sent  int
	}{{0, 1}, {time.Nanosecond, 2}} {
		synctest.Test(t, func(t *testing.T) {
			fb := &fakeBase{answers: []answer{{status: 503, retryAfter: "1"}, {status: 200}}}
			rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: backoff.Policy{Base: time.Millisecond}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second+c.slack)
			defer cancel()
			resp, err := rt.RoundTrip(getWith(ctx))
			if err != nil {
				t.Fatalf("slack %v: %v", c.slack, err)
			}
			resp.Body.Close()
			if fb.sent() != c.sent {
				t.Fatalf("slack %v: sent %d, want %d", c.slack, fb.sent(), c.sent)
			}
		})
	}
}

// Every request body the transport gets or makes (the caller's, and each
// GetBody's) is closed exactly once, on every path that does not send it:
// a breaker that opens during the wait, a budget that refuses, a cancelled
// wait, a context done on entry, a hook that panics.
func TestRequestBodiesClosedOnceOnEveryPath(t *testing.T) {
	for _, path := range []string{"breaker", "budget", "cancel", "done", "hook panic", "budget and hook panic", "deadline"} {
		synctest.Test(t, func(t *testing.T) {
			var bodies []*trackedReqBody
			newBody := func() *trackedReqBody {
				b := &trackedReqBody{Reader: strings.NewReader("payload")}
				bodies = append(bodies, b)
				return b
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			fb := &fakeBase{answers: []answer{{status: 503, retryAfter: "1"}, {status: 200}}}
			cfg := backoffhttp.Config{Base: fb}
			switch path {
			case "breaker":
				hosts, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{
					Breaker: backoff.BreakerConfig{WindowCalls: 2, MinCalls: 2, OpenWait: time.Hour},
				})
				cfg.Breakers = hosts
				time.AfterFunc(time.Millisecond, func() {
					if tk, err := hosts.Allow("api.internal"); err == nil {
						hosts.Record(tk, errReset)
					}
				})
			case "budget", "budget and hook panic":
				cfg.Budget, _ = backoff.NewBudget(backoff.BudgetConfig{NoFloor: true})
			case "cancel":
				time.AfterFunc(time.Millisecond, cancel)
			case "done":
				cancel()
			case "deadline":
				ctx, cancel = context.WithTimeout(ctx, time.Second)
				defer cancel()
			}
			if strings.Contains(path, "hook panic") {
				cfg.OnAttempt = func(backoffhttp.Attempt) { panic("hook broke") }
			}
			rt := mustNew(t, cfg)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://api.internal/", nil)
			req.Body = newBody()
			req.GetBody = func() (io.ReadCloser, error) { return newBody(), nil }
			func() {
				defer func() { recover() }()
				resp, err := rt.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
			}()
			// Each path must have reached its refusal: the retry's body
			// was made (but for a done context and the deadline rule)
			// and not sent.
			wantBodies, wantSent := 2, 1
			switch path {
			case "done":
				wantBodies, wantSent = 1, 0
			case "deadline":
				wantBodies = 1
			}
			if len(bodies) != wantBodies || fb.sent() != wantSent {
				t.Errorf("%s: %d bodies made, %d sent; want %d and %d", path, len(bodies), fb.sent(), wantBodies, wantSent)
			}
			for i, b := range bodies {
				if b.closed.Load() != 1 {
					t.Errorf("%s: request body %d of %d closed %d times", path, i, len(bodies), b.closed.Load())
				}
			}
		})
	}
}

// closableEndless is a body that never ends until it is closed.
type closableEndless struct{ closed atomic.Bool }

func (e *closableEndless) Read(p []byte) (int, error) {
	if e.closed.Load() {
		return 0, errors.New("read on closed body")
	}
	return len(p), nil
}

func (e *closableEndless) Close() error { e.closed.Store(true); return nil }

// With DrainLimit at its maximum, an endless discarded body is drained
// only until the next attempt is due: the request does not spin forever.
func TestEndlessBodyWithUnboundedDrainLimit(t *testing.T) {
	body := &closableEndless{}
	n := 0
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		n++
		if n == 1 {
			return &http.Response{StatusCode: 502, Body: body}, nil
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	rt := mustNew(t, backoffhttp.Config{Base: base, Policy: backoff.Policy{Base: time.Millisecond}, DrainLimit: 1<<63 - 1})
	resp, err := rt.RoundTrip(getWith(context.Background()))
	if err != nil || resp.StatusCode != 200 || !body.closed.Load() {
		t.Fatalf("resp %v, err %v, closed %v", resp, err, body.closed.Load())
	}
}

// A GetBody that panics does not leak the response it was called after.
func TestPanickingGetBodyClosesTheResponse(t *testing.T) {
	fb := &fakeBase{answers: []answer{{status: 503}, {status: 200}}}
	rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: fast})
	req, _ := http.NewRequest(http.MethodPut, "http://h/", strings.NewReader("payload"))
	req.GetBody = func() (io.ReadCloser, error) { panic("spool broke") }
	mustPanic(t, func() { rt.RoundTrip(req) })
	if fb.sent() != 1 || fb.responses[0].closed.Load() != 1 {
		t.Fatalf("sent %d, response closed %d times", fb.sent(), fb.responses[0].closed.Load())
	}
}

// Extreme policies are refused by New with ErrInvalidConfig, or run
// without overflow: a wait of MaxInt64 is not started before a deadline.
func TestExtremePolicies(t *testing.T) {
	for _, p := range []backoff.Policy{
		{MaxAttempts: -1},
		{Base: -time.Second},
		{Multiplier: math.NaN()},
		{Multiplier: math.Inf(1)},
		{MaxElapsed: -1},
	} {
		if _, err := backoffhttp.New(backoffhttp.Config{Policy: p}); !errors.Is(err, backoffhttp.ErrInvalidConfig) {
			t.Errorf("%+v: %v", p, err)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		huge := time.Duration(math.MaxInt64)
		fb := &fakeBase{answers: []answer{{status: 503}, {status: 200}}}
		rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: backoff.Policy{Base: huge, Cap: huge, MaxAttempts: math.MaxInt, Jitter: backoff.JitterNone}})
		ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
		defer cancel()
		resp, err := rt.RoundTrip(getWith(ctx))
		if err != nil || resp.StatusCode != 503 || fb.sent() != 1 {
			t.Fatalf("resp %v, err %v, sent %d", resp, err, fb.sent())
		}
		resp.Body.Close()
	})
}

// A Base that breaks its contract, returning a response with an error,
// has that response closed, not drained: its body may never end.
func TestResponseWithErrorIsClosedNotDrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		body := newStuckBody()
		n := 0
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			n++
			if n == 1 {
				return &http.Response{StatusCode: 200, Body: body}, errReset
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		rt := mustNew(t, backoffhttp.Config{Base: base, Policy: backoff.Policy{Base: time.Millisecond, Jitter: backoff.JitterNone}})
		start := time.Now()
		resp, err := rt.RoundTrip(getWith(context.Background()))
		if err != nil || n != 2 || body.closes.Load() != 1 || time.Since(start) != time.Millisecond {
			t.Fatalf("resp %v, err %v, %d attempts, closed %d, after %v", resp, err, n, body.closes.Load(), time.Since(start))
		}
	})
}

// Over loopback: a 503 whose body never comes (the server flushes the
// header and hangs) is cut off when the wait ends, and the retry is made,
// though the caller's context has no deadline.
func TestStuckBodyOverLoopback(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	defer close(release)
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: backoff.Policy{Base: 10 * time.Millisecond}})
	resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" || hits.Load() != 2 || ct.open() != 0 {
		t.Fatalf("body %q after %d hits, %d bodies open", body, hits.Load(), ct.open())
	}
}

// Over loopback: the caller cancelling during an attempt ends the request
// with the cancellation, unretried, and the host's breaker counts nothing;
// running into the deadline counts as a failure.
func TestCancelDuringAttemptOverLoopback(t *testing.T) {
	for _, deadline := range []bool{false, true} {
		var hits atomic.Int32
		arrived := make(chan struct{}, 1)
		srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			arrived <- struct{}{}
			<-r.Context().Done()
		}))
		hosts, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{})
		rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, Breakers: hosts})
		ctx, cancel := context.WithCancel(context.Background())
		if deadline {
			ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
		} else {
			go func() { <-arrived; cancel() }()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		_, err := rt.RoundTrip(req)
		cancel()
		want := context.Canceled
		if deadline {
			want = context.DeadlineExceeded
		}
		b, _ := hosts.Lookup(strings.TrimPrefix(srv.URL, "http://"))
		st := b.Stats()
		if !errors.Is(err, want) || hits.Load() != 1 || ct.open() != 0 || st.Calls != boolCount(deadline) || st.Failures != boolCount(deadline) {
			t.Errorf("deadline %v: err %v, %d hits, %d open, breaker %+v", deadline, err, hits.Load(), ct.open(), st)
		}
	}
}

func boolCount(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Odd Retry-After values: what is not delta-seconds or an HTTP-date in the
// future is no hint (the policy's wait stands), the first of several
// headers counts, and one beyond MaxRetryAfter hands the response back.
func TestOddRetryAfterValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		policy := time.Millisecond
		for _, c := range []struct {
			values []string
			wait   time.Duration
			giveUp error
		}{
			{[]string{"2"}, 2 * time.Second, nil},
			{[]string{" 2 "}, 2 * time.Second, nil},
			{[]string{"00002"}, 2 * time.Second, nil},
			{[]string{"2", "30"}, 2 * time.Second, nil},
			{[]string{"1.5"}, policy, nil},
			{[]string{"-1"}, policy, nil},
			{[]string{"+2"}, policy, nil},
			{[]string{"2, 3"}, policy, nil},
			{[]string{"0"}, policy, nil},
			{[]string{""}, policy, nil},
			{[]string{"soon"}, policy, nil},
			{[]string{"an hour ago"}, policy, nil},
			{[]string{"in 5s"}, 5 * time.Second, nil},
			{[]string{"301"}, 0, backoff.ErrRetryAfterTooLong},
			{[]string{"18446744073709551616"}, 0, backoff.ErrRetryAfterTooLong},
		} {
			// HTTP-dates are made now (the bubble's clock moved on), to the
			// second, so the wait is to the date's second.
			switch c.values[0] {
			case "an hour ago":
				c.values = []string{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}
			case "in 5s":
				when := time.Now().Add(c.wait).Truncate(time.Second)
				c.values = []string{when.UTC().Format(http.TimeFormat)}
				c.wait = time.Until(when)
			}
			n := 0
			base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
				n++
				if n == 1 {
					return &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": c.values}, Body: http.NoBody}, nil
				}
				return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
			})
			var first backoffhttp.Attempt
			rt := mustNew(t, backoffhttp.Config{Base: base, MaxRetryAfter: 5 * time.Minute,
				Policy:    backoff.Policy{Base: policy, Jitter: backoff.JitterNone},
				OnAttempt: func(a backoffhttp.Attempt) { first = cmpFirst(first, a) }})
			resp, err := rt.RoundTrip(getWith(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if first.Wait != c.wait || !errors.Is(first.GiveUp, c.giveUp) || (c.giveUp == nil) != (first.GiveUp == nil) {
				t.Errorf("Retry-After %q: wait %v, give up %v; want %v, %v", c.values, first.Wait, first.GiveUp, c.wait, c.giveUp)
			}
		}
	})
}

// cmpFirst keeps the first attempt's event.
func cmpFirst(kept, a backoffhttp.Attempt) backoffhttp.Attempt {
	if kept.N == 0 {
		return a
	}
	return kept
}

// An IPv6 zone names a network interface, whose name is case-sensitive:
// only the address is lowered.
func TestBreakerKeyKeepsTheZone(t *testing.T) {
	hosts, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{})
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	rt := mustNew(t, backoffhttp.Config{Base: base, Breakers: hosts})
	for _, u := range []string{"http://[FE80::1%25Eth0]:8080/", "http://[fe80::1%25Eth0]:8080/", "http://[fe80::1%25eth0]:8080/"} {
		resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, u))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	_, upper := hosts.Lookup("[fe80::1%Eth0]:8080")
	_, lower := hosts.Lookup("[fe80::1%eth0]:8080")
	if !upper || !lower || hosts.Len() != 2 {
		t.Fatalf("Eth0 %v, eth0 %v, %d breakers", upper, lower, hosts.Len())
	}
}

// A retry the throttle refuses is refused before its wait and before the
// budget, as backoff.Retry asks them: it spends neither a token nor the
// wait, and the last response comes back as for a budget refusal.
func TestThrottledRetrySpendsNoTokenNorWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		throttle, _ := backoff.NewThrottle(backoff.ThrottleConfig{})
		budget, _ := backoff.NewBudget(backoff.BudgetConfig{})
		n := 0
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			n++
			if n == 1 {
				// Meanwhile the backend refused everyone else: the
				// rejection probability is 1 − 1e-6.
				now := time.Now()
				for range 1_000_000 {
					throttle.RecordAt(now, backoff.ThrottleRefused)
				}
				return &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"1"}}, Body: http.NoBody}, nil
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		var giveUp error
		rt := mustNew(t, backoffhttp.Config{Base: base, Throttle: throttle, Budget: budget,
			OnAttempt: func(a backoffhttp.Attempt) { giveUp = a.GiveUp }})
		start := time.Now()
		resp, err := rt.RoundTrip(getWith(context.Background()))
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("resp %v, err %v", resp, err)
		}
		resp.Body.Close()
		if n != 1 || !errors.Is(giveUp, backoff.ErrThrottled) || budget.Stats().Retries != 0 || time.Since(start) != 0 {
			t.Fatalf("%d sent, give up %v, budget %+v, after %v", n, giveUp, budget.Stats(), time.Since(start))
		}
	})
}

// The zero-allocation promise holds for a host already in key form and
// for a default port (dropped by slicing); lowering an upper-case host
// costs one string, as the package doc says.
func TestBreakerKeyAllocations(t *testing.T) {
	for _, c := range []struct {
		url    string
		allocs float64
	}{
		{"http://api.internal/v1", 0},
		{"http://api.internal:80/v1", 0},
		{"https://[::1]:443/v1", 0},
		{"http://api.internal.:8080/v1", 1},
		{"http://API.internal/v1", 1},
	} {
		rt := newGuarded(t, nil, false)
		req := mustRequest(t, http.MethodGet, c.url)
		rt.RoundTrip(req) // the key's breaker is made once
		if got := testing.AllocsPerRun(100, func() { rt.RoundTrip(req) }); got != c.allocs {
			t.Errorf("%s: %v allocations, want %v", c.url, got, c.allocs)
		}
	}
}
