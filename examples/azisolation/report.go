package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stormguard/stormguard/examples/internal/textfmt"
)

// What the EBS postmortem says about the moments this demo reproduces
// (times PDT, April 21 2011, from ebs-2011-timeline.tsv): the re-mirroring
// storm began at 00:47, the regional API's errors at 00:50; the team
// disabled Create Volume in the affected zone at 02:40, and the other
// zones' APIs recovered by 02:50. Each is compared with the same interval
// of a run: from the zone turning sick, or from the pause.
const (
	pmErrorsAfterSick     = 3 * time.Minute   // 00:47 → 00:50
	pmPauseAfterSick      = 113 * time.Minute // 00:47 → 02:40
	pmRecoveredAfterPause = 10 * time.Minute  // 02:40 → 02:50
)

// dur formats a latency compactly: "5ms", "1.2s".
func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
}

// The sick zone's calls take sickDelay ±sickJitter.
const sickJitter = 0.2

// Kinds of sick zone, by where its calls' latencies fall against the
// ceiling on a call (the guarded design's longest call timeout and the
// operator's health-check deadline).
const (
	kindSlow = "slow" // every call answers within the ceiling
	kindEdge = "edge" // some calls answer within it, some run past it
	kindHung = "hung" // every call runs past it
)

// sickKind says which kind of sick zone cfg makes.
func sickKind(cfg config) string {
	ceil := float64(ceiling(cfg.clientWait))
	switch {
	case (1-sickJitter)*float64(cfg.sickDelay) > ceil:
		return kindHung
	case (1+sickJitter)*float64(cfg.sickDelay) <= ceil:
		return kindSlow
	default:
		return kindEdge
	}
}

// hung reports whether every one of the sick zone's calls takes longer
// than anything the guarded design or the operator waits for.
func hung(cfg config) bool { return sickKind(cfg) == kindHung }

func role(zone int) string {
	if zone == 0 {
		return "sick"
	}
	return "healthy"
}

