package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// Defaults applied to the zero fields of a KeeperConfig (and of a
// RecoveryConfig, which schedules renewals the same way).
const (
	// DefaultRenewFraction: a lease is renewed once half its TTL has
	// passed, leaving the other half, less the drift margin, for retries.
	DefaultRenewFraction = 0.5
	// DefaultDriftDivisor: the default drift margin is TTL/10.
	DefaultDriftDivisor = 10
	// MinRenewInterval is the shortest renewal schedule accepted:
	// RenewFraction·TTL must be at least this long, so that a Keeper or a
	// Recovery renews a lease at most once per millisecond of its clock.
	// It is also the shortest delay before a retry after a failure.
	// A shorter schedule (a RenewFraction of 1e-12, or a lease shorter
	// than two milliseconds at the default fraction) is refused with
	// ErrInvalidConfig rather than clamped: clamped, it could fall after
	// the loss deadline and lose the lease, and either way it would renew
	// in a loop of round trips that keeps nothing safer. A lease that
	// cannot survive a millisecond between renewals cannot be kept over a
	// network anyway.
	MinRenewInterval = time.Millisecond
)

// KeeperConfig configures a Keeper. Store is required; the zero value of
// every other field means a documented default.
type KeeperConfig struct {
	// Store is the lease table the lease came from. Required: nil, or a
	// nil pointer such as a nil *Memory, is invalid.
	Store Store
	// RenewFraction is the part of the TTL after which the keeper renews:
	// a term that began at Renewed is renewed at Renewed+RenewFraction·TTL.
	// Zero means DefaultRenewFraction (0.5). It must be in (0, 1), the
	// renewal must fall before the loss deadline Expires−DriftMargin, and
	// RenewFraction·TTL must be at least MinRenewInterval (1ms), so that
	// no configuration renews in a busy loop.
	RenewFraction float64
	// DriftMargin is how much the holder's clock may fall behind the
	// Store's over one term: the keeper gives the lease up as lost at
	// Expires−DriftMargin on its own clock, never later, so it never
	// believes it holds a lease the Store may already have granted to
	// another holder. Zero means TTL/DefaultDriftDivisor (a tenth of the
	// lease's TTL); negative, or TTL or more, is invalid.
	DriftMargin time.Duration
	// Retry spaces out the attempts after a failed renewal (its Base, Cap,
	// Multiplier and Jitter). MaxAttempts and MaxElapsed are not used and
	// not validated, whatever their values: the loss deadline bounds the
	// retries. Every delay is at least MinRenewInterval, whatever the
	// Policy draws (a Base of 1ns, or full jitter's zero: a shorter draw
	// is lengthened by MinRenewInterval, which keeps the jitter's spread),
	// so that a Store that refuses at once is not called in a loop; the
	// last wait ends at the loss deadline. The zero Policy is backoff's default: about
	// 100ms, doubling, at most 10s, full jitter.
	Retry backoff.Policy
	// AttemptTimeout bounds each renewal call. Zero means no bound but the
	// loss deadline, which bounds every call anyway. Negative is invalid.
	AttemptTimeout time.Duration
	// ReleaseOnStop releases the lease when the keeper's context ends,
	// unless it was lost, so that another holder need not wait for it to
	// expire.
	ReleaseOnStop bool
	// OnLost, if not nil, is called once when the lease is lost, with the
	// *LostError that Err will return, on the keeper's goroutine, before
	// Lost is closed. It must not block; it may call the keeper's
	// methods, Stop included (see Stop).
	OnLost func(error)
	// OnEvent, if not nil, is called on the keeper's goroutine after every
	// renewal (OpRenew), refused renewal (OpRenew, Refused) and loss
	// (OpLost). It must not block; it may call the keeper's methods, Stop
	// included (see Stop).
	OnEvent func(Event)
}

// drift returns the effective drift margin for a lease of ttl.
func (c KeeperConfig) drift(ttl time.Duration) time.Duration {
	if c.DriftMargin == 0 {
		return ttl / DefaultDriftDivisor
	}
	return c.DriftMargin
}

