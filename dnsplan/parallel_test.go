package dnsplan_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// epName is the name bigPlan gives endpoint i.
func epName(i int) string { return fmt.Sprintf("ep%05d.us-east-1.example", i) }

func TestNewEnactorRefusesBadParallel(t *testing.T) {
	_, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Parallel: -1})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "EnactorConfig.Parallel -1 is negative")
	_, err = dnsplan.NewEnactor(dnsplan.EnactorConfig{Parallel: dnsplan.MaxParallel + 1})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "EnactorConfig.Parallel 1025 is above MaxParallel 1024")
	_, err = dnsplan.NewEnactor(dnsplan.EnactorConfig{Parallel: dnsplan.MaxParallel})
	require.NoError(t, err)
}

// TestReadyHandsOutUpToParallel drives Ready and DeliverAction by hand:
// at most Parallel endpoints in flight, each slot's actions in order, a
// freed slot refilled with the next endpoint, and clean-up handed out
// only once every endpoint's last outcome is in, even the one held back
// the longest.
func TestReadyHandsOutUpToParallel(t *testing.T) {
	const n, parallel = 7, 3
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	for g := fence.Token(1); g <= 5; g++ {
		require.NoError(t, store.Put(ctx, bigPlan(g, n, byte(g))))
	}
	e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel, Retention: 1})
	acts := e.Ready(nil)
	require.Len(t, acts, 1)
	require.Equal(t, dnsplan.OpLoadLatest, acts[0].Op)
	assert.Empty(t, e.Ready(nil), "nothing more until the plan is in")
	require.NoError(t, e.DeliverAction(acts[0], dnsplan.Execute(ctx, acts[0], store, dns)))

	held := epName(n - 3) // its apply is delivered last
	var heldAction *dnsplan.Action
	var out []dnsplan.Action // handed out, outcome due
	ops := map[string][]dnsplan.Op{}
	for steps := 0; ; steps++ {
		require.Less(t, steps, 100)
		for _, a := range e.Ready(nil) {
			require.GreaterOrEqual(t, a.Slot, 0)
			require.Less(t, a.Slot, parallel)
			if a.Op == dnsplan.OpRead || a.Op == dnsplan.OpApply {
				ops[a.Endpoint] = append(ops[a.Endpoint], a.Op)
			}
			out = append(out, a)
		}
		require.LessOrEqual(t, len(out)+btoi(heldAction != nil), parallel, "in flight: %v", out)
		if len(out) == 0 {
			require.NotNil(t, heldAction)
			require.NoError(t, e.DeliverAction(*heldAction, dnsplan.Execute(ctx, *heldAction, store, dns)))
			heldAction = nil
			break
		}
		a := out[0]
		out = out[1:]
		require.NotEqual(t, dnsplan.OpListPlans, a.Op, "clean-up started with an endpoint in flight")
		if a.Op == dnsplan.OpApply && a.Endpoint == held {
			heldAction = &a
			continue
		}
		require.NoError(t, e.DeliverAction(a, dnsplan.Execute(ctx, a, store, dns)))
	}
	require.Len(t, ops, n)
	for name, o := range ops {
		assert.Equal(t, []dnsplan.Op{dnsplan.OpRead, dnsplan.OpApply}, o, name)
	}
	// Clean-up, one action at a time, until the pass is over.
	for steps := 0; ; steps++ {
		require.Less(t, steps, 100)
		acts := e.Ready(nil)
		require.Len(t, acts, 1)
		if acts[0].Op == dnsplan.OpRest {
			break
		}
		require.Zero(t, acts[0].Slot)
		require.NoError(t, e.DeliverAction(acts[0], dnsplan.Execute(ctx, acts[0], store, dns)))
	}
	assert.Equal(t, dnsplan.PassStats{Generation: 5, Applied: n, Deleted: 3}, e.LastPass())
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDeliverActionRefusesWhatIsNotDue: an outcome delivered twice, for
// an action Ready never handed out (made up, or Next's), for a slot out
// of range, or for a pass abandoned since, is refused with
// ErrInvalidArgument and changes nothing: the pass then ends as if it
// had never been delivered.
func TestDeliverActionRefusesWhatIsNotDue(t *testing.T) {
	const n = 4
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
	e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: 2})
	refused := func(a dnsplan.Action, why string) {
		t.Helper()
		err := e.DeliverAction(a, dnsplan.Result{Err: errors.New("must not be delivered")})
		require.ErrorIs(t, err, dnsplan.ErrInvalidArgument, why)
		assert.Contains(t, err.Error(), "is not due", why)
	}
	refused(dnsplan.Action{Op: dnsplan.OpLoadLatest}, "made up, before anything was handed out")
	refused(e.Next(), "Next's action, never handed out")
	first := e.Ready(nil)[0]
	require.NoError(t, e.DeliverAction(first, dnsplan.Execute(ctx, first, store, dns)))
	refused(first, "delivered twice")

	acts := e.Ready(nil)
	require.Len(t, acts, 2)
	bad := acts[1]
	bad.Slot = 5
	refused(bad, "slot out of range")
	bad.Slot = -1
	refused(bad, "negative slot")
	bad = acts[1]
	bad.Slot = 0
	refused(bad, "another slot's action")
	require.NoError(t, e.DeliverAction(acts[0], dnsplan.Execute(ctx, acts[0], store, dns)))
	refused(acts[0], "a read delivered twice, while its slot waits for the apply")
	next := e.Ready(nil)
	require.Len(t, next, 1, "only slot 0 moved on")
	assert.Equal(t, dnsplan.OpApply, next[0].Op)
	refused(acts[0], "a read delivered twice, once the apply is handed out")

	// Drive the pass to its end, delivering every stale action again on
	// the way: the statistics are those of a clean pass.
	out := append(next, acts[1])
	var done []dnsplan.Action
	for steps := 0; len(out) > 0; steps++ {
		require.Less(t, steps, 100)
		a := out[0]
		out = out[1:]
		if a.Op == dnsplan.OpRest {
			break
		}
		require.NoError(t, e.DeliverAction(a, dnsplan.Execute(ctx, a, store, dns)))
		done = append(done, a)
		for _, d := range done {
			refused(d, "delivered already: "+d.String())
		}
		out = e.Ready(out)
	}
	assert.Equal(t, dnsplan.PassStats{Generation: 1, Applied: n}, e.LastPass())

	// A pass abandoned by Pass (here, on another provider) refuses the
	// outcomes of its actions.
	require.NoError(t, store.Put(ctx, bigPlan(2, n, 2)))
	e.Deliver(dnsplan.Result{}) // rest over
	first = e.Ready(nil)[0]
	require.NoError(t, e.DeliverAction(first, dnsplan.Execute(ctx, first, store, dns)))
	acts = e.Ready(nil)
	require.Len(t, acts, 2)
	st, err := e.Pass(ctx, store, &dnsplan.MemoryProvider{})
	require.NoError(t, err)
	assert.Equal(t, n, st.Applied)
	for _, a := range acts {
		refused(a, "of an abandoned pass")
	}
}

