package remirror

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strconv"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/shed"
)

// NodeID names a storage node of the engine's cluster. IDs are dense, in
// the order AddNode returned them, from zero.
type NodeID int32

// VolumeID names a volume of the engine's cluster. IDs are dense, in the
// order AddVolume returned them, from zero.
type VolumeID int32

// NoNode is the NodeID of no node.
const NoNode NodeID = -1

// State is where a volume is in its recovery. Every state but Healthy is
// "stuck": the volume serves no I/O until a primary has been elected.
type State uint8

// The states of a volume, in the order a recovery goes through them.
const (
	// Healthy: two replicas in sync, one of them the elected primary.
	Healthy State = iota
	// Reconnecting: the mirror was lost; the survivor probes the previous
	// peer, with backoff, for the reconnect window.
	Reconnecting
	// Searching: the survivor looks for a node with room for a new
	// replica, within the search budget and the concurrency bounds, still
	// probing the previous peer before every attempt.
	Searching
	// Copying: a target granted room; the survivor copies the volume to it.
	Copying
	// Electing: the volume has two replicas again; it waits for the
	// authority to elect the survivor primary with a new generation.
	Electing
	numStates
)

// String returns the state's name, e.g. "searching".
func (s State) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Reconnecting:
		return "reconnecting"
	case Searching:
		return "searching"
	case Copying:
		return "copying"
	case Electing:
		return "electing"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// InputKind says what an Input reports.
type InputKind uint8

// The inputs a driver feeds the engine with Step.
const (
	// PeerLost: the replica of Volume on Node lost its mirror. Node becomes
	// the survivor, which keeps the data and drives the recovery.
	PeerLost InputKind = iota + 1
	// ProbeResult answers a Probe: OK if the previous peer answered and
	// the mirror is re-established. It is judged when it arrives: while
	// either end is down (NodeFailed without NodeUp) an OK counts as a
	// failed probe.
	ProbeResult
	// SearchResult answers a Query: OK if the target answered and accepts
	// the new replica (the engine's ledger must also have room for it).
	SearchResult
	// CopyResult answers a Copy: OK if the target now holds a complete
	// replica and confirms it has taken ownership.
	CopyResult
	// Elected answers an Elect: the authority made Node primary of Volume
	// with generation Token.
	Elected
	// ElectionFailed answers an Elect: the authority refused, shed the
	// call or timed out. Token, if not zero, is the newest generation the
	// authority reported, which the next attempt will build on.
	ElectionFailed
	// NodeFailed: Node crashed or was declared failed. It is quarantined:
	// no new replica is placed on it until every replica it held is safe.
	// Every request Node takes part in ends: its probes, searches, copies
	// and elections as survivor, the probes, searches and copies aimed at
	// it (a probe of it fails), and the elections of volumes whose other
	// replica it holds; an answer to any of them is refused with
	// ErrDuplicate, even one sent before the crash.
	NodeFailed
	// NodeUp: the failed Node is back, with its data.
	NodeUp
	// VolumeDeleted: the owner deleted Volume; its replicas are released.
	VolumeDeleted
)

var inputNames = [...]string{"", "peer-lost", "probe-result", "search-result", "copy-result", "elected", "election-failed", "node-failed", "node-up", "volume-deleted"}

// String returns the kind's name, e.g. "search-result".
func (k InputKind) String() string {
	if int(k) < len(inputNames) && k != 0 {
		return inputNames[k]
	}
	return "InputKind(" + strconv.Itoa(int(k)) + ")"
}

// Input is one event fed to Engine.Step. Which fields matter depends on
// Kind; the fields a kind does not use are ignored. Answers (ProbeResult,
// SearchResult, CopyResult, Elected, ElectionFailed) carry the Attempt of
// the Action they answer, so that a duplicate or late answer is recognised
// and refused.
type Input struct {
	// Kind says what the input reports. A value that is not one of the
	// InputKind constants is refused with ErrInvalidInput.
	Kind InputKind
	// Volume is the volume the input concerns, for every kind but
	// NodeFailed and NodeUp, which ignore it. It must name a volume that
	// AddVolume returned and that was not deleted (ErrUnknownVolume).
	Volume VolumeID
	// Node is, for PeerLost, the replica that reports losing its mirror
	// and becomes the survivor (one of the volume's two replicas); for
	// SearchResult, the node that was queried (the To of the Query); for
	// Elected, the node the authority made primary (the From of the
	// Elect); for NodeFailed and NodeUp, the node that failed or came back
	// (ErrUnknownNode for a node AddNode did not return). For PeerLost,
	// SearchResult and Elected, any other node is refused with
	// ErrOutOfOrder. ProbeResult, CopyResult, ElectionFailed and
	// VolumeDeleted ignore it.
	Node NodeID
	// Attempt is, for an answer, the Attempt of the Action it answers. An
	// answer to an earlier attempt, or to one already answered or
	// abandoned, is refused with ErrDuplicate; one that matches no request
	// made (a later attempt, the wrong kind of answer) with ErrOutOfOrder.
	// PeerLost, NodeFailed, NodeUp and VolumeDeleted ignore it.
	Attempt uint32
	// OK is, for ProbeResult, whether the previous peer answered and the
	// mirror is re-established; for SearchResult, whether the target
	// answered and accepts the new replica; for CopyResult, whether the
	// target holds a complete replica and has taken ownership. False
	// means the request failed or was not answered in time. Other kinds
	// ignore it.
	OK bool
	// Token is, for Elected, the generation the authority gave the new
	// primary; it must be newer than the newest generation the engine
	// knows for the volume (a *fence.StaleError otherwise). For
	// ElectionFailed it is the newest generation the authority reported,
	// or zero if it reported none; a newer one than the engine knows
	// becomes the Expect of the next Elect. Other kinds ignore it.
	Token fence.Token
}

