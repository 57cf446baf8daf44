// Command azisolation reproduces the 2011 EBS control-plane failure on a real
// HTTP service on loopback, and shows it contained.
//
// Run it from the examples directory:
//
//	$ go run ./azisolation
//
// A small control-plane service answers /az/{zone}/describe for three
// Availability Zones. Each request calls into its zone's backend. Midway,
// one zone's backend becomes slow (its calls hang for seconds). A built-in
// load generator drives all three zones at a steady rate, and the run is
// made twice:
//
//   - "2011": one regional pool shared by all zones, with long timeouts —
//     the design that let calls into the sick zone fill the pool and fail
//     the API in every zone;
//   - "guarded": a shed.Partition (each zone capped at a share of the pool),
//     short call timeouts, and a shed.Queue that sheds work which waited too
//     long or cannot meet its deadline.
//
// It prints, per run and zone, the success rate and the p50/p99 latency seen
// by clients, the request rate the load generator achieved beside the one
// asked for, and a verdict per zone computed from those numbers with the
// thresholds it states. Traffic goes only to 127.0.0.1; the load is bounded
// in count and time (the largest flags run for about 95 s).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/stormguard/stormguard/shed"
)

var zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

const (
	defaultFast       = 5 * time.Millisecond
	defaultClientWait = time.Second
)

// Flag ranges. The largest values are sized so that a run (two designs
// of at most maxDuration each, plus the client timeout to drain) finishes
// well within two minutes.
const (
	minDuration  = 100 * time.Millisecond
	maxDuration  = 45 * time.Second
	maxRate      = 2000
	minSickDelay = time.Millisecond
	maxSickDelay = time.Minute
	maxPool      = 10000
)

type config struct {
	duration   time.Duration // load per run
	rate       int           // requests per second per zone
	sickAfter  time.Duration // when the sick zone turns slow
	sickDelay  time.Duration // how long its backend calls take then
	fast       time.Duration // a healthy backend call
	pool       int           // regional worker pool
	clientWait time.Duration // client timeout per request
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
	if c.sickDelay < minSickDelay || c.sickDelay > maxSickDelay {
		errs = append(errs, fmt.Errorf("-sick-delay %v must be in [%v, %v]", c.sickDelay, minSickDelay, maxSickDelay))
	}
	if c.pool < 1 || c.pool > maxPool {
		errs = append(errs, fmt.Errorf("-pool %d must be in [1, %d]", c.pool, maxPool))
	}
	return errors.Join(errs...)
}

// backend simulates one zone's storage API: fast, until the zone is sick.
type backend struct {
	fast, slow time.Duration
	sickAt     time.Time
	sick       bool
}

func (b backend) call(ctx context.Context) error {
	d := b.fast
	if b.sick && time.Now().After(b.sickAt) {
		d = b.slow
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// admission is what the service puts between a request and its backend.
type admission interface {
	do(ctx context.Context, zone string, fn func(context.Context) error) error
}

// shared is the 2011 design: one pool for every zone, long timeouts.
type shared struct {
	pool    *shed.Bulkhead
	timeout time.Duration
}

func (s shared) do(ctx context.Context, _ string, fn func(context.Context) error) error {
	return s.pool.Do(ctx, func(ctx context.Context) error {
		// As in 2011, a worker that has called into a zone is stuck there
		// until the call's own long timeout, whether or not the client
		// still waits for the answer.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		return fn(ctx)
	})
}

// guarded caps each zone's share of the pool and sheds early.
type guarded struct {
	zones *shed.Partition[string]
	queue *shed.Queue
}

func (g guarded) do(ctx context.Context, zone string, fn func(context.Context) error) error {
	return g.zones.Do(ctx, zone, func(ctx context.Context) error {
		return g.queue.Do(ctx, shed.Normal, fn)
	})
}

func newService(adm admission, backends map[string]backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /az/{zone}/describe", func(w http.ResponseWriter, r *http.Request) {
		zone := r.PathValue("zone")
		be, ok := backends[zone]
		if !ok {
			http.Error(w, "unknown zone", http.StatusNotFound)
			return
		}
		err := adm.do(r.Context(), zone, be.call)
		switch {
		case err == nil:
			io.WriteString(w, "ok\n")
		case errors.Is(err, shed.ErrShed):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
		}
	})
	return mux
}

type result struct {
	zone    string
	ok      bool
	latency time.Duration
}

