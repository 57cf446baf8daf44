package shedhttp_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// TestZeroPrimitiveRefusedAtNew: a primitive not built with its
// constructor is a configuration error at New, not a 500 on every
// request.
func TestZeroPrimitiveRefusedAtNew(t *testing.T) {
	for name, o := range map[string]shedhttp.Options{
		"queue":     {Queue: &shed.Queue{}},
		"bulkhead":  {Bulkhead: &shed.Bulkhead{}},
		"partition": {Partition: &shed.Partition[string]{}, Key: func(*http.Request) string { return "" }},
		"adaptive":  {Adaptive: &shed.AdaptiveLimit{}},
	} {
		_, err := shedhttp.New(ok, o)
		assert.ErrorIs(t, err, shedhttp.ErrInvalidConfig, name)
	}
}

// TestDeadlineHeaderEdges: "0" leaves no time, so the request is refused
// (503 deadline) and never runs, for every primitive; the longest value
// admits.
func TestDeadlineHeaderEdges(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1})
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1})
	lim, _ := shed.NewLimiter(shed.LimiterConfig{Rate: 1e6})
	key := func(*http.Request) string { return "k" }
	for name, o := range map[string]shedhttp.Options{
		"bulkhead": {Bulkhead: bh}, "queue": {Queue: q}, "partition": {Partition: p, Key: key}, "limiter": {Limiter: lim},
	} {
		var ran atomic.Int64
		o.DeadlineHeader = "X-Timeout"
		h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Add(1) }), o)
		for _, v := range []string{"0", "0s"} {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("X-Timeout", v)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			assert.Equal(t, http.StatusServiceUnavailable, w.Code, name)
			assert.Equal(t, "deadline", decode(t, w.Body).Reason, name)
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Add("X-Timeout", "5s")
		req.Header.Add("X-Timeout", "5s")
		w0 := httptest.NewRecorder()
		h.ServeHTTP(w0, req)
		assert.Equal(t, http.StatusBadRequest, w0.Code, name+": a repeated header is ambiguous")
		req = httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Timeout", "9223372036854")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		assert.Equal(t, http.StatusOK, w.Code, name)
		assert.Equal(t, int64(1), ran.Load(), name)
	}
	assert.Equal(t, 0, bh.Stats().InFlight+q.Stats().InFlight+p.Stats().InFlight)
}

// TestClientGoneWhileWaitingForToken: a request whose client leaves
// while it waits for a rate limiter's token never runs.
func TestClientGoneWhileWaitingForToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim, _ := shed.NewLimiter(shed.LimiterConfig{Rate: 1, Burst: 1, MaxWait: 5 * time.Second})
		var ran atomic.Int64
		h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Add(1) }), shedhttp.Options{Limiter: lim})
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		w := serveUntilGone(t, h, 500*time.Millisecond)
		assert.Equal(t, shedhttp.StatusClientClosedRequest, w.Code)
		assert.Equal(t, int64(1), ran.Load())
		assert.Equal(t, int64(1), h.Stats().Gone)
	})
}

// TestHookPanicsReleaseSlot: an OnEvent hook that panics on Admitted (or
// on Gone) leaves no slot held.
func TestHookPanicsReleaseSlot(t *testing.T) {
	for _, adaptive := range []*shed.AdaptiveConfig{nil, {}} {
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, Adaptive: adaptive})
		h := mustNew(t, ok, shedhttp.Options{Bulkhead: bh, OnEvent: func(e shedhttp.Event) { panic(e.Kind.String()) }})
		assert.PanicsWithValue(t, "admitted", func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.PanicsWithValue(t, "gone", func() {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx))
		})
		assert.Equal(t, 0, bh.Stats().InFlight)
	}
}

