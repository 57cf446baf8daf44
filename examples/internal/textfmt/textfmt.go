// Package textfmt formats the demos' numbers and paragraphs for a terminal.
package textfmt

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Secs formats d in seconds with as many digits as it needs: "1.5s".
func Secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// Group formats n with commas between groups of three digits: "-1,234,567".
func Group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	if n < 0 {
		b.WriteByte('-')
		s = s[1:]
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Wrap prints text as a paragraph of lines of at most width columns; a
// word longer than width gets a line of its own.
func Wrap(w io.Writer, width int, text string) {
	line := 0
	for i, word := range strings.Fields(text) {
		n := len([]rune(word))
		if i > 0 && line+1+n > width {
			fmt.Fprintln(w)
			line = 0
		} else if i > 0 {
			fmt.Fprint(w, " ")
			line++
		}
		fmt.Fprint(w, word)
		line += n
	}
	fmt.Fprintln(w)
}

// OutOfRange returns nil if lo <= v <= hi, and otherwise an error wrapping
// sentinel that names the field and the range:
// "<sentinel>: hours 0 is outside [1, 72]".
func OutOfRange(sentinel error, name string, v, lo, hi int) error {
	if v >= lo && v <= hi {
		return nil
	}
	return fmt.Errorf("%w: %s %d is outside [%d, %d]", sentinel, name, v, lo, hi)
}
