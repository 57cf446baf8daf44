package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// backend simulates one zone's storage API: a call takes fast, or slow
// while the zone is sick (from sickFrom until sickUntil), each ±20% at
// random. The delay is fixed when the call starts: a call that went into
// the sick zone stays stuck even if the zone recovers meanwhile.
type backend struct {
	fast, slow          time.Duration
	sickFrom, sickUntil time.Time // zero for a zone that never turns sick

	mu  sync.Mutex
	rng *rand.Rand
}

func newBackend(fast, slow time.Duration, seed uint64, zone int) *backend {
	return &backend{fast: fast, slow: slow, rng: rand.New(rand.NewPCG(seed, uint64(zone)))}
}

func (b *backend) delay(now time.Time) time.Duration {
	d := b.fast
	if !b.sickFrom.IsZero() && !now.Before(b.sickFrom) && now.Before(b.sickUntil) {
		d = b.slow
	}
	b.mu.Lock()
	j := 1 - sickJitter + 2*sickJitter*b.rng.Float64()
	b.mu.Unlock()
	return time.Duration(float64(d) * j)
}

func (b *backend) call(ctx context.Context) error {
	t := time.NewTimer(b.delay(time.Now()))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// zoneIndex returns the index of zone in zones, or -1.
func zoneIndex(zone string) int { return slices.Index(zones, zone) }

// zoneKey is the admission key of a request: its zone.
func zoneKey(r *http.Request) string { return r.PathValue("zone") }

const pattern = "GET /az/{zone}/describe"

// design is one way of building the control plane: its handler, and the
// operator's lever to switch one zone off and on.
type design interface {
	handler(backends []*backend, inFlight []atomic.Int64) (http.Handler, error)
	pause(zone int)
	resume(zone int)
	// learned returns zone's current concurrency limit and call timeout,
	// or zeros when the design learns neither.
	learned(zone int) (limit int, timeout time.Duration)
}

// callRecord is where describe leaves the latency and outcome of its
// backend call, for a layer above that learns from them.
type callRecord struct {
	rtt time.Duration
	ok  bool
}

type callRecordKey struct{}

// describe is the service's endpoint body: one call into the zone's
// backend, bounded by the request's context. A backend that did not answer
// in time is a 504.
func describe(backends []*backend, inFlight []atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := zoneIndex(zoneKey(r))
		inFlight[i].Add(1)
		t0 := time.Now()
		err := backends[i].call(r.Context())
		rtt := time.Since(t0)
		inFlight[i].Add(-1)
		if rec, ok := r.Context().Value(callRecordKey{}).(*callRecord); ok {
			rec.rtt, rec.ok = rtt, err == nil
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// knownZones answers 404 for a zone the service does not have, before
// anything is admitted, so that a Partition never tracks a stranger's key.
func knownZones(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if zoneIndex(zoneKey(r)) < 0 {
			http.Error(w, "unknown zone", http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// shared is the 2011 design: one regional pool for every zone (a
// shed.Bulkhead through shedhttp), and a long timeout on each backend
// call. Its operator's lever is a switch in front of the pool ("disabled
// all new Create Volume requests in the affected Availability Zone").
type shared struct {
	pool     *shed.Bulkhead
	timeout  time.Duration
	disabled [3]atomic.Bool
}

func (s *shared) handler(backends []*backend, inFlight []atomic.Int64) (http.Handler, error) {
	inner := describe(backends, inFlight)
	// As in 2011, a worker that has called into a zone is stuck there until
	// the call's own long timeout, whether or not the client still waits
	// for the answer.
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.timeout)
		defer cancel()
		inner.ServeHTTP(w, r.WithContext(ctx))
	})
	admitted, err := shedhttp.New(stuck, shedhttp.Options{Bulkhead: s.pool})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(pattern, knownZones(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.disabled[zoneIndex(zoneKey(r))].Load() {
			http.Error(w, "zone disabled by the operator", http.StatusServiceUnavailable)
			return
		}
		admitted.ServeHTTP(w, r)
	})))
	return mux, nil
}

func (s *shared) pause(zone int)                   { s.disabled[zone].Store(true) }
func (s *shared) resume(zone int)                  { s.disabled[zone].Store(false) }
func (s *shared) learned(int) (int, time.Duration) { return 0, 0 }

// guarded is the fixed design: shedhttp admits each request through a
// shed.Partition keyed by zone, in which each zone learns its own
// concurrency limit (shed.AdaptiveConfig) under the regional total; each
// request's deadline is its zone's call timeout, learned from that zone's
// own successful calls (learnedTimeout), so that a call that runs past it
// is reported to the zone's limit as a drop.
type guarded struct {
	zones    *shed.Partition[string]
	timeouts []*learnedTimeout
}

func (g *guarded) handler(backends []*backend, inFlight []atomic.Int64) (http.Handler, error) {
	admitted, err := shedhttp.New(describe(backends, inFlight), shedhttp.Options{Partition: g.zones, Key: zoneKey})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(pattern, knownZones(g.withLearnedTimeout(admitted)))
	return mux, nil
}

// withLearnedTimeout puts the zone's learned call timeout on the request's
// context, and teaches it the backend call's outcome.
func (g *guarded) withLearnedTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, done := g.timeouts[zoneIndex(zoneKey(r))].nextCall()
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		rec := &callRecord{}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, callRecordKey{}, rec)))
		done(rec.rtt, rec.ok)
	})
}

func (g *guarded) pause(zone int)  { g.zones.Pause(zones[zone]) }
func (g *guarded) resume(zone int) { g.zones.Resume(zones[zone]) }
func (g *guarded) learned(zone int) (int, time.Duration) {
	limit, _ := g.zones.LimitFor(zones[zone])
	return limit, g.timeouts[zone].current()
}
