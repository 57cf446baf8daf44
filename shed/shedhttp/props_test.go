package shedhttp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

var reasons = []error{
	shed.ErrQueueFull, shed.ErrWaitTimeout, shed.ErrPaused, shed.ErrTooManyKeys,
	shed.ErrDeadline, shed.ErrEvicted, shed.ErrRateLimited, shed.ErrLimitReached,
}

var reasonCodes = map[error]string{
	shed.ErrQueueFull: "queue_full", shed.ErrWaitTimeout: "wait_timeout", shed.ErrPaused: "paused",
	shed.ErrTooManyKeys: "too_many_keys", shed.ErrDeadline: "deadline", shed.ErrEvicted: "evicted",
	shed.ErrRateLimited: "rate_limited", shed.ErrLimitReached: "limit_reached",
}

// TestParseTimeoutProperties: every millisecond count and every
// non-negative duration a Duration holds reads back exactly; any other
// string is either read as a non-negative duration or refused with
// ErrBadDeadline, never a panic and never a negative duration.
func TestParseTimeoutProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := rapid.Int64Range(0, math.MaxInt64/int64(time.Millisecond)).Draw(t, "ms")
		pad := rapid.SampledFrom([]string{"", " ", "\t", "  "}).Draw(t, "pad")
		d, err := shedhttp.ParseTimeout(pad + strconv.FormatInt(ms, 10) + pad)
		if err != nil || d != time.Duration(ms)*time.Millisecond {
			t.Fatalf("%d ms: got %v, %v", ms, d, err)
		}
		dur := time.Duration(rapid.Int64Range(1, math.MaxInt64).Draw(t, "dur"))
		d, err = shedhttp.ParseTimeout(dur.String())
		if err != nil || d != dur {
			t.Fatalf("%v: got %v, %v", dur, d, err)
		}
		s := rapid.String().Draw(t, "any")
		d, err = shedhttp.ParseTimeout(s)
		if err != nil && !errors.Is(err, shedhttp.ErrBadDeadline) {
			t.Fatalf("%q: error %v does not match ErrBadDeadline", s, err)
		}
		if err == nil && d < 0 {
			t.Fatalf("%q: negative %v", s, d)
		}
	})
}

// TestParseTimeoutRefuses: the edges.
func TestParseTimeoutRefuses(t *testing.T) {
	for _, s := range []string{"", " ", "-1", "+1", "-1ms", "1.5", "1e3", "0x10", "9223372036855",
		"99999999999999999999", "1 s", "ms", "1d", "1,5s", "３"} {
		_, err := shedhttp.ParseTimeout(s)
		if !errors.Is(err, shedhttp.ErrBadDeadline) {
			t.Errorf("%q: got %v, want ErrBadDeadline", s, err)
		}
	}
	for s, want := range map[string]time.Duration{"0": 0, "007": 7 * time.Millisecond, "9223372036854": 9223372036854 * time.Millisecond,
		"0s": 0, "1.5s": 1500 * time.Millisecond, "1m30s": 90 * time.Second, " 250ms\t": 250 * time.Millisecond} {
		d, err := shedhttp.ParseTimeout(s)
		if err != nil || d != want {
			t.Errorf("%q: got %v, %v; want %v", s, d, err, want)
		}
	}
}

