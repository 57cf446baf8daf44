package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEndedContextSendsNothing: a call whose context has already ended
// sends no request, so its error is the context's and not
// ErrUnknownOutcome, whose outcome would be unknown — nothing was asked
// of etcd — and etcd is left as it was.
func TestEndedContextSendsNothing(t *testing.T) {
	_, client := server(t)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "ended/"})
	require.NoError(t, err)
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "ended-lease/"})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, s.CompareAndSwap(ctx, "k", 0, []byte("v"), 5))
	l, err := tb.Grant(ctx, "r", "h", 10*time.Second)
	require.NoError(t, err)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{canceled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		for name, call := range map[string]func() error{
			"Load":           func() error { _, _, err := s.Load(c.ctx, "k"); return err },
			"CompareAndSwap": func() error { return s.CompareAndSwap(c.ctx, "k", 5, []byte("w"), 6) },
			"WriteIfNewer":   func() error { return s.WriteIfNewer(c.ctx, "k", []byte("w"), 7) },
			"WriteIfNewer absent": func() error {
				return s.WriteIfNewer(c.ctx, "new", []byte("w"), 7)
			},
			"Delete":  func() error { return s.Delete(c.ctx, "k", 5) },
			"List":    func() error { _, err := s.List(c.ctx, ""); return err },
			"Grant":   func() error { _, err := tb.Grant(c.ctx, "other", "h", time.Second); return err },
			"Renew":   func() error { _, err := tb.Renew(c.ctx, l); return err },
			"Release": func() error { return tb.Release(c.ctx, l) },
			"Get":     func() error { _, _, err := tb.Get(c.ctx, "r"); return err },
			"Epoch":   func() error { _, err := tb.Epoch(c.ctx, "r"); return err },
		} {
			err := call()
			assert.ErrorIs(t, err, c.want, "%s", name)
			assert.NotErrorIs(t, err, ErrUnknownOutcome, "%s: %v", name, err)
		}
	}
	v, tok, err := s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, fence.Token(5), tok)
	assert.Equal(t, "v", string(v))
	keys, err := s.List(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"k"}, keys)
	got, held, err := tb.Get(ctx, "r")
	require.NoError(t, err)
	require.True(t, held, "the lease was not released")
	assert.Equal(t, l.Epoch, got.Epoch)
	_, held, err = tb.Get(ctx, "other")
	require.NoError(t, err)
	assert.False(t, held, "nothing was granted")
}

// oddKeys are keys whose bytes a path-minded or text-minded store would
// get wrong: separators, NUL, invalid UTF-8, the largest byte (whose
// prefix range has no successor) and the longest key.
var oddKeys = []string{
	"/", "a/b", "a//", "\x00", "a\x00b", "é", "日本", "\xff", "\xff\xff", "\xfe\xff",
	"a\xff", "a\xffb", "\x80", "key ", " key", "a\nb", "%2F", "..",
	strings.Repeat("k", fence.MaxKeyBytes), strings.Repeat("\xff", fence.MaxKeyBytes),
}

