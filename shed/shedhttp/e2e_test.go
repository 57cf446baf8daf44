package shedhttp_test

// End-to-end tests: a backoffhttp client against a shedhttp server over
// real loopback, for the "Done when" list.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// e2eServer is a shedhttp server on loopback in front of a handler that
// counts its runs; arrivals counts every request that reached the server.
type e2eServer struct {
	srv      *httptest.Server
	arrivals atomic.Int64
	runs     atomic.Int64
	lim      *shed.Limiter
}

// newLimited serves through a Limiter of rate events per second (burst 1)
// that never waits: a request finding no token is refused with 429 and the
// time the next token is due.
func newLimited(t *testing.T, rate float64, h2 bool) *e2eServer {
	t.Helper()
	lim, err := shed.NewLimiter(shed.LimiterConfig{Rate: rate, Burst: 1, MaxWait: time.Nanosecond})
	require.NoError(t, err)
	s := &e2eServer{lim: lim}
	inner := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.runs.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}), shedhttp.Options{Limiter: lim})
	s.start(t, inner, h2)
	return s
}

func (s *e2eServer) start(t *testing.T, h http.Handler, h2 bool) {
	t.Helper()
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.arrivals.Add(1)
		if h2 && r.ProtoMajor != 2 {
			http.Error(w, "not HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		h.ServeHTTP(w, r)
	}))
	if h2 {
		s.srv.EnableHTTP2 = true
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(s.srv.Close)
}

// countingTransport counts the response bodies its base returns and how
// many of them were closed.
type countingTransport struct {
	base           http.RoundTripper
	opened, closed atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if resp != nil && resp.Body != nil {
		c.opened.Add(1)
		resp.Body = &countedBody{ReadCloser: resp.Body, n: &c.closed}
	}
	return resp, err
}

type countedBody struct {
	io.ReadCloser
	once sync.Once
	n    *atomic.Int64
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.n.Add(1) })
	return b.ReadCloser.Close()
}

// client returns a backoffhttp client for s over a counting transport.
func (s *e2eServer) client(t *testing.T, cfg backoffhttp.Config) (*http.Client, *countingTransport) {
	t.Helper()
	base := s.srv.Client().Transport
	ct := &countingTransport{base: base}
	cfg.Base = ct
	tr, err := backoffhttp.New(cfg)
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, ct
}

// hints returns the retry hint a refusal's headers carry: the precise one
// (Retry-After-Ms) and the standard one (Retry-After).
func hints(t *testing.T, h http.Header) (precise, whole time.Duration) {
	t.Helper()
	ms, err := strconv.ParseInt(h.Get(shedhttp.RetryAfterMsHeader), 10, 64)
	require.NoError(t, err, "Retry-After-Ms %q", h.Get(shedhttp.RetryAfterMsHeader))
	s, err := strconv.ParseInt(h.Get("Retry-After"), 10, 64)
	require.NoError(t, err, "Retry-After %q", h.Get("Retry-After"))
	return time.Duration(ms) * time.Millisecond, time.Duration(s) * time.Second
}

// TestE2EHeaderNamesAgree: both sides name the refusal signal and the
// precise hint alike.
func TestE2EHeaderNamesAgree(t *testing.T) {
	assert.Equal(t, backoffhttp.RefusedHeader, shedhttp.RefusedHeader)
	assert.Equal(t, backoffhttp.RetryAfterMsHeader, shedhttp.RetryAfterMsHeader)
	assert.Equal(t, http.CanonicalHeaderKey(shedhttp.RefusedHeader), shedhttp.RefusedHeader)
	assert.Equal(t, http.CanonicalHeaderKey(shedhttp.RetryAfterMsHeader), shedhttp.RetryAfterMsHeader)
}

