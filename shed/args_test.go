package shed

import (
	"context"
	"testing"

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
