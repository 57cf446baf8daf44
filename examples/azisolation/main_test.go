package main

import (
	"bytes"
	"io"
	"math/rand/v2"
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
	naive, safe, err := compare(&out, io.Discard, cfg)
	require.NoError(t, err)
	for _, z := range zones[1:] {
		assert.GreaterOrEqual(t, successRate(safe, z), 0.95, "guarded healthy zone %s", z)
		assert.LessOrEqual(t, successRate(naive, z), 0.7, "2011 healthy zone %s should be starved", z)
	}
	assert.Less(t, successRate(safe, zones[0]), 0.5, "the sick zone fails either way")
	assert.Equal(t, 6, strings.Count(out.String(), "(healthy)")+strings.Count(out.String(), "(sick)"), "a row per design and zone")
}

// TestHelpNamesProgramAndRanges: -h names the program explicitly (not the
// go run build-cache path) and states every flag's range.
func TestHelpNamesProgramAndRanges(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"-h"}, &stdout, &stderr)
	assert.Equal(t, 0, code)
	help := stderr.String()
	assert.True(t, strings.HasPrefix(help, "Usage of azisolation:"), help)
	for _, f := range []string{"-duration", "-rate", "-sick-after", "-sick-delay", "-pool"} {
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
		{"-duration", "0"}, {"-duration", "-1s"}, {"-duration", "99ms"}, {"-duration", "45001ms"}, {"-duration", "x"},
		{"-duration", "9999999999h"},
		{"-rate", "0"}, {"-rate", "-1"}, {"-rate", "2001"}, {"-rate", "x"}, {"-rate", "99999999999999999999"},
		{"-sick-after", "-1ms"}, {"-sick-after", "3s"}, {"-sick-after", "x"},
		{"-sick-delay", "0"}, {"-sick-delay", "-1s"}, {"-sick-delay", "60001ms"}, {"-sick-delay", "x"},
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
		{"-duration", "100ms", "-sick-after", "0", "-sick-delay", "1ms", "-rate", "1", "-pool", "1"},
		{"-duration", "45s", "-sick-after", "44999ms", "-sick-delay", "1m", "-rate", "2000", "-pool", "10000"},
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
	var out bytes.Buffer
	summarize(&out, "guarded", []zoneStats{
		{zone: zones[0], n: 100, ok: 0, p99: time.Second},
		{zone: zones[1], n: 100, ok: 28, p99: time.Second},
		{zone: zones[2], n: 100, ok: 38, p99: time.Second},
	})
	assert.NotContains(t, out.String(), "unaffected")
	assert.Contains(t, out.String(), "28.0%")
	assert.Contains(t, out.String(), "38.0%")
}

// TestPacingCatchesUp: a generator that stalls sends its backlog instead of
// dropping the ticks it missed, and never more than rate × duration.
func TestPacingCatchesUp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		rate := 1 + r.IntN(2000)
		dur := 100*time.Millisecond + time.Duration(r.Int64N(int64(45*time.Second-100*time.Millisecond)+1))
		if i < 4 {
			rate, dur = []int{1, 2000}[i%2], []time.Duration{100 * time.Millisecond, 45 * time.Second}[i/2]
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
