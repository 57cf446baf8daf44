package grpcguard_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func mustClient(t testing.TB, cfg grpcguard.ClientConfig) *grpcguard.Client {
	t.Helper()
	c, err := grpcguard.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func retrying(c *grpcguard.Client) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithUnaryInterceptor(c.Unary), grpc.WithStreamInterceptor(c.Stream)}
}

// fast is a policy whose own delays are negligible next to the pushbacks
// of the tests.
var fast = backoff.Policy{Base: time.Microsecond, Cap: time.Microsecond, MaxAttempts: 3}

func TestClientHonoursPushback(t *testing.T) {
	// The test holds the server's only slot; the first attempt is refused
	// (queue full) with a pushback of 60ms, and the slot is freed at once,
	// so the retry is admitted whenever it comes: the test decides nothing
	// by timing.
	const pb = 60 * time.Millisecond
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		refusals []time.Time
	)
	s := mustServer(t, grpcguard.ServerConfig{
		Bulkhead: b,
		Pushback: func(*shed.Refusal) (time.Duration, bool) { return pb, true },
		OnRefused: func(string, *shed.Refusal, *status.Status) {
			mu.Lock()
			refusals = append(refusals, time.Now())
			mu.Unlock()
			b.Release()
		},
	})
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, s.Unary, s.Stream)
	var events []backoff.Event
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, RetryRefused: true, OnAttempt: func(m string, ev backoff.Event) {
		if m != checkMethod {
			t.Errorf("hook told method %q", m)
		}
		events = append(events, ev)
	}})
	c := dial(t, addr, retrying(cl)...)
	if !b.TryAcquire() {
		t.Fatal("could not take the slot")
	}
	if _, err := check(context.Background(), c, ""); err != nil {
		t.Fatalf("call: %v", err)
	}
	at := arr.get()
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 || len(refusals) != 1 || h.ran() != 1 {
		t.Fatalf("%d arrivals, %d refusals, %d runs; want 2, 1, 1", len(at), len(refusals), h.ran())
	}
	// The retry reached the server no sooner than the pushback after the
	// refusal was decided (server-side times, one clock; sleeps never end
	// early).
	if gap := at[1].Sub(refusals[0]); gap < pb {
		t.Fatalf("retry arrived %v after the refusal, before the pushback %v", gap, pb)
	}
	if len(events) != 2 || events[0].Delay < pb || events[1].Err != nil {
		t.Fatalf("events %+v: want 2, the refused attempt's delay at least %v", events, pb)
	}
}

func TestClientStopsAtDeadline(t *testing.T) {
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	// The handler runs and fails: only an idempotent method is retried.
	idem := []string{checkMethod}
	cl := mustClient(t, grpcguard.ClientConfig{Policy: backoff.Policy{Base: time.Microsecond, MaxAttempts: 100}, IdempotentMethods: idem})
	c := dial(t, addr, retrying(cl)...)

	// A pushback that ends after the deadline: the call ends at once
	// after the first attempt, without sleeping in vain.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := check(ctx, c, "code:14:pb:120000")
	if !errors.Is(err, backoff.ErrDeadline) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v (code %v), want backoff.ErrDeadline with code Unavailable", err, status.Code(err))
	}
	if ctx.Err() != nil {
		t.Fatal("the call slept until its deadline")
	}
	if n := len(arr.get()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}

	// Without pushback, attempts stop at the deadline: none starts after it.
	pol := backoff.Policy{Base: 20 * time.Millisecond, Multiplier: 1, Jitter: backoff.JitterNone, MaxAttempts: backoff.Unlimited, MaxElapsed: time.Hour}
	cl2 := mustClient(t, grpcguard.ClientConfig{Policy: pol, IdempotentMethods: idem})
	c2 := dial(t, addr, retrying(cl2)...)
	arr2 := len(arr.get())
	ctx2, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	_, err = check(ctx2, c2, "code:14")
	if !errors.Is(err, backoff.ErrDeadline) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline", err)
	}
	if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Fatalf("code %v, want Unavailable (gave up before the deadline) or DeadlineExceeded", c)
	}
	// Attempt k starts at least (k-1)·20ms after the first (sleeps never
	// end early), and none starts at or after the deadline, 150ms after
	// the context was made: at most 8 attempts, however late the timers.
	if n := len(arr.get()) - arr2; n < 2 || n > 8 {
		t.Fatalf("%d attempts, want 2 to 8", n)
	}
}

