package remirror

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/shed"
)

func newAuthority(t *testing.T) (*Authority, *fence.Memory) {
	t.Helper()
	m, err := fence.NewMemory(fence.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthority(AuthorityConfig{Store: m, Total: 2, Share: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	return a, m
}

func TestAuthorityElectsWithFencing(t *testing.T) {
	ctx := context.Background()
	a, m := newAuthority(t)
	key := VolumeKey("us-east-1a", 7)
	if err := m.WriteIfNewer(ctx, key, []byte("0"), 1); err != nil {
		t.Fatal(err)
	}
	in, err := a.Elect(ctx, "us-east-1a", Action{Kind: Elect, Volume: 7, Attempt: 3, From: 1, Expect: 1})
	if err != nil || in.Kind != Elected || in.Token != 2 || in.Node != 1 || in.Attempt != 3 {
		t.Fatalf("Elect: %+v %v", in, err)
	}
	// The answer was lost and node 1 asks again: it gets its generation.
	in, err = a.Elect(ctx, "us-east-1a", Action{Kind: Elect, Volume: 7, Attempt: 4, From: 1, Expect: 1})
	if err != nil || in.Kind != Elected || in.Token != 2 {
		t.Fatalf("retry: %+v %v", in, err)
	}
	// Another node with the old generation is fenced off.
	in, err = a.Elect(ctx, "us-east-1a", Action{Kind: Elect, Volume: 7, Attempt: 1, From: 0, Expect: 1})
	if !errors.Is(err, fence.ErrStale) || in.Kind != ElectionFailed || in.Token != 2 {
		t.Fatalf("stale: %+v %v", in, err)
	}
	if _, err := a.Elect(ctx, "z", Action{Kind: Copy}); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("non-elect action: %v", err)
	}
}

// One zone holding its share of the authority is shed at once; another zone
// still gets through.
func TestAuthorityIsolatesZones(t *testing.T) {
	ctx := context.Background()
	a, m := newAuthority(t)
	m.WriteIfNewer(ctx, VolumeKey("sick", 1), []byte("0"), 1)
	m.WriteIfNewer(ctx, VolumeKey("well", 1), []byte("0"), 1)
	if !a.partition.TryAcquire("sick") {
		t.Fatal("no slot")
	}
	defer a.partition.Release("sick")
	if _, err := a.Elect(ctx, "sick", Action{Kind: Elect, Volume: 1, From: 1, Expect: 1}); !errors.Is(err, shed.ErrShed) {
		t.Fatalf("sick zone over its share: %v, want shed.ErrShed", err)
	}
	if in, err := a.Elect(ctx, "well", Action{Kind: Elect, Volume: 1, From: 1, Expect: 1}); err != nil || in.Kind != Elected {
		t.Fatalf("healthy zone: %+v %v", in, err)
	}
}

func TestAuthorityBadConfig(t *testing.T) {
	_, err := NewAuthority(AuthorityConfig{Total: -1})
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, shed.ErrInvalidConfig) {
		t.Fatalf("err %v", err)
	}
}

// hangingStore is a fence.Store whose CompareAndSwap hangs, while hang is
// set, until its context ends: a control plane that never answers, called
// with a deadline.
type hangingStore struct {
	fence.Store
	hang atomic.Bool
}

func (s *hangingStore) CompareAndSwap(ctx context.Context, key string, expect fence.Token, value []byte, next fence.Token) error {
	if s.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Store.CompareAndSwap(ctx, key, expect, value, next)
}

// An election whose call hangs is abandoned at CallTimeout (the default,
// 2s) with ElectionFailed, which the engine accepts and retries; while it
// hangs it holds only its own zone's share of the authority: that zone's
// next call is shed at once, and another zone's is served at once.
func TestAuthorityAbandonsHungElectionAtCallTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Cancelled at the end, so that a call left hanging by a failed
		// assertion ends and the bubble can exit.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		m, err := fence.NewMemory(fence.MemoryConfig{})
		require.NoError(t, err)
		store := &hangingStore{Store: m}
		a, err := NewAuthority(AuthorityConfig{Store: store, Total: 2, Share: 0.5})
		require.NoError(t, err)
		for _, key := range []string{VolumeKey("sick", 0), VolumeKey("sick", 1), VolumeKey("well", 0)} {
			require.NoError(t, m.WriteIfNewer(ctx, key, []byte("0"), 1))
		}

		// The sick zone's engine lost a mirror and, the peer back, asks
		// for an election.
		e := cluster(t, Settings{}, 3, 10)
		probe := only(t, step(t, e, time.Now(), Input{Kind: PeerLost, Volume: 0, Node: 0}), Probe)
		elect := only(t, step(t, e, time.Now(), Input{Kind: ProbeResult, Volume: 0, Attempt: probe.Attempt, OK: true}), Elect)
		require.Equal(t, 1, e.Stats().ElectionsOut)

		store.hang.Store(true)
		start := time.Now()
		type result struct {
			in  Input
			err error
		}
		done := make(chan result, 1)
		go func() {
			in, err := a.Elect(ctx, "sick", elect)
			done <- result{in, err}
		}()
		synctest.Wait() // the call is in the store, hanging

		_, err = a.Elect(ctx, "sick", Action{Kind: Elect, Volume: 1, From: 1, Expect: 1})
		require.ErrorIs(t, err, shed.ErrShed, "the sick zone's second call, over its share")
		store.hang.Store(false)
		in, err := a.Elect(ctx, "well", Action{Kind: Elect, Volume: 0, From: 1, Expect: 1})
		require.NoError(t, err, "another zone's call")
		require.Equal(t, Elected, in.Kind)
		require.Equal(t, start, time.Now(), "the refusal or the other zone's election waited")

		time.Sleep(DefaultAuthorityTimeout - time.Nanosecond)
		synctest.Wait()
		require.Empty(t, done, "the hung call returned before CallTimeout")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.Len(t, done, 1, "the hung call outlived CallTimeout")
		r := <-done
		require.ErrorIs(t, r.err, context.DeadlineExceeded)
		require.Equal(t, Input{Kind: ElectionFailed, Volume: 0, Node: elect.From, Attempt: elect.Attempt}, r.in)
		st, ok := a.partition.StatsFor("sick")
		require.True(t, ok)
		require.Zero(t, st.InFlight, "the abandoned call still holds the sick zone's slot")

		// The engine takes the failure, retries after its backoff, and the
		// retry, now that the store answers, elects the survivor.
		require.Empty(t, step(t, e, time.Now(), r.in))
		require.Zero(t, e.Stats().ElectionsOut)
		at, ok := e.NextTick()
		require.True(t, ok, "no retry armed")
		time.Sleep(time.Until(at))
		acts, err := e.Tick(time.Now())
		require.NoError(t, err)
		retry := only(t, acts, Elect)
		in, err = a.Elect(ctx, "sick", retry)
		require.NoError(t, err)
		step(t, e, time.Now(), in)
		n, gen, ok := e.Primary(0)
		require.True(t, ok)
		require.Equal(t, elect.From, n)
		require.Equal(t, fence.Token(2), gen)
	})
}

