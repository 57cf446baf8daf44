package backoffhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// Attacks on the package's own promises.

// A GetBody that returns a nil body must not turn a retry into a request
// without its body.
func TestGetBodyReturningNilIsNotRewindable(t *testing.T) {
	fb := &fakeBase{answers: []answer{{status: 503}, {status: 200}}}
	var giveUp error
	rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: fast, OnAttempt: func(a backoffhttp.Attempt) { giveUp = a.GiveUp }})
	req, _ := http.NewRequest(http.MethodPut, "http://h/", strings.NewReader("payload"))
	req.GetBody = func() (io.ReadCloser, error) { return nil, nil }
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if fb.sent() != 1 || resp.StatusCode != 503 || !errors.Is(giveUp, backoffhttp.ErrBodyNotRewindable) {
		t.Fatalf("sent %d bodies %q, status %d, reason %v", fb.sent(), fb.bodies, resp.StatusCode, giveUp)
	}
}

// A typed nil Base is refused by New, not a panic in RoundTrip.
func TestNewRefusesTypedNilBase(t *testing.T) {
	for _, base := range []http.RoundTripper{(*http.Transport)(nil), roundTripperFunc(nil)} {
		if _, err := backoffhttp.New(backoffhttp.Config{Base: base}); !errors.Is(err, backoffhttp.ErrInvalidConfig) {
			t.Errorf("%T: %v", base, err)
		}
	}
}

// slowBody is a discarded body that takes a second to drain.
type slowBody struct{ read bool }

func (b *slowBody) Read(p []byte) (int, error) {
	if b.read {
		return 0, io.EOF
	}
	b.read = true
	time.Sleep(time.Second)
	return copy(p, "busy"), nil
}

func (b *slowBody) Close() error { return nil }

// The time spent draining a discarded body is part of the wait, not added
// to it: the next attempt starts when Retry-After says.
func TestDrainTimeCountsInTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts []time.Duration
		t0 := time.Now()
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			starts = append(starts, time.Since(t0))
			if len(starts) == 1 {
				h := http.Header{"Retry-After": {"3"}}
				return &http.Response{StatusCode: 503, Header: h, Body: &slowBody{}}, nil
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		rt := mustNew(t, backoffhttp.Config{Base: base, Policy: backoff.Policy{Base: time.Millisecond}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := rt.RoundTrip(getWith(ctx))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(starts) != 2 || starts[1] != 3*time.Second {
			t.Fatalf("attempts started at %v, want [0s 3s]", starts)
		}
	})
}

// The hook sees every attempt with its status or error, the wait chosen
// and the reason to stop.
func TestOnAttemptRecordsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &fakeBase{answers: []answer{{err: errReset}, {status: 503, retryAfter: "2"}, {status: 500}}}
		var got []backoffhttp.Attempt
		p := backoff.Policy{Base: time.Second, Jitter: backoff.JitterNone}
		rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: p, OnAttempt: func(a backoffhttp.Attempt) { got = append(got, a) }})
		resp, err := rt.RoundTrip(getWith(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(got) != 3 {
			t.Fatalf("%d events", len(got))
		}
		want := []struct {
			n, status int
			err       error
			class     backoffhttp.Class
			wait      time.Duration
			giveUp    error
		}{
			{1, 0, errReset, backoffhttp.Retryable, time.Second, nil},
			{2, 503, nil, backoffhttp.Retryable, 2 * time.Second, nil},
			{3, 500, nil, backoffhttp.Failure, 0, backoffhttp.ErrNotRetryable},
		}
		for i, w := range want {
			a := got[i]
			if a.N != w.n || a.StatusCode != w.status || !errors.Is(a.Err, w.err) || a.Class != w.class || a.Wait != w.wait || !errors.Is(a.GiveUp, w.giveUp) || (w.giveUp == nil) != (a.GiveUp == nil) || a.Request == nil {
				t.Errorf("event %d: %+v, want %+v", i, a, w)
			}
		}
	})
}

