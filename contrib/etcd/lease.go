package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultGrantAttempts bounds the transactions of one LeaseTable.Grant when
// other processes keep advancing the resource's epoch first.
const DefaultGrantAttempts = 16

// LeaseTableConfig configures a LeaseTable. Client is required.
type LeaseTableConfig struct {
	// Client is the etcd client the table uses. The table does not close
	// it. Required.
	Client *clientv3.Client
	// Prefix is prepended to every key the table writes in etcd, e.g.
	// "stormguard/lease/". At most fence.MaxKeyBytes long; may be empty.
	Prefix string
	// OnEvent, if not nil, is called after every grant, renewal and
	// release, taken or refused, on the caller's goroutine. It must not
	// block; lease.Counters.Observe is a ready-made hook.
	OnEvent func(lease.Event)
}

// LeaseTable is a lease.Store on etcd: the lease table for holders in many
// processes. Each term of a resource is an etcd lease, and the resource's
// holder record is attached to it, so etcd deletes the record when the
// lease expires or is revoked; each resource also has an epoch record,
// never attached to a lease, that keeps its newest epoch for good.
//
//   - Grant creates an etcd lease with the TTL (rounded up to whole
//     seconds, etcd's unit), then runs one transaction:
//     If(holder record absent, epoch record = e) Then(put holder record
//     with epoch e+1 attached to the lease, put epoch record e+1)
//     Else(read both). Absence of the holder record is the "no unexpired
//     lease" check, and etcd makes it atomically with the write; the epoch
//     comparison makes the new epoch strictly greater than every earlier
//     one, whoever granted it. A refusal revokes the unused etcd lease.
//   - Renew is an etcd keep-alive of the term's lease: it succeeds only
//     while the lease — and so the holder record — is alive, and keeps
//     the epoch.
//   - Release revokes the term's lease, which deletes the holder record.
//
// Times: the lease returned by Grant and Renew has Renewed set to the
// moment just before the request was sent, on the caller's clock, and
// Expires to Renewed plus the requested TTL. etcd starts the term when it
// receives the request, later, and for a TTL at least as long, so the
// caller's view never outlasts etcd's. etcd may extend terms (it does so
// for every lease when a leader is elected, after a restart, say), which
// only makes a holder give up earlier than needed, never later. Holders
// protect themselves against their own clock running slow with a drift
// margin (lease.Keeper).
//
// A LeaseTable holds no state but its configuration and is safe for
// concurrent use. Grant costs three requests (a read, the lease grant and
// the transaction), Renew and Release one each.
type LeaseTable struct {
	client  *clientv3.Client
	prefix  string
	onEvent func(lease.Event)
}

var _ lease.Store = (*LeaseTable)(nil)

var (
	errZeroLeaseTable  = fmt.Errorf("%w: etcd.LeaseTable not built with NewLeaseTable", lease.ErrInvalidConfig)
	errNilLeaseContext = fmt.Errorf("%w: nil context", lease.ErrInvalidArgument)
)

// ready reports a LeaseTable not built with NewLeaseTable, or a nil ctx.
func (t *LeaseTable) ready(ctx context.Context) error {
	if t.client == nil {
		return errZeroLeaseTable
	}
	if ctx == nil {
		return errNilLeaseContext
	}
	return nil
}

