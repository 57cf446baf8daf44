package dnsplan

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/stormguard/stormguard/fence"
)

// Default limits, used where a Limits field is zero.
const (
	// DefaultMaxEndpoints is the most endpoints a plan may hold.
	DefaultMaxEndpoints = 1 << 17
	// DefaultMaxTargets is the most targets an endpoint may have. An
	// answer of 64 A records (16 bytes each, owner name compressed) fits
	// a 1232-byte EDNS UDP payload, unsigned, for endpoint names of up to
	// 179 bytes. An answer of 64 AAAA records (28 bytes each) does not:
	// at most 41 fit (33 for a 253-byte name), so a larger AAAA set comes
	// back truncated over UDP and resolvers retry over TCP, as the RFC
	// 2136 provider (contrib/rfc2136) does with its own queries. Lower
	// Limits.MaxTargets to keep every answer within one UDP datagram.
	DefaultMaxTargets = 64
	// MaxEndpointBytes is the longest endpoint name: the longest DNS name
	// in presentation form without the trailing dot.
	MaxEndpointBytes = 253
	// maxReported bounds the problems one validation error lists.
	maxReported = 16
)

// Target is one address an endpoint resolves to, with its share of the
// endpoint's traffic. Weight is relative to the other targets of the same
// endpoint (a weight of 2 gets twice the traffic of a weight of 1) and is
// also the target's capacity as the Planner counts it.
type Target struct {
	// Addr is an IPv4 or IPv6 address without a zone. IPv4 addresses
	// must be in their 4-byte form, not IPv4-mapped IPv6.
	Addr netip.Addr
	// Weight is positive.
	Weight uint32
}

// Plan is the desired DNS state of every endpoint, numbered by a
// generation. A Plan is a value: Stores copy it in and out. Targets of an
// endpoint are kept sorted by address (Normalize), so two plans with the
// same targets compare equal whatever order they were built in.
type Plan struct {
	// Generation numbers the plan. Plans are totally ordered by it; the
	// zero generation is not a plan.
	Generation fence.Token
	// Endpoints maps an endpoint's name (for example
	// "dynamodb.us-east-1.amazonaws.com") to its targets.
	Endpoints map[string][]Target
	// Velocity is the velocity-control history the Planner made the plan
	// with: for each endpoint, oldest first, the changes to its capacity
	// that a window ending at the plan or later can still see (those
	// within PlannerConfig.Window, and the last one before), sorted by
	// Endpoint and then At. A Planner started from the plan
	// (PlannerConfig.Previous) continues from it, so a restart does not
	// reset the removal budget of the window; it ignores the changes of
	// endpoints the plan does not name (so an endpoint may be dropped
	// from Endpoints alone). Stores keep it with the plan (it encodes as
	// JSON with the rest); Enactors ignore it; it is nil in a plan not
	// made by a Planner.
	Velocity []CapacityChange
	// MadeAt is when the Planner made the plan: the now of Planner.Next,
	// or a later time that Planner had already seen. A Planner started
	// from the plan never takes now as earlier, so a removal that had
	// left the window when the plan was made is not counted out of it
	// again by a successor whose clock is behind. Zero in a plan not made
	// by a Planner; Enactors ignore it.
	MadeAt time.Time
}

// CapacityChange is one change a plan made to an endpoint's capacity, as
// velocity control counts it (see PlannerConfig.MaxRemoveFraction).
type CapacityChange struct {
	// Endpoint is the endpoint changed.
	Endpoint string
	// At is when the Planner made the plan: the now of Planner.Next.
	At time.Time
	// Capacity is the endpoint's capacity after the change, the sum of
	// its weights.
	Capacity uint64
	// Removed is the capacity the change removed: the weight of targets
	// dropped plus the weight lost by targets kept.
	Removed uint64
}

// Limits bounds what Validate accepts. The zero value is usable: every
// zero field means its default.
type Limits struct {
	// MaxEndpoints bounds the endpoints of a plan; zero means
	// DefaultMaxEndpoints, negative is invalid.
	MaxEndpoints int
	// MaxTargets bounds the targets of one endpoint; zero means
	// DefaultMaxTargets, negative is invalid.
	MaxTargets int
	// AllowEmpty lets a plan name an endpoint with no targets. An Enactor
	// never writes such an endpoint (it leaves its records as they are);
	// without AllowEmpty such a plan is invalid.
	AllowEmpty bool
}

