package fence

import (
	"fmt"
	"sync/atomic"
)

// Register is a fenced in-memory register: a value together with the token
// that wrote it. Its writes check the token and write in one atomic step,
// so a writer that was delayed between deciding to write and writing is
// judged against the register as it is when the write lands.
//
// The zero Register is empty (Load returns the zero T and token zero) and
// ready to use. A nil *Register holds nothing and stores nothing: Load
// returns the zero T and token zero, and every write returns an error
// matching ErrInvalidArgument. A Register is safe for concurrent use and lock-free: the
// value and its token live in one immutable node behind an atomic pointer,
// and a write is a pointer compare-and-swap that succeeds only if the node
// it checked is still the current one. Load is a single atomic load and
// never allocates; an accepted write allocates one node; a refused write
// allocates only its *StaleError. A Register must not be copied after
// first use.
//
// Values are stored as given: if T holds references (a slice, a map, a
// pointer), the register shares them with the writer and every reader, and
// they must not be modified after the write.
type Register[T any] struct {
	cur atomic.Pointer[node[T]]
}

var (
	errNilRegisterCAS = fmt.Errorf("%w: Register.CompareAndSwap on a nil *fence.Register", ErrInvalidArgument)
	errNilRegisterWIN = fmt.Errorf("%w: Register.WriteIfNewer on a nil *fence.Register", ErrInvalidArgument)
)

type node[T any] struct {
	value T
	token Token
}

// Load returns the current value and the token that wrote it; the zero T and
// token zero if nothing has been written. The pair is consistent: it is
// always a value and the token it was written with.
func (r *Register[T]) Load() (T, Token) {
	if r == nil {
		var zero T
		return zero, 0
	}
	n := r.cur.Load()
	if n == nil {
		var zero T
		return zero, 0
	}
	return n.value, n.token
}

// Token returns the current token (zero if nothing has been written).
func (r *Register[T]) Token() Token {
	if r == nil {
		return 0
	}
	if n := r.cur.Load(); n != nil {
		return n.token
	}
	return 0
}

// CompareAndSwap writes value with token next if and only if the register's
// token is expect at the instant of the write (zero: nothing written yet).
// next must be newer than expect, so the register's token strictly
// increases with every write. A refusal is a *StaleError whose Have is the
// token that was found; a next token that is zero or not newer than expect
// is an error matching ErrInvalidToken.
func (r *Register[T]) CompareAndSwap(expect Token, value T, next Token) error {
	if r == nil {
		return errNilRegisterCAS
	}
	if err := validateSuccessor(expect, next); err != nil {
		return err
	}
	var n *node[T]
	for {
		old := r.cur.Load()
		have := tokenOf(old)
		if have != expect {
			return &StaleError{Op: OpCompareAndSwap, Have: have, Want: expect}
		}
		if n == nil {
			n = &node[T]{value: value, token: next}
		}
		if r.cur.CompareAndSwap(old, n) {
			return nil
		}
	}
}

// WriteIfNewer writes value with token t if and only if t is newer than the
// register's token at the instant of the write. A token that is not newer
// is always refused, with a *StaleError whose Have is the token that was
// found; a zero t is an error matching ErrInvalidToken.
func (r *Register[T]) WriteIfNewer(value T, t Token) error {
	if r == nil {
		return errNilRegisterWIN
	}
	if err := validateSuccessor(0, t); err != nil {
		return err
	}
	var n *node[T]
	for {
		old := r.cur.Load()
		have := tokenOf(old)
		if have >= t {
			return &StaleError{Op: OpWriteIfNewer, Have: have, Want: t}
		}
		if n == nil {
			n = &node[T]{value: value, token: t}
		}
		// Another writer may have replaced old since the check; the
		// compare-and-swap then fails and the check is made again against
		// the new node, so the check and the write are one atomic step.
		if r.cur.CompareAndSwap(old, n) {
			return nil
		}
	}
}

func tokenOf[T any](n *node[T]) Token {
	if n == nil {
		return 0
	}
	return n.token
}