// ActionKind says what an Action asks the driver to do.
type ActionKind uint8

// The actions the engine returns.
const (
	// Probe: From asks its previous peer To whether it is back. Answer
	// with ProbeResult.
	Probe ActionKind = iota + 1
	// Query: From asks To for room for a replica of Size: one search
	// message. Answer with SearchResult.
	Query
	// Copy: From copies the volume to To. Answer with CopyResult.
	Copy
	// Discard: To deletes its partial, never-confirmed copy of Volume. It
	// needs no answer.
	Discard
	// Release: To may delete its replica of Volume: the new owner has
	// confirmed, or the volume was deleted. It needs no answer.
	Release
	// Elect: ask the authority to make From primary of Volume with a
	// generation newer than Expect (a compare-and-swap from Expect). Answer
	// with Elected or ElectionFailed.
	Elect
)

var actionNames = [...]string{"", "probe", "query", "copy", "discard", "release", "elect"}

// String returns the kind's name, e.g. "query".
func (k ActionKind) String() string {
	if int(k) < len(actionNames) && k != 0 {
		return actionNames[k]
	}
	return "ActionKind(" + strconv.Itoa(int(k)) + ")"
}

// Action is one thing the driver must do for the engine. Which fields are
// set depends on Kind; the others are zero.
type Action struct {
	// Kind says what to do.
	Kind ActionKind
	// Volume is the volume the action concerns, for every kind.
	Volume VolumeID
	// Attempt numbers a request (Probe, Query, Copy, Elect) among the
	// volume's requests; its answer must carry it as Input.Attempt. It is
	// zero for Discard and Release, which need no answer.
	Attempt uint32
	// From is the node that acts: the survivor that probes (Probe), asks
	// for room (Query), copies (Copy) or had copied (Discard, and Release
	// after a re-mirror), or the node to be elected primary (Elect). It is
	// NoNode for a Release that follows VolumeDeleted.
	From NodeID
	// To is the node acted upon: the previous peer probed (Probe), the
	// node asked for room (Query), the copy's target (Copy), the node that
	// deletes its partial copy (Discard) or may delete its replica
	// (Release). It is NoNode for Elect.
	To NodeID
	// Size is the volume's size (in the unit of the node capacities) for
	// Query (the room asked for), Copy, Discard and Release (the space
	// freed on To). It is zero for Probe and Elect.
	Size int64
	// Expect is, for Elect, the newest generation the engine knows for the
	// volume: the election is a compare-and-swap from Expect to a newer
	// generation, answered with Elected and that generation. It is zero
	// for the other kinds.
	Expect fence.Token
}

// Stats is a snapshot of the engine's state and counters.
type Stats struct {
	// Volumes is the number of volumes (deleted ones excluded).
	Volumes int
	// Stuck is the number of volumes not Healthy.
	Stuck int
	// ByState counts the volumes in each state, indexed by State.
	ByState [numStates]int
	// Probes, Queries, Copies, Releases and Elections count the actions
	// of each kind returned so far; Queries are the search messages.
	Probes, Queries, Copies, Releases, Elections int64
	// Reconnected counts recoveries that reconnected to the previous peer;
	// Remirrored those that copied to a new one.
	Reconnected, Remirrored int64
	// BudgetRefused counts search attempts the search budget refused;
	// NoCandidate those for which the ledger knew no node with room, so
	// that no message was sent at all.
	BudgetRefused, NoCandidate int64
	// InFlight is the number of re-mirrors in flight; ElectionsOut the
	// elections outstanding.
	InFlight, ElectionsOut int
	// Free is the capacity free on nodes that are up and not quarantined,
	// reserve included, saturated at math.MaxInt64.
	Free int64
	// Quarantined is the number of quarantined nodes.
	Quarantined int
}

type outstanding uint8

const (
	outNone outstanding = iota
	outProbe
	outQuery
	outCopy
	outElect
)

type volume struct {
	size    int64
	gen     fence.Token // newest generation known for the volume
	since   int64       // when the mirror was lost, in ns
	prev    int64       // previous retry delay, in ns
	a, b    NodeID      // Healthy: the replicas, a primary; else a survivor, b lost peer
	ia, ib  int32       // where the volume is in the vols of a and of b
	it      int32       // where the volume is in the incoming of target
	target  NodeID      // the node being queried or copied to, or NoNode
	timer   uint32      // sequence of the armed timer, 0 if none
	attempt uint32      // id of the newest request
	tries   uint16
	state   State
	out     outstanding
	qa, qb  bool // counted in the quarantine of a, of b
	deleted bool
}

type node struct {
	capacity, used int64
	reserve        int64 // the recovery reserve, which new volumes may not use
	unreachable    int64 // ns until which searches skip the node
	unsafe         int32 // volumes with a replica here not yet safe (while quarantined)
	inflight       int32
	down           bool
	quarantined    bool
	vols           []VolumeID // volumes with a replica here
	incoming       []VolumeID // volumes querying or copying to here
}

// addReplica records a replica of v on n, at the end of n's vols, and
// returns its index there.
func (e *Engine) addReplica(n NodeID, v VolumeID) int32 {
	nd := &e.nodes[n]
	nd.vols = append(nd.vols, v)
	return int32(len(nd.vols) - 1)
}

// removeReplica removes the entry at i of n's vols in O(1), moving the last
// entry into its place and telling that entry's volume its new index.
func (e *Engine) removeReplica(n NodeID, i int32) {
	nd := &e.nodes[n]
	last := len(nd.vols) - 1
	moved := nd.vols[last]
	nd.vols[i] = moved
	nd.vols = nd.vols[:last]
	if int(i) == last {
		return
	}
	if mv := &e.volumes[moved]; mv.a == n {
		mv.ia = i
	} else {
		mv.ib = i
	}
}

