package shed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// realZoneRun drives a real Partition (Total 24, cap 12 per zone, 64
// waiting per zone) on synctest's virtual clock: three zones, each with a
// dependency of 8 servers at 5–15ms, each offered 2× that capacity
// (1,600 calls/s) with deadlines of 100–500ms. From slowAt (if positive)
// zone 2's service times grow tenfold. It returns each zone's goodput
// (service time of calls finished within their deadline ÷ the zone's
// capacity, the slow zone's counted in its healthy units over its reduced
// capacity) over [from, d).
func realZoneRun(t *testing.T, a *AdaptiveConfig, d, from, slowAt time.Duration) (g [3]float64, limits [3]int) {
	p, err := NewPartition(PartitionConfig[int]{Total: 24, PerKey: 12, MaxQueuePerKey: 64, Adaptive: a})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var mu sync.Mutex
	var good [3]time.Duration
	var wg sync.WaitGroup
	for z := range 3 {
		servers := make(chan struct{}, 8)
		rng := rand.New(rand.NewPCG(uint64(z+1), 17))
		wg.Go(func() {
			for {
				time.Sleep(time.Duration(rng.ExpFloat64() / 1600 * float64(time.Second)))
				now := time.Since(start)
				if now >= d {
					return
				}
				svc := 5*time.Millisecond + time.Duration(rng.Int64N(int64(10*time.Millisecond)))
				if z == 2 && slowAt > 0 && now >= slowAt {
					svc *= 10
				}
				deadline := 100*time.Millisecond + time.Duration(rng.Int64N(int64(400*time.Millisecond)))
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), deadline)
					defer cancel()
					_ = p.Do(ctx, z, func(ctx context.Context) error {
						select {
						case servers <- struct{}{}:
						case <-ctx.Done():
							return ctx.Err()
						}
						time.Sleep(svc) // the server finishes what it started
						<-servers
						if ctx.Err() != nil {
							return ctx.Err()
						}
						// Credit the service time that falls in [from, d),
						// in units of the zone's healthy service time.
						if end := time.Since(start); end >= from && end < d {
							credit := min(svc, end-from)
							if svc > 15*time.Millisecond {
								credit /= 10
							}
							mu.Lock()
							good[z] += credit
							mu.Unlock()
						}
						return nil
					})
				})
			}
		})
	}
	wg.Wait()
	for z := range 3 {
		capacity := 8 * (d - from).Seconds()
		if z == 2 && slowAt > 0 && slowAt <= from {
			capacity /= 10 // of its reduced capacity
		}
		g[z] = good[z].Seconds() / capacity
		limits[z], _ = p.LimitFor(z)
	}
	return g, limits
}

// TestAdaptivePartitionRealZones drives the real Partition (not a model of
// its admission) in three zones. Adaptive limits per zone that may sum
// above Total (cap 12, Total 24) must not let a zone hold 12 slots, 4 of
// them queued at its dependency, while another zone's servers idle (89%
// of capacity before any fault when a full pool granted freed slots in
// arrival order across keys): every zone keeps its capacity before a
// fault, with the cap or with Adaptive.MaxLimit at the zone's share of
// Total (8), and the healthy zones keep theirs while one zone slows
// tenfold and its limit shrinks.
func TestAdaptivePartitionRealZones(t *testing.T) {
	const d, from = 4 * time.Second, time.Second
	var b strings.Builder
	b.WriteString("| front | phase | zone a | zone b | zone c | limits |\n|---|---|---:|---:|---:|---|\n")
	row := func(name, phase string, g [3]float64, l [3]int) {
		fmt.Fprintf(&b, "| %s | %s | %.1f%% | %.1f%% | %.1f%% | %v |\n", name, phase, 100*g[0], 100*g[1], 100*g[2], l)
	}
	synctest.Test(t, func(t *testing.T) {
		g, l := realZoneRun(t, nil, d, from, from)
		row("fixed caps of 12", "zone c slow", g, l)
	})
	synctest.Test(t, func(t *testing.T) {
		g, l := realZoneRun(t, &AdaptiveConfig{MinLimit: 1, InitialLimit: 8}, d, from, 0)
		row("adaptive, MaxLimit = cap 12", "healthy", g, l)
		for z, v := range g {
			assert.GreaterOrEqual(t, v, 0.97, "zone %d before any fault, limits summing above Total", z)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		g, l := realZoneRun(t, &AdaptiveConfig{MinLimit: 1, InitialLimit: 8}, d, from, from)
		row("adaptive, MaxLimit = cap 12", "zone c slow", g, l)
		assert.GreaterOrEqual(t, g[0], 0.95, "healthy zone a while zone c is slow")
		assert.GreaterOrEqual(t, g[1], 0.95, "healthy zone b while zone c is slow")
		assert.Less(t, l[2], 8, "the slow zone's limit shrinks")
	})
	synctest.Test(t, func(t *testing.T) {
		g, l := realZoneRun(t, &AdaptiveConfig{MinLimit: 1, InitialLimit: 8, MaxLimit: 8}, d, from, 0)
		row("adaptive, MaxLimit = share 8", "healthy", g, l)
		for z, v := range g {
			assert.GreaterOrEqual(t, v, 0.97, "zone %d before any fault, MaxLimit at the zone's share", z)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		g, l := realZoneRun(t, &AdaptiveConfig{MinLimit: 1, InitialLimit: 8, MaxLimit: 8}, d, from, from)
		row("adaptive, MaxLimit = share 8", "zone c slow", g, l)
		assert.GreaterOrEqual(t, g[0], 0.95, "healthy zone a while zone c is slow")
		assert.GreaterOrEqual(t, g[1], 0.95, "healthy zone b while zone c is slow")
		assert.Less(t, l[2], 8, "the slow zone's limit shrinks")
	})
	t.Logf("\n%s", b.String())
}

// A slot freed in a full pool goes to the waiting key with the fewest
// calls in flight, not to the waiter that arrived first: key "a" holds two
// slots and its waiter came first, key "b" holds none after its release.
func TestPartitionFullPoolGrantsFewestInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := NewPartition(PartitionConfig[string]{Total: 3, PerKey: 3, MaxQueuePerKey: 4})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, k := range []string{"a", "a", "b"} {
			assert.NoError(t, p.Acquire(ctx, k))
		}
		got := make(chan string, 2)
		for _, k := range []string{"a", "b"} {
			go func() {
				if p.Acquire(ctx, k) == nil {
					got <- k
				}
			}()
			synctest.Wait() // "a" waits first
		}
		p.Release("b")
		synctest.Wait()
		assert.Equal(t, "b", <-got, "the freed slot goes to the key with none in flight")
		p.Release("a")
		synctest.Wait()
		assert.Equal(t, "a", <-got)
		p.Release("a")
		p.Release("a")
		p.Release("b")
	})
}
