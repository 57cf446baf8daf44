package shedhttp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTimeout parses the value of a deadline header (Options.DeadlineHeader):
// the time the client will wait for the answer. After trimming spaces and
// tabs it is either
//
//   - a decimal integer of milliseconds: one or more ASCII digits, nothing
//     else (no sign, no exponent), at most the longest time.Duration
//     (9223372036854 ms); "0" means no time left; or
//   - a Go duration as time.ParseDuration reads it ("250ms", "1.5s",
//     "1m30s"), not negative.
//
// Anything else — empty, a sign, a negative duration, a number too large,
// a unit time.ParseDuration does not know — is an error matching
// ErrBadDeadline that quotes the value.
func ParseTimeout(s string) (time.Duration, error) {
	v := strings.Trim(s, " \t")
	if v == "" {
		return 0, fmt.Errorf("%w: empty value", ErrBadDeadline)
	}
	if allDigits(v) {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms > maxHeaderMillis {
			return 0, fmt.Errorf("%w: %q milliseconds exceeds the longest duration (%d ms)", ErrBadDeadline, clip(v), maxHeaderMillis)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	if v[0] == '+' || v[0] == '-' {
		return 0, fmt.Errorf("%w: %q has a sign; want milliseconds (\"250\") or a duration (\"250ms\")", ErrBadDeadline, clip(v))
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is neither milliseconds (\"250\") nor a duration (\"250ms\")", ErrBadDeadline, clip(v))
	}
	return d, nil
}

// parseHeader parses the values of a deadline header. More than one value
// (the header repeated) is malformed: the client's intent is ambiguous.
func parseHeader(vs []string) (time.Duration, error) {
	if len(vs) != 1 {
		return 0, fmt.Errorf("%w: %d values; want one", ErrBadDeadline, len(vs))
	}
	return ParseTimeout(vs[0])
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clip bounds a quoted header value in an error message.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
