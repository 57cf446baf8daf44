package stormotel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the meter New asks the
// provider for.
const ScopeName = "github.com/stormguard/stormguard/contrib/otel"

// DefaultMaxKeys is the bound on the keys one registration may export
// when WithMaxKeys is not given.
const DefaultMaxKeys = 64

// MaxKeysLimit is the highest bound WithMaxKeys accepts.
const MaxKeysLimit = 4096

// maxNameLen is the longest registration name or key accepted, in bytes.
const maxNameLen = 128

// Attribute keys set on every series.
const (
	// AttrName is the registration's name, set on every series.
	AttrName = attribute.Key("stormguard.name")
	// AttrKey is the key of a per-key series (Partition, KeyedLimiter,
	// Breakers), formatted with %v.
	AttrKey = attribute.Key("stormguard.key")
	// AttrReason is the refusal reason of stormguard.shed.*.shed.
	AttrReason = attribute.Key("stormguard.reason")
	// AttrState is the state of a state gauge (breaker, volume, key).
	AttrState = attribute.Key("stormguard.state")
	// AttrEvent is the kind of a counted event (lease, dnsplan).
	AttrEvent = attribute.Key("stormguard.event")
	// AttrOutcome is the outcome of a counted operation (fence, remirror).
	AttrOutcome = attribute.Key("stormguard.outcome")
	// AttrPrimitive is, on stormguard.shed.adaptive.*, the primitive whose
	// adaptive limit the series reports ("queue", "bulkhead",
	// "partition"); a standalone AdaptiveLimit's series lack it.
	AttrPrimitive = attribute.Key("stormguard.primitive")
	// AttrAction is the kind of a remirror action.
	AttrAction = attribute.Key("stormguard.action")
)

// ErrInvalid is matched (errors.Is) by the errors of New and of the
// Register functions for bad input: a nil provider or primitive, an empty
// or over-long name, a key list that is too long or formats two keys the
// same, an option out of range.
var ErrInvalid = errors.New("stormotel: invalid argument")

// ErrDuplicate is matched by the error of a Register function given a name
// already registered for the same kind of primitive on the same Meter.
var ErrDuplicate = errors.New("stormotel: duplicate name")

// ErrClosed is matched by the error of a Register function called after
// Meter.Close.
var ErrClosed = errors.New("stormotel: meter closed")

// Option configures New.
type Option func(*config) error

type config struct {
	maxKeys int
}

// WithMaxKeys bounds the keys one registration of a keyed primitive may
// export (1 to MaxKeysLimit; DefaultMaxKeys without this option). It
// bounds the cardinality of the per-key series: a Register call given
// more keys fails with an error matching ErrInvalid.
func WithMaxKeys(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxKeysLimit {
			return fmt.Errorf("%w: WithMaxKeys %d is outside [1, %d]", ErrInvalid, n, MaxKeysLimit)
		}
		c.maxKeys = n
		return nil
	}
}

// Meter exports the Stats of the primitives registered with it as
// OpenTelemetry observable instruments. It creates every instrument once,
// in New; each registration adds one callback, run only when a reader
// collects. A Meter is safe for concurrent use. The zero Meter is not
// usable (its Register calls fail with ErrInvalid): make one with New.
// Names are checked for uniqueness per Meter only: two Meters on one
// provider share its instruments, so the same name registered on both
// reports two sources under one series. Use one Meter per provider.
type Meter struct {
	meter   metric.Meter
	maxKeys int
	insts   map[string]metric.Observable

	mu     sync.Mutex
	closed bool
	names  map[string]*Registration // by kind + "\x00" + name
}

