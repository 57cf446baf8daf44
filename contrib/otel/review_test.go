package stormotel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/shed"
)

// TestReviewForgottenKeyCountsFromZero: a Partition key forgotten (seen
// absent by a collection) and made again counts from zero; its series
// goes on from the last value reported and adds everything the new key
// counts, even when the new key has counted more than the old one by the
// next collection (no "went backwards" to see).
func TestReviewForgottenKeyCountsFromZero(t *testing.T) {
	m, r := newMeter(t)
	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 4, PerKey: 4, MaxKeys: 1}))
	must[*Registration](t)(RegisterPartition(m, "zones", p, []string{"a"}))
	use := func(k string, n int) {
		for range n {
			if !p.TryAcquire(k) {
				t.Fatalf("%s refused", k)
			}
			p.Release(k)
		}
	}
	metric := shedPrefix(kindPartitionKey) + ".admitted"
	at := enc(attribute.NewSet(name("zones"), key("a")))
	use("a", 5)
	if v := collect(t, r)[metric][at].value; v != 5 {
		t.Fatalf("admitted %v, want 5", v)
	}
	use("b", 1) // MaxKeys 1: "a" is forgotten
	if _, ok := p.StatsFor("a"); ok {
		t.Fatal("a still tracked")
	}
	if _, ok := collect(t, r)[metric][at]; ok {
		t.Fatal("a reported while forgotten")
	}
	use("a", 7) // made again, from zero, and past 5
	if v := collect(t, r)[metric][at].value; v != 5+7 {
		t.Errorf("admitted %v after the key was forgotten and made again, want %d", v, 5+7)
	}
}

// TestReviewFarFutureTime: a breaker whose OpenWait reaches past 2262
// (where UnixNano overflows) reports its next probe in the future, at the
// right second, not at a wrapped negative time.
func TestReviewFarFutureTime(t *testing.T) {
	m, r := newMeter(t)
	br := must[*backoff.Breaker](t)(backoff.NewBreaker(backoff.BreakerConfig{WindowCalls: 1, MinCalls: 1,
		OpenWait: math.MaxInt64}))
	must[*Registration](t)(m.RegisterBreaker("far", br))
	if tk, err := br.Allow(); err == nil {
		br.Record(tk, errors.New("boom"))
	}
	s := br.Stats()
	if s.State != backoff.BreakerOpen {
		t.Fatalf("state %v, want open", s.State)
	}
	want := float64(s.NextProbe.Unix())
	got := collect(t, r)[breakerPrefix+".next_probe.time"][enc(attribute.NewSet(name("far")))].value
	if math.Abs(got-want) > 1 {
		t.Errorf("next_probe.time %v, want %v (%v)", got, want, s.NextProbe)
	}
}

// TestReviewKeyStartingWithPercentBang: a key whose own text starts with
// "%!" formats fine and is accepted; only a key whose formatting panicked
// is refused.
func TestReviewKeyStartingWithPercentBang(t *testing.T) {
	m, _ := newMeter(t)
	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 4}))
	if _, err := RegisterPartition(m, "odd", p, []string{"%!weird", "100%"}); err != nil {
		t.Errorf("keys that format fine refused: %v", err)
	}
}

// TestReviewSemconvInstruments: the instruments follow the semantic
// conventions' choices (v1.45 naming.md). A current count of things present (calls in
// flight or waiting, volumes, keys) is additive, so it is an
// UpDownCounter, not a gauge (a sum over queues or keys means something;
// and it can fall, so it is no counter). The unit "1" is for ratios only:
// the Prometheus exporter appends "_ratio" to such names, so a ratio is
// named as one (no "failure_rate_ratio"), and a quantity that is no ratio
// (remirror's free capacity) has a unit of its own.
func TestReviewSemconvInstruments(t *testing.T) {
	updown := regexp.MustCompile(`\.(inflight|waiting|probes|keys|count|attempts?\.queued|volumes?(\.[a-z]+)?|outstanding|quarantined)$`)
	ratio := regexp.MustCompile(`(ratio|utilization|probability)$`)
	for _, in := range instruments {
		if in.kind == counterInt && updown.MatchString(in.name) {
			t.Errorf("%s: a current count is no counter", in.name)
		}
		if in.kind != counterInt && updown.MatchString(in.name) && in.kind != upDownInt {
			t.Errorf("%s: %v, want %v (an additive current count)", in.name, in.kind, upDownInt)
		}
		if in.unit == "1" && !ratio.MatchString(in.name) {
			t.Errorf("%s: unit 1 on a name that is no ratio (Prometheus: %s_ratio)", in.name, strings.ReplaceAll(in.name, ".", "_"))
		}
		if strings.HasSuffix(in.name, "total") || strings.HasSuffix(in.name, "count") && in.kind == counterInt {
			t.Errorf("%s: a counter's name ends in total or count", in.name)
		}
		// "Do not pluralize UpDownCounter names": process.count, not
		// processes.
		if in.kind == upDownInt {
			for _, part := range strings.Split(strings.TrimPrefix(in.name, "stormguard."), ".") {
				if strings.HasSuffix(part, "s") && part != "stormguard" && part != "backoff" && part != "shed" && part != "lease" {
					t.Errorf("%s: an up-down counter with a plural in its name (%s)", in.name, part)
				}
			}
		}
	}
}

