package lease_test

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"pgregory.net/rapid"
)

// outageWorld runs a Recovery's attempts against a Memory table on a
// virtual clock, the table unreachable during [down, up): an attempt
// reaches the table halfway through its cost and fails at its end if the
// table is down then; one that runs past its Deadline is cut off there
// by its context (and reaches the table only if halfway came first).
type outageWorld struct {
	r        *lease.Recovery[int]
	m        *lease.Memory
	cfg      lease.RecoveryConfig
	now      time.Time
	down, up time.Time
	rng      *rand.Rand
	minCost  time.Duration
	maxCost  time.Duration
	leases   map[int]lease.Lease // the table's answer to each key's last grant or renewal
	running  finishes
	seq      int
	// renewals[k] lists when each renewal attempt of key k started.
	renewals map[int][]time.Time
}

type finish struct {
	at  time.Time
	seq int
	a   lease.Attempt[int]
	err error
}

type finishes []finish

func (h finishes) Len() int { return len(h) }
func (h finishes) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h finishes) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *finishes) Push(x any)   { *h = append(*h, x.(finish)) }
func (h *finishes) Pop() any {
	old := *h
	f := old[len(old)-1]
	*h = old[:len(old)-1]
	return f
}

var errTableDown = errors.New("table unreachable")

func newOutageWorld(cfg lease.RecoveryConfig, seed uint64, keys int, down, up time.Duration) (*outageWorld, error) {
	cfg.Rand = rand.New(rand.NewPCG(seed, 2011))
	r, err := lease.NewRecovery[int](cfg)
	if err != nil {
		return nil, err
	}
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	w := &outageWorld{r: r, m: m, cfg: cfg, now: t0, down: t0.Add(down), up: t0.Add(up),
		rng: rand.New(rand.NewPCG(seed, 2025)), minCost: time.Millisecond, maxCost: 20 * time.Millisecond,
		leases: map[int]lease.Lease{}, renewals: map[int][]time.Time{}}
	for k := range keys {
		if err := r.Add(t0, k); err != nil {
			return nil, err
		}
	}
	w.start(r.Start(t0, nil))
	return w, nil
}

func (w *outageWorld) isDown(t time.Time) bool { return !t.Before(w.down) && t.Before(w.up) }

// start runs each attempt: its result is decided now, from the table at
// the instant it reaches it, and reported at its end.
func (w *outageWorld) start(as []lease.Attempt[int]) {
	for _, a := range as {
		c := w.minCost + time.Duration(w.rng.Int64N(int64(w.maxCost-w.minCost)+1))
		end, reach := a.Started.Add(c), a.Started.Add(c/2)
		var err error
		if !reach.Before(a.Deadline) {
			err = errors.New("context deadline exceeded")
		} else if w.isDown(reach) || w.isDown(end) {
			// Down when the request arrives, or when its answer would
			// come back (the outcome is then unknown to the caller).
			if !w.isDown(reach) {
				w.apply(reach, a)
			}
			err = errTableDown
		} else {
			err = w.apply(reach, a)
		}
		if end.After(a.Deadline) {
			end = a.Deadline
			if err == nil {
				err = errors.New("context deadline exceeded")
			}
		}
		if a.Kind == lease.Renew {
			w.renewals[a.Key] = append(w.renewals[a.Key], a.Started)
		}
		w.seq++
		heap.Push(&w.running, finish{at: end, seq: w.seq, a: a, err: err})
	}
}

func (w *outageWorld) apply(at time.Time, a lease.Attempt[int]) error {
	if a.Kind == lease.Establish {
		l, err := w.m.GrantAt(at, fmt.Sprint(a.Key), "recovery", w.cfg.TTL)
		if err == nil {
			w.leases[a.Key] = l
		}
		return err
	}
	l, ok := w.leases[a.Key]
	if !ok {
		return fmt.Errorf("renewal of key %d, which was never granted", a.Key)
	}
	nl, err := w.m.RenewAt(at, l)
	if err == nil {
		w.leases[a.Key] = nl
	}
	return err
}

