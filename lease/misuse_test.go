package lease_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noPanic runs f on its own goroutine and fails the test, instead of
// crashing the test binary, if f panics or does not return within a second.
func noPanic(t *testing.T, name string, f func()) {
	t.Helper()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	select {
	case p := <-done:
		if p != nil {
			t.Errorf("%s panicked: %v", name, p)
		}
	case <-time.After(time.Second):
		t.Fatalf("%s did not return", name)
	}
}

// TestNilContext: every call that takes a context refuses a nil one with an
// error matching ErrInvalidArgument instead of panicking, and Run refuses a
// nil function the same way.
func TestNilContext(t *testing.T) {
	var nilCtx context.Context // a variable, so that vet's nil-context check does not fire
	m, err := lease.NewMemory(lease.MemoryConfig{})
	require.NoError(t, err)
	l, err := m.Grant(context.Background(), "r", "h", time.Minute)
	require.NoError(t, err)
	r := newRecovery(t, lease.RecoveryConfig{Workers: 1, TTL: time.Second, AttemptTimeout: time.Second})
	fn := func(context.Context, lease.Attempt[string]) error { return nil }
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Memory.Grant", func() error { _, err := m.Grant(nilCtx, "r2", "h", time.Minute); return err }},
		{"Memory.Renew", func() error { _, err := m.Renew(nilCtx, l); return err }},
		{"Memory.Release", func() error { return m.Release(nilCtx, l) }},
		{"Memory.Get", func() error { _, _, err := m.Get(nilCtx, "r"); return err }},
		{"Keep", func() error {
			k, err := lease.Keep(nilCtx, l, lease.KeeperConfig{Store: m})
			if k != nil {
				k.Stop()
			}
			return err
		}},
		{"Recovery.Run", func() error { return r.Run(nilCtx, fn, nil) }},
		{"Recovery.Run nil fn", func() error { return r.Run(context.Background(), nil, nil) }},
		{"Recovery.Run nil ctx and fn", func() error { return r.Run(nilCtx, nil, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			noPanic(t, tc.name, func() { err = tc.call() })
			assert.ErrorIs(t, err, lease.ErrInvalidArgument)
		})
	}
	// Nothing was granted, renewed or released by the refused calls.
	got, ok := m.HolderAt(time.Now(), "r")
	require.True(t, ok)
	assert.Equal(t, l, got)
	_, ok = m.HolderAt(time.Now(), "r2")
	assert.False(t, ok)
}

// TestZeroKeeper: every method of a Keeper not made by Keep is safe. It
// keeps nothing, so it reports nothing held, is done and lost at once (a
// holder waiting on Lost stops acting rather than act forever), says in
// Err to use Keep, and Stop does nothing.
func TestZeroKeeper(t *testing.T) {
	var k lease.Keeper
	noPanic(t, "Lease", func() { assert.Equal(t, lease.Lease{}, k.Lease()) })
	noPanic(t, "Held", func() { assert.False(t, k.Held()) })
	noPanic(t, "HeldAt", func() {
		assert.False(t, k.HeldAt(time.Now()))
		assert.False(t, k.HeldAt(time.Time{}.Add(-time.Hour)), "not held even before the zero time")
	})
	noPanic(t, "Lost", func() { assert.True(t, closed(k.Lost()), "Lost is closed") })
	noPanic(t, "Done", func() { assert.True(t, closed(k.Done()), "Done is closed") })
	noPanic(t, "Err", func() {
		err := k.Err()
		assert.ErrorIs(t, err, lease.ErrInvalidConfig)
		assert.ErrorContains(t, err, "Keep")
	})
	noPanic(t, "Stop", func() { k.Stop(); k.Stop() })
	assert.False(t, k.Held())
}

