package shed

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"
)

// limiterUnderTest adapts a Bulkhead (one key) or a Partition to one shape,
// so one state-machine test checks both.
type limiterUnderTest interface {
	acquire(ctx context.Context, key int) error
	try(key int) bool
	release(key int)
	pause(key int)
	resume(key int)
	keyStats(key int) Stats
	stats() Stats
	perKey() int   // cap in flight per key
	total() int    // cap in flight overall
	maxQueue() int // queue bound per key
}

type bulkheadUT struct {
	*Bulkhead
}

func (b bulkheadUT) acquire(ctx context.Context, _ int) error { return b.Acquire(ctx) }
func (b bulkheadUT) try(int) bool                             { return b.TryAcquire() }
func (b bulkheadUT) release(int)                              { b.Release() }
func (b bulkheadUT) pause(int)                                { b.Pause() }
func (b bulkheadUT) resume(int)                               { b.Resume() }
func (b bulkheadUT) keyStats(int) Stats                       { return b.Stats() }
func (b bulkheadUT) stats() Stats                             { return b.Stats() }
func (b bulkheadUT) perKey() int                              { return b.maxConcurrent }
func (b bulkheadUT) total() int                               { return b.maxConcurrent }
func (b bulkheadUT) maxQueue() int                            { return b.Bulkhead.maxQueue }

type partitionUT struct {
	*Partition[int]
}

func (p partitionUT) acquire(ctx context.Context, k int) error { return p.Acquire(ctx, k) }
func (p partitionUT) try(k int) bool                           { return p.TryAcquire(k) }
func (p partitionUT) release(k int)                            { p.Release(k) }
func (p partitionUT) pause(k int)                              { _ = p.Pause(k) }
func (p partitionUT) resume(k int)                             { p.Resume(k) }
func (p partitionUT) keyStats(k int) Stats                     { s, _ := p.StatsFor(k); return s }
func (p partitionUT) stats() Stats                             { return p.Stats() }
func (p partitionUT) perKey() int                              { return p.Partition.perKey }
func (p partitionUT) total() int                               { return p.Partition.total }
func (p partitionUT) maxQueue() int                            { return p.Partition.maxQueue }

// smOp is one step of a random schedule, drawn before the schedule runs so
// that rapid can shrink it.
type smOp struct {
	kind  int // see the switch in runSchedule
	key   int
	index int
	d     time.Duration
}

func (o smOp) String() string {
	return fmt.Sprintf("%s(key=%d, i=%d, d=%v)", []string{"acquire", "try", "release", "cancel", "advance", "pause", "resume", "cancel+release"}[o.kind], o.key, o.index, o.d)
}

// pendingCall is an Acquire running in its own goroutine.
type pendingCall struct {
	key    int
	seq    int
	cancel context.CancelFunc
	result chan error
	done   bool
}

