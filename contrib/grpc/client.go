package grpcguard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// ClientConfig configures a Client. The zero value is usable: it retries
// codes.Unavailable, and codes.ResourceExhausted that carries a pushback
// (for a method not listed in IdempotentMethods, only an attempt that
// provably did not run: see RetryCodes), with the zero backoff.Policy
// (5 attempts, about 100ms doubling, full jitter), without a budget or
// breakers.
type ClientConfig struct {
	// Policy spaces the attempts and bounds them. The zero value is
	// backoff's default policy.
	Policy backoff.Policy
	// Budget, if not nil, is the retry budget shared by every caller of
	// the dependency: each call deposits, each retry withdraws.
	Budget *backoff.Budget
	// Breakers, if not nil, holds a breaker per target (the key is
	// grpc.ClientConn.Target(), or BreakerKey's), asked before every
	// attempt. Build it with Classify as its breakers' Classify, so that
	// the application's answers (NotFound, InvalidArgument, ...) do not
	// open it.
	Breakers *backoff.Breakers[string]
	// BreakerKey chooses a call's breaker from the connection's target and
	// the full method name. Nil means the target: one breaker per name a
	// ClientConn dials ("dns:///volumes.internal:443"), as HTTP clients
	// keep one per host; the backends a load balancer spreads that name
	// over share it. Return target+fullMethod to keep one per method, so
	// that one broken method does not stop the others.
	BreakerKey func(target, fullMethod string) string
	// RetryCodes are the codes retried for every method: for a method not
	// in IdempotentMethods, only when the attempt provably did not run
	// (it never left the client, or, with RetryRefused, a Server refused
	// it: RefusedKey). Nil means
	// codes.Unavailable alone. A codes.ResourceExhausted that carries a
	// valid pushback is retried as well, under the same condition: the
	// server refused the call and said when to come back. codes.OK is
	// invalid.
	RetryCodes []codes.Code
	// IdempotentMethods are the full method names ("/pkg.Service/Method")
	// that may be retried on IdempotentCodes as well: calls that are safe
	// to run twice.
	IdempotentMethods []string
	// IdempotentCodes are the codes retried, besides RetryCodes, for
	// IdempotentMethods. Nil means codes.Unavailable,
	// codes.ResourceExhausted, codes.Aborted and codes.DeadlineExceeded
	// (a deadline of the server's own, not the caller's: a call whose
	// context is done is never retried). A ResourceExhausted of gRPC's
	// message size limits ("message larger than max", on either side) is
	// never retried: every retry would meet the same limit. codes.OK is
	// invalid.
	IdempotentCodes []codes.Code
	// RetryRefused makes the Client believe RefusedKey, as a Server writes
	// it (one value, a reason RefusalReason returns): a method not in
	// IdempotentMethods whose attempt a Server's admission refused is
	// then retried, as one that never left the client is. Off by default,
	// as in backoffhttp (RetryRefused), since any server can send the
	// trailer: set it only when every server behind the target is a
	// Server of this package, and no proxy or handler on the way copies a
	// downstream call's trailers into its own answer (its RefusedKey
	// would say "not run" of a call that ran, and the Client would run it
	// again).
	RetryRefused bool
	// MaxPushback bounds the pushback honoured: a longer one ends the
	// call at once (backoff.ErrRetryAfterTooLong). Zero means
	// backoff.DefaultMaxRetryAfter. Negative is invalid.
	MaxPushback time.Duration
	// OnAttempt, if not nil, is told every attempt of every call with the
	// method's full name (see backoff.OnAttempt). Nil costs nothing.
	OnAttempt func(fullMethod string, ev backoff.Event)
}

