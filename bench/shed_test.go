package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	fsratelimiter "github.com/failsafe-go/failsafe-go/ratelimiter"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/stormguard/stormguard/shed"
)

// One configuration per question, expressed in each library's terms.
//
// Bulkheads: a limit so large that no benchmark ever holds it all, so that
// nothing waits and the benchmarks measure the cost of admission alone.
// stormguard's Bulkhead has no queue (MaxQueue 0): a call that found every
// slot taken would be refused at once, as failsafe-go's executor does with
// its default max wait of 0.
//
// Limiters: 1e9 events per second with a burst of 2^20, driven by a
// simulated clock that advances 1ns per call, so every call finds a token
// (the admit path). The "refused" variants allow 1 event per second with a
// burst of 1, spend the token, and then keep asking at the same instant.
// TestShedPeersEquivalent checks all of it.
const (
	shedBulkheadLimit = 1 << 20
	shedRate          = 1e9 // events per second: one token per nanosecond
	shedBurst         = 1 << 20
	// failsafe-go's rate limiters read the wall clock and cannot take a
	// simulated one. Its bursty limiter with shedRate permits per second
	// admits every call of a benchmark (far fewer than 1e9 calls a second);
	// its smooth limiter with a 1ns interval would refuse any two calls
	// that read the same nanosecond, so it is not used.
	shedFailsafePeriod = time.Second
)

// shedKeys are the keys of the keyed primitives, used in turn.
var shedKeys = [...]string{"us-east-1a", "us-east-1b", "us-east-1c"}

func newShedBulkhead(tb testing.TB, limit int) *shed.Bulkhead {
	tb.Helper()
	bh, err := shed.NewBulkhead(shed.BulkheadConfig{MaxConcurrent: limit})
	if err != nil {
		tb.Fatal(err)
	}
	return bh
}

