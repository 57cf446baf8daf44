package backoffhttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/internal/ctxsleep"
)

// DefaultDrainLimit is how many bytes of a discarded response body are read
// before it is closed, unless Config.DrainLimit says otherwise: enough for
// the error pages servers send, so that the connection goes back to the pool.
const DefaultDrainLimit = 64 << 10

var (
	// ErrInvalidConfig is matched (with errors.Is) by every error New
	// returns.
	ErrInvalidConfig = errors.New("backoffhttp: invalid config")
	// ErrNotIdempotent is the GiveUp reason of an Attempt whose request
	// was not retried because sending it twice is not safe: its method is
	// not idempotent and it carries no idempotency key.
	ErrNotIdempotent = errors.New("request is not idempotent")
	// ErrBodyNotRewindable is the GiveUp reason of an Attempt whose request
	// was not retried because its body cannot be sent again (no GetBody,
	// or GetBody failed).
	ErrBodyNotRewindable = errors.New("request body cannot be rewound")
	// ErrNotRetryable is the GiveUp reason of an Attempt whose result
	// Classify says is a failure not worth retrying.
	ErrNotRetryable = errors.New("result is not retryable")
)

// RefusedHeader is the response header by which a server says that it
// refused the request before its handler ran (shedhttp.RefusedHeader, the
// same name, is set on every refusal shedhttp's WriteRejection writes):
// with Config.RetryRefused, a request that is not idempotent is retried
// after a Retryable response carrying it.
const RefusedHeader = "Stormguard-Refused"

// RetryAfterMsHeader is a response header some servers (shedhttp among
// them) send beside Retry-After with the hint in milliseconds, since
// Retry-After counts whole seconds. On a 429 or 503 that also carries a
// valid Retry-After, it is preferred when it refines it: positive, no
// longer, and less than a second shorter (as rounding up to whole seconds
// makes it). Alone, or contradicting the Retry-After, it is ignored.
const RetryAfterMsHeader = "Retry-After-Ms"

// Class is what a result of one attempt is, as Config.Classify decides.
type Class uint8

const (
	// Success hands the response to the caller; it counts as a success for
	// the breaker and the throttle.
	Success Class = iota
	// Retryable is a failure worth another attempt, if the request is safe
	// to send again and the bounds allow it.
	Retryable
	// Failure is a failure that is not retried: the response (or error) is
	// handed to the caller, and it counts as a failure for the breaker and
	// the throttle.
	Failure
)

// String returns "success", "retryable" or "failure".
func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case Retryable:
		return "retryable"
	case Failure:
		return "failure"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// DefaultClassify is the classifier used when Config.Classify is nil:
// a transport error is Retryable, except a certificate that failed
// verification (Failure); a 429, 502, 503 or 504 is Retryable, except a
// refusal whose RefusedHeader is exactly "deadline" (shedhttp's refusal of
// a request whose deadline cannot be met: a retry carries the same
// deadline with less time left, so it is a Failure); any other 5xx is a
// Failure; every other status is a Success.
func DefaultClassify(resp *http.Response, err error) Class {
	if err != nil {
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return Failure
		}
		return Retryable
	}
	switch code := resp.StatusCode; {
	case code == http.StatusServiceUnavailable:
		if v := resp.Header[RefusedHeader]; len(v) == 1 && v[0] == "deadline" {
			return Failure
		}
		return Retryable
	case code == http.StatusTooManyRequests, code == http.StatusBadGateway,
		code == http.StatusGatewayTimeout:
		return Retryable
	case code >= 500:
		return Failure
	}
	return Success
}

