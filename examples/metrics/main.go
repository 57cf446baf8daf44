// Command metrics serves the OpenTelemetry metrics of a small stormguard
// workload on a Prometheus endpoint, through contrib/otel (from examples/):
//
//	$ go run ./metrics -seconds 60
//	$ curl -s http://127.0.0.1:9464/metrics | grep stormguard_
//
// The workload is a handful of clients calling through a shed.Queue, a
// shed.Partition with one key per zone, a backoff.Budget for retries and
// per-host backoff.Breakers; the host behind zone az3 fails every call, so
// its breaker opens, its retries drain the budget, and the series show it.
// The program listens on a loopback address only (-addr, default
// 127.0.0.1:9464; port 0 picks a free one), prints the URL, and stops after
// -seconds (1 to 3600) or on interrupt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/stormguard/stormguard/backoff"
	stormotel "github.com/stormguard/stormguard/contrib/otel"
	"github.com/stormguard/stormguard/shed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Bounds of -seconds.
const (
	minSeconds = 1
	maxSeconds = 3600
)

// zones are the Partition's keys; hosts the Breakers' keys, one per zone.
var (
	zones = []string{"az1", "az2", "az3"}
	hosts = []string{"host-az1", "host-az2", "host-az3"}
)

// run is the whole command; it returns the exit status: 0, 1 when the
// endpoint cannot be served, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9464", "loopback `address` to serve /metrics on (port 0: any free port)")
	seconds := fs.Int("seconds", 30, fmt.Sprintf("how long to run the workload and serve, in seconds (%d to %d)", minSeconds, maxSeconds))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "metrics: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *seconds < minSeconds || *seconds > maxSeconds {
		fmt.Fprintf(stderr, "metrics: -seconds %d is outside [%d, %d]\n", *seconds, minSeconds, maxSeconds)
		return 2
	}
	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintf(stderr, "metrics: %v\n", err)
		return 2
	}
	if err := serve(ctx, *addr, time.Duration(*seconds)*time.Second, stdout); err != nil {
		fmt.Fprintf(stderr, "metrics: %v\n", err)
		return 1
	}
	return 0
}

// checkLoopback refuses an address whose host is not a loopback IP.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: host %q is not a loopback IP (such as 127.0.0.1)", addr, host)
	}
	return nil
}

// workload is the primitives the clients call through.
type workload struct {
	queue     *shed.Queue
	partition *shed.Partition[string]
	budget    *backoff.Budget
	breakers  *backoff.Breakers[string]
}

func newWorkload() (*workload, error) {
	q, err := shed.NewQueue(shed.QueueConfig{Workers: 4, MaxQueue: 8, MaxWait: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: 6, PerKey: 2})
	if err != nil {
		return nil, err
	}
	b, err := backoff.NewBudget(backoff.BudgetConfig{})
	if err != nil {
		return nil, err
	}
	bs, err := backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: backoff.BreakerConfig{
		WindowCalls: 20, MinCalls: 5, FailureRate: 0.5, OpenWait: 500 * time.Millisecond}})
	if err != nil {
		return nil, err
	}
	return &workload{q, p, b, bs}, nil
}

var errHostDown = errors.New("host down")

// call is one request of a client in zone z: through the queue, the
// zone's partition key, the host's breaker, and one retry under the
// budget if the host failed.
func (w *workload) call(ctx context.Context, z int, r *rand.Rand) {
	w.budget.Deposit()
	if err := w.queue.Acquire(ctx, shed.Priority(r.IntN(3))); err != nil {
		return
	}
	defer w.queue.Release()
	if !w.partition.TryAcquire(zones[z]) {
		return
	}
	defer w.partition.Release(zones[z])
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 && !w.budget.Withdraw() {
			return
		}
		t, err := w.breakers.Allow(hosts[z])
		if err != nil {
			return
		}
		var res error
		if z == 2 {
			res = errHostDown // the host behind az3 is down
		}
		w.breakers.Record(t, res)
		if res == nil {
			return
		}
	}
}

// serve registers the workload's metrics, serves them on addr, and runs
// the workload for d or until ctx is done.
func serve(ctx context.Context, addr string, d time.Duration, stdout io.Writer) error {
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer provider.Shutdown(context.Background())
	m, err := stormotel.New(provider)
	if err != nil {
		return err
	}
	defer m.Close()
	w, err := newWorkload()
	if err != nil {
		return err
	}
	if _, err := m.RegisterQueue("api", w.queue); err != nil {
		return err
	}
	if _, err := stormotel.RegisterPartition(m, "zones", w.partition, zones); err != nil {
		return err
	}
	if _, err := m.RegisterBudget("retries", w.budget); err != nil {
		return err
	}
	if _, err := stormotel.RegisterBreakers(m, "hosts", w.breakers, hosts); err != nil {
		return err
	}

	// One round of every zone before serving, so the first scrape has
	// every series.
	r := rand.New(rand.NewPCG(1, 2))
	for z := range zones {
		w.call(ctx, z, r)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "serving metrics on http://%s/metrics for %v\n", ln.Addr(), d)

	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for c := range 9 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 7))
			tick := time.NewTicker(time.Duration(5+c) * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					w.call(ctx, c%len(zones), r)
				}
			}
		})
	}
	wg.Wait()
	shutdown, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	err = srv.Shutdown(shutdown)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
