package etcd

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestModel checks the checker: hand-made histories that a correct fenced
// store can and cannot produce.
func TestModel(t *testing.T) {
	op := func(client int, in input, call int64, out output, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	win := func(tok fence.Token, v string) input {
		return input{kind: opWriteIfNewer, key: "k", token: tok, value: v}
	}
	load := input{kind: opLoad, key: "k"}
	ok := output{ok: true}
	inf := int64(math.MaxInt64)
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"the 2025 race: an old plan written after a newer one", []porcupine.Operation{
			op(0, win(5, "new"), 0, ok, 10),
			op(1, win(3, "old"), 20, ok, 30),
		}, porcupine.Illegal},
		{"overlapping writes may land in either order", []porcupine.Operation{
			op(0, win(5, "new"), 0, ok, 30),
			op(1, win(3, "old"), 10, ok, 20),
			op(2, load, 40, output{ok: true, token: 5, value: "new"}, 50),
		}, porcupine.Ok},
		{"a refusal must name the token in place", []porcupine.Operation{
			op(0, win(5, "new"), 0, ok, 10),
			op(1, win(3, "old"), 20, output{stale: true, have: 4}, 30),
		}, porcupine.Illegal},
		{"an acknowledged write is never lost", []porcupine.Operation{
			op(0, win(5, "new"), 0, ok, 10),
			op(1, load, 20, output{ok: true, absent: true}, 30),
		}, porcupine.Illegal},
		{"a write of unknown outcome may have happened", []porcupine.Operation{
			op(0, win(5, "new"), 0, output{unknown: true}, inf),
			op(1, load, 20, output{ok: true, token: 5, value: "new"}, 30),
		}, porcupine.Ok},
		{"or not", []porcupine.Operation{
			op(0, win(5, "new"), 0, output{unknown: true}, inf),
			op(1, load, 20, output{ok: true, absent: true}, 30),
		}, porcupine.Ok},
		{"a delete conditioned on an old token cannot remove a newer plan", []porcupine.Operation{
			op(0, input{kind: opCAS, key: "k", expect: 0, token: 41, value: "41"}, 0, ok, 10),
			op(0, input{kind: opCAS, key: "k", expect: 41, token: 42, value: "42"}, 20, ok, 30),
			op(1, input{kind: opDelete, key: "k", expect: 41}, 40, ok, 50),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, porcupine.CheckOperationsTimeout(fenceModel, tt.history, 10*time.Second))
		})
	}
}

var historyKeys = []string{"endpoint/a", "endpoint/b", "endpoint/c"}

// yieldSometimes interleaves goroutines more finely than the scheduler
// would on its own.
func yieldSometimes(rng *rand.Rand) {
	if rng.IntN(3) == 0 {
		runtime.Gosched()
	}
}

// TestLinearizableMemory: concurrent histories of fence.Memory, deletes
// included, are linearizable.
func TestLinearizableMemory(t *testing.T) {
	rec := newRecorder()
	runClients(context.Background(), rec, storeTarget{&fence.Memory{}}, 8, 400, historyKeys, true, yieldSometimes)
	require.Empty(t, rec.errs)
	checkLinearizable(t, rec.history())
}

// TestLinearizableMemoryFallback: the same through fence.WriteIfNewer's
// compare-and-swap loop, for stores without a native write-if-newer.
func TestLinearizableMemoryFallback(t *testing.T) {
	rec := newRecorder()
	runClients(context.Background(), rec, storeTarget{storeOnly{&fence.Memory{}}}, 8, 300, historyKeys, true, yieldSometimes)
	require.Empty(t, rec.errs)
	checkLinearizable(t, rec.history())
}

type storeOnly struct{ fence.Store }

// TestLinearizableRegister: concurrent histories of the lock-free
// fence.Register are linearizable.
func TestLinearizableRegister(t *testing.T) {
	regs := registerTarget{}
	for _, k := range historyKeys {
		regs[k] = &fence.Register[string]{}
	}
	rec := newRecorder()
	runClients(context.Background(), rec, regs, 8, 400, historyKeys, false, yieldSometimes)
	require.Empty(t, rec.errs)
	checkLinearizable(t, rec.history())
}

// TestLinearizableEtcd: concurrent histories of the etcd Store, deletes
// included, are linearizable.
func TestLinearizableEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	s, err := NewStore(StoreConfig{Client: srv.Client(t), Prefix: "linearizability/"})
	require.NoError(t, err)
	rec := newRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runClients(ctx, rec, storeTarget{s}, 6, 80, historyKeys, true, nil)
	require.Empty(t, rec.errs)
	checkLinearizable(t, rec.history())
}

// checkThenWrite is the 2025 enactor's register: it checks that its token
// is newer, and writes later, in a separate step.
type checkThenWrite struct {
	mu sync.Mutex
	st keyState
}

type checkThenWriteTarget map[string]*checkThenWrite

func (ct checkThenWriteTarget) do(_ context.Context, in input) (output, error) {
	r := ct[in.key]
	r.mu.Lock()
	cur := r.st
	r.mu.Unlock()
	if in.kind == opLoad {
		return output{ok: true, token: cur.token, value: cur.value, absent: cur.token == 0}, nil
	}
	ok := cur.token < in.token
	if in.kind == opCAS {
		ok = cur.token == in.expect
	}
	if !ok {
		return output{stale: true, have: cur.token}, nil
	}
	runtime.Gosched() // the delay between the check and the write
	r.mu.Lock()
	r.st = keyState{in.token, in.value}
	r.mu.Unlock()
	return output{ok: true}, nil
}

// TestCheckerCatchesCheckThenWrite: the same workload on a register that
// checks before writing instead of while writing produces a history the
// checker rejects — the bug of October 2025, caught.
func TestCheckerCatchesCheckThenWrite(t *testing.T) {
	for attempt := 1; attempt <= 50; attempt++ {
		regs := checkThenWriteTarget{"k": {}}
		rec := newRecorder()
		runClients(context.Background(), rec, regs, 4, 60, []string{"k"}, false, yieldSometimes)
		if porcupine.CheckOperationsTimeout(fenceModel, rec.history(), 10*time.Second) == porcupine.Illegal {
			t.Logf("caught on attempt %d", attempt)
			return
		}
	}
	t.Fatal("50 histories of a check-then-write register all passed as linearizable")
}
