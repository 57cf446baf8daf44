package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stormguard/stormguard/fence"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrCorrupt is matched by the error returned when a key under the store's
// prefix holds a value that is not a record in the store's format (see the
// package documentation), for example one written with etcdctl.
var ErrCorrupt = errors.New("etcd: corrupt fence record")

// tokenDigits is the width of a record's token: math.MaxUint64 has 20
// decimal digits.
const tokenDigits = 20

// StoreConfig configures a Store. Client is required.
type StoreConfig struct {
	// Client is the etcd client the Store uses. The Store does not close
	// it. Required.
	Client *clientv3.Client
	// Prefix is prepended to every key in etcd, so that a Store shares a
	// cluster with other users; List returns keys without it. For example
	// "stormguard/fence/". At most fence.MaxKeyBytes long; may be empty.
	Prefix string
	// OnEvent, if not nil, is called after every write or delete that took
	// effect and every one refused as stale, on the caller's goroutine. It
	// must not block; fence.Counters.Observe is a ready-made hook.
	OnEvent func(fence.Event)
}

// Store is a fence.Store on etcd: every write is one etcd transaction that
// compares the key's stored token and writes in one atomic step. It also
// implements fence.NewerWriter, so fence.WriteIfNewer on it is a single
// request. Build a Store with NewStore; the methods of a zero Store return
// an error matching fence.ErrInvalidConfig. A Store is safe for concurrent
// use; it holds no state but its configuration.
type Store struct {
	kv      clientv3.KV
	prefix  string
	onEvent func(fence.Event)
}

var (
	errZeroStore  = fmt.Errorf("%w: etcd.Store not built with NewStore", fence.ErrInvalidConfig)
	errNilContext = fmt.Errorf("%w: nil context", fence.ErrInvalidArgument)
)

// ready reports a Store not built with NewStore, or a nil ctx.
func (s *Store) ready(ctx context.Context) error {
	if s.kv == nil {
		return errZeroStore
	}
	if ctx == nil {
		return errNilContext
	}
	return nil
}

var (
	_ fence.Store       = (*Store)(nil)
	_ fence.NewerWriter = (*Store)(nil)
)

// NewStore returns a Store configured by cfg, or an error matching
// fence.ErrInvalidConfig that names every invalid field. It does no I/O.
func NewStore(cfg StoreConfig) (*Store, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, fmt.Errorf("%w: etcd.StoreConfig.Client is nil", fence.ErrInvalidConfig))
	}
	if err := fence.ValidatePrefix(cfg.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("%w: etcd.StoreConfig.Prefix: %w", fence.ErrInvalidConfig, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Store{kv: cfg.Client.KV, prefix: cfg.Prefix, onEvent: cfg.OnEvent}, nil
}

// Load returns the value stored under key and its token, or a nil value and
// token zero if the key is absent. It is one linearizable read.
func (s *Store) Load(ctx context.Context, key string) ([]byte, fence.Token, error) {
	if err := fence.ValidateKey(key); err != nil {
		return nil, 0, err
	}
	if err := s.ready(ctx); err != nil {
		return nil, 0, err
	}
	resp, err := s.kv.Get(ctx, s.prefix+key)
	if err != nil {
		return nil, 0, s.failed("load", key, err)
	}
	return s.decodeRange(key, resp.Kvs)
}

// CompareAndSwap stores value under key with token next if and only if the
// key's token is expect (zero: the key is absent) when etcd applies the
// transaction. See fence.Store.
func (s *Store) CompareAndSwap(ctx context.Context, key string, expect fence.Token, value []byte, next fence.Token) error {
	if err := fence.ValidateCompareAndSwap(key, expect, value, next); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.ifToken(ctx, fence.OpCompareAndSwap, key, expect, clientv3.OpPut(s.prefix+key, record(next, value)), next)
}

// ifToken runs then on key in one transaction if and only if the key's
// token is expect, and otherwise reads the key for the refusal. written is
// the token the hook is told of on success.
func (s *Store) ifToken(ctx context.Context, op fence.Op, key string, expect fence.Token, then clientv3.Op, written fence.Token) error {
	k := s.prefix + key
	resp, err := s.kv.Txn(ctx).
		If(tokenIs(k, expect)...).
		Then(then).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return s.failed(op.String(), key, err)
	}
	if resp.Succeeded {
		s.observe(op, key, written, expect, false)
		return nil
	}
	return s.refusal(op, key, expect, resp.Responses)
}

