// Command leasestorm reproduces the congestive collapse of EC2's
// DropletWorkflow Manager (DWFM) in October 2025, and its prevention with
// lease.Recovery, side by side, as a timeline of leased droplets.
//
// Run it from the examples directory:
//
//	$ go run ./leasestorm
//
// When DynamoDB came back after its DNS outage, DWFM tried to re-establish
// the leases of every droplet at once. With so many droplets, each attempt
// waited longer than its own timeout, failed, and was queued again: the
// workers stayed busy and leased nothing. The naive scheduler here does
// exactly that (one FIFO queue, every attempt started when it reaches the
// front, timed-out attempts queued again at the back, renewals at the back
// too). The recovery scheduler is the library's lease.Recovery: bounded
// in-flight work, intake throttled by the queue, renewals before new
// establishments, and no attempt started that cannot finish before its
// deadline given the measured cost.
//
// It is the small, step-by-step view of one link of the October 2025
// cascade; go run ./dynamodb2025 shows the whole cascade, from the DNS
// race to the network's recovery.
//
// The simulation is deterministic (a seeded PCG, a simulated clock, no
// goroutines): the same flags print the same bytes.
//
// Usage:
//
//	$ go run ./leasestorm [-droplets N] [-workers N] [-cost D] [flags]
//
// Run with -h for every flag.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stormguard/stormguard/examples/internal/progress"
	"github.com/stormguard/stormguard/examples/internal/textfmt"
	"github.com/stormguard/stormguard/internal/leasesim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// The bounds of the flags that set how much there is to simulate. The work
// grows with droplets × horizon × cost/renew-cost (and faster than
// linearly in droplets); at these bounds, with renew-cost at cost/10, a run
// took up to 30 s on a loaded 2-core machine (50,000 droplets took 120 s).
const (
	maxDroplets   = 30_000
	maxHorizon    = 10
	maxRenewRatio = 10 // cost/renew-cost
	maxCost       = time.Minute
	maxTTL        = time.Hour
)

func defaultScenario() leasesim.Scenario {
	return leasesim.Scenario{
		Droplets: 10_000, Workers: 10,
		Cost: 10 * time.Millisecond, RenewCost: time.Millisecond,
		TTL: 5 * time.Second, Timeout: 2 * time.Second,
		Seed: 1,
	}
}

var errReported = errors.New("error already reported")

// run is the whole command; it returns the exit status: 0, or 2 for bad
// flags.
func run(args []string, stdout, stderr io.Writer) int {
	s, mult, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "leasestorm: %v\n", err)
		fmt.Fprintln(stderr, "run 'leasestorm -h' for the flags")
		return 2
	}
	ideal := s.Ideal()
	s.Step = ideal / 10
	s.Horizon = time.Duration(mult * float64(ideal))
	p := progress.StartTicker(stderr, "leasestorm: simulating the ", 64)
	p.Phase("naive scheduler")
	naive := leasesim.RunNaive(s)
	p.Phase("lease.Recovery")
	rec, prog, err := leasesim.RunRecovery(s)
	p.Stop()
	if err != nil {
		fmt.Fprintf(stderr, "leasestorm: %v\n", err)
		return 2
	}
	report(stdout, s, mult, naive, rec, progressLike{Lapsed: prog.Lapsed, Wasted: prog.Wasted})
	return 0
}

