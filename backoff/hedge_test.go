package backoff

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func newHedger(t testing.TB, cfg HedgeConfig) *Hedger {
	t.Helper()
	h, err := NewHedger(cfg)
	require.NoError(t, err)
	return h
}

// fullBudget returns a budget without floor that holds n tokens.
func fullBudget(t testing.TB, n int) *Budget {
	t.Helper()
	b, err := NewBudget(BudgetConfig{Ratio: 1, NoFloor: true, MaxTokens: max(n, 1)})
	require.NoError(t, err)
	for range n {
		b.Deposit()
	}
	return b
}

// emptyBudget returns a budget without floor that earns nothing a hedge
// could spend from one deposit.
func emptyBudget(t testing.TB) *Budget {
	t.Helper()
	b, err := NewBudget(BudgetConfig{Ratio: 0.001, NoFloor: true})
	require.NoError(t, err)
	return b
}

func TestNewHedgerValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   HedgeConfig
		wants []string
	}{
		{"zero value", HedgeConfig{}, nil},
		{"percentile", HedgeConfig{Percentile: 0.95, Window: time.Millisecond, MinSamples: 1}, nil},
		{"max", HedgeConfig{Percentile: 1, MaxHedges: MaxHedgesLimit}, nil},
		{"negative delay", HedgeConfig{Delay: -time.Second}, []string{"Delay -1s is negative"}},
		{"negative percentile", HedgeConfig{Percentile: -0.5}, []string{"Percentile -0.5 is outside (0, 1]"}},
		{"percentile above one", HedgeConfig{Percentile: 95}, []string{"Percentile 95 is outside"}},
		{"NaN percentile", HedgeConfig{Percentile: math.NaN()}, []string{"Percentile NaN"}},
		{"infinite percentile", HedgeConfig{Percentile: math.Inf(1)}, []string{"Percentile +Inf"}},
		{"short window", HedgeConfig{Window: time.Microsecond}, []string{"Window 1µs is shorter than 1ms"}},
		{"negative window", HedgeConfig{Window: -time.Minute}, []string{"Window -1m0s"}},
		{"negative samples", HedgeConfig{MinSamples: -1}, []string{"MinSamples -1 is negative"}},
		{"negative hedges", HedgeConfig{MaxHedges: -1}, []string{"MaxHedges -1 is outside [1, 16]"}},
		{"too many hedges", HedgeConfig{MaxHedges: 17}, []string{"MaxHedges 17"}},
		{"all at once", HedgeConfig{Delay: -1, Percentile: 2, Window: -1, MinSamples: -1, MaxHedges: 100}, []string{"Delay", "Percentile", "Window", "MinSamples", "MaxHedges"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHedger(tt.cfg)
			if len(tt.wants) == 0 {
				require.NoError(t, err)
				require.NotNil(t, h)
				return
			}
			assert.Nil(t, h)
			assert.ErrorIs(t, err, ErrInvalidHedge)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// attempts is an op for hedged calls: attempt n (in the order they start)
// takes lat[n] and then succeeds with n or fails, unless its context ends
// first. It records when each attempt started and how each ended.
type attempts struct {
	lat    []time.Duration
	ok     []bool
	mu     sync.Mutex
	starts []time.Time
	ended  []string
}

var errAttempt = errors.New("attempt failed")

func (a *attempts) op(ctx context.Context) (int, error) {
	a.mu.Lock()
	n := len(a.starts)
	a.starts = append(a.starts, time.Now())
	a.mu.Unlock()
	end := func(s string) {
		a.mu.Lock()
		a.ended = append(a.ended, fmt.Sprintf("%d %s", n, s))
		a.mu.Unlock()
	}
	select {
	case <-time.After(a.lat[n]):
		if a.ok[n] {
			end("ok")
			return n, nil
		}
		end("failed")
		return -1, fmt.Errorf("%w: %d", errAttempt, n)
	case <-ctx.Done():
		end("cancelled")
		return -1, ctx.Err()
	}
}

// offsets returns the start of every attempt relative to the first.
func (a *attempts) offsets() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []time.Duration
	for _, s := range a.starts {
		out = append(out, s.Sub(a.starts[0]))
	}
	return out
}

func TestHedgeFiresAtTheDelayNotBefore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []HedgeEvent
		h := newHedger(t, HedgeConfig{Delay: 30 * time.Millisecond, MaxHedges: 3, Budget: fullBudget(t, 10),
			OnEvent: func(e HedgeEvent) { events = append(events, e) }})
		a := &attempts{lat: []time.Duration{time.Second, time.Second, 25 * time.Millisecond, time.Second}, ok: []bool{true, true, true, true}}
		start := time.Now()
		v, err := DoHedged(t.Context(), h, a.op)
		require.NoError(t, err)
		assert.Equal(t, 2, v, "the second hedge answers first")
		assert.Equal(t, 85*time.Millisecond, time.Since(start))
		assert.Equal(t, []time.Duration{0, 30 * time.Millisecond, 60 * time.Millisecond}, a.offsets(),
			"hedge n starts n·Delay after the call, not before; none after the win")
		synctest.Wait()
		assert.ElementsMatch(t, []string{"2 ok", "0 cancelled", "1 cancelled"}, a.ended, "the losers are cancelled")
		assert.Equal(t, []HedgeEvent{
			{Kind: HedgeSent, Hedge: 1, Delay: 30 * time.Millisecond},
			{Kind: HedgeSent, Hedge: 2, Delay: 30 * time.Millisecond},
			{Kind: HedgeWon, Hedge: 2, Delay: 30 * time.Millisecond},
		}, events)
		assert.Equal(t, HedgeStats{Calls: 1, Hedges: 2, Won: 1}, h.Stats())
	})
}