// runSchedule runs ops against l in a synctest bubble and returns the first
// broken invariant, or "" if none. Invariants, checked after every step
// once every goroutine has settled:
//   - in flight never exceeds the cap per key nor the total;
//   - no key's queue exceeds its bound;
//   - every Acquire ends exactly once, in success or a typed *Refusal;
//   - permits are conserved: what the limiter counts in flight is exactly
//     the successful acquires not yet released, per key and in total;
//   - a queued call is granted only if no older call of its key waits.
func runSchedule(t *testing.T, l limiterUnderTest, keys int, ops []smOp) (broken string) {
	synctest.Test(t, func(t *testing.T) {
		held := make([]int, keys)
		var calls []*pendingCall
		seq := 0
		defer func() {
			for _, c := range calls {
				c.cancel()
			}
			synctest.Wait()
			for k := range keys {
				for range held[k] {
					l.release(k)
				}
			}
		}()
		settle := func() string {
			synctest.Wait()
			for _, c := range calls {
				if c.done {
					continue
				}
				select {
				case err := <-c.result:
					c.done = true
					if err == nil {
						held[c.key]++
						for _, o := range calls {
							if !o.done && o.key == c.key && o.seq < c.seq && l.keyStats(c.key).Waiting > 0 {
								// Only a grant from the queue is ordered; an
								// older call still waiting means unfairness.
								return fmt.Sprintf("call %d of key %d granted while older call %d waits", c.seq, c.key, o.seq)
							}
						}
						continue
					}
					var r *Refusal
					if !errors.As(err, &r) {
						return fmt.Sprintf("untyped error %v", err)
					}
				default:
				}
			}
			total, waiting := 0, 0
			for k := range keys {
				s := l.keyStats(k)
				if s.InFlight != held[k] {
					return fmt.Sprintf("key %d: %d in flight, but %d acquired and not released", k, s.InFlight, held[k])
				}
				if s.InFlight > l.perKey() {
					return fmt.Sprintf("key %d: %d in flight > cap %d", k, s.InFlight, l.perKey())
				}
				if s.Waiting > l.maxQueue() {
					return fmt.Sprintf("key %d: %d waiting > bound %d", k, s.Waiting, l.maxQueue())
				}
				total += s.InFlight
				waiting += s.Waiting
			}
			if s := l.stats(); s.InFlight != total || s.InFlight > l.total() || s.Waiting != waiting {
				return fmt.Sprintf("totals %+v disagree with keys (in flight %d, waiting %d) or exceed %d", s, total, waiting, l.total())
			}
			if m, ok := l.(movingLimitUT); ok {
				if b := m.broken(); b != "" {
					return b
				}
				for k := range keys {
					// Nobody waits while its key has room under its limit
					// and the pool has room: a limit that grows wakes them.
					if s := l.keyStats(k); s.Waiting > 0 && s.InFlight < m.limit(k) && total < l.total() {
						return fmt.Sprintf("key %d: %d wait with %d in flight under its limit %d (pool %d of %d)", k, s.Waiting, s.InFlight, m.limit(k), total, l.total())
					}
				}
			}
			open := 0
			for _, c := range calls {
				if !c.done {
					open++
				}
			}
			if open != waiting {
				return fmt.Sprintf("%d calls blocked but %d counted waiting", open, waiting)
			}
			return ""
		}
		for _, op := range ops {
			switch op.kind {
			case 0:
				ctx, cancel := context.WithCancel(t.Context())
				c := &pendingCall{key: op.key, seq: seq, cancel: cancel, result: make(chan error, 1)}
				seq++
				calls = append(calls, c)
				go func() { c.result <- l.acquire(ctx, c.key) }()
			case 1:
				if l.try(op.key) {
					held[op.key]++
				}
			case 2:
				if held[op.key] > 0 {
					held[op.key]--
					l.release(op.key)
				}
			case 3:
				if len(calls) > 0 {
					calls[op.index%len(calls)].cancel()
				}
			case 4:
				time.Sleep(op.d)
			case 5:
				l.pause(op.key)
			case 6:
				l.resume(op.key)
			case 7:
				// A waiter's context ends just as a slot is handed to it:
				// the slot must pass on, or be kept, never lost.
				if held[op.key] > 0 {
					for _, c := range calls {
						if !c.done && c.key == op.key {
							c.cancel() // the oldest waiter: the one the slot goes to
							break
						}
					}
					held[op.key]--
					l.release(op.key)
				}
			}
			if broken = settle(); broken != "" {
				broken = fmt.Sprintf("after %v: %s", op, broken)
				return
			}
		}
	})
	return broken
}

func opsGen(keys int) *rapid.Generator[[]smOp] {
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) smOp {
		return smOp{
			// Acquires and releases dominate; pauses are rare.
			kind:  rapid.SampledFrom([]int{0, 0, 0, 1, 2, 2, 2, 3, 4, 5, 6, 6, 7, 7}).Draw(t, "kind"),
			key:   rapid.IntRange(0, keys-1).Draw(t, "key"),
			index: rapid.IntRange(0, 100).Draw(t, "index"),
			d:     time.Duration(rapid.IntRange(1, 30).Draw(t, "ms")) * time.Millisecond,
		}
	}), 1, 60)
}

func TestBulkheadStateMachine(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		b, err := NewBulkhead(BulkheadConfig{
			MaxConcurrent: rapid.IntRange(1, 4).Draw(rt, "maxConcurrent"),
			MaxQueue:      rapid.IntRange(0, 4).Draw(rt, "maxQueue"),
			MaxWait:       time.Duration(rapid.IntRange(1, 50).Draw(rt, "maxWaitMs")) * time.Millisecond,
		})
		if err != nil {
			rt.Fatal(err)
		}
		ops := opsGen(1).Draw(rt, "ops")
		if broken := runSchedule(t, bulkheadUT{b}, 1, ops); broken != "" {
			rt.Fatal(broken)
		}
		if s := b.Stats(); s.InFlight != 0 || s.Waiting != 0 {
			rt.Fatalf("permits leaked after the schedule: %+v", s)
		}
	})
}

func TestPartitionStateMachine(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		total := rapid.IntRange(1, 6).Draw(rt, "total")
		p, err := NewPartition(PartitionConfig[int]{
			Total:          total,
			PerKey:         rapid.IntRange(1, total).Draw(rt, "perKey"),
			MaxQueuePerKey: rapid.IntRange(0, 3).Draw(rt, "maxQueue"),
			MaxWait:        time.Duration(rapid.IntRange(1, 50).Draw(rt, "maxWaitMs")) * time.Millisecond,
		})
		if err != nil {
			rt.Fatal(err)
		}
		ops := opsGen(3).Draw(rt, "ops")
		if broken := runSchedule(t, partitionUT{p}, 3, ops); broken != "" {
			rt.Fatal(broken)
		}
		if s := p.Stats(); s.InFlight != 0 || s.Waiting != 0 {
			rt.Fatalf("permits leaked after the schedule: %+v", s)
		}
	})
}