// A zero Authority refuses an election with ErrInvalidConfig (it used to
// panic in the nil partition), answering ElectionFailed so that a driver
// that feeds the answer back to its engine backs off.
func TestZeroAuthority(t *testing.T) {
	var a Authority
	errs := callZero(t, &a)
	if err, called := errs["Elect"]; !called || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Elect with zero arguments: %v (called %v), want ErrInvalidConfig", err, called)
	}
	act := Action{Kind: Elect, Volume: 7, Attempt: 3, From: 1, Expect: 1}
	in, err := a.Elect(context.Background(), "z", act)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "NewAuthority") {
		t.Fatalf("err %v, want ErrInvalidConfig naming NewAuthority", err)
	}
	if want := (Input{Kind: ElectionFailed, Volume: 7, Node: 1, Attempt: 3}); in != want {
		t.Fatalf("answer %+v, want %+v", in, want)
	}
}

// A nil context is refused with ErrInvalidInput before the partition or the
// store is touched.
func TestAuthorityNilContext(t *testing.T) {
	a, m := newAuthority(t)
	ctx := context.Background()
	key := VolumeKey("z", 7)
	require.NoError(t, m.WriteIfNewer(ctx, key, []byte("0"), 1))
	var nilCtx context.Context
	in, err := a.Elect(nilCtx, "z", Action{Kind: Elect, Volume: 7, Attempt: 3, From: 1, Expect: 1})
	require.ErrorIs(t, err, ErrInvalidInput)
	require.ErrorContains(t, err, "nil context")
	require.Equal(t, Input{Kind: ElectionFailed, Volume: 7, Node: 1, Attempt: 3}, in)
	holder, gen, err := m.Load(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "0", string(holder))
	require.Equal(t, fence.Token(1), gen)
	_, ok := a.partition.StatsFor("z")
	require.False(t, ok, "the refused call reached the partition")
}