func TestHedgeNotSentWhenThePrimaryAnswersInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := fullBudget(t, 10)
		h := newHedger(t, HedgeConfig{Delay: 30 * time.Millisecond, Budget: b})
		a := &attempts{lat: []time.Duration{29 * time.Millisecond}, ok: []bool{true}}
		v, err := DoHedged(t.Context(), h, a.op)
		require.NoError(t, err)
		assert.Zero(t, v)
		assert.Len(t, a.starts, 1)
		assert.Equal(t, 10.0, b.Tokens(), "no token spent")
		assert.Equal(t, HedgeStats{Calls: 1}, h.Stats())
	})
}

func TestHedgeFailureDoesNotTriggerAHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedger(t, HedgeConfig{Delay: 30 * time.Millisecond, MaxHedges: 2, Budget: fullBudget(t, 10)})
		a := &attempts{lat: []time.Duration{10 * time.Millisecond}, ok: []bool{false}}
		start := time.Now()
		_, err := DoHedged(t.Context(), h, a.op)
		assert.ErrorIs(t, err, errAttempt)
		assert.Equal(t, 10*time.Millisecond, time.Since(start), "returns when its only attempt fails")
		assert.Len(t, a.starts, 1)
	})
}

func TestHedgeAllAttemptsFailReturnsTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, MaxHedges: 2, Budget: fullBudget(t, 10)})
		// Attempt 0 fails at 50ms, 1 at 15ms, 2 at 40ms: the last to fail is 0.
		a := &attempts{lat: []time.Duration{50 * time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}, ok: []bool{false, false, false}}
		start := time.Now()
		_, err := DoHedged(t.Context(), h, a.op)
		assert.EqualError(t, err, "attempt failed: 0")
		assert.Equal(t, 50*time.Millisecond, time.Since(start))
		assert.Len(t, a.starts, 3)
	})
}

func TestHedgeBudgetExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []HedgeEvent
		b := fullBudget(t, 1) // pays for one hedge only
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, MaxHedges: 3, Budget: b,
			OnEvent: func(e HedgeEvent) { events = append(events, e) }})
		a := &attempts{lat: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, time.Millisecond}, ok: []bool{true, true, true}}
		v, err := DoHedged(t.Context(), h, a.op)
		require.NoError(t, err)
		assert.Equal(t, 0, v, "no second hedge: the primary answers")
		assert.Equal(t, []time.Duration{0, 10 * time.Millisecond}, a.offsets())
		assert.Equal(t, []HedgeEvent{
			{Kind: HedgeSent, Hedge: 1, Delay: 10 * time.Millisecond},
			{Kind: HedgeRefused, Hedge: 2, Delay: 10 * time.Millisecond},
		}, events)
		assert.Equal(t, HedgeStats{Calls: 1, Hedges: 1, Refused: 1}, h.Stats())

		// An empty budget: the call is a plain call.
		h = newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, Budget: emptyBudget(t)})
		a = &attempts{lat: []time.Duration{100 * time.Millisecond}, ok: []bool{true}}
		_, err = DoHedged(t.Context(), h, a.op)
		require.NoError(t, err)
		assert.Len(t, a.starts, 1)
	})
}