func (c KeeperConfig) fraction() float64 {
	if c.RenewFraction == 0 {
		return DefaultRenewFraction
	}
	return c.RenewFraction
}

// RenewAt returns when a keeper with this configuration renews l:
// l.Renewed + RenewFraction·l.TTL. It is the pure schedule the Keeper
// follows.
func (c KeeperConfig) RenewAt(l Lease) time.Time {
	return l.Renewed.Add(time.Duration(c.fraction() * float64(l.TTL)))
}

// LostAt returns when a keeper with this configuration gives l up as lost
// unless it has been renewed: l.Expires − DriftMargin. The Keeper reports
// the lease held strictly before this instant and never at or after it.
func (c KeeperConfig) LostAt(l Lease) time.Time {
	return l.Expires.Add(-c.drift(l.TTL))
}

// Validate reports every invalid field of c for keeping a lease of ttl, in
// one error matching ErrInvalidConfig, or nil.
func (c KeeperConfig) Validate(ttl time.Duration) error {
	var errs []error
	switch {
	case c.Store == nil:
		errs = append(errs, fmt.Errorf("%w: KeeperConfig.Store is nil", ErrInvalidConfig))
	case isNilPointer(c.Store):
		errs = append(errs, fmt.Errorf("%w: KeeperConfig.Store is a nil %T", ErrInvalidConfig, c.Store))
	}
	errs = append(errs, scheduleErrors("KeeperConfig", c.RenewFraction, c.DriftMargin, ttl)...)
	// The loss deadline bounds the retries, so the policy's own bounds are
	// not used; cleared, they cannot fail validation either (Unlimited
	// attempts with no MaxElapsed would).
	retry := c.Retry
	retry.MaxAttempts, retry.MaxElapsed = 0, 0
	if err := retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: KeeperConfig.Retry: %w", ErrInvalidConfig, err))
	}
	if c.AttemptTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: KeeperConfig.AttemptTimeout %v is negative", ErrInvalidConfig, c.AttemptTimeout))
	}
	return errors.Join(errs...)
}

// floorDelay returns a retry delay d drawn from a backoff.Policy, made at
// least MinRenewInterval: a shorter d is lengthened by MinRenewInterval
// rather than raised to it, so that keys whose draws differ still retry at
// different instants.
func floorDelay(d time.Duration) time.Duration {
	if d < MinRenewInterval {
		return d + MinRenewInterval
	}
	return d
}

// isNilPointer reports whether v holds a nil pointer (or another nil
// reference), such as a nil *Memory passed as a Store.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice:
		return rv.IsNil()
	}
	return false
}

// scheduleErrors reports the invalid fields of a renewal schedule
// (RenewFraction and DriftMargin) for leases of ttl, naming them as fields
// of the struct called cfg, such as "RecoveryConfig". A ttl of zero or
// less skips the checks that depend on it.
func scheduleErrors(cfg string, fraction float64, drift, ttl time.Duration) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s."+format, append([]any{ErrInvalidConfig, cfg}, args...)...))
	}
	if math.IsNaN(fraction) || fraction < 0 || fraction >= 1 {
		bad("RenewFraction %v is outside (0, 1)", fraction)
	}
	c := KeeperConfig{RenewFraction: fraction, DriftMargin: drift}
	switch {
	case drift < 0:
		bad("DriftMargin %v is negative", drift)
	case ttl > 0 && drift >= ttl:
		bad("DriftMargin %v is not below the lease's TTL %v: the lease would be lost before it was granted", drift, ttl)
	case ttl > 0 && fraction >= 0 && fraction < 1 && time.Duration(c.fraction()*float64(ttl)) >= ttl-c.drift(ttl):
		bad("RenewFraction %v of TTL %v renews at %v, not before the loss deadline TTL−DriftMargin = %v",
			c.fraction(), ttl, time.Duration(c.fraction()*float64(ttl)), ttl-c.drift(ttl))
	case ttl > 0 && fraction >= 0 && fraction < 1 && time.Duration(c.fraction()*float64(ttl)) < MinRenewInterval:
		bad("RenewFraction %v of TTL %v renews every %v, more often than MinRenewInterval %v",
			c.fraction(), ttl, time.Duration(c.fraction()*float64(ttl)), MinRenewInterval)
	}
	return errs
}

