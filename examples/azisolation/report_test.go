package main

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// fakeDesign builds one design's run from a rule instead of from traffic:
// outcome says how each request went, fly how many of each zone's calls
// were in flight in each second; the numbers are then computed as
// runBoth computes them.
func fakeDesign(cfg config, short string, slots int, events []event, checks, failed int,
	outcome func(zone int, sent time.Duration) (bool, time.Duration), fly func(zone, sec int) int) *designRun {
	r := &run{events: events, checks: checks, failedChecks: failed, samples: make([][]sample, seconds(cfg.duration))}
	for s := range r.samples {
		r.samples[s] = make([]sample, len(zones))
		for z := range zones {
			r.samples[s][z] = sample{inFlight: fly(z, s), limit: slots / 2, lowLimit: slots / 2, timeout: timeoutFloor}
			if z == 0 && s == 3 {
				r.samples[s][z].limit, r.samples[s][z].lowLimit = 0, 0 // the partition did not track the zone in this second
			}
		}
	}
	interval := time.Second / time.Duration(cfg.rate)
	for z := range zones {
		for i := range target(cfg.rate, cfg.duration) {
			sent := time.Duration(i) * interval
			ok, lat := outcome(z, sent)
			r.results = append(r.results, result{z, sent, ok, lat})
		}
	}
	r.load = loadStats{sent: len(r.results), lastSend: cfg.duration - interval}
	slicesSortEvents(r.events)
	d := &designRun{name: short, short: short, slots: slots, run: r}
	d.secs = perSecond(r, cfg)
	d.zones = stats(r.results, -1, -1, nil)
	paused := pausedSpans(r.events, cfg.duration)
	d.sickServed = stats(r.results, cfg.sickAfter, cfg.sickAfter+cfg.sickFor, paused)[0]
	from, to := settledWindow(cfg)
	d.settled = stats(r.results, from, to, paused)[0]
	return d
}

// badText lists what no sentence may say, whatever the numbers: negative
// intervals, "0 whole seconds", counts that disagree with their noun, a
// check count of zero called "all", a learned limit of 0 (a second the
// partition did not track the zone), a summary that frames a hung zone's 0% as a score.
var badText = []*regexp.Regexp{
	regexp.MustCompile(`(^|[ (])-\d`),
	regexp.MustCompile(`\b0 whole`),
	regexp.MustCompile(`\b1 (requests|slots|health checks)\b`),
	regexp.MustCompile(`all [0-2] of`),
	regexp.MustCompile(`turned sick in \(`),
	regexp.MustCompile(`in both designs, and served`),
	regexp.MustCompile(`\(2011: `),
	regexp.MustCompile(`ranged over \[0,`),
}

// peakDrain finds the seconds a sentence says calls in flight peaked and
// drained in.
var peakDrain = regexp.MustCompile(`peaked at \d+ in second (\d+)\b[^.]*in second (\d+)\.`)