// TestAdaptiveSamples: with an adaptive Bulkhead, Queue and Partition,
// each request that ran reports one sample of the handler's latency; a
// request whose client left mid-handler reports none, and one whose
// deadline passed mid-handler reports a drop.
func TestAdaptiveSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 4, Adaptive: &shed.AdaptiveConfig{WindowSamples: 1}})
		q, _ := shed.NewQueue(shed.QueueConfig{Workers: 4, Adaptive: &shed.AdaptiveConfig{WindowSamples: 1}})
		p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 4, PerKey: 4, Adaptive: &shed.AdaptiveConfig{WindowSamples: 1}})
		stats := map[string]func() shed.AdaptiveStats{
			"bulkhead":  func() shed.AdaptiveStats { s, _ := bh.AdaptiveStats(); return s },
			"queue":     func() shed.AdaptiveStats { s, _ := q.AdaptiveStats(); return s },
			"partition": func() shed.AdaptiveStats { s, _ := p.AdaptiveStatsFor("k"); return s },
		}
		opts := map[string]shedhttp.Options{
			"bulkhead": {Bulkhead: bh}, "queue": {Queue: q},
			"partition": {Partition: p, Key: func(*http.Request) string { return "k" }},
		}
		for name, o := range opts {
			o.DeadlineHeader = "X-Timeout"
			var cancelMid context.CancelFunc
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(40 * time.Millisecond)
				if r.URL.Path == "/leave" {
					cancelMid()
				}
			}), o)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			s := stats[name]()
			assert.Equal(t, int64(1), s.Samples, name)
			assert.Equal(t, 40*time.Millisecond, s.RTT, name)

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cancelMid = cancel
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/leave", nil).WithContext(ctx))
			assert.Equal(t, int64(1), stats[name]().Samples, name+": a client gone mid-handler is no sample")

			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("X-Timeout", "10ms")
			h.ServeHTTP(httptest.NewRecorder(), req)
			s = stats[name]()
			assert.Equal(t, int64(2), s.Samples, name)
			assert.Equal(t, int64(1), s.Drops, name+": the deadline passed while it ran")
		}
		assert.Equal(t, 0, bh.Stats().InFlight+q.Stats().InFlight+p.Stats().InFlight)
	})
}

// TestRejectionCarriesRefusal: the Event and Rejection carry the refusal
// itself, so a caller can read its numbers.
func TestRejectionCarriesRefusal(t *testing.T) {
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1})
	require.NoError(t, p.Pause("k"))
	var got *shed.Refusal
	h := mustNew(t, ok, shedhttp.Options{Partition: p, Key: func(*http.Request) string { return "k" },
		Respond: func(w http.ResponseWriter, r *http.Request, rej shedhttp.Rejection) {
			got, _ = rej.Err.(*shed.Refusal)
			shedhttp.WriteRejection(w, rej)
		}})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	require.NotNil(t, got)
	assert.Equal(t, "k", got.Key)
}

// TestQueueFullRetryAfterFromLearnedLatency: a full queue's refusal counts
// requests, not time; with an adaptive limit the middleware knows the
// handler's mean latency, so it sends the time a slot is expected to free
// (mean latency over the limit), as an AdaptiveLimit's own refusal does.
// Without an adaptive limit it sends none.
func TestQueueFullRetryAfterFromLearnedLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const latency = 3 * time.Second
		adaptive := &shed.AdaptiveConfig{WindowSamples: 1, MinLimit: 2}
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 2, Adaptive: adaptive})
		q, _ := shed.NewQueue(shed.QueueConfig{Workers: 2, MaxQueue: 1, Adaptive: adaptive})
		p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 2, PerKey: 2, Adaptive: adaptive})
		plain, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 2})
		key := func(*http.Request) string { return "k" }
		for name, o := range map[string]shedhttp.Options{
			"bulkhead": {Bulkhead: bh}, "queue": {Queue: q}, "partition": {Partition: p, Key: key}, "plain": {Bulkhead: plain},
		} {
			release := make(chan struct{})
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hold" {
					<-release
					return
				}
				time.Sleep(latency)
			}), o)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			fill := 2
			if name == "queue" {
				fill = 3 // two workers and the queue's one place
			}
			for range fill {
				go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hold", nil))
			}
			synctest.Wait()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			assert.Equal(t, http.StatusServiceUnavailable, w.Code, name)
			b := decode(t, w.Body)
			assert.Equal(t, "queue_full", b.Reason, name)
			if name == "plain" {
				assert.Empty(t, w.Header().Values("Retry-After"), name)
				assert.Nil(t, b.RetryAfterMS, name)
			} else {
				// One 3s sample, a limit of 2: a slot in 1.5s.
				assert.Equal(t, "2", w.Header().Get("Retry-After"), name)
				if assert.NotNil(t, b.RetryAfterMS, name) {
					assert.Equal(t, int64(1500), *b.RetryAfterMS, name)
				}
			}
			close(release)
			synctest.Wait()
		}
	})
}

