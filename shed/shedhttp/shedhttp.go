package shedhttp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stormguard/stormguard/shed"
)

// ErrInvalidConfig is matched (with errors.Is) by every error New returns
// for bad Options; the error names every bad field. It also matches
// shed.ErrInvalidConfig.
var ErrInvalidConfig = fmt.Errorf("shedhttp: %w", shed.ErrInvalidConfig)

// Reasons New refuses Options. Each wraps ErrInvalidConfig.
var (
	// ErrNoAdmission: none of Queue, Partition, Bulkhead, Adaptive, Limiter
	// and KeyedLimiter is set, so the middleware would admit everything.
	ErrNoAdmission = fmt.Errorf("%w: no admission primitive set", ErrInvalidConfig)
	// ErrTwoAdmissions: more than one of Queue, Partition, Bulkhead and
	// Adaptive is set, or both Limiter and KeyedLimiter.
	ErrTwoAdmissions = fmt.Errorf("%w: more than one primitive of a kind set", ErrInvalidConfig)
	// ErrNoKey: Partition or KeyedLimiter is set without a Key function.
	ErrNoKey = fmt.Errorf("%w: keyed primitive without a Key function", ErrInvalidConfig)
	// ErrUnused: an option is set that the chosen primitives would ignore
	// (Priority or Cost without a Queue, Key without a keyed primitive,
	// IgnoreBadDeadline without a DeadlineHeader), or the next handler is
	// nil (a typed nil too, such as a nil *http.ServeMux or
	// http.HandlerFunc).
	ErrUnused = fmt.Errorf("%w: option without effect", ErrInvalidConfig)
)

// ErrBadDeadline is matched (with errors.Is) by the error of a request
// whose deadline header (Options.DeadlineHeader) is malformed. See
// ParseTimeout for the accepted forms.
var ErrBadDeadline = errors.New("shedhttp: malformed deadline header")

// Options configures the middleware. Set at most one of Queue, Partition,
// Bulkhead and Adaptive to bound concurrency and at most one of Limiter and
// KeyedLimiter to bound the rate, and at least one in all; with both, the
// rate is checked first, so a request
// refused for its rate never holds a slot (a request that gets its token
// and is then refused a slot, or whose client leaves, has spent the token).
// Every other field is optional and its zero value is usable.
type Options struct {
	// Queue admits requests through queue-aware admission, with the
	// priority Priority returns and the cost Cost returns.
	Queue *shed.Queue
	// Partition admits requests through the bulkhead of the key Key
	// returns (a tenant, a zone, a route): a key whose requests hang holds
	// at most its cap and the others keep the rest.
	Partition *shed.Partition[string]
	// Bulkhead admits requests through one bulkhead.
	Bulkhead *shed.Bulkhead
	// Adaptive admits requests through a standalone adaptive limit, which
	// never queues and learns from the handler's latency; a refusal
	// (shed.ErrLimitReached) says when a slot is expected to free.
	Adaptive *shed.AdaptiveLimit
	// Limiter throttles requests by rate. A request waits for a token for
	// at most the limiter's MaxWait (and never past its deadline); a
	// refusal says when the token is due.
	Limiter *shed.Limiter
	// KeyedLimiter throttles the requests of each key Key returns by rate.
	// It never waits.
	KeyedLimiter *shed.KeyedLimiter[string]

	// Key chooses the key of a request for Partition and KeyedLimiter
	// (both, if both are set). Required with either, refused without.
	Key func(*http.Request) string
	// Priority chooses the class of a request for Queue. Nil means
	// shed.Normal. Refused without a Queue.
	Priority func(*http.Request) shed.Priority
	// Cost, if not nil, declares how long a request is expected to take
	// once it runs (see shed.WithCost): the Queue then never starts a
	// request that could not finish before its deadline. Refused without
	// a Queue.
	Cost func(*http.Request) time.Duration

	// DeadlineHeader, if not empty, names a request header that carries the
	// time the client will wait for the answer, measured from the moment
	// the middleware reads it: a decimal integer of milliseconds ("250"), or
	// a Go duration ("250ms", "1.5s"); see ParseTimeout. The request's
	// context then ends at the earlier of its own deadline and that time,
	// for admission (a Queue drops a request that can no longer meet it)
	// and for the handler, which receives the shortened context. A request
	// without the header keeps its context's deadline, if any. A malformed
	// value is refused with 400 Bad Request and ErrBadDeadline, unless
	// IgnoreBadDeadline is set; OnEvent is told either way (BadDeadline).
	// The name is an HTTP token, in any case; New refuses one that is not
	// (a space, a colon, a non-ASCII letter), since no request could carry
	// it.
	DeadlineHeader string
	// IgnoreBadDeadline admits a request whose deadline header is
	// malformed as if it had none, instead of refusing it. OnEvent is still
	// told (BadDeadline). Refused without a DeadlineHeader.
	IgnoreBadDeadline bool

	// Status maps a refusal (a *shed.Refusal) to the response's status
	// code. Nil, or a result of 0, means DefaultStatus: 429 for a rate
	// limit, 503 for every other refusal. A result outside [200, 999] is
	// 503: that is what is written, and what Respond and OnEvent are
	// given.
	Status func(err error) int
	// Respond, if not nil, writes the response to a refused request in
	// place of WriteRejection (it may call WriteRejection itself, after
	// setting headers of its own, say). It is also called for a malformed
	// deadline header (Status 400). If it returns without writing a status
	// or a body, WriteRejection answers (keeping the headers Respond set),
	// since net/http would otherwise answer 200 OK. Its ResponseWriter
	// unwraps (for http.ResponseController) to the server's. A Respond
	// that writes its own answer sends RefusedHeader and
	// RetryAfterMsHeader only if it sets them itself.
	Respond func(w http.ResponseWriter, r *http.Request, rej Rejection)
	// OnEvent, if not nil, is told what happens to every request, on the
	// request's goroutine. It must be cheap and must not block. Nil costs
	// nothing.
	OnEvent func(Event)
}

