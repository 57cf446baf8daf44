package shed

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var simSeconds = flag.Float64("shed.simseconds", 5,
	"simulated seconds per cell of the overload simulation (the issue's full size: 60)")

// The simulated pool: 8 workers, service time uniform in [5ms, 15ms] (mean
// 10ms), so capacity is 800 requests per second. Each request must finish
// within a deadline drawn uniformly from [100ms, 500ms] after it arrives;
// it declares the mean service time as its cost.
const (
	simWorkers     = 8
	simMinService  = 5 * time.Millisecond
	simMaxService  = 15 * time.Millisecond
	simMeanService = (simMinService + simMaxService) / 2
	simMinDeadline = 100 * time.Millisecond
	simMaxDeadline = 500 * time.Millisecond
)

// simSeed seeds every random stream of the simulation.
var simSeed uint64 = 2025

// simCapacity is the pool's capacity in requests per second.
var simCapacity = float64(simWorkers) / simMeanService.Seconds()

type simRequest struct {
	arrive, deadline time.Time
	service          time.Duration
	priority         Priority
}

// simArrivals returns a Poisson stream of requests of class p at load times
// the pool's capacity, over d. Each stream has its own random source, so
// the critical stream is the same whether or not sheddable work is added.
func simArrivals(stream uint64, p Priority, load float64, d time.Duration) []simRequest {
	return simSlowArrivals(stream, p, load, d, 1)
}

// simSlowArrivals is simArrivals for a dependency slow times slower: every
// service time is multiplied by slow, and load is relative to the capacity
// that is left.
func simSlowArrivals(stream uint64, p Priority, load float64, d time.Duration, slow float64) []simRequest {
	r := rand.New(rand.NewPCG(simSeed, stream))
	rate := load * simCapacity / slow // per second
	var out []simRequest
	for t := r.ExpFloat64() / rate; t < d.Seconds(); t += r.ExpFloat64() / rate {
		at := t0.Add(time.Duration(t * float64(time.Second)))
		out = append(out, simRequest{
			arrive:   at,
			deadline: at.Add(simMinDeadline + time.Duration(r.Int64N(int64(simMaxDeadline-simMinDeadline)))),
			service:  time.Duration(slow * float64(simMinService+time.Duration(r.Int64N(int64(simMaxService-simMinService))))),
			priority: p,
		})
	}
	return out
}

// simPolicy is what stands in front of the workers.
type simPolicy interface {
	// arrive offers request i at now and reports whether it starts now.
	arrive(now time.Time, i int32) bool
	// finish frees a worker at now and returns the request it starts
	// next, or -1 if the worker goes idle.
	finish(now time.Time) int32
}

// fifoPolicy runs everything in arrival order, refusing new work only when
// bound requests wait (never, if bound is zero).
type fifoPolicy struct {
	bound, busy int
	queue       []int32
	head        int
}

func (f *fifoPolicy) arrive(_ time.Time, i int32) bool {
	if f.busy < simWorkers {
		f.busy++
		return true
	}
	if f.bound > 0 && len(f.queue)-f.head >= f.bound {
		return false
	}
	f.queue = append(f.queue, i)
	return false
}

func (f *fifoPolicy) finish(time.Time) int32 {
	if f.head == len(f.queue) {
		f.busy--
		return -1
	}
	i := f.queue[f.head]
	f.head++
	if f.head > 1024 && f.head*2 > len(f.queue) {
		f.queue = f.queue[:copy(f.queue, f.queue[f.head:])]
		f.head = 0
	}
	return i
}

// admissionPolicy is the full queue-aware admission: the Scheduler with its
// defaults.
type admissionPolicy struct {
	s    *Scheduler[int32]
	reqs []simRequest
}

func newAdmissionPolicy(reqs []simRequest) *admissionPolicy {
	s, err := NewScheduler[int32](QueueConfig{Workers: simWorkers}, nil)
	if err != nil {
		panic(err)
	}
	return &admissionPolicy{s: s, reqs: reqs}
}

