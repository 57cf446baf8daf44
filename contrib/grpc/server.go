package grpcguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// ErrInvalidConfig is matched (with errors.Is) by every error NewServer and
// NewClient return for a bad configuration.
var ErrInvalidConfig = errors.New("grpcguard: invalid config")

// ErrInvalidArgument is matched (with errors.Is) by the error a Server's
// interceptor returns, with codes.Internal, when it is called with a nil
// *Server, handler, context or stream: it runs nothing and admits nothing.
// gRPC itself never makes such a call; a caller that does gets an error,
// never a panic.
var ErrInvalidArgument = errors.New("grpcguard: invalid argument")

// ServerConfig configures a Server. Exactly one admission primitive — Queue,
// Partition, Bulkhead, Limiter or KeyedLimiter — must be set; the other
// fields have defaults.
type ServerConfig struct {
	// Queue, if set, admits every call through queue-aware admission: the
	// call's priority is Priority's, its deadline the incoming one (the
	// client's grpc-timeout), and with Cost set the call is refused at
	// once, without running, when it could no longer finish in time.
	Queue *shed.Queue
	// Partition, if set, admits every call through the bulkhead of its key
	// (Key's), so that calls of one key that hang hold at most the
	// partition's per-key cap.
	Partition *shed.Partition[string]
	// Bulkhead, if set, bounds the calls in flight.
	Bulkhead *shed.Bulkhead
	// Limiter, if set, throttles calls by rate: a call waits for a token
	// as Limiter.Wait does (at most the limiter's MaxWait, never past the
	// call's deadline) or is refused with the time the token is due.
	Limiter *shed.Limiter
	// KeyedLimiter, if set, throttles calls by rate per key (Key's); it
	// never waits.
	KeyedLimiter *shed.KeyedLimiter[string]

	// Key chooses the key of a call for a Partition or a KeyedLimiter,
	// from the call's context (its metadata, its peer) and full method
	// name ("/pkg.Service/Method"); KeyByMethod, KeyByPeer and
	// KeyByMetadata are ready-made. It is required with a Partition or a
	// KeyedLimiter and refused with anything else.
	Key func(ctx context.Context, fullMethod string) string
	// Priority chooses the class of a call for a Queue. Nil means
	// shed.Normal for every call. Refused without a Queue.
	Priority func(ctx context.Context, fullMethod string) shed.Priority
	// Cost, for a Queue, declares how long a call is expected to run
	// (shed.WithCost), so that a call that could not finish before its
	// deadline is refused with codes.DeadlineExceeded instead of running
	// late. Nil means no cost is declared. Refused without a Queue.
	Cost func(ctx context.Context, fullMethod string) time.Duration

	// Code maps a refusal to the status code the client receives. Nil
	// means DefaultCode, and so does codes.OK: a refusal is never a
	// success.
	Code func(r *shed.Refusal) codes.Code
	// Pushback computes the retry hint sent in the trailing metadata
	// (PushbackKey) of a refusal: ok false sends none, a negative delay
	// sends "-1" (do not retry). Nil means DefaultPushback.
	Pushback func(r *shed.Refusal) (d time.Duration, ok bool)
	// OnRefused, if not nil, is told every call refused, with the status
	// sent; it runs on the call's goroutine and must not block.
	OnRefused func(fullMethod string, r *shed.Refusal, st *status.Status)
}

// Server holds server interceptors that admit every call through one shed
// primitive. Build one with NewServer; its methods Unary and Stream are a
// grpc.UnaryServerInterceptor and a grpc.StreamServerInterceptor. A Server
// is safe for concurrent use and holds no state of its own beyond its
// configuration. A nil *Server refuses every call (see ErrInvalidArgument),
// as shed's nil primitives do: a guard of capacity is not silently skipped.
type Server struct {
	cfg ServerConfig
}

