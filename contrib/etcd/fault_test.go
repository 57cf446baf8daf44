package etcd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// issued is a token a Sequencer handed out, with the call's interval.
type issued struct {
	token      fence.Token
	call, done int64
}

// TestFaultKillRestart runs many concurrent writers against the etcd Store
// while the etcd process is killed with SIGKILL and restarted, twice. Each
// writer behaves like a DNS enactor: it takes a generation from a shared,
// etcd-backed Sequencer, stalls for a random time, and then writes its plan
// with WriteIfNewer — or reads, stalls and writes with CompareAndSwap. At
// the end etcd is killed once more and the keys are read back by a new
// client. The test then proves:
//
//   - no stale write was accepted: of two acknowledged writes to a key,
//     the later one (in real time) carries the newer token, and every
//     refusal names a token at least as new as every write acknowledged
//     before it;
//   - no acknowledged write was lost: each key ends with a token at least
//     the newest acknowledged for it, and with the value written with that
//     token by a write that was acknowledged or whose outcome was unknown,
//     never by a refused one;
//   - the Sequencer never handed out a token twice or out of order;
//   - the whole history, final reads included, is linearizable (porcupine).
func TestFaultKillRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	store, err := NewStore(StoreConfig{Client: srv.Client(t), Prefix: "fault/"})
	require.NoError(t, err)
	tg := storeTarget{store}
	rec := newRecorder()

	const writers = 16
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		issuedMu sync.Mutex
		tokens   []issued
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			seq, err := fence.NewSequencer(fence.SequencerConfig{Store: store, Key: "generation"})
			if err != nil {
				t.Error(err)
				return
			}
			next := func(ctx context.Context) (fence.Token, bool) {
				call := rec.now()
				tok, err := seq.Next(ctx)
				if err != nil {
					return 0, false
				}
				issuedMu.Lock()
				tokens = append(tokens, issued{tok, call, rec.now()})
				issuedMu.Unlock()
				return tok, true
			}
			stall := func(limit int) { time.Sleep(time.Duration(rng.IntN(limit)) * time.Millisecond) }
			for n := 0; !stop.Load(); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				key := historyKeys[rng.IntN(len(historyKeys))]
				value := fmt.Sprintf("w%d#%d", w, n)
				switch p := rng.IntN(10); {
				case p < 6: // an enactor: generation, stall, write-if-newer
					if tok, ok := next(ctx); ok {
						stall(25)
						rec.run(ctx, tg, w, input{kind: opWriteIfNewer, key: key, token: tok, value: value})
					}
				case p < 8: // read, stall, compare-and-swap
					out := rec.run(ctx, tg, w, input{kind: opLoad, key: key})
					if !out.ok {
						break
					}
					stall(10)
					if tok, ok := next(ctx); ok && tok > out.token {
						rec.run(ctx, tg, w, input{kind: opCAS, key: key, expect: out.token, token: tok, value: value})
					}
				default:
					rec.run(ctx, tg, w, input{kind: opLoad, key: key})
				}
				if ctx.Err() != nil {
					stall(20) // etcd is down: do not spin
				}
				cancel()
			}
		}()
	}

	// The faults, on the test's goroutine (Restart may fail the test).
	var kills, restarts []int64
	for range 2 {
		time.Sleep(1200 * time.Millisecond)
		srv.Kill()
		kills = append(kills, rec.now())
		time.Sleep(300 * time.Millisecond)
		srv.Restart()
		restarts = append(restarts, rec.now())
	}
	time.Sleep(1200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	// Crash once more with everything acknowledged, then read back with a
	// new client: acknowledged writes are on disk.
	srv.Kill()
	srv.Restart()
	fresh, err := NewStore(StoreConfig{Client: srv.Client(t), Prefix: "fault/"})
	require.NoError(t, err)
	final := map[string]output{}
	for _, k := range historyKeys {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out := rec.run(ctx, storeTarget{fresh}, writers, input{kind: opLoad, key: k})
		cancel()
		require.True(t, out.ok, "final read of %q failed", k)
		final[k] = out
	}

	history := rec.history()
	summarize(t, history)
	t.Logf("killed at %v, restarted at %v; %d errors of unknown outcome, e.g. %v",
		ms(kills), ms(restarts), len(rec.errs), firstErr(rec.errs))

	checkFencedHistory(t, history, final, writers)
	checkIssued(t, tokens)
	checkLinearizable(t, history)

	// The faults happened and the writers lived through them.
	acked := func(from, to int64) int {
		n := 0
		for _, op := range history {
			if op.Input.(input).kind != opLoad && op.Output.(output).ok && op.Call >= from && op.Return < to {
				n++
			}
		}
		return n
	}
	assert.Positive(t, acked(0, kills[0]), "acknowledged writes before the first kill")
	assert.Positive(t, acked(restarts[0], kills[1]), "acknowledged writes between the kills")
	assert.Positive(t, acked(restarts[1], math.MaxInt64), "acknowledged writes after the last restart")
}

