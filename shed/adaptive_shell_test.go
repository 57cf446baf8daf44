package shed

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// movingLimitUT is a limiterUnderTest whose limit moves: runSchedule also
// checks that nobody waits while there is room under the current limit,
// and that every admission was within the limit (broken).
type movingLimitUT interface {
	limit(key int) int
	broken() string
}

// overLimit collects admissions that found more calls in flight than the
// limit, as a hook sees them.
type overLimit struct {
	mu  sync.Mutex
	bad []string
}

func (o *overLimit) check(what string, inFlight, limit int) {
	if inFlight > limit {
		o.mu.Lock()
		o.bad = append(o.bad, fmt.Sprintf("%s admitted with %d in flight over a limit of %d", what, inFlight, limit))
		o.mu.Unlock()
	}
}

func (o *overLimit) broken() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.bad) > 0 {
		return o.bad[0]
	}
	return ""
}

// rttSeq hands out the latencies and drops that releases report.
type rttSeq struct {
	rtts []time.Duration
	i    int
}

func (r *rttSeq) next() (time.Duration, bool) {
	d := r.rtts[r.i%len(r.rtts)]
	r.i++
	return d, d%3 == 0 // a third of them dropped
}

type adaptiveBulkheadUT struct {
	bulkheadUT
	*overLimit
	seq *rttSeq
}

func (b adaptiveBulkheadUT) release(int) {
	rtt, dropped := b.seq.next()
	b.ReleaseRTT(rtt, dropped)
}

func (b adaptiveBulkheadUT) try(int) bool {
	ok := b.TryAcquire()
	if ok {
		b.check("TryAcquire", b.Stats().InFlight, b.Limit())
	}
	return ok
}

func (b adaptiveBulkheadUT) limit(int) int { return b.Limit() }

func adaptiveGen(rt *rapid.T, ceiling int) (*AdaptiveConfig, *rttSeq) {
	// Low floors, small windows and frequent drops keep the limit moving
	// below its ceiling, where growth must wake waiters.
	minL := rapid.IntRange(1, min(2, ceiling)).Draw(rt, "min")
	cfg := &AdaptiveConfig{
		MinLimit:      minL,
		InitialLimit:  minL,
		WindowSamples: rapid.IntRange(1, 2).Draw(rt, "samples"),
		Smoothing:     1,
		Backoff:       0.5,
	}
	rtts := rapid.SliceOfN(rapid.SampledFrom([]time.Duration{0, time.Millisecond, 2 * time.Millisecond, 10 * time.Millisecond, time.Second, 1 << 62}), 1, 8).Draw(rt, "rtts")
	return cfg, &rttSeq{rtts: rtts}
}

// TestAdaptiveBulkheadStateMachine runs the bulkhead state machine with an
// adaptive limit moved by every release: besides the fixed bulkhead's
// invariants, no admission exceeds the limit of its moment and no call
// waits while the limit has room.
func TestAdaptiveBulkheadStateMachine(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ceiling := rapid.IntRange(1, 6).Draw(rt, "maxConcurrent")
		acfg, seq := adaptiveGen(rt, ceiling)
		o := &overLimit{}
		var b *Bulkhead
		acfg.OnLimit = func(c LimitChange) {
			if c.New < acfg.MinLimit || c.New > ceiling {
				o.check(fmt.Sprintf("limit %d outside [%d, %d]", c.New, acfg.MinLimit, ceiling), 1, 0)
			}
		}
		b, err := NewBulkhead(BulkheadConfig{
			MaxConcurrent: ceiling,
			MaxQueue:      rapid.IntRange(0, 4).Draw(rt, "maxQueue"),
			MaxWait:       time.Duration(rapid.IntRange(1, 50).Draw(rt, "maxWaitMs")) * time.Millisecond,
			Adaptive:      acfg,
			OnEvent: func(e Event) {
				if e.Kind == Admitted {
					o.check("a call", b.Stats().InFlight, b.Limit())
				}
			},
		})
		if err != nil {
			rt.Fatal(err)
		}
		ops := opsGen(1).Draw(rt, "ops")
		if broken := runSchedule(t, adaptiveBulkheadUT{bulkheadUT{b}, o, seq}, 1, ops); broken != "" {
			rt.Fatal(broken)
		}
		if s := b.Stats(); s.InFlight != 0 || s.Waiting != 0 {
			rt.Fatalf("permits leaked after the schedule: %+v", s)
		}
	})
}