// TestSentencesHoldForEveryOutcome: the report's sentences stay true and
// grammatical for outcomes the default run never shows: no pause, no
// resume, a zone that never recovers, a resume while still sick, a
// healthy zone hit before the sick one turned sick or never recovering,
// one request a second, a slow zone, no health check at all.
func TestSentencesHoldForEveryOutcome(t *testing.T) {
	base := config{duration: 10 * time.Second, rate: 10, sickAfter: 2 * time.Second, sickFor: 4 * time.Second,
		sickDelay: 5 * time.Second, clientWait: 2 * time.Second, pool: 48, fast: defaultFast, seed: 1}
	allOK := func(int, time.Duration) (bool, time.Duration) { return true, defaultFast }
	sickFails := func(z int, sent time.Duration) (bool, time.Duration) {
		if z == 0 && sent >= 2*time.Second && sent < 6*time.Second {
			return false, 100 * time.Millisecond
		}
		return true, defaultFast
	}
	healthyFailIn := func(from, to int) func(int, time.Duration) (bool, time.Duration) {
		return func(z int, sent time.Duration) (bool, time.Duration) {
			if s := int(sent / time.Second); s >= from && s < to {
				return false, 2 * time.Second
			}
			return sickFails(z, sent)
		}
	}
	one := func(int, int) int { return 1 }
	hump := func(z, s int) int {
		if z == 0 && s >= 2 && s < 6 {
			return 30
		}
		return 1
	}
	ev := func(at float64, what string) event { return event{time.Duration(at * float64(time.Second)), 0, what} }
	for _, c := range []struct {
		name    string
		cfg     func(config) config
		events  []event
		checks  int
		failed  int
		outcome func(int, time.Duration) (bool, time.Duration)
		fly     func(int, int) int
		want    []string
		wantNot []string
	}{
		{name: "hung, paused and resumed, hit in the sick second", events: []event{ev(2, evSick), ev(3.5, evPaused), ev(6, evRecovered), ev(6.8, evResumed)},
			checks: 30, failed: 8, outcome: healthyFailIn(2, 4), fly: hump,
			want:    []string{"hung", "in second 2, the second in which us-east-1a turned sick, at 2.0s (postmortem", "1.5s after it turned sick", "0.8s after its backend recovered", "back to at most 1 in second 6"},
			wantNot: []string{"slow but working"}},
		{name: "never paused, no check", cfg: func(c config) config { c.duration = time.Second; c.sickAfter = 0; return c },
			events: []event{ev(0, evSick)}, outcome: allOK, fly: one,
			want: []string{"made no health check"}, wantNot: []string{"peaked"}},
		{name: "one check passed", events: []event{ev(2, evSick), ev(6, evRecovered)}, checks: 1, outcome: allOK, fly: one,
			want: []string{"its one health check passed"}},
		{name: "two checks passed", events: []event{ev(2, evSick), ev(6, evRecovered)}, checks: 2, outcome: allOK, fly: one,
			want: []string{"both of its health checks passed"}},
		{name: "failed checks, never in a row", events: []event{ev(2, evSick), ev(6, evRecovered)}, checks: 30, failed: 1, outcome: allOK, fly: one,
			want: []string{"1 of its 30 health checks failed, never 2 in a row"}},
		{name: "resumed while still sick", events: []event{ev(2, evSick), ev(2.6, evPaused), ev(3.4, evResumed), ev(6, evRecovered)},
			checks: 30, failed: 3, outcome: sickFails, fly: hump,
			want: []string{"while its backend was still sick (until 6.0s)"}, wantNot: []string{"after its backend recovered"}},
		{name: "sick to the end of the run, paused", cfg: func(c config) config { c.sickFor = time.Minute; return c },
			events: []event{ev(2, evSick), ev(3, evPaused)}, checks: 30, failed: 28, outcome: sickFails, fly: hump,
			want:    []string{"still sick at the end of the run, and the zone still paused", "at 2s and stays slow to the end of the run"},
			wantNot: []string{"recovered at", "then recovers"}},
		{name: "sick to the end, resumed", cfg: func(c config) config { c.sickFor = time.Minute; return c },
			events: []event{ev(2, evSick), ev(3, evPaused), ev(4, evResumed)}, checks: 30, failed: 5, outcome: sickFails, fly: hump,
			want: []string{"still sick (to the end of the run)"}},
		{name: "recovered, never resumed", events: []event{ev(2, evSick), ev(3, evPaused), ev(6, evRecovered)}, checks: 30, failed: 5, outcome: sickFails, fly: hump,
			want: []string{"had not resumed it by the end of the run, though its backend recovered at 6.0s"}},
		{name: "healthy hit before the sick zone", events: []event{ev(2, evSick), ev(6, evRecovered)}, checks: 30, outcome: healthyFailIn(0, 1), fly: one,
			want: []string{"in second 0, before us-east-1a turned sick at 2.0s (postmortem"}, wantNot: []string{"every second of the run"}},
		{name: "healthy hit in the second before the sick zone", events: []event{ev(2, evSick), ev(6, evRecovered)}, checks: 30, outcome: healthyFailIn(1, 2), fly: one,
			want: []string{"in second 1, before us-east-1a turned sick at 2.0s, whose requests could still be waiting for an answer when it did"}},
		{name: "healthy never back", events: []event{ev(2, evSick), ev(6, evRecovered)}, checks: 30, outcome: healthyFailIn(4, 10), fly: hump,
			want: []string{"2.0s after us-east-1a turned sick at 2.0s", "still below it in the run's last second"}},
		{name: "slow zone", cfg: func(c config) config { c.sickDelay = 300 * time.Millisecond; return c },
			events: []event{ev(2, evSick), ev(6, evRecovered)}, checks: 30, outcome: allOK, fly: one,
			want: []string{"slow but working", "all 30 of its health checks passed", "healthy zones met 99% success in every second"}, wantNot: []string{"hung"}},
		{name: "one request a second", cfg: func(c config) config { c.rate = 1; c.duration = 3 * time.Second; return c },
			events: []event{ev(2, evSick)}, checks: 4, outcome: sickFails, fly: one, want: []string{"of its 1 request succeeded"}},
		{name: "edge of hung", cfg: func(c config) config { c.sickDelay = 1500 * time.Millisecond; c.sickFor = 7 * time.Second; return c },
			events: []event{ev(2, evSick), ev(9, evRecovered)}, checks: 30, failed: 1, outcome: allOK, fly: one,
			want: []string{"at the edge of hung", "applies only to one whose calls all answer within the ceiling"}, wantNot: []string{"slow but working", "us-east-1a hung:", "is NOT met", "is met"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			if c.cfg != nil {
				cfg = c.cfg(cfg)
			}
			runs := []*designRun{
				fakeDesign(cfg, "2011", cfg.pool, c.events, c.checks, c.failed, c.outcome, c.fly),
				fakeDesign(cfg, "guarded", zoneCap(cfg.pool), c.events, c.checks, c.failed, c.outcome, c.fly),
			}
			var buf bytes.Buffer
			report(&buf, io.Discard, cfg, runs)
			out := buf.String()
			flat := strings.Join(strings.Fields(out), " ")
			for _, w := range c.want {
				assert.Contains(t, flat, w)
			}
			for _, w := range c.wantNot {
				assert.NotContains(t, flat, w)
			}
			for _, m := range peakDrain.FindAllStringSubmatch(flat, -1) {
				assert.NotEqual(t, m[1], m[2], "calls drained in the second they peaked: %s", m[0])
			}
			for _, sentence := range regexp.MustCompile(`[^.]*\.`).FindAllString(flat, -1) {
				for _, re := range badText {
					assert.NotRegexp(t, re, sentence)
				}
			}
			if t.Failed() {
				t.Log(out)
			}
		})
	}
}

