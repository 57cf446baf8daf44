package remirror_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/remirror"
)

// A network blip: the survivor probes its previous peer, which answers on
// the second probe. The mirror is back without a search, a copy or a byte
// of new space, and a new generation makes the survivor primary.
func Example_reconnect() {
	e, err := remirror.NewEngine(remirror.Settings{}, nil) // the safe defaults
	if err != nil {
		panic(err)
	}
	for range 3 {
		e.AddNode(100)
	}
	v, _ := e.AddVolume(1, 0, 1, 1) // replicas on nodes 0 and 1, generation 1
	now := time.Unix(0, 0)

	acts, _ := e.Step(now, remirror.Input{Kind: remirror.PeerLost, Volume: v, Node: 0})
	probe := acts[0]
	fmt.Println(probe.Kind, probe.From, "→", probe.To) // probe 0 → 1: reconnect before searching

	e.Step(now, remirror.Input{Kind: remirror.ProbeResult, Volume: v, Attempt: probe.Attempt}) // no answer yet
	at, _ := e.NextTick()
	acts, _ = e.Tick(at)
	probe = acts[0]
	acts, _ = e.Step(at, remirror.Input{Kind: remirror.ProbeResult, Volume: v, Attempt: probe.Attempt, OK: true})
	elect := acts[0]
	fmt.Println(elect.Kind, elect.From, "from generation", elect.Expect)

	e.Step(at, remirror.Input{Kind: remirror.Elected, Volume: v, Node: elect.From, Attempt: elect.Attempt, Token: 2})
	primary, gen, ok := e.Primary(v)
	s := e.Stats()
	fmt.Println("primary", primary, "generation", gen, ok, "searches", s.Queries, "copies", s.Copies)
	// Output:
	// probe 0 → 1
	// elect 0 from generation 1
	// primary 0 generation 2 true searches 0 copies 0
}

// The peer is gone for good: the survivor probes it with backoff for the
// reconnect window, then asks one node with room (no search message to a full node), copies, and only
// when the new owner confirms is the old replica released.
func Example_remirror() {
	e, _ := remirror.NewEngine(remirror.Settings{ReconnectWindow: time.Minute}, nil)
	e.AddNode(10)
	e.AddNode(10)
	e.AddNode(1) // a small node: searches prefer the node with the most room
	e.AddNode(10)
	v, _ := e.AddVolume(1, 0, 1, 1)
	now := time.Unix(0, 0)
	acts, _ := e.Step(now, remirror.Input{Kind: remirror.PeerLost, Volume: v, Node: 0})
	for {
		a := acts[0]
		if a.Kind != remirror.Probe {
			fmt.Println(a.Kind, a.From, "→", a.To)
		}
		var in remirror.Input
		switch a.Kind {
		case remirror.Probe:
			in = remirror.Input{Kind: remirror.ProbeResult, Volume: v, Attempt: a.Attempt} // never answers
		case remirror.Query:
			in = remirror.Input{Kind: remirror.SearchResult, Volume: v, Node: a.To, Attempt: a.Attempt, OK: true}
		case remirror.Copy:
			in = remirror.Input{Kind: remirror.CopyResult, Volume: v, Attempt: a.Attempt, OK: true}
		case remirror.Release:
			a = acts[1]
			fmt.Println(a.Kind, a.From, "from generation", a.Expect)
			in = remirror.Input{Kind: remirror.Elected, Volume: v, Node: a.From, Attempt: a.Attempt, Token: 2}
		}
		acts, _ = e.Step(now, in)
		for len(acts) == 0 {
			if in.Kind == remirror.Elected {
				p, g, _ := e.Primary(v)
				s := e.Stats()
				fmt.Println("primary", p, "generation", g, "probes", s.Probes, "searches", s.Queries)
				return
			}
			now, _ = e.NextTick()
			acts, _ = e.Tick(now)
		}
	}
	// Output:
	// query 0 → 3
	// copy 0 → 3
	// release 0 → 1
	// elect 0 from generation 1
	// primary 0 generation 2 probes 12 searches 1
}

// The shell that carries out Elect actions: a compare-and-swap on the
// volume's generation in a fence.Store, through a per-zone partition with
// short timeouts.
func ExampleAuthority() {
	ctx := context.Background()
	store, _ := fence.NewMemory(fence.MemoryConfig{})
	auth, err := remirror.NewAuthority(remirror.AuthorityConfig{Store: store}) // 64 calls, half per zone, 2s timeouts
	if err != nil {
		panic(err)
	}
	// The volume's record starts at the generation its engine was given.
	store.WriteIfNewer(ctx, remirror.VolumeKey("us-east-1a", 7), []byte("0"), 1)

	in, err := auth.Elect(ctx, "us-east-1a", remirror.Action{Kind: remirror.Elect, Volume: 7, Attempt: 1, From: 3, Expect: 1})
	fmt.Println(in.Kind, "node", in.Node, "generation", in.Token, err)
	// A replica still holding generation 1 is fenced off.
	in, err = auth.Elect(ctx, "us-east-1a", remirror.Action{Kind: remirror.Elect, Volume: 7, Attempt: 1, From: 4, Expect: 1})
	fmt.Println(in.Kind, "generation", in.Token, errors.Is(err, fence.ErrStale))
	// Output:
	// elected node 3 generation 2 <nil>
	// election-failed generation 2 true
}
