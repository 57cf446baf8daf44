package stormotel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stormguard/stormguard/remirror"
	"github.com/stormguard/stormguard/shed"
)

// tb is what the helpers need of a *testing.T, *testing.B or *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// point is one collected data point.
type point struct {
	value   float64
	counter bool // a monotonic cumulative sum
}

// collected maps metric name, then the encoded attribute set, to a point.
type collected map[string]map[string]point

func newMeter(t tb, opts ...Option) (*Meter, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	m, err := New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m, r
}

func collect(t tb, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := collected{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			pts := map[string]point{}
			switch d := mt.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					pts[enc(dp.Attributes)] = point{value: float64(dp.Value)}
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					pts[enc(dp.Attributes)] = point{value: dp.Value}
				}
			case metricdata.Sum[int64]:
				if d.Temporality != metricdata.CumulativeTemporality {
					t.Fatalf("%s: sum not cumulative", mt.Name)
				}
				if d.IsMonotonic != (instrumentKind[mt.Name] == counterInt) {
					t.Fatalf("%s: monotonic %v, instrument %v", mt.Name, d.IsMonotonic, instrumentKind[mt.Name])
				}
				for _, dp := range d.DataPoints {
					pts[enc(dp.Attributes)] = point{value: float64(dp.Value), counter: d.IsMonotonic}
				}
			default:
				t.Fatalf("%s: unexpected data %T", mt.Name, mt.Data)
			}
			out[mt.Name] = pts
		}
	}
	return out
}

func enc(s attribute.Set) string { return s.Encoded(attribute.DefaultEncoder()) }

// checkTable checks that every series of table under attrs has the value
// the table reads from s, and the kind its instrument has.
func checkTable[S any](t *testing.T, got collected, table []series[S], s S, attrs ...attribute.KeyValue) {
	t.Helper()
	for _, ser := range table {
		kv := append([]attribute.KeyValue(nil), attrs...)
		if ser.attr.Key != "" {
			kv = append(kv, ser.attr)
		}
		key := enc(attribute.NewSet(kv...))
		p, ok := got[ser.metric][key]
		if !ok {
			t.Errorf("%s{%s} (%s) not collected", ser.metric, key, ser.source)
			continue
		}
		var want float64
		if ser.f != nil {
			want = ser.f(s)
		} else {
			want = float64(ser.i(s))
		}
		if p.value != want {
			t.Errorf("%s{%s} = %v, want %v (%s)", ser.metric, key, p.value, want, ser.source)
		}
		if p.counter != (instrumentKind[ser.metric] == counterInt) {
			t.Errorf("%s: counter %v, instrument %v", ser.metric, p.counter, instrumentKind[ser.metric])
		}
	}
}

func must[T any](t tb) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func name(n string) attribute.KeyValue { return AttrName.String(n) }
func key(k string) attribute.KeyValue  { return AttrKey.String(k) }

