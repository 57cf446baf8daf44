package shedhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// body is WriteRejection's JSON body.
type body struct {
	Error        string `json:"error"`
	Reason       string `json:"reason"`
	RetryAfterMS *int64 `json:"retry_after_ms"`
	Key          string `json:"key"`
	Message      string `json:"message"`
}

func decode(t *testing.T, r io.Reader) body {
	t.Helper()
	var b body
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&b))
	return b
}

func mustNew(t *testing.T, next http.Handler, o shedhttp.Options) *shedhttp.Handler {
	t.Helper()
	h, err := shedhttp.New(next, o)
	require.NoError(t, err)
	return h
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestNewRejectsBadOptions: every bad combination is an error matching
// ErrInvalidConfig (and shed.ErrInvalidConfig) and its precise reason.
func TestNewRejectsBadOptions(t *testing.T) {
	bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	require.NoError(t, err)
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 1})
	require.NoError(t, err)
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 2})
	require.NoError(t, err)
	lim, err := shed.NewLimiter(shed.LimiterConfig{Rate: 1})
	require.NoError(t, err)
	kl, err := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{LimiterConfig: shed.LimiterConfig{Rate: 1}})
	require.NoError(t, err)
	key := func(*http.Request) string { return "" }
	for _, tc := range []struct {
		name string
		next http.Handler
		o    shedhttp.Options
		want error
	}{
		{"nothing", ok, shedhttp.Options{}, shedhttp.ErrNoAdmission},
		{"queue and partition", ok, shedhttp.Options{Queue: q, Partition: p, Key: key}, shedhttp.ErrTwoAdmissions},
		{"bulkhead and queue", ok, shedhttp.Options{Queue: q, Bulkhead: bh}, shedhttp.ErrTwoAdmissions},
		{"two limiters", ok, shedhttp.Options{Limiter: lim, KeyedLimiter: kl, Key: key}, shedhttp.ErrTwoAdmissions},
		{"partition without key", ok, shedhttp.Options{Partition: p}, shedhttp.ErrNoKey},
		{"keyed limiter without key", ok, shedhttp.Options{KeyedLimiter: kl}, shedhttp.ErrNoKey},
		{"key without keyed", ok, shedhttp.Options{Bulkhead: bh, Key: key}, shedhttp.ErrUnused},
		{"priority without queue", ok, shedhttp.Options{Bulkhead: bh, Priority: func(*http.Request) shed.Priority { return shed.Critical }}, shedhttp.ErrUnused},
		{"cost without queue", ok, shedhttp.Options{Bulkhead: bh, Cost: func(*http.Request) time.Duration { return 0 }}, shedhttp.ErrUnused},
		{"ignore without header", ok, shedhttp.Options{Bulkhead: bh, IgnoreBadDeadline: true}, shedhttp.ErrUnused},
		{"nil next", nil, shedhttp.Options{Bulkhead: bh}, shedhttp.ErrUnused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := shedhttp.New(tc.next, tc.o)
			assert.Nil(t, h)
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, err, shedhttp.ErrInvalidConfig)
			assert.ErrorIs(t, err, shed.ErrInvalidConfig)
		})
	}
	// Every bad field is named, not only the first.
	_, err = shedhttp.New(nil, shedhttp.Options{Queue: q, Bulkhead: bh, Partition: p})
	assert.ErrorIs(t, err, shedhttp.ErrTwoAdmissions)
	assert.ErrorIs(t, err, shedhttp.ErrNoKey)
	assert.ErrorContains(t, err, "nil next handler")
}

