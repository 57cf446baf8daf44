package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
	"github.com/stormguard/stormguard/fence"
)

// This file records concurrent histories of a plan store — publish, read,
// latest, list, clean-up — and checks them with porcupine against the
// sequential specification of dnsplan.Store.

type planOp uint8

const (
	planPut planOp = iota
	planGet
	planLatest
	planList
	planDelete
)

func (o planOp) String() string {
	return [...]string{"put", "get", "latest", "list", "delete"}[o]
}

type planIn struct {
	op   planOp
	g    fence.Token // put, get, delete
	seed uint8       // put
}

// planOut is what a call returned. unknown: it failed in a way that leaves
// its outcome open. bad: it returned what no correct store may (a corrupt
// or partial plan, an unexpected error); the checker rejects it.
type planOut struct {
	ok, stale, notFound, unknown bool
	have                         fence.Token // stale
	g                            fence.Token // get, latest
	seed                         uint8       // get, latest
	gens                         string      // list
	bad                          string
}

// planState is the specification's state: the highest generation ever
// put, and the plans held as "g:seed" ascending, comma-separated.
type planState struct {
	highest fence.Token
	plans   string
}

func (s planState) decode() map[fence.Token]uint8 {
	m := map[fence.Token]uint8{}
	if s.plans == "" {
		return m
	}
	for _, kv := range strings.Split(s.plans, ",") {
		g, seed, _ := strings.Cut(kv, ":")
		gn, _ := strconv.ParseUint(g, 10, 64)
		sn, _ := strconv.ParseUint(seed, 10, 8)
		m[fence.Token(gn)] = uint8(sn)
	}
	return m
}

func encodeState(h fence.Token, m map[fence.Token]uint8) planState {
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d:%d", uint64(g), m[g]))
	}
	return planState{h, strings.Join(parts, ",")}
}

func gensString(gens []fence.Token) string {
	parts := make([]string, len(gens))
	for i, g := range gens {
		parts[i] = strconv.FormatUint(uint64(g), 10)
	}
	return strings.Join(parts, ",")
}

func planStep(st, in, out any) []any {
	s, i, o := st.(planState), in.(planIn), out.(planOut)
	if o.bad != "" {
		return nil
	}
	m := s.decode()
	seed, held := m[i.g]
	switch i.op {
	case planPut:
		fresh := i.g > s.highest
		put := func() planState {
			m[i.g] = i.seed
			return encodeState(i.g, m)
		}
		switch {
		case o.unknown && fresh:
			return []any{s, put()}
		case o.unknown:
			return []any{s}
		case o.ok && fresh:
			return []any{put()}
		case o.stale && !fresh && o.have == s.highest:
			return []any{s}
		}
	case planDelete:
		del := func() planState {
			delete(m, i.g)
			return encodeState(s.highest, m)
		}
		switch {
		case o.unknown && held:
			return []any{s, del()}
		case o.unknown:
			return []any{s}
		case o.ok && held:
			return []any{del()}
		case o.notFound && !held:
			return []any{s}
		}
	case planGet:
		if o.unknown || (o.ok && held && o.seed == seed) || (o.notFound && !held) {
			return []any{s}
		}
	case planLatest:
		if o.unknown {
			return []any{s}
		}
		if len(m) == 0 {
			if o.notFound {
				return []any{s}
			}
			return nil
		}
		top := slices.Max(slices.Collect(maps.Keys(m)))
		if o.ok && o.g == top && o.seed == m[top] {
			return []any{s}
		}
	case planList:
		if o.unknown || (o.ok && o.gens == gensString(slices.Sorted(maps.Keys(m)))) {
			return []any{s}
		}
	}
	return nil
}

var planModel = (&porcupine.NondeterministicModel{
	Init: func() []any { return []any{planState{}} },
	Step: planStep,
	DescribeOperation: func(in, out any) string {
		i, o := in.(planIn), out.(planOut)
		var res string
		switch {
		case o.bad != "":
			res = "BAD " + o.bad
		case o.unknown:
			res = "unknown"
		case o.stale:
			res = fmt.Sprintf("stale(have %d)", o.have)
		case o.notFound:
			res = "not found"
		case i.op == planList:
			res = "[" + o.gens + "]"
		case i.op == planGet || i.op == planLatest:
			res = fmt.Sprintf("%d/seed %d", o.g, o.seed)
		default:
			res = "ok"
		}
		switch i.op {
		case planPut:
			return fmt.Sprintf("put(%d, seed %d) -> %s", i.g, i.seed, res)
		case planGet, planDelete:
			return fmt.Sprintf("%v(%d) -> %s", i.op, i.g, res)
		}
		return fmt.Sprintf("%v -> %s", i.op, res)
	},
	DescribeState: func(st any) string {
		s := st.(planState)
		return fmt.Sprintf("highest %d, plans {%s}", s.highest, s.plans)
	},
}).ToModel()