// parseFlags parses args and checks every value, naming the flag.
func parseFlags(args []string, stderr io.Writer) (leasesim.Scenario, float64, error) {
	s := defaultScenario()
	mult := 10.0
	fs := flag.NewFlagSet("leasestorm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&s.Droplets, "droplets", s.Droplets, fmt.Sprintf("droplets whose leases lapsed, 1 to %d", maxDroplets))
	fs.IntVar(&s.Workers, "workers", s.Workers, "attempts that can run at once, 1 to -droplets")
	fs.DurationVar(&s.Cost, "cost", s.Cost, fmt.Sprintf("mean time to establish a lease (each attempt ±20%%), above 0 up to %v", maxCost))
	fs.DurationVar(&s.RenewCost, "renew-cost", s.RenewCost, fmt.Sprintf("mean time to renew a lease, -cost/%d to -cost", maxRenewRatio))
	fs.DurationVar(&s.TTL, "ttl", s.TTL, fmt.Sprintf("lease term, -timeout to %v; leases are renewed after half of it", maxTTL))
	fs.DurationVar(&s.Timeout, "timeout", s.Timeout, "an establishment fails if it has not finished this long after it was queued; above -cost, at most -ttl")
	fs.Float64Var(&mult, "horizon", mult, fmt.Sprintf("how long to simulate, in multiples of the ideal time N·cost/workers, 1 to %d", maxHorizon))
	fs.Uint64Var(&s.Seed, "seed", s.Seed, "random `seed` of the attempt costs, 0 to 2^64-1; the same seed prints the same output")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: leasestorm [flags]\n\nSimulates re-establishing lapsed leases with a naive FIFO scheduler and with lease.Recovery:\nthe small, step-by-step view of one link of the October 2025 cascade.\nThe whole cascade: go run ./dynamodb2025\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, mult, err
		}
		return s, mult, errReported
	}
	if fs.NArg() > 0 {
		return s, mult, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0))
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Droplets < 1 || s.Droplets > maxDroplets {
		bad("-droplets %d is outside [1, %d]", s.Droplets, maxDroplets)
	}
	if s.Workers < 1 || s.Workers > s.Droplets {
		bad("-workers %d is outside [1, -droplets]", s.Workers)
	}
	if s.Cost <= 0 || s.Cost > maxCost {
		bad("-cost %v is outside (0, %v]", s.Cost, maxCost)
	}
	if s.RenewCost <= 0 {
		bad("-renew-cost %v is not positive", s.RenewCost)
	} else if s.Cost > 0 && (s.RenewCost > s.Cost || s.RenewCost < s.Cost/maxRenewRatio) {
		bad("-renew-cost %v is outside [-cost/%d, -cost] = [%v, %v]: the work to simulate grows with cost/renew-cost", s.RenewCost, maxRenewRatio, s.Cost/maxRenewRatio, s.Cost)
	}
	if s.TTL <= 0 || s.TTL > maxTTL {
		bad("-ttl %v is outside (0, %v]", s.TTL, maxTTL)
	}
	if s.Timeout <= 0 || (s.TTL > 0 && s.Timeout > s.TTL) {
		bad("-timeout %v is outside (0, -ttl]", s.Timeout)
	} else if s.Cost > 0 && s.Timeout <= s.Cost {
		bad("-timeout %v is not above -cost %v: no attempt could ever finish", s.Timeout, s.Cost)
	}
	if !(mult >= 1 && mult <= maxHorizon) {
		bad("-horizon %v is outside [1, %d]", mult, maxHorizon)
	}
	if err := errors.Join(errs...); err != nil {
		return s, mult, err
	}
	if s.Ideal() < 10*time.Millisecond {
		return s, mult, fmt.Errorf("the ideal time N·cost/workers is %v: too short to show a timeline (more -droplets or fewer -workers)", s.Ideal())
	}
	return s, mult, nil
}

