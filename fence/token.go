package fence

import (
	"fmt"
	"math"
	"strconv"
)

// Token is a fencing token: a generation number that only grows, such as a
// plan's generation or a lease's epoch. A larger Token is newer. The zero
// Token means "no token": it is what an absent key or a fresh Register
// holds, and no write may carry it.
//
// Tokens are plain integers: compare them with <, ==, >, keep them in maps,
// print them with %v or %d.
type Token uint64

// MaxToken is the largest Token. A Sequencer that has handed it out refuses
// to hand out more (ErrExhausted).
const MaxToken Token = math.MaxUint64

// String returns the token in decimal, for example "42".
func (t Token) String() string { return strconv.FormatUint(uint64(t), 10) }

// ParseToken parses the decimal form that String returns. An error matches
// ErrInvalidToken.
func ParseToken(s string) (Token, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a decimal number in [0, %d]", ErrInvalidToken, s, uint64(MaxToken))
	}
	return Token(n), nil
}
