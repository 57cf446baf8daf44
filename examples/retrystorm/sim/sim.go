// Package sim is the deterministic retry-storm simulator behind the
// retrystorm demo. It drives the pure core of package backoff
// (Policy.Delay, Budget.Deposit and Budget.WithdrawAt) on a simulated
// clock. Run the demo's strategies on a scenario and compare them:
//
//	cfg := sim.DefaultConfig() // one seed, one result
//	cfg.Clients = 200
//	cfg.Fault = 3 * time.Second
//	results, err := sim.Run(cfg, sim.Strategies(sim.DefaultMaxAttempts))
//	if err != nil {
//		log.Fatal(err)
//	}
//	for _, r := range results {
//		fmt.Printf("%-21s peak load %4.1fx, drained %v\n", r.Strategy, r.PeakLoad, r.Drained)
//	}
//
// The model, in full:
//
//   - Time advances in fixed ticks (Config.Tick, 10ms in the demo); nothing
//     sleeps and nothing runs concurrently. All randomness comes from PCG
//     generators seeded with Config.Seed, so one seed gives one result.
//   - Each of Config.Clients clients starts new requests as a Poisson
//     process of Config.Rate per second, whatever became of its earlier ones
//     (an open loop), so the normal load is known: Clients·Rate·Tick calls
//     per tick. Every strategy sees exactly the same arrivals.
//   - A call takes one tick. Per tick the server has Config.Capacity times
//     the normal load in units of work. Serving a call costs one unit;
//     refusing one still costs Config.RefuseCost of a unit (accepting the
//     connection, parsing the request, answering with an error). Of A calls
//     in a tick it serves s, chosen at random, such that
//     s + RefuseCost·(A−s) = capacity: past capacity, the more calls arrive
//     the fewer are served, and none are above capacity/RefuseCost times the
//     normal load. This falling goodput is what lets a retry storm outlive
//     the fault that caused it.
//   - From Config.FaultStart, for Config.Fault, the server refuses every
//     call. If Config.Sessions is set, at that moment every client also
//     loses a piece of state it holds on the server (a session, a lease, an
//     EBS node's mirror) and opens one request to restore it, all in the same
//     tick: the correlated burst that both outages started with.
//   - A refused call is retried as its Strategy says: backoff.Policy.Delay,
//     with a fresh uniform draw, gives the wait after the call, rounded to
//     the nearest tick; the request gives up after Policy.MaxAttempts calls,
//     when the next call would start after Policy.MaxElapsed, or when its
//     client's backoff.Budget refuses the retry, checked in backoff.Retry's
//     order. Each client has its own Budget (one per process and
//     dependency); every request deposits into it once when it starts and
//     every retry withdraws once, at the simulated time of the failure.
//
// The backlog is the number of requests waiting to retry. The storm has
// drained when the backlog is back to its level before the fault (at least
// 1% of a second's normal requests, so that a stray refusal does not count)
// and stays there until the end of the run.
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// MaxClients bounds Config.Clients, so that a typo cannot start an
// hour-long run (100,000 clients took a minute and 1.2 GB).
const MaxClients = 10_000

// MaxAttempts bounds every strategy's Policy.MaxAttempts: the immediate
// strategy makes up to that many calls per request in a fault. A strategy
// with backoff.Unlimited attempts is accepted if its MaxElapsed bounds
// them; MaxWork then counts MaxElapsed/Tick+1 calls per request.
const MaxAttempts = 100

// MaxWork bounds the work of one run: the requests the clients start
// (Clients · Rate · (FaultStart+Fault+After)) times the most calls a
// request may make. At this bound a run took up to about 80 s on a loaded
// 2-core machine.
const MaxWork = 100_000_000

// Work is cfg's requests times maxAttempts, the quantity MaxWork bounds.
func Work(cfg Config, maxAttempts int) float64 {
	return float64(cfg.Clients) * cfg.Rate * (cfg.FaultStart + cfg.Fault + cfg.After).Seconds() * float64(maxAttempts)
}