// seededPlan is plan g with content chosen by seed, with extra endpoints
// so that a small ChunkBytes splits it in several chunks.
func seededPlan(g fence.Token, seed uint8) dnsplan.Plan {
	p := dnsplantest.PlanFor(g, seed)
	for name, ts := range bigPlan(g, 150, 2).Endpoints {
		p.Endpoints[name] = ts
	}
	return p
}

// seedOf recovers the seed of a plan made by seededPlan, and says if the
// plan is not exactly seededPlan(p.Generation, seed).
func seedOf(p dnsplan.Plan) (uint8, string) {
	ts := p.Endpoints["api.example"]
	if len(ts) == 0 {
		return 0, fmt.Sprintf("plan %d has no endpoint api.example", uint64(p.Generation))
	}
	seed := ts[0].Addr.As4()[3]
	if d := dnsplantest.DiffPlans(p, seededPlan(p.Generation, seed)); d != "" {
		return 0, d
	}
	return seed, ""
}

// planRecorder runs calls on a store and records the history.
type planRecorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	// acked puts, deleted plans, unknown deletes, by generation.
	acked              map[fence.Token]uint8
	deleted, maybeGone map[fence.Token]bool
}

func newPlanRecorder() *planRecorder {
	return &planRecorder{start: time.Now(), acked: map[fence.Token]uint8{}, deleted: map[fence.Token]bool{}, maybeGone: map[fence.Token]bool{}}
}

func (r *planRecorder) now() int64 { return int64(time.Since(r.start)) }

// run makes the call in and records it as client's.
func (r *planRecorder) run(ctx context.Context, s dnsplan.Store, client int, in planIn) planOut {
	call := r.now()
	var out planOut
	var err error
	switch in.op {
	case planPut:
		err = s.Put(ctx, seededPlan(in.g, in.seed))
	case planDelete:
		err = s.Delete(ctx, in.g)
	case planGet, planLatest:
		var p dnsplan.Plan
		if in.op == planGet {
			p, err = s.Get(ctx, in.g)
		} else {
			p, err = s.Latest(ctx)
		}
		if err == nil {
			out.g = p.Generation
			out.seed, out.bad = seedOf(p)
			if in.op == planGet && p.Generation != in.g {
				out.bad = fmt.Sprintf("Get(%d) returned plan %d", in.g, p.Generation)
			}
		}
	case planList:
		var gens []fence.Token
		gens, err = s.List(ctx)
		out.gens = gensString(gens)
		if !slices.IsSorted(gens) {
			out.bad = "List not ascending: " + out.gens
		}
	}
	ret := r.now()
	var se *fence.StaleError
	switch {
	case err == nil:
		out.ok = true
	case errors.As(err, &se):
		out.stale, out.have = true, se.Have
	case errors.Is(err, dnsplan.ErrNotFound):
		out.notFound = true
	case errors.Is(err, ErrUnknownOutcome), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		out.unknown = true
		ret = math.MaxInt64 // it may take effect at any time after its call
	default:
		out.bad = err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case in.op == planPut && out.ok:
		r.acked[in.g] = in.seed
	case in.op == planDelete && out.ok:
		r.deleted[in.g] = true
	case in.op == planDelete && out.unknown:
		r.maybeGone[in.g] = true
	}
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	return out
}

func (r *planRecorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

func (r *planRecorder) bad() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for _, op := range r.ops {
		if o := op.Output.(planOut); o.bad != "" {
			bad = append(bad, planModel.DescribeOperation(op.Input, op.Output))
		}
	}
	return bad
}

// cleanUp is one clean-up pass as an enactor makes it: list the plans and
// delete every one but the newest keep. Each call gets its own context,
// bounded by timeout.
func (r *planRecorder) cleanUp(ctx context.Context, s dnsplan.Store, client, keep int, timeout time.Duration) (deleted int) {
	do := func(in planIn) planOut {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return r.run(cctx, s, client, in)
	}
	out := do(planIn{op: planList})
	if !out.ok || out.gens == "" {
		return 0
	}
	gens := strings.Split(out.gens, ",")
	for _, g := range gens[:max(0, len(gens)-keep)] {
		n, _ := strconv.ParseUint(g, 10, 64)
		if do(planIn{op: planDelete, g: fence.Token(n)}).ok {
			deleted++
		}
	}
	return deleted
}
