package shed

import (
	"errors"
	"testing"
	"time"
)

// TestNilRefusal: a typed-nil *Refusal held in an error (a caller's
// "var r *Refusal; return r" bug) answers errors.Is, errors.As, Error and
// RetryAfter without panicking, and matches no reason.
func TestNilRefusal(t *testing.T) {
	var r *Refusal
	var err error = r
	if errors.Is(err, ErrDeadline) || errors.Is(err, ErrShed) {
		t.Error("a nil *Refusal matched a reason")
	}
	var got *Refusal
	if !errors.As(err, &got) || got != nil {
		t.Errorf("errors.As = %v", got)
	}
	if err.Error() == "" {
		t.Error("empty Error text")
	}
	if d := r.RetryAfter(); d != 0 {
		t.Errorf("RetryAfter = %v, want 0", d)
	}
	if u := r.Unwrap(); u != nil {
		t.Errorf("Unwrap = %v, want nil", u)
	}
}

// TestRefusalHint: the hint is RetryIn when positive, the time waited for
// a wait timeout or an eviction, and nothing for the other reasons.
func TestRefusalHint(t *testing.T) {
	for _, c := range []struct {
		r    *Refusal
		want time.Duration
		ok   bool
	}{
		{nil, 0, false},
		{&Refusal{Reason: ErrRateLimited, RetryIn: 30 * time.Millisecond}, 30 * time.Millisecond, true},
		{&Refusal{Reason: ErrLimitReached, RetryIn: 5 * time.Millisecond, Waited: time.Second}, 5 * time.Millisecond, true},
		{&Refusal{Reason: ErrLimitReached}, 0, false},
		{&Refusal{Reason: ErrWaitTimeout, Waited: 40 * time.Millisecond, MaxWait: 50 * time.Millisecond}, 40 * time.Millisecond, true},
		{&Refusal{Reason: ErrEvicted, Waited: 7 * time.Millisecond}, 7 * time.Millisecond, true},
		{&Refusal{Reason: ErrWaitTimeout}, 0, false},
		{&Refusal{Reason: ErrQueueFull, Waited: time.Second}, 0, false},
		{&Refusal{Reason: ErrPaused, Waited: time.Second}, 0, false},
		{&Refusal{Reason: ErrDeadline, Waited: time.Second}, 0, false},
		{&Refusal{Reason: ErrTooManyKeys}, 0, false},
	} {
		if d, ok := c.r.Hint(); d != c.want || ok != c.ok {
			t.Errorf("%v: Hint() = %v, %v; want %v, %v", c.r, d, ok, c.want, c.ok)
		}
	}
}
