package remirror

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/shed"
)

// deafStore is a fence.Store whose CompareAndSwap ignores its context: it
// returns only when release is closed, then does the swap. A control plane
// that never answers and a client that does not honour deadlines.
type deafStore struct {
	fence.Store
	release chan struct{}
}

func (s *deafStore) CompareAndSwap(ctx context.Context, key string, expect fence.Token, value []byte, next fence.Token) error {
	<-s.release
	return s.Store.CompareAndSwap(context.Background(), key, expect, value, next)
}

// CallTimeout bounds each election even when the store ignores its
// context: Elect answers ElectionFailed at the deadline, the hung call keeps
// its zone's slot until the store returns (so the sick zone stays bounded
// and is shed), and the late swap it makes is found by the engine's retry.
func TestAuthorityDeafStoreBoundedByCallTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := fence.NewMemory(fence.MemoryConfig{})
		require.NoError(t, err)
		store := &deafStore{Store: m, release: make(chan struct{})}
		a, err := NewAuthority(AuthorityConfig{Store: store, Total: 2, Share: 0.5, CallTimeout: time.Second})
		require.NoError(t, err)
		ctx := context.Background()
		key := VolumeKey("sick", 0)
		require.NoError(t, m.WriteIfNewer(ctx, key, []byte("0"), 1))

		act := Action{Kind: Elect, Volume: 0, Attempt: 5, From: 1, Expect: 1}
		done := make(chan error, 1)
		var in Input
		start := time.Now()
		go func() {
			var err error
			in, err = a.Elect(ctx, "sick", act)
			done <- err
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		var callErr error
		select {
		case callErr = <-done:
		default:
			close(store.release)
			<-done
			t.Fatalf("Elect still hung %v after CallTimeout with a store that ignores its context", time.Since(start))
		}
		require.ErrorIs(t, callErr, context.DeadlineExceeded)
		require.Equal(t, Input{Kind: ElectionFailed, Volume: 0, Node: 1, Attempt: 5}, in)

		// The hung call still holds the sick zone's slot: its next call is
		// shed at once.
		_, err = a.Elect(ctx, "sick", Action{Kind: Elect, Volume: 1, From: 1, Expect: 1})
		require.ErrorIs(t, err, shed.ErrShed)

		// The store answers at last: the slot comes back, and the retry
		// finds the swap the late call made.
		close(store.release)
		synctest.Wait()
		st, ok := a.partition.StatsFor("sick")
		require.True(t, ok)
		require.Zero(t, st.InFlight)
		in, err = a.Elect(ctx, "sick", Action{Kind: Elect, Volume: 0, Attempt: 6, From: 1, Expect: 1})
		require.NoError(t, err)
		require.Equal(t, Input{Kind: Elected, Volume: 0, Node: 1, Attempt: 6, Token: 2}, in)
	})
}

type panicStore struct{ fence.Store }

func (panicStore) CompareAndSwap(context.Context, string, fence.Token, []byte, fence.Token) error {
	panic("store bug")
}

// A store that panics panics Elect's caller, as before, and gives the
// zone's slot back.
func TestAuthorityStorePanicReachesCaller(t *testing.T) {
	m, err := fence.NewMemory(fence.MemoryConfig{})
	require.NoError(t, err)
	a, err := NewAuthority(AuthorityConfig{Store: panicStore{m}, Total: 2, Share: 0.5})
	require.NoError(t, err)
	require.PanicsWithValue(t, "store bug", func() {
		a.Elect(context.Background(), "z", Action{Kind: Elect, Volume: 0, From: 1, Expect: 1})
	})
	st, ok := a.partition.StatsFor("z")
	require.True(t, ok)
	require.Zero(t, st.InFlight)
}

// A node is quarantined exactly while it holds a replica not yet safe,
// whether it is down or up, and whichever way it got there: a failed node
// whose only replica is deleted while it is down reports what a failed
// node that held nothing reports.
func TestQuarantineEndsWhileDown(t *testing.T) {
	e := cluster(t, Settings{}, 3, 10)
	step(t, e, t0, Input{Kind: NodeFailed, Node: 2}) // holds nothing
	_, _, down, q, _ := e.NodeStatus(2)
	require.True(t, down)
	require.False(t, q, "a failed node holding nothing is quarantined")

	step(t, e, t0, Input{Kind: NodeFailed, Node: 1}) // holds volume 0
	_, _, _, q, _ = e.NodeStatus(1)
	require.True(t, q)
	require.Equal(t, 1, e.Stats().Quarantined)
	step(t, e, t0, Input{Kind: VolumeDeleted, Volume: 0})
	_, _, down, q, _ = e.NodeStatus(1)
	require.True(t, down)
	require.False(t, q, "node 1 still quarantined, down, with nothing unsafe left")
	require.Equal(t, 0, e.Stats().Quarantined)
}

// Goroutines that stamp their reports with their own clock race for the
// lock: one that read the clock first may get the lock second. Its report
// is applied (at the time of the report ahead of it), not refused as out of
// order: a refused answer would leave its request outstanding for ever,
// and the volume with nothing that ever re-mirrors it.
func TestConcurrentReportsRacingTheirClocks(t *testing.T) {
	c, err := NewConcurrent(Settings{NoReconnect: true}, nil)
	require.NoError(t, err)
	for range 4 {
		_, err := c.AddNode(10)
		require.NoError(t, err)
	}
	for v := range 2 {
		_, err := c.AddVolume(1, NodeID(v), NodeID(v+2), 1)
		require.NoError(t, err)
	}
	acts, err := c.Step(t0, Input{Kind: PeerLost, Volume: 0, Node: 0})
	require.NoError(t, err)
	q := only(t, acts, Query)

	// Goroutine A reads its clock (t0+1s) for the answer; goroutine B reads
	// its clock later (t0+2s) but takes the lock first.
	answerAt := t0.Add(time.Second)
	_, err = c.Step(t0.Add(2*time.Second), Input{Kind: PeerLost, Volume: 1, Node: 1})
	require.NoError(t, err)
	acts, err = c.Step(answerAt, Input{Kind: SearchResult, Volume: 0, Node: q.To, Attempt: q.Attempt, OK: true})
	require.NoError(t, err, "an answer that lost the race for the lock was refused")
	only(t, acts, Copy)
	_, err = c.Tick(answerAt)
	require.NoError(t, err, "a tick that lost the race for the lock was refused")

	// Many goroutines on the wall clock: none is refused for its time.
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := c.Tick(time.Now()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Times outside the range the engine counts in are still refused.
	_, err = c.Tick(time.Time{})
	require.ErrorIs(t, err, ErrInvalidInput)
}
