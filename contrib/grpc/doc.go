// Package grpcguard puts stormguard's load shedding on the server side of
// gRPC and its retries on the client side, as interceptors that speak
// gRPC's retry pushback:
//
//	queue, _ := shed.NewQueue(shed.QueueConfig{Workers: 64})
//	guard, _ := grpcguard.NewServer(grpcguard.ServerConfig{Queue: queue})
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(guard.Unary),
//		grpc.ChainStreamInterceptor(guard.Stream))
//
//	budget, _ := backoff.NewBudget(backoff.BudgetConfig{})
//	breakers, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{
//		Breaker: backoff.BreakerConfig{Classify: grpcguard.Classify}})
//	retry, _ := grpcguard.NewClient(grpcguard.ClientConfig{Budget: budget, Breakers: breakers})
//	cc, _ := grpc.NewClient(target, creds,
//		grpc.WithDisableRetry(),
//		grpc.WithChainUnaryInterceptor(retry.Unary),
//		grpc.WithChainStreamInterceptor(retry.Stream))
//
// The package is named grpcguard, not grpc, so that it does not shadow
// google.golang.org/grpc in the files that use both; its import path is
// github.com/stormguard/stormguard/contrib/grpc, a module of its own so
// that the core stays free of gRPC.
//
// # Server
//
// Server admits every call (every stream, for its whole life) through one
// primitive of package shed: a Queue (priority from the call, chosen by
// ServerConfig.Priority; the incoming deadline, which gRPC derives from the
// client's grpc-timeout, is the work's deadline, so with ServerConfig.Cost a
// call that cannot finish in time is refused before it runs), a Partition
// keyed by a caller function (the method, a metadata value such as a tenant
// or zone, the peer), a Bulkhead, a Limiter or a KeyedLimiter. The slot is
// released when the handler returns, or panics; an adaptive limit learns
// from unary calls' latencies only, as a stream's lifetime is none. A call
// whose client has gone by the time it is admitted is not run. Admitting
// and releasing a call allocates nothing (the primitive allocates when a call waits or is
// refused); around a handler that does nothing, the unary interceptor with
// a Bulkhead costs about 110ns (BenchmarkInterceptors).
//
// A refusal is a status error, codes.ResourceExhausted for a rate limit and
// codes.Unavailable for overload (DefaultCode; ServerConfig.Code overrides
// it), with a retry hint in the trailing metadata key grpc-retry-pushback-ms
// (PushbackKey), computed from the refusal's numbers (DefaultPushback), and
// the reason in the trailing metadata key RefusedKey, which tells a Client
// set to believe it (ClientConfig.RetryRefused) that the call did not run. The pushback is the time the limiter's next
// token is due, or the time the call waited in the queue in vain. A refusal that says nothing of when capacity frees
// (a full queue, a pause) carries no hint, rather than a constant that would
// bring every refused client back at the same instant.
//
// # Client
//
// Client retries a call with a backoff.Policy, a shared backoff.Budget and
// a breaker per target (backoff.Breakers keyed by ClientConn.Target(),
// or ClientConfig.BreakerKey's choice), and only when it is safe: on
// codes.Unavailable, on codes.ResourceExhausted when the server sent a
// pushback, and on the other codes of ClientConfig.IdempotentCodes only
// for the methods the caller lists as idempotent. A method not listed is
// retried only when the attempt provably did not run: it never left the
// client (no connection), or a Server's admission refused it (the
// trailer RefusedKey, believed only with ClientConfig.RetryRefused, as
// any server can send it); a connection lost after the request was sent, or
// an error of the handler itself, may follow work done, and gRPC's
// codes.Unavailable is "not always safe to retry" for such methods, as
// its documentation says. It honours the pushback: the next attempt
// waits at least that long; a negative or malformed
// pushback means "do not retry", as gRPC's retry design (A6) says; and a
// pushback that would end after the call's deadline ends the call at once
// instead of sleeping in vain. It never makes an attempt once the caller's
// context is done. For streams it retries only the stream's creation
// (see Client.Stream).
//
// # gRPC's own retries
//
// gRPC can retry by itself, when a service config holds a retryPolicy.
// Those retries run inside each attempt of Client.Unary: with both, a call
// may reach the server (gRPC's maxAttempts)×(Policy.MaxAttempts) times,
// uncounted by the Budget, and gRPC consumes the pushback itself; and the
// Client sees only gRPC's last attempt, so a method gRPC's retryPolicy
// retried after it ran may be retried again if that last attempt never
// left the client. The same holds of an interceptor chained after the
// Client that retries or hedges by itself: the Client judges a call by
// what gRPC reports of the last attempt it made. Use one retry loop:
// disable gRPC's with grpc.WithDisableRetry() when you use this package's
// Client, as the Example does. gRPC's transparent retry of a
// stream that never left the client stays on either way; it is harmless, as
// the server never saw the call.
package grpcguard
