package etcd

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var planPrefixes atomic.Int64

// newPlanStore returns a PlanStore under a prefix of its own on client.
func newPlanStore(t testing.TB, client *clientv3.Client, cfg PlanStoreConfig) *PlanStore {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("plans-%d/", planPrefixes.Add(1))
	}
	s, err := NewPlanStore(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformancePlanStore: PlanStore keeps every promise of dnsplan.Store
// and dnsplan.Watcher, on a real etcd.
func TestConformancePlanStore(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	dnsplantest.TestStore(t, func(t *testing.T) dnsplan.Store { return newPlanStore(t, client, PlanStoreConfig{}) })
}

// TestConformancePlanStoreSmallChunks: the same with plans split into
// many chunks.
func TestConformancePlanStoreSmallChunks(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	dnsplantest.TestStore(t, func(t *testing.T) dnsplan.Store {
		return newPlanStore(t, client, PlanStoreConfig{ChunkBytes: MinChunkBytes})
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