func (l Limits) maxEndpoints() int {
	if l.MaxEndpoints == 0 {
		return DefaultMaxEndpoints
	}
	return l.MaxEndpoints
}

func (l Limits) maxTargets() int {
	if l.MaxTargets == 0 {
		return DefaultMaxTargets
	}
	return l.MaxTargets
}

// validate reports negative limits, wrapping ErrInvalidConfig.
func (l Limits) validate(owner string) error {
	var errs []error
	if l.MaxEndpoints < 0 {
		errs = append(errs, fmt.Errorf("%w: %s.Limits.MaxEndpoints %d is negative", ErrInvalidConfig, owner, l.MaxEndpoints))
	}
	if l.MaxTargets < 0 {
		errs = append(errs, fmt.Errorf("%w: %s.Limits.MaxTargets %d is negative", ErrInvalidConfig, owner, l.MaxTargets))
	}
	return errors.Join(errs...)
}

// MaxLabelBytes is the longest label (the part between two dots) of an
// endpoint name, as in DNS.
const MaxLabelBytes = 63

// ValidateEndpoint reports whether name is a canonical endpoint name: 1 to
// MaxEndpointBytes bytes of lowercase ASCII letters, digits, '-', '_' and
// '.', in labels of 1 to MaxLabelBytes bytes, with no leading or trailing
// dot. DNS names are case-insensitive, and a trailing dot or a backslash
// escape spells the same name another way ("API.x.", "\\097pi.x" and
// "api.x" are one name); accepting one spelling only means two endpoints
// of a plan are never the same DNS name under two spellings, which two
// enactors would otherwise rewrite in turn on every pass. Any other name
// is refused with an error matching ErrInvalidPlan that says why and,
// where CanonicalEndpoint can make one, names the canonical form (e.g.
// `endpoint name "API.x." is not canonical: use "api.x"`). It allocates
// only to refuse.
func ValidateEndpoint(name string) error {
	if err := checkEndpoint(name, name); err != nil {
		c, cerr := CanonicalEndpoint(name)
		switch {
		case cerr == nil && c != name:
			return fmt.Errorf("%w: endpoint name %q is not canonical: use %q", ErrInvalidPlan, name, c)
		case strings.IndexByte(name, '\\') >= 0:
			return cerr // says that escapes are not decoded
		}
		return err
	}
	return nil
}

// CanonicalEndpoint returns the canonical spelling of the endpoint name
// (see ValidateEndpoint): name with ASCII letters lowercased and one
// trailing dot removed. It decodes nothing: a name with a backslash
// escape is refused, as is one that is still not a valid endpoint name,
// with an error matching ErrInvalidPlan.
func CanonicalEndpoint(name string) (string, error) {
	if i := strings.IndexByte(name, '\\'); i >= 0 {
		return "", fmt.Errorf("%w: endpoint name %q has a backslash at byte %d: escapes are not decoded, spell the name with plain lowercase ASCII", ErrInvalidPlan, name, i)
	}
	c := strings.TrimSuffix(name, ".")
	if hasUpper(c) {
		c = strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + ('a' - 'A')
			}
			return r
		}, c)
	}
	if err := checkEndpoint(name, c); err != nil {
		return "", err
	}
	return c, nil
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// checkEndpoint reports the first problem of name as a canonical endpoint
// name; shown is the name as the caller spelled it, for the message.
func checkEndpoint(shown, name string) error {
	if name == "" {
		if shown != "" {
			return fmt.Errorf("%w: endpoint name %q is empty without its trailing dot", ErrInvalidPlan, shown)
		}
		return fmt.Errorf("%w: empty endpoint name", ErrInvalidPlan)
	}
	if len(name) > MaxEndpointBytes {
		return fmt.Errorf("%w: endpoint name of %d bytes exceeds %d bytes", ErrInvalidPlan, len(name), MaxEndpointBytes)
	}
	label := 0 // start of the current label
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			switch n := i - label; {
			case n == 0 && i == 0:
				return fmt.Errorf("%w: endpoint name %q starts with a dot", ErrInvalidPlan, shown)
			case n == 0 && i == len(name):
				return fmt.Errorf("%w: endpoint name %q ends with a dot", ErrInvalidPlan, shown)
			case n == 0:
				return fmt.Errorf("%w: endpoint name %q has an empty label at byte %d", ErrInvalidPlan, shown, i)
			case n > MaxLabelBytes:
				return fmt.Errorf("%w: endpoint name %q has a label of %d bytes at byte %d, limit %d", ErrInvalidPlan, shown, n, label, MaxLabelBytes)
			}
			label = i + 1
			continue
		}
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("%w: endpoint name %q has byte %#x %q at %d (want lowercase ASCII letters, digits, '-', '_' or '.')", ErrInvalidPlan, shown, c, rune(c), i)
		}
	}
	return nil
}

