package ddbsim

import (
	"container/heap"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/stormguard/stormguard/lease"
)

// dwfmResult is DWFM's part of a run, per minute.
type dwfmResult struct {
	leased                     []int // droplets leased at the end of each minute
	attempts, timeouts, requeu []int
	backlogIn                  []int           // network-state items queued by re-established droplets
	wait                       []time.Duration // expected wait in DWFM's queue at the end of each minute
	wasted                     int64
	events                     int64
}

type dEvent struct {
	at      time.Duration
	seq     int64
	droplet int32
	kind    lease.AttemptKind
	start   time.Duration
	dead    time.Duration
	renewal bool // naive: a renewal falls due
	ok      bool
	lapsed  bool // the establishment follows a lapse
	attempt lease.Attempt[int32]
}

type dEvents []dEvent

func (h dEvents) Len() int { return len(h) }
func (h dEvents) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h dEvents) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dEvents) Push(x any)   { *h = append(*h, x.(dEvent)) }
func (h *dEvents) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// fleet is the lease table as DWFM sees it: each droplet's expiry, and a
// per-minute difference array from which the leased count is summed.
type fleet struct {
	n       int
	expires []time.Duration
	delta   []int
	r       *dwfmResult
	rng     *rand.Rand
	minutes int
}

func (f *fleet) minute(t time.Duration) int { return min(f.minutes, int(t/time.Minute)) }

// set gives droplet d a lease until x, at now.
func (f *fleet) set(now time.Duration, d int32, x time.Duration) {
	if old := f.expires[d]; old > now {
		f.delta[f.minute(old)]++
	} else {
		f.delta[f.minute(now)]++
	}
	f.delta[f.minute(x)]--
	f.expires[d] = x
}

func (f *fleet) cost(k lease.AttemptKind) time.Duration {
	c := EstablishCost
	if k == lease.Renew {
		c = RenewCost
	}
	return time.Duration(float64(c) * (0.8 + 0.4*f.rng.Float64()))
}