// signalLocker is a driver's lock that tells when someone starts waiting
// for it.
type signalLocker struct {
	mu      *sync.Mutex
	waiting chan struct{}
}

func (l signalLocker) Lock() {
	select {
	case l.waiting <- struct{}{}:
	default:
	}
	l.mu.Lock()
}

func (l signalLocker) Unlock() { l.mu.Unlock() }

// TestReviewSchedulerStopUnderDriverLock: a driver that unregisters its
// Scheduler (or closes the Meter) while holding its own lock, as it would
// when it shuts the Scheduler down, while a collection waits for that lock
// inside the callback (holding the provider's lock), does not deadlock:
// the waiting callback gives up and reports nothing. (A deadlock fails
// the test after a minute instead of hanging it.)
func TestReviewSchedulerStopUnderDriverLock(t *testing.T) {
	for _, viaClose := range []bool{false, true} {
		m, r := newMeter(t)
		sc := must[*shed.Scheduler[int]](t)(shed.NewScheduler[int](shed.QueueConfig{Workers: 1}, nil))
		var mu sync.Mutex
		lk := signalLocker{&mu, make(chan struct{}, 1)}
		reg := must[*Registration](t)(RegisterScheduler(m, "jobs", sc, lk))
		must[*Registration](t)(m.RegisterBudget("b", must[*backoff.Budget](t)(backoff.NewBudget(backoff.BudgetConfig{}))))
		mu.Lock() // the driver holds its lock
		collected := make(chan error, 1)
		go func() {
			var rm metricdata.ResourceMetrics
			collected <- r.Collect(context.Background(), &rm)
		}()
		<-lk.waiting // the callback waits for the driver's lock
		stopped := make(chan error, 1)
		go func() {
			if viaClose {
				stopped <- m.Close()
			} else {
				stopped <- reg.Unregister()
			}
		}()
		select {
		case err := <-stopped:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("close %v: deadlock between the driver's lock and a collection", viaClose)
		}
		mu.Unlock()
		if err := <-collected; err != nil {
			t.Error(err)
		}
		if got := collect(t, r)[shedPrefix(kindScheduler)+".inflight"]; len(got) != 0 {
			t.Errorf("close %v: still reported: %v", viaClose, got)
		}
	}
}

