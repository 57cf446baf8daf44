package shed

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNilArguments: a nil context or function is an error that says so,
// before anything is admitted or counted; never a panic.
func TestNilArguments(t *testing.T) {
	var nilCtx context.Context
	fn := func(context.Context) error { return nil }

	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	require.NoError(t, err)
	p, err := NewPartition[string](PartitionConfig[string]{Total: 2})
	require.NoError(t, err)
	q, err := NewQueue(QueueConfig{Workers: 1})
	require.NoError(t, err)
	l, err := NewLimiter(LimiterConfig{Rate: 1})
	require.NoError(t, err)

	for name, call := range map[string]func() error{
		"Bulkhead.Acquire":  func() error { return b.Acquire(nilCtx) },
		"Bulkhead.Do ctx":   func() error { return b.Do(nilCtx, fn) },
		"Bulkhead.Do fn":    func() error { return b.Do(context.Background(), nil) },
		"Partition.Acquire": func() error { return p.Acquire(nilCtx, "a") },
		"Partition.Do ctx":  func() error { return p.Do(nilCtx, "a", fn) },
		"Partition.Do fn":   func() error { return p.Do(context.Background(), "a", nil) },
		"Queue.Acquire":     func() error { return q.Acquire(nilCtx, Normal) },
		"Queue.Do ctx":      func() error { return q.Do(nilCtx, Normal, fn) },
		"Queue.Do fn":       func() error { return q.Do(context.Background(), Normal, nil) },
		"Limiter.Wait":      func() error { return l.Wait(nilCtx) },
	} {
		err := call()
		assert.ErrorIs(t, err, ErrInvalidArgument, name)
		assert.NotErrorIs(t, err, ErrShed, "%s: not a refusal", name)
		assert.Regexp(t, `^shed: invalid argument: nil (context|function)$`, err.Error(), name)
	}
	assert.Equal(t, Stats{}, b.Stats(), "nothing admitted or counted")
	assert.Equal(t, Stats{}, p.Stats())
	assert.Equal(t, Stats{}, q.Stats())
	assert.Equal(t, Stats{}, l.Stats())
	assert.Zero(t, p.Keys(), "no key created")
}

// TestZeroValues: a Queue, Limiter or KeyedLimiter not built with its
// constructor says so instead of panicking; what returns no error refuses
// or reports nothing. (The zero Bulkhead and Partition are usable: they
// admit nothing.)
func TestZeroValues(t *testing.T) {
	ctx := context.Background()
	var q Queue
	assert.False(t, q.TryAcquire())
	assert.ErrorIs(t, q.Acquire(ctx, Normal), ErrInvalidConfig)
	assert.EqualError(t, q.Do(ctx, Normal, func(context.Context) error { return nil }), "shed: invalid config: Queue not built with NewQueue")
	q.Release()
	assert.Equal(t, Stats{}, q.Stats())
	assert.False(t, q.Standing(Critical))

	var l Limiter
	assert.False(t, l.Allow())
	assert.ErrorIs(t, l.Wait(ctx), ErrInvalidConfig)
	assert.Zero(t, l.Tokens(time.Now()))
	assert.Equal(t, Stats{}, l.Stats())

	var k KeyedLimiter[string]
	assert.EqualError(t, k.Allow("a"), "shed: invalid config: KeyedLimiter not built with NewKeyedLimiter")
	assert.Zero(t, k.Keys())
	_, ok := k.StatsFor("a")
	assert.False(t, ok)

	var b Bulkhead
	assert.False(t, b.TryAcquire())
	var p Partition[string]
	assert.Error(t, p.Acquire(ctx, "a"))

	assert.Equal(t, "shed: refused (no reason given)", (&Refusal{}).Error())
}

func TestKeyedLimiterRefusesMaxWait(t *testing.T) {
	_, err := NewKeyedLimiter[string](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: 1, MaxWait: time.Second}})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.ErrorContains(t, err, "MaxWait 1s: a KeyedLimiter never waits")
}
