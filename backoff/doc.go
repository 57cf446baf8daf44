// Package backoff decides when to retry and when to stop, so that retries
// help a struggling dependency recover instead of keeping it down.
//
// Wrap a call to a dependency in Retry or Do, with a Policy, and share one
// Budget and one Breaker between all the dependency's callers:
//
//	ctx := context.Background()
//	// One Budget and one Breaker per dependency, shared by all its callers.
//	budget, err := backoff.NewBudget(backoff.BudgetConfig{Ratio: 0.1}) // retries add at most 10% load
//	if err != nil {
//		panic(err)
//	}
//	breaker, err := backoff.NewBreaker(backoff.BreakerConfig{Name: "volumes", SlowCallDuration: 2 * time.Second})
//	if err != nil {
//		panic(err)
//	}
//	policy := backoff.Policy{Base: 10 * time.Millisecond, Cap: time.Second, MaxAttempts: 5}
//
//	v, err := backoff.Do(ctx, policy, func(ctx context.Context) (string, error) {
//		return attach(ctx, "vol-42") // backoff.Permanent(err) for what a retry cannot fix
//	}, backoff.WithBudget(budget), backoff.WithBreaker(breaker))
//
// # Primitives
//
// A retry policy that multiplies load during an outage is the most common
// amplifier of metastable failures. This package breaks the loop in these
// ways:
//
//   - Policy spaces attempts out exponentially, with jitter so that clients
//     that failed together do not retry together, and bounds every loop by
//     attempts and by elapsed time.
//   - Retry and Do never sleep in vain: if the next attempt would start after
//     the context's deadline or MaxElapsed, they return at once.
//   - Budget, shared by every caller of one dependency, bounds retries to a
//     fraction of requests, so that a large outage switches retries off
//     instead of multiplying the load by MaxAttempts.
//   - Breaker stops calling a dependency that fails or is slow, and Breakers
//     keeps one per peer, so that callers stop asking the peers that cannot
//     help; WithBreaker makes Retry wait out an open breaker.
//   - Throttle is the Google SRE book's client-side adaptive throttle: each
//     client refuses requests locally with probability
//     max(0, (requests − K·accepts)/(requests + 1)) over a sliding window,
//     so a backend that refuses most calls stops receiving them without any
//     coordination; WithThrottle puts it in front of every attempt of Retry.
//   - Hedger sends a hedge when an attempt is slow (after a fixed delay or
//     a tracked latency percentile) and pays for every hedge from the same
//     Budget as retries, so a storm turns hedging off as it turns retries
//     off; DoHedged makes one hedged call and RetryHedged hedges every
//     attempt of a retry loop.
//
// # History
//
// In April 2011 thousands of EBS storage nodes lost their mirrors at once
// and searched for free space for new ones; the nodes that found none "did
// not back off aggressively enough", and the searching kept the cluster
// saturated long after the network fault was repaired.
//
// # Pure core, thin shell
//
// Policy.Delay is the pure computation: given the retry number, the previous
// delay and a uniform random draw it returns the delay, reads no clock and
// no random source, and does not allocate. Simulations call it directly
// (the stormguard examples do). Budget.WithdrawAt likewise takes the time as
// an argument, Throttle.AllowAt the time and a uniform draw, and
// Hedger.DelayAt and ObserveAt the time. Retry, Do, Policy.Delays,
// Budget.Withdraw, Throttle.Allow and DoHedged are the convenience layer
// that reads the real clock and a fast shared random source.
//
// # Delays
//
// For the n-th retry (n = 1 after the first failed attempt) the envelope is
//
//	e(n) = min(Cap, Base·Multiplier^(n−1))
//
// and the delay is drawn uniformly from [0, e(n)] (JitterFull, the default),
// from [e(n)/2, e(n)] (JitterEqual), from [Base, min(Cap, 3·previous delay)]
// (JitterDecorrelated), or is e(n) itself (JitterNone). The computation
// saturates at Cap instead of overflowing, for any n.
//
// # Circuit breakers
//
// Breaker.Call runs a function through a breaker; a call the breaker
// refuses is not made, and its error matches ErrBreakerOpen.
// A closed Breaker counts results in a sliding window of calls or of time
// and opens when, with at least MinCalls calls in it, the failure rate or
// the slow-call rate reaches its threshold (resilience4j's two thresholds).
// Open, it refuses with an *OpenError that says how long until the next
// probe (its RetryAfter), so Retry with WithBreaker sleeps until then
// instead of spinning; the first call after the wait is a probe, and at
// most Probes probes are in flight, each bounded by ProbeTimeout. AllowAt
// and RecordAt take the time, for simulations; the closed state's fast path
// is lock-free and allocation-free.
//
// Which calls count is the caller's choice (BreakerConfig.Classify), with
// one rule about contexts that Call and Retry apply first. A call whose
// context the caller cancelled (ctx.Err() is context.Canceled) never counts:
// the caller walked away, which says nothing about the dependency. A call
// that ran into the caller's deadline counts as the error it returned,
// context.DeadlineExceeded, which by default is a failure: the dependency
// did not answer in the time the caller had, and a breaker that ignored
// those could never open against a dependency that hangs — the slow calls
// into the sick zone that starved the EBS control plane in 2011. So give
// calls a deadline a healthy dependency meets, or have Classify return
// OutcomeIgnore for context.DeadlineExceeded if your deadlines say more
// about the caller than the dependency (and set SlowCallDuration, so that
// hanging calls still count as slow). A dependency's own timeout (an error
// returned while the caller's context is still live) is classified like
// any other error.
//
// A Throttle counts by the same rules (ThrottleConfig.Classify): the
// caller's cancellation counts as nothing, the caller's deadline as the
// error it returned, and by default every error, Permanent or not, counts
// against the dependency (a refusal, as a Breaker's failure): Permanent
// says a retry will not help, not that the dependency is well. Teach
// Classify which errors are the dependency's answers on their merits.
//
// # Nil guards
//
// A nil *Throttle, *Breaker or *Breakers admits every call and counts
// nothing, as WithThrottle(nil), WithBreaker(nil) and WithBudget(nil) mean
// "no throttle", "no breaker", "no budget". This differs on purpose from
// shed, fence and lease, whose nil values refuse with their sentinel:
// those guard a resource (capacity, a fence, a lease) that a call must not
// use without, while these only shape the load on a dependency that works
// without them, and a guard a caller forgot to build must not turn into
// an outage. A Hedger is not a guard but the thing that makes the call:
// DoHedged and RetryHedged with a nil *Hedger make no call and return an
// error matching ErrInvalidArgument; its accessors return zeros.
//
// # Errors
//
// When Retry gives up it returns an *Error whose Reason is one of the
// sentinels (ErrAttemptsExhausted, ErrElapsedExhausted, ErrDeadline,
// ErrBudgetExhausted, ErrPermanent, ErrRetryAfterTooLong) or the context's
// error, and whose Last is the operation's last error. errors.Is matches
// both, so callers can ask either "why did it stop?" or "what went wrong?".
//
// Compared with cenkalti/backoff, a Policy is an immutable value that is safe
// to share (there is no mutable ExponentialBackOff to Reset); compared with
// failsafe-go, a call allocates nothing when the operation succeeds at once.
package backoff
