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

	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func mustServer(t testing.TB, cfg grpcguard.ServerConfig) *grpcguard.Server {
	t.Helper()
	s, err := grpcguard.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ceilMS is the pushback a delay should be sent as, computed apart from
// FormatPushback: whole milliseconds, rounded up.
func ceilMS(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(float64(d)/float64(time.Millisecond))), 10)
}

func TestServerRateLimitPushback(t *testing.T) {
	t.Run("Limiter", func(t *testing.T) {
		lim, err := shed.NewLimiter(shed.LimiterConfig{Rate: 0.5, Burst: 1})
		if err != nil {
			t.Fatal(err)
		}
		testRateLimitPushback(t, grpcguard.ServerConfig{Limiter: lim})
	})
	t.Run("KeyedLimiter", func(t *testing.T) {
		lim, err := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{LimiterConfig: shed.LimiterConfig{Rate: 0.5, Burst: 1}})
		if err != nil {
			t.Fatal(err)
		}
		testRateLimitPushback(t, grpcguard.ServerConfig{KeyedLimiter: lim, Key: grpcguard.KeyByPeer})
	})
}

// testRateLimitPushback: a limiter of 0.5/s with a burst of 1 refuses the
// second of two calls with the time its next token is due.
func testRateLimitPushback(t *testing.T, cfg grpcguard.ServerConfig) {
	var (
		mu      sync.Mutex
		refused []*shed.Refusal
	)
	cfg.OnRefused = func(_ string, r *shed.Refusal, _ *status.Status) {
		mu.Lock()
		refused = append(refused, r)
		mu.Unlock()
	}
	s := mustServer(t, cfg)
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	ctx := context.Background()
	before := time.Now()
	if _, err := check(ctx, c, ""); err != nil {
		t.Fatalf("first call: %v", err)
	}
	tr, err := check(ctx, c, "")
	elapsed := time.Since(before)
	if got := status.Code(err); got != codes.ResourceExhausted {
		t.Fatalf("second call: code %v (%v), want ResourceExhausted", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 1 {
		t.Fatalf("%d refusals reported, want 1", len(refused))
	}
	want := ceilMS(refused[0].RetryIn)
	if got := tr.Get(grpcguard.PushbackKey); len(got) != 1 || got[0] != want {
		t.Fatalf("pushback trailer %q, want [%q] (RetryIn %v)", got, want, refused[0].RetryIn)
	}
	// Independently of the refusal: the token is due 2s after the first
	// call took it, which was at most elapsed before the refusal.
	ms, _ := strconv.ParseInt(want, 10, 64)
	if ms > 2000 || time.Duration(ms)*time.Millisecond < 2*time.Second-elapsed {
		t.Fatalf("pushback %dms, want in [2s-%v, 2s]", ms, elapsed)
	}
	if h.ran() != 1 {
		t.Fatalf("handler ran %d times, want 1 (the refused call must not run)", h.ran())
	}
}

func TestServerOverloadCodesAndPushback(t *testing.T) {
	const maxWait = 30 * time.Millisecond
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: maxWait})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		refused []*shed.Refusal
	)
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b, OnRefused: func(_ string, r *shed.Refusal, _ *status.Status) {
		mu.Lock()
		refused = append(refused, r)
		mu.Unlock()
	}})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	ctx := context.Background()
	blocked := make(chan error, 1)
	go func() { _, err := check(ctx, c, "block"); blocked <- err }()
	waitFor(t, "the blocked call to hold the slot", func() bool { return b.Stats().InFlight == 1 })

	// Waits MaxWait in the queue, then is refused: Unavailable with the
	// time it waited (at least the bound) as pushback.
	tr, err := check(ctx, c, "")
	if got := status.Code(err); got != codes.Unavailable {
		t.Fatalf("wait timeout: code %v (%v), want Unavailable", got, err)
	}
	mu.Lock()
	if len(refused) != 1 || refused[0].Waited < maxWait {
		t.Fatalf("refusals %v, want one that waited at least %v", refused, maxWait)
	}
	waited := refused[0].Waited
	mu.Unlock()
	if got, want := tr.Get(grpcguard.PushbackKey), ceilMS(waited); len(got) != 1 || got[0] != want {
		t.Fatalf("wait timeout: pushback %q, want [%q] (waited %v)", got, want, waited)
	}
	if got := tr.Get(grpcguard.RefusedKey); len(got) != 1 || got[0] != "wait_timeout" {
		t.Fatalf("wait timeout: %s %q, want [wait_timeout]", grpcguard.RefusedKey, got)
	}

	// A full queue says nothing of when capacity frees: no pushback.
	full, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	sf := mustServer(t, grpcguard.ServerConfig{Bulkhead: full})
	cf := dial(t, serve(t, newTestHealth(), nil, sf.Unary, sf.Stream))
	if !full.TryAcquire() {
		t.Fatal("could not take the slot")
	}
	tr, err = check(ctx, cf, "")
	full.Release()
	if got := status.Code(err); got != codes.Unavailable {
		t.Fatalf("queue full: code %v (%v), want Unavailable", got, err)
	}
	if got := tr.Get(grpcguard.PushbackKey); len(got) != 0 {
		t.Fatalf("queue full: pushback %q, want none", got)
	}
	if got := tr.Get(grpcguard.RefusedKey); len(got) != 1 || got[0] != "queue_full" {
		t.Fatalf("queue full: %s %q, want [queue_full]", grpcguard.RefusedKey, got)
	}
	close(h.release)
	if err := <-blocked; err != nil {
		t.Fatalf("blocked call: %v", err)
	}
	if h.ran() != 1 {
		t.Fatalf("handler ran %d times, want 1", h.ran())
	}
}

