package shedhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// reqPlan is one request of TestInterleavingsKeepPromises.
type reqPlan struct {
	arrive   time.Duration // after the start
	work     time.Duration // how long its handler runs
	ends     string        // "return", "panic" or "abort"
	cancelAt time.Duration // when its client leaves (0: never), after arrival
	timeout  string        // its deadline header, or ""
	key      string
}

// TestInterleavingsKeepPromises: under any interleaving of arrivals,
// slow handlers, panics, aborts, departing clients and deadline headers,
// over every primitive, fixed or adaptive:
//   - no handler starts for a request whose context is done;
//   - handlers in flight never exceed the limit (per key, for a Partition);
//   - every request is answered once: run (200), refused (503), gone (499)
//     or a panic that reaches the caller;
//   - once all are answered, nothing is in flight or waiting.
//
// Events happen at whole milliseconds and clients leave at half
// milliseconds, so on synctest's clock no departure ties with an admission.
func TestInterleavingsKeepPromises(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		adaptive := rapid.Bool().Draw(rt, "adaptive")
		limit := rapid.IntRange(1, 3).Draw(rt, "limit")
		maxWait := time.Duration(rapid.IntRange(1, 20).Draw(rt, "maxWaitMs")) * time.Millisecond
		kind := rapid.SampledFrom([]string{"bulkhead", "queue", "partition", "adaptive"}).Draw(rt, "kind")
		rated := rapid.Bool().Draw(rt, "rated")
		queue := rapid.IntRange(0, 3).Draw(rt, "queue")
		plans := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) reqPlan {
			p := reqPlan{
				arrive: time.Duration(rapid.IntRange(0, 30).Draw(t, "arrive")) * time.Millisecond,
				work:   time.Duration(rapid.IntRange(0, 15).Draw(t, "work")) * time.Millisecond,
				ends:   rapid.SampledFrom([]string{"return", "return", "panic", "abort"}).Draw(t, "ends"),
				key:    rapid.SampledFrom([]string{"a", "b"}).Draw(t, "key"),
			}
			if rapid.Bool().Draw(t, "leaves") {
				p.cancelAt = time.Duration(rapid.IntRange(0, 20).Draw(t, "cancelMs"))*time.Millisecond + 500*time.Microsecond
			}
			if rapid.Bool().Draw(t, "hasTimeout") {
				p.timeout = fmt.Sprint(rapid.IntRange(0, 25).Draw(t, "timeoutMs"))
			}
			return p
		}), 1, 10).Draw(rt, "requests")

		var failures []string
		synctest.Test(t, func(t *testing.T) {
			failures = runInterleaving(t, kind, adaptive, rated, limit, queue, maxWait, plans)
		})
		if len(failures) > 0 {
			rt.Fatal(failures)
		}
	})
}