// Config configures a Transport. The zero value is usable.
type Config struct {
	// Base sends each attempt. Nil means http.DefaultTransport; a typed nil
	// (a nil *http.Transport in the interface) is invalid.
	Base http.RoundTripper
	// Policy spaces the attempts and bounds their number (MaxAttempts) and
	// duration (MaxElapsed). The zero Policy is usable: at most 5
	// attempts, the first retry after up to 100ms, doubling, at most 10s.
	Policy backoff.Policy
	// Budget, if not nil, is deposited into by every request whose first
	// attempt is sent and withdrawn from by every retry; a refusal ends the
	// retries. Share one per dependency.
	Budget *backoff.Budget
	// Breakers, if not nil, keeps one breaker per URL host (in lower case,
	// without a trailing dot or the scheme's default port): an open breaker
	// refuses an attempt without sending it.
	Breakers *backoff.Breakers[string]
	// Throttle, if not nil, is asked before the first attempt and, for
	// each retry, before its wait and before the Budget (as backoff.Retry
	// asks them), so that a throttled retry spends neither a token nor the
	// wait: the last result is then returned, as for a budget refusal. It
	// is told of every attempt's outcome.
	Throttle *backoff.Throttle
	// IdempotencyHeader names a request header (for example
	// "Idempotency-Key") whose presence, with a non-empty value, makes a
	// request with a non-idempotent method (POST, PATCH) safe to retry.
	// Empty means that only idempotent methods are retried.
	IdempotencyHeader string
	// RetryRefused, if true, makes a request that is not idempotent safe to
	// retry after a Retryable response that carries RefusedHeader
	// ("Stormguard-Refused") as a shedhttp server writes it on every
	// refusal, to say that the request's handler did not run: one value,
	// one of the reasons of shedhttp's JSON body (queue_full, wait_timeout,
	// paused, too_many_keys, deadline, evicted, rate_limited,
	// limit_reached, bad_deadline, other). Set it only for servers you
	// trust to send that header truthfully: any server or proxy on the way
	// can send it, and a gateway that copies a downstream refusal's headers
	// into its own answer would claim that its own work did not run. False
	// (the default) ignores the header. A body must still be rewindable
	// (GetBody).
	RetryRefused bool
	// Classify says what each attempt's result is: exactly one of resp and
	// err is non-nil. It must not read or close resp.Body. Nil means
	// DefaultClassify. It is not called for an error that the caller's
	// cancelled or expired context caused: that ends the request at once.
	Classify func(resp *http.Response, err error) Class
	// MaxRetryAfter bounds the Retry-After hints honoured: a 429 or 503
	// that asks for a longer wait is handed to the caller at once. Zero
	// means backoff.DefaultMaxRetryAfter (5 minutes); negative is invalid.
	MaxRetryAfter time.Duration
	// DrainLimit is how many bytes of a discarded response body are read
	// before it is closed, so that its connection can be reused. Zero means
	// DefaultDrainLimit (64 KiB); negative means do not drain, only close.
	// A drain still running when the wait before the next attempt ends, or
	// when the request's context is done, is cut short by closing the body
	// from another goroutine (net/http's response bodies allow this; a
	// Base's own bodies must too).
	DrainLimit int64
	// OnAttempt, if not nil, is called after every attempt (and after every
	// attempt refused before it was sent), on the goroutine of RoundTrip,
	// before any wait; for requests made at the same time it is called
	// concurrently. It must not block, nor read or close the response's
	// body. If it (or Classify, Base or GetBody) panics, the open response
	// body and the breaker's ticket are released and the panic goes on.
	OnAttempt func(Attempt)
}

// Attempt describes one attempt, for Config.OnAttempt.
type Attempt struct {
	// Request is the request as sent (a shallow copy of the caller's for
	// a retry). It must not be modified.
	Request *http.Request
	// N is the attempt's number, from 1.
	N int
	// StatusCode is the response's status, or zero if there was none.
	StatusCode int
	// Err is the transport's error, or the refusal of a breaker or a
	// throttle (the request was then not sent); nil with a response.
	Err error
	// Class is how the result was classified.
	Class Class
	// Wait is the wait chosen before the next attempt; zero if there is
	// none.
	Wait time.Duration
	// GiveUp is why no further attempt follows a result that was not a
	// Success: a backoff sentinel (ErrAttemptsExhausted,
	// ErrElapsedExhausted, ErrDeadline, ErrBudgetExhausted,
	// ErrRetryAfterTooLong), one of this package's (ErrNotIdempotent,
	// ErrBodyNotRewindable, ErrNotRetryable), a refusal, or the context's
	// error. Nil after a Success and when a retry follows.
	GiveUp error
}