func TestClientNeverRetriesAfterCancel(t *testing.T) {
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, IdempotentMethods: []string{checkMethod}, OnAttempt: func(string, backoff.Event) { cancel() }})
	c := dial(t, addr, retrying(cl)...)
	_, err := check(ctx, c, "code:14")
	if status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v (code %v), want Canceled", err, status.Code(err))
	}
	if n := len(arr.get()); n != 1 {
		t.Fatalf("%d attempts after the caller cancelled, want 1", n)
	}
}

func TestClientRetriesOnlySafeCodes(t *testing.T) {
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	plain := dial(t, addr, retrying(mustClient(t, grpcguard.ClientConfig{Policy: fast}))...)
	idem := dial(t, addr, retrying(mustClient(t, grpcguard.ClientConfig{Policy: fast, IdempotentMethods: []string{checkMethod}}))...)
	cases := []struct {
		name     string
		c        grpc_health_v1.HealthClient
		cmd      string
		attempts int
	}{
		// The handler ran: a method not listed idempotent is never retried.
		{"unavailable, not idempotent", plain, "code:14", 1},
		{"unavailable, idempotent", idem, "code:14", 3},
		{"aborted, not idempotent", plain, "code:10", 1},
		{"aborted, idempotent", idem, "code:10", 3},
		{"not found, idempotent", idem, "code:5", 1},
		{"resource exhausted without pushback", plain, "code:8", 1},
		{"resource exhausted with pushback, not idempotent", plain, "code:8:pb:1", 1},
		{"resource exhausted with pushback", idem, "code:8:pb:1", 3},
		{"unavailable, pushback -1", plain, "code:14:pb:-1", 1},
		{"unavailable, malformed pushback", plain, "code:14:pb:1ms", 1},
		{"idempotent, pushback -1", idem, "code:10:pb:-1", 1},
		{"idempotent, two pushbacks", idem, "code:14:pb:1,1", 1},
		{"idempotent, pushback with a sign", idem, "code:14:pb:+1", 1},
		{"idempotent, pushback huge negative", idem, "code:14:pb:-99999999999999999999", 1},
		{"idempotent, pushback 0", idem, "code:14:pb:0", 3},
		{"code beyond the known ones", idem, "code:99", 1},
		{"resource exhausted, pushback beyond int64", idem, "code:8:pb:99999999999999999999999", 1},
	}
	for _, tc := range cases {
		before := len(arr.get())
		_, err := check(context.Background(), tc.c, tc.cmd)
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		if n := len(arr.get()) - before; n != tc.attempts {
			t.Errorf("%s: %d attempts, want %d", tc.name, n, tc.attempts)
		}
		if strings.Contains(tc.name, "beyond int64") {
			// Retryable, but for longer than MaxPushback allows.
			if !errors.Is(err, backoff.ErrRetryAfterTooLong) {
				t.Errorf("%s: error %v, want backoff.ErrRetryAfterTooLong", tc.name, err)
			}
		} else if tc.attempts == 1 {
			// Not retried: the server's error, unchanged.
			if st := status.Convert(err); st.Message() != "told to fail" {
				t.Errorf("%s: error %v, want the server's unchanged", tc.name, err)
			}
		} else if be := (*backoff.Error)(nil); !errors.Is(err, backoff.ErrAttemptsExhausted) || !errors.As(err, &be) || be.Attempts != tc.attempts {
			t.Errorf("%s: error %v, want a *backoff.Error, attempts exhausted after %d", tc.name, err, tc.attempts)
		}
		if want := codes.Code(atoi(strings.Split(tc.cmd, ":")[1])); status.Code(err) != want {
			t.Errorf("%s: code %v, want %v", tc.name, status.Code(err), want)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestClientBreakerPerTarget(t *testing.T) {
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	bs, err := backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: backoff.BreakerConfig{
		WindowCalls: 4, MinCalls: 4, OpenWait: time.Hour, Classify: grpcguard.Classify,
	}})
	if err != nil {
		t.Fatal(err)
	}
	cl := mustClient(t, grpcguard.ClientConfig{Policy: backoff.Policy{MaxAttempts: 1}, Breakers: bs})
	c := dial(t, addr, retrying(cl)...)
	ctx := context.Background()
	// The application's answers do not open the breaker.
	for range 8 {
		if _, err := check(ctx, c, "code:5"); status.Code(err) != codes.NotFound {
			t.Fatalf("err %v, want NotFound", err)
		}
	}
	for range 4 {
		if _, err := check(ctx, c, "code:14"); status.Code(err) != codes.Unavailable {
			t.Fatalf("err %v, want Unavailable", err)
		}
	}
	before := len(arr.get())
	_, err = check(ctx, c, "")
	if !errors.Is(err, backoff.ErrBreakerOpen) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v (code %v), want the breaker open with code Unavailable", err, status.Code(err))
	}
	if n := len(arr.get()) - before; n != 0 {
		t.Fatalf("%d calls reached the server through an open breaker", n)
	}
	if b, ok := bs.Lookup(addr); !ok || b.State() != backoff.BreakerOpen {
		t.Fatalf("no open breaker for target %q", addr)
	}
}

