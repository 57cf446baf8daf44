package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/lease"
)

// TestRecoveryRemoveProperty mixes Add, Remove, Start (at Wake or
// earlier), Finish (of a live attempt, a duplicate, or one whose key was
// removed; with success, failure, loss or ErrRemoveKey) on a Recovery with few workers, a small queue and a small
// MaxKeys, and checks after every step, against a model of the keys
// tracked:
//
//   - InFlight is never negative nor above Workers, and equals the
//     attempts handed out and not yet reported, those of removed keys
//     included (they still hold a worker) — so the Finish of an attempt
//     of a removed key releases its worker exactly once;
//   - no attempt is handed out for a key that is not tracked, and a key
//     is never handed out twice at once;
//   - Established + Pending + Failed is the number of keys tracked, and the
//     Finish of a removed key's attempt, even a success, establishes
//     nothing and changes none of Failed, Wasted or the costs;
//   - Add of a new key fails with ErrFull exactly when MaxKeys keys are
//     tracked, so a Remove frees a place; Remove reports whether the key
//     was tracked.
func TestRecoveryRemoveProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		workers := rapid.IntRange(1, 3).Draw(rt, "workers")
		maxKeys := rapid.IntRange(1, 6).Draw(rt, "maxKeys")
		r, err := lease.NewRecovery[int](lease.RecoveryConfig{
			Workers: workers, MaxQueue: rapid.IntRange(1, 3).Draw(rt, "maxQueue"), MaxKeys: maxKeys,
			TTL: 10 * time.Second, AttemptTimeout: 2 * time.Second, InitialCost: 100 * time.Millisecond,
			Retry: backoff.Policy{Base: 100 * time.Millisecond, Cap: time.Second, MaxAttempts: 3, Jitter: backoff.JitterNone},
		})
		if err != nil {
			rt.Fatal(err)
		}
		now := t0
		tracked := map[int]bool{}
		// gen counts the removals of each key; an attempt handed out at an
		// earlier generation than its key's is one of a removed key.
		gen := map[int]int{}
		handedAt := map[lease.Attempt[int]]int{}
		var out []lease.Attempt[int]  // handed out, not yet reported
		var done []lease.Attempt[int] // reported, for duplicates
		take := func(as []lease.Attempt[int]) {
			for _, a := range as {
				if !tracked[a.Key] {
					rt.Fatalf("attempt %v %d handed out for a key not tracked", a.Kind, a.Key)
				}
				for _, o := range out {
					if o.Key == a.Key {
						rt.Fatalf("key %d handed out twice at once", a.Key)
					}
				}
				out = append(out, a)
				handedAt[a] = gen[a.Key]
			}
		}
		check := func(what string) {
			p := r.Progress(now)
			if p.InFlight < 0 || p.InFlight > workers || p.InFlight != len(out) {
				rt.Fatalf("after %s: InFlight %d, %d handed out and unreported, %d workers", what, p.InFlight, len(out), workers)
			}
			if p.Established < 0 || p.Pending < 0 || p.Failed < 0 || p.Established+p.Pending+p.Failed != len(tracked) {
				rt.Fatalf("after %s: established %d + pending %d + failed %d != %d keys tracked", what, p.Established, p.Pending, p.Failed, len(tracked))
			}
		}
		for range rapid.IntRange(1, 200).Draw(rt, "steps") {
			key := rapid.IntRange(0, 7).Draw(rt, "key")
			switch op := rapid.IntRange(0, 5).Draw(rt, "op"); op {
			case 0: // Add
				err := r.Add(now, key)
				full := !tracked[key] && len(tracked) >= maxKeys
				if full != errors.Is(err, lease.ErrFull) || !full && err != nil {
					rt.Fatalf("Add(%d) with %d of %d keys tracked: %v", key, len(tracked), maxKeys, err)
				}
				if err == nil {
					tracked[key] = true
				}
				take(r.Start(now, nil))
			case 1: // Remove
				if got := r.Remove(now, key); got != tracked[key] {
					rt.Fatalf("Remove(%d) = %v, tracked %v", key, got, tracked[key])
				}
				delete(tracked, key)
				gen[key]++
			case 2: // Start, a little later
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(3*time.Second)).Draw(rt, "advance")))
				take(r.Start(now, nil))
			case 3: // Wake
				if w, ok := r.Wake(); ok {
					now = laterTime(now, w)
				}
				take(r.Start(now, nil))
			case 4: // Finish a handed-out attempt
				if len(out) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(out)-1).Draw(rt, "which")
				a := out[i]
				out = append(out[:i], out[i+1:]...)
				done = append(done, a)
				ghost := handedAt[a] != gen[a.Key]
				if !ghost {
					now = now.Add(time.Duration(rapid.Int64Range(0, int64(3*time.Second)).Draw(rt, "cost")))
				}
				var ferr error
				switch rapid.IntRange(0, 4).Draw(rt, "result") {
				case 1:
					ferr = errors.New("refused")
				case 2:
					ferr = fmt.Errorf("table says: %w", lease.ErrLost)
				case 3:
					// The key is no longer wanted: removed, unless this
					// is an attempt of its removed self (the key, if
					// added again, is a new key).
					ferr = fmt.Errorf("retired: %w", lease.ErrRemoveKey)
				}
				before := r.Progress(now)
				if errors.Is(ferr, lease.ErrRemoveKey) && !ghost {
					delete(tracked, a.Key)
					gen[a.Key]++
				}
				take(r.Finish(now, a, ferr, nil))
				if ghost {
					after := r.Progress(now)
					// The freed worker may find a queued renewal that can
					// no longer finish in time (its lease lapses), but the
					// removed key's own result counts for nothing.
					if after.Established > before.Established || after.Failed != before.Failed || after.Wasted != before.Wasted ||
						after.EstablishCost != before.EstablishCost || after.RenewCost != before.RenewCost {
						rt.Fatalf("Finish of removed key %d changed progress: %+v -> %+v", a.Key, before, after)
					}
				}
			case 5: // a duplicate report of an attempt already reported
				if len(done) == 0 {
					continue
				}
				a := done[rapid.IntRange(0, len(done)-1).Draw(rt, "dup")]
				before := r.Progress(now)
				if as := r.Finish(now, a, nil, nil); len(as) != 0 {
					rt.Fatalf("duplicate Finish handed out %v", as)
				}
				if after := r.Progress(now); after != before {
					rt.Fatalf("duplicate Finish changed progress: %+v -> %+v", before, after)
				}
			}
			check(fmt.Sprintf("op on key %d", key))
		}
		// Every key removed, every attempt reported: nothing is left.
		for k := range tracked {
			r.Remove(now, k)
		}
		for _, a := range out {
			take(r.Finish(now, a, nil, nil))
		}
		out = nil
		if p := r.Progress(now); p.InFlight != 0 || p.Queued != 0 || p.Established+p.Pending+p.Failed != 0 {
			rt.Fatalf("all keys removed, progress %+v", p)
		}
		if w, ok := r.Wake(); ok {
			rt.Fatalf("all keys removed, wake at %v", w)
		}
	})
}

