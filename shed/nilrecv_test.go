package shed

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// TestNilReceivers: a nil *Bulkhead, *Partition, *Queue, *Limiter,
// *KeyedLimiter or *Scheduler (for example a typed nil stored in an
// interface or a config) gives an error matching ErrInvalidArgument where
// the method returns one, and refuses or reports nothing where it does
// not; it never panics.
func TestNilReceivers(t *testing.T) {
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	now := time.Unix(1_700_000_000, 0)
	var (
		b *Bulkhead
		p *Partition[string]
		q *Queue
		l *Limiter
		k *KeyedLimiter[string]
		s *Scheduler[int]
	)
	for name, call := range map[string]func() error{
		"Bulkhead.Acquire":     func() error { return b.Acquire(ctx) },
		"Bulkhead.Do":          func() error { return b.Do(ctx, fn) },
		"Partition.Acquire":    func() error { return p.Acquire(ctx, "a") },
		"Partition.Do":         func() error { return p.Do(ctx, "a", fn) },
		"Partition.Pause":      func() error { return p.Pause("a") },
		"Queue.Acquire":        func() error { return q.Acquire(ctx, Normal) },
		"Queue.Do":             func() error { return q.Do(ctx, Normal, fn) },
		"Limiter.Wait":         func() error { return l.Wait(ctx) },
		"KeyedLimiter.Allow":   func() error { return k.Allow("a") },
		"KeyedLimiter.AllowAt": func() error { return k.AllowAt(now, "a") },
	} {
		err := call()
		if !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrShed) {
			t.Errorf("%s on a nil receiver: %v, want ErrInvalidArgument and not a refusal", name, err)
		}
	}
	calls := map[string]func() any{
		"Bulkhead.TryAcquire":   func() any { return b.TryAcquire() },
		"Bulkhead.Stats":        func() any { return b.Stats() },
		"Partition.TryAcquire":  func() any { return p.TryAcquire("a") },
		"Partition.Paused":      func() any { return p.Paused("a") },
		"Partition.Stats":       func() any { return p.Stats() },
		"Partition.StatsFor":    func() any { _, ok := p.StatsFor("a"); return ok },
		"Partition.Keys":        func() any { return p.Keys() },
		"Partition.PerKey":      func() any { return p.PerKey() },
		"Queue.TryAcquire":      func() any { return q.TryAcquire() },
		"Queue.Paused":          func() any { return q.Paused() },
		"Queue.Standing":        func() any { return q.Standing(Critical) },
		"Queue.Stats":           func() any { return q.Stats() },
		"Limiter.Allow":         func() any { return l.Allow() },
		"Limiter.AllowAt":       func() any { return l.AllowAt(now) },
		"Limiter.Tokens":        func() any { return l.Tokens(now) },
		"Limiter.Stats":         func() any { return l.Stats() },
		"KeyedLimiter.Keys":     func() any { return k.Keys() },
		"KeyedLimiter.Stats":    func() any { return k.Stats() },
		"KeyedLimiter.StatsFor": func() any { _, ok := k.StatsFor("a"); return ok },
		"Scheduler.TryRun":      func() any { return s.TryRun() },
		"Scheduler.Push":        func() any { kind, _ := s.Push(now, Item[int]{}); return kind == Refused },
		"Scheduler.Done":        func() any { _, ok := s.Done(now); return ok },
		"Scheduler.Remove":      func() any { _, ok := s.Remove(now, Ticket{}, ErrPaused); return ok },
		"Scheduler.DropAll":     func() any { return s.DropAll(now, ErrPaused) },
		"Scheduler.Check":       func() any { _, ok := s.Check(now, Ticket{}); return ok },
		"Scheduler.Wake":        func() any { _, ok := s.Wake(Ticket{}); return ok },
		"Scheduler.Len":         func() any { return s.Len() },
		"Scheduler.InFlight":    func() any { return s.InFlight() },
		"Scheduler.Standing":    func() any { return s.Standing(Normal) },
		"Scheduler.Timeout":     func() any { return s.Timeout(Normal) },
		"Scheduler.Stats":       func() any { return s.Stats() },
	}
	want := map[string]any{"Scheduler.Push": true}
	for name, call := range calls {
		var got any
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s on a nil receiver panicked: %v", name, r)
				}
			}()
			got = call()
		}()
		w, ok := want[name]
		if !ok {
			switch got.(type) {
			case bool:
				w = false
			case int:
				w = 0
			case float64:
				w = 0.0
			case time.Duration:
				w = time.Duration(0)
			case Stats:
				w = Stats{}
			}
		}
		if got != w {
			t.Errorf("%s on a nil receiver = %v, want %v", name, got, w)
		}
	}
	// And the calls that return nothing.
	for name, call := range map[string]func(){
		"Bulkhead.Release":  b.Release,
		"Bulkhead.Pause":    b.Pause,
		"Bulkhead.Resume":   b.Resume,
		"Partition.Release": func() { p.Release("a") },
		"Partition.Resume":  func() { p.Resume("a") },
		"Queue.Release":     q.Release,
		"Queue.Pause":       q.Pause,
		"Queue.Resume":      q.Resume,
		"Scheduler.Advance": func() { s.Advance(now) },
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s on a nil receiver panicked: %v", name, r)
				}
			}()
			call()
		}()
	}
}

