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
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrCorrupt is matched by the error returned when a key under the store's
// prefix holds a value that is not a record in the store's format (see the
// package documentation), for example one written with etcdctl.
var ErrCorrupt = errors.New("etcd: corrupt fence record")

// ErrUnknownOutcome is matched by the error of every call whose request to
// etcd failed without an answer — a timeout, a cancelled context, a lost
// connection, etcd down or an error reported by etcd — as opposed to a
// refusal, invalid input or a corrupt record. A write that fails so may or
// may not have been applied; a read changed nothing. If the request timed
// out, on the client or in etcd ("etcdserver: request timed out", a gRPC
// status DeadlineExceeded, or etcd's "context deadline exceeded"), the
// error also matches context.DeadlineExceeded; if it was cancelled,
// context.Canceled; and if the call's context had ended when the request
// failed, that context's error. A call whose context has already ended
// sends nothing and fails with that context's error alone, which does not
// match ErrUnknownOutcome: it surely changed nothing.
var ErrUnknownOutcome = errors.New("etcd: request failed, outcome unknown")

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
	// "stormguard/fence/". It is raw bytes, not a path: a Store with
	// prefix "p" also sees the keys of one with prefix "p/", so end it
	// with a separator and let no Store's prefix begin another's. At most
	// fence.MaxKeyBytes long; may be empty.
	Prefix string
	// OnEvent, if not nil, is called after every write or delete that took
	// effect and every one refused as stale, on the caller's goroutine. It
	// must not block; fence.Counters.Observe is a ready-made hook.
	OnEvent func(fence.Event)
}

// Store is a fence.Store on etcd: every write is one etcd transaction that
// compares the key's stored token and writes in one atomic step. It also
// implements fence.NewerWriter, so fence.WriteIfNewer on it is
// Store.WriteIfNewer: one request for an absent key or a refusal, two to
// write over an older record. Build a Store with NewStore; the methods of
// a zero or nil Store return an error matching fence.ErrInvalidConfig. A
// Store is safe for concurrent use; it holds no state but its
// configuration.
type Store struct {
	kv      clientv3.KV
	prefix  string
	onEvent func(fence.Event)
}

var (
	errZeroStore  = fmt.Errorf("%w: etcd.Store nil or not built with NewStore", fence.ErrInvalidConfig)
	errNilContext = fmt.Errorf("%w: nil context", fence.ErrInvalidArgument)
)