func report(w, stderr io.Writer, cfg config, runs []*designRun) {
	ceil := ceiling(cfg.clientWait)
	fmt.Fprintf(w, "azisolation: a control plane for 3 zones on loopback, %d req/s per zone for %v (seed %d).\n", cfg.rate, cfg.duration, cfg.seed)
	then := fmt.Sprintf("for %v, then recovers", cfg.sickFor)
	if cfg.sickAfter+cfg.sickFor >= cfg.duration {
		then = "and stays slow to the end of the run"
	}
	fmt.Fprintf(w, "us-east-1a's backend turns slow (%v per call, ±20%%) at %v %s; healthy calls take %v.\n",
		cfg.sickDelay, cfg.sickAfter, then, cfg.fast)
	fmt.Fprintf(w, "Regional pool: %d workers. Clients time out after %v.\n", cfg.pool, cfg.clientWait)
	fmt.Fprintf(w, "Operator: health-checks each zone's backend every %v with a %v deadline; %d failed checks in a row\n", checkEvery, ceil, checksToAct)
	fmt.Fprintf(w, "pause the zone, %d passed checks in a row resume it.\n", checksToAct)
	fmt.Fprintf(w, "Guarded: each zone holds at most %d of the %d workers and learns its own limit from its latency (floor %d);\n",
		zoneCap(cfg.pool), cfg.pool, zoneFloor(cfg.pool))
	fmt.Fprintf(w, "its call timeout is %d × the p99 of its last %d successful calls, within [%v, %v = %.0f%% of the client timeout].\n",
		timeoutFactor, timeoutSamples, timeoutFloor, ceil, 100*ceilingShare)
	fmt.Fprintf(w, "That timeout cannot grow without bound for a hanging zone: only successes feed it, a success took at most\n")
	fmt.Fprintf(w, "the timeout it ran under, and a zone that hangs has none; one probe call per zone runs under the %v\n", ceil)
	fmt.Fprintf(w, "ceiling to notice a zone that is slower but answers, and nothing runs longer than that ceiling.\n")

	k := max(1, (seconds(cfg.duration)+29)/30)
	for _, d := range runs {
		fmt.Fprintf(w, "\n== %s ==\n", d.name)
		every := "second"
		if k > 1 {
			every = fmt.Sprintf("%d seconds", k)
		}
		fmt.Fprintf(w, "Per %s: success and p50/p99 latency of the requests sent in it; \"fly\" = most backend calls in flight", every)
		if d.short == "guarded" {
			fmt.Fprintf(w, ";\n\"1a limit\" = least-most limit sampled every %v, \"1a timeout\" = longest call timeout", sampleEvery)
		}
		fmt.Fprintln(w, ".")
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "t\t")
		for z, name := range zones {
			fmt.Fprintf(tw, "%s (%s)\tp50/p99\tfly\t", name, role(z))
		}
		if d.short == "guarded" {
			fmt.Fprint(tw, "1a limit\t1a timeout\t")
		}
		fmt.Fprintln(tw, " events")
		for s := 0; s < len(d.secs); s += k {
			row := mergeSeconds(d.run, d.secs, s, min(len(d.secs), s+k))
			fmt.Fprintf(tw, "%ds\t", s)
			for _, z := range row {
				if z.n == 0 {
					fmt.Fprintf(tw, "-\t-\t%d\t", z.inFlight)
					continue
				}
				fmt.Fprintf(tw, "%.1f%%\t%s/%s\t%d\t", 100*z.success(), dur(z.p50), dur(z.p99), z.inFlight)
			}
			if d.short == "guarded" {
				fmt.Fprintf(tw, "%s\t%s\t", limitRange(row[0].sample), dur(row[0].timeout))
			}
			var evs []string
			for _, e := range d.run.events {
				if e.at >= time.Duration(s)*time.Second && e.at < time.Duration(s+k)*time.Second {
					evs = append(evs, fmt.Sprintf("%s %s at %.1fs", zones[e.zone], e.what, e.at.Seconds()))
				}
			}
			fmt.Fprintf(tw, " %s\n", strings.Join(evs, "; "))
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "design\tzone\trequests\tsuccess\tp50\tp99")
	for _, d := range runs {
		for z, s := range d.zones {
			fmt.Fprintf(tw, "%s\t%s (%s)\t%d\t%.1f%%\t%s\t%s\n", d.short, s.zone, role(z), s.n, 100*s.success(), dur(s.p50), dur(s.p99))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, d := range runs {
		line := rateLine(cfg.rate, d.run.load.achieved(cfg.duration))
		fmt.Fprintf(w, "%s %s.\n", d.short, line)
		if strings.Contains(line, "WARNING") {
			fmt.Fprintf(stderr, "azisolation: %s %s\n", d.short, line)
		}
		if line := starvedLine(d.zones, cfg.clientWait); line != "" {
			fmt.Fprintf(w, "%s %s.\n", d.short, line)
		}
	}

	fmt.Fprintf(w, "\nVerdicts: \"unaffected\" = success >= %.0f%% and p99 <= %v; \"degraded\" = success >= %.0f%%; else \"failed\".\n",
		100*unaffectedSuccess, unaffectedP99, 100*degradedSuccess)
	for _, d := range runs {
		for z, s := range d.zones {
			fmt.Fprintf(w, "%s, %s zone %s: %.1f%% of %d requests succeeded, p99 %s: %s.\n",
				d.short, role(z), s.zone, 100*s.success(), s.n, dur(s.p99), s.verdict())
		}
	}
	for _, d := range runs {
		fmt.Fprintln(w)
		for _, line := range findings(cfg, d) {
			textWrap(w, d.short+": "+line)
		}
	}
	fmt.Fprintln(w)
	for _, line := range summary(cfg, runs) {
		textWrap(w, line)
	}
	fmt.Fprintln(w)
	textWrap(w, timeScale(cfg, runs))
}

// summary compares the two designs' runs, in sentences computed from
// their numbers.
func summary(cfg config, runs []*designRun) []string {
	var out []string
	var short []string
	for _, d := range runs {
		if d.run.load.achieved(cfg.duration) < 0.95*float64(cfg.rate) || starvedLine(d.zones, cfg.clientWait) != "" {
			short = append(short, d.short)
		}
	}
	if len(short) > 0 {
		out = append(out, fmt.Sprintf("This machine was short of CPU for the load in the %s run (see above): what follows measured the machine as much as the designs.",
			strings.Join(short, " and ")))
	}
	before, after := worstHealthy(runs[0].zones), worstHealthy(runs[1].zones)
	switch {
	case after > before:
		out = append(out, fmt.Sprintf("The guarded design raised the worst healthy zone's success from %.1f%% to %.1f%%.", 100*before, 100*after))
	case after < before:
		out = append(out, fmt.Sprintf("The guarded design lowered the worst healthy zone's success from %.1f%% to %.1f%%.", 100*before, 100*after))
	default:
		out = append(out, fmt.Sprintf("The worst healthy zone's success was %.1f%% in both designs.", 100*after))
	}
	var parts []string
	for i, d := range runs {
		s := d.sickServed
		switch {
		case s.n == 0:
			parts = append(parts, fmt.Sprintf("%s sent it no request", d.short))
		case i == 0:
			parts = append(parts, fmt.Sprintf("%s served %.1f%% of its %s (p99 %s)", d.short, 100*s.success(), plural(s.n, "request"), dur(s.p99)))
		default:
			parts = append(parts, fmt.Sprintf("%s %.1f%% of its %d (p99 %s)", d.short, 100*s.success(), s.n, dur(s.p99)))
		}
	}
	out = append(out, fmt.Sprintf("While us-east-1a was sick and not paused, %s.", strings.Join(parts, " and ")))
	return out
}

// timeScale says why a run's intervals cannot match the postmortem's,
// with the factor between them in this run.
func timeScale(cfg config, runs []*designRun) string {
	line := fmt.Sprintf("Time scale: in 2011 people found the cause and disabled the zone by hand, %s after the storm began; "+
		"here the operator is a rule acting on %v health checks, so a run's intervals are seconds where the postmortem's are "+
		"minutes and hours: compare the order of events and which zones fail, not the durations.", minutes(pmPauseAfterSick), checkEvery)
	if at, ok := firstEvent(runs[0].run.events, evPaused); ok && at > cfg.sickAfter {
		line += fmt.Sprintf(" (The 2011 run's pause came %.1fs after the zone turned sick: %.0f times sooner.)",
			(at - cfg.sickAfter).Seconds(), float64(pmPauseAfterSick)/float64(at-cfg.sickAfter))
	}
	return line
}

// plural formats n and a noun, adding an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// findings are the sentences about one design's run, each computed from
// its numbers.
func findings(cfg config, d *designRun) []string {
	var out []string
	ceil := ceiling(cfg.clientWait)
	s, settled := d.sickServed, d.settled
	can := carried(d.slots, cfg.rate, cfg.sickDelay)
	lo, hi := time.Duration((1-sickJitter)*float64(cfg.sickDelay)), time.Duration((1+sickJitter)*float64(cfg.sickDelay))
	served := fmt.Sprintf("While sick and not paused, %.1f%% of its %s succeeded (p50 %s, p99 %s).", 100*s.success(), plural(s.n, "request"), dur(s.p50), dur(s.p99))
	if s.n == 0 {
		served = "It was sent no request while sick and not paused."
	}
	switch sickKind(cfg) {
	case kindHung:
		out = append(out, fmt.Sprintf("us-east-1a hung: its backend took %s to %s to answer a call, longer than the %s ceiling on a call (the guarded design's "+
			"longest call timeout and the operator's check deadline). %s", dur(lo), dur(hi), dur(ceil), served))
	default:
		line := fmt.Sprintf("us-east-1a was slow but working: its backend took %s to %s to answer a call, within the %s ceiling on a call.", dur(lo), dur(hi), dur(ceil))
		if sickKind(cfg) == kindEdge {
			line = fmt.Sprintf("us-east-1a was slow, at the edge of hung: its backend took %s to %s to answer a call, some within the %s ceiling on a call and some past it.",
				dur(lo), dur(hi), dur(ceil))
		}
		line += " " + served
		line += fmt.Sprintf(" With %s for one zone the design can carry %.0f%% of its load (%d req/s × %v = %.1f calls in flight needed).",
			plural(d.slots, "slot"), 100*can, cfg.rate, cfg.sickDelay, float64(cfg.rate)*cfg.sickDelay.Seconds())
		until := ""
		if _, to := settledWindow(cfg); to < cfg.sickAfter+cfg.sickFor {
			until = fmt.Sprintf(" until %v before it recovered (a later one could wait out the sickness)", cfg.clientWait)
		}
		switch {
		case settled.n == 0:
			line += fmt.Sprintf(" It was sent no request while sick, not paused, at least %v (%d round trips) after it slowed down%s, so the demand that a slow zone be served is not tested.",
				learnTime(cfg), learnRTTs, until)
		case sickKind(cfg) == kindEdge:
			// Calls past the ceiling fail by design, and each probe that
			// runs past it holds the zone's timeout down for a whole
			// ceiling: the demand is for a zone that answers within it.
			line += fmt.Sprintf(" Of its requests sent from %v (%d round trips) after it slowed down%s, %.1f%% of %d succeeded; the demand that a slow zone be served "+
				"applies only to one whose calls all answer within the ceiling.", learnTime(cfg), learnRTTs, until, 100*settled.success(), settled.n)
		default:
			met := "met"
			if settled.success() < servedShare*can {
				met = "NOT met"
			}
			line += fmt.Sprintf(" Of its requests sent from %v (%d round trips) after it slowed down%s, %.1f%% of %d succeeded; the demand that a slow zone "+
				"be served at least %.0f%% of what the design can carry (%.1f%%) is %s.", learnTime(cfg), learnRTTs, until, 100*settled.success(),
				settled.n, 100*servedShare, 100*servedShare*can, met)
		}
		out = append(out, line)
	}
	if d.short == "guarded" {
		lo, hi, most := math.MaxInt, 0, time.Duration(0)
		for i, sec := range d.secs {
			// A limit of 0 is a second in which the partition did not
			// track the zone (it had no call): it learned nothing then.
			if t := time.Duration(i) * time.Second; t >= cfg.sickAfter && t < cfg.sickAfter+cfg.sickFor && sec[0].limit > 0 {
				low := sec[0].lowLimit
				if low == 0 {
					low = sec[0].limit
				}
				lo, hi, most = min(lo, low), max(hi, sec[0].limit), max(most, sec[0].timeout)
			}
		}
		if hi > 0 {
			out = append(out, fmt.Sprintf("In the seconds that began while it was sick, us-east-1a's learned limit ranged over [%d, %d] of its %s and its call timeout "+
				"was at most %v (ceiling %v).", lo, hi, plural(d.slots, "slot"), dur(most), dur(ceil)))
		}
	}
	sick := cfg.sickAfter
	recovered := sick + cfg.sickFor
	recoveredInRun := recovered < cfg.duration
	paused, wasPaused := firstEvent(d.run.events, evPaused)
	hit, back := healthyHit(d.secs, 0)
	if hit < 0 {
		out = append(out, fmt.Sprintf("The healthy zones met %.0f%% success in every second of the run (postmortem: the EBS API's error rates and latencies were high in every zone "+
			"of the Region from 00:50 until 02:50, %s after the zone was disabled).", 100*unaffectedSuccess, minutes(pmRecoveredAfterPause)))
	} else {
		start := time.Duration(hit) * time.Second
		var when string
		switch {
		case start+time.Second <= sick && sick-start < cfg.clientWait:
			// The table is by when a request was sent: those sent just
			// before the zone turned sick may still wait for an answer then.
			when = fmt.Sprintf("before us-east-1a turned sick at %.1fs, whose requests could still be waiting for an answer when it did", sick.Seconds())
		case start+time.Second <= sick:
			when = fmt.Sprintf("before us-east-1a turned sick at %.1fs", sick.Seconds())
		case start <= sick:
			when = fmt.Sprintf("the second in which us-east-1a turned sick, at %.1fs", sick.Seconds())
		default:
			when = fmt.Sprintf("%.1fs after us-east-1a turned sick at %.1fs", (start - sick).Seconds(), sick.Seconds())
		}
		line := fmt.Sprintf("A healthy zone first fell below %.0f%% success in second %d, %s (postmortem: the regional API's errors began %s after the storm, 00:47 → 00:50)",
			100*unaffectedSuccess, hit, when, minutes(pmErrorsAfterSick))
		switch {
		case back < 0:
			line += "; they were still below it in the run's last second."
		case wasPaused && time.Duration(back)*time.Second >= paused:
			line += fmt.Sprintf("; they met it again in every second from second %d on, which began %.1fs after the pause (postmortem: the other zones recovered %s after the disable, 02:40 → 02:50).",
				back, float64(back)-paused.Seconds(), minutes(pmRecoveredAfterPause))
		default:
			line += fmt.Sprintf("; they met it again in every second from second %d on.", back)
		}
		out = append(out, line)
	}
	out = append(out, operatorLine(d, sick, recovered, recoveredInRun, paused, wasPaused))
	peak, peakAt, before := 0, 0, 0
	for i, sec := range d.secs {
		if time.Duration(i+1)*time.Second <= sick {
			before = max(before, sec[0].inFlight)
		}
		if sec[0].inFlight > peak {
			peak, peakAt = sec[0].inFlight, i
		}
	}
	if low := max(before, 1); peak > low {
		line := fmt.Sprintf("us-east-1a's backend calls in flight peaked at %d in second %d", peak, peakAt)
		if sick >= time.Second {
			line += fmt.Sprintf(" (at most %d in the whole seconds before it turned sick)", before)
		}
		drained := -1
		for i := peakAt + 1; i < len(d.secs); i++ {
			if d.secs[i][0].inFlight <= low {
				drained = i
				break
			}
		}
		if drained >= 0 {
			line += fmt.Sprintf(" and were back to at most %d in second %d.", low, drained)
		} else {
			line += fmt.Sprintf(" and were still over %d in the run's last second.", low)
		}
		out = append(out, line)
	}
	return out
}

// operatorLine says what the operator did to the sick zone in d's run.
func operatorLine(d *designRun, sick, recovered time.Duration, recoveredInRun bool, paused time.Duration, wasPaused bool) string {
	if !wasPaused {
		n, failed := d.run.checks, d.run.failedChecks
		switch {
		case n == 0:
			return fmt.Sprintf("The operator never paused us-east-1a: it made no health check of it in the run (one every %v).", checkEvery)
		case failed == 0 && n == 1:
			return "The operator never paused us-east-1a: its one health check passed."
		case failed == 0 && n == 2:
			return "The operator never paused us-east-1a: both of its health checks passed."
		case failed == 0:
			return fmt.Sprintf("The operator never paused us-east-1a: all %d of its health checks passed.", n)
		default:
			return fmt.Sprintf("The operator never paused us-east-1a: %d of its %s failed, never %d in a row.",
				failed, plural(n, "health check"), checksToAct)
		}
	}
	pauses := 0
	for _, e := range d.run.events {
		if e.zone == 0 && e.what == evPaused {
			pauses++
		}
	}
	line := fmt.Sprintf("The operator paused us-east-1a at %.1fs, %.1fs after it turned sick (postmortem: the team disabled the zone's Create Volume calls %s after the storm began, 00:47 → 02:40).",
		paused.Seconds(), (paused - sick).Seconds(), minutes(pmPauseAfterSick))
	resumed, wasResumed := firstEvent(d.run.events, evResumed)
	switch {
	case wasResumed && recoveredInRun && resumed >= recovered:
		line += fmt.Sprintf(" It resumed it at %.1fs, %.1fs after its backend recovered.", resumed.Seconds(), (resumed - recovered).Seconds())
	case wasResumed && recoveredInRun:
		line += fmt.Sprintf(" It resumed it at %.1fs, while its backend was still sick (until %.1fs): its checks passed in a row.", resumed.Seconds(), recovered.Seconds())
	case wasResumed:
		line += fmt.Sprintf(" It resumed it at %.1fs, while its backend was still sick (to the end of the run): its checks passed in a row.", resumed.Seconds())
	case recoveredInRun:
		line += fmt.Sprintf(" It had not resumed it by the end of the run, though its backend recovered at %.1fs.", recovered.Seconds())
	default:
		line += " Its backend was still sick at the end of the run, and the zone still paused."
	}
	if pauses > 1 {
		line += fmt.Sprintf(" It paused the zone %d times in all.", pauses)
	}
	return line
}

// worstHealthy is the lowest success rate among the healthy zones.
func worstHealthy(all []zoneStats) float64 {
	worst := 1.0
	for _, s := range all[1:] {
		worst = min(worst, s.success())
	}
	return worst
}

// mergeSeconds sums seconds [from, to) of secs into one row per zone
// (latency percentiles recomputed from the requests, samples maximized).
func mergeSeconds(r *run, secs [][]secStat, from, to int) []secStat {
	if to-from == 1 {
		return secs[from]
	}
	zs := stats(r.results, time.Duration(from)*time.Second, time.Duration(to)*time.Second, nil)
	out := make([]secStat, len(zones))
	for z := range zones {
		out[z].zoneStats = zs[z]
		for s := from; s < to; s++ {
			out[z].inFlight = max(out[z].inFlight, secs[s][z].inFlight)
			out[z].limit = max(out[z].limit, secs[s][z].limit)
			if l := secs[s][z].lowLimit; l > 0 && (out[z].lowLimit == 0 || l < out[z].lowLimit) {
				out[z].lowLimit = l
			}
			out[z].timeout = max(out[z].timeout, secs[s][z].timeout)
		}
	}
	return out
}

// limitRange formats the limits sampled in a row: "12", or "6-12" when
// the limit moved within it.
func limitRange(s sample) string {
	if s.lowLimit > 0 && s.lowLimit < s.limit {
		return fmt.Sprintf("%d-%d", s.lowLimit, s.limit)
	}
	return fmt.Sprint(s.limit)
}

func textWrap(w io.Writer, s string) { textfmt.Wrap(w, 110, s) }

// minutes formats a postmortem interval: "3 min", "1 h 50 min".
func minutes(d time.Duration) string {
	m := int(d / time.Minute)
	if m < 60 {
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d h %d min", m/60, m%60)
}
