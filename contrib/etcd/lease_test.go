package etcd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestNewLeaseTableValidation(t *testing.T) {
	tb, err := NewLeaseTable(LeaseTableConfig{Prefix: strings.Repeat("p", fence.MaxKeyBytes+1)})
	assert.Nil(t, tb)
	require.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "etcd.LeaseTableConfig.Client is nil")
	assert.Contains(t, err.Error(), "etcd.LeaseTableConfig.Prefix")

	var zero LeaseTable
	ctx := context.Background()
	_, err = zero.Grant(ctx, "r", "h", time.Second)
	assert.ErrorIs(t, err, lease.ErrInvalidConfig)
	// Bad input is refused before any I/O, with every bad argument.
	_, err = zero.Grant(ctx, "", "", 0)
	require.ErrorIs(t, err, lease.ErrInvalidArgument)
	assert.Len(t, strings.Split(err.Error(), "\n"), 3)
	_, err = zero.Renew(ctx, lease.Lease{Resource: "r", Holder: "h", Epoch: 1, TTL: time.Second})
	assert.ErrorIs(t, err, lease.ErrInvalidArgument, "no etcd lease ID")
	assert.ErrorIs(t, zero.Release(ctx, lease.Lease{}), lease.ErrInvalidArgument)
}

func TestLeaseTable(t *testing.T) {
	srv := etcdtest.Start(t)
	var c lease.Counters
	tb, err := NewLeaseTable(LeaseTableConfig{Client: srv.Client(t), Prefix: "lease/", OnEvent: c.Observe})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	before := time.Now()
	a, err := tb.Grant(ctx, "droplet-1", "dwfm-a", 2*time.Second)
	require.NoError(t, err)
	assert.NotZero(t, a.Epoch)
	assert.NotZero(t, a.ID)
	assert.False(t, a.Renewed.Before(before))
	assert.Equal(t, a.Renewed.Add(2*time.Second), a.Expires)

	_, err = tb.Grant(ctx, "droplet-1", "dwfm-b", 2*time.Second)
	var held *lease.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "dwfm-a", held.Holder)
	assert.Equal(t, a.Epoch, held.Epoch)

	got, ok, err := tb.Get(ctx, "droplet-1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "dwfm-a", got.Holder)
	assert.Equal(t, a.Epoch, got.Epoch)
	assert.Equal(t, a.ID, got.ID)
	assert.Equal(t, 2*time.Second, got.TTL, "the granted term")
	assert.False(t, got.Expires.After(a.Expires.Add(time.Second)), "Get's expiry %v is at most a second after the holder's %v", got.Expires, a.Expires)
	assert.True(t, got.Expires.After(time.Now().Add(-time.Second)), "and not long past")
	assert.Equal(t, got.Expires.Add(-got.TTL), got.Renewed)

	a2, err := tb.Renew(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, a.Epoch, a2.Epoch)
	assert.True(t, a2.Expires.After(a.Expires))

	require.NoError(t, tb.Release(ctx, a2))
	_, err = tb.Renew(ctx, a2)
	assert.ErrorIs(t, err, lease.ErrLost)
	assert.ErrorIs(t, tb.Release(ctx, a2), lease.ErrLost)
	_, ok, err = tb.Get(ctx, "droplet-1")
	require.NoError(t, err)
	assert.False(t, ok)

	b, err := tb.Grant(ctx, "droplet-1", "dwfm-b", time.Second)
	require.NoError(t, err)
	assert.Greater(t, b.Epoch, a.Epoch, "a new grant has a newer epoch")

	// Expiry: without renewal, another holder gets the resource, but
	// never before the first holder's own view of its expiry.
	var c2 lease.Lease
	for {
		c2, err = tb.Grant(ctx, "droplet-1", "dwfm-c", time.Second)
		if err == nil {
			break
		}
		require.ErrorIs(t, err, lease.ErrHeld)
		time.Sleep(50 * time.Millisecond)
	}
	assert.False(t, time.Now().Before(b.Expires), "granted to another before the holder's Expires")
	assert.Greater(t, c2.Epoch, b.Epoch)
	e, err := tb.Epoch(ctx, "droplet-1")
	require.NoError(t, err)
	assert.Equal(t, c2.Epoch, e)
	s := c.Stats()
	assert.Equal(t, uint64(3), s.Granted)
	assert.Equal(t, uint64(1), s.Renewed)
	assert.GreaterOrEqual(t, s.Held, uint64(2))
}