// Engine is the re-mirroring state machine of one cluster (see the package
// documentation). Build it with NewEngine: the zero Engine has no settings,
// so its AddNode, AddVolume, Step and Tick refuse with an error matching
// ErrInvalidConfig, change nothing, and its other methods report an empty
// cluster. An Engine is not safe for concurrent use; wrap it in a
// Concurrent to share it.
type Engine struct {
	cfg      resolved
	reserve  *big.Rat   // cfg.reserve as a decimal, nil if zero (see reserveOf)
	resNum   uint64     // reserve's numerator and denominator, if both
	resDen   uint64     // fit (resDen is zero otherwise)
	rng      *rand.Rand // nil only in an Engine not built by NewEngine
	budget   *shed.Limiter
	nodes    []node
	volumes  []volume
	timers   timerHeap
	timerSeq uint32
	last     int64
	started  bool
	out      []Action
	touched  State // see touch
	inflight int
	elects   int
	stats    Stats
	aborted  []VolumeID // nodeFailed's scratch, reused
	due      []VolumeID // Tick's scratch, reused
}

// NewEngine returns an engine with settings s and no nodes or volumes, or
// an error matching ErrInvalidConfig that names every bad field. r is the
// source of jitter and of random choices; nil means a PCG with a fixed seed,
// so that runs are reproducible. An r that draws from a nil Source
// (rand.New(nil), or a nil *rand.PCG) is refused with ErrInvalidConfig.
func NewEngine(s Settings, r *rand.Rand) (*Engine, error) {
	cfg, err := s.resolve()
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.New(rand.NewPCG(0x5eed, 0x2011))
	} else if nilSource(r) {
		return nil, fmt.Errorf("%w: the *rand.Rand draws from a nil Source", ErrInvalidConfig)
	}
	e := &Engine{cfg: cfg, rng: r}
	if cfg.reserve > 0 {
		// The shortest decimal that formats to the reserve is what the
		// caller wrote (0.07, not the binary fraction just above it).
		e.reserve, _ = new(big.Rat).SetString(strconv.FormatFloat(cfg.reserve, 'g', -1, 64))
		if num, den := e.reserve.Num(), e.reserve.Denom(); num.IsUint64() && den.IsUint64() {
			e.resNum, e.resDen = num.Uint64(), den.Uint64()
		}
	}
	if cfg.rate > 0 {
		e.budget, err = shed.NewLimiter(shed.LimiterConfig{Rate: cfg.rate, Burst: cfg.burst})
		if err != nil {
			return nil, fmt.Errorf("%w: search budget: %w", ErrInvalidConfig, err)
		}
	}
	return e, nil
}

// nilSource reports whether r draws from a nil Source (rand.New(nil), or a
// typed nil such as a nil *rand.PCG), whose first draw would panic.
func nilSource(r *rand.Rand) bool {
	src := reflect.ValueOf(r).Elem().FieldByName("src")
	if !src.IsValid() || src.Kind() != reflect.Interface {
		return false // a rand.Rand of another shape: trust it
	}
	return src.IsNil() || nilValue(src.Elem())
}

// AddNode adds a node with the given capacity (in any unit the volume sizes
// share) and returns its ID. Capacity must be positive.
func (e *Engine) AddNode(capacity int64) (NodeID, error) {
	if e == nil || e.rng == nil {
		return NoNode, errZeroEngine
	}
	if capacity <= 0 {
		return NoNode, fmt.Errorf("%w: node capacity %d is not positive", ErrInvalidInput, capacity)
	}
	if len(e.nodes) >= math.MaxInt32 {
		return NoNode, fmt.Errorf("%w: too many nodes (%d)", ErrInvalidInput, len(e.nodes))
	}
	e.nodes = append(e.nodes, node{capacity: capacity, reserve: e.reserveOf(capacity)})
	return NodeID(len(e.nodes) - 1), nil
}

// AddVolume adds a healthy volume of the given size with replicas on
// primary and secondary, primary elected with generation token, and returns
// its ID. Both nodes must be up, not quarantined, and have room for size
// outside their recovery reserve (ErrNoSpace otherwise). Sizes up to
// math.MaxInt64 are compared with the room left without a sum, so they
// never wrap.
func (e *Engine) AddVolume(size int64, primary, secondary NodeID, token fence.Token) (VolumeID, error) {
	switch {
	case e == nil || e.rng == nil:
		return -1, errZeroEngine
	case size <= 0:
		return -1, fmt.Errorf("%w: volume size %d is not positive", ErrInvalidInput, size)
	case !e.knownNode(primary):
		return -1, fmt.Errorf("%w: primary %d (have %d nodes)", ErrUnknownNode, primary, len(e.nodes))
	case !e.knownNode(secondary):
		return -1, fmt.Errorf("%w: secondary %d (have %d nodes)", ErrUnknownNode, secondary, len(e.nodes))
	case primary == secondary:
		return -1, fmt.Errorf("%w: both replicas on node %d", ErrInvalidInput, primary)
	case token == 0:
		return -1, fmt.Errorf("%w: initial token is zero", ErrInvalidInput)
	case len(e.volumes) >= math.MaxInt32:
		return -1, fmt.Errorf("%w: too many volumes (%d)", ErrInvalidInput, len(e.volumes))
	}
	for _, n := range [2]NodeID{primary, secondary} {
		nd := &e.nodes[n]
		if nd.down || nd.quarantined {
			return -1, fmt.Errorf("%w: node %d is failed or quarantined", ErrNoSpace, n)
		}
		// used ≤ capacity and reserve ≤ capacity, so the room neither
		// wraps nor is compared with a sum that could.
		if room := nd.capacity - nd.reserve - nd.used; size > room {
			return -1, fmt.Errorf("%w: node %d has %d of %d used, %d reserved for recovery; volume needs %d", ErrNoSpace, n, nd.used, nd.capacity, nd.reserve, size)
		}
	}
	v := VolumeID(len(e.volumes))
	e.nodes[primary].used += size
	e.nodes[secondary].used += size
	e.volumes = append(e.volumes, volume{size: size, gen: token, a: primary, b: secondary, target: NoNode})
	e.volumes[v].ia = e.addReplica(primary, v)
	e.volumes[v].ib = e.addReplica(secondary, v)
	e.stats.Volumes++
	e.stats.ByState[Healthy]++
	return v, nil
}

