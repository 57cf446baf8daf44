package fence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/fence/fencetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestMemoryConformance(t *testing.T) {
	fencetest.TestStore(t, func(t *testing.T) fence.Store { return &fence.Memory{} })
}

func TestMemoryConformanceWithConfig(t *testing.T) {
	fencetest.TestStore(t, func(t *testing.T) fence.Store {
		var c fence.Counters
		m, err := fence.NewMemory(fence.MemoryConfig{MaxKeys: 10, OnEvent: c.Observe})
		require.NoError(t, err)
		return m
	})
}

func TestNewMemoryValidation(t *testing.T) {
	m, err := fence.NewMemory(fence.MemoryConfig{MaxKeys: -1})
	assert.Nil(t, m)
	assert.ErrorIs(t, err, fence.ErrInvalidConfig)
	assert.EqualError(t, err, "fence: invalid config: MemoryConfig.MaxKeys -1 is negative")
}

func TestMemoryMaxKeys(t *testing.T) {
	ctx := context.Background()
	m, err := fence.NewMemory(fence.MemoryConfig{MaxKeys: 2})
	require.NoError(t, err)
	require.NoError(t, m.CompareAndSwap(ctx, "a", 0, []byte{}, 1))
	require.NoError(t, fence.WriteIfNewer(ctx, m, "b", []byte{}, 1))
	err = m.CompareAndSwap(ctx, "c", 0, []byte{}, 1)
	assert.ErrorIs(t, err, fence.ErrFull)
	assert.EqualError(t, err, `fence: store full: cannot create key "c": 2 keys, limit 2`)
	assert.ErrorIs(t, fence.WriteIfNewer(ctx, m, "c", []byte{}, 1), fence.ErrFull)
	require.NoError(t, m.CompareAndSwap(ctx, "a", 1, []byte("x"), 2), "existing keys may still be written")
	require.NoError(t, m.Delete(ctx, "b", 1))
	require.NoError(t, m.CompareAndSwap(ctx, "c", 0, []byte{}, 1), "a delete makes room")
}

func TestMemoryEvents(t *testing.T) {
	ctx := context.Background()
	var events []fence.Event
	m, err := fence.NewMemory(fence.MemoryConfig{OnEvent: func(e fence.Event) { events = append(events, e) }})
	require.NoError(t, err)
	require.NoError(t, m.CompareAndSwap(ctx, "k", 0, []byte("a"), 3))
	require.Error(t, m.CompareAndSwap(ctx, "k", 0, []byte("b"), 4))
	require.NoError(t, m.WriteIfNewer(ctx, "k", []byte("c"), 8))
	require.Error(t, m.WriteIfNewer(ctx, "k", []byte("d"), 8))
	require.Error(t, m.Delete(ctx, "k", 3))
	require.NoError(t, m.Delete(ctx, "k", 8))
	require.Error(t, m.CompareAndSwap(ctx, "", 0, nil, 0), "invalid input is no event")
	_, _, _ = m.Load(ctx, "k")
	assert.Equal(t, []fence.Event{
		{Op: fence.OpCompareAndSwap, Key: "k", Token: 3, Current: 0},
		{Op: fence.OpCompareAndSwap, Key: "k", Token: 0, Current: 3, FencedOff: true},
		{Op: fence.OpWriteIfNewer, Key: "k", Token: 8, Current: 3},
		{Op: fence.OpWriteIfNewer, Key: "k", Token: 8, Current: 8, FencedOff: true},
		{Op: fence.OpDelete, Key: "k", Token: 3, Current: 8, FencedOff: true},
		{Op: fence.OpDelete, Key: "k", Token: 8, Current: 8},
	}, events)
}

// TestMemoryHookMayUseTheStore: hooks run outside the lock.
func TestMemoryHookMayUseTheStore(t *testing.T) {
	ctx := context.Background()
	var m *fence.Memory
	var seen []fence.Token
	m, err := fence.NewMemory(fence.MemoryConfig{OnEvent: func(e fence.Event) {
		_, tok, err := m.Load(ctx, e.Key)
		if err == nil {
			seen = append(seen, tok)
		}
	}})
	require.NoError(t, err)
	require.NoError(t, m.CompareAndSwap(ctx, "k", 0, []byte("a"), 3))
	assert.Equal(t, []fence.Token{3}, seen)
}

// memoryModel is the sequential specification of a Store.
type memoryModel map[string]struct {
	value string
	token fence.Token
}

