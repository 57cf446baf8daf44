package dnsplan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stormguard/stormguard/fence"
)

var (
	// ErrInvalidPlan is matched by every error that reports an invalid
	// Plan: a zero generation, a bad endpoint name, a bad or duplicate
	// target, a zero weight, an empty endpoint that Limits does not allow,
	// or a size beyond Limits.
	ErrInvalidPlan = errors.New("dnsplan: invalid plan")
	// ErrInvalidRecords is matched by every refusal of a record set that a
	// Provider must not write: a zero generation, a bad target, and above
	// all an empty target set (ErrEmptyRecords).
	ErrInvalidRecords = errors.New("dnsplan: invalid records")
	// ErrEmptyRecords is matched by the refusal to write an empty record
	// set. It wraps ErrInvalidRecords. An empty record set is exactly what
	// took the DynamoDB regional endpoint off the Internet in 2025, so no
	// Provider in this package or in contrib writes one.
	ErrEmptyRecords = fmt.Errorf("%w: empty record set", ErrInvalidRecords)
	// ErrInvalidReport is matched by errors reporting a bad health report
	// given to a Planner.
	ErrInvalidReport = errors.New("dnsplan: invalid health report")
	// ErrInvalidConfig is matched by every error a constructor returns for
	// an invalid configuration.
	ErrInvalidConfig = errors.New("dnsplan: invalid config")
	// ErrInvalidArgument is matched by the refusal of a call whose
	// arguments no call could accept: a nil context.Context, a nil Store
	// or Provider (also a nil *MemoryStore or *MemoryProvider), an Action
	// with an unknown Op. Nothing is read or written.
	ErrInvalidArgument = errors.New("dnsplan: invalid argument")
	// ErrNotFound is matched by a Store's refusal to get or delete a plan
	// it does not hold, and by Latest on an empty Store.
	ErrNotFound = errors.New("dnsplan: plan not found")
	// ErrFull is matched by a Store's refusal to hold more plans than its
	// bound.
	ErrFull = errors.New("dnsplan: store full")
	// ErrCorruptRecords is matched by a Provider's Read that found the
	// endpoint's applied generation but could not make sense of its
	// targets (metadata edited by hand, say). Such a Read returns Records
	// with Generation and Version set and no Targets along with the
	// error, so an Enactor can rewrite the endpoint under that condition:
	// the damage is repairable, not a reason to stop.
	ErrCorruptRecords = errors.New("dnsplan: corrupt records")
	// ErrNameInUse is matched by a Provider's refusal to write an endpoint
	// whose name holds a record the Provider does not own and must not
	// delete (a CNAME, with which no address record can coexist). It is
	// permanent until an operator removes that record.
	ErrNameInUse = errors.New("dnsplan: endpoint name in use by another record")
)

// VersionConflictError is a Provider's refusal of an Apply whose expected
// generation is still the endpoint's but whose expected Version is not:
// another write of the same generation landed since the caller read it.
// It matches fence.ErrStale, and errors.As finds in it a
// *fence.StaleError whose Have and Want are both that generation, so a
// caller that handles stale applies handles it unchanged.
type VersionConflictError struct {
	// Endpoint is the endpoint the Apply addressed.
	Endpoint string
	// Generation is the endpoint's applied generation, as expected.
	Generation fence.Token
	// Have is the version found; Want the version expected.
	Have, Want string
}

// Error describes the refusal, e.g. `dnsplan: apply to "api" refused:
// generation 10 was rewritten since it was read (version "7", read "5")`.
func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("dnsplan: apply to %q refused: generation %d was rewritten since it was read (version %q, read %q)",
		e.Endpoint, uint64(e.Generation), e.Have, e.Want)
}

// Unwrap returns the *fence.StaleError the refusal amounts to.
func (e *VersionConflictError) Unwrap() error {
	return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: e.Endpoint, Have: e.Generation, Want: e.Generation}
}

// Refusals of a write whose generation is not current (a Provider's Apply
// conditioned on a generation the endpoint no longer has) or not newer (a
// Store's Put of a generation it has already seen) are *fence.StaleError
// values, matched by fence.ErrStale, with Have set to the generation that
// refused the write, so a caller can react without another read.

// nilArgs returns "" if ctx is set and, where needStore or needProvider,
// so are store and provider (a nil *MemoryStore or *MemoryProvider counts
// as unset); otherwise it names every unset argument, e.g. "nil context,
// nil Store", for an error matching ErrInvalidArgument. It does not
// allocate unless it refuses.
func nilArgs(ctx context.Context, store Store, needStore bool, provider Provider, needProvider bool) string {
	noStore := needStore && isNilStore(store)
	noProvider := needProvider && isNilProvider(provider)
	if ctx != nil && !noStore && !noProvider {
		return ""
	}
	var nils []string
	if ctx == nil {
		nils = append(nils, "nil context")
	}
	if noStore {
		nils = append(nils, "nil Store")
	}
	if noProvider {
		nils = append(nils, "nil Provider")
	}
	return strings.Join(nils, ", ")
}

func isNilStore(s Store) bool {
	m, ok := s.(*MemoryStore)
	return s == nil || ok && m == nil
}

func isNilProvider(p Provider) bool {
	m, ok := p.(*MemoryProvider)
	return p == nil || ok && m == nil
}

// checkMemory refuses, with an error matching ErrInvalidArgument, a call
// (named by call) of a method of a nil *MemoryStore or *MemoryProvider
// (isNil; typ names the type) or with a nil ctx.
func checkMemory(call string, ctx context.Context, isNil bool, typ string) error {
	switch {
	case isNil:
		return fmt.Errorf("%w: %s: nil %s", ErrInvalidArgument, call, typ)
	case ctx == nil:
		return fmt.Errorf("%w: %s: nil context", ErrInvalidArgument, call)
	}
	return nil
}

// joinErrs joins errs like errors.Join.
func joinErrs(errs []error) error { return errors.Join(errs...) }