// EventKind says what happened to one request.
type EventKind uint8

const (
	// Admitted: the request got its slot (and token) and the handler is
	// about to run.
	Admitted EventKind = iota + 1
	// Refused: admission refused the request (Event.Err says why) and the
	// middleware answered it (Event.Status).
	Refused
	// Gone: the request's context was cancelled (its client went away)
	// before the handler ran; the handler was not called. The middleware
	// writes 499 (nginx's "client closed request") for the access log.
	Gone
	// BadDeadline: the request's deadline header was malformed (Event.Err
	// wraps ErrBadDeadline). Unless Options.IgnoreBadDeadline is set, a
	// Refused event with status 400 follows.
	BadDeadline
)

// String returns "admitted", "refused", "gone" or "bad_deadline".
func (k EventKind) String() string {
	switch k {
	case Admitted:
		return "admitted"
	case Refused:
		return "refused"
	case Gone:
		return "gone"
	case BadDeadline:
		return "bad_deadline"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// StatusClientClosedRequest is the status written for a request whose
// client went away before the handler ran (nginx's 499); nobody reads it
// but the access log.
const StatusClientClosedRequest = 499

// Event describes what happened to one request, for Options.OnEvent.
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// Request is the request.
	Request *http.Request
	// Key is the request's key (Options.Key); empty without one, and for a
	// request dropped or refused before its key was chosen (a client gone
	// or a deadline passed on arrival, a malformed deadline header).
	Key string
	// Priority is the request's class (Options.Priority), or shed.Normal
	// (also before it was chosen).
	Priority shed.Priority
	// Err is the refusal (a *shed.Refusal), the context's error for Gone,
	// or the header's error for BadDeadline; nil for Admitted.
	Err error
	// Status is the status code the middleware answered with, for Refused
	// (what WriteRejection writes, in [200, 999]; a Respond may write
	// another) and Gone.
	Status int
	// RetryAfter is the retry hint sent with a refusal (see RetryAfter),
	// zero if none was sent.
	RetryAfter time.Duration
}

// Stats counts what the middleware decided itself. Admissions and the
// primitives' refusals are counted by the primitives (their Stats).
type Stats struct {
	// Gone counts requests whose client went away before the handler ran.
	Gone int64
	// BadDeadline counts requests with a malformed deadline header.
	BadDeadline int64
	// Deadline counts requests refused with shed.ErrDeadline by the
	// middleware itself, which no primitive counts: their deadline had
	// passed when they arrived, or passed after admission, before the
	// handler ran.
	Deadline int64
}

type admission uint8

const (
	admitNone admission = iota
	admitQueue
	admitPartition
	admitBulkhead
	admitAdaptive
)

// Handler is the middleware: an http.Handler that admits each request
// through the configured primitives before calling the next handler. It
// has no state but its counters; it is safe for concurrent use.
type Handler struct {
	next http.Handler
	o    Options
	kind admission
	// timed says the concurrency primitive learns from latency, so the
	// handler's time must be measured; for a Partition it is learned at
	// the first admission (0 unknown, 1 yes, 2 no).
	timed              bool
	partTimed          atomic.Uint32
	keyed              bool
	gone, badDdl, late atomic.Int64
}

// errZeroHandler answers every request to a Handler not built with New.
var errZeroHandler = errors.New("shedhttp: Handler not built with New (nil next handler); every request is answered 500")

// New returns the middleware around next, or an error matching
// ErrInvalidConfig (and the more precise reasons above) that names every
// bad option. A Queue, Partition, Bulkhead or AdaptiveLimit that was not
// built with its constructor is a bad option too.
func New(next http.Handler, o Options) (*Handler, error) {
	var errs []error
	if next == nil || nilValue(next) {
		errs = append(errs, fmt.Errorf("%w: nil next handler (%T)", ErrUnused, next))
	}
	h := &Handler{next: next, o: o}
	var set []string
	if o.Queue != nil {
		set = append(set, "Queue")
		h.kind = admitQueue
		_, h.timed = o.Queue.AdaptiveStats()
	}
	if o.Partition != nil {
		set = append(set, "Partition")
		h.kind = admitPartition
	}
	if o.Bulkhead != nil {
		set = append(set, "Bulkhead")
		h.kind = admitBulkhead
		_, h.timed = o.Bulkhead.AdaptiveStats()
	}
	if o.Adaptive != nil {
		set = append(set, "Adaptive")
		h.kind = admitAdaptive
		h.timed = true
	}
	// A primitive's limit is at least 1 once built by its constructor;
	// a zero value would refuse or fail every request.
	for _, z := range []struct {
		name string
		set  bool
		zero func() bool
	}{
		{"Queue", o.Queue != nil, func() bool { return o.Queue.Limit() == 0 }},
		{"Partition", o.Partition != nil, func() bool { return o.Partition.PerKey() == 0 }},
		{"Bulkhead", o.Bulkhead != nil, func() bool { return o.Bulkhead.Limit() == 0 }},
		{"Adaptive", o.Adaptive != nil, func() bool { return o.Adaptive.Limit() == 0 }},
	} {
		if z.set && z.zero() {
			errs = append(errs, fmt.Errorf("%w: %s not built with its constructor (limit 0)", ErrInvalidConfig, z.name))
		}
	}
	if len(set) > 1 {
		errs = append(errs, fmt.Errorf("%w: %v set; choose one", ErrTwoAdmissions, set))
	}
	if o.Limiter != nil && o.KeyedLimiter != nil {
		errs = append(errs, fmt.Errorf("%w: both Limiter and KeyedLimiter set; choose one", ErrTwoAdmissions))
	}
	if len(set) == 0 && o.Limiter == nil && o.KeyedLimiter == nil {
		errs = append(errs, ErrNoAdmission)
	}
	h.keyed = o.Partition != nil || o.KeyedLimiter != nil
	if h.keyed && o.Key == nil {
		errs = append(errs, fmt.Errorf("%w: Partition or KeyedLimiter set, Key nil", ErrNoKey))
	}
	if !h.keyed && o.Key != nil {
		errs = append(errs, fmt.Errorf("%w: Key set without Partition or KeyedLimiter", ErrUnused))
	}
	if o.Queue == nil && o.Priority != nil {
		errs = append(errs, fmt.Errorf("%w: Priority set without Queue", ErrUnused))
	}
	if o.Queue == nil && o.Cost != nil {
		errs = append(errs, fmt.Errorf("%w: Cost set without Queue", ErrUnused))
	}
	if o.DeadlineHeader == "" && o.IgnoreBadDeadline {
		errs = append(errs, fmt.Errorf("%w: IgnoreBadDeadline set without DeadlineHeader", ErrUnused))
	}
	if o.DeadlineHeader != "" {
		if !isToken(o.DeadlineHeader) {
			errs = append(errs, fmt.Errorf("%w: DeadlineHeader %q is not a header name (an HTTP token: ASCII letters, digits and !#$%%&'*+-.^_`|~), so no request could carry it",
				ErrInvalidConfig, clip(o.DeadlineHeader)))
		}
		h.o.DeadlineHeader = http.CanonicalHeaderKey(o.DeadlineHeader)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return h, nil
}

// Stats returns the middleware's own counters (zero for a nil Handler).
func (h *Handler) Stats() Stats {
	if h == nil {
		return Stats{}
	}
	return Stats{Gone: h.gone.Load(), BadDeadline: h.badDdl.Load(), Deadline: h.late.Load()}
}

// ServeHTTP admits r, calls the next handler, and releases what admission
// took when that handler returns or panics (a panic, http.ErrAbortHandler
// included, goes on up to net/http unchanged). A refused request is
// answered (see WriteRejection) and the next handler is not called; nor is
// it called for a request whose context is done when admission ends (its
// client went away: Gone; or its deadline passed: refused with
// shed.ErrDeadline). A Handler not built with New (a zero value or nil)
// answers every request 500, saying so.
//
// A departed client is seen through r's context, so only as soon as
// net/http notices it: over HTTP/2 when the client resets the stream, and
// over HTTP/1.x when the connection closes, which net/http watches only
// once the request's body has been read to its end (at once for a request
// without a body, such as a GET). A waiting POST whose body nobody has
// read yet is therefore not dropped when its client leaves over HTTP/1.x:
// it runs when admitted, and its context ends once its handler has read
// the body.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h == nil || h.next == nil {
		WriteRejection(w, Rejection{Err: errZeroHandler, Status: http.StatusInternalServerError})
		return
	}
	ctx := r.Context()
	if err := ctx.Err(); err != nil {
		h.dropped(w, r, "", shed.Normal, err)
		return
	}
	if h.o.DeadlineHeader != "" {
		if v, ok := r.Header[h.o.DeadlineHeader]; ok {
			d, err := parseHeader(v)
			if err != nil {
				h.badDdl.Add(1)
				if h.o.OnEvent != nil {
					h.o.OnEvent(Event{Kind: BadDeadline, Request: r, Err: err})
				}
				if !h.o.IgnoreBadDeadline {
					h.reject(w, r, Rejection{Err: err, Status: http.StatusBadRequest}, shed.Normal)
					return
				}
			} else {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
				r = r.WithContext(ctx)
			}
		}
	}
	var key string
	if h.keyed {
		key = h.o.Key(r)
	}
	pri := shed.Normal
	if h.o.Priority != nil {
		pri = h.o.Priority(r)
	}
	if h.o.Limiter != nil {
		if err := h.o.Limiter.Wait(ctx); err != nil {
			h.refused(w, r, key, pri, err)
			return
		}
	} else if h.o.KeyedLimiter != nil {
		if err := h.o.KeyedLimiter.Allow(key); err != nil {
			h.refused(w, r, key, pri, err)
			return
		}
	}
	switch h.kind {
	case admitNone:
		h.run(w, r, key, pri)
	case admitBulkhead:
		if err := h.o.Bulkhead.Acquire(ctx); err != nil {
			h.refused(w, r, key, pri, err)
			return
		}
		h.runHeld(w, r, key, pri, h.o.Bulkhead.ReleaseRTT, h.o.Bulkhead.Release)
	case admitQueue:
		var err error
		if h.o.Cost != nil {
			err = h.o.Queue.Acquire(ctx, pri, shed.WithCost(h.o.Cost(r)))
		} else {
			err = h.o.Queue.Acquire(ctx, pri)
		}
		if err != nil {
			h.refused(w, r, key, pri, err)
			return
		}
		h.runHeld(w, r, key, pri, h.o.Queue.ReleaseRTT, h.o.Queue.Release)
	case admitAdaptive:
		if err := h.o.Adaptive.Acquire(); err != nil {
			h.refused(w, r, key, pri, err)
			return
		}
		h.runTimed(w, r, key, pri, h.o.Adaptive.ReleaseRTT, h.o.Adaptive.Release)
	case admitPartition:
		h.servePartition(w, r, key, pri)
	}
}

