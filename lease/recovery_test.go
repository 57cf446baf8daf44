package lease_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecoveryConfigValidation(t *testing.T) {
	_, err := lease.NewRecovery[string](lease.RecoveryConfig{
		Workers: 0, MaxQueue: -1, TTL: 0, AttemptTimeout: -1, InitialCost: -1, CostWeight: 2,
		Retry: backoff.Policy{Multiplier: 0.5}, MaxKeys: -1,
	})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	for _, want := range []string{"Workers 0", "MaxQueue -1", "TTL 0s", "AttemptTimeout -1ns", "InitialCost -1ns", "CostWeight 2", "Multiplier 0.5", "MaxKeys -1"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: time.Second, AttemptTimeout: 2 * time.Second, DriftMargin: time.Second})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "AttemptTimeout 2s is above the TTL 1s")
	assert.Contains(t, err.Error(), "DriftMargin 1s is not below the lease's TTL 1s")
}

func newRecovery(t *testing.T, cfg lease.RecoveryConfig) *lease.Recovery[string] {
	t.Helper()
	r, err := lease.NewRecovery[string](cfg)
	require.NoError(t, err)
	return r
}

// TestRecoveryRenewalsFirst: with every worker busy and the queue full of
// establishments, a renewal falling due is served before all of them.
func TestRecoveryRenewalsFirst(t *testing.T) {
	r := newRecovery(t, lease.RecoveryConfig{Workers: 1, MaxQueue: 2, TTL: 10 * time.Second, AttemptTimeout: 5 * time.Second, InitialCost: 100 * time.Millisecond})
	require.NoError(t, r.Add(at(0), "held"))
	as := r.Start(at(0), nil)
	require.Len(t, as, 1)
	as = r.Finish(at(100*time.Millisecond), as[0], nil, nil)
	assert.Empty(t, as)
	for _, k := range []string{"a", "b", "c", "d"} {
		require.NoError(t, r.Add(at(100*time.Millisecond), k))
	}
	as = r.Start(at(100*time.Millisecond), nil)
	require.Len(t, as, 1)
	assert.Equal(t, "a", as[0].Key)
	p := r.Progress(at(100 * time.Millisecond))
	assert.Equal(t, 1, p.Established)
	assert.Equal(t, 2, p.Queued, "intake throttled at MaxQueue; the rest waits in the backlog")
	assert.Equal(t, 4, p.Pending)
	// The renewal of "held" (whose term counts from its attempt's start,
	// 0s) falls due at 5s, while "a" still runs.
	wake, ok := r.Wake()
	require.True(t, ok)
	assert.Equal(t, at(5*time.Second), wake)
	assert.Empty(t, r.Start(wake, nil))
	as = r.Finish(at(5200*time.Millisecond), as[0], errors.New("droplet busy"), nil)
	require.Len(t, as, 1)
	assert.Equal(t, lease.Renew, as[0].Kind, "the renewal goes before the queued establishments")
	assert.Equal(t, "held", as[0].Key)
	assert.Equal(t, at(9*time.Second), as[0].Deadline, "renewal deadline: expiry minus the drift margin")
}

// TestRecoveryNeverStartsHopelessWork: once the measured cost says an
// attempt cannot finish before its deadline, it is not started.
func TestRecoveryNeverStartsHopelessWork(t *testing.T) {
	r := newRecovery(t, lease.RecoveryConfig{Workers: 1, MaxQueue: 10, TTL: 10 * time.Second, AttemptTimeout: time.Second, InitialCost: 10 * time.Millisecond, CostWeight: 1})
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, r.Add(at(0), k))
	}
	as := r.Start(at(0), nil)
	require.Len(t, as, 1)
	// "a" took 900ms: "b" and "c", queued at 0 with a 1s timeout, cannot
	// finish by 1s, so they are not started but go back to the backlog and
	// are admitted afresh.
	as = r.Finish(at(900*time.Millisecond), as[0], nil, nil)
	require.Len(t, as, 1)
	assert.Equal(t, at(1900*time.Millisecond), as[0].Deadline, "a fresh admission with a fresh deadline")
	p := r.Progress(at(900 * time.Millisecond))
	assert.Equal(t, int64(2), p.Attempts)
	assert.GreaterOrEqual(t, p.Dropped, int64(1))
	assert.Equal(t, int64(0), p.Wasted)
}

