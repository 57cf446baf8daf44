package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/fence/fencetest"
	"github.com/stormguard/stormguard/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"pgregory.net/rapid"
)

func TestNewStoreValidation(t *testing.T) {
	s, err := NewStore(StoreConfig{Prefix: strings.Repeat("p", fence.MaxKeyBytes+1)})
	assert.Nil(t, s)
	require.ErrorIs(t, err, fence.ErrInvalidConfig)
	assert.ErrorIs(t, err, fence.ErrInvalidKey)
	assert.Contains(t, err.Error(), "etcd.StoreConfig.Client is nil")
	assert.Contains(t, err.Error(), "etcd.StoreConfig.Prefix: fence: invalid key: prefix of 1025 bytes exceeds the limit of 1024 bytes")
	assert.Len(t, strings.Split(err.Error(), "\n"), 2)

	var zero Store
	ctx := context.Background()
	_, _, err = zero.Load(ctx, "k")
	assert.ErrorIs(t, err, fence.ErrInvalidConfig)
	assert.ErrorIs(t, zero.CompareAndSwap(ctx, "k", 0, []byte{}, 1), fence.ErrInvalidConfig)
	assert.ErrorIs(t, zero.WriteIfNewer(ctx, "k", []byte{}, 1), fence.ErrInvalidConfig)
	assert.ErrorIs(t, zero.Delete(ctx, "k", 1), fence.ErrInvalidConfig)
	_, err = zero.List(ctx, "")
	assert.ErrorIs(t, err, fence.ErrInvalidConfig)
}

// TestRecordOrder proves the encoding that lets etcd compare tokens: for
// any tokens a and b and any value, record(a, v) > digits(b) if and only if
// a ≥ b, and record(a, v) < digits(b) if and only if a < b.
func TestRecordOrder(t *testing.T) {
	token := rapid.Custom(func(t *rapid.T) fence.Token {
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			return fence.Token(rapid.Uint64Range(0, 20).Draw(t, "small"))
		case 1:
			return fence.MaxToken - fence.Token(rapid.Uint64Range(0, 20).Draw(t, "large"))
		}
		return fence.Token(rapid.Uint64().Draw(t, "any"))
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b := token.Draw(t, "a"), token.Draw(t, "b")
		v := rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "value")
		rec := record(a, v)
		if got, want := rec > digits(b), a >= b; got != want {
			t.Fatalf("record(%d) > digits(%d) is %v", a, b, got)
		}
		if got, want := rec < digits(b), a < b; got != want {
			t.Fatalf("record(%d) < digits(%d) is %v", a, b, got)
		}
		tok, ok := parseToken([]byte(rec))
		if a == 0 {
			if ok {
				t.Fatalf("parseToken(%q) took token zero for a record", rec)
			}
		} else if !ok || tok != a || rec[tokenDigits+1:] != string(v) {
			t.Fatalf("parseToken(%q) = %d, %v", rec, tok, ok)
		}
	})
	assert.Equal(t, "00000000000000000042:lb-7", record(42, []byte("lb-7")))
	assert.Equal(t, "18446744073709551615:", record(fence.MaxToken, []byte{}))
	for _, bad := range []string{"", "42:x", "0000000000000000004x:", "00000000000000000042;x", "99999999999999999999:"} {
		_, ok := parseToken([]byte(bad))
		assert.False(t, ok, "%q", bad)
	}
}

// server starts one etcd for a test and returns it with a client.
func server(t *testing.T) (*etcdtest.Server, *clientv3.Client) {
	srv := etcdtest.Start(t)
	return srv, srv.Client(t)
}

func TestStoreConformance(t *testing.T) {
	_, client := server(t)
	var n atomic.Int64
	fencetest.TestStore(t, func(t *testing.T) fence.Store {
		s, err := NewStore(StoreConfig{Client: client, Prefix: fmt.Sprintf("conformance/%d/", n.Add(1))})
		require.NoError(t, err)
		return s
	})
	t.Run("NoPrefix", func(t *testing.T) {
		// An empty prefix is valid; keys are then etcd's keys as they are.
		s, err := NewStore(StoreConfig{Client: client})
		require.NoError(t, err)
		require.NoError(t, s.CompareAndSwap(t.Context(), "bare", 0, []byte("v"), 1))
		resp, err := client.Get(t.Context(), "bare")
		require.NoError(t, err)
		require.Len(t, resp.Kvs, 1)
		assert.Equal(t, "00000000000000000001:v", string(resp.Kvs[0].Value))
	})
}

