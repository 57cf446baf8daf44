package fence

import (
	"context"
	"errors"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// TestMemoryLinearizable runs WriteIfNewer, CompareAndSwap and Delete on
// one key of a Memory from several goroutines at once, and checks that
// the operations that took effect chain into one history, as they would
// if each took effect at one instant in some order: each replaced the
// token the previous one left (a delete leaves zero), each write-if-newer
// carried a token above the one it replaced, each compare-and-swap and
// delete found the token it expected, and the history ends in the token
// Load returns. Every refusal is a *StaleError naming a different token
// than the one the operation needed.
func TestMemoryLinearizable(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		type edge struct{ from, to Token }
		var mu sync.Mutex
		var edges []edge
		var bad []Event
		m, err := NewMemory(MemoryConfig{OnEvent: func(e Event) {
			if e.FencedOff {
				return
			}
			to := e.Token
			if e.Op == OpDelete {
				to = 0
			}
			mu.Lock()
			if e.Op != OpDelete && e.Token <= e.Current {
				bad = append(bad, e)
			}
			edges = append(edges, edge{e.Current, to})
			mu.Unlock()
		}})
		if err != nil {
			rt.Fatal(err)
		}
		ctx := context.Background()
		workers := rapid.IntRange(2, 4).Draw(rt, "workers")
		type op struct {
			kind         int
			expect, next Token
		}
		plans := make([][]op, workers)
		for w := range plans {
			for range rapid.IntRange(1, 30).Draw(rt, "ops") {
				e := Token(rapid.IntRange(0, 6).Draw(rt, "expect"))
				n := e + Token(rapid.IntRange(1, 3).Draw(rt, "step"))
				plans[w] = append(plans[w], op{rapid.IntRange(0, 2).Draw(rt, "kind"), e, n})
			}
		}
		errs := make(chan error, 1)
		report := func(err error) {
			select {
			case errs <- err:
			default:
			}
		}
		var wg sync.WaitGroup
		for _, plan := range plans {
			wg.Go(func() {
				for _, o := range plan {
					var err error
					switch o.kind {
					case 0:
						err = m.WriteIfNewer(ctx, "k", []byte("v"), o.next)
					case 1:
						err = m.CompareAndSwap(ctx, "k", o.expect, []byte("v"), o.next)
					default:
						if o.expect == 0 {
							continue
						}
						err = m.Delete(ctx, "k", o.expect)
					}
					var stale *StaleError
					if err != nil && !errors.As(err, &stale) {
						report(err)
					}
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			rt.Fatal(err)
		default:
		}
		if len(bad) > 0 {
			rt.Fatalf("writes took effect without a newer token: %+v", bad)
		}
		_, final, err := m.Load(ctx, "k")
		if err != nil {
			rt.Fatal(err)
		}
		// The edges must form one path from 0 to final using each once:
		// an Eulerian path. Tokens other than 0 rise along the path until
		// a delete, so build it greedily: from each token, every edge out
		// of it must be usable in turn.
		out := map[Token][]Token{}
		for _, e := range edges {
			out[e.from] = append(out[e.from], e.to)
		}
		// Degree condition: every token but the two ends is entered as
		// often as left.
		bal := map[Token]int{}
		for _, e := range edges {
			bal[e.from]++
			bal[e.to]--
		}
		bal[0]--
		bal[final]++
		for tok, b := range bal {
			if b != 0 {
				rt.Fatalf("the %d writes that took effect do not chain from 0 to %d: token %d out-in %d; edges %v", len(edges), final, tok, b, edges)
			}
		}
		// Connectivity: walk Hierholzer-style and use every edge.
		used := 0
		var walk func(Token)
		walk = func(tok Token) {
			for len(out[tok]) > 0 {
				next := out[tok][len(out[tok])-1]
				out[tok] = out[tok][:len(out[tok])-1]
				used++
				walk(next)
			}
		}
		walk(0)
		if used != len(edges) {
			rt.Fatalf("only %d of %d effective writes chain from 0: %v", used, len(edges), edges)
		}
	})
}
