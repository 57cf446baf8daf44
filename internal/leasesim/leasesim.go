// Package leasesim simulates the EC2 droplet manager's lease recovery of
// October 2025 on a virtual clock, with two schedulers: the naive one of
// 2025 (one FIFO queue, timed-out attempts queued again at the back), which
// exists only here, in support code for tests and examples and never in the
// library, and lease.Recovery, the library's pure core. The lease package's
// collapse test and examples/leasestorm both run it, so that what the test
// asserts is what the demo shows.
package leasesim

import (
	"container/heap"
	"math/rand/v2"
	"time"

	"github.com/stormguard/stormguard/lease"
)

// Scenario is the droplet manager's situation when DynamoDB came back:
// Droplets leases all lapsed at once, Workers workers to re-establish them,
// an establishment costing about Cost and a renewal about RenewCost (±20%),
// leases of TTL renewed after half of it, and an establishment timing out
// Timeout after it was queued.
type Scenario struct {
	Droplets, Workers int
	Cost, RenewCost   time.Duration
	TTL, Timeout      time.Duration
	Step, Horizon     time.Duration
	Seed              uint64
}

// Ideal is N·c/w: the time to establish every lease with every worker busy
// and nothing wasted.
func (s Scenario) Ideal() time.Duration {
	return time.Duration(int64(s.Droplets) * int64(s.Cost) / int64(s.Workers))
}

// Sample is one row of a timeline.
type Sample struct {
	At      time.Duration
	Leased  int   // droplets with an unexpired lease
	OK      int64 // attempts that succeeded since the previous Sample
	Wasted  int64 // attempts that ran and timed out since the previous Sample
	Pending int   // recovery only: droplets still to establish
}

// world is what both schedulers run against: each droplet's lease expiry
// in the table, the costs, the clock and the samples.
type world struct {
	s        Scenario
	t0       time.Time
	expires  []time.Time
	rng      *rand.Rand
	samples  []Sample
	next     time.Time
	ok, wast int64
	pending  func() int
}

func newWorld(s Scenario) *world {
	t0 := time.Date(2025, 10, 20, 9, 25, 0, 0, time.UTC) // 2:25 AM PDT
	return &world{s: s, t0: t0, expires: make([]time.Time, s.Droplets), rng: rand.New(rand.NewPCG(s.Seed, 2025)), next: t0}
}

func (w *world) cost(kind lease.AttemptKind) time.Duration {
	c := w.s.Cost
	if kind == lease.Renew {
		c = w.s.RenewCost
	}
	return time.Duration(float64(c) * (0.8 + 0.4*w.rng.Float64()))
}

// observe takes the samples due at or before now.
func (w *world) observe(now time.Time) {
	for !w.next.After(now) {
		n := 0
		for _, e := range w.expires {
			if e.After(w.next) {
				n++
			}
		}
		s := Sample{At: w.next.Sub(w.t0), Leased: n, OK: w.ok, Wasted: w.wast}
		if w.pending != nil {
			s.Pending = w.pending()
		}
		w.samples = append(w.samples, s)
		w.ok, w.wast = 0, 0
		w.next = w.next.Add(w.s.Step)
	}
}

type event struct {
	at      time.Time
	seq     int
	droplet int32
	kind    lease.AttemptKind
	start   time.Time
	dead    time.Time
	ok      bool
	renewal bool // naive: a renewal falls due
	attempt lease.Attempt[int32]
}

type events []event

