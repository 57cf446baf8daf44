package grpcguard_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"pgregory.net/rapid"
)

// cutListener remembers the server side of every connection it accepts,
// so that a handler can cut them all, as a crash or a network failure
// does after the server has acted on a call.
type cutListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *cutListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// cutHealth's Check acts (counts a run), then, on its first run, cuts
// every connection before it can answer.
type cutHealth struct {
	grpc_health_v1.UnimplementedHealthServer
	lis  *cutListener
	mu   sync.Mutex
	runs int
}

func (h *cutHealth) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	h.mu.Lock()
	h.runs++
	first := h.runs == 1
	h.mu.Unlock()
	if first {
		h.lis.cut()
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

func (h *cutHealth) ran() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runs
}

// serveCut serves h on a cutListener, through the given interceptor.
func serveCut(t *testing.T, h *cutHealth, unary grpc.UnaryServerInterceptor) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.lis = &cutListener{Listener: l}
	var opts []grpc.ServerOption
	if unary != nil {
		opts = append(opts, grpc.UnaryInterceptor(unary))
	}
	srv := grpc.NewServer(opts...)
	grpc_health_v1.RegisterHealthServer(srv, h)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(h.lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return l.Addr().String()
}

// TestClientNeverRetriesNonIdempotentAfterItRan: a connection lost after
// the server acted on a call gives codes.Unavailable, which the default
// configuration retries; for a method not listed as idempotent the retry
// would act twice. gRPC's own documentation of UNAVAILABLE says so: "it is
// not always safe to retry non-idempotent operations".
func TestClientNeverRetriesNonIdempotentAfterItRan(t *testing.T) {
	for _, idem := range []bool{false, true} {
		h := &cutHealth{}
		addr := serveCut(t, h, nil)
		cfg := grpcguard.ClientConfig{Policy: fast}
		if idem {
			cfg.IdempotentMethods = []string{checkMethod}
		}
		c := dial(t, addr, retrying(mustClient(t, cfg))...)
		_, err := check(context.Background(), c, "")
		want, wantCode := 1, codes.Unavailable
		if idem {
			want, wantCode = 2, codes.OK // retried, and the retry succeeds
		}
		if h.ran() != want || status.Code(err) != wantCode {
			t.Fatalf("idempotent %v: the handler ran %d times, err %v; want %d runs and %v", idem, h.ran(), err, want, wantCode)
		}
	}
}

