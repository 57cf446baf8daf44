package grpcguard_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// TestClientCallOptionsReflectLastAttempt: the caller's grpc.Header,
// grpc.Trailer and grpc.Peer of a retried call say what the LAST attempt
// got. gRPC fills them only for an attempt that had a stream, so an
// attempt that never left the client (here an interceptor after the
// Client's refuses it, as a client-side limiter would) would leave the
// previous attempt's values in place: a pushback and a peer the answer
// never came from. And an attempt that reached the server replaces, never
// adds to, what an earlier one got.
func TestClientCallOptionsReflectLastAttempt(t *testing.T) {
	for _, lastLeaves := range []bool{false, true} {
		h := newTestHealth()
		var n atomic.Int32
		inner := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if n.Add(1) == 1 {
				return invoker(ctx, method, req, reply, cc, opts...)
			}
			if !lastLeaves {
				return status.Error(codes.Unavailable, "refused before the call left the client")
			}
			// The retry asks the server for a plain success.
			return invoker(ctx, method, &grpc_health_v1.HealthCheckRequest{}, reply, cc, opts...)
		}
		cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, IdempotentMethods: []string{checkMethod}})
		c := dial(t, serve(t, h, nil, nil, nil), grpc.WithChainUnaryInterceptor(cl.Unary, inner))
		var (
			hdr, tr, tr2 metadata.MD
			p            peer.Peer
		)
		_, err := c.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: "code:14:pb:0"},
			grpc.Header(&hdr), grpc.Trailer(&tr), grpc.Peer(&p), &grpc.TrailerCallOption{TrailerAddr: &tr2})
		if h.ran() != 1+b2i(lastLeaves) || n.Load() < 2 {
			t.Fatalf("last attempt leaves %v: %d runs, %d attempts; want the first attempt to reach the server, then a retry", lastLeaves, h.ran(), n.Load())
		}
		if lastLeaves {
			if err != nil || hdr == nil || p.Addr == nil {
				t.Fatalf("retry reached the server: err %v, header %v, peer %v; want a success with the last attempt's header and peer", err, hdr, p.Addr)
			}
		} else if status.Code(err) != codes.Unavailable || hdr != nil || p.Addr != nil {
			t.Fatalf("last attempt never left the client: err %v, header %v, peer %v; want Unavailable, no header, no peer", err, hdr, p.Addr)
		}
		if pb := tr2[grpcguard.PushbackKey]; len(pb) != 0 {
			t.Fatalf("last attempt leaves %v: a *grpc.TrailerCallOption holds the pushback %q of an earlier attempt", lastLeaves, pb)
		}
		if pb := tr[grpcguard.PushbackKey]; len(pb) != 0 {
			t.Fatalf("last attempt leaves %v: the caller's trailer holds the pushback %q of an earlier attempt", lastLeaves, pb)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// forgingHealth's Check runs (counts a run), then fails with Unavailable
// and a RefusedKey trailer of the given values: what a server that is not
// a stormguard Server, or a handler that copies a downstream call's
// trailers into its own, may send although the call ran.
type forgingHealth struct {
	grpc_health_v1.UnimplementedHealthServer
	values []string
	runs   atomic.Int32
}

func (h *forgingHealth) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	h.runs.Add(1)
	_ = grpc.SetTrailer(ctx, metadata.MD{grpcguard.RefusedKey: h.values})
	return nil, status.Error(codes.Unavailable, "ran, then failed")
}

// TestClientRefusedTrailerTrust: the Client believes RefusedKey only
// with ClientConfig.RetryRefused (any server can send it), and then only
// as a Server writes it (one value naming a reason): a method not listed
// as idempotent that ran is otherwise never retried, whatever the
// trailer says.
func TestClientRefusedTrailerTrust(t *testing.T) {
	for _, tc := range []struct {
		values []string
		trust  bool
		runs   int32
	}{
		{[]string{"queue_full"}, true, 3}, // a Server's word, trusted: retried
		{[]string{"queue_full"}, false, 1},
		{[]string{"yes"}, true, 1},                      // no reason a Server sends
		{[]string{""}, true, 1},                         // empty
		{[]string{"queue_full", "queue_full"}, true, 1}, // two: trailers merged from several calls
		{[]string{"QUEUE_FULL"}, true, 1},               // not as a Server writes it
		{[]string{"queue_full ", "rate_limited"}, false, 1},
	} {
		h := &forgingHealth{values: tc.values}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		grpc_health_v1.RegisterHealthServer(srv, h)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, RetryRefused: tc.trust})
		_, err = check(context.Background(), dial(t, lis.Addr().String(), retrying(cl)...), "")
		if status.Code(err) != codes.Unavailable || h.runs.Load() != tc.runs {
			t.Errorf("trailer %q, RetryRefused %v: err %v after %d runs; want Unavailable after %d", tc.values, tc.trust, err, h.runs.Load(), tc.runs)
		}
	}
}

