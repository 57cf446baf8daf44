package fence

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNilGuardAndRegister: a nil *Guard or *Register (a field never
// initialised) refuses with an error matching ErrInvalidArgument and
// admits or stores nothing, never a panic, as a nil *Memory does.
func TestNilGuardAndRegister(t *testing.T) {
	var g *Guard
	assert.NotPanics(t, func() {
		assert.False(t, g.Allow(1))
		assert.ErrorIs(t, g.Admit(1), ErrInvalidArgument)
		assert.EqualError(t, g.Admit(1), "fence: invalid argument: Guard.Admit on a nil *fence.Guard")
		assert.Zero(t, g.Current())
	})
	var r *Register[string]
	assert.NotPanics(t, func() {
		v, tok := r.Load()
		assert.Zero(t, v)
		assert.Zero(t, tok)
		assert.Zero(t, r.Token())
		assert.ErrorIs(t, r.CompareAndSwap(0, "v", 1), ErrInvalidArgument)
		assert.ErrorIs(t, r.WriteIfNewer("v", 1), ErrInvalidArgument)
		assert.EqualError(t, r.WriteIfNewer("v", 1), "fence: invalid argument: Register.WriteIfNewer on a nil *fence.Register")
	})
}

// TestMaxToken: the last token is usable once, everywhere, and nothing
// goes past it: a Sequencer hands it out and then refuses with
// ErrExhausted; a Register, a Memory and a Guard take it and then refuse
// every write as stale or invalid, never wrapping to zero.
func TestMaxToken(t *testing.T) {
	ctx := context.Background()
	m := &Memory{}
	require.NoError(t, m.CompareAndSwap(ctx, "seq", 0, []byte("x"), MaxToken-1))
	s, err := NewSequencer(SequencerConfig{Store: m, Key: "seq"})
	require.NoError(t, err)
	tok, err := s.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, MaxToken, tok)
	_, err = s.Next(ctx)
	assert.ErrorIs(t, err, ErrExhausted)
	last, err := s.Last(ctx)
	require.NoError(t, err)
	assert.Equal(t, MaxToken, last)

	var r Register[int]
	require.NoError(t, r.WriteIfNewer(1, MaxToken))
	assert.ErrorIs(t, r.WriteIfNewer(2, MaxToken), ErrStale)
	assert.ErrorIs(t, r.CompareAndSwap(MaxToken, 2, MaxToken), ErrInvalidToken)
	v, tk := r.Load()
	assert.Equal(t, 1, v)
	assert.Equal(t, MaxToken, tk)

	require.NoError(t, m.WriteIfNewer(ctx, "k", []byte("a"), MaxToken))
	assert.ErrorIs(t, m.WriteIfNewer(ctx, "k", []byte("b"), MaxToken), ErrStale)
	assert.ErrorIs(t, WriteIfNewer(ctx, casOnly{m}, "k", []byte("b"), MaxToken), ErrStale)
	assert.ErrorIs(t, m.CompareAndSwap(ctx, "k", MaxToken, []byte("b"), MaxToken), ErrInvalidToken)

	g := NewGuard(GuardConfig{Initial: MaxToken - 1})
	assert.True(t, g.Allow(MaxToken))
	assert.True(t, g.Allow(MaxToken))
	assert.ErrorIs(t, g.Admit(MaxToken-1), ErrStale)
	assert.Equal(t, MaxToken, g.Current())
}
