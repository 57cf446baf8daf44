// Package remirror is a reference re-replication engine for a storage
// cluster whose volumes are mirrored on two nodes: when a volume loses its
// mirror, the engine brings it back to two replicas and an elected primary
// without ever starting a re-mirroring storm.
//
// The engine is a pure state machine, in the manner of go.etcd.io/raft: the
// caller tells it what happened (Step, Tick) and carries out the actions it
// returns (probe, search, copy, elect), on a real cluster or a simulated
// one:
//
//	e, err := remirror.NewEngine(remirror.Settings{}, nil) // the safe defaults
//	if err != nil {
//		panic(err)
//	}
//	for range 3 {
//		e.AddNode(100)
//	}
//	v, _ := e.AddVolume(1, 0, 1, 1) // replicas on nodes 0 and 1, generation 1
//	now := time.Unix(0, 0)
//
//	acts, _ := e.Step(now, remirror.Input{Kind: remirror.PeerLost, Volume: v, Node: 0})
//	probe := acts[0]
//	fmt.Println(probe.Kind, probe.From, "→", probe.To) // probe 0 → 1: reconnect before searching
//
// # The state machine
//
// Each volume goes Healthy → Reconnecting → Searching → Copying → Electing →
// Healthy:
//
//   - Reconnecting. The survivor (the replica that reported the loss) probes
//     its previous peer, with backoff, for a grace window (10 minutes by
//     default). A peer that was only cut off comes back without a byte
//     copied and without a single search: after a network fault the storm
//     never starts. Reconnecting stays preferred afterwards too: a
//     searching volume probes its old peer before every search attempt.
//     A peer known to be down (NodeFailed, no NodeUp yet) is not probed:
//     the attempt fails without a message and backs off as usual.
//   - Searching. One search message asks one node for room. Messages are
//     bounded cluster-wide by a search budget (a token bucket: SearchRate
//     per second, burst SearchBurst), and go only to nodes the engine's
//     capacity ledger says have room, are up, are not quarantined and did
//     not refuse lately (free-space hints), so futile contacts with full
//     nodes are not made at all. Re-mirrors in flight are bounded per node
//     and per cluster; each refusal backs off exponentially with jitter.
//   - Copying. The target has reserved room and the survivor copies to it.
//     Both old replicas keep their data until the new owner confirms its
//     copy; only then is the lost peer told to release its replica.
//   - Electing. The survivor asks the authority to become primary with a
//     generation newer than the last one (a fence.Token compare-and-swap),
//     under a bound on the elections outstanding. The engine accepts only a
//     newer generation and refuses stale or duplicate answers, and no
//     replica is writable while a volume is stuck, so a volume never has
//     two writable primaries. A volume whose generation is fence.MaxToken
//     can never be elected again (no generation is newer): the engine
//     sends it no election and reports it Exhausted (Stats.Exhausted),
//     instead of retrying forever.
//
// # Capacity
//
// The engine keeps a ledger of every node's capacity and use. New volumes
// (AddVolume) may not use a node's recovery reserve (10% by default), so
// recovery always finds room. The reserve is ⌈capacity × RecoveryReserve⌉,
// computed exactly from the decimal RecoveryReserve was written as; sizes
// and capacities may go up to math.MaxInt64 without wrapping the ledger. A failed node (NodeFailed) is quarantined: no
// new replica is placed on it, even after it comes back, until every
// replica it held is safe again (its volume healthy once more, reconnected
// to it or re-mirrored elsewhere with its replica released) or released by
// deleting the volume.
//
// # Driving the engine
//
// Engine is a pure state machine in the manner of go.etcd.io/raft: it owns
// no goroutine, clock, socket or global state. One Engine holds one cluster:
// its nodes, their capacity ledger, the search budget and the bounds on
// re-mirrors and elections are cluster-wide, so a region runs one engine per
// cluster (the simulator in package remirror/sim runs one per zone), each
// driven from one goroutine. The driver feeds it inputs with Step (a peer
// lost, the answer to a probe, a search, a copy or an election, a node
// failing or coming back, a volume deleted) and timers with Tick, each with
// the current time, and carries out the Actions returned (probe, query,
// copy, discard, release, elect). Every request carries an Attempt number;
// answers must quote it, so a duplicate or late answer is refused with
// ErrDuplicate and changes nothing. An answer is judged against the
// cluster as it is when it arrives, not when it was sent: a node's failure
// ends every request it takes part in, so an answer it sent before the
// crash is late, and a probe answered OK while either end is down is not a
// reconnection. A volume is never healthy with a replica on a down node. Bad input (an unknown volume or node, a
// malformed input, an answer never asked for, time going backwards, a stale
// generation) is refused with a typed error and leaves the engine unchanged.
// The simulator and a real service drive the same code. Randomness (jitter,
// sampling of candidates) comes from a *rand.Rand the driver may seed.
//
// Concurrent wraps an engine for drivers that report from many goroutines
// (one per node or per replication request), serialising the whole cluster's
// inputs behind one lock, and Authority carries out elections on a
// fence.Store through a per-zone shed.Partition with short timeouts, so that
// one sick zone cannot starve the authority for the others.
//
// # History
//
// In April 2011 a botched network change isolated many EBS storage nodes at
// once. Every node that lost its mirror went looking for space for a new
// one; when the network came back thousands searched at once, free capacity
// was gone within minutes, and the nodes that found none kept searching
// without backing off. 13% of the zone's volumes were stuck (a volume
// serves no I/O until a new primary is agreed with the control plane); the
// flood crashed nodes through a race in closing replication requests,
// browned out the control plane for every zone, and failed nodes were not
// reused, so the lost capacity stayed lost. The postmortem's fixes are the
// rules this engine follows.
//
// # Costs
//
// Step and Tick cost O(log n) in the number of armed timers, plus, for a
// search with hints, O(nodes) when none of eight sampled nodes qualifies;
// NodeFailed and NodeUp cost O(replicas on the node). Step does not
// allocate on success once the engine's buffers have grown (about 60ns for
// a mirror lost, probed back and re-elected; 210ns for a full re-mirror
// among 1,000 nodes); a refusal allocates its error. A stuck volume costs
// the driver one timer and at most one outstanding request.
package remirror