// TestClientOnFinishOnce: gRPC calls a grpc.OnFinish callback once per
// call ("only be called once"), and outer interceptors count calls in
// flight with it; a call the Client retries must not call it once per
// attempt. It is called once, with the call's final error.
func TestClientOnFinishOnce(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	live := serve(t, newTestHealth(), nil, nil, nil)
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, IdempotentMethods: []string{checkMethod, watchMethod}})
	for _, tc := range []struct {
		name, addr, cmd string
		stream          bool
		code            codes.Code
	}{
		{"unary, every attempt fails", live, "code:14", false, codes.Unavailable},
		{"unary, no connection", dead, "", false, codes.Unavailable},
		{"unary, success", live, "", false, codes.OK},
		{"stream, no connection", dead, "", true, codes.Unavailable},
		{"stream, success", live, "", true, codes.OK},
	} {
		c := dial(t, tc.addr, retrying(cl)...)
		var (
			calls atomic.Int32
			got   atomic.Value
		)
		fin := grpc.OnFinish(func(err error) {
			calls.Add(1)
			got.Store(status.Code(err))
		})
		if tc.stream {
			ws, err := c.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: tc.cmd}, fin)
			for err == nil {
				_, err = ws.Recv()
			}
		} else {
			_, _ = c.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: tc.cmd}, fin)
		}
		if calls.Load() != 1 || got.Load() != tc.code {
			t.Errorf("%s: OnFinish called %d times, last with %v; want once, with %v", tc.name, calls.Load(), got.Load(), tc.code)
		}
	}
}

type ctxKey struct{}

// TestClientAttemptsCarryCallersDeadline: every attempt runs under the
// caller's own deadline (gRPC sends what remains of it as grpc-timeout),
// never a fresh copy of the original timeout, and with the caller's
// values and outgoing metadata, which no attempt adds to.
func TestClientAttemptsCarryCallersDeadline(t *testing.T) {
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, IdempotentMethods: []string{checkMethod}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(context.WithValue(ctx, ctxKey{}, "v"), "tenant", "a")
	want, _ := ctx.Deadline()
	attempts := 0
	err := cl.Unary(ctx, checkMethod, nil, nil, nil,
		func(actx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			attempts++
			dl, ok := actx.Deadline()
			md, _ := metadata.FromOutgoingContext(actx)
			if !ok || !dl.Equal(want) || actx.Value(ctxKey{}) != "v" || len(md["tenant"]) != 1 || len(md) != 1 {
				t.Errorf("attempt %d: deadline %v (%v), value %v, metadata %v; want %v, \"v\", tenant=[a]", attempts, dl, ok, actx.Value(ctxKey{}), md, want)
			}
			return status.Error(codes.Unavailable, "down")
		})
	if attempts != 3 || status.Code(err) != codes.Unavailable {
		t.Fatalf("%d attempts, err %v; want 3, Unavailable", attempts, err)
	}
}

// TestClientMessageTooLargeIsNotRetried: gRPC's message size limits (the
// client's MaxCallRecvMsgSize and MaxCallSendMsgSize, or the server's
// receive limit) fail a call with codes.ResourceExhausted, which the
// default IdempotentCodes retries; but every retry meets the same limit,
// and the server ran an idempotent method each time for nothing. Such a
// failure is final, and says nothing of the server's health to a breaker.
func TestClientMessageTooLargeIsNotRetried(t *testing.T) {
	for _, opt := range []struct {
		name, cmd string
		o         grpc.CallOption
		runs      int
	}{
		{"receive", "", grpc.MaxCallRecvMsgSize(1), 1}, // SERVING is 2 bytes
		{"send", "never reaches the server", grpc.MaxCallSendMsgSize(1), 0},
	} {
		h := newTestHealth()
		attempts := 0
		cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, IdempotentMethods: []string{checkMethod},
			OnAttempt: func(string, backoff.Event) { attempts++ }})
		c := dial(t, serve(t, h, nil, nil, nil), retrying(cl)...)
		_, err := c.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: opt.cmd}, opt.o)
		if status.Code(err) != codes.ResourceExhausted || attempts != 1 || h.ran() != opt.runs {
			t.Errorf("%s limit: err %v after %d attempts, %d runs; want ResourceExhausted after 1 attempt, %d runs", opt.name, err, attempts, h.ran(), opt.runs)
		}
		if o := grpcguard.Classify(err); o == backoff.OutcomeFailure {
			t.Errorf("%s limit: Classify = failure; a size limit says nothing of the server's health", opt.name)
		}
	}
}