// TestSummaryFlagsAStarvedRun: when the generator could not send the
// stated rate, the comparison says so before comparing.
func TestSummaryFlagsAStarvedRun(t *testing.T) {
	cfg := config{duration: 4 * time.Second, rate: 10, sickAfter: time.Second, sickFor: time.Second,
		sickDelay: 5 * time.Second, clientWait: 2 * time.Second, pool: 48, fast: defaultFast}
	ok := func(int, time.Duration) (bool, time.Duration) { return true, defaultFast }
	one := func(int, int) int { return 1 }
	runs := []*designRun{fakeDesign(cfg, "2011", 48, nil, 4, 0, ok, one), fakeDesign(cfg, "guarded", 36, nil, 4, 0, ok, one)}
	assert.NotContains(t, strings.Join(summary(cfg, runs), " "), "short of CPU")
	runs[1].run.load.lastSend = 2 * cfg.duration // it took twice as long to send
	assert.Contains(t, strings.Join(summary(cfg, runs), " "), "short of CPU for the load in the guarded run")
}

// TestSettledWindowEndsBeforeRecovery: the requests that judge a slow
// zone's service exclude those sent within a client timeout of its
// recovery, which a queue lets wait out the sickness (at -rate 300 the
// 2011 design was "served" 70.6% of a zone it could carry 53% of).
func TestSettledWindowEndsBeforeRecovery(t *testing.T) {
	cfg := config{duration: 10 * time.Second, rate: 100, sickAfter: 2 * time.Second, sickFor: 5 * time.Second,
		sickDelay: 300 * time.Millisecond, clientWait: 2 * time.Second, pool: 48, fast: defaultFast}
	from, to := settledWindow(cfg)
	assert.Equal(t, 2900*time.Millisecond, from)
	assert.Equal(t, 5*time.Second, to)
	servedAfterRecovery := func(z int, sent time.Duration) (bool, time.Duration) {
		return z != 0 || sent < 2*time.Second || sent >= 5*time.Second, time.Second
	}
	one := func(int, int) int { return 1 }
	d := fakeDesign(cfg, "2011", 48, nil, 0, 0, servedAfterRecovery, one)
	assert.Equal(t, 210, d.settled.n)
	assert.Zero(t, d.settled.ok, "a request that waited out the sickness does not count as served while sick")
	cfg.sickFor = time.Minute // sick to the end of the run: nothing to wait out
	_, to = settledWindow(cfg)
	assert.Equal(t, cfg.sickAfter+cfg.sickFor, to)
}

// TestLimitRangeShowsTheDip: a zone whose limit fell from its cap to its
// floor and grew back within one second is reported with the floor in
// its range. The run sampled every sampleEvery but kept only each
// second's most, so a pool-16 run whose limit spent 1.1s below its cap of
// 12 (down to 6) said it "ranged over [11, 12]".
func TestLimitRangeShowsTheDip(t *testing.T) {
	cfg := config{duration: 4 * time.Second, rate: 10, sickAfter: time.Second, sickFor: time.Minute,
		sickDelay: 300 * time.Millisecond, clientWait: 2 * time.Second, pool: 16, fast: defaultFast}
	d := fakeDesign(cfg, "guarded", zoneCap(cfg.pool), nil, 0, 0,
		func(int, time.Duration) (bool, time.Duration) { return true, cfg.fast },
		func(int, int) int { return 1 })
	for s := range d.run.samples {
		d.run.samples[s][0] = sample{}
		for _, l := range []int{12, 9, 6, 8, 11, 12} {
			d.run.samples[s][0].add(l, l, timeoutFloor)
		}
	}
	d.run.samples[3][0] = sample{} // a second without a call: untracked
	d.run.samples[3][0].add(0, 0, 0)
	d.secs = perSecond(d.run, cfg)
	text := strings.Join(findings(cfg, d), "\n")
	assert.Contains(t, text, "ranged over [6, 12]")
	var buf bytes.Buffer
	report(&buf, io.Discard, cfg, []*designRun{d, d})
	assert.Regexp(t, `(?m)^ *1s .* 6-12 `, buf.String(), "the table shows each second's range of the limit")
}
