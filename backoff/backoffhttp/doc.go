// Package backoffhttp is an http.RoundTripper that retries failed requests
// with a backoff.Policy, a shared backoff.Budget, per-host circuit breakers
// and an optional client-side throttle, and retries only what is safe to send
// twice.
//
//	budget, _ := backoff.NewBudget(backoff.BudgetConfig{}) // retries ≤ 10% of requests + 1/s
//	hosts, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{})
//	rt, err := backoffhttp.New(backoffhttp.Config{
//		Policy:            backoff.Policy{Base: 50 * time.Millisecond, MaxAttempts: 4},
//		Budget:            budget,
//		Breakers:          hosts,
//		IdempotencyHeader: "Idempotency-Key",
//	})
//	if err != nil {
//		panic(err)
//	}
//	client := &http.Client{Transport: rt, Timeout: 5 * time.Second}
//	resp, err := client.Get(volumesURL + "/v1/volumes/vol-42")
//
// The zero Transport is usable too: http.DefaultTransport underneath,
// backoff.Policy{} (at most 5 attempts), no budget, breaker or throttle.
//
// # What is retried
//
// A request is retried only if sending it twice is safe: its method is GET,
// HEAD, OPTIONS, TRACE, PUT or DELETE (or empty, which means GET), or it
// carries a non-empty header named by Config.IdempotencyHeader. Any other
// request (a POST or PATCH without the header) is sent exactly once by this
// transport, whatever happens to it, even a connection error: the transport
// cannot tell whether the server acted on it. (net/http's Transport, as Base,
// re-sends on its own a request that died on a reused connection only if
// nothing of it was written, or if it carries an Idempotency-Key or
// X-Idempotency-Key header, even an empty one, which this transport does not
// count as a key.) A request with a body is retried only if its GetBody
// rewinds it (http.NewRequest sets GetBody for *bytes.Buffer, *bytes.Reader
// and *strings.Reader bodies); without GetBody it is sent once.
//
// A server that refused a request before running it can say so: shedhttp
// sets the Stormguard-Refused header (RefusedHeader) on every refusal. With
// Config.RetryRefused, a request that is not idempotent is retried after a
// Retryable response carrying that header. It is off by default, since any
// server or proxy on the way can send the header: opt in only for servers
// you trust to send it truthfully.
//
// Config.Classify says what a result is; by default a transport error is
// retried (except a certificate that failed verification, and the caller's
// own cancellation or deadline), a 429, 502, 503 or 504 is retried (but not
// a 503 whose Stormguard-Refused header says "deadline": a retry would carry
// the same deadline), any other 5xx is a failure that is not retried, and
// everything else is a success.
// On a 429 or 503 the Retry-After header (delta-seconds or an HTTP-date) is
// a minimum for the next wait, or the Retry-After-Ms header
// (RetryAfterMsHeader, in milliseconds, which shedhttp sends beside it) when
// it refines the Retry-After (no longer, less than a second shorter); a hint
// longer than Config.MaxRetryAfter ends
// the retries and hands that response to the caller, rather than retry
// before the server asked or wait for an unbounded time.
//
// # Deadlines and bodies
//
// Retries never outlive the caller: no attempt starts after the request's
// context is done, a wait between attempts ends at once when it is, and a wait
// that would end after the context's deadline is not started: the last
// response is returned instead, its body intact and unread. Every response the
// transport discards is drained (up to Config.DrainLimit bytes, so that its
// connection can be reused) and closed; a drain still running when the wait
// ends or the context is done is cut short by closing the body under the
// blocked read, so a body that never ends delays neither. The response handed
// back is never read. As the RoundTripper contract asks, the request's body is
// closed even when the request is not sent (a breaker or throttle refused it),
// and the caller's *http.Request is never modified: a retry sends a shallow
// copy with a fresh body from GetBody.
//
// # Budget, breakers and throttle
//
// Every request whose first attempt is sent deposits into Config.Budget, and
// every retry withdraws a token from it (once the retry's body is rewound, so
// a retry that cannot be made spends none; one that a breaker refuses after
// its wait has spent its token); when the budget refuses, retrying stops and
// the last result is returned, so a large outage switches retries off instead
// of multiplying the load by MaxAttempts. Config.Throttle is asked before the
// first attempt and, as backoff.Retry asks it, before each retry's wait and
// budget token: a throttled retry spends neither, and ends the retries as a
// budget refusal does. Config.Breakers keeps one breaker per URL host
// (req.URL.Host in lower case, without a trailing dot or the scheme's default
// port, so http://API.internal:80/ and http://api.internal/ share one): an
// open breaker refuses without sending, with an error that matches
// backoff.ErrBreakerOpen and carries, as a backoff.RetryAfterError, the time
// until its next probe. Whatever Classify does not call a Success counts as a
// failure for the breaker and the throttle: by default a transport error, a
// 429 and a 5xx; any other status, 4xx included, counts as a success, since
// the host answered on the merits. A failing request is recorded as a
// *StatusError (or the transport error), so a BreakerConfig.Classify can tell
// them apart. A request the caller cancelled counts as nothing; one that ran
// into the caller's deadline counts as the failure it is, as everywhere in
// package backoff.
//
// # Errors
//
// A result that is not retried (an unsafe request, a body without GetBody, a
// failure Classify does not retry) comes back unchanged: the response with a
// nil error, as net/http expects of a RoundTripper, or the transport's error.
// So does the last response when a bound decided before the wait stops the
// retries (attempts, MaxElapsed, the deadline, the throttle, the budget, a
// Retry-After hint too long). A transport error stopped by such a bound comes
// back as a *backoff.Error whose Reason is the bound and Last the error. The
// response before a wait is drained and closed when the wait begins, so that
// its connection is reused: if the wait is cancelled, or a breaker refuses the
// attempt after it, RoundTrip returns a *backoff.Error whose Reason is the
// context's error or the refusal and whose Last is the previous failure, a
// *StatusError for a response (it carries the status and Retry-After hint).
//
// # Cost
//
// A request that succeeds at once allocates nothing in this package, with or
// without a budget, breakers, a throttle and a hook (with breakers, unless its
// URL's host has an upper-case letter, or a trailing dot before a port: the
// breaker key is then one new string), and reads no clock of its own unless
// Policy.MaxElapsed is set (a Throttle reads one per request, and a Breaker
// does when it counts slow calls or keeps a time window): one context check,
// the breaker's lock-free closed-state admission and record (after a
// read-locked lookup of the host's breaker), the budget's deposit and a status
// check. A nil OnAttempt hook costs one comparison.
package backoffhttp
