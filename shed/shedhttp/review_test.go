package shedhttp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// TestStatusOutOfRangeReportedAsWritten: a Status result outside
// [200, 999] is written as 503, and the Event and the Rejection handed to
// Respond say 503 too, not the value that was not written: a Respond
// that writes rej.Status must not panic (net/http panics below 100) nor
// send a 1xx followed by a 200.
func TestStatusOutOfRangeReportedAsWritten(t *testing.T) {
	for _, bad := range []int{-1, 42, 99, 100, 103, 199, 1000, math.MaxInt} {
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
		bh.Pause()
		var ev shedhttp.Event
		var rejStatus int
		for _, respond := range []bool{false, true} {
			o := shedhttp.Options{
				Bulkhead: bh,
				Status:   func(error) int { return bad },
				OnEvent: func(e shedhttp.Event) {
					if e.Kind == shedhttp.Refused {
						ev = e
					}
				},
			}
			if respond {
				o.Respond = func(w http.ResponseWriter, r *http.Request, rej shedhttp.Rejection) {
					rejStatus = rej.Status
					w.WriteHeader(rej.Status)
				}
			}
			h := mustNew(t, ok, o)
			w := httptest.NewRecorder()
			require.NotPanics(t, func() { h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil)) }, "status %d", bad)
			assert.Equal(t, http.StatusServiceUnavailable, w.Code, "status %d", bad)
			assert.Equal(t, http.StatusServiceUnavailable, ev.Status, "status %d: the event says what was written", bad)
			if respond {
				assert.Equal(t, http.StatusServiceUnavailable, rejStatus, "status %d", bad)
			}
		}
	}
}

// TestZeroHandler: a Handler not built with New (a zero value, or a nil
// pointer) answers 500 saying so, rather than panicking on a nil next
// handler.
func TestZeroHandler(t *testing.T) {
	for name, h := range map[string]*shedhttp.Handler{"zero": {}, "nil": nil} {
		w := httptest.NewRecorder()
		require.NotPanics(t, func() { h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil)) }, name)
		assert.Equal(t, http.StatusInternalServerError, w.Code, name)
		assert.Contains(t, w.Body.String(), "New", name)
		assert.Equal(t, shedhttp.Stats{}, h.Stats(), name)
	}
}

// TestDeadlineHeaderNameMustBeAToken: a DeadlineHeader that no request
// can carry (not an HTTP token) would silently never apply; New refuses
// it.
func TestDeadlineHeaderNameMustBeAToken(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	for _, name := range []string{"X Timeout", "X-Timeout:", "X-Timeout\n", "X-Tïmeout", "(x)", "X-Timeout\x00"} {
		_, err := shedhttp.New(ok, shedhttp.Options{Bulkhead: bh, DeadlineHeader: name})
		assert.ErrorIs(t, err, shedhttp.ErrInvalidConfig, "%q", name)
		if err != nil {
			assert.Contains(t, err.Error(), "DeadlineHeader", "%q", name)
		}
	}
	for _, name := range []string{"x-timeout-ms", "Grpc-Timeout", "X_Timeout", "x!#$%&'*+-.^_`|~9"} {
		_, err := shedhttp.New(ok, shedhttp.Options{Bulkhead: bh, DeadlineHeader: name})
		assert.NoError(t, err, "%q", name)
	}
}

// TestDeadlineRefusalsCounted: a request whose deadline passed after its
// admission but before the handler, or before it arrived, is refused by
// the middleware itself (503, deadline), which no primitive counts; the
// middleware's Stats does.
func TestDeadlineRefusalsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The Bulkhead's hook sleeps past the request's deadline once the
		// slot is taken.
		var sleep atomic.Bool
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, OnEvent: func(e shed.Event) {
			if e.Kind == shed.Admitted && sleep.Load() {
				time.Sleep(time.Second)
			}
		}})
		var ran atomic.Int64
		h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Add(1) }),
			shedhttp.Options{Bulkhead: bh, DeadlineHeader: "X-Timeout"})
		sleep.Store(true)
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Timeout", "500")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, "deadline", decode(t, w.Body).Reason)
		assert.Equal(t, int64(1), h.Stats().Deadline)
		sleep.Store(false)

		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		time.Sleep(time.Second)
		w = httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, int64(2), h.Stats().Deadline)
		assert.Equal(t, int64(0), ran.Load())
		assert.Equal(t, 0, bh.Stats().InFlight)
		assert.Equal(t, int64(0), bh.Stats().Shed.Deadline, "no primitive counted them")
	})
}

