package backoff

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// countWindow is the ring of the last n results. Each slot holds one result
// (bit 0: a call, bit 1: failed, bit 2: slow) and sum holds the three counts
// packed in 21-bit fields, so one atomic addition of the difference between
// the new and the old slot keeps them all. A field may be briefly negative
// while concurrent writers of one slot finish in another order than they
// swapped; the fields are decoded as signed, so the sum is exact once they
// are done.
type countWindow struct {
	n     uint32
	m     uint64 // fastmod multiplier for n
	limit uint32 // a multiple of n: pos is brought back by it before it wraps
	pos   atomic.Uint32
	_     cacheLinePad
	sum   atomic.Uint64
	_     cacheLinePad
	ring  []atomic.Uint32
}

const (
	fieldBits = 21
	fieldMask = 1<<fieldBits - 1
)

func newCountWindow(n int) *countWindow {
	return &countWindow{
		n: uint32(n), m: math.MaxUint64/uint64(n) + 1, limit: 1 << 31 / uint32(n) * uint32(n),
		ring: make([]atomic.Uint32, n),
	}
}

func packResult(v uint32) uint64 {
	return uint64(v&1) | uint64(v>>1&1)<<fieldBits | uint64(v>>2&1)<<(2*fieldBits)
}

// resultValue encodes a result as a ring slot holds it.
func resultValue(failed, slow bool) uint32 {
	v := uint32(1)
	if failed {
		v |= 2
	}
	if slow {
		v |= 4
	}
	return v
}

// sameAsBefore takes the next position of the ring for result v and
// reports whether its slot already holds v: then the counts do not change,
// and neither the slot nor the sums need a write (the steady state: a
// success over a success). Otherwise the caller writes v with write.
func (w *countWindow) sameAsBefore(v uint32) (i uint32, same bool) {
	i = w.pos.Add(1) - 1
	if i >= w.limit {
		w.wrap(i)
	}
	// i mod n by Lemire's fastmod: two multiplications instead of a division.
	hi, _ := bits.Mul64(w.m*uint64(i), uint64(w.n))
	return uint32(hi), w.ring[hi].Load() == v
}

// wrap brings pos back by a multiple of n long before it wraps at 2^32
// (which is not one), so consecutive calls keep consecutive slots. If
// another call moved pos meanwhile, a later one does it.
func (w *countWindow) wrap(i uint32) {
	w.pos.CompareAndSwap(i+1, i+1-w.limit)
}

// write puts result v into slot i and returns the window's counts. Skipping
// the write of an equal result (sameAsBefore) keeps sum equal to the slots'
// total: every change of a slot is still a Swap with its exact difference.
func (w *countWindow) write(i, v uint32) (calls, failures, slows int) {
	old := w.ring[i].Swap(v)
	return unpack(w.sum.Add(packResult(v) - packResult(old)))
}

func (w *countWindow) counts() (calls, failures, slows int) {
	c, f, s := unpack(w.sum.Load())
	return max(c, 0), max(f, 0), max(s, 0)
}

func unpack(u uint64) (calls, failures, slows int) {
	a := int64(u)
	c := a << (64 - fieldBits) >> (64 - fieldBits)
	a = (a - c) >> fieldBits
	f := a << (64 - fieldBits) >> (64 - fieldBits)
	s := (a - f) >> fieldBits
	return int(c), int(f), int(s)
}

// timeWindow keeps the counts of the calls that ended in the last n bucket
// widths. Each bucket counts its calls, failures and slow calls, and the
// window keeps their sums, so that reading them is three loads (a window
// may hold billions of calls: the counts are not packed). head is
// the newest bucket's index; moving it forward (once per bucket width, under
// mu) empties the buckets it passes and subtracts their counts from the
// sums.
//
// A call is counted in the bucket of the time it ended. Under concurrency a
// call whose recording straddles the move of head past its bucket's next
// lap (a writer stalled for a whole window) is counted in the newer bucket;
// in sequential use the counts are exact.
type timeWindow struct {
	n      int64
	width  int64 // nanoseconds per bucket
	origin atomic.Pointer[windowOrigin]
	head   atomic.Int64
	behind atomic.Int32 // consecutive results older than the window
	_      cacheLinePad
	sum    timeBucket
	_      cacheLinePad
	mu     sync.Mutex
	ring   []timeBucket
}

type timeBucket struct {
	calls, failures, slows atomic.Int64
}

func (b *timeBucket) add(failed, slow bool) {
	b.calls.Add(1)
	if failed {
		b.failures.Add(1)
	}
	if slow {
		b.slows.Add(1)
	}
}

// windowOrigin is the start of a timeWindow's bucket 0. mono: at carries a
// monotonic clock reading, so time.Since(at) is exactly time.Now().Sub(at)
// and costs one clock read instead of two.
type windowOrigin struct {
	at   time.Time
	mono bool
}