// TestZeroRecovery: every method of a Recovery not made by NewRecovery is
// safe: Add and Run say to use NewRecovery; Start and Finish hand out
// nothing; Wake has nothing to wake for; Progress is zero.
func TestZeroRecovery(t *testing.T) {
	var r lease.Recovery[string]
	now := t0
	noPanic(t, "Add", func() {
		err := r.Add(now, "a")
		assert.ErrorIs(t, err, lease.ErrInvalidConfig)
		assert.ErrorContains(t, err, "NewRecovery")
	})
	buf := []lease.Attempt[string]{{Key: "kept"}}
	noPanic(t, "Start", func() { assert.Equal(t, buf, r.Start(now, buf)) })
	noPanic(t, "Finish", func() {
		assert.Equal(t, buf, r.Finish(now, lease.Attempt[string]{Key: "a", Kind: lease.Establish, Started: now, Deadline: now.Add(time.Second)}, nil, buf))
	})
	noPanic(t, "Wake", func() {
		_, ok := r.Wake()
		assert.False(t, ok)
	})
	noPanic(t, "Progress", func() { assert.Equal(t, lease.Progress{}, r.Progress(now)) })
	noPanic(t, "Run", func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := r.Run(ctx, func(context.Context, lease.Attempt[string]) error { return nil }, nil)
		assert.ErrorIs(t, err, lease.ErrInvalidConfig)
		assert.ErrorContains(t, err, "NewRecovery")
	})
}

// TestZeroValuesUsable: the types documented as usable at their zero value
// work without a constructor.
func TestZeroValuesUsable(t *testing.T) {
	var m lease.Memory
	l, err := m.GrantAt(t0, "r", "h", time.Second)
	require.NoError(t, err)
	var c lease.Counters
	c.Observe(lease.Event{Op: lease.OpGrant})
	assert.Equal(t, lease.Stats{Granted: 1}, c.Stats())
	var kc lease.KeeperConfig
	assert.Equal(t, t0.Add(500*time.Millisecond), kc.RenewAt(l))
	assert.Equal(t, t0.Add(900*time.Millisecond), kc.LostAt(l))
	assert.ErrorIs(t, kc.Validate(time.Second), lease.ErrInvalidConfig, "Store is required")
	assert.ErrorIs(t, lease.RecoveryConfig{}.Validate(), lease.ErrInvalidConfig)
	assert.NotEmpty(t, (&lease.HeldError{}).Error())
	assert.NotEmpty(t, (&lease.LostError{}).Error())
	assert.Equal(t, "Op(0)", lease.Op(0).String())
	assert.Equal(t, "AttemptKind(0)", lease.AttemptKind(0).String())
	assert.False(t, lease.Lease{}.ValidAt(t0, 0))
}

// TestKeeperRetryLimitsNotUsed: the Keeper's doc says Retry.MaxAttempts and
// MaxElapsed are not used (the loss deadline bounds the retries), so a
// policy that sets them to anything, including Unlimited attempts with no
// time bound, is accepted; Retry's other fields are still checked.
func TestKeeperRetryLimitsNotUsed(t *testing.T) {
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	for _, p := range []backoff.Policy{
		{MaxAttempts: backoff.Unlimited},
		{MaxAttempts: -7, MaxElapsed: -time.Second},
		{MaxAttempts: 1},
	} {
		t.Run(fmt.Sprintf("%+v", p), func(t *testing.T) {
			cfg := lease.KeeperConfig{Store: m, Retry: p}
			require.NoError(t, cfg.Validate(time.Minute))
			l, err := m.GrantAt(time.Now(), fmt.Sprintf("r%+v", p), "h", time.Minute)
			require.NoError(t, err)
			k, err := lease.Keep(context.Background(), l, cfg)
			require.NoError(t, err)
			assert.True(t, k.Held())
			k.Stop()
		})
	}
	err := lease.KeeperConfig{Store: m, Retry: backoff.Policy{MaxAttempts: backoff.Unlimited, Base: -1}}.Validate(time.Minute)
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "KeeperConfig.Retry")
	assert.Contains(t, err.Error(), "Base -1ns is negative")
	assert.NotContains(t, err.Error(), "MaxAttempts")
}
