package etcd

import (
	"testing"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/require"
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