func TestClientBudget(t *testing.T) {
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	budget, err := backoff.NewBudget(backoff.BudgetConfig{Ratio: 0.1, NoFloor: true, MaxTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	cl := mustClient(t, grpcguard.ClientConfig{Policy: backoff.Policy{Base: time.Microsecond, MaxAttempts: 10}, Budget: budget, IdempotentMethods: []string{checkMethod}})
	c := dial(t, addr, retrying(cl)...)
	_, err = check(context.Background(), c, "code:14")
	if !errors.Is(err, backoff.ErrBudgetExhausted) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v, want budget exhausted with code Unavailable", err)
	}
	if n := len(arr.get()); n != 1 {
		t.Fatalf("%d attempts, want 1 (the budget held no token)", n)
	}
}

func TestClientStreamRetriesEstablishmentOnly(t *testing.T) {
	// Stream creation against a port nobody listens on fails in streamer
	// itself: retried.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	attempts := 0
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, OnAttempt: func(m string, ev backoff.Event) {
		if m == watchMethod {
			attempts++
		}
	}})
	c := dial(t, dead, retrying(cl)...)
	_, err = c.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable || attempts != 3 {
		t.Fatalf("err %v after %d attempts, want Unavailable after 3", err, attempts)
	}

	// A stream the server refuses fails on its first Recv, after the
	// stream was handed over: not retried, the pushback left to the
	// application in Trailer.
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	h := newTestHealth()
	arr := &arrivals{}
	c2 := dial(t, serve(t, h, arr, s.Unary, s.Stream), retrying(cl)...)
	first, err := c2.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: "block"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil {
		t.Fatal(err)
	}
	second, err := c2.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("second stream: %v, want Unavailable", err)
	}
	// The pushback is the time the stream waited, at least MaxWait.
	if d, retry, present := grpcguard.ParsePushback(second.Trailer()[grpcguard.PushbackKey]); !present || !retry || d < time.Millisecond {
		t.Fatalf("second stream's pushback %v %v %v, want at least 1ms", d, retry, present)
	}
	if n := len(arr.get()); n != 2 {
		t.Fatalf("%d streams reached the server, want 2", n)
	}
}