// StatusError is a response that failed, as the transport records it in a
// breaker and a throttle and as the Last error of a *backoff.Error.
type StatusError struct {
	// Method and Host identify the request.
	Method, Host string
	// StatusCode is the response's status.
	StatusCode int
	// Wait is the response's Retry-After hint (on a 429 or 503), zero if
	// none: its Retry-After-Ms (RetryAfterMsHeader) if that is valid and
	// refines its Retry-After (see RetryAfterMsHeader).
	Wait time.Duration
	// Refused reports that the response carried a RefusedHeader as
	// shedhttp writes it (one value, one of its reasons): the server says
	// that the request's handler did not run.
	Refused bool
}

// refusalReason reports whether s is a reason shedhttp's RefusedHeader
// carries (the "reason" of its JSON body).
func refusalReason(s string) bool {
	switch s {
	case "queue_full", "wait_timeout", "paused", "too_many_keys", "deadline",
		"evicted", "rate_limited", "limit_reached", "bad_deadline", "other":
		return true
	}
	return false
}

// refused reports whether fail is a response whose server says it refused
// the request before running it.
func refused(fail error) bool {
	se, ok := fail.(*StatusError)
	return ok && se.Refused
}

// Error says which request got which status, for example
// `backoffhttp: GET api.internal: 503 Service Unavailable (Retry-After 2s)`.
func (e *StatusError) Error() string {
	s := "backoffhttp: " + e.Method + " " + e.Host + ": " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	if e.Wait > 0 {
		s += " (Retry-After " + e.Wait.String() + ")"
	}
	return s
}

// RetryAfter returns the response's Retry-After hint, so that a
// backoff.Retry around a client finds it.
func (e *StatusError) RetryAfter() time.Duration { return e.Wait }

// Transport is an http.RoundTripper that retries safe requests. Build one
// with New; the zero Transport is usable and has the defaults of Config{}.
// A Transport is safe for concurrent use and holds no state of its own
// between requests (the Budget, Breakers and Throttle it is given do).
type Transport struct {
	cfg Config
}

// New returns a Transport configured by cfg, or an error matching
// ErrInvalidConfig that names every invalid field.
func New(cfg Config) (*Transport, error) {
	var errs []string
	if err := cfg.Policy.Validate(); err != nil {
		errs = append(errs, "Policy: "+err.Error())
	}
	if cfg.MaxRetryAfter < 0 {
		errs = append(errs, fmt.Sprintf("MaxRetryAfter %v is negative", cfg.MaxRetryAfter))
	}
	if h := cfg.IdempotencyHeader; h != "" && !validHeaderName(h) {
		errs = append(errs, fmt.Sprintf("IdempotencyHeader %q is not a valid header name", h))
	}
	if cfg.Base != nil {
		if v := reflect.ValueOf(cfg.Base); nilable(v.Kind()) && v.IsNil() {
			errs = append(errs, fmt.Sprintf("Base is a nil %T", cfg.Base))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(errs, "; "))
	}
	if cfg.IdempotencyHeader != "" {
		cfg.IdempotencyHeader = http.CanonicalHeaderKey(cfg.IdempotencyHeader)
	}
	return &Transport{cfg: cfg}, nil
}

