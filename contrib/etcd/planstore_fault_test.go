package etcd

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPlanStoreKillDuringCleanup kills etcd with SIGKILL, twice, while two
// enactors' clean-ups delete many plans and the planner publishes new ones
// (each plan in several chunks), restarts it, and then checks with a new
// client:
//
//   - every plan whose put was acknowledged and whose delete was not is
//     whole and readable; one acknowledged deleted is not found; one whose
//     delete's outcome is unknown is either;
//   - no plan is half-deleted or half-written: every plan held reads whole,
//     and after CollectOrphans the only chunks left are those of the plans
//     held, one set each;
//   - no generation was handed out twice, and none was put twice;
//   - Latest is the newest plan held, and a put of the highest
//     acknowledged generation is refused;
//   - the whole history is linearizable (porcupine).
func TestPlanStoreKillDuringCleanup(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{ChunkBytes: MinChunkBytes})
	rec := newPlanRecorder()
	ctx := ctxT(t)
	const backlog = 120
	for g := range fence.Token(backlog) {
		require.True(t, rec.run(ctx, s, 0, planIn{op: planPut, g: g + 1, seed: uint8(g)}).ok)
	}
	// Move the sequence past the backlog, as a planner that published it
	// would have.
	g, err := s.NextGeneration(ctx)
	require.NoError(t, err)
	require.Equal(t, fence.Token(backlog+1), g)

	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		genMu  sync.Mutex
		handed []fence.Token
	)
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	wg.Add(1)
	go func() { // the planner: Publish, recorded as the put it makes
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() {
			cctx, cancel := call()
			g, err := s.NextGeneration(cctx)
			if err == nil {
				genMu.Lock()
				handed = append(handed, g)
				genMu.Unlock()
				rec.run(cctx, s, 1, planIn{op: planPut, g: g, seed: uint8(rng.IntN(256))})
			}
			cancel()
			time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
		}
	}()
	for c := 2; c <= 3; c++ {
		wg.Add(1)
		go func() { // an enactor's clean-up, again and again
			defer wg.Done()
			for !stop.Load() {
				if rec.cleanUp(ctx, s, c, 3, time.Second) == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // a reader
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			cctx, cancel := call()
			rec.run(cctx, s, 4, planIn{op: planLatest})
			cancel()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	progress := func() (deletes, puts int) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.deleted), len(rec.acked) - backlog
	}
	waitFor := func(deletes, puts int) {
		for d, p := progress(); d < deletes || p < puts; d, p = progress() {
			require.NoError(t, ctx.Err(), "waiting for %d deletes and %d puts, %d and %d so far", deletes, puts, d, p)
			time.Sleep(2 * time.Millisecond)
		}
	}
	for _, at := range [][2]int{{20, 2}, {60, 5}} {
		waitFor(at[0], at[1])
		srv.Kill()
		d, p := progress()
		t.Logf("etcd killed after %d deletes and %d puts", d, p)
		time.Sleep(200 * time.Millisecond)
		srv.Restart()
	}
	waitFor(90, 15)
	stop.Store(true)
	wg.Wait()

	// A new client, as a restarted enactor would have.
	s2 := newPlanStore(t, srv.Client(t), PlanStoreConfig{Prefix: s.prefix, ChunkBytes: MinChunkBytes})
	gens, err := s2.List(ctx)
	require.NoError(t, err)
	for _, g := range gens {
		rec.run(ctx, s2, 5, planIn{op: planGet, g: g}) // every plan held reads whole (checked below)
	}
	for g, seed := range rec.acked {
		p, err := s2.Get(ctx, g)
		switch {
		case rec.deleted[g]:
			require.ErrorIs(t, err, dnsplan.ErrNotFound, "plan %d was deleted", g)
		case rec.maybeGone[g] && errors.Is(err, dnsplan.ErrNotFound):
		default:
			require.NoError(t, err, "plan %d: acknowledged, not deleted", g)
			got, bad := seedOf(p)
			require.Empty(t, bad)
			require.Equal(t, seed, got, "plan %d", g)
		}
	}
	genMu.Lock()
	require.Len(t, handed, len(slicesCompact(handed)), "NextGeneration handed out a generation twice")
	require.True(t, slices.IsSorted(handed), "NextGeneration went backwards")
	genMu.Unlock()
	latest := rec.run(ctx, s2, 5, planIn{op: planLatest})
	require.True(t, latest.ok)
	require.Equal(t, gens[len(gens)-1], latest.g)
	var top fence.Token
	for g := range rec.acked {
		top = max(top, g)
	}
	require.GreaterOrEqual(t, latest.g, top)
	stale := rec.run(ctx, s2, 5, planIn{op: planPut, g: top, seed: 1})
	require.True(t, stale.stale, "a put of generation %d again", top)

	n, err := s2.CollectOrphans(ctx)
	require.NoError(t, err)
	t.Logf("%d generations handed out, %d plans put (%d during the clean-up), %d deleted (%d of unknown outcome), %d held; %d orphan chunk sets collected",
		len(handed), len(rec.acked), len(rec.acked)-backlog, len(rec.deleted), len(rec.maybeGone), len(gens), n)
	resp, err := srv.Client(t).Get(ctx, s.prefix+chunksDir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	sets := map[string]bool{}
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), s.prefix+chunksDir), "/")
		sets[parts[0]+"/"+parts[1]] = true
	}
	var held []string
	for set := range sets {
		held = append(held, strings.Split(set, "/")[0])
	}
	slices.Sort(held)
	var want []string
	for _, g := range gens {
		want = append(want, digits(g))
	}
	require.Equal(t, want, held, "after CollectOrphans, exactly one chunk set per plan held")
	checkPlanHistory(t, rec)
}

func slicesCompact(s []fence.Token) []fence.Token {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}