// TestStoreOddKeys: every operation works on keys made of any bytes, and
// List returns exactly the keys beginning with its prefix, also when the
// prefix ends in 0xff bytes.
func TestStoreOddKeys(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	for _, prefix := range []string{"", "odd/", "\xff"} {
		s, err := NewStore(StoreConfig{Client: client, Prefix: prefix})
		require.NoError(t, err)
		for i, k := range oddKeys {
			tok := fence.Token(i + 1)
			require.NoError(t, s.CompareAndSwap(ctx, k, 0, []byte(k), tok), "%q", k)
			require.NoError(t, s.WriteIfNewer(ctx, k, []byte(k+"!"), tok+100), "%q", k)
			v, got, err := s.Load(ctx, k)
			require.NoError(t, err, "%q", k)
			assert.Equal(t, tok+100, got, "%q", k)
			assert.Equal(t, k+"!", string(v), "%q", k)
		}
		all, err := s.List(ctx, "")
		require.NoError(t, err)
		for _, p := range append([]string{""}, oddKeys...) {
			keys, err := s.List(ctx, p)
			require.NoError(t, err, "%q", p)
			var want []string
			for _, k := range all {
				if strings.HasPrefix(k, p) {
					want = append(want, k)
				}
			}
			assert.Equal(t, want, keys, "List(%q) with store prefix %q", p, prefix)
		}
		sorted := slices.Clone(oddKeys)
		slices.Sort(sorted)
		var mine []string
		for _, k := range all {
			if slices.Contains(oddKeys, k) {
				mine = append(mine, k)
			}
		}
		assert.Equal(t, sorted, mine, "store prefix %q", prefix)
		for i, k := range oddKeys {
			require.NoError(t, s.Delete(ctx, k, fence.Token(i+1)+100), "%q", k)
		}
	}
	s, err := NewStore(StoreConfig{Client: client})
	require.NoError(t, err)
	keys, err := s.List(ctx, "")
	require.NoError(t, err)
	assert.Empty(t, keys)
}

// TestStoreRefusesOversizeBeforeIO: a value one byte over
// fence.MaxValueBytes and a key one byte over fence.MaxKeyBytes are
// refused as invalid input (not as an unknown outcome), and write nothing.
func TestStoreRefusesOversizeBeforeIO(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	s, err := NewStore(StoreConfig{Client: client, Prefix: "size/"})
	require.NoError(t, err)
	big := make([]byte, fence.MaxValueBytes+1)
	long := strings.Repeat("k", fence.MaxKeyBytes+1)
	for name, err := range map[string]error{
		"CompareAndSwap value": s.CompareAndSwap(ctx, "k", 0, big, 1),
		"WriteIfNewer value":   s.WriteIfNewer(ctx, "k", big, 1),
	} {
		assert.ErrorIs(t, err, fence.ErrInvalidValue, name)
		assert.NotErrorIs(t, err, ErrUnknownOutcome, name)
	}
	for name, err := range map[string]error{
		"CompareAndSwap key": s.CompareAndSwap(ctx, long, 0, nil, 1),
		"WriteIfNewer key":   s.WriteIfNewer(ctx, long, []byte("v"), 1),
		"Delete key":         s.Delete(ctx, long, 1),
	} {
		assert.ErrorIs(t, err, fence.ErrInvalidKey, name)
	}
	keys, err := s.List(ctx, "")
	require.NoError(t, err)
	assert.Empty(t, keys)
}

// TestWriteIfNewerContention: eight goroutines write-if-newer on one key
// with distinct tokens. No newer write is lost: the key ends with the
// newest acknowledged token, written by that write; every refusal names
// a token at least as new as the write's; and ErrContended is rare.
func TestWriteIfNewerContention(t *testing.T) {
	_, client := server(t)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "contend/"})
	require.NoError(t, err)
	const workers, each = 8, 40
	var (
		mu        sync.Mutex
		acked     []fence.Token
		contended int
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tok := fence.Token(i*workers + w + 1)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := s.WriteIfNewer(ctx, "k", []byte(fmt.Sprint(tok)), tok)
				cancel()
				var se *fence.StaleError
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, tok)
				case errors.As(err, &se):
					if se.Have < tok {
						t.Errorf("write of %d refused by older %d", tok, se.Have)
					}
				case errors.Is(err, fence.ErrContended):
					contended++
				default:
					t.Errorf("write of %d: %v", tok, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	v, tok, err := s.Load(t.Context(), "k")
	require.NoError(t, err)
	require.NotEmpty(t, acked)
	assert.Equal(t, slices.Max(acked), tok)
	assert.Equal(t, fmt.Sprint(tok), string(v))
	assert.Less(t, contended, workers*each/4, "contended %d of %d", contended, workers*each)
	t.Logf("%d acknowledged, %d contended of %d", len(acked), contended, workers*each)
}

