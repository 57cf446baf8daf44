// Command dnsfleet runs the DNS part of the DynamoDB outage of October
// 2025 on real processes: a real etcd holds the plans, a real BIND serves
// the records, and a planner and three enactors run as separate
// processes (this binary, re-executed with a role), as in us-east-1.
// A prober resolves the regional endpoint against BIND over UDP many
// times a second, as clients do.
//
// Run it from the examples directory:
//
//	$ go run ./dnsfleet
//
// In the same run it injects every fault: enactor C is killed with
// SIGKILL in the middle of a pass (and restarted later); enactor A stalls
// after reading its plan and before writing the regional endpoint, and
// resumes only once enactor B has applied a plan more than -retention
// generations newer and is about to clean up; the planner is killed and
// restarted; etcd is stopped and started again on the same data and
// ports. In dnsplan mode, while the planner is down, an operator also
// damages the regional endpoint by hand (adds an address no plan names,
// leaving its generation), and the run waits until an enactor repairs it
// before it restarts the planner.
//
//   - -enactors 2025: enactors written the 2025 way — check once, before
//     the pass, that the plan is newer than the applied one, then write;
//     clean-up deletes plans more than -retention generations older than
//     the one applied, and deleting a plan removes the records of every
//     endpoint it is live on; an enactor that finds an endpoint's live
//     plan missing cannot build its transaction and stops. A's write
//     rolls the regional endpoint back, B's clean-up deletes the plan it
//     is now on, and BIND answers the regional name with no address until
//     the run ends.
//   - -enactors dnsplan: dnsplan.Enactor, with contrib/rfc2136 writing
//     to BIND (every write conditioned on the generation read, checked by
//     BIND in the update's transaction) and clean-up that never deletes a
//     plan an endpoint may serve.
//
// In both modes the plans live in contrib/etcd's PlanStore, the planner
// takes each generation from the store's sequencer (so a restarted
// planner publishes above every plan before it), and the enactors watch
// the store for new plans; only the enactors differ.
//
// With -enactors both (the default) it runs one after the other, each on
// its own etcd and BIND. It prints a timeline — one line per second with
// the prober's counts, and a line for each fault and each notable event —
// and a summary for each; -json prints the same as JSON.
//
// etcd (Debian package etcd-server) and named (package bind9) must be on
// PATH or at /usr/bin/etcd and /usr/sbin/named ($ETCD_BIN and $NAMED_BIN
// override). Every process the run starts is in a process group of its
// own and dies with the run: it is stopped at the end, on an error and on
// Ctrl-C, and the kernel kills it (Pdeathsig) if the run itself is
// killed.
//
// Usage:
//
//	$ go run ./dnsfleet [-enactors 2025|dnsplan|both] [-seconds S] [-qps Q] [-plan-every D] [-retention N] [-down D] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stormguard/stormguard/examples/internal/textfmt"
)

