package etcd_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd"
	"github.com/stormguard/stormguard/lease"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Each droplet manager, in its own process, asks etcd for a droplet's
// lease and keeps it with a lease.Keeper; the epoch fences off whichever
// manager held it before. (This example needs an etcd at localhost:2379,
// so it is compiled but not run by go test.)
func ExampleLeaseTable() {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
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
	var held *lease.HeldError
	if errors.As(err, &held) {
		log.Printf("%s holds it (epoch %d)", held.Holder, held.Epoch)
		return
	} else if err != nil {
		log.Fatal(err)
	}
	k, err := lease.Keep(ctx, l, lease.KeeperConfig{Store: table, DriftMargin: time.Second, ReleaseOnStop: true})
	if err != nil {
		log.Fatal(err)
	}
	defer k.Stop()
	for k.Held() {
		// Act on the droplet, passing l.Epoch with every write.
		time.Sleep(time.Second)
	}
	log.Print(k.Err())
}
