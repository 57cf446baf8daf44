package remirror

import (
	"math"
	"math/big"
	"math/bits"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/fence"
)

// world is a model of everything outside the engine: which nodes are down,
// which hold each volume's data, the authority's generations, and the
// requests the engine made. It also keeps, from nothing but the inputs it
// fed and the actions the engine returned, its own account of the requests
// outstanding and of the replicas each failed node held that are not safe
// yet, against which it checks the engine's bounds and its quarantine.
type world struct {
	e        *Engine
	s        Settings
	now      time.Time
	down     []bool
	capacity []int64 // of each node
	size     []int64 // of each volume
	huge     bool    // sizes and capacities up to MaxInt64
	holders  []map[NodeID]bool
	gens     []fence.Token
	holder   []NodeID
	deleted  []bool
	pending  []Action // requests not answered yet
	answered []Input  // answers already given, replayed as duplicates
	queries  []time.Time

	// live is the request outstanding for each volume: made, and neither
	// answered nor abandoned by an input that ends it (see abandon).
	live map[VolumeID]Action
	// granted is the search the input being fed answered, if it did, so
	// that a Copy can be matched to the search that reserved its room.
	granted *Action
	// unsafe holds, for each node, the volumes whose data it held when it
	// failed and which are not safe yet: neither released from it nor
	// elected healthy again, nor deleted.
	unsafe []map[VolumeID]bool
}

func newWorld(t *rapid.T) *world {
	s := Settings{
		ReconnectWindow: time.Duration(rapid.IntRange(1, 30).Draw(t, "window")) * time.Second,
		SearchRate:      float64(rapid.IntRange(1, 20).Draw(t, "rate")) / 4,
		SearchBurst:     rapid.IntRange(1, 3).Draw(t, "burst"),
		MaxPerNode:      rapid.IntRange(1, 3).Draw(t, "perNode"),
		MaxPerCluster:   rapid.IntRange(1, 4).Draw(t, "perCluster"),
		MaxElections:    rapid.IntRange(1, 3).Draw(t, "elections"),
		NoHints:         rapid.Bool().Draw(t, "noHints"),
		NoReconnect:     rapid.Bool().Draw(t, "noReconnect"),
	}
	if rapid.IntRange(0, 3).Draw(t, "extremeTimers") == 0 {
		// Delays and windows up to the largest Duration: timers saturate
		// instead of wrapping.
		huge := func(label string) backoff.Policy {
			return backoff.Policy{
				Base:       time.Duration(rapid.Int64Range(1, math.MaxInt64).Draw(t, label+"Base")),
				Cap:        math.MaxInt64,
				Multiplier: rapid.Float64Range(1, 1e6).Draw(t, label+"Multiplier"),
				Jitter:     rapid.SampledFrom([]backoff.Jitter{backoff.JitterFull, backoff.JitterEqual, backoff.JitterDecorrelated, backoff.JitterNone}).Draw(t, label+"Jitter"),
			}
		}
		s.Reconnect, s.Search, s.Elect = huge("reconnect"), huge("search"), huge("elect")
		s.ReconnectWindow = time.Duration(rapid.Int64Range(1, math.MaxInt64).Draw(t, "hugeWindow"))
		s.UnreachableFor = time.Duration(rapid.Int64Range(1, math.MaxInt64).Draw(t, "hugeUnreachable"))
	}
	e, err := NewEngine(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{e: e, s: s, now: t0, live: make(map[VolumeID]Action)}
	// Times near either end of the UnixNano range, and sizes and
	// capacities up to MaxInt64, must neither wrap nor hang.
	switch rapid.IntRange(0, 3).Draw(t, "epoch") {
	case 1:
		w.now = firstNano.Add(time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "sinceFirst")))
	case 2:
		w.now = lastNano.Add(-time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "beforeLast")))
	}
	w.huge = rapid.Bool().Draw(t, "huge")
	nodes := rapid.IntRange(3, 7).Draw(t, "nodes")
	for range nodes {
		c := int64(rapid.IntRange(2, 6).Draw(t, "capacity"))
		if w.huge {
			c = rapid.SampledFrom([]int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 / 2, 1 << 62}).Draw(t, "hugeCapacity")
		}
		if _, err := e.AddNode(c); err != nil {
			t.Fatal(err)
		}
		w.capacity = append(w.capacity, c)
	}
	w.down = make([]bool, nodes)
	w.unsafe = make([]map[VolumeID]bool, nodes)
	for n := range w.unsafe {
		w.unsafe[n] = make(map[VolumeID]bool)
	}
	for range rapid.IntRange(1, 12).Draw(t, "volumes") {
		w.addVolume(t)
	}
	return w
}