// Client holds client interceptors that retry calls. Build one with
// NewClient; its methods Unary and Stream are a grpc.UnaryClientInterceptor
// and a grpc.StreamClientInterceptor. A Client is safe for concurrent use;
// its state is the Budget and Breakers it was given. A nil *Client makes
// every call once, without retries, as backoff's nil guards do.
type Client struct {
	policy      backoff.Policy
	budget      *backoff.Budget
	breakers    *backoff.Breakers[string]
	breakerKey  func(target, fullMethod string) string
	retry       [codes.Unauthenticated + 1]bool
	idemCode    [codes.Unauthenticated + 1]bool
	idempotent  map[string]bool
	maxPushback time.Duration
	onAttempt   func(string, backoff.Event)
	trustRefuse bool
}

// NewClient returns a Client configured by cfg, or an error that matches
// ErrInvalidConfig (and, for a bad Policy, backoff.ErrInvalidPolicy) and
// names every invalid field.
func NewClient(cfg ClientConfig) (*Client, error) {
	var errs []error
	if err := cfg.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Policy: %w", err))
	}
	if cfg.MaxPushback < 0 {
		errs = append(errs, fmt.Errorf("MaxPushback is %v; it must not be negative", cfg.MaxPushback))
	}
	c := &Client{
		policy:      cfg.Policy,
		budget:      cfg.Budget,
		breakers:    cfg.Breakers,
		breakerKey:  cfg.BreakerKey,
		maxPushback: cfg.MaxPushback,
		onAttempt:   cfg.OnAttempt,
		trustRefuse: cfg.RetryRefused,
	}
	setCodes := func(field string, cs []codes.Code, def []codes.Code, into *[codes.Unauthenticated + 1]bool) {
		if cs == nil {
			cs = def
		}
		for _, code := range cs {
			if code == codes.OK || code > codes.Unauthenticated {
				errs = append(errs, fmt.Errorf("%s holds %v; only error codes 1 to 16 can be retried", field, code))
				continue
			}
			into[code] = true
		}
	}
	setCodes("RetryCodes", cfg.RetryCodes, []codes.Code{codes.Unavailable}, &c.retry)
	setCodes("IdempotentCodes", cfg.IdempotentCodes,
		[]codes.Code{codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded}, &c.idemCode)
	if len(cfg.IdempotentMethods) > 0 {
		c.idempotent = make(map[string]bool, len(cfg.IdempotentMethods))
	}
	for _, m := range cfg.IdempotentMethods {
		if !strings.HasPrefix(m, "/") || strings.Count(m, "/") != 2 || strings.HasSuffix(m, "/") {
			errs = append(errs, fmt.Errorf("IdempotentMethods holds %q; a full method name is \"/pkg.Service/Method\"", m))
			continue
		}
		c.idempotent[m] = true
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return c, nil
}

// Classify is a backoff.BreakerConfig.Classify for gRPC calls: the codes
// that say the server or the network failed (Unavailable,
// ResourceExhausted, DeadlineExceeded, Internal, Unknown, DataLoss) are
// failures; every other code is the application's answer on its merits
// and counts as a success, and so does a message over one of gRPC's size
// limits (see ClientConfig.IdempotentCodes); codes.Canceled is ignored.
func Classify(err error) backoff.Outcome {
	switch status.Code(err) {
	case codes.ResourceExhausted:
		if tooLarge(err) {
			return backoff.OutcomeSuccess
		}
		return backoff.OutcomeFailure
	case codes.Unavailable, codes.DeadlineExceeded,
		codes.Internal, codes.Unknown, codes.DataLoss:
		return backoff.OutcomeFailure
	case codes.Canceled:
		return backoff.OutcomeIgnore
	}
	return backoff.OutcomeSuccess
}

// tooLarge reports whether err is gRPC's refusal of a message over a size
// limit (MaxCallRecvMsgSize, MaxCallSendMsgSize, or the server's receive
// limit): codes.ResourceExhausted with gRPC's own message, which it
// exposes no other way. A retry would meet the same limit.
func tooLarge(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "message larger than max")
}

