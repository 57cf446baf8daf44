// Command azisolation reproduces the 2011 EBS control-plane failure on a real
// HTTP service on loopback, and shows it contained.
//
// Run it from the examples directory:
//
//	$ go run ./azisolation
//	$ go run ./azisolation -sick-delay 300ms -out out/azisolation
//
// Flags: [-duration D] [-rate N] [-sick-after D] [-sick-for D]
// [-sick-delay D] [-client-timeout D] [-pool N] [-seed N] [-out DIR] [-json];
// -h states their ranges.
//
// A small control-plane service answers /az/{zone}/describe for three
// Availability Zones. Each request calls into its zone's backend. After
// -sick-after, us-east-1a's backend becomes slow (-sick-delay per call:
// slow but working at 300ms or 1s, hung at the default 5s) for -sick-for,
// then recovers. A load generator drives all three zones at a steady rate,
// and an operator health-checks each zone's backend, pauses a zone that
// stopped answering and resumes it once it answers again. The run is made
// twice:
//
//   - "2011": one regional pool shared by all zones, with long timeouts —
//     the design that let calls into the sick zone fill the pool and fail
//     the API in every zone; the operator's pause is a switch in front of
//     the pool, as the 2011 team's deployed change was;
//   - "guarded": a shed.Partition keyed by zone in which each zone learns
//     its own concurrency limit from its latency (shed.AdaptiveConfig)
//     under the regional total, a call timeout per zone learned from that
//     zone's own successful calls, and Partition.Pause as the operator's
//     lever.
//
// It prints, per run, a per-second table of each zone's success and p50/p99
// latency and of the backend calls in flight, the events (sick, paused,
// recovered, resumed), and sentences computed from those numbers, with the
// postmortem's figures beside the simulated ones. -out DIR writes the
// charts as PNG and SVG; -json prints one JSON object instead of the text.
// Traffic goes only to 127.0.0.1.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/stormguard/stormguard/examples/internal/progress"
	"github.com/stormguard/stormguard/shed"
)

var zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

const defaultFast = 5 * time.Millisecond

// Flag ranges. The largest values are sized so that a run (two designs
// of at most maxDuration each, plus the client timeout to drain) finishes
// within five minutes. maxRate is what a 2-core machine's generator can
// still send against a hung zone: at 2000 req/s per zone neither design's
// run reached 90% of the stated rate and the process held 5 GB.
const (
	minDuration   = time.Second
	maxDuration   = 2 * time.Minute
	maxRate       = 1000
	minSickFor    = time.Millisecond
	minSickDelay  = 2 * defaultFast // slower than a healthy call
	maxSickDelay  = time.Minute
	minClientWait = 100 * time.Millisecond
	maxClientWait = 10 * time.Second
	maxPool       = 10000
)

// The guarded design's fixed parameters: each zone may hold at most
// zoneShare of the pool, and its adaptive limit never falls below half of
// that (zoneFloor); calls wait at most zoneMaxWait for a slot.
//
// zoneWindowSamples is how many completed calls close a window of a
// zone's adaptive limit (or zoneMaxWindow, whichever comes first). A zone
// that slowed down answers in batches, about its limit's worth of calls
// per round trip, and its limit needs about seven moves to fall from its
// cap to its floor, re-learn its baseline there and grow back. With
// 16-sample windows a batch closed one window, so the limit moved once a
// round trip and was back at its cap about seven round trips after the
// slowdown (2s at 300ms a call): at pool 16 it held 9.7 of its 12 slots
// on average over the window in which the demo judges a slow zone's
// service (from learnTime on), and served 32-36% of requests where 40%
// could be carried. A window of 4 samples lets one batch at the floor (6
// calls at pool 16) move the limit more than once, so that it re-learns
// within learnRTTs round trips. At 4 samples the mean of a window of
// calls ±20% around their latency still stays within the limit's 1.5×
// tolerance of any baseline learned from such windows.
const (
	zoneShare         = 0.75
	zoneMaxWait       = 50 * time.Millisecond
	zoneWindowSamples = 4
	zoneMaxWindow     = 250 * time.Millisecond
)

