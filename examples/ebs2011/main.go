// Command ebs2011 replays the whole EBS outage of April 21–24, 2011 in one
// deterministic run, twice on the same seed and the same clock: naive (the
// 2011 design, with the operators' actions of the day) and guarded
// (package remirror's engine and package shed's admission, and no
// operator), and compares both with the postmortem's figures.
//
// One run holds the three storage clusters of the region (us-east-1a is
// the affected one), the network change at 00:47 PDT and the re-mirroring
// storm when it is rolled back, the race that crashed nodes closing many
// replication requests at once, and the regional EBS control plane as a
// service: API calls from every zone and the clusters' elections and
// negotiations, through one regional pool (naive) or per-zone shed
// schedulers (guarded). The model is described in package
// examples/internal/ebssim.
//
// Usage:
//
//	$ go run ./ebs2011 [-seed N] [-volumes N] [-hours N] [-out DIR] [-json]
//
// It prints a timeline at the postmortem's timestamps and every 10 minutes
// around its events, a side-by-side summary (naive, guarded, postmortem),
// the calibration checks and what the model cannot match. -out DIR writes
// the charts as PNG and SVG; -json prints one JSON object instead of text.
// The same flags print the same bytes.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/stormguard/stormguard/examples/internal/ebssim"
	"github.com/stormguard/stormguard/examples/internal/textfmt"
	"github.com/stormguard/stormguard/examples/internal/twin"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	cfg  ebssim.Config
	out  string
	json bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("ebs2011", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "random seed, any integer in [0, 18446744073709551615]")
	volumes := fs.Int("volumes", 60000, fmt.Sprintf("volumes in the region (3 zones, %d a node), in [%d, %d]", ebssim.VolumesPerNode, ebssim.MinVolumes, ebssim.MaxVolumes))
	hours := fs.Int("hours", 72, fmt.Sprintf("simulated hours from 00:00 PDT April 21 2011, in [%d, %d]", ebssim.MinHours, ebssim.MaxHours))
	out := fs.String("out", "", "directory to write the charts into, as PNG and SVG (created if missing; empty: no charts)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the text report")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := ebssim.Config{Seed: *seed, Volumes: *volumes, Hours: *hours}
	if err := cfg.Validate(); err != nil {
		return options{}, err
	}
	if *out != "" {
		if err := writable(*out); err != nil {
			return options{}, fmt.Errorf("-out %q: cannot write the charts there: %w", *out, err)
		}
	}
	return options{cfg: cfg, out: *out, json: *asJSON}, nil
}

// writable creates dir if it is missing and checks that a file can be
// written in it, so that a bad -out is refused before the simulation.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".ebs2011-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return twin.FlagError("ebs2011", stderr, err)
	}
	return twin.Demo[*ebssim.Result]{
		Name: "ebs2011", Charts: "charts",
		Run: func(i int, progress func(float64)) (*ebssim.Result, error) {
			cfg := opts.cfg
			cfg.Progress = func(_ ebssim.Mode, done float64) { progress(done) }
			return ebssim.Run(cfg, ebssim.Mode(i))
		},
		WriteCharts: writeCharts,
		WriteJSON:   func(w io.Writer, rs [2]*ebssim.Result) error { return writeJSON(w, opts.cfg, rs) },
		Report:      func(w io.Writer, rs [2]*ebssim.Result) { report(w, opts, rs) },
	}.Main(stdout, stderr, opts.out, opts.json)
}

// clock formats a minute from the start as the 2011 wall clock (PDT).
func clock(minute int) string {
	day := 21 + minute/(24*60)
	return fmt.Sprintf("Apr %d %02d:%02d", day, minute/60%24, minute%60)
}

func clockD(d time.Duration) string { return clock(int(d / time.Minute)) }

// clockS formats d as the time of day with seconds.
func clockS(d time.Duration) string {
	return fmt.Sprintf("%s:%02d", clockD(d)[7:], int(d/time.Second)%60)
}

func pct(x float64) string {
	switch {
	case x == 0:
		return "0%"
	case x < 0.1:
		return fmt.Sprintf("%.3f%%", x)
	case x < 10:
		return fmt.Sprintf("%.2f%%", x)
	}
	return fmt.Sprintf("%.1f%%", x)
}

// event is a postmortem timestamp and what happened then.
type event struct {
	at   time.Duration
	what string
}