func nilable(k reflect.Kind) bool {
	switch k {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Slice, reflect.Chan, reflect.Interface:
		return true
	}
	return false
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// CloseIdleConnections closes the idle connections of the base transport, if
// it has such a method, so that http.Client.CloseIdleConnections reaches it.
func (t *Transport) CloseIdleConnections() {
	type closeIdler interface{ CloseIdleConnections() }
	if c, ok := t.base().(closeIdler); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.cfg.Base != nil {
		return t.cfg.Base
	}
	return http.DefaultTransport
}

// idempotent reports whether req may be sent twice.
func (t *Transport) idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	if h := t.cfg.IdempotencyHeader; h != "" {
		if v := req.Header[h]; len(v) > 0 && v[0] != "" {
			return true
		}
	}
	return false
}

// RoundTrip sends req, and sends it again as the Config says while its
// result is retryable, the request is safe to repeat and the bounds allow.
// It returns the first response that is not retried (its body unread) or the
// last error; see the package documentation for the rules.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	cfg := &t.cfg
	base := t.base()
	host := ""
	if req.URL != nil {
		host = hostKey(req.URL)
	}
	var (
		send         = req // the request of the current attempt
		prev         time.Duration
		start, first time.Time
		deposited    bool
		resp         *http.Response // the last response, still open
		lastErr      error          // the last error (nil with resp)
	)
	if cfg.Policy.MaxElapsed > 0 {
		start = time.Now()
	}
	for n := 1; ; n++ {
		// Ask the guards. A refusal sends nothing, and the previous result
		// (a transport error, or the status of a response already drained)
		// stands.
		var ticket backoff.Ticket
		var refusal error
		if cfg.Breakers != nil {
			ticket, refusal = cfg.Breakers.Allow(host)
		}
		var (
			r     *http.Response
			err   error
			class Class
			fail  error
		)
		// The throttle is asked here for the first attempt only: a retry
		// was asked before its wait (see next).
		if refusal == nil && n == 1 && cfg.Throttle != nil {
			if refusal = cfg.Throttle.Check(); refusal != nil {
				cfg.Breakers.Release(ticket)
			}
		}
		if refusal == nil {
			r, err, class, fail = t.exchange(ctx, base, send, host, &deposited, ticket)
			if cfg.Throttle != nil {
				cfg.Throttle.Done(ctx, fail)
			}
		}
		if refusal != nil {
			closeBody(send)
			t.hook(Attempt{Request: send, N: n, Err: refusal, Class: Failure, GiveUp: refusal}, nil, nil)
			if n == 1 {
				return nil, refusal
			}
			// As in backoff.Retry, an attempt a breaker refused counts as
			// one (the throttle refuses retries before their wait).
			return giveUp(nil, lastErr, refusal, n, first, 0)
		}
		if err != nil && ctx.Err() != nil {
			// The caller's cancellation or deadline: it ends the request.
			// A cancellation counts as nothing for the breaker, a deadline
			// as the failure it is (see the backoff package).
			if errors.Is(ctx.Err(), context.Canceled) {
				cfg.Breakers.Release(ticket)
			} else {
				cfg.Breakers.Record(ticket, err)
			}
			t.hook(Attempt{Request: send, N: n, Err: err, Class: class, GiveUp: ctx.Err()}, nil, nil)
			return nil, err
		}
		if cfg.Breakers != nil {
			cfg.Breakers.Record(ticket, fail)
		}
		if class == Success {
			if cfg.OnAttempt != nil {
				t.hook(Attempt{Request: send, N: n, StatusCode: r.StatusCode, Class: Success}, r, nil)
			}
			return r, nil
		}
		resp, lastErr = r, err
		if n == 1 {
			first = time.Now()
		}
		status := 0
		if r != nil {
			status = r.StatusCode
		}
		// The wait runs from the decision (the time the deadline was checked
		// against): draining the discarded body is part of it.
		wait, decided, reason := t.next(ctx, req, class, n, prev, start, fail)
		wakeAt := decided.Add(wait)
		var nextReq *http.Request
		if reason == nil && req.Body != nil && req.Body != http.NoBody {
			body, gerr := rewind(req, resp)
			switch {
			case gerr != nil:
				reason = fmt.Errorf("%w: GetBody: %w", ErrBodyNotRewindable, gerr)
			case body == nil:
				reason = fmt.Errorf("%w: GetBody returned a nil body", ErrBodyNotRewindable)
			default:
				nextReq = shallowCopy(req)
				nextReq.Body = body
			}
		}
		// The budget is asked last, so that a retry that cannot be made
		// spends no token.
		if reason == nil && cfg.Budget != nil && !cfg.Budget.Withdraw() {
			reason = backoff.ErrBudgetExhausted
			if nextReq != nil {
				closeBody(nextReq)
				nextReq = nil
			}
		}
		if cfg.OnAttempt != nil {
			a := Attempt{Request: send, N: n, StatusCode: status, Err: err, Class: class, GiveUp: reason}
			if reason == nil {
				a.Wait = wait
			}
			t.hook(a, resp, nextReq)
		}
		if reason != nil {
			return giveUp(resp, lastErr, reason, n, first, wait)
		}
		if nextReq == nil {
			nextReq = shallowCopy(req)
		}
		// The response is drained before the wait so that its connection
		// is back in the pool while we sleep; a cancelled wait returns the
		// context's error.
		if resp != nil {
			t.discard(ctx, resp, wakeAt)
			resp = nil
		}
		if serr := ctxsleep.Sleep(ctx, time.Until(wakeAt)); serr != nil {
			closeBody(nextReq)
			last := lastErr
			if last == nil {
				last = fail
			}
			return nil, &backoff.Error{Reason: serr, Last: last, Attempts: n, Elapsed: time.Since(first)}
		}
		if lastErr == nil {
			lastErr = fail // the response is gone: its status stands for it
		}
		send = nextReq
		prev = wait
	}
}