func TestServerCodeOverride(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{
		Bulkhead: b,
		Code:     func(*shed.Refusal) codes.Code { return codes.Aborted },
		Pushback: func(r *shed.Refusal) (time.Duration, bool) { return 1500 * time.Microsecond, true },
	})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	if !b.TryAcquire() {
		t.Fatal("could not take the slot")
	}
	defer b.Release()
	tr, err := check(context.Background(), c, "")
	if status.Code(err) != codes.Aborted {
		t.Fatalf("code %v, want Aborted", status.Code(err))
	}
	if got := tr.Get(grpcguard.PushbackKey); len(got) != 1 || got[0] != "2" {
		t.Fatalf("pushback %q, want [\"2\"] (1.5ms rounded up)", got)
	}
}

func TestDefaultCodeAndPushback(t *testing.T) {
	cases := []struct {
		r        *shed.Refusal
		code     codes.Code
		pushback string // "" for none
	}{
		{&shed.Refusal{Reason: shed.ErrRateLimited, RetryIn: 750*time.Millisecond + 1}, codes.ResourceExhausted, "751"},
		{&shed.Refusal{Reason: shed.ErrLimitReached, RetryIn: 40 * time.Millisecond}, codes.Unavailable, "40"},
		{&shed.Refusal{Reason: shed.ErrWaitTimeout, Waited: 5 * time.Millisecond, MaxWait: 5 * time.Millisecond}, codes.Unavailable, "5"},
		{&shed.Refusal{Reason: shed.ErrQueueFull, Current: 64, Limit: 64}, codes.Unavailable, ""},
		{&shed.Refusal{Reason: shed.ErrPaused}, codes.Unavailable, ""},
		{&shed.Refusal{Reason: shed.ErrEvicted, Waited: time.Millisecond}, codes.Unavailable, "1"},
		// The time this call waited, measured, not the configured bound
		// every such refusal shares: a hint is never a constant.
		{&shed.Refusal{Reason: shed.ErrWaitTimeout, Waited: 7*time.Millisecond + 1, MaxWait: 5 * time.Millisecond}, codes.Unavailable, "8"},
		{&shed.Refusal{Reason: shed.ErrWaitTimeout, MaxWait: 5 * time.Millisecond}, codes.Unavailable, ""},
		{&shed.Refusal{Reason: shed.ErrTooManyKeys, Current: 8, Limit: 8}, codes.Unavailable, ""},
		{&shed.Refusal{Reason: shed.ErrDeadline}, codes.DeadlineExceeded, "-1"},
		{&shed.Refusal{Reason: context.Canceled, Waited: time.Millisecond}, codes.Canceled, ""},
		{&shed.Refusal{Reason: shed.ErrRateLimited, RetryIn: math.MaxInt64}, codes.ResourceExhausted, "2147483647"},
		{&shed.Refusal{Reason: shed.ErrDeadline, Cause: context.DeadlineExceeded}, codes.DeadlineExceeded, "-1"},
	}
	for _, tc := range cases {
		if got := grpcguard.DefaultCode(tc.r); got != tc.code {
			t.Errorf("%v: code %v, want %v", tc.r, got, tc.code)
		}
		d, ok := grpcguard.DefaultPushback(tc.r)
		got := ""
		if ok {
			got = grpcguard.FormatPushback(d)
		}
		if got != tc.pushback {
			t.Errorf("%v: pushback %q, want %q", tc.r, got, tc.pushback)
		}
	}
}

