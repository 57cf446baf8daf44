package shedhttp

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/stormguard/stormguard/shed"
)

// Rejection is what the middleware answers a refused request with, for
// Options.Respond and WriteRejection.
type Rejection struct {
	// Err is why: a *shed.Refusal from admission, or an error matching
	// ErrBadDeadline.
	Err error
	// Status is the status code to write (see Options.Status): for the
	// middleware's refusals always in [200, 999], a result of
	// Options.Status outside it being 503.
	Status int
	// RetryAfter is when the refused request may usefully be retried, from
	// the refusal's own numbers (see RetryAfter); zero if the refusal gives
	// no basis for one.
	RetryAfter time.Duration
	// Key is the request's key (Options.Key), or empty.
	Key string
}

// DefaultStatus maps a refusal to a status code: 429 Too Many Requests for
// a rate limit (shed.ErrRateLimited), 503 Service Unavailable for every
// other refusal (shed.ErrShed: a full queue, a wait that timed out, an
// eviction, a paused key or queue, too many keys, a deadline that cannot be
// met, an adaptive limit reached), 400 Bad Request for ErrBadDeadline, and
// 500 for anything else (such as a Limiter that was not built with
// shed.NewLimiter).
func DefaultStatus(err error) int {
	switch {
	case errors.Is(err, shed.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, shed.ErrShed):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrBadDeadline):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// RetryAfter returns when a refused request may usefully be retried, from
// the refusal's own numbers, and whether the refusal gives a basis for it:
//
//   - the refusal's RetryAfter method (shed.Refusal.RetryAfter), when
//     positive: for a rate limit (shed.ErrRateLimited), when the next token
//     is due; for an adaptive limit (shed.ErrLimitReached), when a slot is
//     expected to free;
//   - otherwise, for a request that waited in a queue and was not served
//     (shed.ErrWaitTimeout, shed.ErrEvicted), the time it waited
//     (Refusal.Waited): the queue held it that long without a slot freeing
//     for it, so an earlier retry would meet the same queue.
//
// Every other refusal gives no basis and RetryAfter returns false: a full
// queue (shed.ErrQueueFull, which counts requests, not time), a paused key
// (shed.ErrPaused: an operator's decision), too many keys, a deadline that
// cannot be met (shed.ErrDeadline: a retry with the same deadline fails
// the same way), and an adaptive limit reached before it has measured a
// latency (shed.ErrLimitReached with no RetryIn). The middleware then sends no Retry-After header,
// except for a full queue in front of an adaptive limit (a Queue, Bulkhead
// or Partition with an Adaptive config), whose measured latency is a
// basis: it sends the time a slot is expected to free, the last window's
// mean latency over the limit (of the request's key, for a Partition), as
// an AdaptiveLimit's own refusal does.
//
// A hint under a second is sent as "Retry-After: 1" (the header counts
// whole seconds); the Retry-After-Ms header (RetryAfterMsHeader) and the
// body's retry_after_ms keep the precise value.
func RetryAfter(err error) (time.Duration, bool) {
	var ref *shed.Refusal
	if !errors.As(err, &ref) {
		return 0, false
	}
	return ref.Hint()
}

// RetryAfterSeconds is the value of a Retry-After header for a retry hint
// d: d in whole seconds, rounded up, and at least 1 (a header cannot say
// less, and 0 would invite an immediate retry). It is 0 for d ≤ 0, which
// means no header.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// RefusedHeader is the response header WriteRejection sets on every
// refusal, to the body's reason (such as "queue_full"): it says that the
// request's handler did not run, so that a client may send again even a
// request that is not idempotent. backoffhttp.Config.RetryRefused honours
// it (backoffhttp.RefusedHeader is the same name), as contrib/grpc's
// RefusedKey trailer is honoured by its Client. A handler must therefore
// not call WriteRejection after it has started work it would not repeat,
// and a handler that forwards a downstream server's response headers (a
// gateway) must drop this one, since its own work did run.
const RefusedHeader = "Stormguard-Refused"

// RetryAfterMsHeader is the response header WriteRejection sets beside
// Retry-After, to the hint in milliseconds (rounded up): Retry-After counts
// whole seconds, so a 20ms hint is sent there as 1. backoffhttp prefers it
// when it is no longer than the Retry-After sent with it.
const RetryAfterMsHeader = "Retry-After-Ms"

// WriteRejection writes the default answer to a refused request:
// rej.Status (503 if it is not in [200, 999]), a Retry-After header of
// RetryAfterSeconds(rej.RetryAfter) and a Retry-After-Ms header
// (RetryAfterMsHeader) of the hint in milliseconds, rounded up, when
// rej.RetryAfter is positive (neither otherwise), a Stormguard-Refused
// header (RefusedHeader) of the body's reason, Cache-Control: no-store,
// and a small JSON body (Content-Type: application/json) such as
//
//	{"error":"overloaded","reason":"wait_timeout","retry_after_ms":12,"key":"tenant-7","message":"shed: waited too long (waited 12ms, limit 12ms) for key \"tenant-7\""}
//
// error is "rate_limited" (shed.ErrRateLimited), "overloaded" (every other
// refusal), "bad_request" (ErrBadDeadline) or "internal"; reason is one of
// queue_full, wait_timeout, paused, too_many_keys, deadline, evicted,
// rate_limited, limit_reached, bad_deadline, or "other"; retry_after_ms
// (rej.RetryAfter in milliseconds, rounded up) and key are left out when
// zero or empty; message is the error's text.
func WriteRejection(w http.ResponseWriter, rej Rejection) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	if s := RetryAfterSeconds(rej.RetryAfter); s > 0 {
		h["Retry-After"] = []string{strconv.FormatInt(s, 10)}
		h[RetryAfterMsHeader] = []string{strconv.FormatInt(ceilMillis(rej.RetryAfter), 10)}
	}
	_, reason := codes(rej.Err)
	h[RefusedHeader] = []string{reason}
	status := rej.Status
	if status < 200 || status > 999 {
		// net/http panics below 100 and sends 1xx as informational,
		// answering 200 afterwards: a refusal must not read as success.
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_, _ = w.Write(AppendBody(make([]byte, 0, 256), rej))
}

// AppendBody appends WriteRejection's JSON body for rej to b, followed by
// a newline, and returns the extended buffer.
func AppendBody(b []byte, rej Rejection) []byte {
	code, reason := codes(rej.Err)
	b = append(b, `{"error":"`...)
	b = append(b, code...)
	b = append(b, `","reason":"`...)
	b = append(b, reason...)
	b = append(b, '"')
	if rej.RetryAfter > 0 {
		b = append(b, `,"retry_after_ms":`...)
		b = strconv.AppendInt(b, ceilMillis(rej.RetryAfter), 10)
	}
	if rej.Key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, rej.Key)
	}
	msg := "refused"
	if rej.Err != nil {
		msg = rej.Err.Error()
	}
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	return append(b, "}\n"...)
}

