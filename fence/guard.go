package fence

import (
	"fmt"
	"sync/atomic"
)

// GuardConfig configures a Guard. The zero value is usable: a guard that has
// admitted nothing, with no name and no hook.
type GuardConfig struct {
	// Initial is the token the guard starts from, as if it had already
	// admitted it. A Guard lives in memory; a resource that restarts must
	// restore the newest token it admitted (persisted with its data), or
	// it would admit writers older than that token again. Zero: nothing
	// admitted.
	Initial Token
	// Name identifies the resource in errors and events (StaleError.Key,
	// Event.Key), e.g. "zone example.com". Optional.
	Name string
	// OnEvent, if not nil, is called after every admission and every
	// refusal, on the goroutine that called Admit or Allow. It must be
	// fast and must not block; Counters.Observe is a ready-made hook.
	OnEvent func(Event)
}

var errNilGuard = fmt.Errorf("%w: Guard.Admit on a nil *fence.Guard", ErrInvalidArgument)

// Guard is what a resource — a storage node, a DNS zone — keeps to refuse
// writers whose token is older than the newest token it has admitted. It
// admits a token if and only if the token is at least every token it has
// admitted before, so once a writer with generation 5 has been let in,
// every writer still carrying generation 4 is fenced off for good. Equal
// tokens are admitted: a writer may make many writes under its token.
//
// Admission is the check; it is atomic with the write only if the resource
// makes it at its point of write, where writes are already serialised (the
// goroutine that applies the log, the critical section that updates the
// record). A resource that admits and then writes concurrently must use a
// Register or a Store instead, whose writes include the check.
//
// The zero Guard is usable and has admitted nothing. A nil *Guard admits
// nothing: Allow reports false, Admit returns an error matching
// ErrInvalidArgument, and Current is zero. A Guard is safe for
// concurrent use and lock-free: it is one atomic word, Admit is an atomic
// load plus, when the token advances, a compare-and-swap, and the admission
// path allocates nothing. A Guard must not be copied after first use.
type Guard struct {
	newest  atomic.Uint64
	name    string
	onEvent func(Event)
}

// NewGuard returns a Guard configured by cfg. Every GuardConfig is valid.
func NewGuard(cfg GuardConfig) *Guard {
	g := &Guard{name: cfg.Name, onEvent: cfg.OnEvent}
	g.newest.Store(uint64(cfg.Initial))
	return g
}

// Current returns the newest token admitted so far (or the configured
// Initial token); zero if none.
func (g *Guard) Current() Token {
	if g == nil {
		return 0
	}
	return Token(g.newest.Load())
}

// Allow admits t and reports true if t is at least every token admitted
// before; otherwise it reports false and the guard is unchanged. A zero t is
// never admitted. Allow never allocates: it is the hot-path form of Admit.
func (g *Guard) Allow(t Token) bool {
	_, ok := g.admit(t)
	return ok
}

// Admit admits t and returns nil if t is at least every token admitted
// before. Otherwise it returns a *StaleError (errors.Is(err, ErrStale))
// whose Have is the newest admitted token, and the guard is unchanged. A
// zero t is an error matching ErrInvalidToken. Admit allocates only to
// return an error.
func (g *Guard) Admit(t Token) error {
	if have, ok := g.admit(t); !ok {
		return g.refusal(t, have)
	}
	return nil
}

// refusal builds Admit's error, out of line so that Admit stays small
// enough to inline.
func (g *Guard) refusal(t, have Token) error {
	if g == nil {
		return errNilGuard
	}
	if t == 0 {
		return fmt.Errorf("%w: cannot admit token zero (zero means no token)", ErrInvalidToken)
	}
	return &StaleError{Op: OpAdmit, Key: g.name, Have: have, Want: t}
}

func (g *Guard) admit(t Token) (Token, bool) {
	if t == 0 || g == nil {
		return 0, false
	}
	for {
		cur := g.newest.Load()
		if uint64(t) < cur {
			g.observe(t, Token(cur), true)
			return Token(cur), false
		}
		// The common case, a token equal to the newest, needs no write at
		// all and so does not contend on the word.
		if uint64(t) == cur || g.newest.CompareAndSwap(cur, uint64(t)) {
			g.observe(t, Token(cur), false)
			return Token(cur), true
		}
	}
}

func (g *Guard) observe(t, cur Token, fenced bool) {
	if g.onEvent != nil {
		g.onEvent(Event{Op: OpAdmit, Key: g.name, Token: t, Current: cur, FencedOff: fenced})
	}
}
