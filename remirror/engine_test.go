package remirror

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/fence"
)

var t0 = time.Unix(1_000_000, 0)

// cluster builds an engine with n nodes of the given capacity and one
// volume of size 1 on nodes 0 and 1.
func cluster(t testing.TB, s Settings, n int, capacity int64) *Engine {
	t.Helper()
	e, err := NewEngine(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := e.AddNode(capacity); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.AddVolume(1, 0, 1, 1); err != nil {
		t.Fatal(err)
	}
	return e
}

func step(t testing.TB, e *Engine, now time.Time, in Input) []Action {
	t.Helper()
	acts, err := e.Step(now, in)
	if err != nil {
		t.Fatalf("Step(%+v): %v", in, err)
	}
	return slices.Clone(acts)
}

func only(t testing.TB, acts []Action, kind ActionKind) Action {
	t.Helper()
	if len(acts) != 1 || acts[0].Kind != kind {
		t.Fatalf("actions %+v, want one %v", acts, kind)
	}
	return acts[0]
}

func TestSettingsZeroIsValid(t *testing.T) {
	if _, err := NewEngine(Settings{}, nil); err != nil {
		t.Fatal(err)
	}
}

// The Default*Policy functions return the policies a zero Settings gets.
func TestSettingsDefaultPolicies(t *testing.T) {
	zero, err := Settings{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	explicit, err := Settings{Reconnect: DefaultReconnectPolicy(), Search: DefaultSearchPolicy(), Elect: DefaultElectPolicy()}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if zero != explicit {
		t.Fatalf("zero Settings resolve to %+v, the Default*Policy functions to %+v", zero, explicit)
	}
	if p := DefaultReconnectPolicy(); p.Base != time.Second || p.Cap != 15*time.Second {
		t.Errorf("DefaultReconnectPolicy() = %+v, want 1s to 15s as documented", p)
	}
	if p := DefaultSearchPolicy(); p.Base != 2*time.Second || p.Cap != time.Minute {
		t.Errorf("DefaultSearchPolicy() = %+v, want 2s to 1m as documented", p)
	}
	if p := DefaultElectPolicy(); p.Base != time.Second || p.Cap != 30*time.Second {
		t.Errorf("DefaultElectPolicy() = %+v, want 1s to 30s as documented", p)
	}
}

// ErrInvalidSettings, deprecated, is the same value as ErrInvalidConfig, so
// code that matches the old name keeps working.
func TestErrInvalidSettingsIsErrInvalidConfig(t *testing.T) {
	if ErrInvalidSettings != ErrInvalidConfig {
		t.Fatal("ErrInvalidSettings is not ErrInvalidConfig")
	}
	_, err := NewEngine(Settings{MaxPerNode: -2}, nil)
	if !errors.Is(err, ErrInvalidSettings) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v does not match both names", err)
	}
}

func TestSettingsReportsEveryBadField(t *testing.T) {
	_, err := NewEngine(Settings{
		ReconnectWindow: -1,
		Reconnect:       backoff.Policy{Base: -1},
		SearchRate:      math.NaN(),
		SearchBurst:     -2,
		MaxPerNode:      -3,
		MaxPerCluster:   -4,
		MaxElections:    -5,
		RecoveryReserve: 1,
		UnreachableFor:  -time.Second,
	}, nil)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"ReconnectWindow -1ns", "Reconnect policy", "SearchRate NaN", "SearchBurst -2", "MaxPerNode -3", "MaxPerCluster -4", "MaxElections -5", "RecoveryReserve 1", "UnreachableFor -1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A peer that comes back within the window is reconnected: no search, no
// copy, a new generation.
func TestReconnectWithinWindow(t *testing.T) {
	e := cluster(t, Settings{}, 4, 10)
	p := only(t, step(t, e, t0, Input{Kind: PeerLost, Volume: 0, Node: 1}), Probe)
	if p.From != 1 || p.To != 0 {
		t.Fatalf("probe %+v, want from survivor 1 to lost peer 0", p)
	}
	if _, _, ok := e.Primary(0); ok {
		t.Fatal("a stuck volume has a writable primary")
	}
	acts := step(t, e, t0.Add(time.Millisecond), Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt})
	if len(acts) != 0 {
		t.Fatalf("a failed probe acted at once: %+v", acts)
	}
	at, ok := e.NextTick()
	if !ok || at.Sub(t0) > DefaultReconnectPolicy().Cap {
		t.Fatalf("next tick %v %v", at, ok)
	}
	p = only(t, must(e.Tick(at)), Probe)
	el := only(t, step(t, e, at, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt, OK: true}), Elect)
	if el.From != 1 || el.Expect != 1 || el.To != NoNode {
		t.Fatalf("elect %+v, want node 1 from generation 1, To NoNode", el)
	}
	step(t, e, at, Input{Kind: Elected, Volume: 0, Node: 1, Attempt: el.Attempt, Token: 2})
	if n, tok, ok := e.Primary(0); !ok || n != 1 || tok != 2 {
		t.Fatalf("Primary = %d %d %v, want 1 2 true", n, tok, ok)
	}
	if s := e.Stats(); s.Queries != 0 || s.Copies != 0 || s.Reconnected != 1 || s.Stuck != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func must(acts []Action, err error) []Action {
	if err != nil {
		panic(err)
	}
	return slices.Clone(acts)
}

// After the window, the survivor searches the node with room, copies, and
// only then is the lost peer told to release its replica.
func TestSearchCopyReleaseElect(t *testing.T) {
	e := cluster(t, Settings{ReconnectWindow: time.Second}, 4, 10)
	now := t0
	p := only(t, step(t, e, now, Input{Kind: PeerLost, Volume: 0, Node: 0}), Probe)
	now = now.Add(2 * time.Second)
	q := only(t, step(t, e, now, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt}), Query)
	if q.From != 0 || (q.To != 2 && q.To != 3) {
		t.Fatalf("query %+v", q)
	}
	c := only(t, step(t, e, now, Input{Kind: SearchResult, Volume: 0, Node: q.To, Attempt: q.Attempt, OK: true}), Copy)
	if a, b, _ := e.Replicas(0); a != 0 || b != 1 {
		t.Fatalf("replicas %d %d during the copy, want the lost peer kept", a, b)
	}
	acts := step(t, e, now, Input{Kind: CopyResult, Volume: 0, Attempt: c.Attempt, OK: true})
	if len(acts) != 2 || acts[0].Kind != Release || acts[0].To != 1 || acts[1].Kind != Elect {
		t.Fatalf("actions %+v, want release of node 1 then elect", acts)
	}
	step(t, e, now, Input{Kind: Elected, Volume: 0, Node: 0, Attempt: acts[1].Attempt, Token: 2})
	if a, b, _ := e.Replicas(0); a != 0 || b != q.To {
		t.Fatalf("replicas %d %d, want 0 and %d", a, b, q.To)
	}
	if _, used, _, _, _ := e.NodeStatus(1); used != 0 {
		t.Fatalf("lost peer still uses %d", used)
	}
}

