package shed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// t0 is when DWFM began re-establishing droplet leases, 2025-10-20 2:25 PDT.
var t0 = time.Date(2025, 10, 20, 9, 25, 0, 0, time.UTC)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

// dropLog records what a Scheduler[string] dropped.
type dropLog struct {
	names    []string
	refusals []Refusal
}

func (l *dropLog) drop(it Item[string], r Refusal) {
	l.names = append(l.names, it.Value)
	l.refusals = append(l.refusals, r)
}

// reasons returns "name:reason" for every drop, and forgets them.
func (l *dropLog) take() []string {
	var out []string
	for i, n := range l.names {
		out = append(out, n+":"+reasonName(l.refusals[i].Reason))
	}
	l.names, l.refusals = nil, nil
	return out
}

func reasonName(err error) string {
	switch err {
	case ErrQueueFull:
		return "full"
	case ErrWaitTimeout:
		return "timeout"
	case ErrDeadline:
		return "deadline"
	case ErrEvicted:
		return "evicted"
	}
	return fmt.Sprint(err)
}

func newScheduler(t *testing.T, cfg QueueConfig) (*Scheduler[string], *dropLog) {
	t.Helper()
	log := &dropLog{}
	s, err := NewScheduler(cfg, log.drop)
	require.NoError(t, err)
	return s, log
}

func push(s *Scheduler[string], now time.Time, name string, p Priority) EventKind {
	k, _ := s.Push(now, Item[string]{Value: name, Priority: p})
	return k
}

// drain calls Done until no item is handed out and returns the names in
// order.
func drain(s *Scheduler[string], now time.Time) []string {
	var out []string
	for {
		it, ok := s.Done(now)
		if !ok {
			return out
		}
		out = append(out, it.Value)
	}
}

func TestQueueConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   QueueConfig
		wants []string
	}{
		{"minimal", QueueConfig{Workers: 1}, nil},
		{"full", QueueConfig{Workers: 8, MaxQueue: 64, MaxWait: time.Second, Target: time.Millisecond, Interval: 50 * time.Millisecond, DisableLIFO: true}, nil},
		{"zero value", QueueConfig{}, []string{"Workers 0 is outside [1, 2^24]"}},
		{"negative", QueueConfig{Workers: -1, MaxQueue: -2, MaxWait: -time.Second, Target: -time.Millisecond, Interval: -time.Second},
			[]string{"Workers -1", "MaxQueue -2 is negative", "MaxWait -1s is negative", "Target -1ms is negative", "Interval -1s is negative"}},
		{"absurd", QueueConfig{Workers: 1 << 30, MaxQueue: 1 << 30, MaxWait: 24 * time.Hour, Target: 2 * time.Hour, Interval: 3 * time.Hour},
			[]string{"Workers 1073741824", "MaxQueue 1073741824 is above 2^24", "MaxWait 24h0m0s is above 1h0m0s", "Target 2h0m0s is above", "Interval 3h0m0s is above"}},
		{"longest", QueueConfig{Workers: 1 << 24, MaxQueue: 1 << 24, MaxWait: time.Hour, Target: time.Minute, Interval: time.Hour}, nil},
		{"target not below interval", QueueConfig{Workers: 1, Target: time.Second}, []string{"Target 1s is not below Interval 100ms"}},
		{"interval below default target", QueueConfig{Workers: 1, Interval: time.Millisecond}, []string{"Target 5ms is not below Interval 1ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewScheduler[int](tt.cfg, nil)
			q, qerr := NewQueue(tt.cfg)
			if tt.wants == nil {
				require.NoError(t, err)
				require.NoError(t, qerr)
				require.NotNil(t, s)
				require.NotNil(t, q)
				return
			}
			assert.Nil(t, s)
			assert.Nil(t, q)
			assert.Equal(t, err.Error(), qerr.Error())
			assert.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, err.(interface{ Unwrap() []error }).Unwrap(), len(tt.wants), "one error per bad field")
		})
	}
}

func TestSchedulerAdmitsWhileWorkersAreFree(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 2})
	assert.Equal(t, Admitted, push(s, at(0), "a", Normal))
	assert.True(t, s.TryRun())
	assert.False(t, s.TryRun())
	assert.Equal(t, Queued, push(s, at(1), "b", Normal))
	assert.Equal(t, Stats{InFlight: 2, Waiting: 1, Admitted: 2, Queued: 1}, s.Stats())

	it, ok := s.Done(at(3))
	require.True(t, ok, "the freed worker goes straight to the waiting item")
	assert.Equal(t, "b", it.Value)
	assert.Equal(t, at(1), it.Enqueued)
	assert.Equal(t, Stats{InFlight: 2, Admitted: 3, Queued: 1}, s.Stats())
	assert.Empty(t, drain(s, at(4)))
	assert.Empty(t, drain(s, at(4)))
	assert.Equal(t, 0, s.InFlight())
	_, ok = s.Done(at(5))
	assert.False(t, ok, "Done without a busy worker does nothing")
	assert.Equal(t, 0, s.InFlight())
	assert.Empty(t, log.take())
}