// Keeper keeps a lease on the holder's side: it renews it early, retries
// failed renewals with backoff, and gives it up as lost at Expires minus
// the drift margin — on its own clock, never later — if no renewal has
// succeeded by then. It calls the Store at most once per MinRenewInterval,
// whatever the Store answers. It reports the loss through Lost, Err and the OnLost
// callback. Held answers "may I still act on the lease?" from the clock
// alone, so it turns false at the loss deadline even if the keeper's
// goroutine is delayed.
//
// The loss is reported at the loss deadline on the keeper's own timer,
// whatever the Store does: a Renew that hangs past its context's deadline
// is left behind (its context done) and its late answer, even a success,
// changes nothing.
//
// A Keeper runs one goroutine, which ends when the lease is lost or the
// context given to Keep ends, and one more for the renewal call in
// progress; Stop ends the first and waits for it, but not for a Store call
// that ignores its context. At most one renewal call runs at a time: an
// attempt waits for the previous call to return if that call outlived its
// own attempt (a Store that ignores its context), so a Store that hangs
// gets one call, not one per retry. A Keeper is safe for concurrent use.
//
// Make a Keeper with Keep. The zero Keeper, and a nil *Keeper, keep
// nothing, and say so rather than panic: Held is false, Lease is the zero Lease, Lost and Done
// are closed (a holder waiting on Lost stops acting at once), Err returns
// an error matching ErrInvalidConfig, and Stop does nothing.
type Keeper struct {
	cfg    KeeperConfig
	cancel context.CancelFunc // nil for a Keeper not made by Keep
	done   chan struct{}
	lostCh chan struct{}
	// inHook is set while OnLost or OnEvent runs on the keeper's
	// goroutine, so that Stop called from a hook does not wait for the
	// goroutine it runs on.
	inHook atomic.Bool

	mu   sync.Mutex
	cur  Lease
	lost bool
	err  error
}

