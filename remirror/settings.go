package remirror

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/stormguard/stormguard/backoff"
)

// Unlimited, as Settings.SearchRate, MaxPerNode, MaxPerCluster or
// MaxElections, removes that bound. The engine's defaults never use it; it
// exists so that a simulator can reproduce the unbounded 2011 behaviour.
const Unlimited = -1

// Defaults applied to the zero fields of Settings.
const (
	DefaultReconnectWindow = 10 * time.Minute
	DefaultSearchRate      = 20.0 // searches per second, cluster-wide
	DefaultSearchBurst     = 40
	DefaultMaxPerNode      = 2
	DefaultMaxPerCluster   = 64
	DefaultMaxElections    = 32
	DefaultRecoveryReserve = 0.1
	DefaultUnreachableFor  = time.Minute
)

// DefaultReconnectPolicy returns the retry policy applied to a zero
// Settings.Reconnect: 1s doubling to 15s, full jitter. Only the Base, Cap,
// Multiplier and Jitter of the default policies matter: the engine bounds
// its loops by the reconnect window and by the budgets, not by MaxAttempts.
func DefaultReconnectPolicy() backoff.Policy {
	return backoff.Policy{Base: time.Second, Cap: 15 * time.Second}
}

// DefaultSearchPolicy returns the retry policy applied to a zero
// Settings.Search: 2s doubling to 1m, full jitter.
func DefaultSearchPolicy() backoff.Policy {
	return backoff.Policy{Base: 2 * time.Second, Cap: time.Minute}
}

// DefaultElectPolicy returns the retry policy applied to a zero
// Settings.Elect: 1s doubling to 30s, full jitter.
func DefaultElectPolicy() backoff.Policy {
	return backoff.Policy{Base: time.Second, Cap: 30 * time.Second}
}

// ErrInvalidConfig is matched (with errors.Is) by every error a constructor
// of the package (NewEngine, NewConcurrent, NewAuthority) returns for a bad
// Settings or AuthorityConfig field, and by the error any method of an
// Engine, Concurrent or Authority that was not built by its constructor (a
// zero value) returns instead of acting.
var ErrInvalidConfig = errors.New("remirror: invalid config")

// ErrInvalidSettings is ErrInvalidConfig, under its former name.
//
// Deprecated: use ErrInvalidConfig.
var ErrInvalidSettings = ErrInvalidConfig

// Settings are the engine's policy knobs. The zero value is usable and safe:
// a lost peer is probed with backoff for 10 minutes before any search; a
// cluster searches at most 20 times a second (burst 40), only nodes known to
// have room and to answer are contacted, at most 2 re-mirrors run per node
// and 64 per cluster, at most 32 elections are outstanding, and 10% of every
// node's capacity is held back from new volumes for recovery.
type Settings struct {
	// ReconnectWindow is the grace window after a mirror is lost during
	// which the engine only tries to reconnect to the previous peer, which
	// costs no space and no search. Zero means DefaultReconnectWindow (10m).
	// Negative is invalid; NoReconnect skips reconnecting altogether.
	ReconnectWindow time.Duration
	// NoReconnect makes a volume search for a new peer at once when its
	// mirror is lost, and never probe the previous one: the 2011 behaviour.
	NoReconnect bool
	// Reconnect spaces out the probes of the previous peer. The zero
	// Policy means DefaultReconnectPolicy() (1s doubling to 15s, full
	// jitter).
	Reconnect backoff.Policy
	// Search spaces out a volume's search attempts after a refusal, a full
	// cluster or an exhausted budget. The zero Policy means
	// DefaultSearchPolicy() (2s doubling to 1m, full jitter).
	Search backoff.Policy
	// Elect spaces out election attempts after the authority refused or
	// timed out. The zero Policy means DefaultElectPolicy() (1s doubling
	// to 30s, full jitter).
	Elect backoff.Policy
	// SearchRate bounds the search messages the whole cluster sends, per
	// second, with a burst of SearchBurst: the cluster-wide search budget.
	// Zero means DefaultSearchRate (20). Unlimited removes the bound; any
	// other value must be a positive finite number.
	SearchRate float64
	// SearchBurst is the search budget's burst. Zero means
	// DefaultSearchBurst (40), or ⌈SearchRate⌉ if that is larger (at any
	// rate, saturating at math.MaxInt). Negative is invalid.
	SearchBurst int
	// NoHints makes the engine contact random nodes when it searches,
	// instead of only nodes its capacity ledger says have room, are up, are
	// not quarantined and answered lately: the 2011 behaviour.
	NoHints bool
	// MaxPerNode bounds the re-mirrors (search through copy) that involve
	// one node, as source or as target. Zero means DefaultMaxPerNode (2).
	// Unlimited removes the bound; other negative values are invalid.
	MaxPerNode int
	// MaxPerCluster bounds the re-mirrors in flight in the cluster. Zero
	// means DefaultMaxPerCluster (64). Unlimited removes the bound; other
	// negative values are invalid.
	MaxPerCluster int
	// MaxElections bounds the elections outstanding at the authority from
	// this cluster. Zero means DefaultMaxElections (32). Unlimited removes
	// the bound; other negative values are invalid.
	MaxElections int
	// RecoveryReserve is the fraction of each node's capacity that new
	// volumes may not use, so that recovery always finds room. Zero means
	// DefaultRecoveryReserve (0.1); it must be in [0, 1). NoReserve sets
	// it to zero. A node's reserve is ⌈capacity × RecoveryReserve⌉,
	// computed exactly, with RecoveryReserve read as the shortest decimal
	// that formats to it: 0.07 of 100 is 7, though the float64 0.07 is a
	// little more than 7/100.
	RecoveryReserve float64
	// NoReserve holds no capacity back for recovery: the 2011 behaviour.
	NoReserve bool
	// UnreachableFor is how long a node that refused or did not answer a
	// search is skipped by later searches. Zero means DefaultUnreachableFor
	// (1m). Negative is invalid.
	UnreachableFor time.Duration
}