// addVolume asks the engine for a new volume on two drawn nodes. The engine
// may refuse (no room, same node twice), but never places a replica on a
// node that is down or still holds a replica not yet safe.
func (w *world) addVolume(t *rapid.T) {
	a := NodeID(rapid.IntRange(0, len(w.down)-1).Draw(t, "a"))
	b := NodeID(rapid.IntRange(0, len(w.down)-1).Draw(t, "b"))
	size := int64(1)
	if w.huge {
		size = rapid.OneOf(rapid.SampledFrom([]int64{1, math.MaxInt64, math.MaxInt64 / 2, math.MaxInt64/4 + 1}), rapid.Int64Range(1, math.MaxInt64)).Draw(t, "size")
	}
	v, err := w.e.AddVolume(size, a, b, 1)
	if err != nil {
		return
	}
	for _, n := range [2]NodeID{a, b} {
		if w.down[n] || len(w.unsafe[n]) > 0 {
			t.Fatalf("volume %d placed on node %d, which is down (%v) or holds unsafe replicas of %v", v, n, w.down[n], w.unsafe[n])
		}
	}
	if int(v) != len(w.gens) {
		t.Fatalf("AddVolume returned %d, want %d", v, len(w.gens))
	}
	w.holders = append(w.holders, map[NodeID]bool{a: true, b: true})
	w.gens = append(w.gens, 1)
	w.size = append(w.size, size)
	w.holder = append(w.holder, a)
	w.deleted = append(w.deleted, false)
}

// answers reports whether in is the answer to request a.
func answers(in Input, a Action) bool {
	if in.Volume != a.Volume || in.Attempt != a.Attempt {
		return false
	}
	switch a.Kind {
	case Probe:
		return in.Kind == ProbeResult
	case Query:
		return in.Kind == SearchResult
	case Copy:
		return in.Kind == CopyResult
	case Elect:
		return in.Kind == Elected || in.Kind == ElectionFailed
	}
	return false
}

// feed steps the engine and checks the actions it returns.
func (w *world) feed(t *rapid.T, in Input) {
	req, live := w.live[in.Volume]
	live = live && answers(in, req)
	before := snapshot(w.e)
	acts, err := w.e.Step(w.now, in)
	if err != nil {
		if !reflect.DeepEqual(before, snapshot(w.e)) {
			t.Fatalf("refused %+v (%v) but changed the state", in, err)
		}
		if live {
			t.Fatalf("refused %+v (%v), the answer to its outstanding %+v", in, err, req)
		}
		return
	}
	if in.Kind >= ProbeResult && in.Kind <= ElectionFailed {
		if !live {
			t.Fatalf("accepted %+v, which answers no outstanding request (outstanding: %+v)", in, w.live[in.Volume])
		}
		delete(w.live, in.Volume)
		w.answered = append(w.answered, in)
	}
	switch in.Kind {
	case SearchResult:
		w.granted = &req
		defer func() { w.granted = nil }()
	case CopyResult:
		if in.OK {
			// The target's copy is complete: it holds the data.
			w.holders[in.Volume][req.To] = true
		}
	case Elected:
		// The volume is healthy again: every replica it has is in sync.
		for n := range w.holders[in.Volume] {
			delete(w.unsafe[n], in.Volume)
		}
	case NodeFailed:
		w.abandon(in.Node)
		for v, hs := range w.holders {
			if hs[in.Node] && !w.deleted[v] {
				w.unsafe[in.Node][VolumeID(v)] = true
			}
		}
	case VolumeDeleted:
		w.deleted[in.Volume] = true
		delete(w.live, in.Volume)
		for n := range w.unsafe {
			delete(w.unsafe[n], in.Volume)
		}
	}
	w.carry(t, acts)
}