// TestClientGoneWhileQueuedEveryPrimitive: for every primitive that
// queues, a request whose client leaves while it waits is answered 499,
// never runs, and leaves the primitive's counts as they were.
func TestClientGoneWhileQueuedEveryPrimitive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 4, MaxWait: time.Minute})
		q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1, MaxWait: time.Minute})
		p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1, MaxQueuePerKey: 4, MaxWait: time.Minute})
		inFlight := map[string]func() int{
			"bulkhead": func() int { return bh.Stats().InFlight }, "queue": func() int { return q.Stats().InFlight },
			"partition": func() int { return p.Stats().InFlight },
		}
		for name, o := range map[string]shedhttp.Options{
			"bulkhead": {Bulkhead: bh}, "queue": {Queue: q}, "partition": {Partition: p, Key: func(*http.Request) string { return "k" }},
		} {
			var ran atomic.Int64
			release := make(chan struct{})
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ran.Add(1)
				if r.URL.Path == "/hold" {
					<-release
				}
			}), o)
			go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hold", nil))
			synctest.Wait()
			// Within a Queue's longest wait, min(MaxWait, Target+Interval).
			w := serveUntilGone(t, h, 50*time.Millisecond)
			assert.Equal(t, shedhttp.StatusClientClosedRequest, w.Code, name)
			assert.Equal(t, int64(1), h.Stats().Gone, name)
			close(release)
			synctest.Wait()
			assert.Equal(t, int64(1), ran.Load(), name+": only /hold ran")
			assert.Equal(t, 0, inFlight[name](), name)
			// The slot is free for the next request.
			w = httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			assert.Equal(t, http.StatusOK, w.Code, name)
		}
	})
}

// TestExtremeCost: a declared cost of the longest duration never runs a
// request with a deadline, and is harmless without one.
func TestExtremeCost(t *testing.T) {
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1})
	h := mustNew(t, ok, shedhttp.Options{Queue: q, DeadlineHeader: "X-Timeout",
		Cost:     func(*http.Request) time.Duration { return math.MaxInt64 },
		Priority: func(*http.Request) shed.Priority { return 200 }})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Timeout", "9223372036854")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "deadline", decode(t, w.Body).Reason)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusNoContent, w.Code)
	assert.Equal(t, 0, q.Stats().InFlight)
}

// TestZeroLimiterIs500: a Limiter not built with NewLimiter (which New
// cannot tell from a drained one) answers 500 with a message saying so,
// and never runs the handler.
func TestZeroLimiterIs500(t *testing.T) {
	var ran atomic.Int64
	h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Add(1) }), shedhttp.Options{Limiter: &shed.Limiter{}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	b := decode(t, w.Body)
	assert.Equal(t, "internal", b.Error)
	assert.Contains(t, b.Message, "NewLimiter")
	assert.Equal(t, int64(0), ran.Load())
}

// serveUntilGone serves a GET / whose client goes away after d (of a
// synctest bubble's time), and returns its recorder once ServeHTTP has
// returned.
func serveUntilGone(t *testing.T, h http.Handler, d time.Duration) *httptest.ResponseRecorder {
	ctx, cancel := context.WithCancel(t.Context())
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	}()
	time.Sleep(d)
	cancel()
	<-done
	return w
}
