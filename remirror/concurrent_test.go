package remirror

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// Thousands of replication requests closed at once, each twice: every
// close is applied exactly once, the rest are refused as duplicates, and
// -race finds nothing (the 2011 crash was a race in exactly this).
func TestConcurrentClosesThousandsAtOnce(t *testing.T) {
	const volumes = 4000
	c, err := NewConcurrent(Settings{NoReconnect: true, MaxPerNode: Unlimited, MaxPerCluster: Unlimited, SearchRate: Unlimited, MaxElections: Unlimited}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if _, err := c.AddNode(2 * volumes); err != nil {
			t.Fatal(err)
		}
	}
	copies := make([]Action, 0, volumes)
	for v := range volumes {
		a, b := NodeID(v%4), NodeID(4+v%4)
		if _, err := c.AddVolume(1, a, b, 1); err != nil {
			t.Fatal(err)
		}
		acts, err := c.Step(t0, Input{Kind: PeerLost, Volume: VolumeID(v), Node: a})
		if err != nil || len(acts) != 1 || acts[0].Kind != Query {
			t.Fatalf("volume %d: %+v %v", v, acts, err)
		}
		acts, err = c.Step(t0, Input{Kind: SearchResult, Volume: VolumeID(v), Node: acts[0].To, Attempt: acts[0].Attempt, OK: true})
		if err != nil || len(acts) != 1 || acts[0].Kind != Copy {
			t.Fatalf("volume %d: %+v %v", v, acts, err)
		}
		copies = append(copies, acts[0])
	}
	var applied, duplicates, elects atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, cp := range copies {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				acts, err := c.Step(t0, Input{Kind: CopyResult, Volume: cp.Volume, Attempt: cp.Attempt, OK: true})
				switch {
				case err == nil:
					applied.Add(1)
					for _, a := range acts {
						if a.Kind == Elect {
							elects.Add(1)
						}
					}
				case errors.Is(err, ErrDuplicate):
					duplicates.Add(1)
				default:
					t.Errorf("volume %d: %v", cp.Volume, err)
				}
				c.Stats()
				c.VolumeState(cp.Volume)
			}()
		}
	}
	close(start)
	wg.Wait()
	if applied.Load() != volumes || duplicates.Load() != volumes || elects.Load() != volumes {
		t.Fatalf("applied %d, duplicates %d, elections %d; want %d each", applied.Load(), duplicates.Load(), elects.Load(), volumes)
	}
	s := c.Stats()
	if s.ByState[Electing] != volumes || s.InFlight != 0 || s.Releases != volumes {
		t.Fatalf("stats %+v", s)
	}
	if _, ok := c.NextTick(); ok {
		t.Fatal("timers armed with nothing to retry")
	}
	if acts, err := c.Tick(t0.Add(time.Second)); err != nil || acts != nil {
		t.Fatalf("Tick: %+v %v", acts, err)
	}
	if _, _, ok := c.Primary(0); ok {
		t.Fatal("a volume still electing has a writable primary")
	}
}

func TestConcurrentBadSettings(t *testing.T) {
	if _, err := NewConcurrent(Settings{MaxPerNode: -7}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v", err)
	}
}

// driver is what Engine and Concurrent share, for tests that drive both.
type driver interface {
	AddNode(capacity int64) (NodeID, error)
	AddVolume(size int64, primary, secondary NodeID, token fence.Token) (VolumeID, error)
	Step(now time.Time, in Input) ([]Action, error)
}

// blindTargets returns the nodes d's blind searches (NoHints) query for 32
// volumes that lose their mirror: random choices, made with d's randomness.
func blindTargets(t *testing.T, d driver) []NodeID {
	t.Helper()
	for range 64 {
		if _, err := d.AddNode(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	var targets []NodeID
	for range 32 {
		v, err := d.AddVolume(1, 0, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		acts, err := d.Step(t0, Input{Kind: PeerLost, Volume: v, Node: 0})
		if err != nil || len(acts) != 1 || acts[0].Kind != Query {
			t.Fatalf("volume %d: %+v %v", v, acts, err)
		}
		targets = append(targets, acts[0].To)
	}
	return targets
}

// NewConcurrent takes its randomness as NewEngine does: a Concurrent makes
// the random choices of an Engine given the same source, a nil source
// means NewEngine's fixed seed, and two seeds choose differently.
func TestConcurrentSeeded(t *testing.T) {
	s := Settings{NoReconnect: true, NoHints: true, SearchRate: Unlimited, MaxPerNode: Unlimited, MaxPerCluster: Unlimited}
	build := func(seed uint64, concurrent bool) driver {
		var r *rand.Rand
		if seed != 0 {
			r = rand.New(rand.NewPCG(seed, 1))
		}
		if concurrent {
			c, err := NewConcurrent(s, r)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		e, err := NewEngine(s, r)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, seed := range []uint64{0, 7} {
		if c, e := blindTargets(t, build(seed, true)), blindTargets(t, build(seed, false)); !slices.Equal(c, e) {
			t.Errorf("seed %d: Concurrent queried %v, Engine %v", seed, c, e)
		}
	}
	if a, b := blindTargets(t, build(7, true)), blindTargets(t, build(8, true)); slices.Equal(a, b) {
		t.Errorf("seeds 7 and 8 queried the same nodes %v", a)
	}
	if a, b := blindTargets(t, build(0, true)), blindTargets(t, build(7, true)); slices.Equal(a, b) {
		t.Errorf("the default source and seed 7 queried the same nodes %v", a)
	}
}

// Every exported method of a zero Concurrent is safe: those that can
// refuse do, with ErrInvalidConfig and a pointer to NewConcurrent; the
// others report an empty cluster. `var c Concurrent; c.AddNode(1)` used to
// panic.
func TestZeroConcurrent(t *testing.T) {
	var c Concurrent
	errs := callZero(t, &c)
	for _, name := range []string{"AddNode", "AddVolume", "Step", "Tick", "Primary", "VolumeState", "Exhausted", "NextTick", "Stats"} {
		if _, called := errs[name]; !called {
			t.Errorf("Concurrent.%s was not called", name)
		}
	}
	for _, name := range []string{"AddNode", "AddVolume", "Step", "Tick"} {
		if err := errs[name]; !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "NewConcurrent") {
			t.Errorf("zero Concurrent's %s: %v, want ErrInvalidConfig naming NewConcurrent", name, err)
		}
	}
	if _, err := c.AddNode(1); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("AddNode: %v", err)
	}
	if acts, err := c.Step(t0, Input{Kind: PeerLost, Volume: 0, Node: 0}); !errors.Is(err, ErrInvalidConfig) || acts != nil {
		t.Fatalf("Step: %+v %v", acts, err)
	}
	if n, _, ok := c.Primary(0); ok || n != NoNode {
		t.Fatalf("Primary: %d %v", n, ok)
	}
	if _, ok := c.VolumeState(0); ok {
		t.Fatal("a zero Concurrent has volume 0")
	}
	if c.Stats() != (Stats{}) {
		t.Fatalf("stats %+v", c.Stats())
	}
}
