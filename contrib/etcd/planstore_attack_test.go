package etcd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPlanStoreSequencerWoundBack: a sequencer record deleted or written
// back below the highest generation put (a partial restore, an operator's
// mistake) does not make NextGeneration hand out a generation at or below
// the highest put, nor Publish fail. (A generation handed out but never put
// may be handed out again then: the record of it is gone.)
func TestPlanStoreSequencerWoundBack(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	s := newPlanStore(t, client, PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(100, 1)))

	del(t, client, s.sequencerKey())
	s2 := newPlanStore(t, client, PlanStoreConfig{Prefix: s.prefix}) // a restarted planner
	g, err := s2.NextGeneration(ctx)
	require.NoError(t, err)
	require.Greater(t, g, fence.Token(100), "NextGeneration with the sequencer deleted")

	put(t, client, s.sequencerKey(), record(5, []byte("5")))
	s3 := newPlanStore(t, client, PlanStoreConfig{Prefix: s.prefix})
	g2, err := s3.Publish(ctx, dnsplantest.PlanFor(0, 2))
	require.NoError(t, err, "Publish with the sequencer wound back to 5")
	require.Greater(t, g2, fence.Token(100))
	got, err := s3.Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, g2, got.Generation)
}

// TestPlanStoreCorruptLatestRecovery: a damaged newest plan makes Latest
// fail loudly (ErrCorruptPlan), not fall back to an older plan; it blocks
// neither the planner nor the clean-up: a Publish puts a newer plan that
// Latest returns, and Delete removes the damaged one, after which Latest
// returns the newest readable plan.
func TestPlanStoreCorruptLatestRecovery(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	s := newPlanStore(t, client, PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(1, 1)))
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(2, 2)))
	put(t, client, s.manifestKey(2), `{"v":1,"generation":2`)
	_, err := s.Latest(ctx)
	require.ErrorIs(t, err, ErrCorruptPlan)

	g, err := s.Publish(ctx, dnsplantest.PlanFor(0, 3))
	require.NoError(t, err, "Publish above a damaged plan")
	got, err := s.Latest(ctx)
	require.NoError(t, err)
	require.Empty(t, dnsplantest.DiffPlans(got, dnsplantest.PlanFor(g, 3)))

	require.NoError(t, s.Delete(ctx, g))
	_, err = s.Latest(ctx)
	require.ErrorIs(t, err, ErrCorruptPlan, "the damaged plan is the newest again")
	require.NoError(t, s.Delete(ctx, 2), "Delete of a damaged plan")
	got, err = s.Latest(ctx)
	require.NoError(t, err)
	require.Empty(t, dnsplantest.DiffPlans(got, dnsplantest.PlanFor(1, 1)))
	mustHold(t, s, 1)
}

// TestPlanStoreGetZero: Get(0) of a store holding plans is not found, and
// says which generation, not that the store is empty.
func TestPlanStoreGetZero(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(1, 1)))
	_, err := s.Get(ctx, 0)
	require.ErrorIs(t, err, dnsplan.ErrNotFound)
	require.NotContains(t, err.Error(), "holds no plan")
	require.Contains(t, err.Error(), "generation 0")
}

// pausingKV pauses the Put of the chunk whose key ends in pauseAt: it says
// so on paused, then waits for resume.
type pausingKV struct {
	clientv3.KV
	pauseAt        string
	paused, resume chan struct{}
}

func (k *pausingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	if strings.HasSuffix(key, "/"+k.pauseAt) {
		close(k.paused)
		<-k.resume
	}
	return k.KV.Put(ctx, key, val, opts...)
}

// TestPlanStoreOrphansVersusSlowWriter: CollectOrphans run while a writer
// is between chunks leaves the chunks of a generation above the highest
// alone, and that writer's commit then lands whole; once another plan above
// it is committed, its chunks are collected and its commit can no longer
// land: it is refused as stale, never a manifest naming missing chunks.
func TestPlanStoreOrphansVersusSlowWriter(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	for _, overtaken := range []bool{false, true} {
		t.Run(fmt.Sprintf("overtaken=%v", overtaken), func(t *testing.T) {
			s := newPlanStore(t, client, PlanStoreConfig{ChunkBytes: MinChunkBytes})
			other := newPlanStore(t, client, PlanStoreConfig{Prefix: s.prefix})
			require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(1, 1)))
			slow := &pausingKV{KV: s.kv, pauseAt: chunkName(3), paused: make(chan struct{}), resume: make(chan struct{})}
			s.kv = slow
			p := bigPlan(5, 200, 4)
			done := make(chan error, 1)
			go func() { done <- s.Put(ctx, p) }()
			<-slow.paused
			if overtaken {
				require.NoError(t, other.Put(ctx, dnsplantest.PlanFor(6, 6)))
			}
			n, err := other.CollectOrphans(ctx)
			require.NoError(t, err)
			if overtaken {
				require.Equal(t, 1, n, "the slow writer's chunks, below the highest")
			} else {
				require.Zero(t, n, "a put in flight above the highest")
			}
			close(slow.resume)
			err = <-done
			if overtaken {
				var se *fence.StaleError
				require.ErrorAs(t, err, &se)
				require.Equal(t, fence.Token(6), se.Have)
				mustHold(t, other, 1, 6)
				_, err := other.CollectOrphans(ctx)
				require.NoError(t, err)
			} else {
				require.NoError(t, err)
				mustHold(t, other, 1, 5)
				got, err := other.Get(ctx, 5)
				require.NoError(t, err)
				require.Empty(t, dnsplantest.DiffPlans(got, p))
			}
			resp, err := client.Get(ctx, s.prefix+chunksDir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
			require.NoError(t, err)
			for _, kv := range resp.Kvs {
				g, _ := parseDigits([]byte(strings.SplitN(strings.TrimPrefix(string(kv.Key), s.prefix+chunksDir), "/", 2)[0]))
				require.Contains(t, []fence.Token{1, 5, 6}, g, "chunk %s", kv.Key)
				if overtaken {
					require.NotEqual(t, fence.Token(5), g, "chunk %s of the refused put", kv.Key)
				}
			}
		})
	}
}

// TestPlanStoreReadCompactedEveryTime: a read whose plan's revision is
// compacted on every attempt gives up with an error that says which read
// gave up and why, still matching rpctypes.ErrCompacted.
func TestPlanStoreReadCompactedEveryTime(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	s := newPlanStore(t, client, PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(1, 1)))
	compactions := 0
	s.afterManifest = func() {
		resp, err := client.Put(ctx, s.prefix+"unrelated", "x")
		require.NoError(t, err)
		_, err = client.Compact(ctx, resp.Header.Revision)
		require.NoError(t, err)
		compactions++
	}
	_, err := s.Get(ctx, 1)
	require.ErrorIs(t, err, rpctypes.ErrCompacted)
	require.Contains(t, err.Error(), "PlanStore.Get")
	require.Contains(t, err.Error(), fmt.Sprintf("%d", compactions))
	_, err = s.Latest(ctx)
	require.ErrorIs(t, err, rpctypes.ErrCompacted)
	require.Contains(t, err.Error(), "PlanStore.Latest")
}
