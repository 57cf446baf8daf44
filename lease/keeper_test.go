package lease_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flaky wraps a Store: renew decides, per renewal, how long it takes and
// whether it fails before reaching the table.
type flaky struct {
	lease.Store
	renews atomic.Int64
	renew  func(n int64) (time.Duration, error)
}

func (f *flaky) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	n := f.renews.Add(1)
	if f.renew != nil {
		d, err := f.renew(n)
		if d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return lease.Lease{}, ctx.Err()
			}
		}
		if err != nil {
			return lease.Lease{}, err
		}
	}
	return f.Store.Renew(ctx, l)
}

func TestKeeperRenewsAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		st := &flaky{Store: m}
		ctx := context.Background()
		l, err := m.Grant(ctx, "droplet-1", "dwfm-a", 10*time.Second)
		require.NoError(t, err)
		var c lease.Counters
		k, err := lease.Keep(ctx, l, lease.KeeperConfig{Store: st, ReleaseOnStop: true, OnEvent: c.Observe})
		require.NoError(t, err)
		time.Sleep(time.Minute)
		synctest.Wait() // the renewal due at the same instant, too
		assert.True(t, k.Held())
		assert.Equal(t, l.Epoch, k.Lease().Epoch, "renewal keeps the epoch")
		assert.Equal(t, int64(12), st.renews.Load(), "renewed every 5s (half the TTL)")
		assert.Equal(t, uint64(12), c.Stats().Renewed)
		k.Stop()
		k.Stop() // idempotent
		assert.ErrorIs(t, k.Err(), context.Canceled)
		assert.False(t, k.Held())
		_, held, _ := m.Get(ctx, "droplet-1")
		assert.False(t, held, "released on stop")
		select {
		case <-k.Lost():
			t.Fatal("a stopped keeper did not lose its lease")
		default:
		}
	})
}

// TestKeeperLostAtDriftDeadline: every renewal fails; the keeper retries
// with backoff and gives the lease up exactly at Expires−DriftMargin, while
// the table still holds it, so no other holder can have it yet.
func TestKeeperLostAtDriftDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		unavailable := errors.New("dynamodb unavailable")
		st := &flaky{Store: m, renew: func(int64) (time.Duration, error) { return 0, unavailable }}
		ctx := context.Background()
		start := time.Now()
		l, err := m.Grant(ctx, "droplet-1", "dwfm-a", 10*time.Second)
		require.NoError(t, err)
		var lostAt time.Time
		var lostErr error
		k, err := lease.Keep(ctx, l, lease.KeeperConfig{
			Store: st, DriftMargin: 2 * time.Second,
			Retry:  backoff.Policy{Base: 200 * time.Millisecond, Cap: time.Second, Jitter: backoff.JitterNone},
			OnLost: func(err error) { lostAt, lostErr = time.Now(), err },
		})
		require.NoError(t, err)
		time.Sleep(8*time.Second - time.Nanosecond)
		assert.True(t, k.Held(), "held until the drift deadline")
		<-k.Lost()
		assert.Equal(t, 8*time.Second, lostAt.Sub(start), "lost at Expires−DriftMargin, not later")
		assert.False(t, k.Held())
		assert.ErrorIs(t, lostErr, lease.ErrLost)
		assert.ErrorIs(t, lostErr, unavailable)
		assert.ErrorIs(t, k.Err(), lease.ErrLost)
		// Renewals at 5s, 5.2s, 5.6s, 6.4s, 7.4s; the next, at 8.4s, would
		// be past the deadline.
		assert.Equal(t, int64(5), st.renews.Load())
		_, err = m.Grant(ctx, "droplet-1", "dwfm-b", time.Second)
		assert.ErrorIs(t, err, lease.ErrHeld, "the table still has the old lease when the keeper gives up")
		<-k.Done()
	})
}

// TestKeeperSlowRenewal: a renewal that hangs past the loss deadline is
// cut off there, and the lease reported lost at that instant.
func TestKeeperSlowRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		st := &flaky{Store: m, renew: func(int64) (time.Duration, error) { return time.Hour, nil }}
		start := time.Now()
		l, _ := m.Grant(context.Background(), "r", "h", 10*time.Second)
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: st})
		require.NoError(t, err)
		<-k.Lost()
		assert.Equal(t, 9*time.Second, time.Since(start), "default drift margin TTL/10")
		assert.ErrorIs(t, k.Err(), context.DeadlineExceeded)
	})
}

func TestKeeperSuperseded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, _ := m.Grant(context.Background(), "r", "h", 10*time.Second)
		require.NoError(t, m.Release(context.Background(), l))
		_, err := m.Grant(context.Background(), "r", "other", 10*time.Second)
		require.NoError(t, err)
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: m})
		require.NoError(t, err)
		<-k.Lost()
		var le *lease.LostError
		require.ErrorAs(t, k.Err(), &le)
		assert.Equal(t, "superseded", le.Reason)
		assert.Equal(t, uint64(2), uint64(le.Current))
	})
}

func TestKeeperContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, _ := m.Grant(context.Background(), "r", "h", 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
		defer cancel()
		k, err := lease.Keep(ctx, l, lease.KeeperConfig{Store: m})
		require.NoError(t, err)
		<-k.Done()
		assert.ErrorIs(t, k.Err(), context.DeadlineExceeded)
		_, held, _ := m.Get(context.Background(), "r")
		assert.True(t, held, "not released without ReleaseOnStop")
	})
}

func TestKeeperConfigValidation(t *testing.T) {
	l := lease.Lease{Resource: "r", Holder: "h", Epoch: 1, TTL: 10 * time.Second}
	_, err := lease.Keep(context.Background(), l, lease.KeeperConfig{
		RenewFraction: 1.5, DriftMargin: 10 * time.Second, AttemptTimeout: -1, Retry: backoff.Policy{Base: -1},
	})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	for _, want := range []string{"Store is nil", "RenewFraction 1.5 is outside (0, 1)", "DriftMargin 10s is not below the lease's TTL 10s", "AttemptTimeout -1ns is negative", "Base -1ns is negative"} {
		assert.Contains(t, err.Error(), want)
	}
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	_, err = lease.Keep(context.Background(), l, lease.KeeperConfig{Store: m, RenewFraction: 0.9, DriftMargin: 2 * time.Second})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "not before the loss deadline")
	_, err = lease.Keep(context.Background(), lease.Lease{}, lease.KeeperConfig{Store: m, DriftMargin: -1})
	require.ErrorIs(t, err, lease.ErrInvalidArgument)
	assert.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.True(t, strings.Contains(err.Error(), "DriftMargin -1ns is negative"))
}