// TestLeaseTableOddResources: resources and holders of any bytes are
// granted, read back and released.
func TestLeaseTableOddResources(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "odd-lease/"})
	require.NoError(t, err)
	var last fence.Token
	for _, r := range oddKeys {
		holder := "h" + r
		if len(holder) > len(r) && len(r) == fence.MaxKeyBytes {
			holder = r
		}
		l, err := tb.Grant(ctx, r, holder, time.Second)
		require.NoError(t, err, "%q", r)
		assert.Greater(t, l.Epoch, last)
		last = l.Epoch
		got, held, err := tb.Get(ctx, r)
		require.NoError(t, err)
		require.True(t, held, "%q", r)
		assert.Equal(t, holder, got.Holder)
		assert.True(t, bytes.Equal([]byte(r), []byte(got.Resource)))
		require.NoError(t, tb.Release(ctx, l), "%q", r)
		var lost *lease.LostError
		require.ErrorAs(t, tb.Release(ctx, l), &lost)
	}
}

// TestGetExpiresNeverPastGrantedTerm: etcd reports a lease it has not
// started timing — one restored after a restart, before its member is
// promoted to leader — as having 2⁶³−1 ns left (TTL 9223372036 seconds).
// Get must not turn that into an Expires 292 years away: no term etcd
// runs lasts longer than its granted TTL from now, plus the extension
// etcd adds on promotion, which Get's Expires may leave out.
func TestGetExpiresNeverPastGrantedTerm(t *testing.T) {
	sent := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		left, granted int64
		want          time.Duration // Expires − sent
	}{
		{9223372036, 10, 10 * time.Second}, // forever: not timed yet
		{11, 10, 10 * time.Second},         // extended on promotion
		{10, 10, 10 * time.Second},
		{3, 10, 3 * time.Second},
		{0, 10, -time.Second},
		{-2, 10, -3 * time.Second},
	} {
		exp := expiresAt(sent, c.left, c.granted)
		assert.Equal(t, c.want, exp.Sub(sent), "TTL %d of %d", c.left, c.granted)
	}
}

// meddlingKV changes the key with an older record before every
// transaction, as a crowd of other writers would between each read and
// write of a WriteIfNewer.
type meddlingKV struct {
	clientv3.KV
	key string
	n   int
}

func (m *meddlingKV) Txn(ctx context.Context) clientv3.Txn {
	m.n++
	if _, err := m.KV.Put(ctx, m.key, record(1, []byte(fmt.Sprint(m.n)))); err != nil {
		panic(err)
	}
	return m.KV.Txn(ctx)
}

// TestWriteIfNewerContendedCounts: a WriteIfNewer overtaken at every
// attempt gives up after DefaultWriteAttempts transactions with
// ErrContended, writes nothing, and says how many transactions it made
// and how many times others changed the key between its read and write.
func TestWriteIfNewerContendedCounts(t *testing.T) {
	_, client := server(t)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "meddle/"})
	require.NoError(t, err)
	m := &meddlingKV{KV: client.KV, key: "meddle/k"}
	s.kv = m
	err = s.WriteIfNewer(t.Context(), "k", []byte("mine"), 5)
	require.ErrorIs(t, err, fence.ErrContended)
	assert.Equal(t, DefaultWriteAttempts, m.n, "transactions")
	// The first transaction found the key present, which nobody changed
	// after a read; each later one found it changed since its read.
	assert.Contains(t, err.Error(), fmt.Sprintf("%d transactions", DefaultWriteAttempts))
	assert.Contains(t, err.Error(), fmt.Sprintf("changed by other writers %d times", DefaultWriteAttempts-1))
	v, tok, err := s.Load(t.Context(), "k")
	require.NoError(t, err)
	assert.Equal(t, fence.Token(1), tok)
	assert.Equal(t, fmt.Sprint(DefaultWriteAttempts), string(v), "the meddler's last write, not ours")
}