func TestSchedulerStrictPriority(t *testing.T) {
	s, _ := newScheduler(t, QueueConfig{Workers: 1})
	require.True(t, s.TryRun())
	for i, p := range []Priority{Sheddable, Normal, Critical, Normal, Priority(9), Critical} {
		require.Equal(t, Queued, push(s, at(float64(i)/10), fmt.Sprintf("%v%d", p, i), p))
	}
	assert.Equal(t, []string{"critical2", "critical5", "normal1", "normal3", "sheddable0", "Priority(9)4"}, drain(s, at(1)),
		"Critical before Normal before Sheddable (and unknown classes), oldest first within a class")
}

func TestSchedulerQueueFullAndEviction(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1, MaxQueue: 3})
	require.True(t, s.TryRun())
	push(s, at(0), "s1", Sheddable)
	push(s, at(1), "s2", Sheddable)
	push(s, at(2), "n1", Normal)

	assert.Equal(t, Refused, push(s, at(3), "s3", Sheddable), "Sheddable work never displaces anything")
	assert.Equal(t, []string{"s3:full"}, log.take())

	assert.Equal(t, Queued, push(s, at(4), "c1", Critical))
	assert.Equal(t, []string{"s2:evicted"}, log.take(), "the newest item of the lowest class goes")
	assert.Equal(t, Queued, push(s, at(5), "n2", Normal))
	assert.Equal(t, []string{"s1:evicted"}, log.take())
	assert.Equal(t, Refused, push(s, at(6), "n3", Normal), "no lower class left to evict from")
	assert.Equal(t, []string{"n3:full"}, log.take())
	assert.Equal(t, Queued, push(s, at(7), "c2", Critical))
	assert.Equal(t, []string{"n2:evicted"}, log.take())
	assert.Equal(t, Queued, push(s, at(8), "c3", Critical))
	assert.Equal(t, []string{"n1:evicted"}, log.take())
	assert.Equal(t, Refused, push(s, at(9), "c4", Critical), "a queue full of critical work refuses more")
	r := log.refusals[0]
	assert.Equal(t, []string{"c4:full"}, log.take())
	assert.Equal(t, "shed: queue full (3 waiting, limit 3)", (&r).Error())
	assert.Equal(t, Refusal{Reason: ErrQueueFull, Current: 3, Limit: 3}, r)

	s.Push(at(10), Item[string]{Value: "x", Priority: Critical}) // refused
	log.take()
	assert.Equal(t, ShedCounts{QueueFull: 4, Evicted: 4}, s.Stats().Shed)
	assert.Equal(t, []string{"c1", "c2", "c3"}, drain(s, at(11)))
}

func TestSchedulerEvictionRefusalText(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1, MaxQueue: 1})
	require.True(t, s.TryRun())
	push(s, at(0), "s", Sheddable)
	push(s, at(3), "c", Critical)
	require.Len(t, log.refusals, 1)
	err := error(&log.refusals[0])
	assert.ErrorIs(t, err, ErrEvicted)
	assert.ErrorIs(t, err, ErrShed)
	assert.Equal(t, "shed: evicted by higher-priority work (after waiting 3ms)", err.Error())
}

func TestSchedulerDeadlines(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1})
	pushD := func(now time.Time, name string, deadline time.Time, cost time.Duration) EventKind {
		k, _ := s.Push(now, Item[string]{Value: name, Deadline: deadline, Cost: cost})
		return k
	}
	assert.Equal(t, Refused, pushD(at(10), "passed", at(10), 0), "a deadline at now has passed")
	assert.Equal(t, Refused, pushD(at(10), "too costly", at(19), 10*time.Millisecond), "even with a free worker")
	assert.Equal(t, []string{"passed:deadline", "too costly:deadline"}, log.take())
	assert.Equal(t, Admitted, pushD(at(10), "runs", at(21), 10*time.Millisecond))

	pushD(at(11), "meets until 20", at(30), 10*time.Millisecond)
	pushD(at(12), "no deadline", time.Time{}, time.Hour)
	pushD(at(13), "negative cost", at(25), -time.Hour)
	assert.Equal(t, []string{"no deadline", "negative cost"}, drain(s, at(20)),
		"an item that can no longer finish in time is dropped, not started")
	require.Len(t, log.refusals, 1)
	assert.Equal(t, 9*time.Millisecond, log.refusals[0].Waited)
	assert.Equal(t, []string{"meets until 20:deadline"}, log.take())
}