func TestStorePrefixAndRecordFormat(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	a, err := NewStore(StoreConfig{Client: client, Prefix: "team-a/"})
	require.NoError(t, err)
	b, err := NewStore(StoreConfig{Client: client, Prefix: "team-b/"})
	require.NoError(t, err)
	require.NoError(t, a.CompareAndSwap(ctx, "plan", 0, []byte("lb-7=100"), 42))
	require.NoError(t, b.CompareAndSwap(ctx, "plan", 0, []byte("lb-9=100"), 7))

	resp, err := client.Get(ctx, "team-a/plan")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, "00000000000000000042:lb-7=100", string(resp.Kvs[0].Value), "readable with etcdctl")

	keys, err := a.List(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"plan"}, keys, "a store sees only its prefix, and lists keys without it")
	_, tok, err := b.Load(ctx, "plan")
	require.NoError(t, err)
	assert.Equal(t, fence.Token(7), tok)
}

func TestStoreCorruptRecord(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	s, err := NewStore(StoreConfig{Client: client, Prefix: "p/"})
	require.NoError(t, err)
	_, err = client.Put(ctx, "p/hand-written", "lb-1=100")
	require.NoError(t, err)

	_, _, err = s.Load(ctx, "hand-written")
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, `key "p/hand-written" holds 8 bytes starting "lb-1=100", not a token record`)
	assert.ErrorIs(t, s.CompareAndSwap(ctx, "hand-written", 3, []byte("x"), 4), ErrCorrupt)
	assert.ErrorIs(t, s.Delete(ctx, "hand-written", 3), ErrCorrupt)
	assert.ErrorIs(t, s.WriteIfNewer(ctx, "hand-written", []byte("x"), 1), ErrCorrupt, "letters sort after digits: never taken for an older token")
	resp, err := client.Get(ctx, "p/hand-written")
	require.NoError(t, err)
	assert.Equal(t, "lb-1=100", string(resp.Kvs[0].Value), "nothing was overwritten")

	// Neither the bare 20 digits of the token being written nor a value
	// that sorts below them (the empty value) is taken for a record.
	for _, raw := range []string{digits(9), ""} {
		_, err = client.Put(ctx, "p/not-a-record", raw)
		require.NoError(t, err)
		assert.ErrorIs(t, s.WriteIfNewer(ctx, "not-a-record", []byte("x"), 9), ErrCorrupt)
		resp, err = client.Get(ctx, "p/not-a-record")
		require.NoError(t, err)
		assert.Equal(t, raw, string(resp.Kvs[0].Value), "nothing was overwritten")
	}
}

// TestStoreLargestRequest writes, replaces, refuses and deletes a value of
// fence.MaxValueBytes under the longest prefix and key, with an OnEvent
// hook (so WriteIfNewer also reads the previous record back): the largest
// requests and responses the Store makes fit etcd's default limits
// (--max-request-bytes 1.5 MiB, which the harness leaves as it is).
func TestStoreLargestRequest(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	var events []fence.Event
	s, err := NewStore(StoreConfig{
		Client:  client,
		Prefix:  strings.Repeat("p", fence.MaxKeyBytes),
		OnEvent: func(e fence.Event) { events = append(events, e) },
	})
	require.NoError(t, err)
	key := strings.Repeat("k", fence.MaxKeyBytes)
	full := func(b byte) []byte { return bytes.Repeat([]byte{b}, fence.MaxValueBytes) }

	require.NoError(t, s.WriteIfNewer(ctx, key, full(1), 1), "create")
	require.NoError(t, s.CompareAndSwap(ctx, key, 1, full(2), 2))
	require.NoError(t, s.WriteIfNewer(ctx, key, full(3), fence.MaxToken-1), "replace")
	require.NoError(t, fence.WriteIfNewer(ctx, s, key, full(4), fence.MaxToken))
	var se *fence.StaleError
	require.ErrorAs(t, s.WriteIfNewer(ctx, key, full(5), fence.MaxToken), &se)
	assert.Equal(t, fence.MaxToken, se.Have)
	v, tok, err := s.Load(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, fence.MaxToken, tok)
	assert.True(t, bytes.Equal(full(4), v), "the value written last")
	require.NoError(t, s.Delete(ctx, key, fence.MaxToken))

	assert.Equal(t, []fence.Event{
		{Op: fence.OpWriteIfNewer, Key: key, Token: 1, Current: 0},
		{Op: fence.OpCompareAndSwap, Key: key, Token: 2, Current: 1},
		{Op: fence.OpWriteIfNewer, Key: key, Token: fence.MaxToken - 1, Current: 2},
		{Op: fence.OpWriteIfNewer, Key: key, Token: fence.MaxToken, Current: fence.MaxToken - 1},
		{Op: fence.OpWriteIfNewer, Key: key, Token: fence.MaxToken, Current: fence.MaxToken, FencedOff: true},
		{Op: fence.OpDelete, Key: key, Token: fence.MaxToken, Current: fence.MaxToken},
	}, events)
}

