// Command dynamodb2025 replays the DynamoDB / EC2 / NLB outage of October
// 19-20, 2025 in us-east-1 as one connected, deterministic run, twice on
// the same seed and clock: naive (the 2025 designs, with the operators'
// actions of the postmortem) and guarded (dnsplan, lease.Recovery, shed and
// velocity control, with no operator), and compares both with the
// postmortem's figures.
//
// The chain: the DNS plan race empties DynamoDB's regional endpoint; DWFM's
// droplet leases lapse while DynamoDB is unreachable and their
// re-establishment collapses; EC2 launches fail without leased droplets;
// the Network Manager's backlog delays network state for hours; NLB health
// checks fail on targets without it, flap, and automatic AZ failover takes
// whole zones out. The model is described in package
// examples/internal/ddbsim. The smaller demos dnsrace and leasestorm show
// one link each, step by step.
//
// Usage:
//
//	$ go run ./dynamodb2025 [-seed N] [-droplets N] [-hours N] [-scenario cascade|dynamodb-down] [-out DIR] [-json]
//
// It prints a timeline at the postmortem's timestamps and every 10 minutes
// around them, a side-by-side summary (naive, guarded, postmortem), the
// calibration checks and what the model cannot match. -out DIR writes the
// chart as PNG and SVG; -json prints one JSON object instead of the text.
// The same flags print the same bytes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/stormguard/stormguard/examples/internal/ddbsim"
	"github.com/stormguard/stormguard/examples/internal/textfmt"
	"github.com/stormguard/stormguard/examples/internal/twin"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// simulate runs one mode; tests share its results between them.
var simulate = ddbsim.Run

type options struct {
	cfg  ddbsim.Config
	out  string
	json bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("dynamodb2025", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "random seed, any integer in [0, 18446744073709551615]")
	droplets := fs.Int("droplets", ddbsim.DefaultDroplets, fmt.Sprintf("droplets (EC2 servers) with a DWFM lease, in [%d, %d]", ddbsim.MinDroplets, ddbsim.MaxDroplets))
	hours := fs.Int("hours", 17, fmt.Sprintf("simulated hours from 23:00 PDT October 19 2025, in [%d, %d]", ddbsim.MinHours, ddbsim.MaxHours))
	scenario := fs.String("scenario", string(ddbsim.Cascade), "cascade (the DNS race starts it) or dynamodb-down (DynamoDB unreachable 23:48-02:25 in both modes)")
	out := fs.String("out", "", "directory to write the chart into, as PNG and SVG (created if missing; empty: no chart)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the text report")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := ddbsim.Config{Seed: *seed, Droplets: *droplets, Hours: *hours, Scenario: ddbsim.Scenario(*scenario)}
	if err := cfg.Validate(); err != nil {
		return options{}, err
	}
	return options{cfg: cfg, out: *out, json: *asJSON}, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return twin.FlagError("dynamodb2025", stderr, err)
	}
	return twin.Demo[*ddbsim.Result]{
		Name: "dynamodb2025", Charts: "chart",
		Run: func(i int, progress func(float64)) (*ddbsim.Result, error) {
			cfg := opts.cfg
			cfg.Progress = func(_ ddbsim.Mode, done float64) { progress(done) }
			return simulate(cfg, ddbsim.Mode(i))
		},
		WriteCharts: writeCharts,
		WriteJSON:   func(w io.Writer, rs [2]*ddbsim.Result) error { return writeJSON(w, opts.cfg, rs) },
		Report:      func(w io.Writer, rs [2]*ddbsim.Result) { report(w, opts, rs) },
	}.Main(stdout, stderr, opts.out, opts.json)
}

func clock(minute int) string { return ddbsim.Clock(time.Duration(minute) * time.Minute) }
func hhmm(minute int) string  { return clock(minute)[7:] }

type event struct {
	at   time.Duration
	what string
	op   bool // an operators' action of the naive run
}

