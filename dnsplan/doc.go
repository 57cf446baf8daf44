// Package dnsplan keeps DNS records in step with a stream of
// generation-numbered plans, with any number of independent enactors, and
// without ever rolling an endpoint back, emptying it, or deleting the plan
// it serves.
//
// In October 2025 DynamoDB's regional endpoint in us-east-1 resolved to
// nothing for over two and a half hours. Its DNS was managed by a DNS
// Planner that wrote generation-numbered plans (per endpoint, a set of load
// balancers and weights) and three DNS Enactors, one per Availability Zone,
// each of which applied the newest plan endpoint by endpoint. An enactor
// checked once, before it started, that its plan was newer than the one
// applied; it was then delayed for a long time, retrying endpoint after
// endpoint. Meanwhile the planner produced many newer plans, and a second
// enactor applied one of them everywhere and ran clean-up, which deletes
// plans many generations older than the one just applied. The delayed
// enactor then wrote its old plan over the newer one on the regional
// endpoint — its check was stale — and the clean-up deleted that old plan,
// now the live one, which removed every address of the endpoint. With the
// live plan gone the state was inconsistent, and no enactor could apply
// later plans until operators repaired it by hand. Hours later, NLB's
// health checks flapped while new instances' network state lagged, and
// automatic failover removed healthy capacity from DNS: nothing bounded how
// much capacity health checks could remove.
//
// This package fixes each link of that chain:
//
//   - Plan is a generation (a fence.Token) and, per endpoint, weighted
//     targets (netip.Addr and weight). Validate refuses zero weights,
//     duplicate targets, empty endpoints (unless Limits.AllowEmpty) and
//     oversized plans.
//   - Planner turns health reports into the next plan with velocity
//     control: within PlannerConfig.Window, at most
//     PlannerConfig.MaxRemoveFraction of an endpoint's capacity may be
//     removed, however many checks fail; if every target of an endpoint
//     looks unhealthy it keeps the last known good set (fail static)
//     instead of emitting an empty one.
//   - Store holds plans by generation; MemoryStore is the in-memory one.
//     A Store refuses a generation it has already seen, so a generation
//     names one plan forever.
//   - Provider is where records live. Apply writes an endpoint's targets
//     and applied generation as one transaction conditioned on the applied
//     generation the caller read, and refuses empty record sets.
//     MemoryProvider is the in-memory one;
//     github.com/stormguard/stormguard/contrib/rfc2136 speaks RFC 2136
//     dynamic update to any DNS server, keeping the generation in a TXT
//     record and conditioning each update on it with a prerequisite.
//   - Enactor applies the newest plan. It is a pure state machine (Next,
//     Deliver) with a thin driver (Pass, Run).
//
// # Why an enactor cannot roll an endpoint back
//
// For each endpoint the Enactor reads the applied generation h, and writes
// its plan g only if g > h (or g == h with different records: a repair),
// with Apply conditioned on h. Apply succeeds only if the endpoint still
// holds h at the instant of the write — in MemoryProvider under the same
// lock as the write, in RFC 2136 by an update prerequisite that the server
// checks in the same transaction as the update. So the comparison "g is
// newer" holds at the moment the write lands, however long the enactor
// stalled between its read and its write; if anyone wrote in between, the
// write is refused, the enactor reads again, and writes only if its plan
// is still newer. An endpoint's applied generation therefore never
// decreases, whatever the number of enactors and the interleaving.
//
// # Why clean-up cannot delete a live plan
//
// After a pass, clean-up computes the floor: the lowest applied generation
// of every endpoint named by the plan the pass applied or by any plan it
// is about to delete (as read during the pass; generations never decrease, so these
// are lower bounds). It deletes plan g only if g < floor - Retention, and
// skips clean-up altogether after a pass in which any endpoint failed.
// A live plan g is the applied generation of some endpoint that g names,
// so g >= floor and it is kept. And a plan another enactor may still be
// applying is either kept, or older than every endpoint it names, in which
// case that enactor's reads show newer generations and it writes nothing:
// deleting a plan never empties or rolls back anything.
//
// # Self-repair
//
// Apply needs only the generation it conditions on, never the old plan, so
// a missing live plan blocks nothing: the next pass writes the newest plan
// over it. An endpoint whose records are empty or differ from the plan of
// their own generation is rewritten with the newest plan (EventRepaired).
// An endpoint that is empty and carries a generation newer than every
// stored plan — the Store lost plans — is rewritten with the newest plan's
// targets under its own generation, conditioned on that generation: DNS
// answers again at once, the generation never decreases, and the
// planner's next plan replaces the targets as usual. Clean-up never
// deletes the plan a pass applied, so those newest plans are kept. A
// planner restarted from such a Store must resume above the highest
// generation the enactors read (PassStats.Highest), or every endpoint
// refuses its plans as older.
//
// # Cost
//
// A pass over n endpoints costs n reads and one apply per endpoint that
// changed; MemoryStore copies a plan in and out (one allocation per
// endpoint). Validate and Diff cost one step per target.
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
// Run pauses DefaultInterval between passes). The constructors are needed
// only for other configurations, which they validate.
package dnsplan