func TestAdaptiveBulkheadConfig(t *testing.T) {
	_, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 8, Adaptive: &AdaptiveConfig{MaxLimit: 9}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Adaptive.MaxLimit 9 exceeds MaxConcurrent 8")
	_, err = NewBulkhead(BulkheadConfig{MaxConcurrent: 0, Adaptive: &AdaptiveConfig{}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "MaxConcurrent 0")
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 8, Adaptive: &AdaptiveConfig{}})
	require.NoError(t, err)
	assert.Equal(t, 8, b.Limit(), "the initial limit is clamped to MaxConcurrent")
	st, ok := b.AdaptiveStats()
	assert.True(t, ok)
	assert.Equal(t, 8, st.Limit)
	f, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 3})
	_, ok = f.AdaptiveStats()
	assert.False(t, ok)
	assert.Equal(t, 3, f.Limit())
}

// A limit that grows hands its new slots to the waiters at once.
func TestAdaptiveBulkheadGrowthWakesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 8, MaxQueue: 8, MaxWait: time.Hour,
			Adaptive: &AdaptiveConfig{InitialLimit: 2, WindowSamples: 1, Smoothing: 1}})
		require.NoError(t, err)
		require.True(t, b.TryAcquire())
		require.True(t, b.TryAcquire())
		results := make(chan error, 3)
		for range 3 {
			go func() { results <- b.Acquire(t.Context()) }()
		}
		synctest.Wait()
		require.Equal(t, 3, b.Stats().Waiting)
		// A fast call completes with the limit in use: 2 + √2 → 3.
		b.ReleaseRTT(time.Millisecond, false)
		synctest.Wait()
		assert.Equal(t, 3, b.Limit())
		assert.NoError(t, <-results)
		assert.NoError(t, <-results)
		s := b.Stats()
		assert.Equal(t, 3, s.InFlight, "the released slot and the new one both went to waiters")
		assert.Equal(t, 1, s.Waiting)
		b.Pause() // refuses the last waiter
		assert.ErrorIs(t, <-results, ErrPaused)
	})
}

// A limit that shrinks below the calls in flight preempts none and admits
// nobody until they are under it.
func TestAdaptiveBulkheadShrink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 4, MaxQueue: 4, MaxWait: time.Hour,
			Adaptive: &AdaptiveConfig{InitialLimit: 4, WindowSamples: 1, Backoff: 0.5}})
		require.NoError(t, err)
		for range 4 {
			require.True(t, b.TryAcquire())
		}
		result := make(chan error, 1)
		go func() { result <- b.Acquire(t.Context()) }()
		synctest.Wait()
		b.ReleaseRTT(time.Second, true) // a drop: the limit halves to 2
		assert.Equal(t, 2, b.Limit())
		synctest.Wait()
		assert.Equal(t, 3, b.Stats().InFlight, "the slot was freed, not handed on")
		assert.False(t, b.TryAcquire())
		b.Release()
		synctest.Wait()
		assert.Equal(t, 1, b.Stats().Waiting, "2 in flight, limit 2: still no room")
		b.Release()
		synctest.Wait()
		require.NoError(t, <-result)
		assert.Equal(t, 2, b.Stats().InFlight)
		b.Release()
		b.Release()
	})
}

func TestAdaptiveBulkheadDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 4, CallTimeout: 50 * time.Millisecond,
			Adaptive: &AdaptiveConfig{InitialLimit: 4, WindowSamples: 1, Backoff: 0.5}})
		require.NoError(t, err)
		require.NoError(t, b.Do(t.Context(), func(context.Context) error { time.Sleep(10 * time.Millisecond); return nil }))
		st, _ := b.AdaptiveStats()
		assert.Equal(t, int64(1), st.Samples)
		assert.Equal(t, 10*time.Millisecond, st.RTT)
		// A call that runs into CallTimeout is a drop.
		err = b.Do(t.Context(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		st, _ = b.AdaptiveStats()
		assert.Equal(t, int64(1), st.Drops)
		assert.Less(t, st.Limit, 4)
		// A call its caller cancels reports nothing, and a panic releases.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_ = b.Do(t.Context(), func(context.Context) error { return ctx.Err() })
		assert.Panics(t, func() { _ = b.Do(t.Context(), func(context.Context) error { panic("boom") }) })
		assert.Equal(t, 0, b.Stats().InFlight)
		// ReleaseRTT with nothing in flight records nothing.
		b.ReleaseRTT(time.Hour, true)
		st2, _ := b.AdaptiveStats()
		assert.Equal(t, st.Samples+1, st2.Samples, "only the cancelled-context call that was not cancelled by its own ctx counted")
	})
}

// Many goroutines through an adaptive bulkhead whose limit moves under
// them: nothing leaks, and in flight never exceeds the ceiling.
func TestAdaptiveBulkheadStress(t *testing.T) {
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 6, MaxQueue: 64, MaxWait: time.Second,
		Adaptive: &AdaptiveConfig{InitialLimit: 2, WindowSamples: 2, Smoothing: 1, Backoff: 0.5}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var over sync.Once
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				if err := b.Acquire(context.Background()); err != nil {
					continue
				}
				if n := b.Stats().InFlight; n > 6 {
					over.Do(func() { t.Errorf("%d in flight over the ceiling 6", n) })
				}
				switch (g + i) % 4 {
				case 0:
					b.Release()
				case 1:
					b.ReleaseRTT(time.Second, true)
				default:
					b.ReleaseRTT(time.Duration(i%5)*time.Millisecond, false)
				}
			}
		})
	}
	wg.Wait()
	s := b.Stats()
	assert.Zero(t, s.InFlight)
	assert.Zero(t, s.Waiting)
}

// The scheduler's workers move under its queue: no admission exceeds the
// workers of its moment, no worker idles while an item it could run waits
// once the caller has called Next, and every item ends exactly once.
func TestSchedulerSetWorkersProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dropped := 0
		s, err := NewScheduler[int](QueueConfig{Workers: 8, MaxQueue: 6}, func(Item[int], Refusal) { dropped++ })
		require.NoError(rt, err)
		s.SetWorkers(rapid.IntRange(1, 8).Draw(rt, "workers"))
		now := t0
		pushed, started, running := 0, 0, 0
		admit := func(what string) {
			started++
			running++
			if s.InFlight() > s.Workers() {
				rt.Fatalf("%s: %d running over %d workers", what, s.InFlight(), s.Workers())
			}
		}
		for range rapid.IntRange(1, 80).Draw(rt, "n") {
			now = now.Add(time.Duration(rapid.IntRange(0, 20).Draw(rt, "ms")) * time.Millisecond)
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				pushed++
				it := Item[int]{Priority: Priority(rapid.IntRange(0, 2).Draw(rt, "pri"))}
				if rapid.Bool().Draw(rt, "deadline") {
					it.Deadline = now.Add(time.Duration(rapid.IntRange(1, 100).Draw(rt, "dl")) * time.Millisecond)
				}
				if k, _ := s.Push(now, it); k == Admitted {
					admit("Push")
				}
			case 1:
				if running > 0 {
					running--
					if _, ok := s.Done(now); ok {
						admit("Done")
					}
				}
			case 2:
				s.SetWorkers(rapid.IntRange(-1, 10).Draw(rt, "workers"))
				if w := s.Workers(); w < 1 || w > 10 {
					rt.Fatalf("workers %d", w)
				}
				for {
					if _, ok := s.Next(now); !ok {
						break
					}
					admit("Next")
				}
				if s.Len() > 0 && s.InFlight() < s.Workers() {
					rt.Fatalf("%d wait with %d of %d workers busy", s.Len(), s.InFlight(), s.Workers())
				}
			case 3:
				s.Advance(now)
			}
			if s.InFlight() != running {
				rt.Fatalf("scheduler counts %d running, %d are", s.InFlight(), running)
			}
		}
		// Every item ran, was dropped, or still waits.
		st := s.Stats()
		if int(st.Admitted) != started || started+dropped+s.Len() != pushed {
			rt.Fatalf("pushed %d: started %d (counted %d), dropped %d, waiting %d", pushed, started, st.Admitted, dropped, s.Len())
		}
	})
}

func TestAdaptiveQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []LimitChange
		q, err := NewQueue(QueueConfig{Workers: 8, MaxWait: time.Second, Target: 200 * time.Millisecond, Interval: 500 * time.Millisecond,
			Adaptive: &AdaptiveConfig{InitialLimit: 2, WindowSamples: 1, Smoothing: 1, Backoff: 0.5,
				OnLimit: func(c LimitChange) { changes = append(changes, c) }}})
		require.NoError(t, err)
		assert.Equal(t, 2, q.Limit())
		require.True(t, q.TryAcquire())
		require.True(t, q.TryAcquire())
		assert.False(t, q.TryAcquire())
		results := make(chan error, 3)
		for range 3 {
			go func() { results <- q.Acquire(t.Context(), Normal) }()
		}
		synctest.Wait()
		require.Equal(t, 3, q.Stats().Waiting)
		// Growth to 3: the released slot and the new one go to waiters.
		q.ReleaseRTT(time.Millisecond, false)
		assert.Equal(t, 3, q.Limit())
		require.NoError(t, <-results)
		require.NoError(t, <-results)
		assert.Equal(t, 3, q.Stats().InFlight)
		assert.Equal(t, []LimitChange{{Old: 2, New: 3, RTT: time.Millisecond, Baseline: time.Millisecond}}, changes)
		// A drop halves it to 2 (rounded): 3 running, nobody admitted
		// until fewer than 2 run.
		q.ReleaseRTT(time.Second, true)
		assert.Equal(t, 2, q.Limit())
		synctest.Wait()
		assert.Equal(t, 2, q.Stats().InFlight)
		assert.Equal(t, 1, q.Stats().Waiting, "2 running under a limit of 2")
		q.Release()
		require.NoError(t, <-results)
		assert.Equal(t, 2, q.Stats().InFlight)
		q.Release()
		q.Release()
		st, ok := q.AdaptiveStats()
		assert.True(t, ok)
		assert.Equal(t, int64(2), st.Samples)
	})
}

