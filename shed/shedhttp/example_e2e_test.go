package shedhttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/stormguard/stormguard/backoff/backoffhttp"
	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// A backoffhttp client that trusts this server's refusals
// (RetryRefused) sends a POST again after a refusal, since the
// Stormguard-Refused header says its handler did not run; it waits the
// precise Retry-After-Ms, not the whole second of Retry-After.
func Example_retryRefused() {
	lim, _ := shed.NewLimiter(shed.LimiterConfig{Rate: 1.1, Burst: 1, MaxWait: time.Nanosecond})
	h, err := shedhttp.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "charged once")
	}), shedhttp.Options{Limiter: lim})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	rt, err := backoffhttp.New(backoffhttp.Config{
		RetryRefused: true,
		OnAttempt: func(a backoffhttp.Attempt) {
			if a.StatusCode == http.StatusTooManyRequests {
				fmt.Println("attempt", a.N, "refused: wait under a second:", a.Wait < time.Second)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.CloseIdleConnections()
	lim.Allow() // the next token is ~909ms away: the POST is refused
	resp, err := (&http.Client{Transport: rt}).Post(srv.URL, "text/plain", strings.NewReader("10 EUR"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// attempt 1 refused: wait under a second: true
	// 200
}
