package lease_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// flaky wraps a Store: renew decides, per renewal, how long it takes and
// whether it fails before reaching the table.
type flaky struct {
	lease.Store
	renews atomic.Int64
	renew  func(n int64) (time.Duration, error)
}

func (f *flaky) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	n := f.renews.Add(1)
	if f.renew != nil {
		d, err := f.renew(n)
		if d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return lease.Lease{}, ctx.Err()
			}
		}
		if err != nil {
			return lease.Lease{}, err
		}
	}
	return f.Store.Renew(ctx, l)
}

func TestKeeperRenewsAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		st := &flaky{Store: m}
		ctx := context.Background()
		l, err := m.Grant(ctx, "droplet-1", "dwfm-a", 10*time.Second)
		require.NoError(t, err)
		var c lease.Counters
		k, err := lease.Keep(ctx, l, lease.KeeperConfig{Store: st, ReleaseOnStop: true, OnEvent: c.Observe})
		require.NoError(t, err)
		time.Sleep(time.Minute)
		synctest.Wait() // the renewal due at the same instant, too
		assert.True(t, k.Held())
		assert.Equal(t, l.Epoch, k.Lease().Epoch, "renewal keeps the epoch")
		assert.Equal(t, int64(12), st.renews.Load(), "renewed every 5s (half the TTL)")
		assert.Equal(t, uint64(12), c.Stats().Renewed)
		k.Stop()
		k.Stop() // idempotent
		assert.ErrorIs(t, k.Err(), context.Canceled)
		assert.False(t, k.Held())
		_, held, _ := m.Get(ctx, "droplet-1")
		assert.False(t, held, "released on stop")
		select {
		case <-k.Lost():
			t.Fatal("a stopped keeper did not lose its lease")
		default:
		}
	})
}

// TestKeeperLostAtDriftDeadline: every renewal fails; the keeper retries
// with backoff and gives the lease up exactly at Expires−DriftMargin, while
// the table still holds it, so no other holder can have it yet.
func TestKeeperLostAtDriftDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		unavailable := errors.New("dynamodb unavailable")
		st := &flaky{Store: m, renew: func(int64) (time.Duration, error) { return 0, unavailable }}
		ctx := context.Background()
		start := time.Now()
		l, err := m.Grant(ctx, "droplet-1", "dwfm-a", 10*time.Second)
		require.NoError(t, err)
		var lostAt time.Time
		var lostErr error
		k, err := lease.Keep(ctx, l, lease.KeeperConfig{
			Store: st, DriftMargin: 2 * time.Second,
			Retry:  backoff.Policy{Base: 200 * time.Millisecond, Cap: time.Second, Jitter: backoff.JitterNone},
			OnLost: func(err error) { lostAt, lostErr = time.Now(), err },
		})
		require.NoError(t, err)
		time.Sleep(8*time.Second - time.Nanosecond)
		assert.True(t, k.Held(), "held until the drift deadline")
		<-k.Lost()
		assert.Equal(t, 8*time.Second, lostAt.Sub(start), "lost at Expires−DriftMargin, not later")
		assert.False(t, k.Held())
		assert.ErrorIs(t, lostErr, lease.ErrLost)
		assert.ErrorIs(t, lostErr, unavailable)
		assert.ErrorIs(t, k.Err(), lease.ErrLost)
		// Renewals at 5s, 5.2s, 5.6s, 6.4s, 7.4s; the next, at 8.4s, would
		// be past the deadline.
		assert.Equal(t, int64(5), st.renews.Load())
		_, err = m.Grant(ctx, "droplet-1", "dwfm-b", time.Second)
		assert.ErrorIs(t, err, lease.ErrHeld, "the table still has the old lease when the keeper gives up")
		<-k.Done()
	})
}

// TestKeeperSlowRenewal: a renewal that hangs past the loss deadline is
// cut off there, and the lease reported lost at that instant.
func TestKeeperSlowRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		st := &flaky{Store: m, renew: func(int64) (time.Duration, error) { return time.Hour, nil }}
		start := time.Now()
		l, _ := m.Grant(context.Background(), "r", "h", 10*time.Second)
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: st})
		require.NoError(t, err)
		<-k.Lost()
		assert.Equal(t, 9*time.Second, time.Since(start), "default drift margin TTL/10")
		assert.ErrorIs(t, k.Err(), context.DeadlineExceeded)
	})
}

func TestKeeperSuperseded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, _ := m.Grant(context.Background(), "r", "h", 10*time.Second)
		require.NoError(t, m.Release(context.Background(), l))
		_, err := m.Grant(context.Background(), "r", "other", 10*time.Second)
		require.NoError(t, err)
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: m})
		require.NoError(t, err)
		<-k.Lost()
		var le *lease.LostError
		require.ErrorAs(t, k.Err(), &le)
		assert.Equal(t, "superseded", le.Reason)
		assert.Equal(t, uint64(2), uint64(le.Current))
	})
}

func TestKeeperContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, _ := m.Grant(context.Background(), "r", "h", 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
		defer cancel()
		k, err := lease.Keep(ctx, l, lease.KeeperConfig{Store: m})
		require.NoError(t, err)
		<-k.Done()
		assert.ErrorIs(t, k.Err(), context.DeadlineExceeded)
		_, held, _ := m.Get(context.Background(), "r")
		assert.True(t, held, "not released without ReleaseOnStop")
	})
}

func TestKeeperConfigValidation(t *testing.T) {
	l := lease.Lease{Resource: "r", Holder: "h", Epoch: 1, TTL: 10 * time.Second}
	_, err := lease.Keep(context.Background(), l, lease.KeeperConfig{
		RenewFraction: 1.5, DriftMargin: 10 * time.Second, AttemptTimeout: -1, Retry: backoff.Policy{Base: -1},
	})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	for _, want := range []string{"Store is nil", "RenewFraction 1.5 is outside (0, 1)", "DriftMargin 10s is not below the lease's TTL 10s", "AttemptTimeout -1ns is negative", "Base -1ns is negative"} {
		assert.Contains(t, err.Error(), want)
	}
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	_, err = lease.Keep(context.Background(), l, lease.KeeperConfig{Store: m, RenewFraction: 0.9, DriftMargin: 2 * time.Second})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "not before the loss deadline")
	_, err = lease.Keep(context.Background(), lease.Lease{}, lease.KeeperConfig{Store: m, DriftMargin: -1})
	require.ErrorIs(t, err, lease.ErrInvalidArgument)
	assert.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.True(t, strings.Contains(err.Error(), "DriftMargin -1ns is negative"))
}

// renewal is what happens to one renewal request in a chaosStore.
type renewal struct {
	before, after time.Duration // latency of the request, of the answer
	hang          bool          // the request takes before even if its context ends
	failBefore    bool          // the request never reaches the table
	failAfter     bool          // the table renews, but the answer is lost
}

var (
	errUnreachable = errors.New("table unreachable")
	errAnswerLost  = errors.New("answer lost")
)

// chaosStore is a Memory whose renewals follow a plan drawn in advance, one
// entry per request, repeated when it runs out (an empty plan: every
// renewal succeeds at once). Grants, releases and reads go straight to the
// table. A hanging request runs past its context's deadline, as a Store
// that does not honour cancellation would.
type chaosStore struct {
	*lease.Memory
	plan []renewal
	n    atomic.Int64

	mu        sync.Mutex
	hanging   int       // hanging requests in flight
	hungUntil time.Time // when the latest hanging request returned
}

func (s *chaosStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	var r renewal
	if len(s.plan) > 0 {
		r = s.plan[(s.n.Add(1)-1)%int64(len(s.plan))]
	}
	if r.hang {
		s.setHanging(true)
		time.Sleep(r.before)
		s.setHanging(false)
	} else if err := sleepCtx(ctx, r.before); err != nil {
		return lease.Lease{}, err
	}
	if r.failBefore {
		return lease.Lease{}, errUnreachable
	}
	nl, err := s.Memory.Renew(ctx, l)
	if err != nil {
		return lease.Lease{}, err
	}
	if err := sleepCtx(ctx, r.after); err != nil {
		return lease.Lease{}, err
	}
	if r.failAfter {
		return lease.Lease{}, errAnswerLost
	}
	return nl, nil
}

func (s *chaosStore) setHanging(h bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h {
		s.hanging++
	} else {
		s.hanging--
		s.hungUntil = time.Now()
	}
}