// TestClientRetriesNonIdempotentWhenNotRun: what provably did not run is
// retried for every method: a call the server's admission refused (a
// full queue, which sends no pushback; a rate limit, whose pushback the
// retry honours), and a call that never left the client (nothing
// listens).
func TestClientRetriesNonIdempotentWhenNotRun(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b, OnRefused: func(string, *shed.Refusal, *status.Status) {
		refused++
		b.Release() // the next attempt finds the slot free
	}})
	h := newTestHealth()
	arr := &arrivals{}
	c := dial(t, serve(t, h, arr, s.Unary, s.Stream), retrying(mustClient(t, grpcguard.ClientConfig{Policy: fast, RetryRefused: true}))...)
	if !b.TryAcquire() {
		t.Fatal("could not take the slot")
	}
	if _, err := check(context.Background(), c, ""); err != nil || refused != 1 || h.ran() != 1 || len(arr.get()) != 2 {
		t.Fatalf("err %v, %d refusals, %d runs, %d arrivals; want a refusal, then a retry that runs", err, refused, h.ran(), len(arr.get()))
	}

	// A rate limiter's refusal: ResourceExhausted with a pushback, retried
	// no sooner than the pushback.
	lim, err := shed.NewLimiter(shed.LimiterConfig{Rate: 4, Burst: 1, MaxWait: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		refusals []time.Time
		retryIn  time.Duration
	)
	sl := mustServer(t, grpcguard.ServerConfig{Limiter: lim, OnRefused: func(_ string, r *shed.Refusal, _ *status.Status) {
		mu.Lock()
		refusals, retryIn = append(refusals, time.Now()), r.RetryIn
		mu.Unlock()
	}})
	hl := newTestHealth()
	arrl := &arrivals{}
	cl0 := dial(t, serve(t, hl, arrl, sl.Unary, sl.Stream), retrying(mustClient(t, grpcguard.ClientConfig{Policy: fast, RetryRefused: true}))...)
	if !lim.Allow() { // the test takes the token: the call is refused
		t.Fatal("could not take the token")
	}
	if _, err := check(context.Background(), cl0, ""); err != nil {
		t.Fatalf("limiter call: %v", err)
	}
	mu.Lock()
	at := arrl.get()
	if len(refusals) != 1 || len(at) != 2 || hl.ran() != 1 {
		t.Fatalf("%d refusals, %d arrivals, %d runs; want 1, 2, 1", len(refusals), len(at), hl.ran())
	}
	// Whole milliseconds, rounded up, after the refusal was decided.
	if gap, pb := at[1].Sub(refusals[0]), (retryIn + time.Millisecond - 1).Truncate(time.Millisecond); gap < pb {
		t.Fatalf("retry %v after the refusal, before its pushback %v", gap, pb)
	}
	mu.Unlock()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	attempts := 0
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, OnAttempt: func(string, backoff.Event) { attempts++ }})
	_, err = check(context.Background(), dial(t, dead, retrying(cl)...), "")
	if status.Code(err) != codes.Unavailable || attempts != 3 {
		t.Fatalf("dead port: err %v after %d attempts, want Unavailable after 3", err, attempts)
	}
}

// TestNilRefusal: the exported mappings take a nil refusal without a panic.
func TestNilRefusal(t *testing.T) {
	if c := grpcguard.DefaultCode(nil); c != codes.Unavailable {
		t.Errorf("DefaultCode(nil) = %v, want Unavailable", c)
	}
	if d, ok := grpcguard.DefaultPushback(nil); ok {
		t.Errorf("DefaultPushback(nil) = %v, true; want no hint", d)
	}
	if r := grpcguard.RefusalReason(nil); r != "other" {
		t.Errorf("RefusalReason(nil) = %q", r)
	}
}

// serveStoppable is serve, with the server handed to the test to stop.
func serveStoppable(t *testing.T, h *testHealth, s *grpcguard.Server) (*grpc.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Stop returns once every handler has: the test then sees what they left.
	srv := grpc.NewServer(grpc.UnaryInterceptor(s.Unary), grpc.StreamInterceptor(s.Stream), grpc.WaitForHandlers(true))
	grpc_health_v1.RegisterHealthServer(srv, h)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return srv, lis.Addr().String()
}

// callsInFlight starts, against c, a blocked unary call, a blocked stream
// and a stream the client never receives from (the server blocks in flow
// control) to hold the slots, then n unary calls and n streams that wait
// for one; it returns once they are all in the bulkhead, and a function
// that waits for every call to end and returns their errors.
func callsInFlight(t *testing.T, c grpc_health_v1.HealthClient, b *shed.Bulkhead, n int) func() []error {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	record := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	unary := func() {
		defer wg.Done()
		_, err := check(ctx, c, "block")
		record(err)
	}
	stream := func(cmd string, recv bool) {
		defer wg.Done()
		ws, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{Service: cmd})
		if err == nil && recv {
			for err == nil {
				_, err = ws.Recv()
			}
			if err == io.EOF {
				err = nil
			}
		} else if err == nil {
			<-ctx.Done() // never receives; the test's end cancels it
			err = ctx.Err()
		}
		record(err)
	}
	wg.Add(3)
	go unary()
	go stream("block", true)
	go stream("flood", false)
	waitFor(t, "the slots to be held", func() bool { return b.Stats().InFlight == 3 })
	for range n {
		wg.Add(2)
		go unary()
		go stream("block", true)
	}
	waitFor(t, "the calls to wait", func() bool { return b.Stats().Waiting == 2*n })
	return func() []error {
		// The stream that never receives ends only when its client goes.
		waitFor(t, "every call but the silent stream to end", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(errs) >= 2+2*n
		})
		cancel()
		wg.Wait()
		return errs
	}
}