func TestServerQueueDeadlineAdmission(t *testing.T) {
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	var pri []shed.Priority
	var mu sync.Mutex
	s := mustServer(t, grpcguard.ServerConfig{
		Queue: q,
		Priority: func(ctx context.Context, _ string) shed.Priority {
			p := shed.Normal
			if v := metadata.ValueFromIncomingContext(ctx, "priority"); len(v) > 0 && v[0] == "critical" {
				p = shed.Critical
			}
			mu.Lock()
			pri = append(pri, p)
			mu.Unlock()
			return p
		},
		Cost: func(context.Context, string) time.Duration { return time.Hour },
	})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	// The incoming deadline (an hour away at most) cannot fit a call that
	// costs an hour: refused without running, told not to retry.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour-time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "priority", "critical")
	tr, err := check(ctx, c, "")
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("code %v (%v), want DeadlineExceeded", status.Code(err), err)
	}
	if got := tr.Get(grpcguard.PushbackKey); len(got) != 1 || got[0] != "-1" {
		t.Fatalf("pushback %q, want [\"-1\"]", got)
	}
	// Without a deadline, the same call runs.
	if _, err := check(metadata.AppendToOutgoingContext(context.Background(), "priority", "critical"), c, ""); err != nil {
		t.Fatalf("call without deadline: %v", err)
	}
	if h.ran() != 1 {
		t.Fatalf("handler ran %d times, want 1", h.ran())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pri) != 2 || pri[0] != shed.Critical {
		t.Fatalf("priorities %v, want [critical critical]", pri)
	}
}

func TestServerPartitionHungKeyDoesNotStarveOthers(t *testing.T) {
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 4, PerKey: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Partition: p, Key: grpcguard.KeyByMetadata("tenant")})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	tenant := func(k string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "tenant", k)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = check(tenant("a"), c, "block") }()
	}
	waitFor(t, "tenant a to hold its cap", func() bool { st, _ := p.StatsFor("a"); return st.InFlight == 2 })
	if _, err := check(tenant("a"), c, ""); status.Code(err) != codes.Unavailable {
		t.Fatalf("third call of the hung tenant: %v, want Unavailable", err)
	}
	for i := range 5 {
		if _, err := check(tenant("b"), c, ""); err != nil {
			t.Fatalf("tenant b call %d: %v", i, err)
		}
	}
	// Streams of tenant b are admitted as well, while a still hangs.
	ws, err := c.Watch(tenant("b"), &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Recv(); err != nil {
		t.Fatalf("tenant b stream: %v", err)
	}
	if _, err := ws.Recv(); err != io.EOF {
		t.Fatalf("tenant b stream end: %v, want EOF", err)
	}
	close(h.release)
	wg.Wait()
	if st := p.Stats(); st.InFlight != 0 {
		t.Fatalf("%d calls still in flight", st.InFlight)
	}
}