func TestStoreEvents(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	var events []fence.Event
	s, err := NewStore(StoreConfig{Client: client, Prefix: "events/", OnEvent: func(e fence.Event) { events = append(events, e) }})
	require.NoError(t, err)
	require.NoError(t, s.CompareAndSwap(ctx, "k", 0, []byte("a"), 3))
	require.Error(t, s.CompareAndSwap(ctx, "k", 0, []byte("b"), 4))
	require.NoError(t, s.WriteIfNewer(ctx, "k", []byte("c"), 8))
	require.Error(t, s.WriteIfNewer(ctx, "k", []byte("d"), 8))
	require.NoError(t, s.WriteIfNewer(ctx, "new", []byte("e"), 2))
	require.Error(t, s.Delete(ctx, "k", 3))
	require.NoError(t, s.Delete(ctx, "k", 8))
	assert.Equal(t, []fence.Event{
		{Op: fence.OpCompareAndSwap, Key: "k", Token: 3, Current: 0},
		{Op: fence.OpCompareAndSwap, Key: "k", Token: 0, Current: 3, FencedOff: true},
		{Op: fence.OpWriteIfNewer, Key: "k", Token: 8, Current: 3},
		{Op: fence.OpWriteIfNewer, Key: "k", Token: 8, Current: 8, FencedOff: true},
		{Op: fence.OpWriteIfNewer, Key: "new", Token: 2, Current: 0},
		{Op: fence.OpDelete, Key: "k", Token: 3, Current: 8, FencedOff: true},
		{Op: fence.OpDelete, Key: "k", Token: 8, Current: 8},
	}, events)
}

// TestSequencerSurvivesRestarts: a fence.Sequencer on the etcd Store keeps
// handing out newer tokens across a new client (a process restart), a
// graceful etcd restart and an etcd crash (SIGKILL).
func TestSequencerSurvivesRestarts(t *testing.T) {
	srv, client := server(t)
	next := func(c *clientv3.Client) fence.Token {
		t.Helper()
		s, err := NewStore(StoreConfig{Client: c, Prefix: "seq/"})
		require.NoError(t, err)
		seq, err := fence.NewSequencer(fence.SequencerConfig{Store: s, Key: "generation"})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tok, err := seq.Next(ctx)
		require.NoError(t, err)
		return tok
	}
	assert.Equal(t, fence.Token(1), next(client))
	assert.Equal(t, fence.Token(2), next(client))

	fresh := srv.Client(t) // another process
	assert.Equal(t, fence.Token(3), next(fresh))

	srv.Stop()
	srv.Restart()
	assert.Equal(t, fence.Token(4), next(srv.Client(t)))

	srv.Kill()
	srv.Restart()
	assert.Equal(t, fence.Token(5), next(srv.Client(t)))
	assert.Equal(t, fence.Token(6), next(client), "the first client reconnected too")
}

