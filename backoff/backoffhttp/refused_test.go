package backoffhttp_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// headerBase answers a first attempt with status and headers, and every
// later one 200; it counts the attempts and closes what it is given.
type headerBase struct {
	status int
	header http.Header
	sent   atomic.Int32
}

func (b *headerBase) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	if b.sent.Add(1) > 1 {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	return &http.Response{StatusCode: b.status, Header: b.header.Clone(), Body: io.NopCloser(strings.NewReader("refused")), Request: req}, nil
}

// TestRetryAfterMsWithinRetryAfter: Retry-After-Ms is preferred when it is
// valid and refines the Retry-After it comes with (no longer, and less
// than a second shorter); alone, longer, much shorter, malformed or on a
// status without hints it is ignored.
func TestRetryAfterMsWithinRetryAfter(t *testing.T) {
	for _, c := range []struct {
		name, ra, ms string
		status       int
		want         time.Duration
	}{
		{"precise", "1", "20", 503, 20 * time.Millisecond},
		{"precise 429", "1", "999", 429, 999 * time.Millisecond},
		{"equal", "2", "2000", 503, 2 * time.Second},
		{"longer than Retry-After", "1", "5000", 503, time.Second},
		{"alone", "", "20", 503, 0},
		{"zero", "1", "0", 503, time.Second},
		{"negative", "1", "-5", 503, time.Second},
		{"garbage", "1", "20ms", 503, time.Second},
		{"huge", "1", "99999999999999999999", 503, time.Second},
		{"beyond Duration", "1", "9223372036855", 503, time.Second},
		{"502 has no hint", "1", "20", 502, 0},
		{"spaces", "1", " 20 ", 503, 20 * time.Millisecond},
		{"a second shorter", "2", "1000", 503, 2 * time.Second},
		{"under a second shorter", "2", "1001", 503, 1001 * time.Millisecond},
		{"contradicts", "60", "1", 429, time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := http.Header{}
				if c.ra != "" {
					h.Set("Retry-After", c.ra)
				}
				h.Set(backoffhttp.RetryAfterMsHeader, c.ms)
				base := &headerBase{status: c.status, header: h}
				var wait time.Duration
				tr, err := backoffhttp.New(backoffhttp.Config{
					Base:   base,
					Policy: backoff.Policy{Base: time.Nanosecond, Cap: time.Nanosecond},
					OnAttempt: func(a backoffhttp.Attempt) {
						if a.N == 1 {
							wait = a.Wait
						}
					},
				})
				require.NoError(t, err)
				req, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
				resp, err := tr.RoundTrip(req)
				require.NoError(t, err)
				_ = resp.Body.Close()
				assert.Equal(t, int32(2), base.sent.Load())
				if c.want == 0 {
					assert.LessOrEqual(t, wait, time.Nanosecond)
				} else {
					assert.Equal(t, c.want, wait)
				}
			})
		})
	}
}

// TestRetryRefusedOptIn: a POST without an idempotency key is retried after
// a refusal that says its handler did not run only when the caller opted
// in, the header is one of shedhttp's reasons (one value), the result is
// Retryable, and the body can be rewound.
func TestRetryRefusedOptIn(t *testing.T) {
	for _, c := range []struct {
		name     string
		optIn    bool
		value    string
		status   int
		noRewind bool
		sent     int32
	}{
		{"no opt-in", false, "queue_full", 503, false, 1},
		{"opt-in", true, "queue_full", 503, false, 2},
		{"opt-in 429", true, "rate_limited", 429, false, 2},
		{"opt-in empty header", true, "", 503, false, 1},
		{"opt-in no header", true, "-", 503, false, 1},
		{"opt-in unknown reason", true, "yes", 503, false, 1},
		{"opt-in two values", true, "queue_full,queue_full", 503, false, 1},
		{"opt-in every reason", true, "limit_reached", 503, false, 2},
		{"opt-in 500 is a Failure", true, "other", 500, false, 1},
		{"opt-in body not rewindable", true, "queue_full", 503, true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := http.Header{}
				if c.value != "-" {
					h[backoffhttp.RefusedHeader] = strings.Split(c.value, ",")
				}
				base := &headerBase{status: c.status, header: h}
				var giveUp error
				tr, err := backoffhttp.New(backoffhttp.Config{
					Base: base, RetryRefused: c.optIn,
					OnAttempt: func(a backoffhttp.Attempt) {
						if a.N == 1 {
							giveUp = a.GiveUp
						}
					},
				})
				require.NoError(t, err)
				req, _ := http.NewRequest(http.MethodPost, "http://svc/", strings.NewReader("charge"))
				if c.noRewind {
					req.GetBody = nil
				}
				resp, err := tr.RoundTrip(req)
				require.NoError(t, err)
				_ = resp.Body.Close()
				assert.Equal(t, c.sent, base.sent.Load())
				if c.sent == 1 {
					assert.Error(t, giveUp)
				}
			})
		})
	}
}

