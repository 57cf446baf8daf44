package shedhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// A tenant over its rate gets 429 with a Retry-After from its limiter's
// numbers: one request per 90s, so the next token is 90s away.
func Example() {
	perTenant, _ := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{
		LimiterConfig: shed.LimiterConfig{Rate: 1.0 / 90, Burst: 1},
	})
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	h, err := shedhttp.New(hello, shedhttp.Options{
		KeyedLimiter: perTenant,
		Key:          func(r *http.Request) string { return r.Header.Get("X-Tenant") },
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	for range 2 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-Tenant", "tenant-7")
		resp, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
		fmt.Println(strings.TrimSpace(string(body[:min(len(body), 48)])))
	}
	// Output:
	// 200  text/plain; charset=utf-8
	// hello
	// 429 90 application/json
	// {"error":"rate_limited","reason":"rate_limited",
}

// A Partition keyed by Availability Zone: a zone whose requests hang holds
// at most its cap, and its next request is refused at once while the other
// zones are served.
func Example_partition() {
	zones, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 2, PerKey: 1})
	release := make(chan struct{})
	held := make(chan struct{})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("zone") == "us-east-1a" {
			close(held)
			<-release // the sick zone hangs
		}
		fmt.Fprintln(w, "ok")
	})
	h, _ := shedhttp.New(api, shedhttp.Options{
		Partition: zones,
		Key:       func(r *http.Request) string { return r.URL.Query().Get("zone") },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	go func() {
		resp, err := srv.Client().Get(srv.URL + "?zone=us-east-1a")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-held
	for _, zone := range []string{"us-east-1a", "us-east-1b"} {
		resp, _ := srv.Client().Get(srv.URL + "?zone=" + zone)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %d %s", zone, resp.StatusCode, body)
	}
	close(release)
	// Output:
	// us-east-1a: 503 {"error":"overloaded","reason":"queue_full","key":"us-east-1a","message":"shed: queue full (0 waiting, limit 0) for key \"us-east-1a\""}
	// us-east-1b: 200 ok
}

// A deadline header feeds a Queue's deadline-aware admission: a request
// with 50ms left is not started for work declared to take 100ms.
func Example_deadline() {
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 4})
	h, _ := shedhttp.New(http.NotFoundHandler(), shedhttp.Options{
		Queue:          q,
		Cost:           func(*http.Request) time.Duration { return 100 * time.Millisecond },
		DeadlineHeader: "X-Timeout-Ms",
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, timeout := range []string{"50", "5s", "soon"} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-Timeout-Ms", timeout)
		resp, _ := srv.Client().Do(req)
		resp.Body.Close()
		fmt.Println(timeout, resp.StatusCode)
	}
	// Output:
	// 50 503
	// 5s 404
	// soon 400
}