// runDWFM plays DWFM through an outage of DynamoDB from o1 to o2: every
// lease was last renewed before o1, at a time spread evenly over the TTL,
// so leases lapse from o1 to o1+TTL; from o2 DWFM re-establishes them.
// With no outage (o2 <= o1) every droplet stays leased.
func runDWFM(mode Mode, n int, minutes int, o1, o2 time.Duration, rng *rand.Rand, progress func(float64)) (*dwfmResult, error) {
	r := &dwfmResult{leased: make([]int, minutes), attempts: make([]int, minutes), timeouts: make([]int, minutes),
		requeu: make([]int, minutes), backlogIn: make([]int, minutes), wait: make([]time.Duration, minutes)}
	if o2 <= o1 {
		for i := range r.leased {
			r.leased[i] = n
		}
		return r, nil
	}
	f := &fleet{n: n, expires: make([]time.Duration, n), delta: make([]int, minutes+1), r: r, rng: rng, minutes: minutes}
	// Before o1 every droplet is leased: count them at minute 0.
	f.delta[0] = n
	for i := range f.expires {
		x := o1 + time.Duration(rng.Float64()*float64(LeaseTTL))
		f.expires[i] = x
		f.delta[f.minute(x)]--
	}
	end := time.Duration(minutes) * time.Minute
	w := Workers(n)
	var ev dEvents
	var seq int64
	push := func(e dEvent) { seq++; e.seq = seq; heap.Push(&ev, e) }
	// done tracks the minutes summed so far, and stops the simulation once
	// every droplet has stayed leased for a whole TTL.
	summed, running, fullSince := 0, 0, -1
	queued := func() int { return 0 }
	sum := func(now time.Duration) bool {
		for summed < f.minute(now) {
			running += f.delta[summed]
			r.leased[summed] = running
			if summed >= f.minute(o2) {
				r.wait[summed] = time.Duration(int64(queued()) * int64(EstablishCost) / int64(w))
			}
			if running >= n && summed*int(time.Minute) >= int(o2) {
				if fullSince < 0 {
					fullSince = summed
				}
			} else {
				fullSince = -1
			}
			summed++
			if progress != nil && summed%30 == 0 {
				progress(float64(summed) / float64(minutes))
			}
		}
		return fullSince >= 0 && time.Duration(summed-fullSince)*time.Minute >= LeaseTTL
	}
	finish := func() {
		for ; summed < minutes; summed++ {
			running += f.delta[summed]
			if fullSince >= 0 {
				running = n // steady state: every renewal succeeds
			}
			r.leased[summed] = running
		}
	}
	lapsedNote := func(now time.Duration) {
		if rng.Float64() < BacklogShare {
			r.backlogIn[f.minute(now)]++
		}
	}
	if mode == Naive {
		type job struct {
			d    int32
			kind lease.AttemptKind
			dead time.Duration
		}
		var queue, backlog []job
		qh, bh := 0, 0
		throttled := false
		qmax := int(int64(w) * int64(AttemptTimeout) / (2 * int64(EstablishCost)))
		free := w
		queued = func() int { return len(queue) - qh }
		for i := range n {
			if f.expires[i] <= o2 {
				queue = append(queue, job{int32(i), lease.Establish, o2 + AttemptTimeout})
			} else {
				push(dEvent{at: max(o2, f.expires[i]-LeaseTTL/2), droplet: int32(i), dead: f.expires[i], renewal: true})
			}
		}
		var now time.Duration = o2
		enqueue := func(j job) {
			if throttled && j.kind == lease.Establish {
				backlog = append(backlog, j)
				return
			}
			queue = append(queue, j)
		}
		work := func() {
			for throttled && bh < len(backlog) && len(queue)-qh < qmax {
				j := backlog[bh]
				bh++
				j.dead = now + AttemptTimeout
				queue = append(queue, j)
			}
			if bh > 4096 && bh > len(backlog)/2 {
				backlog = append(backlog[:0], backlog[bh:]...)
				bh = 0
			}
			for free > 0 && qh < len(queue) {
				j := queue[qh]
				qh++
				free--
				r.attempts[f.minute(now)]++
				push(dEvent{at: now + f.cost(j.kind), droplet: j.d, kind: j.kind, start: now, dead: j.dead, lapsed: j.kind == lease.Establish})
			}
			if qh > 4096 && qh > len(queue)/2 {
				queue = append(queue[:0], queue[qh:]...)
				qh = 0
			}
		}
		restarted := false
		work()
		for ev.Len() > 0 && ev[0].at < end {
			if !restarted && o2 < DWFMRestart && ev[0].at >= DWFMRestart {
				// The operators throttle incoming work and restart DWFM
				// hosts: the queue is cleared into a backlog that enters
				// only as fast as it can be served.
				restarted, throttled = true, true
				now = DWFMRestart
				if sum(now) {
					break
				}
				var keep []job
				for _, j := range queue[qh:] {
					if j.kind == lease.Establish {
						backlog = append(backlog, j)
					} else {
						keep = append(keep, j)
					}
				}
				queue, qh = keep, 0
				work()
				continue
			}
			e := heap.Pop(&ev).(dEvent)
			now = e.at
			r.events++
			if sum(now) {
				break
			}
			if e.renewal {
				enqueue(job{e.droplet, lease.Renew, e.dead})
				work()
				continue
			}
			free++
			if now <= e.dead {
				f.set(now, e.droplet, e.start+LeaseTTL)
				if e.kind == lease.Establish && e.lapsed {
					lapsedNote(now)
				}
				push(dEvent{at: e.start + LeaseTTL/2, droplet: e.droplet, dead: e.start + LeaseTTL, renewal: true})
			} else {
				r.wasted++
				m := f.minute(now)
				r.timeouts[m]++
				r.requeu[m]++
				enqueue(job{e.droplet, lease.Establish, now + AttemptTimeout})
			}
			work()
		}
		sum(min(end, now))
		finish()
		return r, nil
	}
	rec, err := lease.NewRecovery[int32](lease.RecoveryConfig{
		Workers: w, MaxQueue: 4 * w, TTL: LeaseTTL, AttemptTimeout: AttemptTimeout, InitialCost: EstablishCost,
		Rand: rand.New(rand.NewPCG(rng.Uint64(), 2025)),
	})
	if err != nil {
		return nil, err
	}
	t0 := start.Add(o2)
	for i := range n {
		if err := rec.Add(t0, int32(i)); err != nil {
			return nil, err
		}
	}
	run := func(now time.Duration, as []lease.Attempt[int32]) {
		for _, a := range as {
			r.attempts[f.minute(now)]++
			dead := a.Deadline.Sub(start)
			at := now + f.cost(a.Kind)
			ok := at < dead
			if !ok {
				at = dead
			}
			push(dEvent{at: at, droplet: a.Key, ok: ok, attempt: a, kind: a.Kind, lapsed: f.expires[a.Key] <= now})
		}
	}
	now := o2
	queued = func() int { p := rec.Progress(start.Add(now)); return p.Queued }
	buf := rec.Start(t0, nil)
	run(now, buf)
	for {
		next, wake := end, false
		if ev.Len() > 0 && ev[0].at < next {
			next = ev[0].at
		}
		if t, ok := rec.Wake(); ok && t.Sub(start) < next {
			next, wake = max(now, t.Sub(start)), true
		}
		if next >= end {
			break
		}
		now = next
		r.events++
		if sum(now) {
			break
		}
		if wake {
			buf = rec.Start(start.Add(now), buf[:0])
		} else {
			e := heap.Pop(&ev).(dEvent)
			var ferr error
			if e.ok {
				f.set(now, e.droplet, e.attempt.Started.Sub(start)+LeaseTTL)
				if e.kind == lease.Establish && e.lapsed {
					lapsedNote(now)
				}
			} else {
				r.wasted++
				m := f.minute(now)
				r.timeouts[m]++
				r.requeu[m]++
				ferr = lease.ErrTimeout
			}
			buf = rec.Finish(start.Add(now), e.attempt, ferr, buf[:0])
		}
		run(now, buf)
	}
	sum(min(end, now))
	finish()
	if p := rec.Progress(start.Add(now)); p.Failed > 0 {
		return r, errors.New("ddbsim: lease.Recovery gave up on droplets")
	}
	return r, nil
}
