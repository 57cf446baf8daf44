// Package dnsplantest tests implementations of dnsplan's interfaces, in the
// manner of testing/fstest: TestStore runs every promise of dnsplan.Store
// (and of dnsplan.Watcher, if the store implements it) against a store
// built by the caller.
//
//	func TestConformance(t *testing.T) {
//		dnsplantest.TestStore(t, func(t *testing.T) dnsplan.Store {
//			return new(dnsplan.MemoryStore) // yours: empty, with the default Limits
//		})
//	}
package dnsplantest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"pgregory.net/rapid"
)

// TestStore checks that the stores newStore returns keep every promise of
// dnsplan.Store, and of dnsplan.Watcher if they implement it. newStore must
// return a new, empty store on each call, accepting the plans of the
// default dnsplan.Limits and holding at least 64 plans; it is called many
// times (once per subtest, and once per case of the model-based test).
//
// The promises checked: Put and Get copy plans in and out (a change to
// either side's maps or slices changes nothing in the store) and keep
// targets sorted; Put refuses an invalid plan (dnsplan.ErrInvalidPlan),
// storing nothing, and a generation not newer than every generation ever
// held, deleted ones included (a *fence.StaleError whose Have is the
// highest generation ever held); Get and Delete of a plan not held, and
// Latest of an empty store, match dnsplan.ErrNotFound; List is ascending;
// Latest is the highest held; a nil context is refused with
// dnsplan.ErrInvalidArgument and an ended one with its error, storing
// nothing; WaitNewer returns at once the highest generation ever put when it
// is above g (even if deleted since), waits for a Put otherwise, and returns
// the context's error when it ends; concurrent Puts, Gets, Deletes and
// Lists are linearizable with respect to those promises (no generation
// stored twice, no Put stored below one acknowledged before it began, no
// Latest older than a plan acknowledged before it began, every plan read
// whole and as put); and a model-based test (rapid) of random sequences
// of every call.
func TestStore(t *testing.T, newStore func(t *testing.T) dnsplan.Store) {
	t.Run("PutGetCopies", func(t *testing.T) { testCopies(t, newStore(t)) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, newStore(t)) })
	t.Run("Stale", func(t *testing.T) { testStale(t, newStore(t)) })
	t.Run("LatestList", func(t *testing.T) { testLatestList(t, newStore(t)) })
	t.Run("DeleteNotFound", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("Contexts", func(t *testing.T) { testContexts(t, newStore(t)) })
	t.Run("WaitNewer", func(t *testing.T) { testWaitNewer(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore(t)) })
	t.Run("StateMachine", func(t *testing.T) { testStateMachine(t, newStore) })
}

// callTimeout bounds every call, so that a broken store fails the test
// instead of hanging it. It is a safety net, not an assertion on time.
const callTimeout = 30 * time.Second

func bg(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// PlanFor returns a valid plan of generation g whose content is a
// function of seed: two endpoints, one of which has up to four targets.
func PlanFor(g fence.Token, seed uint8) dnsplan.Plan {
	ts := []dnsplan.Target{{Addr: netip.AddrFrom4([4]byte{10, 0, 0, seed}), Weight: uint32(seed) + 1}}
	for i := range seed % 4 {
		ts = append(ts, dnsplan.Target{Addr: netip.AddrFrom4([4]byte{10, 1, i, seed}), Weight: uint32(i) + 1})
	}
	return dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{
		"api.example":                          ts,
		fmt.Sprintf("s%d.example", seed%3):     {{Addr: netip.MustParseAddr("2001:db8::1"), Weight: 7}},
		fmt.Sprintf("x-%d.zone.example", seed): {{Addr: netip.AddrFrom4([4]byte{192, 0, 2, seed}), Weight: 1}},
	}}
}