// TestReviewCloseRacesRegister: Register calls racing Close either fail
// with ErrClosed or return a registration Close unregistered: once both
// are done, nothing of the Meter is reported, and Unregister of any of
// them (again) is harmless.
func TestReviewCloseRacesRegister(t *testing.T) {
	m, r := newMeter(t)
	q := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 1}))
	var wg sync.WaitGroup
	regs := make(chan *Registration, 400)
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				reg, err := m.RegisterQueue(fmt.Sprint(g, "-", i), q)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				regs <- reg
			}
		})
	}
	wg.Go(func() {
		var rm metricdata.ResourceMetrics
		for range 20 {
			_ = r.Collect(context.Background(), &rm)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	close(regs)
	if got := collect(t, r); len(got) != 0 {
		t.Errorf("reported after Close: %d instruments", len(got))
	}
	for reg := range regs {
		if err := reg.Unregister(); err != nil {
			t.Error(err)
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// two is a source with two counters, such as a shed.Stats' Admitted and
// Shed.Cancelled.
type two struct{ admitted, cancelled int64 }

// TestReviewRevokedGrantIsNoReset: a Queue, Partition or Scheduler that
// grants a slot to a waiter whose context ends at that moment counts it as
// admitted, then as cancelled instead (Admitted falls by one, Cancelled
// grows by one, in one snapshot). That is no reset: admitted holds its
// last value, it does not jump by all it had counted. A real reset (the
// key forgotten and made again, every count lower in all) still goes on
// from the last values.
func TestReviewRevokedGrantIsNoReset(t *testing.T) {
	m, r := newMeter(t)
	cur := &two{}
	p := &two{} // the primitive: the same id throughout
	tbl := []series[*two]{
		{metric: budgetPrefix + ".retries", source: "admitted", i: func(s *two) int64 { return s.admitted }},
		{metric: budgetPrefix + ".refused", source: "cancelled", i: func(s *two) int64 { return s.cancelled }},
	}
	must[*Registration](t)(register(m, "rev", "c", []source[*two]{{table: tbl, get: func() (*two, any, bool) { return cur, p, true }}}))
	at := enc(attribute.NewSet(name("c")))
	check := func(step string, admitted, cancelled float64) {
		t.Helper()
		got := collect(t, r)
		if a, c := got[budgetPrefix+".retries"][at].value, got[budgetPrefix+".refused"][at].value; a != admitted || c != cancelled {
			t.Errorf("%s: admitted %v, cancelled %v; want %v, %v", step, a, c, admitted, cancelled)
		}
	}
	cur.admitted = 1000
	check("start", 1000, 0)
	cur.admitted, cur.cancelled = 999, 1 // a grant revoked
	check("revoked", 1000, 1)
	cur.admitted = 1005
	check("grew", 1005, 1)
	cur.admitted, cur.cancelled = 3, 0 // forgotten and made again
	check("reset", 1008, 1)
	cur.admitted, cur.cancelled = 4, 2
	check("after reset", 1009, 3)
}

// TestReviewInvisibleCharacters: a name or key holding a character that
// does not show, or reorders what follows (zero-width space, bidi
// override, BOM, line separator), is refused: it would make two series
// look the same on a dashboard. Unicode letters and spaces are fine.
func TestReviewInvisibleCharacters(t *testing.T) {
	m, _ := newMeter(t)
	q := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 1}))
	for _, n := range []string{"api\u200b", "\u202eipa", "\ufeffapi", "a\u2028b", "a\u00adb"} {
		if _, err := m.RegisterQueue(n, q); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: %v, want ErrInvalid", n, err)
		}
	}
	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 4}))
	if _, err := RegisterPartition(m, "zones", p, []string{"az1", "az1\u200d"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invisible key: %v, want ErrInvalid", err)
	}
	for _, n := range []string{"zone 1", "zöne.ü", "区域", "a.b-c_d"} {
		if _, err := m.RegisterQueue(n, q); err != nil {
			t.Errorf("name %q: %v", n, err)
		}
	}
}

// TestReviewSchedulerCollectGivesUpAtDeadline: a collection whose
// context ends while the callback waits for a Scheduler driver's lock
// (a driver stuck holding it) returns, instead of holding the provider's
// lock, and every other registration's series, until the driver lets go.
func TestReviewSchedulerCollectGivesUpAtDeadline(t *testing.T) {
	m, r := newMeter(t)
	sc := must[*shed.Scheduler[int]](t)(shed.NewScheduler[int](shed.QueueConfig{Workers: 1}, nil))
	var mu sync.Mutex
	lk := signalLocker{&mu, make(chan struct{}, 1)}
	must[*Registration](t)(RegisterScheduler(m, "jobs", sc, lk))
	mu.Lock() // a driver stuck holding its lock
	defer mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	collected := make(chan error, 1)
	go func() {
		var rm metricdata.ResourceMetrics
		collected <- r.Collect(ctx, &rm)
	}()
	<-lk.waiting
	cancel()
	select {
	case <-collected:
	case <-time.After(time.Minute):
		t.Fatal("a collection whose context ended still waits for the driver's lock")
	}
}

// TestReviewKeyChurnBounded: unlisted keys churning forever through a
// Partition (each forgets the last) and listed keys forgotten and made
// again add no series and no state: the series stay the listed keys' and
// the aggregate's, and each listed key's counters keep counting.
func TestReviewKeyChurnBounded(t *testing.T) {
	m, r := newMeter(t)
	p := must[*shed.Partition[int]](t)(shed.NewPartition(shed.PartitionConfig[int]{Total: 4, PerKey: 4, MaxKeys: 2}))
	must[*Registration](t)(RegisterPartition(m, "churn", p, []int{0, 1}))
	use := func(k int) {
		if !p.TryAcquire(k) {
			t.Fatalf("key %d refused", k)
		}
		p.Release(k)
	}
	metric := shedPrefix(kindPartitionKey) + ".admitted"
	at := enc(attribute.NewSet(name("churn"), key("0")))
	var want float64
	for round := range 50 {
		use(0)
		want++
		got := collect(t, r)
		if v := got[metric][at].value; v != want {
			t.Fatalf("round %d: key 0 admitted %v, want %v", round, v, want)
		}
		for k := 2; k < 202; k++ {
			use(round*1000 + k) // unlisted keys; key 0 is forgotten
		}
		total := 0
		for _, pts := range collect(t, r) {
			total += len(pts)
		}
		if total > 3*13 {
			t.Fatalf("round %d: %d series, above 3 sources of 13", round, total)
		}
	}
}