// holding is one holder's term as it saw it: from the moment Grant
// returned until it stopped acting on it or its Keeper's loss deadline,
// whichever came first.
type holding struct {
	holder     string
	epoch      fence.Token
	start, end time.Time
}

// TestLeaseTableContendKill runs contenders, each with its own client as
// if in its own process, competing for two resources through etcd with
// short leases kept by lease.Keeper, while etcd is killed with SIGKILL and
// restarted twice. Holders act on their leases for a short while or for
// longer than the TTL, and the holders holding just before the second,
// longer crash hold on across it, so that their keepers must give their
// leases up while etcd is down. The test checks that those leases were
// lost and, per resource, that no two holders' validity intervals — as
// each holder saw them, with its drift margin — overlap, and that epochs
// strictly increase in the order the terms began.
func TestLeaseTableContendKill(t *testing.T) {
	srv := etcdtest.Start(t)
	t0 := time.Now()
	const (
		contenders = 4
		ttl        = time.Second
		drift      = 200 * time.Millisecond
	)
	resources := []string{"droplet-a", "droplet-b"}
	var (
		mu     sync.Mutex
		terms  = map[string][]holding{}
		stop   atomic.Bool
		wg     sync.WaitGroup
		grants atomic.Int64
		losses atomic.Int64
		// While holdOn is set, every holder holding commits to keep
		// acting on its lease until its keeper gives it up; committed
		// counts the terms that did.
		holdOn    atomic.Bool
		committed atomic.Int64
	)
	for i := range contenders {
		tb, err := NewLeaseTable(LeaseTableConfig{Client: srv.Client(t), Prefix: "kill/"})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			name := fmt.Sprintf("dwfm-%d", i)
			for !stop.Load() {
				res := resources[rng.IntN(len(resources))]
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				l, err := tb.Grant(ctx, res, name, ttl)
				cancel()
				if err != nil {
					time.Sleep(time.Duration(20+rng.IntN(40)) * time.Millisecond)
					continue
				}
				grants.Add(1)
				start := time.Now()
				kctx, kcancel := context.WithCancel(context.Background())
				cfg := lease.KeeperConfig{
					Store: tb, DriftMargin: drift, RenewFraction: 0.3, ReleaseOnStop: true,
					Retry: backoff.Policy{Base: 20 * time.Millisecond, Cap: 100 * time.Millisecond},
				}
				k, err := lease.Keep(kctx, l, cfg)
				if err != nil {
					kcancel()
					t.Error(err)
					return
				}
				// Act on the lease for a while — most terms briefly, one
				// in three for longer than the TTL, so through renewals —
				// checking Held as a holder must before each action.
				last := start
				d := time.Duration(100+rng.IntN(500)) * time.Millisecond
				if rng.IntN(3) == 0 {
					d = time.Duration(1200+rng.IntN(800)) * time.Millisecond
				}
				hold := start.Add(d)
				stuck, gaveUp := false, false
				for !stop.Load() {
					now := time.Now()
					if !k.HeldAt(now) {
						gaveUp = true
						break
					}
					last = now
					if !stuck && holdOn.Load() {
						stuck = true
						committed.Add(1)
					}
					if !stuck && !now.Before(hold) {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				// The holder's claim: from the grant until it stopped, or
				// until its keeper's loss deadline if that came first —
				// later than its last check of Held, never earlier.
				end := time.Now()
				if gaveUp {
					// Past its loss deadline the keeper gives the lease
					// up by itself; let it, rather than stop it.
					select {
					case <-k.Done():
					case <-time.After(10 * time.Second):
						t.Errorf("%s: Held turned false at %v, but the keeper has not ended", name, end.Sub(t0))
					}
				}
				if closed(k.Lost()) {
					losses.Add(1)
					assert.ErrorIs(t, k.Err(), lease.ErrLost)
				} else if stuck {
					t.Errorf("%s held %s epoch %d on across the outage, but its keeper did not lose it: %v", name, res, l.Epoch, k.Err())
				}
				kcancel()
				k.Stop()
				if lostAt := cfg.LostAt(k.Lease()); lostAt.Before(end) {
					end = lostAt
				}
				if end.Before(last) {
					t.Errorf("%s: Held reported at %v, after the loss deadline %v", name, last, end)
				}
				if testing.Verbose() {
					t.Logf("term: %s held %s epoch %d from %v to %v", name, res, l.Epoch, start.Sub(t0).Round(time.Millisecond), end.Sub(t0).Round(time.Millisecond))
				}
				mu.Lock()
				terms[res] = append(terms[res], holding{holder: name, epoch: l.Epoch, start: start, end: end})
				mu.Unlock()
			}
		}()
	}
	// Two crashes. The first, 300ms, is shorter than the time a keeper has
	// between its last renewal and its loss deadline (TTL − drift margin
	// = 800ms, less up to 300ms since that renewal): keepers usually ride
	// it out with retries. The second, 1.2s, is longer: a holder that holds
	// on across it cannot renew, and its keeper must give the lease up
	// while etcd is down. Holders that happen to stop on their own before
	// their deadline lose nothing, so before the second crash the test
	// has every holder then holding hold on, and waits until at least one
	// does.
	time.Sleep(1500 * time.Millisecond)
	srv.Kill()
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	time.Sleep(1500 * time.Millisecond)
	holdOn.Store(true)
	waitUntil := time.Now().Add(10 * time.Second)
	for committed.Load() == 0 && time.Now().Before(waitUntil) {
		time.Sleep(5 * time.Millisecond)
	}
	if committed.Load() == 0 {
		stop.Store(true)
		wg.Wait()
		t.Fatal("no holder held a lease in the 10s before the long crash")
	}
	srv.Kill()
	holdOn.Store(false) // nobody can be granted a lease until the restart
	time.Sleep(1200 * time.Millisecond)
	srv.Restart()
	time.Sleep(2500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	t.Logf("%d grants, %d terms lost (etcd down or renewals late), %d held on across the long crash",
		grants.Load(), losses.Load(), committed.Load())
	assert.Positive(t, losses.Load(), "no lease was lost while etcd was down")
	// A term that a holder could not release while etcd was down stays in
	// etcd until its lease expires, and etcd restarts the TTL of every
	// lease when it restarts: a resource can stay unavailable for a while
	// after a crash. That is the safe direction, and it bounds the turns.
	require.GreaterOrEqual(t, grants.Load(), int64(6), "the contenders must have taken turns")
	for _, res := range resources {
		hs := terms[res]
		slices.SortFunc(hs, func(a, b holding) int { return a.start.Compare(b.start) })
		for i := 1; i < len(hs); i++ {
			p, c := hs[i-1], hs[i]
			if c.epoch <= p.epoch {
				t.Errorf("%s: epoch %d (%s) began after epoch %d (%s)", res, c.epoch, c.holder, p.epoch, p.holder)
			}
			if c.start.Before(p.end) {
				t.Errorf("%s: %s held epoch %d until %v, but %s began epoch %d at %v",
					res, p.holder, p.epoch, p.end.Format("15:04:05.000"), c.holder, c.epoch, c.start.Format("15:04:05.000"))
			}
		}
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

// lateLessor is etcd's lease API as it answers while its lessor is late
// revoking: etcd revokes expired leases at most 1000 a second, so when
// thousands expire together a holder record outlives its lease by seconds,
// and TimeToLive meanwhile reports a remaining time of zero or less. The
// lease etcd really holds is long; TimeToLive answers etcd's real reply
// with behind subtracted from its remaining time, the reply etcd gives
// that long after the lease's end while the record is still there.
type lateLessor struct {
	clientv3.Lease
	behind atomic.Int64 // seconds
}

func (l *lateLessor) TimeToLive(ctx context.Context, id clientv3.LeaseID, opts ...clientv3.LeaseOption) (*clientv3.LeaseTimeToLiveResponse, error) {
	resp, err := l.Lease.TimeToLive(ctx, id, opts...)
	if err == nil && resp.GrantedTTL > 0 {
		r := *resp
		r.TTL -= l.behind.Load()
		resp = &r
	}
	return resp, err
}

// TestLeaseTableGetWhileRevokePending: while etcd has not yet revoked an
// expired lease (lateLessor), its holder record outlives it. Throughout,
// Get answers consistently — held by that holder with that epoch (Expires
// in the past once the lease has expired, by as much as etcd reports), or
// not held — and never fails; Grant refuses with HeldError until etcd
// deletes the record; a renewal past the term does not revive the lease.
// Deterministic: how late etcd really is depends on the machine's load,
// so the lateness is etcd's answer shifted, not a pile of real leases.
func TestLeaseTableGetWhileRevokePending(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	late := &lateLessor{Lease: client.Lease}
	client.Lease = late
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "revoke/"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Long enough that etcd never revokes it on its own during the test.
	const ttl = 600 * time.Second
	l, err := tb.Grant(ctx, "droplet", "dwfm-a", ttl)
	require.NoError(t, err)
	returned := time.Now()

	// etcd's lessor is 0s, then ttl+0s, ttl+1s, ... ttl+4s behind: the
	// lease is live, then expired by 0..4 whole seconds and not revoked.
	var expiredHeld int
	for step, behind := range []time.Duration{0, ttl, ttl + time.Second, ttl + 2*time.Second, ttl + 3*time.Second, ttl + 4*time.Second} {
		late.behind.Store(int64(behind / time.Second))
		call := time.Now()
		got, ok, err := tb.Get(ctx, "droplet")
		require.NoError(t, err, "Get with etcd %v late", behind)
		require.True(t, ok, "the record is still there")
		assert.Equal(t, "dwfm-a", got.Holder)
		assert.Equal(t, l.Epoch, got.Epoch)
		assert.Equal(t, l.ID, got.ID)
		assert.Equal(t, ttl, got.TTL)
		// etcd started the term before Grant returned.
		assert.False(t, got.Expires.After(returned.Add(l.TTL)), "Get's Expires %v is after the term can have ended, %v", got.Expires, returned.Add(l.TTL))
		if step == 0 {
			assert.True(t, got.Expires.After(call), "a live lease: Expires %v is not after the call %v", got.Expires, call)
			continue
		}
		// etcd said the term ended over behind−ttl ago (truncated to
		// whole seconds): Get says at least that, rounded down.
		over := behind - ttl
		assert.False(t, got.Expires.After(call.Add(-over)), "etcd said the lease ended %v ago; Get's Expires %v is later", over, got.Expires)
		assert.True(t, got.Expires.Before(call), "an expired lease's Expires %v is not before the call", got.Expires)
		expiredHeld++
		_, err = tb.Grant(ctx, "droplet", "dwfm-b", time.Second)
		var held *lease.HeldError
		require.ErrorAs(t, err, &held, "etcd still has the record")
		assert.Equal(t, l.Epoch, held.Epoch)
	}
	require.Equal(t, 5, expiredHeld)

	// The lease as Get reports it has surely expired (etcd said −4s): a
	// renewal must not revive it; it gives the resource back.
	got, ok, err := tb.Get(ctx, "droplet")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = tb.Renew(ctx, got)
	require.ErrorIs(t, err, lease.ErrLost, "a renewal of an expired lease")
	_, ok, err = tb.Get(ctx, "droplet")
	require.NoError(t, err)
	assert.False(t, ok, "the renewal refused revoked the lease")
	m, err := tb.Grant(ctx, "droplet", "dwfm-b", time.Second)
	require.NoError(t, err)
	assert.Greater(t, m.Epoch, l.Epoch)
}

// TestLeaseTableChurn: a table whose resource names come and go keeps
// nothing of a resource once its lease is released or expires — no key of
// the table is left in etcd — and a resource granted again after that gets
// an epoch above every epoch granted before, on any resource.
func TestLeaseTableChurn(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	var c lease.Counters
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "churn/", OnEvent: c.Observe})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keys := func() int64 {
		t.Helper()
		resp, err := client.Get(ctx, "churn/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		require.NoError(t, err)
		return resp.Count
	}

	var last fence.Token
	newest := map[string]fence.Token{}
	grant := func(res string, ttl time.Duration) lease.Lease {
		t.Helper()
		l, err := tb.Grant(ctx, res, "h", ttl)
		require.NoError(t, err)
		require.Greater(t, l.Epoch, newest[res], "%s granted again", res)
		assert.Greater(t, l.Epoch, last, "epochs increase over every resource")
		last, newest[res] = l.Epoch, l.Epoch
		e, err := tb.Epoch(ctx, res)
		require.NoError(t, err)
		assert.Equal(t, l.Epoch, e)
		return l
	}
	const churn = 200
	for i := range churn {
		require.NoError(t, tb.Release(ctx, grant(fmt.Sprintf("vol-%d", i), time.Minute)))
	}
	assert.Zero(t, keys(), "released resources leave nothing in etcd")
	for i := range 20 {
		grant(fmt.Sprintf("expiring-%d", i), time.Second)
	}
	for keys() > 0 {
		time.Sleep(100 * time.Millisecond) // until etcd revokes them
	}
	e, err := tb.Epoch(ctx, "vol-0")
	require.NoError(t, err)
	assert.Zero(t, e, "a forgotten resource has no epoch")
	for i := range churn {
		require.NoError(t, tb.Release(ctx, grant(fmt.Sprintf("vol-%d", i), time.Minute)), "granted again")
	}
	grant("expiring-0", time.Minute)
	assert.Equal(t, uint64(2*churn+21), c.Stats().Granted)
}

// TestLeaseTableCorruptHolder: a holder key written by hand — not attached
// to an etcd lease, or empty — is reported as ErrCorrupt and left alone.
func TestLeaseTableCorruptHolder(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "corrupt/"})
	require.NoError(t, err)
	ctx := t.Context()
	g, err := client.Grant(ctx, 60)
	require.NoError(t, err)
	for key, put := range map[string]func() error{
		"detached": func() error { _, err := client.Put(ctx, "corrupt/holder/detached", "dwfm-a"); return err },
		"empty": func() error {
			_, err := client.Put(ctx, "corrupt/holder/empty", "", clientv3.WithLease(g.ID))
			return err
		},
	} {
		require.NoError(t, put())
		_, err := tb.Grant(ctx, key, "h", time.Second)
		assert.ErrorIs(t, err, ErrCorrupt, key)
		_, _, err = tb.Get(ctx, key)
		assert.ErrorIs(t, err, ErrCorrupt, key)
		_, err = tb.Epoch(ctx, key)
		assert.ErrorIs(t, err, ErrCorrupt, key)
		resp, err := client.Get(ctx, "corrupt/holder/"+key)
		require.NoError(t, err)
		assert.Len(t, resp.Kvs, 1, "left alone")
	}
}