// TestRateLimitRefusalOverLoopback: a request over a real server that a
// rate limiter refuses gets 429, a Retry-After equal to the time until the
// next token (computed here from the rate and the time between the two
// requests), rounded up to whole seconds, and a JSON body saying the same
// in milliseconds. Two rates give two different headers: never a constant.
func TestRateLimitRefusalOverLoopback(t *testing.T) {
	for _, period := range []time.Duration{7500 * time.Millisecond, 90 * time.Second} {
		t.Run(period.String(), func(t *testing.T) {
			kl, err := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{
				LimiterConfig: shed.LimiterConfig{Rate: float64(time.Second) / float64(period), Burst: 1},
			})
			require.NoError(t, err)
			h := mustNew(t, ok, shedhttp.Options{KeyedLimiter: kl, Key: func(r *http.Request) string { return r.Header.Get("X-Tenant") }})
			srv := httptest.NewServer(h)
			defer srv.Close()
			c := srv.Client()

			before := time.Now()
			resp := get(t, c, srv.URL, map[string]string{"X-Tenant": "tenant-7"})
			require.Equal(t, http.StatusNoContent, resp.StatusCode)
			resp = get(t, c, srv.URL, map[string]string{"X-Tenant": "tenant-7"})
			elapsed := time.Since(before)

			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			secs, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64)
			require.NoError(t, err, "Retry-After %q", resp.Header.Get("Retry-After"))
			// The next token is due one period after the first request
			// took the burst, so the hint lies in (period-elapsed, period].
			lo := int64(math.Ceil((period - elapsed).Seconds()))
			hi := int64(math.Ceil(period.Seconds()))
			assert.GreaterOrEqual(t, secs, max(lo, 1))
			assert.LessOrEqual(t, secs, hi)

			b := decode(t, resp.Body)
			assert.Equal(t, "rate_limited", b.Error)
			assert.Equal(t, "rate_limited", b.Reason)
			assert.Equal(t, "tenant-7", b.Key)
			require.NotNil(t, b.RetryAfterMS)
			assert.Greater(t, *b.RetryAfterMS, (period - elapsed).Milliseconds())
			assert.LessOrEqual(t, *b.RetryAfterMS, period.Milliseconds())
			assert.Equal(t, secs, (*b.RetryAfterMS+999)/1000, "header and body agree")
			assert.Contains(t, b.Message, "rate limited")
		})
	}
}

// TestLimiterWaitRefusal: an unkeyed Limiter waits at most its MaxWait;
// a token due later is refused at once with 429 and the time it is due.
func TestLimiterWaitRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim, err := shed.NewLimiter(shed.LimiterConfig{Rate: 0.4, Burst: 1, MaxWait: 100 * time.Millisecond})
		require.NoError(t, err)
		h := mustNew(t, ok, shedhttp.Options{Limiter: lim})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		require.Equal(t, http.StatusNoContent, w.Code)
		time.Sleep(time.Second) // 0.4 of a token back: 1.5s to go
		w = httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, http.StatusTooManyRequests, w.Code)
		assert.Equal(t, "2", w.Header().Get("Retry-After"))
		b := decode(t, w.Body)
		assert.Equal(t, int64(1500), *b.RetryAfterMS)
	})
}

// TestWaitTimeoutRetryAfter: a request that waited MaxWait for a slot is
// refused 503 with a Retry-After of its wait, rounded up; a full queue
// (no time in the refusal) is refused without one.
func TestWaitTimeoutRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 2500 * time.Millisecond})
		require.NoError(t, err)
		release := make(chan struct{})
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }), shedhttp.Options{Bulkhead: bh})
		go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		synctest.Wait()
		done := make(chan *httptest.ResponseRecorder)
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			done <- w
		}()
		synctest.Wait()
		// The queue (1) is full now.
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Empty(t, w.Header().Values("Retry-After"), "a full queue gives no basis")
		b := decode(t, w.Body)
		assert.Equal(t, "queue_full", b.Reason)
		assert.Nil(t, b.RetryAfterMS)

		w = <-done
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, "3", w.Header().Get("Retry-After"))
		b = decode(t, w.Body)
		assert.Equal(t, "wait_timeout", b.Reason)
		assert.Equal(t, int64(2500), *b.RetryAfterMS)
		close(release)
		synctest.Wait()
		assert.Equal(t, 0, bh.Stats().InFlight)
	})
}

