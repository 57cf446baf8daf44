// Package dnsplan keeps DNS records in step with a stream of
// generation-numbered plans, with any number of independent enactors, and
// without ever rolling an endpoint back, emptying it, or deleting the plan
// it serves.
//
// A planner turns health reports into generation-numbered plans, a Store
// keeps them, and enactors (one per zone, as many as you like) apply the
// newest to the DNS through a Provider:
//
//	ctx := context.Background()
//	store := &dnsplan.MemoryStore{}  // contrib/etcd's PlanStore across processes
//	dns := &dnsplan.MemoryProvider{} // contrib/rfc2136 for a real DNS server
//
//	// The planner: health reports in, the next plan out, velocity-controlled.
//	planner, err := dnsplan.NewPlanner(dnsplan.PlannerConfig{})
//	if err != nil {
//		panic(err)
//	}
//	plan, err := planner.Next(time.Now(), dnsplan.Report{
//		"dynamodb.us-east-1": {{Addr: netip.MustParseAddr("10.0.0.7"), Capacity: 100, Healthy: true}},
//	})
//	if err != nil {
//		panic(err)
//	}
//	if err := store.Put(ctx, plan); err != nil {
//		panic(err)
//	}
//
//	// Each enactor, one per zone (Run repeats passes, woken by new plans).
//	enactor, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "us-east-1a"})
//	if err != nil {
//		panic(err)
//	}
//	stats, err := enactor.Pass(ctx, store, dns)
//
// # Primitives
//
// Each type fixes one link of the chain of October 2025 (see History):
//
//   - Plan is a generation (a fence.Token) and, per endpoint, weighted
//     targets (netip.Addr and weight). Validate refuses zero weights,
//     duplicate targets, empty endpoints (unless Limits.AllowEmpty),
//     oversized plans, and endpoint names that are not canonical (lower
//     case, no trailing dot, no escapes: see ValidateEndpoint and
//     CanonicalEndpoint), so two endpoints are never one DNS name.
//   - Planner turns health reports into the next plan with velocity
//     control: within PlannerConfig.Window, at most
//     PlannerConfig.MaxRemoveFraction of an endpoint's capacity may be
//     removed, however many checks fail, also across restarts (the
//     history travels in Plan.Velocity and Plan.MadeAt); if every
//     target of an endpoint looks unhealthy it keeps the last known good
//     set (fail static)
//     instead of emitting an empty one. Limits never make it refuse a
//     valid report: what does not fit waits (PlannerCapped).
//   - Store holds plans by generation; MemoryStore is the in-memory one.
//     A Store refuses a generation it has already seen, so a generation
//     names one plan forever.
//   - Provider is where records live. Apply writes an endpoint's targets
//     and applied generation as one transaction conditioned on the applied
//     generation and version the caller read, and refuses empty record
//     sets.
//     MemoryProvider is the in-memory one;
//     github.com/stormguard/stormguard/contrib/rfc2136 speaks RFC 2136
//     dynamic update to any DNS server, keeping the generation in a TXT
//     record and conditioning each update on it with a prerequisite.
//     Damaged metadata is reported as ErrCorruptRecords (and repaired),
//     a foreign record at the name as ErrNameInUse (and reported on every
//     pass, never deleted).
//   - Enactor applies the newest plan. It is a pure state machine (Next
//     and Deliver one action at a time, or Ready and DeliverAction for up
//     to EnactorConfig.Parallel endpoints at once) with a thin driver:
//     Pass, which runs the endpoints in parallel, and Run, which starts a
//     pass every Interval, and as soon as a Store that is a Watcher
//     announces a newer plan.
//
// # History
//
// In October 2025 DynamoDB's regional endpoint in us-east-1 resolved to
// nothing for hours. A DNS Planner wrote generation-numbered plans and
// three DNS Enactors, one per zone, applied the newest. One enactor checked
// once that its plan was newer, was delayed for a long time, and then wrote
// its old plan over a newer one; another enactor's clean-up deleted that
// old plan, now live, which emptied the endpoint and left a state no
// enactor could repair. Hours later NLB's flapping health checks removed
// healthy capacity from DNS, with nothing bounding how much.
//
// # Why an enactor cannot roll an endpoint back
//
// For each endpoint the Enactor reads the applied generation h (and the
// version of the write that put it there), and writes its plan g only if
// g > h (or g == h with different records: a repair), with Apply
// conditioned on h and that version. Apply succeeds only if the endpoint
// still holds that very write at the instant of the write — in
// MemoryProvider under the same lock as the write, in RFC 2136 by an
// update prerequisite that the server checks in the same transaction as
// the update. So the comparison "g is newer" holds at the moment the
// write lands, however long the enactor stalled between its read and its
// write; if anyone wrote in between, even the same generation, the write
// is refused, the enactor reads again, and writes only if its plan is
// still newer. An endpoint's applied generation therefore never
// decreases, whatever the number of enactors and the interleaving.
//
// # Why clean-up cannot delete a live plan
//
// After a pass, clean-up considers every stored plan g more than
// Retention generations below the plan the pass applied (that plan and
// newer ones are never deleted). It deletes g only if every endpoint g
// names with targets is known to be at a generation above g + Retention:
// read during the pass, or, for an endpoint that cannot be read now, as
// last read in an earlier pass (zero if never: generations never
// decrease, so an old read is still a lower bound). A plan is needed only
// where an endpoint it names may serve it or may yet be written with it:
// a live plan g is the applied generation of an endpoint that g names, so
// it is kept; and a write of g still in flight — an enactor that read an
// endpoint at h <= g and stalled — lands only if the endpoint is still at
// h, so a plan g is kept as long as any endpoint it names may be at g or
// below. So:
//
//   - an endpoint that newer plans no longer name (decommissioned) keeps
//     its records — an enactor never deletes records — and keeps only the
//     plans that name it from its own generation on (with Retention's
//     margin); the plans that do not name it are deleted as usual, and
//     the Store stays bounded;
//   - an endpoint that fails (a timeout, ErrNameInUse, a stale apply past
//     MaxConflicts) is reported (EventError, PassStats.Failed) on every
//     pass and keeps the plans that name it from the lowest generation it
//     can have on; clean-up goes on for every other plan. An endpoint that
//     cannot be read keeps every plan naming it from its last generation
//     read on, and an enactor that never read it keeps every plan naming
//     it: it cannot know which of them the endpoint serves. While every
//     plan names such an endpoint, plans accumulate until it is fixed or
//     dropped from the plans, and a bounded Store says so with ErrFull:
//     clean-up never trades the promise for room.
//
// Deleting a plan therefore never empties or rolls back anything, however
// long an enactor stalls. An outside write that lowers an endpoint's
// generation is outside this promise.
//
// # Parallel passes
//
// A pass over thousands of endpoints need not write them one after
// another: each endpoint's write is conditioned on its own read, so the
// argument above holds for each endpoint whatever the others do, and the
// order in which a pass reaches its endpoints changes nothing of what any
// of them ends up with. An Enactor keeps up to EnactorConfig.Parallel
// endpoints in flight (DefaultParallel), each in a slot of its own with
// its own reads, conflicts (MaxConflicts is per endpoint) and repair; Pass
// runs their calls on as many goroutines, and delivers their outcomes on
// its own. Clean-up starts only once every slot is done, so it knows what
// the pass read of every endpoint, as before; it runs one action at a
// time. When ctx ends, Pass starts no new action, waits for the ones in
// flight, and returns ctx's error.
//
// Parallelism does not change what capacity is removed: velocity control
// is the Planner's, and bounds what each plan removes from each endpoint
// compared with the plans before it. An enactor writes an endpoint only
// with the whole of one plan's records for it, so each endpoint moves from
// one planned record set to another, exactly as it would one endpoint at
// a time; running endpoints together changes only when each one moves,
// not how far.
//
// # Self-repair
//
// Apply needs only the state it conditions on, never the old plan, so a
// missing live plan blocks nothing: the next pass writes the newest plan
// over it. An endpoint whose records are empty, corrupt (ErrCorruptRecords
// from Read, with its generation and version intact) or differ from the
// plan of their own generation is rewritten with that plan (EventRepaired),
// conditioned on the generation and version read, so two repairs of one
// generation never land one over the other. An endpoint found empty or
// corrupt at a generation newer than the enactor's plan is repaired with
// the plan of that generation, loaded from the Store — never with the
// enactor's own, older plan.
//
// One exception, when the Store has lost plans: an endpoint that is empty
// at a generation G whose plan the Store no longer holds, while the
// Store's newest plan is older than G, is refilled with that newest plan's
// targets under G, conditioned on the empty state read (serving something
// beats serving nothing; the generation never decreases; the condition
// means it can never overwrite a write that landed since). It is the only
// case in which an endpoint serves other targets than the plan of its
// generation, and it lasts until the next plan. A non-empty or corrupt
// endpoint at a lost generation is left for the next plan. A planner
// restarted from such a Store must resume above the highest generation
// the enactors read (PassStats.Highest), or every endpoint refuses its
// plans as older.
//
// # Cost
//
// A pass over n endpoints costs n reads and one apply per endpoint that
// changed (and a plan load for one found empty or corrupt ahead of the
// enactor's plan); Pass adds a goroutine per action of the endpoint phase
// carried out while another is in flight — microseconds, against the
// milliseconds of a call to a DNS server; against a MemoryProvider,
// Parallel 1 is the faster. Clean-up lists the plans, and loads each one more than
// Retention below the applied plan to learn its endpoints, reading those
// the pass has not; a plan kept because of an endpoint is remembered with
// it, and is not loaded again while that endpoint still keeps it, so a
// steady pass loads only the plans it deletes. MemoryStore copies a plan
// in and out (one allocation per endpoint). Validate and Diff cost one
// step per target; a Planner's Next one step per target reported, and a
// plan's Velocity holds one entry per capacity change within the window.
//
// # Errors
//
// Invalid input matches ErrInvalidPlan, ErrInvalidRecords (ErrEmptyRecords
// for an empty record set), ErrInvalidReport or ErrInvalidConfig, every
// problem listed at once. A call with an argument that no call accepts —
// a nil context.Context, a nil Store or Provider (a nil *MemoryStore or
// *MemoryProvider included), an Action with an unknown Op — is refused
// with an error matching ErrInvalidArgument that names the call and the
// argument, before anything is read or written; never with a panic. A
// conditional write that lost its condition is a *fence.StaleError
// (fence.ErrStale) carrying the generation found.
//
// # Zero values
//
// The zero value of every struct type is safe to use. The zero
// MemoryStore and MemoryProvider are empty and ready; the zero Planner and
// Enactor are the same as NewPlanner(PlannerConfig{}) and
// NewEnactor(EnactorConfig{}), with the documented defaults (an Enactor's
// Run pauses at most DefaultInterval between passes, and its Pass keeps
// up to DefaultParallel endpoints in flight). The constructors are needed
// only for other configurations, which they validate.
package dnsplan