// hang reports whether a hanging request is in flight, and when the latest
// one returned.
func (s *chaosStore) hang() (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hanging > 0, s.hungUntil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// keeperScenario is one run of TestKeeperNeverHeldAfterGrant.
type keeperScenario struct {
	ttl   time.Duration
	cfg   lease.KeeperConfig // without Store, OnLost and OnEvent, which run sets
	plan  []renewal
	steps []keeperStep
}

// keeperStep: the test's clock, which is the keeper's, advances to a
// point that depends on to; then another holder asks the table for the
// resource at the keeper's time plus skew, a table clock ahead of the
// keeper's by at most the drift margin.
type keeperStep struct {
	to            stepTarget
	advance, skew time.Duration
}

// stepTarget is where a keeperStep moves the clock: by its advance, or to
// a boundary of the keeper's current term, where mistakes show.
type stepTarget int

const (
	byAdvance        stepTarget = iota
	toBeforeDeadline            // 1ns before LostAt(Lease())
	toDeadline                  // LostAt(Lease()): Expires − drift margin
	toExpires                   // Lease().Expires
	stepTargets
)

// until returns how long the clock must advance, at now, for this step.
func (s keeperStep) until(now time.Time, cfg lease.KeeperConfig, cur lease.Lease) time.Duration {
	switch s.to {
	case toBeforeDeadline:
		return cfg.LostAt(cur).Add(-1).Sub(now)
	case toDeadline:
		return cfg.LostAt(cur).Sub(now)
	case toExpires:
		return cur.Expires.Sub(now)
	}
	return s.advance
}

// keeperTally counts, over all runs, what the checks saw, so that the test
// can show they were not vacuous.
type keeperTally struct {
	heldRefused   int // steps where the keeper held and the table refused the other holder
	grantedOther  int // steps where the keeper had let go and the other holder got the resource
	renewed, lost int // keepers' successful renewals; keepers that lost their lease
	heldUp        int // steps past the loss deadline while a hanging request was in flight
}

// TestKeeperNeverHeldAfterGrant drives a real Keeper, on synctest's virtual
// clock, against a Memory table whose renewals are delayed, lost before
// they reach the table, carried out but answered too late or never, or
// hang past their context's deadline, at random. At every step another holder asks the table for the resource
// on a clock running ahead of the keeper's by up to the drift margin — the
// most the margin allows for. It asserts, at every step:
//
//   - whenever Keeper.HeldAt(now) reports the lease held, the table
//     refuses the other holder and names the keeper's current term: no
//     other holder can have been granted the resource;
//   - once now has reached LostAt of the lease as last renewed (Expires
//     minus the drift margin), HeldAt reports false, Lost is closed and the
//     goroutine has ended, even while a request hangs;
//   - OnLost was called no later than that deadline.
func TestKeeperNeverHeldAfterGrant(t *testing.T) {
	var tally keeperTally
	rapid.Check(t, func(rt *rapid.T) {
		ttl := time.Duration(rapid.IntRange(20, 2000).Draw(rt, "ttlMs")) * time.Millisecond
		drift := time.Duration(rapid.Int64Range(1, int64(ttl)/2).Draw(rt, "drift"))
		// The renewal must fall before the loss deadline TTL−drift.
		maxPercent := int(100*(ttl-drift)/ttl) - 1
		// And no sooner than MinRenewInterval (a percent more, for rounding).
		minPercent := int(100*lease.MinRenewInterval/ttl) + 2
		// How often a renewal request is slow, and how often it fails.
		slowPercent := rapid.IntRange(0, 100).Draw(rt, "slowPercent")
		failPercent := rapid.IntRange(0, 100).Draw(rt, "failPercent")
		base := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(ttl)/4).Draw(rt, "retryBase"))
		sc := keeperScenario{
			ttl: ttl,
			cfg: lease.KeeperConfig{
				DriftMargin:   drift,
				RenewFraction: float64(rapid.IntRange(minPercent, maxPercent).Draw(rt, "renewPercent")) / 100,
				Retry: backoff.Policy{
					Base: base, Cap: time.Duration(rapid.Int64Range(int64(base), int64(ttl)).Draw(rt, "retryCap")),
					Jitter: backoff.JitterNone, // deterministic, so that rapid can shrink
				},
				AttemptTimeout: time.Duration(rapid.Int64Range(0, int64(ttl)).Draw(rt, "attemptTimeout")),
			},
			plan: rapid.SliceOfN(rapid.Custom(func(t *rapid.T) renewal {
				var r renewal
				if rapid.IntRange(0, 99).Draw(t, "slow") < slowPercent {
					r.before = time.Duration(rapid.Int64Range(0, int64(ttl)).Draw(t, "before"))
					r.after = time.Duration(rapid.Int64Range(0, int64(ttl)).Draw(t, "after"))
					if rapid.Bool().Draw(t, "hang") {
						// Past any deadline of the term it was sent in.
						r.hang, r.before = true, ttl+r.before
					}
				}
				if rapid.IntRange(0, 99).Draw(t, "fail") < failPercent {
					if rapid.Bool().Draw(t, "landed") {
						r.failAfter = true
					} else {
						r.failBefore = true
					}
				}
				return r
			}), 0, 20).Draw(rt, "plan"),
			steps: rapid.SliceOfN(rapid.Custom(func(t *rapid.T) keeperStep {
				s := keeperStep{to: stepTarget(rapid.IntRange(0, int(stepTargets)-1).Draw(t, "to")), skew: drift}
				if s.to == byAdvance {
					s.advance = time.Duration(rapid.Int64Range(0, int64(ttl)/2).Draw(t, "advance"))
				}
				if !rapid.Bool().Draw(t, "fullSkew") {
					s.skew = time.Duration(rapid.Int64Range(0, int64(drift)).Draw(t, "skew"))
				}
				return s
			}), 1, 80).Draw(rt, "steps"),
		}
		// Everything random was drawn above: a failure inside the bubble
		// is returned, not raised, so that rapid can shrink it.
		var err error
		synctest.Test(t, func(*testing.T) { err = sc.run(&tally) })
		if err != nil {
			rt.Fatal(err)
		}
	})
	t.Logf("%+v", tally)
	assert.Positive(t, tally.heldRefused, "no step found the keeper holding")
	assert.Positive(t, tally.grantedOther, "no step found the resource granted to another holder")
	assert.Positive(t, tally.renewed, "no keeper ever renewed")
	assert.Positive(t, tally.lost, "no keeper ever lost its lease")
	assert.Positive(t, tally.heldUp, "no step found a request hanging past the keeper's deadline")
}