func TestSchedulerMaxWaitIsExact(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1, MaxWait: 50 * time.Millisecond})
	require.True(t, s.TryRun())
	push(s, at(0), "a", Normal)
	push(s, at(30), "b", Normal)
	s.Advance(at(49.9))
	assert.Empty(t, log.take())
	// Nothing calls the scheduler until long after both timed out; each is
	// reported as gone at its own deadline.
	assert.Empty(t, drain(s, at(500)))
	assert.Equal(t, []string{"a:timeout", "b:timeout"}, log.take())
	for _, r := range log.refusals {
		assert.Equal(t, 50*time.Millisecond, r.Waited)
		assert.Equal(t, 50*time.Millisecond, r.MaxWait)
	}
	assert.False(t, s.Standing(Normal), "MaxWait < Target+Interval: the queue never stood")
}

// standingScheduler returns a scheduler whose only worker is busy and whose
// Normal class has become standing at 105ms: items arrived every
// millisecond from 0 to 105ms, the oldest crossed Target (5ms) at 5ms and
// stayed above it for an Interval (100ms).
func standingScheduler(t *testing.T, cfg QueueConfig) (*Scheduler[string], *dropLog) {
	cfg.Workers = 1
	if cfg.Backlog == 0 {
		cfg.Backlog = -1 // the control law of "Fail at Scale" alone
	}
	s, log := newScheduler(t, cfg)
	require.True(t, s.TryRun())
	for i := range 105 {
		push(s, at(float64(i)), fmt.Sprint(i), Normal)
		require.False(t, s.Standing(Normal), "not standing at %dms", i)
		require.Equal(t, DefaultMaxWait, s.Timeout(Normal))
	}
	assert.Empty(t, log.take())
	push(s, at(105), "105", Normal)
	require.True(t, s.Standing(Normal))
	return s, log
}

func TestSchedulerCoDelEntersStanding(t *testing.T) {
	s, log := standingScheduler(t, QueueConfig{})
	assert.Equal(t, DefaultTarget, s.Timeout(Normal))
	// Every item that had waited Target or more went at 105ms.
	require.Len(t, log.names, 101)
	for i, r := range log.refusals {
		assert.Equal(t, fmt.Sprint(i), log.names[i])
		assert.Equal(t, ErrWaitTimeout, r.Reason)
		assert.Equal(t, time.Duration(105-i)*time.Millisecond, r.Waited)
		assert.Equal(t, DefaultTarget, r.MaxWait)
	}
	log.take()
	assert.Equal(t, 5, s.Len())
	assert.False(t, s.Standing(Critical), "classes are controlled separately")
	assert.Equal(t, DefaultMaxWait, s.Timeout(Critical))
}

func TestSchedulerAdaptiveLIFO(t *testing.T) {
	s, log := standingScheduler(t, QueueConfig{})
	log.take()
	it, _ := s.Done(at(105))
	assert.Equal(t, "105", it.Value, "standing: newest first")
	it, _ = s.Done(at(105.5))
	assert.Equal(t, "104", it.Value)
	// 101 and 102 reach Target at 106 and 107ms.
	assert.Equal(t, []string{"103"}, drain(s, at(107.5)))
	assert.Equal(t, []string{"101:timeout", "102:timeout"}, log.take())
	assert.False(t, s.Standing(Normal), "the class emptied")
	assert.Equal(t, DefaultMaxWait, s.Timeout(Normal))

	s2, log2 := standingScheduler(t, QueueConfig{DisableLIFO: true})
	log2.take()
	it, _ = s2.Done(at(105))
	assert.Equal(t, "101", it.Value, "DisableLIFO: oldest first even while standing")
}

func TestSchedulerLeavesStandingAfterAQuietInterval(t *testing.T) {
	s, log := standingScheduler(t, QueueConfig{DisableLIFO: true})
	log.take()
	// From 105ms on, one item arrives and one is served every millisecond:
	// the queue holds five items, each waits about 5ms... until the first
	// ones reach Target and go. Then nothing reaches Target any more.
	var last time.Time
	for i := 106; i < 400; i++ {
		now := at(float64(i))
		push(s, now, fmt.Sprint(i), Normal)
		s.Done(now)
		for _, r := range log.refusals {
			last = now.Add(-r.Waited).Add(r.MaxWait)
		}
		log.take()
		if !s.Standing(Normal) {
			assert.Equal(t, last.Add(DefaultInterval), now, "left standing one Interval after the last item reached Target")
			assert.Positive(t, s.Len(), "while the queue still holds items")
			return
		}
	}
	t.Fatal("still standing")
}

