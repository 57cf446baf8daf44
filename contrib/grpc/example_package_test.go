package grpcguard_test

import (
	"context"
	"fmt"
	"net"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The package comment's code: a server whose calls are admitted through a
// Queue, and a client that retries through a Budget and a breaker per
// target, over a loopback TCP listener.
func Example_package() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	target, creds := lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())

	queue, _ := shed.NewQueue(shed.QueueConfig{Workers: 64})
	guard, _ := grpcguard.NewServer(grpcguard.ServerConfig{Queue: queue})
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(guard.Unary),
		grpc.ChainStreamInterceptor(guard.Stream))

	budget, _ := backoff.NewBudget(backoff.BudgetConfig{})
	breakers, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{
		Breaker: backoff.BreakerConfig{Classify: grpcguard.Classify}})
	retry, _ := grpcguard.NewClient(grpcguard.ClientConfig{Budget: budget, Breakers: breakers})
	cc, _ := grpc.NewClient(target, creds,
		grpc.WithDisableRetry(),
		grpc.WithChainUnaryInterceptor(retry.Unary),
		grpc.WithChainStreamInterceptor(retry.Stream))

	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err, queue.Stats().Admitted)
	// Output: SERVING <nil> 1
}
