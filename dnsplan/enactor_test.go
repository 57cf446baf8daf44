package dnsplan_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var ctx = context.Background()

func mustEnactor(t *testing.T, cfg dnsplan.EnactorConfig) *dnsplan.Enactor {
	t.Helper()
	e, err := dnsplan.NewEnactor(cfg)
	require.NoError(t, err)
	return e
}

func onePlan(g fence.Token, targets ...dnsplan.Target) dnsplan.Plan {
	return dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{"api": targets}}
}

func TestNewEnactorReportsEveryBadField(t *testing.T) {
	_, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Retention: -1, MaxConflicts: -2, MaxDeletes: -3, Interval: -4})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	for _, w := range []string{"Retention -1", "MaxConflicts -2", "MaxDeletes -3", "Interval -4"} {
		assert.Contains(t, err.Error(), w)
	}
	e := mustEnactor(t, dnsplan.EnactorConfig{})
	assert.Equal(t, "enactor", e.Name())
	assert.Equal(t, dnsplan.OpLoadLatest, e.Next().Op)
	_, err = e.Pass(ctx, nil, &dnsplan.MemoryProvider{})
	assert.ErrorIs(t, err, dnsplan.ErrInvalidArgument, "a nil Store is a bad argument, not a bad config (see TestNilArguments)")
	assert.ErrorIs(t, e.Run(ctx, &dnsplan.MemoryStore{}, nil), dnsplan.ErrInvalidArgument)
}

func TestPassAppliesAndCleansUp(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	var events []dnsplan.Event
	e := mustEnactor(t, dnsplan.EnactorConfig{Retention: 1, OnEvent: func(ev dnsplan.Event) { events = append(events, ev) }})

	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Zero(t, st.Generation, "an empty store is nothing to do")

	for g := fence.Token(1); g <= 5; g++ {
		require.NoError(t, store.Put(ctx, onePlan(g, tg(int(g), 1))))
	}
	st, err = e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.PassStats{Generation: 5, Applied: 1, Deleted: 3}, st)
	gens, _ := store.List(ctx)
	assert.Equal(t, []fence.Token{4, 5}, gens, "plans 1-3 are below floor 5 - retention 1")
	rec, _ := dns.Read(ctx, "api")
	rec.Version = "" // compared by content
	assert.Equal(t, dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg(5, 1)}}, rec)

	st, err = e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.PassStats{Generation: 5, Current: 1, Highest: 5}, st)
	assert.Equal(t, st, e.LastPass())
	assert.Equal(t, dnsplan.EventPassDone, events[0].Kind)
	assert.Equal(t, dnsplan.EventApplied, events[1].Kind)
}

// The stuck state of 2025, by hand: the live plan is deleted and the
// endpoint is empty. The next pass repairs it with no operator.
func TestSelfRepairOfDeletedLivePlanAndEmptyRecords(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
	require.NoError(t, store.Put(ctx, onePlan(2, tg(2, 1))))
	dns.Set("api", dnsplan.Records{Generation: 1}) // plan 1 live but empty...
	require.NoError(t, store.Delete(ctx, 1))       // ...and deleted
	var kinds []dnsplan.EventKind
	e := mustEnactor(t, dnsplan.EnactorConfig{OnEvent: func(ev dnsplan.Event) { kinds = append(kinds, ev.Kind) }})
	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Repaired)
	rec, _ := dns.Read(ctx, "api")
	assert.Equal(t, fence.Token(2), rec.Generation)
	assert.Contains(t, kinds, dnsplan.EventRepaired)

	// Same generation, damaged records: rewritten.
	dns.Set("api", dnsplan.Records{Generation: 2, Targets: []dnsplan.Target{tg(9, 9)}})
	st, err = e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Repaired)
	rec, _ = dns.Read(ctx, "api")
	assert.Equal(t, []dnsplan.Target{tg(2, 1)}, rec.Targets)
}