func TestRecoveryGivesUpAfterMaxAttempts(t *testing.T) {
	r := newRecovery(t, lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second,
		Retry: backoff.Policy{Base: 100 * time.Millisecond, MaxAttempts: 2, Jitter: backoff.JitterNone}})
	require.NoError(t, r.Add(at(0), "a"))
	require.NoError(t, r.Add(at(0), "a"), "adding twice is harmless")
	as := r.Start(at(0), nil)
	require.Len(t, as, 1)
	now := at(10 * time.Millisecond)
	as = r.Finish(now, as[0], errors.New("no"), nil)
	assert.Empty(t, as)
	wake, ok := r.Wake()
	require.True(t, ok)
	assert.Equal(t, now.Add(100*time.Millisecond), wake, "retried after the backoff delay")
	as = r.Start(wake, nil)
	require.Len(t, as, 1)
	r.Finish(wake.Add(10*time.Millisecond), as[0], errors.New("no"), nil)
	p := r.Progress(wake)
	assert.Equal(t, 1, p.Failed)
	assert.Equal(t, 0, p.Pending)
	assert.Equal(t, int64(2), p.Wasted)
	require.NoError(t, r.Add(wake, "a"), "a failed key may be added again")
	assert.Len(t, r.Start(wake, nil), 1)
}

func TestRecoveryLateFinishIsTimeout(t *testing.T) {
	r := newRecovery(t, lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second})
	require.NoError(t, r.Add(at(0), "a"))
	as := r.Start(at(0), nil)
	r.Finish(as[0].Deadline, as[0], nil, nil)
	p := r.Progress(at(time.Second))
	assert.Equal(t, 0, p.Established, "an attempt that finishes at its deadline does not count")
	assert.Equal(t, int64(1), p.Wasted)
	assert.Empty(t, r.Finish(at(2*time.Second), as[0], nil, nil), "a second report is ignored")
}

func TestRecoveryMaxKeys(t *testing.T) {
	r := newRecovery(t, lease.RecoveryConfig{Workers: 1, TTL: time.Second, AttemptTimeout: time.Second, MaxKeys: 1})
	require.NoError(t, r.Add(at(0), "a"))
	assert.ErrorIs(t, r.Add(at(0), "b"), lease.ErrFull)
}

// TestRecoveryConfigNamesItsFields: an invalid renewal schedule in a
// RecoveryConfig is reported under RecoveryConfig's field names, not the
// KeeperConfig's that shares the rules.
func TestRecoveryConfigNamesItsFields(t *testing.T) {
	_, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: time.Second, AttemptTimeout: time.Second, RenewFraction: 2, DriftMargin: -1})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "RecoveryConfig.RenewFraction 2 is outside (0, 1)")
	assert.Contains(t, err.Error(), "RecoveryConfig.DriftMargin -1ns is negative")
	assert.NotContains(t, err.Error(), "KeeperConfig")
	_, err = lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second, RenewFraction: 0.9, DriftMargin: 2 * time.Second})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "RecoveryConfig.RenewFraction 0.9 of TTL 10s renews at 9s, not before the loss deadline")
	assert.NotContains(t, err.Error(), "KeeperConfig")
}