func ms(ts []int64) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, time.Duration(t).Round(time.Millisecond))
	}
	return out
}

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// summarize logs how many operations of each kind succeeded, were refused,
// or ended with an unknown outcome.
func summarize(t *testing.T, history []porcupine.Operation) {
	t.Helper()
	var ok, stale, unknown, loads int
	for _, op := range history {
		o := op.Output.(output)
		switch {
		case op.Input.(input).kind == opLoad:
			loads++
		case o.ok:
			ok++
		case o.stale:
			stale++
		case o.unknown:
			unknown++
		}
	}
	t.Logf("%d operations: %d loads, %d writes accepted, %d fenced off, %d of unknown outcome", len(history), loads, ok, stale, unknown)
}

// checkFencedHistory checks the fencing promises directly on the history,
// key by key (porcupine checks them too, as part of linearizability; these
// checks say what went wrong in words).
func checkFencedHistory(t *testing.T, history []porcupine.Operation, final map[string]output, writers int) {
	t.Helper()
	for key, end := range final {
		var writes []porcupine.Operation
		valueOf := map[fence.Token]string{}
		refusedTok := map[fence.Token]bool{}
		var newestAcked fence.Token
		for _, op := range history {
			in, out := op.Input.(input), op.Output.(output)
			if in.key != key || in.kind == opLoad {
				continue
			}
			writes = append(writes, op)
			switch {
			case out.ok:
				valueOf[in.token] = in.value
				newestAcked = max(newestAcked, in.token)
			case out.unknown:
				valueOf[in.token] = in.value
			case out.stale:
				refusedTok[in.token] = true
			}
		}
		// No acknowledged write lost.
		assert.GreaterOrEqual(t, end.token, newestAcked, "%s: ends at token %d, but token %d was acknowledged", key, end.token, newestAcked)
		// The value in place was written with its token by a write that
		// was not refused.
		if end.token != 0 {
			v, ok := valueOf[end.token]
			assert.True(t, ok && v == end.value, "%s: ends with %q at token %d, which no accepted write wrote", key, end.value, end.token)
		}
		// No stale write accepted; every refusal names a newer token.
		for _, b := range writes {
			ib, ob := b.Input.(input), b.Output.(output)
			for _, a := range writes {
				ia, oa := a.Input.(input), a.Output.(output)
				if !oa.ok || a.Return >= b.Call {
					continue
				}
				if ob.ok && ib.token <= ia.token {
					t.Errorf("%s: token %d accepted after token %d had been acknowledged", key, ib.token, ia.token)
				}
				if ob.stale && ob.have < ia.token {
					t.Errorf("%s: token %d refused by token %d, but token %d had been acknowledged", key, ib.token, ob.have, ia.token)
				}
			}
			if ib.kind == opWriteIfNewer && ob.stale && ob.have < ib.token {
				t.Errorf("%s: write-if-newer of token %d refused by the older token %d", key, ib.token, ob.have)
			}
		}
	}
}