func TestAdaptiveQueueConfig(t *testing.T) {
	_, err := NewQueue(QueueConfig{Workers: 4, Adaptive: &AdaptiveConfig{MaxLimit: 5, Smoothing: math.NaN()}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Adaptive.MaxLimit 5 exceeds Workers 4")
	assert.Contains(t, err.Error(), "Adaptive.Smoothing NaN")
	q, err := NewQueue(QueueConfig{Workers: 4, Adaptive: &AdaptiveConfig{}})
	require.NoError(t, err)
	assert.Equal(t, 4, q.Limit())
	f, _ := NewQueue(QueueConfig{Workers: 4})
	_, ok := f.AdaptiveStats()
	assert.False(t, ok)
	f.ReleaseRTT(time.Second, true) // nothing in flight: nothing happens
	assert.Equal(t, Stats{}, f.Stats())
}

type adaptivePartitionUT struct {
	partitionUT
	*overLimit
	seq *rttSeq
}

func (p adaptivePartitionUT) release(k int) {
	rtt, dropped := p.seq.next()
	p.ReleaseRTT(k, rtt, dropped)
}

func (p adaptivePartitionUT) try(k int) bool {
	ok := p.TryAcquire(k)
	if ok {
		p.checkKey(k)
	}
	return ok
}

func (p adaptivePartitionUT) checkKey(k int) {
	s, _ := p.StatsFor(k)
	l, _ := p.LimitFor(k)
	p.check(fmt.Sprintf("a call of key %d", k), s.InFlight, l)
	p.check("a call (regional cap)", p.Stats().InFlight, p.Partition.total)
}

func (p adaptivePartitionUT) limit(k int) int { l, _ := p.LimitFor(k); return l }

// TestAdaptivePartitionStateMachine runs the partition state machine with
// a limit per key moved by every release: no admission exceeds its key's
// limit of the moment nor the regional Total, and no call waits while its
// key and the pool have room.
func TestAdaptivePartitionStateMachine(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		total := rapid.IntRange(1, 6).Draw(rt, "total")
		perKey := rapid.IntRange(1, total).Draw(rt, "perKey")
		acfg, seq := adaptiveGen(rt, perKey)
		o := &overLimit{}
		var ut adaptivePartitionUT
		p, err := NewPartition(PartitionConfig[int]{
			Total:          total,
			PerKey:         perKey,
			MaxQueuePerKey: rapid.IntRange(0, 3).Draw(rt, "maxQueue"),
			MaxWait:        time.Duration(rapid.IntRange(1, 50).Draw(rt, "maxWaitMs")) * time.Millisecond,
			Adaptive:       acfg,
			OnEvent: func(k int, e Event) {
				if e.Kind == Admitted {
					ut.checkKey(k)
				}
			},
		})
		if err != nil {
			rt.Fatal(err)
		}
		ut = adaptivePartitionUT{partitionUT{p}, o, seq}
		ops := opsGen(3).Draw(rt, "ops")
		if broken := runSchedule(t, ut, 3, ops); broken != "" {
			rt.Fatal(broken)
		}
		if s := p.Stats(); s.InFlight != 0 || s.Waiting != 0 {
			rt.Fatalf("permits leaked after the schedule: %+v", s)
		}
	})
}