var events = []event{
	{ddbsim.RaceAt, "regional endpoint's DNS empty; DynamoDB errors; DWFM checks fail", false},
	{ddbsim.Diagnosis, "engineers identify DynamoDB's DNS as the source", true},
	{ddbsim.Mitigation, "temporary mitigations for some internal services", false},
	{ddbsim.LeasesAllLapsed, "last lease time-outs", false},
	{ddbsim.DNSRepair, "operators restore DNS; DWFM re-establishes leases", true},
	{ddbsim.CachesExpired, "cached DNS answers expired; DynamoDB recovered", false},
	{ddbsim.DWFMRestart, "operators throttle incoming work, restart DWFM hosts", true},
	{ddbsim.DWFMLeased, "DWFM has every lease; launches start succeeding", false},
	{ddbsim.NLBErrorsBegin, "NLB connection errors begin", false},
	{ddbsim.NMLatency, "Network Manager propagation latency rising", false},
	{ddbsim.NLBDetected, "monitoring detects the NLB health-check problem", false},
	{ddbsim.FailoverDisabled, "operators disable NLB automatic failover", true},
	{ddbsim.PropagationNormal, "propagation normal; launches operate normally", false},
	{ddbsim.ThrottlesRelaxed, "operators start relaxing request throttles", true},
	{ddbsim.EC2RecoveryStarts, "EC2 recovery starts", false},
	{ddbsim.FullRecovery, "all EC2 APIs and launches normal", false},
	{ddbsim.FailoverEnabled, "operators re-enable NLB automatic failover", true},
	{ddbsim.EventEnds, "event ends", false},
}

func rows(total int) []int {
	set := map[int]bool{}
	for _, e := range events {
		m := int(e.at / time.Minute)
		for _, x := range []int{m, m/10*10 - 10, m / 10 * 10, m/10*10 + 10, m/10*10 + 20, m/10*10 + 30} {
			if x >= 0 && x < total {
				set[x] = true
			}
		}
	}
	var out []int
	for m := range set {
		out = append(out, m)
	}
	sort.Ints(out)
	return out
}

