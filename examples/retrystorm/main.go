// Command retrystorm simulates many clients retrying through an outage and
// prints, for five retry strategies side by side, how much load they put on
// the server and how long the server takes to recover once the fault is
// over.
//
// It reproduces, in miniature, the loop behind the EBS re-mirroring storm of
// April 2011: work that failed during a fault comes back when the fault ends,
// on top of new work, and a server that spends effort refusing calls serves
// fewer of them the more it is sent. The simulation is deterministic (a
// seeded PCG, a simulated clock, no sleeping, no goroutines): the same flags
// print the same bytes. The model is described in package sim and in the
// output itself.
//
// Usage:
//
//	$ go run ./retrystorm [-seed N] [-clients N] [-fault D] [flags]
//
// Run with -h for every flag. -out DIR also writes a per-second timeline of
// every strategy to DIR/retrystorm.csv.
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/examples/internal/progress"
	"github.com/stormguard/stormguard/examples/internal/textfmt"
	"github.com/stormguard/stormguard/examples/retrystorm/sim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	cfg      sim.Config
	attempts int
	out      string
}

// run is the whole command; it returns the exit status: 0, 1 when the
// timeline cannot be written, 2 for bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "retrystorm: %v\n", err)
		fmt.Fprintln(stderr, "run 'retrystorm -h' for the flags")
		return 2
	}
	strategies := sim.Strategies(opts.attempts)
	p := progress.StartTicker(stderr, "retrystorm: simulating ", 72)
	results, err := sim.RunWithProgress(opts.cfg, strategies, func(next int) {
		if next < len(strategies) {
			p.Phase(fmt.Sprintf("strategy %d of %d (%s)", next+1, len(strategies), strategies[next].Name))
		}
	})
	p.Stop()
	if err != nil {
		// What only the whole scenario can show (a run too long, too little
		// traffic to measure) is checked by sim.
		fmt.Fprintf(stderr, "retrystorm: %v\n", err)
		return 2
	}
	report(stdout, opts.cfg, opts.attempts, results)
	if opts.out != "" {
		path, err := writeTimeline(opts.out, opts.cfg, results)
		if err != nil {
			fmt.Fprintf(stderr, "retrystorm: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "\nPer-second timeline written to %s.\n", path)
	}
	return 0
}

// The flags' upper bounds; sim.MaxClients, sim.MaxAttempts and sim.MaxWork
// bound the rest.
const (
	maxRate     = 100.0
	maxCapacity = 1000.0
	maxFault    = 10 * time.Minute
	maxAfter    = 10 * time.Minute
)

// errReported is returned by parseFlags for an error the flag package has
// already printed.
var errReported = errors.New("error already reported")

// parseFlags parses args into options and checks every value, naming the
// flag in the error.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	opts := options{cfg: sim.DefaultConfig(), attempts: sim.DefaultMaxAttempts}
	cfg := &opts.cfg
	fs := flag.NewFlagSet("retrystorm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random `seed`, 0 to 2^64-1; the same seed prints the same output")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, fmt.Sprintf("number of clients, 1 to %d", sim.MaxClients))
	fs.DurationVar(&cfg.Fault, "fault", cfg.Fault, fmt.Sprintf("how long the server refuses every call, 0 (no fault) to %v", maxFault))
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, fmt.Sprintf("new requests per second of each client, above 0 up to %v", maxRate))
	fs.Float64Var(&cfg.Capacity, "capacity", cfg.Capacity, fmt.Sprintf("work the server can do, as a multiple of normal load, 1 to %v", maxCapacity))
	fs.Float64Var(&cfg.RefuseCost, "refuse-cost", cfg.RefuseCost, "work a refused call costs the server, as a fraction of a served one, in [0, 1)")
	fs.DurationVar(&cfg.After, "after", cfg.After, fmt.Sprintf("how long to simulate after the fault ends (the horizon for the backlog to drain), 0 to %v", maxAfter))
	fs.BoolVar(&cfg.Sessions, "sessions", cfg.Sessions, "when the fault starts, every client reopens a lost session, all in the same tick (true or false)")
	fs.IntVar(&opts.attempts, "attempts", opts.attempts, fmt.Sprintf("most calls per request, the same for every strategy, 1 to %d", sim.MaxAttempts))
	fs.StringVar(&opts.out, "out", "", "if set, write a per-second timeline of every strategy to `dir`/retrystorm.csv")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: retrystorm [flags]\n\nSimulates clients retrying through an outage and prints one row per retry strategy;\nthe last, full jitter + budget, is the one guarded by a retry budget.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nBesides each flag's range, clients × rate × (%v + fault + after) × attempts\nmust be at most %s calls, so that every run finishes within a minute or two.\n",
			cfg.FaultStart, textfmt.Group(sim.MaxWork))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, err
		}
		// The flag package has printed the error and the usage.
		return opts, errReported
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0))
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.Clients < 1 || cfg.Clients > sim.MaxClients {
		bad("-clients %d is outside [1, %d]", cfg.Clients, sim.MaxClients)
	}
	if cfg.Fault < 0 {
		bad("-fault %v is negative", cfg.Fault)
	} else if cfg.Fault > maxFault {
		bad("-fault %v is outside [0, %v]", cfg.Fault, maxFault)
	}
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
		bad("-rate %v is not a positive number of requests per second", cfg.Rate)
	} else if cfg.Rate > maxRate {
		bad("-rate %v is outside (0, %v]", cfg.Rate, maxRate)
	}
	if !(cfg.Capacity >= 1) || math.IsInf(cfg.Capacity, 0) {
		bad("-capacity %v is below 1: the server could not carry even normal load", cfg.Capacity)
	} else if cfg.Capacity > maxCapacity {
		bad("-capacity %v is outside [1, %v]", cfg.Capacity, maxCapacity)
	}
	if !(cfg.RefuseCost >= 0 && cfg.RefuseCost < 1) {
		bad("-refuse-cost %v is outside [0, 1)", cfg.RefuseCost)
	}
	if cfg.After < 0 {
		bad("-after %v is negative", cfg.After)
	} else if cfg.After > maxAfter {
		bad("-after %v is outside [0, %v]", cfg.After, maxAfter)
	}
	if opts.attempts < 1 {
		bad("-attempts %d is below 1", opts.attempts)
	} else if opts.attempts > sim.MaxAttempts {
		bad("-attempts %d is outside [1, %d]", opts.attempts, sim.MaxAttempts)
	}
	if err := errors.Join(errs...); err != nil {
		return opts, err
	}
	if w := sim.Work(*cfg, opts.attempts); w > sim.MaxWork {
		return opts, fmt.Errorf("clients × rate × (%v + fault + after) × attempts = %d × %v × %v × %d = %s calls, above %s: lower one of them",
			cfg.FaultStart, cfg.Clients, cfg.Rate, cfg.FaultStart+cfg.Fault+cfg.After, opts.attempts, textfmt.Group(int64(w)), textfmt.Group(sim.MaxWork))
	}
	return opts, nil
}

