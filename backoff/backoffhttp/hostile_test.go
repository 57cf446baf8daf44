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
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			rt.RoundTrip(getWith(context.Background()))
		}()
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
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		rt.RoundTrip(getWith(context.Background()))
	}()
	if body.closes.Load() != 1 {
		t.Errorf("body closed %d times after the panic", body.closes.Load())
	}
}
