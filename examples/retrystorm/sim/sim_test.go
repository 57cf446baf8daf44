package sim

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// smallConfig is a scenario small enough to run many times.
func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Clients = 200
	cfg.Fault = 3 * time.Second
	cfg.After = 20 * time.Second
	return cfg
}

// The default scenario is the demo's; it is run once and shared.
var defaults = sync.OnceValues(func() ([]Result, error) {
	return Run(DefaultConfig(), Strategies(DefaultMaxAttempts))
})

func defaultResults(t *testing.T) map[string]Result {
	t.Helper()
	results, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]Result)
	for _, r := range results {
		byName[r.Strategy] = r
	}
	if len(byName) != 5 {
		t.Fatalf("want 5 distinct strategies, got %d", len(byName))
	}
	return byName
}

func TestSameSeedSameResults(t *testing.T) {
	a, err := Run(smallConfig(), Strategies(DefaultMaxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(smallConfig(), Strategies(DefaultMaxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs with the same seed differ")
	}

	other := smallConfig()
	other.Seed++
	c, err := Run(other, Strategies(DefaultMaxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("a different seed gave the same results: the seed is not used")
	}
}

// Running a strategy alone or among others, first or last, gives it the same
// arrivals; only its own random stream (chosen by its index) differs.
func TestStrategiesSeeTheSameArrivals(t *testing.T) {
	results, err := Run(smallConfig(), Strategies(DefaultMaxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results[1:] {
		if r.Requests != results[0].Requests || r.FaultRequests != results[0].FaultRequests {
			t.Errorf("%s saw %d requests (%d in the fault), %s saw %d (%d)", r.Strategy, r.Requests, r.FaultRequests,
				results[0].Strategy, results[0].Requests, results[0].FaultRequests)
		}
	}
}

func TestAccounting(t *testing.T) {
	cfg := smallConfig()
	results, err := Run(cfg, Strategies(DefaultMaxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if got := r.Succeeded + r.Failed + r.Pending; got != r.Requests {
			t.Errorf("%s: succeeded+failed+pending = %d, want requests %d", r.Strategy, got, r.Requests)
		}
		if r.Calls < r.Requests {
			t.Errorf("%s: %d calls for %d requests", r.Strategy, r.Calls, r.Requests)
		}
		if r.Calls > int64(DefaultMaxAttempts)*r.Requests {
			t.Errorf("%s: %d calls exceed %d attempts × %d requests", r.Strategy, r.Calls, DefaultMaxAttempts, r.Requests)
		}
		var calls, served int64
		for i, s := range r.Timeline {
			if s.Served+s.Refused != s.Calls {
				t.Fatalf("%s second %d: served %d + refused %d != calls %d", r.Strategy, i, s.Served, s.Refused, s.Calls)
			}
			calls += s.Calls
			served += s.Served
		}
		if calls != r.Calls || served != r.Succeeded {
			t.Errorf("%s: timeline has %d calls and %d served, totals say %d and %d", r.Strategy, calls, served, r.Calls, r.Succeeded)
		}
		if want := int((cfg.FaultStart + cfg.Fault + cfg.After) / time.Second); len(r.Timeline) != want {
			t.Errorf("%s: timeline has %d seconds, want %d", r.Strategy, len(r.Timeline), want)
		}
		// The server refuses everything in the fault and nothing is served
		// then; the first calls of requests started in it are among them.
		if r.FaultCalls < r.FaultRequests {
			t.Errorf("%s: %d calls in the fault, fewer than the %d requests started in it", r.Strategy, r.FaultCalls, r.FaultRequests)
		}
		faultFrom, faultTo := int(cfg.FaultStart/time.Second), int((cfg.FaultStart+cfg.Fault)/time.Second)
		var inFault int64
		for _, s := range r.Timeline[faultFrom:faultTo] {
			if s.Served != 0 {
				t.Errorf("%s: %d calls served during the fault", r.Strategy, s.Served)
			}
			inFault += s.Calls
		}
		if inFault != r.FaultCalls {
			t.Errorf("%s: timeline has %d calls in the fault, FaultCalls %d", r.Strategy, inFault, r.FaultCalls)
		}
	}
}

func TestNoFaultNoRetries(t *testing.T) {
	cfg := smallConfig()
	cfg.Fault = 0
	results, err := Run(cfg, Strategies(DefaultMaxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		// At twice the normal load's capacity, random arrivals never
		// overload the server.
		if r.Calls != r.Requests || r.Failed != 0 || r.FaultCalls != 0 {
			t.Errorf("%s without a fault: %d calls, %d requests, %d failed, %d calls in fault",
				r.Strategy, r.Calls, r.Requests, r.Failed, r.FaultCalls)
		}
		if !r.Drained || r.Drain != 0 {
			t.Errorf("%s without a fault: drained %v after %v", r.Strategy, r.Drained, r.Drain)
		}
		if r.PeakLoad < 1 || r.PeakLoad > 2 {
			t.Errorf("%s without a fault: peak load %.2f× normal", r.Strategy, r.PeakLoad)
		}
	}
	// The arrivals average the configured rate.
	seconds := (cfg.FaultStart + cfg.After).Seconds()
	want := float64(cfg.Clients) * cfg.Rate * seconds
	if got := float64(results[0].Requests); math.Abs(got-want) > 5*math.Sqrt(want) {
		t.Errorf("%v requests in %vs, want about %v", got, seconds, want)
	}
}

// The budget bounds retries: each client's retries come from 10% of its
// requests or from its floor of one a second (plus a burst of one).
func TestBudgetBoundsRetries(t *testing.T) {
	cfg := smallConfig()
	cfg.Fault = 10 * time.Second
	strategies := Strategies(DefaultMaxAttempts)
	budgeted := strategies[len(strategies)-1]
	if budgeted.Budget == nil {
		t.Fatal("the last strategy has no budget")
	}
	results, err := Run(cfg, []Strategy{strategies[0], budgeted})
	if err != nil {
		t.Fatal(err)
	}
	r := results[1]
	seconds := (cfg.FaultStart + cfg.Fault + cfg.After).Seconds()
	limit := backoff.DefaultBudgetRatio*float64(r.Requests) + float64(cfg.Clients)*(backoff.DefaultMinRetriesPerSecond*seconds+1)
	if retries := float64(r.Calls - r.Requests); retries > limit {
		t.Errorf("%v retries with a budget, above its bound %v", retries, limit)
	}
	// Without a budget the same traffic retries far more.
	if results[0].Calls-results[0].Requests < 3*(r.Calls-r.Requests) {
		t.Errorf("immediate retried %d times, budget %d: the budget made little difference",
			results[0].Calls-results[0].Requests, r.Calls-r.Requests)
	}
}

func TestMaxElapsedBoundsRequests(t *testing.T) {
	cfg := smallConfig()
	// Waits of 100ms, 200ms, 400ms, 800ms: the fifth call would start 1.5s
	// (plus four ticks of calls) after the first, past MaxElapsed.
	p := backoff.Policy{Base: 100 * time.Millisecond, Multiplier: 2, Jitter: backoff.JitterNone,
		MaxAttempts: backoff.Unlimited, MaxElapsed: time.Second}
	results, err := Run(cfg, []Strategy{{Name: "elapsed", Policy: p}})
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	if r.Calls > 4*r.Requests {
		t.Errorf("%d calls for %d requests: more than 4 calls per request within 1s", r.Calls, r.Requests)
	}
	if r.Failed < r.FaultRequests/2 {
		t.Errorf("only %d of %d requests started in the fault gave up", r.Failed, r.FaultRequests)
	}
}

// The claims the demo's legend makes hold for the default scenario.
func TestDefaultScenarioClaims(t *testing.T) {
	r := defaultResults(t)
	immediate, fixed, exp, jitter, budget := r["immediate"], r["fixed 1s"], r["exponential"], r["full jitter"], r["full jitter + budget"]
	cfg := DefaultConfig()

	t.Run("budget makes the fewest calls, wastes the fewest and peaks lowest", func(t *testing.T) {
		for _, o := range []Result{immediate, fixed, exp, jitter} {
			if float64(budget.Calls) > 0.6*float64(o.Calls) {
				t.Errorf("budget made %d calls, more than 60%% of %s's %d", budget.Calls, o.Strategy, o.Calls)
			}
			if budget.FaultCalls*4 > o.FaultCalls {
				t.Errorf("budget made %d calls in the fault, more than a quarter of %s's %d", budget.FaultCalls, o.Strategy, o.FaultCalls)
			}
			if budget.PeakLoad > o.PeakLoad {
				t.Errorf("budget peaked at %.1f×, above %s's %.1f×", budget.PeakLoad, o.Strategy, o.PeakLoad)
			}
		}
		// Retries in the fault stay a fraction of its new requests.
		if extra := float64(budget.FaultCalls)/float64(budget.FaultRequests) - 1; extra > 0.5 {
			t.Errorf("budget added %.0f%% to the calls in the fault", 100*extra)
		}
	})

	t.Run("budget drains at once, before every backoff without it", func(t *testing.T) {
		if !budget.Drained || budget.Drain > time.Second {
			t.Fatalf("budget drained %v after %v", budget.Drained, budget.Drain)
		}
		for _, o := range []Result{fixed, exp, jitter} {
			if o.Drained && o.Drain <= budget.Drain+time.Second {
				t.Errorf("%s drained after %v, budget after %v", o.Strategy, o.Drain, budget.Drain)
			}
		}
	})

	t.Run("immediate wastes the most calls in the fault and fails its requests", func(t *testing.T) {
		for _, o := range []Result{fixed, exp, jitter, budget} {
			if o.FaultCalls >= immediate.FaultCalls {
				t.Errorf("%s made %d calls in the fault, immediate %d", o.Strategy, o.FaultCalls, immediate.FaultCalls)
			}
		}
		// Nearly every request made in the fault fails: its calls are all
		// spent before the fault ends.
		if immediate.Failed < immediate.FaultRequests*95/100 {
			t.Errorf("immediate failed %d requests, of %d made in the fault", immediate.Failed, immediate.FaultRequests)
		}
		if !immediate.Drained || immediate.Drain > time.Second {
			t.Errorf("immediate drained %v after %v: it should carry no backlog", immediate.Drained, immediate.Drain)
		}
		// Every strategy without a budget multiplies the load in the fault.
		for _, o := range []Result{immediate, fixed, exp, jitter} {
			if o.FaultCalls < 4*o.FaultRequests {
				t.Errorf("%s made %d calls in the fault for %d requests", o.Strategy, o.FaultCalls, o.FaultRequests)
			}
		}
	})

	t.Run("backing off carries a backlog that outlives its own waits", func(t *testing.T) {
		for _, o := range []Result{fixed, exp, jitter} {
			if o.Failed >= immediate.Failed {
				t.Errorf("%s failed %d requests, immediate %d: backing off should let some through after the fault", o.Strategy, o.Failed, immediate.Failed)
			}
			if !o.Drained {
				t.Errorf("%s never drained", o.Strategy)
			}
		}
		// A request gives up at most its waits plus one tick per call after
		// it started; a backlog older than that holds requests that started,
		// and failed, after the fault ended.
		for _, c := range []struct {
			r Result
			p backoff.Policy
		}{{fixed, Strategies(DefaultMaxAttempts)[1].Policy}, {exp, Strategies(DefaultMaxAttempts)[2].Policy}} {
			var longest time.Duration
			for n := 1; n < DefaultMaxAttempts; n++ {
				longest += c.p.Envelope(n) + cfg.Tick
			}
			if c.r.Drain <= longest+cfg.Tick {
				t.Errorf("%s drained after %v, within its own waits of %v: no sign of a self-sustaining storm", c.r.Strategy, c.r.Drain, longest)
			}
		}
		// Right after the fault the storm pushes goodput below normal,
		// although the server could serve twice as much.
		faultEnd := int((cfg.FaultStart + cfg.Fault) / time.Second)
		normal := float64(cfg.Clients) * cfg.Rate
		for _, o := range []Result{fixed, exp, jitter} {
			if served := float64(o.Timeline[faultEnd].Served); served > 0.9*normal {
				t.Errorf("%s served %v calls in the second after the fault, %v is normal", o.Strategy, served, normal)
			}
		}
	})

	t.Run("jitter spreads clients that failed together", func(t *testing.T) {
		for _, o := range []Result{immediate, fixed, exp} {
			if o.PeakLoad < 1.3*jitter.PeakLoad {
				t.Errorf("%s peaked at %.1f×, not clearly above full jitter's %.1f×", o.Strategy, o.PeakLoad, jitter.PeakLoad)
			}
		}
	})
}

// Without the correlated burst of sessions, failures are independent and
// jitter has nothing to spread: exponential backoff peaks no higher.
func TestJitterNeedsCorrelatedFailures(t *testing.T) {
	cfg := smallConfig()
	cfg.Sessions = false
	s := Strategies(DefaultMaxAttempts)
	results, err := Run(cfg, []Strategy{s[2], s[3]})
	if err != nil {
		t.Fatal(err)
	}
	if exp, jitter := results[0].PeakLoad, results[1].PeakLoad; exp > 1.2*jitter {
		t.Errorf("without sessions exponential peaked at %.1f×, full jitter at %.1f×", exp, jitter)
	}
}

func TestLongerFaultWastesMore(t *testing.T) {
	short, long := smallConfig(), smallConfig()
	short.Fault, long.Fault = 2*time.Second, 6*time.Second
	s := Strategies(DefaultMaxAttempts)
	a, err := Run(short, s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(long, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range s {
		if b[i].FaultCalls <= a[i].FaultCalls {
			t.Errorf("%s: %d calls in a 6s fault, %d in a 2s one", s[i].Name, b[i].FaultCalls, a[i].FaultCalls)
		}
	}
}

func TestBadConfig(t *testing.T) {
	valid := Strategies(DefaultMaxAttempts)
	tests := []struct {
		name       string
		edit       func(*Config)
		strategies []Strategy
		wants      []string
	}{
		{"zero clients", func(c *Config) { c.Clients = 0 }, valid, []string{"clients 0 is outside"}},
		{"negative clients", func(c *Config) { c.Clients = -5 }, valid, []string{"clients -5"}},
		{"too many clients", func(c *Config) { c.Clients = MaxClients + 1 }, valid, []string{"clients 10001 is outside [1, 10000]"}},
		{"too many attempts", func(*Config) {}, Strategies(MaxAttempts + 1), []string{`strategy "immediate": MaxAttempts 101 is outside [1, 100]`}},
		{"unlimited attempts", func(*Config) {}, []Strategy{{Name: "forever", Policy: backoff.Policy{MaxAttempts: backoff.Unlimited}}}, []string{`strategy "forever": MaxAttempts -1`, "needs a MaxElapsed"}},
		{"too much work", func(c *Config) { c.Clients, c.After = MaxClients, 10*time.Minute }, valid, []string{"above 100000000"}},
		{"negative fault", func(c *Config) { c.Fault = -time.Second }, valid, []string{"fault length -1s is negative"}},
		{"negative fault start", func(c *Config) { c.FaultStart = -time.Second }, valid, []string{"fault start -1s"}},
		{"negative horizon", func(c *Config) { c.After = -time.Second }, valid, []string{"horizon"}},
		{"zero tick", func(c *Config) { c.Tick = 0 }, valid, []string{"tick 0s"}},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, valid, []string{"rate NaN"}},
		{"zero rate", func(c *Config) { c.Rate = 0 }, valid, []string{"rate 0"}},
		{"capacity below load", func(c *Config) { c.Capacity = 0.5 }, valid, []string{"capacity 0.5"}},
		{"refuse cost one", func(c *Config) { c.RefuseCost = 1 }, valid, []string{"refuse cost 1"}},
		{"too long", func(c *Config) { c.After = 1000 * time.Hour }, valid, []string{"longer than"}},
		{"overflowing", func(c *Config) { c.After = math.MaxInt64 }, valid, []string{"longer than"}},
		{"too little traffic", func(c *Config) { c.Clients, c.Rate = 1, 1 }, valid, []string{"less than one call per tick"}},
		{"no strategies", func(*Config) {}, nil, []string{"no strategies"}},
		{"bad policy", func(*Config) {}, []Strategy{{Name: "odd", Policy: backoff.Policy{Multiplier: 0.5}}}, []string{`strategy "odd"`, "Multiplier 0.5"}},
		{"bad budget", func(*Config) {}, []Strategy{{Name: "tight", Budget: &backoff.BudgetConfig{Ratio: 2}}}, []string{`strategy "tight"`, "Ratio 2"}},
		{"several at once", func(c *Config) { c.Clients, c.Fault = 0, -time.Second }, valid, []string{"clients 0", "fault length -1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig()
			tt.edit(&cfg)
			results, err := Run(cfg, tt.strategies)
			if err == nil {
				t.Fatalf("no error; %d results", len(results))
			}
			if results != nil {
				t.Errorf("results with an error: %v", results)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q does not match ErrInvalidConfig", err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestRunWithProgress checks that progress hears of every strategy in
// order, then of the end, and that it does not change the results.
func TestRunWithProgress(t *testing.T) {
	cfg := smallConfig()
	var seen []int
	got, err := RunWithProgress(cfg, Strategies(DefaultMaxAttempts), func(next int) { seen = append(seen, next) })
	if err != nil {
		t.Fatal(err)
	}
	want, err := Run(cfg, Strategies(DefaultMaxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[0 1 2 3 4 5]" {
		t.Errorf("progress saw %v, want [0 1 2 3 4 5]", seen)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Error("RunWithProgress and Run differ")
	}
}

func BenchmarkDefaultScenario(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Run(DefaultConfig(), Strategies(DefaultMaxAttempts)); err != nil {
			b.Fatal(err)
		}
	}
}