func TestHedgeCallerCancelReturnsPromptly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, MaxHedges: 2, Budget: fullBudget(t, 10)})
		ctx, cancel := context.WithCancel(t.Context())
		var finished atomic.Int32
		stubborn := func(context.Context) (int, error) {
			time.Sleep(time.Hour) // ignores its context
			finished.Add(1)
			return 1, nil
		}
		time.AfterFunc(25*time.Millisecond, cancel)
		start := time.Now()
		_, err := DoHedged(ctx, h, stubborn)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 25*time.Millisecond, time.Since(start), "does not wait for attempts that ignore their context")
		assert.Equal(t, HedgeStats{Calls: 1, Hedges: 2}, h.Stats())
		time.Sleep(2 * time.Hour)
		assert.Equal(t, int32(3), finished.Load(), "the detached attempts ran to their end")
	})
}

// TestHedgeCancelRacingTheTimer: the caller's cancellation and the hedge
// timer fire at the same instant, in either order; the call returns the
// context's error, sends at most that one hedge, and leaves no goroutine.
func TestHedgeCancelRacingTheTimer(t *testing.T) {
	for range 50 {
		synctest.Test(t, func(t *testing.T) {
			b := fullBudget(t, 10)
			h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, MaxHedges: 3, Budget: b})
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(10*time.Millisecond, cancel)
			a := &attempts{lat: []time.Duration{time.Hour, time.Hour, time.Hour, time.Hour}, ok: []bool{true, true, true, true}}
			_, err := DoHedged(ctx, h, a.op)
			assert.ErrorIs(t, err, context.Canceled)
			s := h.Stats()
			assert.LessOrEqual(t, s.Hedges, int64(1))
			assert.Equal(t, 10-float64(s.Hedges), b.Tokens(), "a token is spent only for a hedge sent")
			synctest.Wait()
			assert.Len(t, a.ended, len(a.starts), "every attempt ended")
		})
	}
}

func TestHedgePanicReachesTheCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, Budget: fullBudget(t, 10)})
		var calls atomic.Int32
		cancelled := make(chan struct{})
		op := func(ctx context.Context) (int, error) {
			if calls.Add(1) == 1 {
				<-ctx.Done()
				close(cancelled)
				return 0, ctx.Err()
			}
			time.Sleep(time.Millisecond)
			panic("boom")
		}
		var got any
		func() {
			defer func() { got = recover() }()
			_, _ = DoHedged(t.Context(), h, op)
		}()
		var pe *HedgePanicError
		require.ErrorAs(t, got.(error), &pe)
		assert.Equal(t, "boom", pe.Value)
		assert.Contains(t, string(pe.Stack), "hedge_test.go")
		assert.Contains(t, pe.Error(), "backoff: hedged attempt panicked: boom")
		<-cancelled // the primary was cancelled
	})
}

func TestHedgePanicWithAnError(t *testing.T) {
	h := newHedger(t, HedgeConfig{})
	defer func() {
		assert.ErrorIs(t, recover().(error), errFlaky)
	}()
	_ = h.Do(t.Context(), func(context.Context) error { panic(errFlaky) })
	t.Fatal("not reached")
}

func TestHedgeAttemptThatExitsIsAFailure(t *testing.T) {
	h := newHedger(t, HedgeConfig{})
	err := h.Do(t.Context(), func(context.Context) error { runtime.Goexit(); return nil })
	assert.ErrorIs(t, err, errAttemptExited)
}