// TestDeadlineHeaderAgainstContextDeadline: the earlier of the context's
// deadline and the header's wins, whichever it is, for the handler.
func TestDeadlineHeaderAgainstContextDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
		var left time.Duration
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dl, ok := r.Context().Deadline()
			require.True(t, ok)
			left = time.Until(dl)
		}), shedhttp.Options{Bulkhead: bh, DeadlineHeader: "X-Timeout"})
		for _, tc := range []struct {
			ctx    time.Duration
			header string
			want   time.Duration
		}{
			{time.Second, "3600000", time.Second},
			{time.Second, "9223372036854", time.Second},
			{time.Second, "2562047h", time.Second},
			{time.Hour, "250", 250 * time.Millisecond},
			{time.Hour, "1.5s", 1500 * time.Millisecond},
			{0, "9223372036854", 9223372036854 * time.Millisecond},
		} {
			ctx, cancel := t.Context(), context.CancelFunc(func() {})
			if tc.ctx > 0 {
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
			}
			req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
			req.Header.Set("X-Timeout", tc.header)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			cancel()
			assert.Equal(t, http.StatusOK, w.Code, "%v %q", tc.ctx, tc.header)
			assert.Equal(t, tc.want, left, "%v %q", tc.ctx, tc.header)
		}
	})
}

// TestOddDeadlineHeaders over a real server: odd values are refused 400
// with a body that quotes them safely, and never reach the handler.
func TestOddDeadlineHeaders(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	var ran atomic.Int64
	h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Add(1) }),
		shedhttp.Options{Bulkhead: bh, DeadlineHeader: "x-timeout"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, v := range []string{"-1", "+5", "1e9", "٣٠٠", "１０", "1_000", "5 s", "NaN", "Inf", "0x10", "-0s",
		"9223372036855", "99999999999999999999999", "2562048h", "1.5", "5S", "250,250", "\"250\""} {
		resp := get(t, srv.Client(), srv.URL, map[string]string{"X-Timeout": v})
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%q", v)
		b := decode(t, resp.Body)
		assert.Equal(t, "bad_deadline", b.Reason, "%q", v)
		assert.Empty(t, resp.Header.Values("Retry-After"), "%q", v)
	}
	// Spaces and tabs around a value are not the value.
	for _, v := range []string{" 250 ", "\t250", "250ms\t"} {
		resp := get(t, srv.Client(), srv.URL, map[string]string{"X-Timeout": v})
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%q", v)
	}
	assert.Equal(t, int64(3), ran.Load())
	assert.Equal(t, int64(18), h.Stats().BadDeadline)
}

