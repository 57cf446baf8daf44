package backoffhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

var errReset = errors.New("connection reset by peer")

// Over random sequences of answers, methods, bodies, keys and policies:
// attempts never exceed MaxAttempts; an unsafe request is sent once; every
// discarded body is drained and closed and the returned one is untouched;
// every request body is closed; the response returned is the last one sent;
// every retry carries the caller's body.
func TestPropertyRetries(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		statuses := []int{0, 200, 201, 404, 429, 500, 501, 502, 503, 504}
		n := rapid.IntRange(1, 8).Draw(rt, "answers")
		answers := make([]answer, n)
		for i := range answers {
			s := rapid.SampledFrom(statuses).Draw(rt, "status")
			answers[i] = answer{status: s, err: errReset}
			if (s == 429 || s == 503) && rapid.Bool().Draw(rt, "hint") {
				answers[i].retryAfter = "0"
			}
		}
		method := rapid.SampledFrom([]string{"GET", "PUT", "DELETE", "POST", "PATCH"}).Draw(rt, "method")
		withKey := rapid.Bool().Draw(rt, "key")
		bodyKind := rapid.SampledFrom([]string{"none", "rewindable", "once"}).Draw(rt, "body")
		maxAttempts := rapid.IntRange(1, 6).Draw(rt, "maxAttempts")
		drain := rapid.SampledFrom([]int64{-1, 0, 10, 1 << 20}).Draw(rt, "drain")

		fb := &fakeBase{answers: answers}
		tr := mustNew(t, backoffhttp.Config{
			Base:              fb,
			Policy:            backoff.Policy{Base: time.Nanosecond, Cap: time.Nanosecond, MaxAttempts: maxAttempts},
			IdempotencyHeader: "Idempotency-Key",
			DrainLimit:        drain,
		})
		var bodies []*trackedReqBody
		req, _ := http.NewRequestWithContext(context.Background(), method, "http://h.internal/x", nil)
		if bodyKind != "none" {
			first := &trackedReqBody{Reader: strings.NewReader("payload")}
			bodies = append(bodies, first)
			req.Body = first
			if bodyKind == "rewindable" {
				req.GetBody = func() (io.ReadCloser, error) {
					b := &trackedReqBody{Reader: strings.NewReader("payload")}
					bodies = append(bodies, b)
					return b, nil
				}
			}
		}
		if withKey {
			req.Header.Set("Idempotency-Key", "k")
		}
		resp, err := tr.RoundTrip(req)

		sent := fb.sent()
		safe := method == "GET" || method == "PUT" || method == "DELETE" || withKey
		if bodyKind == "once" {
			safe = false
		}
		if sent > maxAttempts || sent < 1 {
			rt.Fatalf("%d attempts, MaxAttempts %d", sent, maxAttempts)
		}
		if !safe && sent != 1 {
			rt.Fatalf("unsafe %s (key %v, body %s) sent %d times", method, withKey, bodyKind, sent)
		}
		// Which answer the transport must have stopped on.
		for i := 0; i < sent-1; i++ {
			a := answers[min(i, len(answers)-1)]
			if a.status != 0 && a.status != 429 && a.status != 502 && a.status != 503 && a.status != 504 {
				rt.Fatalf("retried after answer %d (%d)", i, a.status)
			}
		}
		last := answers[min(sent-1, len(answers)-1)]
		if last.status == 0 {
			if resp != nil || !errors.Is(err, errReset) {
				rt.Fatalf("last answer an error: resp %v err %v", resp, err)
			}
		} else if err != nil || resp == nil || resp.StatusCode != last.status {
			rt.Fatalf("last answer %d: resp %v err %v", last.status, resp, err)
		}
		for i, b := range fb.responses {
			isFinal := resp != nil && i == len(fb.responses)-1
			switch {
			case isFinal && (b.closed.Load() != 0 || b.read.Load() != 0):
				rt.Fatalf("the returned body was read (%d) or closed (%d)", b.read.Load(), b.closed.Load())
			case !isFinal && b.closed.Load() != 1:
				rt.Fatalf("discarded body %d closed %d times", i, b.closed.Load())
			case !isFinal && drain >= 0 && b.read.Load() != min(int64(b.size), max(drain, 0)+boolInt(drain == 0)*backoffhttp.DefaultDrainLimit):
				rt.Fatalf("discarded body %d: read %d of %d (drain limit %d)", i, b.read.Load(), b.size, drain)
			case !isFinal && drain < 0 && b.read.Load() != 0:
				rt.Fatalf("discarded body %d read with draining off", i)
			}
		}
		for i, b := range bodies {
			if b.closed.Load() != 1 {
				rt.Fatalf("request body %d closed %d times", i, b.closed.Load())
			}
		}
		for i, b := range fb.bodies {
			if b != "payload" && !(bodyKind == "none" && b == "") {
				rt.Fatalf("attempt %d sent body %q", i+1, b)
			}
		}
		if resp != nil {
			resp.Body.Close()
		}
	})
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// The same property over a real server on loopback: the script of answers
// (a status, or a hang-up after reading the request) is drawn per check,
// and the counting transport checks every body the wire opened.
func TestPropertyRetriesOverLoopback(t *testing.T) {
	var (
		mu     sync.Mutex
		script []int // 0 hangs up
		hits   int
	)
	srv, ct := newLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		s := script[min(hits, len(script)-1)]
		hits++
		mu.Unlock()
		if s == 0 {
			hangUp(w, r)
			return
		}
		w.WriteHeader(s)
		io.WriteString(w, strings.Repeat("x", 3000))
	}))
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(rt, "answers")
		s := make([]int, n)
		for i := range s {
			s[i] = rapid.SampledFrom([]int{0, 200, 404, 429, 500, 502, 503}).Draw(rt, "status")
		}
		method := rapid.SampledFrom([]string{"GET", "PUT", "POST", "PATCH"}).Draw(rt, "method")
		withKey := rapid.Bool().Draw(rt, "key")
		maxAttempts := rapid.IntRange(1, 5).Draw(rt, "maxAttempts")
		drain := rapid.SampledFrom([]int64{-1, 0, 100}).Draw(rt, "drain")
		mu.Lock()
		script, hits = s, 0
		mu.Unlock()
		sentBefore, openedBefore := ct.sent.Load(), ct.opened.Load()

		tr := mustNew(t, backoffhttp.Config{
			Base:              ct,
			Policy:            backoff.Policy{Base: time.Nanosecond, Cap: time.Nanosecond, MaxAttempts: maxAttempts},
			IdempotencyHeader: "Idempotency-Key",
			DrainLimit:        drain,
		})
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader("payload"))
		if withKey {
			req.Header.Set("Idempotency-Key", "k")
		}
		resp, err := tr.RoundTrip(req)
		attempts := int(ct.sent.Load() - sentBefore)
		mu.Lock()
		got := hits
		mu.Unlock()
		safe := method == "GET" || method == "PUT" || withKey
		if attempts < 1 || attempts > maxAttempts {
			rt.Fatalf("%d attempts, MaxAttempts %d", attempts, maxAttempts)
		}
		if !safe && (attempts != 1 || got != 1) {
			rt.Fatalf("unsafe %s: %d attempts, %d hits", method, attempts, got)
		}
		opened := ct.opened.Load() - openedBefore
		if resp != nil {
			if err != nil || ct.open() != 1 {
				rt.Fatalf("response with err %v, %d bodies open", err, ct.open())
			}
			if b, _ := io.ReadAll(resp.Body); len(b) != 3000 {
				rt.Fatalf("the returned body had %d bytes", len(b))
			}
			resp.Body.Close()
		} else if err == nil {
			rt.Fatal("neither response nor error")
		}
		if ct.open() != 0 {
			rt.Fatalf("%d of %d bodies left open", ct.open(), opened)
		}
	})
}
