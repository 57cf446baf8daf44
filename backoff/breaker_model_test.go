package backoff

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var (
	errDependency = errors.New("dependency failed")
	errNotCounted = errors.New("not counted")
)

func classifyForTest(err error) Outcome {
	if errors.Is(err, errNotCounted) {
		return OutcomeIgnore
	}
	return OutcomeFailure
}

// breakerModel is an independent, obviously sequential model of a Breaker:
// the window is a plain list of results, the probes a map, and every rule
// of the documentation is written out once.
type breakerModel struct {
	c     BreakerConfig // defaults applied
	state BreakerState
	gen   uint64
	since time.Time
	until time.Time

	// closed, CountWindow: the last WindowCalls results.
	last []modelResult
	// closed, TimeWindow: results with their bucket index.
	timed      []modelResult
	head       int64
	behind     int
	openBehind int
	origin     time.Time
	hasOrigin  bool

	// half-open
	probes                 map[int]time.Time // ticket id -> start
	results, pFail, pSlow  int
	openCalls, openFailure int
}

type modelResult struct {
	idx        int64
	fail, slow bool
}

type modelTicket struct {
	id    int
	gen   uint64
	start time.Time
	probe bool
	real  Ticket
}

func newBreakerModel(c BreakerConfig) *breakerModel {
	return &breakerModel{c: c, probes: map[int]time.Time{}}
}

func (m *breakerModel) slowCalls() bool { return m.c.SlowCallDuration > 0 }

func (m *breakerModel) bucket(now time.Time) int64 {
	width := m.c.WindowDuration / time.Duration(m.c.Buckets)
	d := now.Sub(m.origin)
	i := int64(d / width)
	if d < 0 && d%width != 0 {
		i--
	}
	return i
}

func (m *breakerModel) transition(to BreakerState, now time.Time) {
	m.state = to
	m.gen++
	m.since = now
	switch to {
	case BreakerClosed:
		m.last, m.timed = nil, nil
		m.head, m.origin, m.hasOrigin, m.behind = 0, now, true, 0
	case BreakerOpen:
		m.until, m.openBehind = now.Add(m.c.OpenWait), 0
	case BreakerHalfOpen:
		m.probes = map[int]time.Time{}
		m.results, m.pFail, m.pSlow = 0, 0, 0
	}
}

// window returns the closed window's counts.
func (m *breakerModel) window() (calls, fails, slows int) {
	list := m.last
	if m.c.Window == TimeWindow {
		list = nil
		for _, r := range m.timed {
			if r.idx > m.head-int64(m.c.Buckets) {
				list = append(list, r)
			}
		}
	}
	for _, r := range list {
		calls++
		if r.fail {
			fails++
		}
		if r.slow {
			slows++
		}
	}
	return
}

func (m *breakerModel) crosses(fails, slows, calls int) bool {
	return float64(fails)/float64(calls) >= m.c.FailureRate ||
		(m.slowCalls() && float64(slows)/float64(calls) >= m.c.SlowRate)
}

// allow returns whether a call is admitted at now, and whether as a probe.
func (m *breakerModel) allow(now time.Time, id int) (ok, probe bool) {
	if m.state == BreakerOpen {
		if now.Before(m.since) {
			// Late callers are refused; the third in a row moves the wait.
			m.openBehind++
			if m.openBehind >= 3 {
				m.since, m.until, m.openBehind = now, now.Add(m.c.OpenWait), 0
			}
			return false, false
		}
		m.openBehind = 0
		if now.Before(m.until) {
			return false, false
		}
		m.transition(BreakerHalfOpen, now)
	}
	if m.state == BreakerClosed {
		return true, false
	}
	// Expire overdue probes (the clock going backwards restarts a probe's
	// timer), then decide.
	for pid, start := range m.probes {
		if now.Before(start) {
			m.probes[pid] = now
			continue
		}
		if now.Sub(start) >= m.c.ProbeTimeout {
			delete(m.probes, pid)
			m.results++
			m.pFail++
			if m.slowCalls() && m.c.ProbeTimeout >= m.c.SlowCallDuration {
				m.pSlow++
			}
			// Decided as soon as the counts allow it.
			if m.decideProbes(now) {
				return m.allow(now, id)
			}
		}
	}
	if len(m.probes)+m.results < m.c.Probes {
		m.probes[id] = now
		return true, true
	}
	return false, false
}

func (m *breakerModel) decideProbes(now time.Time) bool {
	n := float64(m.c.Probes)
	if float64(m.pFail)/n >= m.c.FailureRate || (m.slowCalls() && float64(m.pSlow)/n >= m.c.SlowRate) {
		m.openCalls, m.openFailure = m.results, m.pFail
		m.transition(BreakerOpen, now)
		return true
	}
	if m.results >= m.c.Probes {
		m.transition(BreakerClosed, now)
		return true
	}
	return false
}

