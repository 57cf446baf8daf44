package stormotel

import (
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stormguard/stormguard/remirror"
	"github.com/stormguard/stormguard/shed"
)

type instKind uint8

const (
	gaugeInt instKind = iota
	gaugeFloat
	counterInt
	upDownInt // an additive current count: a non-monotonic sum
)

func (k instKind) String() string {
	return [...]string{"Int64ObservableGauge", "Float64ObservableGauge", "Int64ObservableCounter", "Int64ObservableUpDownCounter"}[k]
}

// inst is one instrument New creates.
type inst struct {
	name, unit, desc string
	kind             instKind
}

// series is one observed value: the instrument it goes to, the attribute
// that tells it from the instrument's other series of the same source (if
// any), the Stats field it is read from (for the coverage test and the
// documentation) and the reader.
type series[S any] struct {
	metric string
	attr   attribute.KeyValue
	source string
	i      func(S) int64
	f      func(S) float64
	// steady marks a counter that never falls on the same object, so a
	// fall of it is a reset; fallsInto names (by source) the counters
	// that take what this one loses without a reset, so a fall of this
	// one and them together is a reset. A counter with neither is judged
	// only by the sum of the source's counters.
	steady    bool
	fallsInto []string
}

// The shed primitives, each with its own family of instruments.
const (
	kindBulkhead        = "bulkhead"
	kindQueue           = "queue"
	kindLimiter         = "limiter"
	kindKeyedLimiter    = "keyed_limiter"
	kindKeyedLimiterKey = "keyed_limiter.key"
	kindPartition       = "partition"
	kindPartitionKey    = "partition.key"
	kindScheduler       = "scheduler"
)

var shedKinds = []string{kindBulkhead, kindQueue, kindLimiter, kindKeyedLimiter, kindKeyedLimiterKey, kindPartition, kindPartitionKey, kindScheduler}

// shedReasons are the refusal reasons of shed.ShedCounts, in its order.
var shedReasons = []struct {
	name, field string
	get         func(shed.ShedCounts) int64
}{
	{"queue_full", "QueueFull", func(c shed.ShedCounts) int64 { return c.QueueFull }},
	{"wait_timeout", "WaitTimeout", func(c shed.ShedCounts) int64 { return c.WaitTimeout }},
	{"paused", "Paused", func(c shed.ShedCounts) int64 { return c.Paused }},
	{"too_many_keys", "TooManyKeys", func(c shed.ShedCounts) int64 { return c.TooManyKeys }},
	{"deadline", "Deadline", func(c shed.ShedCounts) int64 { return c.Deadline }},
	{"evicted", "Evicted", func(c shed.ShedCounts) int64 { return c.Evicted }},
	{"rate_limited", "RateLimited", func(c shed.ShedCounts) int64 { return c.RateLimited }},
	{"limit_reached", "LimitReached", func(c shed.ShedCounts) int64 { return c.LimitReached }},
	{"cancelled", "Cancelled", func(c shed.ShedCounts) int64 { return c.Cancelled }},
}

func shedPrefix(kind string) string { return "stormguard.shed." + kind }

func shedTable(kind string) []series[shed.Stats] {
	p := shedPrefix(kind)
	t := []series[shed.Stats]{
		{metric: p + ".inflight", source: "InFlight", i: func(s shed.Stats) int64 { return int64(s.InFlight) }},
		{metric: p + ".waiting", source: "Waiting", i: func(s shed.Stats) int64 { return int64(s.Waiting) }},
		// A grant revoked as its waiter's context ended counts as
		// cancelled or deadline (the context's error) instead of admitted.
		{metric: p + ".admitted", source: "Admitted", i: func(s shed.Stats) int64 { return s.Admitted },
			fallsInto: []string{"Shed.Cancelled", "Shed.Deadline"}},
		{metric: p + ".queued", source: "Queued", i: func(s shed.Stats) int64 { return s.Queued }, steady: true},
	}
	for _, r := range shedReasons {
		t = append(t, series[shed.Stats]{metric: p + ".shed", attr: AttrReason.String(r.name), source: "Shed." + r.field,
			i: func(s shed.Stats) int64 { return r.get(s.Shed) }, steady: true})
	}
	return t
}