// TestShedValuesEqualStats drives every shed primitive through admissions
// and refusals and checks every collected series against its Stats.
func TestShedValuesEqualStats(t *testing.T) {
	m, r := newMeter(t)
	ctx := context.Background()

	b := must[*shed.Bulkhead](t)(shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1}))
	must[*Registration](t)(m.RegisterBulkhead("db", b))
	b.TryAcquire()
	b.TryAcquire() // refused

	q := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 1, MaxQueue: 1}))
	must[*Registration](t)(m.RegisterQueue("api", q))
	if err := q.Acquire(ctx, shed.Critical); err != nil {
		t.Fatal(err)
	}
	q.TryAcquire() // refused: full
	q.Release()
	if err := q.Acquire(ctx, shed.Normal); err != nil {
		t.Fatal(err)
	}

	l := must[*shed.Limiter](t)(shed.NewLimiter(shed.LimiterConfig{Rate: 1, Burst: 2}))
	must[*Registration](t)(m.RegisterLimiter("ingest", l))
	t0 := time.Unix(1000, 0)
	for range 3 {
		l.AllowAt(t0)
	}

	kl := must[*shed.KeyedLimiter[string]](t)(shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{LimiterConfig: shed.LimiterConfig{Rate: 1, Burst: 1}}))
	must[*Registration](t)(RegisterKeyedLimiter(m, "tenants", kl, []string{"a", "b", "never"}))
	kl.AllowAt(t0, "a")
	kl.AllowAt(t0, "a")
	kl.AllowAt(t0, "b")
	kl.AllowAt(t0, "c") // not listed: in the aggregate only

	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 4, PerKey: 1}))
	must[*Registration](t)(RegisterPartition(m, "zones", p, []string{"az1", "az2"}))
	p.TryAcquire("az1")
	p.TryAcquire("az1") // refused
	p.TryAcquire("az2")
	p.TryAcquire("az3")

	sc := must[*shed.Scheduler[int]](t)(shed.NewScheduler[int](shed.QueueConfig{Workers: 1, MaxQueue: 4}, nil))
	must[*Registration](t)(RegisterScheduler(m, "jobs", sc, new(sync.Mutex)))
	sc.Push(t0, shed.Item[int]{Value: 1})
	sc.Push(t0, shed.Item[int]{Value: 2})

	a := must[*shed.AdaptiveLimit](t)(shed.NewAdaptiveLimit(shed.AdaptiveConfig{}))
	must[*Registration](t)(m.RegisterAdaptiveLimit("backend", a))
	a.TryAcquire()
	a.ReleaseRTT(time.Millisecond, false)

	got := collect(t, r)
	checkTable(t, got, shedTables[kindBulkhead], b.Stats(), name("db"))
	checkTable(t, got, shedTables[kindQueue], q.Stats(), name("api"))
	checkTable(t, got, shedTables[kindLimiter], l.Stats(), name("ingest"))
	checkTable(t, got, shedTables[kindKeyedLimiter], kl.Stats(), name("tenants"))
	for _, k := range []string{"a", "b"} {
		s, ok := kl.StatsFor(k)
		if !ok {
			t.Fatalf("no stats for %q", k)
		}
		checkTable(t, got, shedTables[kindKeyedLimiterKey], s, name("tenants"), key(k))
	}
	checkTable(t, got, shedTables[kindPartition], p.Stats(), name("zones"))
	for _, k := range []string{"az1", "az2"} {
		s, _ := p.StatsFor(k)
		checkTable(t, got, shedTables[kindPartitionKey], s, name("zones"), key(k))
	}
	checkTable(t, got, shedTables[kindScheduler], sc.Stats(), name("jobs"))
	checkTable(t, got, adaptiveTable, a.Stats(), name("backend"))

	if n := len(got[shedPrefix(kindKeyedLimiterKey)+".admitted"]); n != 2 {
		t.Errorf("keyed limiter per-key series: %d, want 2 (a, b; never has no state, c is not listed)", n)
	}
	if v := got[shedPrefix(kindQueue)+".shed"][enc(attribute.NewSet(name("api"), AttrReason.String("queue_full")))].value; v != 1 {
		t.Errorf("queue shed{queue_full} = %v, want 1", v)
	}
}