var events = []event{
	{ebssim.FaultStart, "network change isolates nodes of us-east-1a"},
	{ebssim.APIErrorsBegin, "EBS API errors begin across the region"},
	{ebssim.DisableCreate, "create volume disabled in us-east-1a"},
	{ebssim.APIRecovered, "other EBS APIs recovered"},
	{ebssim.SecondBrownout, "API errors again across the region"},
	{ebssim.CutOff, "degraded cluster cut off from the control plane"},
	{ebssim.BlockFutile, "futile contacts blocked; 13% stuck"},
	{ebssim.NewInstancesOK, "new EBS-backed instances near normal"},
	{ebssim.Contained, "outage contained to us-east-1a; 13% stuck"},
	{ebssim.AddCapacity, "new capacity added, throttled replay"},
	{ebssim.Restored22, "all but 2.2% restored"},
	{ebssim.BacklogStart, "control-plane backlog processing begins"},
	{ebssim.ControlPlaneBack, "control plane enabled for us-east-1a"},
	{ebssim.APIBack, "API access restored in us-east-1a"},
	{ebssim.Restored104, "all but 1.04% restored"},
}

// rows returns the minutes the timeline shows: the postmortem's timestamps,
// every 10 minutes from 10 minutes before to 30 after each, every 6 hours,
// and the peaks.
func rows(total int, peaks map[int]string) []int {
	set := map[int]bool{}
	add := func(m int) {
		if m >= 1 && m <= total {
			set[m] = true
		}
	}
	for _, e := range events {
		m := int(e.at / time.Minute)
		add(m)
		for d := -10; d <= 30; d += 10 {
			add((m+d)/10*10 + 0)
		}
	}
	for m := 360; m <= total; m += 360 {
		add(m)
	}
	for m := range peaks {
		add(m)
	}
	out := make([]int, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Ints(out)
	return out
}

func healthyOK(m ebssim.Minute) float64 {
	calls := m.APICalls[1] + m.APICalls[2]
	if calls == 0 {
		return 100
	}
	return 100 * float64(m.APIOK[1]+m.APIOK[2]) / float64(calls)
}

func report(w io.Writer, opts options, results [2]*ebssim.Result) {
	n, g := results[0], results[1]
	ns, gs := n.Summarize(), g.Summarize()
	cfg := opts.cfg
	fmt.Fprintf(w, "EBS, April 21-24 2011, replayed: %s volumes in 3 zones of %s nodes (seed %d), %d hours from 00:00 PDT April 21.\n",
		textfmt.Group(int64(cfg.Volumes)), textfmt.Group(int64(n.NodesPerZone)), cfg.Seed, cfg.Hours)
	textfmt.Wrap(w, 110, fmt.Sprintf("At %s the network change isolates %d of us-east-1a's %d nodes; the cluster declares them failed, and the zone's replication network carries nothing until the change is rolled back at %s (the postmortem gives no time; its API errors begin at 00:50). "+
		"naive = the 2011 design (no reconnect, blind search retried every minute, one regional control-plane pool with long timeouts) with the operators' actions of the day; "+
		"guarded = remirror's engine on its defaults and the control plane behind per-zone shed schedulers with %v timeouts, and no operator. Same cluster, same fault, same clock.",
		clockD(ebssim.FaultStart)[7:], n.Isolated, n.NodesPerZone, clockS(ebssim.FaultStart+ebssim.FaultDuration), ebssim.GuardedTimeout))
	fmt.Fprintln(w)

	peaks := map[int]string{}
	mark := func(m int, s string) {
		if m > 0 {
			if peaks[m] != "" {
				s = peaks[m] + ", " + s
			}
			peaks[m] = s
		}
	}
	mark(ns.PeakStuckAffectedAt, "▲ naive peak stuck 1a")
	mark(ns.PeakStuckOtherAt, "▲ naive peak stuck 1b/c")
	mark(ns.APISuccessHealthyMinAt, "▼ naive lowest 10-min API success 1b/c")
	mark(gs.PeakStuckAffectedAt, "▲ guarded peak stuck 1a")
	total := len(n.Timeline)
	evAt := map[int]string{}
	for _, e := range events {
		m := int(e.at / time.Minute)
		if evAt[m] != "" {
			evAt[m] += "; "
		}
		evAt[m] += e.what
	}
	fmt.Fprintln(w, "Timeline (PDT). stuck: % of the zone's volumes; by cause (naive, us-east-1a): no space / race crash / waiting for the authority;")
	fmt.Fprintln(w, "API ok: % of the minute's API calls from us-east-1b/c that succeeded, and their p99; search: messages in the minute.")
	fmt.Fprintf(w, "%-12s | %-44s | %-33s | %s\n", "", "naive", "guarded", "")
	fmt.Fprintf(w, "%-12s | %6s %6s %-17s %6s %7s %7s | %6s %6s %6s %7s %4s | %s\n",
		"time", "1a", "1b/c", " by cause", "API ok", "p99 s", "search", "1a", "1b/c", "API ok", "p99 s", "srch", "postmortem / peaks")
	for _, mi := range rows(total, peaks) {
		a, b := n.Timeline[mi-1], g.Timeline[mi-1]
		note := evAt[mi]
		if p := peaks[mi]; p != "" {
			if note != "" {
				note += "  "
			}
			note += p
		}
		fmt.Fprintf(w, "%-12s | %6.2f %6.3f %5.2f/%5.2f/%5.2f %6.1f %7.1f %7d | %6.2f %6.3f %6.1f %7.2f %4d | %s\n",
			clock(mi), a.StuckPct[0], (a.StuckPct[1]+a.StuckPct[2])/2, a.StuckNoSpacePct, a.StuckRacePct, a.StuckAuthorityPct,
			healthyOK(a), math.Max(a.APIP99Ms[1], a.APIP99Ms[2])/1000, a.SearchMessages,
			b.StuckPct[0], (b.StuckPct[1]+b.StuckPct[2])/2, healthyOK(b), math.Max(b.APIP99Ms[1], b.APIP99Ms[2])/1000, b.SearchMessages, note)
	}
	fmt.Fprintln(w)
	summary(w, n, g, ns, gs)
	fmt.Fprintln(w)
	checks(w, ns, gs)
	fmt.Fprintln(w)
	limits(w, n, ns, gs)
	if opts.out != "" {
		fmt.Fprintf(w, "\nCharts: %s/{%s}\n", opts.out, strings.Join(chartFiles(), ","))
	}
}

func when(min int) string {
	if min < 0 {
		return "not in the run"
	}
	return clock(min)
}

func healthyAfter(d time.Duration) string {
	if d < 0 {
		return "never in the run"
	}
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func windows(ws []ebssim.Window) string {
	if len(ws) == 0 {
		return "none"
	}
	var parts []string
	for _, x := range ws {
		parts = append(parts, fmt.Sprintf("%s-%s", clock(x.From)[7:], clock(x.To)[7:]))
	}
	return strings.Join(parts, ", ")
}

func summary(w io.Writer, n, g *ebssim.Result, ns, gs ebssim.Summary) {
	row := func(name, a, b, pm string) { fmt.Fprintf(w, "%-46s %-26s %-16s %s\n", name, a, b, pm) }
	row("", "naive", "guarded", "postmortem")
	row("peak stuck, us-east-1a (minute samples)", pct(ns.PeakStuckAffectedPct), pct(gs.PeakStuckAffectedPct), "about 13%")
	at1130 := func(s ebssim.Summary, x float64) string {
		if !s.At1130 {
			return "not in the run"
		}
		return pct(x)
	}
	row("stuck at 11:30, us-east-1a", at1130(ns, ns.StuckAt1130), at1130(gs, gs.StuckAt1130), "13%")
	row("  of which after a race crash", at1130(ns, ns.RaceAt1130), at1130(gs, gs.RaceAt1130), "5% added by the race")
	row("peak stuck outside us-east-1a", pct(ns.PeakStuckOtherPct), pct(gs.PeakStuckOtherPct), "less than 0.07%")
	row("API success from 1b/c, lowest 10 minutes", pct(ns.APISuccessHealthyMinPct), pct(gs.APISuccessHealthyMinPct), "high error rates, region-wide")
	row("minutes with 1b/c API success below 50%", fmt.Sprint(ns.APIHealthyBelow50Minutes), fmt.Sprint(gs.APIHealthyBelow50Minutes), "00:50-02:40 and 05:30-08:20")
	row("  when", windows(ns.Brownouts), windows(gs.Brownouts), "")
	row("search messages", textfmt.Group(ns.SearchMessages), textfmt.Group(gs.SearchMessages), "-")
	row("node crashes of the race", fmt.Sprint(ns.NodeCrashes), fmt.Sprint(gs.NodeCrashes), "-")
	row("volumes without a live replica, most", fmt.Sprint(ns.NoLiveReplicaMax), fmt.Sprint(gs.NoLiveReplicaMax), "-")
	row("us-east-1a all healthy, after the heal", healthyAfter(ns.HealthyAfterHeal), healthyAfter(gs.HealthyAfterHeal), "days")
	row("degradation stopped (last race crash)", stopped(ns), stopped(gs), "Apr 21 11:30")
	row("at most 2.2% stuck in us-east-1a from", below(ns, ebssim.PostmortemLeft1, ns.Below22), below(gs, ebssim.PostmortemLeft1, gs.Below22), "Apr 22 12:30")
	row("at most 1.04% stuck in us-east-1a from", below(ns, ebssim.PostmortemLeft2, ns.Below104), below(gs, ebssim.PostmortemLeft2, gs.Below104), "Apr 24 12:30")
	row("never restored (no live replica at the end)", pct(ns.UnrecoverablePct), pct(gs.UnrecoverablePct), "0.07%")
}

// stopped says when a run's race crashes ended.
func stopped(s ebssim.Summary) string {
	if s.NodeCrashes == 0 {
		return "no race crash"
	}
	return when(s.DegradationStopped)
}

// below says from when a run's affected zone stayed at most level% stuck
// (first minute after its peak; at is Summary.Below22 or Below104).
func below(s ebssim.Summary, level float64, at int) string {
	if s.PeakStuckAffectedPct <= level {
		return "never above it"
	}
	return when(at)
}

func verdict(ok bool) string {
	if ok {
		return "holds"
	}
	return "DOES NOT HOLD"
}

// Check is one calibration criterion of the issue, judged on a pair of
// summaries.
type Check struct {
	Name string
	OK   bool
	Got  string
}

// Checks judges the calibration criteria.
func Checks(ns, gs ebssim.Summary) []Check {
	below2 := 0
	for _, x := range ns.Brownouts {
		if x.To >= int(ebssim.DisableCreate/time.Minute)-30 && x.From <= int(ebssim.CutOff/time.Minute)+1 && x.To > int(ebssim.APIRecovered/time.Minute) {
			below2 = max(below2, min(x.To, int(ebssim.CutOff/time.Minute))-max(x.From, int(ebssim.APIRecovered/time.Minute))+1)
		}
	}
	below1 := 0
	for _, x := range ns.Brownouts {
		if x.From <= int(ebssim.DisableCreate/time.Minute) {
			below1 = max(below1, min(x.To, int(ebssim.DisableCreate/time.Minute))-x.From+1)
		}
	}
	afterFix := "not in the run"
	if ns.APISuccessHealthyAfterFixPct >= 0 {
		afterFix = "lowest 10 minutes from 08:30: " + pct(ns.APISuccessHealthyAfterFixPct)
	}
	// The run must reach 12 hours after the heal to show the zone unhealthy then.
	long12 := time.Duration(ns.Minutes)*time.Minute >= ebssim.FaultStart+ebssim.FaultDuration+12*time.Hour
	after12 := healthyAfter(ns.HealthyAfterHeal)
	if !long12 {
		after12 = "the run ends before then"
	}
	return []Check{
		{"naive: peak stuck in us-east-1a in [8%, 20%]", ns.PeakStuckAffectedPct >= 8 && ns.PeakStuckAffectedPct <= 20, pct(ns.PeakStuckAffectedPct)},
		{"naive: peak stuck outside us-east-1a below 1%", ns.PeakStuckOtherPct < 1, pct(ns.PeakStuckOtherPct)},
		{"naive: 1b/c API success below 50% for 30+ minutes in the first brownout", below1 >= 30, fmt.Sprintf("%d minutes", below1)},
		{"naive: ... and in the second (after 02:50, until 08:20)", below2 >= 30, fmt.Sprintf("%d minutes", below2)},
		{"naive: 1b/c API success back above 95% after the 08:20 cut-off", ns.APISuccessHealthyAfterFixPct > 95, afterFix},
		{"naive: us-east-1a not all healthy 12h after the heal", long12 && (ns.HealthyAfterHeal < 0 || ns.HealthyAfterHeal > 12*time.Hour), after12},
		{"guarded: peak stuck in us-east-1a at most 1/3 of naive's", gs.PeakStuckAffectedPct <= ns.PeakStuckAffectedPct/3, pct(gs.PeakStuckAffectedPct) + " vs " + pct(ns.PeakStuckAffectedPct/3)},
		{"guarded: 1b/c API success at least 99% in every 10 minutes", gs.APISuccessHealthyMinPct >= 99, pct(gs.APISuccessHealthyMinPct)},
		{"guarded: search messages at most 1/100 of naive's", gs.SearchMessages*100 <= ns.SearchMessages, textfmt.Group(gs.SearchMessages) + " vs " + textfmt.Group(ns.SearchMessages/100)},
		{"guarded: us-east-1a all healthy within 2h of the heal", gs.HealthyAfterHeal >= 0 && gs.HealthyAfterHeal <= 2*time.Hour, healthyAfter(gs.HealthyAfterHeal)},
		{"guarded: never a volume without a live replica", gs.NoLiveReplicaMax == 0, fmt.Sprint(gs.NoLiveReplicaMax)},
	}
}

func checks(w io.Writer, ns, gs ebssim.Summary) {
	fmt.Fprintln(w, "Calibration (issue 14):")
	for _, c := range Checks(ns, gs) {
		fmt.Fprintf(w, "  %-13s %-72s %s\n", verdict(c.OK), c.Name, c.Got)
	}
}

// limits says, from the run's numbers, where the model departs from 2011.
func limits(w io.Writer, n *ebssim.Result, ns, gs ebssim.Summary) {
	fmt.Fprintln(w, "What the model cannot match, and why:")
	var b strings.Builder
	fmt.Fprintf(&b, "- The isolation. The postmortem gives no duration; the model rolls the change back after %v. At that moment %s of us-east-1a's volumes were cut off in both runs. ",
		ebssim.FaultDuration, pct(ns.CutOffPct))
	switch d := gs.HealthyAfterHeal; {
	case d < 0:
		fmt.Fprintf(&b, "The guarded run does not have them all healthy again within the run; its minute peak is %s.\n", pct(gs.PeakStuckAffectedPct))
	case d < time.Minute:
		fmt.Fprintf(&b, "The guarded engine reconnects them to their previous peers %v after the heal, before the next minute sample, so its minute peak is %s.\n", d.Round(time.Millisecond), pct(gs.PeakStuckAffectedPct))
	default:
		fmt.Fprintf(&b, "The guarded engine has them all healthy again %v after the heal; its minute peak is %s.\n", d.Round(time.Second), pct(gs.PeakStuckAffectedPct))
	}
	if start, ok := secondStart(ns); ok {
		gap := start - int(ebssim.SecondBrownout/time.Minute)
		fmt.Fprintf(&b, "- The second brownout starts at %s (2011: 05:30, %+d minutes). It begins when the negotiations of the volumes that keep failing to re-mirror outgrow the regional pool; how fast those retries grow (all of them by %v) is a model constant the postmortem does not give, and the start follows it.\n",
			clock(start)[7:], gap, ebssim.NegotiationRamp)
	} else if len(n.Timeline) < int(ebssim.CutOff/time.Minute) {
		fmt.Fprintf(&b, "- The run ends at %s, before the 08:20 cut-off, without a second brownout.\n", clock(len(n.Timeline))[7:])
	} else {
		fmt.Fprintf(&b, "- The second brownout does not happen in this run: the negotiations of the volumes that keep failing to re-mirror never outgrow the regional pool before the 08:20 cut-off.\n")
	}
	if ns.At1130 {
		fmt.Fprintf(&b, "- The race. %d crashes put %s of us-east-1a's volumes into the storm by 11:30 (2011: 5%%). ", ns.NodeCrashes, pct(ns.RaceAt1130))
	} else {
		fmt.Fprintf(&b, "- The race. %d crashes in this run, which ends before 11:30 (2011: 5%% of the zone's volumes added by 11:30). ", ns.NodeCrashes)
	}
	fmt.Fprintf(&b, "A crash is a rare event whose chance grows with the search requests a node closes at once, so the share varies from seed to seed; the model does not tune it per seed.\n")
	if ns.Below22 >= 0 {
		fmt.Fprintf(&b, "- The recovery. The model's operators add %d servers at 02:00 on April 22 and replay the backlog one %v re-mirror per server at a time; us-east-1a is at most 2.2%% stuck from %s (2011: Apr 22 12:30). ",
			n.NewNodes, ebssim.ReplayCopyTime, clock(ns.Below22))
		if ns.Below104 >= 0 {
			fmt.Fprintf(&b, "The model has no snapshot restores and no control-plane backlog left at that point (its negotiation throttle elects the re-mirrored volumes at once), so it reaches 1.04%% at %s, %s 2011's Apr 24 12:30. ",
				clock(ns.Below104), relative(ns.Below104-int(ebssim.Restored104/time.Minute)))
		} else {
			fmt.Fprintf(&b, "The run ends before it is at most 1.04%% stuck (2011: Apr 24 12:30). ")
		}
		// Less than half a volume apart: what is stuck is what cannot be restored.
		if ns.FinalStuckPct-ns.UnrecoverablePct < 50/float64(max(n.ZoneVolumes, 1)) {
			fmt.Fprintf(&b, "What stays stuck at the end are the %s of volumes whose both replicas are on failed nodes (2011: 0.07%% never restored).\n", pct(ns.UnrecoverablePct))
		} else {
			fmt.Fprintf(&b, "At the end %s are still stuck, %s with both replicas on failed nodes (2011: 0.07%% never restored).\n", pct(ns.FinalStuckPct), pct(ns.UnrecoverablePct))
		}
	} else {
		fmt.Fprintf(&b, "- The recovery starts at 02:00 on April 22 (hour 26); this run ends before us-east-1a is at most 2.2%% stuck.\n")
	}
	inB, outB := otherPeaks(n, ns.Brownouts)
	if ns.PeakStuckOtherPct == 0 {
		fmt.Fprintf(&b, "- Outside us-east-1a no volume is stuck at any minute sample of the naive run (2011: less than 0.07%%, from elections delayed by the brownouts).\n")
	} else {
		fmt.Fprintf(&b, "- Outside us-east-1a the naive run peaks at %s stuck (%s): %s during the brownouts, %s outside them. ",
			pct(ns.PeakStuckOtherPct), when(ns.PeakStuckOtherAt), pct(inB), pct(outB))
		if inB > outB {
			fmt.Fprintf(&b, "The brownouts delay the elections of the background re-mirroring, the cause the postmortem gives for its less than 0.07%%.\n")
		} else {
			fmt.Fprintf(&b, "What is stuck there is the background re-mirroring's usual level; in this run the brownouts do not raise it, where the postmortem saw a slight rise (less than 0.07%%) from delayed elections.\n")
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var lb strings.Builder
		textfmt.Wrap(&lb, 108, line)
		for i, l := range strings.Split(strings.TrimRight(lb.String(), "\n"), "\n") {
			if i > 0 {
				l = "  " + l
			}
			fmt.Fprintln(w, l)
		}
	}
}

// relative says how far minute offset d is from a postmortem time.
func relative(d int) string {
	switch {
	case d < 0:
		return (time.Duration(-d) * time.Minute).String() + " before"
	case d > 0:
		return (time.Duration(d) * time.Minute).String() + " after"
	}
	return "exactly at"
}

// otherPeaks returns the highest stuck share outside the affected zone in
// the minutes of the brownouts, and in the others.
func otherPeaks(r *ebssim.Result, ws []ebssim.Window) (in, out float64) {
	for _, m := range r.Timeline {
		x := (m.StuckPct[1] + m.StuckPct[2]) / 2
		inside := false
		for _, w := range ws {
			inside = inside || m.Minute >= w.From && m.Minute <= w.To
		}
		if inside {
			in = max(in, x)
		} else {
			out = max(out, x)
		}
	}
	return in, out
}

// secondStart returns the minute the second brownout begins: the first
// minute below 50% after 02:50, and false if there is none before 08:20.
func secondStart(ns ebssim.Summary) (int, bool) {
	for _, x := range ns.Brownouts {
		if x.To > int(ebssim.APIRecovered/time.Minute) && x.From <= int(ebssim.CutOff/time.Minute) {
			return max(x.From, int(ebssim.APIRecovered/time.Minute)), true
		}
	}
	return 0, false
}

// jsonRun is one run in the -json output.
type jsonRun struct {
	Mode                  string          `json:"mode"`
	PeakStuckAffected     float64         `json:"peak_stuck_affected_zone_pct"`
	PeakStuckOther        float64         `json:"peak_stuck_other_zones_pct"`
	APIHealthyMin         float64         `json:"api_success_healthy_zones_min_pct"`
	APIHealthyBelow50     int             `json:"api_success_healthy_zones_below_50_minutes"`
	SearchMessages        int64           `json:"search_messages"`
	NodeCrashes           int             `json:"node_crashes"`
	NoLiveMax             int             `json:"volumes_without_live_replica_max"`
	HealthyAfterSeconds   *float64        `json:"affected_zone_healthy_after_heal_seconds"`
	StuckAt1130           *float64        `json:"stuck_affected_zone_at_1130_pct"`
	RaceAt1130            *float64        `json:"stuck_race_crash_at_1130_pct"`
	CutOffPct             float64         `json:"cut_off_during_isolation_pct"`
	DegradationStoppedMin *int            `json:"degradation_stopped_minute"`
	Below22Min            *int            `json:"at_most_2_2_pct_stuck_minute"`
	Below104Min           *int            `json:"at_most_1_04_pct_stuck_minute"`
	UnrecoverablePct      float64         `json:"unrecoverable_pct"`
	Events                int64           `json:"events"`
	Timeline              []ebssim.Minute `json:"timeline"`
}

func optMin(m int) *int {
	if m < 0 {
		return nil
	}
	return &m
}

func writeJSON(w io.Writer, cfg ebssim.Config, results [2]*ebssim.Result) error {
	type postmortem struct {
		PeakStuckAffected float64 `json:"peak_stuck_affected_zone_pct"`
		RaceAdded         float64 `json:"race_added_pct"`
		PeakStuckOtherMax float64 `json:"peak_stuck_other_zones_below_pct"`
		Left22Minute      int     `json:"at_most_2_2_pct_stuck_minute"`
		Left104Minute     int     `json:"at_most_1_04_pct_stuck_minute"`
		Unrecoverable     float64 `json:"unrecoverable_pct"`
		DegradationStop   int     `json:"degradation_stopped_minute"`
	}
	out := struct {
		Seed         uint64     `json:"seed"`
		Volumes      int        `json:"volumes"`
		Hours        int        `json:"hours"`
		Zones        []string   `json:"zones"`
		NodesPerZone int        `json:"nodes_per_zone"`
		Postmortem   postmortem `json:"postmortem"`
		Runs         []jsonRun  `json:"runs"`
	}{Seed: cfg.Seed, Volumes: cfg.Volumes, Hours: cfg.Hours, Zones: ebssim.ZoneNames[:], NodesPerZone: results[0].NodesPerZone,
		Postmortem: postmortem{ebssim.PostmortemStuck, ebssim.PostmortemRace, ebssim.PostmortemOther,
			int(ebssim.Restored22 / time.Minute), int(ebssim.Restored104 / time.Minute), ebssim.PostmortemUnrec, int(ebssim.BlockFutile / time.Minute)}}
	for _, r := range results {
		s := r.Summarize()
		jr := jsonRun{Mode: r.Mode.String(), PeakStuckAffected: s.PeakStuckAffectedPct, PeakStuckOther: s.PeakStuckOtherPct,
			APIHealthyMin: s.APISuccessHealthyMinPct, APIHealthyBelow50: s.APIHealthyBelow50Minutes,
			SearchMessages: s.SearchMessages, NodeCrashes: s.NodeCrashes, NoLiveMax: s.NoLiveReplicaMax,
			CutOffPct:             s.CutOffPct,
			DegradationStoppedMin: optMin(s.DegradationStopped), Below22Min: optMin(s.Below22), Below104Min: optMin(s.Below104),
			UnrecoverablePct: s.UnrecoverablePct, Events: r.Events, Timeline: r.Timeline}
		if s.At1130 {
			jr.StuckAt1130, jr.RaceAt1130 = &s.StuckAt1130, &s.RaceAt1130
		}
		if s.HealthyAfterHeal >= 0 {
			secs := s.HealthyAfterHeal.Seconds()
			jr.HealthyAfterSeconds = &secs
		}
		out.Runs = append(out.Runs, jr)
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}
