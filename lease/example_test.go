package lease_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
)

// A lease table with explicit time: one holder at a time, and a new epoch
// for every grant, which the droplet uses to fence off the old holder.
func ExampleMemory() {
	table, _ := lease.NewMemory(lease.MemoryConfig{})
	droplet := fence.NewGuard(fence.GuardConfig{Name: "droplet-7"})
	start := time.Date(2025, 10, 20, 9, 25, 0, 0, time.UTC)

	a, _ := table.GrantAt(start, "droplet-7", "dwfm-1", 10*time.Second)
	fmt.Println("dwfm-1 epoch", a.Epoch, droplet.Admit(a.Epoch))

	_, err := table.GrantAt(start.Add(5*time.Second), "droplet-7", "dwfm-2", 10*time.Second)
	fmt.Println(err, errors.Is(err, lease.ErrHeld))

	// dwfm-1 stalls; its lease lapses and dwfm-2 takes over.
	b, _ := table.GrantAt(start.Add(11*time.Second), "droplet-7", "dwfm-2", 10*time.Second)
	fmt.Println("dwfm-2 epoch", b.Epoch, droplet.Admit(b.Epoch))

	// dwfm-1 wakes up: its renewal and its writes are refused.
	_, err = table.RenewAt(start.Add(12*time.Second), a)
	fmt.Println(err)
	fmt.Println(droplet.Admit(a.Epoch))
	// Output:
	// dwfm-1 epoch 1 <nil>
	// lease: "droplet-7" held by "dwfm-1" (epoch 1, 5s left); "dwfm-2" must wait true
	// dwfm-2 epoch 2 <nil>
	// lease: lost "droplet-7" epoch 1 held by "dwfm-1": superseded (current epoch 2)
	// fence: stale admit of "droplet-7": token 1 is older than the newest admitted token 2
}

// A Keeper renews a lease in the background and says when it is lost.
func ExampleKeep() {
	table, _ := lease.NewMemory(lease.MemoryConfig{}) // contrib/etcd's LeaseTable across processes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := table.Grant(ctx, "droplet-7", "dwfm-1", 30*time.Second)
	if err != nil {
		panic(err)
	}
	k, err := lease.Keep(ctx, l, lease.KeeperConfig{
		Store:         table,
		RenewFraction: 1.0 / 3,         // renew after 10s
		DriftMargin:   3 * time.Second, // give up at 27s without a renewal
		ReleaseOnStop: true,
	})
	if err != nil {
		panic(err)
	}
	defer k.Stop()
	if k.Held() {
		fmt.Println("acting on droplet-7 with epoch", k.Lease().Epoch)
	}
	select {
	case <-k.Lost():
		fmt.Println("lost:", k.Err())
	default:
		fmt.Println("still held")
	}
	// Output:
	// acting on droplet-7 with epoch 1
	// still held
}

// Recovery is driven by the caller: it hands out attempts, the caller runs
// them on its workers and reports the results. Here two workers establish
// five leases, each attempt taking 10ms of simulated time.
func ExampleRecovery() {
	start := time.Date(2025, 10, 20, 9, 25, 0, 0, time.UTC)
	r, err := lease.NewRecovery[string](lease.RecoveryConfig{
		Workers: 2, TTL: 10 * time.Second, AttemptTimeout: time.Second,
	})
	if err != nil {
		panic(err)
	}
	for _, d := range []string{"d1", "d2", "d3", "d4", "d5"} {
		_ = r.Add(start, d)
	}
	running := r.Start(start, nil)
	now := start
	for len(running) > 0 {
		now = now.Add(10 * time.Millisecond)
		var next []lease.Attempt[string]
		for _, a := range running {
			next = r.Finish(now, a, nil, next) // every attempt succeeds
		}
		running = next
	}
	p := r.Progress(now)
	fmt.Printf("established %d, pending %d, failed %d, attempts %d\n", p.Established, p.Pending, p.Failed, p.Attempts)
	// Output:
	// established 5, pending 0, failed 0, attempts 5
}