func TestAdaptivePartitionConfig(t *testing.T) {
	_, err := NewPartition(PartitionConfig[string]{Total: 8, Share: 0.5, Adaptive: &AdaptiveConfig{MaxLimit: 5}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Adaptive.MaxLimit 5 exceeds the per-key cap 4")
	var changes []LimitChange
	p, err := NewPartition(PartitionConfig[string]{Total: 8, MaxQueuePerKey: 4, MaxWait: time.Hour,
		Adaptive: &AdaptiveConfig{InitialLimit: 2, WindowSamples: 1, Smoothing: 1, Backoff: 0.5,
			OnLimit: func(c LimitChange) { changes = append(changes, c) }}})
	require.NoError(t, err)
	_, ok := p.LimitFor("a")
	assert.False(t, ok, "untracked key")
	require.True(t, p.TryAcquire("a"))
	l, ok := p.LimitFor("a")
	assert.True(t, ok)
	assert.Equal(t, 2, l)
	// Each key learns on its own.
	require.True(t, p.TryAcquire("a"))
	require.True(t, p.TryAcquire("b"))
	p.ReleaseRTT("a", time.Second, true)
	la, _ := p.LimitFor("a")
	lb, _ := p.LimitFor("b")
	assert.Equal(t, 1, la)
	assert.Equal(t, 2, lb)
	assert.Equal(t, []LimitChange{{Old: 2, New: 1, Dropped: true, Key: "a"}}, changes)
	st, ok := p.AdaptiveStatsFor("a")
	assert.True(t, ok)
	assert.Equal(t, int64(1), st.Drops)
	assert.False(t, p.TryAcquire("a"), "a is at its learned limit of 1")
	p.Release("a")
	p.Release("b")
	f, _ := NewPartition(PartitionConfig[string]{Total: 8})
	f.TryAcquire("x")
	l, _ = f.LimitFor("x")
	assert.Equal(t, 4, l)
	_, ok = f.AdaptiveStatsFor("x")
	assert.False(t, ok)
}

func TestAdaptiveNilReceivers(t *testing.T) {
	var b *Bulkhead
	var q *Queue
	var p *Partition[string]
	b.ReleaseRTT(time.Second, true)
	q.ReleaseRTT(time.Second, true)
	p.ReleaseRTT("a", time.Second, true)
	assert.Zero(t, b.Limit())
	assert.Zero(t, q.Limit())
	_, ok := p.LimitFor("a")
	assert.False(t, ok)
	_, ok = b.AdaptiveStats()
	assert.False(t, ok)
	_, ok = q.AdaptiveStats()
	assert.False(t, ok)
	_, ok = p.AdaptiveStatsFor("a")
	assert.False(t, ok)
	// Zero values, not built with their constructors.
	var zb Bulkhead
	zb.ReleaseRTT(time.Second, false)
	assert.False(t, zb.TryAcquire())
	var zq Queue
	zq.ReleaseRTT(time.Second, false)
	assert.Zero(t, zq.Limit())
	var zp Partition[float64]
	zp.ReleaseRTT(math.NaN(), time.Second, false)
	_, ok = zp.LimitFor(math.NaN())
	assert.False(t, ok)
}

// Pause refuses waiters whatever the limit does meanwhile, and a limit
// that grows while paused grants nobody.
func TestAdaptiveBulkheadPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 8, MaxQueue: 4, MaxWait: time.Hour,
			Adaptive: &AdaptiveConfig{InitialLimit: 1, WindowSamples: 1, Smoothing: 1}})
		require.NoError(t, err)
		require.True(t, b.TryAcquire())
		require.True(t, b.TryAcquire() == false)
		result := make(chan error, 1)
		go func() { result <- b.Acquire(t.Context()) }()
		synctest.Wait()
		b.Pause()
		assert.ErrorIs(t, <-result, ErrPaused)
		b.ReleaseRTT(time.Millisecond, false) // grows while paused
		assert.Greater(t, b.Limit(), 1)
		assert.False(t, b.TryAcquire(), "paused")
		b.Resume()
		assert.True(t, b.TryAcquire())
		b.Release()
		assert.Equal(t, 0, b.Stats().InFlight)
	})
}

// A standing class keeps its Backlog newest items, serves them in order,
// and times them out at min(MaxWait, Target+Interval), with no call to
// advance it: the waiters' own timers fire at that instant.
func TestQueueBacklogTimesOutWithoutARelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, err := NewQueue(QueueConfig{Workers: 1, Backlog: 3})
		require.NoError(t, err)
		require.True(t, q.TryAcquire())
		type result struct {
			err    error
			waited time.Duration
		}
		results := make([]result, 120)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				start := time.Now()
				err := q.Acquire(t.Context(), Normal)
				results[i] = result{err, time.Since(start)}
			})
			time.Sleep(time.Millisecond)
		}
		wg.Wait()
		kept := 0
		for i, r := range results {
			var ref *Refusal
			require.ErrorAs(t, r.err, &ref, "waiter %d", i)
			require.Equal(t, ErrWaitTimeout, ref.Reason)
			assert.LessOrEqual(t, r.waited, DefaultTarget+DefaultInterval, "waiter %d", i)
			if ref.MaxWait == DefaultTarget+DefaultInterval {
				kept++
				assert.Equal(t, DefaultTarget+DefaultInterval, r.waited, "waiter %d kept, timed out on time", i)
			}
		}
		assert.Equal(t, 3, kept, "the newest three were kept")
		q.Release()
	})
}
