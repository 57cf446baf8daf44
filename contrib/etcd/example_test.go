package etcd_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd"
	"github.com/stormguard/stormguard/fence"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A planner numbers its plans with a Sequencer on etcd; each enactor, in its
// own process, applies a plan with WriteIfNewer, which etcd refuses if a
// newer plan is already in place. (This example needs an etcd at
// localhost:2379, so it is compiled but not run by go test.)
func Example() {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var counters fence.Counters
	store, err := etcd.NewStore(etcd.StoreConfig{Client: client, Prefix: "stormguard/dns/", OnEvent: counters.Observe})
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The planner: generations survive restarts of this process and of etcd.
	planner, err := fence.NewSequencer(fence.SequencerConfig{Store: store, Key: "plans/generation"})
	if err != nil {
		log.Fatal(err)
	}
	gen, err := planner.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// An enactor, however late: one etcd transaction checks and writes.
	err = fence.WriteIfNewer(ctx, store, "endpoints/dynamodb.us-east-1", []byte("lb-7=100,lb-8=100"), gen)
	var stale *fence.StaleError
	switch {
	case errors.As(err, &stale):
		log.Printf("plan %d is obsolete: generation %d is live", gen, stale.Have)
	case err != nil:
		log.Printf("outcome unknown, the next attempt will tell: %v", err)
	}
	log.Printf("%+v", counters.Stats())
}
