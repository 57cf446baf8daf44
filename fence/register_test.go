package fence

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestRegisterZeroValue(t *testing.T) {
	var r Register[string]
	v, tok := r.Load()
	assert.Equal(t, "", v)
	assert.Equal(t, Token(0), tok)
	assert.Equal(t, Token(0), r.Token())
}

func TestRegisterCompareAndSwap(t *testing.T) {
	var r Register[string]
	require.NoError(t, r.CompareAndSwap(0, "gen 1", 1))
	require.NoError(t, r.CompareAndSwap(1, "gen 5", 5))

	err := r.CompareAndSwap(1, "late", 2)
	var se *StaleError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StaleError{Op: OpCompareAndSwap, Have: 5, Want: 1}, *se)
	assert.ErrorIs(t, err, ErrStale)

	v, tok := r.Load()
	assert.Equal(t, "gen 5", v)
	assert.Equal(t, Token(5), tok)

	assert.ErrorIs(t, r.CompareAndSwap(5, "same", 5), ErrInvalidToken)
	assert.ErrorIs(t, r.CompareAndSwap(5, "older", 4), ErrInvalidToken)
	assert.ErrorIs(t, r.CompareAndSwap(0, "zero", 0), ErrInvalidToken)
	assert.Equal(t, Token(5), r.Token(), "invalid writes change nothing")
}

func TestRegisterWriteIfNewer(t *testing.T) {
	var r Register[[]string]
	require.NoError(t, r.WriteIfNewer([]string{"lb-1", "lb-2"}, 3))
	require.NoError(t, r.WriteIfNewer([]string{"lb-3"}, 10))

	// The delayed enactor: generation 4 after 10 was applied.
	err := r.WriteIfNewer([]string{"lb-1"}, 4)
	assert.EqualError(t, err, "fence: stale write-if-newer: token 4 is not newer than the current token 10")
	assert.ErrorIs(t, r.WriteIfNewer([]string{"lb-x"}, 10), ErrStale, "equal tokens are not newer")
	assert.ErrorIs(t, r.WriteIfNewer(nil, 0), ErrInvalidToken)

	v, tok := r.Load()
	assert.Equal(t, []string{"lb-3"}, v)
	assert.Equal(t, Token(10), tok)
	require.NoError(t, r.WriteIfNewer(nil, MaxToken))
	assert.ErrorIs(t, r.WriteIfNewer(nil, MaxToken), ErrStale)
}

func TestRegisterReadPathDoesNotAllocate(t *testing.T) {
	var r Register[string]
	require.NoError(t, r.WriteIfNewer("v", 1))
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		_, _ = r.Load()
		_ = r.Token()
	}))
	// An accepted write allocates its node and nothing else.
	var tok Token = 1
	assert.LessOrEqual(t, testing.AllocsPerRun(1000, func() {
		tok++
		_ = r.WriteIfNewer("v", tok)
	}), 1.0)
}

// TestRegisterProperty: under any sequence of writes with arbitrary tokens
// from several writers, the token never decreases, a write-if-newer is
// accepted exactly when its token is newer, a compare-and-swap exactly when
// its expected token is current, and Load always returns a value with the
// token it was written with.
func TestRegisterProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var r Register[string]
		var model Token
		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for range steps {
			writer := rapid.IntRange(0, 2).Draw(t, "writer")
			tok := Token(rapid.Uint64Range(0, 40).Draw(t, "token"))
			value := fmt.Sprintf("w%d@%d", writer, tok)
			before := r.Token()
			var err error
			var accept bool
			if rapid.Bool().Draw(t, "cas") {
				// A writer expects either the truth or a guess.
				expect := model
				if rapid.Bool().Draw(t, "guess") {
					expect = Token(rapid.Uint64Range(0, 40).Draw(t, "expect"))
				}
				err = r.CompareAndSwap(expect, value, tok)
				accept = expect == model && tok > expect
				if tok <= expect && !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("CompareAndSwap(%d, %d): got %v, want ErrInvalidToken", expect, tok, err)
				}
			} else {
				err = r.WriteIfNewer(value, tok)
				accept = tok > model && tok != 0
				if tok == 0 && !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("WriteIfNewer(0): got %v", err)
				}
			}
			if accept != (err == nil) {
				t.Fatalf("token %d with current %d: accepted %v, error %v", tok, model, accept, err)
			}
			var se *StaleError
			if errors.As(err, &se) && se.Have != model {
				t.Fatalf("refusal reports token %d, current is %d", se.Have, model)
			}
			if accept {
				model = tok
			}
			v, got := r.Load()
			if got < before {
				t.Fatalf("token went back from %d to %d", before, got)
			}
			if got != model {
				t.Fatalf("token %d, model %d", got, model)
			}
			if got != 0 && !strings.HasSuffix(v, "@"+got.String()) {
				t.Fatalf("value %q does not belong to token %d", v, got)
			}
		}
	})
}

// TestRegisterConcurrentWriters hammers one register with writers offering
// random tokens while readers check that the token never decreases and that
// every value is read together with its own token.
func TestRegisterConcurrentWriters(t *testing.T) {
	var r Register[Token]
	const writers, readers, perWriter = 4, 2, 5000
	var maxAccepted atomic.Uint64
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range perWriter {
				tok := Token(rng.Uint64N(1_000_000) + 1)
				var err error
				if rng.IntN(2) == 0 {
					err = r.WriteIfNewer(tok, tok)
				} else {
					cur := r.Token()
					if tok <= cur {
						continue
					}
					err = r.CompareAndSwap(cur, tok, tok)
				}
				if err == nil {
					for {
						m := maxAccepted.Load()
						if uint64(tok) <= m || maxAccepted.CompareAndSwap(m, uint64(tok)) {
							break
						}
					}
				} else if !errors.Is(err, ErrStale) {
					t.Error(err)
				}
			}
		}()
	}
	var readerWG sync.WaitGroup
	for range readers {
		readerWG.Add(1)
		go func() {
			defer readerWG.Done()
			var last Token
			for !stop.Load() {
				v, tok := r.Load()
				if tok < last || v != tok {
					t.Errorf("read value %d with token %d after token %d", v, tok, last)
					return
				}
				last = tok
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	readerWG.Wait()
	assert.Equal(t, Token(maxAccepted.Load()), r.Token(), "the newest accepted write is the one in place")
}
