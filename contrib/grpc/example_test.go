package grpcguard_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// A server that admits one call at a time, and lets one more wait for up to
// 20ms, refuses a call it cannot serve with Unavailable, a pushback of the
// time it waited (20ms and a little) and RefusedKey; the client's
// interceptor waits at least that long and tries again: the call did not
// run, so it is retried although Check is not listed as idempotent.
func Example() {
	bulkhead, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 20 * time.Millisecond})
	guard, _ := grpcguard.NewServer(grpcguard.ServerConfig{Bulkhead: bulkhead})
	srv := grpc.NewServer(grpc.UnaryInterceptor(guard.Unary), grpc.StreamInterceptor(guard.Stream))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(lis)
	defer srv.Stop()

	bulkhead.TryAcquire() // something else holds the only slot, until the first attempt fails
	retry, _ := grpcguard.NewClient(grpcguard.ClientConfig{
		RetryRefused: true, // the server is a grpcguard Server: its stormguard-refused is believed
		OnAttempt: func(method string, ev backoff.Event) {
			fmt.Printf("attempt %d of %s: %v\n", ev.Attempt, method, status.Code(ev.Err))
			if ev.Attempt == 1 {
				fmt.Println("waits at least the pushback:", ev.Delay >= 20*time.Millisecond)
				bulkhead.Release()
			}
		},
	})
	cc, _ := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(), // gRPC's own retry off: one retry loop, not two
		grpc.WithUnaryInterceptor(retry.Unary),
		grpc.WithStreamInterceptor(retry.Stream))
	defer cc.Close()

	resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output:
	// attempt 1 of /grpc.health.v1.Health/Check: Unavailable
	// waits at least the pushback: true
	// attempt 2 of /grpc.health.v1.Health/Check: OK
	// SERVING <nil>
}

// ParsePushback reads gRPC's pushback as its retry design says: a count of
// milliseconds, or "do not retry" for anything negative or malformed.
func ExampleParsePushback() {
	for _, v := range [][]string{nil, {"250"}, {"-1"}, {"1.5"}, {"1", "2"}} {
		d, retry, present := grpcguard.ParsePushback(v)
		fmt.Printf("%q: delay %v, retry %v, present %v\n", v, d, retry, present)
	}
	// Output:
	// []: delay 0s, retry false, present false
	// ["250"]: delay 250ms, retry true, present true
	// ["-1"]: delay 0s, retry false, present true
	// ["1.5"]: delay 0s, retry false, present true
	// ["1" "2"]: delay 0s, retry false, present true
}