// TestServerStopReleasesEverySlot: Stop during calls that hold slots
// (one of them a stream whose client never receives) and calls that wait
// for one ends them all, and leaves every slot free and no waiter behind.
func TestServerStopReleasesEverySlot(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 3, MaxQueue: 8, MaxWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	h := newTestHealth()
	srv, addr := serveStoppable(t, h, s)
	wait := callsInFlight(t, dial(t, addr), b, 3)
	srv.Stop()
	for _, err := range wait() {
		if err == nil {
			t.Errorf("a call succeeded through Stop")
		}
	}
	if st := b.Stats(); st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("after Stop: %d in flight, %d waiting; want none", st.InFlight, st.Waiting)
	}
}

// TestServerGracefulStopServesWaiters: GracefulStop lets the calls it
// accepted finish, those waiting for a slot included: they are served
// as the holders end, and every slot is free once it returns.
func TestServerGracefulStopServesWaiters(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 3, MaxQueue: 8, MaxWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	h := newTestHealth()
	srv, addr := serveStoppable(t, h, s)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	wait := callsInFlight(t, grpc_health_v1.NewHealthClient(cc), b, 3)
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	close(h.release)
	errs := wait() // ends the silent stream too, so that GracefulStop can return
	<-stopped
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	// Only the silent stream, cancelled by its client, fails.
	if failed != 1 || h.ran() != 3+6 {
		t.Fatalf("%d calls failed, %d ran; want 1 failed (the silent stream) and 9 ran", failed, h.ran())
	}
	if st := b.Stats(); st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("after GracefulStop: %d in flight, %d waiting; want none", st.InFlight, st.Waiting)
	}
}

// TestServerPanicOverNetworkReleasesSlot: a handler that panics, under a
// recovering interceptor outside the guard (gRPC itself does not
// recover), leaves its slot free, for unary calls and streams, with a
// Queue and a Partition.
func TestServerPanicOverNetworkReleasesSlot(t *testing.T) {
	recoverUnary := func(s *grpcguard.Server) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (_ any, err error) {
			defer func() {
				if recover() != nil {
					err = status.Error(codes.Internal, "recovered")
				}
			}()
			return s.Unary(ctx, req, info, handler)
		}
	}
	recoverStream := func(s *grpcguard.Server) grpc.StreamServerInterceptor {
		return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
			defer func() {
				if recover() != nil {
					err = status.Error(codes.Internal, "recovered")
				}
			}()
			return s.Stream(srv, ss, info, handler)
		}
	}
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cfg      grpcguard.ServerConfig
		inFlight func() int
	}{
		"queue":     {grpcguard.ServerConfig{Queue: q}, func() int { return q.Stats().InFlight }},
		"partition": {grpcguard.ServerConfig{Partition: p, Key: grpcguard.KeyByMethod}, func() int { return p.Stats().InFlight }},
	} {
		s := mustServer(t, tc.cfg)
		h := newTestHealth()
		c := dial(t, serve(t, h, nil, recoverUnary(s), recoverStream(s)))
		for i := range 3 {
			if _, err := check(context.Background(), c, "panic"); status.Code(err) != codes.Internal {
				t.Fatalf("%s: call %d: %v, want the recovered Internal (a slot leaked?)", name, i, err)
			}
			ws, err := c.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: "panic"})
			for err == nil {
				_, err = ws.Recv()
			}
			if status.Code(err) != codes.Internal {
				t.Fatalf("%s: stream %d: %v, want the recovered Internal", name, i, err)
			}
		}
		if n := tc.inFlight(); n != 0 {
			t.Fatalf("%s: %d in flight after the panics", name, n)
		}
	}
}