// TestNilContext: a nil context is refused before any request, as
// ErrInvalidArgument of fence or lease, never a panic in the client.
func TestNilContext(t *testing.T) {
	_, client := server(t)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "nilctx/"})
	require.NoError(t, err)
	tb, err := NewLeaseTable(LeaseTableConfig{Client: client, Prefix: "nilctx-lease/"})
	require.NoError(t, err)
	var nilCtx context.Context
	l := lease.Lease{Resource: "r", Holder: "h", Epoch: 1, TTL: time.Second, ID: 1}
	for name, call := range map[string]func() error{
		"Load":           func() error { _, _, err := s.Load(nilCtx, "k"); return err },
		"CompareAndSwap": func() error { return s.CompareAndSwap(nilCtx, "k", 0, []byte("v"), 1) },
		"WriteIfNewer":   func() error { return s.WriteIfNewer(nilCtx, "k", []byte("v"), 1) },
		"Delete":         func() error { return s.Delete(nilCtx, "k", 1) },
		"List":           func() error { _, err := s.List(nilCtx, ""); return err },
	} {
		assert.ErrorIs(t, call(), fence.ErrInvalidArgument, name)
	}
	for name, call := range map[string]func() error{
		"Grant":   func() error { _, err := tb.Grant(nilCtx, "r", "h", time.Second); return err },
		"Renew":   func() error { _, err := tb.Renew(nilCtx, l); return err },
		"Release": func() error { return tb.Release(nilCtx, l) },
		"Get":     func() error { _, _, err := tb.Get(nilCtx, "r"); return err },
		"Epoch":   func() error { _, err := tb.Epoch(nilCtx, "r"); return err },
	} {
		assert.ErrorIs(t, call(), lease.ErrInvalidArgument, name)
	}
	keys, err := s.List(t.Context(), "")
	require.NoError(t, err)
	assert.Empty(t, keys, "nothing was written")
}

// nonRecords are values a key may hold that are not records, each chosen
// to sit next to the range a conditional write of token 5 (or of
// fence.MaxToken) compares with: the bare digits and the digits followed
// by a byte just below or above the colon.
var nonRecords = []string{
	"",
	"lb-1=100",
	"5",
	"00000000000000000005",
	"000000000000000000050",
	"00000000000000000005\x00",
	"000000000000000000059",
	"00000000000000000005;x",
	"00000000000000000005;",
	"00000000000000000005\xff",
	"0000000000000000005:",
	"00000000000000000000:x",
	"18446744073709551615",
	"18446744073709551615;",
	"184467440737095516150:",
	"18446744073709551616:",
	"99999999999999999999:",
	"\xff",
}

// TestStoreConditionalWritesLeaveNonRecordsAlone: a CompareAndSwap, Delete
// or WriteIfNewer that finds a value that is not a record reports
// ErrCorrupt and leaves the value as it was, whatever token it compares —
// also fence.MaxToken, whose range has no record above it.
func TestStoreConditionalWritesLeaveNonRecordsAlone(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	s, err := NewStore(StoreConfig{Client: client, Prefix: "nonrec/"})
	require.NoError(t, err)
	for i, raw := range nonRecords {
		if _, ok := parseToken([]byte(raw)); ok {
			continue // a record: not this test's business
		}
		key := fmt.Sprintf("k%d", i)
		for name, call := range map[string]func() error{
			"CompareAndSwap 5":      func() error { return s.CompareAndSwap(ctx, key, 5, []byte("x"), 6) },
			"CompareAndSwap 0":      func() error { return s.CompareAndSwap(ctx, key, 0, []byte("x"), 6) },
			"CompareAndSwap Max-1":  func() error { return s.CompareAndSwap(ctx, key, fence.MaxToken-1, []byte("x"), fence.MaxToken) },
			"Delete 5":              func() error { return s.Delete(ctx, key, 5) },
			"Delete Max":            func() error { return s.Delete(ctx, key, fence.MaxToken) },
			"WriteIfNewer 6":        func() error { return s.WriteIfNewer(ctx, key, []byte("x"), 6) },
			"WriteIfNewer 5":        func() error { return s.WriteIfNewer(ctx, key, []byte("x"), 5) },
			"WriteIfNewer Max":      func() error { return s.WriteIfNewer(ctx, key, []byte("x"), fence.MaxToken) },
			"fence.WriteIfNewer 10": func() error { return fence.WriteIfNewer(ctx, s, key, []byte("x"), 10) },
		} {
			_, err := client.Put(ctx, "nonrec/"+key, raw)
			require.NoError(t, err)
			assert.ErrorIs(t, call(), ErrCorrupt, "%s on %q", name, raw)
			resp, err := client.Get(ctx, "nonrec/"+key)
			require.NoError(t, err)
			if assert.Len(t, resp.Kvs, 1, "%s deleted %q", name, raw) {
				assert.Equal(t, raw, string(resp.Kvs[0].Value), "%s overwrote %q", name, raw)
			}
		}
	}
}