// TestHugeRetryAfter: a refusal whose next token is centuries away (the
// longest Duration) gives a Retry-After that is positive and rounded up,
// not overflowed, and the same in the body.
func TestHugeRetryAfter(t *testing.T) {
	kl, err := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{LimiterConfig: shed.LimiterConfig{Rate: 1e-300, Burst: 1}})
	require.NoError(t, err)
	h := mustNew(t, ok, shedhttp.Options{KeyedLimiter: kl, Key: func(*http.Request) string { return "k" }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp := get(t, srv.Client(), srv.URL, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp = get(t, srv.Client(), srv.URL, nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	// math.MaxInt64 ns is 9223372036.854775807 s.
	assert.Equal(t, "9223372037", resp.Header.Get("Retry-After"))
	b := decode(t, resp.Body)
	require.NotNil(t, b.RetryAfterMS)
	assert.Equal(t, int64(9223372036855), *b.RetryAfterMS)
	assert.Equal(t, int64(9223372037), shedhttp.RetryAfterSeconds(math.MaxInt64))
	assert.Equal(t, int64(1), shedhttp.RetryAfterSeconds(1))
	assert.Equal(t, int64(0), shedhttp.RetryAfterSeconds(math.MinInt64))
}

// TestRetryAfterEveryKind over a real server on synctest's clock: each
// refusal kind gets the Retry-After computed here from the refusal's own
// inputs, or none where it gives no basis.
func TestRetryAfterEveryKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key := func(r *http.Request) string { return r.URL.Query().Get("k") }
		release := make(chan struct{})
		hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				<-release
			}
		})
		serve := func(h http.Handler, path string) *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			return w
		}
		check := func(name string, w *httptest.ResponseRecorder, status int, reason, header string, ms int64) {
			t.Helper()
			assert.Equal(t, status, w.Code, name)
			assert.Equal(t, header, w.Header().Get("Retry-After"), name)
			b := decode(t, w.Body)
			assert.Equal(t, reason, b.Reason, name)
			if ms == 0 {
				assert.Nil(t, b.RetryAfterMS, name)
			} else if assert.NotNil(t, b.RetryAfterMS, name) {
				assert.Equal(t, ms, *b.RetryAfterMS, name)
			}
		}

		// A keyed rate of 0.4/s: the next token is due in 2.5 s.
		kl, _ := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{LimiterConfig: shed.LimiterConfig{Rate: 0.4, Burst: 1}, MaxKeys: 1})
		h := mustNew(t, ok, shedhttp.Options{KeyedLimiter: kl, Key: key})
		serve(h, "/?k=a")
		time.Sleep(time.Second)
		check("keyed 1s later", serve(h, "/?k=a"), 429, "rate_limited", "2", 1500)
		check("too many keys", serve(h, "/?k=b"), 503, "too_many_keys", "", 0)

		// A Partition key waits 700ms in vain.
		p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1, MaxQueuePerKey: 1, MaxWait: 700 * time.Millisecond})
		h = mustNew(t, hold, shedhttp.Options{Partition: p, Key: key})
		go serve(h, "/hold?k=a")
		synctest.Wait()
		check("partition wait", serve(h, "/?k=a"), 503, "wait_timeout", "1", 700)
		require.NoError(t, p.Pause("c"))
		check("paused key", serve(h, "/?k=c"), 503, "paused", "", 0)

		// A Queue evicts a Sheddable request after 60ms (within its
		// longest wait, Target+Interval) for a Critical one.
		q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1, MaxQueue: 1, MaxWait: time.Hour})
		h = mustNew(t, hold, shedhttp.Options{Queue: q, Priority: func(r *http.Request) shed.Priority {
			if r.URL.Query().Get("k") == "crit" {
				return shed.Critical
			}
			return shed.Sheddable
		}})
		go serve(h, "/hold")
		synctest.Wait()
		evicted := make(chan *httptest.ResponseRecorder)
		go func() { evicted <- serve(h, "/") }()
		time.Sleep(60 * time.Millisecond)
		go serve(h, "/?k=crit")
		check("evicted", <-evicted, 503, "evicted", "1", 60)
		close(release)
		synctest.Wait()
	})
}

// TestOddKeys: a Key of any bytes (empty, NUL, invalid UTF-8, control
// characters, HTML, 64 KiB) gives a refusal body that decodes as JSON
// with the key in it (invalid UTF-8 as U+FFFD), and no header made of it.
func TestOddKeys(t *testing.T) {
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 4})
	big := strings.Repeat("k", 64<<10)
	for _, k := range []string{"", "\x00", "a\x00b", "\xff\xfe", "\u2028</script>&", "\r\nX-Injected: 1", big} {
		require.NoError(t, p.Pause(k))
		h := mustNew(t, ok, shedhttp.Options{Partition: p, Key: func(*http.Request) string { return k }})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		b := decode(t, w.Body)
		assert.Equal(t, "paused", b.Reason)
		// encoding/json, like the body, replaces each invalid byte.
		want, _ := json.Marshal(k)
		var wantKey string
		require.NoError(t, json.Unmarshal(want, &wantKey))
		assert.Equal(t, wantKey, b.Key)
		assert.Empty(t, w.Header().Values("X-Injected"))
	}
}

// TestCallbackPanicsHoldNothing: a Key, Priority or Cost function that
// panics leaves no slot held (the panic goes on to net/http).
func TestCallbackPanicsHoldNothing(t *testing.T) {
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1})
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1})
	lim, _ := shed.NewLimiter(shed.LimiterConfig{Rate: 1e9, Burst: 1 << 20})
	boom := func(*http.Request) string { panic("key") }
	for name, o := range map[string]shedhttp.Options{
		"priority": {Queue: q, Priority: func(*http.Request) shed.Priority { panic("priority") }},
		"cost":     {Queue: q, Limiter: lim, Cost: func(*http.Request) time.Duration { panic("cost") }},
		"key":      {Partition: p, Key: boom},
	} {
		h := mustNew(t, ok, o)
		srv := httptest.NewServer(h)
		srv.Config.ErrorLog = discardLog()
		_, err := srv.Client().Get(srv.URL)
		assert.Error(t, err, name)
		srv.Close()
	}
	assert.Equal(t, 0, q.Stats().InFlight+p.Stats().InFlight)
}

