package fence

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestGuardZeroValue(t *testing.T) {
	var g Guard
	assert.Equal(t, Token(0), g.Current())
	assert.True(t, g.Allow(1))
	assert.False(t, g.Allow(0), "zero is never admitted")
	assert.ErrorIs(t, g.Admit(0), ErrInvalidToken)
	assert.Equal(t, Token(1), g.Current())
}

func TestGuardAdmit(t *testing.T) {
	var c Counters
	var events []Event
	g := NewGuard(GuardConfig{Initial: 5, Name: "zone example.com", OnEvent: func(e Event) {
		c.Observe(e)
		events = append(events, e)
	}})
	assert.Equal(t, Token(5), g.Current())

	err := g.Admit(4)
	assert.EqualError(t, err, `fence: stale admit of "zone example.com": token 4 is older than the newest admitted token 5`)
	var se *StaleError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StaleError{Op: OpAdmit, Key: "zone example.com", Have: 5, Want: 4}, *se)

	require.NoError(t, g.Admit(5), "the newest token itself is admitted, again and again")
	require.NoError(t, g.Admit(5))
	require.NoError(t, g.Admit(9))
	assert.False(t, g.Allow(8), "once 9 is in, 8 is fenced off for good")
	assert.True(t, g.Allow(9))
	assert.Equal(t, Token(9), g.Current())

	assert.Equal(t, Stats{Admitted: 4, FencedOff: 2}, c.Stats())
	assert.Equal(t, []Event{
		{Op: OpAdmit, Key: "zone example.com", Token: 4, Current: 5, FencedOff: true},
		{Op: OpAdmit, Key: "zone example.com", Token: 5, Current: 5},
		{Op: OpAdmit, Key: "zone example.com", Token: 5, Current: 5},
		{Op: OpAdmit, Key: "zone example.com", Token: 9, Current: 5},
		{Op: OpAdmit, Key: "zone example.com", Token: 8, Current: 9, FencedOff: true},
		{Op: OpAdmit, Key: "zone example.com", Token: 9, Current: 9},
	}, events)
}

func TestGuardAdmitPathDoesNotAllocate(t *testing.T) {
	g := NewGuard(GuardConfig{Initial: 10})
	var c Counters
	counted := NewGuard(GuardConfig{Initial: 10, OnEvent: c.Observe})
	tok := Token(10)
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		tok++
		_ = g.Admit(tok)
		_ = g.Admit(tok)
		_ = g.Allow(3) // a refusal through Allow allocates nothing either
		_ = counted.Admit(tok)
		_ = counted.Allow(3)
	}))
}

// TestGuardProperty: the guard admits a token if and only if it is at least
// every token admitted before, and Current is the newest admitted.
func TestGuardProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		initial := Token(rapid.Uint64Range(0, 30).Draw(t, "initial"))
		g := NewGuard(GuardConfig{Initial: initial})
		newest := initial
		for _, tok := range rapid.SliceOf(rapid.Uint64Range(0, 40)).Draw(t, "tokens") {
			tok := Token(tok)
			var admitted bool
			if rapid.Bool().Draw(t, "allow") {
				admitted = g.Allow(tok)
			} else {
				admitted = g.Admit(tok) == nil
			}
			if want := tok != 0 && tok >= newest; admitted != want {
				t.Fatalf("token %d with newest %d: admitted %v", tok, newest, admitted)
			}
			if admitted {
				newest = tok
			}
			if g.Current() != newest {
				t.Fatalf("Current %d, newest admitted %d", g.Current(), newest)
			}
		}
	})
}

// TestGuardConcurrent: many goroutines offer random tokens. Each one, having
// seen its token t admitted, must never see a token below t admitted
// afterwards; readers never see Current go back; and at the end Current is
// the largest token admitted.
func TestGuardConcurrent(t *testing.T) {
	var g Guard
	const workers, each = 6, 20000
	var largest atomic.Uint64
	var stop atomic.Bool
	var wg, readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		var last Token
		for !stop.Load() {
			cur := g.Current()
			if cur < last {
				t.Errorf("Current went back from %d to %d", last, cur)
				return
			}
			last = cur
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			var mine Token
			for i := range each {
				// Tokens drift upwards, as generations do, with stragglers.
				tok := Token(uint64(i) + rng.Uint64N(500) + 1)
				if !g.Allow(tok) {
					// Refused means a newer token was in, and the guard never goes back.
					if cur := g.Current(); tok >= cur {
						t.Errorf("refused %d, but the guard is at %d", tok, cur)
						return
					}
					continue
				}
				if tok < mine {
					t.Errorf("admitted %d after this goroutine's %d was admitted", tok, mine)
					return
				}
				mine = tok
				for {
					l := largest.Load()
					if uint64(tok) <= l || largest.CompareAndSwap(l, uint64(tok)) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()
	assert.Equal(t, Token(largest.Load()), g.Current())
}