// failTogether adds n keys at t0, starts them all (there is a worker for
// each), fails them all at once at fail, then follows Wake and returns when
// each key's retry was handed out.
func failTogether(t interface {
	require.TestingT
	Helper()
}, r *lease.Recovery[int], n int, fail time.Time, until time.Time) map[int]time.Time {
	t.Helper()
	for k := range n {
		require.NoError(t, r.Add(t0, k))
	}
	as := r.Start(t0, nil)
	require.Len(t, as, n)
	for _, a := range as {
		require.Empty(t, r.Finish(fail, a, errors.New("table unavailable"), nil))
	}
	retried := map[int]time.Time{}
	for {
		wake, ok := r.Wake()
		if !ok || wake.After(until) {
			return retried
		}
		for _, a := range r.Start(wake, nil) {
			require.Equal(t, lease.Establish, a.Kind)
			_, dup := retried[a.Key]
			require.False(t, dup, "key %d retried twice", a.Key)
			retried[a.Key] = a.Started
		}
	}
}

// TestRecoveryRetriesSpreadOut: keys whose establishments fail at the same
// instant are retried at jittered, spread-out times (full jitter: uniform
// over [0, Base]), not all at one instant, where they would fail together
// again.
func TestRecoveryRetriesSpreadOut(t *testing.T) {
	const n = 100
	r, err := lease.NewRecovery[int](lease.RecoveryConfig{Workers: n, MaxQueue: n, TTL: time.Hour, AttemptTimeout: 10 * time.Second,
		InitialCost: time.Millisecond, Retry: backoff.Policy{Base: time.Second}})
	require.NoError(t, err)
	fail := at(10 * time.Millisecond)
	retried := failTogether(t, r, n, fail, fail.Add(time.Second))
	require.Len(t, retried, n, "every key retried within Base")
	distinct := map[time.Time]bool{}
	lo, hi := retried[0], retried[0]
	for _, s := range retried {
		assert.False(t, s.Before(fail) || s.After(fail.Add(time.Second)), "retry at %v outside [fail, fail+Base]", s.Sub(t0))
		distinct[s] = true
		if s.Before(lo) {
			lo = s
		}
		if s.After(hi) {
			hi = s
		}
	}
	assert.GreaterOrEqual(t, len(distinct), n*9/10, "retries at %d distinct instants", len(distinct))
	assert.GreaterOrEqual(t, hi.Sub(lo), 500*time.Millisecond, "retries spread over %v", hi.Sub(lo))
}

// TestRecoveryRetryMaxElapsed: with unlimited attempts, Retry.MaxElapsed
// bounds a key's retries: the key is failed once the next retry would start
// more than MaxElapsed after its first attempt started.
func TestRecoveryRetryMaxElapsed(t *testing.T) {
	r := newRecovery(t, lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second,
		Retry: backoff.Policy{Base: 100 * time.Millisecond, Jitter: backoff.JitterNone, MaxAttempts: backoff.Unlimited, MaxElapsed: time.Second}})
	require.NoError(t, r.Add(at(0), "a"))
	as := r.Start(at(0), nil)
	var starts []time.Duration
	for i := 0; len(as) == 1 && i < 20; i++ {
		starts = append(starts, as[0].Started.Sub(t0))
		now := as[0].Started.Add(10 * time.Millisecond)
		require.Empty(t, r.Finish(now, as[0], errors.New("no"), nil))
		if r.Progress(now).Failed == 1 {
			break
		}
		wake, ok := r.Wake()
		require.True(t, ok)
		as = r.Start(wake, nil)
	}
	p := r.Progress(at(time.Hour))
	assert.Equal(t, 1, p.Failed, "given up after MaxElapsed")
	assert.Equal(t, 0, p.Pending)
	// Retries after 100ms, 200ms, 400ms; the next, 800ms after the failure
	// at 740ms, would start past 1s.
	assert.Equal(t, []time.Duration{0, 110 * time.Millisecond, 320 * time.Millisecond, 730 * time.Millisecond}, starts)
	_, ok := r.Wake()
	assert.False(t, ok, "nothing left to retry")
}