func (a *admissionPolicy) arrive(now time.Time, i int32) bool {
	r := &a.reqs[i]
	kind, _ := a.s.Push(now, Item[int32]{Value: i, Priority: r.priority, Deadline: r.deadline, Cost: simMeanService})
	return kind == Admitted
}

func (a *admissionPolicy) finish(now time.Time) int32 {
	if it, ok := a.s.Done(now); ok {
		return it.Value
	}
	return -1
}

// simulate runs the requests (sorted by arrival) through pol on a virtual
// clock for d, and returns the goodput of each class: the worker time spent
// on requests that finished within their deadline (and within d), as a
// fraction of all the worker time there was. Counting work rather than
// requests keeps the figure at or below 100% whatever the luck of the
// service-time draws.
func simulate(reqs []simRequest, d time.Duration, pol simPolicy) (goodput [numPriorities]float64) {
	type slot struct {
		busy  bool
		until time.Time
		req   int32
	}
	var slots [simWorkers]slot
	var good [numPriorities]time.Duration
	end := t0.Add(d)
	start := func(k int, i int32, now time.Time) {
		slots[k] = slot{busy: true, until: now.Add(reqs[i].service), req: i}
	}
	next := 0
	for {
		w := -1
		for k := range slots {
			if slots[k].busy && (w < 0 || slots[k].until.Before(slots[w].until)) {
				w = k
			}
		}
		if next < len(reqs) && (w < 0 || reqs[next].arrive.Before(slots[w].until)) {
			now := reqs[next].arrive
			if pol.arrive(now, int32(next)) {
				k := slices.IndexFunc(slots[:], func(s slot) bool { return !s.busy })
				start(k, int32(next), now)
			}
			next++
			continue
		}
		if w < 0 || slots[w].until.After(end) {
			break
		}
		now := slots[w].until
		if r := reqs[slots[w].req]; !now.After(r.deadline) {
			good[r.priority] += r.service
		}
		if i := pol.finish(now); i >= 0 {
			start(w, i, now)
		} else {
			slots[w].busy = false
		}
	}
	for p, work := range good {
		goodput[p] = work.Seconds() / (simWorkers * d.Seconds())
	}
	return goodput
}

func merge(streams ...[]simRequest) []simRequest {
	out := slices.Concat(streams...)
	slices.SortStableFunc(out, func(a, b simRequest) int { return a.arrive.Compare(b.arrive) })
	return out
}