// With hints, a search never contacts a full node: no message at all.
func TestNoMessageToFullNodes(t *testing.T) {
	e, _ := NewEngine(Settings{NoReconnect: true, NoReserve: true}, nil)
	for range 3 {
		e.AddNode(2)
	}
	e.AddVolume(1, 0, 1, 1)
	e.AddVolume(1, 0, 2, 1)
	e.AddVolume(1, 1, 2, 1) // every node is full
	acts := step(t, e, t0, Input{Kind: PeerLost, Volume: 0, Node: 0})
	if len(acts) != 0 {
		t.Fatalf("searched a full cluster: %+v", acts)
	}
	if s := e.Stats(); s.NoCandidate != 1 || s.Queries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A failed node is quarantined until every replica it held is safe, and
// new volumes cannot use the recovery reserve.
func TestQuarantineAndReserve(t *testing.T) {
	e := cluster(t, Settings{NoReconnect: true}, 4, 10)
	if _, err := e.AddVolume(10, 2, 3, 1); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("AddVolume into the reserve: %v, want ErrNoSpace", err)
	}
	acts := step(t, e, t0, Input{Kind: NodeFailed, Node: 1})
	q := only(t, acts, Query)
	if _, _, _, quarantined, _ := e.NodeStatus(1); !quarantined {
		t.Fatal("failed node not quarantined")
	}
	step(t, e, t0, Input{Kind: NodeUp, Node: 1})
	if _, _, _, quarantined, _ := e.NodeStatus(1); !quarantined {
		t.Fatal("node reusable while its replica is unsafe")
	}
	if _, err := e.AddVolume(1, 1, 2, 1); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("AddVolume on a quarantined node: %v", err)
	}
	c := only(t, step(t, e, t0, Input{Kind: SearchResult, Volume: 0, Node: q.To, Attempt: q.Attempt, OK: true}), Copy)
	acts = step(t, e, t0, Input{Kind: CopyResult, Volume: 0, Attempt: c.Attempt, OK: true})
	if _, _, _, quarantined, _ := e.NodeStatus(1); quarantined {
		t.Fatal("node still quarantined after its replica was released")
	}
	step(t, e, t0, Input{Kind: Elected, Volume: 0, Node: 0, Attempt: acts[1].Attempt, Token: 2})
}

