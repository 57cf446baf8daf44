package lease_test

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestRecoveryDuplicateFinish is the reviewer's case: re-reporting an
// establishment that already finished, while the key's renewal runs,
// changes nothing; the renewal's own report still counts.
func TestRecoveryDuplicateFinish(t *testing.T) {
	r, err := lease.NewRecovery[string](lease.RecoveryConfig{Workers: 2, TTL: 10 * time.Second, AttemptTimeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, r.Add(t0, "k"))
	as := r.Start(t0, nil)
	require.Len(t, as, 1)
	est := as[0]
	assert.Empty(t, r.Finish(at(10*time.Millisecond), est, nil, nil))
	wake, ok := r.Wake()
	require.True(t, ok)
	as = r.Start(wake, nil)
	require.Len(t, as, 1)
	ren := as[0]
	require.Equal(t, lease.Renew, ren.Kind)
	before := r.Progress(wake)
	for _, stale := range []lease.Attempt[string]{est, {Key: "k", Kind: lease.Renew, Started: ren.Started, Deadline: ren.Deadline}} {
		for _, err := range []error{nil, errors.New("boom"), lease.ErrTimeout} {
			assert.Empty(t, r.Finish(wake.Add(time.Millisecond), stale, err, nil))
			assert.Equal(t, before, r.Progress(wake), "a stale or forged report changes nothing")
		}
	}
	assert.Empty(t, r.Finish(wake.Add(time.Millisecond), ren, nil, nil))
	p := r.Progress(wake)
	assert.Equal(t, 1, p.Established)
	assert.Equal(t, 0, p.InFlight)
	assert.Empty(t, r.Finish(wake.Add(2*time.Millisecond), ren, errors.New("late duplicate"), nil))
	assert.Equal(t, p, r.Progress(wake), "a duplicate of the renewal's report changes nothing")
}

// TestRecoveryStaleFinishProperty drives a Recovery with random results
// and, between steps, replays reports of attempts that already finished
// (duplicates, and stale reports of earlier attempts for keys that are
// running again), with any error: they never change Progress or Wake and
// never hand anything out; and no key is ever handed out twice at once.
func TestRecoveryStaleFinishProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		workers := rapid.IntRange(1, 4).Draw(rt, "workers")
		keys := rapid.IntRange(1, 10).Draw(rt, "keys")
		r, err := lease.NewRecovery[int](lease.RecoveryConfig{Workers: workers, TTL: time.Second, AttemptTimeout: 200 * time.Millisecond,
			Rand: rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 0))})
		if err != nil {
			rt.Fatal(err)
		}
		now := t0
		for k := range keys {
			_ = r.Add(now, k)
		}
		var running, done []lease.Attempt[int]
		busy := map[int]bool{}
		take := func(as []lease.Attempt[int]) {
			for _, a := range as {
				if busy[a.Key] {
					rt.Fatalf("key %d handed out twice at once", a.Key)
				}
				busy[a.Key] = true
				running = append(running, a)
			}
		}
		errs := []error{nil, errors.New("refused"), lease.ErrTimeout, &lease.LostError{Resource: "k", Reason: "expired"},
			&lease.HeldError{Resource: "k", Remaining: time.Millisecond}}
		take(r.Start(now, nil))
		for range rapid.IntRange(1, 150).Draw(rt, "steps") {
			switch {
			case len(done) > 0 && rapid.IntRange(0, 2).Draw(rt, "stale") == 0:
				a := done[rapid.IntRange(0, len(done)-1).Draw(rt, "which")]
				beforeP := r.Progress(now)
				beforeW, beforeOK := r.Wake()
				out := r.Finish(now.Add(time.Duration(rapid.Int64Range(0, int64(time.Second)).Draw(rt, "at"))), a,
					errs[rapid.IntRange(0, len(errs)-1).Draw(rt, "err")], nil)
				if len(out) > 0 {
					rt.Fatalf("a stale report of %+v handed out %+v", a, out)
				}
				if p := r.Progress(now); p != beforeP {
					rt.Fatalf("a stale report of %+v changed Progress:\n%+v\n%+v", a, beforeP, p)
				}
				if w, ok := r.Wake(); w != beforeW || ok != beforeOK {
					rt.Fatalf("a stale report of %+v changed Wake from %v to %v", a, beforeW, w)
				}
			case len(running) > 0 && rapid.Bool().Draw(rt, "finish"):
				i := rapid.IntRange(0, len(running)-1).Draw(rt, "run")
				a := running[i]
				running = append(running[:i], running[i+1:]...)
				delete(busy, a.Key)
				done = append(done, a)
				now = laterTime(now, a.Started.Add(time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(50*time.Millisecond)).Draw(rt, "cost"))))
				take(r.Finish(now, a, errs[rapid.IntRange(0, len(errs)-1).Draw(rt, "result")], nil))
			default:
				if w, ok := r.Wake(); ok {
					now = laterTime(now, w)
				}
				take(r.Start(now, nil))
			}
			if p := r.Progress(now); p.InFlight != len(running) || p.Established+p.Pending+p.Failed != keys {
				rt.Fatalf("Progress %+v, %d running, %d keys", p, len(running), keys)
			}
		}
	})
}

// TestRecoveryMaxKeysBound: MaxKeys above 2^30 is refused (heap positions
// are 32-bit), 2^30 is accepted.
func TestRecoveryMaxKeysBound(t *testing.T) {
	cfg := lease.RecoveryConfig{Workers: 1, TTL: time.Second, AttemptTimeout: time.Second, MaxKeys: 1<<30 + 1}
	err := cfg.Validate()
	assert.ErrorIs(t, err, lease.ErrInvalidConfig)
	assert.ErrorContains(t, err, "MaxKeys 1073741825 is outside [0, 2^30]")
	cfg.MaxKeys = 1 << 30
	assert.NoError(t, cfg.Validate())
}

// TestRecoveryMisdirectedFinish: an attempt handed out by one Recovery and
// reported to another with the same history is ignored there.
func TestRecoveryMisdirectedFinish(t *testing.T) {
	cfg := lease.RecoveryConfig{Workers: 1, TTL: 10 * time.Second, AttemptTimeout: time.Second}
	a, err := lease.NewRecovery[string](cfg)
	require.NoError(t, err)
	b, err := lease.NewRecovery[string](cfg)
	require.NoError(t, err)
	require.NoError(t, a.Add(t0, "k"))
	require.NoError(t, b.Add(t0, "k"))
	as, bs := a.Start(t0, nil), b.Start(t0, nil)
	require.Len(t, as, 1)
	require.Len(t, bs, 1)
	before := b.Progress(t0)
	assert.Empty(t, b.Finish(at(time.Millisecond), as[0], nil, nil))
	assert.Equal(t, before, b.Progress(t0), "a's attempt reported to b changes nothing")
	b.Finish(at(time.Millisecond), bs[0], nil, nil)
	assert.Equal(t, 1, b.Progress(t0).Established)
}