// TestBackoffValuesEqualStats does the same for backoff's primitives.
func TestBackoffValuesEqualStats(t *testing.T) {
	m, r := newMeter(t)
	bu := must[*backoff.Budget](t)(backoff.NewBudget(backoff.BudgetConfig{}))
	must[*Registration](t)(m.RegisterBudget("rpc", bu))
	for range 20 {
		bu.Deposit()
	}
	for range 50 {
		bu.Withdraw()
	}

	// A breaker opened by failures, and a set of them with one key open.
	cfg := backoff.BreakerConfig{WindowCalls: 4, MinCalls: 2, FailureRate: 0.5, OpenWait: time.Hour}
	br := must[*backoff.Breaker](t)(backoff.NewBreaker(cfg))
	must[*Registration](t)(m.RegisterBreaker("db", br))
	fail := errors.New("boom")
	for range 3 {
		if tk, err := br.Allow(); err == nil {
			br.Record(tk, fail)
		}
	}
	br.Allow() // refused
	bs := must[*backoff.Breakers[string]](t)(backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: cfg}))
	must[*Registration](t)(RegisterBreakers(m, "hosts", bs, []string{"h1", "h2", "h3"}))
	for range 3 {
		if tk, err := bs.Allow("h1"); err == nil {
			bs.Record(tk, fail)
		}
	}
	if tk, err := bs.Allow("h2"); err == nil {
		bs.Record(tk, nil)
	}

	th := must[*backoff.Throttle](t)(backoff.NewThrottle(backoff.ThrottleConfig{}))
	must[*Registration](t)(m.RegisterThrottle("api", th))
	for range 10 {
		th.Record(backoff.ThrottleRefused)
	}
	h := must[*backoff.Hedger](t)(backoff.NewHedger(backoff.HedgeConfig{}))
	must[*Registration](t)(m.RegisterHedger("reads", h))
	h.ObserveAt(time.Now(), time.Millisecond)

	got := collect(t, r)
	now := time.Now()
	checkTable(t, got, budgetTable, bu.Stats(), name("rpc"))
	checkTable(t, got, breakerTable, br.Stats(), name("db"))
	for _, k := range []string{"h1", "h2"} {
		b, _ := bs.Lookup(k)
		checkTable(t, got, breakerTable, b.Stats(), name("hosts"), key(k))
	}
	if _, ok := got[breakerPrefix+".calls"][enc(attribute.NewSet(name("hosts"), key("h3")))]; ok {
		t.Error("h3 has no breaker but was reported")
	}
	checkTable(t, got, throttleTable, th.StatsAt(now), name("api"))
	checkTable(t, got, hedgeTable, h.StatsAt(now), name("reads"))
	if v := got[breakerPrefix+".state"][enc(attribute.NewSet(name("db"), AttrState.String("open")))].value; v != 1 {
		t.Errorf("breaker state{open} = %v, want 1", v)
	}
}

// TestOtherValuesEqualStats covers lease, fence, remirror and dnsplan.
func TestOtherValuesEqualStats(t *testing.T) {
	m, r := newMeter(t)
	var lc lease.Counters
	must[*Registration](t)(m.RegisterLeaseCounters("keepers", &lc))
	lc.Observe(lease.Event{Op: lease.OpGrant})
	lc.Observe(lease.Event{Op: lease.OpGrant, Refused: true})
	lc.Observe(lease.Event{Op: lease.OpRenew, Refused: true})
	var fc fence.Counters
	must[*Registration](t)(m.RegisterFenceCounters("writes", &fc))
	fc.Observe(fence.Event{})
	fc.Observe(fence.Event{FencedOff: true})
	fc.Observe(fence.Event{FencedOff: true})

	c := must[*remirror.Concurrent](t)(remirror.NewConcurrent(remirror.Settings{}, nil))
	n1 := must[remirror.NodeID](t)(c.AddNode(100))
	n2 := must[remirror.NodeID](t)(c.AddNode(100))
	if _, err := c.AddVolume(10, n1, n2, 1); err != nil {
		t.Fatal(err)
	}
	must[*Registration](t)(m.RegisterRemirror("ebs", c))

	rp := must[*RecoveryProgress](t)(m.RegisterRecovery("locks"))
	prog := lease.Progress{Established: 3, Pending: 2, Failed: 1, InFlight: 1, Queued: 4, Lapsed: 5, Attempts: 9,
		Wasted: 2, Dropped: 1, Rate: 2.5, EstablishCost: 30 * time.Millisecond, RenewCost: 5 * time.Millisecond}
	rp.Observe(prog)

	ee := must[*EnactorEvents](t)(m.RegisterEnactorEvents("dns"))
	for _, k := range []dnsplan.EventKind{dnsplan.EventApplied, dnsplan.EventApplied, dnsplan.EventPassDone, 200} {
		ee.Observe(dnsplan.Event{Kind: k})
	}
	pe := must[*PlannerEvents](t)(m.RegisterPlannerEvents("dns"))
	pe.Observe(dnsplan.PlannerEvent{Kind: dnsplan.PlannerHeld})
	pe.Observe(dnsplan.PlannerEvent{Kind: dnsplan.PlannerCapped})

	got := collect(t, r)
	checkTable(t, got, leaseTable, lc.Stats(), name("keepers"))
	checkTable(t, got, fenceTable, fc.Stats(), name("writes"))
	checkTable(t, got, remirrorTable, c.Stats(), name("ebs"))
	checkTable(t, got, recoveryTable, prog, name("locks"))
	checkTable(t, got, enactorTable, eventCounts{1, 2, 0, 0, 0, 0, 0, 1}, name("dns"))
	checkTable(t, got, plannerTable, eventCounts{0, 1, 0, 0, 1}, name("dns"))
	if v := got[remirrorPrefix+".volume.count"][enc(attribute.NewSet(name("ebs")))].value; v != 1 {
		t.Errorf("remirror volumes = %v, want 1", v)
	}
}

