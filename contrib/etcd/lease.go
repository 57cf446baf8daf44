package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// LeaseTableConfig configures a LeaseTable. Client is required.
type LeaseTableConfig struct {
	// Client is the etcd client the table uses. The table does not close
	// it. Required.
	Client *clientv3.Client
	// Prefix is prepended to every key the table writes in etcd, e.g.
	// "stormguard/lease/". It is raw bytes, as StoreConfig.Prefix is. At
	// most fence.MaxKeyBytes long; may be empty.
	Prefix string
	// OnEvent, if not nil, is called after every grant, renewal and
	// release, taken or refused, on the caller's goroutine. It must not
	// block; lease.Counters.Observe is a ready-made hook.
	OnEvent func(lease.Event)
}

// LeaseTable is a lease.Store on etcd: the lease table for holders in many
// processes. Each term of a resource is an etcd lease, and the resource's
// holder record (its key Prefix+"holder/"+resource, its value the holder's
// name) is attached to it, so etcd deletes the record when the lease
// expires or is revoked. That record is all the table keeps of a resource:
// a table whose resource names churn holds only the records of leases that
// have not ended.
//
//   - Grant creates an etcd lease with the TTL (rounded up to whole
//     seconds, etcd's unit), then runs one transaction:
//     If(holder record absent) Then(put holder record attached to the
//     lease) Else(read it). Absence of the holder record is the "no
//     unexpired lease" check, and etcd makes it atomically with the write.
//     The epoch is the etcd revision of that transaction (the holder
//     record's create revision): etcd's revision only ever increases, over
//     every key, across restarts and through compaction and
//     defragmentation, so each grant's epoch is greater than every earlier
//     epoch of every resource, even one whose records etcd has long
//     deleted. Epochs are therefore not consecutive. Restoring etcd from a
//     snapshot or an old copy of its data directory takes the revision
//     back to the copy's, and epochs granted since would be granted again:
//     restore with every holder stopped for the longest TTL, and with
//     etcdutl snapshot restore --bump-revision by more than the revisions
//     the copy misses. A refusal revokes the unused etcd lease.
//   - Renew is an etcd keep-alive of the term's lease: it succeeds only
//     while the lease — and so the holder record — is alive and its
//     Expires has not passed, and keeps the epoch.
//   - Release revokes the term's lease, which deletes the holder record.
//
// etcd revokes expired leases at a limited rate (1000 a second), so when
// many expire together a holder record can outlive its lease by seconds.
// Until etcd deletes it, Grant refuses the resource with a
// *lease.HeldError and Get reports the lease with Expires in the past;
// Renew and Release refuse a lease whose Expires has passed, and revoke it
// themselves.
//
// All processes sharing a Prefix must use this scheme: earlier versions
// of this package kept a per-resource epoch record and counted epochs up
// from 1, which this version neither reads nor writes.
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
// Errors: a refusal is a *lease.HeldError or *lease.LostError, bad input
// matches lease.ErrInvalidArgument, a holder key that is not a record of
// the table matches ErrCorrupt, every failed request matches
// ErrUnknownOutcome (and context.DeadlineExceeded if it timed out), and a
// call whose context had ended before it sent anything fails with the
// context's error alone.
//
// Renew and Release act on the etcd lease whose ID l carries, and check
// l's resource, holder and epoch against nothing: that ID stands for the
// term. Pass them only leases the table returned: a Lease edited to carry
// another term's ID renews or ends that term, whoever holds it (an edited
// TTL or Expires can only shorten a term, see Renew).
//
// A LeaseTable holds no state but its configuration and is safe for
// concurrent use. Build one with NewLeaseTable; the methods of a zero or
// nil LeaseTable return an error matching lease.ErrInvalidConfig. Grant costs three requests (a read, the lease grant and
// the transaction), Renew and Release one each, Get two.
type LeaseTable struct {
	client  *clientv3.Client
	prefix  string
	onEvent func(lease.Event)
}