// ErrInvalidConfig is matched (with errors.Is) by every error Run returns
// for a bad Config or Strategy.
var ErrInvalidConfig = errors.New("sim: invalid config")

// Config describes one scenario. Start from DefaultConfig; every field must
// be set (zero is a valid Seed, Fault, FaultStart, After and RefuseCost).
type Config struct {
	// Seed selects the random arrivals, jitter draws and choice of served
	// calls.
	Seed uint64
	// Clients is the number of clients, 1 to MaxClients.
	Clients int
	// Rate is each client's rate of new requests per second.
	Rate float64
	// Tick is the resolution of the simulated clock and the duration of a
	// call.
	Tick time.Duration
	// FaultStart is when the server starts failing every call.
	FaultStart time.Duration
	// Fault is how long it fails every call; zero means no fault.
	Fault time.Duration
	// After is how long the run continues after the fault ends: the horizon
	// for the backlog to drain.
	After time.Duration
	// Capacity is the work the server can do per tick, as a multiple of the
	// normal number of calls per tick (Clients·Rate·Tick).
	Capacity float64
	// RefuseCost is the work a refused call costs, as a fraction of a served
	// one, in [0, 1).
	RefuseCost float64
	// Sessions adds the correlated burst: when the fault starts, every
	// client opens one request to restore its session, in the same tick.
	Sessions bool
}

// DefaultConfig returns the demo's scenario: 1000 clients at 10 requests/s
// each, 10ms ticks, a 10s fault from 5s on, 60s more to drain, a server with
// twice the normal load's capacity for which refusing a call costs a fifth
// of serving one, and the session burst.
func DefaultConfig() Config {
	return Config{
		Seed:       1,
		Clients:    1000,
		Rate:       10,
		Tick:       10 * time.Millisecond,
		FaultStart: 5 * time.Second,
		Fault:      10 * time.Second,
		After:      60 * time.Second,
		Capacity:   2,
		RefuseCost: 0.2,
		Sessions:   true,
	}
}

// DefaultMaxAttempts is the bound on calls per request of the demo's
// strategies.
const DefaultMaxAttempts = 8

// maxTicks bounds the length of a run, so that its per-tick records stay
// small.
const maxTicks = 10_000_000

// validate reports every invalid field of c.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Clients < 1 || c.Clients > MaxClients {
		bad("clients %d is outside [1, %d]", c.Clients, MaxClients)
	}
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		bad("rate %v is not a positive finite number of requests per second", c.Rate)
	}
	if c.Tick <= 0 {
		bad("tick %v is not positive", c.Tick)
	}
	if c.FaultStart < 0 {
		bad("fault start %v is negative", c.FaultStart)
	}
	if c.Fault < 0 {
		bad("fault length %v is negative", c.Fault)
	}
	if c.After < 0 {
		bad("horizon after the fault %v is negative", c.After)
	}
	if !(c.Capacity >= 1) || math.IsInf(c.Capacity, 0) {
		bad("capacity %v is below 1× normal load (or not finite): the server could not carry normal traffic", c.Capacity)
	}
	if !(c.RefuseCost >= 0 && c.RefuseCost < 1) {
		bad("refuse cost %v is outside [0, 1)", c.RefuseCost)
	}
	if c.Tick > 0 && c.FaultStart >= 0 && c.Fault >= 0 && c.After >= 0 {
		total := c.FaultStart + c.Fault + c.After
		if total < 0 || total/c.Tick > maxTicks { // total < 0: the sum overflowed
			bad("run of %v+%v+%v is longer than %d ticks of %v", c.FaultStart, c.Fault, c.After, maxTicks, c.Tick)
		}
	}
	if c.Tick > 0 && c.Rate > 0 && c.Clients > 0 && float64(c.Clients)*c.Rate*c.Tick.Seconds() < 1 {
		bad("%d clients × %v requests/s make less than one call per tick of %v: too few for load to be measured", c.Clients, c.Rate, c.Tick)
	}
	return errors.Join(errs...)
}