// Bad input is refused with a typed error and changes nothing.
func TestBadInputLeavesStateUnchanged(t *testing.T) {
	e := cluster(t, Settings{}, 4, 10)
	p := only(t, step(t, e, t0, Input{Kind: PeerLost, Volume: 0, Node: 1}), Probe)
	later := t0.Add(time.Second)
	cases := []struct {
		name string
		now  time.Time
		in   Input
		want error
	}{
		{"unknown volume", later, Input{Kind: ProbeResult, Volume: 9, Attempt: p.Attempt}, ErrUnknownVolume},
		{"negative volume", later, Input{Kind: CopyResult, Volume: -1}, ErrUnknownVolume},
		{"unknown node", later, Input{Kind: NodeFailed, Node: 99}, ErrUnknownNode},
		{"node up twice", later, Input{Kind: NodeUp, Node: 2}, ErrDuplicate},
		{"unknown kind", later, Input{Kind: 200}, ErrInvalidInput},
		{"peer lost twice", later, Input{Kind: PeerLost, Volume: 0, Node: 1}, ErrDuplicate},
		{"other side", later, Input{Kind: PeerLost, Volume: 0, Node: 0}, ErrOutOfOrder},
		{"not a replica", later, Input{Kind: PeerLost, Volume: 0, Node: 3}, ErrOutOfOrder},
		{"answer never asked", later, Input{Kind: CopyResult, Volume: 0, Attempt: p.Attempt}, ErrOutOfOrder},
		{"future attempt", later, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt + 5}, ErrOutOfOrder},
		{"time goes back", t0.Add(-time.Second), Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt}, ErrOutOfOrder},
		{"elected without election", later, Input{Kind: Elected, Volume: 0, Node: 1, Attempt: p.Attempt, Token: 9}, ErrOutOfOrder},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(e)
			_, err := e.Step(c.now, c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if err.Error() == "" || !strings.HasPrefix(err.Error(), "remirror: ") {
				t.Errorf("message %q", err)
			}
			if after := snapshot(e); !reflect.DeepEqual(before, after) {
				t.Fatalf("state changed:\n%+v\n%+v", before, after)
			}
		})
	}
	// The genuine answer still works, once; then it is a duplicate.
	step(t, e, later, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt})
	if _, err := e.Step(later, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second answer: %v, want ErrDuplicate", err)
	}
	if _, err := e.Tick(t0); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("tick in the past: %v", err)
	}
}

func TestBadAdmin(t *testing.T) {
	e := cluster(t, Settings{}, 2, 10)
	before := snapshot(e)
	for _, c := range []struct {
		err  error
		want error
	}{
		{second(e.AddNode(-5)), ErrInvalidInput},
		{second(e.AddNode(0)), ErrInvalidInput},
		{second(e.AddVolume(0, 0, 1, 1)), ErrInvalidInput},
		{second(e.AddVolume(1, 0, 0, 1)), ErrInvalidInput},
		{second(e.AddVolume(1, 0, 7, 1)), ErrUnknownNode},
		{second(e.AddVolume(1, 0, 1, 0)), ErrInvalidInput},
		{second(e.AddVolume(100, 0, 1, 1)), ErrNoSpace},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("err %v, want %v", c.err, c.want)
		}
	}
	if !reflect.DeepEqual(before, snapshot(e)) {
		t.Fatal("state changed")
	}
}

func second[T any](_ T, err error) error { return err }

// A stale election answer is refused with fence.ErrStale.
func TestStaleElection(t *testing.T) {
	e := cluster(t, Settings{}, 3, 10)
	p := only(t, step(t, e, t0, Input{Kind: PeerLost, Volume: 0, Node: 0}), Probe)
	el := only(t, step(t, e, t0, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt, OK: true}), Elect)
	before := snapshot(e)
	_, err := e.Step(t0, Input{Kind: Elected, Volume: 0, Node: 0, Attempt: el.Attempt, Token: 1})
	var stale *fence.StaleError
	if !errors.Is(err, fence.ErrStale) || !errors.As(err, &stale) || stale.Have != 1 {
		t.Fatalf("err %v, want a stale error with Have 1", err)
	}
	if !reflect.DeepEqual(before, snapshot(e)) {
		t.Fatal("state changed")
	}
	// A failure reporting a newer generation makes the next attempt build
	// on it.
	step(t, e, t0, Input{Kind: ElectionFailed, Volume: 0, Attempt: el.Attempt, Token: 5})
	at, _ := e.NextTick()
	el = only(t, must(e.Tick(at)), Elect)
	if el.Expect != 5 {
		t.Fatalf("retry expects %d, want 5", el.Expect)
	}
}

