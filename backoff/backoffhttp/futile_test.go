package backoffhttp_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

// TestDeadlineRefusalIsNotRetried: a 503 whose server says, as shedhttp
// writes it, that it refused the request because its deadline cannot be
// met is handed back at once (a retry carries the same deadline, with
// less time left, and would be refused the same way) and counts as a
// failure; a header with another reason, two values or an unknown reason
// leaves the 503 retryable.
func TestDeadlineRefusalIsNotRetried(t *testing.T) {
	for _, c := range []struct {
		name    string
		values  []string
		attempt int32
	}{
		{"deadline", []string{"deadline"}, 1},
		{"queue full", []string{"queue_full"}, 2},
		{"two values", []string{"deadline", "deadline"}, 2},
		{"unknown", []string{"Deadline"}, 2},
		{"none", nil, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.values {
				h.Add(backoffhttp.RefusedHeader, v)
			}
			base := &headerBase{status: http.StatusServiceUnavailable, header: h}
			rt, err := backoffhttp.New(backoffhttp.Config{Base: base, Policy: backoff.Policy{Base: 1, Cap: 1, MaxAttempts: 3}})
			require.NoError(t, err)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://api.internal/x", nil)
			require.NoError(t, err)
			resp, err := rt.RoundTrip(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			assert.Equal(t, c.attempt, base.sent.Load(), "attempts")
			if c.attempt == 1 {
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				assert.True(t, strings.Contains(string(body), "refused"))
			} else {
				assert.Equal(t, http.StatusOK, resp.StatusCode)
			}
		})
	}
	resp := &http.Response{StatusCode: 503, Header: http.Header{backoffhttp.RefusedHeader: {"deadline"}}}
	assert.Equal(t, backoffhttp.Failure, backoffhttp.DefaultClassify(resp, nil))
}