func (h *Handler) servePartition(w http.ResponseWriter, r *http.Request, key string, pri shed.Priority) {
	p := h.o.Partition
	if err := p.Acquire(r.Context(), key); err != nil {
		h.refused(w, r, key, pri, err)
		return
	}
	timed := h.partTimed.Load()
	if timed == 0 {
		// Whether a Partition's keys are adaptive shows only once a key
		// exists; this one does, since the request holds a slot of it.
		timed = 2
		if _, ok := p.AdaptiveStatsFor(key); ok {
			timed = 1
		}
		h.partTimed.Store(timed)
	}
	if timed == 2 {
		defer p.Release(key)
		h.run(w, r, key, pri)
		return
	}
	start := time.Now()
	ran := false
	defer func() {
		if !ran || r.Context().Err() == context.Canceled {
			p.Release(key) // a panic or a client gone: no sample
			return
		}
		p.ReleaseRTT(key, time.Since(start), r.Context().Err() != nil)
	}()
	ran = h.run(w, r, key, pri)
}

// runHeld runs the handler in a slot of a Bulkhead or a Queue, which
// release and releaseRTT free: with the handler's latency (runTimed) if
// the primitive is adaptive, without one otherwise.
func (h *Handler) runHeld(w http.ResponseWriter, r *http.Request, key string, pri shed.Priority,
	releaseRTT func(time.Duration, bool), release func()) {
	if h.timed {
		h.runTimed(w, r, key, pri, releaseRTT, release)
		return
	}
	defer release()
	h.run(w, r, key, pri)
}