// TestStreamingAndHijackPassThrough: the middleware hands the handler
// net/http's own ResponseWriter, so flushing a stream, a
// ResponseController, and hijacking the connection all work; the slot is
// released when the handler returns.
func TestStreamingAndHijackPassThrough(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, Adaptive: &shed.AdaptiveConfig{WindowSamples: 1}})
	next := make(chan struct{})
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			_, _ = io.WriteString(w, "first\n")
			assert.NoError(t, http.NewResponseController(w).Flush())
			<-next
			_, _ = io.WriteString(w, "second\n")
		case "/hijack":
			conn, rw, err := http.NewResponseController(w).Hijack()
			if !assert.NoError(t, err) {
				return
			}
			defer conn.Close()
			_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
			_ = rw.Flush()
		}
	}), shedhttp.Options{Bulkhead: bh})
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp := get(t, srv.Client(), srv.URL+"/stream", nil)
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "first\n", line, "flushed before the handler returned")
	assert.Equal(t, 1, bh.Stats().InFlight)
	close(next)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "second\n", string(rest))

	resp = get(t, srv.Client(), srv.URL+"/hijack", nil)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "hi", string(b))
	waitFor(t, func() bool { return bh.Stats().InFlight == 0 })
	s, _ := bh.AdaptiveStats()
	assert.Equal(t, int64(2), s.Samples)
}

// TestHTTP2ClientCancelWhileQueued: over HTTP/2 (TLS), a request whose
// client cancels its stream while it waits for a slot never runs, is
// counted Gone, and frees its place; the connection keeps serving.
func TestHTTP2ClientCancelWhileQueued(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
	release := make(chan struct{})
	var ran atomic.Int64
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		if r.URL.Path == "/hold" {
			<-release
		}
	}), shedhttp.Options{Bulkhead: bh})
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := srv.Client()

	held := make(chan struct{})
	go func() {
		defer close(held)
		resp := get(t, c, srv.URL+"/hold", nil)
		assert.Equal(t, 2, resp.ProtoMajor)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}()
	waitFor(t, func() bool { return bh.Stats().InFlight == 1 })
	leaveWhileQueued(t, c, srv.URL+"/waiter", bh, h)
	assert.Equal(t, 0, bh.Stats().Waiting)
	close(release)
	<-held
	resp := get(t, c, srv.URL+"/after", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(2), ran.Load(), "/hold and /after ran, /waiter did not")
	assert.Equal(t, 0, bh.Stats().InFlight)
}

// TestHeadAndUnreadBodyRefusals: a refused HEAD gets the status and the
// Retry-After without a body; a refused POST whose body the handler never
// read leaves the keep-alive connection usable for the next request.
func TestHeadAndUnreadBodyRefusals(t *testing.T) {
	lim, _ := shed.NewLimiter(shed.LimiterConfig{Rate: 0.01, Burst: 1})
	h := mustNew(t, ok, shedhttp.Options{Limiter: lim})
	srv := httptest.NewUnstartedServer(h)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := srv.Client()
	resp, err := c.Head(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	took := time.Now() // the token was taken before this
	resp, err = c.Head(srv.URL)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Empty(t, b)
	// A token every 100 s, the last taken at most time.Since(took) ago.
	ra, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64)
	require.NoError(t, err)
	assert.LessOrEqual(t, ra, int64(100))
	assert.GreaterOrEqual(t, ra, int64(100-time.Since(took).Seconds()))
	for range 3 {
		resp, err = c.Post(srv.URL, "application/octet-stream", strings.NewReader(strings.Repeat("x", 64<<10)))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	}
	assert.Equal(t, int64(1), conns.Load(), "one keep-alive connection for all")
}