// Strategy is one way of retrying failed calls.
type Strategy struct {
	// Name labels the strategy in results.
	Name string
	// Policy gives the delays and the bound on attempts.
	Policy backoff.Policy
	// Budget, if not nil, gives each client a retry budget with this
	// configuration.
	Budget *backoff.BudgetConfig
}

// Strategies returns the demo's five strategies, each allowed maxAttempts
// calls per request: retry on the next tick; retry every second; exponential
// backoff from 100ms, doubling, capped at 10s, without jitter; the same with
// full jitter (backoff.Policy's defaults); and full jitter with a
// default-configured backoff.Budget per client.
func Strategies(maxAttempts int) []Strategy {
	return []Strategy{
		// A zero Base means the default, so the shortest positive delay
		// stands for "no delay": the retry goes out on the next tick.
		{Name: "immediate", Policy: backoff.Policy{Base: time.Nanosecond, Cap: time.Nanosecond, Multiplier: 1, Jitter: backoff.JitterNone, MaxAttempts: maxAttempts}},
		{Name: "fixed 1s", Policy: backoff.Policy{Base: time.Second, Cap: time.Second, Multiplier: 1, Jitter: backoff.JitterNone, MaxAttempts: maxAttempts}},
		{Name: "exponential", Policy: backoff.Policy{Jitter: backoff.JitterNone, MaxAttempts: maxAttempts}},
		{Name: "full jitter", Policy: backoff.Policy{Jitter: backoff.JitterFull, MaxAttempts: maxAttempts}},
		{Name: "full jitter + budget", Policy: backoff.Policy{Jitter: backoff.JitterFull, MaxAttempts: maxAttempts}, Budget: &backoff.BudgetConfig{}},
	}
}

// Second is one second of a strategy's timeline.
type Second struct {
	// Calls, Served and Refused count the calls made in this second: every
	// call is either served or refused (a call during the fault is
	// refused).
	Calls, Served, Refused int64
	// PeakBacklog is the largest backlog at the end of a tick in this
	// second.
	PeakBacklog int64
}

// Result is what one strategy did in one scenario.
type Result struct {
	// Strategy is the strategy's name.
	Strategy string
	// Requests is how many requests clients started, session requests
	// included.
	Requests int64
	// FaultRequests is how many of them started while the server refused
	// every call: their first calls were wasted whatever the strategy.
	FaultRequests int64
	// Calls is every call made, first attempts and retries.
	Calls int64
	// FaultCalls is the calls made while the server failed everything:
	// every one of them was wasted.
	FaultCalls int64
	// Succeeded, Failed and Pending partition Requests: served, given up,
	// still waiting to retry when the run ended.
	Succeeded, Failed, Pending int64
	// NormalLoad is the mean number of calls per tick before the fault.
	NormalLoad float64
	// PeakLoad is the most calls in one tick, divided by NormalLoad.
	PeakLoad float64
	// DrainLevel is the backlog counted as drained: the highest backlog
	// before the fault, or 1% of a second's normal requests if that is
	// more.
	DrainLevel int64
	// Drained reports whether the backlog fell to DrainLevel after the
	// fault and stayed there until the end of the run; Drain is then the
	// time from the end of the fault until it did.
	Drained bool
	Drain   time.Duration // see Drained
	// Timeline has one entry per simulated second.
	Timeline []Second
}

// simEpoch is the simulated wall-clock time of tick 0, passed to
// Budget.WithdrawAt: 12:47 AM PDT on 21 April 2011, the EBS network change.
var simEpoch = time.Date(2011, 4, 21, 7, 47, 0, 0, time.UTC)

// Random streams: the arrivals share one stream across strategies, so every
// strategy sees the same traffic; each strategy has its own for the rest.
const (
	streamArrivals = 0x61727269766c73 // "arrivls"
	streamStrategy = 0x7374726174     // "strat", plus the strategy's index
)