// conflictingDNS refuses, as if another writer got there first, the
// first refuse applies of every endpoint in refuseFor (all if nil), or
// every apply of those in always.
type conflictingDNS struct {
	dnsplan.MemoryProvider
	mu      sync.Mutex
	refuse  int
	always  map[string]bool
	refused map[string]int
}

func (d *conflictingDNS) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	d.mu.Lock()
	if d.refused == nil {
		d.refused = map[string]int{}
	}
	refuse := d.always[ep] || d.refused[ep] < d.refuse
	if refuse {
		d.refused[ep]++
	}
	d.mu.Unlock()
	if refuse {
		return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: ep, Have: expect.Generation, Want: expect.Generation}
	}
	return d.MemoryProvider.Apply(ctx, ep, expect, r)
}

// TestParallelOneIsNextAndDeliver: Ready and DeliverAction with
// Parallel 1 ask for the same actions, one at a time and all in slot 0,
// as Next and Deliver (with the default Parallel: they run one action at
// a time whatever it is), and report the same events and statistics as
// Pass with Parallel 1, through conflicts, a repair from the endpoint's
// own newer plan, an endpoint already current, one ahead, and clean-up.
func TestParallelOneIsNextAndDeliver(t *testing.T) {
	const n = 6
	world := func() (*latestAt, *conflictingDNS) {
		store, dns := &latestAt{latest: 11}, &conflictingDNS{refuse: 2}
		for g := fence.Token(1); g <= 12; g++ {
			p := bigPlan(g, n, byte(g))
			if g == 11 {
				p.Endpoints[epName(n)] = p.Endpoints[epName(0)] // only plan 11 names it
			}
			require.NoError(t, store.Put(ctx, p))
		}
		p10, _ := store.Get(ctx, 10)
		p12, _ := store.Get(ctx, 12)
		dns.Set(epName(1), dnsplan.Records{Generation: 12})                                    // empty, ahead: repaired from plan 12
		dns.Set(epName(2), dnsplan.Records{Generation: 10, Targets: p10.Endpoints[epName(2)]}) // behind
		dns.Set(epName(3), dnsplan.Records{Generation: 12, Targets: p12.Endpoints[epName(3)]}) // ahead
		dns.Set(epName(n), dnsplan.Records{Generation: 11, Targets: p10.Endpoints[epName(0)]}) // damaged
		return store, dns
	}
	type trace struct {
		actions []string
		events  []dnsplan.Event
		stats   dnsplan.PassStats
	}
	newEnactor := func(tr *trace, parallel int) *dnsplan.Enactor {
		return mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel, Retention: 1, OnEvent: func(ev dnsplan.Event) { tr.events = append(tr.events, ev) }})
	}
	var seq, one, pass trace
	{
		store, dns := world()
		e := newEnactor(&seq, 0)
		for steps := 0; ; steps++ {
			require.Less(t, steps, 1000)
			a := e.Next()
			require.Zero(t, a.Slot)
			seq.actions = append(seq.actions, a.String())
			if a.Op == dnsplan.OpRest {
				break
			}
			e.Deliver(dnsplan.Execute(ctx, a, store, dns))
		}
		seq.stats = e.LastPass()
	}
	{
		store, dns := world()
		e := newEnactor(&one, 1)
		for steps := 0; ; steps++ {
			require.Less(t, steps, 1000)
			acts := e.Ready(nil)
			require.Len(t, acts, 1)
			a := acts[0]
			require.Zero(t, a.Slot)
			one.actions = append(one.actions, a.String())
			if a.Op == dnsplan.OpRest {
				break
			}
			require.NoError(t, e.DeliverAction(a, dnsplan.Execute(ctx, a, store, dns)))
		}
		one.stats = e.LastPass()
	}
	{
		store, dns := world()
		e := newEnactor(&pass, 1)
		st, err := e.Pass(ctx, store, dns)
		require.NoError(t, err)
		pass.stats = st
	}
	assert.Equal(t, seq.actions, one.actions)
	assert.Equal(t, seq.events, one.events)
	assert.Equal(t, seq.events, pass.events)
	assert.Equal(t, seq.stats, one.stats)
	assert.Equal(t, seq.stats, pass.stats)
	assert.Equal(t, dnsplan.PassStats{Generation: 11, Applied: 4, Repaired: 2, Newer: 1, Conflicts: 2 * 6, Highest: 12, Deleted: 9}, seq.stats, "%v", seq.actions)
	assert.Contains(t, seq.actions, "load-plan 12", "the repair of the endpoint ahead")
}