// TestAdaptiveRefusalBeforeMeasurement: an adaptive limit reached before
// it has measured the handler's latency gives no basis for a hint: no
// Retry-After, as documented, rather than a made-up one.
func TestAdaptiveRefusalBeforeMeasurement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		al, _ := shed.NewAdaptiveLimit(shed.AdaptiveConfig{MinLimit: 1, MaxLimit: 1, WindowSamples: 1})
		release := make(chan struct{})
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }), shedhttp.Options{Adaptive: al})
		go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		synctest.Wait()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Empty(t, w.Header().Values("Retry-After"))
		b := decode(t, w.Body)
		assert.Equal(t, "limit_reached", b.Reason)
		assert.Nil(t, b.RetryAfterMS)
		close(release)
		synctest.Wait()
	})
}

// TestServerCloseReleasesSlots: closing the server's connections while
// one request runs and another waits ends both; no slot is left held.
func TestServerCloseReleasesSlots(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour,
		Adaptive: &shed.AdaptiveConfig{WindowSamples: 1}})
	var ran atomic.Int64
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		<-r.Context().Done()
	}), shedhttp.Options{Bulkhead: bh})
	srv := httptest.NewServer(h)
	done := make(chan struct{}, 2)
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			if resp, err := srv.Client().Get(srv.URL); err == nil {
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, func() bool { s := bh.Stats(); return s.InFlight == 1 && s.Waiting == 1 })
	srv.CloseClientConnections()
	srv.Close()
	<-done
	<-done
	// The waiter is dropped (Gone) if net/http noticed its connection
	// close before the running handler's slot freed, and otherwise runs
	// and returns at once, its context done.
	waitFor(t, func() bool { return h.Stats().Gone+ran.Load() == 2 })
	assert.LessOrEqual(t, h.Stats().Gone, int64(1))
	s := bh.Stats()
	assert.Equal(t, 0, s.InFlight+s.Waiting)
	ast, _ := bh.AdaptiveStats()
	assert.Equal(t, int64(0), ast.Samples, "a client gone mid-handler is no sample")
}

// TestLargeUnreadBodyRefused: a refusal of a POST whose body is far larger
// than net/http drains (256 KiB) still reaches the client, which is
// writing its body meanwhile; the server then closes that connection
// rather than read the body, and the next request gets a new one.
func TestLargeUnreadBodyRefused(t *testing.T) {
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1})
	require.NoError(t, p.Pause("k"))
	var ran atomic.Int64
	h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Add(1) }),
		shedhttp.Options{Partition: p, Key: func(*http.Request) string { return "k" }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for range 2 {
		resp, err := srv.Client().Post(srv.URL, "application/octet-stream", strings.NewReader(strings.Repeat("x", 2<<20)))
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "paused", decode(t, resp.Body).Reason)
		resp.Body.Close()
	}
	assert.Equal(t, int64(0), ran.Load())
}

// TestTypedNilNextRefused: a next handler that is a typed nil (a nil
// *http.ServeMux, a nil http.HandlerFunc) would panic on every admitted
// request; New refuses it as it refuses an untyped nil.
func TestTypedNilNextRefused(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	var mux *http.ServeMux
	for name, next := range map[string]http.Handler{
		"nil *ServeMux": mux, "nil HandlerFunc": http.HandlerFunc(nil),
	} {
		h, err := shedhttp.New(next, shedhttp.Options{Bulkhead: bh})
		assert.Nil(t, h, name)
		assert.ErrorIs(t, err, shedhttp.ErrUnused, name)
		assert.ErrorContains(t, err, "nil next handler", name)
	}
}

// TestHTTP1UnreadBodyDepartureUnseen pins the limit ServeHTTP documents:
// over HTTP/1.1, a waiting POST whose client closes its connection is not
// seen gone until its body is read, so it runs when admitted, and its
// context ends once the handler has read the body.
func TestHTTP1UnreadBodyDepartureUnseen(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
	release := make(chan struct{})
	got := make(chan string, 1)
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
			return
		}
		b, _ := io.ReadAll(r.Body)
		<-r.Context().Done()
		got <- string(b)
	}), shedhttp.Options{Bulkhead: bh})
	srv := httptest.NewServer(h)
	defer srv.Close()
	held := make(chan struct{})
	go func() {
		defer close(held)
		get(t, srv.Client(), srv.URL+"/hold", nil)
	}()
	waitFor(t, func() bool { return bh.Stats().InFlight == 1 })
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	_, err = io.WriteString(conn, "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	require.NoError(t, err)
	waitFor(t, func() bool { return bh.Stats().Waiting == 1 })
	require.NoError(t, conn.Close())
	close(release)
	<-held
	assert.Equal(t, "hello", <-got)
	assert.Equal(t, int64(0), h.Stats().Gone)
	waitFor(t, func() bool { return bh.Stats().InFlight == 0 })
}

