package etcd

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/require"
)

var enactorEndpoints = []string{"dynamodb.us-east-1", "dynamodb-fips.us-east-1", "dynamodb.us-east-1.api.aws"}

// enactorPlan is a plan for enactorEndpoints from seed; one plan in four
// leaves the last endpoint out.
func enactorPlan(seed uint8) dnsplan.Plan {
	p := dnsplan.Plan{Endpoints: map[string][]dnsplan.Target{}}
	for j, name := range enactorEndpoints {
		if j == len(enactorEndpoints)-1 && seed%4 == 3 {
			continue
		}
		for k := range 1 + (int(seed)+j)%3 {
			a := netip.AddrFrom4([4]byte{10, byte(j), seed, byte(k + 1)})
			p.Endpoints[name] = append(p.Endpoints[name], dnsplan.Target{Addr: a, Weight: uint32(1 + k)})
		}
	}
	return p
}

// TestPlanStoreEnactors runs dnsplan.Enactor over the etcd PlanStore and a
// MemoryProvider as the 2025 system ran: a planner publishing, two
// enactors applying and cleaning up, and a third that stalls after reading
// an endpoint and before writing it, until the planner has moved on by
// several generations and the others have cleaned up, and then resumes.
// A monitor checks throughout that no endpoint's generation decreases,
// none is ever empty, and the plan an endpoint serves is never deleted
// while it serves it; at the end every endpoint serves the newest plan.
func TestPlanStoreEnactors(t *testing.T) {
	srv := etcdtest.Start(t)
	store := newPlanStore(t, srv.Client(t), PlanStoreConfig{MaxPlans: 64})
	dns := &dnsplan.MemoryProvider{}
	ctx := ctxT(t)
	var (
		published atomic.Uint64 // the newest generation published
		deleted   atomic.Int64
		stop      atomic.Bool
		wg        sync.WaitGroup
		errMu     sync.Mutex
		errs      []error
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	onEvent := func(ev dnsplan.Event) {
		if ev.Kind == dnsplan.EventDeleted {
			deleted.Add(1)
		}
	}
	publish := func(seed uint8) {
		g, err := store.Publish(ctx, enactorPlan(seed))
		require.NoError(t, err)
		published.Store(uint64(g))
	}
	publish(0)

	// The monitor.
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := map[string]fence.Token{}
		for !stop.Load() {
			for _, name := range enactorEndpoints {
				rec, err := dns.Read(ctx, name)
				if err != nil {
					fail(err)
					return
				}
				if rec.Generation < seen[name] {
					fail(fmt.Errorf("%s rolled back from generation %d to %d", name, seen[name], rec.Generation))
				}
				seen[name] = rec.Generation
				if rec.Generation == 0 {
					continue
				}
				if len(rec.Targets) == 0 {
					fail(fmt.Errorf("%s is empty at generation %d", name, rec.Generation))
				}
				_, err = store.Get(ctx, rec.Generation)
				again, _ := dns.Read(ctx, name)
				if errors.Is(err, dnsplan.ErrNotFound) && again.Version == rec.Version {
					fail(fmt.Errorf("the plan %d that %s serves was deleted", rec.Generation, name))
				} else if err != nil && !errors.Is(err, dnsplan.ErrNotFound) {
					fail(fmt.Errorf("Get(%d): %w", rec.Generation, err))
				}
			}
		}
	}()

	// Two enactors, each in a loop of passes.
	passes := [2]atomic.Int64{}
	for i := range 2 {
		e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: fmt.Sprintf("E%d", i), Retention: 1, Interval: 10 * time.Millisecond, OnEvent: onEvent})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := e.Pass(ctx, store, dns); err != nil {
					fail(err)
					return
				}
				passes[i].Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	// The stalled enactor, driven one action at a time.
	stalled, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "stalled", Retention: 1, OnEvent: onEvent})
	require.NoError(t, err)
	var stalledAt fence.Token
	var refused int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			a := stalled.Next()
			if a.Op == dnsplan.OpApply && stalledAt == 0 {
				// The 2025 stall: between the read and the write,
				// until the planner has moved on by five generations
				// and the other enactors have cleaned up after it.
				stalledAt = a.Records.Generation
				for published.Load() < uint64(stalledAt)+5 || deleted.Load() < 3 {
					if stop.Load() {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			r := dnsplan.Execute(ctx, a, store, dns)
			if a.Op == dnsplan.OpApply && errors.Is(r.Err, fence.ErrStale) {
				refused++
			}
			stalled.Deliver(r)
			if a.Op == dnsplan.OpRest {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()

	for seed := uint8(1); seed <= 20; seed++ {
		publish(seed)
		time.Sleep(20 * time.Millisecond)
	}
	// Let each enactor finish two more passes over the last plan.
	p0, p1 := passes[0].Load(), passes[1].Load()
	for passes[0].Load() < p0+2 || passes[1].Load() < p1+2 {
		require.NoError(t, ctx.Err())
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	require.NotZero(t, stalledAt, "the stalled enactor never reached an apply")
	require.NotZero(t, refused, "the stalled enactor's late write was not refused")
	latest, err := store.Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, fence.Token(published.Load()), latest.Generation)
	for name, want := range latest.Endpoints {
		rec, err := dns.Read(ctx, name)
		require.NoError(t, err)
		require.Equal(t, latest.Generation, rec.Generation, name)
		require.True(t, dnsplan.SameTargets(want, rec.Targets), name)
	}
	gens, err := store.List(ctx)
	require.NoError(t, err)
	t.Logf("stalled at plan %d, its late write refused %d times; %d plans deleted; %d held: %v", stalledAt, refused, deleted.Load(), len(gens), gens)
}
