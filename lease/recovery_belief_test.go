package lease_test

import (
	"container/heap"
	"fmt"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"pgregory.net/rapid"
)

// TestRecoveryBeliefProperty drives a Recovery against a Memory table on a
// virtual clock with an outage of any length at any position (before,
// during or after establishment, across renewals), attempts that cost up
// to twice their timeout, and a caller that may report a late answer as
// the table gave it (a success after the Deadline). At every instant:
//
//   - the Recovery never counts more keys Established than the table
//     holds for it;
//   - every renewal it hands out is of a lease the table still holds for
//     it (it never believes it holds a lease it does not);
//   - no key ever has two attempts out at once.
func TestRecoveryBeliefProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		keys := rapid.IntRange(1, 12).Draw(rt, "keys")
		ttl := time.Duration(rapid.IntRange(1, 10).Draw(rt, "ttlSeconds")) * time.Second
		drift := time.Duration(rapid.Int64Range(0, int64(ttl)/4).Draw(rt, "drift"))
		cfg := lease.RecoveryConfig{
			Workers: rapid.IntRange(1, 4).Draw(rt, "workers"), TTL: ttl, DriftMargin: drift,
			MaxQueue:       rapid.IntRange(0, 4).Draw(rt, "maxQueue"),
			AttemptTimeout: time.Duration(rapid.Int64Range(int64(ttl)/20, int64(ttl)).Draw(rt, "timeout")),
			Retry:          backoff.Policy{MaxAttempts: rapid.IntRange(0, 8).Draw(rt, "maxAttempts")},
		}
		down := time.Duration(rapid.Int64Range(0, int64(3*ttl)).Draw(rt, "down"))
		length := time.Duration(rapid.Int64Range(0, int64(3*ttl)).Draw(rt, "length"))
		w, err := newOutageWorld(cfg, rapid.Uint64().Draw(rt, "seed"), 0, down, down+length)
		if err != nil {
			rt.Fatal(err)
		}
		w.maxCost = time.Duration(rapid.Int64Range(int64(time.Millisecond), 2*int64(cfg.AttemptTimeout)).Draw(rt, "maxCost"))
		lateSuccess := rapid.Bool().Draw(rt, "lateSuccess")
		for k := range keys {
			if err := w.r.Add(t0, k); err != nil {
				rt.Fatal(err)
			}
		}
		out := map[int]bool{}
		var log []string
		check := func(as []lease.Attempt[int]) {
			for _, a := range as {
				log = append(log, fmt.Sprintf("%v: start %v %d deadline %v", a.Started.Sub(t0), a.Kind, a.Key, a.Deadline.Sub(t0)))
				if out[a.Key] {
					rt.Fatalf("key %d handed out twice at once", a.Key)
				}
				out[a.Key] = true
				if a.Kind == lease.Renew {
					// (The table's clock may be ahead: other keys' attempts
					// reach it at their own, later, instants.)
					h := w.leases[a.Key]
					if !a.Started.Before(h.Expires) || w.m.Epoch(fmt.Sprint(a.Key)) != h.Epoch {
						for _, l := range log {
							rt.Log(l)
						}
						rt.Fatalf("%v: renewal of key %d handed out, but the table holds %+v (newest epoch %d)", a.Started.Sub(t0), a.Key, h, w.m.Epoch(fmt.Sprint(a.Key)))
					}
				}
			}
			held := 0
			for k := range keys {
				if l, ok := w.leases[k]; ok && w.now.Before(l.Expires) && w.m.Epoch(fmt.Sprint(k)) == l.Epoch {
					held++
				}
			}
			if p := w.r.Progress(w.now); p.Established > held {
				rt.Fatalf("%v: %d keys Established, the table holds %d: %+v", w.now.Sub(t0), p.Established, held, p)
			}
		}
		startLate := func(as []lease.Attempt[int]) {
			check(as)
			if !lateSuccess {
				w.start(as)
				return
			}
			// The caller reports the table's answer as it came, late or not.
			for _, a := range as {
				c := w.minCost + time.Duration(w.rng.Int64N(int64(w.maxCost-w.minCost)+1))
				reach, end := a.Started.Add(c/2), a.Started.Add(c)
				var err error = errTableDown
				if !w.isDown(reach) {
					err = w.apply(reach, a)
				}
				if w.isDown(end) {
					err = errTableDown
				}
				w.seq++
				heap.Push(&w.running, finish{at: end, seq: w.seq, a: a, err: err})
			}
		}
		startLate(w.r.Start(t0, nil))
		end := t0.Add(down + length + 4*ttl)
		for {
			next, wake := end, false
			if len(w.running) > 0 && w.running[0].at.Before(next) {
				next = w.running[0].at
			}
			if t, ok := w.r.Wake(); ok && t.Before(next) {
				next, wake = t, true
			}
			if !next.Before(end) {
				break
			}
			if next.After(w.now) {
				w.now = next
			}
			if wake {
				startLate(w.r.Start(w.now, nil))
				continue
			}
			f := heap.Pop(&w.running).(finish)
			delete(out, f.a.Key)
			log = append(log, fmt.Sprintf("%v: finish %v %d: %v (table %+v)", w.now.Sub(t0), f.a.Kind, f.a.Key, f.err, w.leases[f.a.Key]))
			startLate(w.r.Finish(w.now, f.a, f.err, nil))
		}
	})
}