func newShedPartition(tb testing.TB, total, perKey int) *shed.Partition[string] {
	tb.Helper()
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: total, PerKey: perKey})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func newShedLimiter(tb testing.TB, r float64, burst int) *shed.Limiter {
	tb.Helper()
	l, err := shed.NewLimiter(shed.LimiterConfig{Rate: r, Burst: burst})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func newShedKeyedLimiter(tb testing.TB, r float64, burst int) *shed.KeyedLimiter[string] {
	tb.Helper()
	l, err := shed.NewKeyedLimiter[string](shed.KeyedLimiterConfig{LimiterConfig: shed.LimiterConfig{Rate: r, Burst: burst}})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// The newRefusing* functions return limiters (1 event per second, burst 1)
// whose only token has been spent at now, so that every later call at now
// is refused.
func newRefusingShedLimiter(tb testing.TB, now time.Time) *shed.Limiter {
	tb.Helper()
	l := newShedLimiter(tb, 1, 1)
	if !l.AllowAt(now) {
		tb.Fatal("stormguard: the first token was refused")
	}
	return l
}

func newRefusingRateLimiter(tb testing.TB, now time.Time) *rate.Limiter {
	tb.Helper()
	l := rate.NewLimiter(1, 1)
	if !l.AllowN(now, 1) {
		tb.Fatal("x/time/rate: the first token was refused")
	}
	return l
}

func newRefusingShedKeyedLimiter(tb testing.TB, now time.Time) *shed.KeyedLimiter[string] {
	tb.Helper()
	l := newShedKeyedLimiter(tb, 1, 1)
	if err := l.AllowAt(now, shedKeys[0]); err != nil {
		tb.Fatal(err)
	}
	return l
}

// BenchmarkBulkhead measures taking and giving back one slot of a bulkhead
// that always has room, from one goroutine: the price every admitted call
// pays. "-try" variants never wait; "stormguard-do" and "failsafe-run" wrap
// an operation the way each library's users usually call it.
func BenchmarkBulkhead(b *testing.B) {
	ctx := context.Background()

	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		bh := newShedBulkhead(b, shedBulkheadLimit)
		for b.Loop() {
			if err := bh.Acquire(ctx); err != nil {
				b.Fatal(err)
			}
			bh.Release()
		}
	})
	b.Run("stormguard-try", func(b *testing.B) {
		b.ReportAllocs()
		bh := newShedBulkhead(b, shedBulkheadLimit)
		for b.Loop() {
			if !bh.TryAcquire() {
				b.Fatal("refused")
			}
			bh.Release()
		}
	})
	b.Run("stormguard-do", func(b *testing.B) {
		b.ReportAllocs()
		bh := newShedBulkhead(b, shedBulkheadLimit)
		calls := 0
		op := func(context.Context) error { calls++; return nil }
		for b.Loop() {
			if err := bh.Do(ctx, op); err != nil {
				b.Fatal(err)
			}
		}
		checkCalls(b, calls)
	})
	b.Run("semaphore", func(b *testing.B) {
		b.ReportAllocs()
		sem := semaphore.NewWeighted(shedBulkheadLimit)
		for b.Loop() {
			if err := sem.Acquire(ctx, 1); err != nil {
				b.Fatal(err)
			}
			sem.Release(1)
		}
	})
	b.Run("semaphore-try", func(b *testing.B) {
		b.ReportAllocs()
		sem := semaphore.NewWeighted(shedBulkheadLimit)
		for b.Loop() {
			if !sem.TryAcquire(1) {
				b.Fatal("refused")
			}
			sem.Release(1)
		}
	})
	b.Run("chan", func(b *testing.B) {
		b.ReportAllocs()
		slots := make(chan struct{}, shedBulkheadLimit)
		for b.Loop() {
			slots <- struct{}{}
			<-slots
		}
	})
	b.Run("chan-try", func(b *testing.B) {
		b.ReportAllocs()
		slots := make(chan struct{}, shedBulkheadLimit)
		for b.Loop() {
			select {
			case slots <- struct{}{}:
			default:
				b.Fatal("refused")
			}
			<-slots
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		b.ReportAllocs()
		bh := fsbulkhead.New[any](shedBulkheadLimit)
		for b.Loop() {
			if err := bh.AcquirePermit(ctx); err != nil {
				b.Fatal(err)
			}
			bh.ReleasePermit()
		}
	})
	b.Run("failsafe-try", func(b *testing.B) {
		b.ReportAllocs()
		bh := fsbulkhead.New[any](shedBulkheadLimit)
		for b.Loop() {
			if !bh.TryAcquirePermit() {
				b.Fatal("refused")
			}
			bh.ReleasePermit()
		}
	})
	b.Run("failsafe-run", func(b *testing.B) {
		benchFailsafeRun(b, failsafe.With(fsbulkhead.New[any](shedBulkheadLimit)))
	})
}

// BenchmarkBulkheadParallel is BenchmarkBulkhead from every P at once, on
// one shared bulkhead (semaphore, channel) each.
func BenchmarkBulkheadParallel(b *testing.B) {
	ctx := context.Background()

	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		bh := newShedBulkhead(b, shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := bh.Acquire(ctx); err != nil {
					b.Error(err)
					return
				}
				bh.Release()
			}
		})
	})
	b.Run("stormguard-try", func(b *testing.B) {
		b.ReportAllocs()
		bh := newShedBulkhead(b, shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !bh.TryAcquire() {
					b.Error("refused")
					return
				}
				bh.Release()
			}
		})
	})
	b.Run("stormguard-do", func(b *testing.B) {
		b.ReportAllocs()
		bh := newShedBulkhead(b, shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			op := func(context.Context) error { return nil }
			for pb.Next() {
				if err := bh.Do(ctx, op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("semaphore", func(b *testing.B) {
		b.ReportAllocs()
		sem := semaphore.NewWeighted(shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := sem.Acquire(ctx, 1); err != nil {
					b.Error(err)
					return
				}
				sem.Release(1)
			}
		})
	})
	b.Run("semaphore-try", func(b *testing.B) {
		b.ReportAllocs()
		sem := semaphore.NewWeighted(shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !sem.TryAcquire(1) {
					b.Error("refused")
					return
				}
				sem.Release(1)
			}
		})
	})
	b.Run("chan", func(b *testing.B) {
		b.ReportAllocs()
		slots := make(chan struct{}, shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				slots <- struct{}{}
				<-slots
			}
		})
	})
	b.Run("chan-try", func(b *testing.B) {
		b.ReportAllocs()
		slots := make(chan struct{}, shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				select {
				case slots <- struct{}{}:
				default:
					b.Error("refused")
					return
				}
				<-slots
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		b.ReportAllocs()
		bh := fsbulkhead.New[any](shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := bh.AcquirePermit(ctx); err != nil {
					b.Error(err)
					return
				}
				bh.ReleasePermit()
			}
		})
	})
	b.Run("failsafe-try", func(b *testing.B) {
		b.ReportAllocs()
		bh := fsbulkhead.New[any](shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !bh.TryAcquirePermit() {
					b.Error("refused")
					return
				}
				bh.ReleasePermit()
			}
		})
	})
	b.Run("failsafe-run", func(b *testing.B) {
		benchFailsafeRunParallel(b, failsafe.With(fsbulkhead.New[any](shedBulkheadLimit)))
	})
}