func TestNewClientValidates(t *testing.T) {
	cases := map[string]grpcguard.ClientConfig{
		"OK code":           {RetryCodes: []codes.Code{codes.OK}},
		"code out of range": {IdempotentCodes: []codes.Code{17}},
		"bad method":        {IdempotentMethods: []string{"Check"}},
		"method no name":    {IdempotentMethods: []string{"/grpc.health.v1.Health/"}},
		"negative pushback": {MaxPushback: -time.Second},
		"bad policy":        {Policy: backoff.Policy{Multiplier: -1}},
	}
	for name, cfg := range cases {
		if _, err := grpcguard.NewClient(cfg); !errors.Is(err, grpcguard.ErrInvalidConfig) {
			t.Errorf("%s: err %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := grpcguard.NewClient(grpcguard.ClientConfig{Policy: backoff.Policy{Multiplier: -1}}); !errors.Is(err, backoff.ErrInvalidPolicy) {
		t.Errorf("bad policy: err %v, want backoff.ErrInvalidPolicy too", err)
	}
	if _, err := grpcguard.NewClient(grpcguard.ClientConfig{}); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func TestClientDoneContextMakesNoAttempt(t *testing.T) {
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	c := dial(t, addr, retrying(mustClient(t, grpcguard.ClientConfig{Policy: fast}))...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := check(ctx, c, ""); status.Code(err) != codes.Canceled {
		t.Fatalf("err %v, want Canceled", err)
	}
	ws, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err == nil {
		_, err = ws.Recv()
	}
	if status.Code(err) != codes.Canceled {
		t.Fatalf("stream: err %v, want Canceled", err)
	}
	if n := len(arr.get()); n != 0 {
		t.Fatalf("%d attempts with a done context", n)
	}
}

func TestNilClientAndServer(t *testing.T) {
	var c *grpcguard.Client
	calls := 0
	err := c.Unary(context.Background(), checkMethod, nil, nil, nil,
		func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			calls++
			return status.Error(codes.Unavailable, "x")
		})
	if calls != 1 || status.Code(err) != codes.Unavailable {
		t.Fatalf("nil client: %d calls, err %v; want one plain call", calls, err)
	}
	if err := (&grpcguard.Client{}).Unary(context.Background(), checkMethod, nil, nil, nil, nil); status.Code(err) != codes.Internal {
		t.Fatalf("nil invoker: %v", err)
	}
	var s *grpcguard.Server
	ran := false
	_, err = s.Unary(context.Background(), nil, nil, func(context.Context, any) (any, error) { ran = true; return nil, nil })
	if ran || !errors.Is(err, grpcguard.ErrInvalidArgument) || status.Code(err) != codes.Internal {
		t.Fatalf("nil server: ran %v, err %v", ran, err)
	}
	err = s.Stream(nil, fakeStream{context.Background()}, nil, func(any, grpc.ServerStream) error { ran = true; return nil })
	if ran || !errors.Is(err, grpcguard.ErrInvalidArgument) {
		t.Fatalf("nil server stream: ran %v, err %v", ran, err)
	}
	b, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	s = mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	if _, err := s.Unary(context.Background(), nil, nil, nil); !errors.Is(err, grpcguard.ErrInvalidArgument) {
		t.Fatalf("nil handler: %v", err)
	}
	if _, err := s.Unary(context.Background(), nil, nil, func(context.Context, any) (any, error) { return "ok", nil }); err != nil {
		t.Fatalf("nil info: %v", err)
	}
	if n := b.Stats().InFlight; n != 0 {
		t.Fatalf("%d in flight", n)
	}
}

// lateCtx is a context whose deadline can be moved, and whose Err never
// reports it: a context whose timer has not fired yet.
type lateCtx struct {
	context.Context
	deadline atomic.Int64
	err      atomic.Pointer[error]
}

func (c *lateCtx) Deadline() (time.Time, bool) { return time.Unix(0, c.deadline.Load()), true }

// Err reports a cancellation that Done never signals: the sleep between
// attempts cannot see it.
func (c *lateCtx) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

func TestClientNoRetryAfterCancelDuringSleep(t *testing.T) {
	ctx := &lateCtx{Context: context.Background()}
	ctx.deadline.Store(time.Now().Add(time.Hour).UnixNano())
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, OnAttempt: func(string, backoff.Event) {
		canceled := context.Canceled
		ctx.err.Store(&canceled) // as the sleep before the retry ends
	}})
	calls := 0
	err := cl.Unary(ctx, checkMethod, nil, nil, nil,
		func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			calls++
			return status.Error(codes.Unavailable, "down")
		})
	if calls != 1 || status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("%d attempts, err %v (code %v); want 1 attempt and Canceled", calls, err, status.Code(err))
	}
}

func TestClientNoRetryAfterLateTimer(t *testing.T) {
	ctx := &lateCtx{Context: context.Background()}
	ctx.deadline.Store(time.Now().Add(time.Hour).UnixNano())
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, OnAttempt: func(string, backoff.Event) {
		// The retry was planned within the deadline; the sleep ends after
		// it, as when a timer fires late.
		ctx.deadline.Store(time.Now().Add(-time.Millisecond).UnixNano())
	}})
	for _, stream := range []bool{false, true} {
		ctx.deadline.Store(time.Now().Add(time.Hour).UnixNano())
		calls := 0
		var err error
		if stream {
			_, err = cl.Stream(ctx, &grpc.StreamDesc{ServerStreams: true}, nil, watchMethod,
				func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
					calls++
					return nil, status.Error(codes.Unavailable, "down")
				})
		} else {
			err = cl.Unary(ctx, checkMethod, nil, nil, nil,
				func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
					calls++
					return status.Error(codes.Unavailable, "down")
				})
		}
		if calls != 1 {
			t.Fatalf("stream %v: %d attempts, want 1: no retry starts after the deadline", stream, calls)
		}
		if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stream %v: err %v (code %v), want DeadlineExceeded", stream, err, status.Code(err))
		}
	}
}