var shedTables = func() map[string][]series[shed.Stats] {
	m := map[string][]series[shed.Stats]{}
	for _, k := range shedKinds {
		m[k] = shedTable(k)
	}
	return m
}()

func shedInstruments() []inst {
	var out []inst
	for _, k := range shedKinds {
		p, what := shedPrefix(k), "of the "+k
		out = append(out,
			inst{p + ".inflight", "{call}", "Work admitted and not yet released " + what + ".", upDownInt},
			inst{p + ".waiting", "{call}", "Work waiting in the queue " + what + ".", upDownInt},
			inst{p + ".admitted", "{call}", "Work admitted " + what + ", at once or after waiting.", counterInt},
			inst{p + ".queued", "{call}", "Work that had to wait " + what + ".", counterInt},
			inst{p + ".shed", "{call}", "Work refused " + what + ", by stormguard.reason.", counterInt},
		)
	}
	return out
}

// seconds is d in seconds.
func seconds(d time.Duration) float64 { return d.Seconds() }

// unixSeconds is t in seconds since the Unix epoch, or 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	// Not UnixNano, which overflows past the year 2262 (an OpenWait of
	// centuries is valid).
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

const adaptivePrefix = "stormguard.shed.adaptive"

var adaptiveTable = []series[shed.AdaptiveStats]{
	{metric: adaptivePrefix + ".limit", source: "Limit", i: func(s shed.AdaptiveStats) int64 { return int64(s.Limit) }},
	{metric: adaptivePrefix + ".estimate", source: "Estimate", f: func(s shed.AdaptiveStats) float64 { return s.Estimate }},
	{metric: adaptivePrefix + ".rtt", source: "RTT", f: func(s shed.AdaptiveStats) float64 { return seconds(s.RTT) }},
	{metric: adaptivePrefix + ".baseline", source: "Baseline", f: func(s shed.AdaptiveStats) float64 { return seconds(s.Baseline) }},
	{metric: adaptivePrefix + ".inflight", source: "InFlight", i: func(s shed.AdaptiveStats) int64 { return int64(s.InFlight) }},
	{metric: adaptivePrefix + ".samples", source: "Samples", i: func(s shed.AdaptiveStats) int64 { return s.Samples }, steady: true},
	{metric: adaptivePrefix + ".drops", source: "Drops", i: func(s shed.AdaptiveStats) int64 { return s.Drops }, steady: true},
	{metric: adaptivePrefix + ".windows", source: "Windows", i: func(s shed.AdaptiveStats) int64 { return s.Windows }, steady: true},
	{metric: adaptivePrefix + ".admitted", source: "Admitted", i: func(s shed.AdaptiveStats) int64 { return s.Admitted }, steady: true},
	{metric: adaptivePrefix + ".refused", source: "Refused", i: func(s shed.AdaptiveStats) int64 { return s.Refused }, steady: true},
}

const budgetPrefix = "stormguard.backoff.budget"

var budgetTable = []series[backoff.BudgetStats]{
	{metric: budgetPrefix + ".tokens", source: "Tokens", f: func(s backoff.BudgetStats) float64 { return s.Tokens }},
	{metric: budgetPrefix + ".retries", source: "Retries", i: func(s backoff.BudgetStats) int64 { return s.Retries }},
	{metric: budgetPrefix + ".refused", source: "Refused", i: func(s backoff.BudgetStats) int64 { return s.Refused }},
}

const breakerPrefix = "stormguard.backoff.breaker"

var breakerStates = []backoff.BreakerState{backoff.BreakerClosed, backoff.BreakerOpen, backoff.BreakerHalfOpen}