// run plays the scenario inside a synctest bubble and returns the first
// violation.
func (sc keeperScenario) run(tally *keeperTally) error {
	ctx := context.Background()
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	st := &chaosStore{Memory: m, plan: sc.plan}
	start := time.Now()
	l, err := m.Grant(ctx, "r", "keeper", sc.ttl)
	if err != nil {
		return err
	}
	cfg := sc.cfg
	cfg.Store = st
	var lostAt time.Time // written before Lost is closed, read after
	cfg.OnLost = func(error) { lostAt = time.Now() }
	var renewed int
	cfg.OnEvent = func(e lease.Event) {
		if e.Op == lease.OpRenew && !e.Refused {
			renewed++ // read after Stop
		}
	}
	k, err := lease.Keep(ctx, l, cfg)
	if err != nil {
		return err
	}
	// Hanging requests outlive the keeper; let them return before the
	// bubble ends (none hangs for more than 2·TTL).
	defer time.Sleep(3 * sc.ttl)
	defer k.Stop()
	for i, s := range sc.steps {
		time.Sleep(s.until(time.Now(), cfg, k.Lease()))
		synctest.Wait() // the keeper has done all it had to do by now
		now := time.Now()
		at := now.Sub(start)
		cur := k.Lease()
		deadline := cfg.LostAt(cur)
		held := k.HeldAt(now)
		lost := closed(k.Lost())
		hanging, _ := st.hang()
		if !now.Before(deadline) {
			if held {
				return fmt.Errorf("step %d at %v: HeldAt reports epoch %d held at or after its loss deadline %v", i, at, cur.Epoch, deadline.Sub(start))
			}
			if !lost {
				return fmt.Errorf("step %d at %v: past the loss deadline %v of epoch %d, but Lost is not closed (a request hanging: %v)", i, at, deadline.Sub(start), cur.Epoch, hanging)
			}
			if hanging {
				tally.heldUp++
			}
		}
		if lost {
			if held {
				return fmt.Errorf("step %d at %v: HeldAt reports the lease held after the keeper lost it", i, at)
			}
			if lostAt.After(deadline) {
				return fmt.Errorf("step %d: the loss was reported at %v, after the deadline %v", i, lostAt.Sub(start), deadline.Sub(start))
			}
			if !closed(k.Done()) {
				return fmt.Errorf("step %d at %v: the keeper lost its lease but its goroutine has not ended", i, at)
			}
		}
		_, err := m.GrantAt(now.Add(s.skew), "r", "other", sc.ttl)
		var he *lease.HeldError
		refusedForKeeper := errors.As(err, &he) && he.Holder == "keeper" && he.Epoch == cur.Epoch
		if held && !refusedForKeeper {
			return fmt.Errorf("step %d at %v: the keeper reports epoch %d held (its deadline %v), but the table, %v ahead, answered another holder with %v",
				i, at, cur.Epoch, deadline.Sub(start), s.skew, err)
		}
		switch {
		case held:
			tally.heldRefused++
		case err == nil:
			tally.grantedOther++
		}
	}
	k.Stop()
	if k.HeldAt(time.Now()) {
		return fmt.Errorf("HeldAt reports the lease held after Stop")
	}
	if closed(k.Lost()) {
		if !errors.Is(k.Err(), lease.ErrLost) {
			return fmt.Errorf("Lost is closed but Err is %v", k.Err())
		}
		tally.lost++
	} else if !errors.Is(k.Err(), context.Canceled) {
		return fmt.Errorf("stopped keeper: Err is %v, want context.Canceled", k.Err())
	}
	tally.renewed += renewed
	return nil
}
