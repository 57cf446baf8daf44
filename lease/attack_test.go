package lease_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeeperStopFromHooks: OnLost and OnEvent run on the keeper's
// goroutine; calling Stop (or Held, Err, Lease) from them must not
// deadlock the keeper, and the keeper must still end and report as
// documented.
func TestKeeperStopFromHooks(t *testing.T) {
	t.Run("OnLost", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m, _ := lease.NewMemory(lease.MemoryConfig{})
			l, err := m.Grant(context.Background(), "r", "h", 10*time.Second)
			require.NoError(t, err)
			var k *lease.Keeper
			ready := make(chan struct{})
			held := true
			k, err = lease.Keep(context.Background(), l, lease.KeeperConfig{
				Store: failing{m},
				OnLost: func(error) {
					<-ready
					held = k.Held()
					_ = k.Err()
					k.Stop()
					k.Stop()
				},
			})
			require.NoError(t, err)
			close(ready)
			<-k.Done()
			assert.False(t, held)
			assert.ErrorIs(t, k.Err(), lease.ErrLost, "the loss, not the stop, is the keeper's error")
			select {
			case <-k.Lost():
			default:
				t.Fatal("Lost not closed after OnLost called Stop")
			}
			k.Stop()
		})
	})
	t.Run("OnEvent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m, _ := lease.NewMemory(lease.MemoryConfig{})
			l, err := m.Grant(context.Background(), "r", "h", 10*time.Second)
			require.NoError(t, err)
			var k *lease.Keeper
			ready := make(chan struct{})
			k, err = lease.Keep(context.Background(), l, lease.KeeperConfig{
				Store: m, ReleaseOnStop: true,
				OnEvent: func(e lease.Event) {
					<-ready
					if e.Op == lease.OpRenew {
						k.Stop()
					}
				},
			})
			require.NoError(t, err)
			close(ready)
			<-k.Done()
			assert.ErrorIs(t, k.Err(), context.Canceled)
			assert.False(t, k.Held())
			_, ok := m.HolderAt(time.Now(), "r")
			assert.False(t, ok, "ReleaseOnStop released the lease")
		})
	})
}

// failing is a Store whose renewals all fail with an outage.
type failing struct{ lease.Store }

func (failing) Renew(context.Context, lease.Lease) (lease.Lease, error) {
	return lease.Lease{}, errors.New("table down")
}

// TestRecoveryFinishIgnoresForgedDeadline: an Attempt is a plain value;
// a caller that moves its Deadline later (by mistake or by copying fields
// between attempts) must not make a late success count: the Recovery
// judges lateness by the deadline it handed out.
func TestRecoveryFinishIgnoresForgedDeadline(t *testing.T) {
	for _, kind := range []lease.AttemptKind{lease.Establish, lease.Renew} {
		t.Run(kind.String(), func(t *testing.T) {
			r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second})
			require.NoError(t, err)
			require.NoError(t, r.Add(t0, "k"))
			as := r.Start(t0, nil)
			require.Len(t, as, 1)
			a := as[0]
			if kind == lease.Renew {
				assert.Empty(t, r.Finish(at(10*time.Millisecond), a, nil, nil))
				wake, ok := r.Wake()
				require.True(t, ok)
				as = r.Start(wake, nil)
				require.Len(t, as, 1)
				a = as[0]
				require.Equal(t, lease.Renew, a.Kind)
			}
			late := a.Deadline.Add(time.Second)
			forged := a
			forged.Deadline = late.Add(time.Hour)
			r.Finish(late, forged, nil, nil)
			p := r.Progress(late)
			assert.Equal(t, 0, p.Established, "a success reported after the real deadline does not establish the lease")
			assert.Equal(t, int64(1), p.Wasted)
		})
	}
}

// TestRecoveryQueuedRenewalLapsesAtItsDeadline: a renewal queued behind a
// worker that stays busy past the lease's loss deadline lapses at that
// deadline: Wake names it, and Progress stops counting the key as
// Established from then on, without waiting for the worker to finish.
func TestRecoveryQueuedRenewalLapsesAtItsDeadline(t *testing.T) {
	r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: 10 * time.Second})
	require.NoError(t, err)
	require.NoError(t, r.Add(t0, "a"))
	as := r.Start(t0, nil)
	require.Len(t, as, 1)
	assert.Empty(t, r.Finish(at(10*time.Millisecond), as[0], nil, nil))
	require.NoError(t, r.Add(at(4*time.Second), "b"))
	as = r.Start(at(4*time.Second), nil)
	require.Len(t, as, 1, "b takes the only worker and keeps it")
	wake, ok := r.Wake()
	require.True(t, ok)
	assert.Empty(t, r.Start(wake, nil), "a's renewal waits for the worker")
	lostAt := lease.KeeperConfig{}.LostAt(lease.Lease{TTL: 10 * time.Second, Renewed: at(10 * time.Millisecond), Expires: at(10*time.Second + 10*time.Millisecond)})
	wake, ok = r.Wake()
	require.True(t, ok, "the queued renewal's loss deadline is something to wake for")
	assert.False(t, wake.After(lostAt), "woken by %v, the loss deadline is %v", wake.Sub(t0), lostAt.Sub(t0))
	for !wake.After(lostAt) {
		assert.Empty(t, r.Start(wake, nil))
		if wake, ok = r.Wake(); !ok {
			break
		}
	}
	p := r.Progress(lostAt)
	assert.Equal(t, 0, p.Established, "a's lease lapsed at %v", lostAt.Sub(t0))
	assert.Equal(t, int64(1), p.Lapsed)
}

