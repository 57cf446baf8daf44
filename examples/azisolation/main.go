// Command azisolation reproduces the 2011 EBS control-plane failure on a real
// HTTP service on loopback, and shows it contained.
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
// by clients. Traffic goes only to 127.0.0.1; the load is bounded in count
// and time.
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
	if c.duration <= 0 || c.duration > time.Minute {
		errs = append(errs, fmt.Errorf("-duration %v must be in (0, 1m]", c.duration))
	}
	if c.rate <= 0 || c.rate > 2000 {
		errs = append(errs, fmt.Errorf("-rate %d must be in [1, 2000] requests per second per zone", c.rate))
	}
	if c.sickAfter < 0 || c.sickAfter >= c.duration {
		errs = append(errs, fmt.Errorf("-sick-after %v must be in [0, -duration)", c.sickAfter))
	}
	if c.sickDelay <= 0 {
		errs = append(errs, fmt.Errorf("-sick-delay %v must be positive", c.sickDelay))
	}
	if c.pool <= 0 || c.pool > 10000 {
		errs = append(errs, fmt.Errorf("-pool %d must be in [1, 10000]", c.pool))
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

// load drives every zone at cfg.rate for cfg.duration and returns every
// request's outcome.
func load(url string, cfg config) []result {
	client := &http.Client{
		Timeout:   cfg.clientWait,
		Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 1024},
	}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var out []result
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(cfg.rate)
	deadline := time.Now().Add(cfg.duration)
	for _, zone := range zones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for now := range tick.C {
				if now.After(deadline) {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					resp, err := client.Get(url + "/az/" + zone + "/describe")
					ok := err == nil && resp.StatusCode == http.StatusOK
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					mu.Lock()
					out = append(out, result{zone, ok, time.Since(start)})
					mu.Unlock()
				}()
			}
		}()
	}
	wg.Wait()
	return out
}

func run(adm admission, cfg config) ([]result, error) {
	start := time.Now()
	backends := map[string]backend{}
	for i, z := range zones {
		backends[z] = backend{fast: cfg.fast, slow: cfg.sickDelay, sickAt: start.Add(cfg.sickAfter), sick: i == 0}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: newService(adm, backends), ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	return load("http://"+ln.Addr().String(), cfg), nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func report(w io.Writer, name string, results []result) {
	for _, z := range zones {
		var lat []time.Duration
		n, ok := 0, 0
		for _, r := range results {
			if r.zone != z {
				continue
			}
			n++
			if r.ok {
				ok++
			}
			lat = append(lat, r.latency)
		}
		slices.Sort(lat)
		role := "healthy"
		if z == zones[0] {
			role = "sick"
		}
		fmt.Fprintf(w, "%s\t%s (%s)\t%d\t%.1f%%\t%v\t%v\n", name, z, role, n, 100*float64(ok)/float64(max(n, 1)),
			percentile(lat, 0.5).Round(100*time.Microsecond), percentile(lat, 0.99).Round(100*time.Microsecond))
	}
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "load per run")
	flag.IntVar(&cfg.rate, "rate", 100, "requests per second per zone")
	flag.DurationVar(&cfg.sickAfter, "sick-after", 500*time.Millisecond, "when us-east-1a turns slow")
	flag.DurationVar(&cfg.sickDelay, "sick-delay", 5*time.Second, "how long its backend calls take then")
	flag.IntVar(&cfg.pool, "pool", 32, "regional worker pool size")
	flag.Parse()
	cfg.fast = defaultFast
	cfg.clientWait = defaultClientWait
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "azisolation:", err)
		os.Exit(2)
	}
	if err := demo(os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "azisolation:", err)
		os.Exit(1)
	}
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

func demo(out io.Writer, cfg config) error {
	_, _, err := compare(out, cfg)
	return err
}

// compare runs both designs and prints the table; it returns each run's
// results.
func compare(out io.Writer, cfg config) (naive, safe []result, err error) {
	fmt.Fprintf(out, "azisolation: a control plane for 3 zones on loopback, %d req/s per zone for %v; us-east-1a's backend\n", cfg.rate, cfg.duration)
	fmt.Fprintf(out, "turns slow (%v per call) after %v. Regional pool: %d workers. Clients time out after %v.\n\n", cfg.sickDelay, cfg.sickAfter, cfg.pool, cfg.clientWait)

	pool, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: cfg.pool, MaxQueue: 100_000, MaxWait: time.Minute})
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(out, "running the 2011 design for %v ...\n", cfg.duration)
	naive, err = run(shared{pool: pool, timeout: time.Minute}, cfg)
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
	fmt.Fprintf(out, "running the guarded design for %v ...\n\n", cfg.duration)
	safe, err = run(guarded{zones: zonesPart, queue: queue}, cfg)
	if err != nil {
		return nil, nil, err
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "design\tzone\trequests\tsuccess\tp50\tp99")
	report(tw, "2011: shared pool, long timeouts", naive)
	report(tw, "guarded: Partition + short timeouts + Queue", safe)
	if err := tw.Flush(); err != nil {
		return nil, nil, err
	}
	fmt.Fprintln(out, "\nIn the 2011 design the sick zone's hung calls hold the whole pool, so healthy zones time out too.")
	fmt.Fprintln(out, "Guarded, the sick zone holds at most its share and is refused fast; the healthy zones are unaffected.")
	return naive, safe, nil
}