// runTimed runs the handler in a slot that learns from latency: the slot
// is freed with the handler's latency when it returns (dropped if the
// request's deadline passed meanwhile), and without a sample when it
// panicked, did not run, or its client went away.
func (h *Handler) runTimed(w http.ResponseWriter, r *http.Request, key string, pri shed.Priority,
	releaseRTT func(time.Duration, bool), release func()) {
	start := time.Now()
	ran := false
	defer func() {
		if !ran || r.Context().Err() == context.Canceled {
			release()
			return
		}
		releaseRTT(time.Since(start), r.Context().Err() != nil)
	}()
	ran = h.run(w, r, key, pri)
}

// run calls the next handler unless the request's context ended while it
// was admitted, and reports whether it returned normally (false if it did
// not run; a panic never returns).
func (h *Handler) run(w http.ResponseWriter, r *http.Request, key string, pri shed.Priority) bool {
	if err := r.Context().Err(); err != nil {
		h.dropped(w, r, key, pri, err)
		return false
	}
	if h.o.OnEvent != nil {
		h.o.OnEvent(Event{Kind: Admitted, Request: r, Key: key, Priority: pri})
	}
	h.next.ServeHTTP(w, r)
	return true
}

// dropped answers a request whose context ended before the handler ran: a
// deadline is a refusal (shed.ErrDeadline), anything else a client gone.
func (h *Handler) dropped(w http.ResponseWriter, r *http.Request, key string, pri shed.Priority, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		h.late.Add(1)
		h.refused(w, r, key, pri, &shed.Refusal{Reason: shed.ErrDeadline, Key: key, Cause: err})
		return
	}
	h.gone.Add(1)
	w.WriteHeader(StatusClientClosedRequest)
	if h.o.OnEvent != nil {
		h.o.OnEvent(Event{Kind: Gone, Request: r, Key: key, Priority: pri, Err: err, Status: StatusClientClosedRequest})
	}
}

