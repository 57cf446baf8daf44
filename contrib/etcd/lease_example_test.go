package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd"
	"github.com/stormguard/stormguard/lease"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Each droplet manager, in its own process, asks etcd for a droplet's
// lease and keeps it with a lease.Keeper; the epoch fences off whichever
// manager held it before, and another manager asking meanwhile is told who
// holds it. endpoints are etcd's client URLs.
func ExampleLeaseTable() {
	resetEtcd()
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	table, err := etcd.NewLeaseTable(etcd.LeaseTableConfig{Client: client, Prefix: "stormguard/lease/"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	l, err := table.Grant(ctx, "droplet/i-0abc", "dwfm-use1-az1-07", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	k, err := lease.Keep(ctx, l, lease.KeeperConfig{Store: table, DriftMargin: time.Second, ReleaseOnStop: true})
	if err != nil {
		log.Fatal(err)
	}
	defer k.Stop()
	if k.Held() {
		// Act on the droplet, passing l.Epoch with every write.
		fmt.Printf("%s holds %s\n", l.Holder, l.Resource)
	}

	// Another manager, meanwhile.
	_, err = table.Grant(ctx, "droplet/i-0abc", "dwfm-use1-az2-03", 10*time.Second)
	var held *lease.HeldError
	if errors.As(err, &held) {
		fmt.Printf("refused: %s holds it, epoch unchanged: %v\n", held.Holder, held.Epoch == l.Epoch)
	}
	// Output:
	// dwfm-use1-az1-07 holds droplet/i-0abc
	// refused: dwfm-use1-az1-07 holds it, epoch unchanged: true
}
