package remirror

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// reconnect loses volume 0's mirror from node 0 and has the probe succeed
// at now, returning what the engine does then (an Elect, or nothing).
func reconnect(t *testing.T, e *Engine, now time.Time) []Action {
	t.Helper()
	p := only(t, step(t, e, now, Input{Kind: PeerLost, Volume: 0, Node: 0}), Probe)
	return step(t, e, now, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt, OK: true})
}

// exhausted checks that volume 0 is stuck electing, reported Exhausted,
// with no request outstanding and no timer: the engine sends no election
// it cannot win, now or ever.
func exhausted(t *testing.T, e *Engine, now time.Time) {
	t.Helper()
	if s, _ := e.VolumeState(0); s != Electing || !e.Exhausted(0) {
		t.Fatalf("volume 0: state %v, Exhausted %v; want electing and exhausted", s, e.Exhausted(0))
	}
	if s := e.Stats(); s.Exhausted != 1 || s.Stuck != 1 || s.ElectionsOut != 0 {
		t.Fatalf("stats %+v, want 1 exhausted, 1 stuck, no election out", s)
	}
	if _, _, ok := e.Primary(0); ok {
		t.Fatal("an exhausted volume has a writable primary")
	}
	if at, ok := e.NextTick(); ok {
		t.Fatalf("a timer is armed at %v for an election that cannot succeed", at)
	}
	if acts := must(e.Tick(now.Add(24 * time.Hour))); len(acts) != 0 {
		t.Fatalf("a day later: %+v", acts)
	}
}

// A volume elected with the last generation, fence.MaxToken, is healthy;
// the next time it needs an election, none can succeed (no generation is
// newer), so the engine sends none and reports the volume Exhausted instead
// of retrying forever. Losing its mirror again, or its deletion, ends it.
func TestElectedMaxTokenThenExhausted(t *testing.T) {
	e := cluster(t, Settings{}, 3, 10)
	el := only(t, reconnect(t, e, t0), Elect)
	step(t, e, t0, Input{Kind: Elected, Volume: 0, Node: 0, Attempt: el.Attempt, Token: fence.MaxToken})
	if n, tok, ok := e.Primary(0); !ok || n != 0 || tok != fence.MaxToken {
		t.Fatalf("Primary = %d %d %v, want 0 MaxToken true", n, tok, ok)
	}
	if e.Exhausted(0) || e.Stats().Exhausted != 0 {
		t.Fatal("a healthy volume is reported exhausted")
	}
	if acts := reconnect(t, e, t0); len(acts) != 0 {
		t.Fatalf("generation MaxToken: %+v, want no election", acts)
	}
	exhausted(t, e, t0)

	// Its peer fails: the volume recovers again (reconnect, search, copy)
	// and is no longer exhausted until it needs an election again.
	now := t0.Add(24 * time.Hour)
	step(t, e, now, Input{Kind: NodeFailed, Node: 1})
	if s, _ := e.VolumeState(0); s == Electing || e.Exhausted(0) || e.Stats().Exhausted != 0 {
		t.Fatalf("after its peer failed: state %v, Exhausted %v, stats %+v", s, e.Exhausted(0), e.Stats())
	}
	step(t, e, now, Input{Kind: VolumeDeleted, Volume: 0})
	if e.Exhausted(0) || e.Stats().Exhausted != 0 {
		t.Fatalf("deleted: Exhausted %v, stats %+v", e.Exhausted(0), e.Stats())
	}
}

// An election failure reporting the authority's generation as MaxToken
// leaves nothing to build on: the volume is exhausted at once.
func TestElectionFailedMaxTokenExhausts(t *testing.T) {
	e := cluster(t, Settings{}, 3, 10)
	el := only(t, reconnect(t, e, t0), Elect)
	if acts := step(t, e, t0, Input{Kind: ElectionFailed, Volume: 0, Attempt: el.Attempt, Token: fence.MaxToken}); len(acts) != 0 {
		t.Fatalf("%+v", acts)
	}
	if _, tok, _ := e.Primary(0); tok != fence.MaxToken {
		t.Fatalf("generation %d, want MaxToken", tok)
	}
	exhausted(t, e, t0)
	// The answer to the election is a duplicate now.
	if _, err := e.Step(t0.Add(25*time.Hour), Input{Kind: Elected, Volume: 0, Node: 0, Attempt: el.Attempt, Token: fence.MaxToken}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second answer: %v, want ErrDuplicate", err)
	}
}

// A volume added with generation MaxToken is exhausted at its first
// election; through the Authority, an election is never even attempted.
func TestAddedAtMaxTokenExhausts(t *testing.T) {
	e, err := NewEngine(Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		must1(e.AddNode(10))
	}
	if _, err := e.AddVolume(1, 0, 1, fence.MaxToken); err != nil {
		t.Fatal(err)
	}
	if acts := reconnect(t, e, t0); len(acts) != 0 {
		t.Fatalf("%+v, want no election", acts)
	}
	exhausted(t, e, t0)
	// The Authority refuses such an election without a call, had a driver
	// built one by hand.
	a := must1(NewAuthority(AuthorityConfig{Store: must1(fence.NewMemory(fence.MemoryConfig{}))}))
	if _, err := a.Elect(context.Background(), "z", Action{Kind: Elect, Volume: 0, Attempt: 1, From: 0, Expect: fence.MaxToken}); !errors.Is(err, fence.ErrExhausted) {
		t.Fatalf("Elect from MaxToken: %v, want fence.ErrExhausted", err)
	}
}

func must1[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