func TestSchedulerClassesAreControlledSeparately(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1})
	require.True(t, s.TryRun())
	for i := range 300 {
		now := at(float64(i))
		push(s, now, fmt.Sprint("s", i), Sheddable)
		if i%20 == 0 {
			// A trickle of critical work: each item is served 3ms later.
			push(s, now, fmt.Sprint("c", i), Critical)
		}
		if i%20 == 3 {
			it, ok := s.Done(now)
			require.True(t, ok)
			require.Equal(t, fmt.Sprint("c", i-3), it.Value)
		}
	}
	assert.True(t, s.Standing(Sheddable))
	assert.False(t, s.Standing(Critical))
	assert.Equal(t, DefaultMaxWait, s.Timeout(Critical))
	for _, n := range log.take() {
		assert.Regexp(t, `^s\d+:timeout$`, n)
	}
}

func TestSchedulerEvictsTheOldestOfAStandingLIFOClass(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1, MaxQueue: 5, Backlog: -1})
	require.True(t, s.TryRun())
	for i := range 106 {
		push(s, at(float64(i)), fmt.Sprint(i), Sheddable)
	}
	require.True(t, s.Standing(Sheddable))
	for _, n := range []string{"a", "b", "c", "d"} {
		push(s, at(105.5), n, Sheddable)
	}
	log.take()
	push(s, at(106), "critical", Critical)
	assert.Equal(t, []string{"105:evicted"}, log.take(), "the oldest goes: it would be served last")
	assert.Equal(t, []string{"critical", "d", "c", "b", "a"}, drain(s, at(106)))
}

func TestSchedulerWake(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1, Backlog: -1})
	require.True(t, s.TryRun())
	_, a := s.Push(at(0), Item[string]{Value: "a"})
	_, b := s.Push(at(50), Item[string]{Value: "b", Deadline: at(200), Cost: 20 * time.Millisecond})
	_, c := s.Push(at(60), Item[string]{Value: "c", Deadline: at(400)})

	wake, ok := s.Wake(a)
	require.True(t, ok)
	assert.Equal(t, at(105), wake, "the class may start standing when a has waited Target+Interval")
	wake, _ = s.Wake(b)
	assert.Equal(t, at(105), wake, "b has reached Target by then")
	wake, _ = s.Wake(c)
	assert.Equal(t, at(105), wake)

	wake, ok = s.Check(at(104), c)
	assert.True(t, ok)
	assert.Equal(t, at(105), wake)
	_, e0 := s.Push(at(104), Item[string]{Value: "e0"})
	_, ok = s.Check(at(105), a)
	assert.False(t, ok, "standing at 105ms: a went")
	assert.Equal(t, []string{"a:timeout", "b:timeout", "c:timeout"}, log.take())
	require.True(t, s.Standing(Normal))
	wake, _ = s.Wake(e0)
	assert.Equal(t, at(109), wake, "standing: Target")

	s2, log2 := newScheduler(t, QueueConfig{Workers: 1})
	require.True(t, s2.TryRun())
	_, e := s2.Push(at(0), Item[string]{Value: "e", Deadline: at(80), Cost: 30 * time.Millisecond})
	wake, _ = s2.Wake(e)
	assert.Equal(t, at(50), wake, "the last moment e could start")
	wake, ok = s2.Check(at(49), e)
	assert.Equal(t, at(50), wake)
	assert.True(t, ok)
	_, ok = s2.Check(at(50), e)
	assert.False(t, ok)
	assert.Equal(t, []string{"e:deadline"}, log2.take())
	_, ok = s2.Wake(e)
	assert.False(t, ok, "a ticket of an item gone names nothing")
	_, ok = s2.Wake(Ticket{})
	assert.False(t, ok)

	s3, _ := newScheduler(t, QueueConfig{Workers: 1, MaxWait: 2 * time.Millisecond})
	require.True(t, s3.TryRun())
	_, f := s3.Push(at(0), Item[string]{Value: "f"})
	wake, _ = s3.Wake(f)
	assert.Equal(t, at(2), wake, "MaxWait below Target: MaxWait alone")
}

