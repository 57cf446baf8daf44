package backoff

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// CheckAt decides as AllowAt does and names a refusal with its numbers, so
// that a caller asking before a wait (backoffhttp, before it spends a
// Budget token on a retry) can report it as Retry does.
func TestThrottleCheckAt(t *testing.T) {
	var nilThrottle *Throttle
	now := time.Date(2025, 10, 20, 6, 48, 0, 0, time.UTC)
	assert.NoError(t, nilThrottle.CheckAt(now, 0))
	assert.NoError(t, nilThrottle.Check())

	th := newThrottle(t, ThrottleConfig{Window: time.Minute})
	assert.NoError(t, th.CheckAt(now, 0), "no history, no throttling")
	for range 30 {
		th.RecordAt(now, ThrottleRefused)
	}
	assert.NoError(t, th.CheckAt(now, 30.0/31), "u equal to p admits")
	err := th.CheckAt(now, 0)
	var te *ThrottledError
	require.True(t, errors.As(err, &te), "%v", err)
	assert.ErrorIs(t, err, ErrThrottled)
	assert.Equal(t, ThrottledError{Probability: 30.0 / 31, Requests: 30, Accepts: 0, K: DefaultThrottleK, Window: time.Minute}, *te)
	assert.Equal(t, int64(1), th.StatsAt(now).Throttled, "the refusal counted")
}