func TestNeverWritesOlderOrEmpty(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, dnsplan.Plan{Generation: 3, Endpoints: map[string][]dnsplan.Target{
		"api": {tg(1, 1)}, "web": {tg(2, 1)}}}))
	dns.Set("web", dnsplan.Records{Generation: 6, Targets: []dnsplan.Target{tg(6, 1)}}) // newer than any plan
	dns.Set("empty", dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(1, 1)}})
	var kinds []dnsplan.EventKind
	e := mustEnactor(t, dnsplan.EnactorConfig{OnEvent: func(ev dnsplan.Event) { kinds = append(kinds, ev.Kind) }})
	_, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	rec, _ := dns.Read(ctx, "web")
	rec.Version = "" // compared by content
	assert.Equal(t, dnsplan.Records{Generation: 6, Targets: []dnsplan.Target{tg(6, 1)}}, rec, "never older")
	assert.Contains(t, kinds, dnsplan.EventNewer)

	// A plan that allows an empty endpoint: the endpoint is left alone.
	s2, err := dnsplan.NewMemoryStore(dnsplan.MemoryStoreConfig{Limits: dnsplan.Limits{AllowEmpty: true}})
	require.NoError(t, err)
	require.NoError(t, s2.Put(ctx, dnsplan.Plan{Generation: 2, Endpoints: map[string][]dnsplan.Target{"empty": nil}}))
	_, err = e.Pass(ctx, s2, dns)
	require.NoError(t, err)
	rec, _ = dns.Read(ctx, "empty")
	assert.Equal(t, []dnsplan.Target{tg(1, 1)}, rec.Targets, "never empty")
}

// TestRepairAfterTheStoreLostPlans: the Store lost every plan up to an
// endpoint's generation (7) and the endpoint is empty. The enactor writes
// the newest plan it has (3) under generation 7, conditioned on 7, so DNS
// answers again and the generation never goes back; a planner restarted
// above PassStats.Highest then publishes plans the endpoints accept.
func TestRepairAfterTheStoreLostPlans(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, onePlan(3, tg(1, 1))))
	dns.Set("api", dnsplan.Records{Generation: 7}) // empty, newer than any plan
	var events []dnsplan.Event
	e := mustEnactor(t, dnsplan.EnactorConfig{OnEvent: func(ev dnsplan.Event) { events = append(events, ev) }})
	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.PassStats{Generation: 3, Repaired: 1, Highest: 7}, st)
	rec, _ := dns.Read(ctx, "api")
	rec.Version = "" // compared by content
	assert.Equal(t, dnsplan.Records{Generation: 7, Targets: []dnsplan.Target{tg(1, 1)}}, rec)
	assert.Contains(t, events, dnsplan.Event{Kind: dnsplan.EventRepaired, Enactor: e.Name(), Endpoint: "api", Generation: 7, Have: 7})
	gens, err := store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []fence.Token{3}, gens, "the newest plan left is never cleaned up")

	// Nothing more to do on the next pass: the endpoint is served, newer.
	st, err = e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Newer)
	assert.Zero(t, st.Repaired)

	// A planner restarted on the Store's latest plan would emit plan 4,
	// which every endpoint refuses as older; resumed above Highest it
	// emits 8, which is applied.
	latest, err := store.Latest(ctx)
	require.NoError(t, err)
	latest.Generation = max(latest.Generation, st.Highest)
	p, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{Previous: &latest})
	require.NoError(t, err)
	next, err := p.Next(time.Unix(1_700_000_000, 0), dnsplan.Report{"api": {{Addr: addr(2), Capacity: 1, Healthy: true}}})
	require.NoError(t, err)
	assert.Equal(t, fence.Token(8), next.Generation)
	require.NoError(t, store.Put(ctx, next))
	st, err = e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Applied)
	assert.Contains(t, next.Endpoints["api"], tg(2, 1))
	rec, _ = dns.Read(ctx, "api")
	rec.Version = "" // compared by content
	assert.Equal(t, dnsplan.Records{Generation: 8, Targets: next.Endpoints["api"]}, rec)
}

