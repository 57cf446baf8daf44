// Command leasestorm reproduces the congestive collapse of EC2's
// DropletWorkflow Manager (DWFM) in October 2025, and its prevention with
// lease.Recovery, side by side, as a timeline of leased droplets.
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
// The simulation is deterministic (a seeded PCG, a simulated clock, no
// goroutines): the same flags print the same bytes.
//
// Usage:
//
//	go run ./leasestorm [-droplets N] [-workers N] [-cost D] [flags]
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

	"github.com/stormguard/stormguard/examples/internal/textfmt"
	"github.com/stormguard/stormguard/internal/leasesim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// maxDroplets bounds -droplets, so that a typo cannot ask for a run that
// takes an hour.
const maxDroplets = 2_000_000

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
	naive := leasesim.RunNaive(s)
	rec, prog, err := leasesim.RunRecovery(s)
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
	fs.IntVar(&s.Workers, "workers", s.Workers, "attempts that can run at once, at least 1")
	fs.DurationVar(&s.Cost, "cost", s.Cost, "mean time to establish a lease (each attempt ±20%)")
	fs.DurationVar(&s.RenewCost, "renew-cost", s.RenewCost, "mean time to renew a lease")
	fs.DurationVar(&s.TTL, "ttl", s.TTL, "lease term; leases are renewed after half of it")
	fs.DurationVar(&s.Timeout, "timeout", s.Timeout, "an establishment fails if it has not finished this long after it was queued")
	fs.Float64Var(&mult, "horizon", mult, "how long to simulate, in multiples of the ideal time N·cost/workers (1 to 100)")
	fs.Uint64Var(&s.Seed, "seed", s.Seed, "random `seed` of the attempt costs; the same seed prints the same output")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: leasestorm [flags]\n\nSimulates re-establishing lapsed leases with a naive FIFO scheduler and with lease.Recovery.\n\nFlags:")
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
	if s.Cost <= 0 {
		bad("-cost %v is not positive", s.Cost)
	}
	if s.RenewCost <= 0 {
		bad("-renew-cost %v is not positive", s.RenewCost)
	}
	if s.TTL <= 0 || s.TTL > time.Hour {
		bad("-ttl %v is outside (0, 1h]", s.TTL)
	}
	if s.Timeout <= 0 || (s.TTL > 0 && s.Timeout > s.TTL) {
		bad("-timeout %v is outside (0, -ttl]", s.Timeout)
	} else if s.Cost > 0 && s.Timeout <= s.Cost {
		bad("-timeout %v is not above -cost %v: no attempt could ever finish", s.Timeout, s.Cost)
	}
	if !(mult >= 1 && mult <= 100) {
		bad("-horizon %v is outside [1, 100]", mult)
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
	fmt.Fprintf(&b, "Establishing a lease takes about %v and renewing one %v (±20%%); leases last %v and are renewed after half of it; an establishment fails if it has not finished %v after it was queued. The ideal time, N·cost/workers, is %v, longer than the lease term: ",
		s.Cost, s.RenewCost, s.TTL, s.Timeout, ideal)
	if ideal > s.TTL {
		b.WriteString("the first leases need renewing before the last are established. ")
	} else {
		b.WriteString("no — it is shorter here, so there is no storm to see. ")
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
	b.WriteString("Ok and timed out count the attempts (establishments and renewals) that finished since the previous row; pending counts droplets recovery has still to establish. Naive's workers never idle: after the first attempts, every one of them waited in the queue longer than its timeout.")
	textfmt.Wrap(w, 80, b.String())
}

// progressLike is the part of lease.Progress the report prints.
type progressLike struct {
	Lapsed, Wasted int64
}

func pct(n, of int) string {
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 1, 64) + "%"
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
