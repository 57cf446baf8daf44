// Command ebs2011 replays the EBS re-mirroring storm of April 21, 2011 in a
// simulated region, twice: once with the settings the postmortem describes
// (the naive run) and once with package remirror's engine on its defaults
// (the guarded run), and prints the two timelines side by side in time.
//
// The scenario follows the postmortem's first hours: at 12:47 AM a network
// change isolates part of one zone's storage cluster (us-east-1a); about
// 40 minutes later the change is rolled back. Nodes that lost their mirror
// re-mirror; in the naive run they search at once, at random, without
// backing off, the zone's free capacity is gone, and a rare crash when a
// node closes many search requests at once puts more volumes into the
// storm, which outlives the fault. In the guarded run the same fault ends
// with the network: volumes wait for their previous peer, search within a
// budget and only nodes with room, and re-mirror under per-node bounds.
// The model is described in package remirror/sim.
//
// The simulation is deterministic: the same flags print the same bytes.
//
// Usage:
//
//	go run ./ebs2011 [-seed N] [-volumes N] [-hours N] [-json]
//
// -json prints the per-minute timelines of both runs, per zone, as JSON
// instead of the table.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stormguard/stormguard/remirror/sim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// zoneNames names the simulated zones; zone 0 is the one that fails.
var zoneNames = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// startHour is the wall-clock hour (PDT) of the simulation's start.
const startHour = 0

type options struct {
	cfg     sim.Config
	volumes int
	json    bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("ebs2011", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "random seed")
	volumes := fs.Int("volumes", 6000, "volumes in the region (3 zones, about 33 volumes per node)")
	hours := fs.Int("hours", 12, "simulated hours from midnight")
	asJSON := fs.Bool("json", false, "print the per-minute timelines as JSON")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *volumes < 300 || *volumes > 10_000_000 {
		return options{}, fmt.Errorf("-volumes %d is outside [300, 10000000]", *volumes)
	}
	if *hours < 2 || *hours > 24*7 {
		return options{}, fmt.Errorf("-hours %d is outside [2, 168]", *hours)
	}
	cfg := sim.DefaultConfig()
	if *volumes != cfg.Zones*cfg.VolumesPerZone {
		cfg = cfg.Scaled(*volumes)
	}
	cfg.Seed = *seed
	cfg.Duration = time.Duration(*hours) * time.Hour
	return options{cfg: cfg, volumes: *volumes, json: *asJSON}, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "ebs2011: %v\n", err)
		return 2
	}
	var results [2]*sim.Result
	for i, m := range []sim.Mode{sim.Naive, sim.Guarded} {
		if results[i], err = sim.Run(opts.cfg, m); err != nil {
			fmt.Fprintf(stderr, "ebs2011: %v\n", err)
			return 2
		}
	}
	if opts.json {
		if err := writeJSON(stdout, opts.cfg, results); err != nil {
			fmt.Fprintf(stderr, "ebs2011: %v\n", err)
			return 1
		}
		return 0
	}
	report(stdout, opts.cfg, results)
	return 0
}

// clock formats a simulated minute as the 2011 wall clock (PDT), starting
// at midnight.
func clock(minute int) string {
	return fmt.Sprintf("%02d:%02d", (startHour+minute/60)%24, minute%60)
}

// rows are the minutes the table shows: every 10 minutes for the first
// three hours, then every hour.
func rows(total int) []int {
	var out []int
	for m := 10; m <= total; m += 10 {
		if m <= 180 || m%60 == 0 {
			out = append(out, m)
		}
	}
	return out
}

func report(w io.Writer, cfg sim.Config, results [2]*sim.Result) {
	fault := int(cfg.FaultStart / time.Minute)
	heal := int((cfg.FaultStart + cfg.FaultDuration) / time.Minute)
	fmt.Fprintf(w, "EBS, April 21 2011, replayed: %d volumes in %d zones of %d nodes (seed %d).\n",
		cfg.VolumesPerZone*cfg.Zones, cfg.Zones, cfg.NodesPerZone, cfg.Seed)
	fmt.Fprintf(w, "%s a network change isolates %.0f%% of %s's nodes; %s it is rolled back.\n\n",
		clock(fault), 100*cfg.IsolatedFraction, zoneNames[0], clock(heal))
	titles := [2]string{
		"naive (2011): no reconnect, immediate search of random nodes retried every minute, no reserve,\nunbounded concurrency, 60s authority timeout, one regional queue",
		"guarded (remirror defaults): reconnect for 10m, search budget 20/s with free-space hints, 10% reserve,\n2 re-mirrors per node and 64 per cluster, authority behind a per-zone partition with 2s timeouts",
	}
	for i, r := range results {
		fmt.Fprintf(w, "%s\n\n", titles[i])
		table(w, r, fault, heal)
		fmt.Fprintln(w)
	}
	n, g := results[0], results[1]
	fmt.Fprintf(w, "%-34s %12s %12s\n", "", "naive", "guarded")
	fmt.Fprintf(w, "%-34s %11.1f%% %11.1f%%\n", "peak stuck, region", 100*n.PeakStuck, 100*g.PeakStuck)
	fmt.Fprintf(w, "%-34s %11.1f%% %11.1f%%\n", "peak stuck, "+zoneNames[0], 100*n.PeakStuckZone, 100*g.PeakStuckZone)
	fmt.Fprintf(w, "%-34s %12d %12d\n", "search messages", n.Searches, g.Searches)
	fmt.Fprintf(w, "%-34s %12d %12d\n", "authority calls", n.AuthorityCalls, g.AuthorityCalls)
	fmt.Fprintf(w, "%-34s %12d %12d\n", "node crashes (race and churn)", n.Crashes, g.Crashes)
	fmt.Fprintf(w, "%-34s %12s %12s\n", "all of "+zoneNames[0]+" healthy after heal", healthy(n.HealthyAfter), healthy(g.HealthyAfter))
	fmt.Fprintf(w, "%-34s %12d %12d\n", "volumes without a live replica", n.MaxZeroLive, g.MaxZeroLive)
}