// flaky refuses every apply as stale, or fails every read.
type flaky struct {
	dnsplan.MemoryProvider
	readErr error
}

func (f *flaky) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	if f.readErr != nil {
		return dnsplan.Records{}, f.readErr
	}
	return f.MemoryProvider.Read(ctx, ep)
}

func (f *flaky) Apply(context.Context, string, dnsplan.Records, dnsplan.Records) error {
	return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: "api", Have: 99}
}

func TestConflictsAndErrorsSkipCleanup(t *testing.T) {
	store := &dnsplan.MemoryStore{}
	for g := fence.Token(1); g <= 6; g++ {
		require.NoError(t, store.Put(ctx, onePlan(g, tg(1, 1))))
	}
	e := mustEnactor(t, dnsplan.EnactorConfig{MaxConflicts: 2})
	st, err := e.Pass(ctx, store, &flaky{})
	require.NoError(t, err)
	assert.Equal(t, 3, st.Conflicts)
	assert.Equal(t, 1, st.Failed)
	assert.ErrorIs(t, st.Err, fence.ErrStale)
	assert.Contains(t, st.Err.Error(), "gave up on \"api\" after 3 conflicts")
	boom := errors.New("boom")
	st, err = e.Pass(ctx, store, &flaky{readErr: boom})
	require.NoError(t, err)
	assert.ErrorIs(t, st.Err, boom)
	gens, _ := store.List(ctx)
	assert.Len(t, gens, 6, "api, never read successfully at a generation, keeps every plan naming it")
}

func TestPassHonoursCancellation(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
	c, cancel := context.WithCancel(ctx)
	cancel()
	e := mustEnactor(t, dnsplan.EnactorConfig{})
	_, err := e.Pass(c, store, dns)
	assert.ErrorIs(t, err, context.Canceled)
	st, err := e.Pass(ctx, store, dns)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Applied)
}

// Run passes every Interval until cancelled; synctest makes the minutes
// instant.
func TestRunLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
		var mu sync.Mutex
		passes := 0
		e := mustEnactor(t, dnsplan.EnactorConfig{Interval: time.Minute, OnEvent: func(ev dnsplan.Event) {
			if ev.Kind == dnsplan.EventPassDone {
				mu.Lock()
				passes++
				mu.Unlock()
			}
		}})
		c, cancel := context.WithCancel(ctx)
		done := make(chan error)
		// Put before Run: a plan put after the first pass would start
		// another at once (the store is a Watcher).
		require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
		go func() { done <- e.Run(c, store, dns) }()
		time.Sleep(150 * time.Second)
		synctest.Wait()
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
		mu.Lock()
		assert.Equal(t, 3, passes, "passes at 0, 1m and 2m")
		mu.Unlock()
		rec, _ := dns.Read(ctx, "api")
		assert.Equal(t, fence.Token(1), rec.Generation)
	})
}

// Many enactors in real goroutines against one store and DNS, with a
// planner publishing: the race detector and the invariants both hold.
func TestConcurrentEnactorsStress(t *testing.T) {
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	c, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 6 {
		e := mustEnactor(t, dnsplan.EnactorConfig{Interval: time.Millisecond, Retention: 1})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = e.Run(c, store, dns)
			_ = i
		}()
	}
	var maxSeen fence.Token
	for g := fence.Token(1); g <= 200; g++ {
		require.NoError(t, store.Put(ctx, planFor(g, uint8(g))))
		for _, name := range raceEndpoints {
			rec, _ := dns.Read(ctx, name)
			if rec.Generation != 0 && len(rec.Targets) == 0 {
				t.Fatalf("%s empty", name)
			}
		}
		rec, _ := dns.Read(ctx, raceEndpoints[0])
		require.GreaterOrEqual(t, rec.Generation, maxSeen)
		maxSeen = rec.Generation
	}
	require.Eventually(t, func() bool {
		rec, _ := dns.Read(ctx, raceEndpoints[2])
		return rec.Generation == 200
	}, 5*time.Second, time.Millisecond)
	cancel()
	wg.Wait()
}

