package fence

import (
	"context"
	"errors"
	"fmt"
)

// Limits every Store enforces (Memory and contrib/etcd alike), so that code
// written against one backend runs unchanged on another. MaxValueBytes
// leaves room for a key and a small header under etcd's default request
// limit of 1.5 MiB.
const (
	// MaxKeyBytes is the longest key, in bytes.
	MaxKeyBytes = 1024
	// MaxValueBytes is the longest value, in bytes.
	MaxValueBytes = 1 << 20
)

var (
	// ErrStale is matched (with errors.Is) by every refusal of a write
	// whose token is not current or not newer; the error is a
	// *StaleError carrying the token that refused it.
	ErrStale = errors.New("fence: stale token")
	// ErrInvalidKey is matched by errors reporting an empty key, or a key
	// or prefix longer than MaxKeyBytes.
	ErrInvalidKey = errors.New("fence: invalid key")
	// ErrInvalidValue is matched by errors reporting a nil value or a
	// value longer than MaxValueBytes.
	ErrInvalidValue = errors.New("fence: invalid value")
	// ErrInvalidToken is matched by errors reporting a zero token where a
	// token is required, a next token that is not newer than the expected
	// one, or a token that does not parse.
	ErrInvalidToken = errors.New("fence: invalid token")
	// ErrInvalidConfig is matched by every error a constructor returns for
	// an invalid configuration.
	ErrInvalidConfig = errors.New("fence: invalid config")
	// ErrInvalidArgument is matched by the error an operation returns for
	// a nil context or a nil Store (including a nil *Memory, and a method
	// called on one), and by an admission or a write on a nil *Guard or
	// *Register, before it does anything.
	ErrInvalidArgument = errors.New("fence: invalid argument")
	// ErrFull is matched by the error Memory returns when a write would
	// create a key beyond MemoryConfig.MaxKeys.
	ErrFull = errors.New("fence: store full")
	// ErrExhausted is matched by the error a Sequencer returns once it has
	// handed out MaxToken.
	ErrExhausted = errors.New("fence: tokens exhausted")
	// ErrContended is matched by the error WriteIfNewer and Sequencer.Next
	// return when other writers changed the key on every one of their
	// attempts.
	ErrContended = errors.New("fence: too much contention")
)

// Op names the operation an Event or a StaleError is about.
type Op uint8

// The operations.
const (
	// OpCompareAndSwap is a compare-and-swap (Register or Store).
	OpCompareAndSwap Op = iota + 1
	// OpWriteIfNewer is a write-if-newer (Register or Store).
	OpWriteIfNewer
	// OpDelete is a conditional delete (Store).
	OpDelete
	// OpAdmit is a Guard's admission check.
	OpAdmit
	// OpNext is a Sequencer handing out a token.
	OpNext
)

// String returns the operation's name, e.g. "compare-and-swap".
func (o Op) String() string {
	switch o {
	case OpCompareAndSwap:
		return "compare-and-swap"
	case OpWriteIfNewer:
		return "write-if-newer"
	case OpDelete:
		return "delete"
	case OpAdmit:
		return "admit"
	case OpNext:
		return "next"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// StaleError is the refusal of an operation whose token was not current
// (CompareAndSwap, Delete) or not newer (WriteIfNewer, Guard.Admit) at the
// instant it would have taken effect. errors.Is(err, ErrStale) matches it;
// errors.As finds it to read Have without another round trip to the store.
type StaleError struct {
	// Op is the refused operation.
	Op Op
	// Key is the key the operation addressed; empty for a Register, and for
	// a Guard the guard's Name.
	Key string
	// Have is the token the key (register, guard) held at the instant of
	// the refusal: zero if the key was absent.
	Have Token
	// Want is the token the operation was conditioned on: for
	// CompareAndSwap and Delete the token the caller expected to find; for
	// WriteIfNewer and Admit the token the caller offered, which had to be
	// newer than (for Admit: at least) Have.
	Want Token
}

// Error describes the refusal with both tokens, for example
// `fence: stale write-if-newer of "dns/us-east-1": token 41 is not newer
// than the current token 42`.
func (e *StaleError) Error() string {
	var target string
	if e.Key != "" {
		target = fmt.Sprintf(" of %q", e.Key)
	}
	current := fmt.Sprintf("the current token %d", uint64(e.Have))
	if e.Have == 0 {
		current = "no token (absent)"
	}
	switch e.Op {
	case OpWriteIfNewer:
		return fmt.Sprintf("fence: stale %v%s: token %d is not newer than %s", e.Op, target, uint64(e.Want), current)
	case OpAdmit:
		return fmt.Sprintf("fence: stale %v%s: token %d is older than the newest admitted token %d", e.Op, target, uint64(e.Want), uint64(e.Have))
	default:
		return fmt.Sprintf("fence: stale %v%s: expected token %d, found %s", e.Op, target, uint64(e.Want), current)
	}
}

// Unwrap returns ErrStale.
func (e *StaleError) Unwrap() error { return ErrStale }

// ValidateKey reports whether key is usable by a Store: not empty and at
// most MaxKeyBytes long. The error matches ErrInvalidKey. Store
// implementations call it (and the other Validate functions) before any I/O,
// so that every backend refuses the same input with the same error.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("%w: key of %d bytes exceeds the limit of %d bytes", ErrInvalidKey, len(key), MaxKeyBytes)
	}
	return nil
}