// TestE2ERetryAfterHonoured: a refused request carries a Retry-After
// (whole seconds, rounded up) and a precise Retry-After-Ms no longer than
// it, and the client waits at least the precise hint before its retry, not
// the whole second the standard header rounds it up to.
func TestE2ERetryAfterHonoured(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run("h2="+strconv.FormatBool(h2), func(t *testing.T) {
			// A token every ~909ms: the first attempt, sent at once, is
			// refused even on a slow machine, with a hint under a second.
			s := newLimited(t, 1.1, h2)
			var (
				mu       sync.Mutex
				attempts []backoffhttp.Attempt
				refusal  http.Header
				sent     []time.Time
			)
			c, ct := s.client(t, backoffhttp.Config{
				Policy: backoff.Policy{Base: time.Millisecond, Cap: time.Millisecond},
				OnAttempt: func(a backoffhttp.Attempt) {
					mu.Lock()
					defer mu.Unlock()
					attempts = append(attempts, a)
				},
			})
			ct.base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				sent = append(sent, time.Now())
				mu.Unlock()
				resp, err := s.srv.Client().Transport.RoundTrip(r)
				if err == nil && resp.StatusCode == http.StatusTooManyRequests {
					mu.Lock()
					refusal = resp.Header.Clone()
					mu.Unlock()
				}
				return resp, err
			})
			require.True(t, s.lim.Allow()) // the next token is 100ms away
			resp, err := c.Get(s.srv.URL)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			if h2 {
				assert.Equal(t, 2, resp.ProtoMajor)
			}
			require.Len(t, attempts, 2)
			require.NotNil(t, refusal)
			assert.Equal(t, "rate_limited", refusal.Get(shedhttp.RefusedHeader))
			precise, whole := hints(t, refusal)
			assert.Positive(t, precise)
			assert.LessOrEqual(t, precise, 910*time.Millisecond)
			assert.Equal(t, time.Second, whole)
			assert.Equal(t, http.StatusTooManyRequests, attempts[0].StatusCode)
			assert.Equal(t, precise, attempts[0].Wait, "the wait is the precise hint, not the whole second")
			assert.GreaterOrEqual(t, sent[1].Sub(sent[0]), precise)
			assert.Equal(t, int64(1), s.runs.Load())
			assert.Equal(t, ct.opened.Load(), ct.closed.Load())
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestE2EPostRefusedBeforeRunning: a POST without an idempotency key that
// shedhttp refuses is handed back, not retried, unless the caller opts in
// with RetryRefused: the server's Stormguard-Refused header says its
// handler did not run, so the retry is safe, and it runs the handler once.
func TestE2EPostRefusedBeforeRunning(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		for _, optIn := range []bool{false, true} {
			t.Run("h2="+strconv.FormatBool(h2)+"/optIn="+strconv.FormatBool(optIn), func(t *testing.T) {
				s := newLimited(t, 2, h2) // a token every 500ms
				c, ct := s.client(t, backoffhttp.Config{RetryRefused: optIn})
				require.True(t, s.lim.Allow())
				resp, err := c.Post(s.srv.URL, "text/plain", strings.NewReader("charge 10"))
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if optIn {
					assert.Equal(t, http.StatusOK, resp.StatusCode)
					assert.Equal(t, int64(2), s.arrivals.Load())
				} else {
					assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
					assert.Equal(t, "rate_limited", resp.Header.Get(shedhttp.RefusedHeader))
					assert.Equal(t, int64(1), s.arrivals.Load())
				}
				assert.LessOrEqual(t, s.runs.Load(), int64(1), "a POST ran twice")
				assert.Equal(t, ct.opened.Load(), ct.closed.Load())
			})
		}
	}
}

// TestE2EForgedRefusalNotTrusted: a server that is not shedhttp (or a
// proxy) sending Stormguard-Refused on a 503 after its handler ran cannot
// make a POST be sent twice unless the caller opted in.
func TestE2EForgedRefusalNotTrusted(t *testing.T) {
	var runs atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set(shedhttp.RefusedHeader, "queue_full")
		w.Header().Set(shedhttp.RetryAfterMsHeader, "1")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tr, err := backoffhttp.New(backoffhttp.Config{Base: srv.Client().Transport})
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post(srv.URL, "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, int64(1), runs.Load())
}

// TestE2E503Refusal: a full Bulkhead is a 503 with Stormguard-Refused
// queue_full and no Retry-After (a full queue without an adaptive limit
// gives no basis); a POST refused so is retried only with RetryRefused,
// after the policy's own wait.
func TestE2E503Refusal(t *testing.T) {
	bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	require.NoError(t, err)
	var runs atomic.Int64
	s := &e2eServer{}
	s.start(t, mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusOK)
	}), shedhttp.Options{Bulkhead: bh}), false)
	for _, optIn := range []bool{false, true} {
		require.NoError(t, bh.Acquire(context.Background()))
		var statuses []int
		c, ct := s.client(t, backoffhttp.Config{
			RetryRefused: optIn,
			Policy:       backoff.Policy{Base: time.Millisecond, Cap: time.Millisecond},
			OnAttempt: func(a backoffhttp.Attempt) {
				statuses = append(statuses, a.StatusCode)
				if a.N == 1 {
					bh.Release() // the retry finds a slot
				}
			},
		})
		resp, err := c.Post(s.srv.URL, "text/plain", strings.NewReader("x"))
		require.NoError(t, err)
		assert.Empty(t, resp.Header.Get("Retry-After"))
		_ = resp.Body.Close()
		if optIn {
			assert.Equal(t, []int{503, 200}, statuses)
		} else {
			assert.Equal(t, []int{503}, statuses)
			assert.Equal(t, "queue_full", resp.Header.Get(shedhttp.RefusedHeader))
			bh.Release()
		}
		assert.Equal(t, ct.opened.Load(), ct.closed.Load())
	}
	assert.Equal(t, int64(1), runs.Load())
}