var breakerTable = func() []series[backoff.BreakerStats] {
	var t []series[backoff.BreakerStats]
	for _, st := range breakerStates {
		t = append(t, series[backoff.BreakerStats]{metric: breakerPrefix + ".state", attr: AttrState.String(st.String()), source: "State",
			i: func(s backoff.BreakerStats) int64 {
				if s.State == st {
					return 1
				}
				return 0
			}})
	}
	return append(t,
		series[backoff.BreakerStats]{metric: breakerPrefix + ".transitions", source: "Generation", i: func(s backoff.BreakerStats) int64 { return sat64(s.Generation) }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".transition.time", source: "Since", f: func(s backoff.BreakerStats) float64 { return unixSeconds(s.Since) }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".calls", source: "Calls", i: func(s backoff.BreakerStats) int64 { return int64(s.Calls) }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".failures", source: "Failures", i: func(s backoff.BreakerStats) int64 { return int64(s.Failures) }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".slow_calls", source: "SlowCalls", i: func(s backoff.BreakerStats) int64 { return int64(s.SlowCalls) }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".failure_ratio", source: "FailureRate", f: func(s backoff.BreakerStats) float64 { return s.FailureRate }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".slow_ratio", source: "SlowRate", f: func(s backoff.BreakerStats) float64 { return s.SlowRate }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".probe.inflight", source: "Probes", i: func(s backoff.BreakerStats) int64 { return int64(s.Probes) }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".next_probe.time", source: "NextProbe", f: func(s backoff.BreakerStats) float64 { return unixSeconds(s.NextProbe) }},
		series[backoff.BreakerStats]{metric: breakerPrefix + ".refused", source: "Refused", i: func(s backoff.BreakerStats) int64 { return s.Refused }},
	)
}()

const throttlePrefix = "stormguard.backoff.throttle"

var throttleTable = []series[backoff.ThrottleStats]{
	{metric: throttlePrefix + ".requests", source: "Requests", i: func(s backoff.ThrottleStats) int64 { return s.Requests }},
	{metric: throttlePrefix + ".accepts", source: "Accepts", i: func(s backoff.ThrottleStats) int64 { return s.Accepts }},
	{metric: throttlePrefix + ".probability", source: "Probability", f: func(s backoff.ThrottleStats) float64 { return s.Probability }},
	{metric: throttlePrefix + ".throttled", source: "Throttled", i: func(s backoff.ThrottleStats) int64 { return s.Throttled }},
}

const hedgePrefix = "stormguard.backoff.hedge"

var hedgeTable = []series[backoff.HedgeStats]{
	{metric: hedgePrefix + ".calls", source: "Calls", i: func(s backoff.HedgeStats) int64 { return s.Calls }},
	{metric: hedgePrefix + ".hedges", source: "Hedges", i: func(s backoff.HedgeStats) int64 { return s.Hedges }},
	{metric: hedgePrefix + ".refused", source: "Refused", i: func(s backoff.HedgeStats) int64 { return s.Refused }},
	{metric: hedgePrefix + ".won", source: "Won", i: func(s backoff.HedgeStats) int64 { return s.Won }},
	{metric: hedgePrefix + ".samples", source: "Samples", i: func(s backoff.HedgeStats) int64 { return s.Samples }},
}

const leaseEvents = "stormguard.lease.events"

var leaseTable = []series[lease.Stats]{
	{metric: leaseEvents, attr: AttrEvent.String("granted"), source: "Granted", i: func(s lease.Stats) int64 { return sat64(s.Granted) }},
	{metric: leaseEvents, attr: AttrEvent.String("renewed"), source: "Renewed", i: func(s lease.Stats) int64 { return sat64(s.Renewed) }},
	{metric: leaseEvents, attr: AttrEvent.String("released"), source: "Released", i: func(s lease.Stats) int64 { return sat64(s.Released) }},
	{metric: leaseEvents, attr: AttrEvent.String("expired"), source: "Expired", i: func(s lease.Stats) int64 { return sat64(s.Expired) }},
	{metric: leaseEvents, attr: AttrEvent.String("lost"), source: "Lost", i: func(s lease.Stats) int64 { return sat64(s.Lost) }},
	{metric: leaseEvents, attr: AttrEvent.String("held"), source: "Held", i: func(s lease.Stats) int64 { return sat64(s.Held) }},
	{metric: leaseEvents, attr: AttrEvent.String("stale"), source: "Stale", i: func(s lease.Stats) int64 { return sat64(s.Stale) }},
}

const recoveryPrefix = "stormguard.lease.recovery"

