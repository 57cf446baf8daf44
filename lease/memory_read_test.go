package lease_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/lease"
)

// TestMemoryFutureReadChangesNothing: HolderAt at a future time answers
// for that time — the lease has expired by then — without moving the
// table's clock, so the live lease is still renewed at the real time, and
// read again at it.
func TestMemoryFutureReadChangesNothing(t *testing.T) {
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	l, err := m.GrantAt(t0, "r", "h", 10*time.Second)
	require.NoError(t, err)
	_, ok := m.HolderAt(at(time.Hour), "r")
	assert.False(t, ok, "expired an hour later")
	got, ok := m.HolderAt(at(time.Second), "r")
	require.True(t, ok, "a future read expired the lease at the real time")
	assert.Equal(t, l, got)
	nl, err := m.RenewAt(at(time.Second), l)
	require.NoError(t, err, "a future read expired the lease at the real time")
	assert.Equal(t, at(11*time.Second), nl.Expires)
	// Another holder is still refused at the real time.
	_, err = m.GrantAt(at(2*time.Second), "r", "other", time.Second)
	require.ErrorIs(t, err, lease.ErrHeld)
}

// TestMemoryReadNeverGoesBack: a read at a time earlier than a write the
// table has seen is judged at that write's time, as writes are, so it
// never reports a lease that a later write judged expired.
func TestMemoryReadNeverGoesBack(t *testing.T) {
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	_, err := m.GrantAt(t0, "r", "h", 10*time.Second)
	require.NoError(t, err)
	_, err = m.GrantAt(at(20*time.Second), "other", "h", time.Second) // the table has seen 20s
	require.NoError(t, err)
	_, ok := m.HolderAt(at(5*time.Second), "r")
	assert.False(t, ok, "judged at 20s, the lease has expired")
}

// TestMemoryExpireAtIsAWrite: ExpireAt is a write: it moves the table's
// clock to its time, ends the leases expired by then for good, and later
// calls with an earlier time are judged at that time, so a renewal at the
// real time after ExpireAt(now+1h) is refused, consistently with the
// expiry ExpireAt reported.
func TestMemoryExpireAtIsAWrite(t *testing.T) {
	var expired []string
	m, _ := lease.NewMemory(lease.MemoryConfig{OnEvent: func(e lease.Event) {
		if e.Op == lease.OpExpire {
			expired = append(expired, e.Resource)
		}
	}})
	l, err := m.GrantAt(t0, "r", "h", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, m.ExpireAt(at(time.Second)))
	assert.Equal(t, 1, m.ExpireAt(at(time.Hour)))
	assert.Equal(t, []string{"r"}, expired)
	_, err = m.RenewAt(at(time.Second), l)
	require.ErrorIs(t, err, lease.ErrLost)
	_, ok := m.HolderAt(at(time.Second), "r")
	assert.False(t, ok)
	assert.Equal(t, 0, m.ExpireAt(at(time.Hour)), "each expiry is reported once")
}