// NewLeaseTable returns a LeaseTable configured by cfg, or an error
// matching lease.ErrInvalidConfig that names every invalid field. It does
// no I/O.
func NewLeaseTable(cfg LeaseTableConfig) (*LeaseTable, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, fmt.Errorf("%w: etcd.LeaseTableConfig.Client is nil", lease.ErrInvalidConfig))
	}
	if err := fence.ValidatePrefix(cfg.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("%w: etcd.LeaseTableConfig.Prefix: %w", lease.ErrInvalidConfig, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &LeaseTable{client: cfg.Client, prefix: cfg.Prefix, onEvent: cfg.OnEvent}, nil
}

func (t *LeaseTable) holderKey(resource string) string { return t.prefix + "holder/" + resource }
func (t *LeaseTable) epochKey(resource string) string  { return t.prefix + "epoch/" + resource }

// Grant gives resource to holder for ttl with a new epoch, if no lease on
// it is alive in etcd. See lease.Store and LeaseTable.
func (t *LeaseTable) Grant(ctx context.Context, resource, holder string, ttl time.Duration) (lease.Lease, error) {
	if err := lease.ValidateGrant(resource, holder, ttl); err != nil {
		return lease.Lease{}, err
	}
	if err := t.ready(ctx); err != nil {
		return lease.Lease{}, err
	}
	hk, ek := t.holderKey(resource), t.epochKey(resource)
	// Read first: a held resource costs one request to refuse, and no
	// etcd lease is created for nothing.
	resp, err := t.client.Txn(ctx).Then(clientv3.OpGet(hk), clientv3.OpGet(ek)).Commit()
	if err != nil {
		return lease.Lease{}, t.failed("grant", resource, err)
	}
	cur, epoch, err := t.decode(resource, resp.Responses)
	if err != nil {
		return lease.Lease{}, err
	}
	if cur != nil {
		return lease.Lease{}, t.held(resource, holder, cur)
	}
	sent := time.Now()
	seconds := int64((ttl + time.Second - 1) / time.Second)
	g, err := t.client.Grant(ctx, seconds)
	if err != nil {
		return lease.Lease{}, t.failed("grant", resource, err)
	}
	id := g.ID
	for attempt := 1; ; attempt++ {
		if epoch == fence.MaxToken {
			t.revoke(ctx, id)
			return lease.Lease{}, fmt.Errorf("%w: resource %q has used the last epoch %d", fence.ErrExhausted, resource, uint64(fence.MaxToken))
		}
		next := epoch + 1
		rec := record(next, []byte(holder))
		resp, err := t.client.Txn(ctx).
			If(append([]clientv3.Cmp{absent(hk)}, tokenIs(ek, epoch)...)...).
			Then(clientv3.OpPut(hk, rec, clientv3.WithLease(id)), clientv3.OpPut(ek, rec)).
			Else(clientv3.OpGet(hk), clientv3.OpGet(ek)).
			Commit()
		if err != nil {
			// The outcome is unknown. Revoking the lease frees the
			// resource if the grant did land, since nobody will use it.
			t.revoke(ctx, id)
			return lease.Lease{}, t.failed("grant", resource, err)
		}
		if resp.Succeeded {
			l := lease.Lease{Resource: resource, Holder: holder, Epoch: next, TTL: ttl, Renewed: sent, Expires: sent.Add(ttl), ID: int64(id)}
			t.observe(lease.OpGrant, resource, holder, next, false)
			return l, nil
		}
		cur, epoch, err = t.decode(resource, resp.Responses)
		if err != nil {
			t.revoke(ctx, id)
			return lease.Lease{}, err
		}
		if cur != nil {
			t.revoke(ctx, id)
			return lease.Lease{}, t.held(resource, holder, cur)
		}
		if attempt >= DefaultGrantAttempts {
			t.revoke(ctx, id)
			return lease.Lease{}, fmt.Errorf("%w: grant of %q overtaken %d times (epoch now %d)", fence.ErrContended, resource, attempt, uint64(epoch))
		}
	}
}

// Renew keeps l's etcd lease alive for another TTL, keeping the epoch. A
// lease that etcd no longer has is refused with a *lease.LostError.
func (t *LeaseTable) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if err := t.validate(ctx, l); err != nil {
		return lease.Lease{}, err
	}
	sent := time.Now()
	_, err := t.client.KeepAliveOnce(ctx, clientv3.LeaseID(l.ID))
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.observe(lease.OpRenew, l.Resource, l.Holder, l.Epoch, true)
			return lease.Lease{}, &lease.LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch, Reason: "expired or released (etcd lease not found)"}
		}
		return lease.Lease{}, t.failed("renew", l.Resource, err)
	}
	l.Renewed, l.Expires = sent, sent.Add(l.TTL)
	t.observe(lease.OpRenew, l.Resource, l.Holder, l.Epoch, false)
	return l, nil
}

// Release revokes l's etcd lease, which deletes its holder record, so the
// resource may be granted again at once, with a newer epoch. A lease that
// etcd no longer has is refused with a *lease.LostError.
func (t *LeaseTable) Release(ctx context.Context, l lease.Lease) error {
	if err := t.validate(ctx, l); err != nil {
		return err
	}
	if _, err := t.client.Revoke(ctx, clientv3.LeaseID(l.ID)); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.observe(lease.OpRelease, l.Resource, l.Holder, l.Epoch, true)
			return &lease.LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch, Reason: "expired or released (etcd lease not found)"}
		}
		return t.failed("release", l.Resource, err)
	}
	t.observe(lease.OpRelease, l.Resource, l.Holder, l.Epoch, false)
	return nil
}