type config struct {
	duration   time.Duration // load per run
	rate       int           // requests per second per zone
	sickAfter  time.Duration // when the sick zone turns slow
	sickFor    time.Duration // for how long
	sickDelay  time.Duration // how long its backend calls take then
	fast       time.Duration // a healthy backend call
	pool       int           // regional worker pool
	clientWait time.Duration // client timeout per request
	seed       uint64        // backend latency jitter
	out        string        // chart directory, or ""
	json       bool
}

func (c config) validate() error {
	var errs []error
	if c.duration < minDuration || c.duration > maxDuration {
		errs = append(errs, fmt.Errorf("-duration %v must be in [%v, %v]", c.duration, minDuration, maxDuration))
	}
	if c.rate < 1 || c.rate > maxRate {
		errs = append(errs, fmt.Errorf("-rate %d must be in [1, %d] requests per second per zone", c.rate, maxRate))
	}
	if c.sickAfter < 0 || c.sickAfter >= c.duration {
		errs = append(errs, fmt.Errorf("-sick-after %v must be in [0, -duration %v)", c.sickAfter, c.duration))
	}
	if c.sickFor < minSickFor || c.sickFor > maxDuration {
		errs = append(errs, fmt.Errorf("-sick-for %v must be in [%v, %v]", c.sickFor, minSickFor, maxDuration))
	}
	if c.sickDelay < minSickDelay || c.sickDelay > maxSickDelay {
		errs = append(errs, fmt.Errorf("-sick-delay %v must be in [%v, %v]: the sick zone is slower than a healthy call (%v)", c.sickDelay, minSickDelay, maxSickDelay, defaultFast))
	}
	if c.clientWait < minClientWait || c.clientWait > maxClientWait {
		errs = append(errs, fmt.Errorf("-client-timeout %v must be in [%v, %v]", c.clientWait, minClientWait, maxClientWait))
	}
	if c.pool < 1 || c.pool > maxPool {
		errs = append(errs, fmt.Errorf("-pool %d must be in [1, %d]", c.pool, maxPool))
	}
	return errors.Join(errs...)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("azisolation", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{fast: defaultFast}
	fs.DurationVar(&cfg.duration, "duration", 14*time.Second, fmt.Sprintf("load per run (two runs), in [%v, %v]", minDuration, maxDuration))
	fs.IntVar(&cfg.rate, "rate", 100, fmt.Sprintf("requests per second per zone, in [1, %d]", maxRate))
	fs.DurationVar(&cfg.sickAfter, "sick-after", 2*time.Second, "when us-east-1a turns slow, in [0, -duration)")
	fs.DurationVar(&cfg.sickFor, "sick-for", 5*time.Second, fmt.Sprintf("how long it stays slow before its backend recovers, in [%v, %v] (past the end of the run: it never recovers in it)", minSickFor, maxDuration))
	fs.DurationVar(&cfg.sickDelay, "sick-delay", 5*time.Second, fmt.Sprintf("how long its backend calls take meanwhile (±20%%), in [%v, %v] (a healthy call takes %v)", minSickDelay, maxSickDelay, defaultFast))
	fs.DurationVar(&cfg.clientWait, "client-timeout", 2*time.Second, fmt.Sprintf("client timeout per request, in [%v, %v]", minClientWait, maxClientWait))
	fs.IntVar(&cfg.pool, "pool", 48, fmt.Sprintf("regional worker pool size, in [1, %d]", maxPool))
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the backends' latency jitter, in [0, 2^64)")
	fs.StringVar(&cfg.out, "out", "", "directory to write the charts into, as PNG and SVG: any path (created if missing), or empty for no charts")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object instead of the text report: true or false")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, cfg.validate()
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "azisolation:", err)
		return 2
	}
	if err := demo(stdout, stderr, cfg); err != nil {
		fmt.Fprintln(stderr, "azisolation:", err)
		return 1
	}
	return 0
}

// designRun is one design's run with the numbers computed from it.
type designRun struct {
	name, short string
	slots       int // the most backend calls the design lets one zone hold
	run         *run
	secs        [][]secStat // [second][zone]
	zones       []zoneStats
	sickServed  zoneStats // the sick zone while sick and not paused
	settled     zoneStats // the same, sent in settledWindow
}

