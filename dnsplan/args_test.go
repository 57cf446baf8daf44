package dnsplan_test

import (
	"context"
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

// TestNilArguments: a nil context, Store or Provider is an error matching
// ErrInvalidArgument that names the call and what was nil; never a panic,
// and nothing is read or written.
func TestNilArguments(t *testing.T) {
	var nilCtx context.Context
	var nilStore *dnsplan.MemoryStore
	var nilDNS *dnsplan.MemoryProvider
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
	recs := dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(1, 1)}}

	pass := func(c context.Context, s dnsplan.Store, p dnsplan.Provider) error {
		e := mustEnactor(t, dnsplan.EnactorConfig{})
		st, err := e.Pass(c, s, p)
		assert.Equal(t, dnsplan.PassStats{}, st)
		return err
	}
	run := func(c context.Context, s dnsplan.Store, p dnsplan.Provider) error {
		return mustEnactor(t, dnsplan.EnactorConfig{}).Run(c, s, p)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"Pass ctx", func() error { return pass(nilCtx, store, dns) }, "Enactor.Pass: nil context"},
		{"Pass store", func() error { return pass(ctx, nil, dns) }, "Enactor.Pass: nil Store"},
		{"Pass provider", func() error { return pass(ctx, store, nil) }, "Enactor.Pass: nil Provider"},
		{"Pass all", func() error { return pass(nilCtx, nil, nil) }, "Enactor.Pass: nil context, nil Store, nil Provider"},
		{"Pass typed nil store", func() error { return pass(ctx, nilStore, dns) }, "Enactor.Pass: nil Store"},
		{"Pass typed nil provider", func() error { return pass(ctx, store, nilDNS) }, "Enactor.Pass: nil Provider"},
		{"Run ctx", func() error { return run(nilCtx, store, dns) }, "Enactor.Run: nil context"},
		{"Run store", func() error { return run(ctx, nil, dns) }, "Enactor.Run: nil Store"},
		{"Run provider", func() error { return run(ctx, store, nil) }, "Enactor.Run: nil Provider"},
		{"Run typed nil", func() error { return run(ctx, nilStore, nilDNS) }, "Enactor.Run: nil Store, nil Provider"},

		{"MemoryProvider.Read ctx", func() error { _, err := dns.Read(nilCtx, "api"); return err }, "MemoryProvider.Read: nil context"},
		{"MemoryProvider.Apply ctx", func() error { return dns.Apply(nilCtx, "api", dnsplan.Records{}, recs) }, "MemoryProvider.Apply: nil context"},
		{"nil MemoryProvider.Read", func() error { _, err := nilDNS.Read(ctx, "api"); return err }, "MemoryProvider.Read: nil *MemoryProvider"},
		{"nil MemoryProvider.Apply", func() error { return nilDNS.Apply(ctx, "api", dnsplan.Records{}, recs) }, "MemoryProvider.Apply: nil *MemoryProvider"},

		{"MemoryStore.Put ctx", func() error { return store.Put(nilCtx, onePlan(2, tg(1, 1))) }, "MemoryStore.Put: nil context"},
		{"MemoryStore.Get ctx", func() error { _, err := store.Get(nilCtx, 1); return err }, "MemoryStore.Get: nil context"},
		{"MemoryStore.Latest ctx", func() error { _, err := store.Latest(nilCtx); return err }, "MemoryStore.Latest: nil context"},
		{"MemoryStore.Delete ctx", func() error { return store.Delete(nilCtx, 1) }, "MemoryStore.Delete: nil context"},
		{"MemoryStore.List ctx", func() error { _, err := store.List(nilCtx); return err }, "MemoryStore.List: nil context"},
		{"nil MemoryStore.Put", func() error { return nilStore.Put(ctx, onePlan(2, tg(1, 1))) }, "MemoryStore.Put: nil *MemoryStore"},
		{"nil MemoryStore.Get", func() error { _, err := nilStore.Get(ctx, 1); return err }, "MemoryStore.Get: nil *MemoryStore"},
		{"nil MemoryStore.Latest", func() error { _, err := nilStore.Latest(ctx); return err }, "MemoryStore.Latest: nil *MemoryStore"},
		{"nil MemoryStore.Delete", func() error { return nilStore.Delete(ctx, 1) }, "MemoryStore.Delete: nil *MemoryStore"},
		{"nil MemoryStore.List", func() error { _, err := nilStore.List(ctx); return err }, "MemoryStore.List: nil *MemoryStore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tc.call() })
			require.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
			assert.NotErrorIs(t, err, dnsplan.ErrInvalidConfig, "the arguments are wrong, not the configuration")
			assert.Equal(t, "dnsplan: invalid argument: "+tc.want, err.Error())
		})
	}
	gens, err := store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []fence.Token{1}, gens, "nothing put or deleted")
	assert.Empty(t, dns.Endpoints(), "nothing written")
}

