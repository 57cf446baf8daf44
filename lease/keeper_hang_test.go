package lease_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deaf wraps a Store whose Renew hangs for hang, ignoring its context,
// then renews for real (late).
type deaf struct {
	lease.Store
	hang    time.Duration
	calls   atomic.Int64
	returns atomic.Int64
}

func (d *deaf) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	d.calls.Add(1)
	defer d.returns.Add(1)
	time.Sleep(d.hang)
	return d.Store.Renew(context.Background(), l)
}

// TestKeeperLostOnTimeWhenRenewHangs: a Store whose Renew hangs 30s and
// ignores its context does not delay the loss: OnLost runs and Lost closes
// at LostAt exactly, on the keeper's own timer, with or without an
// AttemptTimeout; the store's late answer changes nothing afterwards; and
// Stop does not wait for the store.
func TestKeeperLostOnTimeWhenRenewHangs(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Second} {
		synctest.Test(t, func(t *testing.T) {
			m, _ := lease.NewMemory(lease.MemoryConfig{})
			st := &deaf{Store: m, hang: 30 * time.Second}
			start := time.Now()
			l, err := m.Grant(context.Background(), "r", "h", 10*time.Second)
			require.NoError(t, err)
			var onLostAt atomic.Int64
			var events atomic.Int64
			k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{
				Store: st, AttemptTimeout: timeout,
				OnLost:  func(error) { onLostAt.Store(int64(time.Since(start))) },
				OnEvent: func(lease.Event) { events.Add(1) },
			})
			require.NoError(t, err)
			lostAt := lease.KeeperConfig{}.LostAt(l)
			<-k.Lost()
			assert.Equal(t, lostAt.Sub(start), time.Since(start), "Lost closed at LostAt, not when the store answered")
			assert.Equal(t, int64(lostAt.Sub(start)), onLostAt.Load(), "OnLost ran at LostAt")
			assert.False(t, k.Held())
			assert.ErrorIs(t, k.Err(), lease.ErrLost)
			evs := events.Load()
			k.Stop()
			assert.Equal(t, lostAt.Sub(start), time.Since(start), "Stop does not wait for the store")
			// The store answers late: the renewal lands in the table, but the
			// keeper has given the lease up and stays so.
			time.Sleep(time.Minute)
			synctest.Wait()
			assert.Equal(t, st.calls.Load(), st.returns.Load(), "every store call returned")
			assert.False(t, k.Held(), "a late answer does not revive the lease")
			assert.ErrorIs(t, k.Err(), lease.ErrLost)
			assert.Equal(t, l.Expires, k.Lease().Expires, "a late answer does not change the lease")
			assert.Equal(t, evs, events.Load(), "no event after the loss")
		})
	}
}

// deafRelease is a Store whose Release hangs for an hour, ignoring its
// context.
type deafRelease struct{ lease.Store }

func (d deafRelease) Release(ctx context.Context, l lease.Lease) error {
	time.Sleep(time.Hour)
	return d.Store.Release(context.Background(), l)
}

// TestKeeperStopWhenReleaseHangs: with ReleaseOnStop, a Release that hangs
// and ignores its context holds Stop no later than the loss deadline.
func TestKeeperStopWhenReleaseHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		start := time.Now()
		l, err := m.Grant(context.Background(), "r", "h", 10*time.Second)
		require.NoError(t, err)
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: deafRelease{m}, ReleaseOnStop: true})
		require.NoError(t, err)
		time.Sleep(time.Second)
		k.Stop()
		assert.Equal(t, 9*time.Second, time.Since(start), "Stop waited for the release until the loss deadline, not longer")
		time.Sleep(2 * time.Hour)
	})
}