// New returns a Meter that creates its instruments with the meter
// provider.Meter(ScopeName) gives. It returns an error matching ErrInvalid
// for a nil provider or a bad option, or the error of the OpenTelemetry
// API if an instrument cannot be created.
func New(provider metric.MeterProvider, opts ...Option) (*Meter, error) {
	if provider == nil {
		return nil, fmt.Errorf("%w: nil MeterProvider", ErrInvalid)
	}
	cfg := config{maxKeys: DefaultMaxKeys}
	var errs []error
	for _, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("%w: nil Option", ErrInvalid))
			continue
		}
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := &Meter{
		meter:   provider.Meter(ScopeName),
		maxKeys: cfg.maxKeys,
		insts:   make(map[string]metric.Observable, len(instruments)),
		names:   make(map[string]*Registration),
	}
	for _, in := range instruments {
		var (
			o   metric.Observable
			err error
		)
		switch in.kind {
		case gaugeInt:
			o, err = m.meter.Int64ObservableGauge(in.name, metric.WithUnit(in.unit), metric.WithDescription(in.desc))
		case gaugeFloat:
			o, err = m.meter.Float64ObservableGauge(in.name, metric.WithUnit(in.unit), metric.WithDescription(in.desc))
		case counterInt:
			o, err = m.meter.Int64ObservableCounter(in.name, metric.WithUnit(in.unit), metric.WithDescription(in.desc))
		case upDownInt:
			o, err = m.meter.Int64ObservableUpDownCounter(in.name, metric.WithUnit(in.unit), metric.WithDescription(in.desc))
		}
		if err != nil {
			return nil, fmt.Errorf("stormotel: creating instrument %s: %w", in.name, err)
		}
		m.insts[in.name] = o
	}
	return m, nil
}

// Close unregisters every registration still registered, so that no
// callback of this Meter runs again, and makes later Register calls fail
// with ErrClosed. It returns the errors of the OpenTelemetry API, joined.
func (m *Meter) Close() error {
	m.mu.Lock()
	m.closed = true
	regs := make([]*Registration, 0, len(m.names))
	for _, r := range m.names {
		regs = append(regs, r)
	}
	m.mu.Unlock()
	for _, r := range regs {
		r.stop() // first, so that no callback waits for a lock while we unregister
	}
	var errs []error
	for _, r := range regs {
		errs = append(errs, r.Unregister())
	}
	return errors.Join(errs...)
}

// Registration is one primitive (or event sink) registered with a Meter.
type Registration struct {
	m        *Meter
	slot     string
	once     sync.Once
	err      error
	reg      metric.Registration
	done     chan struct{} // closed when unregistering starts
	stopOnce sync.Once
}

// stop tells a callback waiting for a lock (RegisterScheduler's) to give
// up: the provider's lock it holds meanwhile is the one Unregister needs.
func (r *Registration) stop() { r.stopOnce.Do(func() { close(r.done) }) }

// Unregister removes the registration's callback, so that its series are
// no longer reported from the next collection on, and frees its name. It
// is idempotent: later calls return the first call's result. A nil
// *Registration returns nil.
func (r *Registration) Unregister() error {
	if r == nil || r.m == nil {
		return nil
	}
	r.once.Do(func() {
		r.stop()
		if r.reg != nil {
			r.err = r.reg.Unregister()
		}
		r.m.mu.Lock()
		if r.m.names[r.slot] == r {
			delete(r.m.names, r.slot)
		}
		r.m.mu.Unlock()
	})
	return r.err
}

// checkName reports a name or formatted key that is empty, too long, not
// UTF-8 or holds control characters, or characters that do not show or
// reorder what follows (format characters such as a zero-width space, a
// bidi override or a BOM; line and paragraph separators), which would make
// two series look the same on a dashboard.
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case len(s) > maxNameLen:
		return fmt.Errorf("%w: %s of %d bytes, above %d", ErrInvalid, what, len(s), maxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %q is not UTF-8", ErrInvalid, what, s)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: %s %q holds a control character", ErrInvalid, what, s)
		}
		if unicode.In(c, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("%w: %s %q holds the invisible character %U", ErrInvalid, what, s, c)
		}
	}
	return nil
}

// source is one Stats reader of a registration: the attributes of its
// series, the series, and a getter. get returns ok false when there is
// nothing to report (a key with no state); id identifies the object read,
// so that the counters of a key whose object is replaced stay monotonic.
type source[S any] struct {
	attrs []attribute.KeyValue
	table []series[S]
	get   func() (s S, id any, ok bool)
	// getCtx, if not nil, is used instead of get, with the collection's
	// context: for a read that may wait (RegisterScheduler's).
	getCtx func(ctx context.Context) (s S, id any, ok bool)
}

// srcState is what a registration keeps for one source: the object last
// read and, per counter series, the last raw value and the offset added
// to it; and the precomputed instruments and options of its series.
type srcState struct {
	id    any
	raw   int64   // the sum of the counters' raw values last read
	prev  []int64 // each counter's raw value last read
	into  [][]int // each counter's fallsInto, as indices into the table
	last  []int64
	base  []int64
	opts  []metric.ObserveOption
	insts []metric.Observable
	kinds []instKind
}