// TestRecoveryRemoveHeldKey: a key removed while its lease is held is not
// renewed again, frees its place under MaxKeys, and can be added again as
// a new key; a renewal in flight when it was removed is ignored when it
// finishes, but its worker goes to the next attempt.
func TestRecoveryRemoveHeldKey(t *testing.T) {
	r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 1, MaxKeys: 2, TTL: 10 * time.Second, AttemptTimeout: time.Second, InitialCost: 10 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Add(t0, "a"))
	require.NoError(t, r.Add(t0, "b"))
	require.ErrorIs(t, r.Add(t0, "c"), lease.ErrFull)
	as := r.Start(t0, nil)
	require.Len(t, as, 1)
	as = r.Finish(at(10*time.Millisecond), as[0], nil, nil) // a established, b starts
	require.Len(t, as, 1)
	assert.Equal(t, "b", as[0].Key)
	// b is removed while its establishment runs; c takes its place.
	assert.True(t, r.Remove(at(20*time.Millisecond), "b"))
	assert.False(t, r.Remove(at(20*time.Millisecond), "b"))
	require.NoError(t, r.Add(at(20*time.Millisecond), "c"))
	p := r.Progress(at(20 * time.Millisecond))
	assert.Equal(t, 1, p.InFlight, "b's attempt still holds the worker")
	assert.Equal(t, 1, p.Established)
	assert.Equal(t, 1, p.Pending)
	// b's attempt finishes: ignored, and the worker takes c.
	next := r.Finish(at(30*time.Millisecond), as[0], nil, nil)
	require.Len(t, next, 1)
	assert.Equal(t, "c", next[0].Key)
	assert.Empty(t, r.Finish(at(30*time.Millisecond), as[0], nil, nil), "reported once")
	p = r.Progress(at(30 * time.Millisecond))
	assert.Equal(t, 1, p.Established, "b's late success does not count")
	assert.Equal(t, 1, p.InFlight)
	// a is removed while held: never renewed again.
	assert.True(t, r.Remove(at(40*time.Millisecond), "a"))
	r.Finish(at(50*time.Millisecond), next[0], nil, nil)
	for now := at(time.Second); now.Before(at(time.Minute)); now = now.Add(time.Second) {
		for _, a := range r.Start(now, nil) {
			assert.Equal(t, "c", a.Key, "only c is renewed")
			r.Finish(now.Add(10*time.Millisecond), a, nil, nil)
		}
	}
	// a can be added again, as a new key to establish.
	require.NoError(t, r.Add(at(time.Minute), "a"))
	as = r.Start(at(time.Minute), nil)
	require.Len(t, as, 1)
	assert.Equal(t, lease.Establish, as[0].Kind)
	assert.Equal(t, "a", as[0].Key)
}