// target is how many requests a zone gets in a run: rate × duration.
func target(rate int, duration time.Duration) int {
	return int(int64(rate) * int64(duration) / int64(time.Second))
}

// dueBy is how many of a zone's requests should have been sent elapsed
// into a run: one at the start, then one every 1/rate, never more than
// target. A generator that sends dueBy on every wake-up catches up after a
// stall instead of dropping the requests it missed (as a time.Ticker does).
func dueBy(elapsed time.Duration, rate int, duration time.Duration) int {
	total := target(rate, duration)
	if elapsed < 0 {
		return min(1, total)
	}
	elapsed = min(elapsed, duration)
	return min(total, int(int64(rate)*int64(elapsed)/int64(time.Second))+1)
}

// loadStats is what a run's generator measured about itself.
type loadStats struct {
	sent     int           // requests sent, over all zones
	lastSend time.Duration // when the last one actually began, from the start
}

// achieved is the per-zone rate the generator reached: requests sent per
// zone over the time it took until the last one actually began (at least
// the run's duration), so a generator whose request goroutines wait for
// CPU shows a shortfall even if it spawned them on schedule.
func (l loadStats) achieved(duration time.Duration) float64 {
	return float64(l.sent) / float64(len(zones)) / max(duration, l.lastSend).Seconds()
}

// load drives every zone at cfg.rate for cfg.duration and returns every
// request's outcome and what it achieved.
func load(url string, cfg config) ([]result, loadStats) {
	client := &http.Client{
		Timeout:   cfg.clientWait,
		Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 1024},
	}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var out []result
	var stats loadStats
	var wg, gen sync.WaitGroup
	total := target(cfg.rate, cfg.duration)
	interval := time.Second / time.Duration(cfg.rate)
	start := time.Now()
	for _, zone := range zones {
		gen.Add(1)
		go func() {
			defer gen.Done()
			sent := 0
			for sent < total {
				due := dueBy(time.Since(start), cfg.rate, cfg.duration)
				for ; sent < due; sent++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						t0 := time.Now()
						resp, err := client.Get(url + "/az/" + zone + "/describe")
						ok := err == nil && resp.StatusCode == http.StatusOK
						if err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
						mu.Lock()
						out = append(out, result{zone, ok, time.Since(t0)})
						stats.lastSend = max(stats.lastSend, t0.Sub(start))
						mu.Unlock()
					}()
				}
				if sent < total {
					time.Sleep(time.Until(start.Add(time.Duration(sent) * interval)))
				}
			}
			mu.Lock()
			stats.sent += sent
			mu.Unlock()
		}()
	}
	gen.Wait()
	wg.Wait()
	return out, stats
}

