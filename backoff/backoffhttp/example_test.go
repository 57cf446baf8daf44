package backoffhttp_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// A GET that meets two 503s is retried and succeeds; the discarded
// responses are drained and closed, the last one is the caller's.
func Example() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "vol-42 attached")
	}))
	defer srv.Close()

	rt, err := backoffhttp.New(backoffhttp.Config{
		Policy: backoff.Policy{Base: time.Millisecond, MaxAttempts: 4},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := &http.Client{Transport: rt}
	resp, err := client.Get(srv.URL + "/volumes/vol-42")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), "after", calls.Load(), "calls")
	// Output:
	// 200 vol-42 attached after 3 calls
}

// A POST is retried only when it carries the idempotency key the transport
// is told about; its body is sent again with GetBody.
func Example_idempotencyKey() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	rt, _ := backoffhttp.New(backoffhttp.Config{
		Policy:            backoff.Policy{Base: time.Millisecond, MaxAttempts: 3},
		IdempotencyHeader: "Idempotency-Key",
	})
	client := &http.Client{Transport: rt}

	post := func(key string) {
		calls.Store(0)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/volumes", strings.NewReader(`{"size":8}`))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Printf("key %q: %d after %d calls\n", key, resp.StatusCode, calls.Load())
	}
	post("")
	post("create-vol-42")
	// Output:
	// key "": 503 after 1 calls
	// key "create-vol-42": 503 after 3 calls
}

// An open breaker refuses without sending; the refusal says when the host
// will be tried again.
func Example_breakers() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer srv.Close()

	hosts, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{
		Breaker: backoff.BreakerConfig{WindowCalls: 4, MinCalls: 4, OpenWait: time.Minute},
	})
	rt, _ := backoffhttp.New(backoffhttp.Config{Breakers: hosts})
	client := &http.Client{Transport: rt}
	for range 4 {
		resp, err := client.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
	}
	_, err := client.Get(srv.URL)
	var hint backoff.RetryAfterError
	fmt.Println(errors.Is(err, backoff.ErrBreakerOpen), errors.As(err, &hint) && hint.RetryAfter() > 0)
	// Output:
	// true true
}