func report(w io.Writer, opts options, results [2]*ddbsim.Result) {
	n, g := results[0], results[1]
	ns, gs := n.Summarize(), g.Summarize()
	cfg := opts.cfg
	fmt.Fprintf(w, "DynamoDB / EC2 / NLB, us-east-1, October 19-20 2025, replayed: scenario %s, %s droplets (seed %d), %d hours from 23:00 PDT.\n",
		cfg.Scenario, textfmt.Group(int64(cfg.Droplets)), cfg.Seed, cfg.Hours)
	textfmt.Wrap(w, 110, fmt.Sprintf("DWFM has %d workers (an establishment about %v, a renewal %v, a %v timeout; leases of %v); %g launch requests a minute; the Network Manager propagates %d items a minute; the NLB has %d targets in 3 zones. "+
		"naive = check-once DNS enactors (one stalled), DWFM's FIFO that queues timed-out work again, one FIFO in the Network Manager, health checks without limit and automatic AZ failover, with the operators' actions of the day; "+
		"guarded = dnsplan.Enactor, lease.Recovery, a shed.Scheduler with priorities and deadlines, velocity control and fail-static on the NLB, and no operator.",
		n.Workers, ddbsim.EstablishCost, ddbsim.RenewCost, dur(ddbsim.AttemptTimeout), dur(ddbsim.LeaseTTL), n.LaunchesPerMin, n.NMPerMin, 3*ddbsim.NLBPerZone))
	fmt.Fprintln(w)
	evAt := map[int]string{}
	for _, e := range events {
		m := int(e.at / time.Minute)
		s := e.what
		if e.op {
			s = "[op] " + s
		}
		if evAt[m] != "" {
			evAt[m] += "; "
		}
		evAt[m] += s
	}
	fmt.Fprintln(w, "Timeline (PDT). dns: regional endpoint answers (1) or is empty (0); ddb: % of clients reaching DynamoDB; leased: % of droplets;")
	fmt.Fprintln(w, "t/o: DWFM attempts that timed out in the minute; launch: % of the minute's launch requests that ran and got network state")
	fmt.Fprintln(w, "within 10 minutes; p99: propagation delay of fresh launches (s); nlb: % of NLB capacity in service. [op] = operators' action (naive only).")
	fmt.Fprintf(w, "%-12s | %-49s | %-49s | %s\n", "", "naive", "guarded", "")
	hdr := fmt.Sprintf("%3s %5s %6s %5s %6s %6s %5s", "dns", "ddb", "leased", "t/o", "launch", "p99", "nlb")
	fmt.Fprintf(w, "%-12s | %-49s | %-49s | %s\n", "time", hdr, hdr, "postmortem")
	line := func(m ddbsim.Minute) string {
		return fmt.Sprintf("%3d %5.0f %6.1f %5d %6.1f %6.0f %5.1f", m.DNSNonEmpty, m.DynamoDBOKPct, m.LeasedPct, m.DWFMTimeouts, m.LaunchOKPct, m.PropP99Seconds, m.NLBCapacityPct)
	}
	for _, mi := range rows(len(n.Timeline)) {
		fmt.Fprintf(w, "%-12s | %-49s | %-49s | %s\n", clock(mi), line(n.Timeline[mi]), line(g.Timeline[mi]), evAt[mi])
	}
	fmt.Fprintln(w)
	summary(w, n, g, ns, gs)
	if gs.Backlog.Has() && (gs.FullRecovery >= 0 && gs.Backlog.To+1 > gs.FullRecovery) {
		peak := 0
		for _, m := range g.Timeline {
			peak = max(peak, m.NMBacklog)
		}
		fmt.Fprintln(w)
		textfmt.Wrap(w, 110, fmt.Sprintf("The guarded Network Manager serves fresh launches first: its backlog (%s items at the peak, the network state of re-established droplets) waits behind them %s, beyond the guarded full recovery (%s); the naive one works its backlog off %s, while the operators' throttle holds launches back.",
			textfmt.Group(int64(peak)), span(gs.Backlog, len(g.Timeline)), full(gs), span(ns.Backlog, len(n.Timeline))))
	}
	fmt.Fprintln(w)
	if cfg.Scenario == ddbsim.Cascade {
		fmt.Fprintln(w, "Calibration (issue 15, naive cascade against the postmortem; guarded against the issue's bounds):")
	} else {
		fmt.Fprintln(w, "Each guarded layer alone (issue 15, dynamodb-down):")
	}
	for _, c := range Checks(cfg, n, g) {
		fmt.Fprintf(w, "  %-13s %-74s %s\n", verdict(c.OK), c.Name, c.Got)
	}
	fmt.Fprintln(w)
	limits(w, n, ns)
	if opts.out != "" {
		fmt.Fprintf(w, "\nChart: %s/{%s}\n", opts.out, strings.Join(chartFiles(), ","))
	}
}

// span is "HH:MM-HH:MM (duration)", with a "+" after the end and the
// duration if the window lasts to the end of a run of total minutes.
func span(x ddbsim.Window, total int) string {
	if !x.Has() {
		return "none"
	}
	more := ""
	if x.To >= total-1 {
		more = "+"
	}
	return fmt.Sprintf("%s-%s%s (%s%s)", hhmm(x.From), hhmm(x.To+1), more, dur(x.Duration()), more)
}