var _ lease.Store = (*LeaseTable)(nil)

var (
	errZeroLeaseTable  = fmt.Errorf("%w: etcd.LeaseTable nil or not built with NewLeaseTable", lease.ErrInvalidConfig)
	errNilLeaseContext = fmt.Errorf("%w: nil context", lease.ErrInvalidArgument)
)

// ready reports a LeaseTable not built with NewLeaseTable, a nil ctx, or
// a ctx that has ended: a call refused so sends nothing, so its error is
// ctx's alone, not ErrUnknownOutcome.
func (t *LeaseTable) ready(ctx context.Context, op, resource string) error {
	if t == nil || t.client == nil {
		return errZeroLeaseTable
	}
	if ctx == nil {
		return errNilLeaseContext
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcd: lease %s %q not sent: %w", op, resource, err)
	}
	return nil
}

// NewLeaseTable returns a LeaseTable configured by cfg, or an error
// matching lease.ErrInvalidConfig that names every invalid field. It does
// no I/O.
func NewLeaseTable(cfg LeaseTableConfig) (*LeaseTable, error) {
	var errs []error
	switch {
	case cfg.Client == nil:
		errs = append(errs, fmt.Errorf("%w: etcd.LeaseTableConfig.Client is nil", lease.ErrInvalidConfig))
	case cfg.Client.KV == nil || cfg.Client.Lease == nil:
		errs = append(errs, fmt.Errorf("%w: etcd.LeaseTableConfig.Client has no KV or Lease client (not built with clientv3.New)", lease.ErrInvalidConfig))
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

// Grant gives resource to holder for ttl with a new epoch, if no holder
// record of it is in etcd. See lease.Store and LeaseTable. Its error
// matches ErrUnknownOutcome if any of its three requests failed, also the
// read and the etcd lease grant that precede the transaction (the
// resource was then surely not granted, but the error does not say so):
// treat it as a grant that may have taken effect.
func (t *LeaseTable) Grant(ctx context.Context, resource, holder string, ttl time.Duration) (lease.Lease, error) {
	if err := lease.ValidateGrant(resource, holder, ttl); err != nil {
		return lease.Lease{}, err
	}
	if err := t.ready(ctx, "grant", resource); err != nil {
		return lease.Lease{}, err
	}
	hk := t.holderKey(resource)
	// Read first: a held resource costs one request to refuse, and no
	// etcd lease is created for nothing.
	resp, err := t.client.Get(ctx, hk)
	if err != nil {
		return lease.Lease{}, t.failed(ctx, "grant", resource, err)
	}
	if len(resp.Kvs) > 0 {
		return lease.Lease{}, t.held(resource, holder, resp.Kvs[0])
	}
	sent := time.Now()
	seconds := int64((ttl + time.Second - 1) / time.Second)
	g, err := t.client.Grant(ctx, seconds)
	if err != nil {
		return lease.Lease{}, t.failed(ctx, "grant", resource, err)
	}
	id := g.ID
	tx, err := t.client.Txn(ctx).
		If(absent(hk)).
		Then(clientv3.OpPut(hk, holder, clientv3.WithLease(id))).
		Else(clientv3.OpGet(hk)).
		Commit()
	if err != nil {
		// The outcome is unknown. Revoking the lease frees the resource
		// if the grant did land, since nobody will use it.
		t.revoke(ctx, id)
		return lease.Lease{}, t.failed(ctx, "grant", resource, err)
	}
	if tx == nil {
		t.revoke(ctx, id)
		return lease.Lease{}, fmt.Errorf("etcd: lease grant %q: %w", resource, errMalformed)
	}
	if !tx.Succeeded {
		t.revoke(ctx, id)
		rs := tx.Responses
		if len(rs) != 1 || rs[0].GetResponseRange() == nil || len(rs[0].GetResponseRange().Kvs) != 1 {
			return lease.Lease{}, fmt.Errorf("etcd: lease grant %q: %w", resource, errMalformed)
		}
		return lease.Lease{}, t.held(resource, holder, rs[0].GetResponseRange().Kvs[0])
	}
	if tx.Header == nil || tx.Header.Revision <= 0 {
		t.revoke(ctx, id) // granted, but with no epoch to hand out
		return lease.Lease{}, fmt.Errorf("etcd: lease grant %q: %w (no revision)", resource, errMalformed)
	}
	epoch := fence.Token(tx.Header.Revision)
	l := lease.Lease{Resource: resource, Holder: holder, Epoch: epoch, TTL: ttl, Renewed: sent, Expires: sent.Add(ttl), ID: int64(id)}
	t.observe(lease.OpGrant, resource, holder, epoch, false)
	return l, nil
}

// Renew keeps l's etcd lease alive for another TTL, keeping the epoch
// (the returned lease's TTL is l's, or etcd's term if that is shorter, as
// for a Lease whose TTL was raised after Grant). A
// lease that etcd no longer has is refused with a *lease.LostError, and so
// is one whose Expires has passed on the caller's clock, without asking
// etcd to keep it: etcd's term may still run — it is rounded up to whole
// seconds, and etcd restarts every term when it restarts — but the holder
// has had to stop acting on it, so Renew does not revive it; it revokes
// the etcd lease instead (as Release would; best effort, for at most a
// second within ctx, so the refusal comes even while etcd is down),
// which gives the resource back. etcd answers the renewal of a lease that
// has expired but that it has not yet revoked (see LeaseTable) only once
// it has, so if the holder's clock is behind etcd's, Renew waits for that
// until ctx ends, and then fails with ErrUnknownOutcome.
func (t *LeaseTable) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if err := t.validate(ctx, "renew", l); err != nil {
		return lease.Lease{}, err
	}
	sent := time.Now()
	if err := t.ended(ctx, lease.OpRenew, l, sent); err != nil {
		return lease.Lease{}, err
	}
	ka, err := t.client.KeepAliveOnce(ctx, clientv3.LeaseID(l.ID))
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.observe(lease.OpRenew, l.Resource, l.Holder, l.Epoch, true)
			return lease.Lease{}, &lease.LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch, Reason: "expired or released (etcd lease not found)"}
		}
		return lease.Lease{}, t.failed(ctx, "renew", l.Resource, err)
	}
	// etcd restarted the term for the TTL it granted, in whole seconds:
	// l.TTL rounded up, unless l was altered since.
	l.TTL = min(l.TTL, time.Duration(ka.TTL)*time.Second)
	l.Renewed, l.Expires = sent, sent.Add(l.TTL)
	t.observe(lease.OpRenew, l.Resource, l.Holder, l.Epoch, false)
	return l, nil
}

