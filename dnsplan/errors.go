package dnsplan

import (
	"errors"
	"fmt"
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
	// ErrNotFound is matched by a Store's refusal to get or delete a plan
	// it does not hold, and by Latest on an empty Store.
	ErrNotFound = errors.New("dnsplan: plan not found")
	// ErrFull is matched by a Store's refusal to hold more plans than its
	// bound.
	ErrFull = errors.New("dnsplan: store full")
)

// Refusals of a write whose generation is not current (a Provider's Apply
// conditioned on a generation the endpoint no longer has) or not newer (a
// Store's Put of a generation it has already seen) are *fence.StaleError
// values, matched by fence.ErrStale, with Have set to the generation that
// refused the write, so a caller can react without another read.

// joinErrs joins errs like errors.Join.
func joinErrs(errs []error) error { return errors.Join(errs...) }
