package lease_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestMemoryChurn: a table with MaxResources 2 whose resources are granted,
// released and forgotten keeps granting new names, and a resource granted
// again after being forgotten gets an epoch above every epoch it had.
func TestMemoryChurn(t *testing.T) {
	m, err := lease.NewMemory(lease.MemoryConfig{MaxResources: 2})
	require.NoError(t, err)
	r1, err := m.GrantAt(at(0), "r1", "h", time.Second)
	require.NoError(t, err)
	r2, err := m.GrantAt(at(0), "r2", "h", time.Second)
	require.NoError(t, err)
	require.NoError(t, m.ReleaseAt(at(time.Millisecond), r1))
	_, err = m.GrantAt(at(2*time.Millisecond), "r3", "h", time.Second)
	require.NoError(t, err, "r1 was released: its record can make room")
	_, err = m.GrantAt(at(3*time.Millisecond), "r4", "h", time.Second)
	assert.ErrorIs(t, err, lease.ErrFull, "r2 and r3 are both held")
	assert.ErrorContains(t, err, "2 resources with unexpired leases, limit 2")
	_, err = m.GrantAt(at(time.Hour), "r4", "h", time.Second)
	require.NoError(t, err, "an hour later every lease has expired")
	again, err := m.GrantAt(at(time.Hour), "r1", "h", time.Second)
	require.NoError(t, err)
	assert.Greater(t, again.Epoch, r2.Epoch, "epochs are table-wide: above every epoch granted before")
	assert.Greater(t, again.Epoch, r1.Epoch)
	_, err = m.RenewAt(at(time.Hour), r1)
	assert.ErrorIs(t, err, lease.ErrLost, "the forgotten term stays lost")
}

// TestMemoryChurnProperty: under any sequence of grants, renewals,
// releases and clock advances over more names than MaxResources, every
// grant of a resource carries an epoch above every epoch it had before
// (even after its record was forgotten); a grant is refused as full only
// when MaxResources other resources have unexpired leases; at most one
// lease per resource is unexpired; and no lost lease is renewed.
func TestMemoryChurnProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		maxRes := rapid.IntRange(1, 4).Draw(rt, "maxResources")
		names := rapid.IntRange(maxRes+1, 3*maxRes+2).Draw(rt, "names")
		m, err := lease.NewMemory(lease.MemoryConfig{MaxResources: maxRes})
		if err != nil {
			rt.Fatal(err)
		}
		now := t0
		maxEpoch := map[string]fence.Token{} // the model never forgets
		live := map[string]lease.Lease{}     // the model's unexpired leases
		var all []lease.Lease
		liveAt := func() int {
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
		for range rapid.IntRange(1, 200).Draw(rt, "steps") {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(3*time.Second)).Draw(rt, "advance")))
			case 1:
				res := fmt.Sprintf("r%d", rapid.IntRange(0, names-1).Draw(rt, "res"))
				ttl := time.Duration(rapid.Int64Range(1, int64(2*time.Second)).Draw(rt, "ttl"))
				n := liveAt()
				l, err := m.GrantAt(now, res, "h", ttl)
				_, held := live[res]
				switch {
				case held:
					if !errors.Is(err, lease.ErrHeld) {
						rt.Fatalf("grant of held %s: %v", res, err)
					}
				case errors.Is(err, lease.ErrFull):
					if n < maxRes {
						rt.Fatalf("grant of %s refused as full with %d of %d resources leased: %v", res, n, maxRes, err)
					}
				case err != nil:
					rt.Fatalf("grant of %s: %v", res, err)
				default:
					if l.Epoch <= maxEpoch[res] {
						rt.Fatalf("grant of %s has epoch %d, not above its earlier epoch %d", res, l.Epoch, maxEpoch[res])
					}
					maxEpoch[res] = l.Epoch
					live[res] = l
					all = append(all, l)
				}
			case 2, 3:
				if len(all) == 0 {
					continue
				}
				l := all[rapid.IntRange(0, len(all)-1).Draw(rt, "lease")]
				liveAt()
				cur, ok := live[l.Resource]
				valid := ok && cur.Epoch == l.Epoch
				var err error
				if rapid.Bool().Draw(rt, "release") {
					err = m.ReleaseAt(now, l)
					if err == nil {
						delete(live, l.Resource)
					}
				} else {
					var nl lease.Lease
					nl, err = m.RenewAt(now, l)
					if err == nil {
						live[l.Resource] = nl
					}
				}
				if valid != (err == nil) {
					rt.Fatalf("lease %s epoch %d: model says valid=%v, table said %v", l.Resource, l.Epoch, valid, err)
				}
			}
			liveAt()
			for res := range maxEpoch {
				h, ok := m.HolderAt(now, res)
				l, want := live[res]
				if ok != want || ok && h.Epoch != l.Epoch {
					rt.Fatalf("%s: table holder %v %+v, model %v %+v", res, ok, h, want, l)
				}
			}
		}
	})
}