// TestLeaseTableNoRenewalPastExpires: a lease whose Expires has passed on
// the caller's clock is over, although etcd's term, which rounds the TTL
// up to whole seconds and restarts when etcd does, may still run: Renew
// and Release refuse it with a *lease.LostError rather than revive it,
// and give the resource back, so that another holder gets it with a
// newer epoch.
func TestLeaseTableNoRenewalPastExpires(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "past/"})
	require.NoError(t, err)

	// Real time: etcd runs this term for 2s, the holder's view 1.001s.
	l, err := tb.Grant(ctx, "r", "a", 1001*time.Millisecond)
	require.NoError(t, err)
	time.Sleep(time.Until(l.Expires) + time.Millisecond)
	var lost *lease.LostError
	_, err = tb.Renew(ctx, l)
	require.ErrorAs(t, err, &lost, "renewal after Expires")
	require.ErrorAs(t, tb.Release(ctx, l), &lost, "release after Expires")
	b, err := tb.Grant(ctx, "r", "b", 10*time.Second)
	require.NoError(t, err, "the resource was given back")
	assert.Greater(t, b.Epoch, l.Epoch)

	// The caller's clock as a lease sees it, for each call.
	for name, call := range map[string]func(lease.Lease) error{
		"Renew":   func(l lease.Lease) error { _, err := tb.Renew(ctx, l); return err },
		"Release": func(l lease.Lease) error { return tb.Release(ctx, l) },
	} {
		l, err := tb.Grant(ctx, name, "a", 10*time.Second)
		require.NoError(t, err)
		past := l
		past.Expires = time.Now().Add(-time.Nanosecond)
		require.ErrorAs(t, call(past), &lost, name)
		assert.Contains(t, lost.Reason, "expired", name)
		_, held, err := tb.Get(ctx, name)
		require.NoError(t, err)
		assert.False(t, held, "%s: the resource was given back", name)
		_, err = tb.Renew(ctx, l)
		require.ErrorAs(t, err, &lost, "%s: the term is over for its holder too", name)
	}
}

// TestLeaseTableEpochsSurviveCompaction: an epoch is the create revision
// of the holder record, which etcd keeps through compaction and
// defragmentation of the history: Get and Epoch still report it, the
// holder still renews and releases its lease, and the next grant's epoch
// is greater than every earlier one. So is a Sequencer's next token.
func TestLeaseTableEpochsSurviveCompaction(t *testing.T) {
	srv, client := server(t)
	ctx := t.Context()
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "compact/"})
	require.NoError(t, err)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "compact-fence/"})
	require.NoError(t, err)
	seq, err := fence.NewSequencer(fence.SequencerConfig{Store: s, Key: "seq"})
	require.NoError(t, err)
	tok, err := seq.Next(ctx)
	require.NoError(t, err)

	l, err := tb.Grant(ctx, "r", "a", 10*time.Second)
	require.NoError(t, err)
	for i := range 20 { // history to compact away
		require.NoError(t, s.WriteIfNewer(ctx, "churn", []byte("v"), fence.Token(i+1)))
	}
	head, err := client.Get(ctx, "compact/none")
	require.NoError(t, err)
	_, err = client.Compact(ctx, head.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	_, err = client.Defragment(ctx, srv.Endpoint())
	require.NoError(t, err)

	e, err := tb.Epoch(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, l.Epoch, e)
	got, held, err := tb.Get(ctx, "r")
	require.NoError(t, err)
	require.True(t, held)
	assert.Equal(t, l.Epoch, got.Epoch)
	l, err = tb.Renew(ctx, l)
	require.NoError(t, err)
	require.NoError(t, tb.Release(ctx, l))
	b, err := tb.Grant(ctx, "r", "b", 10*time.Second)
	require.NoError(t, err)
	assert.Greater(t, b.Epoch, fence.Token(head.Header.Revision), "newer than everything compacted")
	next, err := seq.Next(ctx)
	require.NoError(t, err)
	assert.Greater(t, next, tok)
}

