package fence

import (
	"context"
	"errors"
	"fmt"
)

// DefaultMaxAttempts bounds the compare-and-swap attempts of WriteIfNewer on
// a Store without a native write-if-newer, and of Sequencer.Next unless
// SequencerConfig.MaxAttempts says otherwise.
const DefaultMaxAttempts = 64

// Store is a map from keys to values in which every value carries the token
// that wrote it and every write is conditioned on a token, checked
// atomically with the write. It is the contract of durable or distributed
// backends; Memory implements it in memory and
// github.com/stormguard/stormguard/contrib/etcd on etcd.
//
// Implementations must be linearizable and safe for concurrent use, must
// validate their arguments with ValidateKey, ValidatePrefix,
// ValidateCompareAndSwap and ValidateDelete before any I/O, must copy
// values in and out (the caller may reuse its slices), and must refuse with
// a *StaleError whose Have is the key's token at the instant of the refusal.
// The package fencetest checks all of this.
//
// An error that is neither a refusal nor invalid input (a timeout, a lost
// connection) leaves the outcome of a write unknown: it may or may not have
// been applied. A later refusal may tell: a Have equal to the token the
// write carried shows that it (or another write with that token) landed.
type Store interface {
	// Load returns the value stored under key and the token that wrote it,
	// or a nil value and token zero if the key is absent. The value of a
	// present key is never nil (it may be empty).
	Load(ctx context.Context, key string) (value []byte, token Token, err error)
	// CompareAndSwap stores value under key with token next if and only if
	// the key's token is expect at the instant of the write; expect zero
	// means the key must be absent, so CompareAndSwap also creates keys.
	// next must be newer than expect, so a key's token strictly increases
	// with every write. A refusal is a *StaleError with the key's token.
	CompareAndSwap(ctx context.Context, key string, expect Token, value []byte, next Token) error
	// Delete removes key if and only if its token is expect (not zero) at
	// the instant of the delete. A refusal, including for an absent key,
	// is a *StaleError with the key's token.
	Delete(ctx context.Context, key string, expect Token) error
	// List returns, in ascending byte order, the keys that begin with
	// prefix. The empty prefix lists every key.
	List(ctx context.Context, prefix string) ([]string, error)
}

// NewerWriter is implemented by a Store that can write-if-newer in a single
// atomic operation, as Memory and contrib/etcd do. WriteIfNewer uses it
// when present.
type NewerWriter interface {
	// WriteIfNewer stores value under key with token t if and only if t is
	// newer than the key's token (zero if absent) at the instant of the
	// write; otherwise it returns a *StaleError with the key's token.
	WriteIfNewer(ctx context.Context, key string, value []byte, t Token) error
}

// WriteIfNewer stores value under key with token t if and only if t is
// newer than the key's token (zero if absent) at the instant of the write,
// and otherwise returns a *StaleError whose Have is the token that refused
// it. It is the write a delayed DNS enactor should have made: however long
// ago the writer decided to write, a token that is not newer than the
// stored one is refused.
//
// If s implements NewerWriter, WriteIfNewer is that single operation.
// Otherwise it is a loop of CompareAndSwap conditioned on the token last
// seen, each refusal supplying the token for the next attempt without
// another read; it gives up with an error matching ErrContended after
// DefaultMaxAttempts attempts that other writers overtook (each of them
// changed the key). Bad input is reported before any I/O (see
// ValidateWriteIfNewer); a nil s, or one holding a nil pointer such as a
// nil *Memory, is an error matching ErrInvalidArgument.
func WriteIfNewer(ctx context.Context, s Store, key string, value []byte, t Token) error {
	if isNilStore(s) {
		return errNilStore
	}
	if ctx == nil {
		return errNilContext
	}
	if w, ok := s.(NewerWriter); ok {
		return w.WriteIfNewer(ctx, key, value, t)
	}
	if err := ValidateWriteIfNewer(key, value, t); err != nil {
		return err
	}
	_, have, err := s.Load(ctx, key)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		if have >= t {
			return &StaleError{Op: OpWriteIfNewer, Key: key, Have: have, Want: t}
		}
		err := s.CompareAndSwap(ctx, key, have, value, t)
		var stale *StaleError
		if !errors.As(err, &stale) {
			return err
		}
		if attempt >= DefaultMaxAttempts {
			return fmt.Errorf("%w: write-if-newer of %q with token %d overtaken %d times (last token seen %d)",
				ErrContended, key, uint64(t), attempt, uint64(stale.Have))
		}
		have = stale.Have
	}
}