// Deleting a stuck volume releases its replicas and its quarantine hold.
func TestDeleteReleases(t *testing.T) {
	e := cluster(t, Settings{}, 3, 10)
	step(t, e, t0, Input{Kind: NodeFailed, Node: 1})
	acts := step(t, e, t0, Input{Kind: VolumeDeleted, Volume: 0})
	if len(acts) != 2 || acts[0].Kind != Release || acts[1].Kind != Release {
		t.Fatalf("actions %+v", acts)
	}
	for _, a := range acts {
		if a.From != NoNode {
			t.Errorf("release after delete %+v: From is %d, want NoNode (no node acts)", a, a.From)
		}
	}
	// Nothing unsafe is left on it: no longer quarantined, but down, and
	// so still not placeable.
	if _, _, down, q, _ := e.NodeStatus(1); !down || q {
		t.Fatalf("node 1 down %v quarantined %v, want down and not quarantined", down, q)
	}
	if _, err := e.AddVolume(1, 1, 2, 1); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a down node is placeable: %v", err)
	}
	step(t, e, t0, Input{Kind: NodeUp, Node: 1})
	if _, _, _, q, _ := e.NodeStatus(1); q {
		t.Fatal("quarantine kept after the volume was released")
	}
	if _, err := e.Step(t0, Input{Kind: VolumeDeleted, Volume: 0}); !errors.Is(err, ErrUnknownVolume) {
		t.Fatalf("second delete: %v", err)
	}
	if s := e.Stats(); s.Volumes != 0 || s.Stuck != 0 {
		t.Fatalf("stats %+v", s)
	}
}

type engineSnapshot struct {
	Volumes []volume
	Nodes   []node
	Stats   Stats
	Timers  int
	Last    int64
	Out     int
}

func snapshot(e *Engine) engineSnapshot {
	nodes := slices.Clone(e.nodes)
	for i := range nodes {
		nodes[i].vols = slices.Clone(nodes[i].vols)
		nodes[i].incoming = slices.Clone(nodes[i].incoming)
	}
	return engineSnapshot{slices.Clone(e.volumes), nodes, e.Stats(), len(e.timers), e.last, e.inflight*1000 + e.elects}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Healthy.String(), "healthy"}, {Electing.String(), "electing"}, {State(99).String(), "State(99)"},
		{SearchResult.String(), "search-result"}, {InputKind(0).String(), "InputKind(0)"},
		{Query.String(), "query"}, {ActionKind(42).String(), "ActionKind(42)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// With NoHints, MaxPerNode must still bound the re-mirrors a node takes
// part in as target (Settings.MaxPerNode: "as source or as target").
func TestNoHintsBoundsTargets(t *testing.T) {
	e := cluster(t, Settings{NoHints: true, NoReconnect: true, SearchRate: Unlimited, MaxPerNode: 1}, 3, 10)
	if _, err := e.AddVolume(1, 1, 0, 1); err != nil {
		t.Fatal(err)
	}
	// Volume 0 re-mirrors from node 0 to node 2, the only other node.
	q := only(t, step(t, e, t0, Input{Kind: PeerLost, Volume: 0, Node: 0}), Query)
	if q.To != 2 {
		t.Fatalf("query to node %d, want 2", q.To)
	}
	// Volume 1's survivor, node 1, is free, but its only candidate, node 2,
	// already takes part in MaxPerNode re-mirrors.
	for _, a := range step(t, e, t0, Input{Kind: PeerLost, Volume: 1, Node: 1}) {
		if a.Kind == Query && a.To == 2 {
			t.Fatalf("query %+v to node 2, already in a re-mirror with MaxPerNode 1", a)
		}
	}
}

// A NodeFailed never returns requests that are already abandoned: with
// NoHints, the failure of a search's target must not search the failing
// node again and drop that search within the same Step.
func TestNoHintsNodeFailedReturnsNoDeadSearches(t *testing.T) {
	e := cluster(t, Settings{NoHints: true, NoReconnect: true, SearchRate: Unlimited}, 3, 10)
	only(t, step(t, e, t0, Input{Kind: PeerLost, Volume: 0, Node: 0}), Query)
	acts := step(t, e, t0, Input{Kind: NodeFailed, Node: 2})
	queries := 0
	for _, a := range acts {
		if a.Kind == Query {
			queries++
		}
	}
	if queries > 1 {
		t.Fatalf("volume 0 has at most one request outstanding, got %+v (Stats.Queries %d)", acts, e.Stats().Queries)
	}
}

// callZero calls every exported method of v, a pointer to a zero value,
// with zero arguments, fails the test if one panics, and returns the error
// each method returned (nil for a method that returns none), by name.
func callZero(t *testing.T, v any) map[string]error {
	t.Helper()
	rv := reflect.ValueOf(v)
	errs := make(map[string]error)
	errType := reflect.TypeFor[error]()
	for i := range rv.NumMethod() {
		name := rv.Type().Method(i).Name
		m := rv.Method(i)
		args := make([]reflect.Value, m.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(m.Type().In(j))
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%T.%s panicked on the zero value: %v", v, name, r)
				}
			}()
			out := m.Call(args)
			errs[name] = nil
			if n := len(out); n > 0 && out[n-1].Type() == errType && !out[n-1].IsNil() {
				errs[name] = out[n-1].Interface().(error)
			}
		}()
	}
	return errs
}