// TestE2EStopsAtDeadline: a refusal whose hint ends past the caller's
// deadline is handed back at once, after one attempt, with the deadline as
// the reason, instead of a wait the deadline would cut.
func TestE2EStopsAtDeadline(t *testing.T) {
	s := newLimited(t, 0.1, false) // a token every 10s
	var giveUp error
	var n int
	c, ct := s.client(t, backoffhttp.Config{OnAttempt: func(a backoffhttp.Attempt) { n, giveUp = a.N, a.GiveUp }})
	require.True(t, s.lim.Allow())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.NoError(t, ctx.Err(), "returned at once, well before the deadline")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, 1, n)
	assert.ErrorIs(t, giveUp, backoff.ErrDeadline)
	assert.Equal(t, int64(1), s.arrivals.Load())
	assert.Equal(t, ct.opened.Load(), ct.closed.Load())
}

// TestE2EBudgetUnderRefusalStorm: many clients sharing one Budget against
// a server that refuses almost everything: the retries the server sees are
// exactly those the budget admitted, within its bound, and every body the
// transport opened was closed.
func TestE2EBudgetUnderRefusalStorm(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run("h2="+strconv.FormatBool(h2), func(t *testing.T) {
			s := newLimited(t, 1000, h2) // a token every 1ms, burst 1
			const ratio, maxTokens = 0.1, 5
			b, err := backoff.NewBudget(backoff.BudgetConfig{Ratio: ratio, NoFloor: true, MaxTokens: maxTokens})
			require.NoError(t, err)
			c, ct := s.client(t, backoffhttp.Config{
				Budget: b,
				Policy: backoff.Policy{Base: time.Millisecond, Cap: time.Millisecond, MaxAttempts: 4},
			})
			const workers, each = 8, 25
			var wg sync.WaitGroup
			var requests atomic.Int64
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						requests.Add(1)
						resp, err := c.Get(s.srv.URL)
						if !assert.NoError(t, err) {
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
					}
				}()
			}
			wg.Wait()
			st := b.Stats()
			assert.Equal(t, requests.Load()+st.Retries, s.arrivals.Load(), "every retry the server saw was admitted by the budget")
			assert.LessOrEqual(t, float64(st.Retries), ratio*float64(requests.Load())+maxTokens)
			assert.Equal(t, ct.opened.Load(), ct.closed.Load(), "a response body leaked")
			assert.Equal(t, s.arrivals.Load(), ct.opened.Load())
		})
	}
}

// TestE2EHintLongerThanDeadlineNotWaited: a client whose deadline is
// shorter than even the precise hint gets the refusal back at once.
func TestE2EHintLongerThanDeadlineNotWaited(t *testing.T) {
	s := newLimited(t, 1, false) // a token every second
	c, _ := s.client(t, backoffhttp.Config{})
	require.True(t, s.lim.Allow())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		// A loaded machine may reach the deadline during the attempt.
		require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		return
	}
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, int64(1), s.arrivals.Load())
}