func TestSchedulerRemove(t *testing.T) {
	var events []Event
	cfg := QueueConfig{Workers: 1, OnEvent: func(e Event) { events = append(events, e) }}
	s, log := newScheduler(t, cfg)
	require.True(t, s.TryRun())
	_, a := s.Push(at(0), Item[string]{Value: "a", Priority: Critical})
	_, b := s.Push(at(1), Item[string]{Value: "b"})
	it, ok := s.Remove(at(2), a, context.Canceled)
	require.True(t, ok)
	assert.Equal(t, "a", it.Value)
	_, ok = s.Remove(at(2), a, context.Canceled)
	assert.False(t, ok, "only once")
	_, ok = s.Remove(at(3), b, ErrDeadline)
	assert.True(t, ok)
	_, ok = s.Remove(at(3), Ticket{idx: 99, gen: 1}, nil)
	assert.False(t, ok)
	assert.Empty(t, log.take(), "Remove does not call the drop function")
	assert.Equal(t, Stats{InFlight: 1, Admitted: 1, Queued: 2, Shed: ShedCounts{Cancelled: 1, Deadline: 1}}, s.Stats())
	assert.Equal(t, []Event{
		{Kind: Admitted},
		{Kind: Queued, Priority: Critical},
		{Kind: Queued},
		{Kind: Refused, Reason: context.Canceled, Waited: 2 * time.Millisecond, Priority: Critical},
		{Kind: Refused, Reason: ErrDeadline, Waited: 2 * time.Millisecond},
	}, events)
}

func TestSchedulerDoesNotAllocate(t *testing.T) {
	s, err := NewScheduler[int](QueueConfig{Workers: 4, MaxQueue: 64}, func(Item[int], Refusal) {})
	require.NoError(t, err)
	now := t0
	for range 4 {
		s.TryRun()
	}
	pri := []Priority{Critical, Normal, Sheddable}
	i := 0
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		i++
		s.Push(now, Item[int]{Value: i, Priority: pri[i%3], Deadline: now.Add(time.Second)})
		s.Push(now, Item[int]{Value: i, Priority: pri[(i+1)%3]})
		s.Done(now)
		s.Done(now.Add(100 * time.Microsecond))
	}))
	assert.Equal(t, 4, s.InFlight())
}

// TestSchedulerProperties drives a Scheduler with random calls at random
// times and checks, after every call:
//   - the queue never holds more than MaxQueue items, nor runs more than
//     Workers, and items wait only while every worker is busy;
//   - every pushed item ends exactly once: run, taken back by Remove, or
//     refused or dropped with a typed reason that holds at that moment;
//   - Critical work is never refused or evicted for queue space while less
//     critical work waits, and eviction takes from the lowest class;
//   - Done never starts an item whose deadline cannot be met, serves
//     classes strictly by priority, and each class from one of its ends;
//   - no item waits longer than min(MaxWait, Target+Interval);
//   - a twin scheduler that gets the same calls plus extra Advance calls
//     makes exactly the same decisions (timeouts are exact, whatever the
//     call rate).
func TestSchedulerProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ms := func(label string, lo, hi int) time.Duration {
			return time.Duration(rapid.IntRange(lo, hi).Draw(rt, label)) * time.Millisecond
		}
		target := ms("targetMs", 1, 10)
		interval := target + ms("intervalMs", 1, 40)
		// Mostly long enough for classes to stand.
		maxWait := target + interval + ms("maxWaitMs", 0, 100)
		if rapid.IntRange(0, 3).Draw(rt, "shortWait") == 0 {
			maxWait = ms("shortMaxWaitMs", 1, int((target+interval)/time.Millisecond))
		}
		cfg := QueueConfig{
			Workers:     rapid.IntRange(1, 3).Draw(rt, "workers"),
			MaxQueue:    rapid.IntRange(1, 8).Draw(rt, "maxQueue"),
			MaxWait:     maxWait,
			Target:      target,
			Interval:    interval,
			DisableLIFO: rapid.Bool().Draw(rt, "fifo"),
			Backlog:     rapid.IntRange(-1, 3).Draw(rt, "backlog"),
		}
		m := &schedModel{t: rt, cfg: cfg, now: t0, pushing: Item[int]{Value: -1},
			waiting: map[int]Item[int]{}, ended: map[int]string{}, unmatched: map[string]int{}}
		var err error
		m.s, err = NewScheduler(cfg, m.dropped)
		if err != nil {
			rt.Fatal(err)
		}
		m.twin, err = NewScheduler(cfg, m.twinDropped)
		if err != nil {
			rt.Fatal(err)
		}
		m.tickets, m.twinTickets = map[int]Ticket{}, map[int]Ticket{}
		// A hand-rolled Repeat, to weight the calls so that classes often
		// become standing: bursts of pushes, and runs with little or no
		// service.
		burst := func(t *rapid.T) {
			for range rapid.IntRange(1, 6).Draw(t, "burst") {
				m.push(t)
			}
		}
		actions := []func(*rapid.T){m.push, m.push, burst, m.advance, m.advance, m.remove, m.check, m.check}
		for range rapid.IntRange(0, 4).Draw(rt, "serviceWeight") {
			actions = append(actions, m.done)
		}
		steps := rapid.IntRange(50, 400).Draw(rt, "steps")
		for range steps {
			actions[rapid.IntRange(0, len(actions)-1).Draw(rt, "action")](rt)
			m.invariants(rt)
		}
	})
}