// checkIssued checks that the Sequencer handed out distinct tokens, each
// newer than every token handed out before its call.
func checkIssued(t *testing.T, tokens []issued) {
	t.Helper()
	require.NotEmpty(t, tokens)
	byToken := slices.Clone(tokens)
	slices.SortFunc(byToken, func(a, b issued) int { return cmp.Compare(a.call, b.call) })
	seen := map[fence.Token]bool{}
	for _, x := range tokens {
		if seen[x.token] {
			t.Errorf("token %d handed out twice", x.token)
		}
		seen[x.token] = true
	}
	// Sorted by call, a token must exceed every token whose call finished
	// before this call began.
	var newestDone fence.Token
	finished := slices.Clone(tokens)
	slices.SortFunc(finished, func(a, b issued) int { return cmp.Compare(a.done, b.done) })
	i := 0
	for _, x := range byToken {
		for i < len(finished) && finished[i].done < x.call {
			newestDone = max(newestDone, finished[i].token)
			i++
		}
		if x.token <= newestDone {
			t.Errorf("token %d handed out after token %d had been", x.token, newestDone)
		}
	}
}

// TestTinyDeadlines runs every operation of the Store, a Sequencer on it
// and the LeaseTable from several goroutines with deadlines of 0 to 3ms, so
// that requests time out in the client, on the wire and inside etcd
// ("etcdserver: request timed out", "context deadline exceeded" from the
// server). Every error must be recognisable with errors.Is: a refusal by
// its sentinel, anything else as context.DeadlineExceeded (since only
// deadlines end these calls) and, if a request was sent, ErrUnknownOutcome.
func TestTinyDeadlines(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	store, err := NewStore(StoreConfig{Client: client, Prefix: "tiny/"})
	require.NoError(t, err)
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "tiny-lease/"})
	require.NoError(t, err)
	seq, err := fence.NewSequencer(fence.SequencerConfig{Store: store, Key: "seq"})
	require.NoError(t, err)

	const workers, perWorker = 8, 150
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		seen   = map[string]bool{}
		wg     sync.WaitGroup
	)
	note := func(name string, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			counts["ok"]++
		case errors.Is(err, fence.ErrStale), errors.Is(err, fence.ErrContended),
			errors.Is(err, lease.ErrHeld), errors.Is(err, lease.ErrLost):
			counts["refused"]++
		case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnknownOutcome):
			counts["not sent"]++ // the deadline had passed before the call
		case errors.Is(err, ErrUnknownOutcome) && errors.Is(err, context.DeadlineExceeded):
			counts["timed out"]++
			// Log one example of each timeout etcd reported itself.
			msg := err.Error()
			if i := strings.LastIndex(msg, "("); i >= 0 && !seen[msg[i:]] {
				seen[msg[i:]] = true
				t.Logf("%s: %v", name, err)
			}
		default:
			counts["unrecognised"]++
			t.Errorf("%s: error matches no sentinel: %v", name, err)
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 13))
			var held []lease.Lease
			for range perWorker {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(3001))*time.Microsecond)
				key := fmt.Sprintf("k%d", rng.IntN(4))
				tok := fence.Token(1 + rng.IntN(50))
				res := fmt.Sprintf("r%d", rng.IntN(6))
				switch op := rng.IntN(12); op {
				case 0:
					_, _, err := store.Load(ctx, key)
					note("Load", err)
				case 1:
					note("CompareAndSwap", store.CompareAndSwap(ctx, key, tok-1, []byte("v"), tok))
				case 2:
					note("WriteIfNewer", store.WriteIfNewer(ctx, key, []byte("v"), tok))
				case 3:
					note("Delete", store.Delete(ctx, key, tok))
				case 4:
					_, err := store.List(ctx, "")
					note("List", err)
				case 5:
					_, err := seq.Next(ctx)
					note("Sequencer.Next", err)
				case 6, 7:
					l, err := tb.Grant(ctx, res, fmt.Sprintf("h%d", w), time.Second)
					note("Grant", err)
					if err == nil {
						held = append(held, l)
					}
				case 8:
					if len(held) > 0 {
						l, err := tb.Renew(ctx, held[len(held)-1])
						note("Renew", err)
						if err == nil {
							held[len(held)-1] = l
						}
					}
				case 9:
					if len(held) > 0 {
						note("Release", tb.Release(ctx, held[len(held)-1]))
						held = held[:len(held)-1]
					}
				case 10:
					_, _, err := tb.Get(ctx, res)
					note("Get", err)
				case 11:
					_, err := tb.Epoch(ctx, res)
					note("Epoch", err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	t.Logf("%v", counts)
	assert.Positive(t, counts["timed out"], "no call timed out")
}
