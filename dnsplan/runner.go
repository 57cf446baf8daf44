package dnsplan

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/fence"
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
// PassStats and reported through OnEvent). In the endpoint phase it
// carries out the actions of up to EnactorConfig.Parallel endpoints at
// once, on up to Parallel worker goroutines that the pass starts as
// needed (one action after another each, never one goroutine per
// action), and delivers their outcomes, and calls OnEvent, on the
// calling goroutine; every other action (and any action alone in flight)
// runs on the calling goroutine. Pass returns only once every goroutine
// it started has ended. A Store or Provider that panics on one of them panics the
// caller of Pass (once the other actions in flight have returned), as it
// would on the calling goroutine; the next Pass goes on from there.
//
// A pass started after an interrupted one starts over from the newest
// plan. Pass checks ctx before it hands out each action, and hands it to
// every Store and Provider call: once ctx ends, it starts no new action,
// waits for those in flight, delivers their outcomes (a write that landed
// is reported as such), and returns ctx's error. A call that ignores ctx
// holds Pass (and Run) until it returns; the other endpoints in flight go
// on meanwhile, but the pass cannot end (nor clean up) before it. A nil
// ctx, store or provider (or a nil *MemoryStore or *MemoryProvider) is
// refused with an error matching ErrInvalidArgument before anything is
// done, and so is a Pass called while another Pass or Run of the same
// Enactor runs.
func (e *Enactor) Pass(ctx context.Context, store Store, provider Provider) (PassStats, error) {
	if nils := nilArgs(ctx, store, true, provider, true); nils != "" {
		return PassStats{}, fmt.Errorf("%w: Enactor.Pass: %s", ErrInvalidArgument, nils)
	}
	if err := e.acquire("Pass"); err != nil {
		return PassStats{}, err
	}
	defer e.release()
	return e.pass(ctx, store, provider)
}

// acquire marks the Enactor driven by a Pass or Run (of the name given),
// or refuses if another one drives it already.
func (e *Enactor) acquire(name string) error {
	if !atomic.CompareAndSwapInt32(&e.running, 0, 1) {
		return fmt.Errorf("%w: Enactor.%s: another Pass or Run of this Enactor is already running (an Enactor is not safe for concurrent use)",
			ErrInvalidArgument, name)
	}
	return nil
}

func (e *Enactor) release() { atomic.StoreInt32(&e.running, 0) }

// pass is Pass, the Enactor acquired.
func (e *Enactor) pass(ctx context.Context, store Store, provider Provider) (PassStats, error) {
	e.init()
	if !samePointer(e.store, store) || !samePointer(e.provider, provider) {
		// What the Enactor knows of endpoints and plans is of the fleet
		// it served: of another one it knows nothing.
		e.forget()
		e.store, e.provider = store, provider
	}
	// Actions handed out before (by an interrupted Pass, or another
	// driver) and never delivered are handed out again.
	e.unissue()
	if e.phase == phaseRest {
		e.Deliver(Result{})
	}
	type outcome struct {
		a     Action
		r     Result
		panic any // what the Store or Provider panicked with, if not nil
	}
	var (
		acts     []Action
		queue    []Action // handed out, not yet taken by a worker
		work     chan Action
		results  chan outcome
		workers  int
		wg       sync.WaitGroup
		inflight int // handed out and not yet delivered
	)
	cctx, cancel := context.WithCancel(ctx)
	run := func(a Action) (o outcome) {
		o.a = a
		defer func() {
			// A panic reaches the caller of Pass, as it does on Pass's
			// own goroutine, not the process.
			o.panic = recover()
		}()
		o.r = Execute(cctx, a, store, provider)
		return o
	}
	defer func() {
		// Actions no worker took never start.
		inflight -= len(queue)
		if inflight > 0 {
			// OnEvent, the Store or the Provider panicked: the actions
			// still in flight are abandoned, and handed out again by the
			// next Pass.
			cancel()
			for ; inflight > 0; inflight-- {
				<-results
			}
			e.unissue()
		}
		cancel()
		if work != nil {
			close(work)
			wg.Wait()
		}
	}()
	for e.phase != phaseRest {
		if ctx.Err() == nil {
			acts = e.Ready(acts[:0])
			if inflight == 0 && len(acts) == 1 {
				_ = e.DeliverAction(acts[0], Execute(cctx, acts[0], store, provider))
				continue
			}
			if work == nil && len(acts) > 0 {
				work = make(chan Action)
				results = make(chan outcome, e.cfg.Parallel)
			}
			queue = append(queue, acts...)
			inflight += len(acts)
			// One worker per action in flight, up to Parallel: a worker
			// takes one action after another until the pass ends.
			for ; workers < min(inflight, e.cfg.Parallel); workers++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for a := range work {
						results <- run(a)
					}
				}()
			}
		} else if len(queue) > 0 {
			// Nothing new starts once ctx has ended.
			inflight -= len(queue)
			queue = queue[:0]
		}
		if inflight == 0 {
			e.restart()
			return e.stats, ctx.Err()
		}
		var (
			send chan Action
			next Action
		)
		if len(queue) > 0 {
			send, next = work, queue[0]
		}
		select {
		case send <- next:
			// Not queue[1:]: the queue would creep along its array, and
			// allocate a new one every few actions.
			queue = slices.Delete(queue, 0, 1)
			continue
		case o := <-results:
			inflight--
			if o.panic != nil {
				panic(o.panic)
			}
			_ = e.DeliverAction(o.a, o.r)
		}
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
	e.issued = false
	clear(e.slots)
	e.active = 0
}