type schedModel struct {
	t         *rapid.T
	cfg       QueueConfig
	s, twin   *Scheduler[int]
	now       time.Time
	next      int // id of the next item
	pushing   Item[int]
	running   int
	waiting   map[int]Item[int]
	tickets   map[int]Ticket
	ended     map[int]string // id → how it ended
	admitted  int64
	unmatched map[string]int // drops reported by only one of s and twin

	twinTickets map[int]Ticket
}

func (m *schedModel) end(id int, how string) {
	if prev, ok := m.ended[id]; ok {
		m.t.Fatalf("item %d ended twice: %s, then %s", id, prev, how)
	}
	m.ended[id] = how
	delete(m.waiting, id)
	delete(m.tickets, id)
}

func (m *schedModel) dropped(it Item[int], r Refusal) {
	id := it.Value
	rank := it.Priority.rank()
	waited := m.now.Sub(it.Enqueued)
	switch r.Reason {
	case ErrQueueFull:
		if id != m.pushing.Value || len(m.waiting) != m.cfg.MaxQueue {
			m.t.Fatalf("item %d refused as queue full with %d waiting", id, len(m.waiting))
		}
		for o, w := range m.waiting {
			if w.Priority.rank() > rank {
				m.t.Fatalf("%v item %d refused for space while %v item %d waits", it.Priority, id, w.Priority, o)
			}
		}
	case ErrEvicted:
		if _, ok := m.waiting[id]; !ok || len(m.waiting) != m.cfg.MaxQueue || rank <= m.pushing.Priority.rank() {
			m.t.Fatalf("item %d (%v) evicted for %v item", id, it.Priority, m.pushing.Priority)
		}
		for o, w := range m.waiting {
			if w.Priority.rank() > rank {
				m.t.Fatalf("evicted %v item %d while %v item %d waits", it.Priority, id, w.Priority, o)
			}
		}
	case ErrDeadline:
		if it.canMeet(m.now) {
			m.t.Fatalf("item %d dropped for its deadline %v at %v (cost %v), which it could meet", id, it.Deadline.Sub(t0), m.now.Sub(t0), it.Cost)
		}
	case ErrWaitTimeout:
		bound := min(m.cfg.MaxWait, m.cfg.Target)
		kept := max(min(m.cfg.MaxWait, m.cfg.Target+m.cfg.Interval), m.cfg.Target) // the Backlog's bound
		if r.Waited < bound || r.Waited > waited || (r.MaxWait != m.cfg.MaxWait && r.MaxWait != m.cfg.Target && r.MaxWait != kept) || r.Waited < r.MaxWait {
			m.t.Fatalf("item %d timed out after %v (limit %v), %v before now", id, r.Waited, r.MaxWait, waited)
		}
		if r.Waited > min(m.cfg.MaxWait, m.cfg.Target+m.cfg.Interval) {
			m.t.Fatalf("item %d waited %v", id, r.Waited)
		}
	default:
		m.t.Fatalf("item %d dropped with untyped reason %v", id, r.Reason)
	}
	if id != m.pushing.Value {
		if _, ok := m.waiting[id]; !ok {
			m.t.Fatalf("dropped item %d is not waiting", id)
		}
	}
	m.end(id, "dropped")
	m.match(fmt.Sprintf("%d:%v waited=%v limit=%v", id, r.Reason, r.Waited, r.MaxWait), +1)
}

func (m *schedModel) twinDropped(it Item[int], r Refusal) {
	m.match(fmt.Sprintf("%d:%v waited=%v limit=%v", it.Value, r.Reason, r.Waited, r.MaxWait), -1)
}

// match counts a drop reported by the scheduler (+1) or its twin (-1).
func (m *schedModel) match(drop string, delta int) {
	if m.unmatched[drop] += delta; m.unmatched[drop] == 0 {
		delete(m.unmatched, drop)
	}
}