func TestHedgeInvalidArguments(t *testing.T) {
	h := newHedger(t, HedgeConfig{})
	op := func(context.Context) (int, error) { return 1, nil }
	_, err := DoHedged(nil, h, op) //nolint:staticcheck // a nil context is the point
	assert.ErrorIs(t, err, ErrInvalidArgument)
	_, err = DoHedged(t.Context(), nil, op)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorContains(t, err, "nil Hedger")
	_, err = DoHedged[int](t.Context(), h, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorIs(t, h.Do(t.Context(), nil), ErrInvalidArgument)
	var nilHedger *Hedger
	assert.ErrorIs(t, nilHedger.Do(t.Context(), func(context.Context) error { return nil }), ErrInvalidArgument)
	_, err = RetryHedged(t.Context(), Policy{}, nil, op)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	_, err = RetryHedged[int](t.Context(), Policy{}, h, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = DoHedged(ctx, h, func(context.Context) (int, error) { panic("not called") })
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, HedgeStats{}, h.Stats())
}

func TestHedgePercentileTracksLatencies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedger(t, HedgeConfig{Delay: time.Second, Percentile: 0.9, MinSamples: 10, Budget: fullBudget(t, 100)})
		fixed := func(d time.Duration) func(context.Context) (int, error) {
			return func(ctx context.Context) (int, error) {
				select {
				case <-time.After(d):
					return 0, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
		}
		for i := range 9 {
			_, err := DoHedged(t.Context(), h, fixed(time.Duration(i+1)*time.Millisecond))
			require.NoError(t, err)
		}
		assert.Equal(t, time.Second, h.DelayAt(time.Now()), "Delay until MinSamples")
		_, err := DoHedged(t.Context(), h, fixed(10*time.Millisecond))
		require.NoError(t, err)
		// The 90th percentile of 1..10ms is 9ms, in the bin
		// [2^23ns, 1.25·2^23ns) whose upper bound is the delay.
		d := h.DelayAt(time.Now())
		assert.Equal(t, time.Duration(5<<21-1), d)

		// A slow primary is hedged at the tracked delay.
		a := &attempts{lat: []time.Duration{time.Second, time.Millisecond}, ok: []bool{true, true}}
		v, err := DoHedged(t.Context(), h, a.op)
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		assert.Equal(t, []time.Duration{0, d}, a.offsets())

		// Latencies move, and the delay follows within a window.
		time.Sleep(DefaultHedgeWindow)
		for range 20 {
			_, err := DoHedged(t.Context(), h, fixed(100*time.Microsecond))
			require.NoError(t, err)
		}
		assert.Equal(t, sketchUpper(sketchBin(int64(100*time.Microsecond))), h.DelayAt(time.Now()))
		assert.Equal(t, int64(20), h.Stats().Samples)
	})
}

// TestHedgePercentileProperty: for any latencies observed at any times, the
// delay is the configured Delay below MinSamples samples in the window, and
// otherwise at least the nearest-rank percentile of the samples of the last
// one or two half windows and at most 25% above it (1µs below 1µs).
func TestHedgePercentileProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		window := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(time.Hour)).Draw(t, "window"))
		q := rapid.Float64Range(0.01, 1).Draw(t, "percentile")
		minSamples := rapid.IntRange(1, 30).Draw(t, "minSamples")
		h, err := NewHedger(HedgeConfig{Delay: 7 * time.Second, Percentile: q, Window: window, MinSamples: minSamples})
		if err != nil {
			t.Fatal(err)
		}
		half := window / 2
		now := time.Unix(rapid.Int64Range(-1e9, 1e9).Draw(t, "start"), 0)
		var start time.Time // the first time the hedger sees
		type sample struct {
			half    int64
			latency time.Duration
		}
		var samples []sample
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			if rapid.Bool().Draw(t, "advance") {
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(window)).Draw(t, "by")))
			}
			if start.IsZero() {
				start = now
			}
			cur := int64(now.Sub(start) / half)
			if rapid.IntRange(0, 3).Draw(t, "op") > 0 {
				l := time.Duration(rapid.Int64Range(0, int64(2*time.Hour)).Draw(t, "latency"))
				h.ObserveAt(now, l)
				samples = append(samples, sample{cur, l})
				continue
			}
			var live []time.Duration
			for _, s := range samples {
				if cur-s.half <= 1 {
					live = append(live, s.latency)
				}
			}
			got := h.DelayAt(now)
			if len(live) < minSamples {
				if got != 7*time.Second {
					t.Fatalf("%d samples < %d: delay %v, want the fixed 7s", len(live), minSamples, got)
				}
				continue
			}
			slices.Sort(live)
			exact := live[max(int(math.Ceil(q*float64(len(live))))-1, 0)]
			want := min(exact, 1<<sketchMaxExp)
			if got < want || float64(got) > max(1.25*float64(want), 1<<sketchMinExp) {
				t.Fatalf("delay %v for percentile %v of %d samples, exact %v", got, q, len(live), exact)
			}
		}
	})
}