// BenchmarkPartition measures stormguard's Partition, a bulkhead per key
// drawing on a shared total, over shedKeys in turn. No peer has an
// equivalent; compare with BenchmarkBulkhead/stormguard for the cost of the
// keys.
func BenchmarkPartition(b *testing.B) {
	ctx := context.Background()

	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		p := newShedPartition(b, shedBulkheadLimit, shedBulkheadLimit)
		i := 0
		for b.Loop() {
			key := shedKeys[i]
			if i++; i == len(shedKeys) {
				i = 0
			}
			if err := p.Acquire(ctx, key); err != nil {
				b.Fatal(err)
			}
			p.Release(key)
		}
	})
	b.Run("stormguard-try", func(b *testing.B) {
		b.ReportAllocs()
		p := newShedPartition(b, shedBulkheadLimit, shedBulkheadLimit)
		i := 0
		for b.Loop() {
			key := shedKeys[i]
			if i++; i == len(shedKeys) {
				i = 0
			}
			if !p.TryAcquire(key) {
				b.Fatal("refused")
			}
			p.Release(key)
		}
	})
}

func BenchmarkPartitionParallel(b *testing.B) {
	ctx := context.Background()

	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		p := newShedPartition(b, shedBulkheadLimit, shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				key := shedKeys[i]
				if i++; i == len(shedKeys) {
					i = 0
				}
				if err := p.Acquire(ctx, key); err != nil {
					b.Error(err)
					return
				}
				p.Release(key)
			}
		})
	})
	b.Run("stormguard-try", func(b *testing.B) {
		b.ReportAllocs()
		p := newShedPartition(b, shedBulkheadLimit, shedBulkheadLimit)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				key := shedKeys[i]
				if i++; i == len(shedKeys) {
					i = 0
				}
				if !p.TryAcquire(key) {
					b.Error("refused")
					return
				}
				p.Release(key)
			}
		})
	})
}