// resolved is Settings with defaults applied and bounds as plain numbers
// (a negative bound means none).
type resolved struct {
	window                    time.Duration
	noReconnect, noHints      bool
	reconnect, search, elect  backoff.Policy
	rate                      float64
	burst                     int
	maxPerNode, maxPerCluster int
	maxElections              int
	reserve                   float64
	unreachableFor            time.Duration
}

func (s Settings) resolve() (resolved, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	r := resolved{
		window: s.ReconnectWindow, noReconnect: s.NoReconnect, noHints: s.NoHints,
		reconnect: s.Reconnect, search: s.Search, elect: s.Elect,
		rate: s.SearchRate, burst: s.SearchBurst,
		maxPerNode: s.MaxPerNode, maxPerCluster: s.MaxPerCluster, maxElections: s.MaxElections,
		reserve: s.RecoveryReserve, unreachableFor: s.UnreachableFor,
	}
	if r.window < 0 {
		bad("ReconnectWindow %v is negative", r.window)
	} else if r.window == 0 {
		r.window = DefaultReconnectWindow
	}
	for _, p := range []struct {
		name string
		p    *backoff.Policy
		def  backoff.Policy
	}{{"Reconnect", &r.reconnect, DefaultReconnectPolicy()}, {"Search", &r.search, DefaultSearchPolicy()}, {"Elect", &r.elect, DefaultElectPolicy()}} {
		if *p.p == (backoff.Policy{}) {
			*p.p = p.def
		} else if err := p.p.Validate(); err != nil {
			bad("%s policy: %w", p.name, err)
		}
	}
	switch {
	case r.rate == Unlimited:
	case r.rate == 0:
		r.rate = DefaultSearchRate
	case !(r.rate > 0) || math.IsInf(r.rate, 0):
		bad("SearchRate %v is not a positive finite number (or Unlimited)", r.rate)
	}
	if r.burst < 0 {
		bad("SearchBurst %d is negative", r.burst)
	} else if r.burst == 0 {
		r.burst = DefaultSearchBurst
		if r.rate > 0 {
			// ⌈rate⌉, saturated at the largest int.
			if c := math.Ceil(r.rate); c >= math.MaxInt {
				r.burst = math.MaxInt
			} else {
				r.burst = max(r.burst, int(c))
			}
		}
	}
	for _, b := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxPerNode", &r.maxPerNode, DefaultMaxPerNode}, {"MaxPerCluster", &r.maxPerCluster, DefaultMaxPerCluster}, {"MaxElections", &r.maxElections, DefaultMaxElections}} {
		switch {
		case *b.v == 0:
			*b.v = b.def
		case *b.v < Unlimited:
			bad("%s %d is negative (use Unlimited for no bound)", b.name, *b.v)
		}
	}
	switch {
	case math.IsNaN(r.reserve) || r.reserve < 0 || r.reserve >= 1:
		bad("RecoveryReserve %v is outside [0, 1)", r.reserve)
	case s.NoReserve:
		r.reserve = 0
	case r.reserve == 0:
		r.reserve = DefaultRecoveryReserve
	}
	if r.unreachableFor < 0 {
		bad("UnreachableFor %v is negative", r.unreachableFor)
	} else if r.unreachableFor == 0 {
		r.unreachableFor = DefaultUnreachableFor
	}
	return r, errors.Join(errs...)
}
