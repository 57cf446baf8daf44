package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stormguard/stormguard/fence"
)

// This file records concurrent histories of fenced operations and checks
// them with porcupine against the sequential specification of a key: a
// value and the token that wrote it.

type opKind uint8

const (
	opLoad opKind = iota
	opCAS
	opWriteIfNewer
	opDelete
)

// input is one operation on one key.
type input struct {
	kind   opKind
	key    string
	expect fence.Token // opCAS, opDelete
	token  fence.Token // the token written: opCAS, opWriteIfNewer
	value  string
}

// output is what the operation returned. unknown means it failed in a way
// that leaves its outcome open (a timeout, a lost connection): it may have
// taken effect at any time after its call.
//
// notSent means it failed without sending anything (its context had
// ended): it surely did not take effect, and the history leaves it out,
// so that a checker catches it if it did.
type output struct {
	ok, stale, unknown, notSent bool
	have                        fence.Token // the StaleError's token
	token                       fence.Token // opLoad
	value                       string      // opLoad
	absent                      bool        // opLoad: nil value
}

// keyState is the specification's state of one key; the zero value is an
// absent key.
type keyState struct {
	token fence.Token
	value string
}

// step is the sequential specification: the states an operation with this
// input and output can lead to from s (none if it cannot happen).
func step(st, in, out any) []any {
	s, i, o := st.(keyState), in.(input), out.(output)
	if i.kind == opLoad {
		if o.token == s.token && o.value == s.value && o.absent == (s.token == 0) {
			return []any{s}
		}
		return nil
	}
	var cond bool
	var next keyState
	switch i.kind {
	case opCAS:
		cond, next = s.token == i.expect, keyState{i.token, i.value}
	case opWriteIfNewer:
		cond, next = s.token < i.token, keyState{i.token, i.value}
	case opDelete:
		cond = s.token == i.expect && s.token != 0
	}
	switch {
	case o.unknown && cond:
		return []any{s, next}
	case o.unknown:
		return []any{s}
	case o.ok && cond:
		return []any{next}
	case o.stale && !cond && o.have == s.token:
		return []any{s}
	}
	return nil
}

var fenceModel = (&porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{keyState{}} },
	Step: step,
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		var res string
		switch {
		case o.unknown:
			res = "unknown"
		case o.stale:
			res = fmt.Sprintf("stale(have %d)", o.have)
		case i.kind == opLoad:
			res = fmt.Sprintf("%q@%d", o.value, o.token)
		default:
			res = "ok"
		}
		switch i.kind {
		case opLoad:
			return fmt.Sprintf("load(%s) → %s", i.key, res)
		case opCAS:
			return fmt.Sprintf("cas(%s, %d→%d, %q) → %s", i.key, i.expect, i.token, i.value, res)
		case opWriteIfNewer:
			return fmt.Sprintf("writeIfNewer(%s, %d, %q) → %s", i.key, i.token, i.value, res)
		default:
			return fmt.Sprintf("delete(%s, %d) → %s", i.key, i.expect, res)
		}
	},
}).ToModel()

// target runs one operation.
type target interface {
	do(ctx context.Context, in input) (output, error)
}

// storeTarget runs operations on a fence.Store.
type storeTarget struct{ s fence.Store }

func (st storeTarget) do(ctx context.Context, in input) (output, error) {
	var err error
	switch in.kind {
	case opLoad:
		v, tok, err := st.s.Load(ctx, in.key)
		if err != nil {
			return output{unknown: true}, err
		}
		return output{ok: true, token: tok, value: string(v), absent: v == nil}, nil
	case opCAS:
		err = st.s.CompareAndSwap(ctx, in.key, in.expect, []byte(in.value), in.token)
	case opWriteIfNewer:
		err = fence.WriteIfNewer(ctx, st.s, in.key, []byte(in.value), in.token)
	case opDelete:
		err = st.s.Delete(ctx, in.key, in.expect)
	}
	return classify(err)
}