func (m *schedModel) push(t *rapid.T) {
	it := Item[int]{
		Value:    m.next,
		Priority: rapid.SampledFrom([]Priority{Normal, Critical, Sheddable, Priority(5)}).Draw(t, "priority"),
	}
	m.next++
	if rapid.Bool().Draw(t, "hasDeadline") {
		it.Deadline = m.now.Add(time.Duration(rapid.IntRange(-5000, 200_000).Draw(t, "deadlineUs")) * time.Microsecond)
		it.Cost = time.Duration(rapid.IntRange(-10, 30).Draw(t, "costMs")) * time.Millisecond
	}
	m.pushing = it
	kind, tk := m.s.Push(m.now, it)
	twinKind, twinTk := m.twin.Push(m.now, it)
	if twinKind != kind {
		t.Fatalf("push %d: %v, but the twin says %v", it.Value, kind, twinKind)
	}
	it.Enqueued, it.Cost = m.now, max(it.Cost, 0)
	switch kind {
	case Admitted:
		m.running++
		m.admitted++
		m.end(it.Value, "ran at once")
	case Queued:
		m.waiting[it.Value] = it
		m.tickets[it.Value] = tk
		m.twinTickets[it.Value] = twinTk
	case Refused:
		if _, ok := m.ended[it.Value]; !ok {
			t.Fatalf("item %d refused but not reported", it.Value)
		}
	}
	m.pushing = Item[int]{Value: -1}
	m.checkAges()
}

func (m *schedModel) done(t *rapid.T) {
	if m.running == 0 {
		return
	}
	it, ok := m.s.Done(m.now)
	twinIt, twinOK := m.twin.Done(m.now)
	if ok != twinOK || it.Value != twinIt.Value {
		t.Fatalf("done: %v %v, but the twin says %v %v", it.Value, ok, twinIt.Value, twinOK)
	}
	if !ok {
		m.running--
		if len(m.waiting) > 0 {
			t.Fatalf("a worker went idle while %d items wait", len(m.waiting))
		}
		return
	}
	id := it.Value
	want, queued := m.waiting[id]
	if !queued {
		t.Fatalf("done handed out item %d, which was not waiting", id)
	}
	if !want.canMeet(m.now) {
		t.Fatalf("started item %d at %v although its deadline %v cannot be met (cost %v)", id, m.now.Sub(t0), want.Deadline.Sub(t0), want.Cost)
	}
	if w := m.now.Sub(want.Enqueued); w >= min(m.cfg.MaxWait, m.cfg.Target+m.cfg.Interval) {
		t.Fatalf("started item %d after waiting %v", id, w)
	}
	m.end(id, "ran after waiting")
	m.admitted++
	rank := want.Priority.rank()
	var sameClass []int
	for o, w := range m.waiting {
		if w.Priority.rank() < rank {
			t.Fatalf("started %v item %d while %v item %d waits", want.Priority, id, w.Priority, o)
		}
		if w.Priority.rank() == rank {
			sameClass = append(sameClass, o)
		}
	}
	// Within a class, items are served from one end (ids grow with time).
	if len(sameClass) > 0 {
		lo, hi := slices.Min(sameClass), slices.Max(sameClass)
		if id > lo && id < hi {
			t.Fatalf("served item %d from the middle of its class [%d..%d]", id, lo, hi)
		}
		if m.cfg.DisableLIFO && id > lo {
			t.Fatalf("FIFO class served item %d before %d", id, lo)
		}
	}
	m.checkAges()
}