// Over random refusals (status, Retry-After, Retry-After-Ms,
// Stormguard-Refused), methods and the opt-in: a request is sent again only
// if its first result is Retryable (not a deadline refusal) and it is
// idempotent or, with RetryRefused, was refused with a known reason; the wait is the
// precise hint only when it refines the whole seconds.
func TestPropertyRefusedAndPreciseHint(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		status := rapid.SampledFrom([]int{200, 400, 429, 500, 502, 503}).Draw(rt, "status")
		ra := rapid.IntRange(-1, 3).Draw(rt, "retryAfter") // -1: none
		ms := rapid.IntRange(-2, 4000).Draw(rt, "ms")      // -2: none, -1: garbage
		refusedVal := rapid.SampledFrom([]string{"-", "", "queue_full", "deadline", "yes", "Queue_Full"}).Draw(rt, "refused")
		method := rapid.SampledFrom([]string{"GET", "POST", "PATCH", "PUT"}).Draw(rt, "method")
		optIn := rapid.Bool().Draw(rt, "optIn")

		h := http.Header{}
		if ra >= 0 {
			h.Set("Retry-After", strconv.Itoa(ra))
		}
		switch {
		case ms == -1:
			h.Set(backoffhttp.RetryAfterMsHeader, "soon")
		case ms >= 0:
			h.Set(backoffhttp.RetryAfterMsHeader, strconv.Itoa(ms))
		}
		if refusedVal != "-" {
			h[backoffhttp.RefusedHeader] = []string{refusedVal}
		}
		base := &headerBase{status: status, header: h}
		var wait time.Duration
		var rtErr error
		// The wait runs in a bubble: its clock is virtual.
		synctest.Test(t, func(t *testing.T) {
			tr, err := backoffhttp.New(backoffhttp.Config{
				Base: base, RetryRefused: optIn,
				Policy: backoff.Policy{Base: time.Nanosecond, Cap: time.Nanosecond},
				OnAttempt: func(a backoffhttp.Attempt) {
					if a.N == 1 {
						wait = a.Wait
					}
				},
			})
			if err != nil {
				rtErr = err
				return
			}
			req, _ := http.NewRequest(method, "http://svc/", strings.NewReader("body"))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				rtErr = err
				return
			}
			_ = resp.Body.Close()
		})
		if rtErr != nil {
			rt.Fatal(rtErr)
		}

		// A 503 refusing the request's deadline is not retried: a retry
		// carries the same deadline (DefaultClassify).
		retryable := status == 429 || status == 502 || (status == 503 && refusedVal != "deadline")
		safe := method == "GET" || method == "PUT" || (optIn && (refusedVal == "queue_full" || refusedVal == "deadline"))
		want := int32(1)
		if retryable && safe {
			want = 2
		}
		if got := base.sent.Load(); got != want {
			rt.Fatalf("sent %d times, want %d", got, want)
		}
		if want == 1 {
			return
		}
		var hint time.Duration
		if (status == 429 || status == 503) && ra > 0 {
			hint = time.Duration(ra) * time.Second
			if p := time.Duration(ms) * time.Millisecond; ms > 0 && p <= hint && p > hint-time.Second {
				hint = p
			}
		}
		if hint > 0 && wait != hint || hint == 0 && wait > time.Nanosecond {
			rt.Fatalf("waited %v, want %v", wait, hint)
		}
	})
}