// reserveOf returns the recovery reserve of a node of the given capacity:
// ⌈capacity × RecoveryReserve⌉, computed exactly with RecoveryReserve read
// as the shortest decimal that formats to it (0.07 is 7/100, not the
// binary fraction just above it), so that it is neither a unit too large
// nor a unit too small. It is at most capacity.
func (e *Engine) reserveOf(capacity int64) int64 {
	r := e.reserve
	if r == nil || capacity <= 0 {
		return 0
	}
	if e.resDen != 0 {
		// capacity·num < capacity·den < 2^63·den, so the high word of
		// the 128-bit product is below den and the division cannot
		// overflow.
		hi, lo := bits.Mul64(uint64(capacity), e.resNum)
		q, rem := bits.Div64(hi, lo, e.resDen)
		if rem > 0 {
			q++
		}
		return min(int64(q), capacity)
	}
	n := new(big.Int).Mul(r.Num(), big.NewInt(capacity))
	q, m := n.QuoRem(n, r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return min(q.Int64(), capacity)
}

func (e *Engine) knownNode(n NodeID) bool { return e != nil && n >= 0 && int(n) < len(e.nodes) }

// knownVolume reports whether v names a volume that was added and not
// deleted.
func (e *Engine) knownVolume(v VolumeID) bool {
	return e != nil && v >= 0 && int(v) < len(e.volumes) && !e.volumes[v].deleted
}

// Primary returns the writable primary of v and its generation, and true,
// if v is Healthy. While v is stuck no replica is writable, and Primary
// returns NoNode, the newest generation known, and false.
func (e *Engine) Primary(v VolumeID) (NodeID, fence.Token, bool) {
	if !e.knownVolume(v) {
		return NoNode, 0, false
	}
	vol := &e.volumes[v]
	if vol.state != Healthy {
		return NoNode, vol.gen, false
	}
	return vol.a, vol.gen, true
}

// Replicas returns the nodes that hold v's data: the primary and the
// secondary of a Healthy volume; the survivor and the lost peer of a stuck
// one (whose replica is kept until a new owner confirms). ok is false for
// an unknown volume.
func (e *Engine) Replicas(v VolumeID) (a, b NodeID, ok bool) {
	if !e.knownVolume(v) {
		return NoNode, NoNode, false
	}
	return e.volumes[v].a, e.volumes[v].b, true
}

// VolumeState returns the state of v (ok false for an unknown volume).
func (e *Engine) VolumeState(v VolumeID) (State, bool) {
	if !e.knownVolume(v) {
		return Healthy, false
	}
	return e.volumes[v].state, true
}

// NodeStatus reports a node's capacity, its used space (replicas and
// reservations for copies), whether it is down, and whether it is
// quarantined (failed, and holding replicas not yet safe).
func (e *Engine) NodeStatus(n NodeID) (capacity, used int64, down, quarantined bool, ok bool) {
	if !e.knownNode(n) {
		return 0, 0, false, false, false
	}
	nd := &e.nodes[n]
	return nd.capacity, nd.used, nd.down, nd.quarantined, true
}

// Nodes returns the number of nodes.
func (e *Engine) Nodes() int {
	if e == nil {
		return 0
	}
	return len(e.nodes)
}

// Stats returns a snapshot of the engine's counters. It costs O(nodes).
func (e *Engine) Stats() Stats {
	if e == nil {
		return Stats{}
	}
	s := e.stats
	s.InFlight, s.ElectionsOut = e.inflight, e.elects
	for i := range e.nodes {
		nd := &e.nodes[i]
		switch {
		case nd.quarantined:
			s.Quarantined++
		case !nd.down:
			s.Free = addSat(s.Free, nd.capacity-nd.used)
		}
	}
	return s
}

// NextTick returns the time of the engine's earliest timer, and false if
// none is armed. A driver calls Tick at (or after) that time; calling it
// more often is harmless. Timers saturate at the last instant of the
// UnixNano range (in 2262) instead of wrapping.
func (e *Engine) NextTick() (time.Time, bool) {
	if e == nil {
		return time.Time{}, false
	}
	for len(e.timers) > 0 {
		t := e.timers[0]
		if e.volumes[t.vol].timer == t.seq {
			return time.Unix(0, t.at), true
		}
		e.timers.pop()
	}
	return time.Time{}, false
}

// Tick fires every timer due at now and returns the actions that result.
// The slice is the engine's and valid until the next call. A timer armed
// during the call is not fired by it, even one due at now (which happens
// only at the last instant of time, where timers saturate), so Tick always
// returns. now must be within the range of time.Time.UnixNano (the years
// 1677 to 2262; ErrInvalidInput otherwise) and not before the last input
// (ErrOutOfOrder).
func (e *Engine) Tick(now time.Time) ([]Action, error) {
	if e == nil || e.rng == nil {
		return nil, errZeroEngine
	}
	if err := checkTime(now, "tick"); err != nil {
		return nil, err
	}
	ns := now.UnixNano()
	if e.started && ns < e.last {
		return nil, fmt.Errorf("%w: tick at %v is before the last input at %v", ErrOutOfOrder, now, time.Unix(0, e.last))
	}
	e.started, e.last = true, ns
	e.out = e.out[:0]
	// Take every timer due first, then fire them: a timer armed while
	// firing is never fired by the same Tick, even one saturated at the
	// last instant of time, so Tick always returns.
	e.due = e.due[:0]
	for len(e.timers) > 0 && e.timers[0].at <= ns {
		t := e.timers.pop()
		vol := &e.volumes[t.vol]
		if vol.timer != t.seq {
			continue
		}
		vol.timer = 0
		e.due = append(e.due, VolumeID(t.vol))
	}
	for _, v := range e.due {
		e.resume(v, &e.volumes[v], ns)
	}
	return e.out, nil
}

// Step feeds one input at time now and returns the actions that result.
// The slice is the engine's and valid until the next call. A refused input
// returns an error (see the package's Err* values) and changes nothing;
// now must be within the range of time.Time.UnixNano (ErrInvalidInput
// otherwise) and not before the last input (ErrOutOfOrder). Answers are
// judged against the cluster as it is when they arrive.
func (e *Engine) Step(now time.Time, in Input) ([]Action, error) {
	if e == nil || e.rng == nil {
		return nil, errZeroEngine
	}
	if err := checkTime(now, "input"); err != nil {
		return nil, err
	}
	ns := now.UnixNano()
	if e.started && ns < e.last {
		return nil, fmt.Errorf("%w: %v at %v is before the last input at %v", ErrOutOfOrder, in.Kind, now, time.Unix(0, e.last))
	}
	if err := e.check(in); err != nil {
		return nil, err
	}
	e.started, e.last = true, ns
	e.out = e.out[:0]
	switch in.Kind {
	case PeerLost:
		vol := &e.volumes[in.Volume]
		survivor, lost := vol.a, vol.b
		if in.Node == vol.b {
			survivor, lost = vol.b, vol.a
		}
		e.degrade(in.Volume, vol, survivor, lost, ns)
	case ProbeResult:
		e.probeResult(in.Volume, &e.volumes[in.Volume], in.OK, ns)
	case SearchResult:
		e.searchResult(in.Volume, &e.volumes[in.Volume], in.OK, ns)
	case CopyResult:
		e.copyResult(in.Volume, &e.volumes[in.Volume], in.OK, ns)
	case Elected:
		e.elected(&e.volumes[in.Volume], in.Token)
	case ElectionFailed:
		vol := &e.volumes[in.Volume]
		vol.out = outNone
		e.elects--
		if in.Token > vol.gen {
			vol.gen = in.Token
		}
		e.retry(in.Volume, vol, e.cfg.elect, ns)
	case NodeFailed:
		e.nodeFailed(in.Node, ns)
	case NodeUp:
		e.nodeUp(in.Node, ns)
	case VolumeDeleted:
		e.deleteVolume(in.Volume)
	}
	return e.out, nil
}

// check validates in against the state, without changing anything. It
// allocates only the error it returns.
func (e *Engine) check(in Input) error {
	bad := func(reason error, d detail) error {
		err := &InputError{Reason: reason, Input: in, detail: d, Nodes: len(e.nodes), Volumes: len(e.volumes)}
		if in.Volume >= 0 && int(in.Volume) < len(e.volumes) {
			vol := &e.volumes[in.Volume]
			err.State, err.Newest, err.Survivor, err.Peer, err.Target = vol.state, vol.attempt, vol.a, vol.b, vol.target
		}
		return err
	}
	switch in.Kind {
	case NodeFailed, NodeUp:
		if !e.knownNode(in.Node) {
			return bad(ErrUnknownNode, detailUnknownNode)
		}
		if down := e.nodes[in.Node].down; down == (in.Kind == NodeFailed) {
			return bad(ErrDuplicate, detailNodeAlready)
		}
		return nil
	case PeerLost, ProbeResult, SearchResult, CopyResult, Elected, ElectionFailed, VolumeDeleted:
	default:
		return bad(ErrInvalidInput, detailKind)
	}
	if in.Volume < 0 || int(in.Volume) >= len(e.volumes) || e.volumes[in.Volume].deleted {
		return bad(ErrUnknownVolume, detailUnknownVolume)
	}
	vol := &e.volumes[in.Volume]
	want := outNone
	switch in.Kind {
	case VolumeDeleted:
		return nil
	case PeerLost:
		if in.Node != vol.a && in.Node != vol.b {
			return bad(ErrOutOfOrder, detailNotReplica)
		}
		if vol.state != Healthy {
			if in.Node == vol.a {
				return bad(ErrDuplicate, detailAlreadyLost)
			}
			return bad(ErrOutOfOrder, detailOtherSide)
		}
		return nil
	case ProbeResult:
		want = outProbe
	case SearchResult:
		want = outQuery
	case CopyResult:
		want = outCopy
	case Elected, ElectionFailed:
		want = outElect
	}
	if in.Attempt != vol.attempt || vol.out != want {
		if (in.Attempt < vol.attempt && in.Attempt != 0) || (in.Attempt == vol.attempt && vol.out == outNone) {
			return bad(ErrDuplicate, detailNotOutstanding)
		}
		return bad(ErrOutOfOrder, detailNeverMade)
	}
	if in.Kind == SearchResult && in.Node != vol.target {
		return bad(ErrOutOfOrder, detailWrongTarget)
	}
	if in.Kind == Elected {
		if in.Node != vol.a {
			return bad(ErrOutOfOrder, detailWrongCandidate)
		}
		if in.Token <= vol.gen {
			return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: "volume " + strconv.Itoa(int(in.Volume)), Have: vol.gen, Want: in.Token}
		}
	}
	return nil
}

