package fence

import "sync/atomic"

// Event describes one admitted or fenced-off operation, for the OnEvent hook
// of a Guard, a Memory store or a Sequencer. Invalid input, reads and
// failed I/O produce no event.
type Event struct {
	// Op is the operation.
	Op Op
	// Key is the key written or deleted, the Guard's Name, or the
	// Sequencer's counter key.
	Key string
	// Token is the token the operation carried: the token written by a
	// compare-and-swap or write-if-newer, the expected token of a delete,
	// the token offered to Admit, the token handed out by Next.
	Token Token
	// Current is the token in place when the operation took effect or was
	// refused: the token it replaced, or the token that refused it.
	Current Token
	// FencedOff is true if the operation was refused as stale.
	FencedOff bool
}

// Counters counts the events it observes: pass its Observe method as an
// OnEvent hook, and read the counts with Stats. The zero value is ready to
// use; a Counters may be shared by many hooks and is safe for concurrent
// use. Observe costs one atomic add.
type Counters struct {
	admitted  atomic.Uint64
	fencedOff atomic.Uint64
}

// Stats is a snapshot of Counters.
type Stats struct {
	// Admitted counts operations that took effect: writes, deletes,
	// admissions, tokens handed out.
	Admitted uint64
	// FencedOff counts operations refused as stale. A rising count means
	// stale writers are at work: delayed enactors, expired lease holders.
	FencedOff uint64
}

// Observe counts e. Use it as a hook: GuardConfig{OnEvent: c.Observe}.
func (c *Counters) Observe(e Event) {
	if e.FencedOff {
		c.fencedOff.Add(1)
	} else {
		c.admitted.Add(1)
	}
}

// Stats returns the counts so far.
func (c *Counters) Stats() Stats {
	return Stats{Admitted: c.admitted.Load(), FencedOff: c.fencedOff.Load()}
}
