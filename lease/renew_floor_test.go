package lease_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
)

// TestRenewFractionExtremes: a RenewFraction that would renew more often
// than MinRenewInterval (1e-12, 1e-300, the smallest float of a 10s TTL),
// and one that is not a fraction at all (NaN, ±Inf, 1, just below 1 with
// the default drift margin, negative), is refused by both the Keeper and
// the Recovery with ErrInvalidConfig and the numbers, rather than
// renewing in a busy loop.
func TestRenewFractionExtremes(t *testing.T) {
	const ttl = 10 * time.Second
	cases := []struct {
		fraction float64
		want     string
	}{
		{1e-12, "RenewFraction 1e-12 of TTL 10s renews every 0s, more often than MinRenewInterval 1ms"},
		{1e-300, "RenewFraction 1e-300 of TTL 10s renews every 0s, more often than MinRenewInterval 1ms"},
		{math.SmallestNonzeroFloat64, "RenewFraction 5e-324 of TTL 10s renews every 0s, more often than MinRenewInterval 1ms"},
		{0.9e-4, "RenewFraction 9e-05 of TTL 10s renews every 900µs, more often than MinRenewInterval 1ms"},
		{math.NaN(), "RenewFraction NaN is outside (0, 1)"},
		{math.Inf(1), "RenewFraction +Inf is outside (0, 1)"},
		{math.Inf(-1), "RenewFraction -Inf is outside (0, 1)"},
		{-1e-300, "RenewFraction -1e-300 is outside (0, 1)"},
		{1, "RenewFraction 1 is outside (0, 1)"},
		{math.Nextafter(1, 0), "RenewFraction 0.9999999999999999 of TTL 10s renews at 9.999999999s, not before the loss deadline TTL−DriftMargin = 9s"},
	}
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	l, err := m.GrantAt(t0, "r", "h", ttl)
	require.NoError(t, err)
	for _, c := range cases {
		_, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: m, RenewFraction: c.fraction})
		require.ErrorIs(t, err, lease.ErrInvalidConfig, "Keep, fraction %v", c.fraction)
		assert.Contains(t, err.Error(), "KeeperConfig."+c.want)
		_, err = lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: ttl, AttemptTimeout: time.Second, RenewFraction: c.fraction})
		require.ErrorIs(t, err, lease.ErrInvalidConfig, "NewRecovery, fraction %v", c.fraction)
		assert.Contains(t, err.Error(), "RecoveryConfig."+c.want)
	}
	// The default fraction of a lease too short to renew a millisecond
	// apart is refused too, and says it is the default.
	short, err := m.GrantAt(t0, "short", "h", time.Millisecond)
	require.NoError(t, err)
	_, err = lease.Keep(context.Background(), short, lease.KeeperConfig{Store: m})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "KeeperConfig.RenewFraction 0.5 of TTL 1ms renews every 500µs, more often than MinRenewInterval 1ms")
}

// TestRenewIntervalFloorProperty: whatever RenewFraction, TTL and drift
// margin, a schedule that validates renews at least MinRenewInterval after
// the term began, so neither a Keeper nor a Recovery can renew in a loop.
func TestRenewIntervalFloorProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		fraction := rapid.OneOf(rapid.Float64(), rapid.Float64Range(0, 1e-3),
			rapid.SampledFrom([]float64{0, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), math.Nextafter(1, 0), 1e-300})).Draw(rt, "fraction")
		ttl := time.Duration(rapid.Int64Range(1, int64(lease.MaxTTL)).Draw(rt, "ttl"))
		drift := time.Duration(rapid.Int64Range(0, int64(ttl)).Draw(rt, "drift"))
		cfg := lease.KeeperConfig{Store: &lease.Memory{}, RenewFraction: fraction, DriftMargin: drift}
		err := cfg.Validate(ttl)
		rcfg := lease.RecoveryConfig{Workers: 1, TTL: ttl, AttemptTimeout: ttl, RenewFraction: fraction, DriftMargin: drift}
		if (err == nil) != (rcfg.Validate() == nil) {
			rt.Fatalf("Keeper and Recovery disagree: %v / %v", err, rcfg.Validate())
		}
		if err != nil {
			if !assert.ErrorIs(rt, err, lease.ErrInvalidConfig) {
				rt.FailNow()
			}
			return
		}
		l := lease.Lease{Resource: "r", Holder: "h", Epoch: 1, TTL: ttl, Renewed: t0, Expires: t0.Add(ttl)}
		if d := cfg.RenewAt(l).Sub(t0); d < lease.MinRenewInterval {
			rt.Fatalf("fraction %v of %v renews after %v, below %v", fraction, ttl, d, lease.MinRenewInterval)
		}
		if !cfg.RenewAt(l).Before(cfg.LostAt(l)) {
			rt.Fatalf("fraction %v of %v renews at %v, not before the loss deadline %v", fraction, ttl, cfg.RenewAt(l), cfg.LostAt(l))
		}
	})
}