func dur(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	if h == 0 {
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%dh%02dm", h, m)
}

func full(s ddbsim.Summary) string {
	switch {
	case s.FullRecovery < 0:
		return "not in the run"
	case s.FullRecovery == 0:
		return "nothing broke"
	}
	return hhmm(s.FullRecovery)
}

func summary(w io.Writer, n, g *ddbsim.Result, ns, gs ddbsim.Summary) {
	row := func(name, a, b, pm string) { fmt.Fprintf(w, "%-40s %-24s %-24s %s\n", name, a, b, pm) }
	row("stage (start-end; + = lasts to the end)", "naive", "guarded", "postmortem")
	row("regional DNS record empty", span(ns.DNSEmpty, len(n.Timeline)), span(gs.DNSEmpty, len(n.Timeline)), "23:48-02:25 (2h37m)")
	row("DynamoDB errors (under 99% of clients)", span(ns.DynamoDB, len(n.Timeline)), span(gs.DynamoDB, len(n.Timeline)), "23:48-02:40 (2h52m)")
	row("droplets not all leased", span(ns.Leases, len(n.Timeline)), span(gs.Leases, len(n.Timeline)), "23:48-05:28 (5h40m)")
	row("launch success under 95% (10 min)", span(ns.Launches, len(n.Timeline)), span(gs.Launches, len(n.Timeline)), "23:48-13:50 (14h02m)")
	row("network propagation slow", span(ns.Propagation, len(n.Timeline)), span(gs.Propagation, len(n.Timeline)), "06:21-10:36 (4h15m)")
	row("NLB connection errors", span(ns.NLBErrors, len(n.Timeline)), span(gs.NLBErrors, len(n.Timeline)), "05:30-09:36 (4h06m)")
	row("Network Manager backlog (> 1 min work)", span(ns.Backlog, len(n.Timeline)), span(gs.Backlog, len(n.Timeline)), "worked off 05:28-10:36")
	row("full recovery", full(ns), full(gs), "13:50 (14:20 event ends)")
	row("DWFM attempts wasted (timed out)", textfmt.Group(n.DWFMWasted), textfmt.Group(g.DWFMWasted), "congestive collapse")
	row("NLB capacity in service, lowest", fmt.Sprintf("%.1f%%", ns.NLBMinPct), fmt.Sprintf("%.1f%%", gs.NLBMinPct), "AZ failover took capacity out")
	row("NLB targets removed (flaps)", textfmt.Group(int64(ns.NLBFlaps)), textfmt.Group(int64(gs.NLBFlaps)), "health checks alternated")
	row("propagation delay, longest", dur(time.Duration(ns.PropMaxSeconds)*time.Second), dur(time.Duration(gs.PropMaxSeconds)*time.Second), "hours")
}

func verdict(ok bool) string {
	if ok {
		return "holds"
	}
	return "DOES NOT HOLD"
}

// Check is one criterion of the issue, judged on a run.
type Check struct {
	Name string
	OK   bool
	Got  string
}

func near(m int, at time.Duration, tol time.Duration) bool {
	d := time.Duration(m)*time.Minute - at
	return d >= -tol && d <= tol
}

// Checks judges the criteria for the scenario.
func Checks(cfg ddbsim.Config, n, g *ddbsim.Result) []Check {
	ns, gs := n.Summarize(), g.Summarize()
	if cfg.Scenario == ddbsim.DynamoDBDown {
		ideal := ddbsim.Ideal(cfg.Droplets)
		return []Check{
			{"guarded: 99% of droplets leased within 1.5x the ideal after DynamoDB returns", gs.Leased99After >= 0 && gs.Leased99After <= ideal*3/2,
				fmt.Sprintf("%s (ideal %s)", after(gs.Leased99After), dur(ideal))},
			{"guarded: fresh launches' propagation delay bounded (at most 5 minutes)", gs.PropMaxSeconds <= ddbsim.NormalProp.Seconds(), dur(time.Duration(gs.PropMaxSeconds) * time.Second)},
			{fmt.Sprintf("guarded: NLB capacity never below the velocity limit (%.0f%%)", 100*ddbsim.VelocityFloor), gs.NLBMinPct >= 100*ddbsim.VelocityFloor, velocity(gs.NLBMinPct, g.Velocity)},
			{fmt.Sprintf("guarded NLB policy on the naive run's health checks: never below %.0f%%", 100*ddbsim.VelocityFloor),
				n.Velocity.MinPct >= 100*ddbsim.VelocityFloor && n.Velocity.FailingPeak > 0, velocity(n.Velocity.MinPct, n.Velocity)},
			{"naive: droplets not all leased before the operators' 04:14", ns.LeasedAgain < 0 || ns.LeasedAgain >= int(ddbsim.DWFMRestart/time.Minute), when(ns.LeasedAgain)},
		}
	}
	ddbEnd := ns.DynamoDB.To + 1
	nlbEnd := ns.NLBErrors.To + 1
	return []Check{
		{"naive: DynamoDB unresolvable from 23:48", ns.DynamoDB.Has() && near(ns.DynamoDB.From, ddbsim.RaceAt, 2*time.Minute), span(ns.DynamoDB, len(n.Timeline))},
		{"naive: ... until 02:25-02:40, +-10 minutes", ns.DynamoDB.Has() && ddbEnd >= int(ddbsim.DNSRepair/time.Minute)-10 && ddbEnd <= int(ddbsim.CachesExpired/time.Minute)+10, hhmm(ddbEnd)},
		{"naive: droplets all leased not before 04:14, within an hour of 05:28", ns.LeasedAgain >= int(ddbsim.DWFMRestart/time.Minute) && near(ns.LeasedAgain, ddbsim.DWFMLeased, time.Hour), when(ns.LeasedAgain)},
		{"naive: launch success back to normal not before 10:00", ns.Launches.Has() && ns.Launches.To+1 >= 11*60, hhmm(ns.Launches.To + 1)},
		{"naive: NLB connection errors for 2 hours or more", ns.NLBErrors.Duration() >= 2*time.Hour, span(ns.NLBErrors, len(n.Timeline))},
		{"naive: ... ending when automatic failover is disabled (09:36, +-10 min)", ns.NLBErrors.Has() && near(nlbEnd, ddbsim.FailoverDisabled, 10*time.Minute), hhmm(nlbEnd)},
		{"naive: full recovery within 90 minutes of 13:50", ns.FullRecovery > 0 && near(ns.FullRecovery, ddbsim.FullRecovery, 90*time.Minute), full(ns)},
		{"guarded: the regional record never empty; nothing downstream breaks", !gs.DNSEmpty.Has() && gs.FullRecovery == 0, full(gs)},
	}
}

// velocity gives the lowest NLB capacity in service and what the guarded
// NLB policy met on the run's health checks.
func velocity(pct float64, v ddbsim.Velocity) string {
	if v.FailingPeak == 0 {
		return fmt.Sprintf("%.1f%% (no health check failed)", pct)
	}
	return fmt.Sprintf("%.1f%% (%s checks failing at most, %s targets removed)", pct, textfmt.Group(int64(v.FailingPeak)), textfmt.Group(int64(v.Removed)))
}

func when(m int) string {
	if m < 0 {
		return "not in the run"
	}
	return hhmm(m)
}

func after(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return dur(d)
}

// vs is "HH:MM (2025: HH:MM, +N minutes)": a simulated minute against the
// postmortem's time.
func vs(m int, pm time.Duration) string {
	p := int(pm / time.Minute)
	return fmt.Sprintf("%s (2025: %s, %+d minutes)", hhmm(m), hhmm(p), m-p)
}

// limits says, from the run's numbers, where the model departs from 2025.
func limits(w io.Writer, n *ddbsim.Result, ns ddbsim.Summary) {
	fmt.Fprintln(w, "What the model cannot match, and why:")
	var b strings.Builder
	fmt.Fprintf(&b, "- The DNS repair is the operators' act at 02:25, as in 2025; the model does not simulate the diagnosis (00:38) or the 01:15 mitigations for internal services, so DWFM and EC2 see DynamoDB down until the repair (%s in this run).\n", when(int(n.OutageTo/time.Minute)))
	if ns.DynamoDB.Has() {
		end := ns.DynamoDB.To + 1
		first := end
		for m := int(n.OutageTo / time.Minute); m >= 0 && m < end; m++ {
			if n.Timeline[m].DynamoDBOKPct > 0 {
				first = m
				break
			}
		}
		race := int(ddbsim.RaceAt / time.Minute)
		fmt.Fprintf(&b, "- DynamoDB is back for 99%% of clients at %s, the first of them at %s: the model's clients re-resolve the moment an answer expires, so each cached the empty answer within a minute of the race, and their %v negative entries expire in step, %d x %v after %s; 2025's caches expired over 02:25-02:40.\n",
			vs(end, ddbsim.CachesExpired), hhmm(first), dur(ddbsim.NegativeTTL), (end-race)/int(ddbsim.NegativeTTL/time.Minute), dur(ddbsim.NegativeTTL), hhmm(race))
	}
	if ns.LeasedAgain >= 0 {
		fmt.Fprintf(&b, "- DWFM leases every droplet at %s. After the 04:14 restart the model's DWFM runs at full speed (%v of ideal work for %s droplets); 2025's hosts were restarted one by one, which the postmortem does not time.\n",
			vs(ns.LeasedAgain, ddbsim.DWFMLeased), dur(ddbsim.Ideal(n.Config.Droplets)), textfmt.Group(int64(n.Config.Droplets)))
	}
	if ns.NLBErrors.Has() {
		end := ns.NLBErrors.To + 1
		fmt.Fprintf(&b, "- NLB errors begin at %s: in the model the checker fails zones over as soon as new targets without network state make it flap, which is once the operators let launches through again; 2025's errors grew per load balancer, which a %s-target fleet cannot show. They end at %s",
			vs(ns.NLBErrors.From, ddbsim.NLBErrorsBegin), textfmt.Group(3*ddbsim.NLBPerZone), vs(end, ddbsim.FailoverDisabled))
		if end == int(ddbsim.FailoverDisabled/time.Minute) {
			fmt.Fprintf(&b, ", when the operators disable automatic failover")
		}
		fmt.Fprintf(&b, ".\n")
	}
	if ns.Propagation.Has() {
		peak := 0
		for _, m := range n.Timeline {
			peak = max(peak, m.NMBacklog)
		}
		fmt.Fprintf(&b, "- Propagation is slow from %s to %s. The model's Network Manager is one FIFO of fixed capacity (%s items a minute), so fresh launches wait behind the whole backlog from the first minute it exists; it drains the backlog (%s items at its peak) with what that capacity leaves over the launches and replacements still arriving, and no operator acts on it, where 2025's engineers reduced its load and accelerated recovery at a pace the postmortem does not give.\n",
			vs(ns.Propagation.From, ddbsim.NMLatency), vs(ns.Propagation.To+1, ddbsim.PropagationNormal), textfmt.Group(int64(n.NMPerMin)), textfmt.Group(int64(peak)))
	}
	if ns.FullRecovery > 0 {
		if ns.Launches.Has() && ns.FullRecovery == ns.Launches.To+1 {
			fmt.Fprintf(&b, "- Full recovery at %s is the end of the operators' request throttle, relaxed from 11:23 over %s in the model; the postmortem gives the start and the end, not the pace.\n", vs(ns.FullRecovery, ddbsim.FullRecovery), dur(ddbsim.RelaxFor))
		} else {
			fmt.Fprintf(&b, "- Full recovery at %s comes after the end of the operators' request throttle (relaxed from 11:23 over %s in the model): another stage ends last.\n", vs(ns.FullRecovery, ddbsim.FullRecovery), dur(ddbsim.RelaxFor))
		}
	}
	fmt.Fprintf(&b, "- Other services (Lambda, STS, Redshift, Connect, ECS/EKS) are not modelled; their timelines in the postmortem follow from the stages above.\n")
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var lb strings.Builder
		textfmt.Wrap(&lb, 108, l)
		for i, x := range strings.Split(strings.TrimRight(lb.String(), "\n"), "\n") {
			if i > 0 {
				x = "  " + x
			}
			fmt.Fprintln(w, x)
		}
	}
}

