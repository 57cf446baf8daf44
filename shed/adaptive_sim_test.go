package shed

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The adaptive simulations put a front (a Queue's Scheduler, or a model of
// a Partition) before a dependency that queues what it cannot serve: it
// has some servers, each serving one call at a time in the call's service
// time, and an unbounded FIFO queue of its own in front of them. A front
// whose limit is above the dependency's servers only moves the queue into
// the dependency, where no deadline, priority or CoDel applies; a limit
// that learns the servers keeps the queue in front, where they do.

// simEvent is a completion at a dependency, or a change of its servers.
type simEvent struct {
	at   time.Time
	seq  int
	zone int
	req  int32 // -1: the dependency's servers change to servers
	n    int
}

type simEvents []simEvent

func (h simEvents) Len() int { return len(h) }
func (h simEvents) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h simEvents) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *simEvents) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *simEvents) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// simDep is one dependency: servers serving in FIFO order.
type simDep struct {
	servers, busy int
	slow          float64 // service-time multiplier
	fifo          []int32
	head          int
}

// simZoneReq is a request of one zone.
type simZoneReq struct {
	simRequest
	zone int
	sent time.Time // when the front sent it to the dependency
}

// frontPolicy is what stands between the clients and the dependencies.
type frontPolicy interface {
	// arrive offers request i at now; send starts it at its dependency.
	arrive(now time.Time, i int32, send func(int32))
	// finish reports request i back from its dependency at now, after rtt.
	finish(now time.Time, i int32, rtt time.Duration, send func(int32))
}

// simResult is what a run measured, per zone and per phase.
type simResult struct {
	good    [][]time.Duration   // [zone][phase] service time of requests finished in time
	latency [][][]time.Duration // [zone][phase] arrival-to-completion of finished requests
}

// runAdaptiveSim runs reqs (sorted by arrival) through front and deps
// until end. changes are server changes (req -1) at given times; phases
// are the phase boundaries (phase p is [phases[p], phases[p+1])).
func runAdaptiveSim(reqs []simZoneReq, deps []*simDep, changes []simEvent, phases []time.Time, front frontPolicy) simResult {
	res := simResult{good: make([][]time.Duration, len(deps)), latency: make([][][]time.Duration, len(deps))}
	for z := range deps {
		res.good[z] = make([]time.Duration, len(phases)-1)
		res.latency[z] = make([][]time.Duration, len(phases)-1)
	}
	var events simEvents
	seq := 0
	push := func(e simEvent) {
		seq++
		e.seq = seq
		heap.Push(&events, e)
	}
	for _, c := range changes {
		c.req = -1
		push(c)
	}
	var now time.Time
	start := func(z int) {
		d := deps[z]
		for d.busy < d.servers && d.head < len(d.fifo) {
			i := d.fifo[d.head]
			d.head++
			d.busy++
			push(simEvent{at: now.Add(time.Duration(d.slow * float64(reqs[i].service))), zone: z, req: i})
		}
		if d.head > 1024 && d.head*2 > len(d.fifo) {
			d.fifo = d.fifo[:copy(d.fifo, d.fifo[d.head:])]
			d.head = 0
		}
	}
	send := func(i int32) {
		r := &reqs[i]
		r.sent = now
		d := deps[r.zone]
		d.fifo = append(d.fifo, i)
		start(r.zone)
	}
	phaseOf := func(t time.Time) int {
		for p := len(phases) - 2; p >= 0; p-- {
			if !t.Before(phases[p]) {
				return p
			}
		}
		return 0
	}
	end := phases[len(phases)-1]
	next := 0
	for {
		arrival := next < len(reqs)
		if arrival && len(events) > 0 && events[0].at.Before(reqs[next].arrive) {
			arrival = false
		}
		if !arrival && len(events) == 0 {
			break
		}
		if arrival {
			now = reqs[next].arrive
			if !now.Before(end) {
				break
			}
			front.arrive(now, int32(next), send)
			next++
			continue
		}
		e := heap.Pop(&events).(simEvent)
		now = e.at
		if !now.Before(end) {
			break
		}
		d := deps[e.zone]
		if e.req < 0 {
			d.servers = e.n
			start(e.zone)
			continue
		}
		d.busy--
		r := reqs[e.req]
		p := phaseOf(now)
		if !now.After(r.deadline) {
			res.good[r.zone][p] += time.Duration(d.slow * float64(r.service))
		}
		res.latency[r.zone][p] = append(res.latency[r.zone][p], now.Sub(r.arrive))
		start(e.zone)
		front.finish(now, e.req, now.Sub(r.sent), send)
	}
	return res
}