func (t *Transport) classify(resp *http.Response, err error) Class {
	if t.cfg.Classify != nil {
		return t.cfg.Classify(resp, err)
	}
	return DefaultClassify(resp, err)
}

// exchange sends one attempt and classifies its result: fail is nil for a
// Success, else the transport error or a *StatusError. If the base or
// Classify panics, the breaker's ticket is released and the response
// closed, and the panic goes on.
func (t *Transport) exchange(ctx context.Context, base http.RoundTripper, send *http.Request, host string, deposited *bool, ticket backoff.Ticket) (r *http.Response, err error, class Class, fail error) {
	if !*deposited && t.cfg.Budget != nil {
		t.cfg.Budget.Deposit()
		*deposited = true
	}
	ok := false
	defer func() {
		if !ok {
			t.cfg.Breakers.Release(ticket)
			if r != nil && r.Body != nil {
				_ = r.Body.Close()
			}
		}
	}()
	r, err = base.RoundTrip(send)
	if err != nil {
		if r != nil {
			// A RoundTripper that broke its contract: close what it
			// gave, without reading a body that may never end.
			if r.Body != nil {
				_ = r.Body.Close()
			}
			r = nil
		}
		if ctx.Err() != nil {
			ok = true
			return nil, err, Failure, err
		}
	} else if r == nil {
		err = fmt.Errorf("backoffhttp: %T.RoundTrip returned neither a response nor an error", base)
	}
	class = t.classify(r, err)
	ok = true
	if class == Success {
		if r == nil {
			return nil, err, Failure, err
		}
		return r, nil, Success, nil
	}
	fail = err
	if fail == nil {
		se := &StatusError{Method: send.Method, Host: host, StatusCode: r.StatusCode, Wait: retryAfter(r)}
		if v := r.Header[RefusedHeader]; len(v) == 1 && refusalReason(v[0]) {
			se.Refused = true
		}
		fail = se
	}
	return r, err, class, fail
}

