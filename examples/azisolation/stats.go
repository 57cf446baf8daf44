package main

import (
	"fmt"
	"slices"
	"time"
)

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// Verdict thresholds. A healthy zone is "unaffected" only if at least
// unaffectedSuccess of its requests succeed and its p99 is at most
// unaffectedP99 (20 healthy backend calls); "degraded" if at least
// degradedSuccess succeed; otherwise "failed".
const (
	unaffectedSuccess = 0.99
	unaffectedP99     = 20 * defaultFast
	degradedSuccess   = 0.90
)

// servedShare is what the demo demands of a zone that is slow but
// working: that, once learnTime has passed since it slowed down, it be
// served at least this fraction of what the design lets it carry (see
// carried).
const servedShare = 0.9

// learnRTTs is how many of the sick zone's round trips learnTime allows:
// one for a probe to answer and teach the zone's call timeout, the others
// for its adaptive limit, which moves at most about once a round trip,
// to re-learn its baseline at its floor and grow back to what the zone
// needs.
const learnRTTs = 3

// settledWindow is when the requests that judge a slow zone's service
// were sent: from learnTime after it slowed down until, if it recovers in
// the run, one client timeout before it did (a request sent later may
// wait out the sickness in a queue and be answered by the recovered
// backend, which says nothing of how the slow zone was served).
func settledWindow(cfg config) (from, to time.Duration) {
	from, to = cfg.sickAfter+learnTime(cfg), cfg.sickAfter+cfg.sickFor
	if to < cfg.duration {
		to -= cfg.clientWait
	}
	return from, to
}

// learnTime is how long the guarded design is given to learn a zone that
// slowed down to cfg.sickDelay per call.
func learnTime(cfg config) time.Duration { return learnRTTs * cfg.sickDelay }

// zoneStats summarizes one zone's requests in one run.
type zoneStats struct {
	zone     string
	n, ok    int
	p50, p99 time.Duration
}

func (z zoneStats) success() float64 { return float64(z.ok) / float64(max(z.n, 1)) }

// verdict is the word for z's outcome, from the thresholds above.
func (z zoneStats) verdict() string {
	switch {
	case z.n == 0:
		return "no requests"
	case z.success() >= unaffectedSuccess && z.p99 <= unaffectedP99:
		return "unaffected"
	case z.success() >= degradedSuccess:
		return "degraded"
	default:
		return "failed"
	}
}

// span is a half-open interval of a run's time.
type span struct{ from, to time.Duration }

// pausedSpans returns the spans in which the sick zone was paused.
func pausedSpans(es []event, end time.Duration) []span {
	var out []span
	open := time.Duration(-1)
	for _, e := range es {
		switch {
		case e.zone == 0 && e.what == evPaused && open < 0:
			open = e.at
		case e.zone == 0 && e.what == evResumed && open >= 0:
			out = append(out, span{open, e.at})
			open = -1
		}
	}
	if open >= 0 {
		out = append(out, span{open, end})
	}
	return out
}

// stats summarizes each zone's requests sent in [from, to) (all of them if
// from < 0) and outside the excluded spans.
func stats(results []result, from, to time.Duration, exclude []span) []zoneStats {
	all := make([]zoneStats, len(zones))
	lats := make([][]time.Duration, len(zones))
	for _, r := range results {
		if from >= 0 && (r.sent < from || r.sent >= to) {
			continue
		}
		if slices.ContainsFunc(exclude, func(s span) bool { return r.sent >= s.from && r.sent < s.to }) {
			continue
		}
		all[r.zone].n++
		if r.ok {
			all[r.zone].ok++
		}
		lats[r.zone] = append(lats[r.zone], r.latency)
	}
	for i := range all {
		all[i].zone = zones[i]
		slices.Sort(lats[i])
		all[i].p50, all[i].p99 = percentile(lats[i], 0.5), percentile(lats[i], 0.99)
	}
	return all
}

// secStat is one zone's numbers in one second of a run: its requests sent
// in that second, and the most calls in flight, limit and call timeout
// sampled in it.
type secStat struct {
	zoneStats
	sample
}

func perSecond(r *run, cfg config) [][]secStat {
	n := seconds(cfg.duration)
	lats := make([][][]time.Duration, n)
	out := make([][]secStat, n)
	for s := range out {
		out[s] = make([]secStat, len(zones))
		lats[s] = make([][]time.Duration, len(zones))
		for z := range zones {
			out[s][z].zone = zones[z]
			out[s][z].sample = r.samples[s][z]
		}
	}
	for _, res := range r.results {
		s := min(n-1, int(res.sent/time.Second))
		st := &out[s][res.zone]
		st.n++
		if res.ok {
			st.ok++
		}
		lats[s][res.zone] = append(lats[s][res.zone], res.latency)
	}
	for s := range out {
		for z := range zones {
			slices.Sort(lats[s][z])
			out[s][z].p50, out[s][z].p99 = percentile(lats[s][z], 0.5), percentile(lats[s][z], 0.99)
		}
	}
	return out
}

// carried is the share of the sick zone's offered load a design can carry
// while its calls take delay: slots calls in flight at a time, against
// rate × delay needed (Little's law), at most all of it.
func carried(slots, rate int, delay time.Duration) float64 {
	return min(1, float64(slots)/(float64(rate)*delay.Seconds()))
}

// firstEvent returns the time of the first event what of the sick zone.
func firstEvent(es []event, what string) (time.Duration, bool) {
	for _, e := range es {
		if e.zone == 0 && e.what == what {
			return e.at, true
		}
	}
	return 0, false
}

// healthyOK reports whether every healthy zone met unaffectedSuccess in
// second s (a second without requests counts as met).
func healthyOK(sec []secStat) bool {
	for _, z := range sec[1:] {
		if z.n > 0 && z.success() < unaffectedSuccess {
			return false
		}
	}
	return true
}

// healthyHit returns the first second from second from on in which a
// healthy zone fell below unaffectedSuccess, and the first second after
// it from which they all met it again until the end (-1 if none).
func healthyHit(secs [][]secStat, from int) (hit, back int) {
	hit, back = -1, -1
	for s := max(0, from); s < len(secs); s++ {
		if !healthyOK(secs[s]) {
			hit = s
			break
		}
	}
	if hit < 0 {
		return -1, -1
	}
	for s := len(secs) - 1; s > hit && healthyOK(secs[s]); s-- {
		back = s
	}
	return hit, back
}

// rateLine prints the achieved per-zone rate beside the stated one, with a
// warning when the generator reached less than 95% of it.
func rateLine(stated int, achieved float64) string {
	frac := achieved / float64(stated)
	line := fmt.Sprintf("load: asked %d req/s per zone, sent %.0f req/s (%.1f%%)", stated, achieved, 100*frac)
	if frac < 0.95 {
		line += "; WARNING: this machine could not send the stated rate, so the run measured a lighter load"
	}
	return line
}

// starvedLine says, when some zone's p99 is more than 1.5 times the client
// timeout (which caps each request), that the latencies include the load
// generator's own wait for CPU; it is empty otherwise.
func starvedLine(all []zoneStats, clientWait time.Duration) string {
	worst := zoneStats{}
	for _, s := range all {
		if s.p99 > worst.p99 {
			worst = s
		}
	}
	if 2*worst.p99 <= 3*clientWait {
		return ""
	}
	return fmt.Sprintf("latencies: %s's p99 %v is over 1.5 times the %v client timeout, so the load generator was short of CPU and these latencies include its own wait",
		worst.zone, worst.p99.Round(time.Millisecond), clientWait)
}