func (m *schedModel) pick(t *rapid.T) (int, bool) {
	if len(m.waiting) == 0 {
		return 0, false
	}
	ids := make([]int, 0, len(m.waiting))
	for id := range m.waiting {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return rapid.SampledFrom(ids).Draw(t, "id"), true
}

func (m *schedModel) remove(t *rapid.T) {
	id, ok := m.pick(t)
	if !ok {
		return
	}
	tk, twinTk := m.tickets[id], m.twinTickets[id]
	_, removed := m.s.Remove(m.now, tk, context.Canceled)
	_, twinRemoved := m.twin.Remove(m.now, twinTk, context.Canceled)
	if removed != twinRemoved {
		t.Fatalf("remove %d: %v, twin %v", id, removed, twinRemoved)
	}
	if removed {
		m.end(id, "removed")
	} else if _, gone := m.ended[id]; !gone {
		t.Fatalf("remove of waiting item %d failed", id)
	}
	m.checkAges()
}

func (m *schedModel) check(t *rapid.T) {
	id, ok := m.pick(t)
	if !ok {
		return
	}
	wake, waiting := m.s.Check(m.now, m.tickets[id])
	twinWake, twinWaiting := m.twin.Check(m.now, m.twinTickets[id])
	if waiting != twinWaiting || !wake.Equal(twinWake) {
		t.Fatalf("check %d: %v %v, twin %v %v", id, wake, waiting, twinWake, twinWaiting)
	}
	if waiting && !wake.After(m.now) {
		t.Fatalf("item %d still waits but must be checked again at %v, not after now %v", id, wake.Sub(t0), m.now.Sub(t0))
	}
	m.checkAges()
}

// advance moves the clock; the twin alone is told about a moment in
// between.
func (m *schedModel) advance(t *rapid.T) {
	d := time.Duration(rapid.IntRange(0, 10_000).Draw(t, "advanceUs")) * time.Microsecond
	mid := m.now.Add(time.Duration(rapid.Float64Range(0, 1).Draw(t, "twinAt") * float64(d)))
	m.now = m.now.Add(d)
	m.twin.Advance(mid)
}

// checkAges checks, right after a call at m.now, that no waiting item has
// waited as long as it may.
func (m *schedModel) checkAges() {
	for id, it := range m.waiting {
		if w := m.now.Sub(it.Enqueued); w >= min(m.cfg.MaxWait, m.cfg.Target+m.cfg.Interval) {
			m.t.Fatalf("item %d has waited %v and still waits", id, w)
		}
	}
	// The twin reported the same drops, perhaps sooner.
	if len(m.unmatched) != 0 {
		m.t.Fatalf("drops differ from the twin's: %v", m.unmatched)
	}
}

func (m *schedModel) invariants(t *rapid.T) {
	s := m.s.Stats()
	if s.Waiting != len(m.waiting) || s.Waiting > m.cfg.MaxQueue {
		t.Fatalf("%d waiting, model %d, limit %d", s.Waiting, len(m.waiting), m.cfg.MaxQueue)
	}
	if s.InFlight != m.running || s.InFlight > m.cfg.Workers {
		t.Fatalf("%d in flight, model %d, limit %d", s.InFlight, m.running, m.cfg.Workers)
	}
	if s.Waiting > 0 && s.InFlight < m.cfg.Workers {
		t.Fatalf("%d items wait while a worker is free", s.Waiting)
	}
	if len(m.waiting)+len(m.ended) != m.next {
		t.Fatalf("%d pushed, %d waiting, %d ended", m.next, len(m.waiting), len(m.ended))
	}
	if s.Admitted != m.admitted || s.Admitted+s.Shed.Total() != int64(len(m.ended)) {
		t.Fatalf("stats %+v disagree with %d admitted, %d ended", s, m.admitted, len(m.ended))
	}
	if twin := m.twin.Stats(); twin.Admitted != s.Admitted || twin.InFlight != s.InFlight {
		t.Fatalf("twin stats %+v, mine %+v", twin, s)
	}
	for _, p := range []Priority{Critical, Normal, Sheddable} {
		if m.s.Standing(p) && m.cfg.MaxWait <= m.cfg.Target {
			t.Fatalf("%v standing although MaxWait %v ≤ Target", p, m.cfg.MaxWait)
		}
	}
}

func TestRefusalsOfTheSchedulerAreTyped(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1, MaxWait: 20 * time.Millisecond})
	require.True(t, s.TryRun())
	push(s, at(0), "a", Normal)
	s.Advance(at(30))
	require.Len(t, log.refusals, 1)
	err := error(&log.refusals[0])
	assert.True(t, errors.Is(err, ErrWaitTimeout) && errors.Is(err, ErrShed))
	assert.Equal(t, "shed: waited too long (waited 20ms, limit 20ms)", err.Error())
}

func TestSchedulerDropAll(t *testing.T) {
	s, log := newScheduler(t, QueueConfig{Workers: 1})
	require.True(t, s.TryRun())
	for i, p := range []Priority{Sheddable, Critical, Normal} {
		require.Equal(t, Queued, push(s, at(float64(i)), fmt.Sprint(p), p))
	}
	assert.Equal(t, 3, s.DropAll(at(10), ErrPaused))
	assert.ElementsMatch(t, []string{"critical:shed: paused", "normal:shed: paused", "sheddable:shed: paused"}, log.take())
	assert.Equal(t, 0, s.Len())
	assert.Equal(t, 1, s.InFlight(), "running work is not touched")
	assert.Equal(t, int64(3), s.Stats().Shed.Paused)
	assert.Zero(t, s.DropAll(at(11), ErrPaused), "nothing left")
	_, ok := s.Done(at(12))
	assert.False(t, ok, "no waiter to hand the slot to")
}
