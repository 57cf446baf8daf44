package stormotel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/shed"
)

// names lists the stormguard.name values of metric's data points.
func names(t testing.TB, r *sdkmetric.ManualReader, metric string) map[string]bool {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Error(err)
		return nil
	}
	out := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != metric {
				continue
			}
			if d, ok := mt.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range d.DataPoints {
					v, _ := dp.Attributes.Value(AttrName)
					out[v.AsString()] = true
				}
			}
		}
	}
	return out
}

// TestConcurrentRegisterUnregisterCollect: goroutines register, collect
// and unregister queues (some under one shared name) while others collect
// and use the queues. A registration is seen by a collection that starts
// after Register returns, never by one that starts after Unregister
// returns; a shared name is refused with ErrDuplicate while taken, never
// registered twice.
func TestConcurrentRegisterUnregisterCollect(t *testing.T) {
	m, r := newMeter(t)
	metric := shedPrefix(kindQueue) + ".inflight"
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	for range 2 {
		bg.Go(func() {
			for ctx.Err() == nil {
				if q.TryAcquire() {
					q.Release()
				}
				names(t, r, metric)
			}
		})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sharedHeld := 0
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				own := fmt.Sprintf("g%d-%d", g, i)
				reg, err := m.RegisterQueue(own, q)
				if err != nil {
					t.Error(err)
					return
				}
				if !names(t, r, metric)[own] {
					t.Errorf("%s not reported after Register", own)
				}
				shared, err := m.RegisterQueue("shared", q)
				switch {
				case err == nil:
					mu.Lock()
					sharedHeld++
					if sharedHeld != 1 {
						t.Errorf("shared registered %d times at once", sharedHeld)
					}
					mu.Unlock()
				case !errors.Is(err, ErrDuplicate):
					t.Error(err)
				}
				if err := reg.Unregister(); err != nil {
					t.Error(err)
				}
				if names(t, r, metric)[own] {
					t.Errorf("%s reported after Unregister", own)
				}
				if shared != nil {
					mu.Lock()
					sharedHeld--
					mu.Unlock()
					if err := shared.Unregister(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	cancel()
	bg.Wait()
	if got := names(t, r, metric); len(got) != 0 {
		t.Errorf("still reported after every Unregister: %v", got)
	}
}

// TestManyKeysBounded: a Partition with thousands of live keys exports
// the listed keys only, plus the aggregate, and a key list above the bound
// is refused with the numbers.
func TestManyKeysBounded(t *testing.T) {
	m, r := newMeter(t, WithMaxKeys(3))
	p, err := shed.NewPartition(shed.PartitionConfig[int]{Total: 1 << 20, PerKey: 1, MaxKeys: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 5000 {
		p.TryAcquire(k)
	}
	if _, err := RegisterPartition(m, "big", p, []int{1, 2, 3, 4}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("4 keys over a bound of 3: %v", err)
	} else {
		t.Log(err)
	}
	if _, err := RegisterPartition(m, "big", p, []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	got := collect(t, r)
	if n := len(got[shedPrefix(kindPartitionKey)+".inflight"]); n != 3 {
		t.Errorf("per-key series: %d, want 3", n)
	}
	if v := got[shedPrefix(kindPartition)+".inflight"][enc(attribute.NewSet(name("big")))].value; v != 5000 {
		t.Errorf("aggregate inflight %v, want 5000", v)
	}
	total := 0
	for _, pts := range got {
		total += len(pts)
	}
	// 3 keys and the aggregate, 13 series each (4 plus 9 reasons).
	if total != 4*13 {
		t.Errorf("%d series in all, want %d", total, 4*13)
	}
}

// TestHotPathUnchanged: a registered primitive, collected from, allocates
// on its hot path exactly what an unregistered one does (nothing), because
// registration adds no hook to it. (AllocsPerRun counts the whole
// process's allocations, so the collections run between the measurements,
// not during them; the race tests cover collections during calls.)
func TestHotPathUnchanged(t *testing.T) {
	m, r := newMeter(t)
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 4})
	bu, _ := backoff.NewBudget(backoff.BudgetConfig{})
	br, _ := backoff.NewBreaker(backoff.BreakerConfig{})
	ops := func() {
		if q.TryAcquire() {
			q.Release()
		}
		bu.Deposit()
		bu.Withdraw()
		if tk, err := br.Allow(); err == nil {
			br.Record(tk, nil)
		}
	}
	before := testing.AllocsPerRun(1000, ops)
	must[*Registration](t)(m.RegisterQueue("q", q))
	must[*Registration](t)(m.RegisterBudget("b", bu))
	must[*Registration](t)(m.RegisterBreaker("br", br))
	collect(t, r)
	after := testing.AllocsPerRun(1000, ops)
	collect(t, r)
	if before != 0 || after != before {
		t.Errorf("allocations per call: %v unregistered, %v registered; want 0 and 0", before, after)
	}
}

// BenchmarkHotPath compares the primitives' hot paths unregistered,
// registered, and registered with a reader collecting every 10ms (as a
// scraper would, far more often): the first two should match within
// noise, since registering adds nothing to the primitive; the third pays
// only for the CPU the collections take from the 2 cores.
func BenchmarkHotPath(b *testing.B) {
	for _, mode := range []string{"unregistered", "registered", "collecting"} {
		b.Run(mode, func(b *testing.B) {
			q, _ := shed.NewQueue(shed.QueueConfig{Workers: 1 << 20})
			bu, _ := backoff.NewBudget(backoff.BudgetConfig{})
			if mode != "unregistered" {
				m, r := newMeter(b)
				must[*Registration](b)(m.RegisterQueue("q", q))
				must[*Registration](b)(m.RegisterBudget("b", bu))
				if mode == "collecting" {
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan struct{})
					go func() {
						defer close(done)
						tick := time.NewTicker(10 * time.Millisecond)
						defer tick.Stop()
						for {
							select {
							case <-ctx.Done():
								return
							case <-tick.C:
								collect(b, r)
							}
						}
					}()
					defer func() { cancel(); <-done }()
				}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if q.TryAcquire() {
						q.Release()
					}
					bu.Deposit()
				}
			})
		})
	}
}

// BenchmarkCollect is the cost of one collection of 100 registered
// queues, paid by the reader, not by the primitives.
func BenchmarkCollect(b *testing.B) {
	m, r := newMeter(b)
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 4})
	for i := range 100 {
		must[*Registration](b)(m.RegisterQueue(fmt.Sprint("q", i), q))
	}
	var rm metricdata.ResourceMetrics
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Collect(context.Background(), &rm); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMonotonicUnderChurnTwoReaders: while one goroutine keeps opening,
// removing and re-making a key's breaker, two readers of one provider
// collect at once; neither ever sees the key's refused or transitions
// counter fall.
func TestMonotonicUnderChurnTwoReaders(t *testing.T) {
	r1, r2 := sdkmetric.NewManualReader(), sdkmetric.NewManualReader()
	m, err := New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r1), sdkmetric.WithReader(r2)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := backoff.BreakerConfig{WindowCalls: 4, MinCalls: 2, FailureRate: 0.5, OpenWait: time.Hour}
	bs, err := backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RegisterBreakers(m, "hosts", bs, []string{"h1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var churn, readers sync.WaitGroup
	churn.Go(func() {
		boom := errors.New("boom")
		for i := 0; ctx.Err() == nil; i++ {
			if tk, err := bs.Allow("h1"); err == nil {
				bs.Record(tk, boom)
			}
			if i%7 == 6 {
				bs.Remove("h1")
			}
		}
	})
	attrs := enc(attribute.NewSet(name("hosts"), key("h1")))
	for _, r := range []*sdkmetric.ManualReader{r1, r2} {
		readers.Go(func() {
			var prevRefused, prevTrans float64
			for range 300 {
				got := collect(t, r)
				refused, ok := got[breakerPrefix+".refused"][attrs]
				if !ok {
					continue // removed at that instant
				}
				trans := got[breakerPrefix+".transitions"][attrs]
				if refused.value < prevRefused || trans.value < prevTrans {
					t.Errorf("counter fell: refused %v -> %v, transitions %v -> %v", prevRefused, refused.value, prevTrans, trans.value)
					return
				}
				prevRefused, prevTrans = refused.value, trans.value
			}
		})
	}
	readers.Wait()
	cancel()
	churn.Wait()
}