// TestZeroScheduler: a Scheduler not built with NewScheduler refuses what
// it is offered and never panics.
func TestZeroScheduler(t *testing.T) {
	var s Scheduler[int]
	now := time.Unix(1_700_000_000, 0)
	if kind, _ := s.Push(now, Item[int]{}); kind != Refused {
		t.Errorf("Push on a zero Scheduler: %v, want refused", kind)
	}
	if n := s.DropAll(now, ErrPaused); n != 0 {
		t.Errorf("DropAll on a zero Scheduler dropped %d", n)
	}
	if _, ok := s.Done(now); ok {
		t.Error("Done on a zero Scheduler handed out an item")
	}
	s.Advance(now)
	if _, ok := s.Check(now, Ticket{}); ok {
		t.Error("Check on a zero Scheduler found an item")
	}
}

// TestBadKeys: a Partition or KeyedLimiter key that a map cannot find
// again — an uncomparable value in an interface key, or a NaN — is an
// error matching ErrInvalidArgument, not a panic, and not a key that takes
// a slot no Release can return or a fresh bucket on every call.
func TestBadKeys(t *testing.T) {
	ctx := context.Background()
	type pair struct {
		a any
		f float64
	}
	nan := math.NaN()
	p, err := NewPartition(PartitionConfig[any]{Total: 2, MaxQueuePerKey: 1})
	if err != nil {
		t.Fatal(err)
	}
	pf, err := NewPartition(PartitionConfig[float64]{Total: 2})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := NewPartition(PartitionConfig[pair]{Total: 2})
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyedLimiter[any](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: 1}})
	if err != nil {
		t.Fatal(err)
	}
	kf, err := NewKeyedLimiter[float64](KeyedLimiterConfig{LimiterConfig: LimiterConfig{Rate: 1}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	for name, call := range map[string]func() error{
		"Partition[any].Acquire slice":    func() error { return p.Acquire(ctx, []int{1}) },
		"Partition[any].Acquire NaN":      func() error { return p.Acquire(ctx, nan) },
		"Partition[any].Do map":           func() error { return p.Do(ctx, map[int]int{}, func(context.Context) error { return nil }) },
		"Partition[any].Pause func":       func() error { return p.Pause(func() {}) },
		"Partition[float64].Acquire NaN":  func() error { return pf.Acquire(ctx, nan) },
		"Partition[pair].Acquire slice":   func() error { return ps.Acquire(ctx, pair{a: []int{}}) },
		"Partition[pair].Acquire NaN":     func() error { return ps.Acquire(ctx, pair{f: nan}) },
		"KeyedLimiter[any].Allow slice":   func() error { return k.AllowAt(now, []byte("x")) },
		"KeyedLimiter[any].Allow NaN":     func() error { return k.AllowAt(now, nan) },
		"KeyedLimiter[float64].Allow NaN": func() error { return kf.AllowAt(now, nan) },
	} {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", name, r)
				}
			}()
			err = call()
		}()
		if !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrShed) {
			t.Errorf("%s: %v, want ErrInvalidArgument and not a refusal", name, err)
		}
	}
	for name, call := range map[string]func() any{
		"Partition[any].TryAcquire slice": func() any { return p.TryAcquire([]int{1}) },
		"Partition[any].TryAcquire NaN":   func() any { return p.TryAcquire(nan) },
		"Partition[any].Paused slice":     func() any { return p.Paused([]int{1}) },
		"Partition[any].StatsFor slice":   func() any { _, ok := p.StatsFor([]int{1}); return ok },
		"Partition[float64].TryAcquire":   func() any { return pf.TryAcquire(nan) },
		"KeyedLimiter[any].StatsFor":      func() any { _, ok := k.StatsFor([]int{1}); return ok },
	} {
		var got any
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", name, r)
				}
			}()
			got = call()
		}()
		if got != false {
			t.Errorf("%s = %v, want false", name, got)
		}
	}
	for name, call := range map[string]func(){
		"Partition[any].Release slice": func() { p.Release([]int{1}) },
		"Partition[any].Resume slice":  func() { p.Resume([]int{1}) },
		"Partition[float64].Release":   func() { pf.Release(nan) },
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", name, r)
				}
			}()
			call()
		}()
	}
	for _, s := range []Stats{p.Stats(), pf.Stats(), ps.Stats(), k.Stats(), kf.Stats()} {
		if s != (Stats{}) {
			t.Errorf("bad keys were admitted or counted: %+v", s)
		}
	}
	if p.Keys()+pf.Keys()+ps.Keys()+k.Keys()+kf.Keys() != 0 {
		t.Error("bad keys were tracked")
	}
	// Good keys of the same types still work.
	if !p.TryAcquire("a") || !pf.TryAcquire(1.5) || !ps.TryAcquire(pair{a: 1, f: 2}) || k.AllowAt(now, 3) != nil || kf.AllowAt(now, 0.5) != nil {
		t.Error("a good key was refused")
	}
}

