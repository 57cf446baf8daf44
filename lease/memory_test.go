package lease_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var t0 = time.Date(2025, 10, 20, 9, 25, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestMemoryLifecycle(t *testing.T) {
	var c lease.Counters
	m, err := lease.NewMemory(lease.MemoryConfig{OnEvent: c.Observe})
	require.NoError(t, err)
	a, err := m.GrantAt(at(0), "droplet-1", "dwfm-a", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, fence.Token(1), a.Epoch)
	assert.Equal(t, at(10*time.Second), a.Expires)

	_, err = m.GrantAt(at(5*time.Second), "droplet-1", "dwfm-b", time.Second)
	var held *lease.HeldError
	require.ErrorAs(t, err, &held)
	assert.ErrorIs(t, err, lease.ErrHeld)
	assert.Equal(t, `lease: "droplet-1" held by "dwfm-a" (epoch 1, 5s left); "dwfm-b" must wait`, err.Error())

	a2, err := m.RenewAt(at(8*time.Second), a)
	require.NoError(t, err)
	assert.Equal(t, a.Epoch, a2.Epoch, "renewal keeps the epoch")
	assert.Equal(t, at(18*time.Second), a2.Expires)

	// Expired: another holder gets a newer epoch; the old lease is lost.
	b, err := m.GrantAt(at(18*time.Second), "droplet-1", "dwfm-b", time.Second)
	require.NoError(t, err)
	assert.Equal(t, fence.Token(2), b.Epoch)
	_, err = m.RenewAt(at(18*time.Second), a2)
	var lost *lease.LostError
	require.ErrorAs(t, err, &lost)
	assert.Equal(t, "superseded", lost.Reason)
	assert.Equal(t, fence.Token(2), lost.Current)
	assert.Contains(t, err.Error(), `lease: lost "droplet-1" epoch 1 held by "dwfm-a": superseded (current epoch 2)`)

	require.NoError(t, m.ReleaseAt(at(18500*time.Millisecond), b))
	require.ErrorIs(t, m.ReleaseAt(at(18500*time.Millisecond), b), lease.ErrLost)
	_, ok := m.HolderAt(at(18500*time.Millisecond), "droplet-1")
	assert.False(t, ok)
	c3, err := m.GrantAt(at(18500*time.Millisecond), "droplet-1", "dwfm-a", time.Second)
	require.NoError(t, err)
	assert.Equal(t, fence.Token(3), c3.Epoch)

	// Expiry by the sweep, and a renewal after expiry.
	assert.Equal(t, 1, m.ExpireAt(at(30*time.Second)))
	_, err = m.RenewAt(at(30*time.Second), c3)
	require.ErrorAs(t, err, &lost)
	assert.Equal(t, "expired", lost.Reason)
	// Time never goes backwards inside the table.
	_, err = m.RenewAt(at(19*time.Second), c3)
	assert.ErrorIs(t, err, lease.ErrLost)

	s := c.Stats()
	assert.Equal(t, lease.Stats{Granted: 3, Renewed: 1, Released: 1, Expired: 1, Held: 1, Stale: 4}, s)
	assert.Equal(t, fence.Token(3), m.Epoch("droplet-1"))
}

func TestMemoryStoreShell(t *testing.T) {
	var m lease.Memory // the zero Memory is usable
	ctx := context.Background()
	l, err := m.Grant(ctx, "r", "h", time.Minute)
	require.NoError(t, err)
	got, ok, err := m.Get(ctx, "r")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, l.Epoch, got.Epoch)
	l2, err := m.Renew(ctx, l)
	require.NoError(t, err)
	require.NoError(t, m.Release(ctx, l2))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = m.Grant(cctx, "r", "h", time.Minute)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestBadInput(t *testing.T) {
	m, err := lease.NewMemory(lease.MemoryConfig{MaxResources: 1})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, resource, holder string
		ttl                    time.Duration
		want                   []string
	}{
		{"empty resource", "", "h", time.Second, []string{"empty resource"}},
		{"empty holder", "r", "", time.Second, []string{"empty holder"}},
		{"zero ttl", "r", "h", 0, []string{"TTL 0s is not positive"}},
		{"negative ttl", "r", "h", -time.Second, []string{"TTL -1s is not positive"}},
		{"huge ttl", "r", "h", 25 * time.Hour, []string{"TTL 25h0m0s is above 24h0m0s"}},
		{"long resource", strings.Repeat("r", lease.MaxResourceBytes+1), "h", time.Second, []string{"resource of 1025 bytes"}},
		{"everything", "", "", 0, []string{"empty resource", "empty holder", "TTL 0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.GrantAt(t0, tc.resource, tc.holder, tc.ttl)
			require.ErrorIs(t, err, lease.ErrInvalidArgument)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err = m.RenewAt(t0, lease.Lease{Resource: "r", Holder: "h", TTL: time.Second})
	assert.ErrorIs(t, err, lease.ErrInvalidArgument)
	assert.ErrorIs(t, m.ReleaseAt(t0, lease.Lease{}), lease.ErrInvalidArgument)
	_, err = m.GrantAt(t0, "a", "h", time.Second)
	require.NoError(t, err)
	_, err = m.GrantAt(t0, "b", "h", time.Second)
	assert.ErrorIs(t, err, lease.ErrFull)
	_, err = lease.NewMemory(lease.MemoryConfig{MaxResources: -1})
	assert.ErrorIs(t, err, lease.ErrInvalidConfig)
	_, _, err = m.Get(context.Background(), "")
	assert.ErrorIs(t, err, lease.ErrInvalidArgument)
}

// TestMemoryProperties: at every instant of a random schedule of grants,
// renewals, releases, expiries and clock advances by several holders over a
// few resources, at most one lease per resource is valid — counting every
// lease the table ever handed out and did not take back by a release,
// whatever its epoch — the table's holder is exactly that lease, and every
// grant's epoch is strictly greater than every earlier epoch of its
// resource.
func TestMemoryProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		resources := []string{"r0", "r1", "r2"}
		holders := []string{"a", "b", "c"}
		now := t0
		lastEpoch := map[string]fence.Token{}
		// handedOut is every lease the table granted, per resource and
		// epoch, as last renewed; only a successful release removes one.
		// A lease the table refused to renew stays: it is still valid,
		// as its holder was told, until its Expires.
		handedOut := map[string]map[fence.Token]lease.Lease{}
		leases := map[[2]string]lease.Lease{} // what each holder believes it holds
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for range steps {
			res := rapid.SampledFrom(resources).Draw(t, "resource")
			h := rapid.SampledFrom(holders).Draw(t, "holder")
			key := [2]string{res, h}
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0:
				ttl := time.Duration(rapid.IntRange(1, 50).Draw(t, "ttl")) * time.Millisecond
				l, err := m.GrantAt(now, res, h, ttl)
				if err == nil {
					if l.Epoch <= lastEpoch[res] {
						t.Fatalf("grant of %s epoch %d not above %d", res, l.Epoch, lastEpoch[res])
					}
					lastEpoch[res] = l.Epoch
					leases[key] = l
					if handedOut[res] == nil {
						handedOut[res] = map[fence.Token]lease.Lease{}
					}
					handedOut[res][l.Epoch] = l
				} else if !errors.Is(err, lease.ErrHeld) {
					t.Fatalf("grant: %v", err)
				}
			case 1:
				if l, ok := leases[key]; ok {
					nl, err := m.RenewAt(now, l)
					if err == nil {
						if nl.Epoch != l.Epoch {
							t.Fatalf("renewal changed the epoch")
						}
						leases[key] = nl
						handedOut[res][nl.Epoch] = nl
					} else if !errors.Is(err, lease.ErrLost) {
						t.Fatalf("renew: %v", err)
					} else {
						delete(leases, key)
					}
				}
			case 2:
				if l, ok := leases[key]; ok {
					err := m.ReleaseAt(now, l)
					if err == nil {
						delete(handedOut[res], l.Epoch)
					} else if !errors.Is(err, lease.ErrLost) {
						t.Fatalf("release: %v", err)
					}
					delete(leases, key)
				}
			case 3:
				m.ExpireAt(now)
			case 4:
				now = now.Add(time.Duration(rapid.IntRange(0, 30).Draw(t, "advance")) * time.Millisecond)
			}
			// The invariant, at this instant.
			for _, r := range resources {
				var valid []lease.Lease
				for _, l := range handedOut[r] {
					if l.ValidAt(now, 0) {
						valid = append(valid, l)
					}
				}
				cur, held := m.HolderAt(now, r)
				if len(valid) > 1 {
					t.Fatalf("%d leases of %s valid at once: %+v", len(valid), r, valid)
				}
				if len(valid) == 1 && !held {
					t.Fatalf("%s's lease on %s (epoch %d) is valid but the table has no holder", valid[0].Holder, r, valid[0].Epoch)
				}
				if held && (len(valid) != 1 || cur.Epoch != valid[0].Epoch || cur.Holder != valid[0].Holder) {
					t.Fatalf("table holder of %s is %s epoch %d, but the valid leases are %+v", r, cur.Holder, cur.Epoch, valid)
				}
				if held && cur.Epoch != lastEpoch[r] {
					t.Fatalf("table holder of %s has epoch %d, newest %d", r, cur.Epoch, lastEpoch[r])
				}
			}
		}
	})
}

