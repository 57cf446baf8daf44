package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stormguard/stormguard/internal/proctest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// endpoints are the client URLs of the etcd the Examples use: a real one,
// started once for the test binary by etcdServer.
var endpoints []string

// etcdServer runs the etcd of the Examples. Without an etcd binary the
// Examples are left out locally, as the integration tests skip, and fail
// the run under CI=true.
var etcdServer = proctest.NewShared(
	[]string{"Example", "ExampleLeaseTable", "ExamplePlanStore"},
	func(t testing.TB) { endpoints = []string{etcdtest.Start(t).Endpoint()} },
)

func TestMain(m *testing.M) { leakcheck.Main(etcdServer.With(m)) }

// TestExamplesServer reports whether the Examples ran against a real etcd:
// it skips with the reason they did not (no binary, CI unset), or fails.
func TestExamplesServer(t *testing.T) { etcdServer.Check(t) }

// resetEtcd deletes everything the Examples write, so that each one (and
// each run of it, with -count) starts from an empty etcd.
func resetEtcd() {
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Delete(ctx, "stormguard/", clientv3.WithPrefix()); err != nil {
		panic(err)
	}
}