// unissue forgets that the actions pending were handed out, so that Ready
// hands them out again.
func (e *Enactor) unissue() {
	e.issued = false
	for s := range e.slots {
		e.slots[s].issued = false
	}
}

// Run runs passes until ctx is done, and returns ctx's error. Between
// two passes it waits EnactorConfig.Interval — or, if store implements
// Watcher, until the store has a plan newer than any the last passes
// applied or the Watcher announced, if that comes sooner: a pass starts
// as soon as a plan is published, and at least every Interval all the
// same (a pass also repairs endpoints, which no new plan announces). If
// WaitNewer fails (an unreachable backend), or announces nothing newer,
// Run waits out the rest of the Interval; if the pass it started does not
// find the plan it announced (the Store lost it, or the Watcher announces
// what the Store does not hold), Run waits the whole Interval before it
// listens to the Watcher again: never a busy loop. A WaitNewer that
// ignores its context holds Run until it returns. It starts no
// goroutine of its own (Pass starts and ends its own); stop it by
// cancelling ctx. A nil ctx, store or provider is refused as by Pass, and
// so is a Run called while another Pass or Run of the same Enactor runs.
func (e *Enactor) Run(ctx context.Context, store Store, provider Provider) error {
	if nils := nilArgs(ctx, store, true, provider, true); nils != "" {
		return fmt.Errorf("%w: Enactor.Run: %s", ErrInvalidArgument, nils)
	}
	if err := e.acquire("Run"); err != nil {
		return err
	}
	defer e.release()
	e.init()
	w, _ := store.(Watcher)
	var (
		seen      fence.Token // the newest generation applied or announced
		announced fence.Token // what the Watcher announced before this pass
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := e.pass(ctx, store, provider)
		if err != nil {
			return err
		}
		seen = max(seen, st.Generation)
		ww := w
		if announced > st.Generation {
			// The pass did not find the plan the Watcher announced (the
			// Store lost it, or the Watcher announces what the Store
			// does not hold): wait the whole Interval before listening
			// to it again, never pass on its word in a loop.
			ww = nil
		}
		prev := seen
		if seen, err = e.pause(ctx, ww, seen); err != nil {
			return err
		}
		announced = 0
		if seen > prev {
			announced = seen
		}
	}
}

// pause waits between two passes of Run: Interval, or until w (if not
// nil) announces a generation above seen; it returns the newest
// generation announced (or seen), or ctx's error.
func (e *Enactor) pause(ctx context.Context, w Watcher, seen fence.Token) (fence.Token, error) {
	start := time.Now()
	if w != nil {
		wctx, cancel := context.WithTimeout(ctx, e.cfg.Interval)
		g, err := w.WaitNewer(wctx, seen)
		cancel()
		switch {
		case ctx.Err() != nil:
			return seen, ctx.Err()
		case err == nil && g > seen:
			return g, nil
		case errors.Is(wctx.Err(), context.DeadlineExceeded):
			return seen, nil // the Interval is over
		}
		// The store failed, or said nothing newer: wait out the rest.
	}
	t := time.NewTimer(e.cfg.Interval - time.Since(start))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return seen, ctx.Err()
	case <-t.C:
		return seen, nil
	}
}
