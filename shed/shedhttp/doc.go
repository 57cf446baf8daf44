// Package shedhttp is net/http server middleware that admits each request
// through a shed primitive — a Queue, a Partition keyed by the request, a
// Bulkhead, an AdaptiveLimit, or a rate limiter — and answers a refusal at
// once with 503 or 429, a Retry-After computed from the refusal, and a small
// JSON body.
//
//	zones, err := shed.NewPartition(shed.PartitionConfig[string]{
//		Total: 64, Share: 0.4, MaxQueuePerKey: 32, MaxWait: 50 * time.Millisecond,
//	})
//	if err != nil {
//		panic(err)
//	}
//	h, err := shedhttp.New(mux, shedhttp.Options{
//		Partition:      zones,
//		Key:            func(r *http.Request) string { return r.Header.Get("X-Zone") },
//		DeadlineHeader: "X-Timeout-Ms", // "250" (ms) or "250ms"
//	})
//	if err != nil {
//		panic(err) // errors.Is(err, shedhttp.ErrInvalidConfig): a bad combination
//	}
//	srv := &http.Server{Addr: ":8080", Handler: h}
//
// h is an http.Handler in front of mux: serve it as any other
// (srv.ListenAndServe()).
//
// # Admission
//
// Set one of Options.Queue, Partition, Bulkhead and Adaptive to bound the
// requests in flight, and/or one of Limiter and KeyedLimiter to bound their
// rate (checked first, so a request refused for its rate never holds a
// slot). Options.Key chooses a request's key (a tenant, an Availability
// Zone, a route) for Partition and KeyedLimiter; Options.Priority its class
// for Queue (Critical first, Sheddable shed first); Options.Cost its
// expected duration, so that a Queue never starts a request that cannot
// finish before its deadline. New checks the combination and returns an
// error matching ErrInvalidConfig and a precise reason (ErrNoAdmission,
// ErrTwoAdmissions, ErrNoKey, ErrUnused) for a bad one; Options has no
// other required field.
//
// The slot is released when the next handler returns or panics; a panic
// (http.ErrAbortHandler included) goes on up to net/http unchanged. With an
// adaptive limit (an AdaptiveLimit, or a Bulkhead, Queue or Partition with
// an Adaptive config) the handler's latency is reported as the sample,
// counted as dropped if the request's deadline passed while it ran; a
// handler that panicked, or whose client went away while it ran, reports
// no sample, as shed's Do does.
//
// # Deadlines and departed clients
//
// A request's deadline is its context's, shortened by the header named by
// Options.DeadlineHeader if it carries one (see ParseTimeout for the exact
// forms, milliseconds or a Go duration). It feeds admission: a Queue drops
// a request whose deadline can no longer be met rather than start it late,
// and every primitive refuses one whose deadline has passed
// (shed.ErrDeadline, 503). A malformed header is answered 400 with
// ErrBadDeadline, or, with Options.IgnoreBadDeadline, admitted as if it
// were absent; either way Options.OnEvent is told (BadDeadline) and
// Stats counts it. The handler receives the shortened context.
//
// A request whose context is cancelled (its client went away) before the
// handler runs — on arrival, while it waits for a slot or a token, or
// between admission and the handler — is dropped: the handler is not
// called, the slot goes back, 499 is written for the access log, and
// OnEvent (Gone) and Stats are told. (Over HTTP/1.x net/http notices a
// departed client only once the request's body has been read: see
// ServeHTTP.)
//
// # Refusals
//
// A refusal is answered by WriteRejection (or Options.Respond): the status
// from Options.Status (DefaultStatus: 429 for a rate limit, 503 for every
// other refusal), a Retry-After header in whole seconds rounded up (at
// least 1) from the refusal's own numbers (see RetryAfter: when the next
// token is due, when an adaptive limit expects a slot, how long the request
// waited in vain), left out when the refusal gives no basis for one (a
// paused key, too many keys, a deadline, and a full queue or an adaptive
// limit reached before an adaptive limit has measured the handler's
// latency), a Retry-After-Ms header beside it with the hint in
// milliseconds (RetryAfterMsHeader: backoffhttp prefers it, so that a 20ms
// hint is not waited as a second), a Stormguard-Refused header
// (RefusedHeader) naming the reason, which says that the handler did not
// run (backoffhttp.Config.RetryRefused then retries even a POST), and a
// JSON body:
//
//	{"error":"rate_limited","reason":"rate_limited","retry_after_ms":750,"key":"tenant-7","message":"shed: rate limited (next token in 750ms; 10/s, burst 20) for key \"tenant-7\""}
//
// # Cost
//
// The middleware holds no global state and starts no goroutine. Admitting a
// request adds the primitive's admission (a compare-and-swap for a Bulkhead)
// and two checks of the request's context to the handler; it allocates
// nothing unless the request carries a deadline header (a context with a
// timer and a shallow copy of the request), waits in a queue, or is refused.
// A nil OnEvent costs one comparison. bench/RESULTS.md has the overhead,
// measured in process and over loopback against failsafe-go's failsafehttp
// (tens of nanoseconds against microseconds).
package shedhttp