// refused answers a refusal from a primitive. A refusal that is the
// request's own context ending (not errors.Is shed.ErrShed) is a drop.
func (h *Handler) refused(w http.ResponseWriter, r *http.Request, key string, pri shed.Priority, err error) {
	if !errors.Is(err, shed.ErrShed) {
		if cerr := r.Context().Err(); cerr != nil {
			h.dropped(w, r, key, pri, cerr)
			return
		}
	}
	status := 0
	if h.o.Status != nil {
		status = h.o.Status(err)
	}
	if status == 0 {
		status = DefaultStatus(err)
	}
	if status < 200 || status > 999 {
		status = http.StatusServiceUnavailable // as WriteRejection would write it
	}
	ra, ok := RetryAfter(err)
	if !ok && errors.Is(err, shed.ErrQueueFull) {
		ra = h.slotIn(key)
	}
	h.reject(w, r, Rejection{Err: err, Status: status, RetryAfter: ra, Key: key}, pri)
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, rej Rejection, pri shed.Priority) {
	if h.o.Respond != nil {
		rw := &respondWriter{ResponseWriter: w}
		h.o.Respond(rw, r, rej)
		if !rw.wrote {
			// Returning without a status would let net/http answer 200.
			WriteRejection(w, rej)
		}
	} else {
		WriteRejection(w, rej)
	}
	if h.o.OnEvent != nil {
		h.o.OnEvent(Event{Kind: Refused, Request: r, Key: rej.Key, Priority: pri, Err: rej.Err,
			Status: rej.Status, RetryAfter: rej.RetryAfter})
	}
}

