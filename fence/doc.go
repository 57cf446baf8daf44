// Package fence stops stale writers from overwriting newer state, by making
// every "am I still the newest?" decision atomically with the write it
// protects.
//
// A planner numbers its plans with a Sequencer; each writer writes with
// WriteIfNewer, which the store refuses if a newer plan is already in
// place, however late the writer arrives:
//
//	ctx := context.Background()
//	store := &fence.Memory{} // contrib/etcd's Store to share it between processes
//	planner, err := fence.NewSequencer(fence.SequencerConfig{Store: store, Key: "plans/generation"})
//	if err != nil {
//		panic(err)
//	}
//	oldGen, _ := planner.Next(ctx) // enactor A picks up this plan, then stalls
//	_, _ = planner.Next(ctx)
//	newGen, _ := planner.Next(ctx) // enactor B picks up the newest plan
//
//	const endpoint = "dns/dynamodb.us-east-1"
//	fmt.Println("B:", fence.WriteIfNewer(ctx, store, endpoint, []byte("plan 3: lb-7, lb-8"), newGen))
//	err = fence.WriteIfNewer(ctx, store, endpoint, []byte("plan 1: lb-1"), oldGen)
//	fmt.Println("A:", err) // fence: stale write-if-newer ...: token 1 is not newer than the current token 3
//
// # Primitives
//
// A check made before a write, however careful, says nothing about the
// moment of the write. A fence moves the check to that moment:
//
//   - Token is a fencing token: a generation number that only grows. Every
//     writer carries one (a plan's generation, a lease's epoch).
//   - Register is a fenced in-memory value: CompareAndSwap and WriteIfNewer
//     check the token and write in one atomic step, lock-free, so a delayed
//     writer's token is judged against the register as it is when the write
//     lands, never as it was when the writer looked.
//   - Store is the same contract for durable or distributed backends: Load a
//     key's value and token, CompareAndSwap conditioned on the current token,
//     Delete conditioned on the token, List keys by prefix. Memory is the
//     in-memory implementation; github.com/stormguard/stormguard/contrib/etcd
//     implements it on etcd with one transaction per operation.
//   - Guard is what a resource (a storage node, a DNS zone) keeps to refuse
//     any writer whose token is older than the newest it has admitted. It is
//     a single atomic word: Admit costs a few nanoseconds and never allocates.
//   - Sequencer hands out strictly increasing tokens over a Store, durably:
//     a restarted process, or two sequencers racing on the same Store, never
//     hand out the same token twice or go backwards.
//
// # Guarantees
//
// A Register or a Store is linearizable (contrib/etcd's tests check both
// with porcupine). Writes obey two rules, whatever the interleaving of
// writers:
//
//   - CompareAndSwap(key, expect, value, next) succeeds only if the key's
//     token is expect at the instant of the write (zero means the key is
//     absent), and next must be newer than expect; so a key's token strictly
//     increases with every write and each token is written at most once.
//   - WriteIfNewer(key, value, t) succeeds only if t is newer than the key's
//     token at the instant of the write; a token that is not newer is always
//     refused, so a delayed writer can never roll a key back.
//
// Delete removes a key, and its token with it: a later write may create the
// key again with any token. To keep a fence across a removal, write a
// tombstone value instead.
//
// # Errors
//
// A refusal is a *StaleError that errors.Is matches with ErrStale. It
// carries the token that refused the write (StaleError.Have), read in the
// same atomic step as the refusal, so a caller can decide what to do next —
// give up, or retry conditioned on the new token — without another read.
// Bad input is reported before anything is written, with every bad argument
// at once, as errors that match ErrInvalidKey, ErrInvalidValue or
// ErrInvalidToken: an empty key or one longer than MaxKeyBytes, a nil value
// or one longer than MaxValueBytes, a zero token where a token is required,
// or a next token that is not newer than the expected one. Invalid
// configuration matches ErrInvalidConfig, and a nil context or Store
// ErrInvalidArgument. Nothing in this package panics on
// bad input.
//
// # Observability
//
// Guard, Memory and Sequencer accept an optional OnEvent hook that receives
// an Event for every admitted and every fenced-off operation; Counters is a
// ready-made hook that counts them. Without a hook nothing is counted and
// the hot paths stay a few atomic instructions.
//
// # History
//
// In October 2025 a DynamoDB DNS Enactor checked, before it started, that
// its plan was newer than the one applied, was then delayed for a long
// time, and overwrote a newer plan with an old one; another enactor's
// clean-up deleted that old plan as obsolete and emptied the regional
// endpoint's DNS record. WriteIfNewer would have refused the late write.
//
// # Cost
//
// Register.Load is one atomic load, and an admission by Guard.Admit one
// atomic load plus, when the token advances, one compare-and-swap; neither
// allocates, and Guard.Allow never allocates, not even to refuse. An
// accepted Register write allocates one small node; any refusal allocates
// only its *StaleError. Memory serialises writes on one mutex and copies
// values in and out, so callers can never alias its state.
package fence