func runInterleaving(t *testing.T, kind string, adaptive, rated bool, limit, queue int, maxWait time.Duration, plans []reqPlan) []string {
	var acfg *shed.AdaptiveConfig
	if adaptive {
		acfg = &shed.AdaptiveConfig{WindowSamples: 2}
	}
	var o shedhttp.Options
	var stats func() shed.Stats
	perKey := false
	switch kind {
	case "bulkhead":
		bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: limit, MaxQueue: queue, MaxWait: maxWait, Adaptive: acfg})
		if err != nil {
			t.Fatal(err)
		}
		o, stats = shedhttp.Options{Bulkhead: bh}, bh.Stats
	case "queue":
		q, err := shed.NewQueue(shed.QueueConfig{Workers: limit, MaxQueue: queue + 1, MaxWait: maxWait, Adaptive: acfg})
		if err != nil {
			t.Fatal(err)
		}
		o, stats = shedhttp.Options{Queue: q, Cost: func(*http.Request) time.Duration { return 2 * time.Millisecond }}, q.Stats
	case "partition":
		p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 2 * limit, PerKey: limit,
			MaxQueuePerKey: queue, MaxWait: maxWait, Adaptive: acfg})
		if err != nil {
			t.Fatal(err)
		}
		o, stats = shedhttp.Options{Partition: p, Key: func(r *http.Request) string { return r.Header.Get("X-Key") }}, p.Stats
		perKey = true
	case "adaptive":
		al, err := shed.NewAdaptiveLimit(shed.AdaptiveConfig{MinLimit: 1, MaxLimit: limit, InitialLimit: limit, WindowSamples: 2})
		if err != nil {
			t.Fatal(err)
		}
		o, stats = shedhttp.Options{Adaptive: al}, func() shed.Stats { return shed.Stats{InFlight: al.Stats().InFlight} }
	}
	if rated {
		// A token every 2ms, waited for up to maxWait: some requests
		// wait, some are refused 429.
		lim, err := shed.NewLimiter(shed.LimiterConfig{Rate: 500, Burst: 1, MaxWait: maxWait})
		if err != nil {
			t.Fatal(err)
		}
		o.Limiter = lim
	}
	o.DeadlineHeader = "X-Timeout"

	var mu sync.Mutex
	running := map[string]int{}
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.Context().Err(); err != nil {
			fail("handler started with its context done: %v", err)
		}
		k := ""
		if perKey {
			k = r.Header.Get("X-Key")
		}
		mu.Lock()
		running[k]++
		if running[k] > limit {
			failures = append(failures, fmt.Sprintf("%d handlers in flight for %q, limit %d", running[k], k, limit))
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			running[k]--
			mu.Unlock()
		}()
		time.Sleep(time.Duration(mustAtoi(r.Header.Get("X-Work"))) * time.Millisecond)
		switch r.Header.Get("X-Ends") {
		case "panic":
			panic("boom")
		case "abort":
			panic(http.ErrAbortHandler)
		}
	})
	h, err := shedhttp.New(next, o)
	if err != nil {
		t.Fatal(err)
	}

	var answered atomic.Int64
	var wg sync.WaitGroup
	for i, p := range plans {
		wg.Go(func() {
			time.Sleep(p.arrive)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if p.cancelAt > 0 {
				timer := time.AfterFunc(p.cancelAt, cancel)
				defer timer.Stop()
			}
			req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
			req.Header.Set("X-Key", p.key)
			req.Header.Set("X-Work", fmt.Sprint(p.work.Milliseconds()))
			req.Header.Set("X-Ends", p.ends)
			if p.timeout != "" {
				req.Header.Set("X-Timeout", p.timeout)
			}
			w := httptest.NewRecorder()
			defer func() {
				v := recover()
				answered.Add(1)
				switch {
				case v != nil && p.ends == "return":
					fail("request %d panicked with %v", i, v)
				case v == nil && w.Code != 200 && w.Code != 503 && w.Code != 499 && !(rated && w.Code == 429):
					fail("request %d answered %d", i, w.Code)
				case v == nil && (w.Code == 503 || w.Code == 429):
					if msg := checkRefusal(w); msg != "" {
						fail("request %d: %s", i, msg)
					}
				}
			}()
			h.ServeHTTP(w, req)
		})
	}
	wg.Wait()
	if n := answered.Load(); n != int64(len(plans)) {
		fail("%d of %d requests answered", n, len(plans))
	}
	if s := stats(); s.InFlight != 0 || s.Waiting != 0 {
		fail("after all requests: %d in flight, %d waiting", s.InFlight, s.Waiting)
	}
	return failures
}

func mustAtoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// checkRefusal checks a refusal's answer against itself: a Retry-After
// header is a positive whole number of seconds, equal to the body's
// retry_after_ms rounded up to seconds, and present for every reason that
// carries its own numbers (a rate limit, a wait in vain, an eviction).
func checkRefusal(w *httptest.ResponseRecorder) string {
	var b struct {
		Reason       string `json:"reason"`
		RetryAfterMS *int64 `json:"retry_after_ms"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		return fmt.Sprintf("body %q: %v", w.Body.String(), err)
	}
	ra := w.Header().Values("Retry-After")
	switch {
	case len(ra) > 1:
		return fmt.Sprintf("%d Retry-After headers", len(ra))
	case (len(ra) == 1) != (b.RetryAfterMS != nil):
		return fmt.Sprintf("Retry-After %q but retry_after_ms %v", ra, b.RetryAfterMS)
	case len(ra) == 0:
		if b.Reason == "rate_limited" || b.Reason == "wait_timeout" || b.Reason == "evicted" {
			return fmt.Sprintf("%s without a Retry-After", b.Reason)
		}
		return ""
	}
	sec, err := strconv.ParseInt(ra[0], 10, 64)
	if err != nil || sec < 1 || *b.RetryAfterMS < 1 || sec != (*b.RetryAfterMS+999)/1000 {
		return fmt.Sprintf("Retry-After %q, retry_after_ms %d", ra[0], *b.RetryAfterMS)
	}
	return ""
}