// retryable decides what one failed attempt means for the retry loop: the
// error to hand backoff.Retry (marked Permanent, or with a retry-after
// hint). mayHaveRun reports that the attempt may have run on the server
// (it reached a connection and no RefusedKey that RetryRefused believes
// came back): a method not
// listed as idempotent is then not retried at all.
func (c *Client) retryable(ctx context.Context, method string, err error, trailer metadata.MD, mayHaveRun bool) error {
	if ctx.Err() != nil || pastDeadline(ctx) {
		// The caller's context is done (or its deadline has passed, and
		// its timer has not fired yet): Retry stops, as no attempt fits.
		return err
	}
	code := status.Code(err)
	d, retry, present := pushbackOf(trailer)
	if present && !retry {
		return backoff.Permanent(err) // the server asked not to be retried
	}
	if tooLarge(err) {
		return backoff.Permanent(err) // every retry would meet the same limit
	}
	idem := c.idempotent[method]
	ok := int(code) < len(c.retry) && (idem || !mayHaveRun) && (c.retry[code] ||
		(code == codes.ResourceExhausted && present) ||
		(idem && c.idemCode[code]))
	if !ok {
		return backoff.Permanent(err)
	}
	if present {
		return backoff.RetryAfter(err, d)
	}
	return err
}

func (c *Client) options(target, method string, opts []backoff.Option) ([]backoff.Option, error) {
	opts = append(opts, backoff.WithBudget(c.budget), backoff.WithMaxRetryAfter(c.maxPushback))
	if c.breakers != nil {
		key := target
		if c.breakerKey != nil {
			key = c.breakerKey(target, method)
		}
		b, err := c.breakers.Get(key)
		if err != nil {
			return nil, &breakersError{err}
		}
		opts = append(opts, backoff.WithBreaker(b))
	}
	if c.onAttempt != nil {
		on := c.onAttempt
		opts = append(opts, backoff.OnAttempt(func(ev backoff.Event) { on(method, ev) }))
	}
	return opts, nil
}