func (e *Engine) emit(a Action) {
	switch a.Kind {
	case Probe:
		e.stats.Probes++
	case Query:
		e.stats.Queries++
	case Copy:
		e.stats.Copies++
	case Release:
		e.stats.Releases++
	case Elect:
		e.stats.Elections++
	}
	e.out = append(e.out, a)
}

func (e *Engine) setState(vol *volume, s State) {
	e.stats.ByState[vol.state]--
	e.stats.ByState[s]++
	if (vol.state == Healthy) != (s == Healthy) {
		if s == Healthy {
			e.stats.Stuck--
		} else {
			e.stats.Stuck++
		}
	}
	vol.state = s
}

// degrade starts the recovery of a healthy volume.
func (e *Engine) degrade(v VolumeID, vol *volume, survivor, lost NodeID, ns int64) {
	if survivor == vol.b {
		vol.qa, vol.qb = vol.qb, vol.qa
		vol.ia, vol.ib = vol.ib, vol.ia
	}
	vol.a, vol.b = survivor, lost
	e.restart(vol, ns)
	e.resume(v, vol, ns)
}

// resume acts for a volume with nothing outstanding and no timer.
func (e *Engine) resume(v VolumeID, vol *volume, ns int64) {
	if e.nodes[vol.a].down {
		// The survivor is down: swap to the lost peer if it is up (a stuck
		// volume takes no writes, so both replicas hold the same data),
		// else wait for NodeUp.
		if e.nodes[vol.b].down {
			return
		}
		vol.a, vol.b, vol.qa, vol.qb, vol.ia, vol.ib = vol.b, vol.a, vol.qb, vol.qa, vol.ib, vol.ia
		e.restart(vol, ns)
	}
	switch vol.state {
	case Reconnecting:
		if e.nodes[vol.b].down {
			// A peer known to be down cannot answer: the probe fails
			// without a message, and the volume backs off as after
			// any failed probe (NodeUp lets the next one through).
			e.probeResult(v, vol, false, ns)
		} else {
			e.probe(v, vol)
		}
	case Searching:
		if !e.cfg.noReconnect && !e.nodes[vol.b].down {
			e.probe(v, vol)
		} else {
			e.search(v, vol, ns)
		}
	case Electing:
		e.elect(v, vol, ns)
	}
}

