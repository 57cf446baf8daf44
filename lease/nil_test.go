package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
)

// TestTypedNil: a nil *Memory, *Keeper, *Recovery or *Counters never
// panics. Every Memory method refuses with an error matching
// ErrInvalidArgument (its queries report nothing); a KeeperConfig naming a
// nil *Memory as its Store is invalid; a nil Keeper and a nil Recovery
// behave as zero ones; a nil *Counters' Observe, used as a hook, counts
// nothing.
func TestTypedNil(t *testing.T) {
	ctx := context.Background()
	var m *lease.Memory
	l := lease.Lease{Resource: "r", Holder: "h", Epoch: 1, TTL: time.Second}
	for name, call := range map[string]func() error{
		"GrantAt":   func() error { _, err := m.GrantAt(t0, "r", "h", time.Second); return err },
		"RenewAt":   func() error { _, err := m.RenewAt(t0, l); return err },
		"ReleaseAt": func() error { return m.ReleaseAt(t0, l) },
		"Grant":     func() error { _, err := m.Grant(ctx, "r", "h", time.Second); return err },
		"Renew":     func() error { _, err := m.Renew(ctx, l); return err },
		"Release":   func() error { return m.Release(ctx, l) },
		"Get":       func() error { _, _, err := m.Get(ctx, "r"); return err },
	} {
		var err error
		noPanic(t, name, func() { err = call() })
		assert.ErrorIs(t, err, lease.ErrInvalidArgument, name)
		assert.ErrorContains(t, err, "nil *lease.Memory", name)
	}
	noPanic(t, "HolderAt", func() {
		_, ok := m.HolderAt(t0, "r")
		assert.False(t, ok)
	})
	noPanic(t, "Epoch", func() { assert.Zero(t, m.Epoch("r")) })
	noPanic(t, "ExpireAt", func() { assert.Zero(t, m.ExpireAt(t0)) })

	cfg := lease.KeeperConfig{Store: m}
	err := cfg.Validate(time.Second)
	assert.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.ErrorContains(t, err, "KeeperConfig.Store is a nil *lease.Memory")
	noPanic(t, "Keep", func() {
		k, err := lease.Keep(ctx, l, cfg)
		assert.Nil(t, k)
		assert.ErrorIs(t, err, lease.ErrInvalidConfig)
	})
	var other *ptrStore // any Store type's nil pointer is refused alike
	err = lease.KeeperConfig{Store: other}.Validate(time.Second)
	assert.ErrorContains(t, err, "KeeperConfig.Store is a nil *lease_test.ptrStore")

	var k *lease.Keeper
	noPanic(t, "nil Keeper", func() {
		assert.False(t, k.Held())
		assert.False(t, k.HeldAt(t0))
		assert.Equal(t, lease.Lease{}, k.Lease())
		assert.True(t, closed(k.Lost()))
		assert.True(t, closed(k.Done()))
		assert.ErrorIs(t, k.Err(), lease.ErrInvalidConfig)
		k.Stop()
	})

	var r *lease.Recovery[string]
	noPanic(t, "nil Recovery", func() {
		assert.ErrorIs(t, r.Add(t0, "a"), lease.ErrInvalidConfig)
		assert.Empty(t, r.Start(t0, nil))
		assert.Empty(t, r.Finish(t0, lease.Attempt[string]{Key: "a"}, nil, nil))
		_, ok := r.Wake()
		assert.False(t, ok)
		assert.Equal(t, lease.Progress{}, r.Progress(t0))
		assert.ErrorIs(t, r.Run(ctx, func(context.Context, lease.Attempt[string]) error { return nil }, nil), lease.ErrInvalidConfig)
	})

	var c *lease.Counters
	noPanic(t, "nil Counters", func() {
		mem, _ := lease.NewMemory(lease.MemoryConfig{OnEvent: c.Observe})
		_, err := mem.GrantAt(t0, "r", "h", time.Second)
		assert.NoError(t, err)
		assert.Equal(t, lease.Stats{}, c.Stats())
	})
}

// ptrStore is a Store with pointer methods that dereference it.
type ptrStore struct{ lease.Memory }