// TestRecoveryRunRemovesKey: under Run, fn returns an error matching
// ErrRemoveKey for a key no longer wanted — at its establishment, or at a
// renewal — and Run removes the key: it is never attempted again, and
// counts neither as pending nor as failed, nor against MaxKeys.
func TestRecoveryRunRemovesKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 2, MaxKeys: 3, TTL: 2 * time.Second, AttemptTimeout: time.Second})
		require.NoError(t, err)
		for _, k := range []string{"keep", "retired", "retires-later"} {
			require.NoError(t, r.Add(time.Now(), k))
		}
		var mu sync.Mutex
		calls := map[string][]lease.AttemptKind{}
		fn := func(ctx context.Context, a lease.Attempt[string]) error {
			mu.Lock()
			calls[a.Key] = append(calls[a.Key], a.Kind)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			switch {
			case a.Key == "retired":
				return fmt.Errorf("droplet %s decommissioned: %w", a.Key, lease.ErrRemoveKey)
			case a.Key == "retires-later" && a.Kind == lease.Renew:
				return lease.ErrRemoveKey
			}
			return nil
		}
		var last lease.Progress
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.ErrorIs(t, r.Run(ctx, fn, func(p lease.Progress) { last = p }), context.DeadlineExceeded)
		assert.Equal(t, []lease.AttemptKind{lease.Establish}, calls["retired"])
		assert.Equal(t, []lease.AttemptKind{lease.Establish, lease.Renew}, calls["retires-later"])
		assert.Greater(t, len(calls["keep"]), 5, "keep is renewed throughout")
		assert.Equal(t, 1, last.Established)
		assert.Zero(t, last.Pending)
		assert.Zero(t, last.Failed)
	})
}

// TestRecoveryRemoveZero: Remove on a nil or zero Recovery removes nothing
// and does not panic.
func TestRecoveryRemoveZero(t *testing.T) {
	var nilR *lease.Recovery[int]
	assert.False(t, nilR.Remove(t0, 1))
	assert.False(t, new(lease.Recovery[int]).Remove(t0, 1))
}