var recoveryTable = []series[lease.Progress]{
	{metric: recoveryPrefix + ".key.count", attr: AttrState.String("established"), source: "Established", i: func(s lease.Progress) int64 { return int64(s.Established) }},
	{metric: recoveryPrefix + ".key.count", attr: AttrState.String("pending"), source: "Pending", i: func(s lease.Progress) int64 { return int64(s.Pending) }},
	{metric: recoveryPrefix + ".key.count", attr: AttrState.String("failed"), source: "Failed", i: func(s lease.Progress) int64 { return int64(s.Failed) }},
	{metric: recoveryPrefix + ".attempt.inflight", source: "InFlight", i: func(s lease.Progress) int64 { return int64(s.InFlight) }},
	{metric: recoveryPrefix + ".attempt.queued", source: "Queued", i: func(s lease.Progress) int64 { return int64(s.Queued) }},
	{metric: recoveryPrefix + ".lapsed", source: "Lapsed", i: func(s lease.Progress) int64 { return s.Lapsed }},
	{metric: recoveryPrefix + ".attempts", source: "Attempts", i: func(s lease.Progress) int64 { return s.Attempts }},
	{metric: recoveryPrefix + ".attempt.wasted", source: "Wasted", i: func(s lease.Progress) int64 { return s.Wasted }},
	{metric: recoveryPrefix + ".attempt.dropped", source: "Dropped", i: func(s lease.Progress) int64 { return s.Dropped }},
	{metric: recoveryPrefix + ".rate", source: "Rate", f: func(s lease.Progress) float64 { return s.Rate }},
	{metric: recoveryPrefix + ".establish.cost", source: "EstablishCost", f: func(s lease.Progress) float64 { return seconds(s.EstablishCost) }},
	{metric: recoveryPrefix + ".renew.cost", source: "RenewCost", f: func(s lease.Progress) float64 { return seconds(s.RenewCost) }},
}

const fenceOps = "stormguard.fence.operations"

var fenceTable = []series[fence.Stats]{
	{metric: fenceOps, attr: AttrOutcome.String("admitted"), source: "Admitted", i: func(s fence.Stats) int64 { return sat64(s.Admitted) }},
	{metric: fenceOps, attr: AttrOutcome.String("fenced_off"), source: "FencedOff", i: func(s fence.Stats) int64 { return sat64(s.FencedOff) }},
}

const remirrorPrefix = "stormguard.remirror"

// remirrorStates are the volume states, in ByState's order.
var remirrorStates = []remirror.State{remirror.Healthy, remirror.Reconnecting, remirror.Searching, remirror.Copying, remirror.Electing}

var remirrorTable = func() []series[remirror.Stats] {
	p := remirrorPrefix
	t := []series[remirror.Stats]{
		{metric: p + ".volume.count", source: "Volumes", i: func(s remirror.Stats) int64 { return int64(s.Volumes) }},
		{metric: p + ".volume.stuck", source: "Stuck", i: func(s remirror.Stats) int64 { return int64(s.Stuck) }},
		{metric: p + ".volume.exhausted", source: "Exhausted", i: func(s remirror.Stats) int64 { return int64(s.Exhausted) }},
		{metric: p + ".actions", attr: AttrAction.String("probe"), source: "Probes", i: func(s remirror.Stats) int64 { return s.Probes }},
		{metric: p + ".actions", attr: AttrAction.String("query"), source: "Queries", i: func(s remirror.Stats) int64 { return s.Queries }},
		{metric: p + ".actions", attr: AttrAction.String("copy"), source: "Copies", i: func(s remirror.Stats) int64 { return s.Copies }},
		{metric: p + ".actions", attr: AttrAction.String("release"), source: "Releases", i: func(s remirror.Stats) int64 { return s.Releases }},
		{metric: p + ".actions", attr: AttrAction.String("election"), source: "Elections", i: func(s remirror.Stats) int64 { return s.Elections }},
		{metric: p + ".recoveries", attr: AttrOutcome.String("reconnected"), source: "Reconnected", i: func(s remirror.Stats) int64 { return s.Reconnected }},
		{metric: p + ".recoveries", attr: AttrOutcome.String("remirrored"), source: "Remirrored", i: func(s remirror.Stats) int64 { return s.Remirrored }},
		{metric: p + ".searches.refused", attr: AttrReason.String("budget"), source: "BudgetRefused", i: func(s remirror.Stats) int64 { return s.BudgetRefused }},
		{metric: p + ".searches.refused", attr: AttrReason.String("no_candidate"), source: "NoCandidate", i: func(s remirror.Stats) int64 { return s.NoCandidate }},
		{metric: p + ".inflight", source: "InFlight", i: func(s remirror.Stats) int64 { return int64(s.InFlight) }},
		{metric: p + ".election.outstanding", source: "ElectionsOut", i: func(s remirror.Stats) int64 { return int64(s.ElectionsOut) }},
		{metric: p + ".free", source: "Free", i: func(s remirror.Stats) int64 { return s.Free }},
		{metric: p + ".node.quarantined", source: "Quarantined", i: func(s remirror.Stats) int64 { return int64(s.Quarantined) }},
	}
	for _, st := range remirrorStates {
		t = append(t, series[remirror.Stats]{metric: p + ".volume.state", attr: AttrState.String(st.String()),
			source: "ByState[" + strconv.Itoa(int(st)) + "]",
			i:      func(s remirror.Stats) int64 { return int64(s.ByState[st]) }})
	}
	return t
}()

