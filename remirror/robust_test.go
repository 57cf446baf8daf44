package remirror

import (
	"context"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/fence"
)

// The review's sequence: a probe answered OK before its peer crashed
// arrives after NodeFailed. Before the fix it was accepted, the volume was
// elected Healthy with its second replica on the down, quarantined node,
// nothing stayed pending, and NodeUp lifted the quarantine.
func TestLateProbeFromFailedPeer(t *testing.T) {
	e := cluster(t, Settings{}, 3, 10)
	p := only(t, step(t, e, t0, Input{Kind: PeerLost, Volume: 0, Node: 0}), Probe)
	step(t, e, t0, Input{Kind: NodeFailed, Node: 1})
	acts, err := e.Step(t0, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt, OK: true})
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("late probe answer from a failed peer: %+v %v, want ErrDuplicate", acts, err)
	}
	// Whatever the driver answers to later probes of the down peer, the
	// volume does not become healthy on it.
	for range 50 {
		if at, ok := e.NextTick(); ok {
			acts = must(e.Tick(at))
		}
		for _, a := range acts {
			var in Input
			switch a.Kind {
			case Probe:
				in = Input{Kind: ProbeResult, Volume: 0, Attempt: a.Attempt, OK: true}
			case Elect:
				in = Input{Kind: Elected, Volume: 0, Node: a.From, Attempt: a.Attempt, Token: a.Expect + 1}
			default:
				continue
			}
			acts = step(t, e, t0Later(e), in)
		}
		if s, _ := e.VolumeState(0); s == Healthy {
			a, b, _ := e.Replicas(0)
			t.Fatalf("volume healthy on %d and %d while node 1 is down", a, b)
		}
	}
	if _, ok := e.NextTick(); !ok && len(acts) == 0 {
		t.Fatal("the stuck volume has nothing pending")
	}
	step(t, e, t0Later(e), Input{Kind: NodeUp, Node: 1})
	if _, _, _, q, _ := e.NodeStatus(1); !q {
		t.Fatal("node 1 left quarantine while its replica of volume 0 is not safe")
	}
}

// t0Later is the engine's last input time: inputs may not go backwards.
func t0Later(e *Engine) time.Time { return time.Unix(0, e.last) }

// NodeFailed ends the probes aimed at the failed node and makes no new
// ones: while the peer is known to be down, a reconnecting volume's probes
// fail without a message (it used to probe the down node at once, and
// again at every retry of the window, answers that could only fail). It
// still never becomes healthy on the down node, searches when the window
// ends, and probes again once NodeUp says the peer is back.
func TestNoProbeOfADownPeer(t *testing.T) {
	for _, back := range []bool{false, true} {
		e := cluster(t, Settings{ReconnectWindow: time.Minute}, 3, 10)
		acts := step(t, e, t0, Input{Kind: NodeFailed, Node: 1})
		if len(acts) != 0 {
			t.Fatalf("NodeFailed of the peer: actions %+v, want none", acts)
		}
		if s, _ := e.VolumeState(0); s != Reconnecting {
			t.Fatalf("state %v, want reconnecting", s)
		}
		if back {
			step(t, e, t0.Add(time.Second/2), Input{Kind: NodeUp, Node: 1})
		}
		for range 100 {
			at, ok := e.NextTick()
			if !ok {
				t.Fatal("the stuck volume has no timer")
			}
			acts = must(e.Tick(at))
			if len(acts) > 0 {
				break
			}
		}
		if len(acts) != 1 {
			t.Fatalf("back %v: actions %+v, want one", back, acts)
		}
		a := acts[0]
		switch {
		case back && (a.Kind != Probe || a.To != 1):
			t.Fatalf("peer back: %+v, want a probe of node 1", a)
		case !back && (a.Kind != Query || a.To != 2 || t0Later(e).Sub(t0) < time.Minute):
			t.Fatalf("peer down: %+v at %v, want a query of node 2 once the minute's window is over", a, t0Later(e).Sub(t0))
		}
		if st := e.Stats(); st.Reconnected != 0 || (!back && st.Probes != 0) {
			t.Fatalf("back %v: %+v", back, st)
		}
	}
}

// AddVolume's room check must not wrap: two nodes of capacity MaxInt64, a
// volume of 1, then one of MaxInt64.
func TestAddVolumeRoomCheckDoesNotWrap(t *testing.T) {
	for _, s := range []Settings{{}, {NoReserve: true}} {
		e, _ := NewEngine(s, nil)
		e.AddNode(math.MaxInt64)
		e.AddNode(math.MaxInt64)
		if _, err := e.AddVolume(1, 0, 1, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := e.AddVolume(math.MaxInt64, 0, 1, 1); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("%+v: a volume of MaxInt64 on nodes using 1 of MaxInt64: %v, want ErrNoSpace", s, err)
		}
		for n := range NodeID(2) {
			if _, used, _, _, _ := e.NodeStatus(n); used != 1 {
				t.Fatalf("node %d uses %d, want 1", n, used)
			}
		}
		if f := e.Stats().Free; f < 0 {
			t.Fatalf("Stats.Free %d", f)
		}
	}
}