// abandon ends the requests that the failure of node n ends: what n was
// doing as survivor (probe, search, copy or election), the probes, searches
// and copies aimed at n, and the elections of the volumes whose other
// replica is on n (a volume must not become healthy with a replica down).
// A search by a volume whose lost peer is n goes on. The engine
// must agree: feed fails on an answer it refuses to a request still
// outstanding here, and on one it accepts to a request ended here.
func (w *world) abandon(n NodeID) {
	for v, a := range w.live {
		var ends bool
		switch a.Kind {
		case Probe, Query, Copy:
			ends = a.From == n || a.To == n
		case Elect:
			ends = w.holders[v][n]
		}
		if ends {
			delete(w.live, v)
		}
	}
}

func (w *world) carry(t *rapid.T, acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case Release:
			delete(w.holders[a.Volume], a.To)
			delete(w.unsafe[a.To], a.Volume)
		case Discard:
		default:
			w.request(t, a)
		}
	}
}

// request records a request the engine made and checks it against the
// world's own account of what is outstanding and of which nodes are safe.
func (w *world) request(t *rapid.T, a Action) {
	if prev, ok := w.live[a.Volume]; ok {
		t.Fatalf("%v %+v while %v %+v is outstanding", a.Kind, a, prev.Kind, prev)
	}
	switch a.Kind {
	case Copy:
		if g := w.granted; g == nil || g.Kind != Query || g.Volume != a.Volume || g.From != a.From || g.To != a.To {
			t.Fatalf("copy %+v without the search that granted it (answered: %+v)", a, g)
		}
		if w.down[a.To] || len(w.unsafe[a.To]) > 0 {
			t.Fatalf("copy of volume %d to node %d, which is down (%v) or holds unsafe replicas of %v", a.Volume, a.To, w.down[a.To], w.unsafe[a.To])
		}
	case Query:
		if !w.s.NoHints && (w.down[a.To] || len(w.unsafe[a.To]) > 0) {
			t.Fatalf("with hints, query to node %d, which is down (%v) or holds unsafe replicas of %v", a.To, w.down[a.To], w.unsafe[a.To])
		}
		w.queries = append(w.queries, w.now)
	}
	w.live[a.Volume] = a
	w.pending = append(w.pending, a)
	w.checkBounds(t)
}

// outstanding counts the requests the world knows to be outstanding: the
// re-mirrors in flight, from their search to the end of their copy, by
// node taking part (as source or as target) and in all, and the elections.
func (w *world) outstanding() (perNode []int, remirrors, elections int) {
	perNode = make([]int, len(w.down))
	for _, a := range w.live {
		switch a.Kind {
		case Query, Copy:
			remirrors++
			perNode[a.From]++
			perNode[a.To]++
		case Elect:
			elections++
		}
	}
	return perNode, remirrors, elections
}

// checkBounds checks MaxPerNode, MaxPerCluster and MaxElections against the
// requests the world counts outstanding.
func (w *world) checkBounds(t *rapid.T) {
	perNode, remirrors, elections := w.outstanding()
	for n, c := range perNode {
		if c > w.s.MaxPerNode {
			t.Fatalf("node %d takes part in %d re-mirrors, MaxPerNode %d: %+v", n, c, w.s.MaxPerNode, w.live)
		}
	}
	if remirrors > w.s.MaxPerCluster {
		t.Fatalf("%d re-mirrors in flight, MaxPerCluster %d: %+v", remirrors, w.s.MaxPerCluster, w.live)
	}
	if elections > w.s.MaxElections {
		t.Fatalf("%d elections outstanding, MaxElections %d: %+v", elections, w.s.MaxElections, w.live)
	}
}

