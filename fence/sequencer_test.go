package fence

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestNewSequencerValidation(t *testing.T) {
	s, err := NewSequencer(SequencerConfig{Key: strings.Repeat("k", MaxKeyBytes+1), MaxAttempts: -1})
	assert.Nil(t, s)
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.ErrorIs(t, err, ErrInvalidKey)
	msg := err.Error()
	assert.Contains(t, msg, "SequencerConfig.Store is nil")
	assert.Contains(t, msg, "SequencerConfig.Key: fence: invalid key: key of 1025 bytes exceeds the limit of 1024 bytes")
	assert.Contains(t, msg, "SequencerConfig.MaxAttempts -1 is negative")
	assert.Len(t, strings.Split(msg, "\n"), 3)

	_, err = NewSequencer(SequencerConfig{Store: &Memory{}})
	assert.ErrorContains(t, err, "SequencerConfig.Key: fence: invalid key: empty key")

	var zero Sequencer
	_, err = zero.Next(context.Background())
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = zero.Last(context.Background())
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.ErrorIs(t, WriteIfNewer(context.Background(), nil, "k", []byte{}, 1), ErrInvalidArgument)
}

func newSequencer(t require.TestingT, s Store, key string) *Sequencer {
	seq, err := NewSequencer(SequencerConfig{Store: s, Key: key})
	require.NoError(t, err)
	return seq
}

func TestSequencerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	store := &Memory{}
	seq := newSequencer(t, store, "plans/generation")
	last, err := seq.Last(ctx)
	require.NoError(t, err)
	assert.Equal(t, Token(0), last)
	for want := Token(1); want <= 3; want++ {
		got, err := seq.Next(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	// A new process: a new Sequencer over the same store continues.
	restarted := newSequencer(t, store, "plans/generation")
	got, err := restarted.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, Token(4), got)
	// The old one learns from the refusal and continues after it.
	got, err = seq.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, Token(5), got)

	v, tok, err := store.Load(ctx, "plans/generation")
	require.NoError(t, err)
	assert.Equal(t, "5", string(v), "the counter is readable by people")
	assert.Equal(t, Token(5), tok)
	last, err = restarted.Last(ctx)
	require.NoError(t, err)
	assert.Equal(t, Token(5), last)
}

func TestSequencerContention(t *testing.T) {
	ctx := context.Background()
	store := &Memory{}
	impatient, err := NewSequencer(SequencerConfig{Store: store, Key: "g", MaxAttempts: 1})
	require.NoError(t, err)
	_, err = newSequencer(t, store, "g").Next(ctx)
	require.NoError(t, err)
	_, err = impatient.Next(ctx)
	assert.ErrorIs(t, err, ErrContended)
	assert.EqualError(t, err, `fence: too much contention: sequencer "g" overtaken on all 1 attempts (counter at 1)`)
	got, err := impatient.Next(ctx)
	require.NoError(t, err, "the refusal taught it the counter")
	assert.Equal(t, Token(2), got)
}

func TestSequencerExhausted(t *testing.T) {
	ctx := context.Background()
	store := &Memory{}
	require.NoError(t, store.CompareAndSwap(ctx, "g", 0, []byte("almost"), MaxToken-1))
	seq := newSequencer(t, store, "g")
	got, err := seq.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, MaxToken, got)
	_, err = seq.Next(ctx)
	assert.ErrorIs(t, err, ErrExhausted)
	_, err = newSequencer(t, store, "g").Next(ctx)
	assert.ErrorIs(t, err, ErrExhausted)
}

// flakyStore fails writes on demand: before applying them, or after (the
// reply was lost), which leaves the outcome unknown to the caller.
type flakyStore struct {
	*Memory
	failBefore, failAfter atomic.Bool
}

var errLost = errors.New("connection reset")

func (f *flakyStore) CompareAndSwap(ctx context.Context, key string, expect Token, value []byte, next Token) error {
	if f.failBefore.Load() {
		return errLost
	}
	err := f.Memory.CompareAndSwap(ctx, key, expect, value, next)
	if f.failAfter.Load() {
		return errLost
	}
	return err
}