// registerTarget runs operations on one fence.Register per key (a Register
// has no delete).
type registerTarget map[string]*fence.Register[string]

func (rt registerTarget) do(_ context.Context, in input) (output, error) {
	r := rt[in.key]
	switch in.kind {
	case opLoad:
		v, tok := r.Load()
		return output{ok: true, token: tok, value: v, absent: tok == 0}, nil
	case opCAS:
		return classify(r.CompareAndSwap(in.expect, in.value, in.token))
	default:
		return classify(r.WriteIfNewer(in.value, in.token))
	}
}

func classify(err error) (output, error) {
	var se *fence.StaleError
	switch {
	case err == nil:
		return output{ok: true}, nil
	case errors.As(err, &se):
		return output{stale: true, have: se.Have}, nil
	}
	return output{unknown: true}, err
}

// recorder collects a concurrent history.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	errs  []error // unexpected errors (outcome unknown)
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

// run performs in on tg, records it, and returns its output.
func (r *recorder) run(ctx context.Context, tg target, client int, in input) output {
	call := r.now()
	out, err := tg.do(ctx, in)
	ret := r.now()
	if out.unknown {
		// It may take effect at any time after its call.
		ret = math.MaxInt64
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
	}
	if in.kind == opLoad && out.unknown || out.notSent {
		return out // a read that returned nothing tells nothing
	}
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	return out
}

func (r *recorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// checkLinearizable fails t unless the recorded history is linearizable.
func checkLinearizable(t *testing.T, history []porcupine.Operation) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(fenceModel, history, 30*time.Second)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		if err := porcupine.VisualizePath(fenceModel, info, path); err == nil {
			t.Logf("visualization: %s (copy it out before the test's temp dir is removed)", path)
		}
		t.Fatalf("history of %d operations: %s", len(history), res)
	}
}

// randomClient issues ops random operations on keys, each conditioned on
// what this client last saw, so that many succeed and many are refused.
// pause, if not nil, runs between operations. del says whether to issue
// deletes.
func randomClient(ctx context.Context, rec *recorder, tg target, client, ops int, keys []string, del bool, pause func(*rand.Rand)) {
	rng := rand.New(rand.NewPCG(uint64(client), 7))
	seen := map[string]fence.Token{}
	for n := range ops {
		key := keys[rng.IntN(len(keys))]
		in := input{key: key, value: fmt.Sprintf("c%d#%d", client, n)}
		switch p := rng.IntN(100); {
		case p < 25:
			in.kind = opLoad
		case p < 55:
			in.kind = opCAS
			in.expect = seen[key]
			if rng.IntN(5) == 0 && in.expect > 0 {
				in.expect-- // a stale guess
			}
			in.token = in.expect + 1 + fence.Token(rng.IntN(3))
		case p < 90 || !del:
			in.kind = opWriteIfNewer
			in.token = max(seen[key]+fence.Token(rng.IntN(4)), 1)
			if in.token > 2 && rng.IntN(4) == 0 {
				in.token -= 2 // a delayed writer
			}
		default:
			in.kind = opDelete
			in.expect = max(seen[key], 1)
		}
		out := rec.run(ctx, tg, client, in)
		switch {
		case out.stale:
			seen[key] = out.have
		case out.ok && in.kind == opLoad:
			seen[key] = out.token
		case out.ok && in.kind == opDelete:
			seen[key] = 0
		case out.ok:
			seen[key] = in.token
		}
		if pause != nil {
			pause(rng)
		}
	}
}

// runClients runs n randomClients concurrently and waits for them.
func runClients(ctx context.Context, rec *recorder, tg target, n, ops int, keys []string, del bool, pause func(*rand.Rand)) {
	var wg sync.WaitGroup
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			randomClient(ctx, rec, tg, c, ops, keys, del, pause)
		}()
	}
	wg.Wait()
}