// answer answers a pending request, as the world would. A late answer was
// sent before one end crashed (or is garbage from a node the engine knows
// is down): it may say OK even though an end is down now.
func (w *world) answer(t *rapid.T, i int, ok, late bool) {
	a := w.pending[i]
	w.pending = slices.Delete(w.pending, i, i+1)
	in := Input{Volume: a.Volume, Node: a.To, Attempt: a.Attempt, OK: ok && (late || !w.down[a.From] && (a.To < 0 || !w.down[a.To]))}
	switch a.Kind {
	case Probe:
		in.Kind = ProbeResult
	case Query:
		in.Kind = SearchResult
	case Copy:
		in.Kind = CopyResult
	case Elect:
		// The authority is a compare-and-swap on the generation; re-electing
		// the holder of a newer one returns it.
		in.Node = a.From
		g := &w.gens[a.Volume]
		switch {
		case !ok:
			in.Kind = ElectionFailed // shed or timed out before reaching it
		case *g == a.Expect:
			*g++
			w.holder[a.Volume] = a.From
			in.Kind, in.Token = Elected, *g
			if rapid.Bool().Draw(t, "lostAnswer") {
				in = Input{Kind: ElectionFailed, Volume: a.Volume, Attempt: a.Attempt}
			}
		case *g > a.Expect && w.holder[a.Volume] == a.From:
			in.Kind, in.Token = Elected, *g
		default:
			in.Kind, in.Token = ElectionFailed, *g
		}
	}
	w.feed(t, in)
}