// Release revokes l's etcd lease, which deletes its holder record, so the
// resource may be granted again at once, with a newer epoch. A lease that
// etcd no longer has is refused with a *lease.LostError, and so is one
// whose Expires has passed on the caller's clock, though Release revokes
// its etcd lease all the same (best effort, for at most a second within
// ctx). The etcd client
// retries a revocation whose answer was lost, so a LostError can also
// mean that this very Release revoked the lease: either way, it is over.
func (t *LeaseTable) Release(ctx context.Context, l lease.Lease) error {
	if err := t.validate(ctx, "release", l); err != nil {
		return err
	}
	if err := t.ended(ctx, lease.OpRelease, l, time.Now()); err != nil {
		return err
	}
	if _, err := t.client.Revoke(ctx, clientv3.LeaseID(l.ID)); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.observe(lease.OpRelease, l.Resource, l.Holder, l.Epoch, true)
			return &lease.LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch, Reason: "expired or released (etcd lease not found)"}
		}
		return t.failed(ctx, "release", l.Resource, err)
	}
	t.observe(lease.OpRelease, l.Resource, l.Holder, l.Epoch, false)
	return nil
}

// ended refuses, for op, a lease whose Expires is not after now, and
// revokes its etcd lease, best effort for at most revokeTimeout within
// ctx: the holder may no longer act on it, so nobody will. The refusal
// needs no answer from etcd, and does not wait for one longer than that.
func (t *LeaseTable) ended(ctx context.Context, op lease.Op, l lease.Lease, now time.Time) error {
	if now.Before(l.Expires) {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	_, _ = t.client.Revoke(rctx, clientv3.LeaseID(l.ID))
	cancel()
	t.observe(op, l.Resource, l.Holder, l.Epoch, true)
	return &lease.LostError{Resource: l.Resource, Holder: l.Holder, Epoch: l.Epoch,
		Reason: fmt.Sprintf("expired at %s, %v before the %v, on the caller's clock", l.Expires.Format(time.RFC3339Nano), now.Sub(l.Expires), op)}
}

// Get returns the resource's lease, if etcd has a holder record of it: its
// holder, epoch and etcd lease ID, and the term as etcd reports it. etcd
// counts a lease's remaining time in whole seconds, so Expires is the
// moment the request was sent plus that remainder rounded down, and at
// most the granted TTL (etcd reports more while it extends terms after a
// leader election, and "forever" for a lease restored after a restart that
// it has not started timing yet): no later than the moment etcd may let
// the lease lapse, as for a holder's own Lease. TTL is the term's length as granted (whole seconds) and Renewed
// is Expires−TTL.
//
// It reads the holder record and then asks etcd about its lease, two
// round trips. A lease that has expired but that etcd has not yet revoked
// (see LeaseTable) is reported held, with Expires in the past: Grant
// refuses the resource until etcd deletes the record. A lease that etcd
// no longer has when asked was revoked after the read, which deleted the
// record, so the resource is reported not held.
func (t *LeaseTable) Get(ctx context.Context, resource string) (lease.Lease, bool, error) {
	if err := fence.ValidateKey(resource); err != nil {
		return lease.Lease{}, false, fmt.Errorf("%w: %w", lease.ErrInvalidArgument, err)
	}
	if err := t.ready(ctx, "get", resource); err != nil {
		return lease.Lease{}, false, err
	}
	sent := time.Now()
	resp, err := t.client.Get(ctx, t.holderKey(resource))
	if err != nil {
		return lease.Lease{}, false, t.failed(ctx, "get", resource, err)
	}
	if len(resp.Kvs) == 0 {
		return lease.Lease{}, false, nil
	}
	cur, err := t.decode(resp.Kvs[0])
	if err != nil {
		return lease.Lease{}, false, err
	}
	ttl, err := t.client.TimeToLive(ctx, clientv3.LeaseID(cur.id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || err == nil && ttl.TTL == -1 && ttl.GrantedTTL == 0 {
		// etcd answers TTL −1 for a lease it does not have.
		return lease.Lease{}, false, nil
	}
	if err != nil {
		return lease.Lease{}, false, t.failed(ctx, "get", resource, err)
	}
	l := lease.Lease{Resource: resource, Holder: cur.holder, Epoch: cur.epoch, ID: cur.id}
	l.TTL = time.Duration(ttl.GrantedTTL) * time.Second
	l.Expires = expiresAt(sent, ttl.TTL, ttl.GrantedTTL)
	l.Renewed = l.Expires.Add(-l.TTL)
	return l, true, nil
}

// expiresAt is the end of a term of which etcd said, when asked at sent,
// that left of granted seconds remain.
//
// etcd's remainder is the remaining time truncated towards zero: for a
// remainder of −2.5s it says −2. Rounded down instead, Expires is never
// later than the lease's end, even after it. A remainder above the
// granted TTL is etcd's own extension of terms when a member becomes
// leader, or, for a lease it restored but has not started timing again,
// 2⁶³−1 ns ("forever"); either way the term ends no earlier than granted
// seconds from now once timed, so Expires is capped there.
func expiresAt(sent time.Time, left, granted int64) time.Time {
	if left <= 0 {
		left--
	}
	left = min(left, granted)
	return sent.Add(time.Duration(left) * time.Second)
}

// Epoch returns the epoch of resource's holder record — of its lease, or
// of one that has ended and that etcd has not deleted yet — or zero if
// etcd has none. It is not the newest epoch ever granted on the resource:
// the table keeps nothing of a resource once its holder record is gone.
// Every later grant carries a greater epoch all the same.
func (t *LeaseTable) Epoch(ctx context.Context, resource string) (fence.Token, error) {
	if err := fence.ValidateKey(resource); err != nil {
		return 0, fmt.Errorf("%w: %w", lease.ErrInvalidArgument, err)
	}
	if err := t.ready(ctx, "epoch", resource); err != nil {
		return 0, err
	}
	resp, err := t.client.Get(ctx, t.holderKey(resource))
	if err != nil {
		return 0, t.failed(ctx, "epoch", resource, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	cur, err := t.decode(resp.Kvs[0])
	if err != nil {
		return 0, err
	}
	return cur.epoch, nil
}

func (t *LeaseTable) validate(ctx context.Context, op string, l lease.Lease) error {
	var errID error
	if l.ID == 0 {
		errID = fmt.Errorf("%w: lease of %q has no etcd lease ID (not granted by a LeaseTable)", lease.ErrInvalidArgument, l.Resource)
	}
	if err := errors.Join(lease.ValidateLease(l), errID); err != nil {
		return err
	}
	if err := t.ready(ctx, op, l.Resource); err != nil {
		return err
	}
	return nil
}

// decode reads a holder record: a value (the holder) attached to an etcd
// lease, whose create revision is the epoch.
func (t *LeaseTable) decode(kv *mvccpb.KeyValue) (heldRecord, error) {
	if len(kv.Value) == 0 || kv.Lease == 0 || kv.CreateRevision <= 0 {
		return heldRecord{}, t.corrupt(kv)
	}
	return heldRecord{holder: string(kv.Value), epoch: fence.Token(kv.CreateRevision), id: kv.Lease}, nil
}

type heldRecord struct {
	holder string
	epoch  fence.Token
	id     int64
}

// held is the refusal of a grant by the holder record kv.
func (t *LeaseTable) held(resource, want string, kv *mvccpb.KeyValue) error {
	cur, err := t.decode(kv)
	if err != nil {
		return err
	}
	t.observe(lease.OpGrant, resource, want, cur.epoch, true)
	return &lease.HeldError{Resource: resource, Holder: cur.holder, Want: want, Epoch: cur.epoch}
}

// revoke gives back an etcd lease that no grant uses, best effort: if it
// fails, the lease expires by itself after its TTL.
func (t *LeaseTable) revoke(ctx context.Context, id clientv3.LeaseID) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	_, _ = t.client.Revoke(rctx, id)
}

// revokeTimeout bounds a best-effort revocation of an etcd lease.
const revokeTimeout = time.Second

func (t *LeaseTable) corrupt(kv *mvccpb.KeyValue) error {
	shown := kv.Value
	if len(shown) > 32 {
		shown = shown[:32]
	}
	return fmt.Errorf("%w: key %q holds %d bytes starting %q attached to etcd lease %d, not a holder record (a non-empty value attached to a lease)",
		ErrCorrupt, kv.Key, len(kv.Value), shown, kv.Lease)
}

func (t *LeaseTable) failed(ctx context.Context, op, resource string, err error) error {
	return fmt.Errorf("etcd: lease %s %q: %w", op, resource, unknownOutcome(ctx, err))
}

func (t *LeaseTable) observe(op lease.Op, resource, holder string, epoch fence.Token, refused bool) {
	if t.onEvent != nil {
		t.onEvent(lease.Event{Op: op, Resource: resource, Holder: holder, Epoch: epoch, Refused: refused})
	}
}