// report prints the scenario, the timelines side by side and the outcome.
func report(w io.Writer, s leasesim.Scenario, mult float64, naive, rec []leasesim.Sample, prog progressLike) {
	ideal := s.Ideal()
	fmt.Fprintf(w, "leasestorm: %s droplet leases lapsed at once, re-established by %d workers (seed %d, simulated time)\n\n",
		textfmt.Group(int64(s.Droplets)), s.Workers, s.Seed)
	var b strings.Builder
	b.WriteString("This is the small, step-by-step view of one link of the October 2025 cascade, the droplet leases of EC2; go run ./dynamodb2025 shows the whole cascade. ")
	fmt.Fprintf(&b, "Establishing a lease takes about %v and renewing one %v (±20%%); leases last %v and are renewed after half of it; an establishment fails if it has not finished %v after it was queued. The ideal time, N·cost/workers, is %v, ",
		s.Cost, s.RenewCost, s.TTL, s.Timeout, ideal)
	if ideal > s.TTL {
		b.WriteString("longer than the lease term: the first leases need renewing before the last are established. ")
	} else {
		b.WriteString("no longer than the lease term: every lease can be established before the first needs renewing, so there need be no storm. ")
	}
	b.WriteString("Naive: one FIFO queue, every attempt started when it reaches the front, a timed-out attempt queued again at the back, renewals at the back too (DWFM, 2025). Recovery: lease.Recovery, with renewals first, intake throttled by the queue, and no attempt started that cannot finish in time.")
	textfmt.Wrap(w, 80, b.String())
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 0, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "t\t  naive leased\t  ok\t  timed out\t  recovery leased\t  ok\t  timed out\t  pending\t\n")
	// A row per tenth of the ideal time up to twice it, then one per ideal
	// time; ok and timed out are summed over the rows left out.
	var nOK, nWasted, rOK, rWasted int64
	for i, n := range naive {
		nOK, nWasted = nOK+n.OK, nWasted+n.Wasted
		if i < len(rec) {
			rOK, rWasted = rOK+rec[i].OK, rWasted+rec[i].Wasted
		}
		if i > 20 && i%10 != 0 && i != len(naive)-1 {
			continue
		}
		r := "-\t  -\t  -\t  -"
		if i < len(rec) {
			x := rec[i]
			r = fmt.Sprintf("%s\t  %s\t  %s\t  %s", pct(x.Leased, s.Droplets), textfmt.Group(rOK), textfmt.Group(rWasted), textfmt.Group(int64(x.Pending)))
		}
		fmt.Fprintf(tw, "%s\t  %s\t  %s\t  %s\t  %s\t\n", textfmt.Secs(n.At), pct(n.Leased, s.Droplets), textfmt.Group(nOK), textfmt.Group(nWasted), r)
		nOK, nWasted, rOK, rWasted = 0, 0, 0, 0
	}
	tw.Flush()
	fmt.Fprintln(w)

	at := func(ss []leasesim.Sample, d time.Duration) int {
		v := 0
		for _, x := range ss {
			if x.At <= d {
				v = x.Leased
			}
		}
		return v
	}
	full := time.Duration(-1)
	for _, x := range rec {
		if x.Leased == s.Droplets {
			full = x.At
			break
		}
	}
	b.Reset()
	fmt.Fprintf(&b, "After %s× the ideal time (%s) naive has %s of droplets leased; recovery has %s after 1.5× (%s)",
		num(mult), textfmt.Secs(time.Duration(mult*float64(ideal))), pct(at(naive, time.Duration(mult*float64(ideal))), s.Droplets),
		pct(at(rec, ideal*3/2), s.Droplets), textfmt.Secs(ideal*3/2))
	if full >= 0 {
		fmt.Fprintf(&b, " and all of them by %s", textfmt.Secs(full))
	}
	fmt.Fprintf(&b, ", with %s leases lapsed and %s attempts timed out. ", textfmt.Group(prog.Lapsed), textfmt.Group(prog.Wasted))
	b.WriteString("Ok and timed out count the attempts (establishments and renewals) that finished since the previous row; pending counts droplets recovery has still to establish. ")
	b.WriteString(verdict(s, mult, naive, rec))
	textfmt.Wrap(w, 80, b.String())
}

// verdict compares the two schedulers from their numbers: the share of
// naive's finished attempts that timed out, and who had more droplets
// leased at the end.
func verdict(s leasesim.Scenario, mult float64, naive, rec []leasesim.Sample) string {
	var ok, wasted int64
	for _, x := range naive {
		ok, wasted = ok+x.OK, wasted+x.Wasted
	}
	end := time.Duration(mult * float64(s.Ideal()))
	n, r := leasesim.LeasedAt(naive, s.Droplets, end), leasesim.LeasedAt(rec, s.Droplets, end)
	var b strings.Builder
	if ok+wasted > 0 {
		fmt.Fprintf(&b, "Of naive's %s finished attempts, %s timed out. ",
			textfmt.Group(ok+wasted), strconv.FormatFloat(100*float64(wasted)/float64(ok+wasted), 'f', 1, 64)+"%")
	}
	switch {
	case r > n:
		fmt.Fprintf(&b, "At the end recovery had %.1f percentage points more of the droplets leased than naive.", 100*(r-n))
	case r < n:
		fmt.Fprintf(&b, "At the end naive had %.1f percentage points more of the droplets leased than recovery.", 100*(n-r))
	default:
		b.WriteString("At the end both had the same share of the droplets leased: there was no storm for recovery to prevent.")
	}
	return b.String()
}

// progressLike is the part of lease.Progress the report prints.
type progressLike struct {
	Lapsed, Wasted int64
}

func pct(n, of int) string {
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 1, 64) + "%"
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