// TestMemoryStateMachine runs random sequences of every Store operation on a
// Memory and on the model, and requires the same results, refusals and
// StaleError tokens included.
func TestMemoryStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		m := &fence.Memory{}
		model := memoryModel{}
		keyGen := rapid.SampledFrom([]string{"a", "a/1", "a/2", "b", "b/1"})
		tokGen := rapid.Uint64Range(0, 12)
		checkStale := func(err error, op fence.Op, key string, have, want fence.Token) {
			var se *fence.StaleError
			if !errors.As(err, &se) {
				t.Fatalf("%v %q: got %v, want a refusal with token %d", op, key, err, have)
			}
			if *se != (fence.StaleError{Op: op, Key: key, Have: have, Want: want}) {
				t.Fatalf("%v %q: got %+v, want have %d want %d", op, key, *se, have, want)
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"Load": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				v, tok, err := m.Load(ctx, k)
				require.NoError(t, err)
				e, ok := model[k]
				if tok != e.token || string(v) != e.value || (v == nil) == ok {
					t.Fatalf("Load(%q) = %q, %d; model %q, %d (present %v)", k, v, tok, e.value, e.token, ok)
				}
			},
			"CompareAndSwap": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				expect := model[k].token
				if rapid.Bool().Draw(t, "guess") {
					expect = fence.Token(tokGen.Draw(t, "expect"))
				}
				next := fence.Token(tokGen.Draw(t, "next"))
				value := fmt.Sprintf("%s@%d", k, next)
				err := m.CompareAndSwap(ctx, k, expect, []byte(value), next)
				switch cur := model[k].token; {
				case next <= expect:
					assert.ErrorIs(t, err, fence.ErrInvalidToken)
				case cur != expect:
					checkStale(err, fence.OpCompareAndSwap, k, cur, expect)
				default:
					require.NoError(t, err)
					model[k] = struct {
						value string
						token fence.Token
					}{value, next}
				}
			},
			"WriteIfNewer": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				tok := fence.Token(tokGen.Draw(t, "token"))
				value := fmt.Sprintf("%s@%d", k, tok)
				err := fence.WriteIfNewer(ctx, m, k, []byte(value), tok)
				switch cur := model[k].token; {
				case tok == 0:
					assert.ErrorIs(t, err, fence.ErrInvalidToken)
				case tok <= cur:
					checkStale(err, fence.OpWriteIfNewer, k, cur, tok)
				default:
					require.NoError(t, err)
					model[k] = struct {
						value string
						token fence.Token
					}{value, tok}
				}
			},
			"Delete": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				expect := model[k].token
				if rapid.Bool().Draw(t, "guess") {
					expect = fence.Token(tokGen.Draw(t, "expect"))
				}
				err := m.Delete(ctx, k, expect)
				switch cur := model[k].token; {
				case expect == 0:
					assert.ErrorIs(t, err, fence.ErrInvalidToken)
				case cur != expect:
					checkStale(err, fence.OpDelete, k, cur, expect)
				default:
					require.NoError(t, err)
					delete(model, k)
				}
			},
			"List": func(t *rapid.T) {
				prefix := rapid.SampledFrom([]string{"", "a", "a/", "b", "c"}).Draw(t, "prefix")
				got, err := m.List(ctx, prefix)
				require.NoError(t, err)
				var want []string
				for k := range model {
					if strings.HasPrefix(k, prefix) {
						want = append(want, k)
					}
				}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
				}
			},
		})
	})
}

// TestMemoryStoredTokenNeverDecreases: concurrent write-if-newer and
// compare-and-swap writers with arbitrary tokens, and a reader that must
// never see a key's token go back.
func TestMemoryStoredTokenNeverDecreases(t *testing.T) {
	ctx := context.Background()
	m := &fence.Memory{}
	var wg sync.WaitGroup
	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		var last fence.Token
		for {
			select {
			case <-done:
				readerErr <- nil
				return
			default:
			}
			_, tok, err := m.Load(ctx, "k")
			if err != nil || tok < last {
				readerErr <- fmt.Errorf("token %d after %d (%v)", tok, last, err)
				return
			}
			last = tok
		}
	}()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				tok := fence.Token((i*7+w*13)%997 + 1)
				if i%2 == 0 {
					_ = m.WriteIfNewer(ctx, "k", []byte{}, tok)
				} else if _, cur, _ := m.Load(ctx, "k"); tok > cur {
					_ = m.CompareAndSwap(ctx, "k", cur, []byte{}, tok)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	assert.NoError(t, <-readerErr)
	_, tok, err := m.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, fence.Token(997), tok)
}
