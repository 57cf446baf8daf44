package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/backoff/backoffhttp"
)

type result struct {
	zone    int
	sent    time.Duration // from the start of the run
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

// Client retries: through backoffhttp, a failed GET is retried at most
// clientAttempts-1 times, after jittered waits from clientRetryBase, and
// only while a budget shared by the run's clients allows (retries at most
// 10% of requests, plus one a second), never past the client's timeout.
// No breaker: the three zones share one host, and a breaker per host would
// fail the healthy zones with the sick one.
const (
	clientAttempts  = 3
	clientRetryBase = 20 * time.Millisecond
)

// newClient is the load generator's HTTP client: one per run, with the
// client timeout on every request.
func newClient(cfg config) (*http.Client, error) {
	budget, err := backoff.NewBudget(backoff.BudgetConfig{})
	if err != nil {
		return nil, err
	}
	rt, err := backoffhttp.New(backoffhttp.Config{
		Base:   &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 1024},
		Policy: backoff.Policy{Base: clientRetryBase, MaxAttempts: clientAttempts},
		Budget: budget,
	})
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: cfg.clientWait, Transport: rt}, nil
}

// load drives every zone at cfg.rate for cfg.duration and returns every
// request's outcome and what it achieved.
func load(client *http.Client, url string, cfg config, start time.Time) ([]result, loadStats) {
	var mu sync.Mutex
	var out []result
	var stats loadStats
	var wg, gen sync.WaitGroup
	total := target(cfg.rate, cfg.duration)
	interval := time.Second / time.Duration(cfg.rate)
	for zi, zone := range zones {
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
						out = append(out, result{zi, t0.Sub(start), ok, time.Since(t0)})
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

// event is something that happened to a zone during a run.
type event struct {
	at   time.Duration
	zone int
	what string
}

const (
	evSick      = "turned sick"
	evPaused    = "paused by the operator"
	evRecovered = "backend recovered"
	evResumed   = "resumed by the operator"
)

// Operator rule: every checkEvery, the operator health-checks each zone's
// backend directly (outside the service's pool) with a deadline of the
// call-timeout ceiling. checksToAct consecutive failed checks pause the
// zone; as many consecutive passed checks resume it.
const (
	checkEvery  = 250 * time.Millisecond
	checksToAct = 2
)

// operate runs the operator on d until ctx ends, recording what it does.
func operate(ctx context.Context, d design, backends []*backend, deadline time.Duration, start time.Time, record func(event), checked func(zone int, ok bool)) {
	var wg sync.WaitGroup
	for i, be := range backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paused := false
			streak := 0 // consecutive checks disagreeing with the zone's state
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(checkEvery):
				}
				cctx, cancel := context.WithTimeout(ctx, deadline)
				err := be.call(cctx)
				cancel()
				if ctx.Err() != nil {
					return
				}
				checked(i, err == nil)
				if (err != nil) != paused {
					streak++
				} else {
					streak = 0
				}
				if streak < checksToAct {
					continue
				}
				streak = 0
				paused = !paused
				if paused {
					d.pause(i)
					record(event{time.Since(start), i, evPaused})
				} else {
					d.resume(i)
					record(event{time.Since(start), i, evResumed})
				}
			}
		}()
	}
	wg.Wait()
}

// sampleEvery is how often a run samples each zone's backend calls in
// flight, limit and call timeout.
const sampleEvery = 50 * time.Millisecond

// sample is the per-second maximum of what a run sampled for one zone,
// and the least limit sampled in that second: a limit that fell to its
// floor and grew back within the second shows only there.
type sample struct {
	inFlight int
	limit    int
	lowLimit int // 0 if the zone had no limit (was not tracked) in any sampling
	timeout  time.Duration
}

// add records one sampling.
func (s *sample) add(inFlight, limit int, timeout time.Duration) {
	s.inFlight = max(s.inFlight, inFlight)
	s.limit = max(s.limit, limit)
	if limit > 0 && (s.lowLimit == 0 || limit < s.lowLimit) {
		s.lowLimit = limit
	}
	s.timeout = max(s.timeout, timeout)
}

// run is what one design's run produced.
type run struct {
	results []result
	load    loadStats
	events  []event
	samples [][]sample // [second][zone]
	// checks and failedChecks count the operator's health checks of the
	// sick zone, and those that failed.
	checks, failedChecks int
}

// runDesign serves d on loopback and drives it with the load, the sick
// zone's schedule and the operator.
func runDesign(d design, cfg config) (*run, error) {
	start := time.Now()
	backends := make([]*backend, len(zones))
	for i := range zones {
		backends[i] = newBackend(cfg.fast, cfg.sickDelay, cfg.seed, i)
	}
	backends[0].sickFrom = start.Add(cfg.sickAfter)
	backends[0].sickUntil = start.Add(cfg.sickAfter + cfg.sickFor)
	inFlight := make([]atomic.Int64, len(zones))

	h, err := d.handler(backends, inFlight)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	r := &run{samples: make([][]sample, seconds(cfg.duration))}
	for i := range r.samples {
		r.samples[i] = make([]sample, len(zones))
	}
	var mu sync.Mutex
	record := func(e event) {
		mu.Lock()
		r.events = append(r.events, e)
		mu.Unlock()
	}
	record(event{cfg.sickAfter, 0, evSick})
	if cfg.sickAfter+cfg.sickFor < cfg.duration {
		record(event{cfg.sickAfter + cfg.sickFor, 0, evRecovered})
	}

	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		operate(ctx, d, backends, ceiling(cfg.clientWait), start, record, func(zone int, ok bool) {
			if zone != 0 {
				return
			}
			mu.Lock()
			r.checks++
			if !ok {
				r.failedChecks++
			}
			mu.Unlock()
		})
	}()
	go func() {
		defer bg.Done()
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s := int(time.Since(start) / time.Second)
			if s >= len(r.samples) {
				continue
			}
			for i := range zones {
				limit, timeout := d.learned(i)
				r.samples[s][i].add(int(inFlight[i].Load()), limit, timeout)
			}
		}
	}()

	client, err := newClient(cfg)
	if err != nil {
		cancel()
		bg.Wait()
		return nil, err
	}
	r.results, r.load = load(client, "http://"+ln.Addr().String(), cfg, start)
	client.CloseIdleConnections()
	cancel()
	bg.Wait()
	mu.Lock()
	defer mu.Unlock()
	slicesSortEvents(r.events)
	return r, nil
}

// seconds is the number of whole or partial seconds in d.
func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