func (h events) Len() int { return len(h) }
func (h events) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h events) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *events) Push(x any)   { *h = append(*h, x.(event)) }
func (h *events) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// RunNaive is the droplet manager of 2025: one FIFO queue; every attempt
// is started when it reaches the front, whether or not it can still finish
// before its timeout; an attempt that times out is queued again at the
// back with a new timeout; renewals join the back of the same queue.
func RunNaive(s Scenario) []Sample {
	w := newWorld(s)
	type job struct {
		droplet int32
		kind    lease.AttemptKind
		dead    time.Time
	}
	queue := make([]job, 0, s.Droplets)
	head := 0
	for i := range s.Droplets {
		queue = append(queue, job{int32(i), lease.Establish, w.t0.Add(s.Timeout)})
	}
	var ev events
	seq := 0
	push := func(e event) { seq++; e.seq = seq; heap.Push(&ev, e) }
	free := s.Workers
	end := w.t0.Add(s.Horizon)
	now := w.t0
	work := func() {
		for free > 0 && head < len(queue) {
			j := queue[head]
			head++
			if head > 1024 && head > len(queue)/2 {
				queue = append(queue[:0], queue[head:]...)
				head = 0
			}
			free--
			push(event{at: now.Add(w.cost(j.kind)), droplet: j.droplet, kind: j.kind, start: now, dead: j.dead})
		}
	}
	work()
	for ev.Len() > 0 && !ev[0].at.After(end) {
		e := heap.Pop(&ev).(event)
		now = e.at
		w.observe(now)
		if e.renewal {
			queue = append(queue, job{e.droplet, lease.Renew, e.dead})
			work()
			continue
		}
		free++
		if now.Before(e.dead) {
			w.ok++
			w.expires[e.droplet] = e.start.Add(s.TTL)
			push(event{at: e.start.Add(s.TTL / 2), droplet: e.droplet, dead: w.expires[e.droplet], renewal: true})
		} else {
			w.wast++
			queue = append(queue, job{e.droplet, lease.Establish, now.Add(s.Timeout)})
		}
		work()
	}
	w.observe(end)
	return w.samples
}

// RunRecovery drives lease.Recovery, the library's pure core, on the same
// world: the same droplets, workers, costs and timeouts.
func RunRecovery(s Scenario) ([]Sample, lease.Progress, error) {
	w := newWorld(s)
	r, err := lease.NewRecovery[int32](lease.RecoveryConfig{
		Workers: s.Workers, MaxQueue: 4 * s.Workers, TTL: s.TTL, AttemptTimeout: s.Timeout, InitialCost: s.Cost,
		Rand: rand.New(rand.NewPCG(s.Seed, 2011)), // retries' jitter: same seed, same run
	})
	if err != nil {
		return nil, lease.Progress{}, err
	}
	for i := range s.Droplets {
		if err := r.Add(w.t0, int32(i)); err != nil {
			return nil, lease.Progress{}, err
		}
	}
	var ev events
	seq := 0
	run := func(now time.Time, as []lease.Attempt[int32]) {
		for _, a := range as {
			at := now.Add(w.cost(a.Kind))
			ok := at.Before(a.Deadline)
			if !ok {
				at = a.Deadline // the attempt's context ends it
			}
			seq++
			heap.Push(&ev, event{at: at, seq: seq, droplet: a.Key, ok: ok, attempt: a})
		}
	}
	end := w.t0.Add(s.Horizon)
	var now time.Time
	w.pending = func() int { return r.Progress(now).Pending }
	now = w.t0
	buf := r.Start(w.t0, nil)
	run(w.t0, buf)
	for {
		next, wake := end, false
		if ev.Len() > 0 && ev[0].at.Before(next) {
			next = ev[0].at
		}
		if t, ok := r.Wake(); ok && t.Before(next) {
			next, wake = t, true
		}
		if !next.Before(end) {
			break
		}
		w.observe(next)
		now = next
		if wake {
			buf = r.Start(next, buf[:0])
		} else {
			e := heap.Pop(&ev).(event)
			var ferr error
			if e.ok {
				w.ok++
				w.expires[e.droplet] = e.attempt.Started.Add(s.TTL)
			} else {
				w.wast++
				ferr = lease.ErrTimeout
			}
			buf = r.Finish(next, e.attempt, ferr, buf[:0])
		}
		run(next, buf)
	}
	now = end
	w.observe(end)
	return w.samples, r.Progress(end), nil
}

// LeasedAt returns the fraction of the scenario's droplets leased at the
// last sample at or before d.
func LeasedAt(samples []Sample, droplets int, d time.Duration) float64 {
	leased := 0
	for _, x := range samples {
		if x.At <= d {
			leased = x.Leased
		}
	}
	return float64(leased) / float64(droplets)
}