func (w *world) check(t *rapid.T) {
	e := w.e
	stuck := 0
	unsafe := make([]int32, len(e.nodes))
	used := make([]int64, len(e.nodes))
	for i := range e.volumes {
		vol := &e.volumes[i]
		v := VolumeID(i)
		if vol.deleted {
			continue
		}
		if vol.state != Healthy {
			stuck++
		}
		// One writable primary: the engine's primary is exactly the
		// authority's current holder, at the authority's generation.
		if n, g, ok := e.Primary(v); ok && (g != w.gens[v] || n != w.holder[v]) {
			t.Fatalf("volume %d: primary %d at generation %d, authority has %d at %d", v, n, g, w.holder[v], w.gens[v])
		}
		// Data is never released before a new owner confirmed: both replicas
		// the engine counts on hold the data.
		if !w.holders[v][vol.a] || !w.holders[v][vol.b] {
			t.Fatalf("volume %d (state %v): replicas %d and %d, data on %v", v, vol.state, vol.a, vol.b, w.holders[v])
		}
		// A healthy volume's replicas are both up, and both safe: none is
		// a replica its node held when it failed and that has not been
		// made safe since (so none sits on a quarantined node on
		// sufferance).
		if n, _, ok := e.Primary(v); ok {
			a, b, _ := e.Replicas(v)
			if n != a {
				t.Fatalf("volume %d: primary %d, replicas %d and %d", v, n, a, b)
			}
			for _, r := range [2]NodeID{a, b} {
				if w.down[r] || w.unsafe[r][v] {
					t.Fatalf("volume %d is healthy with a replica on node %d, which is down (%v) or holds it unsafe (%v)", v, r, w.down[r], w.unsafe[r])
				}
			}
		}
		// Requests outstanding have their ends up (NodeFailed ends the
		// others), so copy and election answers need no check on arrival.
		// (A blind search, with NoHints, may query a node already down:
		// its answer is checked when it arrives.)
		switch vol.out {
		case outQuery:
			if w.down[vol.a] {
				t.Fatalf("volume %d: search from down node %d outstanding", v, vol.a)
			}
		case outCopy:
			if w.down[vol.a] || w.down[vol.target] {
				t.Fatalf("volume %d: %v from %d to %d outstanding with an end down", v, vol.state, vol.a, vol.target)
			}
		case outElect:
			if w.down[vol.a] || w.down[vol.b] {
				t.Fatalf("volume %d: election outstanding with replica %d or %d down", v, vol.a, vol.b)
			}
		}
		// No stuck volume is forgotten: it has a request outstanding or a
		// timer armed in the heap, or both its replicas are down and the
		// first NodeUp resumes it.
		if vol.state != Healthy && vol.out == outNone && !(w.down[vol.a] && w.down[vol.b]) {
			armed := false
			for _, tm := range e.timers {
				armed = armed || (vol.timer != 0 && tm.vol == int32(v) && tm.seq == vol.timer)
			}
			if !armed {
				t.Fatalf("volume %d is %v with nothing outstanding and no timer armed (replicas %d down %v, %d down %v)", v, vol.state, vol.a, w.down[vol.a], vol.b, w.down[vol.b])
			}
		}
		if vol.target != NoNode {
			if in := e.nodes[vol.target].incoming; int(vol.it) >= len(in) || in[vol.it] != v {
				t.Fatalf("volume %d: target %d at %d, incoming %v", v, vol.target, vol.it, in)
			}
		}
		// Each replica knows where it is in its node's list of volumes.
		if la, lb := e.nodes[vol.a].vols, e.nodes[vol.b].vols; int(vol.ia) >= len(la) || la[vol.ia] != v || int(vol.ib) >= len(lb) || lb[vol.ib] != v {
			t.Fatalf("volume %d: replicas %d at %d and %d at %d, lists %v and %v", v, vol.a, vol.ia, vol.b, vol.ib, la, lb)
		}
		if vol.qa {
			unsafe[vol.a]++
		}
		if vol.qb {
			unsafe[vol.b]++
		}
		used[vol.a] += vol.size
		used[vol.b] += vol.size
		if vol.out == outCopy {
			used[vol.target] += vol.size
		}
	}
	entries, live, incoming, targeting := 0, 0, 0, 0
	for n := range e.nodes {
		entries += len(e.nodes[n].vols)
		incoming += len(e.nodes[n].incoming)
	}
	for i := range e.volumes {
		if !e.volumes[i].deleted {
			live++
		}
		if e.volumes[i].target != NoNode {
			targeting++
		}
	}
	if entries != 2*live || incoming != targeting {
		t.Fatalf("the nodes list %d replicas and %d incoming; %d live volumes have %d replicas, %d a target", entries, incoming, live, 2*live, targeting)
	}
	if s := e.Stats(); s.Stuck != stuck {
		t.Fatalf("Stats.Stuck %d, counted %d", s.Stuck, stuck)
	}
	w.checkSpace(t)
	// Every timer due has fired, and none is armed in the past (a timer
	// saturates at the last instant of time instead of wrapping).
	if at, ok := e.NextTick(); ok && !at.After(w.now) && !(at.Equal(lastNano) && w.now.Equal(lastNano)) {
		t.Fatalf("timer armed at %v, now is %v", at, w.now)
	}
	for n := range e.nodes {
		nd := &e.nodes[n]
		if nd.unsafe != unsafe[n] || nd.used != used[n] {
			t.Fatalf("node %d: unsafe %d used %d, counted %d and %d", n, nd.unsafe, nd.used, unsafe[n], used[n])
		}
		if nd.unsafe > 0 && !nd.quarantined {
			t.Fatalf("node %d holds %d unsafe replicas but is not quarantined", n, nd.unsafe)
		}
		if nd.used > nd.capacity {
			t.Fatalf("node %d uses %d of %d", n, nd.used, nd.capacity)
		}
		// A node is quarantined while, by the world's account, it holds a
		// replica that was there when it failed and is not safe yet; once
		// back up, exactly while it does.
		if _, _, _, q, _ := e.NodeStatus(NodeID(n)); q != (len(w.unsafe[n]) > 0) {
			t.Fatalf("node %d (down %v) quarantined %v, but the unsafe replicas it holds are %v", n, w.down[n], q, w.unsafe[n])
		}
	}
	w.checkBounds(t)
	// The engine's own counters agree with the world's.
	_, remirrors, elections := w.outstanding()
	if s := e.Stats(); s.InFlight != remirrors || s.ElectionsOut != elections {
		t.Fatalf("Stats: %d re-mirrors in flight and %d elections outstanding, the world counts %d and %d", s.InFlight, s.ElectionsOut, remirrors, elections)
	}
	// The search budget: in every window [s, now], at most burst + rate·(now−s)
	// search messages.
	for i, s := range w.queries {
		n := len(w.queries) - i
		if allowed := float64(w.s.SearchBurst) + w.s.SearchRate*w.now.Sub(s).Seconds(); float64(n) > allowed+1e-9 {
			t.Fatalf("%d searches since %v, budget allows %.2f", n, s, allowed)
		}
	}
}

