package dnsplan

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/stormguard/stormguard/fence"
)

// Records is what an endpoint serves: its targets and the generation of
// the plan that wrote them (its applied generation), with the version of
// the write that put them there.
type Records struct {
	// Generation is the applied generation; zero if the endpoint has never
	// been written.
	Generation fence.Token
	// Targets are the endpoint's addresses and weights, sorted by address.
	Targets []Target
	// Version identifies the write that produced these records: Read
	// fills it in, and a Provider gives every successful Apply (and every
	// outside write it knows of) a version it has not given before, so
	// two writes of the same generation never share one. It is opaque
	// (a counter in MemoryProvider, a random nonce in contrib/rfc2136) and
	// empty for an endpoint that was never written. Apply ignores the
	// Version of the records it writes.
	Version string
}

// Provider is where records live: a DNS server, a cloud DNS API, or
// MemoryProvider. Implementations must be safe for concurrent use.
//
// The contract that makes enactors safe is Apply's condition: the write
// takes effect only if the endpoint is, at the instant of the write,
// exactly as the caller read it — the same applied generation and the same
// Version. An Enactor decides "my plan is newer" from that read and makes
// the write conditional on it, so the decision and the write are one
// atomic step; a Provider needs no notion of which generation is newer.
// Conditioning on the Version as well as the generation means two writers
// of the same generation with different content cannot be confused: the
// second one's condition names a write that has since been replaced.
type Provider interface {
	// Read returns the endpoint's records, applied generation and
	// version, or zero Records if the endpoint has none. If the
	// generation can be read but the targets cannot (damaged metadata),
	// Read returns Records with Generation and Version set and no
	// Targets, together with an error matching ErrCorruptRecords, so that
	// the endpoint can be rewritten under that condition.
	Read(ctx context.Context, endpoint string) (Records, error)
	// Apply replaces the endpoint's targets and applied generation with r,
	// as one transaction, if and only if the endpoint's applied generation
	// and version are expect.Generation and expect.Version at the instant
	// of the write (zero Records: the endpoint has no records); the
	// Targets of expect are not compared. A refusal matches fence.ErrStale
	// and errors.As finds a *fence.StaleError whose Have is the applied
	// generation found (a *VersionConflictError if only the version
	// differed). Apply refuses, before any I/O, records that
	// ValidateRecords rejects: in particular it never writes an empty
	// record set (ErrEmptyRecords). A record the Provider does not own at
	// the endpoint's name (a CNAME, say) is refused with an error matching
	// ErrNameInUse, and never deleted.
	Apply(ctx context.Context, endpoint string, expect Records, r Records) error
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
	writes  uint64 // versions handed out
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

// Apply writes a sorted copy of r, under a new Version, if the endpoint's
// applied generation and version are expect's. See Provider.Apply.
func (m *MemoryProvider) Apply(ctx context.Context, endpoint string, expect Records, r Records) error {
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
	have := m.records[endpoint]
	if have.Generation != expect.Generation {
		return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: endpoint, Have: have.Generation, Want: expect.Generation}
	}
	if have.Version != expect.Version {
		return &VersionConflictError{Endpoint: endpoint, Generation: have.Generation, Have: have.Version, Want: expect.Version}
	}
	m.put(endpoint, c)
	return nil
}

// put stores c under a new version; m.mu must be held.
func (m *MemoryProvider) put(endpoint string, c Records) {
	if m.records == nil {
		m.records = make(map[string]Records)
	}
	m.writes++
	c.Version = strconv.FormatUint(m.writes, 10)
	m.records[endpoint] = c
}

// Set overwrites the endpoint's records unconditionally and without
// validation, empty or not, under a new Version. It is an outside write —
// an operator, a damaged zone, a test or a simulation of the 2025 failure
// — not a path an Enactor uses.
func (m *MemoryProvider) Set(endpoint string, r Records) {
	c := Records{Generation: r.Generation, Targets: slices.Clone(r.Targets)}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(endpoint, c)
}

// Endpoints returns the names of the endpoints that have records (possibly
// empty ones written by Set), in ascending order.
func (m *MemoryProvider) Endpoints() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.records))
}