// TestHedgeProperty: over random schedules of sequential calls (latencies,
// successes, budget), every call makes at most MaxHedges+1 attempts, returns
// exactly the result a model of the schedule predicts (the first success,
// else the last failure), and the hedges never exceed what the Budget
// allows: Ratio·calls, as the budget has no floor. Each schedule runs in a
// synctest bubble of its own; rapid checks the outcome outside it.
func TestHedgeProperty(t *testing.T) {
	var totalHedges, totalRefused int64
	defer func() { t.Logf("%d hedges sent and %d refused in all", totalHedges, totalRefused) }()
	rapid.Check(t, func(rt *rapid.T) {
		const delay = 10 * time.Millisecond
		ratio := rapid.Float64Range(0.01, 1).Draw(rt, "ratio")
		maxTokens := rapid.IntRange(1, 5).Draw(rt, "maxTokens")
		maxHedges := rapid.IntRange(1, 8).Draw(rt, "maxHedges")
		calls := make([]*attempts, rapid.IntRange(1, 30).Draw(rt, "calls"))
		for c := range calls {
			// Attempt i ends at i·delay + lat[i]; the 0.1(i+1)ms offsets
			// keep every end apart from the others and from the hedge
			// timer's ticks.
			a := &attempts{}
			for i := range maxHedges + 1 {
				ms := rapid.IntRange(0, 60).Draw(rt, "ms")
				a.lat = append(a.lat, time.Duration(ms)*time.Millisecond+time.Duration(i+1)*100*time.Microsecond)
				a.ok = append(a.ok, rapid.IntRange(0, 2).Draw(rt, "ok") > 0)
			}
			calls[c] = a
		}
		type result struct {
			v   int
			err error
		}
		results := make([]result, len(calls))
		var stats HedgeStats
		var budget BudgetStats
		synctest.Test(t, func(t *testing.T) {
			b, err := NewBudget(BudgetConfig{Ratio: ratio, NoFloor: true, MaxTokens: maxTokens})
			require.NoError(t, err)
			h := newHedger(t, HedgeConfig{Delay: delay, MaxHedges: maxHedges, Budget: b})
			for c, a := range calls {
				v, err := DoHedged(context.Background(), h, a.op)
				results[c] = result{v, err}
				synctest.Wait() // the losers end
			}
			stats, budget = h.Stats(), b.Stats()
		})
		totalHedges += stats.Hedges
		totalRefused += stats.Refused
		// The model's budget: fixed-point deposits, as Budget documents.
		var balance int64
		hedges := 0
		for c, a := range calls {
			balance = min(balance+int64(ratio*tokenScale), int64(maxTokens)*tokenScale)
			wantSent, wantV, wantErr := hedgeModel(a, delay, maxHedges, int(balance/tokenScale))
			balance -= int64(wantSent-1) * tokenScale
			hedges += wantSent - 1
			sent := len(a.starts)
			if sent > maxHedges+1 {
				rt.Fatalf("call %d: %d attempts > MaxHedges+1 = %d", c, sent, maxHedges+1)
			}
			if sent != wantSent {
				rt.Fatalf("call %d: sent %d attempts, model %d", c, sent, wantSent)
			}
			r := results[c]
			if wantErr != "" {
				if r.err == nil || r.err.Error() != wantErr {
					rt.Fatalf("call %d: got %v, %v; model error %q", c, r.v, r.err, wantErr)
				}
			} else if r.err != nil || r.v != wantV {
				rt.Fatalf("call %d: got %v, %v; model %v", c, r.v, r.err, wantV)
			}
			if len(a.ended) != sent {
				rt.Fatalf("call %d: %d attempts sent, %d ended", c, sent, len(a.ended))
			}
		}
		if stats.Hedges != int64(hedges) || budget.Retries != stats.Hedges || budget.Refused != stats.Refused {
			rt.Fatalf("hedger sent %d (model %d), refused %d; budget paid %d, refused %d", stats.Hedges, hedges, stats.Refused, budget.Retries, budget.Refused)
		}
		if float64(stats.Hedges) > ratio*float64(len(calls))+1e-9 {
			rt.Fatalf("%d hedges > %v·%d calls", stats.Hedges, ratio, len(calls))
		}
	})
}