// ceilMillis is d (positive) in milliseconds, rounded up.
func ceilMillis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// codes returns the body's error and reason for err.
func codes(err error) (code, reason string) {
	code = "overloaded"
	switch {
	case errors.Is(err, ErrBadDeadline):
		return "bad_request", "bad_deadline"
	case errors.Is(err, shed.ErrRateLimited):
		return "rate_limited", "rate_limited"
	case !errors.Is(err, shed.ErrShed):
		return "internal", "other"
	case errors.Is(err, shed.ErrQueueFull):
		return code, "queue_full"
	case errors.Is(err, shed.ErrWaitTimeout):
		return code, "wait_timeout"
	case errors.Is(err, shed.ErrPaused):
		return code, "paused"
	case errors.Is(err, shed.ErrTooManyKeys):
		return code, "too_many_keys"
	case errors.Is(err, shed.ErrDeadline):
		return code, "deadline"
	case errors.Is(err, shed.ErrEvicted):
		return code, "evicted"
	case errors.Is(err, shed.ErrLimitReached):
		return code, "limit_reached"
	}
	return code, "other"
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, <, > and & escaped as encoding/json does,
// and invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// maxHeaderMillis is the largest millisecond count a Duration holds.
const maxHeaderMillis = math.MaxInt64 / int64(time.Millisecond)