// validateTargets reports every bad target of endpoint name, each
// wrapping sentinel. It allocates only to report problems (and, for more
// than 16 targets, a set to find duplicates).
func validateTargets(sentinel error, name string, ts []Target, maxTargets int, allowEmpty bool) []error {
	var errs []error
	if len(ts) == 0 && !allowEmpty {
		errs = append(errs, fmt.Errorf("%w: endpoint %q has no targets", sentinel, name))
	}
	if len(ts) > maxTargets {
		errs = append(errs, fmt.Errorf("%w: endpoint %q has %d targets, limit %d", sentinel, name, len(ts), maxTargets))
	}
	var seen map[netip.Addr]struct{}
	if len(ts) > 16 {
		seen = make(map[netip.Addr]struct{}, len(ts))
	}
	for i, t := range ts {
		switch {
		case !t.Addr.IsValid():
			errs = append(errs, fmt.Errorf("%w: endpoint %q target %d has no address", sentinel, name, i))
		case t.Addr.Zone() != "":
			errs = append(errs, fmt.Errorf("%w: endpoint %q target %v has a zone", sentinel, name, t.Addr))
		case t.Addr.Is4In6():
			errs = append(errs, fmt.Errorf("%w: endpoint %q target %v is IPv4-mapped IPv6 (use %v)", sentinel, name, t.Addr, t.Addr.Unmap()))
		}
		if t.Weight == 0 {
			errs = append(errs, fmt.Errorf("%w: endpoint %q target %v has weight 0 (want > 0)", sentinel, name, t.Addr))
		}
		if !t.Addr.IsValid() {
			continue
		}
		dup := false
		if seen != nil {
			_, dup = seen[t.Addr]
			seen[t.Addr] = struct{}{}
		} else {
			for _, u := range ts[:i] {
				if u.Addr == t.Addr {
					dup = true
					break
				}
			}
		}
		if dup {
			errs = append(errs, fmt.Errorf("%w: endpoint %q lists target %v twice", sentinel, name, t.Addr))
		}
	}
	return errs
}

// Validate reports every problem of p under limits in one error (at most
// 16 are listed, then a count of the rest), each matching ErrInvalidPlan,
// or nil if p is valid: a non-zero generation; at least one and at most
// MaxEndpoints endpoints; valid endpoint names (ValidateEndpoint); per
// endpoint at most MaxTargets targets, none duplicated, each with a valid
// zoneless address and a positive weight; no endpoint without targets
// unless limits.AllowEmpty. Invalid limits are reported too. Velocity is
// not checked: it is history, and a Planner ignores what it cannot use
// and believes of the rest only what narrows its removal budget (see
// PlannerConfig.Previous).
func Validate(p Plan, limits Limits) error {
	var errs []error
	if err := limits.validate("Validate"); err != nil {
		errs = append(errs, err)
	}
	if p.Generation == 0 {
		errs = append(errs, fmt.Errorf("%w: generation 0 (want > 0)", ErrInvalidPlan))
	}
	if len(p.Endpoints) == 0 {
		errs = append(errs, fmt.Errorf("%w: no endpoints", ErrInvalidPlan))
	}
	if n, limit := len(p.Endpoints), limits.maxEndpoints(); n > limit {
		errs = append(errs, fmt.Errorf("%w: %d endpoints, limit %d", ErrInvalidPlan, n, limit))
	}
	// The common case, a valid plan, is checked in map order without
	// allocating; only a plan with problems pays for sorting its names,
	// so that the problems listed are the same on every call.
	bad := false
	for name, ts := range p.Endpoints {
		if ValidateEndpoint(name) != nil || len(validateTargets(ErrInvalidPlan, name, ts, limits.maxTargets(), limits.AllowEmpty)) > 0 {
			bad = true
			break
		}
	}
	more := 0
	if bad {
		for _, name := range slices.Sorted(maps.Keys(p.Endpoints)) {
			problems := []error{ValidateEndpoint(name)}
			if problems[0] == nil {
				problems = validateTargets(ErrInvalidPlan, name, p.Endpoints[name], limits.maxTargets(), limits.AllowEmpty)
			}
			for _, err := range problems {
				if len(errs) < maxReported {
					errs = append(errs, err)
				} else {
					more++
				}
			}
		}
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("%w: and %d more problems", ErrInvalidPlan, more))
	}
	return errors.Join(errs...)
}