// checkSpace checks the engine's ledger against the world's own: a node
// uses the sizes of the live volumes whose data it holds plus those of the
// copies outstanding to it, never more than its capacity and never less
// than zero; Stats.Free is the room on the nodes that are up and hold
// nothing unsafe, saturated at MaxInt64.
func (w *world) checkSpace(t *rapid.T) {
	used := make([]uint64, len(w.down))
	add := func(n NodeID, size int64) {
		var carry uint64
		used[n], carry = bits.Add64(used[n], uint64(size), 0)
		if carry != 0 || used[n] > uint64(w.capacity[n]) {
			t.Fatalf("node %d: the world counts more than its capacity %d in use", n, w.capacity[n])
		}
	}
	for v, hs := range w.holders {
		if w.deleted[v] {
			continue
		}
		for n := range hs {
			add(n, w.size[v])
		}
	}
	for v, a := range w.live {
		if a.Kind == Copy {
			add(a.To, w.size[v])
		}
	}
	free := new(big.Int)
	for n := range w.down {
		c, u, _, _, ok := w.e.NodeStatus(NodeID(n))
		if !ok || c != w.capacity[n] || u < 0 || uint64(u) != used[n] {
			t.Fatalf("node %d: capacity %d, used %d; the world counts %d and %d", n, c, u, w.capacity[n], used[n])
		}
		if !w.down[n] && len(w.unsafe[n]) == 0 {
			free.Add(free, big.NewInt(c-u))
		}
	}
	if !free.IsInt64() {
		free.SetInt64(math.MaxInt64)
	}
	if f := w.e.Stats().Free; f != free.Int64() {
		t.Fatalf("Stats.Free %d, the world counts %d", f, free)
	}
}

// garbage feeds an answer with random fields (or an unknown kind) that
// answers no outstanding request: the engine must refuse it and change
// nothing (feed checks both).
func (w *world) garbage(t *rapid.T) {
	in := Input{
		Kind:    InputKind(rapid.SampledFrom([]int{0, int(ProbeResult), int(SearchResult), int(CopyResult), int(Elected), int(ElectionFailed), 10, 255}).Draw(t, "garbageKind")),
		Volume:  VolumeID(rapid.IntRange(-1, len(w.gens)).Draw(t, "garbageVol")),
		Node:    NodeID(rapid.IntRange(-1, len(w.down)).Draw(t, "garbageNode")),
		Attempt: uint32(rapid.IntRange(0, 40).Draw(t, "garbageAttempt")),
		OK:      rapid.Bool().Draw(t, "garbageOK"),
		Token:   fence.Token(rapid.Uint64().Draw(t, "garbageToken")),
	}
	if a, ok := w.live[in.Volume]; ok && answers(in, a) {
		return // that would be the answer itself, not garbage
	}
	w.feed(t, in)
}

// advance moves the world's clock forward by d, stopping at the last
// instant of the UnixNano range.
func (w *world) advance(d time.Duration) {
	if lastNano.Sub(w.now) < d {
		w.now = lastNano
		return
	}
	w.now = w.now.Add(d)
}

func TestPropertyEngineInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t)
		if len(w.gens) == 0 {
			return
		}
		for range rapid.IntRange(1, 300).Draw(t, "steps") {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op <= 1:
				w.advance(time.Duration(rapid.IntRange(0, 8000).Draw(t, "ms")) * time.Millisecond)
				if rapid.IntRange(0, 20).Draw(t, "leap") == 0 {
					w.advance(time.Duration(rapid.Int64Range(0, math.MaxInt64).Draw(t, "leapBy")))
				}
				acts, err := w.e.Tick(w.now)
				if err != nil {
					t.Fatal(err)
				}
				w.carry(t, acts)
			case op == 2:
				v := VolumeID(rapid.IntRange(0, len(w.gens)-1).Draw(t, "vol"))
				w.feed(t, Input{Kind: PeerLost, Volume: v, Node: NodeID(rapid.IntRange(0, len(w.down)-1).Draw(t, "from"))})
			case op <= 6 && len(w.pending) > 0:
				w.answer(t, rapid.IntRange(0, len(w.pending)-1).Draw(t, "req"), rapid.IntRange(0, 3).Draw(t, "ok") > 0, rapid.IntRange(0, 2).Draw(t, "late") == 0)
			case op == 7 && len(w.answered) > 0:
				in := w.answered[rapid.IntRange(0, len(w.answered)-1).Draw(t, "dup")]
				before := snapshot(w.e)
				if _, err := w.e.Step(w.now, in); err == nil {
					t.Fatalf("duplicate %+v accepted", in)
				} else if !reflect.DeepEqual(before, snapshot(w.e)) {
					t.Fatalf("duplicate %+v refused (%v) but changed the state", in, err)
				}
			case op == 8:
				n := rapid.IntRange(0, len(w.down)-1).Draw(t, "node")
				kind := NodeFailed
				if w.down[n] {
					kind = NodeUp
				}
				w.down[n] = !w.down[n]
				w.feed(t, Input{Kind: kind, Node: NodeID(n)})
			case op == 9:
				switch rapid.IntRange(0, 9).Draw(t, "rare") {
				case 0:
					w.feed(t, Input{Kind: VolumeDeleted, Volume: VolumeID(rapid.IntRange(0, len(w.gens)-1).Draw(t, "vol"))})
				case 1:
					w.addVolume(t)
				case 2, 3, 4:
					w.garbage(t)
				}
			}
			w.check(t)
		}
	})
}

// Every volume whose peer comes back within the reconnect window recovers
// without a single search message or copy.
func TestPropertyReconnectWithinWindowNeverSearches(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		window := time.Duration(rapid.IntRange(5, 600).Draw(t, "window")) * time.Second
		e, err := NewEngine(Settings{ReconnectWindow: window}, nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes := rapid.IntRange(3, 10).Draw(t, "nodes")
		for range nodes {
			e.AddNode(100)
		}
		vols := rapid.IntRange(1, 30).Draw(t, "volumes")
		back := make([]time.Time, vols) // when each lost peer is reachable again
		var pending []Action
		now := t0
		for v := range vols {
			a := rapid.IntRange(0, nodes-1).Draw(t, "a")
			b := (a + rapid.IntRange(1, nodes-1).Draw(t, "b")) % nodes
			if _, err := e.AddVolume(1, NodeID(a), NodeID(b), 1); err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Duration(rapid.IntRange(0, 5000).Draw(t, "gap")) * time.Millisecond)
			back[v] = now.Add(time.Duration(rapid.Int64Range(0, int64(window)-1).Draw(t, "outage")))
			acts, err := e.Step(now, Input{Kind: PeerLost, Volume: VolumeID(v), Node: NodeID(a)})
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, acts...)
		}
		gen := make([]fence.Token, vols)
		for i := range gen {
			gen[i] = 1
		}
		for steps := 0; e.Stats().Stuck > 0; steps++ {
			if steps > 100_000 {
				t.Fatalf("not recovered: %+v", e.Stats())
			}
			if len(pending) == 0 {
				at, ok := e.NextTick()
				if !ok {
					t.Fatalf("stuck with nothing to do: %+v", e.Stats())
				}
				now = later(now, at)
				acts, _ := e.Tick(now)
				pending = append(pending, acts...)
				continue
			}
			a := pending[0]
			pending = pending[1:]
			var in Input
			switch a.Kind {
			case Probe:
				in = Input{Kind: ProbeResult, Volume: a.Volume, Attempt: a.Attempt, OK: !now.Before(back[a.Volume])}
			case Elect:
				gen[a.Volume]++
				in = Input{Kind: Elected, Volume: a.Volume, Node: a.From, Attempt: a.Attempt, Token: gen[a.Volume]}
			default:
				t.Fatalf("%v action while every peer comes back within the window", a.Kind)
			}
			acts, err := e.Step(now, in)
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, acts...)
		}
		if s := e.Stats(); s.Queries != 0 || s.Copies != 0 || s.Reconnected != int64(vols) {
			t.Fatalf("stats %+v", s)
		}
	})
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
