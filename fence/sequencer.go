package fence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
)

// SequencerConfig configures a Sequencer. Store and Key are required.
type SequencerConfig struct {
	// Store keeps the counter. Its durability is the sequencer's: on
	// Memory tokens survive only as long as the process, on contrib/etcd
	// they survive restarts of the process and of etcd.
	Store Store
	// Key is the counter's key, e.g. "plans/generation". Every sequencer
	// that must hand out tokens from one sequence uses the same Store and
	// Key. The key's token is the last token handed out (its value is the
	// same number in decimal, for people reading the store); deleting the
	// key restarts the sequence, so never delete it.
	Key string
	// MaxAttempts bounds the compare-and-swap attempts of one Next when
	// other sequencers keep advancing the counter first. Zero means
	// DefaultMaxAttempts; negative is invalid.
	MaxAttempts int
	// OnEvent, if not nil, is called with an OpNext event for every token
	// handed out (Token is the new token, Current the one before), on the
	// goroutine that called Next. It must not block.
	OnEvent func(Event)
}

// Sequencer hands out strictly increasing tokens, durably. Each token is the
// result of a compare-and-swap that advances a counter key in a Store from
// the last token to the next, so:
//
//   - every token handed out is newer than every token handed out before
//     it (in real time) by any Sequencer on the same Store and Key, in this
//     process or another;
//   - no token is handed out twice;
//   - a restarted process continues from the stored counter, never from an
//     in-memory copy.
//
// Tokens may skip numbers (when a write's outcome was unknown, or Next gave
// up), but never repeat or go backwards. Next costs one compare-and-swap on
// the Store when this Sequencer was the last to advance the counter, and one
// more per other sequencer that advanced it in between: a refusal carries
// the counter's current token, so no extra read is ever needed.
//
// Build a Sequencer with NewSequencer; the methods of a zero or nil
// Sequencer return an error matching ErrInvalidConfig. A Sequencer is safe for
// concurrent use.
type Sequencer struct {
	store       Store
	key         string
	maxAttempts int
	onEvent     func(Event)
	// seen is the newest counter token this sequencer knows of: the guess
	// for the next compare-and-swap, never a source of truth.
	seen atomic.Uint64
}

var errZeroSequencer = fmt.Errorf("%w: Sequencer not built with NewSequencer", ErrInvalidConfig)

// NewSequencer returns a Sequencer configured by cfg, or an error matching
// ErrInvalidConfig that names every invalid field. It does no I/O.
func NewSequencer(cfg SequencerConfig) (*Sequencer, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	switch {
	case cfg.Store == nil:
		bad("SequencerConfig.Store is nil")
	case isNilStore(cfg.Store):
		bad("SequencerConfig.Store is a nil %T", cfg.Store)
	}
	if err := ValidateKey(cfg.Key); err != nil {
		errs = append(errs, fmt.Errorf("%w: SequencerConfig.Key: %w", ErrInvalidConfig, err))
	}
	if cfg.MaxAttempts < 0 {
		bad("SequencerConfig.MaxAttempts %d is negative", cfg.MaxAttempts)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	maxAttempts := cfg.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	return &Sequencer{store: cfg.Store, key: cfg.Key, maxAttempts: maxAttempts, onEvent: cfg.OnEvent}, nil
}

// Next hands out a new token, newer than every token handed out before on
// the same Store and Key. It fails with the Store's error (for example the
// context's), with an error matching ErrContended after MaxAttempts
// attempts that other sequencers overtook, or with an error matching
// ErrExhausted once the counter holds MaxToken. After a failure the
// sequence is intact: the next success is still newer than everything
// before.
func (s *Sequencer) Next(ctx context.Context) (Token, error) {
	if s == nil || s.store == nil {
		return 0, errZeroSequencer
	}
	if ctx == nil {
		return 0, errNilContext
	}
	have := Token(s.seen.Load())
	for attempt := 1; ; attempt++ {
		if have == MaxToken {
			return 0, fmt.Errorf("%w: sequencer %q has handed out the last token %d", ErrExhausted, s.key, uint64(MaxToken))
		}
		next := have + 1
		err := s.store.CompareAndSwap(ctx, s.key, have, strconv.AppendUint(nil, uint64(next), 10), next)
		if err == nil {
			s.advance(next)
			if s.onEvent != nil {
				s.onEvent(Event{Op: OpNext, Key: s.key, Token: next, Current: have})
			}
			return next, nil
		}
		var stale *StaleError
		if !errors.As(err, &stale) {
			return 0, fmt.Errorf("fence: sequencer %q: %w", s.key, err)
		}
		have = stale.Have
		s.advance(have)
		if attempt >= s.maxAttempts {
			return 0, fmt.Errorf("%w: sequencer %q overtaken on all %d attempts (counter at %d)", ErrContended, s.key, attempt, uint64(have))
		}
	}
}

// Last reads the counter: the last token handed out by any sequencer on the
// same Store and Key, or zero if none has been.
func (s *Sequencer) Last(ctx context.Context) (Token, error) {
	if s == nil || s.store == nil {
		return 0, errZeroSequencer
	}
	if ctx == nil {
		return 0, errNilContext
	}
	_, t, err := s.store.Load(ctx, s.key)
	if err != nil {
		return 0, fmt.Errorf("fence: sequencer %q: %w", s.key, err)
	}
	s.advance(t)
	return t, nil
}

// advance records t as the guess for the next compare-and-swap. Concurrent
// calls may leave an older guess behind, and a deleted counter brings it
// down to zero; either costs one refused attempt, never a repeated token,
// because the Store decides.
func (s *Sequencer) advance(t Token) {
	s.seen.Store(uint64(t))
}