// latestAt is a MemoryStore whose newest plan, for Latest, is latest:
// the plans above it are published as the pass starts.
type latestAt struct {
	dnsplan.MemoryStore
	latest fence.Token
}

func (s *latestAt) Latest(ctx context.Context) (dnsplan.Plan, error) { return s.Get(ctx, s.latest) }

// slowDNS is a MemoryProvider whose every call takes a second of
// synctest's clock (less if its context ends first), that counts the
// calls in flight and the most at once, and whose Read of hang waits for
// release, ignoring its context.
type slowDNS struct {
	dnsplan.MemoryProvider
	hang    string
	release chan struct{}

	mu             sync.Mutex
	inflight, most int
	calls          int
}

func (d *slowDNS) call(ctx context.Context, ep string, hang bool) {
	d.mu.Lock()
	d.inflight++
	d.most = max(d.most, d.inflight)
	d.calls++
	d.mu.Unlock()
	if hang && ep == d.hang {
		<-d.release
	} else {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	d.mu.Lock()
	d.inflight--
	d.mu.Unlock()
}

func (d *slowDNS) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	d.call(ctx, ep, true)
	return d.MemoryProvider.Read(ctx, ep)
}

func (d *slowDNS) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	d.call(ctx, ep, false)
	return d.MemoryProvider.Apply(ctx, ep, expect, r)
}