// TestOverloadGoodput is the overload experiment: offered load
// 0.5×, 0.8×, 1×, 2×, 5× and 10× the pool's capacity, clients with deadlines, and goodput
// (work finished within its deadline, as a fraction of capacity) for an
// unbounded FIFO queue, bounded FIFO queues, and the full queue-aware
// admission (a Scheduler with its defaults). One FIFO bound is the default
// MaxQueue (1024); the other, 64, is tuned to this workload: 64 waiting ×
// 10ms ÷ 8 workers = 80ms of queueing, under the shortest deadline. The
// experiment is repeated with the dependency three times slower, where the
// tuned bound no longer fits, and then with critical work alone at 1×
// against the same critical work with 9× sheddable work on top.
//
// The table is printed with t.Logf (go test -run TestOverloadGoodput -v);
// -shed.simseconds=60 runs the full size.
func TestOverloadGoodput(t *testing.T) {
	d := time.Duration(*simSeconds * float64(time.Second))
	policies := []struct {
		name string
		make func([]simRequest) simPolicy
	}{
		{"unbounded FIFO", func([]simRequest) simPolicy { return &fifoPolicy{} }},
		{"bounded FIFO (1024)", func([]simRequest) simPolicy { return &fifoPolicy{bound: DefaultMaxQueue} }},
		{"bounded FIFO (64)", func([]simRequest) simPolicy { return &fifoPolicy{bound: 64} }},
		{"queue-aware admission", func(r []simRequest) simPolicy { return newAdmissionPolicy(r) }},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "goodput, as a fraction of capacity (%d workers, service 5–15ms, deadlines 100–500ms, %v simulated per cell, seed %d)\n\n",
		simWorkers, d, simSeed)
	fmt.Fprintf(&b, "| offered load |")
	for _, p := range policies {
		fmt.Fprintf(&b, " %s |", p.name)
	}
	fmt.Fprintf(&b, "\n|---:|%s\n", strings.Repeat("---:|", len(policies)))
	results := map[string]map[float64]float64{}
	for _, load := range []float64{0.5, 0.8, 1, 2, 5, 10} {
		reqs := simArrivals(1, Normal, load, d)
		fmt.Fprintf(&b, "| %v× |", load)
		for _, p := range policies {
			g := simulate(reqs, d, p.make(reqs))[Normal]
			if results[p.name] == nil {
				results[p.name] = map[float64]float64{}
			}
			results[p.name][load] = g
			fmt.Fprintf(&b, " %.1f%% |", 100*g)
		}
		b.WriteString("\n")
	}

	fmt.Fprintf(&b, "\nthe same, with the dependency 3× slower (service 15–45ms; load relative to the capacity left)\n\n")
	fmt.Fprintf(&b, "| offered load |")
	for _, p := range policies {
		fmt.Fprintf(&b, " %s |", p.name)
	}
	fmt.Fprintf(&b, "\n|---:|%s\n", strings.Repeat("---:|", len(policies)))
	slow := map[string]float64{} // at 10×
	for _, load := range []float64{2, 10} {
		reqs := simSlowArrivals(1, Normal, load, d, 3)
		fmt.Fprintf(&b, "| %v× |", load)
		for _, p := range policies {
			g := simulate(reqs, d, p.make(reqs))[Normal]
			slow[p.name] = g
			fmt.Fprintf(&b, " %.1f%% |", 100*g)
		}
		b.WriteString("\n")
	}

	critical := simArrivals(2, Critical, 1, d)
	mixed := merge(critical, simArrivals(3, Sheddable, 9, d))
	fmt.Fprintf(&b, "\ncritical goodput, critical work at 1× alone and with 9× sheddable work added\n\n")
	fmt.Fprintf(&b, "| policy | critical alone | critical + 9× sheddable | sheddable |\n|---|---:|---:|---:|\n")
	var aloneQA, mixedQA, aloneFIFO float64
	for _, p := range policies[1:] {
		alone := simulate(critical, d, p.make(critical))
		both := simulate(mixed, d, p.make(mixed))
		fmt.Fprintf(&b, "| %s | %.1f%% | %.1f%% | %.1f%% |\n", p.name, 100*alone[Critical], 100*both[Critical], 100*both[Sheddable])
		if p.name == "queue-aware admission" {
			aloneQA, mixedQA = alone[Critical], both[Critical]
		} else {
			aloneFIFO = max(aloneFIFO, alone[Critical])
		}
	}
	t.Logf("\n%s", b.String())

	qa, fifo := results["queue-aware admission"], results["unbounded FIFO"]
	assert.GreaterOrEqual(t, qa[10], 0.90, "queue-aware admission at 10×")
	assert.Less(t, fifo[10], 0.20, "unbounded FIFO at 10×")
	for _, load := range []float64{2, 5, 10} {
		assert.GreaterOrEqual(t, qa[load], 0.99, "queue-aware admission at %v×", load)
	}
	// No loss without overload: where the workers can serve everything,
	// admission finishes what the best FIFO queue finishes, within a
	// point (TestNoLossWithoutOverload checks this over seeds).
	for _, load := range []float64{0.5, 0.8, 1} {
		best := 0.0
		for _, p := range policies[:3] {
			best = max(best, results[p.name][load])
		}
		assert.GreaterOrEqual(t, qa[load], best-0.01, "queue-aware admission at %v×, best FIFO %.4f", load, best)
	}
	assert.GreaterOrEqual(t, aloneQA, aloneFIFO-0.01, "critical work alone at 1×: best FIFO %.4f", aloneFIFO)
	// A queue bound tuned to the service time stops working when the
	// dependency slows down; a bound on the time spent queued does not.
	assert.GreaterOrEqual(t, slow["queue-aware admission"], 0.90, "queue-aware admission, slow dependency, 10×")
	assert.Less(t, slow["bounded FIFO (64)"], 0.75, "bounded FIFO (64), slow dependency, 10×")
	// Critical work is served first and never refused or evicted for
	// space while sheddable work waits, and its CoDel state is its own.
	// What sheddable work can still do is occupy every worker when a
	// critical request arrives (service is not preempted): the request
	// then waits for the next completion, about 1.2ms on average with 8
	// workers, where alone it would often have found a worker idle. At
	// exactly 1× the critical class is itself at capacity and often
	// standing, so that extra wait pushes a few more of its requests past
	// the 5ms Target, beyond the Backlog. Allow 2.5 points.
	assert.InDelta(t, aloneQA, mixedQA, 0.025, "critical goodput alone %.4f, with 9× sheddable %.4f", aloneQA, mixedQA)
	assert.Greater(t, mixedQA, 0.9)
}