type jsonRun struct {
	Mode                    string   `json:"mode"`
	DNSEmptySeconds         float64  `json:"dns_empty_seconds"`
	DynamoDBUnavailableSecs float64  `json:"dynamodb_unavailable_seconds"`
	LeasesLapsedPeak        int      `json:"leases_lapsed_peak"`
	Leases99After           *float64 `json:"leases_99pct_after_dynamodb_seconds"`
	DWFMWasted              int64    `json:"dwfm_wasted_attempts"`
	LaunchFailureSeconds    float64  `json:"launch_failure_seconds"`
	PropagationMaxSeconds   float64  `json:"propagation_delay_max_seconds"`
	NLBCapacityMinPct       float64  `json:"nlb_capacity_min_pct"`
	NLBFlaps                int      `json:"nlb_flaps"`
	FullRecoverySeconds     *float64 `json:"full_recovery_seconds"`
	NetworkBacklogSeconds   float64  `json:"network_backlog_seconds"`
	// The guarded NLB policy on this run's health checks (ddbsim.Velocity).
	NLBChecksFailingPeak int             `json:"nlb_checks_failing_peak"`
	NLBVelocityMinPct    float64         `json:"nlb_velocity_min_pct"`
	NLBVelocityRemoved   int             `json:"nlb_velocity_removed"`
	Events               int64           `json:"events"`
	Timeline             []ddbsim.Minute `json:"timeline"`
}

