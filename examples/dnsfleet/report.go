package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stormguard/stormguard/examples/internal/textfmt"
)

// result is one run's numbers, printed as the summary or as JSON.
type result struct {
	Mode                    string  `json:"mode"`
	Seconds                 float64 `json:"seconds"`
	ProberStartedAt         float64 `json:"prober_started_at"`
	Queries                 int     `json:"queries"`
	AnswersWithAddresses    int     `json:"answers_with_addresses"`
	EmptyAnswers            int     `json:"empty_answers"`
	EmptyNoerror            int     `json:"empty_noerror"`
	Nxdomain                int     `json:"nxdomain"`
	Errors                  int     `json:"errors"`
	FirstEmptyAt            float64 `json:"first_empty_at"` // -1: never
	EmptyAtEnd              bool    `json:"empty_at_end"`
	SecondsEmpty            float64 `json:"seconds_empty"`
	GenerationRegressions   int     `json:"generation_regressions"`
	StaleWritesRefused      int     `json:"stale_writes_refused"`
	Repairs                 int     `json:"repairs"`
	RecordsRemovedByCleanup int     `json:"records_removed_by_cleanup"`
	LivePlanMissingStops    int     `json:"live_plan_missing_stops"`
	MaxSecondsBehindPlanner float64 `json:"max_seconds_behind_planner"`
	PlansPublished          int     `json:"plans_published"`
	PlansDeleted            int     `json:"plans_deleted"`
	ServedGenerationAtEnd   uint64  `json:"served_generation_at_end"`
	PlannerGenerationAtEnd  uint64  `json:"planner_generation_at_end"`
	// Faults maps each fault injected to the second of the run it
	// happened at.
	Faults    map[string]float64 `json:"faults"`
	StalledAt uint64             `json:"a_stalled_with_generation"`
	ResumedAt uint64             `json:"b_generation_when_a_resumed"`
	// DamagedAt is the generation of the regional endpoint when the
	// operator damaged it (dnsplan mode); 0 if it was not damaged.
	DamagedAt uint64 `json:"operator_damaged_generation"`
	// OrphansCollected is the sets of chunks of never-committed plans
	// the planner deleted (PlanStore.CollectOrphans) after its first plan
	// and after each failed Publish.
	OrphansCollected int    `json:"orphan_chunk_sets_collected"`
	PerSecond        []row  `json:"per_second"`
	Timeline         []line `json:"timeline"`
}

// row is one second of the timeline.
type row struct {
	Second    int    `json:"second"`
	Probe     second `json:"prober"`
	Probed    bool   `json:"probed"`
	Published string `json:"published,omitempty"`
	Applied   int    `json:"applied"`
	Refused   int    `json:"refused"`
	Deleted   int    `json:"deleted"`
	Stuck     int    `json:"stuck"`
	Failures  int    `json:"errors_reported"`
}

// line is one notable event of the timeline.
type line struct {
	At   float64 `json:"at"`
	Who  string  `json:"who"`
	What string  `json:"what"`
}

// The names of the faults in result.Faults.
const (
	faultCKilled          = "enactor_c_killed_mid_pass"
	faultCRestarted       = "enactor_c_restarted"
	faultAStalled         = "enactor_a_stalled_before_write"
	faultAResumed         = "enactor_a_resumed"
	faultBCleanup         = "enactor_b_cleanup_after_a_write"
	faultPlannerKilled    = "planner_killed"
	faultPlannerRestarted = "planner_restarted"
	faultEtcdStopped      = "etcd_stopped"
	faultEtcdStarted      = "etcd_started"
	faultOperatorDamage   = "operator_damages_regional"
)

var allFaults = []string{faultCKilled, faultAStalled, faultAResumed, faultBCleanup, faultCRestarted,
	faultPlannerKilled, faultOperatorDamage, faultPlannerRestarted, faultEtcdStopped, faultEtcdStarted}

// faultsOf returns the faults a run in mode injects: all of them in
// dnsplan mode; in 2025 mode, not the operator's damage (the regional
// endpoint is empty by then, and adding an address to it would be the
// operator's repair).
func faultsOf(mode string) []string {
	if mode == "dnsplan" {
		return allFaults
	}
	return slices.DeleteFunc(slices.Clone(allFaults), func(f string) bool { return f == faultOperatorDamage })
}