func runDesign(adm admission, cfg config) ([]result, loadStats, error) {
	start := time.Now()
	backends := map[string]backend{}
	for i, z := range zones {
		backends[z] = backend{fast: cfg.fast, slow: cfg.sickDelay, sickAt: start.Add(cfg.sickAfter), sick: i == 0}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, loadStats{}, err
	}
	srv := &http.Server{Handler: newService(adm, backends), ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	out, stats := load("http://"+ln.Addr().String(), cfg)
	return out, stats, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// Verdict thresholds. A healthy zone is "unaffected" only if at least
// unaffectedSuccess of its requests succeed and its p99 is at most
// unaffectedP99 (20 healthy backend calls); "degraded" if at least
// degradedSuccess succeed; otherwise "failed".
const (
	unaffectedSuccess = 0.99
	unaffectedP99     = 20 * defaultFast
	degradedSuccess   = 0.90
)

// zoneStats summarizes one zone's requests in one run.
type zoneStats struct {
	zone     string
	n, ok    int
	p50, p99 time.Duration
}

func (z zoneStats) success() float64 { return float64(z.ok) / float64(max(z.n, 1)) }

// verdict is the word for z's outcome, from the thresholds above.
func (z zoneStats) verdict() string {
	switch {
	case z.n == 0:
		return "no requests"
	case z.success() >= unaffectedSuccess && z.p99 <= unaffectedP99:
		return "unaffected"
	case z.success() >= degradedSuccess:
		return "degraded"
	default:
		return "failed"
	}
}

func stats(results []result) []zoneStats {
	var all []zoneStats
	for _, z := range zones {
		s := zoneStats{zone: z}
		var lat []time.Duration
		for _, r := range results {
			if r.zone != z {
				continue
			}
			s.n++
			if r.ok {
				s.ok++
			}
			lat = append(lat, r.latency)
		}
		slices.Sort(lat)
		s.p50, s.p99 = percentile(lat, 0.5), percentile(lat, 0.99)
		all = append(all, s)
	}
	return all
}

func role(zone string) string {
	if zone == zones[0] {
		return "sick"
	}
	return "healthy"
}

func report(w io.Writer, name string, all []zoneStats) {
	for _, s := range all {
		fmt.Fprintf(w, "%s\t%s (%s)\t%d\t%.1f%%\t%v\t%v\n", name, s.zone, role(s.zone), s.n, 100*s.success(),
			s.p50.Round(100*time.Microsecond), s.p99.Round(100*time.Microsecond))
	}
}

// summarize prints one sentence per zone of a design, each computed from
// that zone's numbers.
func summarize(w io.Writer, name string, all []zoneStats) {
	for _, s := range all {
		fmt.Fprintf(w, "%s, %s zone %s: %.1f%% of %d requests succeeded, p99 %v: %s.\n",
			name, role(s.zone), s.zone, 100*s.success(), s.n, s.p99.Round(100*time.Microsecond), s.verdict())
	}
}

// worstHealthy is the lowest success rate among the healthy zones.
func worstHealthy(all []zoneStats) float64 {
	worst := 1.0
	for _, s := range all[1:] {
		worst = min(worst, s.success())
	}
	return worst
}

// rateLine prints the achieved per-zone rate beside the stated one, with a
// warning when the generator reached less than 95% of it.
func rateLine(stated int, achieved float64) string {
	frac := achieved / float64(stated)
	line := fmt.Sprintf("load: asked %d req/s per zone, sent %.0f req/s (%.1f%%)", stated, achieved, 100*frac)
	if frac < 0.95 {
		line += "; WARNING: this machine could not send the stated rate, so the run measured a lighter load"
	}
	return line
}

// starvedLine says, when some zone's p99 is more than 1.5 times the client
// timeout (which caps each request), that the latencies include the load
// generator's own wait for CPU; it is empty otherwise.
func starvedLine(all []zoneStats, clientWait time.Duration) string {
	worst := zoneStats{}
	for _, s := range all {
		if s.p99 > worst.p99 {
			worst = s
		}
	}
	if 2*worst.p99 <= 3*clientWait {
		return ""
	}
	return fmt.Sprintf("latencies: %s's p99 %v is over 1.5 times the %v client timeout, so the load generator was short of CPU and these latencies include its own wait",
		worst.zone, worst.p99.Round(time.Millisecond), clientWait)
}

// progress reports on a terminal, once a run has taken 2 seconds, how far
// the demo is.
type progress struct {
	w     io.Writer
	on    bool
	start time.Time
	total time.Duration
	stop  chan struct{}
	done  chan struct{}
}

func newProgress(w io.Writer, total time.Duration) *progress {
	p := &progress{w: w, start: time.Now(), total: total, stop: make(chan struct{}), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.done)
	if !p.on {
		<-p.stop
		return
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	drawn := false
	for {
		select {
		case <-p.stop:
			if drawn {
				fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 60))
			}
			return
		case <-tick.C:
			el := time.Since(p.start)
			if el < 2*time.Second {
				continue
			}
			fmt.Fprintf(p.w, "\rrunning: %v of about %v", el.Round(time.Second), p.total)
			drawn = true
		}
	}
}

func (p *progress) finish() {
	close(p.stop)
	<-p.done
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("azisolation", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{fast: defaultFast, clientWait: defaultClientWait}
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, fmt.Sprintf("load per run (two runs), in [%v, %v]", minDuration, maxDuration))
	fs.IntVar(&cfg.rate, "rate", 100, fmt.Sprintf("requests per second per zone, in [1, %d]", maxRate))
	fs.DurationVar(&cfg.sickAfter, "sick-after", 500*time.Millisecond, "when us-east-1a turns slow, in [0, -duration)")
	fs.DurationVar(&cfg.sickDelay, "sick-delay", 5*time.Second, fmt.Sprintf("how long its backend calls take then, in [%v, %v]", minSickDelay, maxSickDelay))
	fs.IntVar(&cfg.pool, "pool", 32, fmt.Sprintf("regional worker pool size, in [1, %d]", maxPool))
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
	bar := newProgress(stderr, 2*(cfg.duration+cfg.clientWait))
	_, _, err = compare(stdout, stderr, cfg)
	bar.finish()
	if err != nil {
		fmt.Fprintln(stderr, "azisolation:", err)
		return 1
	}
	return 0
}

// successRate returns the fraction of zone's requests that succeeded.
func successRate(results []result, zone string) float64 {
	n, ok := 0, 0
	for _, r := range results {
		if r.zone == zone {
			n++
			if r.ok {
				ok++
			}
		}
	}
	return float64(ok) / float64(max(n, 1))
}

// compare runs both designs and prints the table and the verdicts; it
// returns each run's results. A shortfall of the load generator is also
// warned about on stderr.
func compare(out, stderr io.Writer, cfg config) (naive, safe []result, err error) {
	fmt.Fprintf(out, "azisolation: a control plane for 3 zones on loopback, %d req/s per zone for %v; us-east-1a's backend\n", cfg.rate, cfg.duration)
	fmt.Fprintf(out, "turns slow (%v per call) after %v. Regional pool: %d workers. Clients time out after %v.\n\n", cfg.sickDelay, cfg.sickAfter, cfg.pool, cfg.clientWait)

	pool, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: cfg.pool, MaxQueue: 100_000, MaxWait: time.Minute})
	if err != nil {
		return nil, nil, err
	}
	naive, naiveLoad, err := runDesign(shared{pool: pool, timeout: time.Minute}, cfg)
	if err != nil {
		return nil, nil, err
	}

	zonesPart, err := shed.NewPartition(shed.PartitionConfig[string]{
		Total:          cfg.pool,
		Share:          0.4,
		MaxQueuePerKey: cfg.pool,
		MaxWait:        50 * time.Millisecond,
		CallTimeout:    100 * time.Millisecond,
	})
	if err != nil {
		return nil, nil, err
	}
	queue, err := shed.NewQueue(shed.QueueConfig{Workers: cfg.pool, MaxQueue: 4 * cfg.pool})
	if err != nil {
		return nil, nil, err
	}
	safe, safeLoad, err := runDesign(guarded{zones: zonesPart, queue: queue}, cfg)
	if err != nil {
		return nil, nil, err
	}

	const naiveName, safeName = "2011: shared pool, long timeouts", "guarded: Partition + short timeouts + Queue"
	naiveStats, safeStats := stats(naive), stats(safe)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "design\tzone\trequests\tsuccess\tp50\tp99")
	report(tw, naiveName, naiveStats)
	report(tw, safeName, safeStats)
	if err := tw.Flush(); err != nil {
		return nil, nil, err
	}
	fmt.Fprintln(out)
	for _, l := range []struct {
		name string
		st   loadStats
	}{{"2011", naiveLoad}, {"guarded", safeLoad}} {
		line := rateLine(cfg.rate, l.st.achieved(cfg.duration))
		fmt.Fprintf(out, "%s %s.\n", l.name, line)
		if strings.Contains(line, "WARNING") {
			fmt.Fprintf(stderr, "azisolation: %s %s\n", l.name, line)
		}
	}
	for _, d := range []struct {
		name string
		st   []zoneStats
	}{{"2011", naiveStats}, {"guarded", safeStats}} {
		if line := starvedLine(d.st, cfg.clientWait); line != "" {
			fmt.Fprintf(out, "%s %s.\n", d.name, line)
		}
	}
	fmt.Fprintf(out, "\nVerdicts: \"unaffected\" = success >= %.0f%% and p99 <= %v; \"degraded\" = success >= %.0f%%; else \"failed\".\n",
		100*unaffectedSuccess, unaffectedP99, 100*degradedSuccess)
	summarize(out, "2011", naiveStats)
	summarize(out, "guarded", safeStats)
	before, after := worstHealthy(naiveStats), worstHealthy(safeStats)
	switch {
	case after > before:
		fmt.Fprintf(out, "The guarded design raised the worst healthy zone's success from %.1f%% to %.1f%%.\n", 100*before, 100*after)
	case after < before:
		fmt.Fprintf(out, "The guarded design lowered the worst healthy zone's success from %.1f%% to %.1f%%.\n", 100*before, 100*after)
	default:
		fmt.Fprintf(out, "The worst healthy zone's success was %.1f%% in both designs.\n", 100*after)
	}
	return naive, safe, nil
}