func (d *slowDNS) stats() (calls, inflight, most int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls, d.inflight, d.most
}

// listCounter is a MemoryStore that counts List calls: clean-up's start.
type listCounter struct {
	dnsplan.MemoryStore
	mu    sync.Mutex
	lists int
}

func (s *listCounter) List(ctx context.Context) ([]fence.Token, error) {
	s.mu.Lock()
	s.lists++
	s.mu.Unlock()
	return s.MemoryStore.List(ctx)
}

func (s *listCounter) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

// TestPassRunsUpToParallelAtOnce: Pass has exactly Parallel endpoints'
// calls in flight at its busiest, never more, for several values, and
// the default is DefaultParallel.
func TestPassRunsUpToParallelAtOnce(t *testing.T) {
	for _, parallel := range []int{1, 2, 7, 0} {
		t.Run(fmt.Sprint(parallel), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 40
				store, dns := &dnsplan.MemoryStore{}, &slowDNS{}
				require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
				e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel})
				st, err := e.Pass(ctx, store, dns)
				require.NoError(t, err)
				assert.Equal(t, n, st.Applied)
				calls, inflight, most := dns.stats()
				assert.Equal(t, 2*n, calls)
				assert.Zero(t, inflight)
				want := parallel
				if want == 0 {
					want = dnsplan.DefaultParallel
				}
				assert.Equal(t, want, most)
			})
		})
	}
}

// TestPassCancelledWithSlotsInFlight: once ctx ends, Pass hands out no
// new action, waits for the ones in flight, and returns ctx's error with
// none left running; the writes that landed are reported; the next Pass
// starts over and finishes the job.
func TestPassCancelledWithSlotsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, parallel = 20, 4
		store, dns := &dnsplan.MemoryStore{}, &slowDNS{}
		require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
		var applied []string
		e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel, OnEvent: func(ev dnsplan.Event) {
			if ev.Kind == dnsplan.EventApplied {
				applied = append(applied, ev.Endpoint)
			}
		}})
		c, cancel := context.WithCancel(ctx)
		type ret struct {
			st  dnsplan.PassStats
			err error
		}
		done := make(chan ret)
		go func() {
			st, err := e.Pass(c, store, dns)
			done <- ret{st, err}
		}()
		time.Sleep(2500 * time.Millisecond) // reads at 0-1s, applies at 1-2s, reads in flight
		synctest.Wait()
		calls, inflight, _ := dns.stats()
		require.Equal(t, parallel, inflight)
		cancel()
		r := <-done
		require.ErrorIs(t, r.err, context.Canceled)
		after, inflight, _ := dns.stats()
		assert.Equal(t, calls, after, "no action handed out after the cancellation")
		assert.Zero(t, inflight)
		landed := 0
		for i := range n {
			if rec, _ := dns.Read(ctx, epName(i)); rec.Generation == 1 {
				landed++
			}
		}
		assert.Equal(t, parallel, landed)
		assert.Len(t, applied, landed, "every write that landed is reported")
		st, err := e.Pass(ctx, store, dns)
		require.NoError(t, err)
		assert.Equal(t, n-parallel, st.Applied)
		assert.Equal(t, parallel, st.Current)
	})
}