func TestServerStreamAdmitRelease(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	h := newTestHealth()
	arr := &arrivals{}
	c := dial(t, serve(t, h, arr, s.Unary, s.Stream))
	ctx := context.Background()
	first, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{Service: "block"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil {
		t.Fatalf("first stream: %v", err)
	}
	// The slot is held for the stream's life: a second stream and a unary
	// call are refused.
	second, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("second stream: %v, want Unavailable", err)
	}
	if _, err := check(ctx, c, ""); status.Code(err) != codes.Unavailable {
		t.Fatalf("unary call during the stream: %v, want Unavailable", err)
	}
	close(h.release)
	if _, err := first.Recv(); err != io.EOF {
		t.Fatalf("first stream end: %v, want EOF", err)
	}
	// The handler returned before its status was sent: the slot is free.
	if st := b.Stats(); st.InFlight != 0 {
		t.Fatalf("%d in flight after the stream ended", st.InFlight)
	}
	third, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := third.Recv(); err != nil {
		t.Fatalf("third stream: %v", err)
	}
	if n := len(arr.get()); n != 4 {
		t.Fatalf("%d arrivals, want 4", n)
	}
}

func TestServerPanicReleasesSlot(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		_, _ = s.Unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: checkMethod},
			func(context.Context, any) (any, error) { panic("boom") })
	}()
	if n := b.Stats().InFlight; n != 0 {
		t.Fatalf("unary: %d in flight after a panic", n)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		_ = s.Stream(nil, fakeStream{context.Background()}, &grpc.StreamServerInfo{FullMethod: watchMethod},
			func(any, grpc.ServerStream) error { panic("boom") })
	}()
	if n := b.Stats().InFlight; n != 0 {
		t.Fatalf("stream: %d in flight after a panic", n)
	}
}

type fakeStream struct{ ctx context.Context }

func (f fakeStream) SetHeader(metadata.MD) error  { return nil }
func (f fakeStream) SendHeader(metadata.MD) error { return nil }
func (f fakeStream) SetTrailer(metadata.MD)       {}
func (f fakeStream) Context() context.Context     { return f.ctx }
func (f fakeStream) SendMsg(any) error            { return nil }
func (f fakeStream) RecvMsg(any) error            { return nil }

func TestServerClientGoneNotRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The client goes at the moment its call is admitted.
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, OnEvent: func(e shed.Event) {
		if e.Kind == shed.Admitted {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	ran := false
	_, err = s.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: checkMethod},
		func(context.Context, any) (any, error) { ran = true; return nil, nil })
	if ran {
		t.Fatal("the handler ran for a client that had gone")
	}
	if status.Code(err) != codes.Canceled {
		t.Fatalf("err %v, want Canceled", err)
	}
	if n := b.Stats().InFlight; n != 0 {
		t.Fatalf("%d in flight", n)
	}
	// Over the network: a call that waits in the queue and whose client
	// goes never runs once the slot frees.
	b2, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s2 := mustServer(t, grpcguard.ServerConfig{Bulkhead: b2})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s2.Unary, s2.Stream))
	blocked := make(chan error, 1)
	go func() { _, err := check(context.Background(), c, "block"); blocked <- err }()
	waitFor(t, "the slot to be held", func() bool { return b2.Stats().InFlight == 1 })
	wctx, wcancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() { _, err := check(wctx, c, ""); waited <- err }()
	waitFor(t, "the call to wait", func() bool { return b2.Stats().Waiting == 1 })
	wcancel()
	if err := <-waited; status.Code(err) != codes.Canceled {
		t.Fatalf("waiting call: %v, want Canceled", err)
	}
	waitFor(t, "the server to see the client go", func() bool { return b2.Stats().Waiting == 0 })
	close(h.release)
	<-blocked
	if h.ran() != 1 {
		t.Fatalf("handler ran %d times, want 1", h.ran())
	}
}

