package main

import (
	"bytes"
	"regexp"
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