// TestRecoveryNothingBeforeFirstProgress: no series before Observe.
func TestRecoveryNothingBeforeFirstProgress(t *testing.T) {
	m, r := newMeter(t)
	must[*RecoveryProgress](t)(m.RegisterRecovery("locks"))
	if got := collect(t, r); len(got) != 0 {
		t.Fatalf("collected %v before any Progress", got)
	}
}

// TestUnregisterStopsReporting: after Unregister (and after Close) a
// registration's series are gone, the name can be taken again, and a
// second Unregister is harmless.
func TestUnregisterStopsReporting(t *testing.T) {
	m, r := newMeter(t)
	q := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 1}))
	reg := must[*Registration](t)(m.RegisterQueue("api", q))
	b := must[*shed.Bulkhead](t)(shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 1}))
	must[*Registration](t)(m.RegisterBulkhead("db", b))
	ee := must[*EnactorEvents](t)(m.RegisterEnactorEvents("dns"))
	if got := collect(t, r); len(got[shedPrefix(kindQueue)+".inflight"]) != 1 {
		t.Fatalf("queue not reported: %v", got)
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if err := ee.Unregister(); err != nil {
		t.Fatal(err)
	}
	got := collect(t, r)
	if len(got[shedPrefix(kindQueue)+".inflight"]) != 0 || len(got[enactorEvents]) != 0 {
		t.Fatalf("reported after Unregister: %v", got)
	}
	if len(got[shedPrefix(kindBulkhead)+".inflight"]) != 1 {
		t.Fatalf("bulkhead lost: %v", got)
	}
	if err := reg.Unregister(); err != nil {
		t.Fatalf("second Unregister: %v", err)
	}
	reg2 := must[*Registration](t)(m.RegisterQueue("api", q))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, r); len(got) != 0 {
		t.Fatalf("reported after Close: %v", got)
	}
	if err := reg2.Unregister(); err != nil {
		t.Fatalf("Unregister after Close: %v", err)
	}
	if _, err := m.RegisterQueue("api", q); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
}

// TestBadInput: every refusal is typed and says what was refused.
func TestBadInput(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("New(nil): %v", err)
	}
	for _, o := range []Option{WithMaxKeys(0), WithMaxKeys(MaxKeysLimit + 1), nil} {
		if _, err := New(sdkmetric.NewMeterProvider(), o); !errors.Is(err, ErrInvalid) {
			t.Errorf("New with a bad option: %v", err)
		}
	}
	m, _ := newMeter(t, WithMaxKeys(2))
	q := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 1}))
	p := must[*shed.Partition[int]](t)(shed.NewPartition(shed.PartitionConfig[int]{Total: 4}))
	ps := must[*shed.Partition[stringer]](t)(shed.NewPartition(shed.PartitionConfig[stringer]{Total: 4}))
	var nilMeter *Meter
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"empty name", second(m.RegisterQueue("", q)), ErrInvalid},
		{"control character", second(m.RegisterQueue("a\nb", q)), ErrInvalid},
		{"long name", second(m.RegisterQueue(string(make([]byte, maxNameLen+1)), q)), ErrInvalid},
		{"bad UTF-8", second(m.RegisterQueue("\xff", q)), ErrInvalid},
		{"nil queue", second(m.RegisterQueue("x", nil)), ErrInvalid},
		{"nil meter", second(nilMeter.RegisterQueue("x", q)), ErrInvalid},
		{"nil meter keyed", second(RegisterPartition(nilMeter, "x", p, nil)), ErrInvalid},
		{"nil counters", second(m.RegisterLeaseCounters("x", nil)), ErrInvalid},
		{"nil partition", second(RegisterPartition[int](m, "x", nil, nil)), ErrInvalid},
		{"too many keys", second(RegisterPartition(m, "x", p, []int{1, 2, 3})), ErrInvalid},
		{"duplicate keys", second(RegisterPartition(m, "x", p, []int{1, 1})), ErrInvalid},
		{"keys formatting alike", second(RegisterPartition(m, "x", ps, []stringer{{"a b"}, {"a b"}})), ErrInvalid},
		{"empty key", second(RegisterPartition(m, "x", ps, []stringer{{""}})), ErrInvalid},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	must[*Registration](t)(m.RegisterQueue("api", q))
	_, err := m.RegisterQueue("api", q)
	if !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
	t.Logf("duplicate: %v", err)
	// The same name for another kind of primitive is fine.
	must[*Registration](t)(RegisterPartition(m, "api", p, []int{1, 2}))
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

