package remirror

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// Concurrent is an Engine that many goroutines may drive at once. An Engine
// holds a whole cluster (its nodes, the capacity ledger, the search budget
// and the bounds on re-mirrors and elections are all cluster-wide) and is
// meant to be driven from one goroutine, such as a simulator's event loop;
// use Concurrent where the inputs come from many goroutines instead, one
// per node or per replication request. Every call takes one lock for the
// whole cluster, and returned actions are copies the caller owns. It is the
// answer to the 2011 race in closing many replication requests
// concurrently: thousands of goroutines may report the end of their copies
// at the same instant, some of them twice, and each report is applied
// exactly once or refused with a typed error (ErrDuplicate), never half
// applied. The cost is that the cluster's inputs are applied one at a
// time: a caller waits for every Step or Tick ahead of it, of any node.
//
// Goroutines that read their clock and then race for the lock cannot keep
// their times in order, so Step and Tick take a now before the last
// input's time as that time (the input is applied after the one ahead of
// it) instead of refusing it with ErrOutOfOrder as an Engine does: an
// answer refused for its time would leave its request outstanding for
// ever. A now outside the range of time.Time.UnixNano is still refused.
//
// Build it with NewConcurrent: the zero Concurrent has no engine, so its
// AddNode, AddVolume, Step and Tick refuse with an error matching
// ErrInvalidConfig, and its other methods report an empty cluster.
type Concurrent struct {
	mu sync.Mutex
	e  *Engine // nil only in a Concurrent not built by NewConcurrent
}

// NewConcurrent returns a Concurrent wrapping a new engine with settings s
// and randomness r, or an error matching ErrInvalidConfig that names every
// bad field (see NewEngine). r is the source of jitter and of random
// choices; nil means a PCG with a fixed seed, so that runs are
// reproducible. The engine uses r only under the Concurrent's lock: the
// caller must not use r elsewhere while the Concurrent is in use, since a
// *rand.Rand is not safe for concurrent use.
func NewConcurrent(s Settings, r *rand.Rand) (*Concurrent, error) {
	e, err := NewEngine(s, r)
	if err != nil {
		return nil, err
	}
	return &Concurrent{e: e}, nil
}

// Step is Engine.Step under the lock; the actions are a fresh slice (nil if
// there are none). A now before the last input's time is taken as that
// time instead of being refused (see Concurrent).
func (c *Concurrent) Step(now time.Time, in Input) ([]Action, error) {
	if c == nil {
		return nil, errZeroConcurrent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return nil, errZeroConcurrent
	}
	acts, err := c.e.Step(c.e.atLeastLast(now), in)
	return clone(acts), err
}

// Tick is Engine.Tick under the lock; the actions are a fresh slice. A now
// before the last input's time is taken as that time instead of being
// refused (see Concurrent).
func (c *Concurrent) Tick(now time.Time) ([]Action, error) {
	if c == nil {
		return nil, errZeroConcurrent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return nil, errZeroConcurrent
	}
	acts, err := c.e.Tick(c.e.atLeastLast(now))
	return clone(acts), err
}

// AddNode is Engine.AddNode under the lock.
func (c *Concurrent) AddNode(capacity int64) (NodeID, error) {
	if c == nil {
		return NoNode, errZeroConcurrent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return NoNode, errZeroConcurrent
	}
	return c.e.AddNode(capacity)
}

// AddVolume is Engine.AddVolume under the lock.
func (c *Concurrent) AddVolume(size int64, primary, secondary NodeID, token fence.Token) (VolumeID, error) {
	if c == nil {
		return -1, errZeroConcurrent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return -1, errZeroConcurrent
	}
	return c.e.AddVolume(size, primary, secondary, token)
}

// Primary is Engine.Primary under the lock.
func (c *Concurrent) Primary(v VolumeID) (NodeID, fence.Token, bool) {
	if c == nil {
		return NoNode, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return NoNode, 0, false
	}
	return c.e.Primary(v)
}

// VolumeState is Engine.VolumeState under the lock.
func (c *Concurrent) VolumeState(v VolumeID) (State, bool) {
	if c == nil {
		return Healthy, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return Healthy, false
	}
	return c.e.VolumeState(v)
}

// NextTick is Engine.NextTick under the lock.
func (c *Concurrent) NextTick() (time.Time, bool) {
	if c == nil {
		return time.Time{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return time.Time{}, false
	}
	return c.e.NextTick()
}

// Stats is Engine.Stats under the lock.
func (c *Concurrent) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e == nil {
		return Stats{}
	}
	return c.e.Stats()
}

func clone(acts []Action) []Action {
	if len(acts) == 0 {
		return nil
	}
	return append([]Action(nil), acts...)
}