// BenchmarkLimiter measures one rate-limit check on the pure core, with a
// simulated clock that advances 1ns per call: stormguard's Limiter.AllowAt
// against x/time/rate's AllowN(t, 1), which it wraps. "-refused" variants
// ask at one instant, after the only token is spent. "keyed" is
// stormguard's KeyedLimiter over shedKeys in turn, for reference.
func BenchmarkLimiter(b *testing.B) {
	start := time.Now()

	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		l := newShedLimiter(b, shedRate, shedBurst)
		now := start
		for b.Loop() {
			now = now.Add(time.Nanosecond)
			if !l.AllowAt(now) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("xrate", func(b *testing.B) {
		b.ReportAllocs()
		l := rate.NewLimiter(shedRate, shedBurst)
		now := start
		for b.Loop() {
			now = now.Add(time.Nanosecond)
			if !l.AllowN(now, 1) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("stormguard-refused", func(b *testing.B) {
		b.ReportAllocs()
		l := newRefusingShedLimiter(b, start)
		for b.Loop() {
			if l.AllowAt(start) {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("xrate-refused", func(b *testing.B) {
		b.ReportAllocs()
		l := newRefusingRateLimiter(b, start)
		for b.Loop() {
			if l.AllowN(start, 1) {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("keyed", func(b *testing.B) {
		b.ReportAllocs()
		l := newShedKeyedLimiter(b, shedRate, shedBurst)
		now := start
		i := 0
		for b.Loop() {
			now = now.Add(time.Nanosecond)
			key := shedKeys[i]
			if i++; i == len(shedKeys) {
				i = 0
			}
			if err := l.AllowAt(now, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keyed-refused", func(b *testing.B) {
		b.ReportAllocs()
		l := newRefusingShedKeyedLimiter(b, start)
		for b.Loop() {
			if l.AllowAt(start, shedKeys[0]) == nil {
				b.Fatal("admitted")
			}
		}
	})
}

// BenchmarkLimiterNow is the same check on the wall clock: stormguard's
// Allow and x/time/rate's Allow read time.Now() (see Baseline/time.Now);
// failsafe-go's bursty limiter reads a monotonic stopwatch (time.Since),
// and offers no call that takes the time.
func BenchmarkLimiterNow(b *testing.B) {
	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		l := newShedLimiter(b, shedRate, shedBurst)
		for b.Loop() {
			if !l.Allow() {
				b.Fatal("refused")
			}
		}
	})
	b.Run("xrate", func(b *testing.B) {
		b.ReportAllocs()
		l := rate.NewLimiter(shedRate, shedBurst)
		for b.Loop() {
			if !l.Allow() {
				b.Fatal("refused")
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		b.ReportAllocs()
		l := fsratelimiter.NewBursty[any](shedRate, shedFailsafePeriod)
		for b.Loop() {
			if !l.TryAcquirePermit() {
				b.Fatal("refused")
			}
		}
	})
	b.Run("failsafe-run", func(b *testing.B) {
		benchFailsafeRun(b, failsafe.With(fsratelimiter.NewBursty[any](shedRate, shedFailsafePeriod)))
	})
}

// BenchmarkLimiterParallel is BenchmarkLimiterNow from every P at once, on
// one shared limiter each.
func BenchmarkLimiterParallel(b *testing.B) {
	b.Run("stormguard", func(b *testing.B) {
		b.ReportAllocs()
		l := newShedLimiter(b, shedRate, shedBurst)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !l.Allow() {
					b.Error("refused")
					return
				}
			}
		})
	})
	b.Run("xrate", func(b *testing.B) {
		b.ReportAllocs()
		l := rate.NewLimiter(shedRate, shedBurst)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !l.Allow() {
					b.Error("refused")
					return
				}
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		b.ReportAllocs()
		l := fsratelimiter.NewBursty[any](shedRate, shedFailsafePeriod)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !l.TryAcquirePermit() {
					b.Error("refused")
					return
				}
			}
		})
	})
}

// slotter is a bulkhead of any library, seen through one interface so that
// TestShedPeersEquivalent can put them all through the same checks. The
// benchmarks call the libraries directly.
type slotter struct {
	name string
	// acquire waits for a slot until ctx ends (stormguard refuses at once
	// instead, having no queue); try never waits.
	acquire func(ctx context.Context) error
	try     func() bool
	release func()
	// run runs op in a slot, as Bulkhead.Do and failsafe-go's executor do.
	run func(op func() error) error
}

func newSlotters(tb testing.TB, limit int) []slotter {
	sg := newShedBulkhead(tb, limit)
	sem := semaphore.NewWeighted(int64(limit))
	slots := make(chan struct{}, limit)
	fs := fsbulkhead.New[any](uint(limit))
	fsExec := failsafe.With(fs)
	return []slotter{
		{
			name:    "stormguard",
			acquire: sg.Acquire,
			try:     sg.TryAcquire,
			release: sg.Release,
			run: func(op func() error) error {
				return sg.Do(context.Background(), func(context.Context) error { return op() })
			},
		},
		{
			name:    "semaphore",
			acquire: func(ctx context.Context) error { return sem.Acquire(ctx, 1) },
			try:     func() bool { return sem.TryAcquire(1) },
			release: func() { sem.Release(1) },
		},
		{
			name: "chan",
			acquire: func(ctx context.Context) error {
				select {
				case slots <- struct{}{}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
			try: func() bool {
				select {
				case slots <- struct{}{}:
					return true
				default:
					return false
				}
			},
			release: func() { <-slots },
		},
		{
			name:    "failsafe",
			acquire: fs.AcquirePermit,
			try:     fs.TryAcquirePermit,
			release: fs.ReleasePermit,
			run:     fsExec.Run,
		},
	}
}

// TestShedPeersEquivalent checks that the configurations the benchmarks
// compare do the same work: every bulkhead admits up to its limit and
// refuses beyond it, the benchmarks' limits are never reached, every rate
// limiter admits its burst and one event per token, and refuses when empty.
func TestShedPeersEquivalent(t *testing.T) {
	const small = 3
	for _, s := range newSlotters(t, small) {
		t.Run("bulkhead/"+s.name, func(t *testing.T) {
			for i := range small {
				if !s.try() {
					t.Fatalf("try %d of %d refused", i+1, small)
				}
			}
			if s.try() {
				t.Fatal("try admitted beyond the limit")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			if err := s.acquire(ctx); err == nil {
				t.Fatal("acquire admitted beyond the limit")
			}
			if s.run != nil {
				calls := 0
				if err := s.run(func() error { calls++; return nil }); err == nil || calls != 0 {
					t.Fatalf("run when full: err %v, %d calls; want an error and no call", err, calls)
				}
			}
			s.release()
			if err := s.acquire(context.Background()); err != nil {
				t.Fatalf("acquire after a release: %v", err)
			}
			for range small {
				s.release()
			}
			if s.run != nil {
				calls := 0
				if err := s.run(func() error { calls++; return nil }); err != nil || calls != 1 {
					t.Fatalf("run: err %v, %d calls; want nil and 1 call", err, calls)
				}
			}
			for i := range small {
				if err := s.acquire(context.Background()); err != nil {
					t.Fatalf("acquire %d of %d after releasing all: %v", i+1, small, err)
				}
			}
		})
	}

	// Far more slots than the parallel benchmarks (one per P) ever hold.
	const held = 4096
	for _, s := range newSlotters(t, shedBulkheadLimit) {
		t.Run("bulkhead/"+s.name+"/bench-limit", func(t *testing.T) {
			for i := range held {
				if err := s.acquire(context.Background()); err != nil {
					t.Fatalf("acquire %d: %v", i+1, err)
				}
				if !s.try() {
					t.Fatalf("try %d refused", i+1)
				}
			}
		})
	}

	t.Run("partition", func(t *testing.T) {
		const perKey = 2
		p := newShedPartition(t, perKey*len(shedKeys), perKey)
		for _, key := range shedKeys {
			for i := range perKey {
				if err := p.Acquire(context.Background(), key); err != nil {
					t.Fatalf("%s: acquire %d of %d: %v", key, i+1, perKey, err)
				}
			}
			if p.TryAcquire(key) {
				t.Fatalf("%s: try admitted beyond the per-key cap", key)
			}
		}
		p.Release(shedKeys[1])
		if !p.TryAcquire(shedKeys[1]) {
			t.Fatal("try after a release refused")
		}

		p = newShedPartition(t, shedBulkheadLimit, shedBulkheadLimit)
		for i := range held {
			key := shedKeys[i%len(shedKeys)]
			if err := p.Acquire(context.Background(), key); err != nil {
				t.Fatalf("bench limit: acquire %d: %v", i+1, err)
			}
		}
	})

	start := time.Now()
	t.Run("limiter/small", func(t *testing.T) {
		// Burst 3, one token per nanosecond: 3 at start, then 1 each ns.
		sg := newShedLimiter(t, shedRate, small)
		xr := rate.NewLimiter(shedRate, small)
		keyed := newShedKeyedLimiter(t, shedRate, small)
		limiters := map[string]func(time.Time) bool{
			"stormguard": sg.AllowAt,
			"xrate":      func(now time.Time) bool { return xr.AllowN(now, 1) },
			"keyed":      func(now time.Time) bool { return keyed.AllowAt(now, shedKeys[0]) == nil },
		}
		for name, allowAt := range limiters {
			for i := range small {
				if !allowAt(start) {
					t.Fatalf("%s: event %d of the burst refused", name, i+1)
				}
			}
			if allowAt(start) {
				t.Fatalf("%s: admitted beyond the burst", name)
			}
			next := start.Add(time.Nanosecond)
			if !allowAt(next) {
				t.Fatalf("%s: refused after a token's worth of time", name)
			}
			if allowAt(next) {
				t.Fatalf("%s: admitted two events on one token", name)
			}
		}
		if err := keyed.AllowAt(start, shedKeys[1]); err != nil {
			t.Fatalf("keyed: a fresh key was refused: %v", err)
		}
	})

	t.Run("limiter/bench", func(t *testing.T) {
		const calls = 1 << 16
		sg := newShedLimiter(t, shedRate, shedBurst)
		xr := rate.NewLimiter(shedRate, shedBurst)
		keyed := newShedKeyedLimiter(t, shedRate, shedBurst)
		now := start
		for i := range calls {
			now = now.Add(time.Nanosecond)
			if !sg.AllowAt(now) {
				t.Fatalf("stormguard: call %d refused", i+1)
			}
			if !xr.AllowN(now, 1) {
				t.Fatalf("xrate: call %d refused", i+1)
			}
			if err := keyed.AllowAt(now, shedKeys[i%len(shedKeys)]); err != nil {
				t.Fatalf("keyed: call %d: %v", i+1, err)
			}
		}
		// The wall-clock variants, with the same limiters.
		sgNow := newShedLimiter(t, shedRate, shedBurst)
		xrNow := rate.NewLimiter(shedRate, shedBurst)
		fs := fsratelimiter.NewBursty[any](shedRate, shedFailsafePeriod)
		for i := range calls {
			if !sgNow.Allow() || !xrNow.Allow() || !fs.TryAcquirePermit() {
				t.Fatalf("wall clock: call %d refused", i+1)
			}
		}
	})

	t.Run("limiter/refused", func(t *testing.T) {
		sg := newRefusingShedLimiter(t, start)
		xr := newRefusingRateLimiter(t, start)
		keyed := newRefusingShedKeyedLimiter(t, start)
		for i := range 100 {
			if sg.AllowAt(start) || xr.AllowN(start, 1) {
				t.Fatalf("call %d admitted", i+1)
			}
			if err := keyed.AllowAt(start, shedKeys[0]); !errors.Is(err, shed.ErrRateLimited) {
				t.Fatalf("keyed: call %d: err %v, want ErrRateLimited", i+1, err)
			}
		}
		if s := sg.Stats(); s.Admitted != 1 || s.Shed.RateLimited != 100 {
			t.Fatalf("stormguard stats %+v, want 1 admitted and 100 rate limited", s)
		}
	})

	t.Run("limiter/failsafe", func(t *testing.T) {
		// A period of an hour: the stopwatch will not reach a new one.
		l := fsratelimiter.NewBursty[any](small, time.Hour)
		exec := failsafe.With(l)
		for i := range small {
			if !l.TryAcquirePermit() {
				t.Fatalf("permit %d of %d refused", i+1, small)
			}
		}
		if l.TryAcquirePermit() {
			t.Fatal("admitted beyond the period's permits")
		}
		calls := 0
		if err := exec.Run(func() error { calls++; return nil }); !errors.Is(err, fsratelimiter.ErrExceeded) || calls != 0 {
			t.Fatalf("run when empty: err %v, %d calls; want ErrExceeded and no call", err, calls)
		}
		exec = failsafe.With(fsratelimiter.NewBursty[any](shedRate, shedFailsafePeriod))
		if err := exec.Run(func() error { calls++; return nil }); err != nil || calls != 1 {
			t.Fatalf("run: err %v, %d calls; want nil and 1 call", err, calls)
		}
	})
}