func second[T any](_ T, err error) error { return err }

// TestCountersMonotonic: a key whose breaker the Breakers forgets and
// makes again, and a counter that goes backwards, never make a reported
// counter fall.
func TestCountersMonotonic(t *testing.T) {
	m, r := newMeter(t)
	cfg := backoff.BreakerConfig{WindowCalls: 4, MinCalls: 2, FailureRate: 0.5, OpenWait: time.Hour}
	bs := must[*backoff.Breakers[string]](t)(backoff.NewBreakers(backoff.BreakersConfig[string]{Breaker: cfg}))
	must[*Registration](t)(RegisterBreakers(m, "hosts", bs, []string{"h1"}))
	open := func() {
		for range 3 {
			if tk, err := bs.Allow("h1"); err == nil {
				bs.Record(tk, errors.New("boom"))
			}
		}
		bs.Allow("h1")
		bs.Allow("h1")
	}
	attrs := enc(attribute.NewSet(name("hosts"), key("h1")))
	open()
	first := collect(t, r)
	refused1 := first[breakerPrefix+".refused"][attrs].value
	trans1 := first[breakerPrefix+".transitions"][attrs].value
	if refused1 < 2 || trans1 < 1 {
		t.Fatalf("refused %v transitions %v, want at least 2 and 1", refused1, trans1)
	}
	if !bs.Remove("h1") {
		t.Fatal("Remove(h1) = false")
	}
	if got := collect(t, r); len(got[breakerPrefix+".refused"]) != 0 {
		t.Fatalf("removed key still reported: %v", got[breakerPrefix+".refused"])
	}
	open()
	b, _ := bs.Lookup("h1")
	got := collect(t, r)
	if v, want := got[breakerPrefix+".refused"][attrs].value, refused1+float64(b.Stats().Refused); v != want {
		t.Errorf("refused after the breaker was made again = %v, want %v", v, want)
	}
	if v := got[breakerPrefix+".transitions"][attrs].value; v < trans1 {
		t.Errorf("transitions fell from %v to %v", trans1, v)
	}

	// A source whose counter goes backwards (a reset) with the same id.
	var n int64
	tbl := []series[int64]{{metric: budgetPrefix + ".retries", source: "n", i: func(v int64) int64 { return v }}}
	must[*Registration](t)(register(m, "test", "reset", []source[int64]{{table: tbl, get: func() (int64, any, bool) { return n, 1, true }}}))
	at := enc(attribute.NewSet(name("reset")))
	var prev float64
	for _, v := range []int64{5, 7, 2, 3, 0, math.MaxInt64, 1} {
		n = v
		got := collect(t, r)[budgetPrefix+".retries"][at].value
		if got < prev {
			t.Fatalf("counter fell from %v to %v at raw %d", prev, got, v)
		}
		prev = got
	}
	if prev != math.MaxInt64 {
		t.Errorf("saturated counter = %v, want MaxInt64", prev)
	}
}

