package dnsplan_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// passCounter is an OnEvent that counts passes and notes when each
// ended.
type passCounter struct {
	mu  sync.Mutex
	at  []time.Time
	gen []fence.Token
}

func (p *passCounter) onEvent(ev dnsplan.Event) {
	if ev.Kind == dnsplan.EventPassDone {
		p.mu.Lock()
		p.at = append(p.at, time.Now())
		p.gen = append(p.gen, ev.Generation)
		p.mu.Unlock()
	}
}

func (p *passCounter) passes() ([]time.Time, []fence.Token) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.at...), append([]fence.Token(nil), p.gen...)
}

// runUntil runs e.Run on store and dns in a goroutine, lets f act on
// the bubble's clock, then cancels Run and checks that it returned the
// cancellation.
func runUntil(t *testing.T, e *dnsplan.Enactor, store dnsplan.Store, dns dnsplan.Provider, f func()) {
	t.Helper()
	c, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- e.Run(c, store, dns) }()
	synctest.Wait()
	f()
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

// TestRunPassesWhenAPlanIsPut: on a Store that is a Watcher, Run starts a
// pass as soon as a plan is put, not an Interval later, and polls every
// Interval all the same.
func TestRunPassesWhenAPlanIsPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
		var pc passCounter
		e := mustEnactor(t, dnsplan.EnactorConfig{Interval: time.Hour, OnEvent: pc.onEvent})
		start := time.Now()
		runUntil(t, e, store, dns, func() {
			for g := fence.Token(1); g <= 3; g++ {
				time.Sleep(time.Minute)
				require.NoError(t, store.Put(ctx, onePlan(g, tg(int(g), 1))))
				synctest.Wait()
				rec, _ := dns.Read(ctx, "api")
				assert.Equal(t, g, rec.Generation, "plan %d is applied the instant it is put", g)
			}
			time.Sleep(150 * time.Minute)
		})
		at, gens := pc.passes()
		var offsets []time.Duration
		for _, a := range at {
			offsets = append(offsets, a.Sub(start))
		}
		assert.Equal(t, []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 63 * time.Minute, 123 * time.Minute}, offsets)
		assert.Equal(t, []fence.Token{0, 1, 2, 3, 3, 3}, gens)
	})
}

// failingWatcher is a MemoryStore whose WaitNewer fails at once, or, if
// lie, returns at once with nothing newer; it counts the calls.
type failingWatcher struct {
	dnsplan.MemoryStore
	lie   bool
	mu    sync.Mutex
	calls int
}

func (s *failingWatcher) WaitNewer(ctx context.Context, g fence.Token) (fence.Token, error) {
	s.mu.Lock()
	s.calls++
	spinning := s.calls > 1000
	s.mu.Unlock()
	if spinning {
		// A caller in a loop: let the bubble's clock move on, so that
		// the test fails on its count instead of hanging.
		time.Sleep(time.Hour)
	}
	if s.lie {
		return g, nil
	}
	return 0, errors.New("etcd: connection refused")
}

// TestRunFailingWatcherDoesNotSpin: a Watcher that fails at once, or
// returns at once with nothing newer, makes Run wait out the Interval
// between passes, not call it again in a loop.
func TestRunFailingWatcherDoesNotSpin(t *testing.T) {
	for _, lie := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			store, dns := &failingWatcher{lie: lie}, &dnsplan.MemoryProvider{}
			require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
			var pc passCounter
			e := mustEnactor(t, dnsplan.EnactorConfig{Interval: time.Minute, OnEvent: pc.onEvent})
			runUntil(t, e, store, dns, func() { time.Sleep(10*time.Minute + 30*time.Second) })
			at, _ := pc.passes()
			assert.Len(t, at, 11, "a pass a minute, lie=%v", lie)
			for i := 1; i < len(at); i++ {
				assert.Equal(t, time.Minute, at[i].Sub(at[i-1]))
			}
			store.mu.Lock()
			assert.Equal(t, 11, store.calls)
			store.mu.Unlock()
		})
	}
}

// TestRunWatcherAnnouncesADeletedPlan: a Watcher announces the highest
// generation ever put, which clean-up (or a loss) may have deleted, so
// that the pass it starts applies an older plan: Run does not wait for
// that generation again, in a loop, but for a newer one.
func TestRunWatcherAnnouncesADeletedPlan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
		require.NoError(t, store.Put(ctx, onePlan(1, tg(1, 1))))
		var pc passCounter
		e := mustEnactor(t, dnsplan.EnactorConfig{Interval: time.Hour, OnEvent: pc.onEvent})
		runUntil(t, e, store, dns, func() {
			require.NoError(t, store.Put(ctx, onePlan(2, tg(2, 1))))
			require.NoError(t, store.Delete(ctx, 2))
			time.Sleep(90 * time.Minute)
		})
		_, gens := pc.passes()
		assert.Equal(t, []fence.Token{1, 1, 1}, gens, "at 0 (plan 1), at 0 again (2 announced, lost), at 1h")
	})
}