// slowRenew is a Store whose Renew answers after delay (computed from
// the lease being renewed), ignoring its context, with the table's
// answer.
type slowRenew struct {
	lease.Store
	delay func(lease.Lease) time.Duration
}

func (s slowRenew) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	time.Sleep(s.delay(l))
	return s.Store.Renew(context.Background(), l)
}

// TestKeeperAnswerExactlyAtLostAt: a renewal whose success arrives at
// LostAt exactly, the instant the keeper's own timer fires, is too late
// whichever the keeper sees first: the lease is lost at LostAt, never
// reported held at or after it, and the late answer does not revive it.
func TestKeeperAnswerExactlyAtLostAt(t *testing.T) {
	for _, timeout := range []time.Duration{0, 4 * time.Second, time.Hour} {
		synctest.Test(t, func(t *testing.T) {
			m, _ := lease.NewMemory(lease.MemoryConfig{})
			start := time.Now()
			l, err := m.Grant(context.Background(), "r", "h", 10*time.Second)
			require.NoError(t, err)
			lostAt := lease.KeeperConfig{}.LostAt(l)
			st := slowRenew{Store: m, delay: func(lease.Lease) time.Duration { return time.Until(lostAt) }}
			k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: st, AttemptTimeout: timeout})
			require.NoError(t, err)
			defer k.Stop()
			time.Sleep(lostAt.Sub(start) - time.Nanosecond)
			assert.True(t, k.Held(), "held just before LostAt")
			<-k.Lost()
			assert.Equal(t, lostAt, time.Now(), "lost at LostAt")
			assert.False(t, k.Held())
			time.Sleep(time.Minute)
			assert.False(t, k.Held())
			assert.ErrorIs(t, k.Err(), lease.ErrLost)
		})
	}
}

// TestKeeperLostAtForShortLease: a lease whose Expires comes before its
// renewal time (a hand-made lease, or a Store's answer with a short
// term) is still reported lost at its LostAt, not at the renewal time.
func TestKeeperLostAtForShortLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, err := m.Grant(context.Background(), "r", "h", 10*time.Second)
		require.NoError(t, err)
		l.Expires = l.Renewed.Add(2 * time.Second)
		lostAt := lease.KeeperConfig{}.LostAt(l)
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: failing{m}})
		require.NoError(t, err)
		defer k.Stop()
		<-k.Lost()
		assert.Equal(t, lostAt, time.Now(), "lost at LostAt = Expires−drift, not at the renewal time %v", lease.KeeperConfig{}.RenewAt(l))
	})
}

// TestKeeperStopRacesLost: many goroutines call Stop while the lease is
// being lost; every Stop returns, the keeper's error is the loss or the
// stop, and Held is false after.
func TestKeeperStopRacesLost(t *testing.T) {
	for i := range 20 {
		synctest.Test(t, func(t *testing.T) {
			m, _ := lease.NewMemory(lease.MemoryConfig{})
			l, err := m.Grant(context.Background(), "r", "h", 10*time.Second)
			require.NoError(t, err)
			lostAt := lease.KeeperConfig{}.LostAt(l)
			k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: failing{m}, ReleaseOnStop: true, OnLost: func(error) {}})
			require.NoError(t, err)
			time.Sleep(time.Until(lostAt) - time.Duration(i%3)*time.Nanosecond)
			done := make(chan struct{})
			for range 4 {
				go func() { k.Stop(); done <- struct{}{} }()
			}
			for range 4 {
				<-done
			}
			assert.False(t, k.Held())
			err = k.Err()
			assert.True(t, errors.Is(err, lease.ErrLost) || errors.Is(err, context.Canceled), "%v", err)
			<-k.Done()
		})
	}
}

// TestKeeperDriftJustBelowTTL: a DriftMargin of TTL−1ns leaves no room
// to renew with any RenewFraction; Keep refuses it and says why, with
// the numbers.
func TestKeeperDriftJustBelowTTL(t *testing.T) {
	m, _ := lease.NewMemory(lease.MemoryConfig{})
	l, err := m.GrantAt(t0, "r", "h", lease.MaxTTL)
	require.NoError(t, err)
	_, err = lease.Keep(context.Background(), l, lease.KeeperConfig{Store: m, DriftMargin: lease.MaxTTL - 1})
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "not before the loss deadline TTL−DriftMargin = 1ns")
}