// binding is one source bound to a registration, whatever its Stats type.
type binding interface {
	// prepare resolves the instruments and attribute sets of the
	// source's series under name, adding new instruments to list.
	prepare(m *Meter, name string, seen map[string]bool, list *[]metric.Observable)
	// observe reads the source and reports its series.
	observe(ctx context.Context, o metric.Observer)
}

// bound is a source with its state.
type bound[S any] struct {
	src source[S]
	st  srcState
}

func (b *bound[S]) prepare(m *Meter, name string, seen map[string]bool, list *[]metric.Observable) {
	st, n := &b.st, len(b.src.table)
	st.last, st.base = make([]int64, n), make([]int64, n)
	st.prev, st.into = make([]int64, n), make([][]int, n)
	for i, s := range b.src.table {
		for _, src := range s.fallsInto {
			for j, t := range b.src.table {
				if t.source == src {
					st.into[i] = append(st.into[i], j)
				}
			}
		}
	}
	st.opts = make([]metric.ObserveOption, n)
	st.insts, st.kinds = make([]metric.Observable, n), make([]instKind, n)
	for i, s := range b.src.table {
		st.insts[i], st.kinds[i] = m.insts[s.metric], instrumentKind[s.metric]
		if !seen[s.metric] {
			seen[s.metric] = true
			*list = append(*list, st.insts[i])
		}
		kv := append([]attribute.KeyValue{AttrName.String(name)}, b.src.attrs...)
		if s.attr.Key != "" {
			kv = append(kv, s.attr)
		}
		st.opts[i] = metric.WithAttributeSet(attribute.NewSet(kv...))
	}
}

func (b *bound[S]) observe(ctx context.Context, o metric.Observer) {
	var (
		s  S
		id any
		ok bool
	)
	if b.src.getCtx != nil {
		s, id, ok = b.src.getCtx(ctx)
	} else {
		s, id, ok = b.src.get()
	}
	if !ok {
		if id != skipped {
			forget(&b.st)
		}
		return
	}
	observe(&b.st, o, b.src.table, s, id)
}

// forget records that the source had nothing to report: a key the
// primitive forgot (or whose breaker it dropped). Whatever the source
// reports next counts from zero, so the counters' last raw values become
// offsets now; otherwise a key made again that had counted past its old
// value by the next collection would look like the same key, and its
// series would lose the old counts.
func forget(st *srcState) {
	if st.id == nil {
		return
	}
	for i, k := range st.kinds {
		if k == counterInt {
			st.base[i] = satAdd(st.base[i], st.last[i])
			st.last[i] = 0
		}
	}
	st.id, st.raw = nil, 0
}

// bind binds sources of one Stats type.
func bind[S any](srcs ...source[S]) []binding {
	out := make([]binding, len(srcs))
	for i, src := range srcs {
		out[i] = &bound[S]{src: src}
	}
	return out
}

// register is registerAll for sources of one Stats type.
func register[S any](m *Meter, kind, name string, srcs []source[S]) (*Registration, error) {
	return registerAll(m, kind, name, bind(srcs...))
}

// skipped is the id a source's get returns, with ok false, when it did not
// read the primitive this time (it gave up waiting for a lock): unlike a
// key found gone, that says nothing of the counts.
var skipped any = new(struct{ skipped bool })

// registerAll validates name, reserves it for kind and registers one
// callback that reads every source and observes its table's series.
func registerAll(m *Meter, kind, name string, bs []binding) (*Registration, error) {
	return registerDone(m, kind, name, bs, make(chan struct{}))
}

// registerDone is registerAll with the channel the Registration closes
// when unregistering starts.
func registerDone(m *Meter, kind, name string, bs []binding, done chan struct{}) (*Registration, error) {
	if m == nil || m.meter == nil {
		return nil, fmt.Errorf("%w: nil Meter, or one not made by New", ErrInvalid)
	}
	if err := checkName(kind+" name", name); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var list []metric.Observable
	for _, b := range bs {
		b.prepare(m, name, seen, &list)
	}
	r := &Registration{m: m, slot: kind + "\x00" + name, done: done}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("%w: cannot register %s %q", ErrClosed, kind, name)
	}
	if _, dup := m.names[r.slot]; dup {
		return nil, fmt.Errorf("%w: %s %q is registered on this Meter already; unregister it first", ErrDuplicate, kind, name)
	}
	var mu sync.Mutex // the callback may run for several readers at once
	cb := func(ctx context.Context, o metric.Observer) error {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bs {
			b.observe(ctx, o)
		}
		return nil
	}
	reg, err := m.meter.RegisterCallback(cb, list...)
	if err != nil {
		return nil, fmt.Errorf("stormotel: registering %s %q: %w", kind, name, err)
	}
	r.reg = reg
	m.names[r.slot] = r
	return r, nil
}

