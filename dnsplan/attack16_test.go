package dnsplan_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"testing/synctest"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeliverActionRefusesAnAlteredAction: an action Ready handed out,
// then changed by the driver (another endpoint, op, generation or
// condition), was not handed out by Ready: its outcome is refused, and
// the Enactor is unchanged — the true outcome is still due.
func TestDeliverActionRefusesAnAlteredAction(t *testing.T) {
	const n = 4
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
	require.NoError(t, store.Put(ctx, bigPlan(5, n, 5)))
	e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: 2, Retention: 1})
	alter := map[string]func(*dnsplan.Action){
		"endpoint":   func(a *dnsplan.Action) { a.Endpoint += "x" },
		"op":         func(a *dnsplan.Action) { a.Op = (a.Op + 1) % (dnsplan.OpDeletePlan + 1) },
		"generation": func(a *dnsplan.Action) { a.Generation++ },
		"records":    func(a *dnsplan.Action) { a.Records.Generation++ },
		"expect":     func(a *dnsplan.Action) { a.Expect.Version += "x" },
	}
	out := e.Ready(nil)
	for steps := 0; len(out) > 0; steps++ {
		require.Less(t, steps, 200)
		a := out[0]
		out = out[1:]
		if a.Op == dnsplan.OpRest {
			break
		}
		for what, f := range alter {
			b := a
			f(&b)
			if reflect.DeepEqual(a, b) {
				continue
			}
			err := e.DeliverAction(b, dnsplan.Result{Err: errors.New("must not be delivered")})
			require.ErrorIs(t, err, dnsplan.ErrInvalidArgument, "%v with its %s altered to %v", a, what, b)
		}
		require.NoError(t, e.DeliverAction(a, dnsplan.Execute(ctx, a, store, dns)), a.String())
		out = e.Ready(out)
	}
	assert.Equal(t, dnsplan.PassStats{Generation: 5, Applied: n, Deleted: 1}, e.LastPass())
	for i := range n {
		rec, _ := dns.Read(ctx, epName(i))
		assert.Equal(t, fence.Token(5), rec.Generation)
	}
}

// blockingDNS blocks every Read until release is closed.
type blockingDNS struct {
	dnsplan.MemoryProvider
	release chan struct{}
}

func (d *blockingDNS) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	<-d.release
	return d.MemoryProvider.Read(ctx, ep)
}

// TestPassRefusesAConcurrentPass: an Enactor is not safe for concurrent
// use, but a second Pass (or Run) of one Enactor while another runs is
// refused with ErrInvalidArgument, at once, instead of driving the same
// state from two goroutines; the first Pass is unharmed.
func TestPassRefusesAConcurrentPass(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		synctest.Test(t, func(t *testing.T) {
			const n = 8
			store, dns := &dnsplan.MemoryStore{}, &blockingDNS{release: make(chan struct{})}
			require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
			e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel})
			first := make(chan error)
			go func() {
				_, err := e.Pass(ctx, store, dns)
				first <- err
			}()
			synctest.Wait()
			second := make(chan error, 2)
			go func() {
				_, err := e.Pass(ctx, store, dns)
				second <- err
			}()
			go func() { second <- e.Run(ctx, store, dns) }()
			synctest.Wait()
			for range 2 {
				select {
				case err := <-second:
					require.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
					assert.Contains(t, err.Error(), "already")
				default:
					close(dns.release)
					t.Fatalf("parallel %d: a second Pass or Run of the Enactor did not return at once", parallel)
				}
			}
			close(dns.release)
			require.NoError(t, <-first)
			assert.Equal(t, dnsplan.PassStats{Generation: 1, Applied: n}, e.LastPass())
			st, err := e.Pass(ctx, store, dns)
			require.NoError(t, err)
			assert.Equal(t, dnsplan.PassStats{Generation: 1, Current: n, Highest: 1}, st)
		})
	}
}

// TestPassAfterOnEventPanicsOnAnEndpoint: an OnEvent that panics on an
// endpoint's event leaves that endpoint done (its write landed and was
// counted, or its failure counted): the next Pass goes on with the
// others, and neither writes it again (a conflict) nor counts it twice.
// With several endpoints in flight, driven by Ready and DeliverAction,
// the outcomes of the others are still due after the panic.
func TestPassAfterOnEventPanicsOnAnEndpoint(t *testing.T) {
	const n = 8
	for _, kind := range []dnsplan.EventKind{dnsplan.EventApplied, dnsplan.EventNewer, dnsplan.EventError} {
		for _, parallel := range []int{1, 4} {
			for _, driver := range []string{"Pass", "Ready"} {
				if driver == "Pass" && parallel > 1 {
					continue // the outcomes in flight are dropped: conflicts
				}
				store, dns := &dnsplan.MemoryStore{}, &failingApply{bad: epName(6)}
				require.NoError(t, store.Put(ctx, bigPlan(1, n, 1)))
				// One endpoint is ahead of the plan.
				require.NoError(t, dns.MemoryProvider.Apply(ctx, epName(2), dnsplan.Records{}, dnsplan.Records{Generation: 9, Targets: bigPlan(9, n, 9).Endpoints[epName(2)]}))
				var events []dnsplan.Event
				panics := 0
				e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel, OnEvent: func(ev dnsplan.Event) {
					events = append(events, ev)
					if ev.Kind == kind && panics == 0 {
						panics++
						panic("hook")
					}
				}})
				var st dnsplan.PassStats
				if driver == "Pass" {
					require.PanicsWithValue(t, "hook", func() { _, _ = e.Pass(ctx, store, dns) })
					var err error
					st, err = e.Pass(ctx, store, dns)
					require.NoError(t, err)
				} else {
					out := e.Ready(nil)
					var results []dnsplan.Result
					for steps := 0; ; steps++ {
						require.Less(t, steps, 100)
						results = results[:0]
						for _, a := range out {
							results = append(results, dnsplan.Execute(ctx, a, store, dns))
						}
						if len(out) == 1 && out[0].Op == dnsplan.OpRest {
							break
						}
						for i, a := range out {
							func() {
								defer func() { _ = recover() }()
								require.NoError(t, e.DeliverAction(a, results[i]))
							}()
						}
						out = e.Ready(out[:0])
					}
					st = e.LastPass()
				}
				require.Equal(t, 1, panics)
				st.Err = nil
				assert.Equal(t, dnsplan.PassStats{Generation: 1, Applied: n - 2, Newer: 1, Failed: 1, Highest: 9}, st,
					"%v, parallel %d, %s: %v", kind, parallel, driver, events)
				per := map[string]int{}
				for _, ev := range events {
					if ev.Endpoint != "" {
						per[ev.Endpoint]++
					}
				}
				assert.Len(t, per, n)
				for name, k := range per {
					assert.Equal(t, 1, k, "%v, parallel %d, %s: %s has %d events", kind, parallel, driver, name, k)
				}
			}
		}
	}
}

// failingApply fails every Apply to bad.
type failingApply struct {
	dnsplan.MemoryProvider
	bad string
}

func (d *failingApply) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	if ep == d.bad {
		return errors.New("dns: SERVFAIL")
	}
	return d.MemoryProvider.Apply(ctx, ep, expect, r)
}