// TestValidAtNegativeDrift: a negative drift (a sign slip, a margin
// computed from clocks that ran the other way) never makes a lease valid
// at or after its Expires.
func TestValidAtNegativeDrift(t *testing.T) {
	l := lease.Lease{Renewed: t0, TTL: 10 * time.Second, Expires: at(10 * time.Second)}
	for _, drift := range []time.Duration{-1, -time.Hour, math.MinInt64} {
		assert.True(t, l.ValidAt(at(10*time.Second-1), drift), "drift %v", drift)
		assert.False(t, l.ValidAt(at(10*time.Second), drift), "drift %v", drift)
		assert.False(t, l.ValidAt(at(time.Hour), drift), "drift %v", drift)
	}
	assert.False(t, l.ValidAt(at(5*time.Second), math.MaxInt64))
}

// TestRecoveryRunAbandonsHungAttempt: an attempt whose fn ignores its
// context and hangs (a Store call that never returns) is reported as
// timed out at its Deadline, so the worker it held goes to the next
// attempt, and the lease is established meanwhile; when ctx ends, Run
// returns without waiting for the hung call, whose late answer is
// ignored.
func TestRecoveryRunAbandonsHungAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second})
		require.NoError(t, err)
		require.NoError(t, r.Add(time.Now(), "k"))
		start := time.Now()
		var calls atomic.Int64
		fn := func(ctx context.Context, a lease.Attempt[string]) error {
			if calls.Add(1) == 1 {
				time.Sleep(time.Hour) // hung, deaf to ctx
				return nil
			}
			return nil
		}
		var established atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- r.Run(ctx, fn, func(p lease.Progress) {
				if p.Established == 1 && established.Load() == 0 {
					established.Store(int64(time.Since(start)))
				}
			})
		}()
		time.Sleep(5 * time.Second)
		assert.NotZero(t, established.Load(), "established within 5s despite the hung first attempt")
		assert.Less(t, established.Load(), int64(2*time.Second))
		cancel()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, context.Canceled)
		case <-time.After(time.Minute):
			t.Fatal("Run waited for a call that ignores its context")
		}
		time.Sleep(2 * time.Hour) // let the hung call end
	})
}

// hung is a Store whose Renew hangs for hang, ignoring its context, and
// counts the calls running at once.
type hung struct {
	lease.Store
	hang      time.Duration
	running   atomic.Int64
	peak      atomic.Int64
	callCount atomic.Int64
}

func (h *hung) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	h.callCount.Add(1)
	if n := h.running.Add(1); n > h.peak.Load() {
		h.peak.Store(n)
	}
	defer h.running.Add(-1)
	time.Sleep(h.hang)
	return lease.Lease{}, errors.New("connection reset")
}

// TestKeeperOneRenewalCallAtATime: with a short AttemptTimeout and a
// Store whose Renew hangs far longer, ignoring its context, the keeper
// does not pile call upon call (one goroutine each) until the loss: at
// most one Store call runs at a time, and the loss is still reported at
// LostAt.
func TestKeeperOneRenewalCallAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := lease.NewMemory(lease.MemoryConfig{})
		l, err := m.Grant(context.Background(), "r", "h", 100*time.Second)
		require.NoError(t, err)
		st := &hung{Store: m, hang: 7 * time.Second}
		k, err := lease.Keep(context.Background(), l, lease.KeeperConfig{Store: st, AttemptTimeout: 10 * time.Millisecond})
		require.NoError(t, err)
		<-k.Lost()
		assert.Equal(t, lease.KeeperConfig{}.LostAt(l), time.Now())
		k.Stop()
		time.Sleep(time.Minute)
		assert.Equal(t, int64(1), st.peak.Load(), "Store calls at once")
		assert.GreaterOrEqual(t, st.callCount.Load(), int64(5), "retried as each call returned")
	})
}

// TestRecoveryFinishOfAnotherRecovery: two Recoveries with the same key
// and the same history hand out attempts with the same fields; a report
// of one's attempt to the other changes nothing there.
func TestRecoveryFinishOfAnotherRecovery(t *testing.T) {
	cfg := lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second}
	r1, err := lease.NewRecovery[string](cfg)
	require.NoError(t, err)
	r2, err := lease.NewRecovery[string](cfg)
	require.NoError(t, err)
	require.NoError(t, r1.Add(t0, "k"))
	require.NoError(t, r2.Add(t0, "k"))
	a1, a2 := r1.Start(t0, nil), r2.Start(t0, nil)
	require.Len(t, a1, 1)
	require.Len(t, a2, 1)
	before := r2.Progress(t0)
	for _, err := range []error{nil, errors.New("boom"), lease.ErrTimeout} {
		assert.Empty(t, r2.Finish(at(time.Millisecond), a1[0], err, nil))
		assert.Equal(t, before, r2.Progress(t0), "another Recovery's attempt changes nothing")
	}
	assert.Empty(t, r2.Finish(at(time.Millisecond), a2[0], nil, nil))
	assert.Equal(t, 1, r2.Progress(t0).Established)
}
