package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHotPathsDoNotAllocate: a grant of a tracked resource, a renewal and
// a release, with explicit time or through the Store shell, allocate
// nothing; nor does a Recovery handing out, failing, retrying (with a
// jitter draw) and renewing attempts of keys it already tracks.
func TestHotPathsDoNotAllocate(t *testing.T) {
	var m lease.Memory
	ctx := context.Background()
	now := t0
	l, err := m.GrantAt(now, "droplet-1", "dwfm-1", time.Second)
	require.NoError(t, err)
	require.NoError(t, m.ReleaseAt(now, l))
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Microsecond)
		l, _ = m.GrantAt(now, "droplet-1", "dwfm-1", time.Second)
		l, _ = m.RenewAt(now, l)
		_ = m.ReleaseAt(now, l)
	}), "pure core")
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		l, _ = m.Grant(ctx, "droplet-1", "dwfm-1", time.Second)
		l, _ = m.Renew(ctx, l)
		_, _, _ = m.Get(ctx, "droplet-1")
		_ = m.Release(ctx, l)
	}), "Store shell")

	r, err := lease.NewRecovery[int](lease.RecoveryConfig{Workers: 2, TTL: time.Second, AttemptTimeout: 100 * time.Millisecond,
		InitialCost: time.Millisecond, Retry: backoff.Policy{Base: time.Millisecond, Cap: 10 * time.Millisecond, MaxAttempts: backoff.Unlimited, MaxElapsed: 1000 * time.Hour}})
	require.NoError(t, err)
	require.NoError(t, r.Add(t0, 1))
	require.NoError(t, r.Add(t0, 2))
	errBusy := errors.New("busy")
	buf := make([]lease.Attempt[int], 0, 8)
	running := make([]lease.Attempt[int], 0, 8)
	now = t0
	running = append(running, r.Start(now, buf[:0])...)
	step := 0
	cycle := func() {
		step++
		if len(running) == 0 {
			wake, ok := r.Wake()
			require.True(t, ok)
			now = wake
			running = append(running, r.Start(now, buf[:0])...)
			return
		}
		a := running[0]
		running = append(running[:0], running[1:]...)
		now = now.Add(time.Millisecond)
		var ferr error
		if a.Kind == lease.Establish && step%3 != 0 {
			ferr = errBusy // retried after a jittered delay
		}
		running = append(running, r.Finish(now, a, ferr, buf[:0])...)
	}
	for range 1000 { // warm up: grow the heaps and the scheduler to their working size
		cycle()
	}
	assert.Zero(t, testing.AllocsPerRun(1000, cycle), "Recovery Start/Finish")
	p := r.Progress(now)
	assert.Positive(t, p.Wasted, "the retry path ran")
	assert.Positive(t, p.Attempts-p.Wasted, "the success path ran")
}
