package fence_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/stormguard/stormguard/fence"
)

// The race of October 2025, fenced: a planner numbers its plans with a
// Sequencer, and each enactor applies a plan with WriteIfNewer. The enactor
// that was delayed checks nothing in advance; the store checks its
// generation at the moment of the write, and refuses it.
func Example() {
	ctx := context.Background()
	store := &fence.Memory{} // contrib/etcd's Store to share it between processes
	planner, err := fence.NewSequencer(fence.SequencerConfig{Store: store, Key: "plans/generation"})
	if err != nil {
		panic(err)
	}
	oldGen, _ := planner.Next(ctx) // enactor A picks up this plan, then stalls
	_, _ = planner.Next(ctx)
	newGen, _ := planner.Next(ctx) // enactor B picks up the newest plan

	const endpoint = "dns/dynamodb.us-east-1"
	fmt.Println("B:", fence.WriteIfNewer(ctx, store, endpoint, []byte("plan 3: lb-7, lb-8"), newGen))
	err = fence.WriteIfNewer(ctx, store, endpoint, []byte("plan 1: lb-1"), oldGen)
	fmt.Println("A:", err) // fence: stale write-if-newer ...: token 1 is not newer than the current token 3

	v, tok, _ := store.Load(ctx, endpoint)
	fmt.Printf("live: %s (generation %v)\n", v, tok)
	// Output:
	// B: <nil>
	// A: fence: stale write-if-newer of "dns/dynamodb.us-east-1": token 1 is not newer than the current token 3
	// live: plan 3: lb-7, lb-8 (generation 3)
}

func ExampleRegister() {
	var plan fence.Register[[]string]
	_ = plan.WriteIfNewer([]string{"lb-1", "lb-2"}, 41)

	// Read-modify-write: the compare-and-swap fails if anyone wrote since.
	targets, gen := plan.Load()
	err := plan.CompareAndSwap(gen, append(targets[:len(targets):len(targets)], "lb-3"), 42)
	fmt.Println(err)

	// A writer still holding generation 41 is refused, however late it is.
	err = plan.CompareAndSwap(41, []string{"lb-9"}, 43)
	fmt.Println(err)

	targets, gen = plan.Load()
	fmt.Println(targets, gen)
	// Output:
	// <nil>
	// fence: stale compare-and-swap: expected token 41, found the current token 42
	// [lb-1 lb-2 lb-3] 42
}

// A storage node keeps a Guard and admits each replication write at its
// point of write: once the primary of epoch 8 has been let in, the deposed
// primary of epoch 7 is fenced off.
func ExampleGuard() {
	var counters fence.Counters
	node := fence.NewGuard(fence.GuardConfig{Name: "node-17", OnEvent: counters.Observe})
	for _, epoch := range []fence.Token{7, 7, 8, 7, 8} {
		if err := node.Admit(epoch); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println("write of epoch", epoch, "applied")
	}
	fmt.Printf("%+v\n", counters.Stats())
	// Output:
	// write of epoch 7 applied
	// write of epoch 7 applied
	// write of epoch 8 applied
	// fence: stale admit of "node-17": token 7 is older than the newest admitted token 8
	// write of epoch 8 applied
	// {Admitted:4 FencedOff:1}
}

// A refusal carries the token that refused it, so the caller can decide
// without reading the store again: here, retry the compare-and-swap
// conditioned on the token the refusal reported.
func ExampleStaleError() {
	ctx := context.Background()
	store := &fence.Memory{}
	_ = store.CompareAndSwap(ctx, "lease/volume-42", 0, []byte("holder=a"), 5)

	err := store.CompareAndSwap(ctx, "lease/volume-42", 3, []byte("holder=b"), 6)
	var stale *fence.StaleError
	if errors.As(err, &stale) {
		fmt.Printf("expected %v, found %v\n", stale.Want, stale.Have)
		err = store.CompareAndSwap(ctx, "lease/volume-42", stale.Have, []byte("holder=b"), stale.Have+1)
	}
	fmt.Println(err)
	// Output:
	// expected 3, found 5
	// <nil>
}

// Tokens survive a restart because the counter lives in the Store, not in
// the Sequencer.
func ExampleSequencer() {
	ctx := context.Background()
	store := &fence.Memory{} // contrib/etcd's Store makes this durable
	cfg := fence.SequencerConfig{Store: store, Key: "leases/epoch"}

	first, _ := fence.NewSequencer(cfg)
	a, _ := first.Next(ctx)
	b, _ := first.Next(ctx)

	restarted, _ := fence.NewSequencer(cfg)
	c, _ := restarted.Next(ctx)
	fmt.Println(a, b, c)
	// Output: 1 2 3
}

// Delete is conditioned on the token too: a clean-up that inspected an old
// plan cannot delete the plan that replaced it.
func ExampleMemory_Delete() {
	ctx := context.Background()
	store := &fence.Memory{}
	_ = store.CompareAndSwap(ctx, "plans/us-east-1", 0, []byte("plan 41"), 41)
	_ = store.CompareAndSwap(ctx, "plans/us-east-1", 41, []byte("plan 42"), 42)

	fmt.Println(store.Delete(ctx, "plans/us-east-1", 41))
	keys, _ := store.List(ctx, "plans/")
	fmt.Println(keys)
	// Output:
	// fence: stale delete of "plans/us-east-1": expected token 41, found the current token 42
	// [plans/us-east-1]
}