// TestClientBudgetOverNetwork: every call whose first attempt reaches the
// server earns Ratio of a token, every retry spends one, and retries stop
// when the balance cannot pay; computed here from the calls made.
func TestClientBudgetOverNetwork(t *testing.T) {
	const ratio = 0.5
	budget, err := backoff.NewBudget(backoff.BudgetConfig{Ratio: ratio, NoFloor: true, MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	cl := mustClient(t, grpcguard.ClientConfig{
		Policy:            backoff.Policy{Base: time.Microsecond, Cap: time.Microsecond, MaxAttempts: 10},
		Budget:            budget,
		IdempotentMethods: []string{checkMethod},
	})
	c := dial(t, addr, retrying(cl)...)
	ctx := context.Background()
	const ok = 4
	for range ok {
		if _, err := check(ctx, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Recv(); err != nil {
		t.Fatal(err)
	}
	// 5 calls earned 2.5 tokens; a failing call earns 0.5 more and pays
	// for 3 retries (3 → 0), the fourth is refused.
	earned := (ok + 1 + 1) * ratio
	retries := int(earned)
	before := len(arr.get())
	_, err = check(ctx, c, "code:14")
	if !errors.Is(err, backoff.ErrBudgetExhausted) {
		t.Fatalf("err %v, want the budget exhausted", err)
	}
	if n := len(arr.get()) - before; n != 1+retries {
		t.Fatalf("%d attempts, want %d (1 + the retries %v tokens pay)", n, 1+retries, earned)
	}
	st := budget.Stats()
	if st.Retries != int64(retries) || st.Refused != 1 || math.Abs(st.Tokens-(earned-float64(retries))) > 1e-9 {
		t.Fatalf("budget %+v, want %d retries, 1 refused, %v tokens", st, retries, earned-float64(retries))
	}
}

// TestClientBreakersIsolateTargets: the breaker of a failing target opens
// and stops its calls before they leave the client; another target, same
// Client and Breakers, keeps working.
func TestClientBreakersIsolateTargets(t *testing.T) {
	bad, good := newTestHealth(), newTestHealth()
	badArr, goodArr := &arrivals{}, &arrivals{}
	badAddr, goodAddr := serve(t, bad, badArr, nil, nil), serve(t, good, goodArr, nil, nil)
	bs, err := backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: backoff.BreakerConfig{
		WindowCalls: 4, MinCalls: 4, OpenWait: time.Hour, Classify: grpcguard.Classify,
	}})
	if err != nil {
		t.Fatal(err)
	}
	cl := mustClient(t, grpcguard.ClientConfig{Policy: backoff.Policy{MaxAttempts: 1}, Breakers: bs})
	cb, cg := dial(t, badAddr, retrying(cl)...), dial(t, goodAddr, retrying(cl)...)
	ctx := context.Background()
	for range 4 {
		if _, err := check(ctx, cb, "code:14"); status.Code(err) != codes.Unavailable {
			t.Fatal(err)
		}
		if _, err := check(ctx, cg, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := check(ctx, cb, ""); !errors.Is(err, backoff.ErrBreakerOpen) {
		t.Fatalf("bad target: %v, want its breaker open", err)
	}
	for range 4 {
		if _, err := check(ctx, cg, ""); err != nil {
			t.Fatalf("good target: %v", err)
		}
	}
	if nb, ng := len(badArr.get()), len(goodArr.get()); nb != 4 || ng != 8 {
		t.Fatalf("arrivals: bad %d, good %d; want 4 and 8", nb, ng)
	}
	if b, _ := bs.Lookup(goodAddr); b == nil || b.State() != backoff.BreakerClosed {
		t.Fatalf("good target's breaker not closed")
	}
}

// TestClientServerStorm: many goroutines share one Client (budget,
// breakers) against a server that sheds most of them; every call ends
// with a success or a shed code, no handler runs twice for a call, and
// no slot is left held.
func TestClientServerStorm(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 2, MaxQueue: 2, MaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, s.Unary, s.Stream)
	budget, err := backoff.NewBudget(backoff.BudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: backoff.BreakerConfig{Classify: grpcguard.Classify}})
	if err != nil {
		t.Fatal(err)
	}
	cl := mustClient(t, grpcguard.ClientConfig{
		Policy: backoff.Policy{Base: time.Millisecond, MaxAttempts: 4}, Budget: budget, Breakers: bs,
	})
	c := dial(t, addr, retrying(cl)...)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		served int
	)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%4 == 0 {
				var ws grpc_health_v1.Health_WatchClient
				ws, err = c.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{})
				for err == nil {
					_, err = ws.Recv()
				}
				if err == io.EOF {
					err = nil
				}
			} else {
				_, err = check(context.Background(), c, "")
			}
			switch status.Code(err) {
			case codes.OK:
				mu.Lock()
				served++
				mu.Unlock()
			case codes.Unavailable:
			default:
				t.Errorf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if st := b.Stats(); st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("%d in flight, %d waiting after the storm", st.InFlight, st.Waiting)
	}
	if h.ran() != served {
		t.Fatalf("handlers ran %d times for %d calls served", h.ran(), served)
	}
	t.Logf("%d served of 64, %d arrivals, budget %+v", served, len(arr.get()), budget.Stats())
}

