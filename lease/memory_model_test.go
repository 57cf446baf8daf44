package lease_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"pgregory.net/rapid"
)

// TestMemoryModelProperty checks Memory against a model that never
// forgets, under grants, renewals and releases by several holders, with
// MaxResources churn, ExpireAt sweeps, and callers whose clocks go
// backwards (the table judges them at the latest time it has seen):
//
//   - a grant succeeds exactly when the model has no unexpired lease on
//     the resource, unless the table is full, and ErrFull comes only when
//     MaxResources resources have unexpired leases;
//   - every grant's epoch is above every epoch ever granted, on any
//     resource, forgotten or not;
//   - a renewal or release succeeds exactly when the lease is the
//     resource's unexpired lease in the model: a forgotten, expired,
//     released or superseded lease is never revived, and a release of an
//     old epoch after a re-grant ends nothing;
//   - HolderAt agrees with the model, at the latest time and at any time
//     up to an hour ahead, and a read never moves the table's clock.
func TestMemoryModelProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		maxRes := rapid.IntRange(1, 4).Draw(rt, "maxResources")
		names := rapid.IntRange(1, 3*maxRes+2).Draw(rt, "names")
		m, err := lease.NewMemory(lease.MemoryConfig{MaxResources: maxRes})
		if err != nil {
			rt.Fatal(err)
		}
		latest := t0   // the model's clock: the latest time seen
		m.ExpireAt(t0) // a write: the table's clock starts at t0
		judge := func(now time.Time) time.Time {
			if now.After(latest) {
				latest = now
			}
			return latest
		}
		live := map[string]lease.Lease{} // the model's current lease per resource, if not ended
		var top fence.Token
		var all []lease.Lease
		liveAt := func(now time.Time) int {
			n := 0
			for r, l := range live {
				if now.Before(l.Expires) {
					n++
				} else {
					delete(live, r)
				}
			}
			return n
		}
		for range rapid.IntRange(1, 150).Draw(rt, "steps") {
			// A caller's clock: around the latest, possibly behind it.
			now := latest.Add(time.Duration(rapid.Int64Range(-int64(2*time.Second), int64(2*time.Second)).Draw(rt, "skew")))
			res := fmt.Sprintf("r%d", rapid.IntRange(0, names-1).Draw(rt, "res"))
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0, 1:
				holder := rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "holder")
				ttl := time.Duration(rapid.Int64Range(1, int64(3*time.Second)).Draw(rt, "ttl"))
				l, err := m.GrantAt(now, res, holder, ttl)
				at := judge(now)
				n := liveAt(at)
				_, held := live[res]
				switch {
				case held:
					var he *lease.HeldError
					if !errors.As(err, &he) || he.Holder != live[res].Holder || he.Epoch != live[res].Epoch || he.Remaining != live[res].Expires.Sub(at) {
						rt.Fatalf("grant of held %s (%+v): %v", res, live[res], err)
					}
				case errors.Is(err, lease.ErrFull):
					if n < maxRes {
						rt.Fatalf("grant of %s refused as full with %d of %d resources leased: %v", res, n, maxRes, err)
					}
				case err != nil:
					rt.Fatalf("grant of free %s: %v", res, err)
				default:
					if l.Epoch <= top {
						rt.Fatalf("grant of %s has epoch %d, not above %d", res, l.Epoch, top)
					}
					if !l.Renewed.Equal(at) || !l.Expires.Equal(at.Add(ttl)) {
						rt.Fatalf("grant judged at %v, not the latest time %v: %+v", l.Renewed, at, l)
					}
					top = l.Epoch
					live[res] = l
					all = append(all, l)
				}
			case 2, 3:
				if len(all) == 0 {
					continue
				}
				l := all[rapid.IntRange(0, len(all)-1).Draw(rt, "lease")]
				release := rapid.Bool().Draw(rt, "release")
				var err error
				var nl lease.Lease
				if release {
					err = m.ReleaseAt(now, l)
				} else {
					nl, err = m.RenewAt(now, l)
				}
				at := judge(now)
				liveAt(at)
				cur, ok := live[l.Resource]
				valid := ok && cur.Epoch == l.Epoch
				if valid != (err == nil) {
					rt.Fatalf("%v of %s epoch %d at %v: model valid=%v (%+v), table said %v", map[bool]string{true: "release", false: "renewal"}[release], l.Resource, l.Epoch, at.Sub(t0), valid, cur, err)
				}
				if err != nil && !errors.Is(err, lease.ErrLost) {
					rt.Fatalf("refusal is not ErrLost: %v", err)
				}
				if err == nil && release {
					delete(live, l.Resource)
				} else if err == nil {
					if nl.Epoch != l.Epoch || !nl.Expires.Equal(at.Add(cur.TTL)) {
						rt.Fatalf("renewal of %+v at %v gave %+v", l, at.Sub(t0), nl)
					}
					live[l.Resource] = nl
				}
			case 4:
				m.ExpireAt(now)
				judge(now)
			case 5:
				// A read at any time, up to an hour ahead, answers for
				// that time (or the latest, if earlier) and moves no
				// clock: the model's latest stays where it is.
				q := now.Add(time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(rt, "ahead")))
				qt := q
				if qt.Before(latest) {
					qt = latest
				}
				h, ok := m.HolderAt(q, res)
				l, want := live[res]
				want = want && qt.Before(l.Expires)
				if ok != want || ok && (h.Epoch != l.Epoch || h.Holder != l.Holder) {
					rt.Fatalf("read of %s at %v (latest %v): table holder %v %+v, model %v %+v", res, q.Sub(t0), latest.Sub(t0), ok, h, want, l)
				}
			}
			at := latest
			liveAt(at)
			for i := range names {
				r := fmt.Sprintf("r%d", i)
				h, ok := m.HolderAt(at, r)
				l, want := live[r]
				if ok != want || ok && (h.Epoch != l.Epoch || h.Holder != l.Holder) {
					rt.Fatalf("%s at %v: table holder %v %+v, model %v %+v", r, at.Sub(t0), ok, h, want, l)
				}
			}
		}
	})
}
