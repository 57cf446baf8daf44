package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidation(t *testing.T) {
	good := config{duration: time.Second, rate: 10, sickAfter: 0, sickDelay: time.Second, pool: 4}
	require.NoError(t, good.validate())
	bad := config{duration: -1, rate: 0, sickAfter: -1, sickDelay: 0, pool: 0}
	err := bad.validate()
	require.Error(t, err)
	for _, flag := range []string{"-duration", "-rate", "-sick-after", "-sick-delay", "-pool"} {
		assert.Contains(t, err.Error(), flag)
	}
}

// TestGuardedIsolatesTheSickZone runs both designs for real on loopback, at
// a small scale. The margins are structural, not timing: in the 2011 design
// the sick zone's calls hold every worker for seconds, so healthy requests
// cannot get in before their 1s client timeout; guarded, healthy calls take
// 5ms and the sick zone can hold at most 40% of the pool.
func TestGuardedIsolatesTheSickZone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real HTTP service for a few seconds")
	}
	cfg := config{
		duration: 1500 * time.Millisecond, rate: 50, sickAfter: 200 * time.Millisecond,
		sickDelay: 3 * time.Second, pool: 16, fast: defaultFast, clientWait: defaultClientWait,
	}
	var out bytes.Buffer
	naive, safe, err := compare(&out, cfg)
	require.NoError(t, err)
	for _, z := range zones[1:] {
		assert.GreaterOrEqual(t, successRate(safe, z), 0.95, "guarded healthy zone %s", z)
		assert.LessOrEqual(t, successRate(naive, z), 0.7, "2011 healthy zone %s should be starved", z)
	}
	assert.Less(t, successRate(safe, zones[0]), 0.5, "the sick zone fails either way")
	assert.Equal(t, 7, strings.Count(out.String(), "us-east-1"), "a row per design and zone, and the header's mention")
}