const (
	enactorEvents = "stormguard.dnsplan.enactor.events"
	plannerEvents = "stormguard.dnsplan.planner.events"
)

// instruments is every instrument New creates, in the order of the
// package documentation's table.
var instruments = append(shedInstruments(),
	inst{adaptivePrefix + ".limit", "{call}", "The adaptive limit's current limit.", gaugeInt},
	inst{adaptivePrefix + ".estimate", "{call}", "The real number the adaptive limit is rounded from.", gaugeFloat},
	inst{adaptivePrefix + ".rtt", "s", "The last window's mean latency.", gaugeFloat},
	inst{adaptivePrefix + ".baseline", "s", "The latency the adaptive limit compares the window's with.", gaugeFloat},
	inst{adaptivePrefix + ".inflight", "{call}", "Calls in flight through the standalone adaptive limit.", upDownInt},
	inst{adaptivePrefix + ".samples", "{sample}", "Latency samples recorded.", counterInt},
	inst{adaptivePrefix + ".drops", "{sample}", "Samples that were drops (timeouts, sheds).", counterInt},
	inst{adaptivePrefix + ".windows", "{window}", "Sampling windows closed.", counterInt},
	inst{adaptivePrefix + ".admitted", "{call}", "Calls the standalone adaptive limit admitted.", counterInt},
	inst{adaptivePrefix + ".refused", "{call}", "Calls the standalone adaptive limit refused.", counterInt},

	inst{budgetPrefix + ".tokens", "{token}", "The retry budget's banked balance, floor excluded.", gaugeFloat},
	inst{budgetPrefix + ".retries", "{retry}", "Retries the budget admitted.", counterInt},
	inst{budgetPrefix + ".refused", "{retry}", "Retries the budget refused.", counterInt},

	inst{breakerPrefix + ".state", "{state}", "1 for the breaker's current stormguard.state, 0 for the others.", gaugeInt},
	inst{breakerPrefix + ".transitions", "{transition}", "State transitions of the breaker.", counterInt},
	inst{breakerPrefix + ".transition.time", "s", "Unix time of the latest transition; 0 before the first.", gaugeFloat},
	inst{breakerPrefix + ".calls", "{call}", "Calls in the breaker's window (see backoff.BreakerStats).", gaugeInt},
	inst{breakerPrefix + ".failures", "{call}", "Failures in the breaker's window.", gaugeInt},
	inst{breakerPrefix + ".slow_calls", "{call}", "Slow calls in the breaker's window.", gaugeInt},
	inst{breakerPrefix + ".failure_ratio", "1", "Failures over calls in the breaker's window.", gaugeFloat},
	inst{breakerPrefix + ".slow_ratio", "1", "Slow calls over calls in the breaker's window.", gaugeFloat},
	inst{breakerPrefix + ".probe.inflight", "{call}", "Probes in flight (half-open).", upDownInt},
	inst{breakerPrefix + ".next_probe.time", "s", "Unix time an open breaker admits its next call; 0 otherwise.", gaugeFloat},
	inst{breakerPrefix + ".refused", "{call}", "Calls the breaker refused.", counterInt},

	inst{throttlePrefix + ".requests", "{request}", "Requests in the throttle's window.", gaugeInt},
	inst{throttlePrefix + ".accepts", "{request}", "Requests the backend accepted in the throttle's window.", gaugeInt},
	inst{throttlePrefix + ".probability", "1", "The throttle's rejection probability.", gaugeFloat},
	inst{throttlePrefix + ".throttled", "{request}", "Requests the throttle refused.", counterInt},

	inst{hedgePrefix + ".calls", "{call}", "Hedged calls made.", counterInt},
	inst{hedgePrefix + ".hedges", "{hedge}", "Hedges sent.", counterInt},
	inst{hedgePrefix + ".refused", "{hedge}", "Hedges the budget refused.", counterInt},
	inst{hedgePrefix + ".won", "{call}", "Calls that returned a hedge's success.", counterInt},
	inst{hedgePrefix + ".samples", "{sample}", "Latencies the hedge delay is computed from.", gaugeInt},

	inst{leaseEvents, "{event}", "Lease events counted by a lease.Counters, by stormguard.event.", counterInt},

	inst{recoveryPrefix + ".key.count", "{key}", "Keys of a lease recovery by stormguard.state.", upDownInt},
	inst{recoveryPrefix + ".attempt.inflight", "{attempt}", "Recovery attempts running.", upDownInt},
	inst{recoveryPrefix + ".attempt.queued", "{attempt}", "Recovery attempts waiting for a worker.", upDownInt},
	inst{recoveryPrefix + ".lapsed", "{lease}", "Leases lost because no renewal finished in time.", counterInt},
	inst{recoveryPrefix + ".attempts", "{attempt}", "Recovery attempts handed out.", counterInt},
	inst{recoveryPrefix + ".attempt.wasted", "{attempt}", "Attempts that failed or finished after their deadline.", counterInt},
	inst{recoveryPrefix + ".attempt.dropped", "{attempt}", "Attempts that left the queue without starting.", counterInt},
	inst{recoveryPrefix + ".rate", "{key}/s", "Establishments per second.", gaugeFloat},
	inst{recoveryPrefix + ".establish.cost", "s", "Moving average of an establishment's cost.", gaugeFloat},
	inst{recoveryPrefix + ".renew.cost", "s", "Moving average of a renewal's cost.", gaugeFloat},

	inst{fenceOps, "{operation}", "Fenced operations by stormguard.outcome.", counterInt},

	inst{remirrorPrefix + ".volume.count", "{volume}", "Volumes (deleted ones excluded).", upDownInt},
	inst{remirrorPrefix + ".volume.stuck", "{volume}", "Volumes not healthy.", upDownInt},
	inst{remirrorPrefix + ".volume.exhausted", "{volume}", "Volumes stuck electing for good.", upDownInt},
	inst{remirrorPrefix + ".volume.state", "{volume}", "Volumes by stormguard.state.", upDownInt},
	inst{remirrorPrefix + ".actions", "{action}", "Actions returned, by stormguard.action.", counterInt},
	inst{remirrorPrefix + ".recoveries", "{recovery}", "Recoveries, by stormguard.outcome.", counterInt},
	inst{remirrorPrefix + ".searches.refused", "{search}", "Search attempts not sent, by stormguard.reason.", counterInt},
	inst{remirrorPrefix + ".inflight", "{remirror}", "Re-mirrors in flight.", upDownInt},
	inst{remirrorPrefix + ".election.outstanding", "{election}", "Elections outstanding.", upDownInt},
	inst{remirrorPrefix + ".free", "{capacity}", "Capacity free on usable nodes, in the engine's capacity unit.", gaugeInt},
	inst{remirrorPrefix + ".node.quarantined", "{node}", "Quarantined nodes.", upDownInt},

	inst{enactorEvents, "{event}", "dnsplan enactor events, by stormguard.event.", counterInt},
	inst{plannerEvents, "{event}", "dnsplan planner events, by stormguard.event.", counterInt},
)

// instrumentKind is each instrument's kind, by name.
var instrumentKind = func() map[string]instKind {
	m := make(map[string]instKind, len(instruments))
	for _, in := range instruments {
		m[in.name] = in.kind
	}
	return m
}()
