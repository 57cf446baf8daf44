package stormotel

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"go.opentelemetry.io/otel/attribute"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stormguard/stormguard/remirror"
	"github.com/stormguard/stormguard/shed"
)

// isNil reports a nil primitive, a typed nil pointer included.
func isNil(p any) bool {
	if p == nil {
		return true
	}
	v := reflect.ValueOf(p)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// one registers a single object's Stats under name.
func one[P any, S any](m *Meter, kind, name string, p P, table []series[S], stats func(P) S) (*Registration, error) {
	if isNil(p) {
		return nil, fmt.Errorf("%w: nil %s for %q", ErrInvalid, kind, name)
	}
	return register(m, kind, name, []source[S]{{table: table, get: func() (S, any, bool) { return stats(p), p, true }}})
}

// adaptive is the source of the adaptive limit inside a Queue, Bulkhead
// or Partition key: the stormguard.shed.adaptive.* series with
// stormguard.primitive set to kind (and stormguard.key for a key), reported
// only when the primitive has an adaptive limit.
func adaptive(kind string, id any, attrs []attribute.KeyValue, get func() (shed.AdaptiveStats, bool)) source[shed.AdaptiveStats] {
	return source[shed.AdaptiveStats]{
		attrs: append([]attribute.KeyValue{AttrPrimitive.String(kind)}, attrs...),
		table: adaptiveTable,
		get:   func() (shed.AdaptiveStats, any, bool) { s, ok := get(); return s, id, ok },
	}
}

// RegisterBulkhead exports b's Stats as the stormguard.shed.bulkhead.*
// metrics, with stormguard.name set to name; and, if b has an adaptive
// limit, its AdaptiveStats as the stormguard.shed.adaptive.* metrics with
// stormguard.primitive "bulkhead".
func (m *Meter) RegisterBulkhead(name string, b *shed.Bulkhead) (*Registration, error) {
	if isNil(b) {
		return nil, fmt.Errorf("%w: nil %s for %q", ErrInvalid, kindBulkhead, name)
	}
	return registerAll(m, kindBulkhead, name, append(
		bind(source[shed.Stats]{table: shedTables[kindBulkhead], get: func() (shed.Stats, any, bool) { return b.Stats(), b, true }}),
		bind(adaptive(kindBulkhead, b, nil, b.AdaptiveStats))...))
}

// RegisterQueue exports q's Stats as the stormguard.shed.queue.* metrics
// (shed.Stats has no per-priority counts, so neither do these series);
// and, if q has an adaptive limit, its AdaptiveStats as the
// stormguard.shed.adaptive.* metrics with stormguard.primitive "queue".
func (m *Meter) RegisterQueue(name string, q *shed.Queue) (*Registration, error) {
	if isNil(q) {
		return nil, fmt.Errorf("%w: nil %s for %q", ErrInvalid, kindQueue, name)
	}
	return registerAll(m, kindQueue, name, append(
		bind(source[shed.Stats]{table: shedTables[kindQueue], get: func() (shed.Stats, any, bool) { return q.Stats(), q, true }}),
		bind(adaptive(kindQueue, q, nil, q.AdaptiveStats))...))
}

// RegisterLimiter exports l's Stats as the stormguard.shed.limiter.*
// metrics.
func (m *Meter) RegisterLimiter(name string, l *shed.Limiter) (*Registration, error) {
	return one(m, kindLimiter, name, l, shedTables[kindLimiter], (*shed.Limiter).Stats)
}

// RegisterAdaptiveLimit exports a's Stats as the stormguard.shed.adaptive.*
// metrics.
func (m *Meter) RegisterAdaptiveLimit(name string, a *shed.AdaptiveLimit) (*Registration, error) {
	return one(m, "adaptive", name, a, adaptiveTable, (*shed.AdaptiveLimit).Stats)
}

// RegisterScheduler exports s's Stats as the stormguard.shed.scheduler.*
// metrics. A Scheduler is not safe for concurrent use, so the callback
// reads its Stats holding lock, the lock its driver holds around every
// call of s (a nil lock is an error matching ErrInvalid).
//
// A collection waits for lock while it holds the meter provider's own
// lock, which registering and unregistering need too. The driver may
// Unregister this registration or Close the Meter while holding lock: a
// callback waiting for lock then gives up and reports nothing, as it does
// when the collection's context ends (a reader's timeout) first. It must not
// register or unregister anything else on the provider, nor collect, while
// holding lock: that deadlocks with a collection waiting for lock.
func RegisterScheduler[T any](m *Meter, name string, s *shed.Scheduler[T], lock sync.Locker) (*Registration, error) {
	if isNil(lock) {
		return nil, fmt.Errorf("%w: nil lock for scheduler %q: a Scheduler is not safe for concurrent use", ErrInvalid, name)
	}
	if isNil(s) {
		return nil, fmt.Errorf("%w: nil %s for %q", ErrInvalid, kindScheduler, name)
	}
	done := make(chan struct{})
	return registerDone(m, kindScheduler, name, bind(source[shed.Stats]{table: shedTables[kindScheduler], getCtx: func(ctx context.Context) (shed.Stats, any, bool) {
		if !lockOrQuit(ctx, lock, done) {
			return shed.Stats{}, skipped, false
		}
		defer lock.Unlock()
		return s.Stats(), s, true
	}}), done)
}

// lockOrQuit takes lock and reports true, or gives up and reports false
// once done is closed or ctx is done. A lock that has TryLock (sync.Mutex does) costs
// nothing more when free; otherwise a goroutine waits for it, and hands it
// back at once if nobody wants it any more.
func lockOrQuit(ctx context.Context, lock sync.Locker, done <-chan struct{}) bool {
	if tl, ok := lock.(interface{ TryLock() bool }); ok && tl.TryLock() {
		return true
	}
	got, abandon := make(chan struct{}), make(chan struct{})
	go func() {
		lock.Lock()
		select {
		case got <- struct{}{}:
		case <-abandon:
			lock.Unlock()
		}
	}()
	select {
	case <-got:
		return true
	case <-done:
	case <-ctx.Done():
	}
	close(abandon)
	return false
}

// keyed registers an aggregate source (no stormguard.key) and one source
// per key.
func keyed[P any, K comparable, S any](m *Meter, kind, name string, p P, keys []K,
	aggTable []series[S], agg func() S, keyTable []series[S], forKey func(K) (S, any, bool)) (*Registration, error) {
	if isNil(p) {
		return nil, fmt.Errorf("%w: nil %s for %q", ErrInvalid, kind, name)
	}
	srcs, err := keySources(m, kind, keyTable, keys, forKey)
	if err != nil {
		return nil, err
	}
	if aggTable != nil {
		srcs = append(srcs, source[S]{table: aggTable, get: func() (S, any, bool) { return agg(), p, true }})
	}
	return register(m, kind, name, srcs)
}

// RegisterPartition exports p's Stats as the stormguard.shed.partition.*
// metrics, and the StatsFor of each of keys (formatted with %v into
// stormguard.key) as the stormguard.shed.partition.key.* metrics; the
// per-key series live under their own names so that summing them never
// counts the aggregate twice. If p has adaptive limits, each listed key's
// AdaptiveStatsFor is exported as the stormguard.shed.adaptive.* metrics
// with stormguard.primitive "partition" and stormguard.key. A Partition
// lists no keys, so the caller names the ones to export (zones, tenants
// that matter): at most the Meter's WithMaxKeys, each formatting to a
// distinct non-empty string of at most 128 bytes. A key the Partition
// holds no state for is not reported until it has some; a key the
// Partition forgot and made again keeps counters that only grow.
func RegisterPartition[K comparable](m *Meter, name string, p *shed.Partition[K], keys []K) (*Registration, error) {
	if isNil(p) {
		return nil, fmt.Errorf("%w: nil %s for %q", ErrInvalid, kindPartition, name)
	}
	srcs, err := keySources(m, kindPartition, shedTables[kindPartitionKey], keys, func(k K) (shed.Stats, any, bool) {
		s, ok := p.StatsFor(k)
		return s, p, ok
	})
	if err != nil {
		return nil, err
	}
	bs := bind(append(srcs, source[shed.Stats]{table: shedTables[kindPartition], get: func() (shed.Stats, any, bool) { return p.Stats(), p, true }})...)
	for i, k := range keys {
		bs = append(bs, bind(adaptive(kindPartition, p, srcs[i].attrs, func() (shed.AdaptiveStats, bool) { return p.AdaptiveStatsFor(k) }))...)
	}
	return registerAll(m, kindPartition, name, bs)
}

// RegisterKeyedLimiter exports l's Stats as the
// stormguard.shed.keyed_limiter.* metrics and the StatsFor of each of keys
// as the stormguard.shed.keyed_limiter.key.* metrics, as
// RegisterPartition does.
func RegisterKeyedLimiter[K comparable](m *Meter, name string, l *shed.KeyedLimiter[K], keys []K) (*Registration, error) {
	return keyed(m, kindKeyedLimiter, name, l, keys, shedTables[kindKeyedLimiter], func() shed.Stats { return l.Stats() },
		shedTables[kindKeyedLimiterKey], func(k K) (shed.Stats, any, bool) { s, ok := l.StatsFor(k); return s, l, ok })
}

// RegisterBudget exports b's Stats as the stormguard.backoff.budget.*
// metrics.
func (m *Meter) RegisterBudget(name string, b *backoff.Budget) (*Registration, error) {
	return one(m, "budget", name, b, budgetTable, (*backoff.Budget).Stats)
}

// RegisterBreaker exports b's Stats as the stormguard.backoff.breaker.*
// metrics.
func (m *Meter) RegisterBreaker(name string, b *backoff.Breaker) (*Registration, error) {
	return one(m, "breaker", name, b, breakerTable, (*backoff.Breaker).Stats)
}

// RegisterBreakers exports the Stats of the breaker of each of keys (found
// with Lookup, never created) as the stormguard.backoff.breaker.* metrics
// with stormguard.key set; a key with no breaker is not reported. When
// the Breakers forgets a key's breaker and later makes a new one, the
// key's counters (transitions, refused) go on from where the old
// breaker's stopped, so they only grow.
func RegisterBreakers[K comparable](m *Meter, name string, bs *backoff.Breakers[K], keys []K) (*Registration, error) {
	return keyed(m, "breakers", name, bs, keys, nil, nil, breakerTable, func(k K) (backoff.BreakerStats, any, bool) {
		b, ok := bs.Lookup(k)
		if !ok {
			return backoff.BreakerStats{}, nil, false
		}
		return b.Stats(), b, true
	})
}

// RegisterThrottle exports t's Stats as the stormguard.backoff.throttle.*
// metrics.
func (m *Meter) RegisterThrottle(name string, t *backoff.Throttle) (*Registration, error) {
	return one(m, "throttle", name, t, throttleTable, (*backoff.Throttle).Stats)
}

// RegisterHedger exports h's Stats as the stormguard.backoff.hedge.*
// metrics.
func (m *Meter) RegisterHedger(name string, h *backoff.Hedger) (*Registration, error) {
	return one(m, "hedger", name, h, hedgeTable, (*backoff.Hedger).Stats)
}

// RegisterLeaseCounters exports c's Stats as stormguard.lease.events, by
// stormguard.event. Plug c.Observe into the OnEvent of the Keepers (and
// Memory stores) to watch.
func (m *Meter) RegisterLeaseCounters(name string, c *lease.Counters) (*Registration, error) {
	return one(m, "lease", name, c, leaseTable, (*lease.Counters).Stats)
}

// RegisterFenceCounters exports c's Stats as stormguard.fence.operations,
// by stormguard.outcome. Plug c.Observe into the OnEvent of the Guards,
// stores or Sequencers to watch.
func (m *Meter) RegisterFenceCounters(name string, c *fence.Counters) (*Registration, error) {
	return one(m, "fence", name, c, fenceTable, (*fence.Counters).Stats)
}

// RegisterRemirror exports c's Stats as the stormguard.remirror.* metrics.
// It takes a Concurrent, not an Engine: the callback reads Stats on the
// collecting goroutine, and an Engine is not safe for concurrent use.
func (m *Meter) RegisterRemirror(name string, c *remirror.Concurrent) (*Registration, error) {
	return one(m, "remirror", name, c, remirrorTable, (*remirror.Concurrent).Stats)
}
