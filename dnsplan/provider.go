package dnsplan

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/stormguard/stormguard/fence"
)

// Records is what an endpoint serves: its targets and the generation of
// the plan that wrote them (its applied generation).
type Records struct {
	// Generation is the applied generation; zero if the endpoint has never
	// been written.
	Generation fence.Token
	// Targets are the endpoint's addresses and weights, sorted by address.
	Targets []Target
}

// Provider is where records live: a DNS server, a cloud DNS API, or
// MemoryProvider. Implementations must be safe for concurrent use.
//
// The contract that makes enactors safe is Apply's condition: the write
// takes effect only if the endpoint's applied generation is, at the
// instant of the write, the one the caller read. An Enactor decides "my
// plan is newer" from that read and makes the write conditional on it, so
// the decision and the write are one atomic step; a Provider needs no
// notion of which generation is newer.
type Provider interface {
	// Read returns the endpoint's records and applied generation, or zero
	// Records if the endpoint has none.
	Read(ctx context.Context, endpoint string) (Records, error)
	// Apply replaces the endpoint's targets and applied generation with r,
	// as one transaction, if and only if the applied generation is expect
	// at the instant of the write (zero: the endpoint has no records). A
	// refusal is a *fence.StaleError (fence.ErrStale) whose Have is the
	// applied generation found. Apply refuses, before any I/O, records
	// that ValidateRecords rejects: in particular it never writes an empty
	// record set (ErrEmptyRecords).
	Apply(ctx context.Context, endpoint string, expect fence.Token, r Records) error
}

// MemoryProvider is the in-memory Provider: records in a map under one
// mutex, Apply's condition checked under the same lock as the write. The
// zero value is empty and ready to use; it accepts up to
// DefaultMaxTargets targets per endpoint. Read and Apply refuse a nil
// context, and a nil *MemoryProvider, with an error matching
// ErrInvalidArgument.
type MemoryProvider struct {
	mu      sync.Mutex
	records map[string]Records
}

var _ Provider = (*MemoryProvider)(nil)

// Read returns a copy of the endpoint's records. See Provider.Read.
func (m *MemoryProvider) Read(ctx context.Context, endpoint string) (Records, error) {
	if err := checkMemory("MemoryProvider.Read", ctx, m == nil, "*MemoryProvider"); err != nil {
		return Records{}, err
	}
	if err := ctx.Err(); err != nil {
		return Records{}, err
	}
	m.mu.Lock()
	r := m.records[endpoint]
	m.mu.Unlock()
	r.Targets = slices.Clone(r.Targets)
	return r, nil
}

// Apply writes a sorted copy of r if the endpoint's applied generation is
// expect. See Provider.Apply.
func (m *MemoryProvider) Apply(ctx context.Context, endpoint string, expect fence.Token, r Records) error {
	if err := checkMemory("MemoryProvider.Apply", ctx, m == nil, "*MemoryProvider"); err != nil {
		return err
	}
	if err := ValidateRecords(endpoint, r, 0); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c := Records{Generation: r.Generation, Targets: slices.Clone(r.Targets)}
	SortTargets(c.Targets)
	m.mu.Lock()
	defer m.mu.Unlock()
	if have := m.records[endpoint].Generation; have != expect {
		return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: endpoint, Have: have, Want: expect}
	}
	if m.records == nil {
		m.records = make(map[string]Records)
	}
	m.records[endpoint] = c
	return nil
}

// Set overwrites the endpoint's records unconditionally and without
// validation, empty or not. It is an outside write — an operator, a
// damaged zone, a test or a simulation of the 2025 failure — not a path an
// Enactor uses.
func (m *MemoryProvider) Set(endpoint string, r Records) {
	c := Records{Generation: r.Generation, Targets: slices.Clone(r.Targets)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records == nil {
		m.records = make(map[string]Records)
	}
	m.records[endpoint] = c
}

// Endpoints returns the names of the endpoints that have records (possibly
// empty ones written by Set), in ascending order.
func (m *MemoryProvider) Endpoints() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.records))
}
