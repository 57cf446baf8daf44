package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidation(t *testing.T) {
	good := config{duration: time.Second, rate: 10, sickAfter: 0, sickFor: time.Second, sickDelay: time.Second, clientWait: time.Second, pool: 4}
	require.NoError(t, good.validate())
	bad := config{duration: -1, rate: 0, sickAfter: -1, sickFor: 0, sickDelay: 0, clientWait: 0, pool: 0}
	err := bad.validate()
	require.Error(t, err)
	for _, flag := range []string{"-duration", "-rate", "-sick-after", "-sick-for", "-sick-delay", "-client-timeout", "-pool"} {
		assert.Contains(t, err.Error(), flag)
	}
}

// shortRun runs both designs for real on loopback, at a small scale, and
// returns them with the text report.
func shortRun(t *testing.T, sickDelay time.Duration, clientWait time.Duration) ([]*designRun, config, string) {
	t.Helper()
	cfg := config{
		duration: 3 * time.Second, rate: 50, sickAfter: 300 * time.Millisecond, sickFor: time.Minute,
		sickDelay: sickDelay, pool: 32, fast: defaultFast, clientWait: clientWait, seed: 1,
	}
	require.NoError(t, cfg.validate())
	runs, err := runBoth(cfg, func(string) {})
	require.NoError(t, err)
	var out bytes.Buffer
	report(&out, io.Discard, cfg, runs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(out.String())
		}
	})
	return runs, cfg, out.String()
}

// TestSlowZoneIsServed: a zone whose calls take 200ms (10 in flight at 50
// req/s, under the 24 slots one zone may hold of 32) keeps being served
// by the guarded design once it has learned the zone (where a fixed 100ms
// cut-off served none of it), and the healthy zones are unaffected. The
// margins are structural: the guarded design can carry all of the zone's
// load, and the bound asked (70%) is far under the 90% the demo demands.
func TestSlowZoneIsServed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real HTTP service for a few seconds")
	}
	runs, cfg, out := shortRun(t, 200*time.Millisecond, 2*time.Second)
	safe := runs[1]
	assert.Equal(t, 1.0, carried(safe.slots, cfg.rate, cfg.sickDelay))
	require.Greater(t, safe.settled.n, 50, "requests after the learning time")
	assert.GreaterOrEqual(t, safe.settled.success(), 0.7, "slow zone served after learning")
	for _, z := range safe.zones[1:] {
		assert.GreaterOrEqual(t, z.success(), 0.9, "healthy zone %s", z.zone)
	}
	_, paused := firstEvent(safe.run.events, evPaused)
	assert.False(t, paused, "a slow zone's health checks pass: the operator does not pause it")
	assert.Contains(t, out, "slow but working")
	assert.Contains(t, out, "The operator never paused us-east-1a: all")
}

// TestHungZoneIsContained: a zone whose calls take 3s (longer than the
// 800ms ceiling on a call) starves the healthy zones in the 2011 design,
// whose 32 workers it fills for seconds (it needs 150), and not in the
// guarded design, where it holds at most 24 slots, each for its learned
// timeout, and leaves the healthy zones 8 for 0.5 calls in flight; the
// operator pauses it. Charts and JSON are written from the same runs.
func TestHungZoneIsContained(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real HTTP service for a few seconds")
	}
	runs, cfg, out := shortRun(t, 3*time.Second, time.Second)
	naive, safe := runs[0], runs[1]
	require.True(t, hung(cfg))
	for z := 1; z < len(zones); z++ {
		assert.GreaterOrEqual(t, safe.zones[z].success(), 0.9, "guarded healthy zone %s", zones[z])
		assert.LessOrEqual(t, naive.zones[z].success(), 0.7, "2011 healthy zone %s should be starved", zones[z])
	}
	assert.Less(t, safe.sickServed.success(), 0.5, "a hung zone is not served")
	_, paused := firstEvent(safe.run.events, evPaused)
	assert.True(t, paused, "the operator pauses a hung zone")
	assert.Contains(t, out, "us-east-1a hung:")
	assert.Len(t, regexp.MustCompile(`(?m)^(2011|guarded) +us-east-1[abc] \((sick|healthy)\) +\d+ `).FindAllString(out, -1), 6, "a summary row per design and zone")

	dir := t.TempDir()
	require.NoError(t, writeCharts(dir, cfg, runs))
	for _, f := range []string{"azisolation.png", "azisolation.svg"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Positive(t, st.Size(), f)
	}

	b, err := json.Marshal(toJSON(cfg, runs))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	designs := got["designs"].([]any)
	require.Len(t, designs, 2)
	d := designs[1].(map[string]any)
	for _, k := range []string{"name", "design", "zones", "events", "seconds", "sick_zone_served_while_sick_pct", "paused_at_s"} {
		assert.Contains(t, d, k)
	}
	sec := d["seconds"].([]any)
	require.Len(t, sec, 3)
	z := sec[0].(map[string]any)["zones"].([]any)[0].(map[string]any)
	for _, k := range []string{"zone", "requests", "success_pct", "p50_ms", "p99_ms", "in_flight_max", "limit", "limit_low", "call_timeout_ms"} {
		assert.Contains(t, z, k)
	}
	for k := range got["config"].(map[string]any) {
		assert.Regexp(t, `^[a-z0-9_]+$`, k, "snake_case key")
	}
}