// Run simulates every strategy in the scenario cfg and returns one Result
// per strategy, in order. It returns an error matching ErrInvalidConfig,
// naming every bad field, if cfg or a strategy is invalid. Run is
// deterministic: the same arguments give the same results.
func Run(cfg Config, strategies []Strategy) ([]Result, error) {
	return RunWithProgress(cfg, strategies, nil)
}

// RunWithProgress is Run that, if progress is not nil, calls it before
// each strategy is simulated with the strategy's index, and once more with
// len(strategies) when all are done. It returns what Run returns.
func RunWithProgress(cfg Config, strategies []Strategy, progress func(next int)) ([]Result, error) {
	errs := []error{cfg.validate()}
	if len(strategies) == 0 {
		errs = append(errs, fmt.Errorf("%w: no strategies", ErrInvalidConfig))
	}
	most := 0
	for _, s := range strategies {
		n := s.Policy.MaxAttempts
		if n == 0 {
			n = backoff.DefaultMaxAttempts
		}
		switch {
		case n < 0 && s.Policy.MaxElapsed > 0 && cfg.Tick > 0:
			// backoff.Unlimited, bounded by time: a call takes a tick.
			n = int(min(s.Policy.MaxElapsed/cfg.Tick, MaxWork)) + 1
		case n > MaxAttempts || n < 0:
			errs = append(errs, fmt.Errorf("%w: strategy %q: MaxAttempts %d is outside [1, %d] (0 is backoff's default, %d; backoff.Unlimited needs a MaxElapsed)",
				ErrInvalidConfig, s.Name, s.Policy.MaxAttempts, MaxAttempts, backoff.DefaultMaxAttempts))
		}
		most = max(most, n)
		if err := s.Policy.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%w: strategy %q: %w", ErrInvalidConfig, s.Name, err))
		}
		if s.Budget != nil {
			if _, err := backoff.NewBudget(*s.Budget); err != nil {
				errs = append(errs, fmt.Errorf("%w: strategy %q: %w", ErrInvalidConfig, s.Name, err))
			}
		}
	}
	if w := Work(cfg, most); w > MaxWork {
		errs = append(errs, fmt.Errorf("%w: %d clients × %v requests/s × %v × %d calls per request is %.3g calls, above %d: the run would take too long",
			ErrInvalidConfig, cfg.Clients, cfg.Rate, cfg.FaultStart+cfg.Fault+cfg.After, most, w, int64(MaxWork)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]Result, len(strategies))
	for i, s := range strategies {
		if progress != nil {
			progress(i)
		}
		out[i] = newRun(cfg, s, i).simulate()
	}
	if progress != nil {
		progress(len(strategies))
	}
	return out, nil
}

// request is one request in flight. Slots of finished requests are reused.
type request struct {
	client  int32
	attempt int32         // calls made so far
	start   int32         // tick of the first call
	prev    time.Duration // the last delay, for JitterDecorrelated
}

// run is the state of one strategy's simulation.
type run struct {
	cfg      Config
	strategy Strategy

	ticks, faultFrom, faultTo int
	capacity                  float64 // units of work per tick

	arrivals *rand.Rand
	rng      *rand.Rand

	// nextArrival[t%len] lists the clients whose next request starts at
	// tick t: a calendar of one pending arrival per client, at nextAt
	// seconds.
	nextArrival [][]int32
	nextAt      []float64
	tickSeconds float64
	// due[t%len] lists the requests whose next call is at tick t.
	due     [][]int32
	budgets []*backoff.Budget

	reqs []request
	free []int32

	backlog  int64 // requests waiting to retry
	load     []int32
	backlogs []int32
	res      Result
}

