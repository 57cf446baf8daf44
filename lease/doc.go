// Package lease gives holders exclusive, fenced, time-bounded rights to
// resources, keeps them alive from the holder's side, and re-establishes a
// large backlog of them without congestive collapse.
//
// Grant a lease from a table and keep it with a Keeper, which renews it in
// the background and gives it up before it could have lapsed:
//
//	table, _ := lease.NewMemory(lease.MemoryConfig{}) // contrib/etcd's LeaseTable across processes
//	ctx, cancel := context.WithCancel(context.Background())
//	defer cancel()
//	l, err := table.Grant(ctx, "droplet-7", "dwfm-1", 30*time.Second)
//	if err != nil {
//		panic(err)
//	}
//	k, err := lease.Keep(ctx, l, lease.KeeperConfig{
//		Store:         table,
//		RenewFraction: 1.0 / 3,         // renew after 10s
//		DriftMargin:   3 * time.Second, // give up at 27s without a renewal
//		ReleaseOnStop: true,
//	})
//	if err != nil {
//		panic(err)
//	}
//	defer k.Stop()
//	if k.Held() {
//		fmt.Println("acting on droplet-7 with epoch", k.Lease().Epoch)
//	}
//
// # Primitives
//
//   - A lease table (Store; Memory in memory, contrib/etcd on etcd): grant,
//     renew, release and expire, at most one unexpired lease per resource,
//     and every grant with a new epoch — a fence.Token strictly greater than
//     every earlier epoch of the resource — so the resource can fence off a
//     holder whose lease lapsed while it was paused (fence.Guard). Renewal
//     keeps the epoch. A table may forget resources whose leases ended, so
//     that churning names do not fill it, and still never repeats an epoch
//     (Memory draws them from one table-wide counter). Memory's pure core (GrantAt, RenewAt, ReleaseAt,
//     HolderAt, ExpireAt) takes the time as an argument.
//   - A Keeper, on the holder's side: it renews early (RenewFraction of the
//     TTL), retries failed renewals with backoff, and gives the lease up at
//     Expires minus a clock-drift margin on its own clock — never later,
//     even if the Store hangs — reporting the loss through a channel and a
//     callback. It stops with its context and leaves no goroutine behind
//     but a Store call that ignores its context.
//   - A Recovery scheduler for a backlog of leases to (re-)establish and
//     keep: bounded in-flight work, renewals before new establishments (a
//     shed.Scheduler with renewals Critical), no attempt started that cannot
//     finish before its deadline given the measured cost (a moving average
//     per kind of attempt), intake throttled by the size of the queue,
//     failed establishments and renewals backed off with jitter, a lapsed
//     lease waited out rather than counted against its key, and
//     Progress (established, pending, failed, rate) for the operator, and
//     Remove for a key no longer wanted. It is
//     a pure state machine: a simulation and a real service drive the same
//     code; Recovery.Run drives it on the real clock.
//
// # History
//
// In October 2025 EC2's DropletWorkflow Manager (DWFM) held a lease on
// every physical server ("droplet"). While DynamoDB was down the leases
// lapsed; when it came back, DWFM re-established them all at once, each
// attempt timed out in the queue and was queued again, and DWFM fell into
// congestive collapse until engineers throttled work and restarted hosts.
// Recovery is the scheduler that does not collapse; the epochs fence off a
// holder whose lease lapsed while it was paused.
//
// # Guarantees
//
// At every instant at most one lease per resource is unexpired, as the
// Store judges time; the check and the grant are one atomic step. Epochs of
// a resource strictly increase across grants, including across expiries,
// releases, the table forgetting the resource and, on etcd, restarts of
// etcd.
//
// A holder's view of its lease is conservative: a Store returns a lease
// whose Expires is measured on the holder's clock from before the request
// was sent, so it is no later than the Store's own expiry. The holder's
// clock may still run slow relative to the Store's; DriftMargin bounds how
// far behind it may fall over one term. A Keeper reports the lease held
// only strictly before Expires−DriftMargin, so, as long as the real drift
// stays within the margin, it never reports held at an instant at which the
// table could have granted the resource to another holder. The package's
// rapid properties check both promises.
//
// # Errors
//
// A grant refused because another holder's lease is unexpired is a
// *HeldError (errors.Is ErrHeld) naming the holder and its epoch; a renewal
// or release of a lease that expired, was released or superseded is a
// *LostError (errors.Is ErrLost) with the reason and the current epoch, and
// so is a Keeper's report of a loss. Bad input — an empty or oversized
// resource or holder, a TTL that is not in (0, MaxTTL], a lease with epoch
// zero, a nil context or function — matches ErrInvalidArgument; bad
// configuration, including a drift margin of the TTL or more, matches
// ErrInvalidConfig, with every bad field reported at once, and so does a
// call on a Keeper or Recovery that was not made by its constructor (its
// other methods do nothing on such a value: a zero Keeper holds nothing, a
// zero Recovery hands out nothing; so do nil ones, and a nil *Memory
// refuses every call with ErrInvalidArgument). Nothing in this package
// panics on bad input.
//
// # Observability
//
// Memory and Keeper take an optional OnEvent hook; Counters is a ready-made
// one. Recovery.Progress reports the backlog's state and the rates.
//
// # Cost
//
// A Memory grant or renewal is one map lookup under one mutex and does not
// allocate, except to track a new resource or to return an error. A Keeper
// is one goroutine and one timer, and one short-lived goroutine per
// renewal call. Recovery costs O(log n) per attempt for n
// keys, and about 150 bytes per key (besides the key's own data), and does
// not allocate per attempt.
package lease