// TestPassWaitsForAHungSlot: a Read that hangs and ignores its context
// holds its slot, and the pass: the other endpoints are all applied
// meanwhile, clean-up does not start, and a cancellation does not end
// Pass before the Read returns. Then Pass returns the cancellation, and
// the next Pass finishes, clean-up included.
func TestPassWaitsForAHungSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 12
		hung := epName(3)
		store, dns := &listCounter{}, &slowDNS{hang: hung, release: make(chan struct{})}
		for g := fence.Token(1); g <= 4; g++ {
			require.NoError(t, store.Put(ctx, bigPlan(g, n, byte(g))))
		}
		e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: 4, Retention: 1})
		c, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() {
			_, err := e.Pass(c, store, dns)
			done <- err
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		for i := range n {
			rec, _ := dns.MemoryProvider.Read(ctx, epName(i))
			if i == 3 {
				assert.Zero(t, rec.Generation)
			} else {
				assert.Equal(t, fence.Token(4), rec.Generation, epName(i))
			}
		}
		assert.Zero(t, store.count(), "clean-up started while an endpoint was in flight")
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Pass returned %v with a Read in flight", err)
		default:
		}
		close(dns.release)
		require.ErrorIs(t, <-done, context.Canceled)
		assert.Zero(t, store.count())
		dns.hang = ""
		st, err := e.Pass(ctx, store, dns)
		require.NoError(t, err)
		assert.Equal(t, dnsplan.PassStats{Generation: 4, Applied: 1, Current: n - 1, Highest: 4, Deleted: 2}, st)
	})
}

// TestPassOnEventPanicsWithSlotsInFlight: an OnEvent that panics while
// other endpoints are in flight: the panic reaches the caller of Pass
// only once they have all returned (nothing left running), and the next
// Pass carries on, writing nothing twice.
func TestPassOnEventPanicsWithSlotsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 10
		store, dns := &dnsplan.MemoryStore{}, &slowDNS{}
		require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
		panicked := false
		e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: 4, OnEvent: func(ev dnsplan.Event) {
			if ev.Kind == dnsplan.EventApplied && !panicked {
				panicked = true
				panic("hook")
			}
		}})
		require.PanicsWithValue(t, "hook", func() { _, _ = e.Pass(ctx, store, dns) })
		_, inflight, _ := dns.stats()
		assert.Zero(t, inflight, "Pass returned with calls in flight")
		st, err := e.Pass(ctx, store, dns)
		require.NoError(t, err)
		assert.Zero(t, st.Failed)
		for i := range n {
			rec, _ := dns.MemoryProvider.Read(ctx, epName(i))
			assert.Equal(t, fence.Token(1), rec.Generation)
		}
	})
}