// slotIn estimates when a slot of the concurrency primitive frees, for a
// full queue's refusal, which counts requests but not time: the mean
// latency the primitive's adaptive limit measured (its last window) over
// its limit, as an AdaptiveLimit's own refusal does. Zero, meaning no
// basis, without an adaptive limit or before its first window.
func (h *Handler) slotIn(key string) time.Duration {
	var st shed.AdaptiveStats
	var ok bool
	limit := 0
	switch h.kind {
	case admitBulkhead:
		st, ok = h.o.Bulkhead.AdaptiveStats()
		limit = h.o.Bulkhead.Limit()
	case admitQueue:
		st, ok = h.o.Queue.AdaptiveStats()
		limit = h.o.Queue.Limit()
	case admitPartition:
		st, ok = h.o.Partition.AdaptiveStatsFor(key)
		limit, _ = h.o.Partition.LimitFor(key)
	}
	if !ok || st.RTT <= 0 {
		return 0
	}
	return st.RTT / time.Duration(max(limit, 1))
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2),
// the form of a header name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// nilValue reports whether x holds a nil pointer, func, map, chan or
// slice: a typed nil, whose methods would (for the first two) dereference
// nil.
func nilValue(x any) bool {
	switch v := reflect.ValueOf(x); v.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Chan, reflect.Slice, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}

// respondWriter is the ResponseWriter handed to Options.Respond: it notes
// whether Respond wrote a final status (or a body, a flush or a hijack,
// which commit one). Flush, FlushError and Hijack are its own, so that
// they are noted whether called directly or through a ResponseController;
// Unwrap lets a ResponseController reach the rest.
type respondWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *respondWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respondWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *respondWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *respondWriter) Flush() { _ = w.FlushError() }

func (w *respondWriter) FlushError() error {
	w.wrote = true
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *respondWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.wrote = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