func writeJSON(w io.Writer, cfg ddbsim.Config, results [2]*ddbsim.Result) error {
	out := struct {
		Seed     uint64    `json:"seed"`
		Scenario string    `json:"scenario"`
		Droplets int       `json:"droplets"`
		Hours    int       `json:"hours"`
		Runs     []jsonRun `json:"runs"`
	}{Seed: cfg.Seed, Scenario: string(cfg.Scenario), Droplets: cfg.Droplets, Hours: cfg.Hours}
	for _, r := range results {
		s := r.Summarize()
		jr := jsonRun{Mode: r.Mode.String(), DNSEmptySeconds: float64(s.DNSEmptyMin * 60), DynamoDBUnavailableSecs: float64(s.DynamoDBDownMin * 60),
			LeasesLapsedPeak: r.LeasesLapsedPeak, DWFMWasted: r.DWFMWasted, LaunchFailureSeconds: float64(s.LaunchFailureMin * 60),
			PropagationMaxSeconds: s.PropMaxSeconds, NetworkBacklogSeconds: s.Backlog.Duration().Seconds(), NLBCapacityMinPct: s.NLBMinPct, NLBFlaps: s.NLBFlaps, Events: r.Events, Timeline: r.Timeline,
			NLBChecksFailingPeak: r.Velocity.FailingPeak, NLBVelocityMinPct: r.Velocity.MinPct, NLBVelocityRemoved: r.Velocity.Removed}
		if s.Leased99After >= 0 {
			x := s.Leased99After.Seconds()
			jr.Leases99After = &x
		}
		if s.FullRecovery >= 0 {
			x := 0.0
			if s.FullRecovery > 0 {
				x = (time.Duration(s.FullRecovery)*time.Minute - ddbsim.RaceAt).Seconds()
			}
			jr.FullRecoverySeconds = &x
		}
		out.Runs = append(out.Runs, jr)
	}
	return json.NewEncoder(w).Encode(out)
}