// TestLearnedTimeoutIsBounded: a zone that never answers in time teaches
// its timeout nothing; one success raises it at most timeoutFactor-fold;
// nothing takes it past the ceiling or under the floor.
func TestLearnedTimeoutIsBounded(t *testing.T) {
	l := newLearnedTimeout(time.Second)
	d, done := l.nextCall()
	assert.Equal(t, time.Second, d, "the first call is a probe, under the ceiling")
	done(5*time.Millisecond, true)
	assert.Equal(t, timeoutFloor, l.current())
	for range 1000 { // a hung zone: every call fails
		d, done := l.nextCall()
		done(d, false)
	}
	assert.Equal(t, timeoutFloor, l.current(), "failures never raise the timeout")
	for range 1000 { // successes at whatever timeout they ran under
		d, done := l.nextCall()
		before := l.current()
		done(d, true)
		assert.LessOrEqual(t, l.current(), max(before*timeoutFactor, d*timeoutFactor))
		assert.LessOrEqual(t, l.current(), time.Second)
		assert.GreaterOrEqual(t, l.current(), timeoutFloor)
	}
	_, probe := l.nextCall()
	_, second := l.nextCall()
	probe(0, false)
	second(0, false)
	d, _ = l.nextCall()
	assert.Equal(t, time.Second, d, "a finished probe frees the probe slot")
}

// TestHelpNamesProgramAndRanges: -h names the program explicitly (not the
// go run build-cache path) and states every flag's range.
func TestHelpNamesProgramAndRanges(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"-h"}, &stdout, &stderr)
	assert.Equal(t, 0, code)
	help := stderr.String()
	assert.True(t, strings.HasPrefix(help, "Usage of azisolation:"), help)
	for _, f := range []string{"-duration", "-rate", "-sick-after", "-sick-for", "-sick-delay", "-client-timeout", "-pool", "-seed"} {
		i := strings.Index(help, "  "+f)
		require.GreaterOrEqual(t, i, 0, f)
		line := help[i:]
		if j := strings.Index(line[2:], "\n  -"); j >= 0 {
			line = line[:j+2]
		}
		assert.Regexp(t, `in [\[(].*[\])]`, line, "range of %s", f)
	}
}

// TestBadFlagsExitTwo: every flag's extremes outside its range, zero,
// negative and non-numeric values are refused with status 2 and a message
// naming the flag, before any traffic.
func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "0"}, {"-duration", "-1s"}, {"-duration", "999ms"}, {"-duration", "120001ms"}, {"-duration", "x"},
		{"-duration", "9999999999h"},
		{"-rate", "0"}, {"-rate", "-1"}, {"-rate", "1001"}, {"-rate", "x"}, {"-rate", "99999999999999999999"},
		{"-sick-after", "-1ms"}, {"-sick-after", "14s"}, {"-sick-after", "x"},
		{"-sick-for", "0"}, {"-sick-for", "-1s"}, {"-sick-for", "120001ms"}, {"-sick-for", "x"},
		{"-client-timeout", "99ms"}, {"-client-timeout", "10001ms"}, {"-client-timeout", "x"},
		{"-seed", "-1"}, {"-seed", "x"},
		{"-sick-delay", "0"}, {"-sick-delay", "9ms"}, {"-sick-delay", "-1s"}, {"-sick-delay", "60001ms"}, {"-sick-delay", "x"},
		{"-pool", "0"}, {"-pool", "-1"}, {"-pool", "10001"}, {"-pool", "x"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(args, &stdout, &stderr)
		assert.Equal(t, 2, code, "%v", args)
		assert.Empty(t, stdout.String(), "%v", args)
		assert.Contains(t, stderr.String(), "azisolation: ", "%v", args)
		assert.Contains(t, stderr.String(), args[0], "%v: the message names what was refused", args)
	}
}