// nilCtx is a context type whose methods dereference their receiver.
type nilCtx struct{ context.Context }

// TestTypedNilContext: a typed nil context (a nil *nilCtx in a
// context.Context) is an error matching ErrInvalidArgument, like a nil one,
// not a panic in its Err method.
func TestTypedNilContext(t *testing.T) {
	var ctx context.Context = (*nilCtx)(nil)
	fn := func(context.Context) error { return nil }
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPartition(PartitionConfig[string]{Total: 2})
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(QueueConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLimiter(LimiterConfig{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Bulkhead.Acquire":  func() error { return b.Acquire(ctx) },
		"Bulkhead.Do":       func() error { return b.Do(ctx, fn) },
		"Partition.Acquire": func() error { return p.Acquire(ctx, "a") },
		"Partition.Do":      func() error { return p.Do(ctx, "a", fn) },
		"Queue.Acquire":     func() error { return q.Acquire(ctx, Normal) },
		"Queue.Do":          func() error { return q.Do(ctx, Normal, fn) },
		"Limiter.Wait":      func() error { return l.Wait(ctx) },
	} {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s with a typed nil context panicked: %v", name, r)
				}
			}()
			err = call()
		}()
		if !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrShed) {
			t.Errorf("%s with a typed nil context: %v, want ErrInvalidArgument and not a refusal", name, err)
		}
	}
	for _, s := range []Stats{b.Stats(), p.Stats(), q.Stats(), l.Stats()} {
		if s != (Stats{}) {
			t.Errorf("a call with a typed nil context was admitted or counted: %+v", s)
		}
	}
	// A context whose value is a struct (not a pointer) is not nil.
	if err := b.Acquire(nilCtx{context.Background()}); err != nil {
		t.Errorf("a struct context was refused: %v", err)
	}
}
