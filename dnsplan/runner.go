package dnsplan

import (
	"context"
	"fmt"
	"reflect"
	"time"
)

// Execute carries out one Action against store and provider and returns
// its Result. It is the whole I/O of an Enactor; a simulation may use its
// own instead (to delay or reorder actions). OpRest does nothing and needs
// nothing. Every other action needs ctx, and store (OpLoadLatest,
// OpListPlans, OpLoadPlan, OpDeletePlan) or provider (OpRead, OpApply):
// if one it needs is nil, or the Op is unknown, Result.Err matches
// ErrInvalidArgument and nothing is read or written.
func Execute(ctx context.Context, a Action, store Store, provider Provider) Result {
	var needStore, needProvider bool
	switch a.Op {
	case OpRest:
		return Result{}
	case OpLoadLatest, OpListPlans, OpLoadPlan, OpDeletePlan:
		needStore = true
	case OpRead, OpApply:
		needProvider = true
	default:
		return Result{Err: fmt.Errorf("%w: Execute: unknown %v", ErrInvalidArgument, a.Op)}
	}
	if nils := nilArgs(ctx, store, needStore, provider, needProvider); nils != "" {
		return Result{Err: fmt.Errorf("%w: Execute %v: %s", ErrInvalidArgument, a.Op, nils)}
	}
	var r Result
	switch a.Op {
	case OpLoadLatest:
		r.Plan, r.Err = store.Latest(ctx)
	case OpRead:
		r.Records, r.Err = provider.Read(ctx, a.Endpoint)
	case OpApply:
		r.Err = provider.Apply(ctx, a.Endpoint, a.Expect, a.Records)
	case OpListPlans:
		r.Generations, r.Err = store.List(ctx)
	case OpLoadPlan:
		r.Plan, r.Err = store.Get(ctx, a.Generation)
	case OpDeletePlan:
		r.Err = store.Delete(ctx, a.Generation)
	}
	return r
}

// Pass runs the Enactor through one whole pass against store and provider
// and returns its statistics; the error is the context's if it ended the
// pass early, and nil otherwise (errors of single endpoints are counted in
// PassStats and reported through OnEvent). A pass started after an
// interrupted one starts over from the newest plan. Pass checks ctx
// between actions and hands it to every Store and Provider call; a call
// that ignores it holds Pass (and Run) until it returns. A nil ctx, store
// or provider (or a nil *MemoryStore or *MemoryProvider) is refused with
// an error matching ErrInvalidArgument before anything is done.
func (e *Enactor) Pass(ctx context.Context, store Store, provider Provider) (PassStats, error) {
	if nils := nilArgs(ctx, store, true, provider, true); nils != "" {
		return PassStats{}, fmt.Errorf("%w: Enactor.Pass: %s", ErrInvalidArgument, nils)
	}
	e.init()
	if !samePointer(e.store, store) || !samePointer(e.provider, provider) {
		// What the Enactor knows of endpoints and plans is of the fleet
		// it served: of another one it knows nothing.
		e.forget()
		e.store, e.provider = store, provider
	}
	if e.pending.Op == OpRest {
		e.Deliver(Result{})
	}
	for e.pending.Op != OpRest {
		if err := ctx.Err(); err != nil {
			e.restart()
			return e.stats, err
		}
		e.Deliver(Execute(ctx, e.pending, store, provider))
	}
	return e.last, nil
}

// samePointer reports whether a and b are the same pointer (a Store or
// Provider of a non-pointer type is never the same as another: an
// Enactor forgets what it knew on every pass with one, which costs reads
// and loads, never safety).
func samePointer(a, b any) bool {
	if a == nil || b == nil || reflect.TypeOf(a) != reflect.TypeOf(b) || reflect.TypeOf(a).Kind() != reflect.Pointer {
		return false
	}
	return a == b
}

// forget abandons the pass in progress and everything the Enactor learnt
// of endpoints and plans in earlier passes.
func (e *Enactor) forget() {
	clear(e.known)
	clear(e.pinnedBy)
	e.restart()
}

// restart abandons the pass in progress; the next action loads the newest
// plan again.
func (e *Enactor) restart() {
	e.phase = phaseStart
	e.pending = Action{Op: OpLoadLatest}
}

// Run runs passes, EnactorConfig.Interval apart, until ctx is done, and
// returns ctx's error. It starts no goroutine; stop it by cancelling ctx.
// A nil ctx, store or provider is refused as by Pass.
func (e *Enactor) Run(ctx context.Context, store Store, provider Provider) error {
	if nils := nilArgs(ctx, store, true, provider, true); nils != "" {
		return fmt.Errorf("%w: Enactor.Run: %s", ErrInvalidArgument, nils)
	}
	e.init()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if _, err := e.Pass(ctx, store, provider); err != nil {
			return err
		}
		t.Reset(e.cfg.Interval)
	}
}