// NewServer returns a Server configured by cfg, or an error that matches
// ErrInvalidConfig and names every invalid field.
func NewServer(cfg ServerConfig) (*Server, error) {
	var errs []error
	n := 0
	if cfg.Queue != nil {
		n++
	}
	if cfg.Partition != nil {
		n++
	}
	if cfg.Bulkhead != nil {
		n++
	}
	if cfg.Limiter != nil {
		n++
	}
	if cfg.KeyedLimiter != nil {
		n++
	}
	if n != 1 {
		errs = append(errs, fmt.Errorf("%d admission primitives set (Queue, Partition, Bulkhead, Limiter, KeyedLimiter); exactly one is needed", n))
	}
	keyed := cfg.Partition != nil || cfg.KeyedLimiter != nil
	if keyed && cfg.Key == nil {
		errs = append(errs, errors.New("Key is nil; a Partition or KeyedLimiter needs it"))
	}
	if !keyed && cfg.Key != nil {
		errs = append(errs, errors.New("Key is set but only a Partition or KeyedLimiter uses it"))
	}
	if cfg.Queue == nil && cfg.Priority != nil {
		errs = append(errs, errors.New("Priority is set but only a Queue uses it"))
	}
	if cfg.Queue == nil && cfg.Cost != nil {
		errs = append(errs, errors.New("Cost is set but only a Queue uses it"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return &Server{cfg: cfg}, nil
}

// DefaultCode maps a refusal to a status code:
//
//   - codes.ResourceExhausted for a rate limit (shed.ErrRateLimited): the
//     client asked too often;
//   - codes.DeadlineExceeded for shed.ErrDeadline: the call's deadline has
//     passed, or could not be met given its declared cost, so a retry
//     cannot help;
//   - codes.Canceled and codes.DeadlineExceeded when the client's own
//     context ended the wait (it was not shed);
//   - codes.Unavailable for every other refusal (overload: queue full,
//     waited too long, evicted, paused, too many keys, adaptive limit),
//     and for a nil one.
func DefaultCode(r *shed.Refusal) codes.Code {
	switch {
	case r == nil:
		return codes.Unavailable
	case errors.Is(r, shed.ErrRateLimited):
		return codes.ResourceExhausted
	case errors.Is(r, shed.ErrDeadline):
		return codes.DeadlineExceeded
	case errors.Is(r, context.Canceled):
		return codes.Canceled
	case errors.Is(r, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	default:
		return codes.Unavailable
	}
}

// DefaultPushback computes the retry hint of a refusal from its numbers,
// as shedhttp.RetryAfter does for HTTP: "do not retry" (a negative delay)
// for shed.ErrDeadline, none for a wait the client's own context ended,
// and otherwise shed.Refusal.Hint: the time a rate limiter's next token is
// due or an adaptive limit's slot is expected to free, or, for a call that
// waited in a queue and was not served (shed.ErrWaitTimeout,
// shed.ErrEvicted), the time it waited (measured, not the MaxWait every
// such refusal would share); none for a full queue, a pause or a key
// bound, which say nothing about when capacity frees (a made-up constant
// would bring every refused client back at the same instant; the client's
// own jittered backoff spreads them instead).
func DefaultPushback(r *shed.Refusal) (time.Duration, bool) {
	switch {
	case r == nil:
		return 0, false
	case errors.Is(r, shed.ErrDeadline):
		return -1, true
	case errors.Is(r, context.Canceled), errors.Is(r, context.DeadlineExceeded):
		return 0, false
	}
	return r.Hint()
}

// Unary is a grpc.UnaryServerInterceptor (pass s.Unary to
// grpc.UnaryInterceptor or grpc.ChainUnaryInterceptor). It admits the call
// through the configured primitive, waiting as that primitive waits, and
// runs handler only once admitted and only if the client's context is still
// live; it releases the slot when handler returns or panics. A refusal
// returns a status error (see DefaultCode) and sets PushbackKey in the
// trailing metadata (see DefaultPushback); handler is not called.
func (s *Server) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if s == nil || handler == nil || ctx == nil {
		return nil, invalid(s == nil, handler == nil)
	}
	method := ""
	if info != nil {
		method = info.FullMethod
	}
	key, err := s.admit(ctx, method, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) })
	if err != nil {
		return nil, err
	}
	start := time.Now()
	panicked := true
	var resp any
	defer func() { s.release(ctx, key, start, err, panicked) }()
	resp, err = handler(ctx, req)
	panicked = false
	return resp, err
}

// Stream is a grpc.StreamServerInterceptor (pass s.Stream to
// grpc.StreamInterceptor or grpc.ChainStreamInterceptor). It admits the
// stream as Unary admits a call, with the stream's context, and holds the
// slot until handler returns (or panics): for the stream's whole life. The
// slot is released without a latency sample: a stream's lifetime says
// nothing of how fast the server answers, and an adaptive limit (a Queue,
// Bulkhead or Partition with an Adaptive config) learns only from unary
// calls.
func (s *Server) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	if s == nil || handler == nil || ss == nil || ss.Context() == nil {
		return invalid(s == nil, handler == nil)
	}
	ctx := ss.Context()
	method := ""
	if info != nil {
		method = info.FullMethod
	}
	key, err := s.admit(ctx, method, ss.SetTrailer)
	if err != nil {
		return err
	}
	// A stream's lifetime is no latency: an adaptive limit learns nothing
	// from it (a long-lived stream would raise its baseline).
	defer s.release(ctx, key, time.Time{}, nil, true)
	return handler(srv, ss)
}

