package grpcguard_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	checkMethod = "/grpc.health.v1.Health/Check"
	watchMethod = "/grpc.health.v1.Health/Watch"
)

// testHealth is the service of the tests: grpc's health service, whose
// request's Service field is a command:
//
//	""                answer SERVING
//	"block"           wait until release is closed (or the call ends)
//	"panic"           panic
//	"code:N"          fail with code N
//	"code:N:pb:V"     fail with code N and the pushback trailer V
//	"code:N:pb:V1,V2" the same with two values
type testHealth struct {
	grpc_health_v1.UnimplementedHealthServer
	release chan struct{}

	mu   sync.Mutex
	runs []time.Time // when each call reached the handler
}

func newTestHealth() *testHealth { return &testHealth{release: make(chan struct{})} }

func (h *testHealth) ran() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.runs)
}

func (h *testHealth) runTimes() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.runs...)
}

func (h *testHealth) do(ctx context.Context, cmd string, setTrailer func(metadata.MD) error) error {
	h.mu.Lock()
	h.runs = append(h.runs, time.Now())
	h.mu.Unlock()
	switch {
	case cmd == "":
		return nil
	case cmd == "panic":
		panic("handler panics")
	case cmd == "block":
		select {
		case <-h.release:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	case strings.HasPrefix(cmd, "code:"):
		parts := strings.Split(cmd, ":")
		n, _ := strconv.Atoi(parts[1])
		if len(parts) == 4 && parts[2] == "pb" {
			// "V1,V2" sends two values.
			_ = setTrailer(metadata.MD{"grpc-retry-pushback-ms": strings.Split(parts[3], ",")})
		}
		return status.Error(codes.Code(n), "told to fail")
	}
	return status.Error(codes.InvalidArgument, "unknown command "+cmd)
}

func (h *testHealth) Check(ctx context.Context, req *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	err := h.do(ctx, req.GetService(), func(md metadata.MD) error { return grpc.SetTrailer(ctx, md) })
	if err != nil {
		return nil, err
	}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// Watch sends SERVING at once, then runs the command; "flood" sends
// until the stream breaks (a client that never receives blocks it in
// flow control).
func (h *testHealth) Watch(req *grpc_health_v1.HealthCheckRequest, ss grpc.ServerStreamingServer[grpc_health_v1.HealthCheckResponse]) error {
	if err := ss.Send(&grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}); err != nil {
		return err
	}
	if req.GetService() == "flood" {
		h.mu.Lock()
		h.runs = append(h.runs, time.Now())
		h.mu.Unlock()
		for {
			if err := ss.Send(&grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}); err != nil {
				return err
			}
		}
	}
	return h.do(ss.Context(), req.GetService(), func(md metadata.MD) error { ss.SetTrailer(md); return nil })
}

// arrivals counts the calls that reach the server, before any admission,
// with their times.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *arrivals) add() {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
}

func (a *arrivals) get() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times...)
}

func (a *arrivals) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	a.add()
	return handler(ctx, req)
}

func (a *arrivals) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	a.add()
	return handler(srv, ss)
}

// serve starts a real grpc.Server on a 127.0.0.1:0 TCP listener with the
// given interceptors (after the arrival counter), and returns its address.
func serve(t testing.TB, h *testHealth, arr *arrivals, unary grpc.UnaryServerInterceptor, stream grpc.StreamServerInterceptor) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if arr == nil {
		arr = &arrivals{}
	}
	us := []grpc.UnaryServerInterceptor{arr.unary}
	ss := []grpc.StreamServerInterceptor{arr.stream}
	if unary != nil {
		us = append(us, unary)
	}
	if stream != nil {
		ss = append(ss, stream)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(us...), grpc.ChainStreamInterceptor(ss...))
	grpc_health_v1.RegisterHealthServer(srv, h)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// dial returns a health client for addr with gRPC's own retry disabled
// and the given interceptors.
func dial(t testing.TB, addr string, opts ...grpc.DialOption) grpc_health_v1.HealthClient {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDisableRetry()}, opts...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return grpc_health_v1.NewHealthClient(cc)
}

// check calls Check with cmd and returns the error and trailer.
func check(ctx context.Context, c grpc_health_v1.HealthClient, cmd string, opts ...grpc.CallOption) (metadata.MD, error) {
	var tr metadata.MD
	_, err := c.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: cmd}, append(opts, grpc.Trailer(&tr))...)
	return tr, err
}

// call makes one call with cmd, a Check or, if stream, a Watch received
// from until it ends, and returns the error that ended it.
func call(ctx context.Context, c grpc_health_v1.HealthClient, stream bool, cmd string) error {
	if !stream {
		_, err := check(ctx, c, cmd)
		return err
	}
	ws, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{Service: cmd})
	for err == nil {
		_, err = ws.Recv()
	}
	return err
}

// waitFor polls cond until it holds (the test's own timeout bounds it).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 20000 {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