// next decides, after attempt n failed with class, the wait before attempt
// n+1, or the reason not to make it.
func (t *Transport) next(ctx context.Context, req *http.Request, class Class, n int, prev time.Duration, start time.Time, fail error) (time.Duration, time.Time, error) {
	cfg := &t.cfg
	if class != Retryable {
		return 0, time.Time{}, ErrNotRetryable
	}
	if !t.idempotent(req) && !(cfg.RetryRefused && refused(fail)) {
		return 0, time.Time{}, ErrNotIdempotent
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return 0, time.Time{}, ErrBodyNotRewindable
	}
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, err
	}
	now := time.Now()
	var elapsed time.Duration
	if cfg.Policy.MaxElapsed > 0 {
		elapsed = now.Sub(start)
	}
	wait, reason := cfg.Policy.Next(n, elapsed, prev, rand.Float64())
	if reason != nil {
		return wait, now, reason
	}
	var se *StatusError
	if errors.As(fail, &se) && se.Wait > 0 {
		maxHint := cfg.MaxRetryAfter
		if maxHint <= 0 {
			maxHint = backoff.DefaultMaxRetryAfter
		}
		if se.Wait > maxHint {
			return se.Wait, now, backoff.ErrRetryAfterTooLong
		}
		if se.Wait > wait {
			wait = se.Wait
			if cfg.Policy.MaxElapsed > 0 && wait > cfg.Policy.MaxElapsed-elapsed {
				return wait, now, backoff.ErrElapsedExhausted
			}
		}
	}
	if dl, ok := ctx.Deadline(); ok && !now.Add(wait).Before(dl) {
		return wait, now, backoff.ErrDeadline
	}
	// As backoff.Retry does, the throttle is asked before the wait and
	// before the budget, so that a throttled retry spends neither.
	if err := cfg.Throttle.Check(); err != nil {
		return wait, now, err
	}
	return wait, now, nil
}

// rewind calls req.GetBody. If it panics, resp's body (resp may be nil) is
// closed and the panic goes on.
func rewind(req *http.Request, resp *http.Response) (body io.ReadCloser, err error) {
	ok := false
	defer func() {
		if !ok && resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
	}()
	body, err = req.GetBody()
	ok = true
	return body, err
}

// giveUp returns the last result: the response with its body intact, or the
// last error wrapped in a *backoff.Error when a bound stopped the retries.
func giveUp(resp *http.Response, lastErr, reason error, attempts int, first time.Time, next time.Duration) (*http.Response, error) {
	if resp != nil {
		return resp, nil
	}
	switch {
	case lastErr == nil:
		return nil, reason
	case errors.Is(reason, ErrNotRetryable), errors.Is(reason, ErrNotIdempotent), errors.Is(reason, ErrBodyNotRewindable):
		return nil, lastErr
	}
	e := &backoff.Error{Reason: reason, Last: lastErr, Attempts: attempts, Elapsed: time.Since(first)}
	if reason == backoff.ErrDeadline || reason == backoff.ErrElapsedExhausted || reason == backoff.ErrRetryAfterTooLong {
		e.Next = next
	}
	return nil, e
}

// hook calls OnAttempt with a. If it panics, the body of resp and that of
// next (either may be nil) are closed, and the panic goes on.
func (t *Transport) hook(a Attempt, resp *http.Response, next *http.Request) {
	if t.cfg.OnAttempt == nil {
		return
	}
	ok := false
	defer func() {
		if !ok {
			if resp != nil && resp.Body != nil {
				_ = resp.Body.Close()
			}
			if next != nil {
				closeBody(next)
			}
		}
	}()
	t.cfg.OnAttempt(a)
	ok = true
}

// discard drains (a bounded amount of) resp's body and closes it. A drain
// still running when ctx is done, or at until, is cut short:
// the body is closed under the blocked read, which ends it for the bodies
// of net/http's transports.
func (t *Transport) discard(ctx context.Context, resp *http.Response, until time.Time) {
	if resp.Body == nil {
		return
	}
	limit := t.cfg.DrainLimit
	if limit == 0 {
		limit = DefaultDrainLimit
	}
	if limit <= 0 || resp.Body == http.NoBody {
		_ = resp.Body.Close()
		return
	}
	c := &closer{body: resp.Body}
	stop := context.AfterFunc(ctx, c.close)
	tm := time.AfterFunc(time.Until(until), c.close)
	_, _ = io.CopyN(io.Discard, resp.Body, limit)
	stop()
	tm.Stop()
	c.close()
}

