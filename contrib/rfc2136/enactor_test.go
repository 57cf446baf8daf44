package rfc2136_test

import (
	"fmt"
	"testing"

	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// passes runs n passes of e and returns their stats and the events of
// each.
func passes(t *testing.T, n int, e *dnsplan.Enactor, events *[]dnsplan.Event, store dnsplan.Store, p dnsplan.Provider) ([]dnsplan.PassStats, [][]dnsplan.Event) {
	t.Helper()
	var stats []dnsplan.PassStats
	var evs [][]dnsplan.Event
	for range n {
		*events = nil
		st, err := e.Pass(ctx, store, p)
		require.NoError(t, err)
		stats = append(stats, st)
		evs = append(evs, *events)
	}
	return stats, evs
}

func planOf(g fence.Token, endpoints ...string) dnsplan.Plan {
	pl := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{}}
	for i, ep := range endpoints {
		pl.Endpoints[ep] = []dnsplan.Target{tg(fmt.Sprintf("10.%d.0.%d", i, g), uint32(g)), tg(fmt.Sprintf("2001:db8::%d:%d", i, g), 1)}
	}
	return pl
}

// TestEnactorRepairsCorruptWeights, end to end on BIND: an operator's
// note in an endpoint's weights TXT is repaired by the enactor's next
// pass, at the same generation and at a newer one, and clean-up goes on.
func TestEnactorRepairsCorruptWeights(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	store := &dnsplan.MemoryStore{}
	var events []dnsplan.Event
	e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "A", Retention: 1, OnEvent: func(ev dnsplan.Event) { events = append(events, ev) }})
	require.NoError(t, err)
	eps := []string{api, "web.dnsplan.test"}
	corrupt := func() {
		operator(t, s, nil, []string{`_dnsplan-weights.api.dnsplan.test. 30 IN TXT "ops: moved to rack 7"`})
		_, err := p.Read(ctx, api)
		require.ErrorIs(t, err, dnsplan.ErrCorruptRecords)
	}
	require.NoError(t, store.Put(ctx, planOf(1, eps...)))
	st, _ := passes(t, 1, e, &events, store, p)
	require.Equal(t, 2, st[0].Applied)

	corrupt()
	st, evs := passes(t, 1, e, &events, store, p)
	assert.Equal(t, dnsplan.PassStats{Generation: 1, Repaired: 1, Current: 1, Highest: 1}, st[0], "%v", evs[0])
	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.True(t, dnsplan.SameTargets(planOf(1, eps...).Endpoints[api], rec.Targets))

	for g := fence.Token(2); g <= 5; g++ {
		require.NoError(t, store.Put(ctx, planOf(g, eps...)))
	}
	corrupt()
	st, evs = passes(t, 1, e, &events, store, p)
	assert.Equal(t, 1, st[0].Applied, "web: %v", evs[0])
	assert.Equal(t, 1, st[0].Repaired, "api, corrupt, rewritten at the newer plan: %v", evs[0])
	assert.Zero(t, st[0].Failed, "%v", evs[0])
	assert.Equal(t, 3, st[0].Deleted, "plans 1 to 3: clean-up goes on")
	for _, ep := range eps {
		rec, err := p.Read(ctx, ep)
		require.NoError(t, err)
		assert.Equal(t, fence.Token(5), rec.Generation)
		assert.True(t, dnsplan.SameTargets(planOf(5, eps...).Endpoints[ep], rec.Targets), ep)
	}
}

// TestEnactorReportsNameInUse, end to end on BIND: an endpoint whose name
// holds an operator's CNAME (here from plan 5 on) is reported failed on
// every pass, with an error naming it that matches dnsplan.ErrNameInUse;
// it is never retried as a conflict; the CNAME stays; the other endpoint
// follows the plans; and clean-up goes on: the plans that do not name the
// failed endpoint are deleted.
func TestEnactorReportsNameInUse(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	store := &dnsplan.MemoryStore{}
	var events []dnsplan.Event
	e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "A", Retention: 1, OnEvent: func(ev dnsplan.Event) { events = append(events, ev) }})
	require.NoError(t, err)
	operator(t, s, nil, []string{"api.dnsplan.test. 60 IN CNAME lb.elsewhere.example."})
	web := "web.dnsplan.test"
	for g := fence.Token(1); g <= 6; g++ {
		pl := planOf(g, web)
		if g >= 5 {
			pl = planOf(g, web, api)
		}
		require.NoError(t, store.Put(ctx, pl))
	}
	st, evs := passes(t, 3, e, &events, store, p)
	for i := range st {
		assert.Equal(t, 1, st[i].Failed, "pass %d", i)
		assert.Zero(t, st[i].Conflicts, "pass %d: a CNAME is not a conflict", i)
		var failed []dnsplan.Event
		for _, ev := range evs[i] {
			if ev.Kind == dnsplan.EventError {
				failed = append(failed, ev)
			}
		}
		require.Len(t, failed, 1, "pass %d: %v", i, evs[i])
		assert.Equal(t, api, failed[0].Endpoint)
		assert.ErrorIs(t, failed[0].Err, dnsplan.ErrNameInUse)
		assert.Contains(t, failed[0].Err.Error(), "CNAME lb.elsewhere.example.")
	}
	assert.Equal(t, 1, st[0].Applied, "web: %v", evs[0])
	assert.Equal(t, 4, st[0].Deleted, "plans 1 to 4, which do not name api: %v", evs[0])
	assert.Equal(t, 1, st[1].Current, "web")
	gens, err := store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []fence.Token{5, 6}, gens)
	rec, err := p.Read(ctx, web)
	require.NoError(t, err)
	assert.Equal(t, fence.Token(6), rec.Generation)
	assert.Contains(t, zone(t, s), "api.dnsplan.test.\t60\tIN\tCNAME\tlb.elsewhere.example.")
}