func TestSequencerUnknownOutcomeNeverRepeats(t *testing.T) {
	ctx := context.Background()
	store := &flakyStore{Memory: &Memory{}}
	seq := newSequencer(t, store, "g")
	_, err := seq.Next(ctx)
	require.NoError(t, err)

	store.failBefore.Store(true)
	_, err = seq.Next(ctx)
	assert.ErrorIs(t, err, errLost)
	assert.ErrorContains(t, err, `fence: sequencer "g": connection reset`)
	store.failBefore.Store(false)

	store.failAfter.Store(true)
	_, err = seq.Next(ctx)
	assert.ErrorIs(t, err, errLost, "token 2 was written, but nobody knows")
	store.failAfter.Store(false)

	got, err := seq.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, Token(3), got, "2 may have been handed out: never hand it out again")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = seq.Next(cancelled)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = seq.Last(cancelled)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestSequencerEvents(t *testing.T) {
	var c Counters
	var events []Event
	seq, err := NewSequencer(SequencerConfig{Store: &Memory{}, Key: "g", OnEvent: func(e Event) {
		c.Observe(e)
		events = append(events, e)
	}})
	require.NoError(t, err)
	for range 2 {
		_, err := seq.Next(context.Background())
		require.NoError(t, err)
	}
	assert.Equal(t, []Event{{Op: OpNext, Key: "g", Token: 1}, {Op: OpNext, Key: "g", Token: 2, Current: 1}}, events)
	assert.Equal(t, Stats{Admitted: 2}, c.Stats())
}

// TestSequencerProperty: however calls of several sequencers — some of them
// restarted, some reading the counter — interleave, each token handed out is
// newer than every token before it.
func TestSequencerProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		store := &Memory{}
		seqs := make([]*Sequencer, rapid.IntRange(1, 4).Draw(t, "sequencers"))
		for i := range seqs {
			seqs[i] = newSequencer(t, store, "g")
		}
		var last Token
		for range rapid.IntRange(1, 100).Draw(t, "steps") {
			i := rapid.IntRange(0, len(seqs)-1).Draw(t, "which")
			switch rapid.IntRange(0, 5).Draw(t, "action") {
			case 0:
				seqs[i] = newSequencer(t, store, "g") // a restart
			case 1:
				got, err := seqs[i].Last(ctx)
				if err != nil || got != last {
					t.Fatalf("Last = %d, %v; want %d", got, err, last)
				}
			default:
				got, err := seqs[i].Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got <= last {
					t.Fatalf("sequencer %d handed out %d after %d", i, got, last)
				}
				last = got
			}
		}
	})
}

// TestSequencerConcurrent: sequencers racing on one store hand out distinct
// tokens, and a token handed out after another one finished is newer.
func TestSequencerConcurrent(t *testing.T) {
	ctx := context.Background()
	store := &Memory{}
	const workers, each = 6, 300
	type issued struct {
		tok        Token
		start, end int64
	}
	var clock atomic.Int64
	results := make([][]issued, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq, err := NewSequencer(SequencerConfig{Store: store, Key: "g", MaxAttempts: 1000})
			if err != nil {
				t.Error(err)
				return
			}
			for range each {
				start := clock.Add(1)
				tok, err := seq.Next(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], issued{tok, start, clock.Add(1)})
			}
		}()
	}
	wg.Wait()
	var all []issued
	seen := map[Token]bool{}
	for _, r := range results {
		for _, x := range r {
			require.False(t, seen[x.tok], "token %d handed out twice", x.tok)
			seen[x.tok] = true
		}
		all = append(all, r...)
	}
	require.Len(t, all, workers*each)
	for _, a := range all {
		for _, b := range all {
			if a.end < b.start && a.tok >= b.tok {
				t.Fatalf("token %d handed out after token %d had been", b.tok, a.tok)
			}
		}
	}
	last, err := newSequencer(t, store, "g").Last(ctx)
	require.NoError(t, err)
	assert.Equal(t, Token(workers*each), last, "no gaps without failures")
}