// closedChan is Lost and Done of a Keeper not made by Keep: closed, and
// never written again.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Keep starts keeping l, a lease just granted by cfg.Store, until ctx ends
// or the lease is lost. It returns an error matching ErrInvalidConfig for a
// bad configuration (every bad field at once) or ErrInvalidArgument for a
// bad lease or a nil ctx, and starts nothing then. A lease already past
// its loss deadline is reported lost at once.
func Keep(ctx context.Context, l Lease, cfg KeeperConfig) (*Keeper, error) {
	var errCtx error
	if ctx == nil {
		errCtx = errNilContext
	}
	if err := errors.Join(errCtx, ValidateLease(l), cfg.Validate(l.TTL)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	k := &Keeper{cfg: cfg, cancel: cancel, done: make(chan struct{}), lostCh: make(chan struct{}), cur: l}
	go k.run(ctx)
	return k, nil
}

// Lease returns the lease as last renewed.
func (k *Keeper) Lease() Lease {
	if k == nil {
		return Lease{}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur
}

// Held reports whether the lease may still be acted on now: the keeper
// has neither given it up nor been stopped, and the clock is before its
// loss deadline.
func (k *Keeper) Held() bool { return k.HeldAt(time.Now()) }

// HeldAt reports whether the lease may still be acted on at now: the
// keeper has neither given it up nor been stopped, and now is before LostAt
// of the lease as last renewed.
func (k *Keeper) HeldAt(now time.Time) bool {
	if k == nil || k.cancel == nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return !k.lost && now.Before(k.cfg.LostAt(k.cur))
}

// Lost is closed when the lease is lost (not when the keeper is stopped).
func (k *Keeper) Lost() <-chan struct{} {
	if k == nil || k.cancel == nil {
		return closedChan
	}
	return k.lostCh
}

// Done is closed when the keeper's goroutine has ended: the lease was lost
// or the context ended. A renewal call into a Store that ignores its
// context may still be running then; its answer is ignored.
func (k *Keeper) Done() <-chan struct{} {
	if k == nil || k.cancel == nil {
		return closedChan
	}
	return k.done
}

// Err returns nil while the keeper runs; after Done, a *LostError (errors.Is
// ErrLost) if the lease was lost, or the context's error if the keeper was
// stopped. For a Keeper not made by Keep it returns an error matching
// ErrInvalidConfig.
func (k *Keeper) Err() error {
	if k == nil || k.cancel == nil {
		return errNoKeeper
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Stop ends the keeper (releasing the lease if ReleaseOnStop) and waits for
// its goroutine to end. It is safe to call more than once, from several
// goroutines at once, and does nothing on a Keeper not made by Keep.
//
// Stop called while OnLost or OnEvent runs — from the hook itself, which
// runs on the keeper's goroutine and so cannot wait for it — ends the
// keeper without waiting: the goroutine ends (releasing the lease if
// ReleaseOnStop and it was not lost) as soon as the hook returns. Wait on
// Done for that from another goroutine, never from the hook.
func (k *Keeper) Stop() {
	if k == nil || k.cancel == nil {
		return
	}
	k.cancel()
	if k.inHook.Load() {
		return
	}
	<-k.done
}

func (k *Keeper) run(ctx context.Context) {
	defer close(k.done)
	defer k.cancel()
	cur := k.Lease()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	type answer struct {
		l   Lease
		err error
	}
	// wait waits until t or, if answers is not nil, for a renewal's
	// answer on it, whichever comes first; got says the answer came, and
	// ok is false if ctx ended first. The keeper's own timer, not the
	// store, decides when the wait ends.
	wait := func(t time.Time, answers <-chan answer) (a answer, got, ok bool) {
		timer.Reset(time.Until(t))
		select {
		case <-timer.C:
		case a = <-answers:
			timer.Stop()
			got = true
		case <-ctx.Done():
			timer.Stop()
		}
		return a, got, ctx.Err() == nil
	}
	// busy is closed when the latest renewal call has returned. A call
	// into a Store that ignores its context may outlive its attempt; the
	// next attempt waits for it rather than pile another call (and
	// goroutine) on a Store that is not answering.
	var busy chan struct{}
	// lastCall is when the latest renewal call was made: the next comes
	// no sooner than MinRenewInterval after it, even if a Store answers
	// with a lease whose renewal time has already passed.
	var lastCall time.Time
	for {
		lostAt := k.cfg.LostAt(cur)
		// A lease whose Expires comes before its renewal time (not
		// Renewed+TTL) is still lost at its LostAt, not later.
		renewAt := k.cfg.RenewAt(cur)
		if t := lastCall.Add(MinRenewInterval); !lastCall.IsZero() && renewAt.Before(t) {
			renewAt = t
		}
		if lostAt.Before(renewAt) {
			renewAt = lostAt
		}
		if _, _, ok := wait(renewAt, nil); !ok {
			k.stopped(ctx, cur, lostAt)
			return
		}
		var (
			lastErr error
			prev    time.Duration
		)
		for attempt := 1; ; attempt++ {
			now := time.Now()
			if !now.Before(lostAt) {
				k.lose(cur, "not renewed before expiry minus the drift margin", lastErr)
				return
			}
			if busy != nil {
				select {
				case <-busy:
				default:
					timer.Reset(time.Until(lostAt))
					select {
					case <-timer.C:
					case <-busy:
						timer.Stop()
					case <-ctx.Done():
						timer.Stop()
					}
					if ctx.Err() != nil {
						k.stopped(ctx, cur, lostAt)
						return
					}
					if now = time.Now(); !now.Before(lostAt) {
						k.lose(cur, "not renewed before expiry minus the drift margin", lastErr)
						return
					}
				}
			}
			dl := lostAt
			if t := k.cfg.AttemptTimeout; t > 0 && now.Add(t).Before(dl) {
				dl = now.Add(t)
			}
			// The call runs on a goroutine of its own, so that a Store
			// that ignores its context cannot hold the keeper past the
			// attempt's deadline, and so past LostAt: its answer, if it
			// comes later, lands in the buffered channel and is dropped.
			lastCall = now
			actx, cancel := context.WithDeadline(ctx, dl)
			answers := make(chan answer, 1)
			busy = make(chan struct{})
			go func(actx context.Context, l Lease, busy chan struct{}) {
				nl, err := k.cfg.Store.Renew(actx, l)
				answers <- answer{nl, err}
				close(busy)
			}(actx, cur, busy)
			a, got, ok := wait(dl, answers)
			cancel()
			if !ok {
				k.stopped(ctx, cur, lostAt)
				return
			}
			next, err := a.l, a.err
			if !got {
				err = fmt.Errorf("lease: renewal of %q epoch %d not answered within %v: %w",
					cur.Resource, uint64(cur.Epoch), dl.Sub(now), context.DeadlineExceeded)
			}
			if err == nil {
				if !time.Now().Before(lostAt) {
					// The renewal landed, but its answer came too late
					// to know in time: the lease was already given up.
					k.lose(cur, "renewal answered after expiry minus the drift margin", nil)
					return
				}
				k.mu.Lock()
				k.cur, cur = next, next
				k.mu.Unlock()
				k.emit(Event{Op: OpRenew, Resource: cur.Resource, Holder: cur.Holder, Epoch: cur.Epoch})
				break
			}
			k.emit(Event{Op: OpRenew, Resource: cur.Resource, Holder: cur.Holder, Epoch: cur.Epoch, Refused: true})
			var le *LostError
			if errors.As(err, &le) {
				k.lose(cur, le.Reason, err)
				return
			}
			if errors.Is(err, ErrInvalidArgument) {
				k.lose(cur, "renewal refused as invalid", err)
				return
			}
			lastErr = err
			d := floorDelay(k.cfg.Retry.Delay(attempt, prev, rand.Float64()))
			prev = d
			wake := time.Now().Add(d)
			if wake.After(lostAt) {
				wake = lostAt
			}
			if _, _, ok := wait(wake, nil); !ok {
				k.stopped(ctx, cur, lostAt)
				return
			}
		}
	}
}

// lose gives cur up as lost and reports it.
func (k *Keeper) lose(cur Lease, reason string, cause error) {
	err := &LostError{Resource: cur.Resource, Holder: cur.Holder, Epoch: cur.Epoch, Reason: reason, Cause: cause}
	var le *LostError
	if errors.As(cause, &le) {
		err.Current = le.Current
	}
	k.mu.Lock()
	k.lost, k.err = true, err
	k.mu.Unlock()
	k.emit(Event{Op: OpLost, Resource: cur.Resource, Holder: cur.Holder, Epoch: cur.Epoch})
	if k.cfg.OnLost != nil {
		k.inHook.Store(true)
		k.cfg.OnLost(err)
		k.inHook.Store(false)
	}
	close(k.lostCh)
}

// stopped records that ctx ended the keeper, releasing the lease if asked
// to and it may still be held.
func (k *Keeper) stopped(ctx context.Context, cur Lease, lostAt time.Time) {
	k.mu.Lock()
	k.lost, k.err = true, ctx.Err()
	k.mu.Unlock()
	if k.cfg.ReleaseOnStop && time.Now().Before(lostAt) {
		// As for a renewal, a Store that ignores the context does not
		// hold Stop past the loss deadline.
		rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), lostAt)
		defer cancel()
		released := make(chan struct{})
		go func() {
			_ = k.cfg.Store.Release(rctx, cur)
			close(released)
		}()
		select {
		case <-released:
		case <-rctx.Done():
		}
	}
}

func (k *Keeper) emit(e Event) {
	if k.cfg.OnEvent != nil {
		k.inHook.Store(true)
		k.cfg.OnEvent(e)
		k.inHook.Store(false)
	}
}