// Get returns the resource's live lease, if any: its holder, epoch and etcd
// lease ID, and the term as etcd reports it. etcd counts a lease's remaining
// time in whole seconds, rounded down, so Expires is the moment the request
// was sent plus that remainder: no later than the moment etcd may let the
// lease lapse, as for a holder's own Lease. TTL is the term's length as
// granted (whole seconds) and Renewed is Expires−TTL.
//
// It reads the holder and then asks etcd about its lease, two round trips;
// if the lease ended in between, it reads again, so the answer is the
// resource's state at one instant.
func (t *LeaseTable) Get(ctx context.Context, resource string) (lease.Lease, bool, error) {
	if err := fence.ValidateKey(resource); err != nil {
		return lease.Lease{}, false, fmt.Errorf("%w: %w", lease.ErrInvalidArgument, err)
	}
	if err := t.ready(ctx); err != nil {
		return lease.Lease{}, false, err
	}
	for range getAttempts {
		sent := time.Now()
		resp, err := t.client.Get(ctx, t.holderKey(resource))
		if err != nil {
			return lease.Lease{}, false, t.failed("get", resource, err)
		}
		if len(resp.Kvs) == 0 {
			return lease.Lease{}, false, nil
		}
		kv := resp.Kvs[0]
		epoch, ok := parseToken(kv.Value)
		if !ok {
			return lease.Lease{}, false, t.corrupt(string(kv.Key), kv.Value)
		}
		l := lease.Lease{Resource: resource, Holder: string(kv.Value[tokenDigits+1:]), Epoch: epoch, ID: kv.Lease}
		ttl, err := t.client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return lease.Lease{}, false, t.failed("get", resource, err)
		}
		if err != nil || ttl.TTL < 0 {
			continue // the lease ended after the read: read the holder again
		}
		l.TTL = time.Duration(ttl.GrantedTTL) * time.Second
		l.Expires = sent.Add(time.Duration(ttl.TTL) * time.Second)
		l.Renewed = l.Expires.Add(-l.TTL)
		return l, true, nil
	}
	return lease.Lease{}, false, t.failed("get", resource, fmt.Errorf("the holder changed %d times while being read", getAttempts))
}

// getAttempts bounds Get's reads when leases keep ending under it.
const getAttempts = 4

// Epoch returns the newest epoch ever granted on resource (zero if none).
func (t *LeaseTable) Epoch(ctx context.Context, resource string) (fence.Token, error) {
	if err := fence.ValidateKey(resource); err != nil {
		return 0, fmt.Errorf("%w: %w", lease.ErrInvalidArgument, err)
	}
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	resp, err := t.client.Get(ctx, t.epochKey(resource))
	if err != nil {
		return 0, t.failed("epoch", resource, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	e, ok := parseToken(resp.Kvs[0].Value)
	if !ok {
		return 0, t.corrupt(t.epochKey(resource), resp.Kvs[0].Value)
	}
	return e, nil
}

func (t *LeaseTable) validate(ctx context.Context, l lease.Lease) error {
	var errID error
	if l.ID == 0 {
		errID = fmt.Errorf("%w: lease of %q has no etcd lease ID (not granted by a LeaseTable)", lease.ErrInvalidArgument, l.Resource)
	}
	if err := errors.Join(lease.ValidateLease(l), errID); err != nil {
		return err
	}
	if err := t.ready(ctx); err != nil {
		return err
	}
	return nil
}

// decode reads the holder record (nil if absent) and the epoch from the
// two reads of a transaction response.
func (t *LeaseTable) decode(resource string, rs []*etcdserverpb.ResponseOp) (*heldRecord, fence.Token, error) {
	if len(rs) != 2 || rs[0].GetResponseRange() == nil || rs[1].GetResponseRange() == nil {
		return nil, 0, fmt.Errorf("etcd: lease grant %q: malformed transaction response", resource)
	}
	var cur *heldRecord
	if kvs := rs[0].GetResponseRange().Kvs; len(kvs) > 0 {
		e, ok := parseToken(kvs[0].Value)
		if !ok {
			return nil, 0, t.corrupt(string(kvs[0].Key), kvs[0].Value)
		}
		cur = &heldRecord{holder: string(kvs[0].Value[tokenDigits+1:]), epoch: e}
	}
	var epoch fence.Token
	if kvs := rs[1].GetResponseRange().Kvs; len(kvs) > 0 {
		e, ok := parseToken(kvs[0].Value)
		if !ok {
			return nil, 0, t.corrupt(string(kvs[0].Key), kvs[0].Value)
		}
		epoch = e
	}
	return cur, epoch, nil
}

type heldRecord struct {
	holder string
	epoch  fence.Token
}

func (t *LeaseTable) held(resource, want string, cur *heldRecord) error {
	t.observe(lease.OpGrant, resource, want, cur.epoch, true)
	return &lease.HeldError{Resource: resource, Holder: cur.holder, Want: want, Epoch: cur.epoch}
}

// revoke gives back an etcd lease that no grant uses, best effort: if it
// fails, the lease expires by itself after its TTL.
func (t *LeaseTable) revoke(ctx context.Context, id clientv3.LeaseID) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _ = t.client.Revoke(rctx, id)
}

func (t *LeaseTable) corrupt(key string, raw []byte) error {
	shown := raw
	if len(shown) > 32 {
		shown = shown[:32]
	}
	return fmt.Errorf("%w: key %q holds %d bytes starting %q, not a lease record", ErrCorrupt, key, len(raw), shown)
}

func (t *LeaseTable) failed(op, resource string, err error) error {
	return fmt.Errorf("etcd: lease %s %q: %w", op, resource, err)
}

func (t *LeaseTable) observe(op lease.Op, resource, holder string, epoch fence.Token, refused bool) {
	if t.onEvent != nil {
		t.onEvent(lease.Event{Op: op, Resource: resource, Holder: holder, Epoch: epoch, Refused: refused})
	}
}