// DiffPlans describes how got differs from want once want is normalized
// (targets sorted), or returns "" if they are the same plan. Times are
// compared as instants.
func DiffPlans(got, want dnsplan.Plan) string {
	want = want.Clone()
	want.Normalize()
	if got.Generation != want.Generation {
		return fmt.Sprintf("generation %d, want %d", uint64(got.Generation), uint64(want.Generation))
	}
	if !slices.Equal(got.EndpointNames(), want.EndpointNames()) {
		return fmt.Sprintf("plan %d: endpoints %q, want %q", uint64(got.Generation), got.EndpointNames(), want.EndpointNames())
	}
	for name, ts := range want.Endpoints {
		if !slices.Equal(got.Endpoints[name], ts) {
			return fmt.Sprintf("plan %d: endpoint %q: targets %s, want %s (sorted)", uint64(got.Generation), name, dnsplan.FormatTargets(got.Endpoints[name]), dnsplan.FormatTargets(ts))
		}
	}
	if !got.MadeAt.Equal(want.MadeAt) {
		return fmt.Sprintf("plan %d: MadeAt %v, want %v", uint64(got.Generation), got.MadeAt, want.MadeAt)
	}
	if len(got.Velocity) != len(want.Velocity) {
		return fmt.Sprintf("plan %d: %d velocity entries, want %d", uint64(got.Generation), len(got.Velocity), len(want.Velocity))
	}
	for i, c := range want.Velocity {
		g := got.Velocity[i]
		if g.Endpoint != c.Endpoint || !g.At.Equal(c.At) || g.Capacity != c.Capacity || g.Removed != c.Removed {
			return fmt.Sprintf("plan %d: velocity[%d] %+v, want %+v", uint64(got.Generation), i, g, c)
		}
	}
	return ""
}

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

func mustPut(t tb, s dnsplan.Store, p dnsplan.Plan) {
	t.Helper()
	if err := s.Put(context.Background(), p); err != nil {
		t.Fatalf("Put(%v): %v", p, err)
	}
}

func mustGet(t tb, s dnsplan.Store, want dnsplan.Plan) {
	t.Helper()
	got, err := s.Get(context.Background(), want.Generation)
	if err != nil {
		t.Fatalf("Get(%d): %v", uint64(want.Generation), err)
	}
	if d := DiffPlans(got, want); d != "" {
		t.Fatalf("Get(%d): %s", uint64(want.Generation), d)
	}
}

func wantList(t tb, s dnsplan.Store, want ...fence.Token) {
	t.Helper()
	got, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		t.Fatalf("List = %v, want %v", got, want)
	}
}

func wantStale(t tb, err error, op string, have, want fence.Token) {
	t.Helper()
	var se *fence.StaleError
	if !errors.Is(err, fence.ErrStale) || !errors.As(err, &se) {
		t.Fatalf("%s: err = %v, want a *fence.StaleError", op, err)
	}
	if se.Have != have || se.Want != want {
		t.Fatalf("%s: StaleError Have %d Want %d, want Have %d (the highest generation ever held) Want %d", op, uint64(se.Have), uint64(se.Want), uint64(have), uint64(want))
	}
}

func wantNotFound(t tb, err error, op string) {
	t.Helper()
	if !errors.Is(err, dnsplan.ErrNotFound) {
		t.Fatalf("%s: err = %v, want dnsplan.ErrNotFound", op, err)
	}
}