func (m *breakerModel) record(now time.Time, tk modelTicket, outcome Outcome) {
	if tk.gen != m.gen {
		return
	}
	slow := m.slowCalls() && now.Sub(tk.start) >= m.c.SlowCallDuration
	if tk.probe {
		if _, ok := m.probes[tk.id]; !ok {
			return
		}
		delete(m.probes, tk.id)
		if outcome == OutcomeIgnore {
			return
		}
		m.results++
		if outcome == OutcomeFailure {
			m.pFail++
		}
		if slow {
			m.pSlow++
		}
		m.decideProbes(now)
		return
	}
	if outcome == OutcomeIgnore {
		return
	}
	r := modelResult{fail: outcome == OutcomeFailure, slow: slow}
	if m.c.Window == CountWindow {
		m.last = append(m.last, r)
		if len(m.last) > m.c.WindowCalls {
			m.last = m.last[1:]
		}
	} else {
		if !m.hasOrigin {
			m.origin, m.hasOrigin = now, true
		}
		r.idx = m.bucket(now)
		switch {
		case r.idx > m.head:
			m.head = r.idx
		case r.idx <= m.head-int64(m.c.Buckets):
			// Older than the window: dropped, unless it is the third such
			// result in a row (the clock went backwards).
			m.behind++
			if m.behind < 3 {
				return
			}
			m.timed, m.head = nil, r.idx
		}
		m.behind = 0
		m.timed = append(m.timed, r)
	}
	calls, fails, slows := m.window()
	if calls >= m.c.MinCalls && m.crosses(fails, slows, calls) {
		m.openCalls, m.openFailure = calls, fails
		m.transition(BreakerOpen, now)
	}
}

// statsWindow returns the window's counts as StatsAt(now) reports them:
// those of the window ending at the later of now and head, changing nothing.
func (m *breakerModel) statsWindow(now time.Time) (calls, fails, slows int) {
	if m.c.Window == CountWindow || !m.hasOrigin {
		return m.window()
	}
	end := max(m.head, m.bucket(now))
	for _, r := range m.timed {
		if r.idx > end-int64(m.c.Buckets) && r.idx > m.head-int64(m.c.Buckets) {
			calls++
			if r.fail {
				fails++
			}
			if r.slow {
				slows++
			}
		}
	}
	return
}

func breakerConfigGen() *rapid.Generator[BreakerConfig] {
	return rapid.Custom(func(t *rapid.T) BreakerConfig {
		c := BreakerConfig{
			Window:       WindowKind(rapid.IntRange(0, 1).Draw(t, "window")),
			WindowCalls:  rapid.IntRange(1, 12).Draw(t, "windowCalls"),
			Buckets:      rapid.IntRange(1, 5).Draw(t, "buckets"),
			FailureRate:  float64(rapid.IntRange(1, 10).Draw(t, "failureRate")) / 10,
			SlowRate:     float64(rapid.IntRange(1, 10).Draw(t, "slowRate")) / 10,
			OpenWait:     time.Duration(rapid.IntRange(1, 10).Draw(t, "openWait")) * time.Second,
			Probes:       rapid.IntRange(1, 4).Draw(t, "probes"),
			ProbeTimeout: time.Duration(rapid.IntRange(1, 10).Draw(t, "probeTimeout")) * time.Second,
			Classify:     classifyForTest,
		}
		c.WindowDuration = time.Duration(c.Buckets*rapid.IntRange(1, 4).Draw(t, "bucketWidth")) * time.Second
		if c.Window == CountWindow {
			c.MinCalls = rapid.IntRange(1, c.WindowCalls).Draw(t, "minCalls")
		} else {
			c.MinCalls = rapid.IntRange(1, 8).Draw(t, "minCalls")
		}
		if rapid.Bool().Draw(t, "slowCalls") {
			c.SlowCallDuration = time.Duration(rapid.IntRange(1, 5).Draw(t, "slowCallDuration")) * time.Second
		}
		return c
	})
}