// TestBuiltinRetryInteraction: with gRPC's own retry left on (a service
// config with a retryPolicy, no WithDisableRetry), gRPC's attempts run
// inside each of the Client's, as the package documentation says: at most
// their product reaches the server, and a "do not retry" pushback stops
// both loops.
func TestBuiltinRetryInteraction(t *testing.T) {
	const sc = `{"methodConfig":[{"name":[{"service":"grpc.health.v1.Health"}],"retryPolicy":{
		"maxAttempts":3,"initialBackoff":"0.001s","maxBackoff":"0.001s","backoffMultiplier":1,
		"retryableStatusCodes":["UNAVAILABLE"]}}]}`
	h := newTestHealth()
	arr := &arrivals{}
	addr := serve(t, h, arr, nil, nil)
	for _, tc := range []struct {
		cmd      string
		idem     bool
		arrivals int
	}{
		{"code:14", false, 3}, // gRPC's retries only: the handler ran
		{"code:14", true, 9},  // 3 of gRPC's in each of fast's 3
		{"code:14:pb:-1", true, 1},
	} {
		cfg := grpcguard.ClientConfig{Policy: fast}
		if tc.idem {
			cfg.IdempotentMethods = []string{checkMethod}
		}
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(sc), grpc.WithUnaryInterceptor(mustClient(t, cfg).Unary))
		if err != nil {
			t.Fatal(err)
		}
		before := len(arr.get())
		_, err = check(context.Background(), grpc_health_v1.NewHealthClient(cc), tc.cmd)
		cc.Close()
		if n := len(arr.get()) - before; n != tc.arrivals || status.Code(err) != codes.Unavailable {
			t.Errorf("%s, idempotent %v: %d arrivals, err %v; want %d, Unavailable", tc.cmd, tc.idem, n, err, tc.arrivals)
		}
	}
}

