package backoffhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// synctest cannot reach a real network, so these tests drive the timing
// with a fake base inside the bubble; the wire behaviour is tested over
// loopback in transport_test.go.

func getWith(ctx context.Context) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.internal/v1", nil)
	return req
}

// A Retry-After wait that would end after the caller's deadline is not
// started: the 503 comes back at once, its body intact.
func TestRetryAfterPastDeadlineReturnsResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &fakeBase{answers: []answer{{status: 503, retryAfter: "10"}, {status: 200}}}
		var giveUp error
		rt := mustNew(t, backoffhttp.Config{Base: fb, OnAttempt: func(a backoffhttp.Attempt) { giveUp = a.GiveUp }})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := rt.RoundTrip(getWith(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("slept %v", waited)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || !strings.HasPrefix(string(body), "answer 1: 503") || fb.sent() != 1 {
			t.Fatalf("got %d %q after %d requests", resp.StatusCode, body, fb.sent())
		}
		if !errors.Is(giveUp, backoff.ErrDeadline) {
			t.Fatalf("give-up reason %v", giveUp)
		}
	})
}

// The policy's own wait obeys the same rule, and no attempt starts after the
// deadline however the waits add up.
func TestNeverSleepsPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &fakeBase{answers: []answer{{status: 502}}}
		p := backoff.Policy{Base: time.Second, Jitter: backoff.JitterNone, MaxAttempts: 10}
		rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: p})
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := rt.RoundTrip(getWith(ctx))
		if err != nil {
			t.Fatal(err)
		}
		// Waits 1s, 2s: attempts at 0, 1s, 3s; the next wait (4s) would end at
		// 7s, past the 6s deadline.
		if waited := time.Since(start); waited != 3*time.Second || fb.sent() != 3 {
			t.Fatalf("returned after %v and %d attempts", waited, fb.sent())
		}
		for i, b := range fb.responses[:2] {
			if b.closed.Load() != 1 {
				t.Fatalf("discarded body %d closed %d times", i, b.closed.Load())
			}
		}
		if fb.responses[2].closed.Load() != 0 || fb.responses[2].read.Load() != 0 {
			t.Fatal("the final body was touched")
		}
		resp.Body.Close()
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		status       int
		want         time.Duration
	}{
		{"seconds on 503", "3", 503, 3 * time.Second},
		{"seconds on 429", "7", 429, 7 * time.Second},
		{"date", "", 503, 90 * time.Second}, // set to now+90s in the bubble
		{"date in the past", "Sat, 01 Jan 1994 15:04:05 GMT", 503, time.Millisecond},
		{"garbage", "soon", 503, time.Millisecond},
		{"negative", "-5", 503, time.Millisecond},
		{"ignored on 502", "30", 502, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := tc.header
				if tc.name == "date" {
					h = time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
				}
				fb := &fakeBase{answers: []answer{{status: tc.status, retryAfter: h}, {status: 200}}}
				var waits []time.Duration
				p := backoff.Policy{Base: time.Millisecond, Jitter: backoff.JitterNone}
				rt := mustNew(t, backoffhttp.Config{Base: fb, Policy: p, OnAttempt: func(a backoffhttp.Attempt) { waits = append(waits, a.Wait) }})
				start := time.Now()
				resp, err := rt.RoundTrip(getWith(context.Background()))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := time.Since(start); got != tc.want || waits[0] != tc.want || resp.StatusCode != 200 {
					t.Fatalf("waited %v (hook %v), want %v; status %d", got, waits, tc.want, resp.StatusCode)
				}
			})
		})
	}
}

// A hint above MaxRetryAfter is not obeyed early nor waited out: the 503
// comes back at once. Huge values do not overflow into short waits.
func TestRetryAfterCapped(t *testing.T) {
	for _, h := range []string{"61", "99999999999", "999999999999999999999999"} {
		synctest.Test(t, func(t *testing.T) {
			fb := &fakeBase{answers: []answer{{status: 429, retryAfter: h}, {status: 200}}}
			var giveUp error
			rt := mustNew(t, backoffhttp.Config{Base: fb, MaxRetryAfter: time.Minute, OnAttempt: func(a backoffhttp.Attempt) { giveUp = a.GiveUp }})
			start := time.Now()
			resp, err := rt.RoundTrip(getWith(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 429 || time.Since(start) != 0 || fb.sent() != 1 || !errors.Is(giveUp, backoff.ErrRetryAfterTooLong) {
				t.Fatalf("Retry-After %s: status %d after %v, %d sent, reason %v", h, resp.StatusCode, time.Since(start), fb.sent(), giveUp)
			}
			if resp.Header.Get("Retry-After") != h {
				t.Fatal("the hint was lost")
			}
		})
	}
}

// A cancellation during a wait ends it at once, and nothing more is sent.
func TestCancelDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &fakeBase{answers: []answer{{status: 503, retryAfter: "30"}, {status: 200}}}
		rt := mustNew(t, backoffhttp.Config{Base: fb})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(2*time.Second, cancel)
		start := time.Now()
		resp, err := rt.RoundTrip(getWith(ctx))
		if resp != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("resp %v, err %v", resp, err)
		}
		var se *backoffhttp.StatusError
		if !errors.As(err, &se) || se.StatusCode != 503 || se.RetryAfter() != 30*time.Second {
			t.Fatalf("the last status is not in %v", err)
		}
		if time.Since(start) != 2*time.Second || fb.sent() != 1 || fb.responses[0].closed.Load() != 1 {
			t.Fatalf("returned after %v, sent %d", time.Since(start), fb.sent())
		}
	})
}

// A transport error caused by the caller's deadline is not retried, even
// with attempts and time left in the policy.
func TestCallerDeadlineErrorNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		sent := 0
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			sent++
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		rt := mustNew(t, backoffhttp.Config{Base: base})
		_, err := rt.RoundTrip(getWith(ctx))
		if !errors.Is(err, context.DeadlineExceeded) || sent != 1 {
			t.Fatalf("err %v after %d attempts", err, sent)
		}
	})
}