// TestAdaptiveLimitRetryAfter: a standalone adaptive limit's refusal
// carries the time it expects a slot to free (its window's mean latency
// over the calls in flight), and the handler's latency is its sample.
func TestAdaptiveLimitRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		al, err := shed.NewAdaptiveLimit(shed.AdaptiveConfig{MinLimit: 1, MaxLimit: 1, WindowSamples: 1})
		require.NoError(t, err)
		release := make(chan struct{})
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hang" {
				<-release
				return
			}
			time.Sleep(3 * time.Second)
		})
		h := mustNew(t, slow, shedhttp.Options{Adaptive: al})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, http.StatusOK, w.Code)
		st := al.Stats()
		assert.Equal(t, int64(1), st.Samples)
		assert.Equal(t, 3*time.Second, st.RTT, "the handler's latency is the sample")

		go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hang", nil))
		synctest.Wait()
		w = httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		// 3s of latency over 1 call in flight.
		assert.Equal(t, "3", w.Header().Get("Retry-After"))
		b := decode(t, w.Body)
		assert.Equal(t, "limit_reached", b.Reason)
		assert.Equal(t, int64(3000), *b.RetryAfterMS)
		close(release)
		synctest.Wait()
		assert.Equal(t, 0, al.Stats().InFlight)
	})
}

// TestPartitionIsolationOverLoopback: a key whose requests hang holds its
// cap and no more; its next request is refused 503 at once, while the
// other keys' requests keep being served.
func TestPartitionIsolationOverLoopback(t *testing.T) {
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 4, PerKey: 2})
	require.NoError(t, err)
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Zone") == "sick" {
			started.Done()
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})
	h := mustNew(t, hang, shedhttp.Options{Partition: p, Key: func(r *http.Request) string { return r.Header.Get("X-Zone") }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := srv.Client()

	var hung sync.WaitGroup
	for range 2 {
		hung.Go(func() {
			resp := get(t, c, srv.URL, map[string]string{"X-Zone": "sick"})
			assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		})
	}
	started.Wait()
	resp := get(t, c, srv.URL, map[string]string{"X-Zone": "sick"})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	b := decode(t, resp.Body)
	assert.Equal(t, "queue_full", b.Reason)
	assert.Equal(t, "sick", b.Key)
	for i := range 20 {
		zone := []string{"healthy-a", "healthy-b"}[i%2]
		resp := get(t, c, srv.URL, map[string]string{"X-Zone": zone})
		assert.Equal(t, http.StatusNoContent, resp.StatusCode, zone)
	}
	close(release)
	hung.Wait()
	assert.Equal(t, 0, p.Stats().InFlight)
}

// TestClientGoneNeverRuns: a request whose client disconnects while it
// waits for a slot, over a real connection, is dropped: the handler never
// runs for it and its place is not used.
func TestClientGoneNeverRuns(t *testing.T) {
	bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
	require.NoError(t, err)
	release := make(chan struct{})
	var ran atomic.Int64
	var gone atomic.Int64
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		if r.URL.Path == "/hold" {
			<-release
		}
	})
	h := mustNew(t, next, shedhttp.Options{Bulkhead: bh, OnEvent: func(e shedhttp.Event) {
		if e.Kind == shedhttp.Gone {
			assert.ErrorIs(t, e.Err, context.Canceled)
			gone.Add(1)
		}
	}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := srv.Client()

	held := make(chan struct{})
	go func() {
		defer close(held)
		resp := get(t, c, srv.URL+"/hold", nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}()
	waitFor(t, func() bool { return bh.Stats().InFlight == 1 })
	leaveWhileQueued(t, c, srv.URL+"/waiter", bh, h)
	close(release)
	<-held
	assert.Equal(t, int64(1), ran.Load(), "only /hold ran")
	assert.Equal(t, int64(1), gone.Load())
	assert.Equal(t, 0, bh.Stats().InFlight)
}

// TestGoneBeforeAndAfterAdmission: a request whose context is already
// done on arrival, or ends between its admission and the handler, is
// dropped with 499 and its slot released; the handler never runs.
func TestGoneBeforeAndAfterAdmission(t *testing.T) {
	var ran atomic.Int64
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Add(1) })
	var cancelOnAdmit atomic.Pointer[context.CancelFunc]
	bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, OnEvent: func(e shed.Event) {
		if c := cancelOnAdmit.Load(); e.Kind == shed.Admitted && c != nil {
			(*c)()
		}
	}})
	require.NoError(t, err)
	h := mustNew(t, next, shedhttp.Options{Bulkhead: bh})

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	assert.Equal(t, shedhttp.StatusClientClosedRequest, w.Code)

	ctx, cancel = context.WithCancel(t.Context())
	cancelOnAdmit.Store(&cancel)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	assert.Equal(t, shedhttp.StatusClientClosedRequest, w.Code)

	assert.Equal(t, int64(0), ran.Load())
	assert.Equal(t, int64(2), h.Stats().Gone)
	assert.Equal(t, 0, bh.Stats().InFlight, "the slot went back")
}