// closer closes a body once, from whichever goroutine comes first.
type closer struct {
	once sync.Once
	body io.Closer
}

func (c *closer) close() { c.once.Do(func() { _ = c.body.Close() }) }

// closeBody closes the body of a request that is not sent, as the
// RoundTripper contract asks.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func shallowCopy(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	return r
}

// retryAfter parses the Retry-After header of a 429 or 503: delta-seconds or
// an HTTP-date (a date in the past is zero). Anything else is zero. A value
// beyond time.Duration's range saturates.
func retryAfter(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	v := resp.Header["Retry-After"]
	if len(v) == 0 {
		return 0
	}
	d := parseRetryAfter(v[0], time.Now)
	if ms := resp.Header[RetryAfterMsHeader]; len(ms) > 0 && d > 0 {
		// It only refines the whole seconds: a value that contradicts
		// them (longer, or a second or more shorter) is ignored.
		if p := parseRetryAfterMs(ms[0]); p > 0 && p <= d && p > d-time.Second {
			return p
		}
	}
	return d
}

// parseRetryAfterMs parses a Retry-After-Ms value: a whole number of
// milliseconds. Anything else, or a value beyond time.Duration's range, is
// zero (it is only ever used within a second under a Retry-After).
func parseRetryAfterMs(s string) time.Duration {
	ms, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || ms > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

func parseRetryAfter(s string, now func() time.Time) time.Duration {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	if c := s[0]; c >= '0' && c <= '9' {
		secs, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
				return math.MaxInt64
			}
			return 0
		}
		if secs > uint64(math.MaxInt64/int64(time.Second)) {
			return math.MaxInt64
		}
		return time.Duration(secs) * time.Second
	}
	when, err := http.ParseTime(s)
	if err != nil {
		return 0
	}
	if d := when.Sub(now()); d > 0 {
		return d
	}
	return 0
}

// hostKey is the key of u's breaker: its host in lower case (but an IPv6
// zone), without a trailing dot, and without the port if it is the scheme's default. It
// allocates only to lower an upper-case letter, or to drop a trailing dot
// before an explicit port; a host already in that form costs one pass over
// its bytes.
func hostKey(u *url.URL) string {
	h := u.Host
	n := len(h)
	for i := 0; i < n; i++ {
		switch c := h[i]; {
		case c-'A' < 26, c >= 0x80, c == ':' && i > 0 && h[i-1] == '.':
			return canonicalHost(u)
		}
	}
	if n > 0 {
		switch h[n-1] {
		case '.', ':':
			return canonicalHost(u)
		case '0', '3':
			if strings.HasSuffix(h, ":80") || strings.HasSuffix(h, ":443") {
				return canonicalHost(u)
			}
		}
	}
	return h
}

// canonicalHost is hostKey for a host that needs a change.
func canonicalHost(u *url.URL) string {
	h, port := u.Host, ""
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i:], ']') < 0 {
		h, port = h[:i], h[i:]
	}
	switch {
	case port == ":",
		port == ":80" && strings.EqualFold(u.Scheme, "http"),
		port == ":443" && strings.EqualFold(u.Scheme, "https"):
		port = ""
	}
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	} else if port != "" {
		h = u.Host // unchanged: no need to join
		port = ""
	}
	if port != "" {
		h += port
	}
	if i := strings.IndexByte(h, '%'); i >= 0 && h[0] == '[' {
		// An IPv6 zone names an interface: its case is its own.
		return strings.ToLower(h[:i]) + h[i:]
	}
	return strings.ToLower(h)
}