// FuzzTokenRange proves the comparison tokenTxn makes: a value v lies in
// [digits(t)+":", digits(t)+";") if and only if parseToken says v is a
// record of token t.
func FuzzTokenRange(f *testing.F) {
	for _, v := range nonRecords {
		f.Add([]byte(v), uint64(5))
		f.Add([]byte(v), uint64(fence.MaxToken))
	}
	f.Add([]byte(record(5, []byte("x"))), uint64(5))
	f.Add([]byte(record(fence.MaxToken, nil)), uint64(fence.MaxToken))
	f.Fuzz(func(t *testing.T, v []byte, tok uint64) {
		if tok == 0 {
			return // token zero is "absent", not a range
		}
		lo, hi := digits(fence.Token(tok))+":", digits(fence.Token(tok))+";"
		in := string(v) >= lo && string(v) < hi
		got, ok := parseToken(v)
		if want := ok && got == fence.Token(tok); in != want {
			t.Fatalf("%q in the range of token %d: %v; parseToken says %d, %v", v, tok, in, got, ok)
		}
	})
}

// rawValue draws a value a key may hold: a record, or a near miss of one
// (bare digits, a wrong separator, a digit or byte too many or too few),
// or arbitrary bytes.
func rawValue(t *rapid.T, tok fence.Token) string {
	near := rapid.SampledFrom([]fence.Token{tok, tok - 1, tok + 1, 0, 1, fence.MaxToken, fence.MaxToken - 1}).Draw(t, "near")
	d := digits(near)
	switch rapid.IntRange(0, 5).Draw(t, "shape") {
	case 0:
		return record(near, rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "payload"))
	case 1:
		sep := rapid.SampledFrom([]string{"", ":", ";", "9", "0", "\x00", "\xff", "/"}).Draw(t, "sep")
		return d + sep + string(rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "tail"))
	case 2:
		cut := rapid.IntRange(0, len(d)).Draw(t, "cut")
		return d[:cut] + rapid.SampledFrom([]string{"", ":", ";", "0:", "9"}).Draw(t, "end")
	case 3:
		return "0" + d + ":"
	}
	return string(rapid.SliceOfN(rapid.Byte(), 0, 24).Draw(t, "bytes"))
}

// TestStoreConditionalWritesMatchParser: against real etcd, with the key
// absent or holding a record, a near miss of one or arbitrary bytes, each
// conditional write succeeds if and only if the parser says the key holds
// what the write requires — CompareAndSwap and Delete a record of the
// expected token (CompareAndSwap from zero: the key absent), WriteIfNewer
// a record of an older token or nothing — is refused with the parsed token
// if it holds a record, and reports ErrCorrupt and leaves the value alone
// otherwise.
func TestStoreConditionalWritesMatchParser(t *testing.T) {
	_, client := server(t)
	s, err := NewStore(StoreConfig{Client: client, Prefix: "parser/"})
	require.NoError(t, err)
	var n atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		ctx := t.Context()
		key := fmt.Sprintf("k%d", n.Add(1))
		tok := fence.Token(rapid.SampledFrom([]uint64{1, 5, 9, 10, 99, uint64(fence.MaxToken) - 1, uint64(fence.MaxToken)}).Draw(rt, "token"))
		present := rapid.IntRange(0, 9).Draw(rt, "present") > 0
		raw := rawValue(rt, tok)
		if present {
			_, err := client.Put(ctx, "parser/"+key, raw)
			require.NoError(rt, err)
		}
		have, isRecord := parseToken([]byte(raw))
		var (
			err  error
			want bool // the write must succeed
		)
		switch op := rapid.IntRange(0, 3).Draw(rt, "op"); op {
		case 0:
			next := tok + 1
			if tok == fence.MaxToken {
				next = tok
				tok--
			}
			err = s.CompareAndSwap(ctx, key, tok, []byte("new"), next)
			want = present && isRecord && have == tok
		case 1:
			err = s.CompareAndSwap(ctx, key, 0, []byte("new"), tok)
			want = !present
		case 2:
			err = s.Delete(ctx, key, tok)
			want = present && isRecord && have == tok
		case 3:
			err = s.WriteIfNewer(ctx, key, []byte("new"), tok)
			want = !present || isRecord && have < tok
		}
		resp, gerr := client.Get(ctx, "parser/"+key)
		require.NoError(rt, gerr)
		if want {
			require.NoError(rt, err, "%q", raw)
			return
		}
		switch {
		case !present:
			var se *fence.StaleError
			require.ErrorAs(rt, err, &se)
			assert.Zero(rt, se.Have)
			assert.Empty(rt, resp.Kvs, "written although refused")
			return
		case isRecord:
			var se *fence.StaleError
			require.ErrorAs(rt, err, &se, "%q", raw)
			assert.Equal(rt, have, se.Have)
		default:
			require.ErrorIs(rt, err, ErrCorrupt, "%q", raw)
		}
		require.Len(rt, resp.Kvs, 1, "%q was deleted", raw)
		require.Equal(rt, raw, string(resp.Kvs[0].Value), "%q was overwritten", raw)
	})
}