// TestDeadlineHeaderOverLoopback: the deadline header feeds the queue's
// deadline-aware admission and reaches the handler; a malformed one is
// refused 400 and told to the hook, or, if the caller says so, ignored
// and told to the hook.
func TestDeadlineHeaderOverLoopback(t *testing.T) {
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 1})
	require.NoError(t, err)
	var ran atomic.Int64
	var seen atomic.Int64 // the handler's remaining time, in ms
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		dl, ok := r.Context().Deadline()
		if ok {
			seen.Store(time.Until(dl).Milliseconds())
		} else {
			seen.Store(-1)
		}
	})
	var bad atomic.Int64
	o := shedhttp.Options{
		Queue:          q,
		Cost:           func(*http.Request) time.Duration { return 100 * time.Millisecond },
		DeadlineHeader: "x-timeout", // canonicalised
		OnEvent: func(e shedhttp.Event) {
			if e.Kind == shedhttp.BadDeadline {
				assert.ErrorIs(t, e.Err, shedhttp.ErrBadDeadline)
				bad.Add(1)
			}
		},
	}
	srv := httptest.NewServer(mustNew(t, next, o))
	defer srv.Close()
	c := srv.Client()

	// 50ms left, 100ms of work: refused before it runs.
	resp := get(t, c, srv.URL, map[string]string{"X-Timeout": "50"})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "deadline", decode(t, resp.Body).Reason)
	assert.Empty(t, resp.Header.Values("Retry-After"))
	assert.Equal(t, int64(0), ran.Load())

	resp = get(t, c, srv.URL, map[string]string{"X-Timeout": "1h"})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), ran.Load())
	assert.Greater(t, seen.Load(), int64(59*60*1000), "the handler sees the header's deadline")
	assert.LessOrEqual(t, seen.Load(), int64(60*60*1000))

	resp = get(t, c, srv.URL, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(-1), seen.Load(), "no header, no deadline")

	for _, v := range []string{"abc", "-5", "1.5", "+20", "5 s"} {
		resp = get(t, c, srv.URL, map[string]string{"X-Timeout": v})
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, v)
		b := decode(t, resp.Body)
		assert.Equal(t, "bad_deadline", b.Reason, v)
		assert.Equal(t, "bad_request", b.Error, v)
	}
	assert.Equal(t, int64(2), ran.Load(), "no malformed request ran")
	assert.Equal(t, int64(5), bad.Load())

	o.IgnoreBadDeadline = true
	srv2 := httptest.NewServer(mustNew(t, next, o))
	defer srv2.Close()
	resp = get(t, srv2.Client(), srv2.URL, map[string]string{"X-Timeout": "soon"})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(6), bad.Load(), "ignored, but told")
}