func newRun(cfg Config, s Strategy, index int) *run {
	r := &run{
		cfg:       cfg,
		strategy:  s,
		ticks:     int((cfg.FaultStart + cfg.Fault + cfg.After) / cfg.Tick),
		faultFrom: int(cfg.FaultStart / cfg.Tick),
		faultTo:   int((cfg.FaultStart + cfg.Fault) / cfg.Tick),
		arrivals:  rand.New(rand.NewPCG(cfg.Seed, streamArrivals)),
		rng:       rand.New(rand.NewPCG(cfg.Seed, streamStrategy+uint64(index))),
		res:       Result{Strategy: s.Name},
	}
	r.res.NormalLoad = float64(cfg.Clients) * cfg.Rate * cfg.Tick.Seconds()
	r.capacity = cfg.Capacity * r.res.NormalLoad
	// The retry calendar is a ring longer than the longest wait, which never
	// exceeds the policy's Cap. The arrivals calendar spans arrivalRing mean
	// inter-arrival times; longer waits are filed again when they come round.
	r.due = make([][]int32, int(s.Policy.MaxDelay()/cfg.Tick)+3)
	r.tickSeconds = cfg.Tick.Seconds()
	r.nextArrival = make([][]int32, min(int(arrivalRing/cfg.Rate/r.tickSeconds), r.ticks)+2)
	r.nextAt = make([]float64, cfg.Clients)
	r.load = make([]int32, r.ticks)
	r.backlogs = make([]int32, r.ticks)
	if s.Budget != nil {
		r.budgets = make([]*backoff.Budget, cfg.Clients)
		for i := range r.budgets {
			r.budgets[i], _ = backoff.NewBudget(*s.Budget) // validated by Run
		}
	}
	for c := range cfg.Clients {
		r.nextAt[c] = r.arrivals.ExpFloat64() / cfg.Rate
		r.scheduleArrival(int32(c), 0)
	}
	return r
}

// arrivalRing is the length of the arrivals calendar in mean inter-arrival
// times.
const arrivalRing = 64

// scheduleArrival files client c, whose next request starts at nextAt[c], in
// the arrivals calendar; now is the current tick. A time beyond the calendar
// is filed at its far end, to be filed again from there.
func (r *run) scheduleArrival(c int32, now int) {
	k := int(r.nextAt[c] / r.tickSeconds)
	k = min(k, now+len(r.nextArrival)-1)
	r.nextArrival[k%len(r.nextArrival)] = append(r.nextArrival[k%len(r.nextArrival)], c)
}

// simulate runs the scenario to the end and returns its result.
func (r *run) simulate() Result {
	perSecond := max(1, int(time.Second/r.cfg.Tick))
	r.res.Timeline = make([]Second, (r.ticks+perSecond-1)/perSecond)
	sessions := r.cfg.Sessions && r.cfg.Fault > 0
	for t := range r.ticks {
		slot := t % len(r.due)
		calls := r.due[slot]
		r.backlog -= int64(len(calls))

		arrivals := r.nextArrival[t%len(r.nextArrival)]
		r.nextArrival[t%len(r.nextArrival)] = arrivals[:0]
		for _, c := range arrivals {
			for int(r.nextAt[c]/r.tickSeconds) <= t {
				calls = r.start(calls, c, t)
				r.nextAt[c] += r.arrivals.ExpFloat64() / r.cfg.Rate
			}
			r.scheduleArrival(c, t)
		}
		if sessions && t == r.faultFrom {
			for c := range r.cfg.Clients {
				calls = r.start(calls, int32(c), t)
			}
		}

		served := 0
		if t >= r.faultFrom && t < r.faultTo {
			r.res.FaultCalls += int64(len(calls))
		} else {
			served = r.servable(len(calls))
		}
		// Serve a uniformly random subset: a partial Fisher–Yates shuffle
		// moves it to the front.
		for i := range served {
			j := i + r.rng.IntN(len(calls)-i)
			calls[i], calls[j] = calls[j], calls[i]
		}
		for i, id := range calls {
			if i < served {
				r.res.Succeeded++
				r.free = append(r.free, id)
				continue
			}
			r.fail(id, t)
		}

		sec := &r.res.Timeline[t/perSecond]
		sec.Calls += int64(len(calls))
		sec.Served += int64(served)
		sec.Refused += int64(len(calls) - served)
		sec.PeakBacklog = max(sec.PeakBacklog, r.backlog)
		r.res.Calls += int64(len(calls))
		r.load[t] = int32(len(calls))
		r.backlogs[t] = int32(r.backlog)
		r.due[slot] = calls[:0]
	}
	r.res.Pending = r.backlog
	r.summarize()
	return r.res
}