// TestLeaseTablePastExpiresAnsweredWhileEtcdDown: the refusal of a lease
// past its Expires needs no answer from etcd, so it comes while etcd is
// down, long before the caller's context ends; the revocation it tries is
// best effort.
func TestLeaseTablePastExpiresAnsweredWhileEtcdDown(t *testing.T) {
	srv, client := server(t)
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "down/"})
	require.NoError(t, err)
	l, err := tb.Grant(t.Context(), "r", "a", 10*time.Second)
	require.NoError(t, err)
	l.Expires = time.Now().Add(-time.Nanosecond)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lost *lease.LostError
	_, err = tb.Renew(ctx, l)
	require.ErrorAs(t, err, &lost)
	require.ErrorAs(t, tb.Release(ctx, l), &lost)
	assert.NoError(t, ctx.Err(), "answered before the context ended")
}

// cannedKV answers every transaction with resp, whatever it asks.
type cannedKV struct {
	clientv3.KV
	resp *clientv3.TxnResponse
}

func (c cannedKV) Txn(context.Context) clientv3.Txn { return cannedTxn{c.resp} }

type cannedTxn struct{ resp *clientv3.TxnResponse }

func (c cannedTxn) If(...clientv3.Cmp) clientv3.Txn  { return c }
func (c cannedTxn) Then(...clientv3.Op) clientv3.Txn { return c }
func (c cannedTxn) Else(...clientv3.Op) clientv3.Txn { return c }
func (c cannedTxn) Commit() (*clientv3.TxnResponse, error) {
	return c.resp, nil
}

// TestMalformedResponseIsUnknownOutcome: a transaction response that does
// not have the shape the Store asked for cannot say whether the write was
// applied, so the error matches ErrUnknownOutcome like any other answer
// the Store cannot use — never no sentinel at all.
func TestMalformedResponseIsUnknownOutcome(t *testing.T) {
	for _, resp := range []*clientv3.TxnResponse{
		nil,
		{Succeeded: false},
		{Succeeded: false, Responses: []*etcdserverpb.ResponseOp{{}, {}}},
		{Succeeded: false, Responses: []*etcdserverpb.ResponseOp{{Response: &etcdserverpb.ResponseOp_ResponsePut{}}}},
	} {
		s := &Store{kv: cannedKV{resp: resp}}
		ctx := t.Context()
		for name, err := range map[string]error{
			"CompareAndSwap":     s.CompareAndSwap(ctx, "k", 3, []byte("v"), 4),
			"CompareAndSwap 0":   s.CompareAndSwap(ctx, "k", 0, []byte("v"), 4),
			"Delete":             s.Delete(ctx, "k", 3),
			"WriteIfNewer":       s.WriteIfNewer(ctx, "k", []byte("v"), 4),
			"fence.WriteIfNewer": fence.WriteIfNewer(ctx, s, "k", []byte("v"), 4),
		} {
			require.Error(t, err, name)
			assert.ErrorIs(t, err, ErrUnknownOutcome, "%s: %v", name, err)
		}
	}
}

// TestRenewTrustsEtcdsTerm: a renewed lease's Expires is within etcd's
// term, whatever TTL the Lease passed in says: a Lease whose TTL was
// raised after Grant does not buy a longer term than etcd runs.
func TestRenewTrustsEtcdsTerm(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "ttl/"})
	require.NoError(t, err)
	l, err := tb.Grant(ctx, "r", "a", 2*time.Second)
	require.NoError(t, err)
	forged := l
	forged.TTL = lease.MaxTTL
	before := time.Now()
	got, err := tb.Renew(ctx, forged)
	require.NoError(t, err)
	assert.False(t, got.Expires.After(time.Now().Add(2*time.Second)), "Expires %v past etcd's 2s term", got.Expires.Sub(before))
	assert.Equal(t, 2*time.Second, got.TTL)
	got, err = tb.Renew(ctx, l)
	require.NoError(t, err)
	assert.Equal(t, l.TTL, got.TTL, "a TTL within etcd's is kept")
}