// TestExecuteNilArguments: Execute refuses, in Result.Err, a nil context,
// and a nil Store or Provider that the action needs, and an unknown Op;
// it needs nothing for OpRest. It never panics.
func TestExecuteNilArguments(t *testing.T) {
	var nilCtx context.Context
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
	apply := dnsplan.Action{Op: dnsplan.OpApply, Endpoint: "api", Records: dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg(1, 1)}}}
	for _, tc := range []struct {
		a    dnsplan.Action
		want string // the nil arguments named when every argument is nil
	}{
		{dnsplan.Action{Op: dnsplan.OpLoadLatest}, "nil context, nil Store"},
		{dnsplan.Action{Op: dnsplan.OpListPlans}, "nil context, nil Store"},
		{dnsplan.Action{Op: dnsplan.OpLoadPlan, Generation: 1}, "nil context, nil Store"},
		{dnsplan.Action{Op: dnsplan.OpDeletePlan, Generation: 1}, "nil context, nil Store"},
		{dnsplan.Action{Op: dnsplan.OpRead, Endpoint: "api"}, "nil context, nil Provider"},
		{apply, "nil context, nil Provider"},
	} {
		t.Run(tc.a.Op.String(), func(t *testing.T) {
			var r dnsplan.Result
			require.NotPanics(t, func() { r = dnsplan.Execute(ctx, tc.a, nil, nil) })
			require.ErrorIs(t, r.Err, dnsplan.ErrInvalidArgument)
			require.NotPanics(t, func() { r = dnsplan.Execute(nilCtx, tc.a, nil, nil) })
			assert.EqualError(t, r.Err, "dnsplan: invalid argument: Execute "+tc.a.Op.String()+": "+tc.want)
			require.NotPanics(t, func() { r = dnsplan.Execute(nilCtx, tc.a, store, dns) })
			assert.EqualError(t, r.Err, "dnsplan: invalid argument: Execute "+tc.a.Op.String()+": nil context")
		})
	}
	// Each action needs only its own side.
	r := dnsplan.Execute(ctx, dnsplan.Action{Op: dnsplan.OpLoadLatest}, store, nil)
	require.NoError(t, r.Err)
	assert.Equal(t, fence.Token(1), r.Plan.Generation)
	require.NoError(t, dnsplan.Execute(ctx, apply, nil, dns).Err)

	assert.Equal(t, dnsplan.Result{}, dnsplan.Execute(nilCtx, dnsplan.Action{}, nil, nil), "OpRest does nothing")
	r = dnsplan.Execute(ctx, dnsplan.Action{Op: 99}, store, dns)
	assert.ErrorIs(t, r.Err, dnsplan.ErrInvalidArgument)
	assert.EqualError(t, r.Err, "dnsplan: invalid argument: Execute: unknown Op(99)")
}