// ready reports a Store not built with NewStore, a nil ctx, or a ctx that
// has ended: a call refused so sends nothing, so its error is ctx's alone,
// not ErrUnknownOutcome.
func (s *Store) ready(ctx context.Context, op, key string) error {
	if s == nil || s.kv == nil {
		return errZeroStore
	}
	if ctx == nil {
		return errNilContext
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcd: %s %q not sent: %w", op, key, err)
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
	switch {
	case cfg.Client == nil:
		errs = append(errs, fmt.Errorf("%w: etcd.StoreConfig.Client is nil", fence.ErrInvalidConfig))
	case cfg.Client.KV == nil:
		errs = append(errs, fmt.Errorf("%w: etcd.StoreConfig.Client has no KV client (not built with clientv3.New)", fence.ErrInvalidConfig))
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
	if err := s.ready(ctx, "load", key); err != nil {
		return nil, 0, err
	}
	resp, err := s.kv.Get(ctx, s.prefix+key)
	if err != nil {
		return nil, 0, s.failed(ctx, "load", key, err)
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
	if err := s.ready(ctx, fence.OpCompareAndSwap.String(), key); err != nil {
		return err
	}
	return s.ifToken(ctx, fence.OpCompareAndSwap, key, expect, clientv3.OpPut(s.prefix+key, record(next, value)), next)
}

// ifToken runs then on key in one transaction if and only if the key holds
// a record of token expect (zero: the key is absent), and otherwise reads
// the key for the refusal. written is the token the hook is told of on
// success.
func (s *Store) ifToken(ctx context.Context, op fence.Op, key string, expect fence.Token, then clientv3.Op, written fence.Token) error {
	k := s.prefix + key
	resp, err := tokenTxn(s.kv.Txn(ctx), k, expect, then).Commit()
	if err != nil {
		return s.failed(ctx, op.String(), key, err)
	}
	ok, rs, err := tokenTxnResult(resp, expect)
	if err != nil {
		return fmt.Errorf("etcd: %v %q: %w", op, key, err)
	}
	if ok {
		s.observe(op, key, written, expect, false)
		return nil
	}
	return s.refusal(op, key, expect, rs)
}

// WriteIfNewer stores value under key with token t if and only if t is newer
// than the key's token (zero: absent) when etcd applies the write, and the
// key is absent or holds a record. Each attempt is one transaction that
// writes if the key is still as last read, and otherwise reads it:
// Txn(If the key is absent, Then Put, Else Get) first, then, if the key
// holds a record of an older token, Txn(If the key's mod revision is the
// one read, Then Put, Else Get). So an absent key costs one request, a
// refusal one, and a write over an older record two; every request carries
// the value at most once, so it takes every value CompareAndSwap takes (up
// to fence.MaxValueBytes). A value that is not a record is reported as
// ErrCorrupt and left alone, whatever it is. If other writers change the
// key between each of its reads and the write that follows until it has
// made DefaultWriteAttempts transactions (the first of which reads the
// key: DefaultWriteAttempts−1 changes suffice if the key was present), it
// gives up with an error matching fence.ErrContended that gives both
// counts, having written nothing. See fence.WriteIfNewer.
func (s *Store) WriteIfNewer(ctx context.Context, key string, value []byte, t fence.Token) error {
	if err := fence.ValidateWriteIfNewer(key, value, t); err != nil {
		return err
	}
	if err := s.ready(ctx, fence.OpWriteIfNewer.String(), key); err != nil {
		return err
	}
	k := s.prefix + key
	// The token of every record older than t sorts below digits(t), but
	// so do countless values that are not records ("", "7", the digits of
	// an older token followed by anything but the colon), and etcd can
	// compare a value only with constants, so "holds a record older than
	// t" cannot be one comparison: the write is conditioned on the exact
	// state that was read and judged instead.
	put := clientv3.OpPut(k, record(t, value))
	cond := absent(k)
	var prev fence.Token
	overtaken := 0 // conditional writes refused because the key changed after it was read
	for attempt := 1; ; attempt++ {
		resp, err := s.kv.Txn(ctx).If(cond).Then(put).Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			return s.failed(ctx, fence.OpWriteIfNewer.String(), key, err)
		}
		if resp == nil {
			return fmt.Errorf("etcd: %v %q: %w", fence.OpWriteIfNewer, key, errMalformed)
		}
		if resp.Succeeded {
			s.observe(fence.OpWriteIfNewer, key, t, prev, false)
			return nil
		}
		if len(resp.Responses) != 1 || resp.Responses[0].GetResponseRange() == nil {
			return fmt.Errorf("etcd: %v %q: %w", fence.OpWriteIfNewer, key, errMalformed)
		}
		if attempt > 1 {
			overtaken++ // the first found the key present, unread yet
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			cond, prev = absent(k), 0 // deleted since it was read
		} else {
			if _, prev, err = s.decodeRange(key, kvs); err != nil {
				return err
			}
			if prev >= t {
				s.observe(fence.OpWriteIfNewer, key, t, prev, true)
				return &fence.StaleError{Op: fence.OpWriteIfNewer, Key: key, Have: prev, Want: t}
			}
			cond = clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision)
		}
		if attempt >= DefaultWriteAttempts {
			return fmt.Errorf("%w: write-if-newer of %q with token %d gave up after %d transactions, the key changed by other writers %d times between its read and write (token now %d)",
				fence.ErrContended, key, uint64(t), attempt, overtaken, uint64(prev))
		}
	}
}

// DefaultWriteAttempts bounds the transactions of one Store.WriteIfNewer
// when other writers keep changing the key between its read and its write.
const DefaultWriteAttempts = 16

// errMalformed reports a transaction response not shaped as the request
// asked, which cannot tell whether the write was applied.
var errMalformed = fmt.Errorf("%w: malformed transaction response", ErrUnknownOutcome)

// Delete removes key if and only if its token is expect when etcd applies
// the transaction. See fence.Store.
func (s *Store) Delete(ctx context.Context, key string, expect fence.Token) error {
	if err := fence.ValidateDelete(key, expect); err != nil {
		return err
	}
	if err := s.ready(ctx, fence.OpDelete.String(), key); err != nil {
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
	if err := s.ready(ctx, "list", prefix); err != nil {
		return nil, err
	}
	resp, err := s.kv.Get(ctx, s.prefix+prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, s.failed(ctx, "list", prefix, err)
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
		return fmt.Errorf("etcd: %v %q: %w", op, key, errMalformed)
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

func (s *Store) failed(ctx context.Context, op, key string, err error) error {
	return fmt.Errorf("etcd: %s %q: %w", op, key, unknownOutcome(ctx, err))
}

// unknownOutcome wraps the error of a request to etcd (see
// ErrUnknownOutcome).
func unknownOutcome(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	code := status.Code(err)
	if c, ok := err.(interface{ Code() codes.Code }); ok { // rpctypes.EtcdError
		code = c.Code()
	}
	desc := rpctypes.ErrorDesc(err)
	var ended error
	switch {
	case code == codes.DeadlineExceeded,
		strings.HasPrefix(desc, "etcdserver: request timed out"),
		strings.Contains(desc, context.DeadlineExceeded.Error()):
		ended = context.DeadlineExceeded
	case strings.HasPrefix(desc, "etcdserver: request canceled"),
		strings.Contains(desc, context.Canceled.Error()):
		ended = context.Canceled
	default:
		// A gRPC status Canceled, a lost connection...: say whether the
		// call's context had ended.
		ended = ctx.Err()
	}
	if ended == nil {
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return fmt.Errorf("%w: %w (%w)", ErrUnknownOutcome, ended, err)
}

func (s *Store) observe(op fence.Op, key string, t, cur fence.Token, fenced bool) {
	if s.onEvent != nil {
		s.onEvent(fence.Event{Op: op, Key: key, Token: t, Current: cur, FencedOff: fenced})
	}
}

// tokenTxn makes txn run then on key if and only if key holds a record of
// token t — for t zero, if the key is absent — and otherwise read the key.
//
// The records of token t are exactly the values that begin with digits(t)
// and the colon, and those are exactly the values v with
// digits(t)+":" ≤ v < digits(t)+";" (';' is the byte after ':'): any
// other value at or above digits(t)+":" differs from it first at a byte
// greater than digits(t)+":" has there, and so sorts at or above
// digits(t)+";". etcd compares values
// as bytes, but has no "≥" and only ANDs the comparisons of one
// transaction, so the lower bound is tested as the opposite of "<", in an
// outer transaction whose Else branch is the inner one:
//
//	Txn(If value < digits(t)+":" Then Get
//	    Else Txn(If value < digits(t)+";" Then then Else Get))
//
// A comparison of a value on an absent key is false, so an absent key
// reaches the inner Else branch. tokenTxnResult decodes the response.
func tokenTxn(txn clientv3.Txn, key string, t fence.Token, then clientv3.Op) clientv3.Txn {
	get := clientv3.OpGet(key)
	if t == 0 {
		return txn.If(absent(key)).Then(then).Else(get)
	}
	lo, hi := digits(t)+":", digits(t)+";"
	return txn.If(clientv3.Compare(clientv3.Value(key), "<", lo)).
		Then(get).
		Else(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "<", hi)},
			[]clientv3.Op{then},
			[]clientv3.Op{get},
		))
}

// tokenTxnResult reports whether the tokenTxn of token t that got resp
// ran its then operation, and returns the responses of the branch that
// ran: then's, or the read of the key.
func tokenTxnResult(resp *clientv3.TxnResponse, t fence.Token) (bool, []*etcdserverpb.ResponseOp, error) {
	if resp == nil {
		return false, nil, errMalformed
	}
	if t == 0 || resp.Succeeded {
		// The single transaction of token zero, or the outer one found
		// the value below the range: refused.
		return t == 0 && resp.Succeeded, resp.Responses, nil
	}
	if len(resp.Responses) != 1 || resp.Responses[0].GetResponseTxn() == nil {
		return false, nil, errMalformed
	}
	inner := resp.Responses[0].GetResponseTxn()
	return inner.Succeeded, inner.Responses, nil
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
// No write has token zero, so no record has: 20 zeros and a colon is not
// a record (Load would have to return a value with token zero, which means
// absent).
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
	return fence.Token(n), n != 0
}