// ValidateRecords reports every problem of a record set a Provider is asked
// to write, each matching ErrInvalidRecords: a zero generation, no targets
// (also ErrEmptyRecords), more than maxTargets targets (zero means
// DefaultMaxTargets), a bad or duplicate address, a zero weight.
// Providers call it before any I/O.
func ValidateRecords(endpoint string, r Records, maxTargets int) error {
	if maxTargets <= 0 {
		maxTargets = DefaultMaxTargets
	}
	var errs []error
	if err := ValidateEndpoint(endpoint); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidRecords, err))
	}
	if r.Generation == 0 {
		errs = append(errs, fmt.Errorf("%w: generation 0 for %q", ErrInvalidRecords, endpoint))
	}
	if len(r.Targets) == 0 {
		errs = append(errs, fmt.Errorf("%w for %q (generation %d)", ErrEmptyRecords, endpoint, uint64(r.Generation)))
	}
	errs = append(errs, validateTargets(ErrInvalidRecords, endpoint, r.Targets, maxTargets, true)...)
	return errors.Join(errs...)
}

// Normalize sorts every endpoint's targets by address in place, the order
// Stores and Providers keep them in, and the Velocity history by endpoint
// and then time.
func (p Plan) Normalize() {
	for _, ts := range p.Endpoints {
		SortTargets(ts)
	}
	slices.SortStableFunc(p.Velocity, func(a, b CapacityChange) int {
		if c := strings.Compare(a.Endpoint, b.Endpoint); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
}

// SortTargets sorts ts by address.
func SortTargets(ts []Target) {
	slices.SortFunc(ts, func(a, b Target) int { return a.Addr.Compare(b.Addr) })
}

// Clone returns a deep copy of p.
func (p Plan) Clone() Plan {
	c := Plan{Generation: p.Generation, Velocity: slices.Clone(p.Velocity), MadeAt: p.MadeAt}
	if p.Endpoints != nil {
		c.Endpoints = make(map[string][]Target, len(p.Endpoints))
		for name, ts := range p.Endpoints {
			c.Endpoints[name] = slices.Clone(ts)
		}
	}
	return c
}

// EndpointNames returns p's endpoint names in ascending order.
func (p Plan) EndpointNames() []string { return slices.Sorted(maps.Keys(p.Endpoints)) }

// Capacity returns the sum of the weights of endpoint's targets in p.
func (p Plan) Capacity(endpoint string) uint64 { return capacity(p.Endpoints[endpoint]) }

func capacity(ts []Target) uint64 {
	var c uint64
	for _, t := range ts {
		c += uint64(t.Weight)
	}
	return c
}

// SameTargets reports whether a and b hold the same targets with the same
// weights, in any order.
func SameTargets(a, b []Target) bool {
	if len(a) != len(b) {
		return false
	}
	if slices.IsSortedFunc(a, cmpTarget) && slices.IsSortedFunc(b, cmpTarget) {
		return slices.Equal(a, b)
	}
	a, b = slices.Clone(a), slices.Clone(b)
	SortTargets(a)
	SortTargets(b)
	return slices.Equal(a, b)
}

func cmpTarget(a, b Target) int { return a.Addr.Compare(b.Addr) }

// Diff returns, in ascending order, the endpoints whose targets differ
// between from and to: changed, added (in to only) and removed (in from
// only). It costs one comparison per target and allocates only the
// result.
func Diff(from, to Plan) []string {
	var out []string
	for name, ts := range to.Endpoints {
		old, ok := from.Endpoints[name]
		if !ok || !SameTargets(old, ts) {
			out = append(out, name)
		}
	}
	for name := range from.Endpoints {
		if _, ok := to.Endpoints[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// String summarises p, e.g. "plan 7 (3 endpoints)".
func (p Plan) String() string {
	return fmt.Sprintf("plan %d (%d endpoints)", uint64(p.Generation), len(p.Endpoints))
}

// FormatTargets formats targets as "10.0.0.1*2 10.0.0.2*1".
func FormatTargets(ts []Target) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%v*%d", t.Addr, t.Weight)
	}
	return b.String()
}