// TestConcurrentLoopback: many clients at once over loopback, through an
// adaptive Partition behind a Limiter, with departures, deadline headers
// and panics mixed in (run under -race): no key ever has more handlers
// running than its cap, every request is answered, and nothing is held
// afterwards.
func TestConcurrentLoopback(t *testing.T) {
	const perKey = 2
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 2 * perKey, PerKey: perKey, MaxQueuePerKey: 2,
		MaxWait: 20 * time.Millisecond, Adaptive: &shed.AdaptiveConfig{MinLimit: 1, MaxLimit: perKey, WindowSamples: 4}})
	lim, _ := shed.NewLimiter(shed.LimiterConfig{Rate: 5000, Burst: 10, MaxWait: 5 * time.Millisecond})
	var running [2]atomic.Int64
	var over atomic.Int64
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.URL.Query().Get("k")
		c := &running[k[0]-'a']
		if c.Add(1) > perKey {
			over.Add(1)
		}
		defer c.Add(-1)
		time.Sleep(time.Millisecond)
		if r.URL.Query().Has("panic") {
			panic(http.ErrAbortHandler)
		}
	}), shedhttp.Options{Partition: p, Limiter: lim, DeadlineHeader: "X-Timeout",
		Key: func(r *http.Request) string { return r.URL.Query().Get("k") }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	var answered, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				url := srv.URL + "/?k=" + string(rune('a'+(g+i)%2))
				if i%7 == 3 {
					url += "&panic"
				}
				ctx, cancel := context.WithCancel(t.Context())
				if i%5 == 2 {
					time.AfterFunc(time.Duration(i%3)*time.Millisecond, cancel)
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				if i%4 == 1 {
					req.Header.Set("X-Timeout", strconv.Itoa(i%6))
				}
				resp, err := srv.Client().Do(req)
				cancel()
				if err != nil {
					failed.Add(1) // a departure, or a panic's aborted connection
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200, 429, 503:
					answered.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(200), answered.Load()+failed.Load())
	assert.Equal(t, int64(0), over.Load(), "a key ran more handlers than its cap")
	waitFor(t, func() bool { s := p.Stats(); return s.InFlight == 0 && s.Waiting == 0 })
}

// TestRespondWritingNothing: a Respond that returns without writing a
// status (it only sets a header, say) would let net/http answer the
// refused request 200 OK; the middleware then writes the default answer,
// keeping Respond's headers. A Respond that flushes through a
// ResponseController still can.
func TestRespondWritingNothing(t *testing.T) {
	bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	bh.Pause()
	flushErr := make(chan error, 1)
	h := mustNew(t, ok, shedhttp.Options{Bulkhead: bh,
		Respond: func(w http.ResponseWriter, r *http.Request, rej shedhttp.Rejection) {
			w.Header().Set("X-Refused-By", "edge")
			switch r.URL.Path {
			case "/flush":
				w.WriteHeader(http.StatusTeapot)
				flushErr <- http.NewResponseController(w).Flush()
			case "/flush-only":
				w.(http.Flusher).Flush() // commits a 200: Respond's choice
			case "/hijack":
				conn, rw, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_, _ = rw.WriteString("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
					_ = rw.Flush()
					conn.Close()
				}
			}
		}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp := get(t, srv.Client(), srv.URL, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "edge", resp.Header.Get("X-Refused-By"))
	assert.Equal(t, "paused", decode(t, resp.Body).Reason)
	resp = get(t, srv.Client(), srv.URL+"/flush", nil)
	assert.Equal(t, http.StatusTeapot, resp.StatusCode)
	assert.NoError(t, <-flushErr)
	resp = get(t, srv.Client(), srv.URL+"/flush-only", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Empty(t, b, "no rejection body after a committed status")
	resp = get(t, srv.Client(), srv.URL+"/hijack", nil)
	assert.Equal(t, http.StatusTeapot, resp.StatusCode)
}