// TestKeeperRenewsAtMostEveryMinInterval: a Keeper with the smallest valid
// schedule (RenewFraction·TTL = MinRenewInterval) renews at most once per
// MinRenewInterval of (fake) time, so a synctest run of a second ends.
func TestKeeperRenewsAtMostEveryMinInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 10 * time.Second
		var renewals atomic.Int64
		m, _ := lease.NewMemory(lease.MemoryConfig{OnEvent: func(e lease.Event) {
			if e.Op == lease.OpRenew && !e.Refused {
				renewals.Add(1)
			}
		}})
		l, err := m.Grant(context.Background(), "r", "h", ttl)
		require.NoError(t, err)
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: m, RenewFraction: float64(lease.MinRenewInterval) / float64(ttl)})
		require.NoError(t, err)
		time.Sleep(time.Second)
		synctest.Wait()
		assert.True(t, k.Held())
		k.Stop()
		n := renewals.Load()
		assert.LessOrEqual(t, n, int64(time.Second/lease.MinRenewInterval))
		assert.GreaterOrEqual(t, n, int64(1))
	})
}

// failingStore refuses every renewal as a transient failure, until it has
// been called limit times: it then says the lease is lost, so that a
// keeper that retries in a loop ends (and the test sees the count).
type failingStore struct {
	*lease.Memory
	calls, limit int64
}

func (s *failingStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if atomic.AddInt64(&s.calls, 1) > s.limit {
		return lease.Lease{}, &lease.LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch, Reason: "test gave up"}
	}
	return lease.Lease{}, errors.New("busy")
}

// TestKeeperRetryFloor: with a Retry of 1ns (whose full jitter draws
// delays of zero) against a Store that refuses every renewal, the Keeper
// waits at least MinRenewInterval between attempts, so it makes at most
// one attempt per millisecond until its loss deadline — not a busy loop.
func TestKeeperRetryFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 10 * time.Second
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, err := m.Grant(context.Background(), "r", "h", ttl)
		require.NoError(t, err)
		cfg := lease.KeeperConfig{RenewFraction: 0.5, Retry: backoff.Policy{Base: 1, Cap: 1}}
		bound := int64((cfg.LostAt(l).Sub(cfg.RenewAt(l)))/lease.MinRenewInterval) + 1
		s := &failingStore{Memory: m, limit: bound}
		cfg.Store = s
		k, err := lease.Keep(context.Background(), l, cfg)
		require.NoError(t, err)
		<-k.Done()
		require.ErrorIs(t, k.Err(), lease.ErrLost)
		assert.NotContains(t, k.Err().Error(), "test gave up", "%d renewals in %v", atomic.LoadInt64(&s.calls), cfg.LostAt(l).Sub(cfg.RenewAt(l)))
	})
}

// TestRecoveryRetryFloor: with a Retry of 1ns and establishments that fail
// at once (a simulation whose clock does not move while it retries), the
// Recovery spaces the retries of a key at least MinRenewInterval apart, so
// the key is failed at MaxElapsed after at most MaxElapsed/MinRenewInterval
// attempts, rather than retried forever at one instant.
func TestRecoveryRetryFloor(t *testing.T) {
	r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second,
		Retry: backoff.Policy{Base: 1, Cap: 1, MaxAttempts: backoff.Unlimited, MaxElapsed: time.Second}})
	require.NoError(t, err)
	require.NoError(t, r.Add(t0, "k"))
	now := t0
	as := r.Start(now, nil)
	const bound = int(time.Second/lease.MinRenewInterval) + 2
	for n := 0; n < 10*bound; n++ {
		for ; len(as) > 0 && n < 10*bound; n++ {
			a := as[0]
			as = r.Finish(now, a, errors.New("busy"), as[1:])
		}
		w, ok := r.Wake()
		if !ok {
			break
		}
		now = laterTime(now, w)
		as = r.Start(now, nil)
	}
	p := r.Progress(now)
	assert.Equal(t, 1, p.Failed)
	assert.LessOrEqual(t, p.Attempts, int64(bound))
}

// echoStore "renews" a lease by returning it unchanged — a buggy Store —
// until it has been called limit times, then says the lease is lost.
type echoStore struct {
	*lease.Memory
	calls, limit int64
}

func (s *echoStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if atomic.AddInt64(&s.calls, 1) > s.limit {
		return lease.Lease{}, &lease.LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch, Reason: "test gave up"}
	}
	return l, nil
}

// TestKeeperStaleRenewalFloor: a Store whose renewals succeed but return
// the lease unchanged (its renewal time already past) does not make the
// Keeper renew in a loop: it renews at most once per MinRenewInterval
// until the unchanged loss deadline.
func TestKeeperStaleRenewalFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 10 * time.Second
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, err := m.Grant(context.Background(), "r", "h", ttl)
		require.NoError(t, err)
		cfg := lease.KeeperConfig{}
		bound := int64((cfg.LostAt(l).Sub(cfg.RenewAt(l)))/lease.MinRenewInterval) + 1
		s := &echoStore{Memory: m, limit: bound}
		cfg.Store = s
		k, err := lease.Keep(context.Background(), l, cfg)
		require.NoError(t, err)
		<-k.Done()
		require.ErrorIs(t, k.Err(), lease.ErrLost)
		assert.NotContains(t, k.Err().Error(), "test gave up", "%d renewals", atomic.LoadInt64(&s.calls))
	})
}