func main() {
	if raw, ok := os.LookupEnv(childEnv); ok {
		os.Exit(runChild(raw))
	}
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the run's flags.
type config struct {
	enactors  string
	seconds   int
	qps       int
	planEvery time.Duration
	retention int
	down      time.Duration
	json      bool
}

// Ranges of the flags.
const (
	minSeconds, maxSeconds     = 15, 300
	minQPS, maxQPS             = 10, 1000
	minPlanEvery, maxPlanEvery = 50 * time.Millisecond, 2 * time.Second
	minRetention, maxRetention = 1, 20
	minDown, maxDown           = 500 * time.Millisecond, 30 * time.Second
)

// errFlag is what every invalid flag matches.
var errFlag = errors.New("invalid flag")

func (c config) validate() error {
	var errs []error
	if c.enactors != "2025" && c.enactors != "dnsplan" && c.enactors != "both" {
		errs = append(errs, fmt.Errorf("%w: -enactors %q is not 2025, dnsplan or both", errFlag, c.enactors))
	}
	errs = append(errs,
		textfmt.OutOfRange(errFlag, "-seconds", c.seconds, minSeconds, maxSeconds),
		textfmt.OutOfRange(errFlag, "-qps", c.qps, minQPS, maxQPS),
		textfmt.OutOfRange(errFlag, "-retention", c.retention, minRetention, maxRetention))
	if c.planEvery < minPlanEvery || c.planEvery > maxPlanEvery {
		errs = append(errs, fmt.Errorf("%w: -plan-every %v is outside [%v, %v]", errFlag, c.planEvery, minPlanEvery, maxPlanEvery))
	}
	if c.down < minDown || c.down > maxDown {
		errs = append(errs, fmt.Errorf("%w: -down %v is outside [%v, %v]", errFlag, c.down, minDown, maxDown))
	}
	return errors.Join(errs...)
}

// cli runs the fleet and returns the exit status.
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dnsfleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.enactors, "enactors", "both", "which enactors: 2025 (check once, then write), dnsplan (dnsplan.Enactor) or both, one run after the other")
	fs.IntVar(&cfg.seconds, "seconds", 30, fmt.Sprintf("length of each run in seconds, at least until the faults are done and 2s after [%d, %d]", minSeconds, maxSeconds))
	fs.IntVar(&cfg.qps, "qps", 100, fmt.Sprintf("queries a second the prober sends for the regional endpoint's addresses, each followed by one for its generation [%d, %d]", minQPS, maxQPS))
	fs.DurationVar(&cfg.planEvery, "plan-every", 200*time.Millisecond, fmt.Sprintf("how often the planner publishes a plan [%v, %v]", minPlanEvery, maxPlanEvery))
	fs.IntVar(&cfg.retention, "retention", 5, fmt.Sprintf("clean-up deletes plans more than this many generations older than the one applied; A stays stalled until B applies a plan this much newer plus one [%d, %d]", minRetention, maxRetention))
	fs.DurationVar(&cfg.down, "down", 2*time.Second, fmt.Sprintf("how long the killed planner and the stopped etcd stay down (in dnsplan mode the planner also until the operator's damage is repaired) [%v, %v]", minDown, maxDown))
	fs.BoolVar(&cfg.json, "json", false, "print the results as JSON instead of the timeline and summary")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: dnsfleet [-enactors 2025|dnsplan|both] [-seconds S] [-qps Q] [-plan-every D] [-retention N] [-down D] [-json]

The DNS race of the DynamoDB outage of October 2025 on real processes: a
real etcd, a real BIND (named), a planner and three enactors as separate
processes, and a prober resolving the regional endpoint over UDP. Faults:
enactor C SIGKILLed mid-pass, enactor A stalled between reading and writing
while B applies newer plans and cleans up, the planner SIGKILLed and
restarted, etcd stopped and started; in dnsplan mode, an operator's damage
to the regional endpoint, repaired. Needs etcd (Debian: etcd-server) and
named (Debian: bind9) on PATH.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnsfleet: unexpected argument %q: dnsfleet takes flags only (dnsfleet -h)\n", fs.Arg(0))
		return 2
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "dnsfleet: %v (dnsfleet -h)\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	modes := []string{cfg.enactors}
	if cfg.enactors == "both" {
		modes = []string{"2025", "dnsplan"}
	}
	var results []*result
	for _, mode := range modes {
		r, err := runMode(ctx, cfg, mode, stderr)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stderr, "dnsfleet: interrupted; every process the run started is stopped\n")
				return 130
			}
			fmt.Fprintf(stderr, "dnsfleet: %s mode: %v\n", mode, err)
			return 1
		}
		results = append(results, r)
		if !cfg.json {
			r.print(stdout)
			fmt.Fprintln(stdout)
		}
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"runs": results}); err != nil {
			fmt.Fprintf(stderr, "dnsfleet: %v\n", err)
			return 1
		}
	}
	return 0
}

// runMode runs the fleet in one mode and stops every process it started
// before it returns, whatever happened.
func runMode(ctx context.Context, cfg config, mode string, stderr io.Writer) (res *result, err error) {
	dir, err := os.MkdirTemp("", "dnsfleet-"+mode+"-")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	f := &fleet{cfg: cfg, mode: mode, dir: dir, ps: &procs{pidTo: stderr}, start: start}
	f.status = func(s string) {
		fmt.Fprintf(stderr, "dnsfleet %s %5.1fs: %s\n", mode, time.Since(start).Seconds(), s)
	}
	defer func() {
		f.mu.Lock()
		f.stopping = true
		f.mu.Unlock()
		if f.prober != nil {
			f.prober.stop()
		}
		for _, m := range f.members {
			if m.stdin != nil {
				m.stdin.Close()
			}
		}
		if serr := f.ps.stopAll(); serr != nil && err == nil {
			err = serr
		}
		for _, m := range f.members {
			m.wg.Wait()
		}
		if logs, _ := os.ReadDir(dir); err != nil && ctx.Err() == nil && len(logs) > 0 {
			fmt.Fprintf(stderr, "dnsfleet: the logs of this run are in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	if err := f.run(ctx); err != nil {
		return nil, err
	}
	return f.result(), nil
}