// TestKeeperScheduleNeverHeldAfterGrant: a holder following KeeperConfig's
// pure schedule (LostAt), on a clock that lags the table's by a varying
// amount within its drift margin, never counts its lease held at an
// instant when the table would grant the resource to another holder. It
// checks the arithmetic only; TestKeeperNeverHeldAfterGrant drives a real
// Keeper.
func TestKeeperScheduleNeverHeldAfterGrant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		ttl := time.Duration(rapid.IntRange(10, 1000).Draw(t, "ttl")) * time.Millisecond
		drift := time.Duration(rapid.Int64Range(1, int64(ttl)/2).Draw(t, "drift"))
		cfg := lease.KeeperConfig{Store: m, DriftMargin: drift, RenewFraction: 0.3}
		now := t0
		skew := func() time.Duration { return time.Duration(rapid.Int64Range(0, int64(drift)).Draw(t, "skew")) }
		// The holder's view: its lease with Renewed/Expires on its own
		// clock, measured when it sent the request.
		tl, err := m.GrantAt(now, "r", "keeper", ttl)
		if err != nil {
			t.Fatal(err)
		}
		sent := now.Add(-skew())
		view := tl
		view.Renewed, view.Expires = sent, sent.Add(ttl)
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.Int64Range(0, int64(ttl)/3).Draw(t, "advance")))
			holderNow := now.Add(-skew())
			held := holderNow.Before(cfg.LostAt(view))
			if held {
				if _, err := m.GrantAt(now, "r", "other", ttl); err == nil {
					t.Fatalf("table granted to another at %v while the keeper reports held until %v (its clock %v)", now.Sub(t0), cfg.LostAt(view).Sub(t0), holderNow.Sub(t0))
				}
			}
			if held && rapid.Bool().Draw(t, "renew") {
				// The request is sent at holderNow and lands a little later.
				sent := holderNow
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(drift)/2).Draw(t, "latency")))
				if nl, err := m.RenewAt(now, tl); err == nil {
					tl = nl
					view = nl
					view.Renewed, view.Expires = sent, sent.Add(ttl)
				}
			}
		}
	})
}