// restart begins the recovery again from Reconnecting (or Searching), for
// a volume whose mirror was lost again.
func (e *Engine) restart(vol *volume, ns int64) {
	vol.since, vol.tries, vol.prev = ns, 0, 0
	if e.cfg.noReconnect {
		e.setState(vol, Searching)
	} else {
		e.setState(vol, Reconnecting)
	}
}

func (e *Engine) probe(v VolumeID, vol *volume) {
	vol.attempt++
	vol.out = outProbe
	e.emit(Action{Kind: Probe, Volume: v, Attempt: vol.attempt, From: vol.a, To: vol.b})
}

func (e *Engine) probeResult(v VolumeID, vol *volume, ok bool, ns int64) {
	vol.out = outNone
	// An answer is judged against the cluster as it is now: a peer known
	// to be down has not reconnected, whatever the driver says (it may be
	// an answer sent before the crash, or a probe made after it).
	if ok && !e.nodes[vol.a].down && !e.nodes[vol.b].down {
		e.stats.Reconnected++
		vol.tries, vol.prev = 0, 0
		e.setState(vol, Electing)
		e.elect(v, vol, ns)
		return
	}
	if vol.state == Searching {
		e.search(v, vol, ns)
		return
	}
	// ns ≥ since, so their difference as a uint64 is exact even where
	// the int64 one would wrap.
	if uint64(ns-vol.since) >= uint64(e.cfg.window) {
		vol.tries, vol.prev = 0, 0
		e.setState(vol, Searching)
		e.search(v, vol, ns)
		return
	}
	e.retry(v, vol, e.cfg.reconnect, ns)
}

// retry arms the volume's timer after the next delay of p.
func (e *Engine) retry(v VolumeID, vol *volume, p backoff.Policy, ns int64) {
	if vol.tries < math.MaxUint16 {
		vol.tries++
	}
	d := int64(p.Delay(int(vol.tries), time.Duration(vol.prev), e.rng.Float64()))
	vol.prev = d
	e.arm(v, vol, addSat(ns, max(d, 1)))
}

func (e *Engine) arm(v VolumeID, vol *volume, at int64) {
	e.timerSeq++
	if e.timerSeq == 0 {
		e.timerSeq = 1
	}
	vol.timer = e.timerSeq
	e.timers.push(timer{at: at, vol: int32(v), seq: vol.timer})
}

func (e *Engine) slotFree(n NodeID) bool {
	return e.cfg.maxPerNode < 0 || int(e.nodes[n].inflight) < e.cfg.maxPerNode
}

// search makes one search attempt: a candidate from the ledger (or a random
// node without hints), within the concurrency bounds and the budget.
func (e *Engine) search(v VolumeID, vol *volume, ns int64) {
	if (e.cfg.maxPerCluster >= 0 && e.inflight >= e.cfg.maxPerCluster) || !e.slotFree(vol.a) {
		e.retry(v, vol, e.cfg.search, ns)
		return
	}
	t := e.candidate(vol, ns)
	if t == NoNode {
		e.stats.NoCandidate++
		e.retry(v, vol, e.cfg.search, ns)
		return
	}
	if e.budget != nil && !e.budget.AllowAt(time.Unix(0, ns)) {
		e.stats.BudgetRefused++
		e.retry(v, vol, e.cfg.search, ns)
		return
	}
	e.nodes[vol.a].inflight++
	e.nodes[t].inflight++
	vol.it = int32(len(e.nodes[t].incoming))
	e.nodes[t].incoming = append(e.nodes[t].incoming, v)
	e.inflight++
	vol.target = t
	vol.attempt++
	vol.out = outQuery
	e.emit(Action{Kind: Query, Volume: v, Attempt: vol.attempt, From: vol.a, To: t, Size: vol.size})
}