// start opens a new request of client c at tick t and adds its first call
// to calls.
func (r *run) start(calls []int32, c int32, t int) []int32 {
	var id int32
	if n := len(r.free); n > 0 {
		id = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		id = int32(len(r.reqs))
		r.reqs = append(r.reqs, request{})
	}
	r.reqs[id] = request{client: c, start: int32(t)}
	r.res.Requests++
	if t >= r.faultFrom && t < r.faultTo {
		r.res.FaultRequests++
	}
	if r.budgets != nil {
		r.budgets[c].Deposit()
	}
	return append(calls, id)
}

// servable returns how many of n calls in one tick the server serves: s with
// s + RefuseCost·(n−s) = capacity, between 0 and n.
func (r *run) servable(n int) int {
	s := (r.capacity - r.cfg.RefuseCost*float64(n)) / (1 - r.cfg.RefuseCost)
	return int(max(0, min(float64(n), s)))
}

// fail handles the refusal of request id's call at tick t: it schedules the
// retry or gives the request up, checking the bounds in backoff.Retry's
// order (attempts, elapsed time, budget).
func (r *run) fail(id int32, t int) {
	q := &r.reqs[id]
	q.attempt++
	// The call took tick t; the client learns of the failure at its end and
	// waits delay, rounded to the nearest tick, before the next call.
	ended := time.Duration(t+1) * r.cfg.Tick
	delay, stop := r.strategy.Policy.Next(int(q.attempt), ended-time.Duration(q.start)*r.cfg.Tick, q.prev, r.rng.Float64())
	if stop != nil {
		r.giveUp(id)
		return
	}
	if r.budgets != nil && !r.budgets[q.client].WithdrawAt(simEpoch.Add(ended)) {
		r.giveUp(id)
		return
	}
	q.prev = delay
	wait := int((delay + r.cfg.Tick/2) / r.cfg.Tick)
	next := t + 1 + min(wait, len(r.due)-2) // the ring is long enough; this only guards it
	r.due[next%len(r.due)] = append(r.due[next%len(r.due)], id)
	r.backlog++
}

func (r *run) giveUp(id int32) {
	r.res.Failed++
	r.free = append(r.free, id)
}

// summarize computes the peak load and the drain time from the per-tick
// records.
func (r *run) summarize() {
	var peak int32
	for _, n := range r.load {
		peak = max(peak, n)
	}
	r.res.PeakLoad = float64(peak) / r.res.NormalLoad

	// backlogs[t] is the backlog at the end of tick t, time (t+1)·Tick.
	normal := int32(math.Ceil(0.01 * float64(r.cfg.Clients) * r.cfg.Rate))
	for _, b := range r.backlogs[:r.faultFrom] {
		normal = max(normal, b)
	}
	r.res.DrainLevel = int64(normal)
	last := -1 // the last tick, from the fault's end on, with a backlog above normal
	for t := r.ticks - 1; t >= max(r.faultTo-1, 0); t-- {
		if r.backlogs[t] > normal {
			last = t
			break
		}
	}
	switch {
	case last < 0:
		r.res.Drained, r.res.Drain = true, 0
	case last < r.ticks-1:
		r.res.Drained, r.res.Drain = true, time.Duration(last+2-r.faultTo)*r.cfg.Tick
	}
}
