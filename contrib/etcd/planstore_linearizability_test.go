package etcd

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPlanModel checks the checker: hand-made histories that a correct
// plan store can and cannot produce.
func TestPlanModel(t *testing.T) {
	op := func(client int, in planIn, call int64, out planOut, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	put := func(g fence.Token, seed uint8) planIn { return planIn{op: planPut, g: g, seed: seed} }
	get := func(g fence.Token) planIn { return planIn{op: planGet, g: g} }
	del := func(g fence.Token) planIn { return planIn{op: planDelete, g: g} }
	list, latest := planIn{op: planList}, planIn{op: planLatest}
	ok, notFound, unknown := planOut{ok: true}, planOut{notFound: true}, planOut{unknown: true}
	inf := int64(math.MaxInt64)
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"a deleted plan comes back", []porcupine.Operation{
			op(0, put(1, 7), 0, ok, 10),
			op(1, del(1), 20, ok, 30),
			op(2, get(1), 40, planOut{ok: true, g: 1, seed: 7}, 50),
		}, porcupine.Illegal},
		{"a generation put again after its delete", []porcupine.Operation{
			op(0, put(1, 7), 0, ok, 10),
			op(1, del(1), 20, ok, 30),
			op(0, put(1, 8), 40, ok, 50),
		}, porcupine.Illegal},
		{"a stale put names the highest ever, deleted or not", []porcupine.Operation{
			op(0, put(4, 7), 0, ok, 10),
			op(1, del(4), 20, ok, 30),
			op(0, put(2, 8), 40, planOut{stale: true, have: 4}, 50),
			op(2, latest, 60, notFound, 70),
		}, porcupine.Ok},
		{"Latest skips a newer plan", []porcupine.Operation{
			op(0, put(1, 1), 0, ok, 10),
			op(0, put(2, 2), 20, ok, 30),
			op(1, latest, 40, planOut{ok: true, g: 1, seed: 1}, 50),
		}, porcupine.Illegal},
		{"two clean-ups delete one plan", []porcupine.Operation{
			op(0, put(1, 1), 0, ok, 10),
			op(1, del(1), 20, ok, 40),
			op(2, del(1), 20, ok, 40),
		}, porcupine.Illegal},
		{"a delete of unknown outcome", []porcupine.Operation{
			op(0, put(1, 1), 0, ok, 10),
			op(0, put(2, 2), 11, ok, 12),
			op(1, del(1), 20, unknown, inf),
			op(2, list, 30, planOut{ok: true, gens: "1,2"}, 40),
			op(2, list, 50, planOut{ok: true, gens: "2"}, 60),
		}, porcupine.Ok},
		{"a partial plan", []porcupine.Operation{
			op(0, put(1, 1), 0, ok, 10),
			op(1, get(1), 20, planOut{bad: "plan 1 has no endpoint api.example"}, 30),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, porcupine.CheckOperationsTimeout(planModel, tt.history, 10*time.Second))
		})
	}
}

func checkPlanHistory(t *testing.T, rec *planRecorder) {
	t.Helper()
	for _, b := range rec.bad() {
		t.Errorf("a call returned what no store may: %s", b)
	}
	history := rec.history()
	res, info := porcupine.CheckOperationsVerbose(planModel, history, time.Minute)
	if res != porcupine.Ok {
		path := t.TempDir() + "/plans.html"
		if err := porcupine.VisualizePath(planModel, info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("history of %d operations: %s", len(history), res)
	}
	t.Logf("history of %d operations: linearizable", len(history))
}

// runPlanClients runs, until each has made ops calls: two publishers
// drawing generations from a shared counter (so that puts race and some
// land out of order), two readers (Get, Latest) and two enactors'
// clean-ups (List, then Delete all but the newest two).
func runPlanClients(ctx context.Context, rec *planRecorder, s dnsplan.Store, ops int, pause func(*rand.Rand)) {
	var next atomic.Uint64
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 16))
			for n := 0; n < ops && ctx.Err() == nil; n++ {
				switch c {
				case 0, 1:
					rec.run(ctx, s, c, planIn{op: planPut, g: fence.Token(next.Add(1)), seed: uint8(rng.IntN(256))})
				case 2:
					rec.run(ctx, s, c, planIn{op: planGet, g: fence.Token(rng.Uint64N(next.Load() + 2))})
				case 3:
					rec.run(ctx, s, c, planIn{op: planLatest})
				default:
					n += rec.cleanUp(ctx, s, c, 2, time.Minute)
				}
				if pause != nil {
					pause(rng)
				}
			}
		}()
	}
	wg.Wait()
}

// TestPlanStoreLinearizableMemory: the checker on dnsplan.MemoryStore.
func TestPlanStoreLinearizableMemory(t *testing.T) {
	rec := newPlanRecorder()
	runPlanClients(context.Background(), rec, new(dnsplan.MemoryStore), 150, func(rng *rand.Rand) {
		if rng.IntN(3) == 0 {
			runtime.Gosched()
		}
	})
	checkPlanHistory(t, rec)
}

// TestPlanStoreLinearizable: concurrent histories of publish, read,
// latest, list and two clean-ups on the etcd PlanStore, with plans in
// several chunks, are linearizable.
func TestPlanStoreLinearizable(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{ChunkBytes: MinChunkBytes})
	rec := newPlanRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runPlanClients(ctx, rec, s, 40, nil)
	require.NoError(t, ctx.Err())
	checkPlanHistory(t, rec)
	n, err := s.CollectOrphans(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "no writer died: refused puts drop their chunks")
}