// zoneCap is the guarded design's cap on one zone's calls in flight.
func zoneCap(pool int) int { return int(math.Ceil(zoneShare * float64(pool))) }

// zoneFloor is the least a zone's adaptive limit falls to. Against a
// backend that became several times slower without queueing, the
// limit's gradient settles near 4 and re-learns the baseline only at its
// floor; a floor of half the cap lets a slow zone re-learn within a few
// windows and grow back to what it needs, while a hung zone's calls, cut
// at its learned timeout, hold at most its limit.
func zoneFloor(pool int) int { return max(1, zoneCap(pool)/2) }

func newGuarded(cfg config) (*guarded, error) {
	part, err := shed.NewPartition(shed.PartitionConfig[string]{
		Total:          cfg.pool,
		Share:          zoneShare,
		MaxQueuePerKey: cfg.pool,
		MaxWait:        zoneMaxWait,
		Adaptive: &shed.AdaptiveConfig{
			MinLimit:      zoneFloor(cfg.pool),
			WindowSamples: zoneWindowSamples,
			MaxWindow:     zoneMaxWindow,
			Smoothing:     1,
		},
	})
	if err != nil {
		return nil, err
	}
	g := &guarded{zones: part}
	for range zones {
		g.timeouts = append(g.timeouts, newLearnedTimeout(ceiling(cfg.clientWait)))
	}
	return g, nil
}

// runBoth runs the 2011 design, then the guarded one.
func runBoth(cfg config, phase func(string)) ([]*designRun, error) {
	pool, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: cfg.pool, MaxQueue: 1 << 24, MaxWait: time.Minute})
	if err != nil {
		return nil, err
	}
	naive := &shared{pool: pool, timeout: time.Minute}
	safe, err := newGuarded(cfg)
	if err != nil {
		return nil, err
	}
	runs := []*designRun{
		{name: "2011: shared pool, long timeouts", short: "2011", slots: cfg.pool},
		{name: "guarded: per-zone adaptive limits + learned timeouts", short: "guarded", slots: zoneCap(cfg.pool)},
	}
	for i, d := range []design{naive, safe} {
		phase(fmt.Sprintf("%s design (%d of 2, %v of load)", runs[i].short, i+1, cfg.duration))
		r, err := runDesign(d, cfg)
		if err != nil {
			return nil, err
		}
		runs[i].run = r
		runs[i].secs = perSecond(r, cfg)
		runs[i].zones = stats(r.results, -1, -1, nil)
		paused := pausedSpans(r.events, cfg.duration)
		runs[i].sickServed = stats(r.results, cfg.sickAfter, cfg.sickAfter+cfg.sickFor, paused)[0]
		from, to := settledWindow(cfg)
		runs[i].settled = stats(r.results, from, to, paused)[0]
	}
	return runs, nil
}

func demo(stdout, stderr io.Writer, cfg config) error {
	if cfg.out != "" {
		// Refuse an unusable -out before minutes of load, not after.
		if err := os.MkdirAll(cfg.out, 0o755); err != nil {
			return fmt.Errorf("-out %q: cannot create the chart directory: %w", cfg.out, err)
		}
	}
	tick := progress.StartTicker(stderr, "azisolation: running the ", 72)
	runs, err := runBoth(cfg, tick.Phase)
	tick.Stop()
	if err != nil {
		return err
	}
	if cfg.out != "" {
		if err := writeCharts(cfg.out, cfg, runs); err != nil {
			return err
		}
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(toJSON(cfg, runs))
	}
	report(stdout, stderr, cfg, runs)
	if cfg.out != "" {
		fmt.Fprintf(stdout, "\nCharts: %s/azisolation.png and .svg (per zone and second: success, p99 latency, backend calls in flight).\n", cfg.out)
	}
	return nil
}

func slicesSortEvents(es []event) {
	slices.SortStableFunc(es, func(a, b event) int { return cmp.Compare(a.at, b.at) })
}