func newOrigin(at time.Time) *windowOrigin {
	return &windowOrigin{at: at, mono: at != at.Round(0)}
}

func newTimeWindow(span time.Duration, buckets int) *timeWindow {
	return &timeWindow{n: int64(buckets), width: int64(span) / int64(buckets), ring: make([]timeBucket, buckets)}
}

// start sets the window's origin, the start of bucket 0.
func (w *timeWindow) start(at time.Time) { w.origin.Store(newOrigin(at)) }

func (w *timeWindow) index(now time.Time) int64 {
	o := w.origin.Load()
	if o == nil {
		// Allocates once, on the first call of the breaker's life.
		w.origin.CompareAndSwap(nil, newOrigin(now))
		o = w.origin.Load()
	}
	return w.indexOf(now.Sub(o.at))
}

// indexOf returns the index of the bucket d after the origin.
func (w *timeWindow) indexOf(since time.Duration) int64 {
	d := int64(since)
	i := d / w.width
	if d < 0 && d%w.width != 0 {
		i--
	}
	// Keep the bucket arithmetic (i±n, head+1) far from overflow: with
	// one-nanosecond buckets a time ~292 years away would make the loop in
	// advance run forever. Such a time is a whole window away either way,
	// so clamping changes no count.
	return min(max(i, -maxBucketIndex), maxBucketIndex)
}

// maxBucketIndex bounds a bucket index's magnitude.
const maxBucketIndex = 1 << 62

// staleResets is how many results in a row must be older than the window
// before the window believes that the clock went backwards and starts again
// from them.
const staleResets = 3

// record counts a result that ended at now and returns the window's counts,
// or counted false if the result is older than the whole window: a call
// recorded late (its goroutine stalled between reading the clock and
// recording) is not counted, so it cannot wipe the window of the calls
// recorded since; only staleResets such results in a row, a clock that went
// backwards, start the window again from there.
func (w *timeWindow) record(now time.Time, failed, slow bool) (calls, failures, slows int, counted bool) {
	return w.recordIndex(w.index(now), failed, slow)
}

// recordNow is record(time.Now(), ...) with one clock read instead of two
// when the origin carries a monotonic reading: time.Since(origin) is then
// exactly time.Now().Sub(origin), without reading the wall clock.
func (w *timeWindow) recordNow(failed, slow bool) (calls, failures, slows int, counted bool) {
	o := w.origin.Load()
	if o == nil || !o.mono {
		return w.record(time.Now(), failed, slow)
	}
	return w.recordIndex(w.indexOf(time.Since(o.at)), failed, slow)
}

func (w *timeWindow) recordIndex(i int64, failed, slow bool) (calls, failures, slows int, counted bool) {
	switch h := w.head.Load(); {
	case i > h:
		w.advance(i)
	case i <= h-w.n:
		if w.behind.Add(1) < staleResets {
			return 0, 0, 0, false
		}
		w.advance(i)
	}
	if w.behind.Load() != 0 {
		w.behind.Store(0)
	}
	w.ring[mod(i, w.n)].add(failed, slow)
	w.sum.add(failed, slow)
	calls, failures, slows = w.sum.counts()
	return calls, failures, slows, true
}

func (b *timeBucket) counts() (calls, failures, slows int) {
	return int(b.calls.Load()), int(b.failures.Load()), int(b.slows.Load())
}

// advance makes i the newest bucket: it empties the buckets between the old
// head and i. An index a whole window behind head means that the clock went
// backwards by more than the window: the window starts again from i.
func (w *timeWindow) advance(i int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.head.Load()
	var from int64
	switch {
	case i > h:
		from = max(h+1, i-w.n+1)
	case i <= h-w.n:
		from = i - w.n + 1
	default:
		return
	}
	for j := from; j <= i; j++ {
		bk := &w.ring[mod(j, w.n)]
		w.sum.calls.Add(-bk.calls.Swap(0))
		w.sum.failures.Add(-bk.failures.Swap(0))
		w.sum.slows.Add(-bk.slows.Swap(0))
	}
	w.head.Store(i)
}

// countsAt returns the counts of the window as it would be at now: the
// buckets of the window that ends at the later of now and head. It changes
// nothing, so asking at any time cannot disturb the window.
func (w *timeWindow) countsAt(now time.Time) (calls, failures, slows int) {
	if w.origin.Load() == nil {
		return 0, 0, 0
	}
	w.mu.Lock() // so that head and the buckets agree
	defer w.mu.Unlock()
	h := w.head.Load()
	end := max(h, w.index(now))
	for j := max(end-w.n+1, h-w.n+1); j <= h; j++ {
		c, f, s := w.ring[mod(j, w.n)].counts()
		calls, failures, slows = calls+c, failures+f, slows+s
	}
	return max(calls, 0), max(failures, 0), max(slows, 0)
}

func mod(i, n int64) int64 {
	m := i % n
	if m < 0 {
		m += n
	}
	return m
}