func TestNewServerValidates(t *testing.T) {
	b, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 2})
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1})
	key := grpcguard.KeyByMethod
	cases := map[string]grpcguard.ServerConfig{
		"none":             {},
		"two":              {Bulkhead: b, Queue: q},
		"partition no key": {Partition: p},
		"key unused":       {Bulkhead: b, Key: key},
		"priority unused":  {Bulkhead: b, Priority: func(context.Context, string) shed.Priority { return shed.Normal }},
		"cost unused":      {Partition: p, Key: key, Cost: func(context.Context, string) time.Duration { return 0 }},
	}
	for name, cfg := range cases {
		if _, err := grpcguard.NewServer(cfg); !errors.Is(err, grpcguard.ErrInvalidConfig) {
			t.Errorf("%s: err %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := grpcguard.NewServer(grpcguard.ServerConfig{Partition: p, Key: key}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestKeys(t *testing.T) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 5555}})
	if got := grpcguard.KeyByPeer(ctx, checkMethod); got != "10.0.0.7" {
		t.Errorf("KeyByPeer: %q, want the host without the port", got)
	}
	if got := grpcguard.KeyByPeer(context.Background(), checkMethod); got != "" {
		t.Errorf("KeyByPeer without a peer: %q", got)
	}
	md := metadata.NewIncomingContext(context.Background(), metadata.Pairs("tenant", "t-7", "tenant", "t-8"))
	if got := grpcguard.KeyByMetadata("tenant")(md, checkMethod); got != "t-7" {
		t.Errorf("KeyByMetadata: %q, want the first value", got)
	}
	if got := grpcguard.KeyByMetadata("zone")(md, checkMethod); got != "" {
		t.Errorf("KeyByMetadata of an absent key: %q", got)
	}
	if got := grpcguard.KeyByMethod(md, checkMethod); got != checkMethod {
		t.Errorf("KeyByMethod: %q", got)
	}
}

func TestServerAdmissionDoesNotAllocate(t *testing.T) {
	b, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 4})
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b})
	p, _ := shed.NewPartition(shed.PartitionConfig[string]{Total: 4})
	sp := mustServer(t, grpcguard.ServerConfig{Partition: p, Key: grpcguard.KeyByMethod})
	info := &grpc.UnaryServerInfo{FullMethod: checkMethod}
	h := func(context.Context, any) (any, error) { return nil, nil }
	ctx := context.Background()
	for name, srv := range map[string]*grpcguard.Server{"bulkhead": s, "partition": sp} {
		if n := testing.AllocsPerRun(100, func() { _, _ = srv.Unary(ctx, nil, info, h) }); n != 0 {
			t.Errorf("%s: %v allocations per admitted call, want 0", name, n)
		}
	}
}

// TestServerNoSlotLeaks races admissions, waits, cancellations and
// handlers that end at random moments, over the network, and checks that
// every slot and every waiter is accounted for once it is over.
func TestServerNoSlotLeaks(t *testing.T) {
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 4, PerKey: 3, MaxQueuePerKey: 4, MaxWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Partition: p, Key: grpcguard.KeyByMetadata("tenant")})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	if _, err := check(metadata.AppendToOutgoingContext(context.Background(), "tenant", "0"), c, ""); err != nil {
		t.Fatal(err) // the connection is up before the storm
	}
	var wg sync.WaitGroup
	for i := range 120 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := metadata.AppendToOutgoingContext(context.Background(), "tenant", strconv.Itoa(i%3))
			ctx, cancel := context.WithTimeout(ctx, time.Duration(i%7)*5*time.Millisecond+2*time.Millisecond)
			defer cancel()
			_ = call(ctx, c, i%2 == 1, "block") // ends when its context does
		}()
	}
	wg.Wait()
	waitFor(t, "every handler to return", func() bool { st := p.Stats(); return st.InFlight == 0 && st.Waiting == 0 })
	st := p.Stats()
	t.Logf("admitted %d, shed %+v", st.Admitted, st.Shed)
	// Every slot is free: the partition's whole Total can be taken again.
	for i := range 4 {
		if !p.TryAcquire(strconv.Itoa(i % 2)) {
			t.Fatalf("slot %d not free after the storm", i)
		}
	}
}

func TestServerCodeOKIsNotASuccess(t *testing.T) {
	b, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, grpcguard.ServerConfig{Bulkhead: b, Code: func(*shed.Refusal) codes.Code { return codes.OK }})
	h := newTestHealth()
	c := dial(t, serve(t, h, nil, s.Unary, s.Stream))
	if !b.TryAcquire() {
		t.Fatal("could not take the slot")
	}
	defer b.Release()
	if _, err := check(context.Background(), c, ""); status.Code(err) != codes.Unavailable {
		t.Fatalf("unary: %v, want DefaultCode's Unavailable", err)
	}
	ws, err := c.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream: %v, want DefaultCode's Unavailable", err)
	}
}