// queueFront is a Queue's logic on the virtual clock: its Scheduler, with
// workers moved by an AdaptiveLimit if a is not nil, exactly as
// Queue.ReleaseRTT moves them.
type queueFront struct {
	s    *Scheduler[int32]
	a    *AdaptiveLimit
	reqs []simZoneReq
}

func newQueueFront(reqs []simZoneReq, workers int, a *AdaptiveConfig) *queueFront {
	s, err := NewScheduler[int32](QueueConfig{Workers: workers}, nil)
	if err != nil {
		panic(err)
	}
	f := &queueFront{s: s, reqs: reqs}
	if a != nil {
		f.a = newAdaptive(a.withDefaults(workers))
		s.SetWorkers(f.a.Limit())
	}
	return f
}

func (f *queueFront) arrive(now time.Time, i int32, send func(int32)) {
	r := &f.reqs[i]
	if k, _ := f.s.Push(now, Item[int32]{Value: i, Priority: r.priority, Deadline: r.deadline, Cost: simMeanService}); k == Admitted {
		send(i)
	}
}

func (f *queueFront) finish(now time.Time, _ int32, rtt time.Duration, send func(int32)) {
	grew := false
	if f.a != nil {
		l := f.a.OnSample(now, rtt, f.s.InFlight(), false)
		grew = l > f.s.Workers()
		f.s.SetWorkers(l)
	}
	if it, ok := f.s.Done(now); ok {
		send(it.Value)
	}
	for grew {
		it, ok := f.s.Next(now)
		if !ok {
			break
		}
		send(it.Value)
	}
}

