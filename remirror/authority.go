package remirror

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/shed"
)

// DefaultAuthorityTimeout bounds one election call when
// AuthorityConfig.CallTimeout is zero: short, so that a sick zone's calls
// give their slot back quickly (the 2011 control plane's long timeouts
// filled its regional thread pool).
const DefaultAuthorityTimeout = 2 * time.Second

// AuthorityConfig configures an Authority.
type AuthorityConfig struct {
	// Store holds one fenced record per volume: the primary's node, written
	// with the volume's generation as token. Required: nil, or a nil
	// pointer in the interface, is refused with ErrInvalidConfig.
	Store fence.Store
	// Total bounds the elections in flight across all zones. Zero means 64.
	Total int
	// Share is the fraction of Total one zone may hold. Zero means 0.5.
	Share float64
	// CallTimeout bounds each election, and the wait for a slot. Zero
	// means DefaultAuthorityTimeout; negative is invalid. Elect answers by
	// then even if the store ignores its context: the call is abandoned
	// (ElectionFailed, context.DeadlineExceeded) but keeps its zone's slot
	// until the store returns, so a zone whose store hangs stays within
	// its share.
	CallTimeout time.Duration
}

// Authority elects primaries for the engines of many zones: the shell that
// carries out Elect actions. Every election is a compare-and-swap on the
// volume's record in a fence.Store, from the generation the engine expects
// to the next one, so two replicas can never both hold the newest
// generation; and every call goes through a per-zone shed.Partition with a
// short timeout, so that one zone's storm is refused early (shed.ErrShed)
// instead of starving the elections of every other zone. An Authority is
// safe for concurrent use. Build it with NewAuthority: the zero Authority
// has no store, and its Elect refuses with an error matching
// ErrInvalidConfig.
type Authority struct {
	store     fence.Store
	partition *shed.Partition[string] // nil only in an Authority not built by NewAuthority
	timeout   time.Duration
}

// NewAuthority returns an Authority configured by cfg, or an error matching
// ErrInvalidConfig that names every bad field.
func NewAuthority(cfg AuthorityConfig) (*Authority, error) {
	var errs []error
	if isNil(cfg.Store) {
		errs = append(errs, fmt.Errorf("%w: AuthorityConfig.Store is nil (%T)", ErrInvalidConfig, cfg.Store))
	}
	total := cfg.Total
	if total == 0 {
		total = 64
	}
	timeout := cfg.CallTimeout
	if timeout == 0 {
		timeout = DefaultAuthorityTimeout
	}
	p, err := shed.NewPartition(shed.PartitionConfig[string]{Total: total, Share: cfg.Share, MaxWait: max(timeout, 0)})
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidConfig, err))
	}
	if timeout < 0 {
		errs = append(errs, fmt.Errorf("%w: AuthorityConfig.CallTimeout %v is negative", ErrInvalidConfig, timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Authority{store: cfg.Store, partition: p, timeout: timeout}, nil
}

// isNil reports whether x is nil, or a nil pointer, map, slice, channel or
// func in an interface (a typed nil), whose methods would panic.
func isNil(x any) bool {
	return x == nil || nilValue(reflect.ValueOf(x))
}

// nilValue reports whether v is a nil pointer, map, slice, channel, func
// or interface.
func nilValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}

// VolumeKey returns the store key of a volume of a zone's cluster.
func VolumeKey(zone string, v VolumeID) string {
	return "remirror/" + zone + "/" + strconv.Itoa(int(v))
}

// Elect carries out an Elect action of zone's engine and returns the input
// that answers it: Elected with the new generation, or ElectionFailed
// (with the authority's generation when it has moved on) and the reason.
// Electing the node that already holds a newer generation answers Elected
// with that generation, so a retry after a lost answer converges. A zero
// or nil Authority (ErrInvalidConfig), a nil ctx (a typed nil included) or
// an action other than Elect (ErrInvalidInput) is refused before any call,
// with ElectionFailed.
func (a *Authority) Elect(ctx context.Context, zone string, act Action) (Input, error) {
	in := Input{Kind: ElectionFailed, Volume: act.Volume, Node: act.From, Attempt: act.Attempt}
	if a == nil || a.partition == nil {
		return in, errZeroAuthority
	}
	if isNil(ctx) {
		return in, errNilContext
	}
	if act.Kind != Elect {
		return in, fmt.Errorf("%w: %v action given to the authority", ErrInvalidInput, act.Kind)
	}
	if err := a.partition.Acquire(ctx, zone); err != nil {
		return in, err
	}
	// The call runs on its own goroutine, which holds the zone's slot
	// until the store returns, so that a store ignoring its context keeps
	// counting against the zone's share while Elect itself still answers
	// at CallTimeout.
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	done := make(chan electResult, 1)
	go func() {
		r := electResult{in: in}
		// The slot is given back before the answer, so that a caller's
		// next election finds it free.
		defer func() {
			if p := recover(); p != nil {
				r = electResult{panicked: true, panic: p}
			}
			a.partition.Release(zone)
			done <- r
		}()
		r.err = a.swap(ctx, zone, act, &r.in)
	}()
	var r electResult
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done: // answered at the deadline: take the answer
		default:
			return in, fmt.Errorf("remirror: election of node %d for volume %d of zone %q abandoned after %v: %w", act.From, act.Volume, zone, a.timeout, context.Cause(ctx))
		}
	}
	if r.panicked {
		panic(r.panic)
	}
	return r.in, r.err
}

// electResult is what an election's call returned, or the panic it raised.
type electResult struct {
	in       Input
	err      error
	panicked bool
	panic    any
}

// swap is the compare-and-swap of an election, which sets in to Elected
// with the new generation, or records the authority's generation in it.
func (a *Authority) swap(ctx context.Context, zone string, act Action, in *Input) error {
	if act.Expect == fence.MaxToken {
		return fmt.Errorf("%w: volume %d's generation is exhausted", fence.ErrExhausted, act.Volume)
	}
	key := VolumeKey(zone, act.Volume)
	value := []byte(strconv.Itoa(int(act.From)))
	err := a.store.CompareAndSwap(ctx, key, act.Expect, value, act.Expect+1)
	if err == nil {
		in.Kind, in.Token = Elected, act.Expect+1
		return nil
	}
	var stale *fence.StaleError
	if !errors.As(err, &stale) {
		return err
	}
	holder, have, lerr := a.store.Load(ctx, key)
	if lerr != nil {
		return lerr
	}
	if have > act.Expect && string(holder) == string(value) {
		in.Kind, in.Token = Elected, have
		return nil
	}
	in.Token = have
	return err
}