func testCopies(t *testing.T, s dnsplan.Store) {
	at := time.Date(2025, 10, 20, 6, 48, 0, 0, time.FixedZone("PDT", -7*3600))
	p := dnsplan.Plan{Generation: 7, Endpoints: map[string][]dnsplan.Target{
		"dynamodb.us-east-1.amazonaws.com": {
			{Addr: netip.MustParseAddr("10.0.0.9"), Weight: 3},
			{Addr: netip.MustParseAddr("10.0.0.1"), Weight: 1},
			{Addr: netip.MustParseAddr("2001:db8::5"), Weight: 2},
		},
		"a.example": {{Addr: netip.MustParseAddr("192.0.2.1"), Weight: 1}},
	},
		Velocity: []dnsplan.CapacityChange{{Endpoint: "a.example", At: at.Add(-time.Minute), Capacity: 1, Removed: 2}},
		MadeAt:   at,
	}
	want := p.Clone()
	mustPut(t, s, p)
	// Changing what was put changes nothing stored.
	p.Endpoints["a.example"][0].Weight = 99
	p.Endpoints["b.example"] = p.Endpoints["a.example"]
	p.Velocity[0].Removed = 0
	mustGet(t, s, want)
	// Nor does changing what was read.
	got, err := s.Get(bg(t), 7)
	if err != nil {
		t.Fatal(err)
	}
	got.Endpoints["a.example"][0].Weight = 42
	delete(got.Endpoints, "dynamodb.us-east-1.amazonaws.com")
	if len(got.Velocity) > 0 {
		got.Velocity[0].Capacity = 1000
	}
	mustGet(t, s, want)
	latest, err := s.Latest(bg(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffPlans(latest, want); d != "" {
		t.Fatalf("Latest: %s", d)
	}
	latest.Endpoints["a.example"][0].Weight = 43
	mustGet(t, s, want)
}

func testInvalid(t *testing.T, s dnsplan.Store) {
	bad := []dnsplan.Plan{
		PlanFor(0, 1), // generation zero
		{Generation: 3},
		{Generation: 3, Endpoints: map[string][]dnsplan.Target{"API.example.": {{Addr: netip.MustParseAddr("10.0.0.1"), Weight: 1}}}},
		{Generation: 3, Endpoints: map[string][]dnsplan.Target{"a.example": {{Addr: netip.MustParseAddr("10.0.0.1"), Weight: 0}}}},
		{Generation: 3, Endpoints: map[string][]dnsplan.Target{"a.example": {}}},
	}
	for _, p := range bad {
		if err := s.Put(bg(t), p); !errors.Is(err, dnsplan.ErrInvalidPlan) {
			t.Fatalf("Put(%v): err = %v, want dnsplan.ErrInvalidPlan", p, err)
		}
	}
	wantList(t, s)
	// A refused plan used up no generation.
	mustPut(t, s, PlanFor(3, 3))
	mustGet(t, s, PlanFor(3, 3))
}

func testStale(t *testing.T, s dnsplan.Store) {
	ctx := bg(t)
	mustPut(t, s, PlanFor(5, 1))
	wantStale(t, s.Put(ctx, PlanFor(5, 1)), "Put(5) again, same plan", 5, 5)
	wantStale(t, s.Put(ctx, PlanFor(5, 2)), "Put(5) again, another plan", 5, 5)
	wantStale(t, s.Put(ctx, PlanFor(3, 2)), "Put(3) below 5", 5, 3)
	mustGet(t, s, PlanFor(5, 1))
	if err := s.Delete(ctx, 5); err != nil {
		t.Fatal(err)
	}
	// Deleted, but held once: a generation names one plan forever.
	wantStale(t, s.Put(ctx, PlanFor(5, 2)), "Put(5) after its delete", 5, 5)
	wantStale(t, s.Put(ctx, PlanFor(4, 2)), "Put(4) after 5's delete", 5, 4)
	wantList(t, s)
	mustPut(t, s, PlanFor(6, 2))
	mustPut(t, s, PlanFor(fence.MaxToken, 9))
	wantStale(t, s.Put(ctx, PlanFor(fence.MaxToken-1, 2)), "Put(MaxToken-1)", fence.MaxToken, fence.MaxToken-1)
	wantList(t, s, 6, fence.MaxToken)
	mustGet(t, s, PlanFor(fence.MaxToken, 9))
}

func testLatestList(t *testing.T, s dnsplan.Store) {
	ctx := bg(t)
	_, err := s.Latest(ctx)
	wantNotFound(t, err, "Latest of an empty store")
	wantList(t, s)
	for _, g := range []fence.Token{2, 3, 10, 11, 1 << 40} {
		mustPut(t, s, PlanFor(g, uint8(g)))
	}
	wantList(t, s, 2, 3, 10, 11, 1<<40)
	check := func(want fence.Token) {
		t.Helper()
		p, err := s.Latest(ctx)
		if err != nil {
			t.Fatalf("Latest: %v", err)
		}
		if d := DiffPlans(p, PlanFor(want, uint8(want))); d != "" {
			t.Fatalf("Latest: %s", d)
		}
	}
	check(1 << 40)
	for _, g := range []fence.Token{1 << 40, 11} {
		if err := s.Delete(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	check(10)
	if err := s.Delete(ctx, 2); err != nil {
		t.Fatal(err)
	}
	wantList(t, s, 3, 10)
	_, err = s.Get(ctx, 2)
	wantNotFound(t, err, "Get of a deleted plan")
	for _, g := range []fence.Token{3, 10} {
		if err := s.Delete(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Latest(ctx)
	wantNotFound(t, err, "Latest once every plan is deleted")
}

func testDelete(t *testing.T, s dnsplan.Store) {
	ctx := bg(t)
	wantNotFound(t, s.Delete(ctx, 1), "Delete(1) of an empty store")
	wantNotFound(t, s.Delete(ctx, 0), "Delete(0)")
	_, err := s.Get(ctx, 1)
	wantNotFound(t, err, "Get(1) of an empty store")
	mustPut(t, s, PlanFor(1, 1))
	mustPut(t, s, PlanFor(2, 2))
	if err := s.Delete(ctx, 1); err != nil {
		t.Fatalf("Delete(1): %v", err)
	}
	wantNotFound(t, s.Delete(ctx, 1), "Delete(1) twice")
	_, err = s.Get(ctx, 1)
	wantNotFound(t, err, "Get(1) after Delete(1)")
	wantNotFound(t, s.Delete(ctx, 3), "Delete(3), never put")
	mustGet(t, s, PlanFor(2, 2))
	wantList(t, s, 2)
}

func testContexts(t *testing.T, s dnsplan.Store) {
	var nilCtx context.Context
	calls := map[string]func(context.Context) error{
		"Put":    func(ctx context.Context) error { return s.Put(ctx, PlanFor(1, 1)) },
		"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, 1); return err },
		"Latest": func(ctx context.Context) error { _, err := s.Latest(ctx); return err },
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, 1) },
		"List":   func(ctx context.Context) error { _, err := s.List(ctx); return err },
	}
	if w, ok := s.(dnsplan.Watcher); ok {
		calls["WaitNewer"] = func(ctx context.Context) error { _, err := w.WaitNewer(ctx, 1); return err }
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		if err := calls[name](nilCtx); !errors.Is(err, dnsplan.ErrInvalidArgument) {
			t.Errorf("%s(nil context): err = %v, want dnsplan.ErrInvalidArgument", name, err)
		}
		if err := calls[name](cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("%s(cancelled context): err = %v, want context.Canceled", name, err)
		}
	}
	wantList(t, s)
	mustPut(t, s, PlanFor(1, 1)) // the refused Puts used up nothing
}

func testWaitNewer(t *testing.T, s dnsplan.Store) {
	w, ok := s.(dnsplan.Watcher)
	if !ok {
		t.Logf("%T does not implement dnsplan.Watcher: nothing to check", s)
		return
	}
	ctx := bg(t)
	wait := func(g fence.Token) (chan fence.Token, chan error, context.CancelFunc) {
		ctx, cancel := context.WithCancel(ctx)
		got, errc := make(chan fence.Token, 1), make(chan error, 1)
		go func() {
			h, err := w.WaitNewer(ctx, g)
			got <- h
			errc <- err
		}()
		return got, errc, cancel
	}
	// Waiting on an empty store, then a Put.
	got, errc, cancel := wait(0)
	defer cancel()
	runtime.Gosched()
	mustPut(t, s, PlanFor(3, 3))
	if h, err := <-got, <-errc; err != nil || h != 3 {
		t.Fatalf("WaitNewer(0) across Put(3) = %d, %v; want 3", uint64(h), err)
	}
	for _, g := range []fence.Token{0, 2} {
		if h, err := w.WaitNewer(ctx, g); err != nil || h != 3 {
			t.Fatalf("WaitNewer(%d) with 3 held = %d, %v; want 3 at once", uint64(g), uint64(h), err)
		}
	}
	// Waiting for a plan above 3: only a Put above 3 ends it, with the
	// highest generation put.
	got, errc, cancel = wait(3)
	defer cancel()
	wantStale(t, s.Put(ctx, PlanFor(3, 1)), "Put(3) again", 3, 3)
	mustPut(t, s, PlanFor(4, 4))
	if h, err := <-got, <-errc; err != nil || h < 4 {
		t.Fatalf("WaitNewer(3) across Put(4) = %d, %v; want 4 or more", uint64(h), err)
	}
	mustPut(t, s, PlanFor(9, 9))
	if err := s.Delete(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if h, err := w.WaitNewer(ctx, 4); err != nil || h != 9 {
		t.Fatalf("WaitNewer(4) after Put(9), Delete(9) = %d, %v; want 9 (the highest ever put)", uint64(h), err)
	}
	// Cancelled while waiting.
	got, errc, cancel = wait(9)
	runtime.Gosched()
	cancel()
	if h, err := <-got, <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitNewer(9) cancelled = %d, %v; want context.Canceled", uint64(h), err)
	}
	// A deadline while waiting.
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer dcancel()
	if h, err := w.WaitNewer(dctx, 9); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitNewer(9) past its deadline = %d, %v; want context.DeadlineExceeded", uint64(h), err)
	}
}

// testConcurrent runs writers that take generations from a shared counter
// (so that puts race and some land out of order), readers, and a cleaner
// that deletes every plan but the newest it lists, and checks the end state
// against what was acknowledged.
func testConcurrent(t *testing.T, s dnsplan.Store) {
	ctx := bg(t)
	const writers, puts = 4, 12
	// clock orders the calls' starts and ends: a call that starts after
	// another has returned must see its effect (linearizability).
	type span struct{ start, end int64 }
	var (
		clock   atomic.Int64
		next    atomic.Uint64
		mu      sync.Mutex
		acked   = map[fence.Token]uint8{}
		spans   = map[fence.Token]span{}
		deleted = map[fence.Token]bool{}
		errs    []error
		wg      sync.WaitGroup
		done    atomic.Bool
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2 * puts {
				// Every other Put is a fresh generation; the others
				// race a neighbour's (maybe acknowledged, maybe in
				// flight), which at most one Put may store.
				g := fence.Token(next.Load())
				if i%2 == 0 || g == 0 {
					g = fence.Token(next.Add(1))
				}
				seed := uint8(g) // so that a reader knows the plan of g
				if (w+i)%4 < 2 {
					runtime.Gosched()
				}
				start := clock.Add(1)
				err := s.Put(ctx, PlanFor(g, seed))
				end := clock.Add(1)
				var se *fence.StaleError
				switch {
				case err == nil:
					mu.Lock()
					if _, dup := spans[g]; dup {
						errs = append(errs, fmt.Errorf("Put(%d) succeeded twice", uint64(g)))
					}
					acked[g] = seed
					spans[g] = span{start, end}
					mu.Unlock()
				case errors.As(err, &se):
					if se.Have < g {
						fail(fmt.Errorf("Put(%d) refused as stale with Have %d below it", uint64(g), uint64(se.Have)))
					}
				default:
					fail(fmt.Errorf("Put(%d): %v", uint64(g), err))
				}
			}
		}()
	}
	var readers sync.WaitGroup
	readers.Add(2)
	type read struct {
		start int64
		g     fence.Token
	}
	var reads []read
	go func() { // a reader: every plan read is whole and of its generation
		defer readers.Done()
		for !done.Load() {
			start := clock.Add(1)
			p, err := s.Latest(ctx)
			if errors.Is(err, dnsplan.ErrNotFound) {
				reads = append(reads, read{start, 0})
				continue
			}
			if err != nil {
				fail(fmt.Errorf("Latest: %v", err))
				return
			}
			reads = append(reads, read{start, p.Generation})
			if d := DiffPlans(p, PlanFor(p.Generation, uint8(p.Generation))); d != "" {
				fail(fmt.Errorf("Latest returned a plan not as put: %s", d))
			}
		}
	}()
	go func() { // a cleaner: deletes all but the newest plan listed
		defer readers.Done()
		for !done.Load() {
			gens, err := s.List(ctx)
			if err != nil {
				fail(fmt.Errorf("List: %v", err))
				return
			}
			if !slices.IsSorted(gens) {
				fail(fmt.Errorf("List = %v, not ascending", gens))
			}
			for i, g := range gens {
				if i == len(gens)-1 || i%2 == 1 {
					break
				}
				if err := s.Delete(ctx, g); err == nil {
					mu.Lock()
					deleted[g] = true
					mu.Unlock()
				} else if !errors.Is(err, dnsplan.ErrNotFound) {
					fail(fmt.Errorf("Delete(%d): %v", uint64(g), err))
				}
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	readers.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	var top fence.Token
	var kept []fence.Token
	for g, seed := range acked {
		top = max(top, g)
		if deleted[g] {
			_, err := s.Get(ctx, g)
			wantNotFound(t, err, fmt.Sprintf("Get(%d), deleted", uint64(g)))
			continue
		}
		kept = append(kept, g)
		mustGet(t, s, PlanFor(g, seed))
	}
	for g := range deleted {
		if _, ok := acked[g]; !ok {
			t.Errorf("plan %d was deleted but its Put was not acknowledged", uint64(g))
		}
	}
	slices.Sort(kept)
	wantList(t, s, kept...)
	// A Put acknowledged before another began holds a lower generation:
	// the later one must have been refused as not newer.
	for g1, a := range spans {
		for g2, b := range spans {
			if g2 < g1 && b.start > a.end {
				t.Errorf("Put(%d) succeeded though it began after Put(%d) had succeeded", uint64(g2), uint64(g1))
			}
		}
	}
	// The cleaner never deletes the highest plan held, so a Latest that
	// began after a Put had succeeded returns that plan or a newer one.
	for _, r := range reads {
		for g, a := range spans {
			if a.end < r.start && r.g < g {
				t.Errorf("Latest returned plan %d (0: none) though it began after Put(%d) had succeeded", uint64(r.g), uint64(g))
			}
		}
	}
	if top == 0 {
		t.Fatal("no Put was acknowledged")
	}
	p, err := s.Latest(ctx)
	if err != nil || p.Generation != top {
		t.Fatalf("Latest = %v, %v; want plan %d, the highest acknowledged", p, err, uint64(top))
	}
	wantStale(t, s.Put(ctx, PlanFor(top, 0)), "Put of the highest generation acknowledged", top, top)
}

// model is the sequential specification of a Store.
type model struct {
	plans   map[fence.Token]uint8
	highest fence.Token
}

func testStateMachine(t *testing.T, newStore func(t *testing.T) dnsplan.Store) {
	rapid.Check(t, func(rt *rapid.T) {
		s := newStore(t)
		w, _ := s.(dnsplan.Watcher)
		ctx := bg(t)
		m := model{plans: map[fence.Token]uint8{}}
		gen := func(label string) fence.Token {
			return fence.Token(rapid.Uint64Range(0, uint64(m.highest)+3).Draw(rt, label))
		}
		rt.Repeat(map[string]func(*rapid.T){
			"Put": func(rt *rapid.T) {
				g := gen("g")
				seed := rapid.Uint8().Draw(rt, "seed")
				err := s.Put(ctx, PlanFor(g, seed))
				switch {
				case g == 0:
					if !errors.Is(err, dnsplan.ErrInvalidPlan) {
						rt.Fatalf("Put(0): err = %v, want ErrInvalidPlan", err)
					}
				case g <= m.highest:
					wantStale(rt, err, fmt.Sprintf("Put(%d)", uint64(g)), m.highest, g)
				case err != nil:
					rt.Fatalf("Put(%d): %v", uint64(g), err)
				default:
					m.plans[g], m.highest = seed, g
				}
			},
			"Get": func(rt *rapid.T) {
				g := gen("g")
				p, err := s.Get(ctx, g)
				if seed, ok := m.plans[g]; ok {
					if err != nil {
						rt.Fatalf("Get(%d): %v", uint64(g), err)
					}
					if d := DiffPlans(p, PlanFor(g, seed)); d != "" {
						rt.Fatalf("Get(%d): %s", uint64(g), d)
					}
				} else {
					wantNotFound(rt, err, fmt.Sprintf("Get(%d)", uint64(g)))
				}
			},
			"Delete": func(rt *rapid.T) {
				g := gen("g")
				err := s.Delete(ctx, g)
				if _, ok := m.plans[g]; ok {
					if err != nil {
						rt.Fatalf("Delete(%d): %v", uint64(g), err)
					}
					delete(m.plans, g)
				} else {
					wantNotFound(rt, err, fmt.Sprintf("Delete(%d)", uint64(g)))
				}
			},
			"Latest": func(rt *rapid.T) {
				p, err := s.Latest(ctx)
				if len(m.plans) == 0 {
					wantNotFound(rt, err, "Latest")
					return
				}
				top := slices.Max(slices.Collect(maps.Keys(m.plans)))
				if err != nil {
					rt.Fatalf("Latest: %v", err)
				}
				if d := DiffPlans(p, PlanFor(top, m.plans[top])); d != "" {
					rt.Fatalf("Latest: %s", d)
				}
			},
			"List": func(rt *rapid.T) {
				wantList(rt, s, slices.Sorted(maps.Keys(m.plans))...)
			},
			"WaitNewer": func(rt *rapid.T) {
				if w == nil {
					rt.Skip("not a Watcher")
				}
				g := gen("g")
				if g < m.highest {
					if h, err := w.WaitNewer(ctx, g); err != nil || h != m.highest {
						rt.Fatalf("WaitNewer(%d) = %d, %v; want %d at once", uint64(g), uint64(h), err, uint64(m.highest))
					}
					return
				}
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				if h, err := w.WaitNewer(cctx, g); !errors.Is(err, context.Canceled) {
					rt.Fatalf("WaitNewer(%d) with %d the highest, cancelled = %d, %v; want context.Canceled", uint64(g), uint64(m.highest), uint64(h), err)
				}
			},
		})
	})
}