// TestClientWaitForReady: grpc.WaitForReady reaches every attempt: with
// nothing listening the one attempt waits for a connection until the
// caller's deadline, and the call ends there with DeadlineExceeded,
// without a retry; the call option is not lost on a live target either.
func TestClientWaitForReady(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	attempts := 0
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, OnAttempt: func(string, backoff.Event) { attempts++ }})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = check(ctx, dial(t, dead, retrying(cl)...), "", grpc.WaitForReady(true))
	if status.Code(err) != codes.DeadlineExceeded || attempts != 1 {
		t.Fatalf("dead target: err %v after %d attempts; want DeadlineExceeded after 1", err, attempts)
	}
	h := newTestHealth()
	if _, err := check(context.Background(), dial(t, serve(t, h, nil, nil, nil), retrying(cl)...), "", grpc.WaitForReady(true)); err != nil || h.ran() != 1 {
		t.Fatalf("live target: err %v, %d runs", err, h.ran())
	}
}

// TestClientRetriedErrorKeepsDetails: the status of a retried call's
// error is the last attempt's: its code, and its details (a BadRequest's
// field violations, a RetryInfo), not just a code and a message.
func TestClientRetriedErrorKeepsDetails(t *testing.T) {
	cl := mustClient(t, grpcguard.ClientConfig{Policy: fast, IdempotentMethods: []string{checkMethod}})
	st, err := status.New(codes.InvalidArgument, "bad request").WithDetails(
		&grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_NOT_SERVING})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = cl.Unary(context.Background(), checkMethod, nil, nil, nil,
		func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			n++
			if n == 1 {
				return status.Error(codes.Unavailable, "down")
			}
			return st.Err()
		})
	got := status.Convert(err)
	if n != 2 || got.Code() != codes.InvalidArgument || len(got.Details()) != 1 {
		t.Fatalf("%d attempts, status %v with details %v; want 2 attempts, InvalidArgument with the last attempt's detail", n, got.Code(), got.Details())
	}
	if d, ok := got.Details()[0].(*grpc_health_v1.HealthCheckResponse); !ok || d.GetStatus() != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("detail %v, want the last attempt's", got.Details()[0])
	}
}

// TestClientStreamOnFinishGate: gRPC may call a stream's OnFinish before
// streamer returns (the failed creation; or a stream whose context ended
// at once) or long after; the caller hears once, of the stream Stream
// returns, whenever that stream ends.
func TestClientStreamOnFinishGate(t *testing.T) {
	for _, early := range []bool{true, false} {
		cl := mustClient(t, grpcguard.ClientConfig{Policy: fast})
		var got []codes.Code
		var later func(error)
		n := 0
		streamer := func(_ context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			n++
			var fin func(error)
			for _, o := range opts {
				if f, ok := o.(grpc.OnFinishCallOption); ok {
					fin = f.OnFinish
				}
			}
			if n == 1 {
				fin(status.Error(codes.Unavailable, "no connection"))
				return nil, status.Error(codes.Unavailable, "no connection")
			}
			if early {
				fin(status.Error(codes.Canceled, "ended at once"))
			} else {
				later = fin
			}
			return nil, nil
		}
		_, err := cl.Stream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, nil, watchMethod, streamer,
			grpc.OnFinish(func(err error) { got = append(got, status.Code(err)) }))
		if err != nil || n != 2 {
			t.Fatalf("early %v: err %v after %d attempts; want the second to make the stream", early, err, n)
		}
		if !early {
			if len(got) != 0 {
				t.Fatalf("OnFinish called %v before the stream ended", got)
			}
			later(nil)
		}
		want := codes.Canceled
		if !early {
			want = codes.OK
		}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("early %v: OnFinish heard %v; want once, %v", early, got, want)
		}
	}
}
