package shed

import (
	"context"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newPartition[K comparable](t *testing.T, cfg PartitionConfig[K]) *Partition[K] {
	t.Helper()
	p, err := NewPartition(cfg)
	require.NoError(t, err)
	return p
}

func TestNewPartitionValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   PartitionConfig[string]
		wants []string
	}{
		{"minimal", PartitionConfig[string]{Total: 1}, nil},
		{"zero value", PartitionConfig[string]{}, []string{"Total 0 is outside [1, 2^24]"}},
		{"per key above total", PartitionConfig[string]{Total: 4, PerKey: 5}, []string{"PerKey 5 exceeds Total 4"}},
		{"bad share", PartitionConfig[string]{Total: 4, Share: 1.5}, []string{"Share 1.5 is outside (0, 1]"}},
		{"NaN share", PartitionConfig[string]{Total: 4, Share: math.NaN()}, []string{"Share NaN"}},
		{"absurd keys", PartitionConfig[string]{Total: 4, MaxKeys: 1 << 30}, []string{"MaxKeys 1073741824 is outside"}},
		{"everything", PartitionConfig[string]{Total: -1, PerKey: -1, Share: -1, MaxQueuePerKey: -1, MaxKeys: -1, MaxWait: -1, CallTimeout: -1},
			[]string{"Total", "PerKey", "Share", "MaxQueuePerKey", "MaxKeys", "MaxWait", "CallTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPartition(tt.cfg)
			if tt.wants == nil {
				require.NoError(t, err)
				require.NotNil(t, p)
				return
			}
			assert.Nil(t, p)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestPartitionPerKeyCap(t *testing.T) {
	p := newPartition(t, PartitionConfig[string]{Total: 10})
	assert.Equal(t, 5, p.PerKey(), "default share is half")
	p = newPartition(t, PartitionConfig[string]{Total: 10, Share: 0.34})
	assert.Equal(t, 4, p.PerKey(), "rounded up")
	p = newPartition(t, PartitionConfig[string]{Total: 10, PerKey: 3})
	assert.Equal(t, 3, p.PerKey())
}

// TestPartitionIsolation is the 2011 control-plane failure: calls into one
// Availability Zone hang. With a Partition, that zone holds only its share,
// its excess callers are refused within MaxWait, and the other zones get
// their full share at once.
func TestPartitionIsolation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPartition(t, PartitionConfig[string]{Total: 12, PerKey: 4, MaxQueuePerKey: 4, MaxWait: 200 * time.Millisecond})
		hang := make(chan struct{})
		results := make(chan error, 20)
		for range 20 {
			go func() {
				results <- p.Do(t.Context(), "us-east-1a", func(context.Context) error { <-hang; return nil })
			}()
		}
		synctest.Wait()
		a, _ := p.StatsFor("us-east-1a")
		assert.Equal(t, 4, a.InFlight, "the sick zone holds only its cap")
		assert.Equal(t, 4, a.Waiting)
		assert.Equal(t, int64(12), a.Shed.QueueFull, "the rest is refused at once")

		// The healthy zones get their full share, without waiting.
		start := time.Now()
		for _, az := range []string{"us-east-1b", "us-east-1c"} {
			for range 4 {
				require.NoError(t, p.Acquire(t.Context(), az))
			}
		}
		assert.Zero(t, time.Since(start))
		assert.Equal(t, 12, p.Stats().InFlight)

		// The sick zone's waiters are refused after exactly MaxWait.
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		a, _ = p.StatsFor("us-east-1a")
		assert.Equal(t, 0, a.Waiting)
		assert.Equal(t, int64(4), a.Shed.WaitTimeout)
		for range 16 {
			err := <-results
			assert.ErrorIs(t, err, ErrShed)
		}
		close(hang)
		for range 4 {
			assert.NoError(t, <-results)
		}
		for _, az := range []string{"us-east-1b", "us-east-1c"} {
			for range 4 {
				p.Release(az)
			}
		}
		assert.Equal(t, Stats{Admitted: 12, Queued: 4, Shed: ShedCounts{QueueFull: 12, WaitTimeout: 4}}, p.Stats())
	})
}

// TestSharedPoolStarves shows what the Partition prevents: with one shared
// bulkhead, hung calls into one zone take every slot.
func TestSharedPoolStarves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 12, MaxQueue: 4, MaxWait: 200 * time.Millisecond})
		hang := make(chan struct{})
		for range 12 {
			go func() { _ = b.Do(t.Context(), func(context.Context) error { <-hang; return nil }) }()
		}
		synctest.Wait()
		err := b.Acquire(t.Context()) // a healthy zone's call
		assert.ErrorIs(t, err, ErrWaitTimeout)
		close(hang)
	})
}

func TestPartitionServesOtherKeysPastACappedHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPartition(t, PartitionConfig[string]{Total: 2, PerKey: 1, MaxQueuePerKey: 2, MaxWait: time.Hour})
		require.NoError(t, p.Acquire(t.Context(), "a"))
		require.NoError(t, p.Acquire(t.Context(), "b"))
		got := make(chan string, 3)
		for _, k := range []string{"a", "a", "b"} {
			go func() {
				if p.Acquire(t.Context(), k) == nil {
					got <- k
				}
			}()
			synctest.Wait()
		}
		// "b" frees a slot: the first waiter is "a", but "a" is at its cap,
		// so the "b" waiter behind it gets the slot.
		p.Release("b")
		synctest.Wait()
		assert.Equal(t, "b", <-got)
		p.Release("a")
		synctest.Wait()
		assert.Equal(t, "a", <-got)
		s, _ := p.StatsFor("a")
		assert.Equal(t, 1, s.Waiting)
		p.Release("a")
		synctest.Wait()
		assert.Equal(t, "a", <-got)
	})
}

func TestPartitionPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPartition(t, PartitionConfig[string]{Total: 4, PerKey: 1, MaxQueuePerKey: 2, MaxWait: time.Hour})
		require.NoError(t, p.Acquire(t.Context(), "a"))
		done := make(chan error, 1)
		go func() { done <- p.Acquire(t.Context(), "a") }()
		synctest.Wait()
		require.NoError(t, p.Pause("a"))
		err := <-done
		assert.ErrorIs(t, err, ErrPaused)
		assert.Equal(t, `shed: paused for key "a"`, err.Error())
		assert.ErrorIs(t, p.Acquire(t.Context(), "a"), ErrPaused)
		assert.True(t, p.Paused("a"))
		assert.NoError(t, p.Acquire(t.Context(), "b"), "other keys are unaffected")

		require.NoError(t, p.Pause("not-seen-yet"))
		assert.ErrorIs(t, p.Acquire(t.Context(), "not-seen-yet"), ErrPaused, "pausing ahead of traffic works")

		p.Release("a")
		p.Resume("a")
		assert.False(t, p.Paused("a"))
		assert.NoError(t, p.Acquire(t.Context(), "a"))
		p.Resume("never-paused") // no effect, no panic
	})
}

func TestPartitionBoundsKeys(t *testing.T) {
	p := newPartition(t, PartitionConfig[int]{Total: 100, PerKey: 1, MaxKeys: 3})
	for k := range 3 {
		require.True(t, p.TryAcquire(k))
	}
	// Three keys hold slots: none is idle, a fourth is refused.
	err := p.Acquire(context.Background(), 99)
	assert.ErrorIs(t, err, ErrTooManyKeys)
	assert.Equal(t, `shed: too many keys (3 keys, limit 3, none idle) for key "99"`, err.Error())
	assert.ErrorIs(t, p.Pause(98), ErrTooManyKeys)

	// Key 1 goes idle: it is forgotten to make room, and keys beyond are
	// admitted one by one as others go idle.
	p.Release(1)
	require.NoError(t, p.Acquire(context.Background(), 99))
	assert.Equal(t, 3, p.Keys())
	_, tracked := p.StatsFor(1)
	assert.False(t, tracked)

	// Many distinct untrusted keys never grow the map past the bound.
	p.Release(99)
	for k := 1000; k < 2000; k++ {
		if p.TryAcquire(k) {
			p.Release(k)
		}
	}
	assert.Equal(t, 3, p.Keys())
	s := p.Stats()
	assert.Equal(t, 2, s.InFlight, "keys 0 and 2 still hold their slots")
	assert.Equal(t, int64(1), s.Shed.TooManyKeys, "the refused Acquire; Pause is not work and reports its error directly")
}

func TestPartitionEvictsLeastRecentlyUsedIdleKey(t *testing.T) {
	p := newPartition(t, PartitionConfig[string]{Total: 10, MaxKeys: 2})
	for _, k := range []string{"a", "b", "a"} {
		require.True(t, p.TryAcquire(k))
		p.Release(k)
	}
	require.True(t, p.TryAcquire("c"))
	_, hasA := p.StatsFor("a")
	_, hasB := p.StatsFor("b")
	assert.True(t, hasA, "a was used more recently")
	assert.False(t, hasB)
}

func TestPartitionHookAndRefusalText(t *testing.T) {
	var seen []string
	p := newPartition(t, PartitionConfig[string]{Total: 1, OnEvent: func(k string, e Event) {
		seen = append(seen, fmt.Sprintf("%s:%v", k, e.Kind))
	}})
	require.True(t, p.TryAcquire("a"))
	err := p.Acquire(context.Background(), "b")
	assert.ErrorIs(t, err, ErrQueueFull)
	assert.Equal(t, `shed: queue full (0 waiting, limit 0) for key "b"`, err.Error())
	assert.Equal(t, []string{"a:admitted", "b:refused"}, seen)
}