// WriteIfNewer stores value under key with token t if and only if t is newer
// than the key's token (zero: absent) when etcd applies the transaction.
// It is one request, which carries the value once, so it takes every value
// CompareAndSwap takes (up to fence.MaxValueBytes): a transaction that
// reads the key (the refusal) if its token is at least t, and otherwise
// runs a nested transaction that writes. See fence.WriteIfNewer.
func (s *Store) WriteIfNewer(ctx context.Context, key string, value []byte, t fence.Token) error {
	if err := fence.ValidateWriteIfNewer(key, value, t); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	k := s.prefix + key
	// etcd's comparisons are a conjunction, and "absent or older" is a
	// disjunction, so the transaction tests the negation, "present and at
	// least t", and writes in its Else branch. record > digits(t) is
	// "token ≥ t"; the inner comparison refuses the one value that sorts
	// neither below nor above digits(t), the bare 20 digits, which is not a
	// record (decodeRange reports ErrCorrupt). A value comparison on an
	// absent key is false, so an absent key is written. The Put appears
	// once: a Put in both branches would send the value twice, which etcd's
	// request limit (--max-request-bytes, 1.5 MiB by default) refuses for
	// values above about 750 KiB.
	var put clientv3.Op
	if s.onEvent != nil {
		// The previous record, only to report its token to the hook.
		put = clientv3.OpPut(k, record(t, value), clientv3.WithPrevKV())
	} else {
		put = clientv3.OpPut(k, record(t, value))
	}
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), ">", digits(t))).
		Then(clientv3.OpGet(k)).
		Else(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", digits(t))},
			[]clientv3.Op{clientv3.OpGet(k)},
			[]clientv3.Op{put},
		)).
		Commit()
	if err != nil {
		return s.failed(fence.OpWriteIfNewer.String(), key, err)
	}
	if resp.Succeeded {
		return s.refusal(fence.OpWriteIfNewer, key, t, resp.Responses)
	}
	if len(resp.Responses) != 1 || resp.Responses[0].GetResponseTxn() == nil {
		return fmt.Errorf("etcd: %v %q: malformed transaction response", fence.OpWriteIfNewer, key)
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.Succeeded {
		return s.refusal(fence.OpWriteIfNewer, key, t, inner.Responses)
	}
	var prev fence.Token
	if len(inner.Responses) == 1 {
		if p := inner.Responses[0].GetResponsePut(); p != nil && p.PrevKv != nil {
			prev, _ = parseToken(p.PrevKv.Value)
		}
	}
	s.observe(fence.OpWriteIfNewer, key, t, prev, false)
	return nil
}

// Delete removes key if and only if its token is expect when etcd applies
// the transaction. See fence.Store.
func (s *Store) Delete(ctx context.Context, key string, expect fence.Token) error {
	if err := fence.ValidateDelete(key, expect); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.ifToken(ctx, fence.OpDelete, key, expect, clientv3.OpDelete(s.prefix+key), expect)
}

// List returns, in ascending byte order, the keys under the store's prefix
// that begin with prefix, without the store's prefix. It is one
// linearizable read of keys only; values are not transferred.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := fence.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	resp, err := s.kv.Get(ctx, s.prefix+prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, s.failed("list", prefix, err)
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, strings.TrimPrefix(string(kv.Key), s.prefix))
	}
	return keys, nil
}

// refusal turns the Else branch's read of the key into a *fence.StaleError
// carrying the key's token at the instant of the refusal.
func (s *Store) refusal(op fence.Op, key string, want fence.Token, responses []*etcdserverpb.ResponseOp) error {
	if len(responses) != 1 || responses[0].GetResponseRange() == nil {
		return fmt.Errorf("etcd: %v %q: malformed transaction response", op, key)
	}
	_, have, err := s.decodeRange(key, responses[0].GetResponseRange().Kvs)
	if err != nil {
		return err
	}
	s.observe(op, key, want, have, true)
	return &fence.StaleError{Op: op, Key: key, Have: have, Want: want}
}

func (s *Store) decodeRange(key string, kvs []*mvccpb.KeyValue) ([]byte, fence.Token, error) {
	if len(kvs) == 0 {
		return nil, 0, nil
	}
	raw := kvs[0].Value
	t, ok := parseToken(raw)
	if !ok {
		shown := raw
		if len(shown) > 32 {
			shown = shown[:32]
		}
		return nil, 0, fmt.Errorf("%w: key %q holds %d bytes starting %q, not a token record", ErrCorrupt, s.prefix+key, len(raw), shown)
	}
	// raw belongs to this response alone: slicing it does not alias
	// anything the caller or the client keeps.
	return raw[tokenDigits+1:], t, nil
}

func (s *Store) failed(op, key string, err error) error {
	return fmt.Errorf("etcd: %s %q: %w", op, key, err)
}

func (s *Store) observe(op fence.Op, key string, t, cur fence.Token, fenced bool) {
	if s.onEvent != nil {
		s.onEvent(fence.Event{Op: op, Key: key, Token: t, Current: cur, FencedOff: fenced})
	}
}

// tokenIs compares true if and only if key's token is t; for t zero, if the
// key is absent.
func tokenIs(key string, t fence.Token) []clientv3.Cmp {
	if t == 0 {
		return []clientv3.Cmp{absent(key)}
	}
	// A record is 20 digits, a colon and the value, so it is greater than
	// digits(t) exactly when its token is at least t, and less than
	// digits(t+1) exactly when its token is at most t. A comparison of a
	// value on an absent key is false.
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), ">", digits(t))}
	if t < fence.MaxToken {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(key), "<", digits(t+1)))
	}
	return cmps
}

func absent(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}

// digits returns t in tokenDigits decimal digits, zero-padded.
func digits(t fence.Token) string {
	var buf [tokenDigits]byte
	b := strconv.AppendUint(buf[:0], uint64(t), 10)
	pad := tokenDigits - len(b)
	out := make([]byte, tokenDigits)
	for i := range pad {
		out[i] = '0'
	}
	copy(out[pad:], b)
	return string(out)
}

// record encodes t and value as stored in etcd.
func record(t fence.Token, value []byte) string {
	var b strings.Builder
	b.Grow(tokenDigits + 1 + len(value))
	b.WriteString(digits(t))
	b.WriteByte(':')
	b.Write(value)
	return b.String()
}

// parseToken decodes a record's token, reporting whether raw is a record.
func parseToken(raw []byte) (fence.Token, bool) {
	if len(raw) < tokenDigits+1 || raw[tokenDigits] != ':' {
		return 0, false
	}
	var n uint64
	for _, c := range raw[:tokenDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return fence.Token(n), true
}