// Unary is a grpc.UnaryClientInterceptor (pass c.Unary to
// grpc.WithUnaryInterceptor or grpc.WithChainUnaryInterceptor). It makes
// the call and, when an attempt fails with a code the configuration says is
// safe to retry, makes it again with the same request, as the Policy, the
// Budget and the target's breaker allow:
//
//   - a method not in ClientConfig.IdempotentMethods is never retried
//     once an attempt may have run on the server: only an attempt that
//     never reached a connection (gRPC set no peer), or one whose trailer
//     carries RefusedKey as a Server writes it (a Server's admission
//     refused it) when ClientConfig.RetryRefused is set, is retried;
//   - it honours the server's pushback (PushbackKey in the trailing
//     metadata): the next attempt starts no sooner than the pushback (nor
//     than the policy's delay); a negative or malformed pushback ends the
//     call with that attempt's error;
//   - it never sleeps past the call's deadline: if the next attempt would
//     start after it, the call ends at once; and a retry whose sleep, planned
//     to end before the deadline, ended after it (a late timer) is not made:
//     the call ends with codes.DeadlineExceeded;
//   - it never makes an attempt once the caller's context is done (it
//     checks the context again right before each retry, as a sleep that
//     ends when the context does may not notice it).
//
// The caller's grpc.Header, grpc.Trailer and grpc.Peer options say what
// the last attempt got: they are cleared before each retry, so an attempt
// that never left the client leaves them empty (gRPC fills them only for
// an attempt that got a stream), not holding an earlier attempt's
// pushback or peer. The caller's grpc.OnFinish callbacks are called once
// per call, as gRPC promises, with the error Unary returns, not once per
// attempt.
//
// If the Breakers is at its key bound with every breaker open, the call is
// refused with codes.Unavailable, without an attempt, by an error that
// matches backoff.ErrTooManyBreakers.
//
// A call whose only attempt fails with an error not to be retried, or
// while the caller's context ends, returns that attempt's error unchanged.
// Any other failure (a call that was retried, or whose retry a breaker,
// the budget, the deadline or MaxPushback refused) returns an error whose gRPC status (status.Code, status.Convert)
// has the last attempt's code (codes.Unavailable if a breaker refused
// every attempt; the context's code if the caller's context ended the
// call) and, when it has that code, the last attempt's details, and which matches, with errors.Is and errors.As, the
// *backoff.Error saying why it stopped and the last attempt's error.
func (c *Client) Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if invoker == nil {
		return status.Error(codes.Internal, "grpcguard: nil invoker")
	}
	if c == nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	// The caller's grpc.OnFinish is for the call, once, not per attempt.
	opts, finish := splitFinish(opts)
	var buf [4]backoff.Option
	bopts, err := c.options(target(cc), method, buf[:0])
	if err != nil {
		finished(finish, err)
		return err
	}
	attempts := 0
	var last error
	idem := c.idempotent[method]
	// One allocation per call holds what gRPC reports of each attempt and
	// the call options that ask for it.
	st := new(attemptState)
	callOpts := st.opts[:0]
	if len(opts)+2 > len(st.opts) {
		callOpts = make([]grpc.CallOption, 0, len(opts)+2)
	}
	callOpts = append(append(callOpts, opts...), grpc.Trailer(&st.trailer))
	if !idem {
		// gRPC sets the peer only once the attempt has a stream on a
		// connection: without one, the call never left the client.
		callOpts = append(callOpts, grpc.Peer(&st.peer))
	}
	err = backoff.Retry(ctx, c.policy, func(ctx context.Context) error {
		if attempts > 0 {
			if err := retryStart(ctx); err != nil {
				return err
			}
			forget(opts)
		}
		attempts++
		st.trailer, st.peer = nil, peer.Peer{}
		err := invoker(ctx, method, req, reply, cc, callOpts...)
		if err == nil {
			return nil
		}
		last = err
		mayHaveRun := !idem && st.peer.Addr != nil && !(c.trustRefuse && refused(st.trailer))
		return c.retryable(ctx, method, err, st.trailer, mayHaveRun)
	}, bopts...)
	err = c.result(ctx, err, attempts, last)
	finished(finish, err)
	return err
}

// splitFinish takes the grpc.OnFinish options out of opts: gRPC calls
// them at the end of every attempt, but the caller (an interceptor that
// counts calls in flight) is promised one call. It allocates only when
// there are some.
func splitFinish(opts []grpc.CallOption) ([]grpc.CallOption, []func(error)) {
	n := 0
	for _, o := range opts {
		if _, ok := o.(grpc.OnFinishCallOption); ok {
			n++
		}
	}
	if n == 0 {
		return opts, nil
	}
	rest := make([]grpc.CallOption, 0, len(opts)-n)
	fs := make([]func(error), 0, n)
	for _, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			if f.OnFinish != nil {
				fs = append(fs, f.OnFinish)
			}
			continue
		}
		rest = append(rest, o)
	}
	return rest, fs
}

// finished calls the caller's OnFinish callbacks with the call's error.
func finished(fs []func(error), err error) {
	for _, f := range fs {
		f(err)
	}
}

// finishGate stands for the caller's OnFinish callbacks in one attempt to
// create a stream: gRPC calls it when that attempt's stream ends, which
// for an attempt that failed is before streamer returns. It holds the
// call until open says whether the attempt made the call's stream: then
// it forwards it, or drops it (the Client reports the call's end itself).
type finishGate struct {
	fs      []func(error)
	mu      sync.Mutex
	decided bool
	forward bool
	pending bool
	err     error
}

func (g *finishGate) onFinish(err error) {
	g.mu.Lock()
	if !g.decided {
		g.pending, g.err = true, err
		g.mu.Unlock()
		return
	}
	forward := g.forward
	g.mu.Unlock()
	if forward {
		finished(g.fs, err)
	}
}

