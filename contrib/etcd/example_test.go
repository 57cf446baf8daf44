package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/stormguard/stormguard/contrib/etcd"
	"github.com/stormguard/stormguard/fence"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A planner numbers its plans with a Sequencer on etcd; each enactor, in its
// own process, applies a plan with WriteIfNewer, which etcd refuses if a
// newer plan is already in place. endpoints are etcd's client URLs.
func Example() {
	resetEtcd()
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	store, err := etcd.NewStore(etcd.StoreConfig{Client: client, Prefix: "stormguard/dns/"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// The planner: generations survive restarts of this process and of etcd.
	planner, err := fence.NewSequencer(fence.SequencerConfig{Store: store, Key: "plans/generation"})
	if err != nil {
		log.Fatal(err)
	}
	older, err := planner.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	newer, err := planner.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// Enactors, however late: one etcd transaction checks and writes, and
	// the enactor of the older plan, arriving last, is refused.
	for _, gen := range []fence.Token{newer, older} {
		err := fence.WriteIfNewer(ctx, store, "endpoints/dynamodb", []byte("lb-7=100"), gen)
		var stale *fence.StaleError
		switch {
		case errors.As(err, &stale):
			fmt.Printf("plan %d refused: plan %d is live\n", gen, stale.Have)
		case errors.Is(err, etcd.ErrUnknownOutcome):
			fmt.Println("outcome unknown: the next attempt will tell")
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("plan %d written\n", gen)
		}
	}
	// Output:
	// plan 2 written
	// plan 1 refused: plan 2 is live
}