func secs(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// result computes the run's numbers from the events and the prober.
func (f *fleet) result() *result {
	f.mu.Lock()
	evs := slices.Clone(f.evs)
	f.mu.Unlock()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].T < evs[j].T })
	rel := func(ev event) time.Duration { return time.Duration(ev.T - f.start.UnixNano()) }
	seconds, samples, changes := f.prober.results()
	r := &result{Mode: f.mode, Faults: map[string]float64{}, FirstEmptyAt: -1}
	var end time.Duration
	var proberAt time.Duration
	for _, ev := range evs {
		if ev.Who == "fleet" && ev.Kind == "end" {
			end = rel(ev)
		}
		if ev.Who == "fleet" && ev.Kind == "prober_started" {
			proberAt = rel(ev)
		}
	}
	r.Seconds, r.ProberStartedAt = secs(end), secs(proberAt)

	// The prober's counts.
	for _, s := range seconds {
		r.Queries += s.Queries
		r.AnswersWithAddresses += s.Addresses
		r.EmptyNoerror += s.NoData
		r.Nxdomain += s.NXDomain
		r.Errors += s.Errors
	}
	r.EmptyAnswers = r.EmptyNoerror + r.Nxdomain
	var emptySince time.Duration = -1
	var emptyTotal time.Duration
	// A failed query is no answer: an empty stretch lasts until the
	// endpoint answers with addresses again.
	for _, c := range changes {
		switch {
		case c.kind == kindNoData && emptySince < 0:
			if r.FirstEmptyAt < 0 {
				r.FirstEmptyAt = secs(c.at)
			}
			emptySince = c.at
		case c.kind == kindAddresses && emptySince >= 0:
			emptyTotal += c.at - emptySince
			emptySince = -1
		}
	}
	if emptySince >= 0 {
		r.EmptyAtEnd = true
		emptyTotal += end - emptySince
	}
	r.SecondsEmpty = secs(emptyTotal)

	// Publication times, for how far behind the served generation is.
	type pub struct {
		gen uint64
		at  time.Duration
	}
	var pubs []pub
	for _, ev := range evs {
		if ev.Who == "planner" && ev.Kind == "published" {
			pubs = append(pubs, pub{ev.Gen, rel(ev)})
			r.PlanerGen(ev.Gen)
		}
	}
	r.PlansPublished = len(pubs)
	sort.Slice(pubs, func(i, j int) bool { return pubs[i].gen < pubs[j].gen })
	behind := func(at time.Duration, served uint64) time.Duration {
		i := sort.Search(len(pubs), func(i int) bool { return pubs[i].gen > served })
		if i == len(pubs) || pubs[i].at > at {
			return 0
		}
		return at - pubs[i].at
	}
	var maxBehind time.Duration
	var last uint64
	var regressions []sample
	for _, s := range samples {
		if s.gen < last {
			r.GenerationRegressions++
			regressions = append(regressions, s)
		}
		last = s.gen
		maxBehind = max(maxBehind, behind(s.at, s.gen))
	}
	if len(samples) > 0 {
		// Up to the end of the run, the last generation read still stands.
		maxBehind = max(maxBehind, behind(end, samples[len(samples)-1].gen))
		r.ServedGenerationAtEnd = samples[len(samples)-1].gen
	}
	r.MaxSecondsBehindPlanner = secs(maxBehind)

	// Per second, and the notable events.
	n := int(end/time.Second) + 1
	rows := make([]row, n)
	for i := range rows {
		rows[i].Second = i
		if i < len(seconds) && seconds[i].Queries > 0 {
			rows[i].Probe, rows[i].Probed = seconds[i], true
		}
	}
	pubRange := make([][2]uint64, n)
	at := func(ev event) int { return min(max(int(rel(ev)/time.Second), 0), n-1) }
	note := func(d time.Duration, who, what string) {
		r.Timeline = append(r.Timeline, line{At: secs(d), Who: who, What: what})
	}
	fault := func(name string, d time.Duration) {
		if _, ok := r.Faults[name]; !ok {
			r.Faults[name] = secs(d)
		}
	}
	midpass := map[string]event{}
	staleShown := map[string]bool{}
	stuckShown := map[string]bool{}
	startedOnce := map[string]bool{}
	published := uint64(0)
	bPaused := false
	for _, ev := range evs {
		i, d := at(ev), rel(ev)
		rw := &rows[i]
		switch ev.Kind {
		case "published":
			published = max(published, ev.Gen)
			if pubRange[i][0] == 0 {
				pubRange[i][0] = ev.Gen
			}
			pubRange[i][1] = ev.Gen
		case "applied":
			rw.Applied++
			if ev.Have > ev.Gen {
				note(d, ev.Who, fmt.Sprintf("writes plan %d over plan %d on %s: the endpoint goes BACK %s", ev.Gen, ev.Have, short(ev.Endpoint), plural(int(ev.Have-ev.Gen), "generation")))
			}
		case "refused":
			rw.Refused++
			r.StaleWritesRefused++
			if ev.Have > ev.Gen {
				staleShown[ev.Who+ev.Endpoint] = true
				note(d, ev.Who, fmt.Sprintf("write of plan %d to %s REFUSED by BIND: the endpoint is at plan %d", ev.Gen, short(ev.Endpoint), ev.Have))
			}
		case "newer":
			if staleShown[ev.Who+ev.Endpoint] {
				delete(staleShown, ev.Who+ev.Endpoint)
				note(d, ev.Who, fmt.Sprintf("reads %s again: it is at plan %d, newer than its own plan %d; leaves it", short(ev.Endpoint), ev.Have, ev.Gen))
			}
		case "repaired":
			r.Repairs++
			note(d, ev.Who, fmt.Sprintf("repairs %s with plan %d", short(ev.Endpoint), ev.Gen))
		case "deleted":
			rw.Deleted++
			r.PlansDeleted++
		case "emptied":
			r.RecordsRemovedByCleanup++
			note(d, ev.Who, fmt.Sprintf("clean-up deletes plan %d, live on %s: its records go with it", ev.Gen, short(ev.Endpoint)))
		case "stuck":
			rw.Stuck++
			r.LivePlanMissingStops++
			if !stuckShown[ev.Who] {
				stuckShown[ev.Who] = true
				note(d, ev.Who, fmt.Sprintf("cannot apply plan %d: %s's live plan %d is gone; stops its pass (the stuck column counts the next ones)", ev.Have, short(ev.Endpoint), ev.Gen))
			}
		case "error":
			rw.Failures++
		case "damaged":
			r.DamagedAt = ev.Gen
			fault(faultOperatorDamage, d)
			note(d, ev.Who, fmt.Sprintf("adds %s to regional at plan %d by hand, with the planner down: it still answers, with an address no plan names", ev.Msg, ev.Gen))
		case "orphans_collected":
			r.OrphansCollected += ev.N
			if ev.N > 0 {
				note(d, ev.Who, fmt.Sprintf("deletes the chunks of %s that never committed", plural(ev.N, "plan")))
			}
		case "held":
			if ev.Who == "A" {
				note(d, ev.Who, "held between passes until B's clean-up is done")
				break
			}
			note(d, ev.Who, "held between passes, so that A's next pass is the first")
		case "stalled":
			r.StalledAt = ev.Gen
			fault(faultAStalled, d)
			note(d, ev.Who, fmt.Sprintf("STALLS before writing plan %d to %s (read it at plan %d)", ev.Gen, short(ev.Endpoint), ev.Have))
		case "paused_cleanup":
			bPaused = true
			r.ResumedAt = ev.Gen
			note(d, ev.Who, fmt.Sprintf("has applied plan %d; its clean-up starts as A's write lands", ev.Gen))
		case "pass_done":
			if ev.Who == "B" && bPaused {
				bPaused = false
				fault(faultBCleanup, d)
			}
		case "paused_midpass":
			midpass[ev.Who] = ev
		case "resume":
			fault(faultAResumed, d)
			note(d, "fleet", fmt.Sprintf("resumes A: the planner is at plan %d, %d generations past A's %d", published, published-ev.Gen, ev.Gen))
		case "killed":
			what := fmt.Sprintf("SIGKILL %s (pid %d)", ev.Msg, ev.N)
			if mp, ok := midpass[ev.Msg]; ok && ev.Endpoint == "mid-pass" {
				what += fmt.Sprintf(" mid-pass: %d of %d endpoints written with plan %d", mp.N, len(endpoints), mp.Gen)
				fault(faultCKilled, d)
			}
			if ev.Msg == "planner" {
				fault(faultPlannerKilled, d)
			}
			note(d, "fleet", what)
		case "restarted":
			if ev.Msg == "C" {
				fault(faultCRestarted, d)
			} else {
				fault(faultPlannerRestarted, d)
			}
		case "started":
			verb := "starts"
			if startedOnce[ev.Msg] {
				verb = "RESTARTS"
			}
			startedOnce[ev.Msg] = true
			note(d, "fleet", fmt.Sprintf("%s %s (pid %d)", verb, ev.Msg, ev.N))
		case "etcd_up":
			if _, down := r.Faults[faultEtcdStopped]; down {
				fault(faultEtcdStarted, d)
				note(d, "fleet", fmt.Sprintf("etcd STARTED again on the same data and ports (pid %d)", ev.N))
				break
			}
			note(d, "fleet", fmt.Sprintf("etcd up (pid %d)", ev.N))
		case "etcd_down":
			fault(faultEtcdStopped, d)
			note(d, "fleet", fmt.Sprintf("etcd STOPPED (pid %d, SIGTERM)", ev.N))
		case "named_up":
			note(d, "fleet", fmt.Sprintf("named up (pid %d)", ev.N))
		case "prober_started":
			note(d, "fleet", fmt.Sprintf("prober starts (every enactor has applied a plan), asking %d times a second", f.cfg.qps))
		case "end":
			note(d, "fleet", "end of the run")
		}
	}
	for i := range rows {
		if g := pubRange[i]; g[0] != 0 {
			rows[i].Published = fmt.Sprint(g[0])
			if g[1] != g[0] {
				rows[i].Published = fmt.Sprintf("%d-%d", g[0], g[1])
			}
		}
	}
	for _, c := range changes {
		switch c.kind {
		case kindNoData:
			note(c.at, "prober", "regional answers EMPTY")
		case kindError:
			note(c.at, "prober", "regional: queries FAIL")
		case kindAddresses:
			note(c.at, "prober", "regional answers with addresses")
		}
	}
	for _, s := range regressions {
		note(s.at, "prober", fmt.Sprintf("regional's generation goes BACK to %d", s.gen))
	}
	sort.SliceStable(r.Timeline, func(i, j int) bool { return r.Timeline[i].At < r.Timeline[j].At })
	r.PerSecond = rows
	return r
}