// TestLimitsAreAccepted: the smallest and largest values of every flag pass
// validation (the largest run is what the 2-minute budget is sized for).
func TestLimitsAreAccepted(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "1s", "-sick-after", "0", "-sick-for", "1ms", "-sick-delay", "10ms", "-client-timeout", "100ms", "-rate", "1", "-pool", "1", "-seed", "0"},
		{"-duration", "2m", "-sick-after", "119999ms", "-sick-for", "2m", "-sick-delay", "1m", "-client-timeout", "10s", "-rate", "1000", "-pool", "10000", "-seed", "18446744073709551615"},
	} {
		_, err := parseFlags(args, io.Discard)
		assert.NoError(t, err, "%v", args)
	}
}

// TestVerdictComesFromNumbers: the word for a zone follows the stated
// thresholds; 28% success is never "unaffected".
func TestVerdictComesFromNumbers(t *testing.T) {
	for _, c := range []struct {
		s    zoneStats
		want string
	}{
		{zoneStats{n: 100, ok: 28, p99: time.Second}, "failed"},
		{zoneStats{n: 100, ok: 38, p99: 5 * time.Millisecond}, "failed"},
		{zoneStats{n: 100, ok: 95, p99: 5 * time.Millisecond}, "degraded"},
		{zoneStats{n: 100, ok: 100, p99: time.Second}, "degraded"},
		{zoneStats{n: 100, ok: 99, p99: 100 * time.Millisecond}, "unaffected"},
		{zoneStats{n: 0}, "no requests"},
	} {
		assert.Equal(t, c.want, c.s.verdict(), "%+v", c.s)
	}
}

// TestPacingCatchesUp: a generator that stalls sends its backlog instead of
// dropping the ticks it missed, and never more than rate × duration.
func TestPacingCatchesUp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		rate := 1 + r.IntN(maxRate)
		dur := minDuration + time.Duration(r.Int64N(int64(maxDuration-minDuration)+1))
		if i < 4 {
			rate, dur = []int{1, maxRate}[i%2], []time.Duration{minDuration, maxDuration}[i/2]
		}
		total := target(rate, dur)
		sent := 0
		var elapsed time.Duration
		for elapsed < dur {
			due := dueBy(elapsed, rate, dur)
			require.GreaterOrEqual(t, due, sent, "due never goes back")
			sent = due
			elapsed += time.Duration(r.Int64N(int64(time.Second)))
		}
		sent = max(sent, dueBy(dur, rate, dur))
		require.Equal(t, total, sent, "rate %d for %v", rate, dur)
		require.Equal(t, int(int64(rate)*int64(dur)/int64(time.Second)), total)
	}
}

// TestRateLineWarns: the achieved rate is printed beside the stated one, and
// a shortfall is called out, never silent.
func TestRateLineWarns(t *testing.T) {
	ok := rateLine(2000, 1990)
	assert.Contains(t, ok, "2000")
	assert.Contains(t, ok, "1990")
	assert.NotContains(t, ok, "WARNING")
	short := rateLine(2000, 1000)
	assert.Contains(t, short, "1000")
	assert.Contains(t, short, "WARNING")
	assert.Contains(t, short, "50.0%")
}

// TestStarvedLine: latencies far beyond the client timeout are called out
// as the generator's own CPU wait, and ordinary ones are not.
func TestStarvedLine(t *testing.T) {
	assert.Empty(t, starvedLine([]zoneStats{{zone: zones[0], p99: 1500 * time.Millisecond}}, time.Second))
	line := starvedLine([]zoneStats{{zone: zones[0], p99: time.Second}, {zone: zones[1], p99: 2700 * time.Millisecond}}, time.Second)
	assert.Contains(t, line, zones[1])
	assert.Contains(t, line, "2.7s")
}

// TestBadOutRefusedBeforeLoad: an -out that cannot be a directory is
// refused with the flag's name before any load runs (no progress line).
func TestBadOutRefusedBeforeLoad(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"-out", filepath.Join(file, "charts")}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "-out")
	assert.NotContains(t, stderr.String(), "running the")
}