// candidate picks a target for vol: the node with the most room among a
// few random ones that qualify, or among all if none of those does.
func (e *Engine) candidate(vol *volume, ns int64) NodeID {
	n := len(e.nodes)
	if e.cfg.noHints {
		// The 2011 behaviour: any node but the volume's own, room or not
		// (but within MaxPerNode, which bounds even a blind search).
		for range 8 {
			t := NodeID(e.rng.IntN(n))
			if t != vol.a && t != vol.b && e.slotFree(t) {
				return t
			}
		}
		return NoNode
	}
	best, room := NoNode, int64(-1)
	consider := func(t NodeID) {
		nd := &e.nodes[t]
		if t == vol.a || t == vol.b || nd.down || nd.quarantined || nd.unreachable > ns || !e.slotFree(t) {
			return
		}
		if r := nd.capacity - nd.used; r >= vol.size && r > room {
			best, room = t, r
		}
	}
	for range 8 {
		consider(NodeID(e.rng.IntN(n)))
	}
	if best == NoNode {
		for t := range n {
			consider(NodeID(t))
		}
	}
	return best
}

func (e *Engine) endRemirror(v VolumeID, vol *volume) {
	e.nodes[vol.a].inflight--
	e.nodes[vol.target].inflight--
	// Removed in O(1): the last entry moves into its place.
	in := e.nodes[vol.target].incoming
	last := in[len(in)-1]
	in[vol.it] = last
	e.volumes[last].it = vol.it
	e.nodes[vol.target].incoming = in[:len(in)-1]
	e.inflight--
	vol.target = NoNode
}

func (e *Engine) searchResult(v VolumeID, vol *volume, ok bool, ns int64) {
	vol.out = outNone
	t := &e.nodes[vol.target]
	if ok && !t.down && !t.quarantined && t.capacity-t.used >= vol.size {
		t.used += vol.size
		e.setState(vol, Copying)
		vol.attempt++
		vol.out = outCopy
		e.emit(Action{Kind: Copy, Volume: v, Attempt: vol.attempt, From: vol.a, To: vol.target, Size: vol.size})
		return
	}
	if !ok {
		t.unreachable = addSat(ns, int64(e.cfg.unreachableFor))
	}
	e.endRemirror(v, vol)
	e.retry(v, vol, e.cfg.search, ns)
}

// copyResult needs no check of the cluster on arrival: NodeFailed ends
// every copy from or to the failed node, so a copy still outstanding has
// both ends up. (The lost peer may be down; the copy releases it.)
func (e *Engine) copyResult(v VolumeID, vol *volume, ok bool, ns int64) {
	vol.out = outNone
	target := vol.target
	e.endRemirror(v, vol)
	if !ok {
		e.nodes[target].used -= vol.size
		e.emit(Action{Kind: Discard, Volume: v, From: vol.a, To: target, Size: vol.size})
		e.setState(vol, Searching)
		e.retry(v, vol, e.cfg.search, ns)
		return
	}
	// The new owner confirmed: only now may the lost peer let go.
	e.stats.Remirrored++
	lost := vol.b
	e.nodes[lost].used -= vol.size
	e.removeReplica(lost, vol.ib)
	vol.ib = e.addReplica(target, v)
	e.emit(Action{Kind: Release, Volume: v, From: vol.a, To: lost, Size: vol.size})
	if vol.qb {
		e.safe(lost)
	}
	vol.b, vol.qb = target, false
	vol.tries, vol.prev = 0, 0
	e.setState(vol, Electing)
	e.elect(v, vol, ns)
}

func (e *Engine) elect(v VolumeID, vol *volume, ns int64) {
	if e.cfg.maxElections >= 0 && e.elects >= e.cfg.maxElections {
		e.retry(v, vol, e.cfg.elect, ns)
		return
	}
	e.elects++
	vol.attempt++
	vol.out = outElect
	e.emit(Action{Kind: Elect, Volume: v, Attempt: vol.attempt, From: vol.a, To: NoNode, Expect: vol.gen})
}

// elected needs no check of the cluster on arrival either: NodeFailed ends
// the election of every volume with a replica on the failed node, so an
// election still outstanding has both replicas up.
func (e *Engine) elected(vol *volume, token fence.Token) {
	vol.out = outNone
	e.elects--
	vol.gen = token
	vol.tries, vol.prev = 0, 0
	e.setState(vol, Healthy)
	e.settle(vol)
}

// settle marks a volume's replicas safe for the quarantine of their nodes.
func (e *Engine) settle(vol *volume) {
	if vol.qa {
		vol.qa = false
		e.safe(vol.a)
	}
	if vol.qb {
		vol.qb = false
		e.safe(vol.b)
	}
}

func (e *Engine) safe(n NodeID) {
	nd := &e.nodes[n]
	nd.unsafe--
	if nd.unsafe == 0 {
		// Down or up: a node is quarantined exactly while it holds a
		// replica not yet safe (a down node takes nothing anyway).
		nd.quarantined = false
	}
}