// ValidatePrefix reports whether prefix is usable by Store.List: at most
// MaxKeyBytes long. The empty prefix is valid and lists every key.
func ValidatePrefix(prefix string) error {
	if len(prefix) > MaxKeyBytes {
		return fmt.Errorf("%w: prefix of %d bytes exceeds the limit of %d bytes", ErrInvalidKey, len(prefix), MaxKeyBytes)
	}
	return nil
}

// validateValue reports a nil or oversized value.
func validateValue(value []byte) error {
	switch {
	case value == nil:
		return fmt.Errorf("%w: nil value (use []byte{} for an empty value)", ErrInvalidValue)
	case len(value) > MaxValueBytes:
		return fmt.Errorf("%w: value of %d bytes exceeds the limit of %d bytes", ErrInvalidValue, len(value), MaxValueBytes)
	}
	return nil
}

// validateSuccessor reports a next token that is zero or not newer than
// expect.
func validateSuccessor(expect, next Token) error {
	switch {
	case next == 0:
		return fmt.Errorf("%w: the token to write is zero (zero means no token)", ErrInvalidToken)
	case next <= expect:
		return fmt.Errorf("%w: the token to write, %d, is not newer than the expected token %d", ErrInvalidToken, uint64(next), uint64(expect))
	}
	return nil
}

// ValidateCompareAndSwap reports every bad argument of a
// Store.CompareAndSwap in one error: the key (ValidateKey), a nil or
// oversized value (ErrInvalidValue), and a next token that is zero or not
// newer than expect (ErrInvalidToken). It returns nil if all are valid.
func ValidateCompareAndSwap(key string, expect Token, value []byte, next Token) error {
	return errors.Join(ValidateKey(key), validateValue(value), validateSuccessor(expect, next))
}

// ValidateWriteIfNewer reports every bad argument of a write-if-newer: the
// key, the value, and a zero token.
func ValidateWriteIfNewer(key string, value []byte, t Token) error {
	return errors.Join(ValidateKey(key), validateValue(value), validateSuccessor(0, t))
}

// ValidateDelete reports every bad argument of a Store.Delete: the key, and
// a zero expected token (an absent key cannot be deleted).
func ValidateDelete(key string, expect Token) error {
	var errTok error
	if expect == 0 {
		errTok = fmt.Errorf("%w: the expected token is zero (an absent key cannot be deleted)", ErrInvalidToken)
	}
	return errors.Join(ValidateKey(key), errTok)
}

var (
	errNilContext = fmt.Errorf("%w: nil context", ErrInvalidArgument)
	errNilStore   = fmt.Errorf("%w: nil Store", ErrInvalidArgument)
)

// contextErr is ctx.Err(), or an error matching ErrInvalidArgument for a
// nil ctx.
func contextErr(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	return ctx.Err()
}
