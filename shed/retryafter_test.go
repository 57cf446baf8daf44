package shed_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/shed"
)

// TestRefusalIsARetryAfterHint: a rate limiter's refusal tells
// backoff.Retry when the next token is due, so a retry loop around a
// limited call waits for the token instead of knocking at the policy's
// much shorter delays.
func TestRefusalIsARetryAfterHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{
			LimiterConfig: shed.LimiterConfig{Rate: 2, Burst: 1},
		})
		require.NoError(t, err)
		require.NoError(t, k.Allow("tenant-a"), "the burst")

		var refusals int
		start := time.Now()
		err = backoff.Retry(t.Context(), backoff.Policy{Base: time.Millisecond, Cap: 10 * time.Millisecond, MaxAttempts: 10},
			func(context.Context) error {
				err := k.Allow("tenant-a")
				if err != nil {
					refusals++
				}
				return err
			})
		require.NoError(t, err)
		assert.Equal(t, 1, refusals, "refused once, then waited for the token")
		assert.Equal(t, 500*time.Millisecond, time.Since(start), "exactly the refusal's RetryIn")
	})
}
