package main

import (
	"time"

	"github.com/stormguard/stormguard/contrib/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// newEtcdClient returns a client of the run's etcd that logs nothing and
// reconnects within a fraction of a second after etcd restarts.
func newEtcdClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
}

// newPlanStore returns the fleet's plan store: contrib/etcd's PlanStore,
// for the 2025 enactors as for dnsplan's, so that the two runs differ
// only by their enactors.
func newPlanStore(c *clientv3.Client) (*etcd.PlanStore, error) {
	return etcd.NewPlanStore(c, etcd.PlanStoreConfig{Prefix: "dnsfleet/plans/"})
}