// TestPriorityFromRequest: a Critical request evicts a waiting Sheddable
// one from a full queue; the evicted request is answered 503 evicted.
func TestPriorityFromRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, err := shed.NewQueue(shed.QueueConfig{Workers: 1, MaxQueue: 1, MaxWait: time.Second})
		require.NoError(t, err)
		release := make(chan struct{})
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				<-release
			}
		})
		h := mustNew(t, next, shedhttp.Options{Queue: q, Priority: func(r *http.Request) shed.Priority {
			if r.Header.Get("X-Critical") != "" {
				return shed.Critical
			}
			return shed.Sheddable
		}})
		go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hold", nil))
		synctest.Wait()
		evicted := make(chan *httptest.ResponseRecorder)
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			evicted <- w
		}()
		synctest.Wait()
		time.Sleep(20 * time.Millisecond)
		crit := make(chan *httptest.ResponseRecorder)
		go func() {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("X-Critical", "1")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			crit <- w
		}()
		w := <-evicted
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, "1", w.Header().Get("Retry-After"), "it waited 20ms in vain")
		b := decode(t, w.Body)
		assert.Equal(t, "evicted", b.Reason)
		assert.Equal(t, int64(20), *b.RetryAfterMS)
		close(release)
		assert.Equal(t, http.StatusOK, (<-crit).Code)
	})
}

// TestPanicReleasesSlot: a handler that panics (with any value, or with
// http.ErrAbortHandler) gives its slot back, reports no latency sample,
// and the panic reaches the caller unchanged.
func TestPanicReleasesSlot(t *testing.T) {
	for _, val := range []any{"boom", http.ErrAbortHandler} {
		bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, Adaptive: &shed.AdaptiveConfig{}})
		require.NoError(t, err)
		h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(val) }), shedhttp.Options{Bulkhead: bh})
		assert.PanicsWithValue(t, val, func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
		assert.Equal(t, 0, bh.Stats().InFlight)
		st, _ := bh.AdaptiveStats()
		assert.Equal(t, int64(0), st.Samples)
	}
}

// TestPanicOverLoopback: over a real server, a handler that aborts with
// http.ErrAbortHandler or panics closes the connection (net/http's
// behaviour) and releases its slot, for every kind of admission.
func TestPanicOverLoopback(t *testing.T) {
	newPrims := map[string]func() (shedhttp.Options, func() int){
		"bulkhead": func() (shedhttp.Options, func() int) {
			bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
			return shedhttp.Options{Bulkhead: bh}, func() int { return bh.Stats().InFlight }
		},
		"queue-adaptive": func() (shedhttp.Options, func() int) {
			q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1, Adaptive: &shed.AdaptiveConfig{}})
			return shedhttp.Options{Queue: q}, func() int { return q.Stats().InFlight }
		},
		"partition": func() (shedhttp.Options, func() int) {
			p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1, Adaptive: &shed.AdaptiveConfig{}})
			return shedhttp.Options{Partition: p, Key: func(*http.Request) string { return "k" }}, func() int { return p.Stats().InFlight }
		},
		"adaptive": func() (shedhttp.Options, func() int) {
			al, _ := shed.NewAdaptiveLimit(shed.AdaptiveConfig{MaxLimit: 1, InitialLimit: 1})
			return shedhttp.Options{Adaptive: al}, func() int { return al.Stats().InFlight }
		},
	}
	for name, mk := range newPrims {
		t.Run(name, func(t *testing.T) {
			o, inFlight := mk()
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/abort":
					panic(http.ErrAbortHandler)
				case "/panic":
					panic("boom")
				}
			})
			srv := httptest.NewUnstartedServer(mustNew(t, next, o))
			srv.Config.ErrorLog = discardLog()
			srv.Start()
			defer srv.Close()
			for range 3 {
				for _, path := range []string{"/abort", "/panic"} {
					_, err := srv.Client().Get(srv.URL + path)
					assert.Error(t, err, "net/http closes the connection")
					assert.Equal(t, 0, inFlight())
				}
				resp := get(t, srv.Client(), srv.URL+"/fine", nil)
				assert.Equal(t, http.StatusOK, resp.StatusCode, "the single slot is free")
			}
		})
	}
}

