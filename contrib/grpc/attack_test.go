package grpcguard_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
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
// full queue, which sends no pushback), and a call that never left the
// client (nothing listens).
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
	c := dial(t, serve(t, h, arr, s.Unary, s.Stream), retrying(mustClient(t, grpcguard.ClientConfig{Policy: fast}))...)
	if !b.TryAcquire() {
		t.Fatal("could not take the slot")
	}
	if _, err := check(context.Background(), c, ""); err != nil || refused != 1 || h.ran() != 1 || len(arr.get()) != 2 {
		t.Fatalf("err %v, %d refusals, %d runs, %d arrivals; want a refusal, then a retry that runs", err, refused, h.ran(), len(arr.get()))
	}

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