// invalid is the error of a call the interceptor cannot make: a status
// error with codes.Internal that matches ErrInvalidArgument.
func invalid(nilServer, nilHandler bool) error {
	what := "nil context or stream"
	switch {
	case nilServer:
		what = "nil *Server"
	case nilHandler:
		what = "nil handler"
	}
	return &invalidError{status.New(codes.Internal, "grpcguard: "+what)}
}

type invalidError struct{ st *status.Status }

func (e *invalidError) Error() string              { return e.st.Message() }
func (e *invalidError) Is(target error) bool       { return target == ErrInvalidArgument }
func (e *invalidError) GRPCStatus() *status.Status { return e.st }

// admit admits one call and returns its key (for a Partition), or the
// status error to return.
func (s *Server) admit(ctx context.Context, method string, trailer func(metadata.MD)) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", status.FromContextError(err).Err()
	}
	var (
		err error
		key string
	)
	switch {
	case s.cfg.Queue != nil:
		pri := shed.Normal
		if s.cfg.Priority != nil {
			pri = s.cfg.Priority(ctx, method)
		}
		if s.cfg.Cost != nil {
			err = s.cfg.Queue.Acquire(ctx, pri, shed.WithCost(s.cfg.Cost(ctx, method)))
		} else {
			err = s.cfg.Queue.Acquire(ctx, pri)
		}
	case s.cfg.Partition != nil:
		key = s.cfg.Key(ctx, method)
		err = s.cfg.Partition.Acquire(ctx, key)
	case s.cfg.Bulkhead != nil:
		err = s.cfg.Bulkhead.Acquire(ctx)
	case s.cfg.Limiter != nil:
		err = s.cfg.Limiter.Wait(ctx)
	default:
		err = s.cfg.KeyedLimiter.Allow(s.cfg.Key(ctx, method))
	}
	if err != nil {
		return "", s.refuse(method, err, trailer)
	}
	// A client that has gone while the call waited (or as it was
	// admitted) is not served: its answer would go nowhere.
	if cerr := ctx.Err(); cerr != nil {
		s.release(ctx, key, time.Time{}, cerr, true)
		return "", status.FromContextError(cerr).Err()
	}
	return key, nil
}

// release frees the slot of a call admitted for key at start: with its
// latency as an adaptive limit's sample, unless noSample (it panicked, or
// is a stream) or its client cancelled it. A rate limiter holds no slot.
func (s *Server) release(ctx context.Context, key string, start time.Time, err error, noSample bool) {
	plain := noSample || ctx.Err() == context.Canceled
	var rtt time.Duration
	if !plain {
		rtt = time.Since(start)
	}
	switch {
	case s.cfg.Queue != nil:
		if plain {
			s.cfg.Queue.Release()
		} else {
			s.cfg.Queue.ReleaseRTT(rtt, dropped(ctx, err))
		}
	case s.cfg.Partition != nil:
		if plain {
			s.cfg.Partition.Release(key)
		} else {
			s.cfg.Partition.ReleaseRTT(key, rtt, dropped(ctx, err))
		}
	case s.cfg.Bulkhead != nil:
		if plain {
			s.cfg.Bulkhead.Release()
		} else {
			s.cfg.Bulkhead.ReleaseRTT(rtt, dropped(ctx, err))
		}
	}
}