// TestBreakerMatchesModel: over random configurations and random sequences
// of calls, results, releases and (also backward) clock steps, the Breaker
// admits, refuses, counts and changes state exactly as the model says. In
// particular it opens exactly when a rate reaches its threshold with at
// least MinCalls calls in the window, never has more than Probes probes in
// flight, and admits the first call after its wait.
func TestBreakerMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := breakerConfigGen().Draw(t, "cfg")
		b, err := NewBreaker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := newBreakerModel(b.cfg)
		now := time.Time{}
		if rapid.Bool().Draw(t, "realEpoch") {
			now = time.Unix(rapid.Int64Range(0, 2e9).Draw(t, "start"), 0)
		}
		var tickets []modelTicket
		nextID := 0
		for step := range rapid.IntRange(1, 300).Draw(t, "steps") {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op <= 1: // the clock moves, rarely backwards
				d := time.Duration(rapid.Int64Range(-3, 12).Draw(t, "dt")) * time.Second / 2
				if d < 0 && rapid.IntRange(0, 4).Draw(t, "back") != 0 {
					d = -d
				}
				now = now.Add(d)
			case op <= 4:
				wasOpenPastWait := m.state == BreakerOpen && !now.Before(m.until) && !now.Before(m.since)
				nextID++
				ok, probe := m.allow(now, nextID)
				tk, err := b.AllowAt(now)
				if ok != (err == nil) {
					t.Fatalf("step %d: model admits %v, breaker says %v", step, ok, err)
				}
				if wasOpenPastWait && err != nil {
					t.Fatalf("step %d: first call after the wait refused: %v", step, err)
				}
				if err != nil {
					var oe *OpenError
					if !errors.As(err, &oe) || !errors.Is(err, ErrBreakerOpen) {
						t.Fatalf("refusal %T %v is not an *OpenError", err, err)
					}
					if oe.State == BreakerOpen && (oe.Wait != m.until.Sub(now) || oe.Wait <= 0) {
						t.Fatalf("step %d: refusal waits %v, model %v", step, oe.Wait, m.until.Sub(now))
					}
				} else {
					tickets = append(tickets, modelTicket{id: nextID, gen: m.gen, start: now, probe: probe, real: tk})
				}
			case op <= 7 && len(tickets) > 0:
				i := rapid.IntRange(0, len(tickets)-1).Draw(t, "ticket")
				tk := tickets[i]
				tickets = append(tickets[:i], tickets[i+1:]...)
				var err error
				outcome := OutcomeSuccess
				switch rapid.IntRange(0, 3).Draw(t, "outcome") {
				case 0, 1:
					err, outcome = errDependency, OutcomeFailure
				case 2:
					err, outcome = errNotCounted, OutcomeIgnore
				}
				if rapid.IntRange(0, 9).Draw(t, "release") == 0 {
					outcome = OutcomeIgnore
					b.Release(tk.real)
				} else {
					b.RecordAt(now, tk.real, err)
				}
				m.record(now, tk, outcome)
			case op == 8:
				s := b.StatsAt(now)
				if m.state == BreakerClosed {
					calls, fails, slows := m.statsWindow(now)
					if s.Calls != calls || s.Failures != fails || s.SlowCalls != slows {
						t.Fatalf("step %d: window %d/%d/%d, model %d/%d/%d", step,
							s.Calls, s.Failures, s.SlowCalls, calls, fails, slows)
					}
				}
				if m.state == BreakerHalfOpen && s.Probes > m.c.Probes {
					t.Fatalf("step %d: %d probes in flight, at most %d", step, s.Probes, m.c.Probes)
				}
			}
			p := b.cur.Load()
			if p.state != m.state || p.gen != m.gen {
				t.Fatalf("step %d: breaker %v gen %d, model %v gen %d", step, p.state, p.gen, m.state, m.gen)
			}
			if p.state == BreakerHalfOpen && p.inFlight != len(m.probes) {
				t.Fatalf("step %d: %d probes in flight, model %d", step, p.inFlight, len(m.probes))
			}
			if p.state == BreakerHalfOpen && p.inFlight+p.results > m.c.Probes {
				t.Fatalf("step %d: %d probes admitted, at most %d", step, p.inFlight+p.results, m.c.Probes)
			}
			if p.state == BreakerOpen && (p.until != m.until || p.calls != m.openCalls || p.failures != m.openFailure) {
				t.Fatalf("step %d: open until %v on %d/%d, model %v on %d/%d", step,
					p.until, p.failures, p.calls, m.until, m.openFailure, m.openCalls)
			}
			if got, want := b.StateAt(now), m.state; want == BreakerOpen && !now.Before(m.until) {
				if got != BreakerHalfOpen {
					t.Fatalf("step %d: StateAt after the wait is %v", step, got)
				}
			} else if got != want {
				t.Fatalf("step %d: StateAt %v, model %v", step, got, want)
			}
		}
		_ = fmt.Sprint()
	})
}

// TestBreakerRecordMatchesRecordAt: the shell's Record, whose steady state
// has a path of its own, counts and decides as RecordAt does (a CountWindow
// without slow calls reads no clock, so both can be fed the same results).
func TestBreakerRecordMatchesRecordAt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := BreakerConfig{
			WindowCalls: rapid.IntRange(1, 12).Draw(t, "windowCalls"),
			FailureRate: float64(rapid.IntRange(1, 10).Draw(t, "failureRate")) / 10,
			Classify:    classifyForTest,
		}
		cfg.MinCalls = rapid.IntRange(1, cfg.WindowCalls).Draw(t, "minCalls")
		core, err1 := NewBreaker(cfg)
		shell, err2 := NewBreaker(cfg)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		now := time.Now()
		for step := range rapid.IntRange(1, 200).Draw(t, "steps") {
			var err error
			switch rapid.IntRange(0, 3).Draw(t, "result") {
			case 0:
				err = errDependency
			case 1:
				err = errNotCounted
			}
			tc, errC := core.AllowAt(now)
			ts, errS := shell.Allow()
			if (errC == nil) != (errS == nil) {
				t.Fatalf("step %d: core admits %v, shell %v", step, errC, errS)
			}
			if errC != nil {
				return // both open: the rest is the clock's business
			}
			core.RecordAt(now, tc, err)
			shell.Record(ts, err)
			a, b := core.StatsAt(now), shell.StatsAt(now)
			if a.State != b.State || a.Calls != b.Calls || a.Failures != b.Failures {
				t.Fatalf("step %d: core %+v, shell %+v", step, a, b)
			}
		}
	})
}