// TestE2ELargePostRefusedUnread: a POST whose large body the refusing
// server never reads still comes back as the refusal (not a broken
// connection), is retried with RetryRefused, and runs once, with every
// byte of its body.
func TestE2ELargePostRefusedUnread(t *testing.T) {
	payload := strings.Repeat("x", 4<<20)
	for _, h2 := range []bool{false, true} {
		t.Run("h2="+strconv.FormatBool(h2), func(t *testing.T) {
			lim, err := shed.NewLimiter(shed.LimiterConfig{Rate: 2, Burst: 1, MaxWait: time.Nanosecond})
			require.NoError(t, err)
			var got atomic.Int64
			s := &e2eServer{lim: lim}
			s.start(t, mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s.runs.Add(1)
				n, _ := io.Copy(io.Discard, r.Body)
				got.Store(n)
				w.WriteHeader(http.StatusOK)
			}), shedhttp.Options{Limiter: lim}), h2)
			var statuses []int
			c, ct := s.client(t, backoffhttp.Config{RetryRefused: true,
				OnAttempt: func(a backoffhttp.Attempt) { statuses = append(statuses, a.StatusCode) }})
			require.True(t, lim.Allow())
			resp, err := c.Post(s.srv.URL, "text/plain", strings.NewReader(payload))
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, []int{429, 200}, statuses)
			assert.Equal(t, int64(1), s.runs.Load())
			assert.Equal(t, int64(len(payload)), got.Load())
			assert.Equal(t, ct.opened.Load(), ct.closed.Load())
		})
	}
}

// TestE2EStopsAtDeadlineWhileRunning: a handler admitted and slow (it
// waits for its request's context) does not hold the client past its
// deadline, and learns that its client left.
func TestE2EStopsAtDeadlineWhileRunning(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run("h2="+strconv.FormatBool(h2), func(t *testing.T) {
			left := make(chan struct{})
			bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 4})
			require.NoError(t, err)
			s := &e2eServer{}
			s.start(t, mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
				close(left)
			}), shedhttp.Options{Bulkhead: bh}), h2)
			var n int
			c, ct := s.client(t, backoffhttp.Config{OnAttempt: func(a backoffhttp.Attempt) { n = a.N }})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL, nil)
			require.NoError(t, err)
			resp, err := c.Do(req)
			assert.Nil(t, resp)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 1, n)
			<-left
			assert.Equal(t, ct.opened.Load(), ct.closed.Load())
			assert.Equal(t, int64(1), s.arrivals.Load())
		})
	}
}

// TestE2EEveryReasonBelieved: backoffhttp believes Stormguard-Refused with
// every reason WriteRejection writes, so that an opted-in client retries a
// POST after any of shedhttp's refusals but a deadline refusal, which no
// request is retried after.
func TestE2EEveryReasonBelieved(t *testing.T) {
	var reasons []error
	for _, r := range []error{shed.ErrQueueFull, shed.ErrWaitTimeout, shed.ErrPaused, shed.ErrTooManyKeys,
		shed.ErrDeadline, shed.ErrEvicted, shed.ErrRateLimited, shed.ErrLimitReached} {
		reasons = append(reasons, &shed.Refusal{Reason: r})
	}
	reasons = append(reasons, shedhttp.ErrBadDeadline, errors.New("something else"))
	var current atomic.Pointer[error]
	var calls atomic.Int64
	var reasonsSent sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			shedhttp.WriteRejection(w, shedhttp.Rejection{Err: *current.Load(), Status: http.StatusServiceUnavailable})
			reasonsSent.Store(w.Header().Get(shedhttp.RefusedHeader), true)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	tr, err := backoffhttp.New(backoffhttp.Config{Base: srv.Client().Transport, RetryRefused: true,
		Policy: backoff.Policy{Base: time.Millisecond, Cap: time.Millisecond}})
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	for _, reason := range reasons {
		current.Store(&reason)
		before := calls.Load()
		resp, err := (&http.Client{Transport: tr}).Post(srv.URL, "text/plain", strings.NewReader("x"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		if errors.Is(reason, shed.ErrDeadline) {
			// A deadline refusal is not retried at all: the retry would
			// carry the same deadline (backoffhttp.DefaultClassify).
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%v", reason)
			assert.Equal(t, before+1, calls.Load(), "%v: not retried", reason)
			calls.Add(1) // the next request's first attempt is refused again
			continue
		}
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%v", reason)
		assert.Equal(t, before+2, calls.Load(), "%v: a POST refused so is retried once", reason)
	}
	n := 0
	reasonsSent.Range(func(k, _ any) bool { n++; return true })
	assert.Equal(t, len(reasons), n, "each refusal sent its own reason")
}