// TestUint64Saturates: counts above MaxInt64 report MaxInt64, not a
// negative number.
func TestUint64Saturates(t *testing.T) {
	if sat64(math.MaxUint64) != math.MaxInt64 || sat64(7) != 7 {
		t.Fatal("sat64")
	}
	if satAdd(math.MaxInt64, 1) != math.MaxInt64 || satAdd(2, 3) != 5 {
		t.Fatal("satAdd")
	}
}

func ExampleNew() {
	reader := sdkmetric.NewManualReader() // in production: a Prometheus or OTLP reader
	m, err := New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		panic(err)
	}
	q, _ := shed.NewQueue(shed.QueueConfig{Workers: 2})
	reg, err := m.RegisterQueue("api", q)
	if err != nil {
		panic(err)
	}
	defer reg.Unregister()

	q.TryAcquire()
	q.TryAcquire()
	q.TryAcquire() // refused: both workers busy
	q.Release()

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, mt := range rm.ScopeMetrics[0].Metrics {
		switch d := mt.Data.(type) {
		case metricdata.Gauge[int64]:
			fmt.Println(mt.Name, d.DataPoints[0].Value)
		case metricdata.Sum[int64]:
			for _, dp := range d.DataPoints {
				if reason, ok := dp.Attributes.Value(AttrReason); ok && dp.Value == 0 {
					_ = reason // print only the non-zero refusal reasons
					continue
				}
				fmt.Println(mt.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value)
			}
		}
	}
	// Output:
	// stormguard.shed.queue.inflight stormguard.name=api 1
	// stormguard.shed.queue.waiting stormguard.name=api 0
	// stormguard.shed.queue.admitted stormguard.name=api 2
	// stormguard.shed.queue.queued stormguard.name=api 0
	// stormguard.shed.queue.shed stormguard.name=api,stormguard.reason=queue_full 1
}

// TestEmbeddedAdaptiveLimits: the adaptive limit of a Queue, a Bulkhead
// and each listed Partition key is exported with stormguard.primitive;
// a primitive without one exports no adaptive series.
func TestEmbeddedAdaptiveLimits(t *testing.T) {
	m, r := newMeter(t)
	ad := &shed.AdaptiveConfig{}
	q := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 4, Adaptive: ad}))
	must[*Registration](t)(m.RegisterQueue("api", q))
	b := must[*shed.Bulkhead](t)(shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: 4, Adaptive: ad}))
	must[*Registration](t)(m.RegisterBulkhead("db", b))
	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 8, PerKey: 4, Adaptive: ad}))
	must[*Registration](t)(RegisterPartition(m, "zones", p, []string{"az1", "az2"}))
	plain := must[*shed.Queue](t)(shed.NewQueue(shed.QueueConfig{Workers: 4}))
	must[*Registration](t)(m.RegisterQueue("plain", plain))
	for range 3 {
		if q.TryAcquire() {
			q.ReleaseRTT(time.Millisecond, false)
		}
		if b.TryAcquire() {
			b.ReleaseRTT(time.Millisecond, false)
		}
		if p.TryAcquire("az1") {
			p.ReleaseRTT("az1", time.Millisecond, false)
		}
	}
	got := collect(t, r)
	prim := func(k string) attribute.KeyValue { return AttrPrimitive.String(k) }
	qs, ok := q.AdaptiveStats()
	if !ok {
		t.Fatal("queue has no adaptive stats")
	}
	checkTable(t, got, adaptiveTable, qs, name("api"), prim("queue"))
	bs, _ := b.AdaptiveStats()
	checkTable(t, got, adaptiveTable, bs, name("db"), prim("bulkhead"))
	for _, k := range []string{"az1"} {
		s, ok := p.AdaptiveStatsFor(k)
		if !ok {
			t.Fatalf("no adaptive stats for %s", k)
		}
		checkTable(t, got, adaptiveTable, s, name("zones"), prim("partition"), key(k))
	}
	if n := len(got[adaptivePrefix+".limit"]); n != 3 {
		t.Errorf("adaptive limit series: %d, want 3 (api, db, az1; az2 unused, plain not adaptive): %v", n, got[adaptivePrefix+".limit"])
	}
}