// PlanerGen notes a published generation.
func (r *result) PlanerGen(g uint64) { r.PlannerGenerationAtEnd = max(r.PlannerGenerationAtEnd, g) }

func short(ep string) string {
	switch ep {
	case regional:
		return "regional"
	case fips:
		return "fips"
	case dualstack:
		return "dualstack"
	}
	return ep
}

// print writes the timeline and the summary.
func (r *result) print(w io.Writer) {
	title := map[string]string{
		"2025":    "2025 enactors: check once, then write; clean-up takes the records of the plans it deletes",
		"dnsplan": "dnsplan.Enactor: every write conditioned on the generation read; clean-up keeps what may be served",
	}[r.Mode]
	fmt.Fprintf(w, "== %s ==\n", title)
	const cols = "%6s  %9s %6s %8s %6s  %10s  %9s  %7s %7s %7s %5s %6s\n"
	fmt.Fprintf(w, "%6s  %-32s  %10s  %9s  %s\n", "", "prober, regional endpoint", "regional", "planner", "enactors")
	fmt.Fprintf(w, cols, "time", "addresses", "empty", "nxdomain", "errors", "generation", "published", "applied", "refused", "deleted", "stuck", "errors")
	li := 0
	for _, rw := range r.PerSecond {
		for ; li < len(r.Timeline) && r.Timeline[li].At < float64(rw.Second+1); li++ {
			l := r.Timeline[li]
			fmt.Fprintf(w, "%6.2fs   %-7s %s\n", l.At, l.Who, l.What)
		}
		p := []string{"-", "-", "-", "-"}
		gen := "-"
		if rw.Probed {
			p = []string{fmt.Sprint(rw.Probe.Addresses), fmt.Sprint(rw.Probe.NoData), fmt.Sprint(rw.Probe.NXDomain), fmt.Sprint(rw.Probe.Errors)}
			if rw.Probe.Gen > 0 {
				gen = fmt.Sprint(rw.Probe.Gen)
			}
		}
		fmt.Fprintf(w, cols, fmt.Sprintf("%ds", rw.Second), p[0], p[1], p[2], p[3], gen, rw.Published,
			fmt.Sprint(rw.Applied), fmt.Sprint(rw.Refused), fmt.Sprint(rw.Deleted), fmt.Sprint(rw.Stuck), fmt.Sprint(rw.Failures))
	}
	for ; li < len(r.Timeline); li++ {
		l := r.Timeline[li]
		fmt.Fprintf(w, "%6.2fs   %-7s %s\n", l.At, l.Who, l.What)
	}
	fmt.Fprintln(w)
	textfmt.Wrap(w, 90, r.summary())
}

