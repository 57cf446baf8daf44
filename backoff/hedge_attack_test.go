package backoff

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestZeroHedgerMakesPlainCalls: a Hedger not built by NewHedger has no
// Budget to pay for hedges, so it sends none (as a zero Budget refuses
// every retry), and it does not panic.
func TestZeroHedgerMakesPlainCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h Hedger
		a := &attempts{lat: []time.Duration{time.Second}, ok: []bool{true}}
		v, err := DoHedged(t.Context(), &h, a.op)
		require.NoError(t, err)
		assert.Zero(t, v)
		assert.Len(t, a.starts, 1)
		assert.Equal(t, HedgeStats{Calls: 1, Refused: 1}, h.Stats())
		assert.Equal(t, DefaultHedgeDelay, h.DelayAt(time.Now()))
		h.ObserveAt(time.Now(), time.Second)
	})
}

// TestNilHedgerAccessors: Stats, DelayAt and ObserveAt of a nil *Hedger
// do not panic.
func TestNilHedgerAccessors(t *testing.T) {
	var h *Hedger
	assert.Equal(t, HedgeStats{}, h.Stats())
	assert.Equal(t, DefaultHedgeDelay, h.DelayAt(time.Now()))
	h.ObserveAt(time.Now(), time.Second)
}

// TestHedgeLearnsNothingFromAFailedPrimary: when the primary has failed
// and a hedge then wins, the primary's latency is unknown, not "at least
// the time until the hedge won".
func TestHedgeLearnsNothingFromAFailedPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, Percentile: 0.5, Budget: fullBudget(t, 10)})
		a := &attempts{lat: []time.Duration{15 * time.Millisecond, 10 * time.Millisecond}, ok: []bool{false, true}}
		v, err := DoHedged(t.Context(), h, a.op)
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		assert.Zero(t, h.Stats().Samples)

		// A primary still running when the hedge wins is a lower bound.
		a = &attempts{lat: []time.Duration{time.Hour, 10 * time.Millisecond}, ok: []bool{true, true}}
		_, err = DoHedged(t.Context(), h, a.op)
		require.NoError(t, err)
		assert.Equal(t, int64(1), h.Stats().Samples)
	})
}

// TestHedgeLoserPanicAfterReturnIsDiscarded: an attempt that panics after
// the call returned (a loser panicking on cancellation) does not crash the
// program; the call's result stands.
func TestHedgeLoserPanicAfterReturnIsDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, Budget: fullBudget(t, 10)})
		var n atomic.Int32
		v, err := DoHedged(t.Context(), h, func(ctx context.Context) (int, error) {
			if n.Add(1) == 1 {
				<-ctx.Done()
				panic("loser panics when cancelled")
			}
			return 7, nil
		})
		require.NoError(t, err)
		assert.Equal(t, 7, v)
		synctest.Wait()
	})
}

// TestRetryHedgedZeroHedgerKeepsTheCallersBudget: a Hedger without a
// Budget does not take away the Budget the caller gave Retry.
func TestRetryHedgedZeroHedgerKeepsTheCallersBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h Hedger
		b := emptyBudget(t)
		calls := 0
		_, err := RetryHedged(t.Context(), Policy{}, &h, func(context.Context) (int, error) {
			calls++
			return 0, errFlaky
		}, WithBudget(b))
		assert.ErrorIs(t, err, ErrBudgetExhausted)
		assert.Equal(t, 1, calls)
	})
}

// TestHedgerStatsDoNotDisturbASimulation: a simulation drives the sketch
// with its own clock; reading Stats, which uses the real one, must not
// move the sketch's window.
func TestHedgerStatsDoNotDisturbASimulation(t *testing.T) {
	h := newHedger(t, HedgeConfig{Percentile: 0.5, MinSamples: 1})
	sim := time.Date(2011, 4, 21, 0, 47, 0, 0, time.UTC)
	h.ObserveAt(sim, 3*time.Millisecond)
	want := h.DelayAt(sim)
	_ = h.Stats()
	assert.Equal(t, want, h.DelayAt(sim))
	assert.Equal(t, HedgeStats{Samples: 1}, h.StatsAt(sim))
	h.ObserveAt(sim.Add(time.Second), 3*time.Millisecond)
	assert.Equal(t, int64(2), h.StatsAt(sim.Add(time.Second)).Samples)
}

// TestHedgePrimaryFirstAllocations: a call whose primary answers before the
// delay allocates the attempt's goroutine, its results channel, its
// cancellable context and its timer, and nothing more (7 objects; the
// timer reports on the results channel instead of a channel of its own).
func TestHedgePrimaryFirstAllocations(t *testing.T) {
	h, err := NewHedger(HedgeConfig{Delay: time.Hour})
	require.NoError(t, err)
	ctx := context.Background()
	op := func(context.Context) (int, error) { return 1, nil }
	assert.LessOrEqual(t, testing.AllocsPerRun(200, func() { _, _ = DoHedged(ctx, h, op) }), 7.0)
}
