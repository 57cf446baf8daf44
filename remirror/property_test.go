package remirror

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/fence"
)

// world is a model of everything outside the engine: which nodes are down,
// which hold each volume's data, the authority's generations, and the
// requests the engine made.
type world struct {
	e        *Engine
	now      time.Time
	down     []bool
	holders  []map[NodeID]bool
	gens     []fence.Token
	holder   []NodeID
	deleted  []bool
	pending  []Action // requests not answered yet
	answered []Input  // answers already given, replayed as duplicates
	queries  []time.Time
	rate     float64
	burst    int
	hints    bool
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
	e, err := NewEngine(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{e: e, now: t0, rate: s.SearchRate, burst: s.SearchBurst, hints: !s.NoHints}
	nodes := rapid.IntRange(3, 7).Draw(t, "nodes")
	for range nodes {
		e.AddNode(int64(rapid.IntRange(2, 6).Draw(t, "capacity")))
	}
	w.down = make([]bool, nodes)
	for range rapid.IntRange(1, 12).Draw(t, "volumes") {
		a := NodeID(rapid.IntRange(0, nodes-1).Draw(t, "a"))
		b := NodeID(rapid.IntRange(0, nodes-1).Draw(t, "b"))
		if _, err := e.AddVolume(1, a, b, 1); err != nil {
			continue
		}
		w.holders = append(w.holders, map[NodeID]bool{a: true, b: true})
		w.gens = append(w.gens, 1)
		w.holder = append(w.holder, a)
		w.deleted = append(w.deleted, false)
	}
	return w
}

// feed steps the engine and checks the actions it returns.
func (w *world) feed(t *rapid.T, in Input) {
	before := snapshot(w.e)
	acts, err := w.e.Step(w.now, in)
	if err != nil {
		if !reflect.DeepEqual(before, snapshot(w.e)) {
			t.Fatalf("refused %+v (%v) but changed the state", in, err)
		}
		return
	}
	switch in.Kind {
	case CopyResult:
		if in.OK {
			// The target's copy is complete: it holds the data.
			w.holders[in.Volume][w.e.volumes[in.Volume].b] = true
		}
	case VolumeDeleted:
		w.deleted[in.Volume] = true
	}
	if in.Kind >= ProbeResult && in.Kind <= ElectionFailed {
		w.answered = append(w.answered, in)
	}
	w.carry(t, acts)
}

func (w *world) carry(t *rapid.T, acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case Release:
			delete(w.holders[a.Volume], a.To)
		case Discard:
		case Copy:
			nd := &w.e.nodes[a.To]
			// Copy follows the ledger's check, with or without hints.
			if nd.unsafe > 0 || nd.quarantined || nd.down {
				t.Fatalf("copy of volume %d to node %d, which is down or quarantined (%d unsafe replicas)", a.Volume, a.To, nd.unsafe)
			}
			w.pending = append(w.pending, a)
		case Query:
			nd := &w.e.nodes[a.To]
			if w.hints && (nd.quarantined || nd.down) {
				t.Fatalf("with hints, query to node %d, which is down or quarantined", a.To)
			}
			w.queries = append(w.queries, w.now)
			w.pending = append(w.pending, a)
		default:
			w.pending = append(w.pending, a)
		}
	}
}

// answer answers a pending request, as the world would.
func (w *world) answer(t *rapid.T, i int, ok bool) {
	a := w.pending[i]
	w.pending = slices.Delete(w.pending, i, i+1)
	in := Input{Volume: a.Volume, Node: a.To, Attempt: a.Attempt, OK: ok && !w.down[a.From] && (a.To < 0 || !w.down[a.To])}
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
		if vol.state == Healthy && (w.down[vol.a] || w.down[vol.b]) {
			t.Fatalf("volume %d is healthy with a replica on a down node (%d, %d)", v, vol.a, vol.b)
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
	if s := e.Stats(); s.Stuck != stuck {
		t.Fatalf("Stats.Stuck %d, counted %d", s.Stuck, stuck)
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
	}
	// The search budget: in every window [s, now], at most burst + rate·(now−s)
	// search messages.
	for i, s := range w.queries {
		n := len(w.queries) - i
		if allowed := float64(w.burst) + w.rate*w.now.Sub(s).Seconds(); float64(n) > allowed+1e-9 {
			t.Fatalf("%d searches since %v, budget allows %.2f", n, s, allowed)
		}
	}
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
				w.now = w.now.Add(time.Duration(rapid.IntRange(0, 8000).Draw(t, "ms")) * time.Millisecond)
				acts, err := w.e.Tick(w.now)
				if err != nil {
					t.Fatal(err)
				}
				w.carry(t, acts)
			case op == 2:
				v := VolumeID(rapid.IntRange(0, len(w.gens)-1).Draw(t, "vol"))
				w.feed(t, Input{Kind: PeerLost, Volume: v, Node: NodeID(rapid.IntRange(0, len(w.down)-1).Draw(t, "from"))})
			case op <= 6 && len(w.pending) > 0:
				w.answer(t, rapid.IntRange(0, len(w.pending)-1).Draw(t, "req"), rapid.IntRange(0, 3).Draw(t, "ok") > 0)
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
			case op == 9 && rapid.IntRange(0, 9).Draw(t, "delete") == 0:
				w.feed(t, Input{Kind: VolumeDeleted, Volume: VolumeID(rapid.IntRange(0, len(w.gens)-1).Draw(t, "vol"))})
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