func healthy(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.String()
}

func table(w io.Writer, r *sim.Result, fault, heal int) {
	zones := len(r.Zones)
	var b strings.Builder
	b.WriteString("time  ")
	group := func(title string, width int) {
		span := zones*width - 1
		fmt.Fprintf(&b, " | %-*s", span, title)
	}
	group("stuck %", 6)
	group("searches/min", 7)
	group("authority calls/min", 6)
	fmt.Fprintf(&b, " | free %%\n")
	b.WriteString("      ")
	for _, width := range []int{6, 7, 6} {
		b.WriteString(" |")
		for zi := range zones {
			fmt.Fprintf(&b, "%*s", width, "1"+string(rune('a'+zi)))
		}
	}
	fmt.Fprintf(&b, " | %6s\n", "1a")
	prev := 0
	for _, m := range rows(len(r.Region)) {
		fmt.Fprintf(&b, "%s ", clock(m))
		b.WriteString(" |")
		for zi := range zones {
			fmt.Fprintf(&b, "%6.1f", 100*r.Zones[zi][m-1].Stuck)
		}
		b.WriteString(" |")
		for zi := range zones {
			fmt.Fprintf(&b, "%7.0f", perMinute(r.Zones[zi][prev:m], func(x sim.Minute) int64 { return x.Searches }))
		}
		b.WriteString(" |")
		for zi := range zones {
			fmt.Fprintf(&b, "%6.0f", perMinute(r.Zones[zi][prev:m], func(x sim.Minute) int64 { return x.AuthorityCalls }))
		}
		fmt.Fprintf(&b, " | %6.1f", 100*r.Zones[0][m-1].Free)
		switch {
		case prev < fault && fault <= m:
			b.WriteString("  ← isolation")
		case prev < heal && heal <= m:
			b.WriteString("  ← rollback")
		}
		b.WriteString("\n")
		prev = m
	}
	io.WriteString(w, b.String())
}

func perMinute(ms []sim.Minute, f func(sim.Minute) int64) float64 {
	var sum int64
	for _, m := range ms {
		sum += f(m)
	}
	return float64(sum) / float64(max(len(ms), 1))
}

// jsonRun is one run in the -json output.
type jsonRun struct {
	Mode             string       `json:"mode"`
	PeakStuck        float64      `json:"peak_stuck"`
	PeakStuckZone    float64      `json:"peak_stuck_faulty_zone"`
	Searches         int64        `json:"searches"`
	AuthorityCalls   int64        `json:"authority_calls"`
	Crashes          int          `json:"crashes"`
	HealthyAfterSec  float64      `json:"healthy_after_heal_seconds"`
	MaxZeroLive      int          `json:"max_volumes_without_live_replica"`
	IsolatedFraction float64      `json:"isolated_fraction"`
	Zones            []jsonZone   `json:"zones"`
	Region           []sim.Minute `json:"region"`
}

type jsonZone struct {
	Name    string       `json:"name"`
	Minutes []sim.Minute `json:"minutes"`
}

func writeJSON(w io.Writer, cfg sim.Config, results [2]*sim.Result) error {
	out := struct {
		Seed          uint64    `json:"seed"`
		Volumes       int       `json:"volumes"`
		Zones         int       `json:"zones"`
		NodesPerZone  int       `json:"nodes_per_zone"`
		FaultStartMin int       `json:"fault_start_minute"`
		FaultEndMin   int       `json:"fault_end_minute"`
		Runs          []jsonRun `json:"runs"`
	}{cfg.Seed, cfg.VolumesPerZone * cfg.Zones, cfg.Zones, cfg.NodesPerZone,
		int(cfg.FaultStart / time.Minute), int((cfg.FaultStart + cfg.FaultDuration) / time.Minute), nil}
	for _, r := range results {
		jr := jsonRun{Mode: r.Mode.String(), PeakStuck: r.PeakStuck, PeakStuckZone: r.PeakStuckZone,
			Searches: r.Searches, AuthorityCalls: r.AuthorityCalls, Crashes: r.Crashes,
			HealthyAfterSec: r.HealthyAfter.Seconds(), MaxZeroLive: r.MaxZeroLive,
			IsolatedFraction: r.IsolatedFraction, Region: r.Region}
		if r.HealthyAfter < 0 {
			jr.HealthyAfterSec = -1
		}
		for zi, z := range r.Zones {
			jr.Zones = append(jr.Zones, jsonZone{Name: zoneName(zi), Minutes: z})
		}
		out.Runs = append(out.Runs, jr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}

func zoneName(i int) string {
	if i < len(zoneNames) {
		return zoneNames[i]
	}
	return fmt.Sprintf("zone-%d", i)
}