// TestHooksThatPanicHoldNothing: a configuration hook that panics leaves
// no slot held on the server and no breaker probe outstanding on the
// client: the panic reaches the caller, and the next call is served.
func TestHooksThatPanicHoldNothing(t *testing.T) {
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s: no panic", what)
			}
		}()
		f()
	}
	info := &grpc.UnaryServerInfo{FullMethod: checkMethod}
	ok := func(context.Context, any) (any, error) { return "ok", nil }

	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	refusing := true
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b, OnRefused: func(string, *shed.Refusal, *status.Status) {
		if refusing {
			panic("OnRefused panics")
		}
	}})
	if !b.TryAcquire() {
		t.Fatal("could not take the slot")
	}
	mustPanic("OnRefused", func() { _, _ = s.Unary(context.Background(), nil, info, ok) })
	b.Release()
	if _, err := s.Unary(context.Background(), nil, info, ok); err != nil || b.Stats().InFlight != 0 {
		t.Fatalf("after OnRefused panicked: err %v, %d in flight", err, b.Stats().InFlight)
	}

	q, err := shed.NewQueue(shed.QueueConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	pri := func(context.Context, string) shed.Priority { panic("Priority panics") }
	sq := mustServer(t, grpcguard.ServerConfig{Queue: q, Priority: pri})
	mustPanic("Priority", func() { _, _ = sq.Unary(context.Background(), nil, info, ok) })
	if st := q.Stats(); st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("after Priority panicked: %+v", st)
	}

	// A breaker that lets one probe through at a time: a hook that panics
	// after the probe must not leave it outstanding.
	bs, err := backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: backoff.BreakerConfig{
		WindowCalls: 1, MinCalls: 1, OpenWait: time.Nanosecond, Probes: 1, Classify: grpcguard.Classify,
	}})
	if err != nil {
		t.Fatal(err)
	}
	panicking := true
	cl := mustClient(t, grpcguard.ClientConfig{Policy: backoff.Policy{MaxAttempts: 1}, Breakers: bs,
		OnAttempt: func(string, backoff.Event) {
			if panicking {
				panic("OnAttempt panics")
			}
		}})
	fail := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		return status.Error(codes.Unavailable, "down")
	}
	succeed := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for range 3 { // open, then probes that fail (OpenWait is 1ns), each under a panicking hook
		mustPanic("OnAttempt", func() { _ = cl.Unary(context.Background(), checkMethod, nil, nil, nil, fail) })
	}
	panicking = false
	if err := cl.Unary(context.Background(), checkMethod, nil, nil, nil, succeed); err != nil {
		t.Fatalf("after the hook panicked: %v (a probe left outstanding?)", err)
	}
}

