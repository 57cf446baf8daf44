package grpcguard_test

import (
	"context"
	"sync/atomic"
	"testing"

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
			hdr, tr metadata.MD
			p       peer.Peer
		)
		_, err := c.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: "code:14:pb:0"},
			grpc.Header(&hdr), grpc.Trailer(&tr), grpc.Peer(&p))
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