// dropped reports whether a call counts as dropped for an adaptive limit:
// it ran into its deadline, or a dependency shed it.
func dropped(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() == context.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, shed.ErrShed) {
		return true
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// refuse turns an admission error into the status error to return, and
// sets the pushback trailer.
func (s *Server) refuse(method string, err error, trailer func(metadata.MD)) error {
	var r *shed.Refusal
	if !errors.As(err, &r) {
		// Not a refusal: a misuse the primitive reported (ErrInvalidArgument).
		return status.Error(codes.Internal, err.Error())
	}
	code := DefaultCode(r)
	if s.cfg.Code != nil {
		// A refusal is never a success: codes.OK would make the call
		// succeed with no answer, so it means the default.
		if c := s.cfg.Code(r); c != codes.OK {
			code = c
		}
	}
	pushback := DefaultPushback
	if s.cfg.Pushback != nil {
		pushback = s.cfg.Pushback
	}
	md := metadata.MD{RefusedKey: []string{RefusalReason(r)}}
	if d, ok := pushback(r); ok {
		md[PushbackKey] = []string{FormatPushback(d)}
	}
	trailer(md)
	st := status.New(code, r.Error())
	if s.cfg.OnRefused != nil {
		s.cfg.OnRefused(method, r, st)
	}
	return st.Err()
}

// RefusalReason is the value of RefusedKey for a refusal: "queue_full",
// "wait_timeout", "paused", "too_many_keys", "deadline", "evicted",
// "rate_limited", "limit_reached", "canceled" or "deadline_exceeded" (the
// client's context ended the wait), or "other".
func RefusalReason(r *shed.Refusal) string {
	switch {
	case r == nil:
		return "other"
	case errors.Is(r, shed.ErrQueueFull):
		return "queue_full"
	case errors.Is(r, shed.ErrWaitTimeout):
		return "wait_timeout"
	case errors.Is(r, shed.ErrPaused):
		return "paused"
	case errors.Is(r, shed.ErrTooManyKeys):
		return "too_many_keys"
	case errors.Is(r, shed.ErrDeadline):
		return "deadline"
	case errors.Is(r, shed.ErrEvicted):
		return "evicted"
	case errors.Is(r, shed.ErrRateLimited):
		return "rate_limited"
	case errors.Is(r, shed.ErrLimitReached):
		return "limit_reached"
	case errors.Is(r, context.Canceled):
		return "canceled"
	case errors.Is(r, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return "other"
}

// refused reports whether md says, as a Server writes it, that its
// admission refused the call: RefusedKey holds exactly one value, a
// reason RefusalReason returns. Several values are trailers merged from
// several calls, and anything else was not written by a Server.
func refused(md metadata.MD) bool {
	v := md[RefusedKey]
	if len(v) != 1 {
		return false
	}
	switch v[0] {
	case "queue_full", "wait_timeout", "paused", "too_many_keys", "deadline", "evicted",
		"rate_limited", "limit_reached", "canceled", "deadline_exceeded", "other":
		return true
	}
	return false
}

// KeyByMethod is a ServerConfig.Key that keys calls by their full method
// name.
func KeyByMethod(_ context.Context, fullMethod string) string { return fullMethod }

// KeyByPeer is a ServerConfig.Key that keys calls by the client's host
// (its IP address, without the port, so that a client's connections share
// a key); the whole address if it has no port, and "" if unknown.
func KeyByPeer(ctx context.Context, _ string) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	addr := p.Addr.String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// KeyByMetadata returns a ServerConfig.Key that keys calls by the first
// value of the incoming metadata key name (a tenant, a zone), or "" when
// the call has none. Names are lower-cased by gRPC; pass it lower-case.
func KeyByMetadata(name string) func(ctx context.Context, fullMethod string) string {
	return func(ctx context.Context, _ string) string {
		if v := metadata.ValueFromIncomingContext(ctx, name); len(v) > 0 {
			return v[0]
		}
		return ""
	}
}
