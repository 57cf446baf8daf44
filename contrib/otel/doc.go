// Package stormotel exports the Stats of stormguard's primitives as
// OpenTelemetry metrics, read only when a reader collects, so the
// primitives' hot paths pay nothing for them:
//
//	m, err := stormotel.New(meterProvider) // e.g. sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
//	if err != nil {
//		panic(err)
//	}
//	reg, err := m.RegisterQueue("api", queue) // stormguard.shed.queue.*{stormguard.name="api"}
//	if err != nil {
//		panic(err)
//	}
//	defer reg.Unregister()
//	zones, err := stormotel.RegisterPartition(m, "zones", partition, []string{"az1", "az2", "az3"})
//	if err != nil {
//		panic(err)
//	}
//	defer zones.Unregister()
//
// Each Register call validates its name (non-empty, at most 128 bytes of
// UTF-8 without control or invisible characters, unique per kind of
// primitive on the Meter: errors match ErrInvalid and ErrDuplicate) and
// registers one callback for the primitive. The callback runs when a
// reader collects; it calls the primitive's Stats (and StatsFor for each
// listed key) and observes the values with precomputed attribute sets. Registering adds
// no hook, lock or atomic to the primitive: its Acquire, Allow and
// Record paths are the same instructions with or without a Meter. (A
// collection calls Stats, which some primitives answer under their lock:
// that is the only contention, once per collection.)
// Unregister (or Meter.Close) removes the callback: from the next
// collection on, the registration's series are no longer reported.
//
// # Naming
//
// Names follow the OpenTelemetry semantic conventions' style: lowercase,
// dot-separated, under "stormguard." and the package's name; units are
// UCUM ("{call}", "s", and "1" for ratios only, whose names say ratio,
// since the Prometheus exporter appends _ratio to them); durations are
// reported in seconds and times as Unix seconds. Every series has the
// attribute stormguard.name (the registration's name); the others are
// listed below and take a bounded set of values: the refusal reasons,
// states and event kinds the core defines, and the keys the caller lists.
//
// Current counts of things present (calls in flight or waiting, volumes,
// keys) are up-down counters, reported as cumulative non-monotonic sums,
// since a sum over registrations or keys means something; other current
// values (limits, window counts, rates, ratios, times) are gauges;
// cumulative counts are observable counters, reported as cumulative
// monotonic sums (Prometheus: gauges, gauges and counters). Within a registration a counter never falls:
// when the object behind a series changes (a Breakers forgets a key's
// breaker and later makes a new one), a collection finds the key gone (a
// Partition or KeyedLimiter forgot it), or the counts of a key fall in all
// (a reset), the series goes on from the last value it reported and adds
// what the new object counts (what the old object counted after that
// collection is lost). Of the shed counts, queued and each refusal reason
// never fall on the same object, and admitted falls only as a grant
// revoked as its waiter gave up moves to cancelled or deadline: any other
// fall is a reset too, even when the total grew. A count that falls
// without a reset holds its last value until it grows past it. A
// Partition or KeyedLimiter key forgotten and made again between two
// collections whose every count has by then reached its old value cannot
// be told from the same key: its series add only the difference. Counts that exceed
// math.MaxInt64 report math.MaxInt64. A new registration under an old name
// starts from the primitive's own counts again.
//
// # Keys and cardinality
//
// Partition, KeyedLimiter and Breakers list no keys, and a label per key
// of unbounded traffic would be unbounded cardinality: RegisterPartition,
// RegisterKeyedLimiter and RegisterBreakers take the keys to export (zones,
// tenants, hosts that matter), at most WithMaxKeys (DefaultMaxKeys, 64,
// by default), formatted with %v into stormguard.key (distinct, non-empty,
// at most 128 bytes). The aggregate
// series of a Partition or KeyedLimiter live under their own names
// (stormguard.shed.partition.*) and the per-key ones under
// stormguard.shed.partition.key.*, so that a sum over keys never counts
// the aggregate twice. A listed key with no state (never used, forgotten,
// no breaker) is not reported until it has some.
//
// # Event-only primitives
//
// Some primitives have hooks but no Stats, or a Stats that is not safe to
// read from another goroutine. For them this package provides sinks to
// plug into their hooks, each costing one atomic add (or one lock) per
// event; those events are rare (a pass, a plan, a lease), not per call:
//
//   - RegisterEnactorEvents: EnactorEvents.Observe for
//     dnsplan.EnactorConfig.OnEvent.
//   - RegisterPlannerEvents: PlannerEvents.Observe for
//     dnsplan.PlannerConfig.OnEvent.
//   - RegisterRecovery: RecoveryProgress.Observe for the onProgress
//     argument of lease.Recovery.Run.
//   - RegisterLeaseCounters and RegisterFenceCounters export a
//     lease.Counters or fence.Counters, whose Observe is the hook.
//
// remirror's Engine is not safe for concurrent use: register the
// remirror.Concurrent that wraps it. Nor is shed's Scheduler:
// RegisterScheduler takes the lock its driver holds.
//
// # Metrics
//
// KIND is one of bulkhead, queue, limiter, scheduler, partition,
// partition.key, keyed_limiter and keyed_limiter.key (the last two of
// each pair have stormguard.key). The source is the field of the
// primitive's Stats (shed.Stats, shed.AdaptiveStats,
// backoff.BudgetStats, BreakerStats, ThrottleStats, HedgeStats,
// lease.Stats, lease.Progress, fence.Stats, remirror.Stats) or, for
// dnsplan, the event kind. The adaptive limit inside a Queue, a Bulkhead
// or a listed Partition key is reported on stormguard.shed.adaptive.* with
// stormguard.primitive set to "queue", "bulkhead" or "partition" (and
// stormguard.key), beside standalone AdaptiveLimits. The tests check that every field of every
// Stats is exported and that this table is current.
//
//	| metric | instrument | unit | attributes | source |
//	| stormguard.shed.KIND.inflight | Int64ObservableUpDownCounter | {call} |  | InFlight |
//	| stormguard.shed.KIND.waiting | Int64ObservableUpDownCounter | {call} |  | Waiting |
//	| stormguard.shed.KIND.admitted | Int64ObservableCounter | {call} |  | Admitted |
//	| stormguard.shed.KIND.queued | Int64ObservableCounter | {call} |  | Queued |
//	| stormguard.shed.KIND.shed | Int64ObservableCounter | {call} | stormguard.reason | Shed.* |
//	| stormguard.shed.adaptive.limit | Int64ObservableGauge | {call} | stormguard.key (Partition), stormguard.primitive (embedded) | Limit |
//	| stormguard.shed.adaptive.estimate | Float64ObservableGauge | {call} | stormguard.key (Partition), stormguard.primitive (embedded) | Estimate |
//	| stormguard.shed.adaptive.rtt | Float64ObservableGauge | s | stormguard.key (Partition), stormguard.primitive (embedded) | RTT |
//	| stormguard.shed.adaptive.baseline | Float64ObservableGauge | s | stormguard.key (Partition), stormguard.primitive (embedded) | Baseline |
//	| stormguard.shed.adaptive.inflight | Int64ObservableUpDownCounter | {call} | stormguard.key (Partition), stormguard.primitive (embedded) | InFlight |
//	| stormguard.shed.adaptive.samples | Int64ObservableCounter | {sample} | stormguard.key (Partition), stormguard.primitive (embedded) | Samples |
//	| stormguard.shed.adaptive.drops | Int64ObservableCounter | {sample} | stormguard.key (Partition), stormguard.primitive (embedded) | Drops |
//	| stormguard.shed.adaptive.windows | Int64ObservableCounter | {window} | stormguard.key (Partition), stormguard.primitive (embedded) | Windows |
//	| stormguard.shed.adaptive.admitted | Int64ObservableCounter | {call} | stormguard.key (Partition), stormguard.primitive (embedded) | Admitted |
//	| stormguard.shed.adaptive.refused | Int64ObservableCounter | {call} | stormguard.key (Partition), stormguard.primitive (embedded) | Refused |
//	| stormguard.backoff.budget.tokens | Float64ObservableGauge | {token} |  | Tokens |
//	| stormguard.backoff.budget.retries | Int64ObservableCounter | {retry} |  | Retries |
//	| stormguard.backoff.budget.refused | Int64ObservableCounter | {retry} |  | Refused |
//	| stormguard.backoff.breaker.state | Int64ObservableGauge | {state} | stormguard.key (Breakers), stormguard.state | State |
//	| stormguard.backoff.breaker.transitions | Int64ObservableCounter | {transition} | stormguard.key (Breakers) | Generation |
//	| stormguard.backoff.breaker.transition.time | Float64ObservableGauge | s | stormguard.key (Breakers) | Since |
//	| stormguard.backoff.breaker.calls | Int64ObservableGauge | {call} | stormguard.key (Breakers) | Calls |
//	| stormguard.backoff.breaker.failures | Int64ObservableGauge | {call} | stormguard.key (Breakers) | Failures |
//	| stormguard.backoff.breaker.slow_calls | Int64ObservableGauge | {call} | stormguard.key (Breakers) | SlowCalls |
//	| stormguard.backoff.breaker.failure_ratio | Float64ObservableGauge | 1 | stormguard.key (Breakers) | FailureRate |
//	| stormguard.backoff.breaker.slow_ratio | Float64ObservableGauge | 1 | stormguard.key (Breakers) | SlowRate |
//	| stormguard.backoff.breaker.probe.inflight | Int64ObservableUpDownCounter | {call} | stormguard.key (Breakers) | Probes |
//	| stormguard.backoff.breaker.next_probe.time | Float64ObservableGauge | s | stormguard.key (Breakers) | NextProbe |
//	| stormguard.backoff.breaker.refused | Int64ObservableCounter | {call} | stormguard.key (Breakers) | Refused |
//	| stormguard.backoff.throttle.requests | Int64ObservableGauge | {request} |  | Requests |
//	| stormguard.backoff.throttle.accepts | Int64ObservableGauge | {request} |  | Accepts |
//	| stormguard.backoff.throttle.probability | Float64ObservableGauge | 1 |  | Probability |
//	| stormguard.backoff.throttle.throttled | Int64ObservableCounter | {request} |  | Throttled |
//	| stormguard.backoff.hedge.calls | Int64ObservableCounter | {call} |  | Calls |
//	| stormguard.backoff.hedge.hedges | Int64ObservableCounter | {hedge} |  | Hedges |
//	| stormguard.backoff.hedge.refused | Int64ObservableCounter | {hedge} |  | Refused |
//	| stormguard.backoff.hedge.won | Int64ObservableCounter | {call} |  | Won |
//	| stormguard.backoff.hedge.samples | Int64ObservableGauge | {sample} |  | Samples |
//	| stormguard.lease.events | Int64ObservableCounter | {event} | stormguard.event | Granted, Renewed, Released, Expired, Lost, Held, Stale |
//	| stormguard.lease.recovery.key.count | Int64ObservableUpDownCounter | {key} | stormguard.state | Established, Pending, Failed |
//	| stormguard.lease.recovery.attempt.inflight | Int64ObservableUpDownCounter | {attempt} |  | InFlight |
//	| stormguard.lease.recovery.attempt.queued | Int64ObservableUpDownCounter | {attempt} |  | Queued |
//	| stormguard.lease.recovery.lapsed | Int64ObservableCounter | {lease} |  | Lapsed |
//	| stormguard.lease.recovery.attempts | Int64ObservableCounter | {attempt} |  | Attempts |
//	| stormguard.lease.recovery.attempt.wasted | Int64ObservableCounter | {attempt} |  | Wasted |
//	| stormguard.lease.recovery.attempt.dropped | Int64ObservableCounter | {attempt} |  | Dropped |
//	| stormguard.lease.recovery.rate | Float64ObservableGauge | {key}/s |  | Rate |
//	| stormguard.lease.recovery.establish.cost | Float64ObservableGauge | s |  | EstablishCost |
//	| stormguard.lease.recovery.renew.cost | Float64ObservableGauge | s |  | RenewCost |
//	| stormguard.fence.operations | Int64ObservableCounter | {operation} | stormguard.outcome | Admitted, FencedOff |
//	| stormguard.remirror.volume.count | Int64ObservableUpDownCounter | {volume} |  | Volumes |
//	| stormguard.remirror.volume.stuck | Int64ObservableUpDownCounter | {volume} |  | Stuck |
//	| stormguard.remirror.volume.exhausted | Int64ObservableUpDownCounter | {volume} |  | Exhausted |
//	| stormguard.remirror.volume.state | Int64ObservableUpDownCounter | {volume} | stormguard.state | ByState.* |
//	| stormguard.remirror.actions | Int64ObservableCounter | {action} | stormguard.action | Probes, Queries, Copies, Releases, Elections |
//	| stormguard.remirror.recoveries | Int64ObservableCounter | {recovery} | stormguard.outcome | Reconnected, Remirrored |
//	| stormguard.remirror.searches.refused | Int64ObservableCounter | {search} | stormguard.reason | BudgetRefused, NoCandidate |
//	| stormguard.remirror.inflight | Int64ObservableUpDownCounter | {remirror} |  | InFlight |
//	| stormguard.remirror.election.outstanding | Int64ObservableUpDownCounter | {election} |  | ElectionsOut |
//	| stormguard.remirror.free | Int64ObservableGauge | {capacity} |  | Free |
//	| stormguard.remirror.node.quarantined | Int64ObservableUpDownCounter | {node} |  | Quarantined |
//	| stormguard.dnsplan.enactor.events | Int64ObservableCounter | {event} | stormguard.event | other, applied, repaired, conflict, newer, deleted, error, pass-done |
//	| stormguard.dnsplan.planner.events | Int64ObservableCounter | {event} | stormguard.event | other, held, fail-static, fail-open, capped |
package stormotel
