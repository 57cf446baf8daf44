package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/internal/leasesim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFlagValidation(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"-droplets", "0", "-workers", "0", "-cost", "0", "-renew-cost", "-1ms", "-ttl", "0", "-timeout", "0", "-horizon", "0"}, &out, &errOut)
	assert.Equal(t, 2, code)
	for _, flag := range []string{"-droplets 0", "-workers 0", "-cost 0s", "-renew-cost -1ms", "-ttl 0s", "-timeout 0s", "-horizon 0"} {
		assert.Contains(t, errOut.String(), flag)
	}
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"-timeout", "5ms"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "no attempt could ever finish")
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"extra"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `unexpected argument "extra"`)
	assert.Equal(t, 2, run([]string{"-nope"}, &out, &errOut))
	assert.Equal(t, 0, run([]string{"-h"}, &out, &errOut))
	assert.Empty(t, out.String())
}

// TestCollapseAndRecovery checks the demo's claim at a small scale: the
// naive scheduler collapses (under 5% leased after 10× the ideal time) and
// Recovery leases at least 99% within 1.5× it, and the output is
// deterministic.
func TestCollapseAndRecovery(t *testing.T) {
	s := defaultScenario()
	s.Droplets, s.Workers = 2000, 2
	ideal := s.Ideal()
	s.Step, s.Horizon = ideal/10, 10*ideal
	naive := leasesim.RunNaive(s)
	rec, prog, err := leasesim.RunRecovery(s)
	require.NoError(t, err)
	last := naive[len(naive)-1]
	assert.Equal(t, 10*ideal, last.At)
	assert.Less(t, float64(last.Leased)/float64(s.Droplets), 0.05)
	var at15 leasesim.Sample
	for _, x := range rec {
		if x.At <= ideal*3/2 {
			at15 = x
		}
	}
	assert.GreaterOrEqual(t, float64(at15.Leased)/float64(s.Droplets), 0.99)
	assert.Zero(t, prog.Lapsed)

	args := []string{"-droplets", "2000", "-workers", "2", "-seed", "7", "-horizon", "3"}
	var a, b, errOut bytes.Buffer
	require.Equal(t, 0, run(args, &a, &errOut), errOut.String())
	require.Equal(t, 0, run(args, &b, &errOut))
	assert.Equal(t, a.String(), b.String(), "same flags, same bytes")
	assert.Contains(t, a.String(), "2,000 droplet leases lapsed")
	rows := regexp.MustCompile(`(?m)^ *[0-9.]+s  `).FindAllString(a.String(), -1)
	assert.Len(t, rows, 22, "a row per tenth of the ideal time up to 2×, then per ideal time")
}

// TestFlagRanges checks that every flag states its range in -h and that a
// value just past each bound is refused with exit status 2, so that the
// largest run -h allows is one that finishes in minutes.
func TestFlagRanges(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"-h"}, &out, &errOut))
	help := errOut.String()
	assert.Contains(t, help, "usage: leasestorm")
	for _, want := range []string{"1 to 30000", "1 to -droplets", "up to 1m0s", "-cost/10 to -cost", "-timeout to 1h0m0s", "above -cost, at most -ttl", "1 to 10", "0 to 2^64-1", "go run ./dynamodb2025"} {
		assert.Contains(t, help, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-droplets", "30001"}, "-droplets 30001 is outside [1, 30000]"},
		{[]string{"-droplets", "2000000"}, "-droplets 2000000 is outside"},
		{[]string{"-horizon", "10.5"}, "-horizon 10.5 is outside [1, 10]"},
		{[]string{"-horizon", "NaN"}, "-horizon NaN is outside"},
		{[]string{"-cost", "61s", "-timeout", "2m", "-ttl", "5m"}, "-cost 1m1s is outside (0, 1m0s]"},
		{[]string{"-renew-cost", "999us"}, "-renew-cost 999µs is outside [-cost/10, -cost] = [1ms, 10ms]"},
		{[]string{"-renew-cost", "11ms"}, "-renew-cost 11ms is outside"},
		{[]string{"-ttl", "61m"}, "-ttl 1h1m0s is outside (0, 1h0m0s]"},
		{[]string{"-workers", "10001"}, "-workers 10001 is outside [1, -droplets]"},
	} {
		errOut.Reset()
		out.Reset()
		assert.Equal(t, 2, run(tc.args, &out, &errOut), tc.args)
		assert.Contains(t, errOut.String(), tc.want, tc.args)
		assert.Empty(t, out.String(), tc.args)
	}
	// The bounds themselves are accepted (checked without simulating).
	_, _, err := parseFlags([]string{"-droplets", "30000", "-horizon", "10", "-renew-cost", "1ms", "-cost", "10ms"}, &errOut)
	assert.NoError(t, err)
}

// TestVerdictFollowsTheNumbers checks that the closing sentences are
// computed: a run where the ideal time is shorter than the lease term has
// no storm and says so, one where it is longer says recovery leased more,
// and the timed-out share is naive's own.
func TestVerdictFollowsTheNumbers(t *testing.T) {
	flat := func(args ...string) string {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(args, &out, &errOut), errOut.String())
		return strings.Join(strings.Fields(out.String()), " ")
	}
	calm := flat("-droplets", "200", "-workers", "2", "-horizon", "3")
	assert.Contains(t, calm, "no longer than the lease term")
	assert.Contains(t, calm, "both had the same share of the droplets leased")
	assert.Contains(t, calm, "0.0% timed out")
	assert.NotContains(t, calm, "recovery had")

	storm := flat("-droplets", "2000", "-workers", "2", "-horizon", "3")
	assert.Contains(t, storm, "longer than the lease term: the first leases need renewing")
	assert.Regexp(t, `recovery had [0-9.]+ percentage points more`, storm)
	assert.NotContains(t, storm, "same share")
	assert.NotContains(t, storm, " 0.0% timed out")

	for _, out := range []string{calm, storm} {
		assert.Contains(t, out, "small, step-by-step view of one link")
		assert.Contains(t, out, "go run ./dynamodb2025")
		assert.NotContains(t, out, "never idle", "a fixed claim")
	}
}

// TestShortRunQuietWhenNotATerminal checks that a short run prints nothing
// but errors on a stderr that is not a terminal (progress lines start at
// progress.LineAfter).
func TestShortRunQuietWhenNotATerminal(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"-droplets", "2000", "-workers", "2", "-horizon", "2"}, &out, &errOut))
	assert.Empty(t, errOut.String())
}