// TestServerStreamLifetimeIsNotALatency: a stream holds its slot for its
// whole life, which says nothing of how fast the server answers; fed to
// an adaptive limit as a latency, long-lived streams raise its baseline
// (here from microseconds to the streams' lifetime), after which unary
// calls that slow down by as much never lower the limit.
func TestServerStreamLifetimeIsNotALatency(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 40, Adaptive: &shed.AdaptiveConfig{
		InitialLimit: 20, WindowSamples: 4,
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	ctx := context.Background()
	for range 8 { // unary calls set the baseline: two windows
		if _, err := check(ctx, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := b.AdaptiveStats()
	// Streams that stay open until the test ends them: a window of them.
	for range 4 {
		ws, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{Service: "block"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ws.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the streams to hold their slots", func() bool { return b.Stats().InFlight == 4 })
	close(h.release)
	waitFor(t, "the streams to end", func() bool { return b.Stats().InFlight == 0 })
	after, _ := b.AdaptiveStats()
	if after.Samples != before.Samples || after.Baseline != before.Baseline {
		t.Fatalf("streams fed the adaptive limit: samples %d -> %d, baseline %v -> %v", before.Samples, after.Samples, before.Baseline, after.Baseline)
	}
}

// TestClientTooManyBreakers: a call refused because the Breakers is at its
// key bound with every breaker open is codes.Unavailable, makes no
// attempt, and says why: it matches backoff.ErrTooManyBreakers.
func TestClientTooManyBreakers(t *testing.T) {
	bs, err := backoff.NewBreakers(backoff.BreakersConfig[string]{MaxKeys: 1, Breaker: backoff.BreakerConfig{
		WindowCalls: 1, MinCalls: 1, OpenWait: time.Hour, Classify: grpcguard.Classify,
	}})
	if err != nil {
		t.Fatal(err)
	}
	cl := mustClient(t, grpcguard.ClientConfig{Policy: backoff.Policy{MaxAttempts: 1}, Breakers: bs,
		BreakerKey: func(_, method string) string { return method }})
	calls := 0
	inv := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		calls++
		return status.Error(codes.Unavailable, "down")
	}
	_ = cl.Unary(context.Background(), checkMethod, nil, nil, nil, inv) // opens the only breaker
	err = cl.Unary(context.Background(), "/grpc.health.v1.Health/Other", nil, nil, nil, inv)
	if calls != 1 || status.Code(err) != codes.Unavailable || !errors.Is(err, backoff.ErrTooManyBreakers) {
		t.Fatalf("%d calls, err %v (code %v); want 1 call and Unavailable matching backoff.ErrTooManyBreakers", calls, err, status.Code(err))
	}
	_, err = cl.Stream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, nil, watchMethod,
		func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
			calls++
			return nil, nil
		})
	if calls != 1 || status.Code(err) != codes.Unavailable || !errors.Is(err, backoff.ErrTooManyBreakers) {
		t.Fatalf("stream: %d calls, err %v; want no call and Unavailable matching backoff.ErrTooManyBreakers", calls, err)
	}
}

// TestServerSlotsProperty: any mix of unary calls and streams, whose
// handlers succeed, fail, panic (under a recovering interceptor) or block
// until their client cancels or their deadline passes, started at once
// against a small Partition over the network, leaves every slot free and
// no waiter behind, and runs a handler only for a call that was admitted.
func TestServerSlotsProperty(t *testing.T) {
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 3, PerKey: 2, MaxQueuePerKey: 2, MaxWait: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Partition: p, Key: grpcguard.KeyByMetadata("tenant")})
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (_ any, err error) {
		defer func() {
			if recover() != nil {
				err = status.Error(codes.Internal, "recovered")
			}
		}()
		return s.Unary(ctx, req, info, handler)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if recover() != nil {
				err = status.Error(codes.Internal, "recovered")
			}
		}()
		return s.Stream(srv, ss, info, handler)
	}
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, unary, stream))
	rapid.Check(t, func(rt *rapid.T) {
		before := p.Stats()
		ranBefore := h.ran()
		n := rapid.IntRange(1, 8).Draw(rt, "calls")
		var wg sync.WaitGroup
		for range n {
			isStream := rapid.Bool().Draw(rt, "stream")
			cmd := rapid.SampledFrom([]string{"", "code:14", "panic", "block"}).Draw(rt, "cmd")
			tenant := rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "tenant")
			end := time.Duration(rapid.IntRange(1, 8).Draw(rt, "end_ms")) * time.Millisecond
			cancelNotDeadline := rapid.Bool().Draw(rt, "cancel")
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := metadata.AppendToOutgoingContext(context.Background(), "tenant", tenant)
				var cancel context.CancelFunc
				if cancelNotDeadline {
					ctx, cancel = context.WithCancel(ctx)
					timer := time.AfterFunc(end, cancel)
					defer timer.Stop()
				} else {
					ctx, cancel = context.WithTimeout(ctx, end)
				}
				defer cancel()
				_ = call(ctx, c, isStream, cmd)
			}()
		}
		wg.Wait()
		waitFor(t, "every handler to return", func() bool { st := p.Stats(); return st.InFlight == 0 && st.Waiting == 0 })
		after := p.Stats()
		if ran, admitted := h.ran()-ranBefore, int(after.Admitted-before.Admitted); ran > admitted {
			rt.Fatalf("%d handlers ran for %d calls admitted", ran, admitted)
		}
		for i := range 3 {
			if !p.TryAcquire(strconv.Itoa(i)) {
				rt.Fatalf("slot %d not free", i)
			}
		}
		for i := range 3 {
			p.Release(strconv.Itoa(i))
		}
	})
}