// summary says what happened, every clause computed from the numbers.
func (r *result) summary() string {
	var b strings.Builder
	rate := 0.0
	if span := r.Seconds - r.ProberStartedAt; span > 0 {
		rate = float64(r.Queries) / span
	}
	fmt.Fprintf(&b, "%s enactors: from %.1fs, when every enactor had applied a plan, to the end at %.1fs, the prober sent %s queries for the regional endpoint (%.0f a second): %s answered with addresses, %s empty (%s NOERROR without addresses, %s NXDOMAIN), %s failed.",
		r.Mode, r.ProberStartedAt, r.Seconds, textfmt.Group(int64(r.Queries)), rate, textfmt.Group(int64(r.AnswersWithAddresses)),
		textfmt.Group(int64(r.EmptyAnswers)), textfmt.Group(int64(r.EmptyNoerror)), textfmt.Group(int64(r.Nxdomain)), textfmt.Group(int64(r.Errors)))
	switch {
	case r.FirstEmptyAt < 0:
		b.WriteString(" The regional endpoint never answered empty.")
	case r.EmptyAtEnd:
		fmt.Fprintf(&b, " The regional endpoint first answered empty at %.2fs and was still empty when the run ended (%.1fs empty in all).", r.FirstEmptyAt, r.SecondsEmpty)
	default:
		fmt.Fprintf(&b, " The regional endpoint first answered empty at %.2fs and answered with addresses again by the end (%.1fs empty in all).", r.FirstEmptyAt, r.SecondsEmpty)
	}
	fmt.Fprintf(&b, " Its applied generation went back %s; the enactors' writes refused as stale: %d; repairs: %d; records removed by a clean-up: %d; passes stopped on a missing live plan: %d. The regional endpoint was at most %.2fs behind the planner, and ended at plan %d with the planner at %d (%d plans published, %d deleted).",
		times(r.GenerationRegressions), r.StaleWritesRefused, r.Repairs, r.RecordsRemovedByCleanup, r.LivePlanMissingStops,
		r.MaxSecondsBehindPlanner, r.ServedGenerationAtEnd, r.PlannerGenerationAtEnd, r.PlansPublished, r.PlansDeleted)
	var faults []string
	for _, name := range faultsOf(r.Mode) {
		if at, ok := r.Faults[name]; ok {
			faults = append(faults, fmt.Sprintf("%s at %.2fs", strings.ReplaceAll(name, "_", " "), at))
		}
	}
	fmt.Fprintf(&b, " Faults injected (%d of %d): %s", len(faults), len(faultsOf(r.Mode)), strings.Join(faults, ", "))
	switch {
	case r.StalledAt > 0 && r.ResumedAt > 0:
		fmt.Fprintf(&b, "; A stalled with plan %d and resumed when B had applied plan %d.", r.StalledAt, r.ResumedAt)
	case r.StalledAt > 0 && r.LivePlanMissingStops > 0:
		fmt.Fprintf(&b, "; A stalled with plan %d and resumed when B had stopped on a missing live plan, before its clean-up.", r.StalledAt)
	default:
		b.WriteString(".")
	}
	if r.DamagedAt > 0 {
		fmt.Fprintf(&b, " The operator damaged the regional endpoint at plan %d; repairs: %d.", r.DamagedAt, r.Repairs)
	}
	fmt.Fprintf(&b, " The planner deleted the chunks of %s that never committed (PlanStore.CollectOrphans).", plural(r.OrphansCollected, "plan"))
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}