// zoneArrivals returns Poisson arrivals for zone at load times the healthy
// capacity (800/s), over d.
func zoneArrivals(stream uint64, zone int, load float64, d time.Duration) []simZoneReq {
	var out []simZoneReq
	for _, r := range simArrivals(stream, Normal, load, d) {
		out = append(out, simZoneReq{simRequest: r, zone: zone})
	}
	return out
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// TestAdaptiveCapacityDrop is the capacity drop: a dependency that
// serves 8 calls at once at 10ms (5–15ms) loses three quarters of its
// servers for a minute (scaled with -shed.simseconds: 5s in the default
// run, 60s at full size), at offered loads of 2× and 10× its healthy
// capacity, requests with deadlines of 100–500ms. In front of it, a Queue
// with 8 workers (tuned for the healthy dependency) and a Queue whose
// workers are an AdaptiveLimit (ceiling 64). Goodput is the dependency's
// work finished within deadline as a fraction of the capacity it had in
// each phase.
func TestAdaptiveCapacityDrop(t *testing.T) {
	drop := time.Duration(*simSeconds * float64(time.Second))
	before, after := drop/2, drop
	phases := []time.Time{t0, t0.Add(before), t0.Add(before + drop), t0.Add(before + drop + after)}
	changes := []simEvent{{at: phases[1], n: simWorkers / 4}, {at: phases[2], n: simWorkers}}
	capacity := []float64{simWorkers, simWorkers / 4, simWorkers}
	fronts := []struct {
		name string
		make func([]simZoneReq) frontPolicy
	}{
		{"Queue, 8 workers", func(r []simZoneReq) frontPolicy { return newQueueFront(r, simWorkers, nil) }},
		{"Queue, 64 workers", func(r []simZoneReq) frontPolicy { return newQueueFront(r, 64, nil) }},
		{"Queue, adaptive (≤64)", func(r []simZoneReq) frontPolicy { return newQueueFront(r, 64, &AdaptiveConfig{}) }},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "goodput (work finished in time ÷ capacity of the phase) and p99 latency of finished requests; %v before, %v at a quarter, %v after\n\n", before, drop, after)
	b.WriteString("| load | front | before | during the drop | after | p99 before / during / after |\n|---:|---|---:|---:|---:|---|\n")
	during := map[string]map[float64]float64{}
	for _, load := range []float64{2, 10} {
		reqs := zoneArrivals(1, 0, load, before+drop+after)
		for _, f := range fronts {
			rs := slices.Clone(reqs)
			res := runAdaptiveSim(rs, []*simDep{{servers: simWorkers, slow: 1}}, changes, phases, f.make(rs))
			fmt.Fprintf(&b, "| %v× | %s |", load, f.name)
			var g [3]float64
			for p := range 3 {
				g[p] = res.good[0][p].Seconds() / (capacity[p] * phases[p+1].Sub(phases[p]).Seconds())
				fmt.Fprintf(&b, " %.1f%% |", 100*g[p])
			}
			l := res.latency[0]
			fmt.Fprintf(&b, " %v / %v / %v |\n", p99(l[0]).Round(time.Millisecond), p99(l[1]).Round(time.Millisecond), p99(l[2]).Round(time.Millisecond))
			if during[f.name] == nil {
				during[f.name] = map[float64]float64{}
			}
			during[f.name][load] = g[1]
		}
	}
	t.Logf("\n%s", b.String())
	ad := during["Queue, adaptive (≤64)"]
	require.NotNil(t, ad)
	assert.GreaterOrEqual(t, ad[10], 0.90, "adaptive Queue, 10×, during the drop")
	assert.GreaterOrEqual(t, ad[2], 0.90, "adaptive Queue, 2×, during the drop")
}

// partitionFront is a Partition's admission on the virtual clock: a limit
// per key (fixed, or an AdaptiveLimit fed as Partition.ReleaseRTT feeds
// it), a regional total, and one FIFO of waiters served in arrival order
// among the keys with room, each waiter leaving at MaxWait or at its
// deadline (its context's).
type partitionFront struct {
	reqs             []simZoneReq
	total, inFlight  int
	perKey, maxQueue int
	maxWait          time.Duration
	keys             []partKey
	waiters          []int32
}

type partKey struct {
	inFlight, waiting int
	a                 *AdaptiveLimit
}

func newPartitionFront(reqs []simZoneReq, zones, total, perKey int, a *AdaptiveConfig) *partitionFront {
	f := &partitionFront{reqs: reqs, total: total, perKey: perKey, maxQueue: 64, maxWait: DefaultMaxWait, keys: make([]partKey, zones)}
	if a != nil {
		c := a.withDefaults(perKey)
		for z := range f.keys {
			f.keys[z].a = newAdaptive(c)
		}
	}
	return f
}

func (f *partitionFront) limit(z int) int {
	if a := f.keys[z].a; a != nil {
		return a.Limit()
	}
	return f.perKey
}

func (f *partitionFront) arrive(now time.Time, i int32, send func(int32)) {
	z := f.reqs[i].zone
	k := &f.keys[z]
	f.expire(now)
	switch {
	case k.waiting == 0 && k.inFlight < f.limit(z) && f.inFlight < f.total:
		k.inFlight++
		f.inFlight++
		send(i)
	case k.waiting < f.maxQueue:
		k.waiting++
		f.waiters = append(f.waiters, i)
	}
}

// expire drops the waiters whose MaxWait or deadline has passed.
func (f *partitionFront) expire(now time.Time) {
	f.waiters = slices.DeleteFunc(f.waiters, func(i int32) bool {
		r := &f.reqs[i]
		if now.Sub(r.arrive) >= f.maxWait || !now.Before(r.deadline) {
			f.keys[r.zone].waiting--
			return true
		}
		return false
	})
}

func (f *partitionFront) finish(now time.Time, i int32, rtt time.Duration, send func(int32)) {
	z := f.reqs[i].zone
	k := &f.keys[z]
	if k.a != nil {
		k.a.OnSample(now, rtt, k.inFlight, false)
	}
	k.inFlight--
	f.inFlight--
	f.expire(now)
	// As Partition.releaseLocked: while the pool has room, the first
	// waiter among the keys with room and the fewest calls in flight.
	for f.inFlight < f.total {
		best := -1
		for j, i := range f.waiters {
			k := &f.keys[f.reqs[i].zone]
			if k.inFlight < f.limit(f.reqs[i].zone) && (best < 0 || k.inFlight < f.keys[f.reqs[f.waiters[best]].zone].inFlight) {
				best = j
			}
		}
		if best < 0 {
			return
		}
		i := f.waiters[best]
		f.waiters = slices.Delete(f.waiters, best, best+1)
		k := &f.keys[f.reqs[i].zone]
		k.waiting--
		k.inFlight++
		f.inFlight++
		send(i)
	}
}

// TestAdaptivePartitionSlowZone is the three zones, one slowed 10×:
// each zone's dependency serves 8 calls at once at 10ms (5–15ms); a
// regional Partition of 24 with a per-zone cap of 12 (Share 0.5) stands in
// front, each zone offered 2× its capacity with deadlines of 100–500ms.
// After a sixth of the run one zone's service times grow tenfold. The slow
// zone's calls, held ten times longer, must not take the pool from the
// healthy zones, which keep their goodput (work finished in time ÷ their
// capacity, after the slowdown): with a learned limit per zone because
// the slow zone's limit shrinks, and with fixed caps too because a full
// pool hands a freed slot to the zone with the fewest calls in flight
// (when it granted in arrival order across zones, the slow zone held its
// whole cap and the healthy zones fell to 72%). The model of the
// Partition's admission here is checked against the real Partition by
// TestAdaptivePartitionRealZones.
func TestAdaptivePartitionSlowZone(t *testing.T) {
	d := 2 * time.Duration(*simSeconds*float64(time.Second))
	slowAt := t0.Add(d / 6)
	phases := []time.Time{t0, slowAt, t0.Add(d)}
	fronts := []struct {
		name string
		a    *AdaptiveConfig
	}{{"Partition, fixed caps", nil}, {"Partition, adaptive per zone", &AdaptiveConfig{}}}
	var b strings.Builder
	fmt.Fprintf(&b, "goodput of each zone after zone c slows 10× (%v), as a fraction of the zone's capacity then; Total 24, cap 12 per zone, 2× offered per zone\n\n", phases[2].Sub(phases[1]))
	b.WriteString("| front | zone a | zone b | zone c (slow) | zone c's limit at the end |\n|---|---:|---:|---:|---:|\n")
	healthy := map[string][2]float64{}
	for _, f := range fronts {
		reqs := merge3(zoneArrivals(11, 0, 2, d), zoneArrivals(12, 1, 2, d), zoneArrivals(13, 2, 2, d))
		deps := []*simDep{{servers: 8, slow: 1}, {servers: 8, slow: 1}, {servers: 8, slow: 1}}
		front := newPartitionFront(reqs, 3, 24, 12, f.a)
		// The slowdown: a server change to the same count at slowAt, which
		// the run applies; service times are scaled from then on.
		res := runAdaptiveSim(reqs, deps, []simEvent{{at: slowAt, zone: 2, n: 8}}, phases, slowFront{front, deps, slowAt})
		secs := phases[2].Sub(phases[1]).Seconds()
		var g [3]float64
		for z := range 3 {
			capacity := 8 * secs
			g[z] = res.good[z][1].Seconds() / capacity
		}
		fmt.Fprintf(&b, "| %s | %.1f%% | %.1f%% | %.1f%% | %d |\n", f.name, 100*g[0], 100*g[1], 100*g[2], front.limit(2))
		healthy[f.name] = [2]float64{g[0], g[1]}
	}
	t.Logf("\n%s", b.String())
	for _, g := range healthy["Partition, adaptive per zone"] {
		assert.GreaterOrEqual(t, g, 0.95, "healthy zone with learned per-zone limits")
	}
	for _, g := range healthy["Partition, fixed caps"] {
		assert.GreaterOrEqual(t, g, 0.95, "healthy zone with fixed per-zone caps: a full pool grants the zone with the fewest in flight")
	}
}

// slowFront makes zone 2's dependency ten times slower from slowAt.
type slowFront struct {
	*partitionFront
	deps   []*simDep
	slowAt time.Time
}

func (s slowFront) arrive(now time.Time, i int32, send func(int32)) {
	if !now.Before(s.slowAt) {
		s.deps[2].slow = 10
	}
	s.partitionFront.arrive(now, i, send)
}

func merge3(a, b, c []simZoneReq) []simZoneReq {
	out := slices.Concat(a, b, c)
	slices.SortStableFunc(out, func(x, y simZoneReq) int { return x.arrive.Compare(y.arrive) })
	return out
}
