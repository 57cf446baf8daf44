package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// Limits on input, the same for every Store.
const (
	// MaxResourceBytes is the longest resource name, in bytes: a resource
	// name is a key of a fence.Store.
	MaxResourceBytes = fence.MaxKeyBytes
	// MaxHolderBytes is the longest holder name, in bytes.
	MaxHolderBytes = 1024
	// MaxTTL is the longest lease term. A lease that lasts longer is not a
	// lease: a dead holder would keep its resource for a day.
	MaxTTL = 24 * time.Hour
)

var (
	// ErrInvalidConfig is matched (with errors.Is) by every error a
	// constructor of this package returns for a bad configuration, and by
	// the error a method of a Keeper or a Recovery returns when the value
	// was not made by its constructor (Keep, NewRecovery).
	ErrInvalidConfig = errors.New("lease: invalid config")
	// ErrInvalidArgument is matched by errors reporting bad input to a
	// call: an empty or oversized resource or holder, a TTL that is zero,
	// negative or above MaxTTL, a lease with no epoch, a nil context or a
	// nil function.
	ErrInvalidArgument = errors.New("lease: invalid argument")
	// ErrHeld is matched by the refusal of a grant while another holder's
	// lease on the resource is unexpired; the error is a *HeldError.
	ErrHeld = errors.New("lease: held by another holder")
	// ErrLost is matched by the refusal to renew or release a lease that
	// has expired, was released, or was superseded by a newer epoch, and by
	// a Keeper's report that its lease is lost; the error is a *LostError.
	ErrLost = errors.New("lease: lost")
	// ErrFull is matched by the error Memory returns when a grant would
	// track a resource beyond MemoryConfig.MaxResources.
	ErrFull = errors.New("lease: table full")
	// ErrRemoveKey, returned (or wrapped) by the function Recovery.Run
	// runs for an attempt, says the key is no longer wanted (a droplet
	// retired): Run removes it (Recovery.Remove) instead of recording
	// the attempt's result.
	ErrRemoveKey = errors.New("lease: key no longer wanted")
)

// HeldError refuses a grant: Holder holds the resource under Epoch until
// Expires, as the table saw it at the instant of the refusal.
type HeldError struct {
	// Resource is the resource asked for.
	Resource string
	// Holder is the current holder.
	Holder string
	// Want is the holder that asked.
	Want string
	// Epoch is the current holder's epoch.
	Epoch fence.Token
	// Remaining is how long the current lease still runs, as the table
	// saw it (zero if the table cannot tell, as on etcd).
	Remaining time.Duration
}

// Error says who holds the resource and for how long, for example
// `lease: "droplet-7" held by "dwfm-2" (epoch 12, 4.5s left); "dwfm-1" must wait`.
func (e *HeldError) Error() string {
	left := ""
	if e.Remaining > 0 {
		left = fmt.Sprintf(", %v left", e.Remaining)
	}
	return fmt.Sprintf("lease: %q held by %q (epoch %d%s); %q must wait", e.Resource, e.Holder, uint64(e.Epoch), left, e.Want)
}

// Unwrap returns ErrHeld.
func (e *HeldError) Unwrap() error { return ErrHeld }

// LostError says a lease is no longer held: Epoch of Resource, held by
// Holder, expired, was released, or was superseded (Current is then the
// newer epoch).
type LostError struct {
	// Resource is the lost lease's resource.
	Resource string
	// Holder is the lost lease's holder.
	Holder string
	// Epoch is the lost lease's epoch.
	Epoch fence.Token
	// Current is the resource's newest epoch when the loss was found (zero
	// if unknown): greater than Epoch if another holder has been granted
	// the resource since.
	Current fence.Token
	// Reason says how it was lost, e.g. "expired", "released",
	// "superseded", "not renewed before the drift margin".
	Reason string
	// Cause is an underlying error, such as the last failed renewal's.
	Cause error
}

// Error describes the loss with the epochs, for example
// `lease: lost "droplet-7" epoch 11 held by "dwfm-1": superseded by epoch 12`.
func (e *LostError) Error() string {
	msg := fmt.Sprintf("lease: lost %q epoch %d held by %q: %s", e.Resource, uint64(e.Epoch), e.Holder, e.Reason)
	if e.Current > e.Epoch {
		msg += fmt.Sprintf(" (current epoch %d)", uint64(e.Current))
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns ErrLost and the cause.
func (e *LostError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrLost}
	}
	return []error{ErrLost, e.Cause}
}

// ValidateGrant reports every bad argument of a grant in one error matching
// ErrInvalidArgument: an empty or oversized resource or holder, and a TTL
// that is not in (0, MaxTTL]. Store implementations call it before any I/O,
// so that every backend refuses the same input with the same error.
func ValidateGrant(resource, holder string, ttl time.Duration) error {
	return errors.Join(validateResource(resource), validateHolder(holder), validateTTL(ttl))
}

// ValidateLease reports every bad field of a lease passed to Renew or
// Release: those ValidateGrant checks, and a zero epoch.
func ValidateLease(l Lease) error {
	var errEpoch error
	if l.Epoch == 0 {
		errEpoch = fmt.Errorf("%w: lease of %q has epoch zero (not a granted lease)", ErrInvalidArgument, l.Resource)
	}
	return errors.Join(ValidateGrant(l.Resource, l.Holder, l.TTL), errEpoch)
}

func validateResource(resource string) error {
	switch {
	case resource == "":
		return fmt.Errorf("%w: empty resource", ErrInvalidArgument)
	case len(resource) > MaxResourceBytes:
		return fmt.Errorf("%w: resource of %d bytes exceeds the limit of %d bytes", ErrInvalidArgument, len(resource), MaxResourceBytes)
	}
	return nil
}

func validateHolder(holder string) error {
	switch {
	case holder == "":
		return fmt.Errorf("%w: empty holder", ErrInvalidArgument)
	case len(holder) > MaxHolderBytes:
		return fmt.Errorf("%w: holder of %d bytes exceeds the limit of %d bytes", ErrInvalidArgument, len(holder), MaxHolderBytes)
	}
	return nil
}

func validateTTL(ttl time.Duration) error {
	switch {
	case ttl <= 0:
		return fmt.Errorf("%w: TTL %v is not positive", ErrInvalidArgument, ttl)
	case ttl > MaxTTL:
		return fmt.Errorf("%w: TTL %v is above %v", ErrInvalidArgument, ttl, MaxTTL)
	}
	return nil
}

var (
	errNilContext = fmt.Errorf("%w: nil context", ErrInvalidArgument)
	errNilFunc    = fmt.Errorf("%w: Recovery.Run with a nil function", ErrInvalidArgument)
	errNoKeeper   = fmt.Errorf("%w: Keeper not made by Keep (the zero Keeper keeps nothing)", ErrInvalidConfig)
	errRemoved    = errors.New("lease: key removed from the Recovery")
	errNoRecovery = fmt.Errorf("%w: Recovery not made by NewRecovery (the zero Recovery tracks nothing)", ErrInvalidConfig)
)

// contextErr is ctx.Err(), or an error matching ErrInvalidArgument for a
// nil ctx.
func contextErr(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	return ctx.Err()
}
