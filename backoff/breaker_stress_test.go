package backoff

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestBreakerConcurrentStress: many goroutines admit and record on one
// breaker with a shared virtual clock, so that it opens, half-opens and
// closes again and again under contention. The probes in flight never
// exceed Probes, no half-open phase decides on more than Probes results, and
// when the goroutines are done the lock-free sums equal the window's
// contents.
func TestBreakerConcurrentStress(t *testing.T) {
	for _, kind := range []WindowKind{CountWindow, TimeWindow} {
		t.Run([]string{"count", "time"}[kind], func(t *testing.T) {
			b := mustBreaker(t, BreakerConfig{
				Window: kind, WindowCalls: 16, WindowDuration: 40 * time.Millisecond, Buckets: 4,
				MinCalls: 4, FailureRate: 0.5, SlowCallDuration: 3 * time.Millisecond, SlowRate: 0.75,
				OpenWait: 5 * time.Millisecond, Probes: 3, ProbeTimeout: time.Hour,
			})
			var clock atomic.Int64
			base := time.Unix(1e6, 0)
			var (
				mu       sync.Mutex
				inFlight = map[*phase]int{}
				phases   = map[*phase]bool{}
				admitted atomic.Int64
				refused  atomic.Int64
			)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 7))
					for range 3000 {
						now := base.Add(time.Duration(clock.Add(int64(r.IntN(200) * int(time.Microsecond)))))
						tk, err := b.AllowAt(now)
						if err != nil {
							if !errors.Is(err, ErrBreakerOpen) {
								t.Errorf("refusal %v", err)
							}
							refused.Add(1)
							continue
						}
						admitted.Add(1)
						probe := tk.p.state == BreakerHalfOpen
						if probe {
							mu.Lock()
							inFlight[tk.p]++
							phases[tk.p] = true
							if n := inFlight[tk.p]; n > 3 {
								t.Errorf("%d probes in flight, Probes 3", n)
							}
							mu.Unlock()
						}
						// The dependency flaps: mostly failing for 20ms of
						// virtual time, then mostly healthy for 20ms.
						failing := now.Sub(base)/(20*time.Millisecond)%2 == 0
						var res error
						if (failing && r.IntN(10) != 0) || (!failing && r.IntN(10) == 0) {
							res = errDependency
						}
						end := now.Add(time.Duration(r.IntN(5)) * time.Millisecond)
						if probe {
							mu.Lock()
							inFlight[tk.p]--
							mu.Unlock()
						}
						if r.IntN(20) == 0 {
							b.Release(tk)
						} else {
							b.RecordAt(end, tk, res)
						}
					}
				}()
			}
			wg.Wait()
			require.Positive(t, admitted.Load())
			require.Positive(t, refused.Load(), "the breaker never opened")
			require.NotEmpty(t, phases, "the breaker never half-opened")
			b.mu.Lock()
			for p := range phases {
				assert.LessOrEqual(t, p.results+p.inFlight, 3)
			}
			b.mu.Unlock()
			p := b.cur.Load()
			if p.count != nil {
				var calls, fails, slows int
				for i := range p.count.ring {
					v := p.count.ring[i].Load()
					calls += int(v & 1)
					fails += int(v >> 1 & 1)
					slows += int(v >> 2 & 1)
				}
				c, f, s := p.count.counts()
				assert.Equal(t, [3]int{calls, fails, slows}, [3]int{c, f, s})
			}
			if p.tw != nil {
				var calls, fails, slows int
				for i := range p.tw.ring {
					c, f, s := p.tw.ring[i].counts()
					calls, fails, slows = calls+c, fails+f, slows+s
				}
				c, f, s := p.tw.sum.counts()
				assert.Equal(t, [3]int{calls, fails, slows}, [3]int{c, f, s})
			}
		})
	}
}

// TestBreakersBound: over random sequences of keys, failures, recoveries
// and removals, a Breakers never holds more than MaxKeys breakers, never
// forgets an open or half-open breaker (only Remove does), and refuses a new
// key exactly when it is full of open and half-open breakers.
func TestBreakersBound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxKeys := rapid.IntRange(1, 6).Draw(t, "maxKeys")
		bs, err := NewBreakers(BreakersConfig[int]{MaxKeys: maxKeys, Breaker: BreakerConfig{
			WindowCalls: 2, MinCalls: 2, OpenWait: time.Second, Probes: 1,
		}})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(0, 0)
		held := map[int]*Breaker{} // the breakers the test knows are held
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			key := rapid.IntRange(0, 2*maxKeys).Draw(t, "key")
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0, 1: // use the key: a success or a failure
				allBroken := len(held) == maxKeys
				for _, b := range held {
					if b.cur.Load().state == BreakerClosed {
						allBroken = false
					}
				}
				_, known := held[key]
				b, err := bs.Get(key)
				if !known && allBroken {
					if !errors.Is(err, ErrTooManyBreakers) {
						t.Fatalf("full of broken breakers, Get(%d) = %v, %v", key, b, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("Get(%d): %v", key, err)
				}
				if known && held[key] != b {
					t.Fatalf("key %d got a new breaker", key)
				}
				if !known && len(held) == maxKeys {
					// Someone closed was forgotten.
					for k, hb := range held {
						if _, ok := bs.Lookup(k); !ok {
							if hb.cur.Load().state != BreakerClosed {
								t.Fatalf("forgot key %d in state %v", k, hb.cur.Load().state)
							}
							delete(held, k)
						}
					}
				}
				held[key] = b
				tk, err := b.AllowAt(now)
				if err == nil {
					var res error
					if rapid.Bool().Draw(t, "fail") {
						res = errDependency
					}
					b.RecordAt(now, tk, res)
				}
			case 2:
				now = now.Add(time.Duration(rapid.IntRange(0, 2).Draw(t, "dt")) * time.Second)
			case 3:
				if bs.Remove(key) != (held[key] != nil) {
					t.Fatalf("Remove(%d) disagrees", key)
				}
				delete(held, key)
			}
			if bs.Len() > maxKeys || bs.Len() != len(held) {
				t.Fatalf("Len %d, MaxKeys %d, held %d", bs.Len(), maxKeys, len(held))
			}
			for k, b := range held {
				if got, ok := bs.Lookup(k); !ok || got != b {
					t.Fatalf("key %d lost", k)
				}
			}
		}
	})
}

// TestBreakersConcurrent: goroutines hammering a small Breakers with many
// keys never push it past its bound.
func TestBreakersConcurrent(t *testing.T) {
	bs, err := NewBreakers(BreakersConfig[int]{MaxKeys: 8, Breaker: BreakerConfig{WindowCalls: 2, MinCalls: 2, OpenWait: time.Millisecond}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				key := r.IntN(32)
				tk, err := bs.Allow(key)
				if err != nil {
					if !errors.Is(err, ErrBreakerOpen) && !errors.Is(err, ErrTooManyBreakers) {
						t.Errorf("Allow: %v", err)
					}
					continue
				}
				var res error
				if key%2 == 0 {
					res = errDependency
				}
				bs.Record(tk, res)
				if n := bs.Len(); n > 8 {
					t.Errorf("Len %d > 8", n)
				}
				if r.IntN(100) == 0 {
					bs.Remove(key)
				}
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, bs.Len(), 8)
}
