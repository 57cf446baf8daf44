package shedhttp_test

import (
	"errors"
	"testing"

	"github.com/stormguard/stormguard/shed/shedhttp"
)

// FuzzParseTimeout: any header value is read as a non-negative duration or
// refused with ErrBadDeadline, never a panic; a value that is read parses
// the same after surrounding spaces are added.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"250", "250ms", "1.5s", "0", "-1", "+1", "9223372036855", "1e3", " 5s\t", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := shedhttp.ParseTimeout(s)
		if err != nil {
			if !errors.Is(err, shedhttp.ErrBadDeadline) {
				t.Fatalf("%q: %v does not match ErrBadDeadline", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q: negative %v", s, d)
		}
		if d2, err := shedhttp.ParseTimeout(" " + s + "\t"); err != nil || d2 != d {
			t.Fatalf("%q padded: %v, %v; want %v", s, d2, err, d)
		}
	})
}