// runUntil drives the Recovery to end; each finished attempt is checked
// by check, if not nil.
func (w *outageWorld) runUntil(end time.Time, check func(f finish) error) error {
	for {
		next, wake := end, false
		if len(w.running) > 0 && w.running[0].at.Before(next) {
			next = w.running[0].at
		}
		if t, ok := w.r.Wake(); ok && t.Before(next) {
			next, wake = t, true
		}
		if !next.Before(end) {
			w.now = end
			return nil
		}
		if next.After(w.now) {
			w.now = next
		}
		if wake {
			w.start(w.r.Start(w.now, nil))
			continue
		}
		f := heap.Pop(&w.running).(finish)
		if check != nil {
			if err := check(f); err != nil {
				return err
			}
		}
		w.start(w.r.Finish(w.now, f.a, f.err, nil))
	}
}

// TestRecoveryOwnLeaseBlip is the reviewer's case: Workers 4, TTL 10s,
// AttemptTimeout 2s, default drift and retry, the table unreachable from
// 5s to 9s. Every key comes through, on every seed: a renewal that cannot
// finish before the loss deadline is not followed by establishments that
// the Recovery's own lease refuses and that count against the key.
func TestRecoveryOwnLeaseBlip(t *testing.T) {
	for _, keys := range []int{1, 4, 40} {
		for seed := range uint64(200) {
			cfg := lease.RecoveryConfig{Workers: 4, TTL: 10 * time.Second, AttemptTimeout: 2 * time.Second}
			w, err := newOutageWorld(cfg, seed, keys, 5*time.Second, 9*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.runUntil(t0.Add(40*time.Second), nil); err != nil {
				t.Fatal(err)
			}
			if p := w.r.Progress(w.now); p.Failed != 0 || p.Established != keys {
				t.Fatalf("%d keys, seed %d: %+v after a 4s outage", keys, seed, p)
			}
		}
	}
}

// TestRecoveryOutageProperty draws an outage window, a seed, RenewFraction
// and DriftMargin. The outage starts once every key is established and
// lasts less than the TTL (so also less than TTL−DriftMargin−
// AttemptTimeout). However the renewals and establishments fall, no key is
// ever failed: a key whose lease lapses in the outage waits out that lease
// in the table (which a last renewal of unknown outcome may have extended
// by a TTL), and establishments that fail before it ends do not count
// against the key. Every key is established again within two TTLs and an
// attempt timeout after the outage. Renewal attempts of a key during the
// outage are bounded by the backoff schedule: with equal jitter each delay
// is at least half its envelope, so at most 2+⌈log2((outage+1s)/(Base/2))⌉
// (the first attempt, the backoff's, and one last attempt fitted before
// the loss deadline), never the thousands of a retry loop.
func TestRecoveryOutageProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		keys := rapid.IntRange(1, 30).Draw(rt, "keys")
		ttl := time.Duration(rapid.IntRange(2, 20).Draw(rt, "ttlSeconds")) * time.Second
		drift := time.Duration(rapid.Int64Range(0, int64(ttl)/4).Draw(rt, "drift"))
		fraction := float64(rapid.IntRange(20, 70).Draw(rt, "renewPercent")) / 100
		cfg := lease.RecoveryConfig{
			Workers: rapid.IntRange(1, 8).Draw(rt, "workers"), TTL: ttl, DriftMargin: drift, RenewFraction: fraction,
			AttemptTimeout: time.Duration(rapid.Int64Range(int64(ttl)/10, int64(ttl)/2).Draw(rt, "timeout")),
			Retry:          backoff.Policy{Jitter: rapid.SampledFrom([]backoff.Jitter{backoff.JitterFull, backoff.JitterEqual}).Draw(rt, "jitter")},
		}
		seed := rapid.Uint64().Draw(rt, "seed")
		// Establish every key first, with the table up.
		w, err := newOutageWorld(cfg, seed, keys, 0, 0)
		if err != nil {
			rt.Fatal(err)
		}
		if err := w.runUntil(t0.Add(time.Second), nil); err != nil {
			rt.Fatal(err)
		}
		if p := w.r.Progress(w.now); p.Established != keys {
			rt.Fatalf("not every key established with the table up: %+v", p)
		}
		d := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(ttl)-1).Draw(rt, "outage"))
		w.down = w.now.Add(time.Duration(rapid.Int64Range(0, int64(ttl)).Draw(rt, "outageStart")))
		w.up = w.down.Add(d)
		if err := w.runUntil(w.up.Add(2*ttl+cfg.AttemptTimeout), nil); err != nil {
			rt.Fatal(err)
		}
		p := w.r.Progress(w.now)
		if p.Failed != 0 || p.Established != keys {
			rt.Fatalf("outage of %v (< TTL %v): %+v", d, ttl, p)
		}
		if cfg.Retry.Jitter == backoff.JitterEqual {
			// Delays at least Base/2, 2·Base/2, 4·Base/2, ... (Base 100ms).
			bound := 2
			for span := 50 * time.Millisecond; span < d+time.Second; span *= 2 {
				bound++
			}
			for k, starts := range w.renewals {
				n := 0
				for _, s := range starts {
					if !s.Before(w.down) && s.Before(w.up) {
						n++
					}
				}
				if n > bound {
					rt.Fatalf("key %d: %d renewal attempts during an outage of %v, backoff allows %d", k, n, d, bound)
				}
			}
		}
	})
}