// TestZeroEnactorIsNewEnactorWithDefaults: the zero Enactor asks for the
// same actions and reports the same statistics as NewEnactor with the zero
// config, through conflicts (DefaultMaxConflicts) and clean-up
// (DefaultRetention, DefaultMaxDeletes).
func TestZeroEnactorIsNewEnactorWithDefaults(t *testing.T) {
	var zero dnsplan.Enactor
	assert.Equal(t, "enactor", zero.Name())

	trace := func(e *dnsplan.Enactor) []string {
		store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
		for g := fence.Token(1); g <= dnsplan.DefaultMaxDeletes+10; g++ {
			require.NoError(t, store.Put(ctx, onePlan(g, tg(1, 1))))
		}
		var out []string
		conflicts := 0
		for range 1000 {
			a := e.Next()
			out = append(out, a.String())
			var r dnsplan.Result
			if a.Op == dnsplan.OpApply && conflicts < dnsplan.DefaultMaxConflicts {
				// Another writer got there first, every time but the last.
				conflicts++
				r.Err = &fence.StaleError{Op: fence.OpCompareAndSwap, Key: a.Endpoint, Have: a.Expect.Generation, Want: a.Expect.Generation}
			} else {
				r = dnsplan.Execute(ctx, a, store, dns)
			}
			e.Deliver(r)
			if a.Op == dnsplan.OpRest {
				break
			}
		}
		return append(out, e.Name(), fmt.Sprintf("%+v", e.LastPass()))
	}
	want := trace(mustEnactor(t, dnsplan.EnactorConfig{}))
	got := trace(&zero)
	assert.Equal(t, want, got)
	assert.Contains(t, want, "apply \"api\" 74 if 0")
	assert.Contains(t, want[len(want)-1], "Deleted:64", "DefaultMaxDeletes plans deleted")
}

// TestZeroEnactorRunPauses: Run on the zero Enactor pauses DefaultInterval
// between passes instead of spinning.
func TestZeroEnactorRunPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var e dnsplan.Enactor
		c, cancel := context.WithCancel(ctx)
		s := &timedStore{n: 3, cancel: cancel}
		err := e.Run(c, s, &dnsplan.MemoryProvider{})
		assert.ErrorIs(t, err, context.Canceled)
		require.Len(t, s.at, 3)
		for i := 1; i < len(s.at); i++ {
			assert.Equal(t, dnsplan.DefaultInterval, s.at[i].Sub(s.at[i-1]), "pause before pass %d", i+1)
		}
	})
}

// timedStore records when each pass starts (Latest), and cancels after n.
type timedStore struct {
	dnsplan.MemoryStore
	mu     sync.Mutex
	at     []time.Time
	n      int
	cancel context.CancelFunc
}

func (s *timedStore) Latest(ctx context.Context) (dnsplan.Plan, error) {
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	if len(s.at) == s.n {
		s.cancel()
	}
	s.mu.Unlock()
	return s.MemoryStore.Latest(ctx)
}

// TestZeroPlannerIsNewPlannerWithDefaults: the zero Planner makes the same
// plans, velocity control included, as NewPlanner with the zero config.
func TestZeroPlannerIsNewPlannerWithDefaults(t *testing.T) {
	reports := []dnsplan.Report{
		{"api": healthy(8, 10), "web": healthy(2, 1)},
		{"api": healthy(4, 10)}, // half of api fails: only a quarter may go
		{"api": healthy(4, 10), "web": {{Addr: addr(1), Capacity: 1}, {Addr: addr(2), Capacity: 1}}},
	}
	plans := func(p *dnsplan.Planner) []dnsplan.Plan {
		var out []dnsplan.Plan
		for i, r := range reports {
			var pl dnsplan.Plan
			var err error
			require.NotPanics(t, func() { pl, err = p.Next(t0.Add(time.Duration(i)*time.Minute), r) })
			require.NoError(t, err)
			out = append(out, pl)
		}
		return append(out, p.Last())
	}
	constructed, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
	require.NoError(t, err)
	want := plans(constructed)
	var zero dnsplan.Planner
	got := plans(&zero)
	assert.Equal(t, want, got)
	assert.Len(t, got[1].Endpoints["api"], 6, "DefaultMaxRemoveFraction of 80: two of four removals held")
	assert.Len(t, got[2].Endpoints["web"], 2, "fail static")
}