// hedgeModel predicts a hedged call on a virtual clock: how many attempts
// it sends, and its result (a value, or the error text).
func hedgeModel(a *attempts, delay time.Duration, maxHedges, tokens int) (sent, v int, errText string) {
	end := func(i int) time.Duration { return time.Duration(i)*delay + a.lat[i] }
	sent = 1
	for i := 1; i <= maxHedges; i++ {
		at := time.Duration(i) * delay
		settled, running := false, false
		for j := range sent {
			switch {
			case end(j) < at && a.ok[j]:
				settled = true
			case end(j) > at:
				running = true
			}
		}
		if settled || !running || tokens == 0 {
			break
		}
		tokens--
		sent++
	}
	best, last := -1, -1
	for j := range sent {
		if a.ok[j] && (best < 0 || end(j) < end(best)) {
			best = j
		}
		if !a.ok[j] && (last < 0 || end(j) > end(last)) {
			last = j
		}
	}
	if best >= 0 {
		return sent, best, ""
	}
	return sent, 0, fmt.Sprintf("%v: %d", errAttempt, last)
}

// TestHedgeConcurrentBudgetBound: many concurrent calls, all slow, draw on
// one budget: the hedges stay within Ratio·calls.
func TestHedgeConcurrentBudgetBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBudget(BudgetConfig{Ratio: 0.1, NoFloor: true})
		require.NoError(t, err)
		h := newHedger(t, HedgeConfig{Delay: time.Millisecond, MaxHedges: 3, Budget: b})
		var wg sync.WaitGroup
		const calls = 200
		for range calls {
			wg.Go(func() {
				_ = h.Do(t.Context(), func(ctx context.Context) error {
					select {
					case <-time.After(10 * time.Millisecond):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})
			})
		}
		wg.Wait()
		s := h.Stats()
		assert.LessOrEqual(t, s.Hedges, int64(0.1*calls))
		assert.Positive(t, s.Hedges)
		assert.Equal(t, int64(calls), s.Calls)
		assert.Equal(t, b.Stats().Retries, s.Hedges)
	})
}

func TestRetryHedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBudget(BudgetConfig{Ratio: 1, NoFloor: true, MaxTokens: 10})
		require.NoError(t, err)
		b.Deposit() // an earlier request's token
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, Budget: b})
		// Attempt 1 (primary) fails at once; the retry's primary is slow
		// and its hedge answers.
		a := &attempts{lat: []time.Duration{time.Millisecond, time.Hour, time.Millisecond}, ok: []bool{false, true, true}}
		other := emptyBudget(t)
		opts := make([]Option, 1, 4)
		opts[0] = WithBudget(other)
		v, err := RetryHedged(t.Context(), Policy{Base: 5 * time.Millisecond, Jitter: JitterNone}, h, a.op, opts...)
		require.NoError(t, err)
		assert.Equal(t, 2, v)
		assert.Equal(t, []time.Duration{0, 6 * time.Millisecond, 16 * time.Millisecond}, a.offsets())
		// One token from before, one deposit for the call; one token for
		// the retry, one for the hedge.
		assert.Equal(t, BudgetStats{Tokens: 0, Retries: 2}, b.Stats())
		assert.Equal(t, BudgetStats{}, other.Stats(), "h's budget replaces the one in opts")
		assert.Len(t, opts, 1)
		assert.Nil(t, opts[:cap(opts)][1].budget, "the caller's options are not written to")
	})
}

func TestHedgeWithThrottleInRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle(t, ThrottleConfig{})
		h := newHedger(t, HedgeConfig{Delay: 10 * time.Millisecond, Budget: fullBudget(t, 10)})
		a := &attempts{lat: []time.Duration{time.Hour, time.Millisecond}, ok: []bool{true, true}}
		v, err := RetryHedged(t.Context(), Policy{}, h, a.op, WithThrottle(th))
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		assert.Equal(t, ThrottleStats{Requests: 1, Accepts: 1}, th.Stats(), "one attempt of Retry, its hedge included")
	})
}

func TestHedgeEventKindString(t *testing.T) {
	assert.Equal(t, "sent refused won HedgeEventKind(9)",
		HedgeSent.String()+" "+HedgeRefused.String()+" "+HedgeWon.String()+" "+HedgeEventKind(9).String())
}

func TestSketchBins(t *testing.T) {
	prev := time.Duration(-1)
	for i := range sketchBins {
		u := sketchUpper(i)
		require.Greater(t, u, prev, "bin %d", i)
		if i < sketchBins-1 {
			assert.Equal(t, i, sketchBin(int64(u)), "upper bound of bin %d", i)
			assert.Equal(t, i+1, sketchBin(int64(u)+1), "just above bin %d", i)
		}
		prev = u
	}
	assert.Equal(t, 0, sketchBin(0))
	assert.Equal(t, sketchBins-1, sketchBin(math.MaxInt64))
}