// TestRecoveryOutageSeed10771778360245672608 is the case rapid found
// (-rapid.seed=10771778360245672608): 4 keys, 2 workers, TTL 2s, the
// default drift margin (a drawn 0, so TTL/10), RenewFraction 0.5,
// AttemptTimeout 200ms, full jitter, an outage of 1.999999999s from the
// moment every key is established. A key lapsed at 1.8s after renewals of
// unknown outcome, so its lease may run to 4s (4.2s with the drift margin);
// its establishments failing from 2s grew its delay to several seconds,
// and it was still pending at up+2·TTL+timeout (7.2s).
func TestRecoveryOutageSeed10771778360245672608(t *testing.T) {
	ttl := 2 * time.Second
	cfg := lease.RecoveryConfig{Workers: 2, TTL: ttl, RenewFraction: 0.5, AttemptTimeout: 200 * time.Millisecond,
		Retry: backoff.Policy{Jitter: backoff.JitterFull}}
	w, err := newOutageWorld(cfg, 0x6f, 4, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.runUntil(t0.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	w.down = w.now
	w.up = w.down.Add(1999999999)
	if err := w.runUntil(w.up.Add(2*ttl+cfg.AttemptTimeout), nil); err != nil {
		t.Fatal(err)
	}
	if p := w.r.Progress(w.now); p.Failed != 0 || p.Established != 4 {
		t.Fatalf("outage of 1.999999999s (< TTL 2s): %+v", p)
	}
}

// TestRecoveryOwnLeaseRetryBound: a key's renewals fail with an unknown
// outcome until its lease lapses at its loss deadline, so its lease may
// run in the table until its expiry plus a TTL, and has surely ended a
// drift margin after that, at E; the table stays down until just past E.
// Its establishments fail meanwhile without counting, and however many
// there are, the next one starts no later than E: the delay grown by the
// uncounted failures is cut to the time left until E. After E the
// uncounted failures do not escalate the backoff beyond that last delay:
// with the table back just after the attempt at E failed, the key is held
// again within
// max(Retry's envelope for one failure, the delay before E) of E, and is
// never failed.
func TestRecoveryOwnLeaseRetryBound(t *testing.T) {
	const cost = 5 * time.Millisecond
	for seed := range uint64(200) {
		ttl, drift := 2*time.Second, 100*time.Millisecond
		cfg := lease.RecoveryConfig{Workers: 1, TTL: ttl, DriftMargin: drift, AttemptTimeout: 200 * time.Millisecond,
			InitialCost: cost, Rand: rand.New(rand.NewPCG(seed, 7))}
		r, err := lease.NewRecovery[int](cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Add(t0, 1); err != nil {
			t.Fatal(err)
		}
		as := r.Start(t0, nil)
		now := t0.Add(cost)
		as = r.Finish(now, as[0], nil, nil) // held: expires t0+2s, lost at t0+1.9s
		// Its lease expires at t0+TTL, a TTL later if a renewal of unknown
		// outcome landed, and has surely ended a drift margin after that.
		end := t0.Add(2*ttl + drift)
		up := end.Add(cost + time.Millisecond) // the attempt at end fails
		var lastBefore time.Time               // the last establishment started before end
		startedAtEnd, held := false, time.Time{}
		for step := 0; held.IsZero(); step++ {
			if step > 10000 || now.After(end.Add(time.Minute)) {
				t.Fatalf("seed %d: no lease a minute after %v: %+v", seed, end.Sub(t0), r.Progress(now))
			}
			if len(as) == 0 {
				wake, ok := r.Wake()
				if !ok {
					t.Fatalf("seed %d: nothing to wake for at %v: %+v", seed, now.Sub(t0), r.Progress(now))
				}
				now = laterTime(now, wake)
				as = r.Start(now, nil)
				continue
			}
			a := as[0]
			if a.Kind == lease.Establish {
				if a.Started.Before(end) {
					lastBefore = a.Started
				} else if !startedAtEnd {
					startedAtEnd = true
					if a.Started.After(end) {
						t.Fatalf("seed %d: first establishment at or after the lease's end %v starts at %v (the one before at %v)",
							seed, end.Sub(t0), a.Started.Sub(t0), lastBefore.Sub(t0))
					}
				}
			}
			now = a.Started.Add(cost)
			var ferr error
			if now.Before(up) {
				ferr = errTableDown
			} else if a.Kind == lease.Establish {
				held = now
			}
			as = r.Finish(now, a, ferr, nil)
		}
		if p := r.Progress(now); p.Failed != 0 || p.Established != 1 {
			t.Fatalf("seed %d: %+v", seed, p)
		}
		// The retry after the failure at end+cost waits at most
		// max(Envelope(1), end−lastBefore) (at least MinRenewInterval).
		if bound := end.Add(cost).Add(max(backoff.Policy{}.Envelope(1), end.Sub(lastBefore)) + lease.MinRenewInterval + cost); held.After(bound) {
			t.Fatalf("seed %d: held again at %v, after %v (the lease ended at %v)", seed, held.Sub(t0), bound.Sub(t0), end.Sub(t0))
		}
	}
}

// TestRecoveryRenewsBeforeAnyRenewalMeasured is a case rapid found: TTL
// 2s, DriftMargin 500ms, RenewFraction 0.7 leave a renewal window of
// 100ms, and AttemptTimeout 1s makes InitialCost 100ms. With the table up
// (but for 1ms) and attempts of 1–20ms, the renewal was never started — at
// the assumed 100ms it could not finish before the loss deadline — so no
// renewal cost was ever measured, and every lease lapsed, term after term.
// A renewal assumes the measured cost of an establishment until one has
// been measured.
func TestRecoveryRenewsBeforeAnyRenewalMeasured(t *testing.T) {
	ttl := 2 * time.Second
	cfg := lease.RecoveryConfig{Workers: 1, TTL: ttl, DriftMargin: 500 * time.Millisecond, RenewFraction: 0.7,
		AttemptTimeout: time.Second, Retry: backoff.Policy{Jitter: backoff.JitterFull}}
	w, err := newOutageWorld(cfg, 0, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.runUntil(t0.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	w.down = w.now
	w.up = w.down.Add(time.Millisecond)
	if err := w.runUntil(w.up.Add(2*ttl+cfg.AttemptTimeout), nil); err != nil {
		t.Fatal(err)
	}
	if p := w.r.Progress(w.now); p.Failed != 0 || p.Established != 1 || p.Lapsed != 0 {
		t.Fatalf("outage of 1ms (< TTL 2s): %+v", p)
	}
}