// TestNilReceivers: methods on a nil *Store or *LeaseTable return the
// zero value's ErrInvalidConfig, never panic.
func TestNilReceivers(t *testing.T) {
	ctx := t.Context()
	var s *Store
	var tb *LeaseTable
	l := lease.Lease{Resource: "r", Holder: "h", Epoch: 1, TTL: time.Second, Expires: time.Now().Add(time.Hour), ID: 1}
	for name, call := range map[string]func() error{
		"Load":           func() error { _, _, err := s.Load(ctx, "k"); return err },
		"CompareAndSwap": func() error { return s.CompareAndSwap(ctx, "k", 0, []byte("v"), 1) },
		"WriteIfNewer":   func() error { return s.WriteIfNewer(ctx, "k", []byte("v"), 1) },
		"Delete":         func() error { return s.Delete(ctx, "k", 1) },
		"List":           func() error { _, err := s.List(ctx, ""); return err },
	} {
		assert.NotPanics(t, func() { assert.ErrorIs(t, call(), fence.ErrInvalidConfig, name) }, name)
	}
	for name, call := range map[string]func() error{
		"Grant":   func() error { _, err := tb.Grant(ctx, "r", "h", time.Second); return err },
		"Renew":   func() error { _, err := tb.Renew(ctx, l); return err },
		"Release": func() error { return tb.Release(ctx, l) },
		"Get":     func() error { _, _, err := tb.Get(ctx, "r"); return err },
		"Epoch":   func() error { _, err := tb.Epoch(ctx, "r"); return err },
	} {
		assert.NotPanics(t, func() { assert.ErrorIs(t, call(), lease.ErrInvalidConfig, name) }, name)
	}
}

// TestZeroClientRefused: a clientv3.Client not built with clientv3.New
// has no KV or Lease client; NewStore and NewLeaseTable refuse it rather
// than return a table whose first call panics.
func TestZeroClientRefused(t *testing.T) {
	_, err := NewStore(StoreConfig{Client: &clientv3.Client{}})
	assert.ErrorIs(t, err, fence.ErrInvalidConfig)
	_, err = NewLeaseTable(LeaseTableConfig{Client: &clientv3.Client{}})
	assert.ErrorIs(t, err, lease.ErrInvalidConfig)
}

// deadlineTarget runs each operation on the etcd Store with a deadline of
// 0 to 5ms, so that many time out in the client, on the wire or inside
// etcd. An error matching ErrUnknownOutcome leaves the outcome open; any
// other error that is not a refusal must be a call that sent nothing,
// and is left out of the history as not having happened.
type deadlineTarget struct {
	s   *Store
	mu  *sync.Mutex
	rng *rand.Rand
	t   *testing.T
}

func (d deadlineTarget) do(ctx context.Context, in input) (output, error) {
	d.mu.Lock()
	timeout := time.Duration(d.rng.IntN(5001)) * time.Microsecond
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := storeTarget{d.s}.do(ctx, in)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, ErrUnknownOutcome):
		return output{unknown: true}, nil
	case errors.Is(err, context.DeadlineExceeded):
		return output{notSent: true}, nil
	}
	d.t.Errorf("%v: %v", in.kind, err)
	return output{unknown: true}, nil
}

// TestLinearizableEtcdTinyDeadlines: the history of CompareAndSwap,
// WriteIfNewer, Delete and Load under deadlines of 0 to 5ms is
// linearizable, with every timed-out write concurrent with everything
// after its call, and every call reported as not sent left out.
func TestLinearizableEtcdTinyDeadlines(t *testing.T) {
	_, client := server(t)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "tiny-lin/"})
	require.NoError(t, err)
	rec := newRecorder()
	var mu sync.Mutex
	tg := deadlineTarget{s: s, mu: &mu, rng: rand.New(rand.NewPCG(1, 2)), t: t}
	// Timed-out writes, concurrent with everything after them, make the
	// check exponential in their number per key: many keys keep it small.
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	runClients(t.Context(), rec, tg, 4, 50, keys, true, nil)
	h := rec.history()
	unknown := 0
	for _, op := range h {
		if op.Output.(output).unknown {
			unknown++
		}
	}
	t.Logf("%d operations recorded, %d with unknown outcome", len(h), unknown)
	checkLinearizable(t, h)
}