// abort abandons whatever vol has outstanding or armed, as if the answer
// had been a failure, so that a late answer is refused as a duplicate.
func (e *Engine) abort(v VolumeID, vol *volume) {
	switch vol.out {
	case outQuery:
		e.endRemirror(v, vol)
	case outCopy:
		target := vol.target
		e.endRemirror(v, vol)
		e.nodes[target].used -= vol.size
		e.emit(Action{Kind: Discard, Volume: v, From: vol.a, To: target, Size: vol.size})
		e.setState(vol, Searching)
	case outElect:
		e.elects--
	}
	vol.out = outNone
	vol.timer = 0
	vol.attempt++
}

// touch reads the volumes of vs ahead of a loop over them. The reads are
// independent of each other, so the processor overlaps their cache misses,
// which the loop's long body would otherwise take one at a time: in a large
// cluster a node's failure and return cost mostly these misses.
func (e *Engine) touch(vs []VolumeID) {
	var x State
	for _, v := range vs {
		x |= e.volumes[v].state
	}
	e.touched = x
}

// touchTargets reads, the same way, the lists of incoming volumes of the
// targets of the volumes of vs, which aborting their remirrors edits.
func (e *Engine) touchTargets(vs []VolumeID) {
	var x VolumeID
	for _, v := range vs {
		if t := e.volumes[v].target; t != NoNode {
			if in := e.nodes[t].incoming; len(in) > 0 {
				x |= in[0] | in[len(in)-1]
			}
		}
	}
	e.touched |= State(x)
}

func (e *Engine) nodeFailed(n NodeID, ns int64) {
	nd := &e.nodes[n]
	nd.down = true
	nd.quarantined = true
	e.touch(nd.incoming)
	e.touch(nd.vols)
	e.touchTargets(nd.vols)
	// Abort every re-mirror aimed at n before resuming any: a resumed
	// search may pick n again (blindly, with NoHints), and must not be
	// aborted in the same step after its message was sent.
	e.aborted = append(e.aborted[:0], nd.incoming...)
	for _, v := range e.aborted {
		e.abort(v, &e.volumes[v])
	}
	for _, v := range e.aborted {
		e.resume(v, &e.volumes[v], ns)
	}
	for _, v := range nd.vols {
		vol := &e.volumes[v]
		touches := vol.a == n || vol.b == n
		if touches {
			if vol.a == n && !vol.qa {
				vol.qa = true
				nd.unsafe++
			}
			if vol.b == n && !vol.qb {
				vol.qb = true
				nd.unsafe++
			}
		}
		switch {
		case vol.state == Healthy && touches:
			survivor, lost := vol.a, vol.b
			if survivor == n {
				survivor, lost = lost, survivor
			}
			e.degrade(v, vol, survivor, lost, ns)
		case vol.state != Healthy && vol.a == n:
			e.abort(v, vol)
			e.resume(v, vol, ns)
		case vol.out == outProbe && vol.b == n:
			// The peer it probes failed: the probe failed, and an answer
			// to it, even one sent before the crash, comes too late.
			e.abort(v, vol)
			e.probeResult(v, vol, false, ns)
		case vol.state == Electing && vol.b == n:
			// The mirror was lost again before the election: a volume must
			// not become healthy with its second replica down.
			e.abort(v, vol)
			e.restart(vol, ns)
			e.resume(v, vol, ns)
		}
	}
	if nd.unsafe == 0 {
		// Nothing it held needs protecting; it stays out of placement only
		// while it is down.
		nd.quarantined = false
	}
}

func (e *Engine) nodeUp(n NodeID, ns int64) {
	nd := &e.nodes[n]
	nd.down = false
	nd.unreachable = 0
	if nd.unsafe == 0 {
		nd.quarantined = false
	}
	e.touch(nd.vols)
	for _, v := range nd.vols {
		vol := &e.volumes[v]
		if vol.state == Healthy || vol.out != outNone || vol.timer != 0 {
			continue
		}
		e.resume(v, vol, ns)
	}
}

func (e *Engine) deleteVolume(v VolumeID) {
	vol := &e.volumes[v]
	if vol.state != Healthy {
		e.abort(v, vol)
	}
	e.settle(vol)
	e.setState(vol, Healthy)
	e.removeReplica(vol.a, vol.ia)
	e.removeReplica(vol.b, vol.ib)
	for _, n := range [2]NodeID{vol.a, vol.b} {
		e.nodes[n].used -= vol.size
		e.emit(Action{Kind: Release, Volume: v, From: NoNode, To: n, Size: vol.size})
	}
	vol.deleted = true
	vol.timer = 0
	e.stats.ByState[Healthy]--
	e.stats.Volumes--
}

// The first and last instants whose UnixNano is defined.
var (
	firstTime = time.Unix(0, math.MinInt64)
	lastTime  = time.Unix(0, math.MaxInt64)
)

// atLeastLast returns now, or the last input's time if now is before it
// (Concurrent's goroutines cannot order their clocks). A now outside the
// range of UnixNano is returned as it is, for Step or Tick to refuse.
func (e *Engine) atLeastLast(now time.Time) time.Time {
	if e.started && checkTime(now, "") == nil && now.UnixNano() < e.last {
		return time.Unix(0, e.last)
	}
	return now
}

// checkTime refuses a time outside the range of UnixNano (the years 1677
// to 2262), whose nanoseconds would wrap.
func checkTime(now time.Time, what string) error {
	if now.Before(firstTime) || now.After(lastTime) {
		return fmt.Errorf("%w: %s at %v is outside the range of times the engine counts in nanoseconds (%v to %v)", ErrInvalidInput, what, now, firstTime.UTC(), lastTime.UTC())
	}
	return nil
}

// addSat returns a+b, saturated at the bounds of int64.
func addSat(a, b int64) int64 {
	c := a + b
	switch {
	case b > 0 && c < a:
		return math.MaxInt64
	case b < 0 && c > a:
		return math.MinInt64
	}
	return c
}