// TestStatusAndRetryAfterProperties: for any refusal, the default status
// is 429 exactly for a rate limit and 503 otherwise; Retry-After is the
// refusal's hint in whole seconds rounded up, at least 1, and present
// exactly when the refusal gives a basis; the body is JSON with the
// reason's code, the hint in milliseconds rounded up, and the key.
func TestStatusAndRetryAfterProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ref := &shed.Refusal{
			Reason:  rapid.SampledFrom(reasons).Draw(t, "reason"),
			Key:     rapid.String().Draw(t, "key"),
			Current: rapid.IntRange(0, 100).Draw(t, "current"),
			Limit:   rapid.IntRange(0, 100).Draw(t, "limit"),
			Waited:  time.Duration(rapid.Int64Range(-1, math.MaxInt64).Draw(t, "waited")),
			RetryIn: time.Duration(rapid.Int64Range(-1, math.MaxInt64).Draw(t, "retryIn")),
		}
		var err error = ref
		if rapid.Bool().Draw(t, "wrapped") {
			err = fmt.Errorf("wrapped: %w", ref)
		}
		status := shedhttp.DefaultStatus(err)
		if want := map[bool]int{true: 429, false: 503}[ref.Reason == shed.ErrRateLimited]; status != want {
			t.Fatalf("%v: status %d, want %d", ref.Reason, status, want)
		}

		// The hint, computed independently of RetryAfter's code.
		var hint time.Duration
		switch {
		case ref.RetryIn > 0:
			hint = ref.RetryIn
		case (ref.Reason == shed.ErrWaitTimeout || ref.Reason == shed.ErrEvicted) && ref.Waited > 0:
			hint = ref.Waited
		}
		got, ok := shedhttp.RetryAfter(err)
		if got != hint || ok != (hint > 0) {
			t.Fatalf("RetryAfter = %v, %v; want %v", got, ok, hint)
		}

		key := ""
		if rapid.Bool().Draw(t, "keyed") {
			key = ref.Key
		}
		w := httptest.NewRecorder()
		shedhttp.WriteRejection(w, shedhttp.Rejection{Err: err, Status: status, RetryAfter: got, Key: key})
		if w.Code != status {
			t.Fatalf("wrote %d, want %d", w.Code, status)
		}
		ra := w.Header().Values("Retry-After")
		if hint <= 0 {
			if len(ra) != 0 {
				t.Fatalf("Retry-After %q without a basis", ra)
			}
		} else {
			secs, perr := strconv.ParseInt(ra[0], 10, 64)
			if perr != nil || len(ra) != 1 {
				t.Fatalf("Retry-After %q", ra)
			}
			// secs is the least whole number of seconds ≥ hint, and ≥ 1.
			if secs < 1 || float64(secs) < hint.Seconds() || (secs > 1 && time.Duration(secs-1)*time.Second >= hint) {
				t.Fatalf("Retry-After %d for a hint of %v", secs, hint)
			}
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var b map[string]any
		dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		dec.UseNumber()
		if derr := dec.Decode(&b); derr != nil {
			t.Fatalf("body %q: %v", w.Body.String(), derr)
		}
		if b["reason"] != reasonCodes[ref.Reason] {
			t.Fatalf("reason %v, want %s", b["reason"], reasonCodes[ref.Reason])
		}
		if n, has := b["retry_after_ms"]; has != (hint > 0) {
			t.Fatalf("retry_after_ms %v for a hint of %v", n, hint)
		} else if has {
			ms, _ := strconv.ParseInt(string(n.(json.Number)), 10, 64)
			if time.Duration(ms)*time.Millisecond < hint && ms != math.MaxInt64/int64(time.Millisecond)+1 ||
				ms > 0 && time.Duration(ms-1)*time.Millisecond >= hint {
				t.Fatalf("retry_after_ms %d for a hint of %v", ms, hint)
			}
		}
		wantKey := strings.ToValidUTF8(key, "\ufffd")
		if got, _ := b["key"].(string); got != wantKey {
			t.Fatalf("key %q, want %q", got, wantKey)
		}
		if msg, _ := b["message"].(string); !utf8.ValidString(msg) || msg == "" {
			t.Fatalf("message %q", msg)
		}
	})
}

// TestServeStatusMapping: through the middleware, any status the Status
// option returns is written (zero meaning the default), and one outside
// [200, 999] falls back to 503 rather than panicking net/http or being
// sent as an informational 1xx followed by 200.
func TestServeStatusMapping(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 1})
		_ = p.Pause("k")
		want := rapid.IntRange(-5, 1200).Draw(t, "status")
		h, err := shedhttp.New(ok, shedhttp.Options{Partition: p, Key: func(*http.Request) string { return "k" },
			Status: func(error) int { return want }})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		switch {
		case want == 0 && w.Code != 503:
			t.Fatalf("default: %d", w.Code)
		case want >= 200 && want <= 999 && w.Code != want:
			t.Fatalf("%d written as %d", want, w.Code)
		case want != 0 && (want < 200 || want > 999) && w.Code != 503:
			t.Fatalf("invalid %d written as %d", want, w.Code)
		}
	})
}
