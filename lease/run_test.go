package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRecoveryRun drives Recovery with its real-clock shell against a
// Memory table inside a synctest bubble: 200 droplets, 4 workers, each
// grant taking 10ms. All are leased, renewals keep them, the in-flight
// bound holds, and Run returns with its context leaving nothing running.
func TestRecoveryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		table, _ := lease.NewMemory(lease.MemoryConfig{})
		r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 4, TTL: 2 * time.Second, AttemptTimeout: time.Second})
		require.NoError(t, err)
		for i := range 200 {
			require.NoError(t, r.Add(time.Now(), fmt.Sprintf("droplet-%d", i)))
		}
		var inFlight, peak atomic.Int64
		leases := map[string]lease.Lease{} // touched only by fn, one per key at a time
		mu := make(chan struct{}, 1)
		fn := func(ctx context.Context, a lease.Attempt[string]) error {
			if n := inFlight.Add(1); n > peak.Load() {
				peak.Store(n)
			}
			defer inFlight.Add(-1)
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			mu <- struct{}{}
			defer func() { <-mu }()
			if a.Kind == lease.Renew {
				l, err := table.Renew(ctx, leases[a.Key])
				leases[a.Key] = l
				return err
			}
			l, err := table.Grant(ctx, a.Key, "dwfm-1", 2*time.Second)
			leases[a.Key] = l
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var last lease.Progress
		err = r.Run(ctx, fn, func(p lease.Progress) { last = p })
		assert.True(t, errors.Is(err, context.DeadlineExceeded))
		assert.Equal(t, 200, last.Established)
		assert.Zero(t, last.Lapsed)
		assert.LessOrEqual(t, peak.Load(), int64(4))
		held := 0
		for i := range 200 {
			if _, ok := table.HolderAt(time.Now(), fmt.Sprintf("droplet-%d", i)); ok {
				held++
			}
		}
		assert.Equal(t, 200, held, "renewals kept every lease")
		assert.Zero(t, inFlight.Load())
		assert.ErrorIs(t, r.Run(ctx, nil, nil), lease.ErrInvalidArgument)
	})
}