// observe reports s, read from the object id, keeping the counters
// monotonic across a change of object or a reset.
func observe[S any](st *srcState, o metric.Observer, table []series[S], s S, id any) {
	// A reset is a new object (its counts start from zero) or the same
	// object whose raw counts fell in all (a key forgotten and made again
	// since the last collection). A count that fell while the total did
	// not is no reset: the primitive moved it to another (a grant revoked
	// as its waiter gave up counts as cancelled instead of admitted), and
	// it holds its last value until it grows past it again.
	var raw int64
	for i, ser := range table {
		if st.kinds[i] == counterInt {
			raw = satAdd(raw, max(ser.i(s), 0))
		}
	}
	reset := id != st.id && st.id != nil || raw < st.raw
	if !reset && st.id != nil {
		// The same object: a steady counter that fell, or a counter that
		// fell by more than the counters it may fall into grew, was reset
		// even if others grew past the old total (a key made again that
		// refused more than it admitted before).
		for i, ser := range table {
			if st.kinds[i] != counterInt {
				continue
			}
			cur, was := max(ser.i(s), 0), st.prev[i]
			if cur >= was {
				continue
			}
			if ser.steady {
				reset = true
				break
			}
			if len(st.into[i]) > 0 {
				gained := int64(0)
				for _, j := range st.into[i] {
					gained = satAdd(gained, max(max(table[j].i(s), 0)-st.prev[j], 0))
				}
				if gained < was-cur {
					reset = true
					break
				}
			}
		}
	}
	st.raw = raw
	for i, ser := range table {
		if st.kinds[i] == counterInt {
			st.prev[i] = max(ser.i(s), 0)
		}
	}
	if reset {
		// What the old counts reached becomes an offset.
		for i := range table {
			st.base[i] = satAdd(st.base[i], st.last[i])
			st.last[i] = 0
		}
	}
	st.id = id
	for i, ser := range table {
		switch st.kinds[i] {
		case counterInt:
			st.last[i] = max(st.last[i], ser.i(s))
			o.ObserveInt64(st.insts[i].(metric.Int64Observable), satAdd(st.base[i], st.last[i]), st.opts[i:i+1]...)
		case gaugeInt, upDownInt:
			o.ObserveInt64(st.insts[i].(metric.Int64Observable), ser.i(s), st.opts[i:i+1]...)
		case gaugeFloat:
			o.ObserveFloat64(st.insts[i].(metric.Float64Observable), ser.f(s), st.opts[i:i+1]...)
		}
	}
}

// keySources formats keys, checks them against the Meter's bound and for
// duplicates, and builds one source per key.
func keySources[K comparable, S any](m *Meter, kind string, table []series[S], keys []K, get func(K) (S, any, bool)) ([]source[S], error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil Meter", ErrInvalid)
	}
	if len(keys) > m.maxKeys {
		return nil, fmt.Errorf("%w: %d keys for a %s, above the bound of %d (WithMaxKeys)", ErrInvalid, len(keys), kind, m.maxKeys)
	}
	seen := make(map[string]bool, len(keys))
	srcs := make([]source[S], 0, len(keys))
	for _, k := range keys {
		s := fmt.Sprint(k)
		if panicked(k, s) {
			return nil, fmt.Errorf("%w: a %s key does not format: %s", ErrInvalid, kind, s)
		}
		if err := checkName(kind+" key", s); err != nil {
			return nil, err
		}
		if seen[s] {
			return nil, fmt.Errorf("%w: two keys of a %s format as %q", ErrInvalid, kind, s)
		}
		seen[s] = true
		srcs = append(srcs, source[S]{attrs: []attribute.KeyValue{AttrKey.String(s)}, table: table, get: func() (S, any, bool) { return get(k) }})
	}
	return srcs, nil
}

// panicked reports that fmt caught a panic formatting k into s: only a
// key with its own formatting method can panic, so a plain string that
// happens to start like fmt's panic text is not refused.
func panicked(k any, s string) bool {
	switch k.(type) {
	case fmt.Formatter, fmt.Stringer, error:
		return strings.HasPrefix(s, "%!v(PANIC=")
	}
	return false
}

// satAdd adds two non-negative counts, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// sat64 converts a uint64 count, saturating at math.MaxInt64.
func sat64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
