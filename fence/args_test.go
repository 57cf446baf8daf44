package fence

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNilContext: every operation refuses a nil context with an error
// matching ErrInvalidArgument, never a panic, and writes nothing.
func TestNilContext(t *testing.T) {
	var nilCtx context.Context
	m := &Memory{}
	s, err := NewSequencer(SequencerConfig{Store: m, Key: "seq"})
	require.NoError(t, err)
	for name, call := range map[string]func() error{
		"Load":           func() error { _, _, err := m.Load(nilCtx, "k"); return err },
		"CompareAndSwap": func() error { return m.CompareAndSwap(nilCtx, "k", 0, []byte("v"), 1) },
		"WriteIfNewer":   func() error { return m.WriteIfNewer(nilCtx, "k", []byte("v"), 1) },
		"Delete":         func() error { return m.Delete(nilCtx, "k", 1) },
		"List":           func() error { _, err := m.List(nilCtx, ""); return err },
		"fence.WriteIfNewer": func() error {
			return WriteIfNewer(nilCtx, casOnly{m}, "k", []byte("v"), 1)
		},
		"Sequencer.Next": func() error { _, err := s.Next(nilCtx); return err },
		"Sequencer.Last": func() error { _, err := s.Last(nilCtx); return err },
	} {
		err := call()
		assert.ErrorIs(t, err, ErrInvalidArgument, name)
		assert.EqualError(t, err, "fence: invalid argument: nil context", name)
	}
	keys, err := m.List(context.Background(), "")
	require.NoError(t, err)
	assert.Empty(t, keys, "nothing was written")
	assert.ErrorIs(t, WriteIfNewer(context.Background(), nil, "k", []byte("v"), 1), ErrInvalidArgument)
}

// casOnly hides Memory's WriteIfNewer (only the Store methods are
// promoted), so fence.WriteIfNewer takes its compare-and-swap path.
type casOnly struct{ Store }

// TestNilMemory: a typed-nil *Memory is refused with an error matching
// ErrInvalidArgument by each of its methods, by every function taking a
// Store, and by NewSequencer, never a panic; so is a nil *Sequencer.
func TestNilMemory(t *testing.T) {
	ctx := context.Background()
	var m *Memory
	var seq *Sequencer
	for name, call := range map[string]func() error{
		"Load":               func() error { _, _, err := m.Load(ctx, "k"); return err },
		"CompareAndSwap":     func() error { return m.CompareAndSwap(ctx, "k", 0, []byte("v"), 1) },
		"WriteIfNewer":       func() error { return m.WriteIfNewer(ctx, "k", []byte("v"), 1) },
		"Delete":             func() error { return m.Delete(ctx, "k", 1) },
		"List":               func() error { _, err := m.List(ctx, ""); return err },
		"fence.WriteIfNewer": func() error { return WriteIfNewer(ctx, m, "k", []byte("v"), 1) },
		"fence.WriteIfNewer via CAS": func() error {
			return WriteIfNewer(ctx, casOnly{m}, "k", []byte("v"), 1)
		},
	} {
		var err error
		require.NotPanics(t, func() { err = call() }, name)
		assert.ErrorIs(t, err, ErrInvalidArgument, name)
		assert.ErrorContains(t, err, "nil", name)
	}
	// A nil *Sequencer is a Sequencer not built by NewSequencer.
	for name, call := range map[string]func() error{
		"Sequencer.Next": func() error { _, err := seq.Next(ctx); return err },
		"Sequencer.Last": func() error { _, err := seq.Last(ctx); return err },
	} {
		var err error
		require.NotPanics(t, func() { err = call() }, name)
		assert.ErrorIs(t, err, ErrInvalidConfig, name)
	}
	_, err := NewSequencer(SequencerConfig{Store: m, Key: "seq"})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.ErrorContains(t, err, "SequencerConfig.Store is a nil *fence.Memory")
	// A nil pointer of another Store type is refused the same way.
	var other *ptrStore
	assert.ErrorIs(t, WriteIfNewer(ctx, other, "k", []byte("v"), 1), ErrInvalidArgument)
	_, err = NewSequencer(SequencerConfig{Store: other, Key: "seq"})
	assert.ErrorContains(t, err, "SequencerConfig.Store is a nil *fence.ptrStore")
}

// ptrStore is a Store with pointer methods that dereference it.
type ptrStore struct{ Memory }
