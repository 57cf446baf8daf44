package shed

import (
	"errors"
	"testing"
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