// Every exported method of a zero Engine, called with zero arguments, is
// safe: those that can refuse do, with ErrInvalidConfig and a pointer to
// NewEngine; the others report an empty cluster.
func TestZeroEngineMethodsDoNotPanic(t *testing.T) {
	var e Engine
	errs := callZero(t, &e)
	for _, name := range []string{"AddNode", "AddVolume", "Step", "Tick", "Primary", "Replicas", "VolumeState", "NodeStatus", "Nodes", "Stats", "NextTick"} {
		if _, called := errs[name]; !called {
			t.Errorf("Engine.%s was not called", name)
		}
	}
	for _, name := range []string{"AddNode", "AddVolume", "Step", "Tick"} {
		if err := errs[name]; !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "NewEngine") {
			t.Errorf("zero Engine's %s: %v, want ErrInvalidConfig naming NewEngine", name, err)
		}
	}
	if !reflect.DeepEqual(&e, &Engine{}) {
		t.Fatalf("the refusals changed the zero Engine: %+v", e)
	}
}

// The review's sequence on a zero Engine: before the fix, AddNode,
// AddVolume and PeerLost were accepted (with no reconnect window), and the
// failed probe's answer panicked on the missing randomness after moving the
// volume to Searching. Now every call is refused and nothing changes.
func TestZeroEngineRefusesAndChangesNothing(t *testing.T) {
	var e Engine
	if _, err := e.AddNode(10); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("AddNode: %v, want ErrInvalidConfig", err)
	}
	if _, err := e.AddVolume(1, 0, 1, 1); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("AddVolume: %v, want ErrInvalidConfig", err)
	}
	for _, in := range []Input{
		{Kind: PeerLost, Volume: 0, Node: 0},
		{Kind: ProbeResult, Volume: 0, Attempt: 1},
		{Kind: NodeFailed, Node: 0},
		{},
	} {
		if acts, err := e.Step(t0, in); !errors.Is(err, ErrInvalidConfig) || acts != nil {
			t.Fatalf("Step(%+v): %+v %v, want ErrInvalidConfig", in, acts, err)
		}
	}
	if acts, err := e.Tick(t0.Add(time.Hour)); !errors.Is(err, ErrInvalidConfig) || acts != nil {
		t.Fatalf("Tick: %+v %v, want ErrInvalidConfig", acts, err)
	}
	if _, ok := e.VolumeState(0); ok {
		t.Fatal("a zero Engine has volume 0")
	}
	if _, ok := e.NextTick(); ok {
		t.Fatal("a zero Engine has a timer armed")
	}
	if e.Nodes() != 0 || e.Stats() != (Stats{}) {
		t.Fatalf("a zero Engine has %d nodes, stats %+v", e.Nodes(), e.Stats())
	}
	if !reflect.DeepEqual(&e, &Engine{}) {
		t.Fatalf("the refusals changed the zero Engine: %+v", e)
	}
}

// An InputError the engine did not build, such as the zero value, formats
// without panicking.
func TestZeroInputError(t *testing.T) {
	callZero(t, &InputError{})
	if got, want := (&InputError{}).Error(), "remirror: input refused: InputKind(0) for volume 0, node 0, attempt 0"; got != want {
		t.Fatalf("zero InputError: %q, want %q", got, want)
	}
	err := &InputError{Reason: ErrDuplicate, Input: Input{Kind: CopyResult, Volume: 3, Attempt: 2}}
	if got, want := err.Error(), "remirror: duplicate input: copy-result for volume 3, node 0, attempt 2"; got != want || !errors.Is(err, ErrDuplicate) {
		t.Fatalf("InputError without detail: %q, want %q", got, want)
	}
}
