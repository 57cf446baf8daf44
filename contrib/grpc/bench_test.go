package grpcguard_test

import (
	"context"
	"testing"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc"
)

// BenchmarkInterceptors measures the interceptors alone, around a handler
// and an invoker that do nothing: the cost they add to a call.
func BenchmarkInterceptors(b *testing.B) {
	ctx := context.Background()
	b.Run("server/bulkhead", func(b *testing.B) {
		bh, _ := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1 << 20})
		s, _ := grpcguard.NewServer(grpcguard.ServerConfig{Bulkhead: bh})
		info := &grpc.UnaryServerInfo{FullMethod: checkMethod}
		h := func(context.Context, any) (any, error) { return nil, nil }
		b.ReportAllocs()
		for b.Loop() {
			_, _ = s.Unary(ctx, nil, info, h)
		}
	})
	inv := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	b.Run("client/plain", func(b *testing.B) {
		c, _ := grpcguard.NewClient(grpcguard.ClientConfig{})
		b.ReportAllocs()
		for b.Loop() {
			_ = c.Unary(ctx, checkMethod, nil, nil, nil, inv)
		}
	})
	b.Run("client/budget+breakers", func(b *testing.B) {
		budget, _ := backoff.NewBudget(backoff.BudgetConfig{})
		bs, _ := backoff.NewBreakers(backoff.BreakersConfig[string]{})
		c, _ := grpcguard.NewClient(grpcguard.ClientConfig{Budget: budget, Breakers: bs})
		b.ReportAllocs()
		for b.Loop() {
			_ = c.Unary(ctx, checkMethod, nil, nil, nil, inv)
		}
	})
	b.Run("client/hook", func(b *testing.B) {
		c, _ := grpcguard.NewClient(grpcguard.ClientConfig{OnAttempt: func(string, backoff.Event) {}})
		b.ReportAllocs()
		for b.Loop() {
			_ = c.Unary(ctx, checkMethod, nil, nil, nil, inv)
		}
	})
}