// Stats.Free saturates at MaxInt64 instead of wrapping.
func TestStatsFreeSaturates(t *testing.T) {
	e, _ := NewEngine(Settings{}, nil)
	for range 3 {
		e.AddNode(math.MaxInt64)
	}
	if f := e.Stats().Free; f != math.MaxInt64 {
		t.Fatalf("Stats.Free of three empty nodes of MaxInt64: %d, want MaxInt64", f)
	}
}

var (
	lastNano  = time.Unix(0, math.MaxInt64)
	firstNano = time.Unix(0, math.MinInt64)
)

// Retry timers saturate at the last instant of the UnixNano range instead
// of wrapping to 1677, and Tick returns. Before the fix Tick never
// returned.
func TestTimersSaturateAtEndOfTime(t *testing.T) {
	for _, s := range []Settings{{}, {NoReconnect: true, Search: policyHour()}, {ReconnectWindow: math.MaxInt64, Reconnect: policyHour()}} {
		e := cluster(t, s, 2, 10) // no third node: searches find no candidate
		now := lastNano.Add(-time.Second)
		acts := step(t, e, now, Input{Kind: PeerLost, Volume: 0, Node: 0})
		for range 20 {
			for _, a := range acts {
				if a.Kind == Probe {
					step(t, e, now, Input{Kind: ProbeResult, Volume: 0, Attempt: a.Attempt})
				}
			}
			at, ok := e.NextTick()
			if !ok {
				t.Fatalf("%+v: nothing pending for a stuck volume", s)
			}
			if at.Before(now) {
				t.Fatalf("%+v: timer at %v, before now %v", s, at, now)
			}
			now = at
			acts = must(e.Tick(now))
		}
	}
}

func policyHour() backoff.Policy {
	return backoff.Policy{Base: time.Hour, Cap: math.MaxInt64}
}

// Times outside the UnixNano range are refused, with ErrInvalidInput,
// instead of wrapping.
func TestTimesOutsideRangeRefused(t *testing.T) {
	for _, now := range []time.Time{lastNano.Add(1), firstNano.Add(-1), {}, time.Unix(math.MaxInt64, 0)} {
		e := cluster(t, Settings{}, 3, 10)
		if _, err := e.Step(now, Input{Kind: PeerLost, Volume: 0, Node: 0}); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("Step at %v: %v, want ErrInvalidInput", now, err)
		}
		if _, err := e.Tick(now); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("Tick at %v: %v, want ErrInvalidInput", now, err)
		}
		if s, _ := e.VolumeState(0); s != Healthy || e.started {
			t.Fatalf("a refused time changed the engine: %v %v", s, e.started)
		}
	}
	// The ends themselves are fine.
	e := cluster(t, Settings{}, 3, 10)
	step(t, e, firstNano, Input{Kind: PeerLost, Volume: 0, Node: 0})
	must(e.Tick(lastNano))
}

// A volume lost at the start of the UnixNano range and probed at its end:
// the time since the loss does not wrap, so the window has passed and the
// volume searches.
func TestReconnectWindowAcrossWholeRange(t *testing.T) {
	e := cluster(t, Settings{}, 3, 10)
	p := only(t, step(t, e, firstNano, Input{Kind: PeerLost, Volume: 0, Node: 0}), Probe)
	acts := step(t, e, lastNano, Input{Kind: ProbeResult, Volume: 0, Attempt: p.Attempt})
	if s, _ := e.VolumeState(0); s != Searching {
		t.Fatalf("state %v after the window passed, want searching (%+v)", s, acts)
	}
}