func TestSimulationIsDeterministic(t *testing.T) {
	d := 500 * time.Millisecond
	reqs := simArrivals(1, Normal, 5, d)
	first := simulate(reqs, d, newAdmissionPolicy(reqs))
	again := simulate(reqs, d, newAdmissionPolicy(reqs))
	assert.Equal(t, first, again)
	assert.False(t, math.IsNaN(first[Normal]))
}

// TestNoLossWithoutOverload checks the Backlog's calibration over seeds,
// not one: at loads the workers can serve (0.5×, 0.8×, 1×, and critical
// work alone at 1×), queue-aware admission finishes, on average over
// eight seeds, at least what the best FIFO queue finishes less one point,
// and never three points less on any seed; at 2× and 10× it keeps 99%.
func TestNoLossWithoutOverload(t *testing.T) {
	defer func(s uint64) { simSeed = s }(simSeed)
	d := time.Duration(*simSeconds * float64(time.Second))
	fifos := []simPolicy{&fifoPolicy{}, &fifoPolicy{bound: 64}}
	const seeds = 8
	type cell struct {
		name string
		reqs func() []simRequest
		p    Priority
	}
	cells := []cell{
		{"0.5×", func() []simRequest { return simArrivals(1, Normal, 0.5, d) }, Normal},
		{"0.8×", func() []simRequest { return simArrivals(1, Normal, 0.8, d) }, Normal},
		{"1×", func() []simRequest { return simArrivals(1, Normal, 1, d) }, Normal},
		{"critical alone 1×", func() []simRequest { return simArrivals(2, Critical, 1, d) }, Critical},
		{"2×", func() []simRequest { return simArrivals(1, Normal, 2, d) }, Normal},
		{"10×", func() []simRequest { return simArrivals(1, Normal, 10, d) }, Normal},
	}
	for _, c := range cells {
		var qaSum, fifoSum float64
		for seed := uint64(1); seed <= seeds; seed++ {
			simSeed = seed
			reqs := c.reqs()
			qa := simulate(reqs, d, newAdmissionPolicy(reqs))[c.p]
			best := 0.0
			for _, f := range fifos {
				switch f := f.(type) {
				case *fifoPolicy:
					best = max(best, simulate(reqs, d, &fifoPolicy{bound: f.bound})[c.p])
				}
			}
			if c.name == "2×" || c.name == "10×" {
				assert.GreaterOrEqual(t, qa, 0.99, "%s, seed %d", c.name, seed)
			} else {
				assert.GreaterOrEqual(t, qa, best-0.03, "%s, seed %d: best FIFO %.4f", c.name, seed, best)
			}
			qaSum += qa
			fifoSum += best
		}
		t.Logf("%s: queue-aware admission %.1f%%, best FIFO %.1f%% (mean of %d seeds)", c.name, 100*qaSum/seeds, 100*fifoSum/seeds, seeds)
		if c.name != "2×" && c.name != "10×" {
			assert.GreaterOrEqual(t, qaSum/seeds, fifoSum/seeds-0.01, c.name)
		}
	}
}
