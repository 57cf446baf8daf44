package dnsplan

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/stormguard/stormguard/fence"
)

// Store holds plans by generation: the Planner's output and the Enactors'
// input. Implementations must be safe for concurrent use and copy plans in
// and out. MemoryStore is the in-memory implementation.
type Store interface {
	// Put stores a copy of p. It refuses an invalid plan (ErrInvalidPlan)
	// and a generation that is not newer than every generation the store
	// has ever held (a *fence.StaleError, matched by fence.ErrStale), so
	// a generation names one plan forever, even after its deletion.
	Put(ctx context.Context, p Plan) error
	// Get returns the plan with generation g, or an error matching
	// ErrNotFound.
	Get(ctx context.Context, g fence.Token) (Plan, error)
	// Latest returns the plan with the highest generation, or an error
	// matching ErrNotFound if the store holds none.
	Latest(ctx context.Context) (Plan, error)
	// Delete removes the plan with generation g, or returns an error
	// matching ErrNotFound.
	Delete(ctx context.Context, g fence.Token) error
	// List returns the generations held, in ascending order.
	List(ctx context.Context) ([]fence.Token, error)
}

// Watcher is implemented by a Store that can say when a newer plan has
// been put, so that an enactor starts its pass as soon as the plan is
// published instead of at its next poll. Enactor.Run uses it when the
// Store given to it implements it, and polls every EnactorConfig.Interval
// all the same (a pass also repairs endpoints, which no new plan
// announces).
type Watcher interface {
	// WaitNewer returns once the store has been given a plan with a
	// generation above g, and returns the highest generation it has been
	// given (that plan may have been deleted since); it returns at once
	// if that is already so. Otherwise it returns ctx's error when ctx
	// ends, or an error of the store (an unreachable backend) — a caller
	// that goes on waiting must not call it again at once in a loop.
	WaitNewer(ctx context.Context, g fence.Token) (fence.Token, error)
}

// DefaultMaxPlans is how many plans a MemoryStore holds when
// MemoryStoreConfig.MaxPlans is zero.
const DefaultMaxPlans = 1024

// MemoryStoreConfig configures a MemoryStore. The zero value is usable.
type MemoryStoreConfig struct {
	// MaxPlans bounds the plans held at once, so that a store whose
	// clean-up has stopped fails loudly (ErrFull) instead of growing
	// without bound. Zero means DefaultMaxPlans; negative is invalid.
	MaxPlans int
	// Limits is what Put validates plans against.
	Limits Limits
}

// MemoryStore is the in-memory Store: a map under one mutex. The zero
// value is empty and ready to use with the defaults of MemoryStoreConfig.
// Put, Get and Latest copy the plan, which costs one allocation per
// endpoint. Every method refuses a nil context, and a nil *MemoryStore,
// with an error matching ErrInvalidArgument.
type MemoryStore struct {
	mu      sync.Mutex
	plans   map[fence.Token]Plan
	highest fence.Token // highest generation ever put, deleted or not
	// newer is closed, and replaced, when a plan is put: WaitNewer's
	// signal.
	newer    chan struct{}
	maxPlans int
	limits   Limits
}

var (
	_ Store   = (*MemoryStore)(nil)
	_ Watcher = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore, or an error matching
// ErrInvalidConfig that names every invalid field.
func NewMemoryStore(cfg MemoryStoreConfig) (*MemoryStore, error) {
	var errs []error
	if cfg.MaxPlans < 0 {
		errs = append(errs, fmt.Errorf("%w: MemoryStoreConfig.MaxPlans %d is negative", ErrInvalidConfig, cfg.MaxPlans))
	}
	if err := cfg.Limits.validate("MemoryStoreConfig"); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, joinErrs(errs)
	}
	return &MemoryStore{maxPlans: cfg.MaxPlans, limits: cfg.Limits}, nil
}

// Put stores a normalized copy of p. See Store.Put.
func (s *MemoryStore) Put(ctx context.Context, p Plan) error {
	if err := checkMemory("MemoryStore.Put", ctx, s == nil, "*MemoryStore"); err != nil {
		return err
	}
	if err := Validate(p, s.limits); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c := p.Clone()
	c.Normalize()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Generation <= s.highest {
		return &fence.StaleError{Op: fence.OpWriteIfNewer, Key: "dnsplan/plans", Have: s.highest, Want: p.Generation}
	}
	limit := s.maxPlans
	if limit == 0 {
		limit = DefaultMaxPlans
	}
	if len(s.plans) >= limit {
		return fmt.Errorf("%w: cannot put plan %d: %d plans held, limit %d", ErrFull, uint64(p.Generation), len(s.plans), limit)
	}
	if s.plans == nil {
		s.plans = make(map[fence.Token]Plan)
	}
	s.plans[p.Generation] = c
	s.highest = p.Generation
	if s.newer != nil {
		close(s.newer)
		s.newer = nil
	}
	return nil
}

// WaitNewer returns the highest generation ever put once it is above g.
// See Watcher.
func (s *MemoryStore) WaitNewer(ctx context.Context, g fence.Token) (fence.Token, error) {
	if err := checkMemory("MemoryStore.WaitNewer", ctx, s == nil, "*MemoryStore"); err != nil {
		return 0, err
	}
	for {
		s.mu.Lock()
		if s.highest > g {
			h := s.highest
			s.mu.Unlock()
			return h, nil
		}
		if s.newer == nil {
			s.newer = make(chan struct{})
		}
		newer := s.newer
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-newer:
		}
	}
}

// Get returns a copy of plan g. See Store.Get.
func (s *MemoryStore) Get(ctx context.Context, g fence.Token) (Plan, error) {
	if err := checkMemory("MemoryStore.Get", ctx, s == nil, "*MemoryStore"); err != nil {
		return Plan{}, err
	}
	if err := ctx.Err(); err != nil {
		return Plan{}, err
	}
	s.mu.Lock()
	p, ok := s.plans[g]
	s.mu.Unlock()
	if !ok {
		return Plan{}, fmt.Errorf("%w: generation %d", ErrNotFound, uint64(g))
	}
	return p.Clone(), nil
}

// Latest returns a copy of the newest plan. See Store.Latest.
func (s *MemoryStore) Latest(ctx context.Context) (Plan, error) {
	if err := checkMemory("MemoryStore.Latest", ctx, s == nil, "*MemoryStore"); err != nil {
		return Plan{}, err
	}
	if err := ctx.Err(); err != nil {
		return Plan{}, err
	}
	s.mu.Lock()
	var latest fence.Token
	for g := range s.plans {
		latest = max(latest, g)
	}
	p, ok := s.plans[latest]
	s.mu.Unlock()
	if !ok {
		return Plan{}, fmt.Errorf("%w: the store holds no plan", ErrNotFound)
	}
	return p.Clone(), nil
}

// Delete removes plan g. See Store.Delete.
func (s *MemoryStore) Delete(ctx context.Context, g fence.Token) error {
	if err := checkMemory("MemoryStore.Delete", ctx, s == nil, "*MemoryStore"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.plans[g]; !ok {
		return fmt.Errorf("%w: generation %d", ErrNotFound, uint64(g))
	}
	delete(s.plans, g)
	return nil
}

// List returns the generations held, ascending. See Store.List.
func (s *MemoryStore) List(ctx context.Context) ([]fence.Token, error) {
	if err := checkMemory("MemoryStore.List", ctx, s == nil, "*MemoryStore"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	gens := slices.Sorted(maps.Keys(s.plans))
	s.mu.Unlock()
	return gens, nil
}