func TestStoreAndProviderEdges(t *testing.T) {
	_, err := dnsplan.NewMemoryStore(dnsplan.MemoryStoreConfig{MaxPlans: -1, Limits: dnsplan.Limits{MaxTargets: -1}})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "MaxPlans -1")
	assert.Contains(t, err.Error(), "MaxTargets -1")

	s, err := dnsplan.NewMemoryStore(dnsplan.MemoryStoreConfig{MaxPlans: 2})
	require.NoError(t, err)
	_, err = s.Latest(ctx)
	assert.ErrorIs(t, err, dnsplan.ErrNotFound)
	require.NoError(t, s.Put(ctx, onePlan(2, tg(1, 1))))
	err = s.Put(ctx, onePlan(2, tg(1, 1)))
	assert.ErrorIs(t, err, fence.ErrStale)
	require.NoError(t, s.Put(ctx, onePlan(3, tg(1, 1))))
	assert.ErrorIs(t, s.Put(ctx, onePlan(4, tg(1, 1))), dnsplan.ErrFull)
	require.NoError(t, s.Delete(ctx, 3))
	assert.ErrorIs(t, s.Put(ctx, onePlan(3, tg(1, 1))), fence.ErrStale, "a deleted generation is never reused")
	assert.ErrorIs(t, s.Delete(ctx, 3), dnsplan.ErrNotFound)
	_, err = s.Get(ctx, 3)
	assert.ErrorIs(t, err, dnsplan.ErrNotFound)
	p, err := s.Get(ctx, 2)
	require.NoError(t, err)
	p.Endpoints["api"][0].Weight = 42 // a copy
	p, _ = s.Get(ctx, 2)
	assert.EqualValues(t, 1, p.Endpoints["api"][0].Weight)
	assert.ErrorIs(t, s.Put(ctx, dnsplan.Plan{}), dnsplan.ErrInvalidPlan)

	var m dnsplan.MemoryProvider
	err = m.Apply(ctx, "api", dnsplan.Records{}, dnsplan.Records{Generation: 1})
	assert.ErrorIs(t, err, dnsplan.ErrEmptyRecords)
	require.NoError(t, m.Apply(ctx, "api", dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(2, 1), tg(1, 1)}}))
	err = m.Apply(ctx, "api", dnsplan.Records{}, dnsplan.Records{Generation: 2, Targets: []dnsplan.Target{tg(1, 1)}})
	var stale *fence.StaleError
	require.ErrorAs(t, err, &stale)
	assert.Equal(t, fence.Token(1), stale.Have)
	rec, _ := m.Read(ctx, "api")
	assert.Equal(t, []dnsplan.Target{tg(1, 1), tg(2, 1)}, rec.Targets, "sorted")
	assert.NotEmpty(t, rec.Version)

	// The same generation, written again since it was read: the stale
	// writer's condition names a write that was replaced.
	first := rec
	require.NoError(t, m.Apply(ctx, "api", first, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(3, 1)}}))
	err = m.Apply(ctx, "api", first, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(4, 1)}})
	var conflict *dnsplan.VersionConflictError
	require.ErrorAs(t, err, &conflict)
	assert.ErrorIs(t, err, fence.ErrStale)
	require.ErrorAs(t, err, &stale)
	assert.Equal(t, fence.Token(1), stale.Have)
	rec, _ = m.Read(ctx, "api")
	assert.Equal(t, []dnsplan.Target{tg(3, 1)}, rec.Targets, "the second write of generation 1 did not land")
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err = m.Read(c, "api")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []string{"api"}, m.Endpoints())
}