// report prints the scenario, the table and the legend.
func report(w io.Writer, cfg sim.Config, attempts int, results []sim.Result) {
	first := results[0] // every strategy sees the same arrivals
	normal := first.NormalLoad
	faultEnd := cfg.FaultStart + cfg.Fault

	fmt.Fprintf(w, "retrystorm: %s clients retry through a %s outage (seed %d, simulated time)\n\n",
		textfmt.Group(int64(cfg.Clients)), textfmt.Secs(cfg.Fault), cfg.Seed)
	var b strings.Builder
	fmt.Fprintf(&b, "%s clients each start %s requests a second (%s calls per %v tick is normal load). ",
		textfmt.Group(int64(cfg.Clients)), num(cfg.Rate), num(normal), cfg.Tick)
	if cfg.RefuseCost > 0 {
		fmt.Fprintf(&b, "The server can do %s× normal load, and refusing a call costs it %s of serving one: past %s× it serves fewer calls the more it gets, and none past %s×. ",
			num(cfg.Capacity), num(cfg.RefuseCost), num(cfg.Capacity), num(cfg.Capacity/cfg.RefuseCost))
	} else {
		fmt.Fprintf(&b, "The server can do %s× normal load, and refusing a call costs it nothing. ", num(cfg.Capacity))
	}
	if cfg.Fault > 0 {
		fmt.Fprintf(&b, "From %s to %s it refuses every call", textfmt.Secs(cfg.FaultStart), textfmt.Secs(faultEnd))
		if cfg.Sessions {
			fmt.Fprintf(&b, "; at %s every client also reopens a lost session, all in one tick (%s× normal load)",
				textfmt.Secs(cfg.FaultStart), num(1+float64(cfg.Clients)/normal))
		}
		b.WriteString(". ")
	} else {
		b.WriteString("There is no fault. ")
	}
	fmt.Fprintf(&b, "Every strategy makes at most %d calls per request. The run ends %s after the fault. ", attempts, textfmt.Secs(cfg.After))
	if g := guardedIndex(attempts); g >= 0 {
		fmt.Fprintf(&b, "The guarded strategy is %s: the only one whose retries must pass a retry budget (backoff.Budget), which sheds them to protect the dependency.", results[g].Strategy)
	}
	textfmt.Wrap(w, 80, b.String())
	fmt.Fprintln(w)

	// Right-aligned numbers; names padded to one width stay left-aligned.
	// Cells carry their own separating spaces, so the first column has no
	// padding on its left.
	width := len("strategy")
	for _, r := range results {
		width = max(width, len(r.Strategy))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 0, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\t  calls\t  peak load\t  calls in fault\t  failed requests\t  drain\t\n", width, "strategy")
	for _, r := range results {
		drain := "> " + textfmt.Secs(cfg.After)
		if r.Drained {
			drain = fmt.Sprintf("%.2fs", r.Drain.Seconds())
		}
		fmt.Fprintf(tw, "%-*s\t  %s\t  %.1f×\t  %s\t  %s\t  %s\t\n", width, r.Strategy,
			textfmt.Group(r.Calls), r.PeakLoad, textfmt.Group(r.FaultCalls), textfmt.Group(r.Failed), drain)
	}
	tw.Flush()
	fmt.Fprintln(w)

	fixed, exp := sim.Strategies(attempts)[1].Policy, sim.Strategies(attempts)[2].Policy
	b.Reset()
	fmt.Fprintf(&b, "immediate retries on the next tick; fixed 1s waits %s between calls (%s in all); exponential waits %s, doubling up to %s (%s in all); full jitter waits a random part of each of those (%s in all on average); + budget also drops the retries that the client's backoff.Budget refuses (it allows %s of the client's requests plus %s a second). ",
		textfmt.Secs(fixed.Envelope(1)), textfmt.Secs(totalWait(fixed, attempts)), textfmt.Secs(exp.Envelope(1)), textfmt.Secs(exp.Envelope(math.MaxInt)),
		textfmt.Secs(totalWait(exp, attempts)), textfmt.Secs(totalWait(exp, attempts)/2),
		percent(backoff.DefaultBudgetRatio), num(backoff.DefaultMinRetriesPerSecond))
	b.WriteString("Calls: every call, retries included. Peak load: the busiest tick ÷ normal load. ")
	if cfg.Fault > 0 {
		fmt.Fprintf(&b, "Calls in fault: all refused; %s were first calls, which no strategy can avoid. ", textfmt.Group(first.FaultRequests))
	}
	fmt.Fprintf(&b, "Failed requests: gave up, of %s. ", textfmt.Group(first.Requests))
	level := fmt.Sprintf("at most %s requests wait to retry", textfmt.Group(first.DrainLevel))
	for _, r := range results {
		if r.DrainLevel != first.DrainLevel {
			// Before the fault, overload made some strategies retry.
			level = "no more requests wait to retry than the most that did before it (or 1% of a second's requests, if more)"
			break
		}
	}
	fmt.Fprintf(&b, "Drain: from the fault's end until %s, for good (> %s: not within the run). ", level, textfmt.Secs(cfg.After))
	b.WriteString("A drain longer than a strategy's waits in all means the storm made requests fail after the fault was over. ")
	b.WriteString(guardedVerdict(results, attempts))
	textfmt.Wrap(w, 80, b.String())
}

// guardedIndex returns the index in sim.Strategies(attempts) of the
// strategy with a retry budget, or -1.
func guardedIndex(attempts int) int {
	for i, s := range sim.Strategies(attempts) {
		if s.Budget != nil {
			return i
		}
	}
	return -1
}

// guardedVerdict says, from the results, what the guarded strategy's
// budget did: how many requests it failed against the others, and the load
// it kept off the dependency compared to the same backoff without a budget
// and to the busiest strategy.
func guardedVerdict(results []sim.Result, attempts int) string {
	g := guardedIndex(attempts)
	if g < 0 {
		return ""
	}
	guarded := results[g]
	strategies := sim.Strategies(attempts)
	twin, busiest := -1, -1
	mostFailed := true
	for i, r := range results {
		if i == g {
			continue
		}
		if strategies[i].Policy == strategies[g].Policy {
			twin = i
		}
		if busiest < 0 || r.Calls > results[busiest].Calls {
			busiest = i
		}
		if r.Failed >= guarded.Failed {
			mostFailed = false
		}
	}
	var b strings.Builder
	if mostFailed {
		fmt.Fprintf(&b, "The guarded strategy, %s, failed the most requests (%s) on purpose: its budget refused retries rather than send them to a dependency that was refusing calls. ",
			guarded.Strategy, textfmt.Group(guarded.Failed))
	} else {
		fmt.Fprintf(&b, "The guarded strategy, %s, failed %s requests, not the most: its budget refused few retries here. ", guarded.Strategy, textfmt.Group(guarded.Failed))
	}
	kept := func(o sim.Result) {
		d := o.Calls - guarded.Calls
		switch {
		case d > 0:
			fmt.Fprintf(&b, "%s fewer calls than %s (%.0f%% less load on the dependency, peak %.1f× against %.1f×)",
				textfmt.Group(d), o.Strategy, 100*float64(d)/float64(o.Calls), guarded.PeakLoad, o.PeakLoad)
		case d < 0:
			fmt.Fprintf(&b, "%s more calls than %s (peak %.1f× against %.1f×)", textfmt.Group(-d), o.Strategy, guarded.PeakLoad, o.PeakLoad)
		default:
			fmt.Fprintf(&b, "as many calls as %s", o.Strategy)
		}
	}
	b.WriteString("It made ")
	if twin >= 0 {
		kept(results[twin])
		if busiest != twin {
			b.WriteString(" and ")
			kept(results[busiest])
		}
	} else {
		kept(results[busiest])
	}
	b.WriteString(".")
	return b.String()
}

// totalWait is the sum of the envelope delays before calls 2 to attempts of
// p: the longest a request can spend waiting.
func totalWait(p backoff.Policy, attempts int) time.Duration {
	var d time.Duration
	for n := 1; n < attempts; n++ {
		d += p.Envelope(n)
	}
	return d
}

// writeTimeline writes one row per strategy and simulated second to
// dir/retrystorm.csv and returns the file's path.
func writeTimeline(dir string, cfg sim.Config, results []sim.Result) (path string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path = filepath.Join(dir, "retrystorm.csv")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := csv.NewWriter(f)
	w.Write([]string{"strategy", "second", "calls", "served", "refused", "peak_backlog", "in_fault"})
	for _, r := range results {
		for i, s := range r.Timeline {
			at := time.Duration(i) * time.Second
			inFault := at >= cfg.FaultStart && at < cfg.FaultStart+cfg.Fault
			w.Write([]string{r.Strategy, strconv.Itoa(i),
				strconv.FormatInt(s.Calls, 10), strconv.FormatInt(s.Served, 10),
				strconv.FormatInt(s.Refused, 10), strconv.FormatInt(s.PeakBacklog, 10),
				strconv.FormatBool(inFault)})
		}
	}
	w.Flush()
	return path, w.Error()
}

// num formats x briefly: integers with commas, others with up to two
// decimals.
func num(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return textfmt.Group(int64(x))
	}
	return strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64)
}

func percent(x float64) string { return num(x*100) + "%" }