// TestRespondAndStatusOverride: Status and Respond replace the defaults;
// OnEvent sees what was written.
func TestRespondAndStatusOverride(t *testing.T) {
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 2})
	require.NoError(t, err)
	require.NoError(t, p.Pause("blue"))
	var ev shedhttp.Event
	h := mustNew(t, ok, shedhttp.Options{
		Partition: p,
		Key:       func(r *http.Request) string { return r.URL.Path[1:] },
		Status: func(err error) int {
			if errors.Is(err, shed.ErrPaused) {
				return http.StatusForbidden
			}
			return 0 // the default
		},
		Respond: func(w http.ResponseWriter, r *http.Request, rej shedhttp.Rejection) {
			w.Header().Set("X-Shed", rej.Key)
			shedhttp.WriteRejection(w, rej)
		},
		OnEvent: func(e shedhttp.Event) {
			if e.Kind == shedhttp.Refused {
				ev = e
			}
		},
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/blue", nil))
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, "blue", w.Header().Get("X-Shed"))
	assert.Equal(t, "paused", decode(t, w.Body).Reason)
	assert.Equal(t, http.StatusForbidden, ev.Status)
	assert.Equal(t, "blue", ev.Key)
	assert.ErrorIs(t, ev.Err, shed.ErrPaused)
}

// TestAdmitPathAllocatesNothing: with no hook and no deadline header,
// admitting a request allocates nothing, through every primitive, fixed
// or adaptive.
func TestAdmitPathAllocatesNothing(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 4})
	abh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 4, Adaptive: &shed.AdaptiveConfig{}})
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 4})
	aq, _ := shed.NewQueue(shed.QueueConfig{Workers: 4, Adaptive: &shed.AdaptiveConfig{}})
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 4})
	ap, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 4, Adaptive: &shed.AdaptiveConfig{}})
	al, _ := shed.NewAdaptiveLimit(shed.AdaptiveConfig{})
	kl, _ := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{LimiterConfig: shed.LimiterConfig{Rate: 1e9, Burst: 1 << 20}})
	key := func(*http.Request) string { return "k" }
	for name, o := range map[string]shedhttp.Options{
		"bulkhead": {Bulkhead: bh}, "bulkhead-adaptive": {Bulkhead: abh},
		"queue": {Queue: q}, "queue-adaptive": {Queue: aq},
		"partition": {Partition: p, Key: key}, "partition-adaptive": {Partition: ap, Key: key},
		"adaptive": {Adaptive: al}, "keyed-limiter+bulkhead": {KeyedLimiter: kl, Bulkhead: bh, Key: key},
	} {
		h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), o)
		req := httptest.NewRequest("GET", "/", nil)
		w := httptest.NewRecorder()
		assert.Zero(t, testing.AllocsPerRun(100, func() { h.ServeHTTP(w, req) }), name)
	}
}

// leaveWhileQueued sends a GET to url from c that waits in bh's queue,
// cancels it there, and returns once the client has its
// context.Canceled and h has counted the request Gone.
func leaveWhileQueued(t *testing.T, c *http.Client, url string, bh *shed.Bulkhead, h *shedhttp.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, func() bool { return bh.Stats().Waiting == 1 })
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
	waitFor(t, func() bool { return h.Stats().Gone == 1 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30s")
		}
		time.Sleep(time.Millisecond)
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