// open decides the attempt's fate: ok if streamer returned its stream.
func (g *finishGate) open(ok bool) {
	g.mu.Lock()
	g.decided, g.forward = true, ok
	pending, err := g.pending && ok, g.err
	g.mu.Unlock()
	if pending {
		finished(g.fs, err)
	}
}

// attemptState is what gRPC reports of one attempt of a unary call (its
// trailer and peer), and room for the two call options that ask for them
// when the caller passes none (a larger array costs more than it saves).
type attemptState struct {
	trailer metadata.MD
	peer    peer.Peer
	opts    [2]grpc.CallOption
}

// retryStart checks, right before a retry, that the caller still wants it:
// its context may have ended as the sleep did (the sleep then may or may
// not notice), or its deadline passed while its timer has not fired yet.
func retryStart(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if pastDeadline(ctx) {
		return backoff.Permanent(errLateRetry)
	}
	return nil
}

// forget clears, before a retry, what the caller's grpc.Header,
// grpc.Trailer and grpc.Peer options hold of the previous attempt: gRPC
// fills them only for an attempt that got a stream, so one that never
// left the client would hand the caller the previous attempt's trailer
// (its pushback, RefusedKey) and peer with the last attempt's error.
func forget(opts []grpc.CallOption) {
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			if o.HeaderAddr != nil {
				*o.HeaderAddr = nil
			}
		case grpc.TrailerCallOption:
			if o.TrailerAddr != nil {
				*o.TrailerAddr = nil
			}
		case grpc.PeerCallOption:
			if o.PeerAddr != nil {
				*o.PeerAddr = peer.Peer{}
			}
		case *grpc.HeaderCallOption: // gRPC honours these too
			if o != nil && o.HeaderAddr != nil {
				*o.HeaderAddr = nil
			}
		case *grpc.TrailerCallOption:
			if o != nil && o.TrailerAddr != nil {
				*o.TrailerAddr = nil
			}
		case *grpc.PeerCallOption:
			if o != nil && o.PeerAddr != nil {
				*o.PeerAddr = peer.Peer{}
			}
		}
	}
}

// pastDeadline reports whether ctx's deadline has passed, even if ctx has
// not noticed yet (its timer may fire late).
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// errLateRetry ends a retry loop whose sleep ran past the call's deadline
// (a timer fires late; the sleep was planned to end before it).
var errLateRetry error = lateRetry{}

type lateRetry struct{}

func (lateRetry) Error() string {
	return "grpcguard: the call's deadline passed before the retry could start"
}
func (lateRetry) Unwrap() error { return context.DeadlineExceeded }
func (lateRetry) GRPCStatus() *status.Status {
	return status.New(codes.DeadlineExceeded, "grpcguard: the call's deadline passed before the retry could start")
}

// target is cc's target, or "" for a nil cc.
func target(cc *grpc.ClientConn) string {
	if cc == nil {
		return ""
	}
	return cc.Target()
}

// result turns what backoff.Retry returned into what the caller receives.
func (c *Client) result(ctx context.Context, err error, attempts int, last error) error {
	if err == nil {
		return nil
	}
	var be *backoff.Error
	if !errors.As(err, &be) {
		return err
	}
	if attempts == 1 && last != nil {
		// One attempt, and the loop ended on its error alone (not to be
		// retried, or the caller's context ended it): that error, unchanged.
		if errors.Is(be.Reason, backoff.ErrPermanent) && !errors.Is(be.Last, errLateRetry) {
			return last
		}
		if c := status.Code(last); ctx.Err() != nil && (c == codes.Canceled || c == codes.DeadlineExceeded) {
			return last
		}
	}
	code := codes.Unknown
	lastSt, _ := status.FromError(be.Last)
	switch {
	case errors.Is(be.Reason, context.Canceled), errors.Is(be.Reason, context.DeadlineExceeded):
		// The caller's context ended the call, or its deadline passed
		// before its timer noticed (the wait between attempts checks the
		// clock too): the context's code, whatever the last attempt's.
		code = status.FromContextError(be.Reason).Code()
	case errors.Is(be.Last, backoff.ErrBreakerOpen):
		code = codes.Unavailable
	default:
		if lastSt != nil {
			code = lastSt.Code()
		}
	}
	if lastSt != nil && lastSt.Code() != code {
		lastSt = nil // its details belong to another code
	}
	return &retryError{err: be, code: code, last: lastSt}
}