// A breaker that opens while a retry waits refuses the retry: the request
// ends with an error matching both the refusal and the last status.
func TestBreakerOpenDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hosts, err := backoff.NewBreakers(backoff.BreakersConfig[string]{
			Breaker: backoff.BreakerConfig{WindowCalls: 2, MinCalls: 2, OpenWait: time.Hour},
		})
		if err != nil {
			t.Fatal(err)
		}
		fb := &fakeBase{answers: []answer{{status: 503, retryAfter: "1"}}}
		rt := mustNew(t, backoffhttp.Config{Base: fb, Breakers: hosts})
		// Another caller's failure opens the host's breaker during the wait.
		time.AfterFunc(500*time.Millisecond, func() {
			tk, err := hosts.Allow("api.internal")
			if err == nil {
				hosts.Record(tk, errReset)
			}
		})
		resp, err := rt.RoundTrip(getWith(context.Background()))
		var se *backoffhttp.StatusError
		if resp != nil || !errors.Is(err, backoff.ErrBreakerOpen) || !errors.As(err, &se) || se.StatusCode != 503 {
			t.Fatalf("resp %v, err %v", resp, err)
		}
		if fb.sent() != 1 || fb.responses[0].closed.Load() != 1 {
			t.Fatalf("sent %d", fb.sent())
		}
		// As in backoff.Retry, an attempt a breaker refused is counted.
		var be *backoff.Error
		if !errors.As(err, &be) || be.Attempts != 2 {
			t.Fatalf("attempts in %#v", be)
		}
	})
}

// Many goroutines share one Transport over loopback; every body is closed.
func TestConcurrentUse(t *testing.T) {
	var hits atomic.Int64
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch hits.Add(1) % 3 {
		case 0:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 1:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			io.WriteString(w, "ok")
		}
	}))
	budget, _ := backoff.NewBudget(backoff.BudgetConfig{})
	hosts, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{})
	throttle, _ := backoff.NewThrottle(backoff.ThrottleConfig{})
	rt := mustNew(t, backoffhttp.Config{Base: ct, Policy: fast, Budget: budget, Breakers: hosts, Throttle: throttle})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if ct.open() != 0 {
		t.Fatalf("%d bodies open of %d", ct.open(), ct.opened.Load())
	}
}

// http.Client.Timeout reaches the transport as the request's deadline: a
// Retry-After that would outlast it is not waited for, over a real server.
func TestClientTimeoutIsTheDeadline(t *testing.T) {
	var hits atomic.Int32
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "come back later", http.StatusServiceUnavailable)
	}))
	var giveUp error
	rt := mustNew(t, backoffhttp.Config{Base: ct, MaxRetryAfter: 2 * time.Hour, OnAttempt: func(a backoffhttp.Attempt) { giveUp = a.GiveUp }})
	client := &http.Client{Transport: rt, Timeout: time.Minute}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 503 || string(body) != "come back later\n" {
		t.Fatalf("status %d, body %q, err %v", resp.StatusCode, body, err)
	}
	if hits.Load() != 1 || !errors.Is(giveUp, backoff.ErrDeadline) {
		t.Fatalf("%d hits, reason %v", hits.Load(), giveUp)
	}
	if ct.open() != 0 {
		t.Fatal("bodies left open")
	}
}

// A Retry-After at the limits of time.Duration neither overflows into a
// short wait nor sends early: with the cap lifted, the wait lasts until the
// caller cancels.
func TestHugeRetryAfterDoesNotOverflow(t *testing.T) {
	for _, h := range []string{"9223372036", "99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"} {
		synctest.Test(t, func(t *testing.T) {
			fb := &fakeBase{answers: []answer{{status: 503, retryAfter: h}, {status: 200}}}
			rt := mustNew(t, backoffhttp.Config{Base: fb, MaxRetryAfter: time.Duration(1<<63 - 1)})
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Hour, cancel)
			start := time.Now()
			_, err := rt.RoundTrip(getWith(ctx))
			if !errors.Is(err, context.Canceled) || fb.sent() != 1 || time.Since(start) != time.Hour {
				t.Fatalf("Retry-After %s: err %v, %d sent, after %v", h, err, fb.sent(), time.Since(start))
			}
		})
	}
}