// TestUnknownOutcome: every way the etcd client reports a failed request
// matches ErrUnknownOutcome, and a timeout — on the client, as a gRPC
// status, or as etcd's own "request timed out" or "context deadline
// exceeded" — also matches context.DeadlineExceeded.
func TestUnknownOutcome(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want error // besides ErrUnknownOutcome; nil: nothing else
	}{
		{live, context.DeadlineExceeded, context.DeadlineExceeded},
		{live, fmt.Errorf("wrapped: %w", context.Canceled), context.Canceled},
		{live, rpctypes.ErrTimeout, context.DeadlineExceeded},
		{live, rpctypes.ErrGRPCTimeout, context.DeadlineExceeded},
		{live, rpctypes.ErrTimeoutDueToLeaderFail, context.DeadlineExceeded},
		{live, rpctypes.ErrTimeoutDueToConnectionLost, context.DeadlineExceeded},
		{live, rpctypes.ErrTimeoutWaitAppliedIndex, context.DeadlineExceeded},
		{live, status.Error(codes.Unknown, "context deadline exceeded"), context.DeadlineExceeded},
		{live, status.Error(codes.DeadlineExceeded, "deadline"), context.DeadlineExceeded},
		{live, status.Error(codes.Unknown, "context canceled"), context.Canceled},
		{live, rpctypes.ErrGRPCCanceled, context.Canceled},
		{live, status.Error(codes.Canceled, "grpc: the client connection is closing"), nil},
		{ended, status.Error(codes.Canceled, "grpc: the client connection is closing"), context.Canceled},
		{live, status.Error(codes.Unavailable, "connection refused"), nil},
		{live, rpctypes.ErrNoSpace, nil},
		{ended, errors.New("connection reset"), context.Canceled},
	} {
		err := unknownOutcome(c.ctx, c.err)
		assert.ErrorIs(t, err, ErrUnknownOutcome, "%v", c.err)
		assert.ErrorIs(t, err, c.err, "the cause stays in the chain")
		assert.Contains(t, err.Error(), rpctypes.ErrorDesc(c.err))
		for _, ctxErr := range []error{context.DeadlineExceeded, context.Canceled} {
			assert.Equal(t, ctxErr == c.want, errors.Is(err, ctxErr), "%v matches %v", c.err, ctxErr)
		}
	}
}

// TestStorePrefixIsRawBytes: a prefix is raw bytes, not a path, as
// StoreConfig.Prefix says: the Store with prefix "p" sees the keys of the
// Store with prefix "p/" as keys beginning with "/".
func TestStorePrefixIsRawBytes(t *testing.T) {
	_, client := server(t)
	ctx := t.Context()
	p, err := NewStore(StoreConfig{Client: client, Prefix: "p"})
	require.NoError(t, err)
	slash, err := NewStore(StoreConfig{Client: client, Prefix: "p/"})
	require.NoError(t, err)
	require.NoError(t, slash.CompareAndSwap(ctx, "plan", 0, []byte("v"), 3))
	keys, err := p.List(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"/plan"}, keys)
	_, tok, err := p.Load(ctx, "/plan")
	require.NoError(t, err)
	assert.Equal(t, fence.Token(3), tok)
}