// TestParallelPassEvents: with endpoints in flight at once, each
// endpoint's events come in order (its conflicts, then its write), the
// clean-up's after every endpoint's, and EventPassDone last; every
// endpoint gets at most MaxConflicts+1 refusals, and one refused every
// time is given up on alone (and keeps the plans naming it).
func TestParallelPassEvents(t *testing.T) {
	const n = 30
	store := &dnsplan.MemoryStore{}
	for g := fence.Token(1); g <= 6; g++ {
		require.NoError(t, store.Put(ctx, bigPlan(g, n, byte(g))))
	}
	stuck := epName(7)
	dns := &conflictingDNS{refuse: 2, always: map[string]bool{stuck: true}}
	var events []dnsplan.Event
	e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: 8, MaxConflicts: 3, Retention: 1, OnEvent: func(ev dnsplan.Event) { events = append(events, ev) }})
	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.PassStats{Generation: 6, Applied: n - 1, Failed: 1, Conflicts: 2*(n-1) + 4}, dnsplan.PassStats{
		Generation: st.Generation, Applied: st.Applied, Failed: st.Failed, Conflicts: st.Conflicts, Deleted: st.Deleted})
	require.ErrorIs(t, st.Err, fence.ErrStale)

	per := map[string][]dnsplan.EventKind{}
	endpointsDone := false
	for i, ev := range events {
		switch ev.Kind {
		case dnsplan.EventDeleted:
			endpointsDone = true
		case dnsplan.EventPassDone:
			assert.Equal(t, len(events)-1, i, "EventPassDone is last")
		default:
			assert.False(t, endpointsDone, "%v after clean-up started", ev)
			per[ev.Endpoint] = append(per[ev.Endpoint], ev.Kind)
		}
	}
	require.Len(t, per, n)
	for name, kinds := range per {
		want := []dnsplan.EventKind{dnsplan.EventConflict, dnsplan.EventConflict, dnsplan.EventApplied}
		if name == stuck {
			want = []dnsplan.EventKind{dnsplan.EventConflict, dnsplan.EventConflict, dnsplan.EventConflict, dnsplan.EventConflict, dnsplan.EventError}
		}
		assert.Equal(t, want, kinds, name)
	}
	gens, _ := store.List(ctx)
	assert.Equal(t, []fence.Token{1, 2, 3, 4, 5, 6}, gens, "every plan names the stuck endpoint, still at generation 0")
}

// TestPassAfterOnEventPanicsAtPassDone: an OnEvent that panics on
// EventPassDone leaves the pass over; the next Pass runs a whole new
// pass, with true statistics, and counts no deletion it did not make.
func TestPassAfterOnEventPanicsAtPassDone(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
		for g := fence.Token(1); g <= 5; g++ {
			require.NoError(t, store.Put(ctx, bigPlan(g, 6, byte(g))))
		}
		var events []dnsplan.Event
		panicked := false
		e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel, Retention: 1, OnEvent: func(ev dnsplan.Event) {
			events = append(events, ev)
			if ev.Kind == dnsplan.EventPassDone && !panicked {
				panicked = true
				panic("hook")
			}
		}})
		require.Panics(t, func() { _, _ = e.Pass(ctx, store, dns) })
		assert.Equal(t, dnsplan.PassStats{Generation: 5, Applied: 6, Deleted: 3}, e.LastPass())
		events = nil
		require.NoError(t, store.Put(ctx, bigPlan(6, 6, 6)))
		st, err := e.Pass(ctx, store, dns)
		require.NoError(t, err)
		assert.Equal(t, dnsplan.PassStats{Generation: 6, Applied: 6, Highest: 5, Deleted: 1}, st, "parallel %d: %v", parallel, events)
		gens, _ := store.List(ctx)
		assert.Equal(t, []fence.Token{5, 6}, gens)
	}
}

// panickyDNS panics in Read of one endpoint, once.
type panickyDNS struct {
	dnsplan.MemoryProvider
	ep       string
	mu       sync.Mutex
	panicked bool
}

func (d *panickyDNS) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	d.mu.Lock()
	p := ep == d.ep && !d.panicked
	d.panicked = d.panicked || p
	d.mu.Unlock()
	if p {
		panic("provider bug")
	}
	return d.MemoryProvider.Read(ctx, ep)
}

// TestPassProviderPanicsInASlot: a Provider that panics while other
// endpoints are in flight: the panic reaches the caller of Pass, as it
// does with one endpoint at a time, not the process; and the next Pass
// carries on.
func TestPassProviderPanicsInASlot(t *testing.T) {
	const n = 12
	store, dns := &dnsplan.MemoryStore{}, &panickyDNS{ep: epName(5)}
	require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
	e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: 4})
	require.PanicsWithValue(t, "provider bug", func() { _, _ = e.Pass(ctx, store, dns) })
	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Zero(t, st.Failed)
	for i := range n {
		rec, _ := dns.MemoryProvider.Read(ctx, epName(i))
		assert.Equal(t, fence.Token(1), rec.Generation, epName(i))
	}
}