// The reserve is ⌈capacity × fraction⌉ with the fraction read as the
// decimal it was written as: 0.07 of 100 is 7, not 8.
func TestReserveExact(t *testing.T) {
	for _, c := range []struct {
		frac     float64
		capacity int64
		want     int64
	}{
		{0.07, 100, 7},
		{0.1, 100, 10},
		{0.1, 101, 11},
		{0.3, 10, 3},
		{0.29, 100, 29},
		{0.57, 100, 57},
		{0.1, 1, 1},
		{1e-300, 1, 1},
		{0.5, math.MaxInt64, math.MaxInt64/2 + 1},
		{0.1, math.MaxInt64, 922337203685477581},
		{math.Nextafter(1, 0), math.MaxInt64, 9223372036854774885}, // 0.9999999999999999
		{0.123456789, 1_000_000_000, 123456789},
		{0.123456789, 1_000_000_001, 123456790},
	} {
		e, err := NewEngine(Settings{RecoveryReserve: c.frac}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.reserveOf(c.capacity); got != c.want || got != bigReserve(c.frac, c.capacity) {
			t.Errorf("reserve %v of %d: %d, want %d (big %d)", c.frac, c.capacity, got, c.want, bigReserve(c.frac, c.capacity))
		}
		// AddVolume agrees: capacity − reserve fits, one more does not.
		e.AddNode(c.capacity)
		e.AddNode(c.capacity)
		if room := c.capacity - c.want; room > 0 {
			if _, err := e.AddVolume(room+1, 0, 1, 1); !errors.Is(err, ErrNoSpace) {
				t.Errorf("reserve %v of %d: a volume of %d: %v, want ErrNoSpace", c.frac, c.capacity, room+1, err)
			}
			if _, err := e.AddVolume(room, 0, 1, 1); err != nil {
				t.Errorf("reserve %v of %d: a volume of %d: %v", c.frac, c.capacity, room, err)
			}
		}
	}
}

// bigReserve is the reserve by math/big, from the shortest decimal of frac.
func bigReserve(frac float64, capacity int64) int64 {
	r, _ := new(big.Rat).SetString(strconv.FormatFloat(frac, 'g', -1, 64))
	r.Mul(r, new(big.Rat).SetInt64(capacity))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

// A zero SearchBurst is 40 or ⌈SearchRate⌉ if larger, at every rate
// (saturating at the largest int).
func TestDefaultBurstAtHighRates(t *testing.T) {
	for _, c := range []struct {
		rate float64
		want int
	}{
		{1, 40},
		{40.5, 41},
		{1e9 - 0.5, 1e9},
		{1e9, 1e9},
		{2.5e9, 2.5e9},
		{1e300, math.MaxInt},
		{math.MaxFloat64, math.MaxInt},
	} {
		e, err := NewEngine(Settings{SearchRate: c.rate}, nil)
		if err != nil {
			t.Fatalf("rate %v: %v", c.rate, err)
		}
		if e.cfg.burst != c.want {
			t.Errorf("rate %v: burst %d, want %d", c.rate, e.cfg.burst, c.want)
		}
	}
}

// Typed nils — a nil *Engine, *Concurrent or *Authority, a nil store in an
// interface — are refused with ErrInvalidConfig, never a panic.
func TestTypedNilsRefused(t *testing.T) {
	for _, v := range []any{(*Engine)(nil), (*Concurrent)(nil), (*Authority)(nil)} {
		for name, err := range callZero(t, v) {
			switch name {
			case "AddNode", "AddVolume", "Step", "Tick", "Elect":
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("%T.%s: %v, want ErrInvalidConfig", v, name, err)
				}
			}
		}
	}
	callZero(t, (*InputError)(nil))
	if _, err := NewAuthority(AuthorityConfig{Store: (*fence.Memory)(nil)}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewAuthority with a nil *fence.Memory: %v, want ErrInvalidConfig", err)
	}
}

// nilCtx is a context.Context whose nil pointer would panic if used.
type nilCtx struct{ context.Context }

// A *rand.Rand drawing from a nil Source, and a typed-nil context given to
// Authority.Elect, are refused, never a panic.
func TestTypedNilArgumentsRefused(t *testing.T) {
	for _, r := range []*rand.Rand{rand.New(nil), rand.New((*rand.PCG)(nil)), rand.New((*rand.ChaCha8)(nil))} {
		if _, err := NewEngine(Settings{}, r); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("NewEngine with a nil Source: %v, want ErrInvalidConfig", err)
		}
		if _, err := NewConcurrent(Settings{}, r); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("NewConcurrent with a nil Source: %v, want ErrInvalidConfig", err)
		}
	}
	if _, err := NewEngine(Settings{}, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	a, _ := newAuthority(t)
	in, err := a.Elect((*nilCtx)(nil), "z", Action{Kind: Elect, Volume: 0, Attempt: 1, From: 0, Expect: 1})
	if !errors.Is(err, ErrInvalidInput) || in.Kind != ElectionFailed {
		t.Fatalf("Elect with a nil *nilCtx: %+v %v, want ElectionFailed and ErrInvalidInput", in, err)
	}
}

// For any fraction in [0, 1) and any capacity, the reserve is the exact
// ceiling of capacity times the fraction's decimal, within one unit of the
// float product, at most the capacity, and never smaller for a larger
// capacity.
func TestPropertyReserveExact(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		frac := rapid.Float64Range(0, 1).Filter(func(f float64) bool { return f < 1 }).Draw(t, "frac")
		if rapid.Bool().Draw(t, "decimal") {
			// A short decimal such as 0.07, as a caller writes it.
			frac = float64(rapid.IntRange(0, 9999).Draw(t, "permyriad")) / 10000
		}
		c := rapid.Int64Range(1, math.MaxInt64).Draw(t, "capacity")
		e, err := NewEngine(Settings{RecoveryReserve: frac, NoReserve: frac == 0}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := e.reserveOf(c)
		if r != bigReserve(frac, c) || r < 0 || r > c {
			t.Fatalf("reserve %v of %d: %d, big %d", frac, c, r, bigReserve(frac, c))
		}
		if f := float64(c) * frac; math.Abs(float64(r)-f) > 1+f*1e-15 {
			t.Fatalf("reserve %v of %d: %d, float product %v", frac, c, r, f)
		}
		if c < math.MaxInt64 && e.reserveOf(c+1) < r {
			t.Fatalf("reserve %v: %d for %d but %d for %d", frac, r, c, e.reserveOf(c+1), c+1)
		}
	})
}
