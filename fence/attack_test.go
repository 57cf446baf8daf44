package fence

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