// breakersError is the error of a call refused because the Breakers is at
// its key bound: codes.Unavailable, matching backoff.ErrTooManyBreakers.
type breakersError struct{ err error }

func (e *breakersError) Error() string { return "grpcguard: " + e.err.Error() }
func (e *breakersError) Unwrap() error { return e.err }
func (e *breakersError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Error())
}

// retryError is the error of a call that retried: a *backoff.Error with a
// gRPC status.
type retryError struct {
	err  *backoff.Error
	code codes.Code
	last *status.Status // the last attempt's, when its code is code
}

func (e *retryError) Error() string { return "grpcguard: " + e.err.Error() }

// Unwrap returns the *backoff.Error, through which errors.Is finds the
// reason and the last attempt's error.
func (e *retryError) Unwrap() error { return e.err }

// GRPCStatus makes the error a status error for status.Code and
// status.Convert: the code, and the last attempt's details when the code
// is its own.
func (e *retryError) GRPCStatus() *status.Status {
	if e.last == nil {
		return status.New(e.code, e.Error())
	}
	p := e.last.Proto()
	p.Message = e.Error()
	return status.FromProto(p)
}

// Stream is a grpc.StreamClientInterceptor (pass c.Stream to
// grpc.WithStreamInterceptor or grpc.WithChainStreamInterceptor). It
// retries the creation of the stream only: a failure of streamer itself
// (no connection ready, the target's breaker open, a code the configuration
// retries), before the application has sent or received any message on
// it, with the same rules as Unary. Once streamer has returned a stream,
// nothing is retried: a refusal by the server's interceptor reaches the
// application on its first RecvMsg (or Header), with the pushback in
// the stream's Trailer(), which ParsePushback reads. The stream's breaker,
// if any, is told only whether the stream was created. The caller's
// grpc.OnFinish callbacks are called once: when the returned stream ends,
// or with Stream's error; never for an attempt that failed and was
// retried.
func (c *Client) Stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if streamer == nil {
		return nil, status.Error(codes.Internal, "grpcguard: nil streamer")
	}
	if c == nil {
		return streamer(ctx, desc, cc, method, opts...)
	}
	opts, finish := splitFinish(opts)
	var buf [4]backoff.Option
	bopts, err := c.options(target(cc), method, buf[:0])
	if err != nil {
		finished(finish, err)
		return nil, err
	}
	attempts := 0
	var (
		last error
		cs   grpc.ClientStream
	)
	err = backoff.Retry(ctx, c.policy, func(ctx context.Context) error {
		if attempts > 0 {
			if err := retryStart(ctx); err != nil {
				return err
			}
			forget(opts)
		}
		attempts++
		var s grpc.ClientStream
		var err error
		if finish == nil {
			s, err = streamer(ctx, desc, cc, method, opts...)
		} else {
			// A gate per attempt: the caller's OnFinish hears of the
			// stream the call returns, not of the attempts that failed.
			g := &finishGate{fs: finish}
			s, err = streamer(ctx, desc, cc, method, append(opts[:len(opts):len(opts)], grpc.OnFinish(g.onFinish))...)
			g.open(err == nil)
		}
		if err == nil {
			cs = s
			return nil
		}
		last = err
		// streamer fails before the application has sent anything.
		return c.retryable(ctx, method, err, nil, false)
	}, bopts...)
	if err != nil {
		err = c.result(ctx, err, attempts, last)
		finished(finish, err)
		return nil, err
	}
	return cs, nil
}
